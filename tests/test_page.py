"""Self-contained pages (nbtrack.page): what ``run.to_html()``, ``nbtrack view`` and a
finished run's notebook output hold, read without a browser.  tests/test_page_browser.py
opens them in Chromium."""

from __future__ import annotations

import math
import re
from urllib.parse import unquote

import pytest
from conftest import page_state

import nbtrack
from nbtrack import page
from nbtrack.cli import main
from nbtrack.errors import UsageError


def drawings(html):
    """key -> the static drawing's points, alt text and SVG (decoded from its data: URL)."""
    found = {}
    for key, points, alt, src in re.findall(
        r'<img class="nbt-svg"[^>]*data-key="([^"]+)" data-points="(\d+)"[^>]* alt="([^"]*)"'
        r' src="data:image/svg\+xml,([^"]*)"',
        html,
    ):
        svg = unquote(src.replace("&quot;", '"').replace("&amp;", "&"))
        found[key] = {"points": int(points), "alt": alt, "svg": svg}
    return found


def _logged(store_dir, steps=300, **extra):
    run = nbtrack.init(project="p", dir=store_dir, name="pager", config={"lr": 3.5e-4, "layers": [64, 128]})
    for i in range(steps):
        run.log({"train/loss": 1 / (i + 1), "lr": 3.5e-4 * 0.99**i, "zero": 0.0, "big": 1e12 + i * 1e9, **extra})
    run.summary["best"] = 0.25  # set by hand: a value, no chart
    return run


@pytest.mark.parametrize(
    "value, text",
    [
        (0, "0"),
        (3.5e-4, "3.5e-4"),
        (-1.25e-7, "-1.25e-7"),
        (0.001, "0.001"),
        (0.5, "0.5"),
        (1234.5678, "1235"),
        (12345, "12.35k"),
        (1e12, "1T"),
        (2.5e9, "2.5G"),
        (float("inf"), "∞"),
        (float("nan"), "—"),
    ],
)
def test_numbers_read_as_the_panel_writes_them(value, text):
    assert page.num(value) == text


def test_a_finished_runs_page_holds_every_chart_value_and_a_static_drawing(store_dir):
    run = _logged(store_dir)
    run.finish()
    record = nbtrack.Api(store_dir).run(f"p/{run.id}")
    html = record.to_html()
    state = page_state(html)["run"]
    assert state["state"] == "finished" and state["name"] == "pager" and state["step"] == 300
    xs, ys = state["snapshot"]["train/loss"]
    assert xs == list(range(300))  # under the cap: every point
    assert ys == pytest.approx([1 / (i + 1) for i in range(300)], rel=1e-5)
    assert state["snapshot"]["lr"][1][-1] == pytest.approx(3.5e-4 * 0.99**299, rel=1e-5)
    assert "best" not in state["snapshot"] and state["summary"]["best"] == 0.25
    assert state["config"] == {"lr": 3.5e-4, "layers": [64, 128]}
    assert set(state["snapshot"]) >= {"train/loss", "lr", "zero", "big"}
    # without scripts: one SVG image a chart, axis ends written as the panel writes numbers
    charts = drawings(html)
    assert {"train/loss", "lr", "zero", "big"} <= set(charts) and 0 < charts["lr"]["points"] <= page.SVG_POINTS
    assert charts["lr"]["alt"] == "lr: 1.73e-5 to 3.5e-4, step 0 to 299"  # 3.5e-4 * 0.99 ** 299
    assert ">3.5e-4</text>" in charts["lr"]["svg"] and ">1.73e-5</text>" in charts["lr"]["svg"]  # the y ends
    assert "299 step</text>" in charts["lr"]["svg"]  # the x title after its last value
    assert "text-anchor='middle'>lr</text>" in charts["lr"]["svg"]  # the y title, turned
    assert "text-anchor='middle'>loss</text>" in charts["train/loss"]["svg"]  # the key after its last "/"
    assert charts["zero"]["alt"].startswith("zero: 0 to 0,")  # a flat 0: drawn in a tight band
    assert charts["big"]["alt"].startswith("big: 1T to 1.299T,")
    assert charts["lr"]["svg"].count("<polyline") == 1 and "<script" not in html.split("<script data-state")[0]
    assert "<th>best</th><td>0.25</td>" in html and "<th>layers</th>" not in html  # config flattened
    assert "<th>lr</th><td>3.5e-4</td>" in html


def test_the_page_stays_within_its_budget_and_keeps_spikes(store_dir):
    run = nbtrack.init(project="p", dir=store_dir)
    for i in range(5000):
        run.log({f"k{j:02d}": math.sin(i / 50 + j) + (10.0 if i == 3333 else 0.0) for j in range(30)})
    run.finish()
    html = nbtrack.Api(store_dir).run(f"p/{run.id}").to_html()
    state = page_state(html)["run"]
    sizes = [len(xs) for xs, _ys in state["snapshot"].values() if xs]
    user = {k: v for k, v in state["snapshot"].items() if not k.startswith("system/")}
    assert len(user) == 30 and sum(sizes) <= page.POINTS_BUDGET + 2 * len(sizes)
    assert all(len(xs) >= page.MIN_POINTS for xs, _ in user.values())
    assert all(max(ys) > 8 for _, ys in user.values())  # min/max buckets: the spike at step 3333 stays
    assert len(html.encode()) <= 150 * 1024, len(html.encode())  # what a saved notebook grows by


def test_a_run_of_many_charts_draws_each_with_fewer_points_and_keeps_spikes(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0})
    for i in range(400):
        run.log({f"k{j:03d}": math.sin(i / 20 + j) + (50.0 if i == 123 else 0.0) for j in range(100)})
    run.finish()
    charts = drawings(nbtrack.Api(store_dir).run(f"p/{run.id}").to_html())
    assert len(charts) == 100
    assert all(0 < c["points"] <= page.SVG_BUDGET // 100 for c in charts.values())  # 24 a chart, not 48
    assert all(float(c["alt"].split(" to ")[1].split(",")[0]) >= 49 for c in charts.values())  # the spike stays


def test_a_running_run_to_html_is_its_state_now(store_dir):
    run = _logged(store_dir, steps=10)
    html = run.to_html(height=300)
    state = page_state(html)["run"]
    assert state["state"] == "running" and state["as_of"] > 0 and len(state["snapshot"]["lr"][0]) == 10
    assert "max-height:300px" in html
    assert "display:none" in run.to_html(hidden=True)
    run.log({"lr": 1.0})
    assert len(page_state(run.to_html())["run"]["snapshot"]["lr"][0]) == 11  # what was logged since is in
    run.finish()


def test_define_metric_axes_media_and_values_are_carried(store_dir):
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    run = nbtrack.init(project="p", dir=store_dir)
    run.define_metric("val/*", step_metric="epoch")
    for i in range(4):
        run.log({"train/loss": 1.0 / (i + 1), "note": f"step {i}"})
        if i % 2:
            image = nbtrack.Image(np.full((4, 4, 3), 40 * i, dtype=np.uint8))
            run.log({"epoch": i // 2, "val/acc": 0.5 + i / 10, "pic": image})
    run.finish()
    state = page_state(nbtrack.Api(store_dir).run(f"p/{run.id}").to_html())["run"]
    assert state["axes"] == {"val/acc": "epoch"} and state["snapshot"]["val/acc"] == [[0, 1], [0.6, 0.8]]
    assert state["texts"] == {"note": "step 3"}
    steps = [step for step, _refs in state["media"]["pic"]]
    assert steps == [2, 5] and all(
        refs[0]["src"].startswith("data:image/png;base64,") for _s, refs in state["media"]["pic"]
    )


def test_nbtrack_view_writes_a_run_or_a_project_page(store_dir, tmp_path, capsys):
    first = _logged(store_dir, steps=20)
    first.finish()
    second = _logged(store_dir, steps=30)
    second.finish()
    out = tmp_path / "one.html"
    assert main(["view", f"p/{first.id}", "--dir", str(store_dir), "-o", str(out), "--no-open"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and out.as_uri() in printed
    text = out.read_text()
    assert text.startswith("<!doctype html>") and page_state(text)["run"]["run_id"] == first.id
    assert main(["view", first.id, "--project", "p", "--dir", str(store_dir), "-o", str(out), "--no-open"]) == 0
    project = tmp_path / "p.html"
    assert main(["view", "--project", "p", "--dir", str(store_dir), "-o", str(project), "--no-open"]) == 0
    state = page_state(project.read_text())
    assert [r["id"] for r in state["table"]["rows"]] == [second.id, first.id]
    assert state["history"]["lr"][first.id][0] == first.name and len(state["history"]["lr"][second.id][1]) == 30
    capsys.readouterr()
    # a run that is not there, and a store with no runs: said, with the exit status of a usage error / nothing
    assert main(["view", "p/nope", "--dir", str(store_dir), "--no-open"]) == 2
    assert "no run 'nope' in project 'p'" in capsys.readouterr().err
    assert main(["view", "--dir", str(tmp_path / "empty"), "--no-open"]) == 1
    assert "no runs under" in capsys.readouterr().err


def test_a_big_projects_page_draws_only_the_first_rows_without_scripts(store_dir, monkeypatch):
    # laying out a 10,000-row static table took Chromium 2.5 s before the script replaced it
    monkeypatch.setattr(page, "STATIC_ROWS", 3)
    made = []
    for i in range(5):
        with nbtrack.init(project="big", dir=store_dir, config={"i": i}, reinit="create_new") as run:
            run.log({"loss": 1.0 / (i + 1)})
        made.append(run.id)
    html = page.project_fragment(nbtrack.Api(store_dir).runs("big"), "big")
    static = html.split("<script", 1)[0]
    assert re.findall(r'<tr data-id="([^"]+)">', static) == made[::-1][:3]  # the newest, as the table orders
    assert "2 more runs: the page lists them where it can run its script" in static
    assert [r["id"] for r in page_state(html)["table"]["rows"]] == made[::-1]  # the script's table: every run


def test_the_page_code_is_embedded_once_per_page_and_scripts_never_break_out(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, name="</script><b>x</b>", notes="<img src=x onerror=alert(1)>")
    run.log({"a</script>": 1.0})
    run.finish()
    html = nbtrack.Api(store_dir).run(f"p/{run.id}").to_html()
    assert html.count("<script") == 1 and html.count("</script>") == 1  # user text cannot end the script
    assert "<b>x</b>" not in html and "&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in html
    assert page_state(html)["run"]["notes"] == "<img src=x onerror=alert(1)>"  # carried as data, shown as text


def test_bad_arguments_are_usage_errors(store_dir):
    run = _logged(store_dir, steps=2)
    with pytest.raises(UsageError, match=r"to_html: height must be a whole number of pixels above 0 .* got 'tall'"):
        run.to_html(height="tall")
    run.finish()
    record = nbtrack.Api(store_dir).run(f"p/{run.id}")
    for bad in (0, -5, 2.5, True):
        with pytest.raises(UsageError, match="height"):
            record.to_html(height=bad)
    assert "max-height" not in record.to_html(height=None)
    with pytest.raises(UsageError, match="Api.run"):
        nbtrack.Api(store_dir).run("p")


def test_media_are_embedded_newest_first_within_the_budget(store_dir):
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    run = nbtrack.init(project="p", dir=store_dir)
    noise = np.random.default_rng(0)
    for i in range(6):  # PNGs of noise: about 12 KB each, beyond what compression saves
        run.log({"a": nbtrack.Image(noise.integers(0, 255, (64, 64, 3), dtype=np.uint8)), "b": float(i)})
        run.log({"c": nbtrack.Image(noise.integers(0, 255, (64, 64, 3), dtype=np.uint8))})
    run.finish()
    record = nbtrack.Api(store_dir).run(f"p/{run.id}")
    size = max(r["size"] for r in (rec["a"] for rec in record.rows(keys=["a"])))
    budget = int(size * 4 / 3 * 5)  # room for five of them as base64
    media = page_state(page.run_fragment(page.run_state(record), media_bytes=budget))["run"]["media"]
    embedded = {k: [step for step, refs in items if "src" in refs[0]] for k, items in media.items()}
    # both keys' newest first, then the ones before: never an old item while a newer one is left out
    assert sorted(len(v) for v in embedded.values()) == [2, 3], embedded
    for key, steps in embedded.items():
        assert steps == [step for step, _refs in media[key]][-len(steps) :]
    everything = page_state(page.run_fragment(page.run_state(record), media_bytes=page.FILE_MEDIA_BYTES))
    assert all("src" in refs[0] for items in everything["run"]["media"].values() for _s, refs in items)
