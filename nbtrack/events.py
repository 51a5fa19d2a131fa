"""A small event bus: the core announces, front ends (panel, IPython hooks) listen.

The core never calls into a front end directly.  A listener that raises is reported
once as a warning and never breaks the run or the user's code.

Events and their payload (always ``run=``):

* ``RUN_STARTED``: ``init()`` made the run.
* ``CHANGED``: its name, notes, tags, config or summary changed (``what=`` says which).
* ``ALERT``: ``run.alert()`` raised an alert (``alert=`` the stored dict).
* ``DISPLAY``: ``run.display()`` asks a front end to show the run (``height=``).
* ``RUN_ENDING``: ``finish()`` began: the run's state is final and nothing more can be
  logged, but its files may still be added to (saved code) before they are stored and
  synced.
* ``RUN_FINISHED``: the last thing ``finish()`` does, once everything is stored (and,
  online, sent or given up on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from . import diagnostics, workers

RUN_STARTED = "run_started"
RUN_ENDING = "run_ending"
RUN_FINISHED = "run_finished"
CHANGED = "changed"
ALERT = "alert"
DISPLAY = "display"

Listener = Callable[..., None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._lock = threading.Lock()

    def subscribe(self, event: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener(**payload)`` on ``event``; return a function that unsubscribes."""
        with self._lock:
            self._listeners[event] = [*self._listeners.get(event, []), listener]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners[event] = [item for item in self._listeners.get(event, []) if item is not listener]

        return unsubscribe

    def has(self, event: str) -> bool:
        return bool(self._listeners.get(event))

    def listeners(self, event: str) -> list[Listener]:
        """The listeners of ``event`` now (a copy)."""
        return list(self._listeners.get(event, ()))

    def emit(self, event: str, **payload: Any) -> None:
        for listener in self._listeners.get(event, ()):
            try:
                listener(**payload)
            except Exception as exc:
                name = getattr(listener, "__qualname__", repr(listener))
                diagnostics.warn_once(
                    f"listener:{event}:{name}", f"nbtrack: a {event!r} listener ({name}) failed: {exc!r}", stacklevel=3
                )

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


bus = EventBus()
workers.on_fork_child(bus._after_fork)
