"""Sync throughput to a team-style MLflow server (PostgreSQL + S3 via moto, 4 workers).

Eight processes, like the ranks of one distributed job, each log ``--rows`` rows of 10
floats and finish; the figure is the time from starting them until the last one's rows
are all on the server (nbtrack online: ``finish()`` returns once they are).  The same
work is then done by MLflow's own client in its buffered asynchronous mode
(``log_metrics(synchronous=False)`` with ``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS``),
whose ``end_run()`` returns once its queue is sent.  Both counts are read back from the
server.  Usage: ``python bench/team.py [--rows 5000] [--procs 8]``; prints one JSON line
last.  Needs what tests/team_server.py needs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import requests  # noqa: E402
from mlflow_server import API, mlflow_python  # noqa: E402
from team_server import TeamServer, missing  # noqa: E402

NBTRACK_RANK = """
import sys, nbtrack
store, uri, rank, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
run = nbtrack.init(project="bench-nbtrack", group="ranks", dir=store, mode="online",
                   settings={"tracking_uri": uri, "system_interval": 0, "sync_timeout": 600, "quiet": True})
row = {f"metric_{i}": 0.1 * i for i in range(10)}
for step in range(rows):
    row["metric_0"] = step * 0.5
    run.log(row)
run.finish()
"""

MLFLOW_RANK = """
import sys, mlflow
uri, rank, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mlflow.set_tracking_uri(uri)
mlflow.set_experiment("bench-mlflow")
row = {f"metric_{i}": 0.1 * i for i in range(10)}
with mlflow.start_run(run_name=f"rank-{rank}"):
    for step in range(rows):
        row["metric_0"] = step * 0.5
        mlflow.log_metrics(row, step=step, synchronous=False)
"""


def _ranks(args_of, procs: int, env: dict) -> float:
    t0 = time.perf_counter()
    children = [
        subprocess.Popen(args_of(rank), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in range(procs)
    ]
    try:
        for child in children:
            _out, err = child.communicate(timeout=1800)
            if child.returncode != 0:
                raise RuntimeError(err[-2000:])
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    return time.perf_counter() - t0


def _stored(url: str, experiment: str) -> int:
    """Points of metric_0 on the server over every run of the experiment."""
    s = requests.Session()
    exp = s.get(url + API + "experiments/get-by-name", params={"experiment_name": experiment}, timeout=60).json()
    runs = s.post(
        url + API + "runs/search", json={"experiment_ids": [exp["experiment"]["experiment_id"]]}, timeout=60
    ).json()["runs"]
    total = 0
    for run in runs:
        body = s.get(
            url + API + "metrics/get-history",
            params={"run_id": run["info"]["run_id"], "metric_key": "metric_0", "max_results": 1_000_000},
            timeout=300,
        ).json()
        total += len(body.get("metrics", []))
    return total


def measure(rows: int, procs: int) -> dict:
    server = TeamServer().start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NBTRACK_", "MLFLOW_"))}
        with tempfile.TemporaryDirectory() as store:
            ours = _ranks(
                lambda rank: [sys.executable, "-c", NBTRACK_RANK, store, server.url, str(rank), str(rows)],
                procs,
                {**env, "PYTHONPATH": str(ROOT)},
            )
        theirs = _ranks(
            lambda rank: [mlflow_python(), "-c", MLFLOW_RANK, server.url, str(rank), str(rows)],
            procs,
            {**env, "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1"},
        )
        return {
            "procs": procs,
            "rows_per_proc": rows,
            "nbtrack_s": ours,
            "nbtrack_stored": _stored(server.url, "bench-nbtrack"),
            "mlflow_s": theirs,
            "mlflow_stored": _stored(server.url, "bench-mlflow"),
        }
    finally:
        server.stop()


def report(r: dict) -> str:
    total = r["procs"] * r["rows_per_proc"]
    ours, theirs = total / r["nbtrack_s"], total / r["mlflow_s"]
    return "\n".join(
        [
            f"team server (PostgreSQL + S3, 4 workers), {r['procs']} processes x {r['rows_per_proc']:,} rows x 10 floats:",
            f"  nbtrack online      {r['nbtrack_s']:6.1f} s until all on the server  {ours:8,.0f} rows/s  "
            f"({r['nbtrack_stored']:,} of {total:,} rows stored)",
            f"  MLflow async, buffered {r['mlflow_s']:5.1f} s until end_run() returned {theirs:8,.0f} rows/s  "
            f"({r['mlflow_stored']:,} of {total:,} rows stored)  nbtrack {ours / theirs:.1f}x",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--procs", type=int, default=8)
    args = parser.parse_args(argv)
    reason = missing()
    if reason:
        print(f"team server: not measured ({reason})")
        return 0
    result = measure(args.rows, args.procs)
    print(report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
