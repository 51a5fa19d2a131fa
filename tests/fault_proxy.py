"""A loopback HTTP proxy in front of a real MLflow server that can turn bad on demand:
``pass`` forwards, ``500`` answers every request with HTTP 500, ``hang`` holds every
request without answering; ``refuse_key`` makes it answer HTTP 400 to any log-batch
naming that metric key, as a server with stricter rules would.  It counts what it saw
(``requests``, per endpoint), so tests measure by counting."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.forwarded = 0
        self.errors_500 = 0
        self.held = 0  # requests being held right now
        self.auth_headers: list[str] = []
        self.refuse_key: str | None = None
        self.metrics_delay = 0.0  # seconds to hold each log-batch that carries metrics (a slow server)
        self.requests: Counter[str] = Counter()  # endpoint path (no query) -> requests seen
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, code, message):
                """An MLflow-style JSON error."""
                payload = json.dumps({"error_code": code, "message": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.auth_headers.append(self.headers.get("Authorization") or "")
                proxy.requests[self.path.split("?")[0]] += 1
                names = set()
                if self.path.endswith("/runs/log-batch") and body:
                    names = {m.get("key") for m in json.loads(body).get("metrics", [])}
                if names and proxy.metrics_delay:
                    proxy.release.wait(proxy.metrics_delay)
                if proxy.refuse_key is not None and proxy.refuse_key in names:
                    return self._reply(400, "INVALID_PARAMETER_VALUE", "metric key refused by policy")
                if proxy.mode == "hang":
                    proxy.held += 1
                    try:
                        proxy.release.wait(120)
                    finally:
                        proxy.held -= 1
                    self.close_connection = True
                    return
                if proxy.mode == "500":
                    proxy.errors_500 += 1
                    return self._reply(500, "INTERNAL_ERROR", "injected")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = requests.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=60
                )
                proxy.forwarded += 1
                self.send_response(upstream.status_code)
                for k, v in upstream.headers.items():
                    if k.lower() in ("content-type",):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set(self, mode: str) -> None:
        self.mode = mode
        if mode != "hang":
            self.release.set()
            self.release = threading.Event()

    def close(self) -> None:
        self.set("pass")
        self.httpd.shutdown()
        self.httpd.server_close()
