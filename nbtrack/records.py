"""The shape of a stored run as it crosses from the store to the core and the Api
(``nbtrack.RunRecord``, in ``run_record``, is what users get)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
elif sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # Python 3.10: only type checkers read it

    def dataclass_transform(**_kwargs: Any) -> Any:
        return lambda cls: cls


class StoredRun(TypedDict):
    """A run as the store holds it: what crosses from the store to the core and the Api."""

    pk: int
    project: str
    run_id: str
    entity: str | None
    name: str
    notes: str | None
    group: str | None
    job_type: str | None
    mode: str
    created_at: float
    folder: str
    parent_id: str | None
    branch_step: int | None
    resume_count: int
    rewinds: list[dict[str, Any]]
    metadata: dict[str, Any]
    stored_state: str  # as written; ``state`` reads "crashed" when the owner is gone
    exit_code: int | None
    started_at: float
    finished_at: float | None
    heartbeat: float
    pid: int | None
    pid_start: str | None
    boot_id: str | None
    last_step: int
    runtime: float
    config: dict[str, Any]
    summary: dict[str, Any]
    tags: tuple[str, ...]
    state: str


_T = TypeVar("_T")


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A ``Record`` field's default made afresh for each record (``dataclasses.field``'s
    ``default_factory``)."""
    return _Factory(default_factory)


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


@dataclass_transform(field_specifiers=(field,))
class Record:
    """A base for small record classes, as ``@dataclass`` writes them: the annotated
    names are the fields, in order (a class value is the field's default); ``__init__``
    takes them by position or name, ``__eq__`` and ``__repr__`` compare and show them.

    Made without ``dataclasses``, whose import (with ``inspect``) and per-class code
    generation cost ``import nbtrack`` about 10 ms.
    """

    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name, kind in vars(klass).get("__annotations__", {}).items():
                if name.startswith("_") or str(kind).startswith("ClassVar"):
                    continue
                if name not in names:
                    names.append(name)
                if name in vars(klass):
                    defaults[name] = vars(klass)[name]
        cls._fields = tuple(names)
        cls._defaults = defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} fields, got {len(args)}")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated field {name!r}")
            values[name] = value
        for name in fields:
            if name not in values:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__}: missing field {name!r}")
                default = self._defaults[name]
                values[name] = default.make() if type(default) is _Factory else default
        self.__dict__.update(values)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass without frozen=True

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (values as they are; ``dataclasses.asdict`` would copy them)."""
        return {f: getattr(self, f) for f in self._fields}
