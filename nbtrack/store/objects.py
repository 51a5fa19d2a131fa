"""Files stored once by their content: ``<store>/objects/<sha256[:2]>/<sha256>``.

Artifacts and media share it: the same 100 MB file logged twice, in one artifact or in
two, is stored once.  Files are hashed and copied in chunks, never read into memory
whole, and land by an atomic rename, so a crash or a second process writing the same
content leaves either no object or a complete one.
"""

from __future__ import annotations

import os
from pathlib import Path

CHUNK = 1 << 20  # 1 MiB: what a hash or a copy holds in memory at a time


def hash_file(path: Path) -> tuple[str, int]:
    """``(sha256 hex, size)`` of a file, read in chunks."""
    import hashlib  # here: loading OpenSSL costs milliseconds that import nbtrack need not pay

    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class ObjectStore:
    """The content-addressed files of one store."""

    def __init__(self, root: Path) -> None:
        self.root = root / "objects"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def _temp(self) -> tuple[int, str]:
        import tempfile

        self.root.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=self.root, prefix=".incoming-")

    def _place(self, temp: str, sha256: str) -> Path:
        target = self.path(sha256)
        if target.is_file():
            os.unlink(temp)  # stored already: by this process earlier, or another one
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(temp, 0o444)  # objects are never changed in place
        os.replace(temp, target)
        return target

    def put_file(self, source: Path, known: tuple[str, int] | None = None) -> tuple[str, int]:
        """Store a file's content; ``(sha256, size)``.  With ``known`` (its hash and size,
        computed earlier) an object already stored is not copied again."""
        if known is not None and self.has(known[0]):
            return known
        import hashlib

        fd, temp = self._temp()
        digest = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
        except BaseException:
            os.unlink(temp)
            raise
        sha = digest.hexdigest()
        self._place(temp, sha)
        return sha, size

    def put_bytes(self, data: bytes, sha256: str | None = None) -> tuple[str, int]:
        """Store bytes; ``(sha256, size)``.  ``sha256``: their hash, when the caller has it."""
        if sha256 is None:
            import hashlib

            sha256 = hashlib.sha256(data).hexdigest()
        sha = sha256
        if self.has(sha):
            return sha, len(data)
        fd, temp = self._temp()
        try:
            with os.fdopen(fd, "wb") as dst:
                dst.write(data)
        except BaseException:
            os.unlink(temp)
            raise
        self._place(temp, sha)
        return sha, len(data)

    def link(self, sha256: str, target: Path) -> None:
        """Make ``target`` hold the object: a hard link where the file system allows
        (the bytes are stored once), else a copy.  For files nobody edits (media)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            return
        try:
            os.link(self.path(sha256), target)
        except OSError:
            import shutil

            shutil.copyfile(self.path(sha256), target)

    def copy(self, sha256: str, target: Path) -> None:
        """Write the object's bytes to ``target`` as a file of its own (downloads, which
        users may edit)."""
        import shutil
        import tempfile

        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with open(self.path(sha256), "rb") as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            os.replace(temp, target)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
