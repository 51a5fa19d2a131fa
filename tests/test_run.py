import math
import warnings

import pytest
from conftest import read_run

import nbtrack
from nbtrack.active_run import StepWarning


@pytest.fixture
def run(store_dir):
    r = nbtrack.init(project="p", dir=store_dir)
    yield r
    r.finish()


def history(store_dir, run, **kw):
    run.finish()
    return read_run(store_dir, run.project, run.id).rows(**kw)


def strip(rows):
    return [{k: v for k, v in r.items() if k not in ("_timestamp", "_runtime")} for r in rows]


def test_run_attributes(store_dir):
    run = nbtrack.init(
        project="p",
        entity="team",
        dir=store_dir,
        name="n",
        notes="why",
        tags=["t"],
        group="g",
        job_type="train",
        config={"a": 1},
    )
    assert (run.project, run.entity, run.name, run.notes, run.group, run.job_type) == (
        "p",
        "team",
        "n",
        "why",
        "g",
        "train",
    )
    assert run.path == f"team/p/{run.id}"
    assert run.state == "running" and run.step == 0 and run.resumed is False
    assert run.dir == str(store_dir.absolute() / "nbtrack" / "runs" / "p" / run.id)
    assert isinstance(run.start_time, float)
    assert run.config.a == 1 and dict(run.summary.items()) == {}


def test_steps_auto_increment(store_dir, run):
    run.log({"a": 1})
    run.log({"a": 2})
    assert run.step == 2
    assert strip(history(store_dir, run)) == [{"_step": 0, "a": 1}, {"_step": 1, "a": 2}]


def test_commit_false_accumulates(store_dir, run):
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, commit=False)
    assert run.step == 0
    run.log({"c": 3})
    run.log({"a": 4})
    assert strip(history(store_dir, run)) == [{"_step": 0, "a": 1, "b": 2, "c": 3}, {"_step": 1, "a": 4}]


def test_explicit_step_opens_and_merges_rows(store_dir, run):
    run.log({"a": 1}, step=5)
    run.log({"b": 2}, step=5)  # same step: merged into the open row
    assert run.step == 5
    run.log({"a": 3}, step=7)  # a higher step commits step 5
    run.log({"c": 9})  # no step: goes into the open row at 7 and commits it
    assert run.step == 8
    run.log({"a": 4}, step=10, commit=True)
    assert run.step == 11
    assert strip(history(store_dir, run)) == [
        {"_step": 5, "a": 1, "b": 2},
        {"_step": 7, "a": 3, "c": 9},
        {"_step": 10, "a": 4},
    ]


def test_lower_step_is_dropped_with_a_warning(store_dir, run):
    run.log({"a": 1}, step=3)
    with pytest.warns(StepWarning, match=r"log\(step=1\) is lower than the run's current step 3"):
        run.log({"a": 99}, step=1)
    assert run.summary["a"] == 1  # the dropped row did not reach the summary either
    assert strip(history(store_dir, run)) == [{"_step": 3, "a": 1}]


def test_finish_commits_the_open_row(store_dir, run):
    run.log({"a": 1}, step=2)
    assert strip(history(store_dir, run)) == [{"_step": 2, "a": 1}]


@pytest.mark.parametrize("data", [[1, 2], "loss", 3.0, None])
def test_non_dict_data_is_a_type_error(run, data):
    with pytest.raises(TypeError, match="log: data must be a dict"):
        run.log(data)


def test_non_string_keys_are_a_type_error(store_dir, run):
    with pytest.raises(TypeError, match=r"keys must be strings, got 1 \(int\)"):
        run.log({1: 0.5, "ok": 1})
    assert history(store_dir, run) == []  # nothing of that call was logged


def test_bad_step_type(run):
    np = pytest.importorskip("numpy")
    with pytest.raises(TypeError, match="step must be an integer"):
        run.log({"a": 1}, step=1.5)
    run.log({"a": 1}, step=np.int64(4))
    assert run.step == 4


def test_numpy_and_tensor_like_values_become_scalars(store_dir, run):
    np = pytest.importorskip("numpy")
    run.log({"f": np.float32(0.25), "i": np.int64(3), "b": np.bool_(False), "zero_d": np.array(1.5)})
    assert run.summary["f"] == 0.25 and type(run.summary["i"]) is int
    (row,) = strip(history(store_dir, run))
    assert row == {"_step": 0, "f": 0.25, "i": 3, "b": False, "zero_d": 1.5}
    assert type(row["i"]) is int and type(row["b"]) is bool


def test_torch_zero_d_tensor(store_dir, run):
    torch = pytest.importorskip("torch")
    run.log({"t": torch.tensor(0.5)})
    assert strip(history(store_dir, run)) == [{"_step": 0, "t": 0.5}]


def test_nan_and_inf_are_kept(store_dir, run):
    run.log({"nan": float("nan"), "inf": float("inf"), "ninf": -math.inf})
    (row,) = history(store_dir, run)
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["ninf"] == -math.inf


def test_nested_dicts_are_flattened(store_dir, run):
    run.log({"train": {"loss": 0.1, "acc": 0.9}, "lr": 0.01})
    assert strip(history(store_dir, run)) == [{"_step": 0, "train/loss": 0.1, "train/acc": 0.9, "lr": 0.01}]


def test_unloggable_value_names_key_and_keeps_the_rest(store_dir, run):
    with pytest.raises(TypeError, match=r"cannot log 'obj' \(builtins.object\)"):
        run.log({"obj": object(), "loss": 0.5})
    assert strip(history(store_dir, run)) == [{"_step": 0, "loss": 0.5}]


def test_reserved_keys(run):
    with pytest.raises(nbtrack.UsageError, match="reserved"):
        run.log({"_step": 3})


def test_summary_holds_last_values_and_can_be_set(store_dir, run):
    run.log({"loss": 1.0, "acc": 0.1})
    run.log({"loss": 0.5})
    run.summary["best_acc"] = 0.9
    run.summary.update({"note": "ok"})
    assert run.summary["loss"] == 0.5 and run.summary.acc == 0.1
    run.finish()
    assert read_run(store_dir, "p", run.id).summary == {"loss": 0.5, "acc": 0.1, "best_acc": 0.9, "note": "ok"}


def test_finish_states_and_idempotence(store_dir):
    ok = nbtrack.init(project="p", dir=store_dir)
    ok.finish()
    ok.finish(exit_code=3)  # a second call changes nothing
    assert ok.state == "finished"
    assert read_run(store_dir, "p", ok.id).state == "finished"
    bad = nbtrack.init(project="p", dir=store_dir)
    bad.finish(exit_code=2)
    record = read_run(store_dir, "p", bad.id)
    assert (bad.state, record.state, record.exit_code) == ("failed", "failed", 2)
    zero = nbtrack.init(project="p", dir=store_dir)
    zero.finish(exit_code=0)
    assert read_run(store_dir, "p", zero.id).state == "finished"
    with pytest.raises(nbtrack.UsageError, match="exit_code must be an integer"):
        nbtrack.init(project="p", dir=store_dir).finish(exit_code="bad")


def test_context_manager(store_dir):
    with nbtrack.init(project="p", dir=store_dir) as run:
        run.log({"a": 1})
    assert read_run(store_dir, "p", run.id).state == "finished"
    with pytest.raises(ZeroDivisionError):
        with nbtrack.init(project="p", dir=store_dir) as failing:
            failing.log({"a": 1})
            1 / 0
    record = read_run(store_dir, "p", failing.id)
    assert (record.state, record.exit_code) == ("failed", 1)
    assert len(record.rows()) == 1


def test_writes_after_finish_raise_and_reads_work(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, config={"lr": 0.1})
    run.log({"a": 1})
    run.finish()
    for write in (
        lambda: run.log({"a": 2}),
        lambda: run.config.update({"b": 1}),
        lambda: setattr(run.config, "lr", 0.2),
        lambda: run.summary.update({"x": 1}),
        lambda: run.summary.__setitem__("x", 1),
        lambda: setattr(run, "tags", ("t",)),
        lambda: setattr(run, "notes", "late"),
    ):
        with pytest.raises(nbtrack.UsageError, match="is finished"):
            write()
    assert run.config.lr == 0.1 and run.summary["a"] == 1 and run.step == 1 and run.tags == ()


def test_module_level_api(store_dir):
    with pytest.raises(nbtrack.Error, match=r"call nbtrack.init\(\) first"):
        nbtrack.log({"a": 1})
    assert nbtrack.run is None
    with pytest.raises(nbtrack.Error, match=r"call nbtrack.init\(\) first"):
        nbtrack.config.lr
    run = nbtrack.init(project="p", dir=store_dir, config={"lr": 0.3})
    assert nbtrack.run is run
    assert nbtrack.config.lr == 0.3 and nbtrack.config is run.config
    nbtrack.log({"loss": 0.2})
    assert nbtrack.summary["loss"] == 0.2
    nbtrack.finish()
    assert nbtrack.run is None and run.state == "finished"
    assert len(read_run(store_dir, "p", run.id).rows()) == 1
    nbtrack.finish()  # nothing to finish: no error


def test_notes_and_name_can_change_while_running(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, name="before")
    run.name = "after"
    run.notes = "changed"
    run.finish()
    record = read_run(store_dir, "p", run.id)
    assert (record.name, record.notes) == ("after", "changed")
    with pytest.raises(nbtrack.UsageError, match="name: expected a non-empty string"):
        nbtrack.init(project="p", dir=store_dir).name = ""


def test_no_warning_on_the_normal_path(store_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with nbtrack.init(project="p", dir=store_dir) as run:
            for i in range(100):
                run.log({"x": i})


def test_finish_says_where_the_run_is_unless_quiet(store_dir, capsys, monkeypatch):
    monkeypatch.delenv("NBTRACK_QUIET")
    run = nbtrack.init(project="p", dir=store_dir, name="loud")
    run.log({"a": 1})
    run.finish()
    quiet = nbtrack.init(project="p", dir=store_dir, name="hushed")
    quiet.finish(quiet=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if " rows; data in " in line]
    assert lines == [f"nbtrack: run loud ({run.id}) finished: 1 rows; data in {run.dir}"]


def test_every_warning_is_an_nbtrack_warning(store_dir):
    run = nbtrack.init(project="p", dir=store_dir)
    run.log({"a": 1}, step=5)
    with pytest.warns(nbtrack.NbtrackWarning, match="lower than the run's current step"):
        run.log({"a": 2}, step=1)  # a StepWarning is one
    assert issubclass(nbtrack.active_run.StepWarning, nbtrack.NbtrackWarning)
    assert issubclass(nbtrack.NbtrackWarning, UserWarning)
