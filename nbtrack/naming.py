"""Run ids, generated run names, and the rules that ids, projects and tags obey."""

from __future__ import annotations

import os
import re
from typing import Any

from .errors import UsageError

_BAD = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_BAD_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ID_LENGTH = 8
MAX_ID = 128
MAX_PROJECT = 128
MAX_TAG = 64
ID_FORBIDDEN = "/\\#?%:;,'"
PROJECT_FORBIDDEN = "/\\#?%:"


def _choice(options: Any) -> Any:
    """One of ``options`` drawn from the OS's random source, uniformly (without importing
    ``random``, which costs a millisecond of every ``import nbtrack``)."""
    n = len(options)
    limit = 65536 - 65536 % n  # reject the top of the range, so no option is likelier
    while True:
        value = int.from_bytes(os.urandom(2), "little")
        if value < limit:
            return options[value % n]


_ADJECTIVES = (
    "amber",
    "bold",
    "brisk",
    "calm",
    "clever",
    "crisp",
    "dapper",
    "eager",
    "fancy",
    "fluent",
    "gentle",
    "golden",
    "hardy",
    "honest",
    "jolly",
    "keen",
    "lively",
    "lucid",
    "mellow",
    "merry",
    "misty",
    "nimble",
    "noble",
    "polished",
    "proud",
    "quiet",
    "rapid",
    "rosy",
    "rustic",
    "serene",
    "sharp",
    "shiny",
    "silent",
    "smooth",
    "snowy",
    "solar",
    "spry",
    "stellar",
    "sturdy",
    "sunny",
    "swift",
    "tidy",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zesty",
)
_NOUNS = (
    "aurora",
    "bay",
    "breeze",
    "brook",
    "canyon",
    "cedar",
    "cloud",
    "comet",
    "cove",
    "dawn",
    "delta",
    "dune",
    "ember",
    "field",
    "fjord",
    "forest",
    "galaxy",
    "glade",
    "grove",
    "harbor",
    "hill",
    "lake",
    "lagoon",
    "leaf",
    "meadow",
    "mesa",
    "moon",
    "night",
    "oasis",
    "ocean",
    "orbit",
    "peak",
    "pine",
    "planet",
    "prairie",
    "rain",
    "reef",
    "ridge",
    "river",
    "shore",
    "sky",
    "spring",
    "star",
    "stone",
    "sun",
    "thunder",
    "valley",
    "wave",
    "wind",
)


def new_run_id() -> str:
    """A fresh run id: 8 characters from ``[a-z0-9]``."""
    return "".join(_choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def new_run_name(number: int) -> str:
    """A generated display name such as ``brisk-river-7``."""
    return f"{_choice(_ADJECTIVES)}-{_choice(_NOUNS)}-{number}"


def bad_character(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be stored as text, or ``None``: NUL and other control
    characters (newlines and tabs are allowed where ``multiline``), and lone
    surrogates (which have no UTF-8 form, so SQLite and every file format refuse them)."""
    hit = (_BAD_MULTILINE if multiline else _BAD).search(value)
    if hit is None:
        return None
    ch = hit.group()
    if ch >= "\ud800":
        return f"contains the lone surrogate {ch!r}, which has no UTF-8 form"
    return f"contains the control character {ch!r}"


def check_run_id(value: Any, argument: str = "id") -> str:
    """Return ``value`` if it is an acceptable run id, else raise ``UsageError``."""
    rule = (
        f"a run id is 1-{MAX_ID} characters without leading or trailing whitespace, "
        f"not '.' or '..', without control characters and without any of {' '.join(ID_FORBIDDEN)}"
    )
    if not isinstance(value, str):
        raise UsageError(f"{argument}: expected a string, got {type(value).__name__}; {rule}")
    bad = None
    if not value:
        bad = "is empty"
    elif value != value.strip():
        bad = "has leading or trailing whitespace"
    elif value in (".", ".."):
        bad = f"is {value!r}"
    elif len(value) > MAX_ID:
        bad = f"is {len(value)} characters long"
    else:
        hit = next((c for c in value if c in ID_FORBIDDEN), None)
        bad = f"contains {hit!r}" if hit is not None else bad_character(value)
    if bad:
        raise UsageError(f"{argument}={value!r} {bad}; {rule}")
    return value


def check_project(value: Any, argument: str = "project") -> str:
    """Return ``value`` if it is an acceptable project name, else raise ``UsageError``."""
    rule = (
        f"a project name is 1-{MAX_PROJECT} characters, not '.' or '..', without control "
        f"characters and without any of {' '.join(PROJECT_FORBIDDEN)}"
    )
    if not isinstance(value, str):
        raise UsageError(f"{argument}: expected a string, got {type(value).__name__}; {rule}")
    bad = None
    if not value.strip():
        bad = "is empty"
    elif value.strip() in (".", ".."):
        bad = f"is {value!r}, a path step that would place runs outside their project's folder"
    elif len(value) > MAX_PROJECT:
        bad = f"is {len(value)} characters long"
    else:
        hit = next((c for c in value if c in PROJECT_FORBIDDEN), None)
        bad = f"contains {hit!r}" if hit is not None else bad_character(value)
    if bad:
        raise UsageError(f"{argument}={value!r} {bad}; {rule}")
    return value


def check_tags(value: Any, argument: str = "tags") -> tuple[str, ...]:
    """Normalise tags to a tuple of strings of 1-64 characters, keeping order, no repeats."""
    if value is None:
        return ()
    if isinstance(value, str):
        raise UsageError(
            f"{argument}: expected a list or tuple of strings, got the string {value!r}; write {argument}=[{value!r}]"
        )
    try:
        items = list(value)
    except TypeError:
        raise UsageError(f"{argument}: expected a list or tuple of strings, got {type(value).__name__}") from None
    out: list[str] = []
    for tag in items:
        if not isinstance(tag, str):
            raise UsageError(f"{argument}: each tag must be a string, got {tag!r}")
        bad = bad_character(tag)
        if bad:
            raise UsageError(f"{argument}: the tag {tag!r} {bad}; tags are text without control characters")
        if not 1 <= len(tag) <= MAX_TAG:
            raise UsageError(
                f"{argument}: each tag must be 1-{MAX_TAG} characters, got {tag!r} ({len(tag)} characters)"
            )
        if tag not in out:
            out.append(tag)
    return tuple(out)


def check_text(value: Any, argument: str, *, multiline: bool = False) -> str | None:
    """A free-text field (name, notes, group, job_type, entity): a string or ``None``,
    without NUL, other control characters (newlines and tabs allowed where
    ``multiline``, as in notes) or lone surrogates."""
    if value is None:
        return value
    if not isinstance(value, str):
        raise UsageError(f"{argument}: expected a string, got {type(value).__name__}")
    bad = bad_character(value, multiline=multiline)
    if bad:
        raise UsageError(
            f"{argument}={value!r} {bad}; {argument} is text without "
            + ("control characters other than newlines and tabs" if multiline else "control characters")
        )
    return value
