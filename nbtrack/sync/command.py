"""``nbtrack sync``: upload offline runs, and whatever an interrupted sync left, to a server."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from ..errors import AuthenticationError, CommError
from ..settings import Settings
from ..store.local import DB_NAME, LocalStore, store_root
from .client import Client, Server
from .uploader import Progress, RunUploader


class Bar:
    """A one-line progress bar on a terminal; on anything else, nothing until the end."""

    def __init__(self, label: str, total: int, stream: TextIO) -> None:
        self.label, self.total, self.stream = label, max(total, 1), stream
        self.live = stream.isatty()
        self.last = 0.0

    def update(self, progress: Progress) -> None:
        now = time.monotonic()
        if not self.live or now - self.last < 0.1:
            return
        self.last = now
        done = min(self.total, progress.rows_sent + progress.system_sent)
        filled = int(30 * done / self.total)
        self.stream.write(f"\r  {self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\r" + " " * (len(self.label) + 60) + "\r")
            self.stream.flush()


def sync(
    dir: str | None,
    project: str | None,
    run_id: str | None,
    dry_run: bool,
    tracking_uri: str | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    *,
    verify: bool = False,
    force: bool = False,
) -> int:
    """Send each stopped run's missing part.  A run the server has lost is uploaded again
    whole; ``verify`` also compares points per key, params, tags and status and re-sends
    what is missing; ``force`` uploads each run again into a new MLflow run."""
    if force and (verify or dry_run):
        print("nbtrack sync: --force uploads everything again; it goes with neither --verify nor --dry-run", file=err)
        return 2
    uri = tracking_uri or Settings().resolve().tracking_uri
    if not uri:
        print(
            "nbtrack sync: no tracking server; pass --tracking-uri URL or set NBTRACK_TRACKING_URI "
            "(or MLFLOW_TRACKING_URI)",
            file=err,
        )
        return 2
    try:
        server = Server.resolve(uri)
    except ValueError as exc:
        print(f"nbtrack sync: --tracking-uri: {exc}", file=err)
        return 2
    root = store_root(dir or os.environ.get("NBTRACK_DIR") or ".")
    if not (root / DB_NAME).exists():
        print(f"nbtrack sync: no runs under {root}", file=out)
        return 0 if run_id is None else 2
    store = LocalStore.open(root.parent)
    runs = [r for r in reversed(store.list_runs(project)) if run_id is None or r["run_id"] == run_id]
    if run_id is not None and not runs:
        where = f"project {project!r}" if project else "any project"
        print(f"nbtrack sync: --run: no run {run_id!r} in {where} under {root}", file=err)
        return 2
    client = Client(server)
    totals = Progress()
    failed = 0
    print(
        f"nbtrack sync: {len(runs)} run(s) under {root} -> {server.label}" + (" (dry run)" if dry_run else ""), file=out
    )
    for run in runs:
        label = f"{run['project']}/{run['run_id']}"
        if run["state"] == "running":
            print(
                f"  {label}: skipped, still running in process {run['pid']} (it syncs itself if online; "
                "run sync again once it ends)",
                file=out,
            )
            continue
        uploader = RunUploader(store, run["pk"], client, warn=lambda m: print(f"  {m}", file=err))
        try:
            if force:
                old = uploader.start_over("nbtrack sync --force")
                if old:
                    print(f"  {label}: uploading again into a new MLflow run (the old one, {old}, is tagged)", file=out)
            elif verify:
                for finding in uploader.verify():
                    print(f"  {label}: {finding}; re-sent", file=out)
            elif not dry_run and not uploader.check_remote():
                print(f"  {label}: {server.label} no longer has this run; uploading it again", file=out)
        except AuthenticationError as exc:
            print(f"nbtrack sync: {exc}", file=err)
            return 1
        except CommError as exc:
            failed += 1
            print(f"  {label}: stopped: {exc}; run sync again", file=err)
            continue
        rows, samples = uploader.pending()
        if dry_run:
            todo = [f"{rows} rows", f"{samples} system samples"]
            if uploader.state["remote_id"] is None:
                todo.insert(0, "create the MLflow run")
            print(f"  {label}: would send " + ", ".join(todo), file=out)
            continue
        bar = Bar(label, rows + samples, err)
        try:
            progress = uploader.push(final=True, on_progress=bar.update)
        except AuthenticationError as exc:
            bar.close()
            print(f"nbtrack sync: {exc}", file=err)
            return 1
        except CommError as exc:
            bar.close()
            failed += 1
            print(f"  {label}: stopped: {exc}; what was sent is kept, run sync again to send the rest", file=err)
            continue
        bar.close()
        totals.rows_sent += progress.rows_sent
        totals.system_sent += progress.system_sent
        totals.files_sent += progress.files_sent
        if progress.rows_sent or progress.system_sent or progress.files_sent:
            what = f"sent {progress.rows_sent} rows, {progress.system_sent} system samples, {progress.files_sent} files"
        else:
            what = "up to date"
        print(f"  {label}: {what}; {progress.status}; {uploader.url}", file=out)
    print(
        f"nbtrack sync: {totals.rows_sent} rows, {totals.system_sent} system samples and {totals.files_sent} "
        f"files sent" + (f"; {failed} run(s) not finished, run it again" if failed else ""),
        file=out,
    )
    client.close()
    return 1 if failed else 0
