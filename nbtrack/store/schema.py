"""The SQLite schema of the local store and how a connection is opened."""

from __future__ import annotations

import sqlite3
import time

SCHEMA_VERSION = 2  # 2: system_metrics, sync_state

# History rows are keyed by (run, step): both are made by the client before the
# row is written, so a retried batch (INSERT OR IGNORE) can never duplicate a row.
DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
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
    UNIQUE (project, run_id)
);
CREATE INDEX IF NOT EXISTS runs_by_project ON runs (project, created_at);
CREATE TABLE IF NOT EXISTS run_state (
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
    runtime REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS configs (
    run_pk INTEGER PRIMARY KEY REFERENCES runs (pk),
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS summaries (
    run_pk INTEGER PRIMARY KEY REFERENCES runs (pk),
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_tags (
    run_pk INTEGER NOT NULL REFERENCES runs (pk),
    position INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_pk, position)
);
-- A row whose values are all numbers is packed: ``data`` is a BLOB of the values
-- (struct layout) and ``keyset`` names its keys and their types.  Other rows keep
-- ``keyset`` NULL and ``data`` as JSON text.
CREATE TABLE IF NOT EXISTS keysets (
    id INTEGER PRIMARY KEY,
    spec TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS history (
    run_pk INTEGER NOT NULL,
    step INTEGER NOT NULL,
    ts REAL NOT NULL,
    runtime REAL NOT NULL,
    cell INTEGER,
    keyset INTEGER,
    data NOT NULL,
    PRIMARY KEY (run_pk, step)
) WITHOUT ROWID;
-- System metrics are their own stream: sampled by time, they never move the user's step.
CREATE TABLE IF NOT EXISTS system_metrics (
    run_pk INTEGER NOT NULL,
    ts REAL NOT NULL,
    runtime REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_pk, ts)
) WITHOUT ROWID;
-- What has been sent to a tracking server, per run and server: cursors into the
-- history and system streams, the remote run, and what was sent of config, tags and files.
CREATE TABLE IF NOT EXISTS sync_state (
    run_pk INTEGER NOT NULL REFERENCES runs (pk),
    server TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_pk, server)
);
CREATE TABLE IF NOT EXISTS rewound_history (
    run_pk INTEGER NOT NULL,
    rewind INTEGER NOT NULL,
    step INTEGER NOT NULL,
    ts REAL NOT NULL,
    runtime REAL NOT NULL,
    cell INTEGER,
    keyset INTEGER,
    data NOT NULL,
    PRIMARY KEY (run_pk, rewind, step)
) WITHOUT ROWID;
"""

BUSY_TIMEOUT_MS = 30_000


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the store's database with the pragmas every connection needs."""
    if readonly:
        con = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False, isolation_level=None,
        )
    else:
        con = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
            isolation_level=None,
        )
    con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        # WAL is a property of the file, set once by whoever creates it.  Switching
        # needs an exclusive lock and SQLite does not wait for it on its own, so
        # several processes opening a new store at once retry here.
        _retry_locked(lambda: con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                      or con.execute("PRAGMA journal_mode = WAL"))
        # WAL + NORMAL: a committed batch survives the process being killed.
        con.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints (copying the WAL into the database, with an fsync) are the
        # costliest part of writing; doing them every 64 MB rather than every 4 MB
        # halves the cost of a row.
        con.execute("PRAGMA wal_autocheckpoint = 16384")
    return con


def _retry_locked(work):
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


def migrate(con: sqlite3.Connection) -> None:
    """Create the tables if needed and check the schema version."""
    _retry_locked(lambda: _migrate(con))


def _migrate(con: sqlite3.Connection) -> None:
    row = None
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        pass
    version = int(row[0]) if row is not None else 0
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"the store was written by a newer nbtrack (schema {version}, "
            f"this one reads up to {SCHEMA_VERSION}); upgrade nbtrack"
        )
    if version == SCHEMA_VERSION:
        return
    # Every statement is CREATE ... IF NOT EXISTS, so running them all brings any older
    # store up to date; the version is bumped in the same transaction.
    con.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL.split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),))
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
