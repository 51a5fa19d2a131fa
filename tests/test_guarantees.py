"""Nothing log() accepted is lost: Ctrl-C, threads, fork, kill -9, a held lock, poison rows.

Every test here counts rows: "every row whose log() returned is in the store", never a
time.  Children run in their own processes with timeouts, so a hang fails the test
instead of stopping the suite.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from conftest import ROOT, read_run, run_python, spawn_python, wait_for

import nbtrack
from nbtrack import NbtrackWarning
from nbtrack.store import writer as writer_module


def stored_steps(store_dir: Path, run_id: str, project: str = "p") -> list[int]:
    return [r["_step"] for r in read_run(store_dir, project, run_id).rows()]


class Progress:
    """A counter a child process bumps after every log() that returned, readable while it runs."""

    def __init__(self, path: Path) -> None:
        path.write_bytes(b"\0" * 8)
        self.path = path
        self._file = open(path, "r+b")
        self._map = mmap.mmap(self._file.fileno(), 8)

    @property
    def value(self) -> int:
        return struct.unpack_from("<q", self._map, 0)[0]

    def close(self) -> None:
        self._map.close()
        self._file.close()

    def wait_past_then_stalled(self, target: int, child: subprocess.Popen | None = None) -> None:
        """Wait until the child has logged ``target`` rows, then for a moment when its
        count stands still: its logging thread is then inside nbtrack (waiting for the
        writer, or writing), the most delicate place for a signal to land.  If no such
        moment comes within a few thousand polls, return anyway."""
        assert wait_for(lambda: self.value >= target or (child is not None and child.poll() is not None), timeout=180)
        last, still = self.value, 0
        for _ in range(5000):
            time.sleep(0.0005)
            now = self.value
            still = still + 1 if now == last else 0
            if still >= 3:
                return
            last = now


# A tight loop of pure logging: the case that fills the writer's queue fastest.
TIGHT_LOOP = """
import mmap, signal, struct, sys, nbtrack
# a process started from a background job inherits SIGINT ignored, and Python then installs
# no KeyboardInterrupt handler: Ctrl-C as in a terminal, whoever started the tests
signal.signal(signal.SIGINT, signal.default_int_handler)
progress = open(sys.argv[1], "r+b")
counter = mmap.mmap(progress.fileno(), 8)
run = nbtrack.init(project="p", dir=sys.argv[2], settings={"system_interval": 0})
print(run.id, flush=True)
log, bump = run.log, struct.pack_into
returned = 0
try:
    while True:
        log({"i": returned})
        returned += 1
        bump("<q", counter, 0, returned)
except KeyboardInterrupt:
    if sys.argv[3] == "raise":
        raise
    print("returned", returned, flush=True)
run.finish()
print("state", run.state, flush=True)
"""


def _spawn_loop(tmp_path: Path, store_dir: Path, mode: str) -> tuple[subprocess.Popen, Progress, str]:
    progress = Progress(tmp_path / f"progress-{mode}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBTRACK_")}
    env.update(PYTHONPATH=str(ROOT), NBTRACK_QUIET="1")
    child = subprocess.Popen(
        [sys.executable, "-c", TIGHT_LOOP, str(progress.path), str(store_dir), mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_id = child.stdout.readline().strip()
    assert run_id, child.stderr.read()
    return child, progress, run_id


@pytest.mark.parametrize("mode", ["catch", "raise"])
def test_ctrl_c_in_a_tight_loop_loses_no_row_that_log_returned(tmp_path, mode):
    """SIGINT lands anywhere in log() or in the writer's work: caught (the notebook way,
    the run goes on) or not (the script dies; the exit hook finishes the run), every row
    whose log() returned is stored, and nothing else."""
    targets = (20_000, 45_000, 60_000, 80_000, 30_000, 60_000) if mode == "catch" else (25_000, 60_000)
    for attempt, target in enumerate(targets):
        store_dir = tmp_path / f"{mode}-{attempt}"
        child, progress, run_id = _spawn_loop(tmp_path, store_dir, mode)
        try:
            progress.wait_past_then_stalled(target, child)
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
        returned = progress.value
        progress.close()
        steps = stored_steps(store_dir, run_id)
        assert steps == list(range(len(steps)))  # no hole
        assert returned <= len(steps) <= returned + 1, (returned, len(steps), err[-2000:])
        record = read_run(store_dir, "p", run_id)
        if mode == "catch":
            assert f"returned {returned}" in out and "state finished" in out
            assert record.state == "finished"
        else:
            assert "KeyboardInterrupt" in err and child.returncode != 0
            assert (record.state, record.exit_code) == ("failed", 130)


def test_kill_9_in_a_tight_loop_loses_at_most_the_documented_bound(tmp_path):
    """At any logging rate at most MAX_QUEUED rows are in flight (log() waits for the
    writer beyond that): a kill -9 loses no more, and what is stored has no holes."""
    for attempt, target in enumerate((60_000, 150_000)):
        store_dir = tmp_path / f"kill-{attempt}"
        child, progress, run_id = _spawn_loop(tmp_path, store_dir, "catch")
        try:
            progress.wait_past_then_stalled(target, child)
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
        returned = progress.value
        progress.close()
        steps = stored_steps(store_dir, run_id)
        assert steps == list(range(len(steps)))
        lost = returned - len(steps)
        assert -1 <= lost <= writer_module.MAX_QUEUED, (returned, len(steps))
        assert read_run(store_dir, "p", run_id).state == "crashed"


def test_wide_rows_are_written_in_smaller_batches_so_finish_has_little_left(store_dir, monkeypatch):
    """Rows of 100 values: after the first batch the writer sizes batches to BATCH_VALUES
    (2,048 rows), and log() keeps at most two of them queued, so finish() has at most
    4,096 rows left to write instead of 16,384."""
    run = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0})
    sink = run._sink
    batch = writer_module.BATCH_VALUES // 100
    seen = []  # rows queued at each log(), once the writer has sized its batches and the
    # queue has come down to their bound (rows queued under the old bound are written first)

    def tap(item):
        if seen or (sink.batch_rows == batch and sink.pending <= 2 * batch):
            seen.append(sink.pending)

    run.tap_rows(tap)
    stalls = []  # log()'s waits that ended with no row written (PROGRESS_WAIT passed): it then goes on
    wait = sink.wait_for_room

    def waiting(writer):
        before = sink.rows_written
        wait(writer)
        stalls.append(sink.rows_written == before)

    monkeypatch.setattr(sink, "wait_for_room", waiting)
    row = {f"k{i}": 0.0 for i in range(100)}
    for step in range(30_000):
        row["k0"] = float(step)
        run.log(row)
    assert seen, "the writer never sized its batches to the rows' width"
    assert sink.batch_rows == batch and len(stalls) > 0  # the loop outran the writer and waited for it
    # two batches at most, and one row more for each wait in which the writer wrote nothing
    # (a machine so busy that the writer got no turn for PROGRESS_WAIT)
    assert max(seen) <= 2 * batch + sum(stalls), (max(seen), sum(stalls))
    left = sink.pending
    assert left <= 2 * batch + sum(stalls)
    run.finish()
    assert read_run(store_dir, "p", run.id).last_step == 29_999
    assert nbtrack.Api(store_dir).run(f"p/{run.id}").series("k0").values.tolist() == [float(i) for i in range(30_000)]


@pytest.mark.e2e
def test_ctrl_c_in_a_notebook_cell_keeps_every_row_and_the_run(tmp_path, store_dir):
    """Interrupting the kernel mid-loop (the notebook's Ctrl-C) leaves the run running with
    every row whose log() returned; the next cell goes on logging after them."""
    from kernels import Kernel

    progress = Progress(tmp_path / "progress-kernel")
    k = Kernel(tmp_path)
    runs = []
    try:
        k.run(f"""
import mmap, struct, nbtrack
progress_file = open({str(progress.path)!r}, "r+b")
counter = mmap.mmap(progress_file.fileno(), 8)
""")
        for target in (25_000, 60_000, 90_000):
            k.run(f"""
run = nbtrack.init(project="p", dir={str(store_dir)!r}, settings={{"system_interval": 0}})
returned = 0
struct.pack_into("<q", counter, 0, 0)
""")
            msg_id = k.kc.execute("""
while True:
    run.log({"i": returned})
    returned += 1
    struct.pack_into("<q", counter, 0, returned)
""")
            progress.wait_past_then_stalled(target)
            k.km.interrupt_kernel()
            while True:  # the loop cell ends with KeyboardInterrupt
                msg = k.kc.get_iopub_msg(timeout=60)
                if (
                    msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"
                ):
                    break
            state, returned, step, run_id = k.run("print(run.state, returned, run.step, run.id)").split()
            assert state == "running" and int(returned) <= int(step) <= int(returned) + 1
            k.run("run.log({'i': -1})")  # the next cell logs after them
            runs.append((run_id, int(step)))
        k.run("run.finish()")
    finally:
        k.stop()
        progress.close()
    for run_id, step in runs:  # each run was finished by the next init (notebook default)
        assert stored_steps(store_dir, run_id) == list(range(step + 1))
        assert read_run(store_dir, "p", run_id).state == "finished"


# ---------------------------------------------------------------- threads
@pytest.mark.parametrize("attempt", range(2))
def test_eight_threads_logging_to_one_run_store_every_row(tmp_path, attempt):
    store_dir = tmp_path / "store"
    run = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0})
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(20_000):
                run.log({f"t{n}": i})  # one key per thread: a row must never mix two threads' values
        except BaseException as exc:  # anything raised into a thread is a failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    assert errors == []
    rows = read_run(store_dir, "p", run.id).rows()
    assert [r["_step"] for r in rows] == list(range(160_000))
    for n in range(8):  # each thread's rows, whole and in its order
        assert [r[f"t{n}"] for r in rows if f"t{n}" in r] == list(range(20_000))
    assert all(len(r) == 4 for r in rows)  # _step, _timestamp, _runtime and one value


def test_finish_from_another_thread_while_threads_log(store_dir):
    """Loggers racing finish() get a UsageError once it began, never anything else, and
    every row whose log() returned is stored."""
    run = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0})
    counts = [0] * 4
    unexpected: list[BaseException] = []
    started = threading.Barrier(5)

    def work(n: int) -> None:
        started.wait()
        try:
            while True:
                run.log({"thread": n})
                counts[n] += 1
        except nbtrack.UsageError:
            pass
        except BaseException as exc:
            unexpected.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    started.wait()
    assert wait_for(lambda: sum(counts) >= 20_000, timeout=60)
    run.finish()
    for t in threads:
        t.join(60)
    assert unexpected == [] and not any(t.is_alive() for t in threads)
    rows = read_run(store_dir, "p", run.id).rows()
    assert len(rows) == sum(counts)  # every returned log() stored, none more
    assert [r["_step"] for r in rows] == list(range(len(rows)))


# ------------------------------------------------------------- workers
def test_a_worker_steps_on_its_own_thread_and_its_stop_and_restart_are_exact():
    """Workers start their thread without waiting for it to be scheduled (init() would
    wait): what they record of it must still be right before, during and after."""
    from nbtrack import workers

    class Probe(workers.Worker):
        def __init__(self):
            super().__init__("nbtrack-probe", 30)
            self.steps = []
            self.release = threading.Event()

        def step(self):
            self.steps.append((threading.get_ident(), self.on_own_thread))
            self.release.wait(60)

    probe = Probe()
    assert not probe.alive and probe.join(0) and "nbtrack-probe" not in workers.running()
    probe.start()
    probe.start()  # a second start while it runs starts nothing
    assert probe.alive and "nbtrack-probe" in workers.running() and not probe.on_own_thread
    probe.wake()
    assert wait_for(lambda: len(probe.steps) == 1)
    first_thread, seen_as_own = probe.steps[0]
    assert first_thread != threading.get_ident() and seen_as_own
    assert not probe.join(0.01)  # held inside its step: not ended
    probe._stopping.set()
    probe.release.set()
    assert probe.join(60) and not probe.alive and "nbtrack-probe" not in workers.running()
    # started again after a stop: a new thread steps, the same one at every wake
    probe.release.clear()
    probe.start()
    probe.wake()
    assert wait_for(lambda: len(probe.steps) == 2)
    probe.release.set()
    probe.wake()
    assert wait_for(lambda: len(probe.steps) == 3)
    assert probe.steps[1][0] == probe.steps[2][0] and all(own for _, own in probe.steps)
    assert probe.stop(60) and not probe.alive
    assert len(probe.steps) == 3


def test_a_worker_stopped_before_its_thread_was_scheduled_ends_without_a_step():
    from nbtrack import workers

    class Counter(workers.Worker):
        def __init__(self):
            super().__init__("nbtrack-counter", 30)
            self.steps = 0

        def step(self):
            self.steps += 1

    for _ in range(50):
        counter = Counter()
        counter.start()
        assert counter.stop(60) and not counter.alive
        assert counter.steps == 0


# ------------------------------------------------------------------- fork
FORK_CHILD = """
import os, sys, warnings
import nbtrack
d, scenario = sys.argv[1], sys.argv[2]
run = nbtrack.init(project="p", dir=d, id="parent", settings={"system_interval": 0})
for i in range(1000):
    run.log({"i": i})
pid = os.fork()
if pid == 0:
    if scenario == "exit":
        sys.exit(0)  # runs the exit hooks in the child
    if scenario == "log":
        for attempt in (lambda: run.log({"i": -1}), lambda: nbtrack.log({"i": -1})):
            try:
                attempt()
                print("child logged to the parent's run", flush=True)
            except nbtrack.UsageError as exc:
                print("refused:", exc, flush=True)
        own = nbtrack.init(project="p", dir=d, id="child", settings={"system_interval": 0})
        for j in range(5000):
            own.log({"j": j})
        own.finish()
        print("child run", own.state, flush=True)
        sys.exit(0)
    if scenario == "finish":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.finish()
            nbtrack.finish()
        print("child finish:", [str(w.message) for w in caught], flush=True)
        os._exit(0)
for i in range(1000, 30_000):
    run.log({"i": i})
_, status = os.waitpid(pid, 0)
print("child status", status, flush=True)
print("while", nbtrack.Api(d).run("p/parent").state, flush=True)
for i in range(30_000, 31_000):
    run.log({"i": i})
run.finish()
print("parent", run.state, flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("scenario", ["exit", "log", "finish"])
def test_a_forked_child_never_touches_the_parents_run(tmp_path, scenario):
    tries = 6 if scenario == "finish" else 1  # the hang seen before was intermittent
    for attempt in range(tries):
        d = tmp_path / f"{scenario}-{attempt}"
        out = run_python(FORK_CHILD, timeout=120, check=False, argv=[str(d), scenario])
        assert out.returncode == 0, out.stderr
        assert "child status 0" in out.stdout and "parent finished" in out.stdout
        assert "while running" in out.stdout  # the child's exit did not end the parent's run
        record = read_run(d, "p", "parent")
        assert record.state == "finished"
        assert [r["i"] for r in record.rows()] == list(range(31_000))
        if scenario == "log":
            refused = [line for line in out.stdout.splitlines() if line.startswith("refused:")]
            assert len(refused) == 2 and "child logged" not in out.stdout
            assert all("call nbtrack.init() in the child" in line for line in refused)
            assert "child run finished" in out.stdout
            assert [r["j"] for r in read_run(d, "p", "child").rows()] == list(range(5000))
        if scenario == "finish":
            assert "finish() of run parent in a forked child does nothing" in out.stdout


# --------------------------------------------------- two processes, one id
CLAIMER = """
import os, sys, time
import nbtrack
d, go = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while not os.path.exists(go):
    pass  # spin: both processes leave this loop within microseconds of each other
try:
    run = nbtrack.init(project="p", dir=d, id="shared", resume="allow", settings={"system_interval": 0})
except nbtrack.UsageError as exc:
    print("refused", os.getpid(), exc, flush=True)
    sys.exit(0)
print("claimed", os.getpid(), run.step, flush=True)
for i in range(100):
    run.log({"who": os.getpid()})
sys.stdin.readline()  # keep the run live until the test has seen both answers
run.finish()
"""


@pytest.mark.parametrize("existing", [False, True])
def test_two_processes_resuming_one_id_at_once_one_wins(tmp_path, existing):
    for attempt in range(3):
        d = tmp_path / f"{existing}-{attempt}"
        other = nbtrack.init(project="p", dir=d, id="other")  # the store exists: only the id is contended
        other.finish()
        if existing:
            first = nbtrack.init(project="p", dir=d, id="shared")
            first.log({"who": 0})
            first.finish()
        go = tmp_path / f"go-{existing}-{attempt}"
        children = [spawn_python(CLAIMER, argv=[str(d), str(go)], stdin=True) for _ in range(2)]
        try:
            assert [c.stdout.readline().strip() for c in children] == ["ready", "ready"]
            go.touch()
            lines = [c.stdout.readline().strip() for c in children]
            claimed = [line for line in lines if line.startswith("claimed")]
            refused = [line for line in lines if line.startswith("refused")]
            assert len(claimed) == 1 and len(refused) == 1, lines
            winner = claimed[0].split()[1]
            assert f"still running in process {winner}" in refused[0]
            for c in children:
                c.stdin.close()
                c.wait(60)
        finally:
            for c in children:
                if c.poll() is None:
                    c.kill()
        rows = read_run(d, "p", "shared").rows()
        expected = ([0] if existing else []) + [int(winner)] * 100
        assert [r["who"] for r in rows] == expected
        assert [r["_step"] for r in rows] == list(range(len(expected)))


# ------------------------------------------------- a store locked elsewhere
LOCKER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()  # held until the test says so
con.execute("ROLLBACK")
print("released", flush=True)
"""


def _lock_store(store_dir: Path) -> subprocess.Popen:
    locker = spawn_python(LOCKER, argv=[str(store_dir / "nbtrack" / "nbtrack.db")], stdin=True)
    assert locker.stdout.readline().strip() == "locked", locker.stderr.read()
    return locker


def _release(locker: subprocess.Popen) -> None:
    locker.stdin.write("\n")
    locker.stdin.flush()
    assert locker.stdout.readline().strip() == "released"
    locker.wait(30)


def test_another_process_holding_the_write_lock_never_stops_log(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0, "flush_interval": 0.05})
    for i in range(100):
        run.log({"i": i})
    assert run.flush()
    locker = _lock_store(store_dir)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(100, 40_100):  # 4 x MAX_QUEUED: log() must not wait for the lock
                run.log({"i": i})
            # every log() returned while the other process still holds the lock (it waits on us)
            assert locker.poll() is None
            assert len(read_run(store_dir, "p", run.id).rows()) == 100  # the rest is in memory
            assert run.storage["queued"] == 40_000
        held = [str(w.message) for w in caught if "could not write run" in str(w.message)]
        assert len(held) == 1 and "logging goes on" in held[0]
    finally:
        _release(locker)
    run.finish()
    assert [r["i"] for r in read_run(store_dir, "p", run.id).rows()] == list(range(40_100))
    assert read_run(store_dir, "p", run.id).state == "finished"


def test_finish_while_the_store_is_locked_rescues_the_rows(store_dir):
    """finish() waits finish_timeout for the store, then keeps rows and end state in a
    rescue file, which the next opening of the store replays."""
    run = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0, "finish_timeout": 0.5})
    run.log({"i": 0})
    assert run.flush()
    locker = _lock_store(store_dir)
    try:
        for i in range(1, 5000):
            run.log({"i": i})
        run.summary["best"] = 42
        with pytest.warns(
            NbtrackWarning,
            match=r"did not take the end of run .*4,999 rows and its end state were "
            r"saved to .*rescue/.*jsonl",
        ):
            run.finish()
        assert run.state == "finished"
        assert run.storage == {"written": 1, "queued": 0, "rescued": 4999, "set_aside": 0, "dropped": 0}
    finally:
        _release(locker)
    rescued = list((store_dir / "nbtrack" / "rescue").glob("*.jsonl"))
    assert len(rescued) == 1
    out = run_python(f"""
        import nbtrack
        record = nbtrack.Api({str(store_dir)!r}).run("p/{run.id}")
        print(len(record.rows()), record.state, record.summary["best"])
    """)
    assert out.stdout.split() == ["5000", "finished", "42"]
    assert not list((store_dir / "nbtrack" / "rescue").glob("*.jsonl"))


# ------------------------------------------------------------ poison rows
def test_a_step_beyond_64_bits_is_refused_alone(store_dir):
    run = nbtrack.init(project="p", dir=store_dir)
    for i in range(200):
        run.log({"i": i})
    with pytest.raises(nbtrack.UsageError, match=r"step=9223372036854775808 is out of range.*0 to 2\*\*63 - 1"):
        run.log({"i": -1}, step=2**63)
    with pytest.raises(nbtrack.UsageError, match="out of range"):
        run.log({"i": -1}, step=-5)
    for i in range(200, 400):
        run.log({"i": i})
    run.finish()
    record = read_run(store_dir, "p", run.id)
    assert [r["i"] for r in record.rows()] == list(range(400)) and record.state == "finished"


def test_text_sqlite_cannot_store_is_refused_at_the_call(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, tags=["ok"])
    for bad in ("\udcff", "a\x00b", "new\nline"):
        with pytest.raises(nbtrack.UsageError, match="tags: the tag .* contains the"):
            run.tags = ["fine", bad]
        with pytest.raises(nbtrack.UsageError, match="name=.* contains the"):
            run.name = f"x{bad}"
    run.notes = "two\nlines\tare fine in notes"
    for i in range(400):
        run.log({"i": i, "text": "\udcff is escaped in a logged string"})
    run.finish()
    record = read_run(store_dir, "p", run.id)
    assert len(record.rows()) == 400 and record.tags == ("ok",) and record.state == "finished"
    assert record.notes == "two\nlines\tare fine in notes"
    assert record.rows()[0]["text"] == "\udcff is escaped in a logged string"


def test_a_row_only_sqlite_refuses_is_set_aside_and_the_others_land(store_dir):
    """SQLite's own limit (here its maximum text length, lowered on the writer's
    connection) refuses one row: that row alone is set aside, with one warning."""
    run = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0})
    run.log({"i": -1})
    assert run.flush()
    store = nbtrack.store.LocalStore.open(store_dir)
    store.writer_connection().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 20_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(3000):
            run.log({"i": i, "blob": "x" * (30_000 if i in (7, 2500) else 10)})
        run.finish()
    warned = [str(w.message) for w in caught if "SQLite refused" in str(w.message)]
    assert len(warned) == 1 and "the row at step 8" in warned[0]
    record = read_run(store_dir, "p", run.id)
    assert [r["i"] for r in record.rows()] == [-1] + [i for i in range(3000) if i not in (7, 2500)]
    assert record.state == "finished" and run.storage["set_aside"] == 2
    con = sqlite3.connect(store_dir / "nbtrack" / "nbtrack.db")
    aside = con.execute("SELECT step, what, reason, data FROM set_aside ORDER BY id").fetchall()
    assert [(step, what) for step, what, _, _ in aside] == [(8, "row"), (2501, "row")]
    assert all("too big" in reason for _, _, reason, _ in aside)
    assert aside[0][3].startswith('{"i":7,"blob":"xxx') and aside[0][3].endswith("set_aside/row-8-1.json)")
    kept = Path(run.dir) / "set_aside" / "row-8-1.json"  # the whole row, which SQLite could not hold
    assert json.loads(kept.read_text()) == {"i": 7, "blob": "x" * 30_000}


# ------------------------------------------------------- the store itself
def test_a_removed_store_folder_is_made_anew_by_the_next_init(store_dir):
    """`!rm -rf nbtrack` in a running kernel, then a new run: its rows go to a new store
    at the same place (never into the removed file), and Api reads them."""
    first = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0})
    first.log({"a": 1})
    first.finish()
    shutil.rmtree(store_dir / "nbtrack")
    second = nbtrack.init(project="p", dir=store_dir, settings={"system_interval": 0})
    for i in range(100):
        second.log({"b": i})
    second.finish()
    assert (store_dir / "nbtrack" / "nbtrack.db").is_file()
    assert [r["b"] for r in read_run(store_dir, "p", second.id).rows()] == list(range(100))


def test_a_store_removed_under_a_running_run_is_reported(store_dir):
    run = nbtrack.init(
        project="p", dir=store_dir, settings={"system_interval": 0, "heartbeat_interval": 0.05, "flush_interval": 0.02}
    )
    run.log({"a": 1})
    assert run.flush()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shutil.rmtree(store_dir / "nbtrack")
        assert wait_for(lambda: any("was removed while run" in str(w.message) for w in caught), timeout=30)
    run.finish()


def test_after_a_clean_exit_the_database_file_alone_holds_everything(tmp_path, store_dir):
    out = run_python(f"""
        import nbtrack
        run = nbtrack.init(project="p", dir={str(store_dir)!r}, config={{"lr": 0.1}})
        for i in range(20_000):
            run.log({{"i": i}})
        print(run.id)
    """)  # no finish(): the exit hook finishes the run
    run_id = out.stdout.strip()
    copy = tmp_path / "copy" / "nbtrack"
    copy.mkdir(parents=True)
    shutil.copy(store_dir / "nbtrack" / "nbtrack.db", copy / "nbtrack.db")  # the .db alone, as people copy it
    record = read_run(copy.parent, "p", run_id)
    assert record.state == "finished" and record.config == {"lr": 0.1}
    assert [r["i"] for r in record.rows()] == list(range(20_000))


def test_a_damaged_store_is_a_usage_error_for_init_and_api(store_dir):
    (store_dir / "nbtrack").mkdir()
    (store_dir / "nbtrack" / "nbtrack.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(nbtrack.UsageError, match=r"the store at .*nbtrack.db is damaged .*move it aside"):
        nbtrack.init(project="p", dir=store_dir)
    assert nbtrack.run is None
    with pytest.raises(nbtrack.UsageError, match=r"the store at .*nbtrack.db is damaged"):
        nbtrack.Api(store_dir).runs()


READ_ONLY_CHILD = """
import os, subprocess, sys
import nbtrack
d = sys.argv[1]
try:
    nbtrack.init(project="p", dir=d, id="kept", resume="allow")
    print("resumed on a read-only store")
except nbtrack.UsageError as exc:
    print("refused:", exc)
print("active:", nbtrack.run)
record = nbtrack.Api(d).run("p/kept")
print("read:", record.state, len(record.rows()))
"""


def test_a_read_only_store_is_refused_for_writing_and_read_by_api(store_dir):
    """On a read-only filesystem (a read-only bind mount in a private mount namespace,
    as root; a folder without write permission otherwise) resume is a UsageError and
    Api still reads."""
    run = nbtrack.init(project="p", dir=store_dir, id="kept")
    for i in range(10):
        run.log({"i": i})
    run.finish()
    folder = store_dir / "nbtrack"
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("needs unshare to make a read-only mount as root")
        script = (
            f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} {folder} && "
            f"exec {sys.executable} -c '{READ_ONLY_CHILD}' {store_dir}"
        )
        probe = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder}"], capture_output=True, text=True
        )
        if probe.returncode != 0:
            pytest.skip(f"cannot make a private read-only mount here: {probe.stderr.strip()}")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NBTRACK_QUIET": "1"}
        out = subprocess.run(
            ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=120
        )
    else:
        os.chmod(folder, 0o555)
        os.chmod(folder / "nbtrack.db", 0o444)
        try:
            out = run_python(READ_ONLY_CHILD, argv=[str(store_dir)], check=False)
        finally:
            os.chmod(folder, 0o755)
            os.chmod(folder / "nbtrack.db", 0o644)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("refused: cannot write to the store at") and "read-only" in lines[0]
    assert "pass dir= a writable folder" in lines[0]
    assert lines[1] == "active: None" and lines[2] == "read: finished 10"
    assert "Traceback" not in out.stderr


# ------------------------------------------------------- how runs end
@pytest.mark.parametrize(
    "ending, code, state",
    [
        ("sys.exit(3)", 3, "failed"),
        ("sys.exit(0)", 0, "finished"),
        ("sys.exit('bad input')", 1, "failed"),
        ("raise ValueError('boom')", 1, "failed"),
        ("pass", 0, "finished"),
    ],
)
def test_how_a_script_ends_is_the_runs_exit_code(store_dir, ending, code, state):
    out = run_python(
        f"""
        import sys, nbtrack
        run = nbtrack.init(project="p", dir={str(store_dir)!r})
        run.log({{"a": 1}})
        print(run.id, flush=True)
        {ending}
    """,
        check=False,
    )
    record = read_run(store_dir, "p", out.stdout.split()[0])
    assert (record.state, record.exit_code) == (state, code)
    assert out.returncode == code


def test_mode_disabled_keeps_the_module_level_interface(tmp_path, monkeypatch):
    where = tmp_path / "cwd"
    where.mkdir()
    monkeypatch.chdir(where)
    run = nbtrack.init(project="p", mode="disabled", config={"lr": 0.1})
    assert nbtrack.run is run and run.mode == "disabled"
    nbtrack.log({"a": 1})
    nbtrack.config.update({"batch": 32})
    nbtrack.config.epochs = 3
    nbtrack.summary["best"] = 0.9
    assert nbtrack.config.lr == 0.1 and nbtrack.config["batch"] == 32 and nbtrack.summary["best"] == 0.9
    with run:
        run.log({"b": 2}, step=5)
    nbtrack.finish()
    assert nbtrack.run is None
    assert list(where.iterdir()) == []  # nothing written anywhere


def test_config_and_summary_before_init_raise_instead_of_dropping_writes():
    for write in (
        lambda: setattr(nbtrack.config, "lr", 0.1),
        lambda: nbtrack.config.update({"lr": 0.1}),
        lambda: nbtrack.summary.__setitem__("best", 1),
        lambda: nbtrack.config["lr"],
    ):
        with pytest.raises(nbtrack.Error, match=r"nbtrack\.(config|summary) is not available before nbtrack.init"):
            write()
    with pytest.raises(nbtrack.Error, match="called before nbtrack.init"):
        nbtrack.log({"a": 1})
