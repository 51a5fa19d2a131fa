"""Rows the writer could not put into the store in time, kept in a file until it can.

When a run ends (``finish()``, process exit) while its store cannot be written
(another process holds the write lock, the disk is read-only or full), or when such a
store makes a run hold more rows in memory than it should, the rows go to a *rescue
file*: ``<store>/rescue/<pid>-<n>.jsonl``, one JSON object a line: a header naming the
run, the rows, and, when the run ended, its final state, summary, config and tags.

The next time nbtrack opens the store (the same process's writer once the store takes
writes again, or any later ``init()`` or ``nbtrack.Api``), each file is replayed into
the store and removed.  The process writing a file holds an exclusive ``flock`` on it,
so nobody replays a file that is still being written.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # Windows: files are replayed only by the process that wrote them
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .local import LocalStore

FOLDER = "rescue"
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode
_numbers = itertools.count()


class RescueFile:
    """An append-only file of one run's rows, owned (locked) by this process."""

    def __init__(self, root: Path, project: str, run_id: str, owner: dict[str, Any]) -> None:
        folder = root / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}-{next(_numbers)}-{os.urandom(3).hex()}.jsonl"
        self._file = open(self.path, "a", encoding="ascii")
        if fcntl is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        self.rows = 0
        self._write([{"run": [project, run_id], "owner": owner}])

    def add_rows(self, rows: Iterable[tuple[int, float, float, int | None, dict[str, Any]]]) -> int:
        """Append ``(step, ts, runtime, cell, data)`` rows; durable when this returns."""
        lines = [{"s": step, "t": ts, "r": runtime, "c": cell, "d": data} for step, ts, runtime, cell, data in rows]
        self._write(lines)
        self.rows += len(lines)
        return len(lines)

    def add_final(self, final: dict[str, Any]) -> None:
        """The run's end: ``state``, ``exit_code``, ``runtime``, ``finished_at``, and its
        last ``summary``, ``config``, ``tags`` and ``fields`` when they were not written."""
        self._write([{"final": final}])

    def _write(self, items: list[dict[str, Any]]) -> None:
        self._file.write("".join(_dumps(item) + "\n" for item in items))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()  # releases the lock


def recover(store: LocalStore) -> int:
    """Replay every rescue file under ``store`` that no live process is writing; return
    how many rows were offered to the store."""
    folder = store.root / FOLDER
    if not folder.is_dir():
        return 0
    return sum(replay(store, path) for path in sorted(folder.glob("*.jsonl")))


def replay(store: LocalStore, path: Path) -> int:
    """Put one rescue file's contents into the store and remove it; 0 when another
    process holds it, or its run is not in this store (then it is left in place)."""
    try:
        handle = open(path, encoding="ascii")
    except OSError:
        return 0
    with handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0  # its writer is alive and still writing
        header, rows, final = None, [], None
        for line in handle:
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if header is None:
                header = item
            elif "final" in item:
                final = item["final"]
            else:
                rows.append((item["s"], item["t"], item["r"], item["c"], item["d"]))
        if header is None:
            path.unlink(missing_ok=True)
            return 0
        project, run_id = header["run"]
        found = store.find_run(project, run_id)
        if found is None:
            return 0
        offered = store.replay_rows(found["pk"], rows)
        owner = header.get("owner") or {}
        if (
            final is not None
            and found["stored_state"] == "running"
            and found["pid"] == owner.get("pid")
            and found["pid_start"] == owner.get("pid_start")
        ):
            store.apply_final(found["pk"], final)
        path.unlink(missing_ok=True)
    return offered
