"""nbtrack against its peers, one command: ``python bench/compare.py``.

Creates ``bench/.peers`` (a virtual environment with wandb, trackio and MLflow) on first
use, then runs the same workload (10 float scalars per ``log()`` call) through nbtrack,
wandb (offline), trackio (local), and MLflow (local SQLite store, synchronous and
asynchronous logging), interleaving the tools and repeating each.  Prints one table
with the medians and each peer's ratio to nbtrack.  MLflow's synchronous logging is run
for fewer steps (it costs milliseconds a call); the table says how many.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_VENV = HERE / ".peers"
PEER_PACKAGES = ["wandb", "trackio", "mlflow"]
TOOLS = ["nbtrack", "wandb", "trackio", "mlflow-sync", "mlflow-async"]


def peers_python() -> str:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PEERS_VENV} with {', '.join(PEER_PACKAGES)} (once; a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return str(python)


def versions(python: str) -> dict[str, str]:
    code = f"import importlib.metadata as m, json; print(json.dumps({{p: m.version(p) for p in {PEER_PACKAGES!r}}}))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def run_one(python: str, tool: str, steps: int, keys: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NBTRACK_QUIET": "1", "HOME": d}
        out = subprocess.run(
            [python, str(HERE / "workload.py"), tool, str(steps), str(keys), d],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
        )
    if out.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


COLUMNS = [
    ("import_s", "import s", "{:.2f}", 1),
    ("init_s", "init ms", "{:.1f}", 1000),
    ("mean_us", "log mean µs", "{:.1f}", 1),
    ("p50_us", "log p50 µs", "{:.1f}", 1),
    ("p99_us", "log p99 µs", "{:.1f}", 1),
    ("rows_per_s", "rows/s durable", "{:,.0f}", 1),
    ("finish_s", "finish ms", "{:,.0f}", 1000),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}", 1),
    ("disk_mb", "disk MB", "{:.2f}", 1),
]


def table(results: dict[str, list[dict]], steps: dict[str, int]) -> str:
    med = {tool: {k: statistics.median(r[k] for r in rs) for k, *_ in COLUMNS} for tool, rs in results.items()}
    base = med["nbtrack"]
    head = "| tool | steps | " + " | ".join(c[1] for c in COLUMNS) + " | × nbtrack (log p50 / init / import) |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for tool, m in med.items():
        cells = [fmt.format(m[k] * scale) for k, _, fmt, scale in COLUMNS]
        ratio = (
            "1"
            if tool == "nbtrack"
            else " / ".join(
                f"{m[k] / base[k]:.0f}×" if m[k] / base[k] >= 10 else f"{m[k] / base[k]:.1f}×"
                for k in ("p50_us", "init_s", "import_s")
            )
        )
        lines.append(f"| {tool} | {steps[tool]:,} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


# the read-side and many-process tasks of bench/reads.py: (task, size per tool, what it means)
READ_TASKS = {
    "history": "one key of a run of N steps read back, every point",
    "overlay": "3 keys of 100 runs of N steps each read back (a runs-table overlay)",
    "listing": "a project of N runs listed with a filter on a config value",
    "procs": "8 processes logging 10 floats a step, N steps each, one run each, into one store",
}
# MLflow writes a metric point in ~0.3 ms and trackio a run in ~10 ms: their sizes are
# smaller so the benchmark ends in minutes; the table says the size of each.
READ_SIZES = {
    "history": {"nbtrack": 1_000_000, "trackio": 1_000_000, "mlflow": 100_000},
    "overlay": {"nbtrack": 10_000, "trackio": 10_000, "mlflow": 1_000},
    "listing": {"nbtrack": 10_000, "trackio": 2_000, "mlflow": 2_000},
    "procs": {"nbtrack": 20_000, "trackio": 20_000, "mlflow-async": 1_000, "wandb": 2_000},
}


def run_reads(peers: str | None, tasks: list[str]) -> dict[str, dict[str, dict]]:
    found: dict[str, dict[str, dict]] = {}
    for task in tasks:
        found[task] = {}
        for tool, size in READ_SIZES[task].items():
            python = sys.executable if tool == "nbtrack" else peers
            if python is None:
                continue
            with tempfile.TemporaryDirectory() as d:
                env = {**os.environ, "PYTHONPATH": str(ROOT), "NBTRACK_QUIET": "1", "HOME": d}
                out = subprocess.run(
                    [python, str(HERE / "reads.py"), task, tool, f"{d}/data", str(size)],
                    capture_output=True, text=True, env=env, timeout=3600,
                )  # fmt: skip
            if out.returncode != 0:
                found[task][tool] = {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
            else:
                found[task][tool] = {"size": size, **json.loads(out.stdout.strip().splitlines()[-1])}
            print(f"{task} {tool}: done", file=sys.stderr, flush=True)
    return found


def reads_table(found: dict[str, dict[str, dict]]) -> str:
    lines = ["| task | tool | N | time | × nbtrack | notes |", "|---|---|---|---|---|---|"]
    for task, per_tool in found.items():
        key = {"history": "read_s", "overlay": "read_s", "listing": "list_s", "procs": "rows_per_s"}[task]
        base = per_tool.get("nbtrack", {}).get(key)
        for tool, r in per_tool.items():
            if "error" in r:
                lines.append(f"| {task} | {tool} | | failed | | {r['error'][:80]} |")
                continue
            value = r[key]
            if task == "procs":
                shown = f"{value:,.0f} rows/s"
                ratio = f"{base / value:.1f}× slower" if base and tool != "nbtrack" else "1"
                note = f"log() p50 {r['p50_us_median']:.1f} µs, worst p99 {r['p99_us_max']:.1f} µs"
                if r.get("rows_stored") is not None:
                    note += f"; {r['rows_stored']:,} of {r['procs'] * r['steps']:,} rows stored"
            else:
                shown = f"{value * 1000:,.0f} ms"
                ratio = (
                    "1"
                    if tool == "nbtrack" or not base
                    else f"{value / base:.0f}×"
                    if value / base >= 10
                    else f"{value / base:.1f}×"
                )
                count = r.get("points", r.get("found"))
                note = f"{count:,} {'points' if 'points' in r else 'runs found'}; again {r.get('read_again_s', r.get('list_again_s', 0)) * 1000:,.0f} ms; import {r['import_s'] * 1000:,.0f} ms; written in {r['write_s']:.0f} s"
            lines.append(f"| {task} | {tool} | {r['size']:,} | {shown} | {ratio} | {note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--sync-steps", type=int, default=500, help="steps for MLflow's synchronous logging")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--tools", nargs="+", default=TOOLS, choices=TOOLS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--reads", nargs="*", default=list(READ_TASKS), choices=list(READ_TASKS),
        help="the read-side and many-process tasks to run after the log() table (none: --reads with no names)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    peers = peers_python() if set(args.tools) - {"nbtrack"} else None
    steps = {t: args.sync_steps if t == "mlflow-sync" else args.steps for t in args.tools}
    results: dict[str, list[dict]] = {t: [] for t in args.tools}
    for repeat in range(args.repeats):  # interleaved: each round runs every tool once
        for tool in args.tools:
            python = sys.executable if tool == "nbtrack" else peers
            results[tool].append(run_one(python, tool, steps[tool], args.keys))
            print(f"round {repeat + 1}/{args.repeats} {tool}: done", file=sys.stderr, flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"{args.keys} float scalars per log() call; median of {args.repeats} interleaved runs; {machine}")
    if peers:
        print("peers: " + ", ".join(f"{k} {v}" for k, v in versions(peers).items()))
    print(table(results, steps))
    reads = run_reads(peers, args.reads) if args.reads else {}
    if reads:
        print()
        for task in reads:
            print(f"{task}: {READ_TASKS[task]}")
        print(reads_table(reads))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"steps": steps, "results": results, "reads": reads}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
