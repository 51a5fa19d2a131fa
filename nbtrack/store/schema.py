"""The SQLite schema of the local store: numbered migrations, and how connections open.

The schema version lives in ``meta``.  Each migration is a function that brings a store
from the previous version to its own; opening a store applies the missing ones in
order, in one transaction, so a store of any earlier version is upgraded in place and
a failure leaves it as it was.  ``docs/storage.md`` describes the tables.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def _v1_runs_and_history(con: sqlite3.Connection) -> None:
    # History rows are keyed by (run, step): both are made by the client before the
    # row is written, so a retried batch (INSERT OR IGNORE) can never duplicate a row.
    for statement in (
        """CREATE TABLE IF NOT EXISTS runs (
            pk INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            run_id TEXT NOT NULL,
            entity TEXT,
            name TEXT NOT NULL,
            notes TEXT,
            run_group TEXT,
            job_type TEXT,
            mode TEXT NOT NULL,
            created_at REAL NOT NULL,
            folder TEXT NOT NULL,
            parent_id TEXT,
            branch_step INTEGER,
            resume_count INTEGER NOT NULL DEFAULT 0,
            rewinds TEXT NOT NULL DEFAULT '[]',
            metadata TEXT NOT NULL DEFAULT '{}',
            UNIQUE (project, run_id))""",
        "CREATE INDEX IF NOT EXISTS runs_by_project ON runs (project, created_at)",
        """CREATE TABLE IF NOT EXISTS run_state (
            run_pk INTEGER PRIMARY KEY REFERENCES runs (pk),
            state TEXT NOT NULL,
            exit_code INTEGER,
            started_at REAL NOT NULL,
            finished_at REAL,
            heartbeat REAL NOT NULL,
            pid INTEGER,
            pid_start TEXT,
            boot_id TEXT,
            last_step INTEGER NOT NULL DEFAULT -1,
            runtime REAL NOT NULL DEFAULT 0)""",
        "CREATE TABLE IF NOT EXISTS configs (run_pk INTEGER PRIMARY KEY REFERENCES runs (pk), data TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS summaries (run_pk INTEGER PRIMARY KEY REFERENCES runs (pk), data TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS run_tags (
            run_pk INTEGER NOT NULL REFERENCES runs (pk),
            position INTEGER NOT NULL,
            tag TEXT NOT NULL,
            PRIMARY KEY (run_pk, position))""",
        # A row whose values are all numbers is packed: ``data`` is a BLOB of the values
        # (struct layout) and ``keyset`` names its keys and their types.  Other rows keep
        # ``keyset`` NULL and ``data`` as JSON text.
        "CREATE TABLE IF NOT EXISTS keysets (id INTEGER PRIMARY KEY, spec TEXT NOT NULL UNIQUE)",
        """CREATE TABLE IF NOT EXISTS history (
            run_pk INTEGER NOT NULL,
            step INTEGER NOT NULL,
            ts REAL NOT NULL,
            runtime REAL NOT NULL,
            cell INTEGER,
            keyset INTEGER,
            data NOT NULL,
            PRIMARY KEY (run_pk, step)) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS rewound_history (
            run_pk INTEGER NOT NULL,
            rewind INTEGER NOT NULL,
            step INTEGER NOT NULL,
            ts REAL NOT NULL,
            runtime REAL NOT NULL,
            cell INTEGER,
            keyset INTEGER,
            data NOT NULL,
            PRIMARY KEY (run_pk, rewind, step)) WITHOUT ROWID""",
    ):
        con.execute(statement)


def _v2_system_metrics_and_sync(con: sqlite3.Connection) -> None:
    # System metrics are their own stream: sampled by time, they never move the user's step.
    con.execute("""CREATE TABLE IF NOT EXISTS system_metrics (
        run_pk INTEGER NOT NULL,
        ts REAL NOT NULL,
        runtime REAL NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (run_pk, ts)) WITHOUT ROWID""")
    # What has been sent to a tracking server, per run and server: cursors into the
    # history and system streams, the remote run, and what was sent of config, tags and files.
    con.execute("""CREATE TABLE IF NOT EXISTS sync_state (
        run_pk INTEGER NOT NULL REFERENCES runs (pk),
        server TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (run_pk, server))""")


def _v3_set_aside(con: sqlite3.Connection) -> None:
    # What the writer could not store (a row SQLite refused on its own, say): kept here
    # as text with the reason, so that nothing accepted disappears without a trace.
    con.execute("""CREATE TABLE IF NOT EXISTS set_aside (
        id INTEGER PRIMARY KEY,
        run_pk INTEGER NOT NULL,
        step INTEGER,
        ts REAL NOT NULL,
        what TEXT NOT NULL,
        reason TEXT NOT NULL,
        data TEXT NOT NULL)""")


def _v4_artifacts_files_alerts(con: sqlite3.Connection) -> None:
    # Artifacts: a collection per (project, name), numbered versions with their manifest
    # (files are content-addressed under objects/), aliases that move, and which runs
    # logged and used each version.
    for statement in (
        """CREATE TABLE IF NOT EXISTS artifacts (
            id INTEGER PRIMARY KEY,
            project TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (project, name))""",
        """CREATE TABLE IF NOT EXISTS artifact_versions (
            id INTEGER PRIMARY KEY,
            artifact_id INTEGER NOT NULL REFERENCES artifacts (id),
            version INTEGER NOT NULL,
            digest TEXT NOT NULL,
            description TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            tags TEXT NOT NULL DEFAULT '[]',
            size INTEGER NOT NULL,
            file_count INTEGER NOT NULL,
            created_at REAL NOT NULL,
            logged_by INTEGER REFERENCES runs (pk),
            UNIQUE (artifact_id, version),
            UNIQUE (artifact_id, digest))""",
        """CREATE TABLE IF NOT EXISTS artifact_entries (
            version_id INTEGER NOT NULL REFERENCES artifact_versions (id),
            path TEXT NOT NULL,
            sha256 TEXT,
            size INTEGER,
            ref TEXT,
            extra TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (version_id, path)) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS artifact_aliases (
            artifact_id INTEGER NOT NULL REFERENCES artifacts (id),
            alias TEXT NOT NULL,
            version_id INTEGER NOT NULL REFERENCES artifact_versions (id),
            PRIMARY KEY (artifact_id, alias)) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS artifact_usage (
            version_id INTEGER NOT NULL REFERENCES artifact_versions (id),
            run_pk INTEGER NOT NULL REFERENCES runs (pk),
            role TEXT NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (version_id, run_pk, role)) WITHOUT ROWID""",
        # link_artifact / link_model: a version shown in another collection (a registry)
        """CREATE TABLE IF NOT EXISTS artifact_links (
            artifact_id INTEGER NOT NULL REFERENCES artifacts (id),
            version INTEGER NOT NULL,
            version_id INTEGER NOT NULL REFERENCES artifact_versions (id),
            at REAL NOT NULL,
            run_pk INTEGER REFERENCES runs (pk),
            PRIMARY KEY (artifact_id, version)) WITHOUT ROWID""",
        # run.save(): files kept with a run, and how (live, now, end)
        """CREATE TABLE IF NOT EXISTS run_files (
            run_pk INTEGER NOT NULL REFERENCES runs (pk),
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            policy TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (run_pk, path)) WITHOUT ROWID""",
        # run.alert()
        """CREATE TABLE IF NOT EXISTS alerts (
            id INTEGER PRIMARY KEY,
            run_pk INTEGER NOT NULL REFERENCES runs (pk),
            ts REAL NOT NULL,
            step INTEGER,
            level TEXT NOT NULL,
            title TEXT NOT NULL,
            text TEXT NOT NULL)""",
        # define_metric(): how each metric (or glob) is summarised and plotted
        """CREATE TABLE IF NOT EXISTS metric_definitions (
            run_pk INTEGER NOT NULL REFERENCES runs (pk),
            name TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (run_pk, name))""",  # a rowid table: rowid order is definition order
    ):
        con.execute(statement)


def _v5_history_chunks(con: sqlite3.Connection) -> None:
    # Columnar chunks of history (store/columns.py): derived from the rows, sealed by the
    # writer.  Rowid tables, so that a sampled read can open one blob and read a few values.
    for statement in (
        """CREATE TABLE IF NOT EXISTS history_chunks (
            id INTEGER PRIMARY KEY,
            run_pk INTEGER NOT NULL,
            first_step INTEGER NOT NULL,
            last_step INTEGER NOT NULL,
            n INTEGER NOT NULL,
            steps BLOB NOT NULL,
            ts BLOB NOT NULL,
            runtime BLOB NOT NULL,
            cells BLOB,
            partial TEXT,
            UNIQUE (run_pk, first_step))""",
        """CREATE TABLE IF NOT EXISTS history_columns (
            id INTEGER PRIMARY KEY,
            run_pk INTEGER NOT NULL,
            key TEXT NOT NULL,
            first_step INTEGER NOT NULL,
            kind TEXT NOT NULL,
            count INTEGER NOT NULL,
            idx BLOB,
            vals BLOB NOT NULL,
            kinds BLOB,
            UNIQUE (run_pk, key, first_step))""",
    ):
        con.execute(statement)


# version -> the migration that brings a store of version - 1 to it
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _v1_runs_and_history,
    2: _v2_system_metrics_and_sync,
    3: _v3_set_aside,
    4: _v4_artifacts_files_alerts,
    5: _v5_history_chunks,
}
SCHEMA_VERSION = max(MIGRATIONS)

BUSY_TIMEOUT_MS = 30_000


class NewerSchema(sqlite3.DatabaseError):
    """The store was written by a newer nbtrack."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"the store was written by a newer nbtrack (schema {version}, "
            f"this one reads up to {SCHEMA_VERSION}); upgrade nbtrack (pip install -U nbtrack)"
        )
        self.version = version


def connect(path: str, *, readonly: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open the store's database with the pragmas every connection needs."""
    if readonly:
        con = sqlite3.connect(
            f"file:{path}?mode=ro",
            uri=True,
            timeout=busy_timeout_ms / 1000,
            check_same_thread=False,
            isolation_level=None,
        )
    else:
        con = sqlite3.connect(
            path,
            timeout=busy_timeout_ms / 1000,
            check_same_thread=False,
            isolation_level=None,
        )
    con.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    if not readonly:
        # WAL is a property of the file, set once by whoever creates it.  Switching
        # needs an exclusive lock and SQLite does not wait for it on its own, so
        # several processes opening a new store at once retry here.
        _retry_locked(
            lambda: (
                con.execute("PRAGMA journal_mode").fetchone()[0] == "wal" or con.execute("PRAGMA journal_mode = WAL")
            )
        )
        # WAL + NORMAL: a committed batch survives the process being killed.
        con.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints (copying the WAL into the database, with an fsync) are the
        # costliest part of writing; doing them every 64 MB rather than every 4 MB
        # halves the cost of a row.  A finished run checkpoints the store, so the
        # database file alone holds everything once no run is writing.
        con.execute("PRAGMA wal_autocheckpoint = 16384")
    return con


def _retry_locked(work: Callable[[], T]) -> T:
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            return work()
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def schema_version(con: sqlite3.Connection) -> int:
    """The version a store was written with; 0 for a database without nbtrack's tables."""
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    return int(row[0]) if row is not None else 0


def check_readable(con: sqlite3.Connection) -> int:
    """The store's version, after checking a reader understands it.

    Raises
    ------
    NewerSchema
        When a newer nbtrack wrote it.
    """
    version = schema_version(con)
    if version > SCHEMA_VERSION:
        raise NewerSchema(version)
    return version


def migrate(con: sqlite3.Connection) -> bool:
    """Bring the store up to ``SCHEMA_VERSION``; return whether anything was created."""
    return bool(_retry_locked(lambda: _migrate(con)))


def _migrate(con: sqlite3.Connection) -> bool:
    if check_readable(con) == SCHEMA_VERSION:
        return False
    con.execute("BEGIN IMMEDIATE")
    try:
        # read again under the write lock: another process may have migrated meanwhile
        con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        version = check_readable(con)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[number](con)
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return version < SCHEMA_VERSION


# ------------------------------------------------------------------ a new store
# Creating the tables of a new store takes milliseconds (dozens of statements, the switch
# to WAL, a checkpoint).  Instead a new store starts as a copy of an empty store at the
# current version, kept zlib-compressed beside this module and made by
# ``write_template()`` (see CONTRIBUTING.md); tests/test_store.py checks that it holds exactly
# what the migrations create.  The copy is put in place with a hard link, which fails
# when the file exists: of several processes creating one store, one wins and the
# others open its file.
TEMPLATE = Path(__file__).with_name("empty-store.db.z")
_template: list[bytes] = []


def template_bytes() -> bytes | None:
    """The empty store at ``SCHEMA_VERSION``, or None when the file is missing or stale."""
    if not _template:
        try:
            data = zlib.decompress(TEMPLATE.read_bytes())
        except (OSError, zlib.error):
            return None
        if data[:16] != b"SQLite format 3\x00" or int.from_bytes(data[60:64], "big") != SCHEMA_VERSION:
            return None
        _template.append(data)
    return _template[0]


def create_from_template(path: Path) -> bool:
    """Put an empty store at ``path`` unless a file is there; False when that could not be
    done this way (the caller then creates the tables)."""
    data = template_bytes()
    if data is None or os.path.exists(path):
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        return True
    except OSError:
        return False
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def write_template(target: Path = TEMPLATE) -> None:
    """Make the empty store file from the migrations (run after adding one)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "empty.db"
        con = connect(str(db))
        migrate(con)
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        target.write_bytes(zlib.compress(db.read_bytes(), 9))
