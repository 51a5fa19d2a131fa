"""`import nbtrack as wandb`: login, wandb's environment names, define_metric, files,
alerts, the run attributes real code reads, the Api's wandb methods, and a clear
UsageError for what nbtrack does not do."""

import datetime
import os
import subprocess
import sys

import pytest
from conftest import ROOT, read_run, run_python

import nbtrack


# ------------------------------------------------------------------ login
def test_login_offline_returns_true_without_reading_stdin(tmp_path):
    # stdin is a pipe nobody writes to: a prompt would hang until the timeout
    proc = subprocess.Popen(
        [sys.executable, "-c", "import nbtrack as wandb; print(wandb.login(), wandb.login(key='abc', relogin=True))"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("NBTRACK_", "WANDB_", "MLFLOW_"))},
            "PYTHONPATH": str(ROOT),
        },
    )
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, out.strip()) == (0, "True True"), err


def test_login_host_sets_the_server_and_key_its_token(monkeypatch):
    monkeypatch.delenv("NBTRACK_TRACKING_URI", raising=False)
    monkeypatch.delenv("NBTRACK_TRACKING_TOKEN", raising=False)
    assert nbtrack.login(host="http://127.0.0.1:5999", key="tok-1") is True
    assert os.environ["NBTRACK_TRACKING_URI"] == "http://127.0.0.1:5999"
    assert os.environ["NBTRACK_TRACKING_TOKEN"] == "tok-1"
    assert nbtrack.Settings().resolve().tracking_uri == "http://127.0.0.1:5999"
    monkeypatch.delenv("NBTRACK_TRACKING_URI")
    monkeypatch.delenv("NBTRACK_TRACKING_TOKEN")
    with pytest.raises(nbtrack.UsageError, match="host must be the http\\(s\\):// URL of an MLflow tracking server"):
        nbtrack.login(host="api.wandb.ai")
    with pytest.raises(nbtrack.UsageError, match="anonymous must be 'never', 'allow' or 'must'"):
        nbtrack.login(anonymous="sometimes")


def test_login_verify_fails_fast_when_the_server_is_unreachable(monkeypatch):
    from mlflow_server import free_port

    monkeypatch.setenv("NBTRACK_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(nbtrack.CommError, match="cannot reach"):
        nbtrack.login(verify=True, timeout=5)


# ------------------------------------------------------------------ WANDB_* names
@pytest.mark.parametrize(
    ("name", "value", "check"),
    [
        ("PROJECT", "wp", lambda r: r.project == "wp"),
        ("ENTITY", "team", lambda r: r.entity == "team"),
        ("NAME", "named", lambda r: r.name == "named"),
        ("NOTES", "some notes", lambda r: r.notes == "some notes"),
        ("TAGS", "a,b", lambda r: r.tags == ("a", "b")),
        ("RUN_GROUP", "grp", lambda r: r.group == "grp"),
        ("JOB_TYPE", "eval", lambda r: r.job_type == "eval"),
        ("RUN_ID", "fixedid1", lambda r: r.id == "fixedid1"),
        ("MODE", "disabled", lambda r: r.mode == "disabled"),
        ("DISABLED", "true", lambda r: r.mode == "disabled"),
        ("SILENT", "true", lambda r: r.settings.quiet is True),
        ("SAVE_CODE", "true", lambda r: r.saves_code is True),
    ],
)
def test_wandb_environment_names_are_read_when_nbtrack_names_are_unset(store_dir, monkeypatch, name, value, check):
    monkeypatch.delenv("NBTRACK_QUIET")
    monkeypatch.setenv(f"WANDB_{name}", value)
    run = nbtrack.init(dir=store_dir, project=None if name == "PROJECT" else "p")
    try:
        assert check(run), (name, run)
    finally:
        run.finish()


def test_the_nbtrack_name_wins_when_both_are_set(store_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_PROJECT", "from-wandb")
    monkeypatch.setenv("NBTRACK_PROJECT", "from-nbtrack")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("NBTRACK_DIR", str(store_dir))
    run = nbtrack.init()
    run.finish()
    assert run.project == "from-nbtrack" and run.store_dir == str(store_dir)
    assert not (tmp_path / "elsewhere").exists()


def test_wandb_config_paths_and_disable_git(store_dir, monkeypatch, tmp_path):
    (tmp_path / "defaults.yaml").write_text("lr:\n  value: 0.01\n  desc: step size\nlayers:\n  value: 3\n")
    monkeypatch.setenv("WANDB_CONFIG_PATHS", str(tmp_path / "defaults.yaml"))
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    subprocess.run(["git", "init", "-q"], check=True)
    run = nbtrack.init(project="p", dir=store_dir, config={"layers": 4})
    run.finish()
    record = read_run(store_dir, "p", run.id)
    assert record.config == {"lr": 0.01, "layers": 4}
    assert "git" not in record.metadata


LAUNCH = """
import nbtrack as wandb
run = wandb.init(project="launch", dir={dir!r})
print(run.id, run.resumed, run.step, flush=True)
for i in range(3):
    wandb.log({{"i": i}})
run.finish()
"""


def test_a_launch_script_with_wandb_run_id_and_resume_allow_resumes_one_run(store_dir):
    env = {"WANDB_RUN_ID": "launch01", "WANDB_RESUME": "allow"}
    first = run_python(LAUNCH.format(dir=str(store_dir)), env=env).stdout.split()
    second = run_python(LAUNCH.format(dir=str(store_dir)), env=env).stdout.split()
    assert first == ["launch01", "False", "0"] and second == ["launch01", "True", "3"]
    runs = nbtrack.Api(store_dir).runs("launch")
    assert [r.id for r in runs] == ["launch01"]
    assert [row["i"] for row in runs[0].rows()] == [0, 1, 2, 0, 1, 2] and runs[0].resume_count == 1


# ------------------------------------------------------------------ define_metric
def test_define_metric_summaries(store_dir):
    run = nbtrack.init(project="p", dir=store_dir)
    run.define_metric("loss", summary="min,max,mean,first,last")
    run.define_metric("acc", summary="best", goal="maximize")
    run.define_metric("noise", summary="none")
    run.define_metric("lr", summary="best")  # best without a goal is the lowest, as in wandb
    for loss, acc, lr in [(3.0, 0.2, 0.1), (1.0, 0.9, 0.01), (2.0, 0.5, 0.05)]:
        run.log({"loss": loss, "acc": acc, "noise": 7, "lr": lr, "plain": loss})
    run.log({"loss": float("nan")})  # NaN changes last only
    assert run.summary["loss"]["min"] == 1.0 and run.summary["loss"]["first"] == 3.0
    run.finish()
    summary = read_run(store_dir, "p", run.id).summary
    assert summary["loss"]["max"] == 3.0 and summary["loss"]["mean"] == 2.0 and summary["loss"]["first"] == 3.0
    assert summary["loss"]["min"] == 1.0
    assert str(summary["loss"]["last"]) == "nan"
    assert summary["acc"] == {"best": 0.9} and summary["lr"] == {"best": 0.01}
    assert "noise" not in summary and summary["plain"] == 2.0


def test_define_metric_globs_step_metric_and_step_sync(store_dir):
    run = nbtrack.init(project="p", dir=store_dir)
    run.define_metric("epoch", hidden=True)
    run.define_metric("val/*", step_metric="epoch", summary="max")
    run.define_metric("val/loss", step_metric="epoch", summary="min")  # the exact name wins over the glob
    for epoch in range(3):
        for _ in range(2):
            run.log({"train/loss": 1.0})
        run.log({"epoch": epoch})
        run.log({"val/acc": 0.5 + epoch / 10, "val/loss": 1.0 - epoch / 10})  # no epoch: step_sync adds it
    run.finish()
    record = read_run(store_dir, "p", run.id)
    val = [r for r in record.rows() if "val/acc" in r]
    assert [r["epoch"] for r in val] == [0, 1, 2]
    assert record.summary["val/acc"] == {"max": 0.7} and record.summary["val/loss"] == {"min": 0.8}
    definitions = {m.name: m for m in record.metric_definitions}
    assert definitions["val/*"].step_metric == "epoch" and definitions["epoch"].hidden
    frame = record.history(keys=["val/acc"], x_axis="epoch", pandas=False)
    assert [(r["epoch"], r["val/acc"]) for r in frame] == [(0, 0.5), (1, 0.6), (2, 0.7)]


def test_define_metric_survives_resume_and_bad_arguments_are_named(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, id="res")
    run.define_metric("loss", summary="min")
    run.log({"loss": 2.0})
    run.finish()
    again = nbtrack.init(project="p", dir=store_dir, id="res", resume="allow")
    again.log({"loss": 3.0})
    again.log({"loss": 1.5})
    assert again.summary["loss"] == {"min": 1.5}
    with pytest.raises(nbtrack.UsageError, match="summary 'median' is not one of min, max, mean"):
        again.define_metric("x", summary="median")
    with pytest.raises(nbtrack.UsageError, match="goal must be 'minimize' or 'maximize'"):
        again.define_metric("x", goal="up")
    with pytest.raises(nbtrack.UsageError, match="step_metric must be the name of a logged key"):
        again.define_metric("x", step_metric="a*")
    again.finish()


# ------------------------------------------------------------------ files
def test_save_now_live_end_restore_and_files(store_dir, tmp_path):
    (tmp_path / "work" / "ckpt").mkdir(parents=True, exist_ok=True)
    os.chdir(tmp_path / "work")
    open("ckpt/a.pt", "w").write("a1")
    open("ckpt/b.pt", "w").write("b1")
    open("notes.txt", "w").write("n1")
    open("final.json", "w").write("{}")
    run = nbtrack.init(project="p", dir=store_dir)
    saved = run.save("ckpt/*.pt", policy="now")
    assert sorted(os.path.relpath(p, run.dir) for p in saved) == ["files/ckpt/a.pt", "files/ckpt/b.pt"]
    run.save("notes.txt")  # live: copied now and again at finish
    run.save(str(tmp_path / "work" / "final.json"), policy="end")
    based = run.save(str(tmp_path / "work" / "ckpt" / "b.pt"), base_path=str(tmp_path), policy="now")
    assert os.path.relpath(based[0], run.dir) == os.path.join("files", "work", "ckpt", "b.pt")
    assert not os.path.exists(os.path.join(run.dir, "files", "final.json"))
    open("notes.txt", "w").write("n2")
    open("final.json", "w").write('{"done": true}')
    open("ckpt/a.pt", "w").write("a2")  # "now": not copied again
    run.finish()
    record = read_run(store_dir, "p", run.id)
    saved_files = {f.name: f for f in record.files() if not f.name.startswith(("media/", "code/"))}
    assert set(saved_files) >= {"ckpt/a.pt", "ckpt/b.pt", "notes.txt", "final.json"}
    assert saved_files["ckpt/a.pt"].download(str(tmp_path / "dl")).read() == "a1"
    assert record.file("notes.txt").download(str(tmp_path / "dl")).read() == "n2"
    with pytest.raises(nbtrack.UsageError, match="exists; pass replace=True or exist_ok=True"):
        record.file("notes.txt").download(str(tmp_path / "dl"))
    assert record.file("final.json").download(str(tmp_path / "dl")).read() == '{"done": true}'

    # restore, from another run and with no run at all
    other = nbtrack.init(project="p", dir=store_dir)
    assert other.restore("ckpt/b.pt", run_path=f"p/{run.id}").read() == "b1"
    assert os.path.exists(os.path.join(other.dir, "ckpt", "b.pt"))
    other.finish()
    os.environ["NBTRACK_DIR"] = str(store_dir)
    try:
        assert nbtrack.restore("notes.txt", run_path=f"p/{run.id}", root=str(tmp_path / "r")).read() == "n2"
    finally:
        del os.environ["NBTRACK_DIR"]
    with pytest.raises(nbtrack.UsageError, match="'nope.txt' was not saved by that run"):
        nbtrack.Api(store_dir)  # (reading does not change anything)
        from nbtrack.run_files import restore_file
        from nbtrack.store import LocalStore

        restore_file(LocalStore.open(store_dir), "nope.txt", f"p/{run.id}", False, str(tmp_path), None)


def test_log_code_logs_the_sources_as_a_code_artifact(store_dir, tmp_path):
    src = tmp_path / "proj"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("print('train')\n")
    (src / "pkg" / "model.py").write_text("X = 1\n")
    (src / "data.csv").write_text("1,2\n")
    (src / ".venv" / "lib").mkdir(parents=True)
    (src / ".venv" / "lib" / "site.py").write_text("skip\n")
    run = nbtrack.init(project="p", dir=store_dir)
    art = run.log_code(str(src))
    assert art.type == "code" and art.name == f"source-p-{run.id}:v0"
    assert sorted(e.path for e in art.files()) == ["pkg/model.py", "train.py"]
    only = run.log_code(str(src), name="csvs", include_fn=lambda path, root: path.endswith(".csv"))
    assert [e.path for e in only.files()] == ["data.csv"]
    run.finish()


# ------------------------------------------------------------------ alerts
def test_alerts_are_stored_rate_limited_and_printed_once(store_dir, capfd):
    run = nbtrack.init(project="p", dir=store_dir)
    run.log({"loss": 9.0})
    assert run.alert(title="Loss high", text="loss is 9", level=nbtrack.AlertLevel.WARN) is True
    assert run.alert(title="Loss high", text="loss is 9 again") is False  # within wait_duration (60 s)
    assert run.alert(title="Loss high", text="now", wait_duration=datetime.timedelta(0)) is True
    nbtrack.alert(title="Done", text="finished", level="ERROR")
    err = capfd.readouterr().err
    assert err.count("Loss high") == 2 and "loss is 9 again" not in err
    assert "nbtrack alert (WARN) from run" in err and "at step 1: Loss high: loss is 9" in err
    with pytest.raises(nbtrack.UsageError, match="level must be nbtrack.AlertLevel.INFO, WARN or ERROR"):
        run.alert("t", "x", level="LOUD")
    run.finish()
    alerts = read_run(store_dir, "p", run.id).alerts()
    assert [(a["level"], a["title"], a["text"], a["step"]) for a in alerts] == [
        ("WARN", "Loss high", "loss is 9", 1),
        ("INFO", "Loss high", "now", 1),
        ("ERROR", "Done", "finished", 1),
    ]
    assert all(isinstance(a["ts"], float) for a in alerts)


# ------------------------------------------------------------------ run attributes
def test_run_attributes_real_code_reads(store_dir):
    run = nbtrack.init(project="p", entity="team", dir=store_dir)
    run.log({"a": 1})
    assert (run.state, run.step, run.resumed, run.project, run.entity) == ("running", 1, False, "p", "team")
    assert (run.offline, run.disabled, run.sweep_id) == (True, False, None)
    assert os.path.isdir(run.dir) and run.start_time <= datetime.datetime.now().timestamp()
    assert run.get_url() is None and run.get_project_url() is None  # offline, as wandb
    assert run.display() is False  # no notebook front end here
    html = run.to_html()
    assert run.name in html and "<th>a</th><td>1</td>" in html and "<svg" in html  # the page: tables and charts
    run.summary.update({"best": 0.5})
    run.mark_preempting()
    run.finish()
    record = read_run(store_dir, "p", run.id)
    assert record.summary["best"] == 0.5 and "preempting" in record.metadata
    disabled = nbtrack.init(project="p", mode="disabled")
    assert (disabled.disabled, disabled.offline, disabled.get_url(), disabled.save("*")) == (True, False, None, [])
    disabled.finish()


# ------------------------------------------------------------------ Api
def _make_runs(store_dir):
    made = []
    for i, (lr, state) in enumerate([(0.1, 0), (0.01, 0), (0.001, 1)]):
        run = nbtrack.init(
            project="p",
            dir=store_dir,
            config={"lr": lr, "opt": {"name": "adam"}},
            tags=["base"] if i < 2 else ["exp"],
            name=f"r{i}",
        )
        for step in range(20):
            run.log({"loss": 1.0 / (step + 1) + i, "acc": step / 20})
        run.finish(exit_code=state)
        made.append(run)
    return made


def test_api_history_samples_keys_pandas_and_scan_history(store_dir):
    pd = pytest.importorskip("pandas")
    run = nbtrack.init(project="p", dir=store_dir)
    for step in range(1000):
        run.log({"loss": 1.0 / (step + 1), **({"val": step} if step % 10 == 0 else {})})
    run.finish()
    record = read_run(store_dir, "p", run.id)
    frame = record.history()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 500
    assert frame["_step"].iloc[0] == 0 and frame["_step"].iloc[-1] == 999
    few = record.history(samples=10, keys=["val"], pandas=False)
    assert [r["_step"] for r in few] == [0, 110, 220, 330, 440, 550, 660, 770, 880, 990]
    assert set(few[0]) == {"_step", "_timestamp", "_runtime", "val"}
    scanned = list(record.scan_history(keys=["val"], page_size=7))
    assert [r["val"] for r in scanned] == list(range(0, 1000, 10)) and set(scanned[0]) == {"_step", "val"}
    assert len(list(record.scan_history(page_size=64, min_step=100, max_step=200))) == 100
    system = record.history(stream="system", pandas=False)
    assert isinstance(system, list)


def test_api_runs_filters_and_order(store_dir):
    made = _make_runs(store_dir)
    api = nbtrack.Api(store_dir)

    def ids(**kw):
        return [r.id for r in api.runs("p", **kw)]

    assert ids(filters={"state": "failed"}) == [made[2].id]
    assert ids(filters={"config.lr": {"$lt": 0.05}}) == [made[2].id, made[1].id]
    assert ids(filters={"config.lr.value": 0.1}) == [made[0].id]  # wandb's .value form
    assert ids(filters={"config.opt.name": "adam", "tags": "base"}) == [made[1].id, made[0].id]
    assert ids(filters={"tags": {"$in": ["exp", "nope"]}}) == [made[2].id]
    assert ids(filters={"$or": [{"display_name": "r0"}, {"summary_metrics.loss": {"$gt": 2}}]}) == [
        made[2].id,
        made[0].id,
    ]
    assert ids(filters={"$and": [{"state": "finished"}, {"display_name": {"$regex": "^r[01]$"}}]}) == [
        made[1].id,
        made[0].id,
    ]
    assert ids(filters={"name": made[1].id}) == [made[1].id]  # "name" is the run id in wandb's filters
    assert ids(filters={"created_at": {"$gt": "2000-01-01T00:00:00"}}) == [m.id for m in reversed(made)]
    assert ids(order="+created_at") == [m.id for m in made]
    assert ids(order="+summary_metrics.loss") == [made[0].id, made[1].id, made[2].id]
    assert ids(order="-config.lr", limit=2) == [made[0].id, made[1].id]
    with pytest.raises(nbtrack.UsageError, match="unknown filter operator '\\$near'"):
        api.runs("p", filters={"state": {"$near": 1}})
    with pytest.raises(nbtrack.UsageError, match="cannot filter or order by 'colour'"):
        api.runs("p", filters={"colour": "red"})


def test_api_update_and_delete(store_dir):
    made = _make_runs(store_dir)
    api = nbtrack.Api(store_dir)
    record = api.run(f"team/p/runs/{made[0].id}")
    record.name = "renamed"
    record.notes = "checked"
    record.tags = ["base", "reviewed"]
    record.config["extra"] = 1
    record.summary["final_eval"] = 0.93
    record.update()
    again = nbtrack.Api(store_dir).run(f"p/{made[0].id}")
    assert (again.name, again.notes, again.tags) == ("renamed", "checked", ("base", "reviewed"))
    assert again.config["extra"] == 1 and again.summary["final_eval"] == 0.93 and again.summary["acc"] == 0.95
    folder = again.dir
    again.delete()
    assert not folder.exists()
    assert [r.id for r in nbtrack.Api(store_dir).runs("p")] == [made[2].id, made[1].id]
    live = nbtrack.init(project="p", dir=store_dir)
    with pytest.raises(nbtrack.UsageError, match="is running in process"):
        nbtrack.Api(store_dir).run(f"p/{live.id}").delete()
    live.finish()


def test_cli_runs_rm(store_dir):
    made = _make_runs(store_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBTRACK_")}
    env["PYTHONPATH"] = str(ROOT)

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "nbtrack", "runs", *args, "--dir", str(store_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    done = cli("rm", f"p/{made[1].id}", "p/missing")
    assert done.returncode == 1 and f"removed p/{made[1].id} (r1, finished, 20 steps)" in done.stdout
    assert "no run 'missing' in project 'p'" in done.stderr
    listed = cli()
    assert made[1].id not in listed.stdout and made[0].id in listed.stdout


# ------------------------------------------------------------------ what nbtrack does not do
def test_wandb_features_out_of_scope_raise_a_usage_error_naming_the_alternative():
    with pytest.raises(nbtrack.UsageError, match="wandb.Plotly is not in nbtrack: log the figure as nbtrack.Html"):
        nbtrack.Plotly(object())
    with pytest.raises(nbtrack.UsageError, match="wandb.plot_table is not in nbtrack: use the charts of nbtrack.plot"):
        nbtrack.plot_table("vega", nbtrack.Table(columns=["a"]), {})
    with pytest.raises(
        nbtrack.UsageError, match="wandb.integration.openai is not in nbtrack: nbtrack has no integration"
    ):
        nbtrack.integration.openai.autolog()
    with pytest.raises(nbtrack.UsageError, match="wandb.fastai is not in nbtrack"):
        nbtrack.fastai.WandbCallback()
    with pytest.raises(AttributeError):  # a name wandb never had is still an AttributeError
        nbtrack.no_such_name
    assert nbtrack.setup() is None and nbtrack.require("core") is None and nbtrack.sagemaker_auth() is None


def test_api_update_of_a_run_this_process_runs_goes_through_the_run(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, config={"dataset": "CelebA"})
    run.log({"loss": 1.0})
    record = nbtrack.Api(store_dir).run(f"{run.entity or 'me'}/p/{run.id}")
    record.config["bar"] = 32
    record.summary["best"] = 0.1
    record.tags = ["seen"]
    record.update()
    assert run.config["bar"] == 32 and run.summary["best"] == 0.1 and run.tags == ("seen",)
    again = nbtrack.Api(store_dir).run(f"p/{run.id}")
    assert again.config == {"dataset": "CelebA", "bar": 32} and again.summary["best"] == 0.1
    run.finish()
