"""The background sync of online runs: one thread per process, one client per server.

``log()`` never waits for it: the thread reads what the writer has committed to the
local store and sends it.  When the server fails, the run goes on offline; the thread
retries with growing pauses (up to a minute) and says so once.  ``finish()`` waits a
bounded time (``Settings.sync_timeout``) for the rest, then leaves it to ``nbtrack sync``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .. import workers
from ..errors import AuthenticationError, CommError
from ..store.local import LocalStore
from .client import Client, Server
from .uploader import Progress, RunUploader, _never, _warn

PASS_INTERVAL = 1.0  # seconds between passes while a run is healthy
SLICE = 2.0  # seconds of sending for one run before the next run's turn
MAX_PAUSE = 60.0
CLOSE_WAIT = 10.0  # after finish() stopped waiting: for the server run's end state
PASS_WAIT = 30.0  # finish() leaving the rest to `nbtrack sync`: at most this for a pass under way to stop


class RunSync:
    """One online run's sync, as the run, the panel and ``finish()`` see it."""

    def __init__(
        self, service: SyncService, uploader: RunUploader, label: str, sync_command: str, say: Callable[[str], None]
    ) -> None:
        self.service = service
        self.uploader = uploader
        self.label = label
        self.sync_command = sync_command
        self.say = say
        self.rows_sent = uploader.state["rows_sent"]
        self.rows_pending = 0
        self.error: str | None = None
        self.gave_up = False  # credentials refused: no more tries from this process
        self.final = False
        self.closing = False  # finish() stopped waiting: send the end state only
        self.left_behind = False
        self.done = threading.Event()
        self.closed = threading.Event()  # the end state reached the server (closing)
        self.failures = 0
        self.next_try = 0.0
        self.moved = 0  # rows, samples and files accepted by the server in this process
        self._noticed = False
        self._counted_at = 0.0
        self._busy = threading.Lock()  # held by the service thread during a pass
        self.released = False  # finish() handed what is left to `nbtrack sync`

    @property
    def url(self) -> str | None:
        return self.uploader.url

    @property
    def server(self) -> str:
        return self.uploader.server

    def status(self) -> dict[str, Any]:
        """For the panel and ``run.sync_status``: where, rows sent and pending (counted
        in the store as they are now), and the last error."""
        if self.gave_up:
            state = "error"  # credentials refused: this process stopped trying
        elif self.left_behind:
            state = "unsent"  # finish() stopped waiting; `nbtrack sync` sends the rest
        elif self.done.is_set():
            state = "synced"
        else:
            state = "syncing"  # with ``error`` set while the server does not answer
        now = time.monotonic()
        if state == "syncing" and now - self._counted_at > 0.2:
            self._counted_at = now
            try:
                self.rows_pending = self.uploader.pending()[0]
            except Exception:  # a store busy elsewhere: the last count stands
                pass
        return {
            "server": self.server,
            "state": state,
            "sent": self.rows_sent,
            "pending": self.rows_pending,
            "error": self.error,
        }

    # the service thread calls these
    def run_pass(self, stop: Callable[[], bool]) -> bool:
        """One slice of work; True when there is more to send right away."""
        with self._busy:
            if self.released:
                return False  # finish() left the rest to `nbtrack sync`: this process sends no more
            return self._pass(stop)

    def _pass(self, stop: Callable[[], bool]) -> bool:
        closing = self.closing
        if closing:  # the end state only: a few small requests, not cut short
            stop = _never
        try:
            progress = self.uploader.push(stop=stop, final=self.final, closing=closing, on_progress=self._on_progress)
        except AuthenticationError as exc:
            self.error = str(exc)
            self.gave_up = True
            self._notice(f"nbtrack: {exc}. Run {self.label} goes on offline; send it later with: {self.sync_command}")
            self.done.set()
            return False
        except CommError as exc:
            self.failures += 1
            self.error = str(exc)
            self.next_try = time.monotonic() + min(MAX_PAUSE, 2.0**self.failures)
            self._notice(
                f"nbtrack: {exc}. Run {self.label} goes on offline and is sent when the server "
                f"answers (or later with: {self.sync_command})"
            )
            self._record_error(str(exc))
            return False
        except Exception as exc:  # a bug in sync must not take the run down
            self.failures += 1
            self.error = f"{type(exc).__name__}: {exc}"
            self.next_try = time.monotonic() + min(MAX_PAUSE, 2.0**self.failures)
            self._notice(f"nbtrack: sync of run {self.label} failed ({self.error}); the run is kept locally")
            return False
        self.rows_sent = self.uploader.state["rows_sent"]
        self.rows_pending = progress.rows_pending
        if self.failures:
            self.say(f"nbtrack: {self.server} answers again; run {self.label} is syncing")
        self.failures = 0
        self.error = None
        self._noticed = False
        if closing and not progress.stopped:
            self.closed.set()
        elif (
            self.final
            and progress.done
            and not progress.stopped
            and progress.status in ("FINISHED", "FAILED", "KILLED")
        ):
            self.done.set()
        return progress.stopped

    def _on_progress(self, progress: Progress) -> None:
        self.rows_sent = self.uploader.state["rows_sent"]
        self.moved += 1

    def _notice(self, message: str) -> None:
        if not self._noticed:
            self._noticed = True
            self.say(message)

    def _record_error(self, message: str) -> None:
        try:
            self.uploader.state["error"] = message
            self.uploader._save()
        except Exception:
            pass

    # the caller's thread
    def finish(self, timeout: float) -> bool:
        """Ask for the last passes (rows, files, end state) and wait while they make
        progress: ``timeout`` seconds counted from the last batch the server accepted.
        When that runs out, the server run still gets its end state, tagged
        ``nbtrack.sync=incomplete``, and the rest stays for ``nbtrack sync``."""
        self.final = True
        self.next_try = 0.0
        self.service.wake()
        last, since = self.moved, time.monotonic()
        while not self.done.wait(min(0.25, max(timeout, 0.01))):
            if self.gave_up:
                break
            if self.moved != last:
                last, since = self.moved, time.monotonic()
            elif time.monotonic() - since >= timeout:
                break
        finished = self.done.is_set() and not self.gave_up
        if not finished:
            self.left_behind = not self.gave_up
            if not self.gave_up and self.error is None:  # the server answers: close the run there
                self.closing = True
                self.next_try = 0.0
                self.service.wake()
                self.closed.wait(CLOSE_WAIT if timeout > 0 else 0.0)
            pending = self.uploader.pending() if not self.gave_up else None
            self.rows_pending = pending[0] if pending else self.rows_pending
            if pending is None:
                what = f"run {self.label} is not on {self.server}; it is kept locally. Send it"
            elif pending == (0, 0):
                what = f"the files or end state of run {self.label} are not on {self.server} yet. Send them"
            else:
                what = (
                    f"{pending[0]} rows and {pending[1]} system samples of run {self.label} are not on "
                    f"{self.server} yet; they are kept locally. Send them"
                )
            self.say(f"nbtrack: {what} with: {self.sync_command}")
        self.service.remove(self)
        if not finished:
            # what is left is `nbtrack sync`'s: a pass under way stops at its next request,
            # and none runs after it, so two writers never keep the run's sync state (a
            # closing pass still trying in the background re-sent rows the command had sent)
            self.released = True
            if self._busy.acquire(timeout=PASS_WAIT):
                self._busy.release()
        return finished


class SyncService(workers.Worker):
    """The process's one sync thread: a pass over every online run each second."""

    _instance: SyncService | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__("nbtrack-sync", PASS_INTERVAL)
        self._runs: list[RunSync] = []
        self._clients: dict[Server, Client] = {}
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        # the parent's runs and its HTTP connections stay the parent's
        self._runs = []
        self._clients = {}
        self._lock = threading.Lock()
        SyncService._instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> SyncService:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def client(self, server: Server, timeout: float = 10.0) -> Client:
        with self._lock:
            client = self._clients.get(server)
            if client is None:
                client = self._clients[server] = Client(server, timeout=timeout)
            return client

    def attach(
        self,
        store: LocalStore,
        pk: int,
        server: Server,
        *,
        label: str,
        sync_command: str,
        connect_timeout: float,
        say: Callable[[str], None],
    ) -> RunSync:
        """Start syncing a run: create its remote run now (bounded by ``connect_timeout``);
        if that fails the run is synced in the background once the server answers."""
        client = self.client(server)
        entry = RunSync(self, RunUploader(store, pk, client, warn=_warn), label, sync_command, say)
        try:
            entry.uploader.connect(deadline=time.monotonic() + connect_timeout)
        except AuthenticationError as exc:
            entry.error = str(exc)
            entry.gave_up = True
            entry.done.set()
            say(f"nbtrack: {exc}. Run {label} is stored offline; send it later with: {sync_command}")
            return entry
        except CommError as exc:
            entry.error = str(exc)
            entry.failures = 1
            entry.next_try = time.monotonic() + 2.0
            entry._noticed = True
            say(
                f"nbtrack: {exc}. Run {label} goes on offline and is sent when the server answers "
                f"(or later with: {sync_command})"
            )
        with self._lock:
            self._runs.append(entry)
        self.start()
        return entry

    def remove(self, entry: RunSync) -> None:
        with self._lock:
            if entry in self._runs:
                self._runs.remove(entry)

    def step(self) -> None:
        with self._lock:
            runs = list(self._runs)
        more = False
        for entry in runs:
            if entry.gave_up or entry.done.is_set() or entry.next_try > time.monotonic():
                continue
            if entry.closing and entry.closed.is_set():
                self.remove(entry)
                continue
            end = time.monotonic() + SLICE
            more |= entry.run_pass(
                lambda end=end, entry=entry: time.monotonic() > end or entry.closing or entry.left_behind  # type: ignore[misc]
            )
        if more:
            self.wake()  # the next slice at once: a backlog is worked off without pauses
