"""The runs table in a real browser: ``python bench/browser.py [RUNS] [STORE]``.

Writes a project of RUNS runs (default 10,000; one step each, a config that differs per
run) into STORE (a new temporary folder when not given; an existing store is reused),
turns it into the runs-table page with ``nbtrack view --project bench --limit RUNS``, and
opens that file in headless Chromium (Debian's ``chromium`` through Playwright, as the
tests do; ``CHROMIUM`` overrides the path).  Prints one JSON line:

``build_s``
    ``nbtrack view`` writing the page (reading every run, Python side);
``first_rows_ms``
    from the start of navigation until the table holds its first rows (parsing and
    unpacking the page, building the model, the first draw): the median of 3 loads,
    each in a new page (``first_rows_each_ms``);
``draw_ms`` / ``sort_ms`` / ``filter_ms``
    the table's own draw (``data-draw-ms``): the first one, after a click on a column
    header, after typing a filter (one run's name);
``longest_task_ms`` / ``long_tasks``
    the main thread's longest task in any load, and the number over 50 ms in the last
    one, from load to the end;
``rows_shown`` / ``matching``
    rows in the DOM (the table pages at 100) and runs the page holds.

The notebook's ``%track_runs`` draws the same table (js/src/runs.js) from the kernel's
model instead of an embedded one.  Nothing here is a test: no figure is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

LOADS = 3
OBSERVE = """
window.__nbt = {longest: 0, long: 0, rows: null};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    window.__nbt.longest = Math.max(window.__nbt.longest, e.duration);
    if (e.duration > 50) window.__nbt.long += 1;
  }
}).observe({type: "longtask", buffered: true});
new MutationObserver(() => {
  const root = document.querySelector(".nbt-runs[data-rows]");
  if (root && window.__nbt.rows === null) window.__nbt.rows = performance.now();
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-rows"]});
"""


def chromium() -> str | None:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return found if os.path.exists(found) else None


def make_store(store: Path, runs: int) -> None:
    from reads import write_runs

    write_runs(
        "nbtrack", str(store), runs, 1, ["loss"],
        config_of=lambda r: {"lr": r / runs, "opt": ["adam", "sgd"][r % 2], "layers": r % 7},
    )  # fmt: skip


def measure(runs: int, store: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from nbtrack.cli import main as cli

    if not (store / "nbtrack.db").exists():
        make_store(store, runs)
    page_file = store / "runs-table.html"
    t0 = time.perf_counter()
    assert cli(["view", "--project", "bench", "--dir", str(store), "--limit", str(runs),
                "-o", str(page_file), "--no-open"]) == 0  # fmt: skip
    build_s = time.perf_counter() - t0
    draw = "() => Number(document.querySelector('.nbt-runs').dataset.drawMs)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        loads = []
        for _ in range(LOADS):  # each in a new page: the median of LOADS cold renders
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.add_init_script(OBSERVE)
            page.goto(page_file.as_uri())
            page.wait_for_function("() => window.__nbt.rows !== null", timeout=120_000)
            loads.append(page.evaluate("() => window.__nbt"))
            if len(loads) < LOADS:
                page.close()
        first_rows_ms = statistics.median(f["rows"] for f in loads)
        root = page.locator(".nbt-runs")
        first_draw = page.evaluate(draw)
        matching = int(root.get_attribute("data-matching") or 0)
        order = root.get_attribute("data-order")
        page.locator(".nbt-runs-table th", has_text="lr").first.click()
        page.wait_for_function("(o) => document.querySelector('.nbt-runs').dataset.order !== o", arg=order)
        sort_ms = page.evaluate(draw)
        name = page.locator(".nbt-runs-table tr[data-id] td[data-col=name]").first.text_content()
        page.locator(".nbt-runs .nbt-filter").fill(name)  # one run's name
        page.wait_for_function("(n) => Number(document.querySelector('.nbt-runs').dataset.matching) < n", arg=matching)
        filter_ms = page.evaluate(draw)
        figures = page.evaluate("() => window.__nbt")  # the last page's, with the sort and the filter
        rows_shown = page.locator(".nbt-runs-table tr[data-id]").count()
        browser.close()
    return {
        "runs": runs, "build_s": build_s, "page_kb": page_file.stat().st_size / 1024,
        "first_rows_ms": first_rows_ms, "draw_ms": first_draw, "sort_ms": sort_ms, "filter_ms": filter_ms,
        "first_rows_each_ms": [f["rows"] for f in loads],
        "longest_task_ms": max(f["longest"] for f in [*loads, figures]), "long_tasks": figures["long"],
        "rows_shown": rows_shown, "matching": matching,
    }  # fmt: skip


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    if chromium() is None:
        raise SystemExit("bench/browser.py: no chromium here (set CHROMIUM to its path)")
    if len(sys.argv) > 2:
        store = Path(sys.argv[2])
        store.mkdir(parents=True, exist_ok=True)
        print(json.dumps(measure(runs, store)))
        return
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(measure(runs, Path(d))))


if __name__ == "__main__":
    main()
