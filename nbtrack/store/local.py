"""``LocalStore``: the SQLite database and run folders under ``<dir>/nbtrack/``."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import reader
from .packing import RowPacker
from .schema import connect, migrate

DB_NAME = "nbtrack.db"
AUTO_RESUME_MARKER = "auto-resume.json"

_dumps = json.JSONEncoder(separators=(",", ":")).encode


class StoreUnavailable(Exception):
    """The store could not be opened or written (a full disk, a read-only folder)."""


def store_root(dir: str | os.PathLike[str]) -> Path:
    """The store's folder for a user-facing ``dir``: ``<dir>/nbtrack``."""
    return Path(dir).expanduser().absolute() / "nbtrack"


class LocalStore:
    """One process's handle on one store root; shared by every run writing there.

    All access goes through one connection guarded by ``lock``: the background
    writer and the caller's thread (init, finish) take turns.  Other processes use
    their own connections; SQLite's WAL mode and a busy timeout serialise them.
    """

    _instances: dict[Path, "LocalStore"] = {}
    _instances_lock = threading.Lock()

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self.packer = RowPacker(self)
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.con = connect(str(root / DB_NAME))
            migrate(self.con)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the store at {root}: {exc}") from exc

    @classmethod
    def open(cls, dir: str | os.PathLike[str]) -> "LocalStore":
        root = store_root(dir)
        with cls._instances_lock:
            store = cls._instances.get(root)
            if store is None:
                store = cls._instances[root] = cls(root)
            return store

    @classmethod
    def forget_all(cls) -> None:
        """Drop every open handle (after ``fork()``, a child must not share them)."""
        with cls._instances_lock:
            cls._instances.clear()

    # ----------------------------------------------------------------- helpers
    def run_folder(self, folder: str) -> Path:
        return self.root / folder

    def _tx(self, work, *args):
        with self.lock:
            con = self.con
            con.execute("BEGIN IMMEDIATE")
            try:
                result = work(con, *args)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return result

    # ------------------------------------------------------------------ writes
    def create_run(self, run: dict[str, Any], state: dict[str, Any]) -> int:
        """Insert a new run with its state, config, summary and tags; return its key."""

        def work(con: sqlite3.Connection) -> int:
            cur = con.execute(
                "INSERT INTO runs (project, run_id, entity, name, notes, run_group, job_type,"
                " mode, created_at, folder, parent_id, branch_step, metadata)"
                " VALUES (:project, :run_id, :entity, :name, :notes, :run_group, :job_type,"
                " :mode, :created_at, :folder, :parent_id, :branch_step, :metadata)",
                {**run, "metadata": _dumps(run.get("metadata") or {})},
            )
            pk = cur.lastrowid
            con.execute(
                "INSERT INTO run_state (run_pk, state, started_at, heartbeat, pid, pid_start,"
                " boot_id) VALUES (?, 'running', ?, ?, ?, ?, ?)",
                (pk, state["started_at"], state["started_at"], state["pid"],
                 state["pid_start"], state["boot_id"]),
            )
            con.execute("INSERT INTO configs VALUES (?, ?)", (pk, _dumps(run["config"])))
            con.execute("INSERT INTO summaries VALUES (?, '{}')", (pk,))
            _write_tags(con, pk, run["tags"])
            return pk

        return self._tx(work)

    def restart_run(self, pk: int, run: dict[str, Any], state: dict[str, Any]) -> None:
        """Mark an existing run as running again in this process (resume, rewind)."""

        def work(con: sqlite3.Connection) -> None:
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
                (state["started_at"], state["started_at"], state["pid"], state["pid_start"],
                 state["boot_id"], pk),
            )
            con.execute("UPDATE configs SET data = ? WHERE run_pk = ?", (_dumps(run["config"]), pk))
            _write_tags(con, pk, run["tags"])

        self._tx(work)

    def write_batch(
        self,
        pk: int,
        rows: Sequence[tuple],
        *,
        summary: dict | None = None,
        config: dict | None = None,
        tags: Sequence[str] | None = None,
        fields: dict[str, Any] | None = None,
        heartbeat: float | None = None,
        last_step: int | None = None,
        runtime: float | None = None,
        system: Sequence[tuple] = (),
    ) -> None:
        """Write one batch for a run in one transaction.

        ``rows`` are ``(run_pk, step, ts, runtime, cell, keyset, data)`` tuples made
        by ``RowPacker``.
        """

        def work(con: sqlite3.Connection) -> None:
            if rows:
                _insert_rows(con, rows)
            if system:
                con.executemany(
                    "INSERT OR IGNORE INTO system_metrics (run_pk, ts, runtime, data) VALUES (?, ?, ?, ?)", system)
            if summary is not None:
                con.execute("UPDATE summaries SET data = ? WHERE run_pk = ?", (_dumps(summary), pk))
            if config is not None:
                con.execute("UPDATE configs SET data = ? WHERE run_pk = ?", (_dumps(config), pk))
            if tags is not None:
                _write_tags(con, pk, tags)
            if fields:
                sets = ", ".join(f"{k} = :{k}" for k in fields)
                con.execute(f"UPDATE runs SET {sets} WHERE pk = :pk", {**fields, "pk": pk})
            if heartbeat is not None or last_step is not None:
                con.execute(
                    "UPDATE run_state SET heartbeat = COALESCE(?, heartbeat),"
                    " last_step = MAX(last_step, COALESCE(?, last_step)),"
                    " runtime = COALESCE(?, runtime) WHERE run_pk = ?",
                    (heartbeat, last_step, runtime, pk),
                )

        self._tx(work)

    def finish_run(self, pk: int, state: str, exit_code: int | None, runtime: float) -> None:
        now = time.time()
        self._tx(
            lambda con: con.execute(
                "UPDATE run_state SET state = ?, exit_code = ?, finished_at = ?, heartbeat = ?,"
                " runtime = ? WHERE run_pk = ?",
                (state, exit_code, now, now, runtime, pk),
            )
        )

    def update_metadata(self, pk: int, patch: dict[str, Any]) -> None:
        """Merge ``patch`` into a run's metadata (what it saved, where it came from)."""

        def work(con: sqlite3.Connection) -> None:
            (text,) = con.execute("SELECT metadata FROM runs WHERE pk = ?", (pk,)).fetchone()
            meta = json.loads(text)
            meta.update(patch)
            con.execute("UPDATE runs SET metadata = ? WHERE pk = ?", (_dumps(meta), pk))

        self._tx(work)

    def rewind(self, pk: int, step: int) -> int:
        """Move history after ``step`` out of the run; return the rewind's number."""

        def work(con: sqlite3.Connection) -> int:
            (rewinds,) = con.execute("SELECT rewinds FROM runs WHERE pk = ?", (pk,)).fetchone()
            done = json.loads(rewinds)
            number = len(done) + 1
            con.execute(
                "INSERT INTO rewound_history (run_pk, rewind, step, ts, runtime, cell, keyset, data)"
                " SELECT run_pk, ?, step, ts, runtime, cell, keyset, data FROM history"
                " WHERE run_pk = ? AND step > ?",
                (number, pk, step),
            )
            moved = con.execute(
                "DELETE FROM history WHERE run_pk = ? AND step > ?", (pk, step)
            ).rowcount
            done.append({"step": step, "at": time.time(), "rows_set_aside": moved})
            con.execute("UPDATE runs SET rewinds = ? WHERE pk = ?", (_dumps(done), pk))
            con.execute("UPDATE run_state SET last_step = ? WHERE run_pk = ?", (step, pk))
            return number

        return self._tx(work)

    def copy_history(self, src_pk: int, dst_pk: int, up_to_step: int) -> int:
        """Copy a run's history rows with step <= ``up_to_step`` into another run."""

        def work(con: sqlite3.Connection) -> int:
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

        return self._tx(work)

    def keyset_id(self, spec: str) -> int:
        """The id of a key set (inserting it if new); called by the packer under ``lock``."""
        with self.lock:
            in_tx = self.con.in_transaction
            if not in_tx:
                self.con.execute("BEGIN IMMEDIATE")
            try:
                self.con.execute("INSERT OR IGNORE INTO keysets (spec) VALUES (?)", (spec,))
                (kid,) = self.con.execute("SELECT id FROM keysets WHERE spec = ?", (spec,)).fetchone()
            except BaseException:
                if not in_tx:
                    self.con.execute("ROLLBACK")
                raise
            if not in_tx:
                self.con.execute("COMMIT")
            return kid

    # ------------------------------------------------------------------- reads
    def find_run(self, project: str, run_id: str) -> dict[str, Any] | None:
        with self.lock:
            return reader.get_run(self.con, project, run_id)

    def max_step(self, pk: int) -> int:
        """The highest step in a run's history, or -1."""
        with self.lock:
            return self.con.execute(
                "SELECT COALESCE(MAX(step), -1) FROM history WHERE run_pk = ?", (pk,)).fetchone()[0]

    def count_runs(self, project: str) -> int:
        with self.lock:
            return reader.count_runs(self.con, project)

    def system_metrics(self, pk: int, keys: Iterable[str] | None = None, *, after: float | None = None,
                       limit: int | None = None):
        with self.lock:
            return reader.system_metrics(self.con, pk, keys, after=after, limit=limit)

    def run_by_pk(self, pk: int) -> dict[str, Any] | None:
        with self.lock:
            return reader.run_by_pk(self.con, pk)

    def list_runs(self, project: str | None = None) -> list[dict[str, Any]]:
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
        self._tx(lambda con: con.execute(
            "INSERT OR REPLACE INTO sync_state (run_pk, server, data) VALUES (?, ?, ?)",
            (pk, server, _dumps(data))))

    def history(self, pk: int, keys: Iterable[str] | None = None, max_step: int | None = None, *,
                after_step: int | None = None, limit: int | None = None):
        with self.lock:
            return reader.history(self.con, pk, keys, max_step=max_step, after_step=after_step, limit=limit)

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


ROWS_PER_STATEMENT = 256
_INSERT = "INSERT OR IGNORE INTO history (run_pk, step, ts, runtime, cell, keyset, data) VALUES "
_INSERT_FULL = _INSERT + ",".join(["(?,?,?,?,?,?,?)"] * ROWS_PER_STATEMENT)


def _insert_rows(con: sqlite3.Connection, rows: Sequence[tuple]) -> None:
    """Insert history rows, many per statement.

    ``executemany`` would step once per row, and the sqlite3 module releases and
    retakes the GIL around every step; with the training loop holding the GIL, each
    retake can wait a whole switch interval.  One statement per 256 rows steps once.
    """
    n = len(rows)
    full = n - n % ROWS_PER_STATEMENT
    flat = itertools.chain.from_iterable
    for start in range(0, full, ROWS_PER_STATEMENT):
        con.execute(_INSERT_FULL, tuple(flat(rows[start : start + ROWS_PER_STATEMENT])))
    if full < n:
        tail = rows[full:]
        con.execute(_INSERT + ",".join(["(?,?,?,?,?,?,?)"] * len(tail)), tuple(flat(tail)))


def _write_tags(con: sqlite3.Connection, pk: int, tags: Sequence[str]) -> None:
    con.execute("DELETE FROM run_tags WHERE run_pk = ?", (pk,))
    con.executemany(
        "INSERT INTO run_tags (run_pk, position, tag) VALUES (?, ?, ?)",
        [(pk, i, t) for i, t in enumerate(tags)],
    )
