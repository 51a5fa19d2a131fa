"""Upload one run from the local store to an MLflow server, resumably.

The local store is the source.  A per-run, per-server state in the store (``sync_state``)
holds the remote run's id and two cursors: the last history step sent and the time of
the last system sample sent.  A cursor moves only after the server accepted the batch,
so an interrupted upload resumes where it stopped; a batch re-sent after a crash between
the server's answer and the cursor write carries identical points (same key, step,
timestamp and value), which MLflow's store keeps once.

Mapping (also in the README):

* project -> experiment (created when missing); run -> MLflow run, ``run_name`` = name;
* config -> params, nested keys joined with ``.``, values written as MLflow's own client
  writes them (``str(value)``: ``True``, ``None``, ``[64, 128]``); the full config as
  ``nbtrack/config.json``;
* numeric history values -> metrics with the row's step and timestamp; keys MLflow would
  refuse are mapped once (``keys.py``), the map kept in ``nbtrack/key_map.json``;
* images -> MLflow's image view (``images/<key>+step+<step>+timestamp+<ms>+<id>.png``),
  tables -> ``tables/<key>/step_<step>.json`` in the layout of MLflow's ``log_table``, both
  while the run goes on; string values -> one table per key, ``text/<key>.json`` (step, value,
  time), at the end;
* summary values set by hand -> metrics when numeric and the key has no history, tags
  ``nbtrack.summary.<key>`` otherwise;
* ``system/...`` samples -> metrics of the same names, step = sample number;
* state -> RUNNING / FINISHED / FAILED / KILLED (crashed);
* files in the run's folder (saved code, session history) -> artifacts under ``nbtrack/``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .. import diagnostics
from ..records import StoredRun
from ..store.local import LocalStore
from . import keys
from .client import Client, ItemRejected

T = TypeVar("T")

MAX_ITEMS = 1000  # metrics + params + tags in one log-batch
MAX_PARAMS_TAGS = 100  # params or tags in one log-batch
MAX_BYTES = 900_000  # under the 1 MB request cap, with room for the envelope
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
ROWS_PER_READ = 2000


# log-batch requests in flight at once for one run (NBTRACK_SYNC_PARALLEL; 1: one at a time)
def _parallel(text: str | None) -> int:
    if text is None or not text.strip():
        return 4
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= 16:
        diagnostics.warn(f"nbtrack: NBTRACK_SYNC_PARALLEL must be a whole number from 1 to 16, got {text!r}; using 4")
        return 4
    return number


PARALLEL = _parallel(os.environ.get("NBTRACK_SYNC_PARALLEL"))
STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "crashed": "KILLED"}


@dataclass
class Progress:
    rows_sent: int = 0
    system_sent: int = 0
    rows_pending: int = 0
    system_pending: int = 0
    files_sent: int = 0
    status: str | None = None
    stopped: bool = False  # the pass ended at a ``stop()``, not because all was sent

    @property
    def done(self) -> bool:
        return not self.rows_pending and not self.system_pending


def _number(value: Any) -> Any:
    """A history value as an MLflow metric value, or None when it is not a number.

    Non-finite values go as the strings the protobuf JSON mapping defines."""
    kind = type(value)
    if kind is bool:
        return float(value)
    if kind is int or kind is float:
        if kind is float and not math.isfinite(value):
            return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
        return value
    return None


def flatten(config: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """A config's leaves as (path, value), in the config's order; a non-empty dict is a branch."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in config.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and value:
            out.extend(flatten(value, path))
        else:
            out.append((path, value))
    return out


def param_text(value: Any) -> str:
    """A config value as MLflow's Python client writes a param: ``str(value)``."""
    return value if isinstance(value, str) else str(value)


def _old_param_text(value: Any) -> str:
    """How nbtrack before 0.x wrote params (JSON), to recognise values sent that way."""
    return value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))


class RunUploader:
    """Sends what one run has and the server lacks.  ``push`` does one pass."""

    def __init__(self, store: LocalStore, pk: int, client: Client, warn: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.pk = pk
        self.client = client
        self.server = client.server.label
        self.warn = warn or _warn
        self.state = store.sync_state(pk, self.server) or self._fresh(0)
        for key, value in self._fresh(0).items():
            self.state.setdefault(key, value)
        self.rejected: set[str] = set()  # metric keys the server refused; not offered again
        self.stop: Callable[[], bool] = _never
        self.stopped = False
        self._names: dict[str, str] = {}  # metric key -> the name sent (this process's cache)
        self._seen: set[str] = set(self.state["keys_seen"])

    @staticmethod
    def _fresh(generation: int) -> dict[str, Any]:
        return {
            "experiment_id": None,
            "remote_id": None,
            "artifact_uri": None,
            "generation": generation,
            "attempt": 0,
            "step": -1,
            "media_step": -1,
            "system_ts": 0.0,
            "system_n": 0,
            "params": {},
            "param_keys": {},
            "key_map": {},
            "keys_seen": [],
            "text_keys": [],
            "tags": {},
            "files": {},
            "logged_artifacts": [],
            "warned": [],
            "status": None,
            "incomplete": False,
            "name": None,
            "rows_sent": 0,
            "error": None,
        }

    def _save(self) -> None:
        if len(self._seen) != len(self.state["keys_seen"]):
            self.state["keys_seen"] = sorted(self._seen)
        self.store.save_sync_state(self.pk, self.server, self.state)

    @property
    def url(self) -> str | None:
        s = self.state
        return self.client.server.run_url(s["experiment_id"], s["remote_id"]) if s["remote_id"] else None

    def pending(self) -> tuple[int, int]:
        return self.store.pending(self.pk, self.state["step"], self.state["system_ts"])

    def _stopping(self) -> bool:
        if not self.stopped and self.stop():
            self.stopped = True
        return self.stopped

    def _warn_once(self, what: str, message: str) -> None:
        """Warn once per run and server, ever (the state remembers it across processes)."""
        if what in self.state["warned"]:
            return
        self.state["warned"].append(what)
        self.warn(message)

    # --------------------------------------------------------------- a pass
    def push(
        self,
        *,
        deadline: float | None = None,
        stop: Callable[[], bool] | None = None,
        final: bool = False,
        closing: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Send what is pending; raises CommError/AuthenticationError when the server
        cannot take it (the cursors keep what was accepted).

        ``stop()`` is asked between requests: when it says so, the pass ends after the
        request in flight, which is not a failure (the next pass goes on from the
        cursors).  ``deadline`` bounds each request's time (only ``init``'s connect uses
        it).  ``closing``: ``finish()`` stopped waiting for the rows; send only the run's
        end state, with the tag ``nbtrack.sync=incomplete``.
        """
        self.stop = stop or _never
        self.stopped = False
        kw: dict[str, Any] = {"deadline": deadline, "stop": self._stopping}
        run = self.store.run_by_pk(self.pk)
        progress = Progress()
        if run is None:
            return progress
        self._pass(run, progress, kw, final, closing, on_progress)
        return progress

    def _pass(
        self,
        run: StoredRun,
        progress: Progress,
        kw: dict[str, Any],
        final: bool,
        closing: bool,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self._follow_rewinds(run, kw)
        if self.state["remote_id"] is None:
            self._connect(run, kw)
        remote = self.state["remote_id"]
        self._send_tags(run, remote, kw)
        self._send_params(run, remote, kw)
        ended = final or run["state"] != "running"
        if not closing:
            self._send_stream(remote, "history", progress, on_progress, kw)
            if not self._stopping():
                self._send_stream(remote, "system", progress, on_progress, kw)
            if not self._stopping():
                self._send_media(run, kw)
            if ended and not self._stopping() and self.state["media_step"] >= self.state["step"]:
                progress.files_sent = self._send_files(run, kw)
                self._send_summary(run, remote, kw)
        progress.rows_pending, progress.system_pending = self.pending()
        progress.stopped = self.stopped
        if self.stopped:
            return  # the end state goes after the files, in a later pass
        self._send_status(run, progress, kw, closing=closing)
        progress.status = self.state["status"]
        if self.state["error"]:
            self.state["error"] = None
            self._save()

    def connect(self, deadline: float | None = None) -> None:
        """Create (or find) the remote run now: ``init(mode="online")`` calls this."""
        run = self.store.run_by_pk(self.pk)
        if run is not None:
            self._follow_rewinds(run, {"deadline": deadline})
            if self.state["remote_id"] is None:
                self._connect(run, {"deadline": deadline})
            elif run["state"] == "running" and self.state["status"] != "RUNNING":
                self.client.update_run(self.state["remote_id"], "RUNNING", deadline=deadline)
                self.state["status"] = "RUNNING"
                self._save()

    def start_over(self, reason: str | None = None) -> str | None:
        """Forget the remote run (``--force``, or a server that lost it): the next push
        uploads the whole run into a new MLflow run.  Returns the old remote id."""
        old = self.state["remote_id"]
        fresh = self._fresh(self.state["generation"])
        fresh["attempt"] = self.state["attempt"] + 1
        if old:
            fresh["start_over_reason"] = reason
        self._begin_anew(fresh, old)
        return str(old) if old else None

    def _begin_anew(self, fresh: dict[str, Any], previous: str | None) -> None:
        """Continue in a new MLflow run: a fresh state that remembers the run it follows
        and what was already said; this process's caches of sent keys go with the old one."""
        if previous:
            fresh["previous_remote"] = previous
        fresh["warned"] = self.state["warned"]
        self.state = fresh
        self._seen = set()
        self._names = {}
        self._save()

    def check_remote(self) -> bool:
        """Whether the server still has this run's MLflow run (False: it lost it; the
        state starts over so the next push uploads the whole run again)."""
        if self.state["remote_id"] is None:
            return True
        try:
            self.client.get_run(self.state["remote_id"])
        except ItemRejected as exc:
            if exc.code != "RESOURCE_DOES_NOT_EXIST" and exc.status != 404:
                raise
            self.start_over("the server no longer had it")
            return False
        return True

    def verify(self) -> list[str]:
        """Compare the server's run with the store and arrange for what is missing to be
        sent again by the next push: points per metric key, params, tags, the status.
        Returns what was found missing (empty when the server has it all)."""
        run = self.store.run_by_pk(self.pk)
        if run is None or self.state["remote_id"] is None:
            return []
        if not self.check_remote():
            return ["the MLflow run is gone from the server: uploading the whole run again"]
        remote = self.client.get_run(self.state["remote_id"])
        found: list[str] = []
        data = remote.get("data") or {}
        params = {p["key"]: p["value"] for p in data.get("params") or []}
        for name in [n for n in self.state["params"] if n not in params]:
            del self.state["params"][name]
            found.append(f"param {name!r} missing")
        tags = {t["key"]: t["value"] for t in data.get("tags") or []}
        for key in [k for k in self.state["tags"] if tags.get(k) != self.state["tags"][k]]:
            del self.state["tags"][key]
            found.append(f"tag {key!r} missing")
        status = (remote.get("info") or {}).get("status")
        if status != self.state["status"]:
            found.append(f"status {status} on the server, {STATUS.get(run['state'], 'RUNNING')} here")
            self.state["status"] = status
        counts: dict[str, int] = {}
        for rows in self._history_up_to_cursor(-1):  # the points the server should have
            for row in rows:
                for key, value in row.items():
                    if key[0] != "_" and _number(value) is not None:
                        counts[key] = counts.get(key, 0) + 1
        short = []
        for key, want in counts.items():
            have = self.client.metric_history_count(self.state["remote_id"], self._metric_name(key))
            if have < want:
                found.append(f"metric {key!r}: {have} of {want} points")
                short.append(key)
        self._save()
        if short:
            self._resend(short)
        return found

    def _resend(self, wanted: list[str]) -> None:
        """Send again every point of ``wanted`` up to the cursor (MLflow keeps a point
        sent twice once: same key, step, timestamp and value)."""
        remote, keep = self.state["remote_id"], set(wanted)
        for rows in self._history_up_to_cursor(-1):
            rows = [{k: v for k, v in row.items() if k[0] == "_" or k in keep} for row in rows]
            self._send_metric_batches(
                remote, _metric_batches(rows, lambda r: r["_step"], self._metric_name), lambda _m: None, {}
            )

    def _history_up_to_cursor(self, after: int) -> Iterator[list[dict[str, Any]]]:
        """The run's history rows after step ``after`` up to the sent cursor, a chunk at a time."""
        while True:
            rows = self.store.history(self.pk, after_step=after, max_step=self.state["step"], limit=ROWS_PER_READ)
            if not rows:
                return
            yield rows
            after = rows[-1]["_step"]

    # -------------------------------------------------------------- pieces
    def _run_key(self, run: StoredRun) -> str:
        key = f"{run['project']}/{run['run_id']}#{self.state['generation']}"
        return key + (f".{self.state['attempt']}" if self.state["attempt"] else "")

    def _connect(self, run: StoredRun, kw: dict[str, Any]) -> None:
        c = self.client
        experiment = c.experiment_id(run["project"], **kw)
        run_key = self._run_key(run)
        # a run made by an earlier attempt whose answer was lost is found and reused
        info = c.find_run(experiment, "nbtrack.run_key", run_key, **kw)
        if info is None:
            tags = [{"key": k, "value": v} for k, v in self._tags(run).items()]
            tags.append({"key": "nbtrack.run_key", "value": run_key})
            previous = self.state.get("previous_remote")
            if previous:
                what = "nbtrack.rewind_of" if not self.state["attempt"] else "nbtrack.upload_of"
                tags.append({"key": what, "value": previous})
            info = c.create_run(experiment, run["name"], int(run["created_at"] * 1000), tags[:MAX_PARAMS_TAGS], **kw)
            self.state["tags"] = {t["key"]: t["value"] for t in tags[:MAX_PARAMS_TAGS]}
        self.state.update(
            experiment_id=experiment,
            remote_id=info["run_id"],
            artifact_uri=info.get("artifact_uri"),
            status=info.get("status"),
            name=run["name"],
        )
        self._save()
        previous = self.state.get("previous_remote")
        if previous and self.state["attempt"] and not self.state.get("superseded_tagged"):
            try:  # the old run may be gone (a server that lost it): the tag is a courtesy
                c.log_batch(previous, tags=[{"key": "nbtrack.superseded_by", "value": info["run_id"]}], **kw)
            except ItemRejected:
                pass
            self.state["superseded_tagged"] = True
            self._save()

    def _follow_rewinds(self, run: StoredRun, kw: dict[str, Any]) -> None:
        """MLflow cannot delete metric points.  A rewound run continues in a new MLflow
        run holding the kept history; the old one is tagged and marked KILLED."""
        rewinds = len(run["rewinds"])
        if rewinds <= self.state["generation"]:
            return
        old = self.state["remote_id"]
        if old is None:  # never uploaded before the rewind: start at this generation
            self.state["generation"] = rewinds
            self._save()
            return
        step = run["rewinds"][-1]["step"]
        self.client.log_batch(old, tags=[{"key": "nbtrack.rewound_to_step", "value": str(step)}], **kw)
        if self.state["status"] == "RUNNING":
            self.client.update_run(old, "KILLED", **kw)
        self._begin_anew(self._fresh(rewinds), old)
        self._connect(run, kw)
        self.client.log_batch(old, tags=[{"key": "nbtrack.superseded_by", "value": self.state["remote_id"]}], **kw)

    def _tags(self, run: StoredRun) -> dict[str, str]:
        meta = run["metadata"] or {}
        tags = {
            "mlflow.runName": run["name"],
            "nbtrack.run_id": run["run_id"],
            "nbtrack.project": run["project"],
        }
        optional = {
            "nbtrack.entity": run["entity"],
            "nbtrack.group": run["group"],
            "nbtrack.job_type": run["job_type"],
            "mlflow.note.content": run["notes"],
            "mlflow.user": meta.get("user"),
            "nbtrack.host": meta.get("host"),
            "nbtrack.tags": ", ".join(run["tags"]) if run["tags"] else None,
            "mlflow.source.git.commit": (meta.get("git") or {}).get("commit"),
            "nbtrack.fork_of": run["parent_id"],
            "nbtrack.branch_step": None if run["branch_step"] is None else str(run["branch_step"]),
        }
        code = meta.get("code") or {}
        notebook = (code.get("notebook") or {}) if isinstance(code.get("notebook"), dict) else {}
        if notebook.get("path") and not meta.get("anonymous") == "must":
            optional["mlflow.source.name"] = notebook["path"]
            optional["mlflow.source.type"] = "NOTEBOOK"
        elif meta.get("program"):
            optional["mlflow.source.name"] = meta["program"]
            optional["mlflow.source.type"] = "NOTEBOOK" if meta.get("interactive") else "LOCAL"
        elif meta.get("interactive"):
            optional["mlflow.source.type"] = "NOTEBOOK"
        for tag in run["tags"]:
            optional[f"tag.{tag}"] = "true"
        tags.update({k: str(v) for k, v in optional.items() if v not in (None, "")})
        return {self._key(k, "tag"): self._fit(v, MAX_TAG_VALUE, f"tag {k!r}") for k, v in tags.items()}

    def _key(self, key: str, what: str) -> str:
        """``key`` as MLflow takes it: itself, or its mapped name (said once)."""
        name = keys.mapped(key)
        if name != key:
            self._note_mapped(key, name, what)
        return name

    def _note_mapped(self, key: str, name: str, what: str) -> None:
        self.state["key_map"].setdefault(what, {})[name] = key
        self._warn_once(
            f"key:{what}:{key}",
            f"nbtrack: {what} key {_shown(key)} is not a valid MLflow key (at most {keys.MAX_KEY} characters of "
            f"letters, digits, _ - . : / and spaces); {self.server} gets it as {_shown(name)} "
            "(the map of original names is the run's nbtrack/key_map.json)",
        )

    def _metric_name(self, key: str) -> str:
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = self._key(key, "metric")
            self._seen.add(key)
        return name

    def _fit(self, value: str, limit: int, what: str) -> str:
        if len(value) <= limit:
            return value
        self._warn_once(
            f"long:{what}",
            f"nbtrack: {what} is {len(value)} characters, over MLflow's limit of {limit}; the server gets "
            "the first part (the full value stays in the local store and in nbtrack/config.json)",
        )
        return _cut(value, limit)

    def _send_tags(self, run: StoredRun, remote: str, kw: dict[str, Any]) -> None:
        wanted = self._tags(run)
        key_map = self.state["key_map"]
        if key_map:
            text = json.dumps(key_map, sort_keys=True)
            wanted["nbtrack.key_map"] = text if len(text) <= MAX_TAG_VALUE else "see the artifact nbtrack/key_map.json"
        sent = self.state["tags"]
        changed = [{"key": k, "value": v} for k, v in wanted.items() if sent.get(k) != v]
        if run["name"] != self.state.get("name"):
            self.client.update_run(remote, self.state["status"] or "RUNNING", name=run["name"], **kw)
            self.state["name"] = run["name"]
        for chunk in _chunks(changed, MAX_PARAMS_TAGS):
            for item in self._send_items(remote, "tags", chunk, kw):
                sent[item["key"]] = item["value"]
            self._save()

    def params(self, run: StoredRun) -> dict[str, tuple[str, str, Any]]:
        """The run's config as MLflow params: name -> (value text, config path, value).

        Each config path keeps the name it got first (stored in the sync state): a
        path whose name another path already has (``{"a.b": 1, "a": {"b": 2}}``, or two
        long keys that shorten alike) gets the hash suffix of its path."""
        names: dict[str, str] = self.state["param_keys"]  # path (JSON) -> name
        taken = {name: path for path, name in names.items()}
        out: dict[str, tuple[str, str, Any]] = {}
        for path, value in flatten(run["config"] or {}):
            dotted = ".".join(path)
            ident = json.dumps(path)
            name = names.get(ident)
            if name is None:
                name = keys.mapped(dotted)
                if name in taken and taken[name] != ident:
                    name = keys.with_suffix(keys.clean(dotted), ident)
                if name != dotted:
                    self._note_mapped(dotted, name, "config")
                names[ident] = name
                taken[name] = ident
            text = self._fit(param_text(value), MAX_PARAM_VALUE, f"config value {dotted!r}")
            out[name] = (text, dotted, value)
        return out

    def _send_params(self, run: StoredRun, remote: str, kw: dict[str, Any]) -> None:
        sent = self.state["params"]
        fresh = []
        for name, (text, dotted, value) in self.params(run).items():
            if name not in sent:
                fresh.append({"key": name, "value": text})
            elif sent[name] != text:
                if sent[name] == _cut(_old_param_text(value), MAX_PARAM_VALUE):
                    continue  # sent by an older nbtrack in its JSON form: the same value
                self.warn(
                    f"nbtrack: config {dotted!r} changed to {text[:60]!r} after it was sent to "
                    f"{self.server}; MLflow params cannot change, so the server keeps "
                    f"{sent[name][:60]!r} (nbtrack/config.json has the current config)"
                )
                sent[name] = text
                self._save()
        for chunk in _chunks(fresh, MAX_PARAMS_TAGS):
            for item in self._send_items(remote, "params", chunk, kw):
                sent[item["key"]] = item["value"]
            self._save()

    def _send_items(
        self, remote: str, kind: str, items: list[dict[str, Any]], kw: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Send a batch; when the server refuses it, halve until the refused items are
        found, drop those with a warning and send the rest.  Returns what was accepted."""
        if not items:
            return []
        try:
            self.client.log_batch(remote, **{kind: items}, **kw)
            return items
        except ItemRejected as exc:
            if len(items) == 1:
                item = items[0]
                self._warn_once(
                    f"refused:{kind}:{item['key']}",
                    f"nbtrack: {self.server} refused {kind[:-1]} {item['key']!r} ({exc.message[:200]}); "
                    "it stays in the local store only",
                )
                if kind == "metrics":
                    self.rejected.add(item["key"])
                return []
            if kind == "metrics":  # one refused key refuses every point of it: drop the key at once
                bad = {m["key"] for m in items}
                if len(bad) == 1:
                    self.rejected |= bad
                    return self._send_items(remote, kind, items[:1], kw)
            half = len(items) // 2
            left = self._send_items(remote, kind, items[:half], kw)
            right = [m for m in items[half:] if m["key"] not in self.rejected] if kind == "metrics" else items[half:]
            return left + self._send_items(remote, kind, right, kw)

    def _send_metric_batches(
        self,
        remote: str,
        batches: Iterable[tuple[list[dict[str, Any]], Any]],
        on_sent: Callable[[Any], None],
        kw: dict[str, Any],
    ) -> bool:
        """Send batches, up to ``PARALLEL`` requests in flight (a server with several
        workers takes them at once); a batch's mark is passed to ``on_sent`` only once it
        and every batch before it were accepted, so a cursor never skips a batch.
        False when ``stop()`` ended it early."""
        parallel = PARALLEL
        inflight: deque[tuple[Any, Any]] = deque()
        pool = self.client.pool(parallel) if parallel > 1 else None
        complete = True
        try:
            for items, mark in batches:
                if self._stopping():
                    complete = False
                    break
                items = [m for m in items if m["key"] not in self.rejected]
                if pool is None:
                    self._send_items(remote, "metrics", items, kw)
                    if mark is not None:  # None: the first parts of a row wider than one batch
                        on_sent(mark)
                    continue
                inflight.append((pool.submit(self._send_items, remote, "metrics", items, kw), mark))
                while inflight and (len(inflight) >= parallel or inflight[0][0].done()):
                    future, done_mark = inflight.popleft()
                    future.result()  # a CommError here ends the pass; later batches are sent again
                    if done_mark is not None:
                        on_sent(done_mark)
            while inflight:
                future, done_mark = inflight.popleft()
                future.result()
                if done_mark is not None:
                    on_sent(done_mark)
        finally:
            for future, _mark in inflight:  # after a failure: let the requests in flight end
                future.exception()
        return complete

    def _send_stream(
        self,
        remote: str,
        stream: str,
        progress: Progress,
        on_progress: Callable[[Progress], None] | None,
        kw: dict[str, Any],
    ) -> None:
        """Send one stream after its cursor: ``history`` (cursor: last step, metric step =
        the row's step) or ``system`` (cursor: last sample time, metric step = sample
        number).  The cursor moves after each accepted batch."""
        history = stream == "history"
        cursor, counter = ("step", "rows_sent") if history else ("system_ts", "system_n")
        while not self._stopping():
            if history:
                rows = self.store.history(self.pk, after_step=self.state[cursor], limit=ROWS_PER_READ)
            else:
                rows = self.store.system_metrics(self.pk, after=self.state[cursor], limit=ROWS_PER_READ)
                for i, sample in enumerate(rows):
                    sample["_step"] = self.state[counter] + i
            if not rows:
                return

            def sent(mark: tuple[Any, int]) -> None:
                self.state[cursor], count = mark
                self.state[counter] += count
                if history:
                    progress.rows_sent += count
                else:
                    progress.system_sent += count
                self._save()
                if on_progress:
                    on_progress(progress)

            batches = _metric_batches(rows, lambda r: r["_step"] if history else r["_timestamp"], self._metric_name)
            if not self._send_metric_batches(remote, batches, sent, kw) or len(rows) < ROWS_PER_READ:
                # a short read was all there was: rows logged meanwhile go with the next pass,
                # so a live run makes about one small request a second, not one per few rows
                return

    # ------------------------------------------------------ media and text
    def _send_media(self, run: StoredRun, kw: dict[str, Any]) -> None:
        """Images and tables of the rows already sent, into MLflow's image and table
        views, while the run goes on; notes which keys hold strings (for ``text/``)."""
        uri = self.state.get("artifact_uri")
        if not uri or not uri.startswith("mlflow-artifacts:"):
            self.state["media_step"] = self.state["step"]  # nowhere to put them: they stay local
            return
        folder = self.store.run_folder(run["folder"])
        text_keys = set(self.state["text_keys"])
        images = False
        for rows in self._history_up_to_cursor(self.state["media_step"]):
            if self._stopping():
                break
            for row in rows:
                if self._stopping():
                    break
                step, ms = row["_step"], int(row["_timestamp"] * 1000)
                for key, value in row.items():
                    if key[0] == "_":
                        continue
                    if isinstance(value, str):
                        text_keys.add(key)
                    elif isinstance(value, dict) and value.get("_type") in ("image", "table"):
                        path = folder / str(value.get("path", ""))
                        if not value.get("path") or not path.is_file():
                            continue
                        if value["_type"] == "image":
                            images |= self._send_image(uri, key, step, ms, path, kw)
                        else:
                            self._send_table(uri, f"tables/{_file_key(key)}/step_{step}.json", path.read_bytes(), kw)
                self.state["media_step"] = step
            self.state["text_keys"] = sorted(text_keys)
            self._save()
        else:
            self.state["media_step"] = self.state["step"]  # every row up to the cursor was looked at
        if images:
            self._set_tag("mlflow.loggedImages", "True", kw)
        self._list_tables(kw)

    def _set_tag(self, key: str, value: str, kw: dict[str, Any]) -> None:
        """One tag of the run on the server, sent when it differs from what was sent."""
        if self.state["tags"].get(key) != value:
            self._send_items(self.state["remote_id"], "tags", [{"key": key, "value": value}], kw)
            self.state["tags"][key] = value
            self._save()

    def _send_image(self, uri: str, key: str, step: int, ms: int, path: Path, kw: dict[str, Any]) -> bool:
        """One image the way MLflow's ``log_image(key=, step=)`` lays it out, so its image
        view finds it by key and step: the file and a ``+compressed`` copy (the view's
        thumbnail; nbtrack sends the same PNG, it does not resize)."""
        ext = path.suffix.lstrip(".").lower()
        if ext not in ("png", "webp"):
            return False  # MLflow's image view shows PNG and WebP only; the file stays under nbtrack/media
        ident = hashlib.sha1(f"{self.state['remote_id']}|{key}|{step}".encode()).hexdigest()
        uid = f"{ident[:8]}-{ident[8:12]}-{ident[12:16]}-{ident[16:20]}-{ident[20:32]}"
        base = f"images/{_file_key(key).replace('/', '~')}+step+{step}+timestamp+{ms}+{uid}"
        for rel in (f"{base}.{ext}", f"{base}+compressed.{ext}"):
            self._upload(uri, rel, path, kw)
        return True

    def _send_table(self, uri: str, rel: str, body: bytes, kw: dict[str, Any]) -> None:
        """A table as MLflow's ``log_table`` writes it (pandas' ``split`` layout:
        ``columns`` and ``data``), listed in the run's ``mlflow.loggedArtifacts`` tag."""
        if not self._upload(uri, rel, body, kw):
            return
        listed = self.state["logged_artifacts"]
        if rel not in listed:
            listed.append(rel)

    def _list_tables(self, kw: dict[str, Any]) -> None:
        listed = self.state["logged_artifacts"]
        entries = [{"path": rel, "type": "table"} for rel in listed]
        text = json.dumps(entries)
        while len(text) > MAX_TAG_VALUE and entries:  # the newest tables that fit
            entries = entries[1:]
            text = json.dumps(entries)
        if entries:
            self._set_tag("mlflow.loggedArtifacts", text, kw)

    def _upload(self, uri: str, rel: str, source: bytes | Path, kw: dict[str, Any]) -> bool:
        sent = self.state["files"]
        if isinstance(source, Path):
            st = source.stat()
            sig = f"{st.st_size}:{st.st_mtime_ns}"
        else:
            sig = hashlib.sha1(source).hexdigest()
        if sent.get(rel) == sig:
            return False
        try:
            self.client.upload_artifact(uri, rel, source, **kw)  # a Path is streamed, not read whole
        except ItemRejected as exc:
            self._warn_once(f"artifact:{rel}", f"nbtrack: {self.server} refused artifact {rel!r} ({exc.message[:200]})")
        sent[rel] = sig
        self._save()
        return True

    def _send_text(self, uri: str, kw: dict[str, Any]) -> None:
        """String values: one table per key, ``text/<key>.json`` (step, value, and the
        time as ISO 8601 UTC text, which pandas and MLflow's table view show as it is)."""
        import datetime

        utc = datetime.timezone.utc
        for key in self.state["text_keys"]:
            rows = self.store.history(self.pk, keys=[key])
            data = [
                [
                    r["_step"],
                    r[key],
                    datetime.datetime.fromtimestamp(r["_timestamp"], utc).isoformat(timespec="milliseconds"),
                ]
                for r in rows
                if isinstance(r.get(key), str)
            ]
            if data:
                body = json.dumps({"columns": ["step", "value", "time"], "data": data}).encode()
                self._send_table(uri, f"text/{_file_key(key)}.json", body, kw)

    def _send_summary(self, run: StoredRun, remote: str, kw: dict[str, Any]) -> None:
        """Summary values set by hand (keys with no history): numbers as metrics at the
        run's last step, anything else as a ``summary.json`` table and tags."""
        summary = run["summary"] or {}
        done = self.state.setdefault("summary_sent", {})  # key -> the value sent
        seen = self._seen | set(self.state["text_keys"])  # keys with history: MLflow shows their latest value
        metrics, rows, tags = [], [], []
        last = max(self.state["step"], 0)
        ms = int((run["finished_at"] or run["heartbeat"] or run["created_at"]) * 1000)
        for key, value in summary.items():
            if key.startswith("_") or key in seen:
                continue
            number = _number(value)
            if number is not None:
                if done.get(key) != number:
                    metrics.append(
                        (key, {"key": self._key(key, "metric"), "value": number, "timestamp": ms, "step": last})
                    )
            elif not (isinstance(value, dict) and value.get("_type")):
                text = param_text(value)
                rows.append([key, text])
                tags.append({"key": self._key(f"nbtrack.summary.{key}", "tag"), "value": text[:MAX_TAG_VALUE]})
        todo_tags = [t for t in tags if self.state["tags"].get(t["key"]) != t["value"]]
        if metrics:
            sent = {id(m) for m in self._send_items(remote, "metrics", [m for _k, m in metrics], kw)}
            done.update({key: m["value"] for key, m in metrics if id(m) in sent})
        for chunk in _chunks(todo_tags, MAX_PARAMS_TAGS):
            for item in self._send_items(remote, "tags", chunk, kw):
                self.state["tags"][item["key"]] = item["value"]
        uri = self.state.get("artifact_uri")
        if uri and uri.startswith("mlflow-artifacts:"):
            if rows:
                body = json.dumps({"columns": ["key", "value"], "data": rows}).encode()
                self._send_table(uri, "summary.json", body, kw)
            self._send_text(uri, kw)
            if self.state["key_map"]:
                self._upload(uri, "nbtrack/key_map.json", json.dumps(self.state["key_map"], indent=1).encode(), kw)
            self._list_tables(kw)
        self._save()

    def _send_files(self, run: StoredRun, kw: dict[str, Any]) -> int:
        uri = self.state.get("artifact_uri")
        if not uri:
            return 0
        if not uri.startswith("mlflow-artifacts:"):
            if not self.state.get("artifacts_note"):
                self.warn(
                    f"nbtrack: {self.server} does not serve artifacts for this run ({uri}); saved code and "
                    "the config file stay local (start the server with artifact serving, the default)"
                )
                self.state["artifacts_note"] = True
                self._save()
            return 0
        files: dict[str, bytes | Path] = {
            "nbtrack/config.json": json.dumps(run["config"] or {}, indent=1, default=str).encode()
        }
        folder = self.store.run_folder(run["folder"])
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    files[f"nbtrack/{path.relative_to(folder).as_posix()}"] = path
        files.update(self._artifact_files())
        count = 0
        for rel, source in files.items():
            if self._stopping():
                break
            count += self._upload(uri, rel, source, kw)
        self._register_links(uri, kw)
        return count

    def _artifact_files(self) -> dict[str, bytes | Path]:
        """The artifact versions this run logged or linked, as MLflow artifacts
        ``artifacts/<name>/v<N>/<path>`` with a ``manifest.json`` each."""
        from ..store import artifacts as stored

        with self.store.lock:
            versions = {v.id: v for v in stored.of_run(self.store.con, self.pk, "logged")}
            for _project, _name, _number, version in stored.links_by_run(self.store.con, self.pk):
                versions.setdefault(version.id, version)
            entries = {vid: stored.entries(self.store.con, vid) for vid in versions}
        out: dict[str, bytes | Path] = {}
        for vid, version in versions.items():
            base = f"artifacts/{version.name}/v{version.version}"
            manifest = {
                "name": version.name,
                "type": version.type,
                "version": f"v{version.version}",
                "digest": version.digest,
                "metadata": version.metadata,
                "entries": {e.path: {"sha256": e.sha256, "size": e.size, "ref": e.ref} for e in entries[vid]},
            }
            out[f"{base}/manifest.json"] = json.dumps(manifest, indent=1, default=str).encode()
            for entry in entries[vid]:
                if entry.sha256 is not None and self.store.objects.has(entry.sha256):
                    out[f"{base}/files/{entry.path}"] = self.store.objects.path(entry.sha256)
        return out

    def _register_links(self, uri: str, kw: dict[str, Any]) -> None:
        """Each link this run made (``link_artifact``, ``link_model``) as a version of the
        MLflow registered model named after the collection, with its aliases."""
        from ..store import artifacts as stored

        with self.store.lock:
            links = stored.links_by_run(self.store.con, self.pk)
            aliases = {
                (project, name): stored.aliases_in(self.store.con, project, name) for project, name, _n, _v in links
            }
        done = self.state.setdefault("registered", {})
        for project, name, number, version in links:
            key = f"{project}/{name}:v{number}"
            if key in done:
                continue
            source = f"{uri.rstrip('/')}/artifacts/{version.name}/v{version.version}/files"
            try:
                remote_version = self.client.register_model_version(name, source, self.state["remote_id"], **kw)
                for alias, version_id in aliases[(project, name)].items():
                    if version_id == version.id and alias != "latest" and not re.fullmatch(r"v\d+", alias):
                        self.client.set_model_alias(name, alias, remote_version, **kw)
            except ItemRejected as exc:
                self.warn(f"nbtrack: {self.server} refused to register {key} as a model ({exc.message[:200]})")
                remote_version = None
            done[key] = remote_version
            self._save()

    def _send_status(self, run: StoredRun, progress: Progress, kw: dict[str, Any], closing: bool = False) -> None:
        """The run's end state goes last, after every row; when ``finish()`` stopped
        waiting (``closing``) it goes anyway, with ``nbtrack.sync=incomplete``, which the
        pass that sends the last row removes."""
        target = STATUS.get(run["state"], "RUNNING")
        remote = self.state["remote_id"]
        if target != "RUNNING" and not progress.done and not closing:
            return
        if target != "RUNNING" and not progress.done and not self.state["incomplete"]:
            self.client.log_batch(remote, tags=[{"key": "nbtrack.sync", "value": "incomplete"}], **kw)
            self.state["incomplete"] = True
            self._save()
        if progress.done and self.state["incomplete"]:
            self.client.delete_tag(remote, "nbtrack.sync", **kw)
            self.state["incomplete"] = False
            self._save()
        if self.state["status"] == target:
            return
        end = run["finished_at"] if target != "RUNNING" else None
        if target == "KILLED":
            end = run["heartbeat"]
        self.client.update_run(remote, target, None if end is None else int(end * 1000), **kw)
        self.state["status"] = target
        self._save()


def _metric_batches(
    rows: list[dict[str, Any]], mark_of: Callable[[dict[str, Any]], Any], name_of: Callable[[str], str]
) -> Iterator[tuple[list[dict[str, Any]], tuple[Any, int] | None]]:
    """Yield (metrics, (mark, rows in batch)) with whole rows per batch where they fit;
    a row wider than a batch is split, and only its last part carries a mark."""
    items: list[dict[str, Any]] = []
    size = 0
    count = 0
    mark = None
    for row in rows:
        step = row["_step"]
        ts = int(row["_timestamp"] * 1000)
        row_items = []
        for key, value in row.items():
            if key[0] == "_":
                continue
            number = _number(value)
            if number is not None:
                row_items.append({"key": name_of(key), "value": number, "timestamp": ts, "step": step})
        row_size = sum(len(m["key"]) + 60 for m in row_items)
        if items and (len(items) + len(row_items) > MAX_ITEMS or size + row_size > MAX_BYTES):
            yield items, (mark, count)
            items, size, count = [], 0, 0
        while len(row_items) > MAX_ITEMS:  # a very wide row: send it in parts
            part, row_items = row_items[:MAX_ITEMS], row_items[MAX_ITEMS:]
            yield part, None
        items.extend(row_items)
        size += row_size
        count += 1
        mark = mark_of(row)
    if count:
        yield items, (mark, count)


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _warn(message: str) -> None:
    diagnostics.warn(message)


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _never() -> bool:
    return False


def _shown(key: str) -> str:
    return repr(key) if len(key) <= 60 else f"{key[:40]!r}... ({len(key)} characters)"


def _file_key(key: str) -> str:
    """A key as a path inside the run's artifacts: MLflow's own key characters only."""
    return keys.clean(key)[:200]
