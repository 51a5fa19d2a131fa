"""MLflow's rules for metric, param and tag keys, and the mapping of keys it would refuse.

MLflow (3.x) accepts a key of at most 250 characters made of letters, digits, ``_``,
``-``, ``.``, space, ``:`` and ``/`` that is already a normal path (no empty, ``.`` or
``..`` segment, no leading or trailing ``/``).  nbtrack checks keys against these rules on
the client, before the first request, and sends a key MLflow would refuse under a mapped
name instead of letting the server refuse it point by point:

* each refused character becomes ``_``; empty, ``.`` and ``..`` path segments are dropped
  (a ``..`` segment becomes ``__``);
* a mapped key always ends with ``-`` and six hex digits of the SHA-1 of the original key,
  so two keys never map to one name, and a key that is valid as it is never changes;
* a key still over 250 characters is cut before that suffix.

The mapping is deterministic (the same key maps to the same name in every run and on
every machine) and is stored with the run (the ``nbtrack/key_map.json`` artifact and the
``nbtrack.key_map`` tag when it fits), so the original names can be read back.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

MAX_KEY = 250
SUFFIX = 7  # "-" and six hex digits
_ALLOWED = re.compile(r"^[/\w.\- :]*$")
_REFUSED = re.compile(r"[^/\w.\- :]")


def valid(key: str) -> bool:
    """Whether an MLflow server takes ``key`` as a metric, param or tag key."""
    if not key or len(key) > MAX_KEY or not _ALLOWED.match(key):
        return False
    norm = posixpath.normpath(key)
    return norm == key and norm != "." and not norm.startswith(("..", "/"))


def mapped(key: str) -> str:
    """``key`` itself when MLflow takes it, else its mapped name (see the module's doc)."""
    if valid(key):
        return key
    return with_suffix(clean(key), key)


def with_suffix(base: str, original: str) -> str:
    """``base`` cut to fit, with the hash suffix of ``original``."""
    digest = hashlib.sha1(original.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{base[: MAX_KEY - SUFFIX].rstrip('/')}-{digest}"


def clean(key: str) -> str:
    """``key`` with MLflow's characters only and no empty, ``.`` or ``..`` part (no suffix, not cut)."""
    text = _REFUSED.sub("_", key)
    parts = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        parts.append("__" if part == ".." else part)
    return "/".join(parts) or "_"
