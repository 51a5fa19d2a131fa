"""Self-contained pages in Chromium: a notebook saved with a plain Ctrl+S reopens showing
its runs (JupyterLab and Notebook 7), the same output without scripts shows SVG charts,
and ``nbtrack view`` pages work from file:// with no network."""

from __future__ import annotations

import time

import nbformat
import pytest
import requests
from browser import ARTIFACTS, TOKEN, JupyterServer
from conftest import page_state, wait_for
from test_panel_browser import browser, open_notebook, run_all, write_notebook  # noqa: F401  (browser: a fixture)

import nbtrack
from nbtrack import page as page_module
from nbtrack.cli import main

pytest.importorskip("playwright")
pytestmark = pytest.mark.e2e

SAVED_CELLS = [
    "%load_ext nbtrack\nimport nbtrack, numpy as np",
    "run = nbtrack.init(project='saved', dir={dir!r}, name='kept', settings={{'quiet': False}})\n"
    "for i in range(300):\n"
    "    run.log({{'train/loss': 1 / (i + 1), 'lr': 3.5e-4 * 0.995 ** i}})\n"
    "run.log({{'pic': nbtrack.Image(np.full((8, 8, 3), 200, dtype=np.uint8))}})\n"
    "run.finish()",
    "left = nbtrack.init(project='saved', dir={dir!r}, name='left-running', reinit='create_new',"
    " settings={{'quiet': False}})\n"
    "left.log({{'x': 1.0}})",
    "%track_runs --project saved --dir {dir}",
]

CHART = """(key) => {
  const c = document.querySelector(`.nbtrack-page[data-live] .nbt-chart[data-key="${key}"]`);
  return c && c.dataset.yticks ? {ticks: c.dataset.yticks.split('|'), range: c.dataset.yrange.split(',').map(Number),
    canvas: !!c.querySelector('canvas')} : null;
}"""


def _save_and_wait(page, path, needle):
    """Ctrl+S (widget state is not saved: JupyterLab's default), then wait for the file."""
    page.click(".jp-Notebook")
    page.keyboard.press("Control+s")
    assert wait_for(lambda: needle in path.read_text(), timeout=60), "the notebook was not saved"


def _shut_down_kernels(server):
    for s in requests.get(f"{server.base}/api/sessions", params={"token": TOKEN}, timeout=10).json():
        requests.delete(f"{server.base}/api/sessions/{s['id']}", params={"token": TOKEN}, timeout=30)


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_a_notebook_saved_with_ctrl_s_reopens_showing_its_runs(app, browser, tmp_path):  # noqa: F811
    root, store = tmp_path / "root", str(tmp_path / "s")
    write_notebook(root, "saved.ipynb", *(c.format(dir=store) for c in SAVED_CELLS))
    server = JupyterServer(app, root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "saved.ipynb")
        run_all(page)
        page.wait_for_selector(".nbt-runs-table tr[data-id]", timeout=90_000)
        page.wait_for_function(f"() => ({CHART})('lr')", timeout=60_000)
        live_lr = page.evaluate(CHART, "lr")
        _save_and_wait(page, root / "saved.ipynb", "nbtrack-offline")
        page.close()
        _shut_down_kernels(server)

        saved = nbformat.read(root / "saved.ipynb", as_version=4)
        widget_state = saved.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        assert not widget_state.get("state")  # nothing saved the widgets: the page must stand alone
        finished = [o for o in saved.cells[1].outputs if "nbtrack-page" in o.get("data", {}).get("text/html", "")]
        assert len(finished) == 1 and "application/vnd.jupyter.widget-view+json" not in finished[0]["data"]
        html = finished[0]["data"]["text/html"]
        assert len(html.encode()) < 150 * 1024  # what the notebook grows by for this finished run
        assert page_state(html)["run"]["state"] == "finished"

        # reopened: a fresh kernel, no widget models
        page, errors, _ = open_notebook(browser, server, "saved.ipynb")
        page.wait_for_function(f"() => ({CHART})('lr') && ({CHART})('train/loss')", timeout=60_000)
        panel = page.locator(".nbtrack-page[data-live] .nbt-panel").first
        assert panel.get_attribute("data-state") == "finished" and panel.get_attribute("data-step") == "301"
        lr, loss = page.evaluate(CHART, "lr"), page.evaluate(CHART, "train/loss")
        assert lr == live_lr and all("e-4" in t or "e-5" in t for t in lr["ticks"]), lr
        assert loss["range"][0] <= 1 / 300 and loss["range"][1] >= 1  # the data's range, not a default 0..1
        img = page.locator('.nbtrack-page[data-live] .nbt-media[data-key="pic"] img')
        assert img.get_attribute("src").startswith("data:image/png") and img.evaluate("i => i.naturalWidth") == 8
        assert "running" not in panel.locator(".nbt-badge").text_content()
        # the run left running and the runs table were live widgets: each says its kernel is
        # gone, the table as it was under its line; never "model not found" alone
        lines = page.locator(".nbtrack-offline")
        lines.first.wait_for(state="visible", timeout=30_000)
        texts = [lines.nth(i).text_content() for i in range(lines.count())]
        assert len(texts) == 2 and all("not connected" in t for t in texts), texts
        assert "left-running" in texts[0] and "nbtrack view saved/" in texts[0]
        assert "kept" in texts[1] and "left-running" in texts[1]  # the saved table's rows
        page.screenshot(path=str(ARTIFACTS / f"page_reopened_{app}.png"), full_page=True)
        assert errors == []
        page.close()
    finally:
        server.stop()

    # the same output where scripts do not run (GitHub, nbviewer, scripts off): SVG charts
    static = tmp_path / "static.html"
    static.write_text(f"<!doctype html><html><body>{html}</body></html>")
    context = browser.new_context(java_script_enabled=False)
    plain = context.new_page()
    plain.goto(static.as_uri())
    svg = plain.locator('img.nbt-svg[data-key="lr"]')
    assert svg.is_visible() and svg.evaluate("i => i.naturalWidth") == 300  # the SVG image decoded
    assert svg.get_attribute("alt").startswith("lr: ") and "to 3.5e-4," in svg.get_attribute("alt")
    assert plain.locator("img.nbt-svg").count() >= 2 and plain.locator("canvas").count() == 0
    assert plain.locator(".nbt-static-media img").get_attribute("src").startswith("data:image/png")
    plain.screenshot(path=str(ARTIFACTS / f"page_static_{app}.png"), full_page=True)
    context.close()


def test_nbtrack_view_pages_work_offline_from_file(browser, tmp_path, capsys):  # noqa: F811
    store = tmp_path / "s"
    made = []
    for lr in (1e-3, 3e-3, 1e-2):
        run = nbtrack.init(project="view", dir=store, config={"lr": lr}, reinit="create_new")
        for i in range(200):
            run.log({"loss": 1 / (1 + lr * 100 * i), "lr": lr * 0.99**i})
        run.finish()
        made.append(run)
    run_page, project_page = tmp_path / "run.html", tmp_path / "project.html"
    assert main(["view", f"view/{made[0].id}", "--dir", str(store), "-o", str(run_page), "--no-open"]) == 0
    assert main(["view", "--project", "view", "--dir", str(store), "-o", str(project_page), "--no-open"]) == 0
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    requested = []

    def route(r):
        requested.append(r.request.url)
        r.continue_() if r.request.url.startswith("file:") else r.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(run_page.as_uri())
    page.wait_for_function(f"() => ({CHART})('lr') && ({CHART})('loss')", timeout=30_000)
    panel = page.locator(".nbt-panel")
    assert panel.get_attribute("data-state") == "finished" and panel.get_attribute("data-points") == "200"
    ticks = page.evaluate(CHART, "lr")["ticks"]  # 1e-3 down to 1.3e-4
    assert "0" not in ticks and len(set(ticks)) == len(ticks) and any(t.endswith("e-4") for t in ticks), ticks
    # interactive: the log toggle redraws the chart on a log axis
    page.locator(".nbt-log input").check()
    page.wait_for_function("() => document.querySelector('.nbt-chart[data-key=lr]').dataset.log === 'true'")
    page.screenshot(path=str(ARTIFACTS / "view_run.png"), full_page=True)

    # a pinned section stays on top when the page (or another run of the project) opens again
    sections = "() => document.querySelector('.nbt-panel').dataset.sections"
    first = page.evaluate(sections).split(",")
    assert len(first) >= 2 and first[-1] == "system", first  # the metrics, then the sampled system ones
    page.locator(f".nbt-section[data-section='{first[-1]}'] .nbt-pin").click()
    page.goto(run_page.as_uri())
    page.wait_for_function(f"() => ({CHART})('lr')", timeout=30_000)
    assert page.evaluate(sections).split(",")[0] == first[-1]

    # x: relative time and wall time, from when each step was logged
    timed = nbtrack.init(project="view", dir=store, reinit="create_new")
    started = time.time()
    for i in range(20):
        timed.log({"loss": 1 / (i + 1)})
        time.sleep(0.02)  # the steps are logged over 0.4 s or more
    timed.finish()
    ended = time.time()
    timed_page = tmp_path / "timed.html"
    assert main(["view", f"view/{timed.id}", "--dir", str(store), "-o", str(timed_page), "--no-open"]) == 0
    page.goto(timed_page.as_uri())
    page.wait_for_function(f"() => ({CHART})('loss')", timeout=30_000)
    xrange = (
        "(m) => { const c = document.querySelector('.nbt-chart[data-key=loss]');"
        " return c.dataset.xtitle === m && c.dataset.xrange ? c.dataset.xrange.split(',').map(Number) : null; }"
    )
    assert page.evaluate(xrange, "step") == [0, 19]
    page.select_option(".nbt-xaxis", "relative")
    page.wait_for_function(xrange, arg="seconds")
    low, high = page.evaluate(xrange, "seconds")
    assert low <= 0.05 and 0.3 <= high <= ended - started + 0.5, (low, high)
    page.select_option(".nbt-xaxis", "wall")
    page.wait_for_function(xrange, arg="time")
    low, high = page.evaluate(xrange, "time")
    assert started - 1 <= low < high <= ended + 1, (low, high, started, ended)

    page.goto(project_page.as_uri())
    page.wait_for_selector(".nbt-runs-table tr[data-id]", timeout=30_000)
    for run in made[:2]:
        page.locator(f'.nbt-runs-table tr[data-id="{run.id}"] input').check()
    page.wait_for_function("() => document.querySelector('.nbt-runs').dataset.overlay === '2'", timeout=10_000)
    assert page.locator(".nbt-overlay canvas").count() >= 1
    # every metric compared, offline too: from the histories the page embeds
    page.wait_for_function("() => document.querySelector('.nbt-runs').dataset.compare === '2'", timeout=10_000)
    assert page.locator(".nbt-compare .nbt-chart[data-series='2'] canvas").count() == 2
    page.select_option(".nbt-metric", "lr")
    page.wait_for_function(  # lr's ticks (all below 0.01; loss's were up to 1)
        "() => { const t = (document.querySelector('.nbt-overlay').dataset.yticks || '').split('|');"
        " return t.length > 1 && t.every((v) => parseFloat(v) < 0.01); }",
        timeout=10_000,
    )
    page.screenshot(path=str(ARTIFACTS / "view_project.png"), full_page=True)

    # an image the page had no room for says so at its step, rather than a broken image
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    pics = nbtrack.init(project="view", dir=store, reinit="create_new")
    for i in range(3):
        pics.log({"pic": nbtrack.Image(np.full((4, 4, 3), 60 * i, dtype=np.uint8))})
    pics.finish()
    record = nbtrack.Api(store).run(f"view/{pics.id}")
    newest = record.rows(keys=["pic"])[-1]["pic"]["size"]
    small = tmp_path / "small.html"
    fragment = page_module.run_fragment(page_module.run_state(record), media_bytes=newest * 4 // 3 + 4)
    page_module.write(small, page_module.document("pics", fragment))
    page.goto(small.as_uri())
    card = page.locator('.nbt-media[data-key="pic"]')
    card.locator("img").wait_for(timeout=30_000)
    assert card.get_attribute("data-step") == "2" and card.locator("img").evaluate("i => i.naturalWidth") == 4
    card.locator(".nbt-media-slider").fill("0")
    page.wait_for_function("() => document.querySelector('.nbt-media[data-key=pic]').dataset.step === '0'")
    assert card.locator("img").count() == 0
    assert "image at step 0 not available here" in card.text_content()
    assert errors == []
    assert requested and all(u.startswith("file:") for u in requested), requested  # no network
    context.close()


def test_a_wide_runs_table_scrolls_inside_the_panel_with_names_in_view(browser, tmp_path):  # noqa: F811
    store = tmp_path / "s"
    for i in range(3):
        config = {f"param_{j}": i * 10 + j for j in range(6)}
        with nbtrack.init(project="wide", dir=store, config=config, reinit="create_new") as run:
            run.log({f"a_long_metric_name_{j}": i + j / 10 for j in range(6)})
    out = tmp_path / "wide.html"
    assert main(["view", "--project", "wide", "--dir", str(store), "-o", str(out), "--no-open"]) == 0
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(out.as_uri())
    page.wait_for_selector(".nbt-runs-table tr[data-id]", timeout=30_000)
    box = page.locator(".nbt-table-scroll")
    sizes = box.evaluate("b => ({scroll: b.scrollWidth, client: b.clientWidth})")
    columns = page.locator(".nbt-runs-table th").count()
    assert columns == 1 + 5 + 6 + 6 and sizes["scroll"] > sizes["client"], (columns, sizes)
    panel = page.locator(".nbt-runs").bounding_box()
    assert box.bounding_box()["x"] + box.bounding_box()["width"] <= panel["x"] + panel["width"] + 1  # inside the panel
    box.evaluate("b => { b.scrollLeft = b.scrollWidth; }")
    page.wait_for_function("() => document.querySelector('.nbt-table-scroll').scrollLeft > 0")
    last = page.locator(".nbt-runs-table th").last.bounding_box()
    inside = box.bounding_box()
    assert inside["x"] <= last["x"] and last["x"] + last["width"] <= inside["x"] + inside["width"] + 1  # reachable
    name = page.locator(".nbt-runs-table tr[data-id] td[data-col=name]").first.bounding_box()
    assert inside["x"] <= name["x"] < inside["x"] + 120  # the name stays in view while scrolled
    page.screenshot(path=str(ARTIFACTS / "runs_table_wide.png"))
    page.close()


def test_an_untrusted_notebook_in_jupyterlab_shows_the_charts_as_images(browser, tmp_path):  # noqa: F811
    """JupyterLab runs no script of an untrusted notebook and removes inline SVG from its
    HTML; the static drawing is images with data: URLs, which it keeps."""
    store = tmp_path / "s"
    run = nbtrack.init(project="untrusted", dir=store, settings={"quiet": True})
    for i in range(50):
        run.log({"lr": 3.5e-4 * 0.99**i, "loss": 1 / (i + 1)})
    run.finish()
    html = nbtrack.Api(store).run(f"untrusted/{run.id}").to_html()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("run")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": html, "text/plain": "run"})]
    nb.cells = [cell]
    root = tmp_path / "root"
    root.mkdir()
    nbformat.write(nb, root / "untrusted.ipynb")  # written here, never signed: untrusted
    server = JupyterServer("lab", root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "untrusted.ipynb")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-OutputArea-output img.nbt-svg')]"
            ".filter(i => i.complete && i.naturalWidth === 300).length >= 2",
            timeout=60_000,
        )
        assert page.locator(".nbtrack-page[data-live]").count() == 0  # its script did not run
        alts = page.evaluate(
            "() => [...document.querySelectorAll('.jp-OutputArea-output img.nbt-svg')].map(i => i.alt)"
        )
        (lr,) = [a for a in alts if a.startswith("lr: ")]  # the sanitizer drops data- attributes; alt stays
        assert "to 3.5e-4," in lr, alts
        page.screenshot(path=str(ARTIFACTS / "page_untrusted_lab.png"))
        assert errors == []
    finally:
        server.stop()
