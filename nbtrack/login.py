"""``nbtrack.login()``: wandb's ``login`` for code that calls it first.

nbtrack needs no account: offline, ``login()`` does nothing and returns True.  It never
prompts and never reads stdin, so a notebook or a job that calls ``wandb.login()``
never hangs on it.

Online (a tracking server set with ``host=``, ``Settings(tracking_uri=...)``,
``NBTRACK_TRACKING_URI`` or an ``http(s)`` ``MLFLOW_TRACKING_URI``):

- ``host=`` sets ``NBTRACK_TRACKING_URI`` for this process (and the processes it
  starts), so later runs sync to that server;
- ``key=`` is the server's bearer token: it sets ``NBTRACK_TRACKING_TOKEN`` (in memory
  only; nothing is written to disk);
- ``verify=True`` (or ``force=True``) asks the server now and raises
  ``AuthenticationError`` for refused credentials, ``CommError`` when it cannot be
  reached within ``timeout`` seconds.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .errors import UsageError
from .settings import Settings


def login(
    anonymous: str | None = None,
    key: str | None = None,
    relogin: bool | None = None,
    host: str | None = None,
    force: bool | None = None,
    timeout: int | None = None,
    verify: bool = False,
    referrer: str | None = None,
    **_ignored: Any,
) -> bool:
    """Set up the tracking server's address and token, if any; True when set (always
    True offline).  See the module's doc."""
    if anonymous is not None and anonymous not in ("never", "allow", "must"):
        raise UsageError(f"login: anonymous must be 'never', 'allow' or 'must', got {anonymous!r}")
    if key is not None and (not isinstance(key, str) or not key.strip()):
        raise UsageError("login: key must be a non-empty string (the tracking server's token)")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise UsageError(f"login: timeout must be a positive number of seconds, got {timeout!r}")
    if host is not None:
        if not isinstance(host, str) or not host.lower().startswith(("http://", "https://")):
            raise UsageError(
                f"login: host must be the http(s):// URL of an MLflow tracking server, got {host!r} "
                "(nbtrack syncs to MLflow; without a host it works offline)"
            )
        os.environ["NBTRACK_TRACKING_URI"] = host.strip()
    settings = Settings().resolve()
    uri = settings.tracking_uri
    if uri is None:
        return True  # offline: nothing to log in to
    if key is not None:
        os.environ["NBTRACK_TRACKING_TOKEN"] = key.strip()
    if verify or force:
        from . import sync

        try:
            server = sync.Server.resolve(uri)
        except ValueError as exc:
            raise UsageError(f"login: {exc}") from None
        client = sync.Client(server)
        try:
            wait = float(timeout) if timeout is not None else settings.init_timeout
            client.call(
                "GET",
                sync.client.API + "experiments/search",
                params={"max_results": 1},
                retries=1,
                deadline=time.monotonic() + wait,
            )
        finally:
            client.close()
    return True
