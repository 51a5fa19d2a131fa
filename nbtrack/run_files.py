"""Files kept with a run: ``save``, ``restore`` and ``log_code``, as in wandb.

``run.save("checkpoints/*.pt")`` copies the matching files into the run's folder under
``files/`` (their bytes go into the store's content-addressed objects, so a file saved
by many runs takes its size once) and records each in the store with its hash and the
policy:

- ``"now"``: copied now, once;
- ``"live"`` (the default): copied now, and copied again at ``finish()`` (and at each
  later ``save`` call) when it changed;
- ``"end"``: copied at ``finish()``.

``nbtrack.restore(name, run_path="project/run_id")`` writes a saved file back (into the
current run's folder, or ``root``) and returns it open for reading.
``run.log_code()`` logs the source files under a folder as an artifact of type ``code``.
"""

from __future__ import annotations

import glob as globbing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import UsageError
from .store.objects import hash_file

if TYPE_CHECKING:
    from .artifacts import Artifact
    from .store.local import LocalStore

POLICIES = ("live", "now", "end")
FILES_DIR = "files"
SKIP_DIRS = frozenset(
    (
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        ".venv",
        "venv",
        "wandb",
        "nbtrack",
        ".ipynb_checkpoints",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
    )
)


def _expand(pattern: str, base_path: str | None) -> tuple[Path, list[Path]]:
    """The base folder and the files ``pattern`` matches (recursive with ``**``)."""
    pattern = os.path.expanduser(pattern)
    if base_path is None:
        if os.path.isabs(pattern):
            # the folders before the first wildcard (the file's folder, without one)
            head: list[str] = []
            for part in Path(pattern).parts[:-1]:
                if globbing.has_magic(part):
                    break
                head.append(part)
            base = Path(*head)
        else:
            base = Path.cwd()
    else:
        base = Path(base_path).expanduser().absolute()
    full = pattern if os.path.isabs(pattern) else str(base / pattern)
    return base, [Path(p) for p in sorted(globbing.glob(full, recursive=True)) if os.path.isfile(p)]


def _relative(path: Path, base: Path) -> str:
    try:
        return path.absolute().relative_to(base.absolute()).as_posix()
    except ValueError:
        return path.name


def keep(store: LocalStore, run_pk: int, folder: Path, source: Path, name: str, policy: str) -> bool:
    """Copy ``source`` to ``<run folder>/files/<name>`` through the objects and record it;
    False when it was there unchanged already."""
    sha, size = hash_file(source)
    with store.lock:
        row = store.con.execute("SELECT sha256 FROM run_files WHERE run_pk = ? AND path = ?", (run_pk, name)).fetchone()
    if row is not None and row[0] == sha and (folder / FILES_DIR / name).exists():
        return False
    store.objects.put_file(source, (sha, size))
    target = folder / FILES_DIR / name
    if target.exists():
        target.unlink()
    store.objects.link(sha, target)
    with store.transaction() as tx:
        tx.con.execute(
            "INSERT OR REPLACE INTO run_files (run_pk, path, sha256, size, policy, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (run_pk, name, sha, size, policy, time.time()),
        )
    return True


def listed(con: Any, run_pk: int) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT path, sha256, size, policy, updated_at FROM run_files WHERE run_pk = ? ORDER BY path", (run_pk,)
    ).fetchall()
    return [dict(zip(("name", "sha256", "size", "policy", "updated_at"), r, strict=True)) for r in rows]


def default_include(path: str, root: str | None = None) -> bool:
    return path.endswith(".py")


def default_exclude(path: str, root: str | None = None) -> bool:
    return any(part in SKIP_DIRS for part in Path(path).parts)


def _call(fn: Callable[..., bool], path: str, root: str) -> bool:
    try:
        return bool(fn(path, root))
    except TypeError:
        return bool(fn(path))


class FileMethods:
    """``Run.save``, ``Run.restore`` and ``Run.log_code``."""

    _sink: Any
    _folder: Path
    _project: str
    _id: str
    _watched_files: list[tuple[str, str | None, str]]

    def _check_writable(self, what: str) -> None: ...

    log_artifact: Callable[..., Artifact]

    def save(
        self,
        glob_str: str | os.PathLike[str] | None = None,
        base_path: str | os.PathLike[str] | None = None,
        policy: str = "live",
    ) -> list[str]:
        """Keep the files ``glob_str`` matches with the run (under its folder's
        ``files/``, paths relative to ``base_path``, default the working directory);
        ``policy`` is ``"live"``, ``"now"`` or ``"end"`` (see the module's doc).
        Returns the paths of the copies."""
        self._check_writable("save")
        if glob_str is None:
            return []  # wandb's save() without a glob saves nothing either
        if not isinstance(glob_str, (str, os.PathLike)) or not str(glob_str):
            raise UsageError(f"save: glob_str must be a path or a glob such as 'checkpoints/*.pt', got {glob_str!r}")
        if policy not in POLICIES:
            raise UsageError(f"save: policy must be 'live', 'now' or 'end', got {policy!r}")
        pattern = os.fspath(glob_str)
        base = None if base_path is None else os.fspath(base_path)
        if policy != "now":
            self._watched_files.append((pattern, base, policy))
        if policy == "end":
            return [str(self._folder / FILES_DIR / _relative(p, b)) for b, ps in [_expand(pattern, base)] for p in ps]
        return self._copy_saved(pattern, base, policy)

    def _copy_saved(self, pattern: str, base_path: str | None, policy: str) -> list[str]:
        base, files = _expand(pattern, base_path)
        out = []
        for path in files:
            name = _relative(path, base)
            keep(self._sink.store, self._sink.pk, self._folder, path, name, policy)
            out.append(str(self._folder / FILES_DIR / name))
        return out

    def _save_watched(self) -> None:
        """At finish: copy the ``live`` and ``end`` files again, when they changed."""
        for pattern, base, policy in self._watched_files:
            self._copy_saved(pattern, base, policy)

    def restore(
        self, name: str, run_path: str | None = None, replace: bool = False, root: str | None = None
    ) -> IO[str]:
        """A file saved by this run (or by ``run_path``), written into ``root`` (default
        this run's folder) and opened for reading."""
        return restore_file(
            self._sink.store, name, run_path, replace, root or str(self._folder), default=(self._project, self._sink.pk)
        )

    def log_code(
        self,
        root: str | os.PathLike[str] | None = ".",
        name: str | None = None,
        include_fn: Callable[..., bool] = default_include,
        exclude_fn: Callable[..., bool] = default_exclude,
    ) -> Artifact | None:
        """Log the source files under ``root`` (``.py`` files by default; version
        control, virtual environments and caches left out) as an artifact of type
        ``code``, named ``source-<project>-<run id>`` unless ``name`` is given."""
        from .artifacts import Artifact, make_name_safe

        self._check_writable("log_code")
        folder = Path(root if root is not None else ".").expanduser().absolute()
        if not folder.is_dir():
            raise UsageError(f"log_code: root={str(root)!r} is not a folder")
        artifact = Artifact(make_name_safe(name or f"source-{self._project}-{self._id}"), "code")
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for filename in filenames:
                path = os.path.join(dirpath, filename)
                if _call(include_fn, path, str(folder)) and not _call(exclude_fn, path, str(folder)):
                    artifact.add_file(path, os.path.relpath(path, folder))
        if not artifact.file_count:
            return None
        return self.log_artifact(artifact)


def restore_file(
    store: LocalStore, name: str, run_path: str | None, replace: bool, root: str, default: tuple[str, int] | None
) -> IO[str]:
    from .store import reader

    if not isinstance(name, str) or not name:
        raise UsageError(f"restore: name must be the path of a saved file, got {name!r}")
    with store.lock:
        if run_path is not None:
            parts = run_path.split("/")
            if len(parts) not in (2, 3):
                raise UsageError(f"restore: run_path must be 'project/run_id', got {run_path!r}")
            found = reader.get_run(store.con, parts[-2], parts[-1])
            if found is None:
                raise UsageError(f"restore: no run {run_path!r} in {store.root}")
            pk = found["pk"]
        elif default is not None:
            pk = default[1]
        else:
            raise UsageError("restore: pass run_path='project/run_id', or call it while a run is active")
        files = {f["name"]: f for f in listed(store.con, pk)}
    entry = files.get(name.lstrip("/"))
    if entry is None:
        raise UsageError(
            f"restore: {name!r} was not saved by that run"
            + (f" (it saved {', '.join(list(files)[:10])})" if files else " (it saved no files)")
        )
    target = Path(root) / entry["name"]
    if replace or not target.exists():
        store.objects.copy(entry["sha256"], target)
    return open(target, encoding="utf-8", errors="replace")
