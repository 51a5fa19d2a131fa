"""Online mode against a team-style MLflow deployment: PostgreSQL backend, S3 artifacts
(moto), 4 server workers, and 8 processes of one group syncing at once."""

from __future__ import annotations

import time

import pytest
from conftest import spawn_python
from mlflow_server import API
from team_server import TeamServer, missing

import nbtrack

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(missing() is not None, reason=f"team server: {missing()}")]

RANKS = 8
ROWS = 1500
KEYS = 10

RANK = """
import sys, numpy as np, nbtrack

store, uri, rank, rows, keys = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
run = nbtrack.init(project="team", group="ddp", name=f"rank-{rank}", dir=store, mode="online",
                   config={"rank": rank, "layers": [64, 128]},
                   settings={"tracking_uri": uri, "system_interval": 0, "sync_timeout": 300})
for step in range(rows):
    run.log({f"k{j}": rank * 1000.0 + step + j / 10 for j in range(keys)})
run.log({"sample": nbtrack.Image(np.full((4, 4, 3), rank, dtype=np.uint8))})
run.finish(quiet=True)
print(run.id, run.sync_status["state"])
"""


@pytest.fixture(scope="module")
def team():
    server = TeamServer().start()
    yield server
    server.stop()


def test_eight_ranks_sync_exactly_to_postgres_and_s3(team, store_dir):
    started = time.monotonic()
    procs = [
        spawn_python(RANK, argv=[str(store_dir), team.url, str(rank), str(ROWS), str(KEYS)]) for rank in range(RANKS)
    ]
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
            outs.append(out.split())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    elapsed = time.monotonic() - started
    assert [state for _id, state in outs] == ["synced"] * RANKS

    import requests

    s = requests.Session()
    exp = s.get(team.url + API + "experiments/get-by-name", params={"experiment_name": "team"}, timeout=30).json()
    found = s.post(
        team.url + API + "runs/search",
        json={"experiment_ids": [exp["experiment"]["experiment_id"]], "filter": "tags.`nbtrack.group` = 'ddp'"},
        timeout=30,
    ).json()["runs"]
    assert len(found) == RANKS
    by_rank = {}
    for remote in found:
        params = {p["key"]: p["value"] for p in remote["data"]["params"]}
        by_rank[int(params["rank"])] = remote
        assert remote["info"]["status"] == "FINISHED" and params["layers"] == "[64, 128]"
    assert sorted(by_rank) == list(range(RANKS))
    for rank, remote in by_rank.items():
        rid = remote["info"]["run_id"]
        for j in (0, KEYS - 1):
            body = s.get(
                team.url + API + "metrics/get-history",
                params={"run_id": rid, "metric_key": f"k{j}", "max_results": 25000},
                timeout=60,
            ).json()
            got = sorted((m["step"], m["value"]) for m in body["metrics"])
            assert got == [(step, rank * 1000.0 + step + j / 10) for step in range(ROWS)]  # every row once, exact
        # the image went through the server into S3, in MLflow's image layout
        tags = {t["key"]: t["value"] for t in remote["data"]["tags"]}
        assert tags["mlflow.loggedImages"] == "True"
        keys = team.s3_keys(f"artifacts/{remote['info']['experiment_id']}/{rid}/artifacts/images/")
        assert len(keys) == 2 and all(f"sample+step+{ROWS}+" in k for k in keys), keys
    # the local store holds the same runs
    local = nbtrack.Api(store_dir).runs("team", filters={"group": "ddp"})
    assert len(local) == RANKS and all(r.state == "finished" for r in local)
    rows = RANKS * ROWS
    print(f"\n{RANKS} processes, {rows} rows x {KEYS} floats to PostgreSQL + S3 (4 workers): {elapsed:.1f} s in all")
