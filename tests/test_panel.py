"""The panel's kernel side, without a browser: the comm is a recording fake."""

import math

import pytest
from conftest import wait_for

import nbtrack
from nbtrack.jupyter import panel as panel_module
from nbtrack.jupyter.panel import RunPanel
from nbtrack.jupyter.series import Series


class RecordingComm:
    """Stands in for the kernel's comm: keeps every message the widget sends."""

    comm_id = "fake"
    kernel = object()  # ipywidgets sends only through a comm that has a kernel

    def __init__(self):
        self.sent = []
        self.buffers = []

    def send(self, data=None, metadata=None, buffers=None):
        self.sent.append(data)
        self.buffers.append(buffers)

    def on_msg(self, callback):
        self.callback = callback

    def close(self, *args, **kwargs):
        pass

    def custom(self):
        return [m["content"] for m in self.sent if m.get("method") == "custom"]

    def updates(self):
        return [m["state"] for m in self.sent if m.get("method") == "update"]


@pytest.fixture
def make_panel(store_dir):
    made = []

    def make(**init):
        run = nbtrack.init(project="panel", dir=store_dir, **init)
        p = RunPanel(run)
        p.comm = RecordingComm()
        made.append(p)
        return run, p

    yield make
    for p in made:
        p.finalize()


def test_series_keeps_extremes_under_the_cap():
    s = Series(cap=200)
    for i in range(100_000):
        s.add(i, math.sin(i / 3000) + (100 if i == 54_321 else 0) - (100 if i == 99_998 else 0))
    xs, ys = s.points()
    assert len(xs) <= 200 and xs == sorted(xs)
    assert (54_321, 100 + math.sin(54_321 / 3000)) in zip(xs, ys)  # the spike up survives
    assert min(ys) == pytest.approx(-100 + math.sin(99_998 / 3000))  # and the spike down
    assert xs[0] == 0 and xs[-1] == 99_999


def test_series_delta_appends_then_resets_after_a_merge():
    s = Series(cap=12)
    for i in range(3):
        s.add(i, float(i))
    first = s.delta()
    assert first["append"] == [[0, 1, 2], [0.0, 1.0, 2.0]] and first["tail"] == [[], []]
    assert s.delta() is None  # nothing new
    s.add(3, 3.0)
    assert s.delta()["append"] == [[3], [3.0]]  # only what is new
    for i in range(4, 40):
        s.add(i, float(i))
    d = s.delta()
    assert "reset" in d and len(d["reset"][0]) + len(d["tail"][0]) <= 12
    assert (d["reset"][0] + d["tail"][0])[-1] == 39 and 39 not in d["reset"][0]  # the newest point is in the tail


def _apply(view, d):
    """What js/src/panel.js applySeries() does with one series delta."""
    if "reset" in d:
        view["xs"], view["ys"] = list(d["reset"][0]), list(d["reset"][1])
    elif "append" in d:
        view["xs"] += d["append"][0]
        view["ys"] += d["append"][1]
    view["tail"] = d.get("tail", [[], []])
    return view["xs"] + view["tail"][0], view["ys"] + view["tail"][1]


def test_a_view_fed_deltas_holds_exactly_the_series_and_never_more_than_the_cap():
    import random

    rng = random.Random(7)
    s = Series(cap=50)
    view = {"xs": [], "ys": [], "tail": [[], []]}
    late = None  # a second view that says hello halfway through
    for i in range(20_000):
        s.add(i, rng.gauss(0, 1))
        if rng.random() < 0.05:  # deltas at uneven moments, as the pump's ticks fall
            d = s.delta()
            if d is None:
                continue
            xs, ys = _apply(view, d)
            assert (xs, ys) == tuple(s.points())  # no stale tail point kept, none twice
            assert len(xs) <= 50 and xs == sorted(set(xs))
            if late is not None:
                assert _apply(late, d) == (xs, ys)
        if i == 9_999:
            late = {"xs": [], "ys": [], "tail": [[], []]}
            assert _apply(late, s.snapshot()) == tuple(s.points())
    assert s.count == 20_000 and s.width > 256  # it merged many times on the way


def test_series_extend_keeps_the_invariants_of_add_and_feeds_views_the_same_way():
    np = pytest.importorskip("numpy")
    import random

    rng = random.Random(11)
    for cap in (12, 50, 1000):
        s, one = Series(cap=cap), Series(cap=cap)
        view = {"xs": [], "ys": [], "tail": [[], []]}
        low = high = None
        i = 0
        for _ in range(300):  # batches of 0 to 5,000 points, deltas between some of them
            n = rng.choice((0, 1, 2, 7, 64, 333, 5_000))
            ys = [rng.gauss(0, 1) for _ in range(n)]
            if n and rng.random() < 0.1:
                ys[rng.randrange(n)] = rng.choice((1e6, -1e6)) * (1 + rng.random())  # a spike
            xs = list(range(i, i + n))
            s.extend(np.array(xs, dtype=np.int64), np.array(ys))
            for x, y in zip(xs, ys):
                one.add(x, y)
                low = (x, y) if low is None or y < low[1] else low
                high = (x, y) if high is None or y > high[1] else high
            i += n
            if rng.random() < 0.5:
                d = s.delta()
                if d is not None:
                    assert _apply(view, d) == tuple(s.points())  # the same delta protocol as add()
            pxs, pys = s.points()
            assert len(pxs) <= cap and pxs == sorted(set(pxs)) and s.count == i
            if i:
                points = set(zip(pxs, pys))
                assert low in points and high in points and (i - 1, pys[-1]) == s.last  # extremes and the newest
        # against add() value by value: the same count, extremes and newest point; as many points or
        # fewer (a batch is bucketed at the width it needs, not merged from narrower buckets)
        assert s.count == one.count and s.points()[0][-1] == one.points()[0][-1]
        assert min(s.points()[1]) == min(one.points()[1]) and max(s.points()[1]) == max(one.points()[1])
    small = Series(cap=1000)  # while everything fits, extend() keeps every point, as add() does
    small.extend(np.arange(300, dtype=np.int64), np.linspace(0.0, 1.0, 300))
    assert small.points() == (list(range(300)), np.linspace(0.0, 1.0, 300).tolist())


def test_array_buckets_hold_exactly_what_list_buckets_hold():
    """ArraySeries (buckets as numpy arrays, used once numpy is loaded) against Series
    (buckets as tuples): random mixes of add() and extend(), ties, spikes, int and float x,
    caps small and large: the same points, deltas, widths, counts and newest points."""
    np = pytest.importorskip("numpy")
    import random

    from nbtrack.jupyter.series import ArraySeries

    rng = random.Random(7)
    for trial in range(60):
        cap = rng.choice((8, 12, 50, 1000))
        a, b = ArraySeries(cap=cap), Series(cap=cap)
        x = 0
        float_x = trial % 5 == 4  # x as seconds (system metrics), added value by value
        for _ in range(rng.choice((20, 80))):
            n = rng.choice((0, 1, 2, 5, 64, 300, 2_000))
            ys = [rng.choice((0.0, 1.0, rng.gauss(0, 1), rng.choice((1e9, -1e9)))) for _ in range(n)]
            if float_x or rng.random() < 0.5:
                for y in ys:
                    point = (round(x * 0.01, 2) if float_x else x, y)
                    a.add(*point)
                    b.add(*point)
                    x += 1
            else:
                xs = np.arange(x, x + n, dtype=np.int64)
                a.extend(xs, np.array(ys))
                b.extend(xs, np.array(ys))
                x += n
            if rng.random() < 0.4:
                assert a.delta() == b.delta()
            assert (a.width, a.count, a.last, len(a)) == (b.width, b.count, b.last, len(b))
            assert a.points() == b.points()
        assert a.snapshot() == b.snapshot()
    huge = ArraySeries(cap=8)  # an int no float holds: drawn at the largest float, not an error
    for i in range(20):
        huge.add(i, 10**400 if i == 5 else i)
    assert 1.7976931348623157e308 in huge.points()[1] and huge.count == 20


def test_a_burst_of_rows_is_folded_by_columns_as_value_by_value(make_panel, monkeypatch):
    """Above COLUMN_ROWS queued rows the pump folds numpy columns; the series, media, texts,
    clock and define_metric axes equal what folding each value gives."""
    pytest.importorskip("numpy")
    from nbtrack.media import Histogram

    def burst(run):
        run.define_metric("epoch")
        run.define_metric("val/acc", step_metric="epoch")
        run.define_metric("secret", hidden=True)
        run.define_metric("loss", summary="min")  # a rule that keeps it against the step
        for i in range(3_000):
            row = {"loss": 1 / (i + 1), "big": i * 10**12, "count": i, "epoch": i // 100,
                   "val/acc": i / 3000, "secret": 1.0, "flag": i % 2 == 0, "note": f"step {i}",
                   "nan": float("nan") if i % 7 == 0 else i * 0.5, "inf": float("inf") if i == 5 else 1.0,
                   "huge": 1e308 - i}  # fmt: skip
            if i % 1000 == 0:  # another key set, now and then: those parts go value by value
                row["hist"] = Histogram([1, 2, 3])
            run.log(row)
        for i in range(200):  # a second key set in the same tick
            run.log({"loss": 0.1, "extra": i * 1.0})

    folded = {}
    for way in ("columns", "values"):
        if way == "values":
            monkeypatch.setattr(panel_module, "COLUMN_ROWS", 10**9)
        run, p = make_panel(settings={"system_interval": 0})
        p.max_points = 10_000  # nothing bucketed: every point comparable
        panel_module.PanelPump.get().remove(p)  # ticked by hand: one burst
        done = []
        real = p._fold_columns
        monkeypatch.setattr(p, "_fold_columns", lambda *a, done=done, real=real: done.append(real(*a)) or done[-1])
        burst(run)
        p.tick()
        assert (True in done) == (way == "columns")  # most of the burst went by columns
        folded[way] = {
            "series": p.series_points(), "texts": dict(p._texts), "axes": dict(p._axes),
            "media": {k: [step for step, _ in v] for k, v in p._media.items()},
            "clock": p._clock.points(), "cell": getattr(p, "_last_cell", None),
        }  # fmt: skip
        run.finish()
    columns, values = folded["columns"], folded["values"]
    assert columns["series"].keys() == values["series"].keys()
    for key, (xs, ys) in values["series"].items():
        assert columns["series"][key][0] == xs, key
        assert columns["series"][key][1] == pytest.approx(ys), key
    assert columns["texts"] == values["texts"] and columns["texts"]["note"] == "step 2999"
    assert columns["axes"] == values["axes"] == {"val/acc": "epoch"}
    assert columns["media"] == values["media"] == {"hist": [0, 1000, 2000]}
    for clock in (columns["clock"], values["clock"]):  # bounded at 1,000 points: bucketed, so compared by ends
        assert clock[0][0] == 0 and clock[0][-1] == 3_199 and len(clock[0]) <= 1000 and clock[1] == sorted(clock[1])


def test_each_update_carries_only_new_points_whatever_the_log_rate(make_panel):
    """The pump sends at most one message per tick, however many rows came in between,
    and each carries only the points the view lacks (the cap bounds them)."""
    run, p = make_panel(settings={"system_interval": 0})
    panel_module.PanelPump.get().remove(p)  # this test ticks by hand
    total = 0
    for burst in (5_000, 1, 30_000, 0, 2_000):
        for _ in range(burst):
            run.log({"loss": 1 / (total + 1), "acc": total * 1e-6})
            total += 1
        before = len([m for m in p.comm.custom() if m["type"] == "delta"])
        p.tick()
        deltas = [m for m in p.comm.custom() if m["type"] == "delta"]
        assert len(deltas) - before == (1 if burst else 0)  # one message per tick at most, none when idle
        if burst:
            loss = deltas[-1]["series"]["loss"]
            shown = len((loss.get("reset") or loss.get("append"))[0]) + len(loss.get("tail", [[]])[0])
            assert shown <= 1000
    xs, _ = p.series_points()["loss"]
    assert xs[-1] == total - 1 and len(xs) <= 1000


def test_header_and_summary_follow_the_run(make_panel):
    run, p = make_panel(name="watched")
    run.log({"loss": 0.5, "note": "warming up"})
    p.tick()
    (delta,) = [m for m in p.comm.custom() if m["type"] == "delta"]
    assert delta["summary"] == {"loss": 0.5, "note": "warming up"} and delta["texts"] == {"note": "warming up"}
    assert p.step == 1 and p.rows == 1 and p.state == "running"
    p.tick()
    assert len([m for m in p.comm.custom() if m["type"] == "delta"]) == 1  # nothing new: no message
    run.finish()
    p.tick()
    assert p.state == "finished" and p.finished_at is not None
    user = {k: v for k, v in p.snapshot.items() if not k.startswith("system/")}
    assert user == {"loss": [[0], [0.5]]} and p.summary["note"] == "warming up"
    assert "system/process_rss_megabytes" in p.snapshot  # the sample taken at finish
    assert not [k for k in p.summary if k.startswith("system/")]


def test_a_tick_while_finish_is_under_way_leaves_the_last_system_sample_to_come(make_panel):
    # The pump ticks on its own thread and may do so between finish()'s steps: the run is
    # already finished (rows refused) when the sampler takes its last sample.
    run, p = make_panel()
    run.log({"loss": 0.5})
    stop_sampler, seen = run._stop_sampler, []

    def tick_first():
        seen.append(run.finished)
        p.tick()  # what the pump may do at this moment
        stop_sampler()

    run._stop_sampler = tick_first
    run.finish()
    assert seen == [True]
    p.tick()
    assert p.state == "finished" and p.snapshot["loss"] == [[0], [0.5]]
    assert "system/process_rss_megabytes" in p.snapshot  # the last sample, folded in


def test_a_new_view_gets_a_snapshot(make_panel):
    run, p = make_panel()
    for i in range(5):
        run.log({"x": float(i)})
    p._on_front_end_msg(p, {"type": "hello"}, [])
    snap = [m for m in p.comm.custom() if m["type"] == "snapshot"][-1]
    assert snap["series"]["x"] == {"reset": [[0, 1, 2, 3, 4], [0.0, 1.0, 2.0, 3.0, 4.0]], "tail": [[], []]}
    p.tick()
    assert not [m for m in p.comm.custom() if m["type"] == "delta" and "x" in m.get("series", {})]


def test_a_failing_panel_never_reaches_the_users_loop(make_panel, recwarn):
    """A front end that is gone makes each update fail: logging goes on, every row is
    stored, and the failure is reported once."""
    run, p = make_panel()

    class Broken(RecordingComm):
        def send(self, *args, **kwargs):
            raise RuntimeError("the front end is gone")

    p.comm = Broken()
    for i in range(2000):
        run.log({"x": i})  # logging goes on
    assert wait_for(lambda: any("updating a run panel failed" in str(w.message) for w in recwarn), timeout=60)
    run.finish()
    assert run.state == "finished"
    assert len(nbtrack.Api(run.store_dir).run(f"panel/{run.id}").rows()) == 2000
    assert len([w for w in recwarn if "updating a run panel failed" in str(w.message)]) == 1


def test_a_rename_new_tags_notes_and_config_show_at_once(make_panel):
    run, p = make_panel(name="first", tags=["a"])
    assert (p.name, p.tags, p.notes) == ("first", ["a"], None)
    run.name = "second"
    run.tags = ("a", "b")
    run.notes = "lr too high?"
    run.config.update({"lr": 0.5})
    # on the changing thread, without waiting for the pump
    assert (p.name, p.tags, p.notes, p.config) == ("second", ["a", "b"], "lr too high?", {"lr": 0.5})
    sent = {k: v for state in p.comm.updates() for k, v in state.items()}
    assert sent["name"] == "second" and sent["tags"] == ["a", "b"] and sent["notes"] == "lr too high?"
    assert sent["config"] == {"lr": 0.5}


def test_non_finite_values_stay_out_of_charts(make_panel):
    run, p = make_panel()
    run.log({"x": float("nan"), "y": 1.0})
    run.log({"x": 2.0, "y": float("inf")})
    points = p.series_points()
    assert points["x"] == ([1], [2.0]) and points["y"] == ([0], [1.0])


def test_max_points_is_validated(make_panel):
    _run, p = make_panel()
    with pytest.raises(Exception, match="at least 8"):
        p.max_points = 3


def test_system_samples_are_charted_against_seconds(make_panel):
    run, p = make_panel(settings={"system_interval": 0.05})
    for i in range(3):
        run.log({"loss": float(i)})
    assert wait_for(lambda: run._sampler is not None and run._sampler.samples >= 3)
    p.tick()  # the pump thread may have sent part already: put the deltas together
    deltas = [m for m in p.comm.custom() if m["type"] == "delta"]
    xs = [x for d in deltas for x in d["series"].get("system/cpu_utilization_percentage", {}).get("append", [[]])[0]]
    assert len(xs) >= 2 and xs == sorted(xs) and all(isinstance(x, float) and 0 < x < 30 for x in xs)
    steps = [x for d in deltas for x in d["series"].get("loss", {}).get("append", [[]])[0]]
    assert steps == [0, 1, 2]  # the user's charts keep their steps
    assert not [k for d in deltas for k in d.get("summary", {}) if k.startswith("system/")]


def test_media_reach_the_panel_and_files_are_served_on_request(make_panel):
    import base64

    import numpy as np

    run, p = make_panel()
    first = np.zeros((4, 4), dtype=np.uint8)
    for i in range(3):
        run.log(
            {
                "loss": float(i),
                "val/samples": nbtrack.Image(first + i, caption=f"epoch {i}"),
                "weights": nbtrack.Histogram(np.arange(10) * i, num_bins=5),
            }
        )
    p.tick()
    deltas = [m for m in p.comm.custom() if m["type"] == "delta"]
    media = {}
    for d in deltas:
        for key, items in d.get("media", {}).items():
            media.setdefault(key, []).extend(items)
    assert [step for step, _ in media["val/samples"]] == [0, 1, 2]
    assert media["val/samples"][2][1][0]["caption"] == "epoch 2"
    assert media["weights"][1][1][0]["values"] == [2, 2, 2, 2, 2]
    assert "val/samples" not in {k for d in deltas for k in d.get("texts", {})}  # media are not text values
    # a view asks for a file it was told about: the bytes come as a binary buffer
    path = media["val/samples"][1][1][0]["path"]
    p._on_front_end_msg(p, {"type": "file", "key": "val/samples", "path": path}, [])
    reply = p.comm.custom()[-1]
    assert reply == {"type": "file", "key": "val/samples", "path": path, "mime": "image/png"}
    assert bytes(p.comm.buffers[-1][0]) == (run._folder / path).read_bytes()
    # anything else (another file of the run folder, a path outside it) is refused
    for key, bad in [("val/samples", "../../nbtrack.db"), ("weights", path), ("val/samples", "code/program.py")]:
        p._on_front_end_msg(p, {"type": "file", "key": key, "path": bad}, [])
        assert p.comm.custom()[-1]["error"] == "not available" and not p.comm.buffers[-1]
    # a new view gets every item; a finished panel embeds each key's latest image
    p._on_front_end_msg(p, {"type": "hello"}, [])
    snap = [m for m in p.comm.custom() if m["type"] == "snapshot"][-1]
    assert len(snap["media"]["val/samples"]) == 3
    run.finish()
    p.tick()
    assert p.wait_final(60)  # the pump thread may be the one finalizing: its final state is in the traits
    final = p.media["val/samples"]
    assert [step for step, _ in final] == [0, 1, 2] and "src" not in final[0][1][0]
    src = final[-1][1][0]["src"]
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]) == (run._folder / final[-1][1][0]["path"]).read_bytes()
    assert p.summary["val/samples"].startswith("image media/")


def test_define_metric_sets_the_x_axis_and_hides_keys(make_panel):
    run, panel = make_panel()
    run.define_metric("epoch", hidden=True)
    run.define_metric("val/*", step_metric="epoch")
    for epoch in range(4):
        run.log({"train/loss": 1.0 / (epoch + 1)})
        run.log({"epoch": epoch * 10})
        run.log({"val/acc": epoch / 4})
    points = panel.series_points()
    assert "epoch" not in points  # hidden
    assert points["val/acc"][0] == [0, 10, 20, 30]  # against epoch, not the step
    assert points["train/loss"][0] == [0, 3, 6, 9]  # the step
    panel.tick()
    assert panel.axes == {"val/acc": "epoch"}


def test_alerts_reach_the_panel_at_once_and_stay_when_finished(make_panel):
    run, panel = make_panel()
    run.alert("Diverged", "loss is nan", level="ERROR")
    assert [(a["level"], a["title"]) for a in panel.alerts] == [("ERROR", "Diverged")]
    assert any("alerts" in u for u in panel.comm.updates())
    run.finish()
    panel.finalize()
    assert panel.alerts[0]["text"] == "loss is nan"


def test_image_masks_are_served_and_embedded_with_their_image(make_panel):
    np = pytest.importorskip("numpy")
    run, panel = make_panel()
    mask = np.zeros((4, 4), dtype=np.int64)
    mask[1:3, 1:3] = 2
    image = nbtrack.Image(np.zeros((4, 4, 3), dtype=np.uint8), masks={"pred": {"mask_data": mask}})
    run.log({"seg": image})
    panel.tick()
    ref = panel.media_items()["seg"][-1][1][0]
    mask_path = ref["masks"]["pred"]["path"]
    pushed = [f["path"] for m in panel.comm.custom() for f in m.get("files", [])]
    assert mask_path in pushed  # pushed with the image while the cell runs
    panel._send_file("seg", mask_path)
    assert panel.comm.custom()[-1]["mime"] == "image/png"
    panel._send_file("seg", "../../etc/passwd")
    assert panel.comm.custom()[-1]["error"] == "not available"
    run.finish()
    panel.finalize()
    final = panel.media["seg"][-1][1][0]
    assert final["src"].startswith("data:image/png;base64,")
    assert final["masks"]["pred"]["src"].startswith("data:image/png;base64,")
