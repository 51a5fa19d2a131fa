"""reinit, resume, rewind (resume_from) and fork (fork_from), against real stores and processes."""

import signal
import threading
import time

import pytest
from conftest import read_run, run_python, spawn_python

import nbtrack
from nbtrack import NbtrackWarning, events


def steps(record, key=None):
    return [r["_step"] for r in record.rows(keys=[key] if key else None)]


# ------------------------------------------------------------------ reinit
def test_finish_previous_finishes_all_active_runs_in_order(store_dir, capsys, monkeypatch):
    monkeypatch.delenv("NBTRACK_QUIET")
    a = nbtrack.init(project="p", dir=store_dir, name="first")
    b = nbtrack.init(project="p", dir=store_dir, name="second", reinit="create_new")
    finish_order = []
    unsubscribe = events.bus.subscribe(events.RUN_ENDING, lambda run: finish_order.append(run.name))
    try:
        c = nbtrack.init(project="p", dir=store_dir, name="third", reinit="finish_previous")
    finally:
        unsubscribe()
    assert finish_order == ["first", "second"]
    assert (a.state, b.state, c.state) == ("finished", "finished", "running")
    assert nbtrack.run is c
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nbtrack: finished")]
    assert lines == [f"nbtrack: finished first ({a.id}), second ({b.id}) before starting a new run"]
    assert read_run(store_dir, "p", a.id).state == "finished"


def test_return_previous_returns_the_active_run_and_warns_about_ignored_arguments(store_dir):
    a = nbtrack.init(project="p", dir=store_dir, name="keep", config={"lr": 0.1})
    with pytest.warns(NbtrackWarning, match=r"these arguments were ignored: name, tags, config") as caught:
        same = nbtrack.init(
            project="p", dir=store_dir, name="other", tags=["x"], config={"lr": 0.5}, reinit="return_previous"
        )
    assert same is a and a.name == "keep" and a.config.lr == 0.1
    assert len(caught) == 1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # identical arguments: no warning
        assert nbtrack.init(project="p", dir=store_dir, name="keep", reinit="return_previous") is a


def test_return_previous_reports_ignored_lifecycle_arguments(store_dir, source):
    active = nbtrack.init(project="p", dir=store_dir)
    with pytest.warns(NbtrackWarning, match="ignored: resume_from"):
        assert nbtrack.init(project="p", dir=store_dir, resume_from="src?_step=2", reinit="return_previous") is active


def test_create_new_keeps_others_running_and_leaves_nbtrack_run(store_dir):
    first = nbtrack.init(project="p", dir=store_dir)
    assert nbtrack.run is first
    second = nbtrack.init(project="p", dir=store_dir, reinit="create_new")
    assert nbtrack.run is first and second is not first
    assert first.state == second.state == "running"
    first.finish()
    assert nbtrack.run is None  # create_new runs never become the module-level run
    solo = nbtrack.init(project="q", dir=store_dir, reinit="create_new")
    assert nbtrack.run is None and solo.state == "running"


def test_create_new_runs_log_from_threads_without_mixing(store_dir):
    runs = [nbtrack.init(project="p", dir=store_dir, name=f"t{i}", reinit="create_new") for i in range(4)]
    barrier = threading.Barrier(len(runs))

    def work(run, index):
        barrier.wait()
        for step in range(3000):
            run.log({"owner": index, "step_seen": step})

    threads = [threading.Thread(target=work, args=(r, i)) for i, r in enumerate(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for run in runs:
        run.finish()
    for index, run in enumerate(runs):
        rows = read_run(store_dir, "p", run.id).rows()
        assert [r["_step"] for r in rows] == list(range(3000))
        assert {r["owner"] for r in rows} == {index}
        assert [r["step_seen"] for r in rows] == list(range(3000))


def test_default_reinit_in_a_script_returns_previous():
    out = run_python("""
        import os, tempfile, nbtrack
        d = tempfile.mkdtemp()
        a = nbtrack.init(project="p", dir=d)
        b = nbtrack.init(project="p", dir=d)
        os.environ["NBTRACK_REINIT"] = "create_new"
        c = nbtrack.init(project="p", dir=d)
        print(a is b, a is c, a.state, c.state)
    """)
    assert out.stdout.split() == ["True", "False", "running", "running"]


def test_reinit_in_a_real_kernel(kernel):
    out = kernel.run("""
import nbtrack, threading, tempfile
d = tempfile.mkdtemp()
a = nbtrack.init(project="p", dir=d)
b = nbtrack.init(project="p", dir=d)          # default in a kernel: finish_previous
print("default", a.state, b.state, a is b, nbtrack.run is b)
b.config.lr = 1; b.config.lr = 2               # allow_val_change defaults to True in a kernel
c = nbtrack.init(project="p", dir=d, reinit="create_new")
e = nbtrack.init(project="p", dir=d, reinit="create_new")
def work(run, n):
    for i in range(2000):
        run.log({"who": n})
ts = [threading.Thread(target=work, args=(r, n)) for n, r in enumerate((c, e))]
[t.start() for t in ts]; [t.join() for t in ts]
c.finish(); e.finish()
api = nbtrack.Api(d)
print("threads", [sorted({r["who"] for r in api.run("p/" + x.id).rows()}) for x in (c, e)],
      [len(api.run("p/" + x.id).rows()) for x in (c, e)], nbtrack.run is b, b.config.lr)
""")
    assert "default finished running False True" in out
    assert "threads [[0], [1]] [2000, 2000] True 2" in out


def test_a_cell_that_raises_does_not_end_the_run(kernel):
    kernel.run("import nbtrack, tempfile\nrun = nbtrack.init(project='p', dir=tempfile.mkdtemp())")
    _out, error = kernel.execute("run.log({'a': 1})\n1 / 0")
    assert error is not None and error["ename"] == "ZeroDivisionError"
    assert "running 1" in kernel.run("run.log({'a': 2}); print(run.state, run.summary['a'] - 1)")


# ------------------------------------------------------------------ resume
def test_resume_allow(store_dir):
    created = nbtrack.init(project="p", id="runallow", dir=store_dir, resume="allow")
    assert created.resumed is False
    created.log({"a": 1})
    created.finish()
    again = nbtrack.init(project="p", id="runallow", dir=store_dir, resume="allow")
    assert again.resumed is True and again.step == 1
    again.log({"a": 2})
    again.finish()
    record = read_run(store_dir, "p", "runallow")
    assert steps(record) == [0, 1] and record.resumed is True and record.resume_count == 1


def test_resume_never(store_dir):
    nbtrack.init(project="p", id="neverid", dir=store_dir, resume="never").finish()
    with pytest.raises(nbtrack.UsageError, match="resume='never': run 'neverid' already exists.*leave out id="):
        nbtrack.init(project="p", id="neverid", dir=store_dir, resume="never")


def test_resume_must(store_dir):
    with pytest.raises(nbtrack.UsageError, match="resume='must': no run 'ghost' in project 'p' to resume"):
        nbtrack.init(project="p", id="ghost", dir=store_dir, resume="must")
    with pytest.raises(nbtrack.UsageError, match="resume='must' needs the id"):
        nbtrack.init(project="p", dir=store_dir, resume="must")
    nbtrack.init(project="p", id="mustid", dir=store_dir).finish()
    run = nbtrack.init(project="p", id="mustid", dir=store_dir, resume="must")
    assert run.resumed


def test_resume_must_takes_the_id_from_the_environment(store_dir, monkeypatch):
    nbtrack.init(project="p", id="envmust", dir=store_dir).finish()
    monkeypatch.setenv("NBTRACK_RUN_ID", "envmust")
    assert nbtrack.init(project="p", dir=store_dir, resume="must").id == "envmust"


def test_existing_id_without_resume_is_never_overwritten(store_dir):
    nbtrack.init(project="p", id="taken", dir=store_dir).finish()
    with pytest.raises(nbtrack.UsageError, match="already exists.*never overwrites a run.*resume='allow'"):
        nbtrack.init(project="p", id="taken", dir=store_dir)


def test_resume_must_while_another_run_is_active(store_dir):
    nbtrack.init(project="p", id="target", dir=store_dir).finish()
    nbtrack.init(project="p", dir=store_dir)
    with pytest.raises(nbtrack.UsageError, match="resume='must' cannot start while .* is active.*reinit='create_new'"):
        nbtrack.init(project="p", id="target", dir=store_dir, resume="must")
    run = nbtrack.init(project="p", id="target", dir=store_dir, resume="must", reinit="create_new")
    assert run.resumed


def test_a_resumed_run_restores_state(store_dir):
    run = nbtrack.init(
        project="p", id="rs", dir=store_dir, config={"lr": 0.1, "batch": 32}, tags=["old"], name="kept-name"
    )
    for i in range(5):
        run.log({"loss": 1.0 / (i + 1)})
    run.summary["best"] = 0.9
    run.finish(exit_code=1)
    back = nbtrack.init(project="p", id="rs", dir=store_dir, resume="allow", config={"lr": 0.2}, tags=["new"])
    assert back.resumed and back.step == 5 and back.state == "running"
    assert dict(back.config.items()) == {"lr": 0.2, "batch": 32}  # kept unless set again
    assert back.tags == ("new",)  # tags passed to init replace the old ones
    assert back.name == "kept-name"
    assert back.summary["best"] == 0.9 and back.summary["loss"] == 0.2
    assert read_run(store_dir, "p", "rs").state == "running"
    back.log({"loss": 0.1})
    back.finish()
    record = read_run(store_dir, "p", "rs")
    assert steps(record) == [0, 1, 2, 3, 4, 5]
    assert record.summary["best"] == 0.9 and record.state == "finished"


def test_resume_refuses_a_run_that_is_still_live_in_another_process(store_dir):
    child = spawn_python(f"""
import nbtrack, time
run = nbtrack.init(project="p", id="livebusy", dir={str(store_dir)!r})
run.flush()  # in a new folder the run is written by the writer's first round: be sure it is there
print("up", flush=True)
time.sleep(600)
""")
    try:
        assert child.stdout.readline().strip() == "up"
        with pytest.raises(nbtrack.UsageError, match=r"still running in process \d+"):
            nbtrack.init(project="p", id="livebusy", dir=store_dir, resume="allow")
    finally:
        child.kill()
        child.wait(10)
    assert nbtrack.init(project="p", id="livebusy", dir=store_dir, resume="allow").resumed


AUTO_CHILD = """
import sys, time
import nbtrack
run = nbtrack.init(project="p", dir={dir!r}, resume="auto")
start = run.step
for i in range(start, start + 500):
    run.log({{"i": i}})
print(run.id, run.resumed, start, flush=True)
if sys.argv[-1] == "crash":
    time.sleep(600)
run.finish()
"""


def _auto(dir, mode):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    return subprocess.Popen(
        [sys.executable, "-c", AUTO_CHILD.format(dir=str(dir)), mode],
        env={**os.environ, "PYTHONPATH": str(ROOT), "NBTRACK_QUIET": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_resume_auto_continues_a_killed_run_in_a_new_process(store_dir):
    first = _auto(store_dir, "crash")
    run_id, resumed, start = first.stdout.readline().split()
    assert (resumed, start) == ("False", "0")
    time.sleep(1.5)  # several flush intervals
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert read_run(store_dir, "p", run_id).state == "crashed"

    second = _auto(store_dir, "finish")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert out.split() == [run_id, "True", "500"]
    record = read_run(store_dir, "p", run_id)
    assert record.state == "finished"
    rows = record.rows()
    assert [r["_step"] for r in rows] == list(range(1000))  # nothing lost, nothing twice
    assert [r["i"] for r in rows] == list(range(1000))

    third = _auto(store_dir, "finish")  # the last run finished cleanly: a new run
    out, _ = third.communicate(timeout=60)
    new_id, resumed, start = out.split()
    assert new_id != run_id and (resumed, start) == ("False", "0")


def test_resume_auto_in_process(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, resume="auto")
    run.log({"a": 1})
    run.finish(exit_code=2)  # failed: not a clean finish
    again = nbtrack.init(project="p", dir=store_dir, resume="auto")
    assert again.id == run.id and again.resumed and again.step == 1
    again.finish()
    fresh = nbtrack.init(project="p", dir=store_dir, resume="auto")
    assert fresh.id != run.id and not fresh.resumed


def test_boolean_resume_is_deprecated(store_dir):
    with pytest.warns(DeprecationWarning, match="use resume='auto'"):
        nbtrack.init(project="p", dir=store_dir, resume=True)


# ------------------------------------------------------ rewind and fork
@pytest.fixture
def source(store_dir):
    run = nbtrack.init(project="p", id="src", dir=store_dir, config={"lr": 0.1, "depth": 4})
    for i in range(10):
        run.log({"loss": 10.0 - i, "i": i})
    run.finish()
    return run


@pytest.mark.parametrize("bad", ["src", "src?step=3", "src?_step=", "src?_step=-1", "src?_step=1.5", "?_step=3", 7])
def test_bad_points_show_the_format(bad, store_dir, source):
    for argument in ("resume_from", "fork_from"):
        with pytest.raises(nbtrack.UsageError, match=r"\{run_id\}\?_step=\{step\}.*e\.g\."):
            nbtrack.init(project="p", dir=store_dir, **{argument: bad})


def test_source_must_exist_in_the_same_project(store_dir, source):
    for argument in ("resume_from", "fork_from"):
        with pytest.raises(nbtrack.UsageError, match=f"{argument}: no run 'src' in project 'other'"):
            nbtrack.init(project="other", dir=store_dir, **{argument: "src?_step=3"})


@pytest.mark.parametrize(
    "combo",
    [
        {"resume": "allow", "resume_from": "src?_step=3"},
        {"resume": "allow", "fork_from": "src?_step=3"},
        {"resume_from": "src?_step=3", "fork_from": "src?_step=3"},
    ],
)
def test_resume_resume_from_and_fork_from_are_exclusive(store_dir, source, combo):
    with pytest.raises(nbtrack.UsageError, match="cannot be used together; pass only one of"):
        nbtrack.init(project="p", dir=store_dir, **combo)


def test_an_environment_resume_counts(store_dir, source, monkeypatch):
    monkeypatch.setenv("NBTRACK_RESUME", "allow")
    with pytest.raises(
        nbtrack.UsageError, match=r"resume and fork_from cannot be used together \(NBTRACK_RESUME is set\)"
    ):
        nbtrack.init(project="p", dir=store_dir, fork_from="src?_step=3")


def test_rewind(store_dir, source):
    run = nbtrack.init(project="p", dir=store_dir, resume_from="src?_step=4")
    assert run.id == "src" and run.resumed and run.step == 5
    assert run.summary["i"] == 4 and run.summary["loss"] == 6.0  # the summary of what is left
    run.log({"loss": 0.5, "i": 100})
    run.finish()
    record = read_run(store_dir, "p", "src")
    rows = record.rows()
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert [r["i"] for r in rows] == [0, 1, 2, 3, 4, 100]  # nothing from before beyond step 4
    assert record.rewinds[0]["step"] == 4 and record.rewinds[0]["rows_set_aside"] == 5
    assert record.config == {"lr": 0.1, "depth": 4}


def test_rewind_keeps_the_id(store_dir, source):
    with pytest.raises(nbtrack.UsageError, match="resume_from rewinds run 'src' and keeps its id.*fork_from"):
        nbtrack.init(project="p", dir=store_dir, id="other", resume_from="src?_step=2")
    assert nbtrack.init(project="p", dir=store_dir, id="src", resume_from="src?_step=2").step == 3


def test_fork(store_dir, source):
    fork = nbtrack.init(project="p", dir=store_dir, fork_from="src?_step=3", config={"lr": 0.5})
    assert fork.id != "src" and not fork.resumed and fork.step == 4
    assert fork.parent == {"id": "src", "step": 3}
    assert dict(fork.config.items()) == {"lr": 0.5, "depth": 4}  # copied unless overridden
    fork.log({"loss": -1.0, "i": 50})
    fork.finish()
    record = read_run(store_dir, "p", fork.id)
    assert [(r["_step"], r["i"]) for r in record.rows()] == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 50)]
    assert (record.parent, record.branch_step) == ("src", 3)
    untouched = read_run(store_dir, "p", "src")
    assert [r["i"] for r in untouched.rows()] == list(range(10))
    assert untouched.state == "finished" and untouched.summary["i"] == 9


def test_fork_needs_a_new_id(store_dir, source):
    with pytest.raises(nbtrack.UsageError, match="fork_from creates a new run.*resume_from='src\\?_step=3'"):
        nbtrack.init(project="p", dir=store_dir, id="src", fork_from="src?_step=3")
    fork = nbtrack.init(project="p", dir=store_dir, id="child", fork_from="src?_step=3")
    assert fork.id == "child"
