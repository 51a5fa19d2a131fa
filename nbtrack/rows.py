"""What ``log()`` accepts: turning a row's values into storable ones, and the summary.

The fast path of ``Run.log`` handles the common row (string keys, plain numbers,
strings, booleans, ``None``) without coming here; everything else is converted by
``normalise``.
"""

from __future__ import annotations

import datetime
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .media import Media, as_media
from .values import MAX_DEPTH, scalar

if TYPE_CHECKING:
    from .active_run import Run

SCALARS = frozenset((float, int, str, bool, type(None)))
STR = frozenset((str,))
RESERVED_KEYS = frozenset(("_step", "_timestamp", "_runtime", "_cell"))
MAX_STEP = 2**63 - 1  # steps are stored as SQLite integers (64-bit signed)
MAX_CHECKED = 10_000  # key sets remembered as fine (then forgotten and checked again)

# The key sets (tuples of a row's keys, in order) that passed check_keys: most loops log
# the same keys every step, and looking the tuple up costs half of checking it again.
checked_keys: set[tuple] = set()


def check_keys(data: Mapping[Any, Any]) -> bool:
    """Refuse a row's top-level keys that are not strings or are reserved; remember a
    key set of plain strings, and return whether it is one (``str`` subclasses are
    accepted, and made plain by ``normalise``).

    Raises
    ------
    TypeError
        For a key that is not a string.
    UsageError
        For ``_step``, ``_timestamp``, ``_runtime`` or ``_cell``.
    """
    for key in data:
        if type(key) is not str and not isinstance(key, str):
            raise TypeError(f"log: keys must be strings, got {key!r} ({type(key).__name__})")
    if not RESERVED_KEYS.isdisjoint(data):
        raise UsageError(
            f"log: {sorted(RESERVED_KEYS.intersection(data))} are reserved names; pass the step with log(..., step=N)"
        )
    if not all(type(key) is str for key in data):
        return False
    if len(checked_keys) >= MAX_CHECKED:
        checked_keys.clear()
    checked_keys.add(tuple(data))
    return True


def normalise(
    data: Mapping[Any, Any], media: Callable[[str, Media], Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Convert a row's values, store its media, flatten nested dicts into ``a/b`` keys,
    and collect the keys whose values cannot be logged.

    Raises
    ------
    TypeError
        For a key that is not a string.
    UsageError
        For nested dicts deeper than ``MAX_DEPTH`` levels or holding themselves.
    """
    row: dict[str, Any] = {}
    bad: list[str] = []
    inside: set[int] = set()

    def put(key: str, value: Any, depth: int) -> None:
        kind = type(value)
        if kind in SCALARS:
            row[key] = value
            return
        if media is not None and isinstance(value, Media):
            try:
                row[key] = media(key, value)
            except OSError as exc:
                bad.append(f"{key!r} (could not store the {value.kind}: {exc})")
            return
        if isinstance(value, Mapping):
            if depth >= MAX_DEPTH:
                raise UsageError(
                    f"log: the value of {key!r} nests dicts more than {MAX_DEPTH} levels deep; "
                    "nothing of this call was logged"
                )
            if id(value) in inside:
                raise UsageError(
                    f"log: the value of {key!r} contains itself (a cycle); nothing of this call was logged"
                )
            inside.add(id(value))
            for sub, inner in value.items():
                if not isinstance(sub, str):
                    raise TypeError(f"log: keys must be strings, got {sub!r} under {key!r}")
                put(f"{key}/{sub}", inner, depth + 1)
            inside.discard(id(value))
            return
        converted = scalar(value)
        if type(converted) in SCALARS:
            row[key] = converted
        elif isinstance(value, bool):
            row[key] = bool(value)
        elif isinstance(value, numbers.Integral):
            row[key] = int(value)
        elif isinstance(value, numbers.Real):
            row[key] = float(value)
        elif isinstance(value, str):
            row[key] = str(value)
        elif isinstance(value, (datetime.datetime, datetime.date)):
            row[key] = value.isoformat()
        elif isinstance(value, (list, tuple)) and all(type(scalar(v)) in SCALARS for v in value):
            row[key] = [scalar(v) for v in value]
        elif (
            media is not None
            and isinstance(value, (list, tuple))
            and value
            and all(isinstance(v, Media) for v in value)
        ):
            try:
                row[key] = [media(key, v) for v in value]
            except OSError as exc:
                bad.append(f"{key!r} (could not store the {value[0].kind}: {exc})")
        elif media is not None and (rich := as_media(value)) is not None:
            # a matplotlib figure (or pyplot) becomes an Image, a pandas DataFrame a Table
            put(key, rich, depth)
        else:
            bad.append(f"{key!r} ({type(value).__module__}.{type(value).__qualname__})")

    for key in data:
        if not isinstance(key, str):
            raise TypeError(f"log: keys must be strings, got {key!r} ({type(key).__name__})")
    for key, value in data.items():
        put(str(key), value, 0)
    return row, bad


class Summary:
    """The last value of each logged key, plus anything set by hand (``run.summary``)."""

    def __init__(self, data: dict[str, Any], run: Run) -> None:
        self._data = data
        self._run = run

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        self._run._check_writable("summary")
        del self._data[key]
        self._run._summary_changed()

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"summary has no key {key!r}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self):
        return self._data.keys()

    def items(self):
        return self._data.items()

    def values(self):
        return self._data.values()

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def update(self, values: Mapping[str, Any]) -> None:
        self._run._check_writable("summary")
        row, bad = normalise(values, self._run._store_media)
        if bad:
            raise TypeError(f"summary: cannot store {', '.join(bad)}")
        self._data.update(row)
        self._run._summary_changed()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Summary({self._data!r})"
