"""Upload one run from the local store to an MLflow server, resumably.

The local store is the source.  A per-run, per-server state in the store (``sync_state``)
holds the remote run's id and two cursors: the last history step sent and the time of
the last system sample sent.  A cursor moves only after the server accepted the batch,
so an interrupted upload resumes where it stopped; a batch re-sent after a crash between
the server's answer and the cursor write carries identical points (same key, step,
timestamp and value), which MLflow's store keeps once.

Mapping (also in the README):

* project -> experiment (created when missing); run -> MLflow run, ``run_name`` = name;
* config -> params, nested keys joined with ``.``; the full config as ``nbtrack/config.json``;
* numeric history values -> metrics with the row's step and timestamp (strings stay local);
* ``system/...`` samples -> metrics of the same names, step = sample number;
* state -> RUNNING / FINISHED / FAILED / KILLED (crashed);
* files in the run's folder (saved code, session history) -> artifacts under ``nbtrack/``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .. import diagnostics
from ..records import StoredRun
from ..store.local import LocalStore
from .client import Client, ItemRejected

T = TypeVar("T")

MAX_ITEMS = 1000  # metrics + params + tags in one log-batch
MAX_PARAMS_TAGS = 100  # params or tags in one log-batch
MAX_BYTES = 900_000  # under the 1 MB request cap, with room for the envelope
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
ROWS_PER_READ = 2000
STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "crashed": "KILLED"}


@dataclass
class Progress:
    rows_sent: int = 0
    system_sent: int = 0
    rows_pending: int = 0
    system_pending: int = 0
    files_sent: int = 0
    status: str | None = None

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


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


class RunUploader:
    """Sends what one run has and the server lacks.  ``push`` does one pass."""

    def __init__(self, store: LocalStore, pk: int, client: Client, warn: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.pk = pk
        self.client = client
        self.server = client.server.label
        self.warn = warn or _warn
        self.state = store.sync_state(pk, self.server) or self._fresh(0)
        self.rejected: set[str] = set()  # metric keys the server refused; not offered again

    @staticmethod
    def _fresh(generation: int) -> dict[str, Any]:
        return {
            "experiment_id": None,
            "remote_id": None,
            "artifact_uri": None,
            "generation": generation,
            "step": -1,
            "system_ts": 0.0,
            "system_n": 0,
            "params": {},
            "tags": {},
            "files": {},
            "status": None,
            "name": None,
            "rows_sent": 0,
            "error": None,
        }

    def _save(self) -> None:
        self.store.save_sync_state(self.pk, self.server, self.state)

    @property
    def url(self) -> str | None:
        s = self.state
        return self.client.server.run_url(s["experiment_id"], s["remote_id"]) if s["remote_id"] else None

    def pending(self) -> tuple[int, int]:
        return self.store.pending(self.pk, self.state["step"], self.state["system_ts"])

    # --------------------------------------------------------------- a pass
    def push(
        self,
        *,
        deadline: float | None = None,
        final: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Send everything pending; raises CommError/AuthenticationError when the server
        cannot take it (the cursors keep what was accepted)."""
        kw = {"deadline": deadline}
        run = self.store.run_by_pk(self.pk)
        progress = Progress()
        if run is None:
            return progress
        self._follow_rewinds(run, kw)
        if self.state["remote_id"] is None:
            self._connect(run, kw)
        remote = self.state["remote_id"]
        self._send_tags(run, remote, kw)
        self._send_params(run, remote, kw)
        self._send_stream(remote, "history", progress, on_progress, kw)
        self._send_stream(remote, "system", progress, on_progress, kw)
        if final or run["state"] != "running":
            progress.files_sent = self._send_files(run, kw)
        progress.rows_pending, progress.system_pending = self.pending()
        self._send_status(run, progress, kw)
        progress.status = self.state["status"]
        if self.state["error"]:
            self.state["error"] = None
            self._save()
        return progress

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

    # -------------------------------------------------------------- pieces
    def _connect(self, run: StoredRun, kw: dict[str, Any]) -> None:
        c = self.client
        experiment = c.experiment_id(run["project"], **kw)
        generation = self.state["generation"]
        key = f"{run['project']}/{run['run_id']}"
        # a run made by an earlier attempt whose answer was lost is found and reused
        info = c.find_run(experiment, "nbtrack.run_key", f"{key}#{generation}", **kw)
        if info is None:
            tags = [{"key": k, "value": v} for k, v in self._tags(run).items()]
            tags.append({"key": "nbtrack.run_key", "value": f"{key}#{generation}"})
            if generation:
                previous = self.state.get("previous_remote")
                if previous:
                    tags.append({"key": "nbtrack.rewind_of", "value": previous})
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
        fresh = self._fresh(rewinds)
        fresh["previous_remote"] = old
        self.state = fresh
        self._save()
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
        return {self._fit_key(k, "tag"): self._fit(v, MAX_TAG_VALUE, f"tag {k!r}") for k, v in tags.items()}

    def _fit_key(self, key: str, what: str) -> str:
        if len(key) <= MAX_KEY:
            return key
        self.warn(f"nbtrack: {what} key {key[:40]!r}... is longer than MLflow's {MAX_KEY} characters; shortened")
        return key[:MAX_KEY]

    def _fit(self, value: str, limit: int, what: str) -> str:
        if len(value) <= limit:
            return value
        self.warn(
            f"nbtrack: {what} is {len(value)} characters, over MLflow's limit of {limit}; the server gets "
            "the first part (the full value stays in the local store and in nbtrack/config.json)"
        )
        return value[: limit - 3] + "..."

    def _send_tags(self, run: StoredRun, remote: str, kw: dict[str, Any]) -> None:
        wanted = self._tags(run)
        sent = self.state["tags"]
        changed = [{"key": k, "value": v} for k, v in wanted.items() if sent.get(k) != v]
        if run["name"] != self.state.get("name"):
            self.client.update_run(remote, self.state["status"] or "RUNNING", name=run["name"], **kw)
            self.state["name"] = run["name"]
        for chunk in _chunks(changed, MAX_PARAMS_TAGS):
            for item in self._send_items(remote, "tags", chunk, kw):
                sent[item["key"]] = item["value"]
            self._save()

    def _send_params(self, run: StoredRun, remote: str, kw: dict[str, Any]) -> None:
        flat = flatten(run["config"] or {})
        sent = self.state["params"]
        fresh = []
        for key, value in flat.items():
            text = self._fit(_text(value), MAX_PARAM_VALUE, f"config value {key!r}")
            name = self._fit_key(key, "config")
            if name not in sent:
                fresh.append({"key": name, "value": text})
            elif sent[name] != text:
                self.warn(
                    f"nbtrack: config {key!r} changed to {text[:60]!r} after it was sent to "
                    f"{self.server}; MLflow params cannot change, so the server keeps "
                    f"{sent[name][:60]!r} (nbtrack/config.json has the current config)"
                )
                sent[name] = text
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
                self.warn(
                    f"nbtrack: {self.server} refused {kind[:-1]} {item['key']!r} ({exc.message[:200]}); "
                    "it stays in the local store only"
                )
                if kind == "metrics":
                    self.rejected.add(item["key"])
                return []
            half = len(items) // 2
            return self._send_items(remote, kind, items[:half], kw) + self._send_items(remote, kind, items[half:], kw)

    def _send_metric_batches(
        self,
        remote: str,
        batches: Iterable[tuple[list[dict[str, Any]], Any]],
        on_sent: Callable[[Any], None],
        kw: dict[str, Any],
    ) -> None:
        for items, mark in batches:
            items = [m for m in items if m["key"] not in self.rejected]
            self._send_items(remote, "metrics", items, kw)
            if mark is not None:  # None: the first parts of a row wider than one batch
                on_sent(mark)

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
        while True:
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

            batches = _metric_batches(rows, lambda r: r["_step"] if history else r["_timestamp"])
            self._send_metric_batches(remote, batches, sent, kw)

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
        sent = self.state["files"]
        count = 0
        for rel, source in files.items():
            if isinstance(source, Path):
                st = source.stat()
                sig = f"{st.st_size}:{st.st_mtime_ns}"
            else:
                sig = hashlib.sha1(source).hexdigest()
            if sent.get(rel) == sig:
                continue
            try:
                self.client.upload_artifact(uri, rel, source, **kw)  # a Path is streamed, not read whole
            except ItemRejected as exc:
                self.warn(f"nbtrack: {self.server} refused artifact {rel!r} ({exc.message[:200]})")
            sent[rel] = sig
            count += 1
            self._save()
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

    def _send_status(self, run: StoredRun, progress: Progress, kw: dict[str, Any]) -> None:
        target = STATUS.get(run["state"], "RUNNING")
        if target != "RUNNING" and not progress.done:
            return  # the end state goes last, after every row
        if self.state["status"] == target:
            return
        end = run["finished_at"] if target != "RUNNING" else None
        if target == "KILLED":
            end = run["heartbeat"]
        self.client.update_run(self.state["remote_id"], target, None if end is None else int(end * 1000), **kw)
        self.state["status"] = target
        self._save()


def _metric_batches(
    rows: list[dict[str, Any]], mark_of: Callable[[dict[str, Any]], Any]
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
                row_items.append({"key": key, "value": number, "timestamp": ts, "step": step})
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
