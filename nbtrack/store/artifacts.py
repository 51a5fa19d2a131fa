"""Artifacts in the store: collections, numbered versions, manifests, aliases, lineage.

A collection is one ``(project, name)`` with a type.  Each version has a number
(``v0``, ``v1``...), a digest over its manifest (identical content gives the existing
version back instead of a new one), its entries (``path``, ``sha256`` of the object in
``objects/``, ``size``, or ``ref`` for a reference kept as a URI), and rows saying which
run logged it and which runs used it.  Aliases point at one version of a collection
each; ``latest`` always at the newest.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from ..records import Record

_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


class Entry(Record):
    path: str
    sha256: str | None
    size: int | None
    ref: str | None
    extra: dict[str, Any]


class Version(Record):
    id: int
    artifact_id: int
    project: str
    name: str
    type: str
    version: int
    digest: str
    description: str | None
    metadata: dict[str, Any]
    size: int
    file_count: int
    created_at: float
    logged_by: int | None
    tags: list[str]


_VERSION = (
    "SELECT v.id, v.artifact_id, a.project, a.name, a.type, v.version, v.digest, v.description, v.metadata,"
    " v.size, v.file_count, v.created_at, v.logged_by, v.tags"
    " FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id"
)


def _version(row: tuple[Any, ...] | None) -> Version | None:
    if row is None:
        return None
    values = list(row)
    values[8] = json.loads(values[8] or "{}")
    values[13] = json.loads(values[13] or "[]")
    return Version(*values)


def collection(con: sqlite3.Connection, project: str, name: str) -> tuple[int, str] | None:
    """``(id, type)`` of a collection, or None."""
    row = con.execute("SELECT id, type FROM artifacts WHERE project = ? AND name = ?", (project, name)).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def ensure_collection(con: sqlite3.Connection, project: str, name: str, type: str) -> int:
    """The collection's id, made when missing.  Raises ``ValueError`` for another type."""
    found = collection(con, project, name)
    if found is not None:
        if found[1] != type:
            raise ValueError(f"artifact {name!r} in project {project!r} has type {found[1]!r}, not {type!r}")
        return found[0]
    cur = con.execute(
        "INSERT INTO artifacts (project, name, type, created_at) VALUES (?, ?, ?, ?)",
        (project, name, type, time.time()),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def by_digest(con: sqlite3.Connection, artifact_id: int, digest: str) -> Version | None:
    return _version(
        con.execute(f"{_VERSION} WHERE v.artifact_id = ? AND v.digest = ?", (artifact_id, digest)).fetchone()
    )


def add_version(
    con: sqlite3.Connection,
    artifact_id: int,
    *,
    digest: str,
    description: str | None,
    metadata: dict[str, Any],
    entries: list[Entry],
    logged_by: int | None,
) -> Version:
    """A new version, numbered after the last one, with its manifest; ``latest`` moves to it."""
    (number,) = con.execute(
        "SELECT COALESCE(MAX(version), -1) + 1 FROM artifact_versions WHERE artifact_id = ?", (artifact_id,)
    ).fetchone()
    size = sum(e.size or 0 for e in entries)
    cur = con.execute(
        "INSERT INTO artifact_versions (artifact_id, version, digest, description, metadata, size, file_count,"
        " created_at, logged_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (artifact_id, number, digest, description, _dumps(metadata), size, len(entries), time.time(), logged_by),
    )
    version_id = cur.lastrowid
    assert version_id is not None
    con.executemany(
        "INSERT INTO artifact_entries (version_id, path, sha256, size, ref, extra) VALUES (?, ?, ?, ?, ?, ?)",
        [(version_id, e.path, e.sha256, e.size, e.ref, _dumps(e.extra)) for e in entries],
    )
    set_alias(con, artifact_id, "latest", version_id)
    found = _version(con.execute(f"{_VERSION} WHERE v.id = ?", (version_id,)).fetchone())
    assert found is not None
    return found


def set_alias(con: sqlite3.Connection, artifact_id: int, alias: str, version_id: int) -> None:
    """Point ``alias`` at a version (moving it from any other version of the collection)."""
    con.execute(
        "INSERT OR REPLACE INTO artifact_aliases (artifact_id, alias, version_id) VALUES (?, ?, ?)",
        (artifact_id, alias, version_id),
    )


def set_tags(con: sqlite3.Connection, version_id: int, tags: list[str]) -> None:
    con.execute("UPDATE artifact_versions SET tags = ? WHERE id = ?", (_dumps(list(tags)), version_id))


def remove_alias(con: sqlite3.Connection, artifact_id: int, alias: str) -> None:
    con.execute("DELETE FROM artifact_aliases WHERE artifact_id = ? AND alias = ?", (artifact_id, alias))


def record_use(con: sqlite3.Connection, version_id: int, run_pk: int, role: str) -> None:
    """``role`` is ``logged`` or ``used``."""
    con.execute(
        "INSERT OR IGNORE INTO artifact_usage (version_id, run_pk, role, at) VALUES (?, ?, ?, ?)",
        (version_id, run_pk, role, time.time()),
    )


def find(con: sqlite3.Connection, project: str, name: str, which: str) -> Version | None:
    """A version by ``vN`` or alias, following links into a collection that holds links."""
    found = collection(con, project, name)
    if found is None:
        return None
    artifact_id = found[0]
    if which[:1] == "v" and which[1:].isdigit():
        row = con.execute(f"{_VERSION} WHERE v.artifact_id = ? AND v.version = ?", (artifact_id, int(which[1:])))
        version = _version(row.fetchone())
        if version is not None:
            return version
        link = con.execute(
            "SELECT version_id FROM artifact_links WHERE artifact_id = ? AND version = ?", (artifact_id, int(which[1:]))
        ).fetchone()
        return None if link is None else _version(con.execute(f"{_VERSION} WHERE v.id = ?", (link[0],)).fetchone())
    row = con.execute(
        "SELECT version_id FROM artifact_aliases WHERE artifact_id = ? AND alias = ?", (artifact_id, which)
    )
    hit = row.fetchone()
    return None if hit is None else _version(con.execute(f"{_VERSION} WHERE v.id = ?", (hit[0],)).fetchone())


def by_id(con: sqlite3.Connection, version_id: int) -> Version | None:
    return _version(con.execute(f"{_VERSION} WHERE v.id = ?", (version_id,)).fetchone())


def entries(con: sqlite3.Connection, version_id: int) -> list[Entry]:
    return [
        Entry(path, sha, size, ref, json.loads(extra or "{}"))
        for path, sha, size, ref, extra in con.execute(
            "SELECT path, sha256, size, ref, extra FROM artifact_entries WHERE version_id = ? ORDER BY path",
            (version_id,),
        )
    ]


def aliases(con: sqlite3.Connection, version_id: int) -> list[str]:
    return [
        a
        for (a,) in con.execute("SELECT alias FROM artifact_aliases WHERE version_id = ? ORDER BY alias", (version_id,))
    ]


def aliases_in(con: sqlite3.Connection, project: str, name: str) -> dict[str, int]:
    """A collection's aliases: alias -> version id."""
    return {
        alias: int(version_id)
        for alias, version_id in con.execute(
            "SELECT l.alias, l.version_id FROM artifact_aliases l JOIN artifacts a ON a.id = l.artifact_id"
            " WHERE a.project = ? AND a.name = ?",
            (project, name),
        )
    }


def runs_using(con: sqlite3.Connection, version_id: int, role: str) -> list[int]:
    return [
        pk
        for (pk,) in con.execute(
            "SELECT run_pk FROM artifact_usage WHERE version_id = ? AND role = ? ORDER BY at", (version_id, role)
        )
    ]


def of_run(con: sqlite3.Connection, run_pk: int, role: str) -> list[Version]:
    rows = con.execute(
        f"{_VERSION} JOIN artifact_usage u ON u.version_id = v.id WHERE u.run_pk = ? AND u.role = ? ORDER BY u.at",
        (run_pk, role),
    ).fetchall()
    return [v for v in map(_version, rows) if v is not None]


def versions(
    con: sqlite3.Connection, project: str | None = None, name: str | None = None, type: str | None = None
) -> list[Version]:
    """Versions, newest first, of a project (and a collection, and a type)."""
    sql, args = f"{_VERSION} WHERE 1 = 1", []
    for column, value in (("a.project", project), ("a.name", name), ("a.type", type)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    rows = con.execute(sql + " ORDER BY a.name, v.version DESC", args).fetchall()
    return [v for v in map(_version, rows) if v is not None]


def latest_of_type(con: sqlite3.Connection, type: str | None, project: str | None) -> list[Version]:
    """The newest version of each collection (of a type, in a project)."""
    newest: dict[int, Version] = {}
    for version in versions(con, project, None, type):
        if version.artifact_id not in newest:
            newest[version.artifact_id] = version
    return list(newest.values())


def linked(con: sqlite3.Connection, project: str, name: str) -> list[tuple[int, Version]]:
    """The versions linked into a collection, as (number there, version), newest first."""
    found = collection(con, project, name)
    if found is None:
        return []
    out = []
    for number, version_id in con.execute(
        "SELECT version, version_id FROM artifact_links WHERE artifact_id = ? ORDER BY version DESC", (found[0],)
    ).fetchall():
        version = by_id(con, version_id)
        if version is not None:
            out.append((int(number), version))
    return out


def links_by_run(con: sqlite3.Connection, run_pk: int) -> list[tuple[str, str, int, Version]]:
    """The links a run made: (project, collection name, number there, version)."""
    out = []
    for project, name, number, version_id in con.execute(
        "SELECT a.project, a.name, l.version, l.version_id FROM artifact_links l JOIN artifacts a ON a.id = l.artifact_id"
        " WHERE l.run_pk = ? ORDER BY l.at",
        (run_pk,),
    ).fetchall():
        version = by_id(con, version_id)
        if version is not None:
            out.append((str(project), str(name), int(number), version))
    return out


def link(con: sqlite3.Connection, artifact_id: int, version_id: int, run_pk: int | None = None) -> int:
    """Show a version in another collection (a registry): its number there; linking the
    same version twice gives the same number.  ``run_pk``: the run that linked it."""
    row = con.execute(
        "SELECT version FROM artifact_links WHERE artifact_id = ? AND version_id = ?", (artifact_id, version_id)
    ).fetchone()
    if row is not None:
        return int(row[0])
    (number,) = con.execute(
        "SELECT COALESCE(MAX(version), -1) + 1 FROM artifact_links WHERE artifact_id = ?", (artifact_id,)
    ).fetchone()
    con.execute(
        "INSERT INTO artifact_links (artifact_id, version, version_id, at, run_pk) VALUES (?, ?, ?, ?, ?)",
        (artifact_id, number, version_id, time.time(), run_pk),
    )
    set_alias(con, artifact_id, "latest", version_id)
    return int(number)


def delete_version(con: sqlite3.Connection, version_id: int) -> None:
    """Forget a version: its manifest, aliases, usage and links (objects stay: other
    versions may hold the same content)."""
    for table in ("artifact_entries", "artifact_aliases", "artifact_usage", "artifact_links"):
        con.execute(f"DELETE FROM {table} WHERE version_id = ?", (version_id,))
    con.execute("DELETE FROM artifact_versions WHERE id = ?", (version_id,))
