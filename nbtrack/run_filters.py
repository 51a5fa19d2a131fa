"""``Api().runs(filters=..., order=...)``: wandb's MongoDB-style run filters, applied to
the records of a local store.

Fields: ``state``, ``tags``, ``name`` (the run id, as in wandb), ``display_name``
(the shown name), ``id``, ``group``, ``job_type``, ``notes``, ``project``, ``entity``,
``created_at`` (an ISO date string or a datetime), ``runtime``, ``last_step``,
``config.<key>`` (nested keys with dots; wandb's ``config.<key>.value`` too) and
``summary_metrics.<key>`` (also ``summary.<key>``).

Operators: ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin``,
``$exists``, ``$regex``, ``$not``, and ``$and``, ``$or``, ``$nor`` over lists of
filters.  A list field (``tags``) matches a value when it holds it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import UsageError

_MISSING = object()
_FIELDS: dict[str, Callable[[Any], Any]] = {
    "state": lambda r: r.state,
    "tags": lambda r: list(r.tags),
    "name": lambda r: r.id,
    "id": lambda r: r.id,
    "run_id": lambda r: r.id,
    "display_name": lambda r: r.name,
    "displayName": lambda r: r.name,
    "group": lambda r: r.group,
    "job_type": lambda r: r.job_type,
    "jobType": lambda r: r.job_type,
    "notes": lambda r: r.notes,
    "project": lambda r: r.project,
    "entity": lambda r: r.entity,
    "created_at": lambda r: r.created_at,
    "createdAt": lambda r: r.created_at,
    "runtime": lambda r: r.runtime,
    "last_step": lambda r: r.last_step,
    "lastHistoryStep": lambda r: r.last_step,
}
_COMPARE = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _lookup(data: Any, path: str) -> Any:
    """``data["a.b"]``, else ``data["a"]["b"]``; wandb's trailing ``.value`` is optional."""
    if not isinstance(data, Mapping):
        return _MISSING
    if path in data:
        return data[path]
    head, dot, rest = path.partition(".")
    if dot and head in data:
        found = _lookup(data[head], rest)
        if found is not _MISSING:
            return found
    if path.endswith(".value"):
        return _lookup(data, path[: -len(".value")])
    return _MISSING


def field(record: Any, name: str) -> Any:
    """The value a filter or an order names on a record (``_MISSING`` when absent)."""
    if name in _FIELDS:
        return _FIELDS[name](record)
    for prefix, source in (("config.", "config"), ("summary_metrics.", "summary"), ("summary.", "summary")):
        if name.startswith(prefix):
            # a stored record's fields as stored: no copy of each run's config to match it
            stored = getattr(record, "_stored", None)
            data = stored(source) if stored is not None else getattr(record, source)
            return _lookup(data, name[len(prefix) :])
    raise UsageError(
        f"runs: cannot filter or order by {name!r}; use one of {', '.join(sorted(_FIELDS))}, "
        "config.<key> or summary_metrics.<key>"
    )


def _comparable(value: Any, operand: Any) -> tuple[Any, Any]:
    if isinstance(value, datetime.datetime) and isinstance(operand, str):
        parsed = datetime.datetime.fromisoformat(operand.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        return value, parsed
    return value, operand


def _equal(value: Any, operand: Any) -> bool:
    if isinstance(value, list) and not isinstance(operand, list):
        return operand in value
    value, operand = _comparable(value, operand)
    return bool(value == operand)


def _condition(value: Any, condition: Any) -> bool:
    if not isinstance(condition, Mapping) or not any(str(k).startswith("$") for k in condition):
        return value is not _MISSING and _equal(value, condition)
    for op, operand in condition.items():
        if op == "$eq":
            ok = value is not _MISSING and _equal(value, operand)
        elif op == "$ne":
            ok = value is _MISSING or not _equal(value, operand)
        elif op in _COMPARE:
            if value is _MISSING or value is None:
                ok = False
            else:
                left, right = _comparable(value, operand)
                try:
                    ok = bool(_COMPARE[op](left, right))
                except TypeError:
                    ok = False
        elif op in ("$in", "$nin"):
            if not isinstance(operand, (list, tuple, set)):
                raise UsageError(f"runs: {op} needs a list, got {operand!r}")
            found = value is not _MISSING and any(_equal(value, o) for o in operand)
            ok = found if op == "$in" else not found
        elif op == "$exists":
            ok = (value is not _MISSING and value is not None) == bool(operand)
        elif op == "$regex":
            ok = isinstance(value, str) and re.search(str(operand), value) is not None
        elif op == "$not":
            ok = not _condition(value, operand)
        else:
            raise UsageError(f"runs: unknown filter operator {op!r}")
        if not ok:
            return False
    return True


def matches(record: Any, filters: Mapping[str, Any] | None) -> bool:
    """Whether a record satisfies a MongoDB-style filter document."""
    if not filters:
        return True
    if not isinstance(filters, Mapping):
        raise UsageError(f"runs: filters must be a dict such as {{'state': 'finished'}}, got {filters!r}")
    for key, condition in filters.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(condition, (list, tuple)):
                raise UsageError(f"runs: {key} needs a list of filters, got {condition!r}")
            results = [matches(record, c) for c in condition]
            ok = all(results) if key == "$and" else any(results) if key == "$or" else not any(results)
        else:
            ok = _condition(field(record, key), condition)
        if not ok:
            return False
    return True


def order_key(order: str) -> tuple[str, bool]:
    """``"-created_at"`` -> ``("created_at", descending)``."""
    if not isinstance(order, str) or not order.strip("+-"):
        raise UsageError(
            f"runs: order must name a field such as '-created_at' or '+summary_metrics.loss', got {order!r}"
        )
    return order.lstrip("+-"), order.startswith("-")


def sort(records: list[Any], order: str) -> list[Any]:
    """Records sorted by ``order``; those without the field last, either way."""
    name, descending = order_key(order)
    present: list[tuple[Any, Any]] = []
    absent: list[tuple[Any, Any]] = []
    for record in records:
        value = field(record, name)
        (absent if value is _MISSING or value is None else present).append((value, record))
    try:
        present.sort(key=lambda pair: pair[0], reverse=descending)
    except TypeError:
        present.sort(key=lambda pair: str(pair[0]), reverse=descending)
    return [r for _v, r in present] + [r for _v, r in absent]


# ---------------------------------------------------------------- SQL prefilter
# A filter document is matched in Python, on records.  To list a big project fast, the
# conditions SQL can judge are also turned into a WHERE clause that keeps a superset of
# the matches (never fewer): only those runs are read and then matched exactly.
_SQL_COLUMNS = {
    "name": "r.run_id",
    "id": "r.run_id",
    "run_id": "r.run_id",
    "display_name": "r.name",
    "displayName": "r.name",
    "group": "r.run_group",
    "job_type": "r.job_type",
    "jobType": "r.job_type",
}
_SQL_DATA = {"config.": "c.data", "summary_metrics.": "m.data", "summary.": "m.data"}
_SQL_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def sql_prefilter(filters: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    """``(where, args)``: SQL over ``runs r``, ``run_state s``, ``configs c`` and
    ``summaries m`` true for every run that may match ``filters`` (``""`` when it
    cannot narrow them down)."""
    if not filters or not isinstance(filters, Mapping):
        return "", []
    parts, args = [], []
    for key, condition in filters.items():
        if key == "$and" and isinstance(condition, (list, tuple)):
            for item in condition:
                where, more = sql_prefilter(item)
                if where:
                    parts.append(where)
                    args.extend(more)
            continue
        if key == "$or" and isinstance(condition, (list, tuple)) and condition:
            branches = [sql_prefilter(item) if isinstance(item, Mapping) else ("", []) for item in condition]
            if all(where for where, _ in branches):
                parts.append("(" + " OR ".join(where for where, _ in branches) + ")")
                for _, more in branches:
                    args.extend(more)
            continue
        where, more = _leaf_sql(key, condition)
        if where:
            parts.append(where)
            args.extend(more)
    return " AND ".join(f"({p})" for p in parts), args


def _leaf_sql(key: str, condition: Any) -> tuple[str, list[Any]]:
    ops = dict(condition) if isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition) else None
    if ops is None:
        ops = {"$eq": condition}
    parts: list[str] = []
    args: list[Any] = []
    for op, operand in ops.items():
        where, more = _op_sql(key, op, operand)
        if where:
            parts.append(where)
            args.extend(more)
    return " AND ".join(parts), args


def _op_sql(key: str, op: str, operand: Any) -> tuple[str, list[Any]]:
    if key == "state":
        wanted = [operand] if op == "$eq" else list(operand) if op == "$in" and isinstance(operand, list) else None
        if wanted is None or not all(isinstance(w, str) for w in wanted):
            return "", []
        stored = sorted({"running" if w in ("running", "crashed") else w for w in wanted})
        return f"s.state IN ({','.join('?' * len(stored))})", stored
    if key == "tags" and op == "$eq" and isinstance(operand, str):
        return "EXISTS (SELECT 1 FROM run_tags t WHERE t.run_pk = r.pk AND t.tag = ?)", [operand]
    column = _SQL_COLUMNS.get(key)
    if column is not None:
        if op == "$eq" and isinstance(operand, str):
            return f"{column} = ?", [operand]
        if op == "$in" and isinstance(operand, list) and operand and all(isinstance(o, str) for o in operand):
            return f"{column} IN ({','.join('?' * len(operand))})", list(operand)
        return "", []
    prefix = next((p for p in _SQL_DATA if key.startswith(p)), None)
    if prefix is None:
        return "", []
    data, name = _SQL_DATA[prefix], key[len(prefix) :]
    if not name or any(ch in name for ch in '."\\') or isinstance(operand, bool):
        return "", []
    path = f'$."{name}"'
    # One JSON lookup a run where possible.  json_extract gives numbers (true/false as 1/0,
    # as Python compares bools), text for strings and JSON text for lists and objects, NULL
    # when missing.  SQLite orders any text above any number, so "< n" never keeps a string
    # (Python cannot compare one with a number either) and "> n" keeps every string (the
    # exact match then drops them).  A list equals a value that it holds, in Python's match.
    value = f"json_extract({data}, ?)"
    if op in _SQL_OPS and isinstance(operand, (int, float)):
        return f"{value} {_SQL_OPS[op]} ?", [path, operand]
    if op == "$eq" and isinstance(operand, (int, float, str)):
        return f"{value} = ? OR json_type({data}, ?) = 'array'", [path, operand, path]
    return "", []
