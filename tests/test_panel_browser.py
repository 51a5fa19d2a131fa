"""The live panel in a real JupyterLab and Notebook 7, driven in Debian's Chromium."""

from __future__ import annotations

import json
import time

import nbformat
import pytest
from browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, JupyterServer

import nbtrack

pytest.importorskip("playwright")

PROBE = """() => {
  const prompts = [...document.querySelectorAll('.jp-Cell .jp-InputPrompt')].map(p => p.textContent.trim());
  const panel = document.querySelector('.nbt-panel');
  if (!panel) return {prompts, panel: false};
  return {
    prompts, panel: true, state: panel.dataset.state, step: Number(panel.dataset.step),
    points: Number(panel.dataset.points || 0), charts: Number(panel.dataset.charts || 0),
    canvases: panel.querySelectorAll('canvas').length,
    sections: [...panel.querySelectorAll('.nbt-section')].map(s => s.dataset.section),
    userCharts: panel.querySelectorAll('.nbt-section:not([data-section=system]) .nbt-chart').length,
    systemCharts: panel.querySelectorAll('.nbt-section[data-section=system] .nbt-chart').length,
    systemOpen: (panel.querySelector('.nbt-section[data-section=system]') || {}).open,
    text: panel.textContent,
  };
}"""

pytestmark = pytest.mark.e2e  # starts kernels, servers or a browser: deselect with -m "not e2e"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def write_notebook(root, name, *cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    root.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, root / name)


def _ours(error) -> bool:
    """Whether a page error can come from nbtrack: one raised only inside the Jupyter
    front end's own bundles (Notebook 7 raises one reading a settings schema when a
    notebook is reopened after its kernel was shut down) is not ours to assert on."""
    frames = [line for line in (error.stack or "").splitlines() if line.strip().startswith("at ") and "://" in line]
    return not frames or not all("/static/" in line for line in frames)


def open_notebook(browser, server, name):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors, dialogs = [], []
    page.on("pageerror", lambda e: errors.append(str(e)) if _ours(e) else None)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server.url(name), wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    server.wait_kernel_idle(page)
    return page, errors, dialogs


def run_all(page):
    page.click(".jp-Cell .jp-InputArea-editor")
    for _ in range(len(page.query_selector_all(".jp-Notebook .jp-Cell"))):
        page.keyboard.press("Shift+Enter")
        time.sleep(0.2)


def watch(page, until, timeout=90):
    samples = []
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = page.evaluate(PROBE)
        s["t"] = round(time.time() - t0, 2)
        samples.append(s)
        if until(s):
            return samples
        time.sleep(0.15)
    raise AssertionError(f"timed out; last samples {samples[-3:]}")


LIVE_CELL = """\
import time, nbtrack
run = nbtrack.init(project="live", dir={dir!r}, name="live-run", settings={{"quiet": False, "system_interval": 0.5}})
for i in range(40):
    time.sleep(0.15)
    run.log({{"train/loss": 1 / (i + 1), "train/acc": i / 40, "val/loss": 1.2 / (i + 1), "note": f"step {{i}}"}})
run.finish()
"""


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_panel_updates_live_and_ends_finished(app, browser, tmp_path):
    root = tmp_path / "root"
    store = tmp_path / "store"
    write_notebook(root, "live.ipynb", LIVE_CELL.format(dir=str(store)))
    server = JupyterServer(app, root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "live.ipynb")
        run_all(page)
        shots = {}

        def until(s):
            if s.get("panel") and s["points"] >= 20 and "mid" not in shots:
                shots["mid"] = ARTIFACTS / f"panel_{app}_live.png"
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(shots["mid"]))
            return s.get("state") == "finished" and not any("*" in p for p in s["prompts"])

        samples = watch(page, until)
        page.wait_for_timeout(400)  # the final state is drawn on the next animation frame
        page.screenshot(path=str(ARTIFACTS / f"panel_{app}_finished.png"))
        running = [s for s in samples if s.get("panel") and any("*" in p for p in s["prompts"])]
        steps = {s["step"] for s in running}
        points = {s["points"] for s in running}
        assert len(steps) >= 5 and len(points) >= 5, samples  # it grew while the cell ran
        assert min(points) < 40
        last = page.evaluate(PROBE)
        assert last["state"] == "finished" and last["step"] == 40 and last["points"] == 40
        assert last["userCharts"] == 3 and last["canvases"] >= 3  # note is text, not a chart
        # system metrics sampled every 0.5 s sit in their own section, closed until opened
        assert last["sections"] == ["train", "val", "system"]
        assert last["systemCharts"] >= 8 and last["systemOpen"] is False
        assert any(s.get("systemCharts") for s in running)  # they arrived while the cell ran
        assert "step 39" in last["text"] and "live-run" in last["text"]
        assert not [e for e in errors if "nbt" in e or "anywidget" in e], errors
        assert nbtrack.Api(store).runs("live")[0].state == "finished"
        page.close()
    finally:
        server.stop()


XSS = '<img src=x onerror="window.__xss=1;alert(1)">'


def test_user_text_is_never_html(browser, tmp_path):
    root = tmp_path / "root"
    cell = (
        f"import nbtrack\nrun = nbtrack.init(project='xss', dir={str(tmp_path / 's')!r}, name={XSS!r}, "
        f"tags=[{XSS!r}], config={{'html': {XSS!r}}}, settings={{'quiet': False}})\n"
        f"run.log({{{XSS!r}: 1.0, 'text': {XSS!r}}})\nrun.log({{{XSS!r}: 2.0}})\nrun.finish()"
    )
    write_notebook(root, "xss.ipynb", cell)
    server = JupyterServer("lab", root, tmp_path)
    try:
        page, _errors, dialogs = open_notebook(browser, server, "xss.ipynb")
        run_all(page)
        watch(page, lambda s: s.get("state") == "finished")
        page.wait_for_timeout(500)
        page.click(".nbt-summary-box > summary")
        page.click(".nbt-config-box > summary")
        page.screenshot(path=str(ARTIFACTS / "panel_xss.png"))
        assert dialogs == [] and page.evaluate("() => window.__xss") is None
        panel_text = page.evaluate("() => document.querySelector('.nbt-panel').textContent")
        assert panel_text.count(XSS) >= 3  # name, chart title, summary/values: shown as text
        assert page.evaluate("() => document.querySelectorAll('.nbt-panel img').length") == 0
        assert page.evaluate("() => document.querySelectorAll('.jp-OutputArea img[src=x]').length") == 0
    finally:
        server.stop()


def test_a_200k_step_run_stays_bounded_and_responsive(browser, tmp_path):
    root = tmp_path / "root"
    cell = (
        "import nbtrack, math\n"
        f"run = nbtrack.init(project='big', dir={str(tmp_path / 's')!r}, settings={{'quiet': False}})\n"
        "extra = {f'other/m{k}': 0.5 for k in range(6)}\n"
        "for i in range(200_000):\n"
        "    run.log({'loss': math.sin(i / 5000) + (9 if i == 123_457 else 0), 'acc': i / 200_000, **extra})\n"
        "run.finish()"
    )
    write_notebook(root, "big.ipynb", cell)
    server = JupyterServer("lab", root, tmp_path)
    try:
        page, _errors, _ = open_notebook(browser, server, "big.ipynb")
        run_all(page)
        samples = watch(
            page, lambda s: s.get("state") == "finished" and not any("*" in p for p in s["prompts"]), timeout=120
        )
        assert max(s.get("points", 0) for s in samples) <= 1000  # never more than the cap per series
        assert samples[-1]["step"] == 200_000
        page.fill(".nbt-filter", "acc")  # the page still answers input (Playwright's own timeout bounds it)
        visible = page.evaluate("() => [...document.querySelectorAll('.nbt-chart')].filter(c => !c.hidden).length")
        assert visible == 1
        assert page.evaluate(PROBE)["userCharts"] == 8
        page.fill(".nbt-filter", "")
        page.check(".nbt-log input[type=checkbox]")  # log scale: only for series that stay positive
        page.wait_for_function(
            "() => document.querySelector(\".nbt-chart[data-key='other/m0']\").dataset.log === 'true'"
        )
        logs = page.evaluate(
            "() => Object.fromEntries([...document.querySelectorAll('.nbt-chart')]"
            ".map(c => [c.dataset.key, c.dataset.log]))"
        )
        assert logs["other/m0"] == "true" and logs["loss"] == "false"  # sin() goes negative: stays linear
        page.fill(".nbt-smooth input[type=range]", "0.9")
        page.wait_for_function(
            "() => document.querySelector(\".nbt-chart[data-key='loss']\").dataset.smoothing === '0.9'"
        )
        page.screenshot(path=str(ARTIFACTS / "panel_200k.png"))
    finally:
        server.stop()


def test_dark_theme(browser, tmp_path):
    root = tmp_path / "root"
    write_notebook(root, "dark.ipynb", LIVE_CELL.format(dir=str(tmp_path / "s")).replace("range(40)", "range(10)"))
    server = JupyterServer("lab", root, tmp_path)
    server.set_theme("JupyterLab Dark")
    try:
        page, _errors, _ = open_notebook(browser, server, "dark.ipynb")
        run_all(page)
        watch(page, lambda s: s.get("state") == "finished")
        page.wait_for_timeout(500)
        colours = page.evaluate("""() => { const p = document.querySelector('.nbt-panel');
            const cs = getComputedStyle(p); return [cs.backgroundColor, cs.color]; }""")
        page.screenshot(path=str(ARTIFACTS / "panel_dark.png"))

        def luminance(css):
            r, g, b = [int(v) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
            return 0.2126 * r + 0.7152 * g + 0.0722 * b

        background, text = colours
        assert luminance(background) < 80 and luminance(text) > 150, colours  # follows the dark theme
    finally:
        server.stop()


RUNS_CELLS = (
    "import nbtrack\n"
    "for lr in (0.3, 0.1, 0.2):\n"
    "    with nbtrack.init(project='cmp', dir={dir!r}, name=f'lr-{{lr}}', tags=['sweep' if lr != 0.2 else 'extra'],\n"
    "                      config={{'lr': lr}}, settings={{'quiet': True}}) as run:\n"
    "        for i in range(50):\n"
    "            run.log({{'loss': lr * 10 / (i + 1), 'acc': (i + 1) / 50 * lr}})\n"
    "        run.summary['best'] = lr  # set by hand: no history",
    "%load_ext nbtrack\n%track_runs -p cmp --dir {dir}",
    # 250 runs made by a script: made in the notebook, each would show a live panel of its own
    "import subprocess, sys\n"
    "script = ('import nbtrack\\nfor i in range(250):\\n'\n"
    '          \'    with nbtrack.init(project="many", dir=%r, config={{"i": i}}, settings={{"quiet": True}}) as r:\\n\'\n'
    "          '        r.log({{\"loss\": 1 / (i + 1)}})\\n') % ({dir!r},)\n"
    "subprocess.run([sys.executable, '-c', script], check=True)",
    "%track_runs -p many --dir {dir} --limit 1000",
)


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_runs_table_sorts_filters_and_overlays(app, browser, tmp_path):
    root = tmp_path / "root"
    store = tmp_path / "s"
    write_notebook(root, "runs.ipynb", *(c.format(dir=str(store)) for c in RUNS_CELLS))
    server = JupyterServer(app, root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "runs.ipynb")
        run_all(page)
        page.wait_for_selector(".nbt-runs-table tr[data-id]", timeout=60_000)
        ids = {r.name: r.id for r in nbtrack.Api(store).runs("cmp")}

        def order():
            return page.evaluate("() => document.querySelector('.nbt-runs').dataset.order").split(",")

        assert order() == [ids["lr-0.2"], ids["lr-0.1"], ids["lr-0.3"]]  # newest first
        page.click(".nbt-runs-table th[data-col='config.lr']")
        assert order() == [ids["lr-0.1"], ids["lr-0.2"], ids["lr-0.3"]]  # ascending by lr
        page.click(".nbt-runs-table th[data-col='config.lr']")
        assert order() == [ids["lr-0.3"], ids["lr-0.2"], ids["lr-0.1"]]  # and descending
        page.click(".nbt-runs-table th[data-col='loss']")
        assert order() == [ids["lr-0.1"], ids["lr-0.2"], ids["lr-0.3"]]  # by last loss
        page.fill(".nbt-runs .nbt-filter", "sweep")
        assert sorted(order()) == sorted([ids["lr-0.1"], ids["lr-0.3"]])  # filtered by tag
        page.fill(".nbt-runs .nbt-filter", "")
        for name in ("lr-0.1", "lr-0.3"):
            page.check(f".nbt-runs-table tr[data-id='{ids[name]}'] input[type=checkbox]")
        page.wait_for_function("() => document.querySelector('.nbt-runs').dataset.overlay === '2'", timeout=30_000)
        legend = page.evaluate("() => document.querySelector('.nbt-overlay .u-legend').textContent")
        assert "lr-0.1" in legend and "lr-0.3" in legend
        # the ticked runs on every chart (acc and loss; "best" has no history), one colour a run everywhere
        page.wait_for_function("() => document.querySelector('.nbt-runs').dataset.compare === '2'", timeout=30_000)
        grid = page.evaluate(
            "() => [...document.querySelectorAll('.nbt-compare .nbt-chart')].map(c => ({key: c.dataset.key,"
            " series: c.dataset.series, colours: c.dataset.colours, legend: c.querySelector('.u-legend').textContent,"
            " titles: [c.dataset.xtitle, c.dataset.ytitle]}))"
        )
        assert [g["key"] for g in grid] == ["acc", "loss"] and all(g["series"] == "2" for g in grid)
        assert [g["titles"] for g in grid] == [["step", "acc"], ["step", "loss"]]  # axis titles
        assert grid[0]["colours"] == grid[1]["colours"] and len(set(grid[0]["colours"].split(","))) == 2
        assert all("lr-0.1" in g["legend"] and "lr-0.3" in g["legend"] for g in grid)
        first = page.locator(".nbt-runs").first
        first.locator(".nbt-log input").check()  # log scale in the overlay too
        page.wait_for_function("() => document.querySelector('.nbt-overlay').dataset.log === 'true'", timeout=10_000)
        labels = page.evaluate("() => document.querySelector('.nbt-overlay').dataset.yticks").split("|")
        assert len(labels) == len(set(labels)) and "0" not in labels, labels
        overlay = page.evaluate(
            "() => { const o = document.querySelector('.nbt-overlay'); return [o.dataset.xtitle, o.dataset.ytitle]; }"
        )
        metric = first.locator(".nbt-metric").input_value()
        assert overlay == ["step", f"{metric} (log)"], overlay
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / f"runs_table_{app}.png"))
        first.locator(".nbt-metric").select_option("best")  # a summary value with no history: said, not drawn empty
        page.wait_for_function(
            "() => (document.querySelector('.nbt-overlay .nbt-empty') || {}).textContent?.includes('No history of best')",
            timeout=30_000,
        )
        first.locator(".nbt-metric").select_option("loss")
        page.wait_for_function("() => document.querySelector('.nbt-runs').dataset.overlay === '2'", timeout=30_000)
        # a project of many runs: the first 100 rows are drawn, "show more" adds 100 at a time
        many = ".nbt-runs[data-matching='250']"
        page.wait_for_selector(many, timeout=120_000)
        assert page.evaluate(f'() => document.querySelector("{many}").dataset.rows') == "100"
        assert page.locator(f"{many} .nbt-runs-table tr[data-id]").count() == 100
        button = page.locator(f"{many} .nbt-more")
        assert button.text_content() == "show 100 more (150 not shown)"
        button.click()
        assert page.locator(f"{many} .nbt-runs-table tr[data-id]").count() == 200
        button.click()
        assert page.locator(f"{many} .nbt-runs-table tr[data-id]").count() == 250 and not button.is_visible()
        page.fill(f"{many} .nbt-filter", "finished")  # a new filter starts from the first page again
        assert page.locator(f"{many} .nbt-runs-table tr[data-id]").count() == 100
        print("runs table: drawn in", page.evaluate(f'() => document.querySelector("{many}").dataset.drawMs'), "ms")
        assert not [e for e in errors if "nbt" in e or "anywidget" in e], errors
    finally:
        server.stop()


def test_two_views_of_one_run_and_one_panel_per_create_new_run(browser, tmp_path):
    root = tmp_path / "root"
    d = str(tmp_path / "s")
    write_notebook(
        root,
        "views.ipynb",
        f"import time, nbtrack\nrun = nbtrack.init(project='v', dir={d!r}, name='shared', settings={{'quiet': False}})",
        "run",  # the same run shown again, as a cell's value
        f"other = nbtrack.init(project='v', dir={d!r}, name='second', reinit='create_new', settings={{'quiet': False}})\n"
        "for i in range(30):\n    time.sleep(0.1)\n    run.log({'a': i})\n    other.log({'b': -i})\n"
        "run.finish(); other.finish()",
    )
    server = JupyterServer("lab", root, tmp_path)
    try:
        page, _errors, _ = open_notebook(browser, server, "views.ipynb")
        run_all(page)
        probe = """() => [...document.querySelectorAll('.nbt-panel')].map(p => [
            p.querySelector('.nbt-name').textContent, p.dataset.state, Number(p.dataset.step)])"""
        deadline = time.time() + 90
        while time.time() < deadline:
            panels = page.evaluate(probe)
            if len(panels) == 3 and all(p[1] == "finished" for p in panels):
                break
            time.sleep(0.2)
        assert sorted(panels) == [["second", "finished", 30], ["shared", "finished", 30], ["shared", "finished", 30]]
        page.screenshot(path=str(ARTIFACTS / "panel_views.png"))
    finally:
        server.stop()


MEDIA_CELL = """\
import time, numpy as np, nbtrack
from moviepy.video.io.ImageSequenceClip import ImageSequenceClip

ImageSequenceClip([np.full((64, 96, 3), 20 * k, dtype=np.uint8) for k in range(10)], fps=10).write_videofile(
    "clip.mp4", logger=None)  # an H.264 MP4, as gymnasium's RecordVideo writes them
run = nbtrack.init(project="media", dir={dir!r}, settings={{"system_interval": 0, "quiet": False}})
run.log({{"rollout": nbtrack.Video("clip.mp4"),
         "anim": nbtrack.Video(np.zeros((4, 3, 10, 14), dtype=np.uint8) + 90, fps=8)}}, commit=False)
for i in range(12):
    time.sleep(0.25)
    img = np.zeros((16, 24, 3), dtype=np.uint8); img[:, : 2 * i + 1] = (250, 20, 20)
    run.log({{"loss": 1 / (i + 1), "val/pred": nbtrack.Image(img, caption=f"epoch {{i}}"),
             "weights": nbtrack.Histogram(np.random.RandomState(i).normal(i, 1, 500), num_bins=16),
             "preds": nbtrack.Table(columns=["i", "label"], data=[[i, "cat"], [i + 1, "dog"]])}})
run.finish()
"""

MEDIA_PROBE = """() => {
  const card = (k) => document.querySelector(`.nbt-media[data-key='${k}']`);
  const img = card('val/pred') && card('val/pred').querySelector('img');
  const hist = card('weights');
  const table = card('preds');
  return {
    state: (document.querySelector('.nbt-panel') || {dataset: {}}).dataset.state,
    imgStep: card('val/pred') ? Number(card('val/pred').dataset.step) : null,
    imgCount: card('val/pred') ? Number(card('val/pred').dataset.count) : 0,
    loaded: !!(img && img.complete && img.naturalWidth === 24),
    src: img ? img.src.slice(0, 22) : null,
    caption: img ? card('val/pred').querySelector('figcaption').textContent : null,
    bars: hist ? hist.querySelectorAll('svg rect').length : 0,
    tableCells: table ? [...table.querySelectorAll('td')].map(td => td.textContent) : [],
    section: card('val/pred') ? card('val/pred').closest('.nbt-section').dataset.section : null,
    videoWidth: card('rollout') && card('rollout').querySelector('video') ? card('rollout').querySelector('video').videoWidth : 0,
    gifWidth: card('anim') && card('anim').querySelector('img') ? card('anim').querySelector('img').naturalWidth : 0,
  };
}"""


def test_media_show_live_with_a_step_slider(browser, tmp_path):
    root = tmp_path / "root"
    write_notebook(root, "media.ipynb", MEDIA_CELL.format(dir=str(tmp_path / "s")))
    server = JupyterServer("lab", root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "media.ipynb")
        run_all(page)
        live = []
        t0 = time.time()
        while time.time() - t0 < 90:
            s = page.evaluate(MEDIA_PROBE)
            if s["state"] == "running" and s["loaded"]:
                live.append(s)
            if s["state"] == "finished":
                break
            time.sleep(0.15)
        assert len({s["imgStep"] for s in live}) >= 3, (live, s)  # the latest image followed the run
        assert all(s["src"].startswith("blob:") for s in live)  # bytes pushed by the kernel
        page.wait_for_timeout(500)
        s = page.evaluate(MEDIA_PROBE)
        assert s["imgStep"] == 11 and s["imgCount"] == 12 and s["caption"] == "epoch 11"
        assert s["section"] == "val" and s["bars"] == 16
        assert s["tableCells"] == ["11", "cat", "12", "dog"]
        assert s["videoWidth"] == 96 and s["gifWidth"] == 14  # an MP4 in <video>, a GIF from frames in <img>
        page.screenshot(path=str(ARTIFACTS / "panel_media_finished.png"))
        # back to step 3 with the slider: that step's image and caption
        page.fill(".nbt-media[data-key='val/pred'] .nbt-media-slider", "3")
        page.wait_for_function("() => document.querySelector(\".nbt-media[data-key='val/pred']\").dataset.step === '3'")
        page.wait_for_function(
            "() => { const i = document.querySelector(\".nbt-media[data-key='val/pred'] img\");"
            " return i.complete && i.naturalWidth === 24; }"
        )
        red = page.evaluate("""() => {
          const img = document.querySelector(".nbt-media[data-key='val/pred'] img");
          const c = document.createElement('canvas'); c.width = 24; c.height = 16;
          const g = c.getContext('2d'); g.drawImage(img, 0, 0);
          const px = g.getImageData(0, 8, 24, 1).data;
          let n = 0; for (let x = 0; x < 24; x++) n += px[4 * x] > 200 && px[4 * x + 1] < 60 ? 1 : 0;
          return n;
        }""")
        assert red == 7  # step 3 drew 2 * 3 + 1 red columns
        assert page.evaluate(MEDIA_PROBE)["caption"] == "epoch 3"
        page.screenshot(path=str(ARTIFACTS / "panel_media_slider.png"))
        assert not [e for e in errors if "nbt" in e or "anywidget" in e], errors
    finally:
        server.stop()


DROPIN_CELL = """\
import numpy as np, nbtrack as wandb
run = wandb.init(project="dropin", dir={dir!r}, settings={{"quiet": False, "system_interval": 0}})
run.define_metric("epoch", hidden=True)
run.define_metric("val/*", step_metric="epoch")
for epoch in range(3):
    run.log({{"epoch": epoch * 5}})
    run.log({{"val/acc": epoch / 3}})
mask = np.zeros((8, 8), dtype=int)
mask[2:4, 2:5] = 1
boxes = {{"truth": {{"box_data": [{{"position": {{"minX": 0.1, "maxX": 0.5, "minY": 0.1, "maxY": 0.5}}, "class_id": 1}},
                                  {{"position": {{"middle": [4, 4], "width": 2, "height": 2}}, "domain": "pixel", "class_id": 2}}]}}}}
script = "<p id=p>hello</p><script>document.body.dataset.ran='1';try{{parent.document.title='pwned';parent.__html=1}}catch(e){{document.body.dataset.blocked='1'}}</script>"
y = np.array([0, 0, 1, 1, 2, 2]); probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.05
table = wandb.Table(columns=["k", "v"], data=[["a", 3], ["b", 5], ["c", 1]])
run.log({{
    "seg": wandb.Image(np.full((8, 8, 3), 90, dtype=np.uint8), masks={{"pred": {{"mask_data": mask}}}}, boxes=boxes),
    "page": wandb.Html(script),
    "roc": wandb.plot.roc_curve(y, probs, labels=["a", "b", "c"]),
    "cm": wandb.plot.confusion_matrix(probs=probs, y_true=y, class_names=["a", "b", "c"]),
    "bars": wandb.plot.bar(table, "k", "v"),
    "tone": wandb.Audio(np.sin(np.linspace(0, 400, 4000)), sample_rate=4000),
    "cloud": wandb.Object3D(np.random.default_rng(0).normal(size=(30, 3))),
}})
run.alert("Loss spike", "loss jumped to 9", level=wandb.AlertLevel.WARN)
run.finish()
"""

DROPIN_PROBE = """() => {
  const item = (k) => document.querySelector(`.nbt-media[data-key='${k}'] .nbt-media-item`);
  const frame = document.querySelector('.nbt-media[data-key=page] iframe');
  const seg = item('seg');
  const roc = item('roc');
  return {
    state: (document.querySelector('.nbt-panel') || {dataset: {}}).dataset.state,
    sandbox: frame ? frame.getAttribute('sandbox') : null,
    srcdoc: frame ? frame.srcdoc : '',
    painted: seg && seg.querySelector('canvas.nbt-mask') ? seg.querySelector('canvas.nbt-mask').dataset.painted : null,
    boxes: seg ? seg.querySelectorAll('svg.nbt-boxes rect').length : 0,
    rocSeries: roc ? roc.dataset.series : null, rocCanvas: roc ? roc.querySelectorAll('canvas').length : 0,
    cm: [...document.querySelectorAll(".nbt-media[data-key=cm] .nbt-confusion td")].map(td => td.textContent),
    bars: document.querySelectorAll(".nbt-media[data-key=bars] svg.nbt-bars rect").length,
    audio: (document.querySelector(".nbt-media[data-key=tone] audio") || {}).src || '',
    cloud: (item('cloud') || {textContent: ''}).textContent,
    alert: [...document.querySelectorAll('.nbt-alert')].map(a => [a.dataset.level, a.textContent]),
    axis: (document.querySelector(".nbt-chart[data-key='val/acc']") || {dataset: {}}).dataset.axis,
    epochChart: !!document.querySelector(".nbt-chart[data-key='epoch']"),
    title: document.title, leaked: window.__html === 1,
  };
}"""


def test_dropin_values_alerts_and_axes_in_the_panel(browser, tmp_path):
    root = tmp_path / "root"
    write_notebook(root, "dropin.ipynb", DROPIN_CELL.format(dir=str(tmp_path / "s")))
    server = JupyterServer("lab", root, tmp_path)
    try:
        page, errors, dialogs = open_notebook(browser, server, "dropin.ipynb")
        run_all(page)
        page.wait_for_function(
            "() => { const p = document.querySelector('.nbt-panel'); return p && p.dataset.state === 'finished'"
            " && document.querySelectorAll('.nbt-media-item').length >= 7"
            " && document.querySelector('canvas.nbt-mask') && document.querySelector('canvas.nbt-mask').dataset.painted"
            " && document.querySelector('.nbt-media[data-key=page] iframe').srcdoc; }",
            timeout=90_000,
        )
        page.wait_for_timeout(500)
        s = page.evaluate(DROPIN_PROBE)
        page.screenshot(path=str(ARTIFACTS / "panel_dropin.png"), full_page=True)
        # HTML runs in a sandboxed frame: its script ran there, and could not reach the page
        assert s["sandbox"] == "allow-scripts" and "<p id=p>hello</p>" in s["srcdoc"]
        inner = next(f for f in page.frames if f != page.main_frame and "hello" in (f.content() or ""))
        assert inner.evaluate("() => [document.body.dataset.ran, document.body.dataset.blocked]") == ["1", "1"]
        assert not s["leaked"] and s["title"] != "pwned" and dialogs == []
        # overlays: 2 x 3 mask pixels of class 1, two boxes
        assert s["painted"] == "6" and s["boxes"] == 2
        # charts drawn from their tables
        assert s["rocSeries"] == "3" and s["rocCanvas"] >= 1
        assert s["cm"] == ["1", "1", "0", "0", "2", "0", "1", "0", "1"]
        assert s["bars"] == 3
        assert s["audio"].startswith(("blob:", "data:audio/wav"))
        assert "3-D object" in s["cloud"] and "30 points" in s["cloud"]
        assert s["alert"] == [["WARN", "WARN: Loss spike: loss jumped to 9 (step 7)"]]
        assert s["axis"] == "epoch" and not s["epochChart"]  # against its step metric; epoch hidden
        assert not [e for e in errors if "nbt" in e or "anywidget" in e], errors
    finally:
        server.stop()


SWEEP_CELLS = (
    "import nbtrack\n"
    "config = {{'method': 'grid', 'metric': {{'name': 'loss', 'goal': 'minimize'}},\n"
    "          'parameters': {{'lr': {{'values': [0.1, 0.3, 0.9]}}, 'opt': {{'values': ['adam', 'sgd']}}}}}}\n"
    "def train():\n"
    "    run = nbtrack.init(dir={dir!r}, settings={{'quiet': True}})\n"
    "    for i in range(5):\n"
    "        run.log({{'loss': run.config.lr * (2 if run.config.opt == 'sgd' else 1) / (i + 1)}})\n"
    "sweep_id = nbtrack.sweep(config, project='sw')\n"
    "nbtrack.agent(sweep_id, function=train)",
    "%load_ext nbtrack\n%track_sweep $sweep_id --dir {dir}",
)


def test_sweep_table_is_sorted_by_the_metric_with_parallel_coordinates(browser, tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    root = tmp_path / "root"
    store = tmp_path / "s"
    monkeypatch.setenv("NBTRACK_DIR", str(store))  # the sweep's study lives there too
    write_notebook(root, "sweep.ipynb", *(c.format(dir=str(store)) for c in SWEEP_CELLS))
    server = JupyterServer("lab", root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "sweep.ipynb")
        run_all(page)
        page.wait_for_function(
            "() => document.querySelector('.nbt-runs') && document.querySelector('.nbt-runs').dataset.parallel === '6'",
            timeout=90_000,
        )
        page.screenshot(path=str(ARTIFACTS / "runs_sweep.png"), full_page=True)
        runs = {r.id: r for r in nbtrack.Api(store).runs("sw")}
        order = page.evaluate("() => document.querySelector('.nbt-runs').dataset.order").split(",")
        losses = [runs[i].summary["loss"] for i in order]
        assert len(order) == 6 and losses == sorted(losses)  # best first
        axes = page.evaluate("() => document.querySelector('.nbt-runs').dataset.axes")
        assert axes == "lr,opt,loss"
        assert page.evaluate("() => document.querySelector('.nbt-runs select').value") == "loss"
        assert not [e for e in errors if "nbt" in e or "anywidget" in e], errors
    finally:
        server.stop()


NUMBERS_CELLS = (
    "%load_ext nbtrack\nimport nbtrack\n"
    "run = nbtrack.init(project='numbers', dir={dir!r}, settings={{'quiet': False, 'system_interval': 0}})\n"
    "for i in range(30):\n"
    "    run.log({{'lr': 3.5e-4 + i * 1e-5, 'zero': 0.0, 'big': 1e12 + i * 1e9, 'loss': 1 / (i + 1),\n"
    "             'acc': i / 30, 'extra/a': i, 'extra/b': -i}})\n"
    "run.finish()",
    "empty = nbtrack.init(project='numbers', dir={dir!r}, settings={{'quiet': False, 'system_interval': 0}})",
)

CHARTS = """() => {
  const panel = document.querySelectorAll('.nbt-panel')[0];
  const chart = (k) => panel.querySelector(`.nbt-chart[data-key="${k}"]`);
  return {
    order: [...panel.querySelectorAll('.nbt-chart')].map(c => c.dataset.key),
    logs: Object.fromEntries([...panel.querySelectorAll('.nbt-chart')].map(c => [c.dataset.key, c.dataset.log])),
    titles: Object.fromEntries(['lr', 'extra/a'].map(k => [k, [chart(k).dataset.xtitle, chart(k).dataset.ytitle]])),
    ticks: Object.fromEntries(['lr', 'big', 'zero'].map(k => [k, (chart(k).dataset.yticks || '').split('|')])),
    zeroRange: chart('zero').dataset.yrange.split(',').map(Number),
    sections: [...panel.querySelectorAll('.nbt-section')].filter(s => !s.hidden).map(s => s.querySelector('summary').textContent),
    nothing: (() => { const e = panel.querySelector('.nbt-empty:not([hidden])'); return e ? e.textContent : null; })(),
  };
}"""


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_numbers_axes_log_toggle_and_empty_states(app, browser, tmp_path):
    root = tmp_path / "root"
    store = str(tmp_path / "s")
    write_notebook(root, "numbers.ipynb", *(c.format(dir=store) for c in NUMBERS_CELLS))
    server = JupyterServer(app, root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "numbers.ipynb")
        run_all(page)
        page.wait_for_function(
            "() => document.querySelectorAll('.nbt-panel').length === 2"
            " && document.querySelectorAll('.nbt-panel')[0].dataset.state === 'finished'"
            " && document.querySelector('.nbt-chart[data-key=lr]')?.dataset.yticks"
            " && document.querySelector('.nbt-chart[data-key=\"extra/a\"]')?.dataset.ytitle",
            timeout=90_000,
        )
        before = page.evaluate(CHARTS)
        # sections in the order of first logging (lr, a "metrics" key, came first), not alphabetical
        assert before["sections"] == ["metrics (5)", "extra (2)"], before["sections"]
        # small values: ticks tell each other apart, none reads 0
        lr = before["ticks"]["lr"]
        assert len(lr) >= 2 and len(set(lr)) == len(lr) and "0" not in lr, lr
        assert all("e-4" in t for t in lr), lr
        assert all(t.endswith("T") for t in before["ticks"]["big"]), before["ticks"]["big"]  # 1e12 as 1T, 1.01T...
        low, high = before["zeroRange"]
        assert -1.5 <= low < 0 < high <= 1.5, before["zeroRange"]  # a flat 0 gets a tight axis, not 0..100
        # hover: the value under the cursor, not "lr: 0"
        over = page.locator('.nbt-chart[data-key="lr"] .u-over').first
        over.scroll_into_view_if_needed()
        hovered = page.locator('.nbt-chart[data-key="lr"] .u-legend .u-series').nth(2).locator(".u-value")
        deadline = time.monotonic() + 30
        while hovered.text_content() in ("—", "--", "") and time.monotonic() < deadline:
            box = over.bounding_box()  # move in steps until the chart's cursor follows (it needs mouse events)
            page.mouse.move(box["x"] + 5, box["y"] + 5)
            page.mouse.move(box["x"] + box["width"] * 0.99, box["y"] + box["height"] / 2, steps=4)
        value = float(hovered.text_content())
        assert 3.4e-4 < value < 6.5e-4, hovered.text_content()
        page.screenshot(path=str(ARTIFACTS / f"panel_small_values_{app}.png"))
        # log y: the charts keep their order, ticked and unticked
        panel = page.locator(".nbt-panel").first
        panel.locator(".nbt-log input").check()
        page.wait_for_function(
            "() => document.querySelector('.nbt-chart[data-key=lr]').dataset.log === 'true'", timeout=10_000
        )
        ticked = page.evaluate(CHARTS)
        assert ticked["order"] == before["order"] and ticked["logs"]["loss"] == "true"
        # axis titles: x what it is plotted against, y the metric's last name part (and its scale)
        assert before["titles"] == {"lr": ["step", "lr"], "extra/a": ["step", "a"]}, before["titles"]
        assert ticked["titles"]["lr"] == ["step", "lr (log)"], ticked["titles"]
        assert ticked["logs"]["zero"] == "false" and ticked["logs"]["extra/b"] == "false"  # no log of 0 or < 0
        assert "0" not in ticked["ticks"]["lr"], ticked["ticks"]["lr"]
        panel.locator(".nbt-log input").uncheck()
        page.wait_for_function(
            "() => document.querySelector('.nbt-chart[data-key=lr]').dataset.log === 'false'", timeout=10_000
        )
        assert page.evaluate(CHARTS)["order"] == before["order"]
        page.wait_for_function(
            "() => document.querySelector('.nbt-chart[data-key=lr]').dataset.yticks.includes('e-4')", timeout=10_000
        )
        # the filter: counts follow it, and a filter matching nothing says so
        search = panel.locator(".nbt-filter")
        search.fill("extra/a")
        filtered = page.evaluate(CHARTS)
        assert filtered["sections"] == ["extra (1 of 2)"], filtered
        search.fill("no-such-key")
        empty = page.evaluate(CHARTS)
        assert empty["sections"] == [] and 'contains "no-such-key"' in empty["nothing"], empty
        search.fill("")
        # shown again, the charts the filter hid are drawn at their own scale again
        page.wait_for_function(
            "() => document.querySelector('.nbt-chart[data-key=lr]').dataset.yticks.includes('e-4')"
            " && document.querySelector('.nbt-chart[data-key=big]').dataset.yticks.includes('T')",
            timeout=10_000,
        )
        # x as wall time: from when each step was logged (the clock the kernel sent)
        panel.locator(".nbt-xaxis").select_option("wall")
        page.wait_for_function(
            "() => { const c = document.querySelector('.nbt-chart[data-key=lr]');"
            " return c.dataset.xtitle === 'time' && Number(c.dataset.xrange.split(',')[0]) > 1.7e9; }",
            timeout=10_000,
        )
        panel.locator(".nbt-xaxis").select_option("step")
        # a run with no metrics yet: a line saying so, and no controls
        second = page.locator(".nbt-panel").nth(1)
        assert second.locator(".nbt-controls").is_hidden()
        assert "No metrics logged yet" in second.locator(".nbt-empty").first.text_content()
        assert second.locator(".nbt-empty").first.is_visible()
        second.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"panel_empty_states_{app}.png"))
        assert errors == []
    finally:
        server.stop()


RESTART_CELL = """\
import time, nbtrack
run = nbtrack.init(project="restart", dir={dir!r}, name="cut-short", settings={{"quiet": False}})
i = 0
while True:
    run.log({{"loss": 1 / (i + 1)}})
    i += 1
    time.sleep(0.02)
"""


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_after_an_interrupt_and_a_restart_the_panel_stops_its_clock_and_says_why(app, browser, tmp_path):
    root = tmp_path / "root"
    after = "import time\ntime.sleep(2)  # longer than the panel's clock tick\nprint('after')"
    write_notebook(root, "restart.ipynb", RESTART_CELL.format(dir=str(tmp_path / "s")), after)
    server = JupyterServer(app, root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "restart.ipynb")
        page.click(".jp-Cell .jp-InputArea-editor")
        page.keyboard.press("Control+Enter")
        page.wait_for_function("() => Number(document.querySelector('.nbt-panel')?.dataset.step) > 20", timeout=90_000)
        page.keyboard.press("Escape")
        page.keyboard.press("i")  # interrupt: the run goes on (a notebook keeps it for the next cell)
        page.keyboard.press("i")
        page.wait_for_selector(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", timeout=60_000)
        assert page.locator(".nbt-panel").get_attribute("data-state") == "running"
        page.keyboard.press("0")
        page.keyboard.press("0")
        page.locator(".jp-Dialog .jp-mod-accept").click()
        page.wait_for_function("() => document.querySelector('.nbt-panel').dataset.state === 'unknown'", timeout=60_000)
        panel = page.locator(".nbt-panel")
        assert panel.locator(".nbt-badge").text_content() == "kernel restarted"
        note = panel.locator(".nbt-notes").text_content()
        assert "The kernel restarted: this panel stopped at step" in note and "nbtrack view restart/" in note
        meta = panel.locator(".nbt-meta").text_content()
        server.wait_kernel_idle(page)
        # the new kernel runs a cell; the panel's clock has not moved meanwhile
        page.locator(".jp-Cell").nth(1).click()
        page.keyboard.press("Control+Enter")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-OutputArea-output')].some(o => o.textContent.trim() === 'after')",
            timeout=60_000,
        )
        assert panel.locator(".nbt-meta").text_content() == meta
        page.screenshot(path=str(ARTIFACTS / f"panel_kernel_restarted_{app}.png"))
        assert errors == []
    finally:
        server.stop()


COMPACT_CELL = """\
import nbtrack
run = nbtrack.init(project="compact", dir={dir!r}, settings={{"quiet": False, "system_interval": 0}})
long = "val/" + "a_very_long_metric_name_that_goes_on_" * 3 + "accuracy"
for i in range(50):
    run.log({{**{{f"extra/k{{j:02d}}": i * j for j in range(14)}}, "train/loss": 1 / (i + 1), long: i / 50,
             "val/loss": 1.2 / (i + 1)}})
run.finish()
"""

COMPACT_PROBE = """() => {
  const panel = document.querySelector('.nbtrack-page[data-live] .nbt-panel') || document.querySelector('.nbt-panel');
  const section = (name) => panel.querySelector(`.nbt-section[data-section="${name}"]`);
  const extra = section('extra');
  const shown = [...extra.querySelectorAll('.nbt-chart')].filter(c => c.offsetParent !== null);
  const long = section('val').querySelector('.nbt-chart');
  return {
    shown: shown.map(c => c.dataset.key), drawn: shown.filter(c => c.dataset.yticks).length,
    button: extra.querySelector('.nbt-show-all').hidden ? null : extra.querySelector('.nbt-show-all').textContent,
    label: extra.querySelector('summary').textContent,
    longWidth: long.getBoundingClientRect().width, longHeight: long.getBoundingClientRect().height,
    plainHeight: section('train').querySelector('.nbt-chart').getBoundingClientRect().height,
    longTitle: long.querySelector('.nbt-chart-title').title,
    longLegend: long.querySelectorAll('.u-legend .u-label')[2].textContent,
    panelHeight: panel.getBoundingClientRect().height,
  };
}"""


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_compact_sections_and_long_names(app, browser, tmp_path):
    root = tmp_path / "root"
    write_notebook(root, "compact.ipynb", COMPACT_CELL.format(dir=str(tmp_path / "s")))
    server = JupyterServer(app, root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "compact.ipynb")
        run_all(page)
        page.wait_for_function(  # the saved page's panel, its charts drawn a few per animation frame
            "() => { const p = document.querySelector('.nbtrack-page[data-live] .nbt-panel');"
            " if (!p || p.dataset.state !== 'finished') return false;"
            " const cards = [...p.querySelectorAll('.nbt-chart')];"
            " return cards.length === Number(p.dataset.charts)"
            " && cards.filter((c) => c.offsetParent !== null).every((c) => c.dataset.yticks); }",
            timeout=90_000,
        )
        s = page.evaluate(COMPACT_PROBE)
        # 14 charts in "extra": the first six, in logging order, and a button for the rest
        assert s["shown"] == [f"extra/k{j:02d}" for j in range(6)] and s["drawn"] == 6, s
        assert s["button"] == "show all 14" and s["label"] == "extra (14)"
        compact_height = s["panelHeight"]
        # a long key: one line of title (the whole key on hover), a short legend, a card as tall as any other
        key = "val/" + "a_very_long_metric_name_that_goes_on_" * 3 + "accuracy"
        assert s["longTitle"] == key and s["longLegend"].endswith("…") and len(s["longLegend"]) <= 10
        page.locator(".nbt-section[data-section=val] .nbt-chart").first.screenshot(
            path=str(ARTIFACTS / f"panel_long_key_{app}.png")
        )
        assert s["longWidth"] <= 310 and abs(s["longHeight"] - s["plainHeight"]) < 2, s
        page.locator(".nbt-section[data-section=extra] .nbt-show-all").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.nbt-section[data-section=extra] .nbt-chart')]"
            ".every(c => c.offsetParent !== null && c.dataset.yticks)",
            timeout=10_000,
        )
        s = page.evaluate(COMPACT_PROBE)
        assert len(s["shown"]) == 14 and s["button"] == "show fewer" and s["panelHeight"] > compact_height + 200
        page.screenshot(path=str(ARTIFACTS / f"panel_compact_expanded_{app}.png"))
        page.locator(".nbt-section[data-section=extra] .nbt-show-all").click()
        assert len(page.evaluate(COMPACT_PROBE)["shown"]) == 6
        # pinned: the section goes first (logging order was extra, train, val), unpinned: back
        order = "() => document.querySelector('.nbt-panel').dataset.sections"
        assert page.evaluate(order) == "extra,train,val"
        page.locator(".nbt-section[data-section=val] .nbt-pin").click()
        assert page.evaluate(order) == "val,extra,train"
        assert page.locator(".nbt-section[data-section=val]").evaluate("d => d.open")  # the click did not close it
        page.locator(".nbt-section[data-section=val] .nbt-pin").click()
        assert page.evaluate(order) == "extra,train,val"
        # one chart per name: train/loss and val/loss on a "loss" chart, in a section on top
        page.locator(".nbt-combine input").check()
        page.wait_for_function(
            "() => document.querySelector('.nbt-panel').dataset.combined === 'loss'"
            " && document.querySelector('.nbt-combined[data-name=loss]')?.dataset.yticks",
            timeout=10_000,
        )
        combined = page.evaluate(
            "() => { const c = document.querySelector('.nbt-combined');"
            " return {keys: c.dataset.keys, legend: [...c.querySelectorAll('.u-legend .u-label')].map(l => l.textContent),"
            " hidden: ['train/loss', 'val/loss'].map(k => document.querySelector(`.nbt-chart[data-key='${k}']`).offsetParent === null),"
            " sections: document.querySelector('.nbt-panel').dataset.sections}; }"
        )
        assert combined == {
            "keys": "train/loss,val/loss",
            "legend": ["step", "train", "val"],
            "hidden": [True, True],
            "sections": "combined,extra,train,val",
        }, combined
        page.screenshot(path=str(ARTIFACTS / f"panel_combined_{app}.png"))
        page.locator(".nbt-combine input").uncheck()
        page.wait_for_function("() => document.querySelector('.nbt-panel').dataset.combined === ''", timeout=10_000)
        assert page.locator(".nbt-chart[data-key='train/loss']").is_visible()
        # a filter shows every match, folded or not, and no button
        page.locator(".nbt-filter").fill("k1")
        s = page.evaluate(COMPACT_PROBE)
        assert s["shown"] == [f"extra/k{j:02d}" for j in range(10, 14)] and s["button"] is None
        assert s["label"] == "extra (4 of 14)"
        assert errors == []
    finally:
        server.stop()


COST_CELL = """\
import time
import nbtrack
run = nbtrack.init(project="cost", dir={dir!r}, settings={{"quiet": False, "system_interval": 0}})
row = {{f"group_{{k % 5}}/metric_{{k}}": 0.0 for k in range(100)}}
for i in range({steps}):
    for k, key in enumerate(row):
        row[key] = (i % 97) * 0.01 + k
    run.log(row)
    if i % 500 == 499:
        time.sleep(0.1)  # a few seconds of updates: 40 pauses, as if evaluating now and then
run.finish()
"""

# Long tasks by phase: until the panel shows all its charts (the first render), while the
# run updates, and after it finished (the saved page replaces the widget).
LONG_TASKS = """() => {
  const t = window.__nbt = {long: [], full: null, done: null};
  new PerformanceObserver((l) => l.getEntries().forEach((e) => t.long.push([e.startTime, e.duration])))
    .observe({type: 'longtask', buffered: false});
  new MutationObserver(() => {
    const p = document.querySelector('.nbt-panel');
    if (!p) return;
    if (t.full === null && Number(p.dataset.charts || 0) >= 100 && p.dataset.state === 'running') t.full = performance.now();
    if (t.done === null && p.dataset.state === 'finished') t.done = performance.now();
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-charts', 'data-state']});
}"""

COST_PROBE = """() => {
  const panel = document.querySelector('.nbt-panel');
  const output = panel && panel.closest('.jp-OutputArea-output');
  return {state: panel ? panel.dataset.state : null, charts: panel ? Number(panel.dataset.charts || 0) : 0,
          page: !!document.querySelector('.nbtrack-page[data-live]'),
          nodes: output ? output.querySelectorAll('*').length : 0,
          phases: phases()};
  function phases() {
    const t = window.__nbt, out = {};
    const of = (name, a, b) => {
      const d = t.long.filter(([s]) => s >= a && s < b).map(([, d]) => d);
      out[name] = {longest: Math.round(Math.max(0, ...d)), count: d.length, total: Math.round(d.reduce((x, y) => x + y, 0))};
    };
    const full = t.full === null ? Infinity : t.full, done = t.done === null ? Infinity : t.done;
    of('first_render', 0, full);
    of('updating', full, done);
    of('finished', done, Infinity);
    return out;
  }
}"""


def test_a_100_metric_panel_stays_light_in_the_browser(browser, tmp_path):
    """DOM nodes are counted and asserted (at most 5,000 for 100 charts); the browser's
    long tasks while the run updates are measured and written to
    artifacts/panel_browser_cost.json for the README (timings are never asserted)."""
    root = tmp_path / "root"
    write_notebook(root, "cost.ipynb", COST_CELL.format(dir=str(tmp_path / "s"), steps=20_000))
    server = JupyterServer("lab", root, tmp_path)
    try:
        page, errors, _ = open_notebook(browser, server, "cost.ipynb")
        page.evaluate(LONG_TASKS)
        run_all(page)
        live = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            s = page.evaluate(COST_PROBE)
            if s["state"] == "running":
                live.append(s)
            if s["page"] and s["state"] == "finished" and s["charts"] == 100:
                break
            page.wait_for_timeout(200)  # sampling the live panel while it updates, not waiting on it
        else:
            raise AssertionError(f"the run's page never showed 100 charts: {live[-3:]}")
        final = page.evaluate(COST_PROBE)
        assert live, "the panel was never seen running"
        assert max(s["nodes"] for s in live) <= 5000 and final["nodes"] <= 5000, (live[-1], final)
        assert max(s["charts"] for s in live) == 100  # seen live with every chart: the updates were measured
        figures = {
            "charts": final["charts"],
            "live_max_nodes": max(s["nodes"] for s in live),
            "finished_nodes": final["nodes"],
            "long_tasks_by_phase": final["phases"],  # {first_render, updating, finished}: longest, count, total ms
        }
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "panel_browser_cost.json").write_text(json.dumps(figures, indent=1))
        print("panel browser cost", figures)
        assert errors == []
    finally:
        server.stop()
