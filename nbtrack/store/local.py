"""``LocalStore``: the SQLite database and run folders under ``<dir>/nbtrack/``."""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .. import workers
from ..errors import UsageError
from ..records import StoredRun
from . import columns, reader, rescue
from .objects import ObjectStore
from .packing import KeySet, RowPacker
from .schema import NewerSchema, check_readable, connect, create_from_template, migrate
from .shapes import HistoryRow, ReplayRow, SetAsideEntry, SystemRow

T = TypeVar("T")

DB_NAME = "nbtrack.db"
AUTO_RESUME_MARKER = "auto-resume.json"
# The writer thread's connection waits this long for another process's write lock before
# it gives up for this round (rows stay queued, log() stops waiting for the writer).
WRITER_BUSY_MS = 1000

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_FIELD_COLUMNS = ("name", "notes")  # run columns a run may change while it runs
# the tables holding rows of one run (by run_pk), besides runs itself
_RUN_TABLES = (
    "history",
    "history_chunks",
    "history_columns",
    "rewound_history",
    "system_metrics",
    "sync_state",
    "set_aside",
    "run_tags",
    "configs",
    "summaries",
    "artifact_usage",
    "run_files",
    "alerts",
    "metric_definitions",
    "run_state",
)


class StoreUnavailable(UsageError):
    """The store cannot be opened, read or written; the message says where and what to do."""


def store_root(dir: str | os.PathLike[str]) -> Path:
    """The store's folder for a user-facing ``dir``: ``<dir>/nbtrack``."""
    return Path(dir).expanduser().absolute() / "nbtrack"


def unavailable(root: Path, exc: BaseException, *, reading: bool = False) -> StoreUnavailable:
    """A ``StoreUnavailable`` that says what went wrong with the store at ``root`` and what
    the user can do, for an error raised while opening or writing it."""
    db = root / DB_NAME
    text = str(exc)
    low = text.lower()
    code = getattr(exc, "errno", None) or getattr(getattr(exc, "__cause__", None), "errno", None)
    if isinstance(exc, NewerSchema):
        return StoreUnavailable(
            f"the store at {db} was written by a newer nbtrack (schema {exc.version}); upgrade nbtrack "
            "(pip install -U nbtrack), or pass dir= another folder for new runs"
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return StoreUnavailable(
            f"the store at {db} is damaged ({text}); move it aside (mv {db} {db}.broken) to start a fresh "
            "store there, or pass dir= another folder"
        )
    if "locked" in low or "busy" in low:
        return StoreUnavailable(
            f"the store at {db} is locked by another process ({text}); try again once that process is done "
            "with it, or pass dir= another folder"
        )
    if code == errno.ENOSPC or "full" in low:
        return StoreUnavailable(
            f"the disk holding {root} is full ({text}); free some space or pass dir= a folder on another disk"
        )
    if code in (errno.ENOTDIR, errno.EEXIST) and not reading:
        return StoreUnavailable(
            f"cannot create the store at {root}: a part of that path is not a folder ({text}); pass dir= a folder"
        )
    if reading:
        return StoreUnavailable(f"cannot read the store at {db} ({text}); check that the file exists and is readable")
    if (
        code in (errno.EROFS, errno.EACCES, errno.EPERM)
        or "readonly" in low
        or "read-only" in low
        or "unable to open" in low
        or "permission" in low
    ):
        return StoreUnavailable(
            f"cannot write to the store at {root} ({text}): the folder or file is read-only; pass dir= a "
            "writable folder (or set NBTRACK_DIR)"
        )
    return StoreUnavailable(f"cannot use the store at {root} ({text}); pass dir= another folder")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class LocalStore:
    """One process's handle on one store root; shared by every run writing there.

    Two connections: ``con`` for the caller's threads (starting and finishing runs,
    reads), guarded by ``lock``, and the writer thread's own (``writer_connection``),
    which waits at most ``WRITER_BUSY_MS`` for another process's lock.  Other
    processes use their own connections; SQLite's WAL mode serialises writers.
    """

    _instances: dict[Path, LocalStore] = {}
    _instances_lock = threading.Lock()

    def __init__(self, root: Path, *, lazy: bool = False) -> None:
        self.root = root
        self.path = root / DB_NAME
        self.lock = threading.RLock()
        self.packer = RowPacker()
        self.replaced = False  # the database file was removed or replaced under this handle
        self._writer_con: sqlite3.Connection | None = None
        self.write_lock = threading.Lock()  # guards the writer's connection (the writer thread, or finish())
        self.objects = ObjectStore(root)  # files stored once by content: artifacts and media
        self._con: sqlite3.Connection | None = None
        self._open_lock = threading.Lock()
        self.started_before_open = 0  # runs init() started here before the database existed (their number in names)
        self.identity: tuple[int, int] | None = None
        if lazy:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise unavailable(root, exc) from None
        else:
            self._open()

    def _open(self) -> None:
        """Create (from the template) or upgrade the database, and connect to it."""
        with self._open_lock:
            if self._con is not None:
                return
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                create_from_template(self.path)
                con = connect(str(self.path))
                if migrate(con):
                    _checkpoint(con)  # a new store's tables go into the database file itself
            except (OSError, sqlite3.Error) as exc:
                raise unavailable(self.root, exc) from None
            self.identity = _identity(self.path)
            self._con = con
        try:
            rescue.recover(self)
        except Exception:
            pass  # what could not be replayed stays in its file for the next opening

    @property
    def con(self) -> sqlite3.Connection:
        """The caller's connection; the database is opened when first used."""
        con = self._con
        if con is None:
            self._open()
            con = self._con
            assert con is not None
        return con

    @property
    def opened(self) -> bool:
        return self._con is not None

    @classmethod
    def open(cls, dir: str | os.PathLike[str], *, lazy: bool = False) -> LocalStore:
        """The store under ``dir``, opened (and created or upgraded) once per process;
        with ``lazy`` (a new store for ``init()``), only its folder is made now and the
        database when first used.

        A handle whose database file was removed or replaced since (``rm -rf nbtrack``
        in a running kernel) is not reused: a new store is opened at the same place.

        Raises
        ------
        StoreUnavailable
            For a store that is damaged, newer, locked, read-only or on a full disk.
        """
        root = store_root(dir)
        with cls._instances_lock:
            store = cls._instances.get(root)
            if store is not None and not store.still_there():
                store.replaced = True
                store = None
            if store is None:
                store = cls._instances[root] = cls(root, lazy=lazy)
            return store

    @classmethod
    def forget_all(cls) -> None:
        """Drop every open handle (in a forked child, which must not use its parent's
        connections; they are abandoned, not closed, as closing could touch the
        parent's locks)."""
        cls._instances = {}
        cls._instances_lock = threading.Lock()

    def still_there(self) -> bool:
        """Whether the database file this handle opened is still the one at its path."""
        return self.identity is None or _identity(self.path) == self.identity

    def run_folder(self, folder: str) -> Path:
        return self.root / folder

    # ------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def transaction(
        self, busy_timeout: float | None = None, stale_after: float = reader.DEFAULT_STALE_AFTER
    ) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE`` on the caller's connection: the block runs holding the
        store's write lock, so what it reads cannot change before it commits."""
        with self.lock:
            con = self.con
            if busy_timeout is not None:
                con.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield Transaction(con, stale_after)
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                if busy_timeout is not None:
                    con.execute("PRAGMA busy_timeout = 30000")

    def _tx(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self.transaction() as tx:
            return work(tx.con)

    def checkpoint(self) -> bool:
        """Copy the write-ahead log into the database file (``nbtrack.db`` alone then holds
        everything); False when a reader or writer elsewhere prevented it."""
        with self.lock:
            return _checkpoint(self.con)

    # ------------------------------------------------- the writer thread's side
    def writer_connection(self) -> sqlite3.Connection:
        if self._writer_con is None:
            self.con  # noqa: B018 -- the database exists (and is upgraded) before a second connection opens it
            self._writer_con = connect(str(self.path), busy_timeout_ms=WRITER_BUSY_MS)
        return self._writer_con

    def write_batch(
        self,
        pk: int,
        rows: Sequence[HistoryRow],
        *,
        summary: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        fields: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        heartbeat: float | None = None,
        last_step: int | None = None,
        runtime: float | None = None,
        system: Sequence[SystemRow] = (),
        set_aside: Sequence[SetAsideEntry] = (),
    ) -> None:
        """Write one batch for a run in one transaction, on the writer's connection.

        ``rows`` may hold key sets not stored yet (see ``HistoryRow``); they are stored in
        the same transaction.  Raises ``sqlite3.Error`` and friends unchanged: the writer
        decides what they mean.
        """
        with self._writer_transaction() as con:
            fresh = _resolve_keysets(con, rows) if rows else {}
            if rows:
                _insert_rows(con, rows, fresh)
            if system:
                con.executemany(
                    "INSERT OR IGNORE INTO system_metrics (run_pk, ts, runtime, data) VALUES (?, ?, ?, ?)",
                    [(pk, *s) for s in system],
                )
            if set_aside:
                con.executemany(
                    "INSERT INTO set_aside (run_pk, step, ts, what, reason, data) VALUES (?, ?, ?, ?, ?, ?)",
                    [(pk, *s) for s in set_aside],
                )
            _write_state(con, pk, summary=summary, config=config, tags=tags, fields=fields)
            if metadata:
                _merge_metadata(con, pk, metadata)
            if heartbeat is not None or last_step is not None:
                con.execute(
                    "UPDATE run_state SET heartbeat = COALESCE(?, heartbeat),"
                    " last_step = MAX(last_step, COALESCE(?, last_step)),"
                    " runtime = COALESCE(?, runtime) WHERE run_pk = ?",
                    (heartbeat, last_step, runtime, pk),
                )
        for keyset, kid in fresh.items():  # their ids once the transaction committed
            keyset.id = kid

    def seal_history(self, pk: int, *, final: bool = False) -> int:
        """Seal the run's unsealed history rows into columnar chunks (``store/columns.py``),
        on the writer's connection; with ``final`` the last, shorter chunk too.  Returns
        the rows sealed."""
        with self._writer_transaction() as con:
            return columns.seal(con, pk, final=final)

    @contextlib.contextmanager
    def _writer_transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` on the writer's connection (the writer thread, or
        ``finish()`` writing on the caller's); committed when the block ends, rolled back
        when it raises."""
        with self.write_lock:
            con = self.writer_connection()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                _rollback(con)
                raise
            con.execute("COMMIT")

    # ------------------------------------------------------------------ writes
    def finish_run(
        self, pk: int, state: str, exit_code: int | None, runtime: float, busy_timeout: float | None = None
    ) -> None:
        now = time.time()
        with self.transaction(busy_timeout) as tx:
            tx.con.execute(
                "UPDATE run_state SET state = ?, exit_code = ?, finished_at = ?, heartbeat = ?,"
                " runtime = ? WHERE run_pk = ?",
                (state, exit_code, now, now, runtime, pk),
            )

    def update_metadata(self, pk: int, patch: dict[str, Any]) -> None:
        """Merge ``patch`` into a run's metadata (what it saved, where it came from)."""

        self._tx(lambda con: _merge_metadata(con, pk, patch))

    def encode_rows(self, pk: int, rows: Iterable[ReplayRow]) -> list[HistoryRow]:
        """``(step, ts, runtime, cell, data)`` rows as ``history`` rows: packed with
        ``RowPacker`` (the key set's id, or the ``KeySet`` itself until it is stored)."""
        encode = self.packer.encode
        out = []
        for step, ts, runtime, cell, data in rows:
            keyset, blob = encode(data)
            out.append(
                (
                    pk,
                    step,
                    ts,
                    runtime,
                    cell,
                    None if keyset is None else (keyset.id if keyset.id is not None else keyset),
                    blob,
                )
            )
        return out

    def replay_rows(self, pk: int, rows: Iterable[ReplayRow]) -> int:
        """Insert rows kept outside the store (a rescue file) on the caller's connection;
        rows already there are left alone.  Returns how many were offered."""
        encoded = self.encode_rows(pk, rows)
        if not encoded:
            return 0
        with self.transaction() as tx:
            fresh = _resolve_keysets(tx.con, encoded)
            _insert_rows(tx.con, encoded, fresh)
            columns.invalidate(tx.con, pk, min(r[1] for r in encoded))  # older rows put back: seal again
            last = max(r[1] for r in encoded)
            tx.con.execute("UPDATE run_state SET last_step = MAX(last_step, ?) WHERE run_pk = ?", (last, pk))
        for keyset, kid in fresh.items():
            keyset.id = kid
        return len(encoded)

    def apply_final(self, pk: int, final: dict[str, Any]) -> None:
        """Record a run's end as a rescue file kept it: state, and the summary, config,
        tags and fields its process could not write."""
        with self.transaction() as tx:
            con = tx.con
            _write_state(
                con,
                pk,
                summary=final.get("summary"),
                config=final.get("config"),
                tags=final.get("tags"),
                fields=final.get("fields"),
            )
            con.execute(
                "UPDATE run_state SET state = ?, exit_code = ?, finished_at = ?, heartbeat = ?, runtime = ?"
                " WHERE run_pk = ?",
                (
                    final["state"],
                    final.get("exit_code"),
                    final["finished_at"],
                    final["finished_at"],
                    final.get("runtime", 0.0),
                    pk,
                ),
            )

    def update_run(
        self,
        pk: int,
        *,
        fields: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        config: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        """Write a stored run's name and notes, tags, config and summary (``Api``'s
        ``update()``)."""
        with self.transaction() as tx:
            _write_state(tx.con, pk, summary=summary, config=config, tags=tags, fields=fields)

    def delete_run(self, pk: int) -> None:
        """Remove a run and everything stored for it (its folder is the caller's); the
        artifact versions it logged stay, without their maker."""
        with self.transaction() as tx:
            con = tx.con
            for table in _RUN_TABLES:
                con.execute(f"DELETE FROM {table} WHERE run_pk = ?", (pk,))
            con.execute("UPDATE artifact_versions SET logged_by = NULL WHERE logged_by = ?", (pk,))
            con.execute("DELETE FROM runs WHERE pk = ?", (pk,))

    # ------------------------------------------------------------------- reads
    def find_run(self, project: str, run_id: str) -> StoredRun | None:
        with self.lock:
            return reader.get_run(self.con, project, run_id)

    def max_step(self, pk: int) -> int:
        """The highest step in a run's history, or -1."""
        with self.lock:
            return reader.max_step(self.con, pk)

    def count_runs(self, project: str) -> int:
        with self.lock:
            return reader.count_runs(self.con, project)

    def system_metrics(
        self, pk: int, keys: Iterable[str] | None = None, *, after: float | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        with self.lock:
            return reader.system_metrics(self.con, pk, keys, after=after, limit=limit)

    def run_by_pk(self, pk: int) -> StoredRun | None:
        with self.lock:
            return reader.run_by_pk(self.con, pk)

    def list_runs(self, project: str | None = None) -> list[StoredRun]:
        with self.lock:
            return reader.list_runs(self.con, project)

    def pending(self, pk: int, after_step: int, after_ts: float) -> tuple[int, int]:
        """History rows after ``after_step`` and system samples after ``after_ts``."""
        with self.lock:
            return reader.count_history(self.con, pk, after_step), reader.count_system(self.con, pk, after_ts)

    def sync_state(self, pk: int, server: str) -> dict[str, Any] | None:
        with self.lock:
            return reader.sync_state(self.con, pk, server)

    def save_sync_state(self, pk: int, server: str, data: dict[str, Any]) -> None:
        self._tx(
            lambda con: con.execute(
                "INSERT OR REPLACE INTO sync_state (run_pk, server, data) VALUES (?, ?, ?)", (pk, server, _dumps(data))
            )
        )

    def history(
        self,
        pk: int,
        keys: Iterable[str] | None = None,
        max_step: int | None = None,
        *,
        after_step: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        with self.lock:
            return reader.history(self.con, pk, keys, max_step=max_step, after_step=after_step, limit=limit)

    def set_aside_rows(self, pk: int) -> list[dict[str, Any]]:
        with self.lock:
            return reader.set_aside(self.con, pk)

    # ----------------------------------------------------- resume="auto" marker
    def auto_marker_path(self) -> Path:
        return self.root / AUTO_RESUME_MARKER

    def read_auto_marker(self) -> dict[str, str] | None:
        try:
            data = json.loads(self.auto_marker_path().read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_auto_marker(self, project: str, run_id: str) -> None:
        tmp = self.auto_marker_path().with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"project": project, "run_id": run_id}))
        os.replace(tmp, self.auto_marker_path())

    def clear_auto_marker(self, project: str, run_id: str) -> None:
        marker = self.read_auto_marker()
        if marker == {"project": project, "run_id": run_id}:
            try:
                self.auto_marker_path().unlink()
            except OSError:
                pass


class Transaction:
    """What a start plan may do inside ``LocalStore.transaction()``: every read and
    write of runs it needs, on a connection that holds the store's write lock."""

    def __init__(self, con: sqlite3.Connection, stale_after: float = reader.DEFAULT_STALE_AFTER) -> None:
        self.con = con
        self.stale_after = stale_after  # for runs of other machines: a heartbeat older than this is a crash

    def find_run(self, project: str, run_id: str) -> StoredRun | None:
        return reader.get_run(self.con, project, run_id, self.stale_after)

    def count_runs(self, project: str) -> int:
        return reader.count_runs(self.con, project)

    def max_step(self, pk: int) -> int:
        return reader.max_step(self.con, pk)

    def history(self, pk: int) -> list[dict[str, Any]]:
        return reader.history(self.con, pk)

    def last_row(self, pk: int) -> dict[str, Any] | None:
        rows = reader.history(self.con, pk, after_step=self.max_step(pk) - 1)
        return rows[-1] if rows else None

    def create_run(self, run: dict[str, Any], state: dict[str, Any]) -> int:
        """Insert a new run with its state, config, summary and tags; return its key."""
        con = self.con
        cur = con.execute(
            "INSERT INTO runs (project, run_id, entity, name, notes, run_group, job_type,"
            " mode, created_at, folder, parent_id, branch_step, metadata)"
            " VALUES (:project, :run_id, :entity, :name, :notes, :run_group, :job_type,"
            " :mode, :created_at, :folder, :parent_id, :branch_step, :metadata)",
            {**run, "metadata": _dumps(run.get("metadata") or {})},
        )
        pk = cur.lastrowid
        assert pk is not None  # an INSERT into a rowid table always has one
        con.execute(
            "INSERT INTO run_state (run_pk, state, started_at, heartbeat, pid, pid_start,"
            " boot_id) VALUES (?, 'running', ?, ?, ?, ?, ?)",
            (pk, state["started_at"], state["started_at"], state["pid"], state["pid_start"], state["boot_id"]),
        )
        con.execute("INSERT INTO configs VALUES (?, ?)", (pk, _dumps(run["config"])))
        con.execute("INSERT INTO summaries VALUES (?, ?)", (pk, _dumps(run.get("summary") or {})))
        _write_tags(con, pk, run["tags"])
        return pk

    def restart_run(self, pk: int, run: dict[str, Any], state: dict[str, Any]) -> None:
        """Mark an existing run as running again in this process (resume, rewind)."""
        con = self.con
        con.execute(
            "UPDATE runs SET name = :name, notes = :notes, run_group = :run_group,"
            " job_type = :job_type, entity = :entity, mode = :mode,"
            " resume_count = resume_count + 1, metadata = :metadata WHERE pk = :pk",
            {**run, "pk": pk, "metadata": _dumps(run.get("metadata") or {})},
        )
        con.execute(
            "UPDATE run_state SET state = 'running', exit_code = NULL, finished_at = NULL,"
            " started_at = ?, heartbeat = ?, pid = ?, pid_start = ?, boot_id = ?"
            " WHERE run_pk = ?",
            (state["started_at"], state["started_at"], state["pid"], state["pid_start"], state["boot_id"], pk),
        )
        con.execute("UPDATE configs SET data = ? WHERE run_pk = ?", (_dumps(run["config"]), pk))
        if "summary" in run:
            con.execute("UPDATE summaries SET data = ? WHERE run_pk = ?", (_dumps(run["summary"]), pk))
        _write_tags(con, pk, run["tags"])

    def rewind(self, pk: int, step: int) -> int:
        """Move history after ``step`` out of the run; return the rewind's number."""
        con = self.con
        (rewinds,) = con.execute("SELECT rewinds FROM runs WHERE pk = ?", (pk,)).fetchone()
        done = json.loads(rewinds)
        number = len(done) + 1
        con.execute(
            "INSERT INTO rewound_history (run_pk, rewind, step, ts, runtime, cell, keyset, data)"
            " SELECT run_pk, ?, step, ts, runtime, cell, keyset, data FROM history"
            " WHERE run_pk = ? AND step > ?",
            (number, pk, step),
        )
        moved = con.execute("DELETE FROM history WHERE run_pk = ? AND step > ?", (pk, step)).rowcount
        columns.invalidate(con, pk, step + 1)
        done.append({"step": step, "at": time.time(), "rows_set_aside": moved})
        con.execute("UPDATE runs SET rewinds = ? WHERE pk = ?", (_dumps(done), pk))
        con.execute("UPDATE run_state SET last_step = ? WHERE run_pk = ?", (step, pk))
        return number

    def copy_history(self, src_pk: int, dst_pk: int, up_to_step: int) -> int:
        """Copy a run's history rows with step <= ``up_to_step`` into another run."""
        con = self.con
        n = con.execute(
            "INSERT OR IGNORE INTO history (run_pk, step, ts, runtime, cell, keyset, data)"
            " SELECT ?, step, ts, runtime, cell, keyset, data FROM history"
            " WHERE run_pk = ? AND step <= ?",
            (dst_pk, src_pk, up_to_step),
        ).rowcount
        con.execute(
            "UPDATE run_state SET last_step = (SELECT COALESCE(MAX(step), -1) FROM history"
            " WHERE run_pk = ?) WHERE run_pk = ?",
            (dst_pk, dst_pk),
        )
        return n


ROWS_PER_STATEMENT = 256
_INSERT = "INSERT OR IGNORE INTO history (run_pk, step, ts, runtime, cell, keyset, data) VALUES "
_INSERT_FULL = _INSERT + ",".join(["(?,?,?,?,?,?,?)"] * ROWS_PER_STATEMENT)


def _resolve_keysets(con: sqlite3.Connection, rows: Sequence[HistoryRow]) -> dict[KeySet, int]:
    """Ids for the key sets of ``rows`` not stored yet, inserted in the open transaction.
    They become the key sets' ids only once it commits."""
    fresh: dict[KeySet, int] = {}
    for row in rows:
        keyset = row[5]
        if type(keyset) is KeySet and keyset not in fresh:
            if keyset.id is not None:
                fresh[keyset] = keyset.id  # stored since this row was encoded
                continue
            con.execute("INSERT OR IGNORE INTO keysets (spec) VALUES (?)", (keyset.spec,))
            (fresh[keyset],) = con.execute("SELECT id FROM keysets WHERE spec = ?", (keyset.spec,)).fetchone()
    return fresh


def _insert_rows(con: sqlite3.Connection, rows: Sequence[HistoryRow], fresh: dict[KeySet, int]) -> None:
    """Insert history rows, many per statement.

    ``executemany`` would step once per row, and the sqlite3 module releases and
    retakes the GIL around every step; with the training loop holding the GIL, each
    retake can wait a whole switch interval.  One statement per 256 rows steps once.
    """
    params = rows if not fresh else [r if type(r[5]) is not KeySet else (*r[:5], fresh[r[5]], r[6]) for r in rows]
    n = len(params)
    full = n - n % ROWS_PER_STATEMENT
    flat = itertools.chain.from_iterable
    for start in range(0, full, ROWS_PER_STATEMENT):
        con.execute(_INSERT_FULL, tuple(flat(params[start : start + ROWS_PER_STATEMENT])))
    if full < n:
        tail = params[full:]
        con.execute(_INSERT + ",".join(["(?,?,?,?,?,?,?)"] * len(tail)), tuple(flat(tail)))


def _write_state(
    con: sqlite3.Connection,
    pk: int,
    *,
    summary: dict[str, Any] | None,
    config: dict[str, Any] | None,
    tags: Sequence[str] | None,
    fields: dict[str, Any] | None,
) -> None:
    """A run's summary, config, tags and changeable fields (name, notes), where given."""
    if summary is not None:
        con.execute("UPDATE summaries SET data = ? WHERE run_pk = ?", (_dumps(summary), pk))
    if config is not None:
        con.execute("UPDATE configs SET data = ? WHERE run_pk = ?", (_dumps(config), pk))
    if tags is not None:
        _write_tags(con, pk, tags)
    fields = {k: v for k, v in (fields or {}).items() if k in _FIELD_COLUMNS}
    if fields:
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        con.execute(f"UPDATE runs SET {sets} WHERE pk = :pk", {**fields, "pk": pk})


def _checkpoint(con: sqlite3.Connection) -> bool:
    try:
        con.execute("PRAGMA busy_timeout = 2000")
        busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy
    except sqlite3.Error:
        return False
    finally:
        con.execute("PRAGMA busy_timeout = 30000")


def _merge_metadata(con: sqlite3.Connection, pk: int, patch: dict[str, Any]) -> None:
    (text,) = con.execute("SELECT metadata FROM runs WHERE pk = ?", (pk,)).fetchone()
    meta = json.loads(text)
    meta.update(patch)
    con.execute("UPDATE runs SET metadata = ? WHERE pk = ?", (_dumps(meta), pk))


def _write_tags(con: sqlite3.Connection, pk: int, tags: Sequence[str]) -> None:
    con.execute("DELETE FROM run_tags WHERE run_pk = ?", (pk,))
    con.executemany(
        "INSERT INTO run_tags (run_pk, position, tag) VALUES (?, ?, ?)",
        [(pk, i, t) for i, t in enumerate(tags)],
    )


def _rollback(con: sqlite3.Connection) -> None:
    try:
        con.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # SQLite already rolled back (a full disk does that itself)


def open_readonly(root: Path) -> sqlite3.Connection | None:
    """A read-only connection to the store at ``root`` for ``nbtrack.Api``; ``None`` when
    there is no store yet.

    Raises
    ------
    StoreUnavailable
        For a file that is not a readable nbtrack store, or one a newer nbtrack wrote.
    """
    path = root / DB_NAME
    if not path.exists():
        return None
    con = None
    try:
        try:
            con = connect(str(path), readonly=True)
            check_readable(con)
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise
            # a store on read-only media cannot get its shared-memory file: read it as immutable
            if con is not None:
                con.close()
            con = sqlite3.connect(
                f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False, isolation_level=None
            )
            check_readable(con)
    except (sqlite3.Error, OSError) as exc:
        if con is not None:
            con.close()
        raise unavailable(root, exc, reading=True) from None
    return con


def _hold_stores_for_fork() -> None:
    """Before ``fork()``: wait (briefly) until no transaction of this process is open, and
    keep it so until the fork is done, so the child never copies a half-done write's
    state (SQLite's advice: never fork with a connection in use)."""
    held = []
    for store in list(LocalStore._instances.values()):
        for lock in (store.write_lock, store.lock):
            if lock.acquire(timeout=2.0):
                held.append(lock)
    _fork_held[:] = held


def _release_stores_after_fork() -> None:
    held, _fork_held[:] = list(_fork_held), []
    for lock in reversed(held):
        lock.release()


_fork_held: list[Any] = []
workers.around_fork(_hold_stores_for_fork, _release_stores_after_fork)
workers.on_fork_child(LocalStore.forget_all)
