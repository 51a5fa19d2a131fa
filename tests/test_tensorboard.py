"""sync_tensorboard: real tensorboardX and torch SummaryWriters writing real event files;
the values read back through nbtrack.Api and the event files found in the run folder."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
from conftest import run_python

import nbtrack
from nbtrack import NbtrackWarning

np = pytest.importorskip("numpy")
tensorboardX = pytest.importorskip("tensorboardX")


def _events(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars in an event file, read with TensorBoard's own loader."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    out: dict[str, list] = {}
    for event in EventFileLoader(str(path)).Load():
        for value in event.summary.value:
            if value.HasField("simple_value"):
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
            elif value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars":
                out.setdefault(value.tag, []).append((event.step, float(make_ndarray(value.tensor))))
    return out


def _record(store_dir, run):
    return nbtrack.Api(str(store_dir)).run(f"tb/{run.id}")


def test_tensorboardx_writes_land_in_the_run(store_dir, tmp_path):
    logdir = tmp_path / "tb" / "exp1"
    weights = np.random.RandomState(0).normal(size=1000)
    image = np.random.RandomState(1).randint(0, 256, (3, 8, 10), dtype=np.uint8)
    run = nbtrack.init(project="tb", dir=str(store_dir), sync_tensorboard=True, config={"seed": 1})
    writer = tensorboardX.SummaryWriter(logdir=str(logdir))
    for i in range(10):
        writer.add_scalar("train/loss", 1.0 / (i + 1), i)
        writer.add_scalars("acc", {"train": i / 10, "val": i / 20}, i)
        if i == 5:
            writer.add_histogram("weights", weights, i)
            writer.add_image("sample", image, i)
    writer.add_hparams({"lr": 0.01, "optimizer": "adam"}, {"hparam/score": 0.75})
    writer.close()
    run.finish()

    record = _record(store_dir, run)
    rows = record.rows()
    assert [r["_step"] for r in rows] == list(range(10))
    assert [r["train/loss"] for r in rows] == [1.0 / (i + 1) for i in range(10)]
    assert [r["acc/val"] for r in rows] == [i / 20 for i in range(10)]
    counts, _ = np.histogram(weights, bins=64)
    assert rows[5]["weights"].kind == "histogram" and rows[5]["weights"]["values"] == counts.tolist()
    np.testing.assert_array_equal(rows[5]["sample"].to_numpy(), image.transpose(1, 2, 0))
    assert record.config == {"seed": 1, "lr": 0.01, "optimizer": "adam"}
    assert record.summary["hparam/score"] == 0.75
    assert not [r for r in rows if "hparam/score" in r]  # add_hparams' own inner writer is not captured
    # the event files are saved with the run, the same bytes TensorBoard wrote
    saved = sorted((Path(run.dir) / "tensorboard" / "exp1").rglob("*tfevents*"))
    written = sorted(logdir.rglob("*tfevents*"))
    assert len(saved) == len(written) >= 2  # the writer's file and the hparams session's
    assert [p.read_bytes() for p in saved] == [p.read_bytes() for p in written]
    main = next(p for p in saved if p.parent.name == "exp1")
    assert _events(main)["train/loss"] == [(i, pytest.approx(1.0 / (i + 1))) for i in range(10)]


def test_torch_summary_writer_patched_when_imported_after_init(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    out = run_python(f"""
        import sys, json, nbtrack
        run = nbtrack.init(project="tb", dir={str(tmp_path / "s")!r}, sync_tensorboard=True)
        before = "torch" in sys.modules
        import torch
        from torch.utils.tensorboard import SummaryWriter
        w = SummaryWriter(log_dir={str(tmp_path / "runs" / "torch1")!r})
        for i in range(0, 30, 3):
            w.add_scalar("loss", torch.tensor(1.0 / (i + 1)), global_step=i)
        w.add_histogram("w", torch.arange(100, dtype=torch.float32), 27)
        w.add_hparams({{"lr": 0.1, "layers": 3}}, {{"hp/acc": 0.5}})
        w.flush()
        run.finish()
        r = nbtrack.Api({str(tmp_path / "s")!r}).run("tb/" + run.id)
        print(json.dumps({{"before": before, "rows": [[h["_step"], h["loss"]] for h in r.rows(keys=["loss"])],
                           "hist": r.rows(keys=["w"])[0]["w"]["values"][:3], "config": r.config,
                           "summary": r.summary.get("hp/acc"), "dir": run.dir}}))
    """)
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["before"] is False  # asking for sync_tensorboard did not import torch
    assert [s for s, _ in got["rows"]] == list(range(0, 30, 3))
    assert [v for _, v in got["rows"]] == pytest.approx([1.0 / (i + 1) for i in range(0, 30, 3)])
    assert sum(got["hist"]) > 0 and got["config"] == {"lr": 0.1, "layers": 3} and got["summary"] == 0.5
    saved = list((Path(got["dir"]) / "tensorboard" / "torch1").glob("*tfevents*"))
    assert len(saved) == 1 and [s for s, _ in _events(saved[0])["loss"]] == list(range(0, 30, 3))


def test_patched_once_and_undone_when_no_run_needs_it(store_dir, tmp_path):
    cls = tensorboardX.SummaryWriter
    original = cls.__dict__["add_scalar"]
    first = nbtrack.init(project="tb", dir=str(store_dir), sync_tensorboard=True)
    patched = cls.__dict__["add_scalar"]
    assert patched is not original and patched.__nbtrack_original__ is original
    second = nbtrack.init(project="tb", dir=str(store_dir), sync_tensorboard=True, reinit="create_new")
    assert cls.__dict__["add_scalar"] is patched  # not wrapped twice
    w = tensorboardX.SummaryWriter(logdir=str(tmp_path / "two"))
    w.add_scalar("x", 1.0, 0)  # the newest run gets the values
    second.finish()
    w.add_scalar("x", 2.0, 1)  # ... then the one still running
    assert cls.__dict__["add_scalar"] is patched
    first.finish()
    assert cls.__dict__["add_scalar"] is original
    w.add_scalar("x", 3.0, 2)  # no run: TensorBoard alone
    w.close()
    assert [r["x"] for r in _record(store_dir, second).rows()] == [1.0]
    assert [(r["_step"], r["x"]) for r in _record(store_dir, first).rows()] == [(1, 2.0)]
    plain = nbtrack.init(project="tb", dir=str(store_dir))
    assert cls.__dict__["add_scalar"] is original  # a run without sync_tensorboard patches nothing
    plain.finish()


def test_a_failure_in_nbtrack_never_breaks_the_writer(store_dir, tmp_path, monkeypatch):
    run = nbtrack.init(project="tb", dir=str(store_dir), sync_tensorboard=True)

    def broken(*args, **kwargs):
        raise RuntimeError("store exploded")

    monkeypatch.setattr(run, "log", broken)
    w = tensorboardX.SummaryWriter(logdir=str(tmp_path / "fail"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(5):
            w.add_scalar("loss", float(i), i)  # returns normally every time
    w.close()
    mine = [c for c in caught if issubclass(c.category, NbtrackWarning)]
    assert len(mine) == 1 and "store exploded" in str(mine[0].message) and "add_scalar" in str(mine[0].message)
    (events,) = (tmp_path / "fail").glob("*tfevents*")
    assert [s for s, _ in _events(events)["loss"]] == [0, 1, 2, 3, 4]  # TensorBoard got everything
    monkeypatch.undo()
    run.finish()


def test_a_global_step_behind_the_run_joins_the_current_row(store_dir, tmp_path):
    run = nbtrack.init(project="tb", dir=str(store_dir), sync_tensorboard=True)
    w = tensorboardX.SummaryWriter(logdir=str(tmp_path / "epochs"))
    for batch in range(4):
        w.add_scalar("train/loss", 1.0, batch * 10)
    with pytest.warns(NbtrackWarning, match="global_step 0 is lower than run .*'s step 30"):
        w.add_scalar("val/loss", 0.5, 0)  # an epoch counter beside a batch counter
    w.add_scalar("val/acc", 0.9)  # no global_step: the current row too
    w.close()
    run.finish()
    rows = _record(store_dir, run).rows()
    assert [r["_step"] for r in rows] == [0, 10, 20, 30]  # no value lost, none moved back
    assert rows[-1] == {**rows[-1], "train/loss": 1.0, "val/loss": 0.5, "val/acc": 0.9}


def test_without_tensorboard_libraries_init_names_the_package(store_dir, monkeypatch):
    for name in ("tensorboardX", "torch"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails, as when not installed
    with pytest.raises(nbtrack.UsageError, match=r"sync_tensorboard=True: .*pip install tensorboardX"):
        nbtrack.init(project="tb", dir=str(store_dir), sync_tensorboard=True)
    assert nbtrack.Api(str(store_dir)).runs("tb") == []  # no run was made
    with pytest.raises(nbtrack.UsageError, match=r"sync_tensorboard=True"), pytest.warns(DeprecationWarning):
        nbtrack.init(project="tb", dir=str(store_dir), tensorboard=True)
