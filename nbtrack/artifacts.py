"""``nbtrack.Artifact``: versioned files a run logs and other runs use, as in wandb.

An artifact is built locally (``add_file``, ``add_dir``, ``new_file``, ``add_reference``,
``add``), then logged by a run (``run.log_artifact``): its files are copied into the
store's content-addressed objects (once, however many versions or artifacts hold the
same bytes), and it becomes version ``v0``, ``v1``... of its collection (project, name),
unless an existing version has exactly the same content, which is then returned as it
is.  ``run.use_artifact("name:alias")`` finds a version, records that the run used it and
returns it; ``download()`` writes its files into a folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import UsageError
from .media import MEDIA_DIR, Media, MediaStore, Table, restorer
from .store import artifacts as stored
from .store.objects import hash_file

if TYPE_CHECKING:
    import tempfile

    from .store.local import LocalStore

# hashlib, shutil, tempfile and urllib are imported where used: import nbtrack stays fast

NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
REGISTRY_NAME = re.compile(r"^(?! )[A-Za-z0-9_. \-]{1,128}(?<! )$")
TAG = re.compile(r"^[A-Za-z0-9_. \-]{1,128}$")
ALIAS = re.compile(r"^[^/:]{1,128}$")
UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def make_name_safe(name: str) -> str:
    """``name`` with every character an artifact name may not hold replaced by ``_``
    (wandb's ``util.make_artifact_name_safe``)."""
    return UNSAFE.sub("_", str(name))[:128] or "_"


def check_name(name: Any, argument: str = "name", registry: bool = False) -> str:
    """An artifact name; a registry's collection (``link_artifact``'s target) may also
    hold spaces, as registered model names do."""
    if not isinstance(name, str) or not (REGISTRY_NAME if registry else NAME).match(name):
        spaces = ", ' '" if registry else ""
        raise UsageError(
            f"{argument}={name!r} is not an artifact name: 1-128 letters, digits, '_', '-'{spaces} and '.' "
            "(nbtrack.util.make_artifact_name_safe(name) makes one)"
        )
    return name


def check_tags(tags: Any) -> list[str]:
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for tag in tags or []:
        if not isinstance(tag, str) or not TAG.match(tag):
            raise UsageError(f"tags: {tag!r} is not an artifact tag: 1-128 letters, digits, spaces, '_', '-' and '.'")
        if tag not in out:
            out.append(tag)
    return out


def check_aliases(aliases: Any) -> list[str]:
    if aliases is None:
        return []
    if isinstance(aliases, str):
        aliases = [aliases]
    out = []
    for alias in aliases:
        if not isinstance(alias, str) or not ALIAS.match(alias):
            raise UsageError(f"aliases: {alias!r} is not an alias: 1-128 characters without '/' or ':'")
        if alias not in out:
            out.append(alias)
    return out


def parse_ref(ref: str, default_project: str | None) -> tuple[str, str, str]:
    """``"name"``, ``"name:alias"``, ``"name:v3"``, ``"project/name:alias"`` or
    ``"entity/project/name:alias"`` as ``(project, name, alias or vN)``."""
    if not isinstance(ref, str) or not ref:
        raise UsageError(f"expected an artifact name such as 'data:latest' or 'project/data:v3', got {ref!r}")
    path, _, which = ref.partition(":")
    parts = path.split("/")
    if len(parts) > 3 or not all(parts):
        raise UsageError(
            f"artifact {ref!r}: expected 'name', 'name:alias', 'project/name:alias' or 'entity/project/name:alias'"
        )
    name = parts[-1]
    project = parts[-2] if len(parts) >= 2 else default_project
    if project is None:
        raise UsageError(f"artifact {ref!r}: name its project ('project/{ref}'), or use it from a run")
    check_name(name, registry=True)
    return project, name, which or "latest"


class ArtifactEntry:
    """One file of an artifact (wandb's manifest entry): ``path`` in the artifact,
    ``digest`` (SHA-256), ``size``, and ``ref`` for a reference."""

    def __init__(
        self,
        artifact: Artifact,
        path: str,
        digest: str | None,
        size: int | None,
        ref: str | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._artifact = artifact
        self.path = path
        self.digest = digest
        self.size = size
        self.ref = ref
        self.extra = extra or {}

    def download(self, root: str | os.PathLike[str] | None = None) -> str:
        """Write this file under ``root`` (default: the artifact's download folder)."""
        folder = Path(root) if root is not None else self._artifact._default_root()
        return str(self._artifact._materialize(self, folder))

    def ref_target(self) -> str | None:
        return self.ref

    def __repr__(self) -> str:
        return f"<ArtifactEntry {self.path} {self.size} bytes>"


class Artifact:
    """A set of files with a name and a type, versioned when logged.

    Parameters
    ----------
    name
        1-128 letters, digits, ``_``, ``-`` and ``.``.
    type
        Any label (``dataset``, ``model``...); a collection keeps one type.
    description, metadata
        Kept with each version.
    """

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        incremental: bool = False,
        use_as: str | None = None,
        **_ignored: Any,
    ) -> None:
        self._name = check_name(name)
        if not isinstance(type, str) or not type.strip():
            raise UsageError(f"Artifact: type must be a non-empty string, got {type!r}")
        if metadata is not None and not isinstance(metadata, dict):
            raise UsageError(f"Artifact: metadata must be a dict, got {metadata.__class__.__name__}")
        self.type = type
        self.description = description
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.incremental = incremental
        self.use_as = use_as
        self.tags: list[str] = []  # set before logging, or on a logged version before save()
        self._entries: dict[str, dict[str, Any]] = {}  # path -> {"source"|"bytes"|"ref", "sha256", "size", "extra"}
        self._objects: dict[str, Any] = {}  # path -> the media object add() was given
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        # set once logged or loaded from a store
        self._store: LocalStore | None = None
        self._version: stored.Version | None = None
        self._aliases: list[str] = []
        self._project: str | None = None

    # ------------------------------------------------------------ building
    def _check_draft(self, what: str) -> None:
        if self._version is not None:
            raise UsageError(
                f"Artifact.{what}: {self.name} is logged and cannot change; build a new Artifact "
                f"(nbtrack.Artifact({self._name!r}, {self.type!r})) for a new version"
            )

    def _add(self, path: str, entry: dict[str, Any], overwrite: bool = True) -> ArtifactEntry:
        path = path.replace(os.sep, "/").lstrip("/")
        if not path or ".." in path.split("/"):
            raise UsageError(f"Artifact: {path!r} is not a path inside the artifact")
        if path in self._entries and not overwrite:
            raise UsageError(f"Artifact: {path!r} is in the artifact already; pass overwrite=True to replace it")
        self._entries[path] = entry
        return ArtifactEntry(self, path, entry.get("sha256"), entry.get("size"), entry.get("ref"), entry.get("extra"))

    def add_file(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        is_tmp: bool | None = False,
        skip_cache: bool | None = False,
        policy: str | None = "mutable",
        overwrite: bool = False,
    ) -> ArtifactEntry:
        """Add a file (hashed now, in chunks; copied into the store when logged)."""
        self._check_draft("add_file")
        source = Path(local_path).expanduser()
        if not source.is_file():
            raise UsageError(f"Artifact.add_file: no file at {str(source)!r}")
        sha, size = hash_file(source)
        return self._add(
            name or source.name, {"source": source.absolute(), "sha256": sha, "size": size}, overwrite=overwrite
        )

    def add_dir(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        skip_cache: bool | None = False,
        policy: str | None = "mutable",
        merge: bool = False,
    ) -> None:
        """Add every file under a folder, under ``name/`` (or at the top)."""
        self._check_draft("add_dir")
        folder = Path(local_path).expanduser()
        if not folder.is_dir():
            raise UsageError(f"Artifact.add_dir: no folder at {str(folder)!r}")
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                rel = path.relative_to(folder).as_posix()
                self.add_file(path, f"{name.rstrip('/')}/{rel}" if name else rel, overwrite=True)

    @contextlib.contextmanager
    def new_file(
        self, name: str, mode: str = "x", encoding: str | None = None, policy: str | None = "mutable"
    ) -> Iterator[IO[Any]]:
        """``with artifact.new_file("labels.txt") as f: f.write(...)``: a file written in
        place, added when the block ends."""
        import tempfile

        self._check_draft("new_file")
        if self._temp is None:
            self._temp = tempfile.TemporaryDirectory(prefix="nbtrack-artifact-")
        target = Path(self._temp.name) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w" if mode in ("x", "w") else mode, encoding=encoding) as f:
            yield f
        self.add_file(target, name, overwrite="x" not in mode)

    def add_reference(
        self, uri: str, name: str | None = None, checksum: bool = True, max_objects: int | None = None
    ) -> list[ArtifactEntry]:
        """Add a reference: a ``file://`` path is checksummed (a folder: each file in it)
        and its bytes stay where they are; other URIs (``s3://``, ``https://``...) are kept
        as they are."""
        from urllib.parse import unquote, urlparse

        self._check_draft("add_reference")
        if not isinstance(uri, str) or "://" not in uri:
            raise UsageError(
                f"Artifact.add_reference: expected a URI such as 'file:///data/x.csv' or 's3://bucket/key', got {uri!r}"
            )
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            base = name or parsed.path.rstrip("/").rsplit("/", 1)[-1] or parsed.netloc
            return [self._add(base, {"ref": uri, "sha256": None, "size": None, "extra": {"checksum": False}})]
        local = Path(unquote(parsed.path))
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        if not local.exists():
            raise UsageError(f"Artifact.add_reference: {uri!r} names no file or folder")
        if max_objects is not None:
            files = files[:max_objects]
        added = []
        for path in files:
            rel = path.name if local.is_file() else path.relative_to(local).as_posix()
            target = (name or local.name) if local.is_file() else f"{name or local.name}/{rel}"
            sha, size = hash_file(path) if checksum else (None, path.stat().st_size)
            added.append(self._add(target, {"ref": path.absolute().as_uri(), "sha256": sha, "size": size}))
        return added

    def add(self, obj: Any, name: str, overwrite: bool = False) -> ArtifactEntry:
        """Add an ``nbtrack.Table``, ``Image`` or other media value as a file (``name`` plus
        the media's extension); ``get(name)`` gives it back."""
        import hashlib
        import tempfile

        self._check_draft("add")
        if not isinstance(obj, Media):
            raise UsageError(
                f"Artifact.add: expected an nbtrack media value (Table, Image, Html...), got {type(obj).__name__}"
            )
        if self._temp is None:
            self._temp = tempfile.TemporaryDirectory(prefix="nbtrack-artifact-")
        root = Path(self._temp.name)
        media = MediaStore(root)
        ref = obj._reference(media)
        self._objects[name] = obj
        # media a table's cells hold (images, masks...) go in too, at the paths its cells name
        for stored_file in sorted(root.glob(f"{MEDIA_DIR}/**/*")):
            rel = stored_file.relative_to(root).as_posix()
            if stored_file.is_file() and rel != ref.get("path") and rel not in self._entries:
                sha, size = hash_file(stored_file)
                self._add(rel, {"source": stored_file, "sha256": sha, "size": size})
        if ref.get("path"):
            source = root / ref["path"]
            suffix = source.name.split(".", 1)[1] if "." in source.name else ""
            return self._add(
                f"{name}.{suffix}" if suffix and not name.endswith(suffix) else name,
                {
                    "source": source,
                    "sha256": ref["sha256"],
                    "size": ref["size"],
                    "extra": {"media": {k: v for k, v in ref.items() if k != "path"}, "name": name},
                },
                overwrite=overwrite,
            )
        payload = json.dumps(ref, default=str).encode()
        return self._add(
            f"{name}.{ref['_type']}.json",
            {
                "bytes": payload,
                "sha256": hashlib.sha256(payload).hexdigest(),
                "size": len(payload),
                "extra": {"media": ref, "name": name},
            },
            overwrite=overwrite,
        )

    def remove(self, item: str | ArtifactEntry) -> None:
        self._check_draft("remove")
        path = item.path if isinstance(item, ArtifactEntry) else str(item)
        if self._entries.pop(path, None) is None:
            raise UsageError(f"Artifact.remove: {path!r} is not in the artifact")

    # ------------------------------------------------------------- reading
    @property
    def digest(self) -> str:
        """SHA-256 over the manifest (paths with their content's hash, or the reference)."""
        if self._version is not None:
            return self._version.digest
        return manifest_digest(self._entries)

    @property
    def name(self) -> str:
        return f"{self._name}:v{self._version.version}" if self._version is not None else self._name

    @property
    def version(self) -> str | None:
        return f"v{self._version.version}" if self._version is not None else None

    @property
    def qualified_name(self) -> str:
        return f"{self._project}/{self.name}" if self._project else self.name

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def aliases(self) -> list[str]:
        """The version's aliases; change the list (``aliases.append("best")``) and call
        ``save()`` to store them, as in wandb."""
        return self._aliases

    @aliases.setter
    def aliases(self, aliases: list[str]) -> None:
        self._aliases = check_aliases(aliases)

    @property
    def id(self) -> str | None:
        return None if self._version is None else str(self._version.id)

    @property
    def project(self) -> str | None:
        return self._project

    @property
    def size(self) -> int:
        return (
            self._version.size if self._version is not None else sum(e.get("size") or 0 for e in self._entries.values())
        )

    @property
    def file_count(self) -> int:
        return len(self._entries)

    @property
    def created_at(self) -> float | None:
        return None if self._version is None else self._version.created_at

    @property
    def state(self) -> str:
        return "COMMITTED" if self._version is not None else "PENDING"

    @property
    def manifest(self) -> dict[str, ArtifactEntry]:
        return {path: self.get_entry(path) for path in self._entries}

    def get_entry(self, name: str) -> ArtifactEntry:
        entry = self._entries.get(str(name).lstrip("/"))
        if entry is None:
            raise KeyError(f"{name!r} is not in artifact {self.name} (it holds {', '.join(list(self._entries)[:10])})")
        return ArtifactEntry(
            self, str(name).lstrip("/"), entry.get("sha256"), entry.get("size"), entry.get("ref"), entry.get("extra")
        )

    get_path = get_entry

    def files(self, names: list[str] | None = None, per_page: int = 50) -> list[ArtifactEntry]:
        return [self.get_entry(p) for p in self._entries if names is None or p in names]

    def get(self, name: str) -> Any:
        """The media value added under ``name``: an ``nbtrack.Table`` for a table (its
        media cells as ``MediaRef``s), else a ``MediaRef``; None when there is none."""
        if name in self._objects:
            return self._objects[name]
        for path, entry in self._entries.items():
            extra = entry.get("extra") or {}
            if extra.get("name") == name and "media" in extra:
                # the value's file and the media its cells name (under media/): not the rest
                folder = self._default_root()
                for needed in self._entries:
                    if needed == path or needed.startswith(f"{MEDIA_DIR}/"):
                        self._materialize(self.get_entry(needed), folder)
                ref = restorer(folder)(dict(extra["media"], path=path))
                if getattr(ref, "kind", None) == "table":
                    body = json.loads((folder / path).read_text(), object_hook=restorer(folder))
                    return Table(columns=body["columns"], data=body["data"])
                return ref
        return None

    # ----------------------------------------------------------- download
    def _default_root(self) -> Path:
        return Path.cwd() / "artifacts" / self.name.replace(":", "-" if os.name == "nt" else ":")

    def _materialize(self, entry: ArtifactEntry, folder: Path) -> Path:
        import shutil
        from urllib.parse import unquote, urlparse

        target = folder / entry.path
        data = self._entries[entry.path]
        if data.get("ref") and data.get("sha256") is None:
            parsed = urlparse(data["ref"])
            if parsed.scheme != "file":
                raise UsageError(
                    f"Artifact.download: {entry.path} is a reference to {data['ref']}; nbtrack keeps "
                    "such references as URIs and downloads only files it stores or file:// paths"
                )
        if (
            target.is_file()
            and entry.digest is not None
            and target.stat().st_size == entry.size
            and hash_file(target)[0] == entry.digest
        ):
            return target
        if self._store is not None and entry.digest is not None and self._store.objects.has(entry.digest):
            self._store.objects.copy(entry.digest, target)
        elif "source" in data:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data["source"], target)
        elif "bytes" in data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data["bytes"])
        elif data.get("ref"):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(unquote(urlparse(data["ref"]).path)), target)
        else:
            raise UsageError(f"Artifact.download: the content of {entry.path} is not in the store")
        return target

    def download(
        self,
        root: str | os.PathLike[str] | None = None,
        allow_missing_references: bool = False,
        skip_cache: bool | None = None,
        path_prefix: str | None = None,
        **_ignored: Any,
    ) -> str:
        """Write the artifact's files into ``root`` (default ``./artifacts/<name>:<version>``);
        return the folder."""
        folder = Path(root).expanduser() if root is not None else self._default_root()
        folder.mkdir(parents=True, exist_ok=True)
        for path in self._entries:
            if path_prefix and not path.startswith(path_prefix):
                continue
            try:
                self._materialize(self.get_entry(path), folder)
            except UsageError:
                if not allow_missing_references:
                    raise
        return str(folder)

    def checkout(self, root: str | None = None) -> str:
        """Make ``root`` hold exactly the artifact's files (others there are removed)."""
        folder = Path(root) if root else self._default_root()
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file() and path.relative_to(folder).as_posix() not in self._entries:
                    path.unlink()
        return self.download(folder)

    def verify(self, root: str | None = None) -> None:
        """Raise ``ValueError`` unless ``root`` holds the artifact's files, unchanged."""
        folder = Path(root) if root else self._default_root()
        for path, entry in self._entries.items():
            if entry.get("sha256") is None:
                continue
            target = folder / path
            if not target.is_file() or hash_file(target)[0] != entry["sha256"]:
                raise ValueError(f"artifact {self.name}: {target} is missing or differs")

    def file(self, root: str | None = None) -> str:
        """The path of the artifact's only file, downloaded."""
        if len(self._entries) != 1:
            raise UsageError(f"Artifact.file: {self.name} holds {len(self._entries)} files; use download()")
        return str(
            self._materialize(self.get_entry(next(iter(self._entries))), Path(root) if root else self._default_root())
        )

    # ------------------------------------------------------------ lineage
    def logged_by(self) -> Any:
        """The run (an ``nbtrack.RunRecord``) that logged this version, or None."""
        if self._store is None or self._version is None or self._version.logged_by is None:
            return None
        return _record(self._store, self._version.logged_by)

    def used_by(self) -> list[Any]:
        """The runs (``RunRecord``) that used this version."""
        if self._store is None or self._version is None:
            return []
        with self._store.lock:
            pks = stored.runs_using(self._store.con, self._version.id, "used")
        return [r for r in (_record(self._store, pk) for pk in pks) if r is not None]

    def wait(self, timeout: int | None = None) -> Artifact:
        return self  # logging is done when log_artifact returns

    def save(self, project: str | None = None, settings: Any = None) -> None:
        """Store the aliases set on a logged version (``artifact.aliases.append(...)``)."""
        if self._store is None or self._version is None:
            raise UsageError("Artifact.save: log it with run.log_artifact(artifact) first")
        version = self._version
        self._aliases = check_aliases(self._aliases)
        with self._store.transaction() as tx:
            current = stored.aliases(tx.con, version.id)
            for alias in current:
                if alias not in self._aliases and alias != "latest":
                    stored.remove_alias(tx.con, version.artifact_id, alias)
            for alias in self._aliases:
                stored.set_alias(tx.con, version.artifact_id, alias, version.id)
            stored.set_tags(tx.con, version.id, check_tags(self.tags))

    def delete(self, delete_aliases: bool = False) -> None:
        """Forget this version (its files stay in the store's objects while others hold them)."""
        if self._store is None or self._version is None:
            raise UsageError("Artifact.delete: only a logged artifact can be deleted")
        with self._store.transaction() as tx:
            if stored.aliases(tx.con, self._version.id) and not delete_aliases:
                raise UsageError(
                    f"Artifact.delete: {self.name} has aliases {stored.aliases(tx.con, self._version.id)}"
                    "; pass delete_aliases=True"
                )
            stored.delete_version(tx.con, self._version.id)

    def json_encode(self) -> dict[str, Any]:
        return {"_type": "artifactVersion", "name": self.name, "type": self.type, "digest": self.digest}

    def __repr__(self) -> str:
        return f"<nbtrack.Artifact {self.qualified_name} ({self.type}, {self.file_count} files)>"


def manifest_digest(entries: dict[str, dict[str, Any]]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(entries):
        entry = entries[path]
        digest.update(path.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
        digest.update((entry.get("sha256") or entry.get("ref") or "").encode())
        digest.update(b"\n")
    return digest.hexdigest()


class StoreSource:
    """What a ``RunRecord`` reads from, for records an artifact hands out."""

    def __init__(self, store: LocalStore) -> None:
        self.root = store.root
        self.stale_after = 60.0
        self._store = store
        self._con: Any = None

    def connection(self) -> Any:
        from .store.local import open_readonly

        if self._con is None:
            self._con = open_readonly(self.root)
        return self._con

    def writable(self) -> LocalStore:
        return self._store


def _record(store: LocalStore, run_pk: int) -> Any:
    from .run_record import RunRecord
    from .store import reader

    with store.lock:
        row = reader.run_by_pk(store.con, run_pk)
    return None if row is None else RunRecord(row, StoreSource(store))


def loaded(store: LocalStore, version: stored.Version) -> Artifact:
    """An ``Artifact`` for a stored version."""
    artifact = Artifact(version.name, version.type, version.description, version.metadata)
    with store.lock:
        entries = stored.entries(store.con, version.id)
        aliases = stored.aliases(store.con, version.id)
    for e in entries:
        artifact._entries[e.path] = {
            "sha256": e.sha256,
            "size": e.size,
            **({"ref": e.ref} if e.ref else {}),
            "extra": e.extra,
        }
    artifact._store, artifact._version, artifact._aliases, artifact._project = store, version, aliases, version.project
    artifact.tags = list(version.tags)
    return artifact


def log(
    store: LocalStore,
    artifact: Artifact,
    *,
    project: str,
    run_pk: int | None,
    aliases: list[str],
    tags: list[str] | None = None,
) -> Artifact:
    """Store an artifact's files and record its version (or find the identical one);
    move ``latest`` and ``aliases`` to it; record that ``run_pk`` logged it."""
    version: stored.Version | None = artifact._version  # logged before: this run logs the same version
    # the files go into the objects first (outside the transaction: they may be large)
    entries = _store_files(store, artifact) if version is None else []
    with store.transaction() as tx:
        if version is None:
            try:
                artifact_id = stored.ensure_collection(tx.con, project, artifact._name, artifact.type)
            except ValueError as exc:
                raise UsageError(f"log_artifact: {exc}") from None
            # the digest of what was stored (a file changed since add_file is stored as it is now)
            digest = manifest_digest({e.path: {"sha256": e.sha256, "ref": e.ref} for e in entries})
            version = stored.by_digest(tx.con, artifact_id, digest)
            if version is None:
                version = stored.add_version(
                    tx.con,
                    artifact_id,
                    digest=digest,
                    description=artifact.description,
                    metadata=artifact.metadata,
                    entries=entries,
                    logged_by=run_pk,
                )
        # "latest" is the version logged last: content identical to an older version
        # gives that version back, and latest moves to it
        for alias in ["latest", *aliases]:
            stored.set_alias(tx.con, version.artifact_id, alias, version.id)
        wanted = check_tags([*version.tags, *artifact.tags, *(tags or [])])
        if wanted != version.tags:
            stored.set_tags(tx.con, version.id, wanted)
            version.tags = wanted
        if run_pk is not None:
            stored.record_use(tx.con, version.id, run_pk, "logged")
    fresh = loaded(store, version)
    artifact._store, artifact._version, artifact._project = store, version, project
    artifact._aliases = fresh._aliases
    artifact.tags = list(version.tags)
    for path, entry in fresh._entries.items():
        artifact._entries.setdefault(path, {}).update(entry)
    return artifact


def _store_files(store: LocalStore, artifact: Artifact) -> list[stored.Entry]:
    """An artifact's files put into the store's objects; its manifest entries."""
    entries = []
    for path, entry in artifact._entries.items():
        sha: str | None = entry.get("sha256")
        size: int | None = entry.get("size")
        if "source" in entry:
            sha, size = store.objects.put_file(Path(entry["source"]), (entry["sha256"], entry["size"]))
        elif "bytes" in entry:
            sha, size = store.objects.put_bytes(entry["bytes"], entry["sha256"])
        entries.append(stored.Entry(path, sha, size, entry.get("ref"), entry.get("extra") or {}))
    return entries


def use(store: LocalStore, ref: str, *, project: str | None, run_pk: int | None, type: str | None = None) -> Artifact:
    """The version ``ref`` names; records that ``run_pk`` used it."""
    project, name, which = parse_ref(ref, project)
    with store.lock:
        version = stored.find(store.con, project, name, which)
    if version is None:
        with store.lock:
            known = [f"v{v.version}" for v in stored.versions(store.con, project, name)]
        raise UsageError(
            f"use_artifact: no artifact {name}:{which} in project {project!r}"
            + (f" (it has {', '.join(known)})" if known else " (nothing of that name was logged there)")
        )
    if type is not None and version.type != type:
        raise UsageError(f"use_artifact: {name}:{which} has type {version.type!r}, not {type!r}")
    if run_pk is not None:
        with store.transaction() as tx:
            stored.record_use(tx.con, version.id, run_pk, "used")
    return loaded(store, version)


def link(
    store: LocalStore,
    artifact: Artifact,
    target: str,
    aliases: list[str],
    default_project: str,
    run_pk: int | None = None,
) -> Artifact:
    """Show a logged version in the collection ``target`` (``"project/name"`` or
    ``"name"``): a registry of, say, the best models.  Returns the version as linked."""
    if artifact._version is None:
        raise UsageError("link_artifact: log the artifact first (run.log_artifact(artifact))")
    parts = target.split("/")
    name = check_name(parts[-1], "target_path", registry=True)
    project = parts[-2] if len(parts) >= 2 else default_project
    with store.transaction() as tx:
        try:
            artifact_id = stored.ensure_collection(tx.con, project, name, artifact.type)
        except ValueError as exc:
            raise UsageError(f"link_artifact: {exc}") from None
        number = stored.link(tx.con, artifact_id, artifact._version.id, run_pk)
        for alias in aliases:
            stored.set_alias(tx.con, artifact_id, alias, artifact._version.id)
    return as_linked(store, artifact._version, project, name, number)


def as_linked(store: LocalStore, version: stored.Version, project: str, name: str, number: int) -> Artifact:
    """A version as it shows in a collection it is linked into (its number there)."""
    linked = loaded(store, version)
    linked._name, linked._project = name, project
    linked._version = stored.Version(**{**version.__dict__, "version": number, "project": project, "name": name})
    return linked


class ArtifactMethods:
    """``Run``'s artifact methods (wandb's names and arguments)."""

    _project: str
    _sink: Any

    def _check_writable(self, what: str) -> None: ...

    def _artifact_store(self) -> tuple[LocalStore, int]:
        return self._sink.store, self._sink.pk

    def log_artifact(
        self,
        artifact_or_path: Artifact | str | os.PathLike[str],
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Artifact:
        """Log an ``Artifact`` (or a file or folder path, as one) as a new version of its
        collection, or as the existing version with the same content; ``latest`` and
        ``aliases`` move to it.  Returns it, logged (``artifact.version``)."""
        self._check_writable("log_artifact")
        artifact = _as_artifact(artifact_or_path, name, type)
        store, pk = self._artifact_store()
        return log(store, artifact, project=self._project, run_pk=pk, aliases=check_aliases(aliases), tags=tags)

    def use_artifact(
        self,
        artifact_or_name: Artifact | str,
        type: str | None = None,
        aliases: list[str] | None = None,
        use_as: str | None = None,
    ) -> Artifact:
        """The artifact version named ``"name"``, ``"name:alias"``, ``"name:v3"`` or
        ``"project/name:alias"`` (``latest`` by default), recorded as used by this run."""
        self._check_writable("use_artifact")
        store, pk = self._artifact_store()
        if isinstance(artifact_or_name, Artifact):
            artifact = artifact_or_name
            if artifact._version is None:  # a local artifact: it is logged, then used
                artifact = log(store, artifact, project=self._project, run_pk=None, aliases=check_aliases(aliases))
            with store.transaction() as tx:
                assert artifact._version is not None
                stored.record_use(tx.con, artifact._version.id, pk, "used")
            return artifact
        return use(store, artifact_or_name, project=self._project, run_pk=pk, type=type)

    def link_artifact(self, artifact: Artifact, target_path: str, aliases: list[str] | None = None) -> Artifact:
        """Show a logged artifact in the collection ``target_path`` (``"registry/name"``,
        ``"project/name"`` or ``"name"``), as wandb links into a registry."""
        self._check_writable("link_artifact")
        store, pk = self._artifact_store()
        if not isinstance(artifact, Artifact):
            raise UsageError(f"link_artifact: expected an nbtrack.Artifact, got {type(artifact).__name__}")
        if not isinstance(target_path, str) or not target_path:
            raise UsageError(
                f"link_artifact: target_path must be 'collection', 'project/collection' or "
                f"'entity/project/collection', got {target_path!r}"
            )
        if artifact._version is None:
            artifact = self.log_artifact(artifact)
        target = target_path.split("/", 1)[-1] if target_path.count("/") >= 2 else target_path
        return link(store, artifact, target, check_aliases(aliases), self._project, pk)

    def log_model(
        self, path: str | os.PathLike[str], name: str | None = None, aliases: list[str] | None = None
    ) -> Artifact:
        """Log a model file or folder as an artifact of type ``model``."""
        return self.log_artifact(path, name=name, type="model", aliases=aliases)

    def use_model(self, name: str) -> str:
        """Download a logged model artifact; the path of its file (or folder)."""
        artifact = self.use_artifact(name)
        if artifact.type != "model":
            raise UsageError(f"use_model: {name!r} is an artifact of type {artifact.type!r}, not 'model'")
        folder = artifact.download()
        return artifact.file(folder) if artifact.file_count == 1 else folder

    def link_model(
        self,
        path: str | os.PathLike[str],
        registered_model_name: str,
        name: str | None = None,
        aliases: list[str] | None = None,
    ) -> Artifact:
        """Log a model and link it into the registry collection ``registered_model_name``
        (online, also an MLflow registered model: see docs/online.md)."""
        artifact = self.log_model(path, name=name)
        return self.link_artifact(artifact, f"model-registry/{registered_model_name}", aliases)

    def logged_artifacts(self) -> list[Artifact]:
        """The artifact versions this run logged."""
        store, pk = self._artifact_store()
        with store.lock:
            found = stored.of_run(store.con, pk, "logged")
        return [loaded(store, v) for v in found]

    def used_artifacts(self) -> list[Artifact]:
        """The artifact versions this run used."""
        store, pk = self._artifact_store()
        with store.lock:
            found = stored.of_run(store.con, pk, "used")
        return [loaded(store, v) for v in found]


def _as_artifact(value: Artifact | str | os.PathLike[str], name: str | None, type: str | None) -> Artifact:
    if isinstance(value, Artifact):
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"log_artifact: expected an nbtrack.Artifact or a path, got {value.__class__.__name__}")
    path = Path(value).expanduser()
    if not path.exists():
        raise UsageError(f"log_artifact: no file or folder at {str(path)!r}")
    artifact = Artifact(name or make_name_safe(path.name), type or "unspecified")
    if path.is_dir():
        artifact.add_dir(path)
    else:
        artifact.add_file(path)
    return artifact
