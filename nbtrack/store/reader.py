"""Queries that read the local store; shared by the writer side and ``nbtrack.Api``."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..proc import boot_id, process_alive
from ..records import StoredRun
from .packing import RowDecoder

DEFAULT_STALE_AFTER = 60.0


def _scalar(con: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> int:
    (value,) = con.execute(sql, args).fetchone()
    return int(value)


_RUN_COLUMNS = (
    "r.pk, r.project, r.run_id, r.entity, r.name, r.notes, r.run_group, r.job_type, r.mode,"
    " r.created_at, r.folder, r.parent_id, r.branch_step, r.resume_count, r.rewinds,"
    " r.metadata, s.state, s.exit_code, s.started_at, s.finished_at, s.heartbeat, s.pid,"
    " s.pid_start, s.boot_id, s.last_step, s.runtime, c.data, m.data"
)
_RUN_FROM = (
    " FROM runs r JOIN run_state s ON s.run_pk = r.pk"
    " LEFT JOIN configs c ON c.run_pk = r.pk LEFT JOIN summaries m ON m.run_pk = r.pk"
)
_NAMES = (
    "pk",
    "project",
    "run_id",
    "entity",
    "name",
    "notes",
    "group",
    "job_type",
    "mode",
    "created_at",
    "folder",
    "parent_id",
    "branch_step",
    "resume_count",
    "rewinds",
    "metadata",
    "stored_state",
    "exit_code",
    "started_at",
    "finished_at",
    "heartbeat",
    "pid",
    "pid_start",
    "boot_id",
    "last_step",
    "runtime",
    "config",
    "summary",
)


def effective_state(row: StoredRun, stale_after: float = DEFAULT_STALE_AFTER) -> str:
    """The stored state, except that a 'running' run whose owner is gone reads 'crashed'.

    On this machine's current boot the owner's pid and start time decide; for a run
    owned by another machine or an earlier boot, a heartbeat older than
    ``stale_after`` seconds does.
    """
    state = row["stored_state"]
    if state != "running":
        return state
    if row["boot_id"] == boot_id() and row["pid"] is not None:
        return "running" if process_alive(row["pid"], row["pid_start"]) else "crashed"
    return "crashed" if time.time() - row["heartbeat"] > stale_after else "running"


def _decode(row: tuple[Any, ...], tags: list[str], stale_after: float, decode: bool = True) -> StoredRun:
    out: Any = dict(zip(_NAMES, row))
    if decode:  # else config, summary, metadata and rewinds stay JSON text, for the reader to decode
        out["config"] = json.loads(out["config"] or "{}")
        out["summary"] = json.loads(out["summary"] or "{}")
        out["metadata"] = json.loads(out["metadata"] or "{}")
        out["rewinds"] = json.loads(out["rewinds"] or "[]")
    out["tags"] = tuple(tags)
    out["state"] = effective_state(out, stale_after)
    run: StoredRun = out
    return run


def _tags_for(con: sqlite3.Connection, pks: list[int]) -> dict[int, list[str]]:
    tags: dict[int, list[str]] = {pk: [] for pk in pks}
    if not pks:
        return tags
    for start in range(0, len(pks), 500):
        chunk = pks[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for pk, tag in con.execute(
            f"SELECT run_pk, tag FROM run_tags WHERE run_pk IN ({marks}) ORDER BY run_pk, position",
            chunk,
        ):
            tags[pk].append(tag)
    return tags


def get_run(
    con: sqlite3.Connection, project: str, run_id: str, stale_after: float = DEFAULT_STALE_AFTER
) -> StoredRun | None:
    row = con.execute(
        f"SELECT {_RUN_COLUMNS}{_RUN_FROM} WHERE r.project = ? AND r.run_id = ?",
        (project, run_id),
    ).fetchone()
    if row is None:
        return None
    return _decode(row, _tags_for(con, [row[0]])[row[0]], stale_after)


def list_runs(
    con: sqlite3.Connection,
    project: str | None = None,
    limit: int | None = None,
    stale_after: float = DEFAULT_STALE_AFTER,
    *,
    where: str = "",
    where_args: Iterable[Any] = (),
    decode: bool = True,
) -> list[StoredRun]:
    """Runs, newest first, of one project or of all; ``where`` narrows them (SQL over
    ``runs r``, ``run_state s``, ``configs c`` and ``summaries m``).  Without
    ``decode``, config, summary, metadata and rewinds are left as JSON text."""
    # undecoded rows leave the metadata (the largest field) to be read when used
    sql = f"SELECT {_RUN_COLUMNS if decode else _RUN_COLUMNS.replace(' r.metadata,', ' NULL,')}{_RUN_FROM}"
    args: list[Any] = []
    conditions = []
    if project is not None:
        conditions.append("r.project = ?")
        args.append(project)
    if where:
        conditions.append(f"({where})")
        args.extend(where_args)
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += " ORDER BY r.created_at DESC, r.pk DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    rows = con.execute(sql, args).fetchall()
    tags = _tags_for(con, [r[0] for r in rows])
    return [_decode(r, tags[r[0]], stale_after, decode) for r in rows]


def count_runs(con: sqlite3.Connection, project: str) -> int:
    return _scalar(con, "SELECT COUNT(*) FROM runs WHERE project = ?", (project,))


def history(
    con: sqlite3.Connection,
    pk: int,
    keys: Iterable[str] | None = None,
    *,
    max_step: int | None = None,
    after_step: int | None = None,
    limit: int | None = None,
    object_hook: Callable[[dict[str, Any]], Any] | None = None,
) -> list[dict[str, Any]]:
    """A run's history rows in step order, each with ``_step``, ``_timestamp``, ``_runtime``.

    With ``keys``, only rows holding at least one of them are returned, and each row
    carries only those of the keys it holds.  ``object_hook`` sees every dict decoded
    from a JSON row (media references, for the Api).
    """
    sql = "SELECT step, ts, runtime, cell, keyset, data FROM history WHERE run_pk = ?"
    args: list[Any] = [pk]
    if max_step is not None:
        sql += " AND step <= ?"
        args.append(max_step)
    if after_step is not None:
        sql += " AND step > ?"
        args.append(after_step)
    sql += " ORDER BY step"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    wanted = None if keys is None else list(keys)
    out: list[dict[str, Any]] = []
    append = out.append
    decoder = RowDecoder(con, object_hook)
    decode = decoder.decode
    picks: dict[int, list[tuple[str, Any, int]]] = {}  # key set -> how to read the wanted keys from a packed row
    for step, ts, runtime, cell, kid, data in con.execute(sql, args):
        if wanted is None:
            values = decode(kid, data)
        elif kid is None:
            values = decoder.decode_keys(None, data, wanted)
            if not values:
                continue
        else:
            pick = picks.get(kid)
            if pick is None:
                pick = picks[kid] = decoder.picker(kid, wanted)
            if not pick:
                continue
            if len(pick) == 1:  # the common case: one key, one number
                key, st, at = pick[0]
                row = {"_step": step, "_timestamp": ts, "_runtime": runtime, key: st.unpack_from(data, at)[0]}
                if cell is not None:
                    row["_cell"] = cell
                append(row)
                continue
            values = {k: st.unpack_from(data, at)[0] for k, st, at in pick}
        row = {"_step": step, "_timestamp": ts, "_runtime": runtime}
        if cell is not None:
            row["_cell"] = cell
        row.update(values)
        append(row)
    return out


def system_metrics(
    con: sqlite3.Connection,
    pk: int,
    keys: Iterable[str] | None = None,
    *,
    after: float | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """A run's system metric samples in time order, each with ``_timestamp`` and ``_runtime``."""
    wanted = None if keys is None else list(keys)
    out = []
    sql = "SELECT ts, runtime, data FROM system_metrics WHERE run_pk = ?"
    args: list[Any] = [pk]
    if after is not None:
        sql += " AND ts > ?"
        args.append(after)
    sql += " ORDER BY ts"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    for ts, runtime, data in con.execute(sql, args):
        values = json.loads(data)
        if wanted is not None:
            values = {k: values[k] for k in wanted if k in values}
            if not values:
                continue
        out.append({"_timestamp": ts, "_runtime": runtime, **values})
    return out


def max_step(con: sqlite3.Connection, pk: int) -> int:
    """The highest step in a run's history, or -1."""
    return _scalar(con, "SELECT COALESCE(MAX(step), -1) FROM history WHERE run_pk = ?", (pk,))


def set_aside(con: sqlite3.Connection, pk: int) -> list[dict[str, Any]]:
    """What the writer could not store for a run: step, time, what, reason and the data as text."""
    return [
        {"step": step, "ts": ts, "what": what, "reason": reason, "data": data}
        for step, ts, what, reason, data in con.execute(
            "SELECT step, ts, what, reason, data FROM set_aside WHERE run_pk = ? ORDER BY id", (pk,)
        )
    ]


def count_history(con: sqlite3.Connection, pk: int, after_step: int = -1) -> int:
    return _scalar(con, "SELECT COUNT(*) FROM history WHERE run_pk = ? AND step > ?", (pk, after_step))


def count_system(con: sqlite3.Connection, pk: int, after: float = 0.0) -> int:
    return _scalar(con, "SELECT COUNT(*) FROM system_metrics WHERE run_pk = ? AND ts > ?", (pk, after))


def sync_state(con: sqlite3.Connection, pk: int, server: str) -> dict[str, Any] | None:
    row = con.execute("SELECT data FROM sync_state WHERE run_pk = ? AND server = ?", (pk, server)).fetchone()
    if row is None:
        return None
    state: dict[str, Any] = json.loads(row[0])
    return state


def run_by_pk(con: sqlite3.Connection, pk: int, stale_after: float = DEFAULT_STALE_AFTER) -> StoredRun | None:
    row = con.execute(f"SELECT {_RUN_COLUMNS}{_RUN_FROM} WHERE r.pk = ?", (pk,)).fetchone()
    if row is None:
        return None
    return _decode(row, _tags_for(con, [pk])[pk], stale_after)
