"""Read-side and many-process workloads for one tool: ``reads.py TASK TOOL DIR [N]``.

Each task writes its data with the tool's fastest public way, then measures the part a
user waits on in a fresh process, and prints one JSON line.  Run by bench/compare.py
(nbtrack, trackio, MLflow) and bench/bench.py (nbtrack alone).

=========  ===============================================================================
task       what is timed
=========  ===============================================================================
history    reading one key of a run of N steps (default 1,000,000), every point
overlay    reading 3 keys of 100 runs of 10,000 steps each (a runs-table overlay)
listing    listing a project of N runs (default 10,000) with a filter on a config value
procs      8 processes logging 10 floats a step, one run each (group "dist"), into one store
=========  ===============================================================================
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

clock = time.perf_counter
HERE = os.path.dirname(os.path.abspath(__file__))


def out(**figures: object) -> None:
    print(json.dumps(figures), flush=True)


# ------------------------------------------------------------------ writing
def write_runs(tool: str, folder: str, runs: int, steps: int, keys: list[str], config_of=None) -> list[str]:
    """``runs`` runs of ``steps`` rows of ``keys``; returns the names to read them by."""
    names = []
    if tool == "nbtrack":
        import nbtrack

        for r in range(runs):
            config = config_of(r) if config_of else {}
            with nbtrack.init(
                project="bench", dir=folder, config=config, settings={"quiet": True, "system_interval": 0}
            ) as run:
                log = run.log
                for i in range(steps):
                    log({k: i * 0.5 + j for j, k in enumerate(keys)})
            names.append(run.id)
    elif tool == "trackio":
        from trackio.sqlite_storage import SQLiteStorage

        for r in range(runs):
            name = f"run-{r}"
            config = config_of(r) if config_of else None
            for start in range(0, max(steps, 1), 100_000):
                n = min(100_000, steps - start)
                rows = [{k: i * 0.5 + j for j, k in enumerate(keys)} for i in range(start, start + n)]
                SQLiteStorage.bulk_log("bench", name, rows, steps=list(range(start, start + n)), config=config)
            names.append(name)
    elif tool == "mlflow":
        import mlflow
        from mlflow.entities import Metric, Param

        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        client = mlflow.MlflowClient()
        experiment = (
            client.create_experiment("bench")
            if client.get_experiment_by_name("bench") is None
            else client.get_experiment_by_name("bench").experiment_id
        )
        for r in range(runs):
            run = client.create_run(experiment)
            params = [Param(k, str(v)) for k, v in (config_of(r) if config_of else {}).items()]
            now = int(time.time() * 1000)
            batch: list = []
            for i in range(steps):
                for j, k in enumerate(keys):
                    batch.append(Metric(k, i * 0.5 + j, now, i))
                if len(batch) >= 1000 - len(keys):
                    client.log_batch(run.info.run_id, metrics=batch)
                    batch = []
            client.log_batch(run.info.run_id, metrics=batch, params=params)
            client.set_terminated(run.info.run_id)
            names.append(run.info.run_id)
    else:
        raise SystemExit(f"unknown tool {tool!r}")
    return names


# ------------------------------------------------------------------ reading
def read_keys(tool: str, folder: str, names: list[str], keys: list[str]) -> int:
    """Read every point of ``keys`` of the runs ``names``; return how many were read."""
    if tool == "nbtrack":
        import nbtrack

        api = nbtrack.Api(folder)
        runs = nbtrack.run_record.RunList(r for r in api.runs("bench") if r.id in set(names))
        if len(runs) == 1:
            return sum(len(runs[0].series(k).values) for k in keys)
        found = runs.series(keys)
        return sum(len(s.values) for per_key in found.values() for s in per_key.values())
    if tool == "trackio":
        from trackio.sqlite_storage import SQLiteStorage

        return sum(len(SQLiteStorage.get_metric_values("bench", name, k)) for name in names for k in keys)
    if tool == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        client = mlflow.MlflowClient()
        return sum(len(client.get_metric_history(name, k)) for name in names for k in keys)
    raise SystemExit(f"unknown tool {tool!r}")


def listing(tool: str, folder: str) -> int:
    """The runs whose config has opt = "adam" (half of them)."""
    if tool == "nbtrack":
        import nbtrack

        return len(nbtrack.Api(folder).runs("bench", filters={"config.opt": "adam"}))
    if tool == "trackio":
        import trackio

        return sum(1 for run in trackio.Api().runs("bench") if (run.config or {}).get("opt") == "adam")
    if tool == "mlflow":
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        client = mlflow.MlflowClient()
        experiment = client.get_experiment_by_name("bench").experiment_id
        found, token = 0, None
        while True:
            page = client.search_runs([experiment], "params.opt = 'adam'", max_results=50_000, page_token=token)
            found += len(page)
            token = page.token
            if not token:
                return found
    raise SystemExit(f"unknown tool {tool!r}")


def timed_child(*args: str) -> dict:
    """Run this script again in a fresh process (the tool's import and open not counted
    in what it times, but reported)."""
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    task, tool, folder = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4].isdigit() else 0
    os.makedirs(folder, exist_ok=True)
    if tool == "trackio":
        os.environ["TRACKIO_DIR"] = folder
    if task == "history":
        steps = n or 1_000_000
        t0 = clock()
        names = write_runs(tool, folder, 1, steps, ["loss"])
        out(write_s=clock() - t0, **timed_child("read", tool, folder, json.dumps(names), "loss"))
    elif task == "overlay":
        t0 = clock()
        names = write_runs(tool, folder, 100, n or 10_000, ["loss", "acc", "lr"])
        out(write_s=clock() - t0, **timed_child("read", tool, folder, json.dumps(names), "loss,acc,lr"))
    elif task == "read":  # (child) read keys of runs: TOOL DIR NAMES KEYS
        names, keys = json.loads(sys.argv[4]), sys.argv[5].split(",")
        t0 = clock()
        _import(tool)
        t1 = clock()
        points = read_keys(tool, folder, names, keys)
        t2 = clock()
        points_again = read_keys(tool, folder, names, keys)
        t3 = clock()
        out(import_s=t1 - t0, read_s=t2 - t1, read_again_s=t3 - t2, points=points, points_again=points_again)
    elif task == "listing":
        runs = n or 10_000
        t0 = clock()
        write_runs(tool, folder, runs, 1, ["loss"], config_of=lambda r: {"lr": r / runs, "opt": ["adam", "sgd"][r % 2]})
        out(write_s=clock() - t0, **timed_child("list", tool, folder))
    elif task == "list":  # (child)
        t0 = clock()
        _import(tool)
        t1 = clock()
        found = listing(tool, folder)
        t2 = clock()
        again = listing(tool, folder)
        t3 = clock()
        out(import_s=t1 - t0, list_s=t2 - t1, list_again_s=t3 - t2, found=found, found_again=again)
    elif task == "procs":
        procs, steps = 8, n or 20_000
        if tool.startswith("mlflow"):  # the database made once, before 8 processes open it
            import mlflow

            mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
            mlflow.MlflowClient().search_experiments()
        t0 = clock()
        children = [
            subprocess.Popen(
                [sys.executable, os.path.join(HERE, "workload.py"), tool, str(steps), "10", folder, "dist"],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(procs)
        ]
        results = [json.loads(c.communicate()[0].strip().splitlines()[-1]) for c in children]
        elapsed = clock() - t0
        out(
            procs=procs, steps=steps, elapsed_s=elapsed, rows_per_s=procs * steps / elapsed,
            p99_us_max=max(r["p99_us"] for r in results), p50_us_median=sorted(r["p50_us"] for r in results)[procs // 2],
            rows_stored=_count_rows(tool, folder),
        )  # fmt: skip
    else:
        raise SystemExit(f"unknown task {task!r}")


def _import(tool: str) -> None:
    if tool == "nbtrack":
        import nbtrack.run_record  # noqa: F401
    elif tool == "trackio":
        import trackio.sqlite_storage  # noqa: F401
    elif tool == "mlflow":
        import mlflow  # noqa: F401


def _count_rows(tool: str, folder: str) -> int | None:
    """Rows in the store after the processes ended (None where the tool cannot say offline)."""
    if tool == "nbtrack":
        import nbtrack

        return sum(r.last_step + 1 for r in nbtrack.Api(folder).runs("bench"))
    if tool == "trackio":
        from trackio.sqlite_storage import SQLiteStorage

        return sum(len(SQLiteStorage.get_logs("bench", name)) for name in SQLiteStorage.get_runs("bench"))
    if tool.startswith("mlflow"):
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        client = mlflow.MlflowClient()
        runs = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
        return sum(len(client.get_metric_history(r.info.run_id, "metric_1")) for r in runs)
    return None


if __name__ == "__main__":
    main()
