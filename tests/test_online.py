"""Online mode against a real MLflow tracking server on loopback, checked through its REST API."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import requests
from conftest import ROOT, spawn_python, wait_for
from fault_proxy import FaultProxy
from mlflow_server import MlflowServer, free_port, mlflow_python

import nbtrack
from nbtrack import NbtrackWarning

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(mlflow_python() is None, reason="no Python with mlflow (.ci/run makes .venv-mlflow)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    yield srv
    srv.stop()


def online(server_url, **kw):
    settings = {"tracking_uri": server_url, "system_interval": 0, **kw.pop("settings", {})}
    return nbtrack.init(settings=settings, **kw)


def points(server, remote_id, key):
    return sorted((m["step"], m["value"]) for m in server.history(remote_id, key))


def sync_cli(*args, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NBTRACK_", "MLFLOW_"))}
    full.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "nbtrack", "sync", *args], capture_output=True, text=True, env=full, timeout=300
    )


def test_a_run_arrives_whole(server, store_dir):
    long_value = "x" * 7000
    run = online(
        server.url,
        project="whole",
        dir=store_dir,
        name="full-run",
        notes="about it",
        group="grp",
        job_type="train",
        entity="team",
        tags=["baseline", "v2"],
        config={"lr": 0.01, "opt": {"name": "adam", "beta": 0.9}, "layers": [64, 32], "blob": long_value},
        settings={"system_interval": 0.1},
    )
    assert run.mode == "online"
    assert run.url.startswith(server.url + "/#/experiments/")
    for i in range(2500):
        run.log({"loss": 1 / (i + 1), "acc": i / 2500, "phase": "train", "odd": float("nan") if i == 7 else i % 2})
    run.log({f"wide/k{j}": float(j) for j in range(1500)})  # one row wider than a log-batch
    with pytest.warns(NbtrackWarning, match="config value 'blob' is 7000 characters, over MLflow's limit of 6000"):
        run.finish()
    assert run.sync_status["state"] == "synced" and run.sync_status["pending"] == 0

    remote = server.run_by_tag("whole", run.id)
    info, data = remote["info"], remote["data"]
    assert info["status"] == "FINISHED" and info["run_name"] == "full-run" and info["end_time"] > info["start_time"]
    assert run.url.endswith(f"/experiments/{info['experiment_id']}/runs/{info['run_id']}")
    params = {p["key"]: p["value"] for p in data["params"]}
    assert params["lr"] == "0.01" and params["opt.name"] == "adam" and params["opt.beta"] == "0.9"
    assert params["layers"] == "[64, 32]" and len(params["blob"]) == 6000  # as str(), like MLflow's client
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert tags["mlflow.runName"] == "full-run" and tags["nbtrack.run_id"] == run.id
    assert tags["nbtrack.group"] == "grp" and tags["nbtrack.job_type"] == "train" and tags["nbtrack.entity"] == "team"
    assert tags["mlflow.note.content"] == "about it" and tags["nbtrack.tags"] == "baseline, v2"
    meta = nbtrack.Api(store_dir).run(f"whole/{run.id}").metadata
    assert tags["tag.baseline"] == "true" and tags["mlflow.user"] == meta["user"]
    assert tags.get("mlflow.source.name") == meta.get("program")  # the program, when there is one

    local = nbtrack.Api(store_dir).run(f"whole/{run.id}").rows()
    rid = info["run_id"]
    for key in ("loss", "acc"):
        expected = sorted((r["_step"], r[key]) for r in local if key in r)
        assert points(server, rid, key) == expected  # every point, once, the same doubles
    odd = points(server, rid, "odd")
    assert len(odd) == 2500 and odd[7][0] == 7 and math.isnan(float(odd[7][1]))
    assert server.history(rid, "phase") == []  # strings stay in the local store
    wide = server.get("runs/get", run_id=rid)["run"]["data"]["metrics"]
    assert len([m for m in wide if m["key"].startswith("wide/")]) == 1500
    assert points(server, rid, "wide/k1499") == [(2500, 1499.0)]
    # system metrics under MLflow's system/ names, numbered as MLflow numbers them
    cpu = server.history(rid, "system/cpu_utilization_percentage")
    assert len(cpu) >= 1 and sorted(m["step"] for m in cpu) == list(range(len(cpu)))
    # the full config as an artifact, long value and all
    assert "nbtrack/config.json" in server.artifacts(rid)
    art = requests.get(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{info['experiment_id']}/{rid}/artifacts/nbtrack/config.json",
        timeout=30,
    )
    assert json.loads(art.content)["blob"] == long_value


def test_states_map_to_mlflow_statuses(server, store_dir):
    failed = online(server.url, project="states", dir=store_dir)
    failed.log({"a": 1})
    failed.finish(exit_code=3)
    assert server.run_by_tag("states", failed.id)["info"]["status"] == "FAILED"

    # a process killed mid-run leaves a crashed run; sync later sends it as KILLED
    child = spawn_python(f"""
        import time, nbtrack
        run = nbtrack.init(project="states", dir={str(store_dir)!r}, id="crashy", settings={{"system_interval": 0}})
        for i in range(300):
            run.log({{"a": i}})
        print("logged", flush=True)
        time.sleep(60)
    """)
    assert child.stdout.readline().strip() == "logged"
    time.sleep(1.0)  # past a flush
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    out = sync_cli("--dir", str(store_dir), "--project", "states", "--run", "crashy", "--tracking-uri", server.url)
    assert out.returncode == 0, out.stderr
    remote = server.run_by_tag("states", "crashy")
    assert remote["info"]["status"] == "KILLED"
    assert points(server, remote["info"]["run_id"], "a") == [(i, float(i)) for i in range(300)]


def test_offline_runs_sync_later_exactly_once(server, store_dir):
    run = nbtrack.init(project="later", dir=store_dir, mode="offline", config={"k": 1}, settings={"system_interval": 0})
    for i in range(1200):
        run.log({"v": float(i)})
    run.finish()
    dry = sync_cli("--dir", str(store_dir), "--dry-run", "--tracking-uri", server.url)
    assert dry.returncode == 0 and "would send create the MLflow run, 1200 rows" in dry.stdout
    with pytest.raises(requests.HTTPError):
        server.experiment("later")  # a dry run sends nothing

    first = sync_cli("--dir", str(store_dir), "--project", "later", env={"NBTRACK_TRACKING_URI": server.url})
    assert first.returncode == 0, first.stderr
    assert f"later/{run.id}: sent 1200 rows" in first.stdout and "FINISHED" in first.stdout
    remote = server.run_by_tag("later", run.id)
    before = points(server, remote["info"]["run_id"], "v")
    assert before == [(i, float(i)) for i in range(1200)]

    second = subprocess.run(
        [sys.executable, "-m", "nbtrack", "sync", "--dir", str(store_dir), "--project", "later"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"], "MLFLOW_TRACKING_URI": server.url},
    )
    assert second.returncode == 0 and f"later/{run.id}: up to date" in second.stdout
    assert points(server, remote["info"]["run_id"], "v") == before
    assert len(server.runs("later")) == 1


def test_sync_command_errors_name_the_argument(store_dir):
    out = sync_cli("--dir", str(store_dir))
    assert out.returncode == 2 and "--tracking-uri" in out.stderr and "NBTRACK_TRACKING_URI" in out.stderr
    nbtrack.init(project="x", dir=store_dir, mode="offline").finish()
    out = sync_cli("--dir", str(store_dir), "--run", "nope", "--tracking-uri", "http://127.0.0.1:9")
    assert out.returncode == 2 and "--run: no run 'nope'" in out.stderr
    out = sync_cli("--dir", str(store_dir), "--tracking-uri", "ftp://example")
    assert out.returncode == 2 and "--tracking-uri: expected an http:// or https:// URL" in out.stderr


def test_resume_continues_the_same_mlflow_run(server, store_dir):
    run = online(server.url, project="resumed", dir=store_dir, id="same")
    for i in range(100):
        run.log({"x": float(i)})
    run.finish()
    run = online(server.url, project="resumed", dir=store_dir, id="same", resume="must")
    assert server.run_by_tag("resumed", "same")["info"]["status"] == "RUNNING"
    for i in range(100, 150):
        run.log({"x": float(i)})
    run.finish()
    (remote,) = server.runs("resumed")
    assert remote["info"]["status"] == "FINISHED"
    assert points(server, remote["info"]["run_id"], "x") == [(i, float(i)) for i in range(150)]


def test_fork_and_rewind_online(server, store_dir):
    source = online(server.url, project="branches", dir=store_dir, id="source")
    for i in range(50):
        source.log({"x": float(i)})
    source.finish()
    source_remote = server.run_by_tag("branches", "source")["info"]["run_id"]

    fork = online(server.url, project="branches", dir=store_dir, fork_from="source?_step=20")
    fork.log({"x": 100.0})
    fork.finish()
    forked = server.run_by_tag("branches", fork.id)
    tags = {t["key"]: t["value"] for t in forked["data"]["tags"]}
    assert tags["nbtrack.fork_of"] == "source" and tags["nbtrack.branch_step"] == "20"
    assert points(server, forked["info"]["run_id"], "x") == [(i, float(i)) for i in range(21)] + [(21, 100.0)]

    # rewind: MLflow cannot delete points, so the kept history continues in a new MLflow run
    rewound = online(server.url, project="branches", dir=store_dir, resume_from="source?_step=9")
    for i in range(3):
        rewound.log({"x": -float(i)})
    rewound.finish()
    runs = [
        r
        for r in server.runs("branches")
        if {t["key"]: t["value"] for t in r["data"]["tags"]}.get("nbtrack.run_id") == "source"
    ]
    assert len(runs) == 2
    old = next(r for r in runs if r["info"]["run_id"] == source_remote)
    new = next(r for r in runs if r["info"]["run_id"] != source_remote)
    old_tags = {t["key"]: t["value"] for t in old["data"]["tags"]}
    new_tags = {t["key"]: t["value"] for t in new["data"]["tags"]}
    assert old_tags["nbtrack.rewound_to_step"] == "9" and old_tags["nbtrack.superseded_by"] == new["info"]["run_id"]
    assert new_tags["nbtrack.rewind_of"] == source_remote and new["info"]["status"] == "FINISHED"
    assert points(server, source_remote, "x") == [(i, float(i)) for i in range(50)]  # untouched
    assert points(server, new["info"]["run_id"], "x") == [(i, float(i)) for i in range(10)] + [
        (10, 0.0),
        (11, -1.0),
        (12, -2.0),
    ]
    assert rewound.url.endswith(new["info"]["run_id"])


def test_refused_items_are_dropped_alone(server, store_dir):
    proxy = FaultProxy(server.url)
    proxy.refuse_key = "strict"  # valid for MLflow, refused by this (stricter) server
    try:
        with warnings.catch_warnings(record=True) as caught:  # also records the sync thread's warnings
            warnings.simplefilter("always")
            run = online(proxy.url, project="refused", dir=store_dir, config={"lr": 0.1}, allow_val_change=True)
            run.log({"good": 1.0, "strict": 2.0, "also_good": 3.0})
            assert wait_for(lambda: run.sync_status["sent"] == 1)
            run.config.update({"lr": 0.2})  # notebooks allow it; MLflow params cannot change
            for i in range(1, 2000):
                run.log({"good": 4.0 * i, "strict": 5.0, "also_good": 6.0})
            run.finish()
    finally:
        proxy.close()
    remote = server.run_by_tag("refused", run.id)
    rid = remote["info"]["run_id"]
    # every batch went through without the refused key
    assert len(points(server, rid, "good")) == 2000 and points(server, rid, "also_good")[:2] == [(0, 3.0), (1, 6.0)]
    assert server.history(rid, "strict") == []
    assert {p["key"]: p["value"] for p in remote["data"]["params"]}["lr"] == "0.1"
    assert nbtrack.Api(store_dir).run(f"refused/{run.id}").rows()[1]["strict"] == 5.0  # kept locally
    texts = [str(w.message) for w in caught]
    refused = [t for t in texts if "refused metric 'strict'" in t]
    assert len(refused) == 1 and "refused by policy" in refused[0]  # once, with the server's reason
    assert any("config 'lr' changed to '0.2'" in t and "keeps '0.1'" in t for t in texts)
    # found once, then left out of every later batch: a few requests, not one per point
    assert proxy.requests["/api/2.0/mlflow/runs/log-batch"] < 30


def test_keys_mlflow_would_refuse_are_mapped_once(server, store_dir):
    long_key = "m" * 300
    proxy = FaultProxy(server.url)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = online(proxy.url, project="badkeys", dir=store_dir, config={"opt": {"b@d": 1, "x" * 260: 2}})
            for i in range(5000):
                run.log({long_key: float(i), "acc@1": i / 5000, "ok": 1.0})
            run.finish()
        log_batches = proxy.requests["/api/2.0/mlflow/runs/log-batch"]
        # a second `nbtrack sync` of the same run: nothing to send, nothing said again
        again = sync_cli("--dir", str(store_dir), "--project", "badkeys", "--tracking-uri", proxy.url)
    finally:
        proxy.close()
    assert run.sync_status["state"] == "synced"
    # 15,000 points in 1,000-point batches, plus tags, params and the run's end: no request per point
    assert log_batches <= 30, proxy.requests
    remote = server.run_by_tag("badkeys", run.id)
    rid = remote["info"]["run_id"]
    from nbtrack.sync import keys

    long_name, acc_name = keys.mapped(long_key), keys.mapped("acc@1")
    assert len(long_name) == 250 and long_name.startswith("m" * 243 + "-")
    assert acc_name.startswith("acc_1-") and len(acc_name) == len("acc_1-") + 6
    assert len(points(server, rid, long_name)) == 5000 and points(server, rid, acc_name)[-1] == (4999, 4999 / 5000)
    assert len(points(server, rid, "ok")) == 5000
    # the map back to the original names: a tag and an artifact
    tags = {t["key"]: t["value"] for t in remote["data"]["tags"]}
    key_map = json.loads(tags["nbtrack.key_map"])
    assert key_map["metric"] == {long_name: long_key, acc_name: "acc@1"}
    assert key_map["config"][keys.mapped("opt.b@d")] == "opt.b@d"
    assert "nbtrack/key_map.json" in server.artifacts(rid)
    params = {p["key"]: p["value"] for p in remote["data"]["params"]}
    assert params[keys.mapped("opt.b@d")] == "1" and params[keys.mapped("opt." + "x" * 260)] == "2"
    # one warning per key, not per point or per pass
    texts = [str(w.message) for w in caught]
    for original in ("acc@1", "opt.b@d"):
        assert len([t for t in texts if f"key {original!r} is not a valid MLflow key" in t]) == 1, texts
    assert len([t for t in texts if "'mmmmmmmmmm" in t and "not a valid MLflow key" in t]) == 1
    assert again.returncode == 0 and "up to date" in again.stdout and "valid MLflow key" not in again.stderr


def test_config_keys_that_shorten_alike_stay_distinct(server, store_dir):
    first, second = "k" * 260 + "_first", "k" * 260 + "_second"  # alike in their first 250 characters
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = online(server.url, project="collide", dir=store_dir, config={first: 1, second: 2})
        run.log({"x": 1.0})
        run.finish()
    again = sync_cli("--dir", str(store_dir), "--project", "collide", "--tracking-uri", server.url)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr
    params = {p["key"]: p["value"] for p in server.run_by_tag("collide", run.id)["data"]["params"]}
    assert len(params) == 2 and sorted(params.values()) == ["1", "2"]
    assert all(len(k) == 250 for k in params)
    texts = [str(w.message) for w in caught] + [again.stderr]
    assert not any("changed after it was sent" in t or "refused" in t for t in texts), texts
    assert len([t for t in texts if "config key 'kkkk" in t]) == 2  # one per key, none from the second sync


def test_a_backlog_longer_than_a_pass_drains(server, store_dir, capfd):
    """30,000 rows x 10 floats logged faster than one server worker takes them: the sync
    works the backlog off in slices with no failure, the status counts live, and the run
    ends FINISHED on the server with every step."""
    run = online(server.url, project="backlog", dir=store_dir)
    for i in range(30_000):
        run.log({f"f{j}": i * 0.5 + j for j in range(10)})
    seen = []

    def sending():
        status = run.sync_status
        seen.append((status["sent"], status["pending"]))
        return status["sent"] > 0 and status["pending"] > 0

    assert wait_for(sending, timeout=120), seen[-5:]  # counted as it goes, not as of a finished pass
    run.finish()
    out = capfd.readouterr()
    assert run.sync_status["state"] == "synced" and run.sync_status["pending"] == 0
    assert "cannot reach" not in out.err + out.out and "did not answer" not in out.err + out.out
    remote = server.run_by_tag("backlog", run.id)
    assert remote["info"]["status"] == "FINISHED"
    got = points(server, remote["info"]["run_id"], "f3")
    assert len(got) == 30_000 and got[-1] == (29_999, 29_999 * 0.5 + 3)
    sent = [a for a, _ in seen]
    assert sent == sorted(sent)  # the sent count only grows


def test_finish_that_stops_waiting_still_ends_the_server_run(server, store_dir):
    proxy = FaultProxy(server.url)
    try:
        run = online(proxy.url, project="slow", dir=store_dir, settings={"sync_timeout": 0.5})
        proxy.metrics_delay = 3.0  # each batch of points takes longer than finish() waits for progress
        for i in range(3000):
            run.log({"a": float(i), "b": 1.0})
        run.finish()
        assert run.sync_status["state"] == "unsent" and run.sync_status["pending"] > 0
        remote = server.run_by_tag("slow", run.id)
        tags = {t["key"]: t["value"] for t in remote["data"]["tags"]}
        assert remote["info"]["status"] == "FINISHED" and tags["nbtrack.sync"] == "incomplete"
        assert len(points(server, remote["info"]["run_id"], "a")) < 3000
        proxy.metrics_delay = 0.0
        done = sync_cli("--dir", str(store_dir), "--project", "slow", "--tracking-uri", proxy.url)
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr
    remote = server.run_by_tag("slow", run.id)
    assert "nbtrack.sync" not in {t["key"] for t in remote["data"]["tags"]}  # cleared once every row is there
    assert remote["info"]["status"] == "FINISHED"
    assert len(points(server, remote["info"]["run_id"], "a")) == 3000


def test_sync_verify_and_force_repair_what_the_server_lost(tmp_path, store_dir):
    import shutil
    import sqlite3

    srv = MlflowServer(tmp_path / "srv").start()
    port = srv.port
    try:
        run = online(srv.url, project="lost", dir=store_dir, config={"lr": 0.5})
        for i in range(100):
            run.log({"a": float(i), "b": i * 2.0})
        run.finish()
        first_id = srv.run_by_tag("lost", run.id)["info"]["run_id"]
        # the server's database is replaced: a plain sync finds the run gone and uploads it again
        srv.stop()
        shutil.rmtree(tmp_path / "srv")
        srv = MlflowServer(tmp_path / "srv", port=port).start()
        plain = sync_cli("--dir", str(store_dir), "--tracking-uri", srv.url)
        assert plain.returncode == 0, plain.stderr
        assert "no longer has this run; uploading it again" in plain.stdout and "sent 100 rows" in plain.stdout
        remote = srv.run_by_tag("lost", run.id)
        rid = remote["info"]["run_id"]
        assert remote["info"]["status"] == "FINISHED" and len(points(srv, rid, "a")) == 100
        assert {p["key"]: p["value"] for p in remote["data"]["params"]} == {"lr": "0.5"}
        assert rid != first_id

        # the server loses half of one key's points: --verify finds and re-sends them, no duplicates
        con = sqlite3.connect(tmp_path / "srv" / "mlflow.db")
        with con:
            con.execute("DELETE FROM metrics WHERE run_uuid = ? AND key = 'b' AND step >= 50", (rid,))
        con.close()
        quiet = sync_cli("--dir", str(store_dir), "--tracking-uri", srv.url)
        assert "up to date" in quiet.stdout  # the cursor alone cannot see it
        checked = sync_cli("--dir", str(store_dir), "--tracking-uri", srv.url, "--verify")
        assert checked.returncode == 0, checked.stderr
        assert "metric 'b': 50 of 100 points; re-sent" in checked.stdout
        assert points(srv, rid, "b") == [(i, i * 2.0) for i in range(100)]
        assert points(srv, rid, "a") == [(i, float(i)) for i in range(100)]
        again = sync_cli("--dir", str(store_dir), "--tracking-uri", srv.url, "--verify")
        assert "re-sent" not in again.stdout and "up to date" in again.stdout

        # --force: the whole run again, into a new MLflow run; the old one says where it went
        forced = sync_cli("--dir", str(store_dir), "--tracking-uri", srv.url, "--force")
        assert forced.returncode == 0 and "uploading again into a new MLflow run" in forced.stdout
        runs = srv.runs("lost")
        assert len(runs) == 2
        tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs}
        (new_id,) = [r for r in tags if r != rid]
        assert tags[new_id]["nbtrack.upload_of"] == rid and tags[rid]["nbtrack.superseded_by"] == new_id
        assert len(points(srv, new_id, "b")) == 100
        bad = sync_cli("--dir", str(store_dir), "--tracking-uri", srv.url, "--force", "--verify")
        assert bad.returncode == 2 and "--force" in bad.stderr
    finally:
        srv.stop()


def test_force_fails_fast(tmp_path, store_dir):
    port = free_port()  # nothing listens here
    with pytest.raises(nbtrack.errors.CommError, match=f"cannot reach http://127.0.0.1:{port}"):
        nbtrack.init(
            project="f",
            dir=store_dir,
            mode="online",
            force=True,
            settings={"tracking_uri": f"http://127.0.0.1:{port}", "init_timeout": 3},
        )
    assert nbtrack.Api(store_dir).runs("f") == []  # nothing was started

    # without force: a notice, and the run goes on offline with every row kept
    run = nbtrack.init(
        project="f",
        dir=store_dir,
        mode="online",
        settings={
            "tracking_uri": f"http://127.0.0.1:{port}",
            "init_timeout": 3,
            "sync_timeout": 1,
            "system_interval": 0,
        },
    )
    for i in range(10):
        run.log({"a": i})
    run.finish()
    assert run.url is None and run.sync_status["state"] == "unsent"
    assert f"cannot reach http://127.0.0.1:{port}" in run.sync_status["error"]
    assert len(nbtrack.Api(store_dir).run(f"f/{run.id}").rows()) == 10


def test_basic_auth(tmp_path, store_dir, capfd):
    srv = MlflowServer(tmp_path / "auth", auth_password="right-password-123").start()
    try:
        host = srv.url.removeprefix("http://")
        with pytest.raises(nbtrack.errors.AuthenticationError, match="refused the credentials \\(HTTP 401\\)"):
            nbtrack.init(
                project="a",
                dir=store_dir,
                mode="online",
                force=True,
                settings={"tracking_uri": f"http://admin:wrong-password@{host}"},
            )
        os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
        os.environ["MLFLOW_TRACKING_PASSWORD"] = "wrong-password"
        try:
            with pytest.raises(nbtrack.errors.AuthenticationError):
                nbtrack.init(project="a", dir=store_dir, mode="online", force=True, settings={"tracking_uri": srv.url})
            run = nbtrack.init(project="a", dir=store_dir, settings={"tracking_uri": srv.url, "system_interval": 0})
            run.log({"x": 1.0})
            run.finish()
            said = capfd.readouterr().err
            assert "refused the credentials" in said
            assert (
                f"nbtrack: run a/{run.id} is not on {srv.url}; it is kept locally. Send it with: nbtrack sync" in said
            )
            assert "of run" not in said  # not "the run of run a/... are not on ..."
            assert run.sync_status["state"] == "error" and nbtrack.Api(store_dir).run(f"a/{run.id}").rows()
            os.environ["MLFLOW_TRACKING_PASSWORD"] = "right-password-123"
            good = nbtrack.init(
                project="a",
                dir=store_dir,
                mode="online",
                force=True,
                settings={"tracking_uri": srv.url, "system_interval": 0},
            )
            good.log({"x": 2.0})
            good.finish()
        finally:
            del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
        assert srv.run_by_tag("a", good.id)["info"]["status"] == "FINISHED"
        # credentials are never written: not in the store, the run's files, the url or the status
        secrets = (b"right-password-123", b"wrong-password")
        for path in (store_dir / "nbtrack").rglob("*"):
            if path.is_file():
                assert not any(s in path.read_bytes() for s in secrets), path
        assert "password" not in good.url and "password" not in json.dumps(good.sync_status)
    finally:
        srv.stop()


def test_token_goes_as_a_bearer_header(server, store_dir, monkeypatch):
    proxy = FaultProxy(server.url)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)  # MLflow's own variable selects online mode
        run = nbtrack.init(project="token", dir=store_dir, settings={"system_interval": 0})
        assert run.mode == "online"
        run.log({"a": 1.0})
        run.finish()
        assert proxy.auth_headers and set(proxy.auth_headers) == {"Bearer tok-123"}
        for path in (store_dir / "nbtrack").rglob("*"):
            if path.is_file():
                assert b"tok-123" not in path.read_bytes()
    finally:
        proxy.close()


def test_a_local_mlflow_uri_is_not_a_server(store_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    run = nbtrack.init(project="local", dir=store_dir)
    assert run.mode == "offline"
    run.finish()
    with pytest.raises(nbtrack.UsageError, match="tracking_uri: expected an http:// or https:// URL"):
        nbtrack.init(project="local", dir=store_dir, settings={"tracking_uri": "file:///tmp/x"})


@pytest.mark.parametrize("fault", ["500", "hang"])
def test_a_failing_server_does_not_slow_log(server, store_dir, fault):
    proxy = FaultProxy(server.url)
    try:
        run = online(proxy.url, project=f"fault-{fault}", dir=store_dir)
        run.log({"x": 0.0})
        assert wait_for(lambda: run.sync_status["sent"] == 1)
        proxy.set(fault)
        run.log({"x": 1.0})  # something to send: the sync thread meets the bad server
        # wait until the sync thread is stuck on the bad server, then log
        if fault == "hang":
            assert wait_for(lambda: proxy.held >= 1)
        else:
            assert wait_for(lambda: proxy.errors_500 >= 1)
        seen_before = proxy.errors_500
        for i in range(2, 20_001):
            run.log({"x": float(i)})
        # counted, not timed: every call returned while the server was failing the sync
        assert run.rows_logged == 20_001
        if fault == "hang":
            assert proxy.held >= 1  # the same request is still hanging: log() never waited on it
        else:
            assert proxy.errors_500 >= seen_before
        run.flush()
        assert len(nbtrack.Api(store_dir).run(f"fault-{fault}/{run.id}").rows(["x"])) == 20_001
        proxy.set("pass")
        run.finish()
        remote = server.run_by_tag(f"fault-{fault}", run.id)
        assert points(server, remote["info"]["run_id"], "x") == [(i, float(i)) for i in range(20_001)]
        assert remote["info"]["status"] == "FINISHED"
    finally:
        proxy.close()


def test_server_killed_mid_run_then_restarted(tmp_path, store_dir):
    srv = MlflowServer(tmp_path / "dies").start()
    try:
        run = online(srv.url, project="outage", dir=store_dir, settings={"sync_timeout": 2})
        for i in range(500):
            run.log({"x": float(i)})
        assert wait_for(lambda: run.sync_status["sent"] == 500)
        srv.kill()
        for i in range(500, 1000):  # logging goes on while the server is gone
            run.log({"x": float(i)})
        run.finish()  # waits 2 s, then says what is left and how to send it
        assert run.sync_status["state"] == "unsent" and run.sync_status["pending"] == 500
        srv = MlflowServer(tmp_path / "dies", port=srv.port).start()  # same port, same database
        out = sync_cli("--dir", str(store_dir), "--tracking-uri", srv.url)
        assert out.returncode == 0, out.stderr
        assert f"outage/{run.id}: sent 500 rows" in out.stdout
        again = sync_cli("--dir", str(store_dir), "--tracking-uri", srv.url)
        assert f"outage/{run.id}: up to date" in again.stdout
        remote = srv.run_by_tag("outage", run.id)
        assert points(srv, remote["info"]["run_id"], "x") == [(i, float(i)) for i in range(1000)]
        assert remote["info"]["status"] == "FINISHED"
    finally:
        srv.stop()


def test_the_panel_shows_the_url_and_the_sync_state(server, store_dir):
    from test_panel import RecordingComm

    from nbtrack.jupyter.panel import RunPanel

    run = online(server.url, project="panel-sync", dir=store_dir)
    panel = RunPanel(run)
    panel.comm = RecordingComm()
    assert panel.url == run.url and panel.url.startswith(server.url)
    for i in range(300):
        run.log({"x": float(i)})
    assert wait_for(lambda: run.sync_status["sent"] == 300)
    panel.tick()
    assert panel.sync["state"] == "syncing" and panel.sync["sent"] == 300 and panel.sync["server"] == server.url
    run.finish()
    panel.finalize()
    assert panel.sync == {"server": server.url, "state": "synced", "sent": 300, "pending": 0, "error": None}
    sent_states = [u["sync"] for u in panel.comm.updates() if "sync" in u]
    assert sent_states and sent_states[-1]["state"] == "synced"  # the front end got it


def test_media_and_tensorboard_files_arrive_as_artifacts(server, store_dir, tmp_path):
    np = pytest.importorskip("numpy")
    tensorboardX = pytest.importorskip("tensorboardX")
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    run = online(
        server.url, project="media-online", dir=store_dir, sync_tensorboard=True, settings={"system_interval": 0}
    )
    writer = tensorboardX.SummaryWriter(logdir=str(tmp_path / "tb" / "online"))
    for i in range(5):
        writer.add_scalar("tb/loss", 1.0 / (i + 1), i)
        run.log({"img": nbtrack.Image(pixels), "h": nbtrack.Histogram([1, 2, 3])}, step=i)
    writer.close()
    run.finish()
    assert run.sync_status["state"] == "synced"
    remote = server.run_by_tag("media-online", run.id)
    rid, exp = remote["info"]["run_id"], remote["info"]["experiment_id"]
    assert [v for _, v in points(server, rid, "tb/loss")] == [1.0 / (i + 1) for i in range(5)]
    assert server.history(rid, "img") == [] and server.history(rid, "h") == []  # media are not metrics
    ref = nbtrack.Api(store_dir).run(f"media-online/{run.id}").rows()[0]["img"]
    files = server.artifacts(rid)
    assert f"nbtrack/{ref['path']}" in files  # stored once, though logged five times
    assert len([f for f in files if f.startswith("nbtrack/media/")]) == 1
    assert [f for f in files if f.startswith("nbtrack/tensorboard/online/") and "tfevents" in f]
    got = requests.get(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/{rid}/artifacts/nbtrack/{ref['path']}", timeout=30
    )
    assert got.content == ref.read_bytes()


MLFLOW_WRITES_PARAMS = r"""
import json, sys
import mlflow

uri, config = sys.argv[1], json.loads(sys.argv[2])
mlflow.set_tracking_uri(uri)
mlflow.set_experiment("params-by-mlflow")


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


with mlflow.start_run() as run:
    mlflow.log_params(flat(config))
print(json.dumps(mlflow.get_run(run.info.run_id).data.params))
"""


def test_params_are_what_mlflows_client_writes(server, store_dir):
    config = {
        "lr": 0.001,
        "tiny": 3.5e-7,
        "flag": True,
        "off": False,
        "nothing": None,
        "layers": [64, 128],
        "name": "adam",
        "opt": {"beta": 0.9, "eps": 1e-8, "sched": {"kind": "cos", "warmup": 10}},
        "empty": {},
        "mixed": [1, "a", None, 2.5],
        "big": 12345678901234567890,
    }
    run = online(server.url, project="params", dir=store_dir, config=config)
    run.finish()
    ours = {p["key"]: p["value"] for p in server.run_by_tag("params", run.id)["data"]["params"]}
    out = subprocess.run(
        [mlflow_python(), "-c", MLFLOW_WRITES_PARAMS, server.url, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    assert ours == theirs
    assert ours["flag"] == "True" and ours["nothing"] == "None" and ours["layers"] == "[64, 128]"


MLFLOW_READS_BACK = r"""
import json, os, sys

uri, rid, exp, out = sys.argv[1:5]
os.environ["MLFLOW_TRACKING_URI"] = uri  # load_table searches runs through the default client
from mlflow import MlflowClient

client = MlflowClient(uri)
images = {}
for f in client.list_artifacts(rid, "images"):
    # the image view's parse: <key, / as ~>+step+<n>+timestamp+<ms>+<id>[+compressed].<png|webp>
    name = f.path.split("/", 1)[1]
    stem, ext = name.rsplit(".", 1)
    key, step_word, step, ts_word, ts, *rest = stem.split("+")
    assert step_word == "step" and ts_word == "timestamp" and ext in ("png", "webp"), name
    kind = "compressed" if stem.endswith("compressed") else "file"
    images.setdefault(key.replace("~", "/") + "@" + step, {})[kind] = client.download_artifacts(rid, f.path, out)
tags = client.get_run(rid).data.tags
tables = json.loads(tags.get("mlflow.loggedArtifacts", "[]"))
loaded = {}
for t in tables:
    frame = client.load_table(exp, artifact_file=t["path"], run_ids=[rid])
    loaded[t["path"]] = frame.values.tolist()
json.dump({"images": images, "logged_images": tags.get("mlflow.loggedImages"), "tables": loaded,
           "summary_tags": {k: v for k, v in tags.items() if k.startswith("nbtrack.summary.")},
           "metrics": client.get_run(rid).data.metrics}, sys.stdout)
"""


def test_images_tables_and_text_in_mlflows_own_views(server, store_dir, tmp_path):
    np = pytest.importorskip("numpy")
    pixels = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    run = online(server.url, project="views", dir=store_dir)
    for step in range(5):
        row = {"loss": 1.0 / (step + 1), "phase": "warmup" if step < 2 else "train"}
        if step == 3:
            row["samples/pred"] = nbtrack.Image(pixels, caption="three")
        if step == 2:
            row["errors"] = nbtrack.Table(columns=["input", "label"], data=[["a", 1], ["b", 0]])
        run.log(row, step=step)
    remote_id = server.run_by_tag("views", run.id)["info"]["run_id"]
    # uploaded while the run goes on, not at finish()
    assert wait_for(lambda: any(f.startswith("images/") for f in server.artifacts(remote_id)), timeout=60)
    assert wait_for(lambda: "tables/errors/step_2.json" in server.artifacts(remote_id), timeout=60)
    run.summary["best_acc"] = 0.93  # set by hand, no history
    run.summary["verdict"] = "good enough"
    run.finish()
    remote = server.run_by_tag("views", run.id)
    out = subprocess.run(
        [
            mlflow_python(),
            "-c",
            MLFLOW_READS_BACK,
            server.url,
            remote_id,
            remote["info"]["experiment_id"],
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    ref = nbtrack.Api(store_dir).run(f"views/{run.id}").rows()[3]["samples/pred"]
    assert set(got["images"]) == {"samples/pred@3"}  # found by key and step, as MLflow's image view finds it
    image = got["images"]["samples/pred@3"]
    assert open(image["file"], "rb").read() == ref.read_bytes() and os.path.exists(image["compressed"])
    assert got["logged_images"] == "True"
    assert got["tables"]["tables/errors/step_2.json"] == [["a", 1], ["b", 0]]
    text = got["tables"]["text/phase.json"]
    assert [r[:2] for r in text] == [[0, "warmup"], [1, "warmup"], [2, "train"], [3, "train"], [4, "train"]]
    assert all(r[2].endswith("+00:00") and r[2][:4].isdigit() for r in text)  # ISO 8601 UTC
    assert got["tables"]["summary.json"] == [["verdict", "good enough"]]
    assert got["summary_tags"] == {"nbtrack.summary.verdict": "good enough"}
    assert got["metrics"]["best_acc"] == 0.93 and got["metrics"]["loss"] == 0.2


def test_artifacts_go_to_the_mlflow_run_and_links_to_the_model_registry(server, store_dir, tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights-" * 1000)
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1,2\n")
    run = online(server.url, project="arts", dir=store_dir)
    dataset = nbtrack.Artifact("data", "dataset")
    dataset.add_file(str(data))
    run.log_artifact(dataset)
    run.link_model(str(weights), registered_model_name="arts-classifier", aliases=["staging"])
    run.finish()
    assert run.sync_status["state"] == "synced"
    remote = server.run_by_tag("arts", run.id)["info"]
    files = server.artifacts(remote["run_id"])
    assert {"artifacts/data/v0/manifest.json", "artifacts/data/v0/files/data.csv"} <= set(files)
    assert "artifacts/model.pt/v0/files/model.pt" in files
    got = requests.get(
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{remote['experiment_id']}/{remote['run_id']}"
        "/artifacts/artifacts/model.pt/v0/files/model.pt",
        timeout=30,
    )
    assert got.content == weights.read_bytes()
    model = server.get("registered-models/get", name="arts-classifier")["registered_model"]
    assert [v["version"] for v in model["latest_versions"]] == ["1"]
    assert model["latest_versions"][0]["run_id"] == remote["run_id"]
    assert {"alias": "staging", "version": "1"} in model.get("aliases", [])
    run2 = online(server.url, project="arts", dir=store_dir)
    run2.finish()
    assert server.artifacts(server.run_by_tag("arts", run2.id)["info"]["run_id"], "artifacts") == []


def test_login_verify_asks_the_server(server, monkeypatch):
    monkeypatch.setenv("NBTRACK_TRACKING_URI", server.url)
    assert nbtrack.login(verify=True, key="any-token") is True
