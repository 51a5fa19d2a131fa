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
from .uploader import Progress, RunUploader, _warn

PASS_INTERVAL = 1.0  # seconds between passes while a run is healthy
MAX_PAUSE = 60.0


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
        self.left_behind = False
        self.done = threading.Event()
        self.failures = 0
        self.next_try = 0.0
        self._noticed = False

    @property
    def url(self) -> str | None:
        return self.uploader.url

    @property
    def server(self) -> str:
        return self.uploader.server

    def status(self) -> dict[str, Any]:
        """For the panel: where, rows sent and pending, and the last error."""
        if self.gave_up:
            state = "error"  # credentials refused: this process stopped trying
        elif self.left_behind:
            state = "unsent"  # finish() stopped waiting; `nbtrack sync` sends the rest
        elif self.done.is_set():
            state = "synced"
        else:
            state = "syncing"  # with ``error`` set while the server does not answer
        return {
            "server": self.server,
            "state": state,
            "sent": self.rows_sent,
            "pending": self.rows_pending,
            "error": self.error,
        }

    # the service thread calls these
    def run_pass(self) -> None:
        deadline = time.monotonic() + 30.0
        try:
            progress = self.uploader.push(deadline=deadline, final=self.final)
        except AuthenticationError as exc:
            self.error = str(exc)
            self.gave_up = True
            self._notice(f"nbtrack: {exc}. Run {self.label} goes on offline; send it later with: {self.sync_command}")
            self.done.set()
            return
        except CommError as exc:
            self.failures += 1
            self.error = str(exc)
            self.next_try = time.monotonic() + min(MAX_PAUSE, 2.0**self.failures)
            self._notice(
                f"nbtrack: {exc}. Run {self.label} goes on offline and is sent when the server "
                f"answers (or later with: {self.sync_command})"
            )
            self._record_error(str(exc))
            return
        except Exception as exc:  # a bug in sync must not take the run down
            self.failures += 1
            self.error = f"{type(exc).__name__}: {exc}"
            self.next_try = time.monotonic() + min(MAX_PAUSE, 2.0**self.failures)
            self._notice(f"nbtrack: sync of run {self.label} failed ({self.error}); the run is kept locally")
            return
        self._progress(progress)
        if self.failures:
            self.say(f"nbtrack: {self.server} answers again; run {self.label} is syncing")
        self.failures = 0
        self.error = None
        self._noticed = False
        if self.final and progress.done and progress.status in ("FINISHED", "FAILED", "KILLED"):
            self.done.set()

    def _progress(self, progress: Progress) -> None:
        self.rows_sent = self.uploader.state["rows_sent"]
        self.rows_pending = progress.rows_pending

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
        """Ask for a last pass (files, end state) and wait up to ``timeout`` seconds."""
        self.final = True
        self.next_try = 0.0
        self.service.wake()
        finished = self.done.wait(timeout) and not self.gave_up
        if not finished:
            self.left_behind = not self.gave_up
            pending = self.uploader.pending() if not self.gave_up else None
            self.rows_pending = pending[0] if pending else self.rows_pending
            left = f"{pending[0]} rows and {pending[1]} system samples" if pending else "the run"
            self.say(
                f"nbtrack: {left} of run {self.label} are not on {self.server} yet; they are kept "
                f"locally. Send them with: {self.sync_command}"
            )
        self.service.remove(self)
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
        now = time.monotonic()
        for entry in runs:
            if entry.gave_up or entry.done.is_set() or entry.next_try > now:
                continue
            entry.run_pass()
