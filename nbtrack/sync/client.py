"""A small client for MLflow's tracking REST API, over one keep-alive ``requests.Session``.

Only what sync needs: experiments, runs, ``log-batch``, run updates, searching runs by
tag, and artifact upload through the server's artifact proxy.  Connection errors,
timeouts, 429 and 5xx are retried with exponential backoff; 401/403 raise
``AuthenticationError``; any other 4xx raises ``ItemRejected`` (the caller decides what
to drop); a server that stays unreachable raises ``CommError``.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AuthenticationError, CommError

API = "/api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts/"
RETRY_STATUS = frozenset((429, 500, 502, 503, 504))


class ItemRejected(CommError):
    """The server refused a request's content (a 4xx other than 401/403)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Server:
    """Where the tracking server is and how to talk to it; ``label`` is safe to print
    and to store (no credentials)."""

    url: str
    label: str
    auth: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    verify: Any = True

    @classmethod
    def resolve(cls, uri: str, environ: Mapping[str, str] | None = None, insecure: bool | None = None) -> Server:
        """Build from a tracking URI and the environment.

        Credentials: ``NBTRACK_TRACKING_TOKEN`` / ``MLFLOW_TRACKING_TOKEN`` (bearer), or
        ``NBTRACK_TRACKING_USERNAME`` + ``..._PASSWORD`` / the ``MLFLOW_`` equivalents (basic),
        or ``user:password@`` in the URI.  TLS is verified unless ``insecure`` (or
        ``NBTRACK_TRACKING_INSECURE_TLS`` / ``MLFLOW_TRACKING_INSECURE_TLS``) says otherwise;
        ``MLFLOW_TRACKING_SERVER_CERT_PATH`` names a CA bundle.
        """
        env = os.environ if environ is None else environ

        def pick(name: str) -> str | None:
            return env.get(f"NBTRACK_TRACKING_{name}") or env.get(f"MLFLOW_TRACKING_{name}") or None

        parts = urllib.parse.urlsplit(uri.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL of an MLflow tracking server, got {uri!r}")
        auth = None
        if parts.username is not None:
            auth = (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in (parts.hostname or "") and not host.startswith("["):
            host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        clean = urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
        headers: tuple[tuple[str, str], ...] = ()
        token, user = pick("TOKEN"), pick("USERNAME")
        if token:
            headers = (("Authorization", f"Bearer {token}"),)
        elif user:
            auth = (user, pick("PASSWORD") or "")
        if insecure is None:
            insecure = (pick("INSECURE_TLS") or "").strip().lower() in ("1", "true", "yes", "on")
        verify: Any = False if insecure else (env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True)
        return cls(url=clean, label=clean, auth=auth, headers=headers, verify=verify)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.url}/#/experiments/{experiment_id}/runs/{run_id}"


class Client:
    """Calls to one server, thread-safe: one keep-alive session per calling thread
    (requests' Session is not documented as thread-safe)."""

    def __init__(
        self, server: Server, *, timeout: float = 10.0, retries: int = 4, backoff: float = 0.5, max_backoff: float = 8.0
    ) -> None:
        import requests  # here, not at import: offline runs never load it

        self.requests = requests
        self.server = server
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[Any] = []
        self._pool: RequestPool | None = None
        self.requests_sent = 0
        self.closed = False

    @property
    def session(self) -> Any:
        """This thread's keep-alive session (requests' Session is not documented as
        thread-safe, so each thread sending for this client has its own)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self.requests.Session()
            session.headers.update(dict(self.server.headers))
            session.headers["User-Agent"] = "nbtrack"
            session.auth = self.server.auth
            session.verify = self.server.verify
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def pool(self, size: int) -> RequestPool:
        """Threads for requests in flight at once (made on first use, kept for the client's life)."""
        with self._lock:
            if self._pool is None:
                self._pool = RequestPool(size)
            return self._pool

    def close(self) -> None:
        self.closed = True
        with self._lock:
            pool, self._pool = self._pool, None
            sessions, self._sessions = self._sessions, []
        if pool is not None:
            pool.shutdown()
        for session in sessions:
            session.close()

    # ------------------------------------------------------------ transport
    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        data: Any = None,
        retries: int | None = None,
        deadline: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Any:
        """One API call with retries; returns the decoded JSON body (or None).  ``stop()``
        is asked before each retry; when it says so, the last failure is raised at once."""
        url = self.server.url + path
        attempts = (self.retries if retries is None else retries) + 1
        delay = self.backoff
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt and stop is not None and stop():
                raise last or CommError(f"no answer from {self.server.label}")  # the failure seen stands
            timeout = self.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    break
            with self._lock:
                self.requests_sent += 1
            session = self.session
            try:
                # a file is streamed, opened again for each attempt
                with open(data, "rb") if isinstance(data, Path) else contextlib.nullcontext(data) as body:
                    response = session.request(
                        method, url, json=json, params=params, data=body, timeout=(min(timeout, 5.0), timeout)
                    )
            except self.requests.exceptions.SSLError as exc:
                raise CommError(
                    f"TLS verification failed for {self.server.label}: {exc}. Point "
                    "MLFLOW_TRACKING_SERVER_CERT_PATH at the CA bundle, or set "
                    "MLFLOW_TRACKING_INSECURE_TLS=true to skip verification"
                ) from None
            except self.requests.exceptions.ReadTimeout:
                # connected, but no answer in time: the server is there and busy (or hung)
                last = CommError(f"{self.server.label} did not answer within {timeout:.0f} s")
            except (self.requests.exceptions.ConnectionError, self.requests.exceptions.Timeout) as exc:
                last = CommError(f"cannot reach {self.server.label}: {_short(exc)}")
            else:
                status = response.status_code
                if status < 400:
                    return _body(response)
                if status in (401, 403):
                    raise AuthenticationError(
                        f"{self.server.label} refused the credentials (HTTP {status}); set "
                        "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                    )
                if status not in RETRY_STATUS:
                    body = _body(response) or {}
                    code = body.get("error_code", "") if isinstance(body, dict) else ""
                    message = (
                        body.get("message", response.text[:300]) if isinstance(body, dict) else response.text[:300]
                    )
                    raise ItemRejected(status, code, message)
                last = CommError(f"{self.server.label} answered HTTP {status}")
                retry_after = response.headers.get("Retry-After")
                if retry_after and retry_after.isdigit():
                    delay = max(delay, float(retry_after))
            if attempt + 1 < attempts:
                pause = min(delay, self.max_backoff) * (0.75 + random.random() / 2)
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - time.monotonic()))
                time.sleep(pause)
                delay *= 2
        raise last or CommError(f"no answer from {self.server.label} in time")

    # ------------------------------------------------------------ tracking
    def experiment_id(self, name: str, **kw: Any) -> str:
        """The id of the experiment called ``name``, created when missing."""
        try:
            found = self.call("GET", API + "experiments/get-by-name", params={"experiment_name": name}, **kw)
            return str(found["experiment"]["experiment_id"])
        except ItemRejected as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST" and exc.status != 404:
                raise
        try:
            return str(self.call("POST", API + "experiments/create", json={"name": name}, **kw)["experiment_id"])
        except ItemRejected as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
            # created by someone else in between
            found = self.call("GET", API + "experiments/get-by-name", params={"experiment_name": name}, **kw)
            return str(found["experiment"]["experiment_id"])

    def find_run(self, experiment_id: str, tag: str, value: str, **kw: Any) -> dict[str, Any] | None:
        quoted = value.replace("'", "\\'")
        found = self.call(
            "POST",
            API + "runs/search",
            json={
                "experiment_ids": [experiment_id],
                "filter": f"tags.`{tag}` = '{quoted}'",
                "max_results": 1,
                "run_view_type": "ALL",
            },
            **kw,
        )
        runs = (found or {}).get("runs") or []
        return runs[0]["info"] if runs else None

    def create_run(
        self, experiment_id: str, name: str, start_ms: int, tags: list[dict[str, str]], **kw: Any
    ) -> dict[str, Any]:
        body = {"experiment_id": experiment_id, "run_name": name, "start_time": start_ms, "tags": tags}
        info: dict[str, Any] = self.call("POST", API + "runs/create", json=body, **kw)["run"]["info"]
        return info

    def get_run(self, run_id: str, **kw: Any) -> dict[str, Any]:
        run: dict[str, Any] = self.call("GET", API + "runs/get", params={"run_id": run_id}, **kw)["run"]
        return run

    def update_run(
        self, run_id: str, status: str, end_ms: int | None = None, name: str | None = None, **kw: Any
    ) -> None:
        body: dict[str, Any] = {"run_id": run_id, "status": status}
        if end_ms is not None:
            body["end_time"] = end_ms
        if name is not None:
            body["run_name"] = name
        self.call("POST", API + "runs/update", json=body, **kw)

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[dict[str, Any]] = (),
        params: Sequence[dict[str, Any]] = (),
        tags: Sequence[dict[str, Any]] = (),
        **kw: Any,
    ) -> None:
        body: dict[str, Any] = {"run_id": run_id}
        if metrics:
            body["metrics"] = list(metrics)
        if params:
            body["params"] = list(params)
        if tags:
            body["tags"] = list(tags)
        self.call("POST", API + "runs/log-batch", json=body, **kw)

    def delete_tag(self, run_id: str, key: str, **kw: Any) -> None:
        try:
            self.call("POST", API + "runs/delete-tag", json={"run_id": run_id, "key": key}, **kw)
        except ItemRejected as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST" and exc.status != 404:
                raise

    def metric_history_count(self, run_id: str, key: str, **kw: Any) -> int:
        """How many points the server holds for ``key`` (pages through get-history)."""
        count, token = 0, None
        while True:
            params: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            if token:
                params["page_token"] = token
            body = self.call("GET", API + "metrics/get-history", params=params, **kw) or {}
            count += len(body.get("metrics") or [])
            token = body.get("next_page_token")
            if not token:
                return count

    def upload_artifact(self, artifact_uri: str, relpath: str, content: bytes | Path, **kw: Any) -> bool:
        """Upload through the server's artifact proxy; False when the run's artifacts are
        not served by this server (an ``s3://`` or local path the client cannot write).
        A ``Path`` is streamed from disk (each retry opens it again)."""
        if not artifact_uri.startswith("mlflow-artifacts:"):
            return False
        parsed = urllib.parse.urlsplit(artifact_uri)
        base = parsed.path.lstrip("/")
        path = urllib.parse.quote(f"{base}/{relpath}")
        self.call("PUT", ARTIFACTS + path, data=content, **kw)
        return True

    def register_model_version(self, name: str, source: str, run_id: str | None, **kw: Any) -> str:
        """A new version of the registered model ``name`` (made when missing) whose files
        are at ``source``; its version number as MLflow gives it."""
        try:
            self.call("POST", API + "registered-models/create", json={"name": name}, **kw)
        except ItemRejected as exc:
            if exc.code != "RESOURCE_ALREADY_EXISTS":
                raise
        body: dict[str, Any] = {"name": name, "source": source}
        if run_id:
            body["run_id"] = run_id
        created = self.call("POST", API + "model-versions/create", json=body, **kw)
        return str(created["model_version"]["version"])

    def set_model_alias(self, name: str, alias: str, version: str, **kw: Any) -> None:
        self.call(
            "POST", API + "registered-models/alias", json={"name": name, "alias": alias, "version": version}, **kw
        )


class RequestPool:
    """A few daemon threads that run calls and hand back futures.  Daemon threads, unlike
    ``concurrent.futures``' pool, never hold up the interpreter's exit while a request
    to a hung server is waiting for its timeout (the run's rows are in the store)."""

    def __init__(self, size: int) -> None:
        import queue

        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self._work, name=f"nbtrack-sync-request-{i}", daemon=True) for i in range(size)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        from concurrent.futures import Future

        future: Future[Any] = Future()
        self.queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)

    def shutdown(self) -> None:
        for _ in self.threads:
            self.queue.put(None)


def _body(response: Any) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 160 else text[:157] + "..."
