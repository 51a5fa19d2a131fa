"""nbtrack's benchmark: ``python bench/bench.py``.

Measures, on this machine, the figures nbtrack budgets for (the BUDGET table below):

* ``import nbtrack`` and ``init()`` in fresh processes (median of several);
* ``log()`` cost on the caller's thread for a dict of 10 floats (mean, p50, p99);
* end-to-end rows/s until durable (first ``log()`` to ``finish()`` returning, with
  every row then counted in the store);
* ``finish()`` time, and peak RSS after 10k and after 1M steps (flat memory);
* reading back (bench/reads.py), the panel's cost, and the runs table of many runs in
  headless Chromium (bench/browser.py, where Chromium and Playwright are installed).

Each figure is printed beside its budget and flagged when over.  Nothing here is a
test: the unit tests never assert on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOG_CHILD = """
import gc, json, resource, sys, tempfile, time
t0 = time.perf_counter()
import nbtrack
t_import = time.perf_counter() - t0
steps = int(sys.argv[1])
d = tempfile.mkdtemp()
t0 = time.perf_counter()
run = nbtrack.init(project="bench", dir=d, settings={"quiet": True})
t_init = time.perf_counter() - t0
panel = None
if len(sys.argv) > 2 and sys.argv[2] == "panel":
    # the live panel attached as in a notebook: its tap on every row and its pump thread
    from nbtrack.jupyter.panel import RunPanel
    panel = RunPanel(run)
row = {f"metric_{i}": 0.1 * i + 1e-3 for i in range(10)}
times = [0] * steps if steps <= 200_000 else None
clock = time.perf_counter_ns
log = run.log
gc.collect()
t_start = time.perf_counter()
if times is not None:
    for i in range(steps):
        row["metric_0"] = i * 0.5
        t = clock()
        log(row)
        times[i] = clock() - t
else:
    for i in range(steps):
        row["metric_0"] = i * 0.5
        log(row)
t_logged = time.perf_counter()
run.finish()
t_done = time.perf_counter()
if panel is not None:
    panel.finalize()  # as the notebook layer does at finish (a loop shorter than a tick left it to this)
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before reading back
t_read = time.perf_counter()
rows = len(nbtrack.Api(d).run(f"bench/{run.id}").rows(keys=["metric_0"]))
t_read = time.perf_counter() - t_read
t_series = time.perf_counter()
series = nbtrack.Api(d).run(f"bench/{run.id}").series("metric_1")
t_series = time.perf_counter() - t_series
t_sampled = time.perf_counter()
sampled = nbtrack.Api(d).run(f"bench/{run.id}").series("metric_2", samples=1000)
t_sampled = time.perf_counter() - t_sampled
assert len(series.values) == steps and len(sampled.values) == min(steps, 1000)
out = {
    "import_s": t_import, "init_s": t_init, "steps": steps, "rows_stored": rows,
    "loop_s": t_logged - t_start, "finish_s": t_done - t_logged, "end_to_end_s": t_done - t_start,
    "peak_rss_mb": peak_rss_mb, "read_one_key_s": t_read, "series_s": t_series, "sampled_s": t_sampled,
}
if panel is not None:
    out["panel_messages"] = panel.messages_sent
    out["panel_points"] = max((len(s) for s in panel._series.values()), default=0)
if times is not None:
    times.sort()
    out.update(mean_us=sum(times) / steps / 1000, p50_us=times[steps // 2] / 1000,
               p99_us=times[int(steps * 0.99)] / 1000)
print(json.dumps(out))
"""

PANEL_CHILD = """
import json, sys, tempfile, time
import numpy  # noqa: F401 -- loaded, as in a notebook that trains a model (the panel folds bursts with it)
import nbtrack
from nbtrack import page
keys, steps, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
d = tempfile.mkdtemp()
run = nbtrack.init(project="panel", dir=d, settings={"quiet": True, "system_interval": 0})
panel = None
if mode == "panel":  # as in a notebook: the panel taps every row, its pump folds them
    from nbtrack.jupyter.panel import RunPanel
    panel = RunPanel(run)
row = {f"group_{k % 5}/metric_{k}": 0.0 for k in range(keys)}
start = time.perf_counter()
for i in range(steps):
    for k, key in enumerate(row):
        row[key] = (i % 97) * 0.01 + k
    run.log(row)
loop = time.perf_counter() - start
t = time.perf_counter()
run.finish()
finish = time.perf_counter() - t
out = {"loop_s": loop, "finish_s": finish}
if panel is not None:
    t = time.perf_counter()
    panel.finalize()  # what the notebook layer does as the run ends
    html = page.run_fragment(panel.page_state())  # the output that replaces the widget
    out.update(final_s=time.perf_counter() - t, page_kb=len(html.encode()) / 1024,
               header_step=panel.step, chart_step=max(max(s.points()[0]) for s in panel._series.values()))
print(json.dumps(out))
"""

WIDE_CHILD = """
import json, sys, tempfile, time
import nbtrack
keys, steps = int(sys.argv[1]), int(sys.argv[2])
d = tempfile.mkdtemp()
run = nbtrack.init(project="wide", dir=d, settings={"quiet": True})
row = {f"layer_{k}/grad_norm": 0.5 + k for k in range(keys)}
times = []
start = time.perf_counter()
for i in range(steps):
    t = time.perf_counter_ns()
    run.log(row)
    times.append(time.perf_counter_ns() - t)
run.finish()
elapsed = time.perf_counter() - start
times.sort()
print(json.dumps({"p50_us": times[steps // 2] / 1000, "values_per_s": keys * steps / elapsed}))
"""

MANY_RUNS_CHILD = """
import json, sys, tempfile, time
import nbtrack
n = int(sys.argv[1])
d = tempfile.mkdtemp()
t0 = time.perf_counter()
for i in range(n):
    with nbtrack.init(project="many", dir=d, config={"lr": i / n, "seed": i}, settings={"quiet": True}) as run:
        for step in range(10):
            run.log({"loss": 1 / (step + 1 + i)})
created = time.perf_counter() - t0
t0 = time.perf_counter()
runs = nbtrack.Api(d).runs("many")
listed = time.perf_counter() - t0
from nbtrack.page import RunsTable
t0 = time.perf_counter()
html = RunsTable(runs, "many")._repr_html_()
table = time.perf_counter() - t0
assert len(runs) == n and html.count("<tr>") == n + 1
print(json.dumps({"create_s": created, "list_s": listed, "table_s": table}))
"""

SYSTEM_CHILD = """
import json, resource, sys, tempfile, time
import nbtrack
interval, seconds = float(sys.argv[1]), float(sys.argv[2])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
run = nbtrack.init(project="bench", dir=tempfile.mkdtemp(), settings={"quiet": True, "system_interval": interval})
time.sleep(0.5)  # past the sampler's set-up (psutil import, baselines)
c0, s0 = cpu(), run._sampler.samples if run._sampler else 0
time.sleep(seconds)  # an idle run: the writer's flushes and the sampler are all that run
c1, s1 = cpu(), run._sampler.samples if run._sampler else 0
thread = run._sampler.cpu_seconds / max(1, run._sampler.samples) if run._sampler else 0.0
run.finish()
print(json.dumps({"cpu_s": c1 - c0, "samples": s1 - s0, "thread_s_per_sample": thread}))
"""

MEDIA_CHILD = """
import json, sys, tempfile, time
import numpy as np
import nbtrack
n = int(sys.argv[1])
run = nbtrack.init(project="media", dir=tempfile.mkdtemp(), settings={"quiet": True, "system_interval": 0})
rng = np.random.default_rng(0)
images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(n)]
values = rng.normal(size=10_000)
t0 = time.perf_counter()
for i in range(n):
    run.log({"img": nbtrack.Image(images[i])})
image_s = (time.perf_counter() - t0) / n
t0 = time.perf_counter()
for i in range(n):
    run.log({"h": nbtrack.Histogram(values, num_bins=64)})
hist_s = (time.perf_counter() - t0) / n
run.finish()
out = {"image_ms": image_s * 1000, "histogram_ms": hist_s * 1000}
try:
    from tensorboardX import SummaryWriter
except ImportError:
    print(json.dumps(out)); sys.exit()
def add_scalar_us(sync):
    run = nbtrack.init(project="tb", dir=tempfile.mkdtemp(), sync_tensorboard=sync,
                       settings={"quiet": True, "system_interval": 0})
    w = SummaryWriter(logdir=tempfile.mkdtemp())
    t0 = time.perf_counter()
    for i in range(5 * n):
        w.add_scalar("loss", 0.5, i)
    took = (time.perf_counter() - t0) / (5 * n)
    w.close(); run.finish()
    return took * 1e6
out["tb_plain_us"] = min(add_scalar_us(False) for _ in range(3))
out["tb_synced_us"] = min(add_scalar_us(True) for _ in range(3))
print(json.dumps(out))
"""

SYNC_CHILD = """
import json, sys, tempfile, time
sys.path.insert(0, sys.argv[3])
from pathlib import Path
from mlflow_server import MlflowServer, mlflow_python
import nbtrack
from nbtrack.store.local import LocalStore
from nbtrack.sync import Client, RunUploader, Server
steps = int(sys.argv[1]); keys = int(sys.argv[2])
work = Path(tempfile.mkdtemp())
srv = MlflowServer(work / "mlflow").start()
try:
    row = {f"metric_{i}": 0.1 * i for i in range(keys)}
    # 1. nbtrack sync of an offline run: rows/s from the store to the server
    run = nbtrack.init(project="bench", dir=work, mode="offline", settings={"quiet": True, "system_interval": 0})
    for i in range(steps):
        row["metric_0"] = i * 0.5
        run.log(row)
    run.finish()
    store = LocalStore.open(work)
    client = Client(Server.resolve(srv.url))
    t0 = time.perf_counter()
    progress = RunUploader(store, run._sink.pk, client).push(final=True)
    upload_s = time.perf_counter() - t0
    # 2. an online run: log as fast as possible, then finish() returns once the server has all
    live = nbtrack.init(project="bench", dir=work, settings={"quiet": True, "system_interval": 0,
                                                             "tracking_uri": srv.url, "sync_timeout": 600})
    t0 = time.perf_counter()
    for i in range(steps):
        row["metric_0"] = i * 0.5
        live.log(row)
    logged = time.perf_counter() - t0
    live.finish()
    online_s = time.perf_counter() - t0
    # 3. MLflow's own client, asynchronous logging, to the same server: until end_run() returns
    #    (it waits for the queue), fewer rows, as it is slower
    import subprocess
    mlflow_rows = max(1, steps // 10)
    peer = subprocess.run([mlflow_python(), "-c", sys.argv[4], srv.url, str(mlflow_rows), str(keys)],
                          capture_output=True, text=True, check=True)
    mlflow_log_s, mlflow_s = map(float, peer.stdout.strip().splitlines()[-1].split())
    print(json.dumps({"rows": progress.rows_sent, "upload_s": upload_s, "requests": client.requests_sent,
                      "online_s": online_s, "online_log_s": logged, "online_sent": live.sync_status["sent"],
                      "mlflow_rows": mlflow_rows, "mlflow_log_s": mlflow_log_s, "mlflow_s": mlflow_s}))
finally:
    srv.stop()
"""

MLFLOW_ASYNC = """
import sys, time, mlflow
mlflow.set_tracking_uri(sys.argv[1])
n, keys = int(sys.argv[2]), int(sys.argv[3])
row = {f"metric_{i}": 0.1 * i for i in range(keys)}
t0 = time.perf_counter()
with mlflow.start_run():
    for i in range(n):
        row["metric_0"] = i * 0.5
        mlflow.log_metrics(row, step=i, synchronous=False)
    logged = time.perf_counter() - t0
print(logged, time.perf_counter() - t0)
"""

IMPORT_CHILD = """
import time
t0 = time.perf_counter()
import nbtrack
t1 = time.perf_counter()
import tempfile
d = tempfile.mkdtemp()
t2 = time.perf_counter()
run = nbtrack.init(project="bench", dir=d, settings={"quiet": True})
t3 = time.perf_counter()
run.finish()
print(t1 - t0, t3 - t2)
"""


def child(code: str, *args: str, root: Path = ROOT, bytecode: bool = False) -> str:
    env = {**os.environ, "PYTHONPATH": str(root), "NBTRACK_QUIET": "1"}
    if bytecode:  # as an installed package runs: compiled once, then loaded from __pycache__
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def reads_child(task: str, size: int) -> dict:
    """One task of bench/reads.py for nbtrack, in a fresh folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NBTRACK_QUIET": "1"}
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "reads.py"), task, "nbtrack", f"{d}/data", str(size)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def browser_child(runs: int) -> dict | None:
    """bench/browser.py (the runs table of ``runs`` runs in headless Chromium), or None
    where Chromium or Playwright is missing."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NBTRACK_QUIET": "1"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "browser.py"), str(runs)], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        print(
            f"bench/browser.py did not run: {out.stderr.strip().splitlines()[-1:] or out.returncode}", file=sys.stderr
        )
        return None
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(steps: int, repeats: int, many_runs: int = 10_000) -> dict:
    imports, inits = [], []
    child(IMPORT_CHILD, bytecode=True)  # writes the bytecode caches pip would have written at install
    for _ in range(max(5, repeats)):
        a, b = child(IMPORT_CHILD, bytecode=True).split()
        imports.append(float(a))
        inits.append(float(b))
    logs, panels = [], []
    for _ in range(repeats):  # interleaved: without and with the panel
        logs.append(json.loads(child(LOG_CHILD, str(steps))))
        panels.append(json.loads(child(LOG_CHILD, str(steps), "panel")))
    mem_small = json.loads(child(LOG_CHILD, "10000"))
    mem_large = json.loads(child(LOG_CHILD, str(1_000_000 if steps >= 100_000 else steps * 10)))

    plain, panelled = [], []
    for _ in range(repeats):  # 100 metrics x 50,000 steps in a tight loop, without and with the panel
        plain.append(json.loads(child(PANEL_CHILD, "100", "50000", "none")))
        panelled.append(json.loads(child(PANEL_CHILD, "100", "50000", "panel")))
    small_page = json.loads(child(PANEL_CHILD, "26", "300", "panel"))  # the notebook: 26 metrics x 300
    panel_cost = {
        "loop_s": statistics.median(r["loop_s"] for r in plain),
        "panel_loop_s": statistics.median(r["loop_s"] for r in panelled),
        "finish_ms": statistics.median(r["finish_s"] for r in plain) * 1000,
        "panel_finish_ms": statistics.median(r["finish_s"] + r["final_s"] for r in panelled) * 1000,
        "page_kb": statistics.median(r["page_kb"] for r in panelled),
        "small_page_kb": small_page["page_kb"],
        "header_lag": max(r["header_step"] - 1 - r["chart_step"] for r in panelled),
    }
    panel_cost["loop_extra_pct"] = (panel_cost["panel_loop_s"] / panel_cost["loop_s"] - 1) * 100

    wide = json.loads(child(WIDE_CHILD, "1000", "2000"))
    many = json.loads(child(MANY_RUNS_CHILD, "1000"))
    # the system sampler: an idle run sampling every 20 ms against one with sampling off
    sampled = json.loads(child(SYSTEM_CHILD, "0.02", "4"))
    unsampled = json.loads(child(SYSTEM_CHILD, "0", "4"))
    per_sample = max(0.0, sampled["cpu_s"] - unsampled["cpu_s"]) / max(1, sampled["samples"])

    try:
        media = json.loads(child(MEDIA_CHILD, "200"))
    except Exception:  # numpy missing
        media = None

    reads = {
        task: reads_child(task, size) for task, size in (("overlay", 10_000), ("listing", many_runs), ("procs", 20_000))
    }

    table = browser_child(many_runs)

    sync = None
    sys.path.insert(0, str(ROOT / "tests"))
    from mlflow_server import mlflow_python

    if mlflow_python() is not None:
        sync = json.loads(child(SYNC_CHILD, str(20_000), "10", str(ROOT / "tests"), MLFLOW_ASYNC))

    def med(key: str, runs: list = logs) -> float:
        return statistics.median(r[key] for r in runs)

    return {
        "import_ms": statistics.median(imports) * 1000,
        "init_ms": statistics.median(inits) * 1000,
        "log_mean_us": med("mean_us"),
        "log_p50_us": med("p50_us"),
        "log_p99_us": med("p99_us"),
        "rows_per_s": statistics.median(r["steps"] / r["end_to_end_s"] for r in logs),
        "finish_ms": med("finish_s") * 1000,
        "rows_stored_ok": all(r["rows_stored"] == r["steps"] for r in [*logs, mem_small, mem_large])
        and reads["procs"]["rows_stored"] == reads["procs"]["procs"] * reads["procs"]["steps"],
        "rss_small_mb": mem_small["peak_rss_mb"],
        "rss_large_mb": mem_large["peak_rss_mb"],
        "large_steps": mem_large["steps"],
        "large_rows_per_s": mem_large["steps"] / mem_large["end_to_end_s"],
        "panel_p50_us": med("p50_us", panels),
        "panel_p99_us": med("p99_us", panels),
        "panel_mean_us": med("mean_us", panels),
        "panel_messages": med("panel_messages", panels),
        "panel_points": max(r["panel_points"] for r in panels),
        "read_one_key_large_s": mem_large["read_one_key_s"],
        "series_large_ms": mem_large["series_s"] * 1000,
        "sampled_large_ms": mem_large["sampled_s"] * 1000,
        "overlay_ms": reads["overlay"]["read_s"] * 1000,
        "listing_ms": reads["listing"]["list_s"] * 1000,
        "listing_runs": many_runs,
        "listing_found": reads["listing"]["found"],
        "table": table,
        "table_first_rows_ms": table["first_rows_ms"] if table else None,
        "procs": reads["procs"],
        "wide_p50_us": wide["p50_us"],
        "wide_values_per_s": wide["values_per_s"],
        "many_create_s": many["create_s"],
        "many_list_s": many["list_s"],
        "many_table_s": many["table_s"],
        "system_sample_ms": per_sample * 1000,
        "system_thread_sample_ms": sampled["thread_s_per_sample"] * 1000,
        "system_core_pct_default": per_sample / 10.0 * 100,
        "sync": sync,
        "media": media,
        "panel_cost": panel_cost,
        "panel_loop_extra_pct": panel_cost["loop_extra_pct"],
        "panel_finish_ms": panel_cost["panel_finish_ms"],
        "steps": steps,
        "repeats": repeats,
    }


BUDGET = [
    # key, label, unit, budget, lower is better
    ("import_ms", "import nbtrack", "ms", 50, True),
    ("init_ms", "init() in a new folder", "ms", 2, True),
    ("log_mean_us", "log() mean", "us", None, True),
    ("log_p50_us", "log() p50", "us", 1.5, True),
    ("log_p99_us", "log() p99", "us", 5, True),
    ("rows_per_s", "end-to-end rows/s until durable", "rows/s", 100_000, False),
    ("finish_ms", "finish() after the loop", "ms", None, True),
    ("rss_small_mb", "peak RSS after 10k steps", "MB", None, True),
    ("rss_large_mb", "peak RSS after large run", "MB", None, True),
    ("panel_p50_us", "log() p50 with the panel attached", "us", 2.5, True),
    ("panel_p99_us", "log() p99 with the panel attached", "us", 10, True),
    ("panel_loop_extra_pct", "panel's cost, 100 keys x 50k steps", "%", 10, True),
    ("panel_finish_ms", "finish() + saved page, with panel", "ms", 300, True),
    ("system_core_pct_default", "system sampler, % of a core at 10 s", "%", 1, True),
    ("series_large_ms", "read 1 key of the large run (series)", "ms", 100, True),
    ("sampled_large_ms", "read 1,000 samples of it", "ms", None, True),
    ("overlay_ms", "overlay: 3 keys of 100 runs x 10k", "ms", 200, True),
    ("listing_ms", "Api.runs(filters=...), many runs", "ms", 100, True),
    ("table_first_rows_ms", "runs table in Chromium, many runs", "ms", 300, True),
]


def report(r: dict) -> str:
    lines = [
        f"nbtrack benchmark: {r['steps']:,} steps of 10 floats, median of {r['repeats']} runs; "
        f"large run {r['large_steps']:,} steps",
        f"{'figure':<34} {'value':>12}  {'budget':>12}  status",
    ]
    for key, label, unit, budget, lower in BUDGET:
        value = r[key]
        if value is None:
            lines.append(f"{label:<34} {'not measured':>12}  (bench/browser.py: no Chromium or Playwright here)")
            continue
        shown = f"{value:,.0f}" if value >= 1000 else f"{value:.2f}"
        if budget is None:
            status, limit = "", ""
        else:
            ok = value <= budget if lower else value >= budget
            status = "ok" if ok else "OVER BUDGET"
            limit = ("<= " if lower else ">= ") + (f"{budget:,}")
        lines.append(f"{label:<34} {shown + ' ' + unit:>12}  {limit:>12}  {status}")
    growth = r["rss_large_mb"] - r["rss_small_mb"]
    lines.append(
        f"{'memory growth 10k -> large':<34} {growth:>9.1f} MB  {'flat':>12}  "
        + ("ok" if growth < 50 else "OVER BUDGET")
    )
    lines.append(f"{'large run rows/s until durable':<34} {r['large_rows_per_s']:>9,.0f} r/s")
    lines.append(f"{'panel: messages sent / max points':<34} {r['panel_messages']:>9.0f} / {r['panel_points']}")
    lines.append(f"{'... as rows (a dict per step)':<34} {r['read_one_key_large_s']:>9.2f} s")
    c = r["panel_cost"]
    lines.append(
        f"{'100 keys x 50k steps, tight loop':<34} {c['loop_s']:.2f} s alone, {c['panel_loop_s']:.2f} s with the "
        f"panel (+{c['loop_extra_pct']:.0f} %); finish() {c['finish_ms']:.0f} ms alone, "
        f"{c['panel_finish_ms']:.0f} ms with the panel and its saved page ({c['page_kb']:.0f} KB); "
        f"header ahead of the charts by {c['header_lag']} steps at the end"
    )
    lines.append(f"{'saved page, 26 keys x 300 steps':<34} {c['small_page_kb']:>9.0f} KB")
    p = r["procs"]
    lines.append(
        f"{'8 processes, one store':<34} {p['rows_per_s']:>9,.0f} rows/s in all; log() p50 {p['p50_us_median']:.2f} us, "
        f"worst p99 {p['p99_us_max']:.1f} us; {p['rows_stored']:,} of {p['procs'] * p['steps']:,} rows stored"
    )
    lines.append(f"{'listing':<34} {r['listing_found']:,} of {r['listing_runs']:,} runs matched the filter")
    t = r.get("table")
    if t:
        lines.append(
            f"{'runs table page, ' + format(t['runs'], ',') + ' runs':<34} written in {t['build_s']:.2f} s "
            f"({t['page_kb']:,.0f} KB); first rows {t['first_rows_ms']:.0f} ms after navigation; draws "
            f"{t['draw_ms']} / {t['sort_ms']} / {t['filter_ms']} ms (first, sort, filter); longest task "
            f"{t['longest_task_ms']:.0f} ms"
        )
    lines.append(
        f"{'1,000 keys a step: log() p50':<34} {r['wide_p50_us']:>9.1f} us, "
        f"{r['wide_values_per_s']:,.0f} values/s until durable"
    )
    lines.append(
        f"{'1,000 runs in a project':<34} created in {r['many_create_s']:.1f} s; "
        f"Api.runs {r['many_list_s'] * 1000:.0f} ms; %track_runs table {r['many_table_s'] * 1000:.0f} ms"
    )
    lines.append(
        f"{'system metrics: one sample costs':<34} {r['system_sample_ms']:>9.2f} ms CPU "
        f"(sampler thread alone {r['system_thread_sample_ms']:.2f} ms)"
    )
    m = r.get("media")
    if m:
        lines.append(
            f"{'log() of media':<34} a 64x64 RGB Image {m['image_ms']:.2f} ms (PNG encode + file); "
            f"a Histogram of 10k values {m['histogram_ms']:.2f} ms"
        )
        if "tb_synced_us" in m:
            lines.append(
                f"{'tensorboardX add_scalar':<34} {m['tb_plain_us']:.1f} us alone, {m['tb_synced_us']:.1f} us "
                f"with sync_tensorboard (+{m['tb_synced_us'] - m['tb_plain_us']:.1f} us)"
            )
    if r.get("sync"):
        y = r["sync"]
        lines.append(
            f"{'sync to a local MLflow server':<34} nbtrack sync: {y['rows'] / y['upload_s']:,.0f} rows/s "
            f"({y['rows'] * 10 / y['upload_s']:,.0f} metric points/s, {y['requests']} requests for "
            f"{y['rows']:,} rows); online: {y['online_sent']:,} rows logged in {y['online_log_s']:.2f} s, "
            f"all on the server {y['online_s']:.1f} s after the first log()"
        )
        if "mlflow_s" in y:
            ours, theirs = y["online_sent"] / y["online_s"], y["mlflow_rows"] / y["mlflow_s"]
            lines.append(
                f"{'... MLflow async client, same server':<34} {y['mlflow_rows']:,} rows on the server in "
                f"{y['mlflow_s']:.1f} s ({theirs:,.0f} rows/s against nbtrack online {ours:,.0f} rows/s: "
                f"{ours / theirs:.1f}x)"
            )
    else:
        lines.append("sync to a local MLflow server: not measured (no Python with mlflow; see tests/mlflow_server.py)")
    lines.append(f"every row counted back from the store: {'yes' if r['rows_stored_ok'] else 'NO'}")
    return "\n".join(lines)


def compare(baseline: Path, steps: int, repeats: int) -> str:
    """The log() workload with this checkout and another one (an earlier commit, say),
    interleaved in one run, so that a change's effect on the hot path is seen apart from
    the machine's mood."""
    runs: dict[str, list[dict]] = {"baseline": [], "this checkout": []}
    for _ in range(repeats):
        runs["baseline"].append(json.loads(child(LOG_CHILD, str(steps), root=baseline)))
        runs["this checkout"].append(json.loads(child(LOG_CHILD, str(steps))))
    lines = [
        f"log() of 10 floats, {steps:,} steps, median of {repeats} interleaved runs (baseline: {baseline})",
        f"{'':<14} {'p50 us':>8} {'p99 us':>8} {'mean us':>8} {'rows/s':>10} {'finish ms':>10}",
    ]
    for name, rows in runs.items():
        med = {key: statistics.median(r[key] for r in rows) for key in ("p50_us", "p99_us", "mean_us", "finish_s")}
        rate = statistics.median(r["steps"] / r["end_to_end_s"] for r in rows)
        lines.append(
            f"{name:<14} {med['p50_us']:>8.2f} {med['p99_us']:>8.2f} {med['mean_us']:>8.2f} "
            f"{rate:>10,.0f} {med['finish_s'] * 1000:>10.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--many-runs", type=int, default=10_000, help="runs in the listing project")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="CHECKOUT",
        help="only compare log() with another checkout of nbtrack (git worktree add ...)",
    )
    parser.add_argument(
        "--team",
        action="store_true",
        help="also measure sync to a team-style MLflow server (PostgreSQL + S3, 4 workers; bench/team.py)",
    )
    args = parser.parse_args(argv)
    if args.baseline is not None:
        print(compare(args.baseline.resolve(), args.steps, args.repeats))
        return 0
    result = measure(args.steps, args.repeats, args.many_runs)
    print(report(result))
    if args.team:
        sys.path.insert(0, str(ROOT / "bench"))
        import team

        reason = team.missing()
        if reason:
            print(f"team server: not measured ({reason})")
        else:
            result["team"] = team.measure(5000, 8)
            print(team.report(result["team"]))
            result["rows_stored_ok"] &= result["team"]["nbtrack_stored"] == 8 * 5000
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if result["rows_stored_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
