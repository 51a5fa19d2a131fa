"""Rich values for ``log()``: images, videos, histograms and tables.

A media value is turned into a *reference* when it is logged: a small dict with
``_type`` (``image``, ``video``, ``histogram`` or ``table``) that the history row
holds.  Images, videos and tables are written into the run's folder under
``media/``, named by the SHA-256 of their bytes, so the same image logged twice is
stored once; the reference names the file relative to the run's folder.  Histograms
are small and live in the row itself.

numpy images are encoded to PNG here (zlib, no Pillow needed); PIL images, videos
from arrays and image sizes of JPEG files use Pillow (``pip install nbtrack[media]``).
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .values import json_friendly

MEDIA_TYPES = frozenset(("image", "video", "histogram", "table"))
IMAGE_FORMATS = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
}
VIDEO_FORMATS = {"mp4": "video/mp4", "webm": "video/webm", "ogg": "video/ogg", "gif": "image/gif"}
MAX_BINS = 512
MEDIA_DIR = "media"


def _need_pillow(what: str):
    try:
        import PIL.Image
    except ImportError:
        raise ImportError(f"{what} needs Pillow: pip install 'nbtrack[media]' (or pip install pillow)") from None
    return PIL.Image


def _as_array(value: Any, argument: str):
    """numpy view of an array-like (numpy, torch, jax, nested lists)."""
    try:
        import numpy as np
    except ImportError:
        raise TypeError(f"{argument}: arrays need numpy installed") from None
    detach = getattr(value, "detach", None)
    if callable(detach):  # torch: leave the graph and the device
        value = detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise TypeError(f"{argument}: cannot read {type(value).__name__} as an array: {exc}") from None


def _to_uint8(arr, argument: str):
    import numpy as np

    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{argument}: expected numbers, got an array of {arr.dtype}")
    arr = arr.astype(np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size and finite.min() >= 0 and finite.max() <= 1 and np.issubdtype(arr.dtype, np.floating):
        arr = arr * 255.0  # floats in [0, 1] are intensities
    return np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)


def _hwc(arr, argument: str):
    """An image array as (height, width) or (height, width, channels)."""
    if arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4) and arr.shape[0] in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # channels first (torch's layout)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (2, 3, 4)) or 0 in arr.shape:
        raise ValueError(
            f"{argument}: expected an image array of shape (H, W), (H, W, C) or (C, H, W) "
            f"with C in 1, 3, 4; got shape {tuple(arr.shape)}"
        )
    return arr


def encode_png(pixels) -> bytes:
    """PNG bytes of a uint8 array (H, W) or (H, W, C), C = 2 (grey+alpha), 3 or 4."""
    import numpy as np

    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = np.empty((height, 1 + width * channels), dtype=np.uint8)
    raw[:, 0] = 0  # filter type 0 (none) on every scanline
    raw[:, 1:] = np.ascontiguousarray(pixels).reshape(height, width * channels)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def _image_size(data: bytes, fmt: str) -> tuple[int | None, int | None]:
    if fmt == "png" and data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    if fmt == "gif" and data[:4] == b"GIF8":
        return struct.unpack("<HH", data[6:10])
    try:
        import PIL.Image

        with PIL.Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None, None


def _read_file(path: Any, formats: dict[str, str], argument: str) -> tuple[bytes, str]:
    path = Path(os.fspath(path))
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in formats:
        raise ValueError(f"{argument}: {path.name} is not one of the accepted formats ({', '.join(sorted(formats))})")
    try:
        return path.read_bytes(), fmt
    except OSError as exc:
        raise ValueError(f"{argument}: cannot read {path}: {exc.strerror or exc}") from None


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


class Media:
    """Base of the values ``log()`` stores as files or references."""

    kind = ""
    caption: str | None = None
    _bytes = b""
    _format = ""

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        raise NotImplementedError

    def _set_caption(self, caption: Any) -> None:
        if caption is not None and not isinstance(caption, str):
            raise TypeError(f"{type(self).__name__}: caption must be a string, got {type(caption).__name__}")
        self.caption = caption

    def _file_reference(self, store: MediaStore) -> dict[str, Any]:
        """Store this value's file; its reference with the format and caption."""
        ref = store.put(self._bytes, self._format, self.kind)
        ref["format"] = self._format
        if self.caption is not None:
            ref["caption"] = self.caption
        return ref

    def __repr__(self) -> str:
        return f"<nbtrack.{type(self).__name__}>"


class Image(Media):
    """An image to log: ``run.log({"samples": nbtrack.Image(array, caption="epoch 3")})``.

    ``data`` is a numpy/torch array ((H, W), (H, W, C) or (C, H, W); uint8, or floats
    in [0, 1] scaled to 0-255), a PIL image, or the path of a PNG, JPEG, GIF, BMP
    or WebP file (stored as it is).
    """

    kind = "image"

    def __init__(self, data: Any, caption: str | None = None) -> None:
        self._set_caption(caption)
        if _is_path(data):
            self._bytes, self._format = _read_file(data, IMAGE_FORMATS, "Image")
        elif type(data).__module__.startswith("PIL.") and hasattr(data, "save"):
            buf = io.BytesIO()
            image = data if data.mode in ("L", "LA", "RGB", "RGBA") else data.convert("RGBA")
            image.save(buf, format="PNG")
            self._bytes, self._format = buf.getvalue(), "png"
        else:
            if isinstance(data, (bytes, bytearray)) or (
                not hasattr(data, "__len__") and not hasattr(data, "__array__")
            ):
                raise TypeError(f"Image: data must be an array, a PIL image or a file path, got {type(data).__name__}")
            pixels = _hwc(_to_uint8(_as_array(data, "Image"), "Image"), "Image")
            self._bytes, self._format = encode_png(pixels), "png"
        self.width, self.height = _image_size(self._bytes, self._format)

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        ref = self._file_reference(store)
        ref.update(width=self.width, height=self.height)
        return ref


class Video(Media):
    """A video to log: the path of an MP4, WebM, OGG or GIF file (stored as it is), or
    frames as an array of shape (time, channels, height, width), written as an
    animated GIF at ``fps`` frames a second (needs Pillow)."""

    kind = "video"

    def __init__(self, data: Any, caption: str | None = None, fps: int = 4) -> None:
        self._set_caption(caption)
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 120:
            raise ValueError(f"Video: fps must be a number in (0, 120], got {fps!r}")
        self.fps = fps
        if _is_path(data):
            self._bytes, self._format = _read_file(data, VIDEO_FORMATS, "Video")
            return
        frames = _as_array(data, "Video")
        if frames.ndim != 4 or frames.shape[1] not in (1, 3, 4) or 0 in frames.shape:
            raise ValueError(
                "Video: frames must have shape (time, channels, height, width) with 1, 3 or 4 "
                f"channels; got shape {tuple(frames.shape)}"
            )
        pil = _need_pillow("Video from frames")
        frames = _to_uint8(frames, "Video").transpose(0, 2, 3, 1)
        images = [pil.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
        buf = io.BytesIO()
        images[0].save(
            buf, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0
        )
        self._bytes, self._format = buf.getvalue(), "gif"

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        return self._file_reference(store)


class Histogram(Media):
    """A distribution to log, from values (``Histogram(weights, num_bins=64)``) or from
    precomputed bins (``Histogram(np_histogram=(counts, edges))``, as
    ``numpy.histogram`` returns them).  Non-finite values are left out."""

    kind = "histogram"

    def __init__(self, sequence: Any = None, *, np_histogram: Sequence | None = None, num_bins: int = 64) -> None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or not 1 <= num_bins <= MAX_BINS:
            raise ValueError(f"Histogram: num_bins must be an integer from 1 to {MAX_BINS}, got {num_bins!r}")
        if (sequence is None) == (np_histogram is None):
            raise ValueError("Histogram: pass either sequence (the values) or np_histogram=(counts, edges)")
        if np_histogram is not None:
            try:
                counts, edges = np_histogram
                counts = [float(c) for c in _plain(counts)]
                edges = [float(e) for e in _plain(edges)]
            except (TypeError, ValueError):
                raise ValueError("Histogram: np_histogram must be a pair (counts, edges) of number sequences") from None
            if len(edges) != len(counts) + 1 or not counts:
                raise ValueError(
                    f"Histogram: np_histogram needs len(edges) == len(counts) + 1, got "
                    f"{len(counts)} counts and {len(edges)} edges"
                )
            if len(counts) > MAX_BINS:
                raise ValueError(f"Histogram: at most {MAX_BINS} bins, got {len(counts)}")
        else:
            counts, edges = _histogram(sequence, num_bins)
        self.counts = [int(c) if float(c).is_integer() else c for c in counts]
        self.edges = edges

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        return {"_type": "histogram", "bins": self.edges, "values": self.counts}


def _plain(values: Any) -> list:
    tolist = getattr(values, "tolist", None)
    if callable(tolist):
        detach = getattr(values, "detach", None)
        if callable(detach):
            values = detach().cpu()
        return list(values.tolist())
    return list(values)


def _histogram(sequence: Any, bins: int) -> tuple[list[int], list[float]]:
    np: Any
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None and not isinstance(sequence, (str, bytes)):
        try:
            arr = _as_array(sequence, "Histogram").astype(np.float64).ravel()
        except (TypeError, ValueError):
            raise TypeError(f"Histogram: sequence must hold numbers, got {type(sequence).__name__}") from None
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            raise ValueError("Histogram: sequence has no finite values")
        counted, edges = np.histogram(arr, bins=bins)
        return counted.tolist(), edges.tolist()
    try:
        values = [float(v) for v in sequence if math.isfinite(float(v))]
    except (TypeError, ValueError):
        raise TypeError(f"Histogram: sequence must hold numbers, got {type(sequence).__name__}") from None
    if not values:
        raise ValueError("Histogram: sequence has no finite values")
    lo, hi = min(values), max(values)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return counts, [lo + i * width for i in range(bins)] + [hi]


class Table(Media):
    """A table to log: ``Table(columns=["input", "label"], data=[[...], ...])`` or
    ``Table(dataframe=df)``.  Cells may be numbers, strings, booleans, None or
    ``Image``s; other objects are stored as their JSON form or text."""

    kind = "table"

    def __init__(
        self, columns: Sequence[str] | None = None, data: Iterable[Sequence] | None = None, *, dataframe: Any = None
    ) -> None:
        if dataframe is not None:
            if data is not None:
                raise ValueError("Table: pass data or dataframe, not both")
            columns = [str(c) for c in dataframe.columns] if columns is None else columns
            data = dataframe.itertuples(index=False, name=None)
        rows = [list(r) for r in (data or [])]
        if columns is None:
            width = len(rows[0]) if rows else 0
            columns = [f"col{i + 1}" for i in range(width)]
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"Table: columns must be a list of strings, got {columns!r}")
        self.columns = list(columns)
        for i, row in enumerate(rows):
            if len(row) != len(self.columns):
                raise ValueError(f"Table: row {i} has {len(row)} cells, but there are {len(self.columns)} columns")
        self.data = rows

    def add_data(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"Table.add_data: got {len(cells)} cells for {len(self.columns)} columns")
        self.data.append(list(cells))

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        def cell(value: Any) -> Any:
            if isinstance(value, Media):
                return value._reference(store)
            return json_friendly(value)

        body = {"columns": self.columns, "data": [[cell(v) for v in row] for row in self.data]}
        text = json.dumps(body, separators=(",", ":"), allow_nan=True).encode("utf-8")
        ref = store.put(text, "table.json", "table")
        ref.update(columns=self.columns, rows=len(self.data))
        return ref


class MediaStore:
    """Writes media bytes into a run's folder, once per distinct content."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._known: set[str] = set()

    def put(self, data: bytes, ext: str, kind: str) -> dict[str, Any]:
        import hashlib  # here: loading OpenSSL costs a few ms that import nbtrack need not pay

        digest = hashlib.sha256(data).hexdigest()
        rel = f"{MEDIA_DIR}/{digest[:32]}.{ext}"
        ref: dict[str, Any] = {"_type": kind, "path": rel, "sha256": digest, "size": len(data)}
        if rel not in self._known:
            target = self.folder / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            self._known.add(rel)
        return ref


class MediaRef(dict):
    """A logged media value read back by ``nbtrack.Api``: the stored reference (a dict
    with ``_type``, ``path`` relative to the run folder, ``sha256`` ...) plus access to
    its file.  ``kind`` is ``image``, ``video``, ``histogram`` or ``table``."""

    def __init__(self, ref: dict[str, Any], folder: str | Path | None) -> None:
        super().__init__(ref)
        self._folder = None if folder is None else Path(folder)

    @property
    def kind(self) -> str:
        return self["_type"]

    @property
    def file(self) -> Path | None:
        """Absolute path of the stored file (None for histograms)."""
        rel = self.get("path")
        return None if rel is None or self._folder is None else self._folder / rel

    def read_bytes(self) -> bytes:
        if self.file is None:
            raise ValueError(f"this {self.kind} has no file")
        return self.file.read_bytes()

    def to_numpy(self):
        """An image's pixels as a numpy array (needs Pillow)."""
        if self.kind != "image":
            raise ValueError(f"to_numpy: this is a {self.kind}, not an image")
        import numpy as np

        pil = _need_pillow("MediaRef.to_numpy")
        with pil.open(self.file) as img:
            return np.asarray(img)

    def table(self) -> dict[str, Any]:
        """A table's ``{"columns": [...], "data": [[...], ...]}``."""
        if self.kind != "table":
            raise ValueError(f"table: this is a {self.kind}, not a table")
        return json.loads(self.read_bytes())

    def __repr__(self) -> str:
        where = self.get("path") or f"{len(self.get('values', []))} bins"
        return f"<nbtrack.MediaRef {self.kind} {where}>"


def restorer(folder: str | Path | None):
    """A ``json.loads`` object hook that turns stored references into ``MediaRef``s."""

    def hook(obj: dict[str, Any]) -> Any:
        if obj.get("_type") in MEDIA_TYPES:
            return MediaRef(obj, folder)
        return obj

    return hook
