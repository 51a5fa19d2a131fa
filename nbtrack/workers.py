"""One model for every background thread nbtrack runs: ``Worker``.

A worker has an owner, a start, a stop and a join, wakes on demand or every
``interval`` seconds, never lets an exception end it (each kind is reported once), and
is reset in a forked child: the child gets fresh events and locks and no thread (a
thread does not survive ``fork``; a lock another thread held at that moment would stay
held for ever).  Objects that are not workers but hold per-process state (open
databases, the active runs) register a reset with ``on_fork_child``.

Workers run on threads started with ``_thread.start_new_thread``, not
``threading.Thread``: ``Thread.start()`` blocks until the new thread has been scheduled
and has reported in, 0.1-0.5 ms on a busy 2-core machine, which the first ``init()`` of a
process would wait for.  A worker keeps its own record instead (an event set when its
thread ends, the thread's id while it runs); ``running()`` lists the workers whose
thread is up, by name.
"""

from __future__ import annotations

import _thread
import os
import threading
import weakref
from collections.abc import Callable

from . import diagnostics

_workers: weakref.WeakSet[Worker] = weakref.WeakSet()
_child_hooks: list[Callable[[], None]] = []
_before_hooks: list[tuple[Callable[[], None], Callable[[], None]]] = []


class Worker:
    """A daemon thread that calls ``step()`` whenever woken, and every ``interval`` seconds.

    Subclasses implement ``step``; they may override ``wait_time`` (how long to sleep
    before the next step) and ``after_fork`` (drop what belonged to the parent).
    """

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval
        self._new_sync_objects()
        _workers.add(self)

    def _new_sync_objects(self) -> None:
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()
        self._ended: threading.Event | None = None  # set as the thread ends; None before the first start
        self._ident: int | None = None  # the thread's id while it runs

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the thread if it is not running (calling it again is cheap).  Returns
        at once: the thread comes up on its own."""
        ended = self._ended
        if ended is not None and not ended.is_set() and not self._stopping.is_set():
            return
        with self._lifecycle:
            ended = self._ended
            if ended is not None and not ended.is_set():
                if not self._stopping.is_set():
                    return
                ended.wait()  # a stop in progress: let it end before starting afresh
            self._stopping.clear()
            ended = self._ended = threading.Event()
            _thread.start_new_thread(self._run_thread, (ended,))

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to end after its current step and wait up to ``timeout``
        seconds for it; return whether it has ended."""
        self._stopping.set()
        self._wake.set()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        ended = self._ended
        if ended is None or self.on_own_thread:
            return True
        return ended.wait(timeout)

    @property
    def alive(self) -> bool:
        """Whether the thread was started and has not ended (it may not have been
        scheduled yet)."""
        ended = self._ended
        return ended is not None and not ended.is_set()

    @property
    def on_own_thread(self) -> bool:
        return self._ident == threading.get_ident()

    # ---------------------------------------------------------- the thread
    def _run_thread(self, ended: threading.Event) -> None:
        self._ident = threading.get_ident()
        try:
            self._main()
        finally:
            self._ident = None  # thread ids are reused: a later thread must not pass for this one
            ended.set()

    def _main(self) -> None:
        stopping, wake = self._stopping, self._wake
        while not stopping.is_set():
            wake.wait(self.wait_time())
            wake.clear()
            if stopping.is_set():
                break
            self._guarded_step()
        self._guarded(self.on_stop)

    def _guarded_step(self) -> None:
        self._guarded(self.step)

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # a worker outlives any one problem; the next step tries again
            diagnostics.warn_once(
                f"worker:{self.name}:{type(exc).__name__}",
                f"nbtrack: background worker {self.name!r} hit {exc!r}; it keeps going",
            )

    def step(self) -> None:
        raise NotImplementedError

    def on_stop(self) -> None:
        """Called on the thread once, after the last step."""

    def wait_time(self) -> float:
        return self.interval

    # ---------------------------------------------------------------- fork
    def after_fork(self) -> None:
        """In a forked child, after the thread state was reset: drop the parent's work."""

    def _reset_in_child(self) -> None:
        self._new_sync_objects()
        self.after_fork()


def running() -> list[str]:
    """The names of the workers whose thread is up in this process."""
    return sorted(w.name for w in list(_workers) if w.alive)


def on_fork_child(hook: Callable[[], None]) -> Callable[[], None]:
    """Call ``hook()`` in every forked child, after the workers were reset."""
    _child_hooks.append(hook)
    return hook


def around_fork(before: Callable[[], None], after: Callable[[], None]) -> None:
    """Call ``before()`` in the forking thread just before ``fork()`` and ``after()`` in
    the parent right after it (to hold a lock across the fork, so that no write is half
    done in the memory the child copies)."""
    _before_hooks.append((before, after))


def _before_fork() -> None:
    for before, _after in _before_hooks:
        try:
            before()
        except Exception:
            pass


def _after_fork_in_parent() -> None:
    for _before, after in reversed(_before_hooks):
        try:
            after()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    for worker in list(_workers):
        try:
            worker._reset_in_child()
        except Exception:
            pass
    for hook in list(_child_hooks):
        try:
            hook()
        except Exception:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
