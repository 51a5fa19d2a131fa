"""How nbtrack tells the user about problems it worked around: one warning class, once per key.

Every warning nbtrack issues is an ``nbtrack.NbtrackWarning`` (a ``UserWarning``), so
users can filter them as one (``warnings.filterwarnings("ignore", category=
nbtrack.NbtrackWarning)``).  ``warn_once`` keys each kind of problem so that a loop
that hits the same one a million times says so once.
"""

from __future__ import annotations

import os
import threading
import warnings


class NbtrackWarning(UserWarning):
    """A problem nbtrack worked around (a failed write, an ignored argument, a set-aside row)."""


_seen: set[str] = set()
_lock = threading.Lock()


def warn(message: str, *, stacklevel: int = 2) -> None:
    """Issue ``message`` as an ``NbtrackWarning`` (prefixed ``nbtrack:`` when it is not)."""
    if not message.startswith("nbtrack:"):
        message = f"nbtrack: {message}"
    warnings.warn(message, NbtrackWarning, stacklevel=stacklevel + 1)


def warn_once(key: str, message: str, *, stacklevel: int = 2) -> bool:
    """Warn the first time ``key`` is seen in this process; return whether it warned."""
    with _lock:
        if key in _seen:
            return False
        _seen.add(key)
    warn(message, stacklevel=stacklevel + 1)
    return True


def _after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def forget(prefix: str) -> None:
    """Forget the keys starting with ``prefix`` (a finished run's), so memory stays flat."""
    with _lock:
        for key in [k for k in _seen if k.startswith(prefix)]:
            _seen.discard(key)
