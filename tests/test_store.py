import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import ROOT, read_run, run_python, spawn_python, wait_for

import nbtrack
from nbtrack.store.schema import SCHEMA_VERSION


def test_database_is_sqlite_in_wal_mode_with_a_schema_version(store_dir):
    run = nbtrack.init(project="p", dir=store_dir)
    run.finish()
    db = store_dir / "nbtrack" / "nbtrack.db"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert (store_dir / "nbtrack" / "runs" / "p" / run.id).is_dir()


def test_rows_reach_disk_while_running(store_dir):
    run = nbtrack.init(project="p", dir=store_dir)
    for i in range(10):
        run.log({"x": i})
    deadline = time.time() + 5
    seen = 0
    while time.time() < deadline:
        seen = len(nbtrack.Api(store_dir).run(f"p/{run.id}").rows())
        if seen == 10:
            break
        time.sleep(0.05)
    assert seen == 10 and run.state == "running"  # on disk without finish()
    assert nbtrack.Api(store_dir).run(f"p/{run.id}").summary == {"x": 9}


CRASH_CHILD = """
import os, sys, time
import nbtrack
run = nbtrack.init(project="p", dir={dir!r}, config={{"lr": 0.1}})
for i in range(1000):
    run.log({{"loss": 1.0 / (i + 1), "i": i}})
print(run.id, flush=True)
time.sleep(600)
"""


def test_sigkill_leaves_every_row_and_a_crashed_run(store_dir):
    child = spawn_python(CRASH_CHILD.format(dir=str(store_dir)))
    try:
        run_id = child.stdout.readline().strip()
        assert run_id, child.stderr.read()
        time.sleep(2)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    record = read_run(store_dir, "p", run_id)
    rows = record.rows()
    assert [r["_step"] for r in rows] == list(range(1000))
    assert [r["i"] for r in rows] == list(range(1000))
    assert record.state == "crashed"
    assert record.config == {"lr": 0.1} and record.summary["i"] == 999


def test_a_live_run_of_another_process_reads_running(store_dir):
    child = spawn_python(CRASH_CHILD.format(dir=str(store_dir)))
    try:
        run_id = child.stdout.readline().strip()
        # in a folder with no store yet, the writer claims the run just after init() returns
        assert wait_for(lambda: _found(store_dir, "p", run_id))
        assert read_run(store_dir, "p", run_id).state == "running"
    finally:
        child.kill()
        child.wait(10)
    assert read_run(store_dir, "p", run_id).state == "crashed"


def _found(dir, project, run_id):
    try:
        read_run(dir, project, run_id)
    except nbtrack.UsageError:
        return False
    return True


WRITER_CHILD = """
import nbtrack
with nbtrack.init(project="p", dir={dir!r}, name={name!r}) as run:
    for i in range(10_000):
        run.log({{"v": i, "who": {name!r}}})
print(run.id)
"""


def test_two_processes_log_into_one_dir_without_loss(store_dir):
    children = [spawn_python(WRITER_CHILD.format(dir=str(store_dir), name=n)) for n in ("left", "right")]
    ids = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert "nbtrack" not in err, err  # no warning: both wrote to the store
        ids.append(out.strip())
    for run_id, name in zip(ids, ("left", "right")):
        record = read_run(store_dir, "p", run_id)
        rows = record.rows()
        assert record.state == "finished" and record.name == name
        assert [r["_step"] for r in rows] == list(range(10_000))
        assert [r["v"] for r in rows] == list(range(10_000))
        assert {r["who"] for r in rows} == {name}
    assert sqlite3.connect(store_dir / "nbtrack" / "nbtrack.db").execute("PRAGMA integrity_check").fetchone() == ("ok",)


FULL_DISK_CHILD = """
import os, resource, signal, warnings
import nbtrack
run = nbtrack.init(project="p", dir={dir!r}, settings={{"flush_interval": 0.05, "finish_timeout": 1}})
for i in range(100):
    run.log({{"early": i}})
assert run.flush()
# From here on no file of this process may grow past its current size: a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
db = {dir!r} + "/nbtrack/nbtrack.db"
limit = max(os.path.getsize(db), os.path.getsize(db + "-wal")) + 4096
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
for i in range(50_000):
    run.log({{"late": i, "text": "x" * 50}})
run.finish()
print("summary", run.summary["late"], run.state)
print("storage", run.storage)
"""


def test_a_failing_disk_warns_once_and_never_raises(store_dir):
    """A disk that takes no more bytes: logging goes on, one warning says so, and finish()
    accounts for every row: written before, or reported lost with their number (a full
    disk at exit is the one case where rows are lost, and it is said)."""
    out = run_python(FULL_DISK_CHILD.format(dir=str(store_dir)))
    assert "summary 49999 finished" in out.stdout  # the training loop ran to the end
    assert out.stderr.count("could not write run p/") == 1  # warned once, not per batch
    storage = eval(out.stdout.split("storage", 1)[1])
    assert storage["written"] + storage["rescued"] + storage["dropped"] == 50_100
    assert storage["queued"] == 0 and storage["written"] >= 100
    if storage["dropped"]:
        assert f"{storage['dropped']:,} rows and its end state are lost" in out.stderr
    con = sqlite3.connect(store_dir / "nbtrack" / "nbtrack.db")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    record = nbtrack.Api(store_dir).runs("p")[0]
    early = record.rows(keys=["early"])
    assert [r["early"] for r in early] == list(range(100))  # nothing written before the failure is lost


def test_records_pid_and_heartbeat(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, settings={"heartbeat_interval": 0.05, "flush_interval": 0.05})
    run.flush()  # in a new folder the run is claimed just after init() returns; flush() waits for that
    con = sqlite3.connect(store_dir / "nbtrack" / "nbtrack.db")
    pk = con.execute("SELECT pk FROM runs WHERE run_id = ?", (run.id,)).fetchone()[0]
    pid, first = con.execute("SELECT pid, heartbeat FROM run_state WHERE run_pk = ?", (pk,)).fetchone()
    assert pid == os.getpid()

    def beat():
        return con.execute("SELECT heartbeat FROM run_state WHERE run_pk = ?", (pk,)).fetchone()[0]

    assert wait_for(lambda: beat() > first)  # the writer keeps the heartbeat fresh while the run is idle


def test_a_newer_schema_is_refused_by_init_and_api(store_dir):
    """A store from a newer nbtrack is never written to (nor turned into a run kept in
    memory only): init() and Api() raise a UsageError that names it and says what to do."""
    nbtrack.init(project="p", dir=store_dir).finish()
    con = sqlite3.connect(store_dir / "nbtrack" / "nbtrack.db")
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.commit()
    out = run_python(f"""
        import nbtrack
        for attempt in (lambda: nbtrack.init(project="p", dir={str(store_dir)!r}),
                        lambda: nbtrack.Api({str(store_dir)!r}).runs()):
            try:
                attempt()
            except nbtrack.UsageError as exc:
                print("refused:", exc)
        print("active:", nbtrack.run)
    """)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out.stdout
    for line in lines[:2]:
        assert "refused: the store at" in line and "nbtrack.db was written by a newer nbtrack (schema 999)" in line
        assert "upgrade nbtrack" in line
    assert lines[2] == "active: None"
    assert "Traceback" not in out.stderr


def test_several_processes_creating_one_store_at_once(tmp_path):
    code = (
        "import nbtrack, sys\nr = nbtrack.init(project='p', dir=sys.argv[1])\nr.log({'a': 1})\nr.finish()\nprint(r.id)"
    )
    for round in range(4):
        target = tmp_path / f"fresh{round}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NBTRACK_QUIET": "1"}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(target)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        ids = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0 and "nbtrack" not in err, err
            ids.append(out.strip())
        stored = {r.id for r in nbtrack.Api(target).runs("p")}
        assert stored == set(ids)


def test_a_version_1_store_is_brought_up_to_date(store_dir):
    """Stores written before system metrics and sync (schema 1) gain their tables on open;
    the runs already there stay readable and can be resumed."""
    run = nbtrack.init(project="p", dir=store_dir, id="old", settings={"system_interval": 0})
    run.log({"a": 1})
    run.finish()
    con = sqlite3.connect(store_dir / "nbtrack" / "nbtrack.db")
    con.execute("DROP TABLE system_metrics")
    con.execute("DROP TABLE sync_state")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    out = run_python(f"""
        import nbtrack
        run = nbtrack.init(project="p", dir={str(store_dir)!r}, id="old", resume="must",
                           settings={{"system_interval": 30}})
        run.log({{"a": 2}})
        run.finish()
        record = nbtrack.Api({str(store_dir)!r}).run("p/old")
        print([r["a"] for r in record.rows()], len(record.system_metrics()))
    """)
    assert out.stdout.strip().splitlines()[-1] == "[1, 2] 1"
    con = sqlite3.connect(store_dir / "nbtrack" / "nbtrack.db")
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_store_of_every_earlier_version_is_upgraded_in_place(store_dir, version):
    """A store as version N wrote it (the migrations up to N, and a run with rows) is
    brought to the current version on open, one numbered step after another; its run
    reads back whole and can be resumed."""
    from nbtrack.store.schema import MIGRATIONS

    folder = store_dir / "nbtrack"
    (folder / "runs" / "p" / "old").mkdir(parents=True)
    con = sqlite3.connect(folder / "nbtrack.db")
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for number in range(1, version + 1):
        MIGRATIONS[number](con)
    con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    con.execute(
        "INSERT INTO runs (pk, project, run_id, name, mode, created_at, folder) "
        "VALUES (1, 'p', 'old', 'old-run', 'offline', 1.0, 'runs/p/old')"
    )
    con.execute(
        "INSERT INTO run_state (run_pk, state, started_at, heartbeat, last_step, runtime) "
        "VALUES (1, 'finished', 1.0, 2.0, 1, 1.0)"
    )
    con.execute("INSERT INTO configs VALUES (1, '{\"lr\": 0.1}')")
    con.execute("INSERT INTO summaries VALUES (1, '{\"a\": 2}')")
    con.executemany(
        "INSERT INTO history (run_pk, step, ts, runtime, cell, keyset, data) VALUES (1, ?, ?, ?, NULL, NULL, ?)",
        [(0, 1.0, 0.0, '{"a": 1}'), (1, 1.5, 0.5, '{"a": 2}')],
    )
    con.commit()
    con.close()
    assert [r["a"] for r in nbtrack.Api(store_dir).run("p/old").rows()] == [1, 2]  # read before any upgrade
    run = nbtrack.init(project="p", dir=store_dir, id="old", resume="must", settings={"system_interval": 0})
    run.log({"a": 3})
    run.finish()
    record = read_run(store_dir, "p", "old")
    assert [r["a"] for r in record.rows()] == [1, 2, 3] and record.config == {"lr": 0.1}
    con = sqlite3.connect(folder / "nbtrack.db")
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"system_metrics", "sync_state", "set_aside"} <= tables


def test_a_new_store_is_the_template_and_the_template_is_what_migrations_make(tmp_path):
    """New stores start as a copy of an empty store file (quicker than creating tables);
    that file holds exactly the tables, indexes and version the migrations create."""
    from nbtrack.store.schema import connect, migrate, template_bytes

    def schema(path):
        con = sqlite3.connect(path)
        tables = sorted(con.execute("SELECT type, name, sql FROM sqlite_master"))
        meta = con.execute("SELECT key, value FROM meta").fetchall()
        return tables, meta, con.execute("PRAGMA journal_mode").fetchone()[0]

    made = tmp_path / "migrated.db"
    con = connect(str(made))
    migrate(con)
    con.close()
    copied = tmp_path / "template.db"
    copied.write_bytes(template_bytes())
    assert schema(copied) == schema(made)
    run = nbtrack.init(project="p", dir=tmp_path / "fresh", settings={"system_interval": 0})
    run.log({"a": 1})
    run.finish()
    assert schema(tmp_path / "fresh" / "nbtrack" / "nbtrack.db") == schema(made)
