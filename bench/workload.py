"""One benchmark workload for one tool, in a fresh process: ``workload.py TOOL STEPS KEYS DIR``.

Prints one JSON line: import and init time, log() cost per call on the caller's thread,
the time until everything logged is durable (the loop plus finish()), peak RSS and the
bytes the tool wrote.  Run by bench/compare.py in nbtrack's and in the peers' venvs.
"""

import json
import os
import resource
import sys
import time

tool, steps, keys, out_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
group = sys.argv[5] if len(sys.argv) > 5 else None  # several processes logging into one store (bench/reads.py)
os.makedirs(out_dir, exist_ok=True)
clock = time.perf_counter


def setup():
    """Import the tool and start a run; return (log, finish) for a row and its step."""
    if tool == "nbtrack":
        import nbtrack

        mark = clock()
        run = nbtrack.init(project="bench", dir=out_dir, group=group, settings={"quiet": True})
        return mark, (lambda row, i: run.log(row)), run.finish
    if tool == "wandb":
        os.environ.update(
            WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=out_dir, WANDB_CONSOLE="off", WANDB_DISABLE_GIT="true"
        )
        import wandb

        mark = clock()
        run = wandb.init(project="bench", dir=out_dir, mode="offline", group=group)
        return mark, (lambda row, i: run.log(row)), run.finish
    if tool == "trackio":
        os.environ["TRACKIO_DIR"] = out_dir
        import trackio

        mark = clock()
        trackio.init(project="bench", group=group) if group else trackio.init(project="bench")
        return mark, (lambda row, i: trackio.log(row)), trackio.finish
    if tool.startswith("mlflow"):
        import mlflow

        mark = clock()
        mlflow.set_tracking_uri(f"sqlite:///{out_dir}/mlflow.db")
        mlflow.start_run()
        synchronous = tool == "mlflow-sync"
        return mark, (lambda row, i: mlflow.log_metrics(row, step=i, synchronous=synchronous)), mlflow.end_run
    raise SystemExit(f"unknown tool {tool!r}")


t0 = clock()
mark, log, finish = setup()
t_import = mark - t0
t_init = clock() - mark
row = {f"metric_{k}": 0.1 * k + 1e-3 for k in range(keys)}
times = [0] * steps
tick = time.perf_counter_ns
start = clock()
for i in range(steps):
    row["metric_0"] = i * 0.5
    t = tick()
    log(row, i)
    times[i] = tick() - t
loop_end = clock()
finish()
done = clock()
disk = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(out_dir) for f in fs)
times.sort()
print(
    json.dumps(
        {
            "tool": tool,
            "steps": steps,
            "keys": keys,
            "import_s": t_import,
            "init_s": t_init,
            "mean_us": sum(times) / steps / 1000,
            "p50_us": times[steps // 2] / 1000,
            "p99_us": times[min(steps - 1, int(steps * 0.99))] / 1000,
            "finish_s": done - loop_end,
            "rows_per_s": steps / (done - start),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "disk_mb": disk / 1e6,
        }
    )
)
