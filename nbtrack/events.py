"""A small event bus: the core announces, front ends (panel, IPython hooks) listen.

The core never calls into a front end directly.  A listener that raises is reported
once as a warning and never breaks the run or the user's code.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Callable

RUN_STARTED = "run_started"
RUN_FINISHED = "run_finished"
SYNC_DONE = "sync_done"  # an online run's finish() stopped waiting for its sync: payload run
CHANGED = "changed"  # config, summary, tags or a field changed: payload run, what

Listener = Callable[..., None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._lock = threading.Lock()
        self._failed: set[int] = set()

    def subscribe(self, event: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener(**payload)`` on ``event``; return a function that unsubscribes."""
        with self._lock:
            self._listeners.setdefault(event, []).append(listener)

        def unsubscribe() -> None:
            with self._lock:
                items = self._listeners.get(event, [])
                if listener in items:
                    items.remove(listener)

        return unsubscribe

    def has(self, event: str) -> bool:
        return bool(self._listeners.get(event))

    def listeners(self, event: str) -> list[Listener]:
        """The live list of ``event``'s listeners: cheap to test for emptiness on a hot path."""
        with self._lock:
            return self._listeners.setdefault(event, [])

    def emit(self, event: str, **payload: Any) -> None:
        for listener in tuple(self._listeners.get(event, ())):
            try:
                listener(**payload)
            except Exception as exc:
                if id(listener) not in self._failed:
                    self._failed.add(id(listener))
                    warnings.warn(f"nbtrack: a {event!r} listener failed: {exc!r}", RuntimeWarning,
                                  stacklevel=2)


bus = EventBus()
