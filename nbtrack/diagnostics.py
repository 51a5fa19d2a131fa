"""How nbtrack talks to the user: warnings for problems, lines for what happened.

Every warning nbtrack issues is an ``nbtrack.NbtrackWarning`` (a ``UserWarning``), so
users can filter them as one (``warnings.filterwarnings("ignore", category=
nbtrack.NbtrackWarning)``).  ``warn_once`` keys each kind of problem so that a loop
that hits the same one a million times says so once.

``say`` prints a line about what happened ("started run ...") unless ``quiet``;
``notice`` prints one the user must see even then (where their data is not).  Both go
to stderr, or to stdout once the notebook layer asks (a kernel shows stderr as an
alarming red block).  Only the command line and the notebook layer print otherwise.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings


class NbtrackWarning(UserWarning):
    """A problem nbtrack worked around (a failed write, an ignored argument, a set-aside row)."""


_seen: set[str] = set()
_lock = threading.Lock()
_to_stdout = False


def lines_to_stdout(flag: bool) -> None:
    """Send ``say``/``notice`` lines to stdout (the notebook layer asks for it)."""
    global _to_stdout
    _to_stdout = flag


def notice(message: str) -> None:
    """Print a line the user must see, ``quiet`` or not."""
    print(message, file=sys.stdout if _to_stdout else sys.stderr, flush=True)


def say(message: str, *, quiet: bool = False) -> None:
    """Print ``nbtrack: message`` unless ``quiet``."""
    if not quiet:
        notice(message if message.startswith("nbtrack:") else f"nbtrack: {message}")


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
