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
import types
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .values import json_friendly

MEDIA_TYPES = frozenset(
    ("image", "video", "histogram", "table", "audio", "html", "object3d", "molecule", "classes", "chart")
)
IMAGE_FORMATS = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
}
VIDEO_FORMATS = {"mp4": "video/mp4", "webm": "video/webm", "ogg": "video/ogg", "gif": "image/gif"}
AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac", "m4a": "audio/mp4"}
OBJECT3D_FORMATS = {
    "obj": "model/obj",
    "gltf": "model/gltf+json",
    "glb": "model/gltf-binary",
    "babylon": "application/json",
    "stl": "model/stl",
    "pts.json": "application/json",
}
MOLECULE_FORMATS = {
    f: "chemical/x-" + f for f in ("pdb", "pqr", "mmcif", "mcif", "cif", "sdf", "sd", "gro", "mol2", "mmtf")
}
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


def _to_uint8(arr, argument: str, normalize: bool = True):
    import numpy as np

    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{argument}: expected numbers, got an array of {arr.dtype}")
    floating = np.issubdtype(arr.dtype, np.floating)
    arr = arr.astype(np.float64)
    finite = arr[np.isfinite(arr)]
    if normalize and floating and finite.size and finite.max() <= 1:
        if finite.min() >= 0:
            arr = arr * 255.0  # floats in [0, 1] are intensities
        elif finite.min() >= -1:
            arr = (arr + 1.0) * 127.5  # floats in [-1, 1] (a tanh output) map onto 0-255
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

    ``data_or_path`` is a numpy/torch array ((H, W), (H, W, C) or (C, H, W); uint8, or
    floats in [0, 1] or [-1, 1] scaled to 0-255 unless ``normalize=False``), a PIL
    image, a matplotlib figure, or the path of a PNG, JPEG, GIF, BMP or WebP file
    (stored as it is).

    ``mode`` (a PIL mode such as ``"L"`` or ``"RGB"``) converts an array or PIL image
    before it is stored; ``file_type`` (``png``, the default, ``jpg``, ``bmp``,
    ``gif``, ``webp``) is the format an array is encoded to (other than PNG needs
    Pillow).  ``masks`` and ``boxes`` are wandb's overlays, kept with the image and
    drawn over it in the panel:

    - ``masks={"predictions": {"mask_data": 2-D array of class ids, "class_labels":
      {0: "background", 1: "cat"}}}`` (or ``"path"`` of a PNG instead of
      ``mask_data``), stored as PNG files;
    - ``boxes={"predictions": {"box_data": [{"position": {"minX", "maxX", "minY",
      "maxY"} or {"middle": [x, y], "width", "height"}, "domain": "pixel" (else
      fractions of the image), "class_id": 1, "box_caption": "cat", "scores": {...}},
      ...], "class_labels": {...}}}``;
    - ``classes``: an ``nbtrack.Classes`` or a list of ``{"id", "name"}``.
    """

    kind = "image"

    def __init__(
        self,
        data_or_path: Any = None,
        mode: str | None = None,
        caption: str | None = None,
        grouping: int | None = None,
        classes: Any = None,
        boxes: dict[str, Any] | None = None,
        masks: dict[str, Any] | None = None,
        file_type: str | None = None,
        normalize: bool = True,
        *,
        data: Any = None,
    ) -> None:
        if data_or_path is None:
            data_or_path = data  # the name earlier nbtrack versions used
        self._set_caption(caption)
        self.grouping = grouping
        fmt = (file_type or "png").lower().lstrip(".")
        if fmt not in IMAGE_FORMATS:
            raise ValueError(f"Image: file_type must be one of {', '.join(sorted(IMAGE_FORMATS))}, got {file_type!r}")
        value = data_or_path
        if isinstance(value, MediaRef) and value.kind == "image" and value.file is not None:
            value = value.file  # an image read back (from a table or a run): its stored file
        if _is_figure(value):
            value = figure_png(value)
            self._bytes, self._format = value, "png"
        elif _is_path(value):
            self._bytes, self._format = _read_file(value, IMAGE_FORMATS, "Image")
        elif type(value).__module__.startswith("PIL.") and hasattr(value, "save"):
            self._bytes, self._format = _pil_bytes(value, mode, fmt)
        else:
            if isinstance(value, (bytes, bytearray)) or (
                not hasattr(value, "__len__") and not hasattr(value, "__array__")
            ):
                raise TypeError(
                    f"Image: data must be an array, a PIL image, a matplotlib figure or a file path, "
                    f"got {type(value).__name__}"
                )
            pixels = _hwc(_to_uint8(_as_array(value, "Image"), "Image", normalize), "Image")
            if mode is not None or fmt != "png":
                pil = _need_pillow(f"Image(mode={mode!r}, file_type={fmt!r})")
                self._bytes, self._format = _pil_bytes(pil.fromarray(pixels), mode, fmt)
            else:
                self._bytes, self._format = encode_png(pixels), "png"
        self.width, self.height = _image_size(self._bytes, self._format)
        self.classes = classes if classes is None or isinstance(classes, Classes) else Classes(classes)
        self._masks = _check_masks(masks)
        self._boxes = _check_boxes(boxes)

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        ref = self._file_reference(store)
        ref.update(width=self.width, height=self.height)
        if self._masks:
            ref["masks"] = {
                name: {**store.put(png, "mask.png", "mask"), "class_labels": labels}
                for name, (png, labels) in self._masks.items()
            }
            for mask in ref["masks"].values():
                mask.pop("_type", None)
        if self._boxes:
            ref["boxes"] = self._boxes
        if self.classes is not None:
            ref["classes"] = self.classes.class_set
        return ref


def _pil_bytes(image: Any, mode: str | None, fmt: str) -> tuple[bytes, str]:
    if mode is not None:
        try:
            image = image.convert(mode)
        except ValueError as exc:
            raise ValueError(f"Image: mode={mode!r} is not a PIL mode this image converts to ({exc})") from None
    elif image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA")
    if fmt in ("jpg", "jpeg") and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format={"jpg": "JPEG"}.get(fmt, fmt.upper()))
    return buf.getvalue(), fmt


def _labels(value: Any, argument: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{argument}: class_labels must be a dict of class id to name, got {type(value).__name__}")
    try:
        return {str(int(k)): str(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise TypeError(f"{argument}: class_labels keys must be integer class ids") from None


def _check_masks(masks: Any) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each mask layer as (PNG bytes of its class ids, labels)."""
    if masks is None:
        return {}
    if not isinstance(masks, dict):
        raise TypeError(f"Image: masks must be a dict of layer name to mask, got {type(masks).__name__}")
    out = {}
    for name, mask in masks.items():
        argument = f"Image: masks[{name!r}]"
        if not isinstance(mask, dict) or ("mask_data" in mask) == ("path" in mask):
            raise TypeError(f"{argument} must be a dict with mask_data (a 2-D array of class ids) or path")
        if "path" in mask:
            png, _fmt = _read_file(mask["path"], {"png": "image/png"}, argument)
        else:
            import numpy as np

            ids = _as_array(mask["mask_data"], argument)
            if ids.ndim != 2 or (not np.issubdtype(ids.dtype, np.integer) and ids.dtype != bool):
                raise ValueError(
                    f"{argument}: mask_data must be a 2-D array of integer class ids, got "
                    f"shape {tuple(ids.shape)} of {ids.dtype}"
                )
            if ids.size and (ids.min() < 0 or ids.max() > 255):
                raise ValueError(f"{argument}: class ids must be from 0 to 255")
            png = encode_png(ids.astype(np.uint8))
        out[str(name)] = (png, _labels(mask.get("class_labels"), argument))
    return out


def _check_boxes(boxes: Any) -> dict[str, Any]:
    if boxes is None:
        return {}
    if not isinstance(boxes, dict):
        raise TypeError(f"Image: boxes must be a dict of layer name to boxes, got {type(boxes).__name__}")
    out = {}
    for name, layer in boxes.items():
        argument = f"Image: boxes[{name!r}]"
        if not isinstance(layer, dict) or not isinstance(layer.get("box_data"), (list, tuple)):
            raise TypeError(f"{argument} must be a dict with box_data, a list of boxes")
        items = []
        for i, box in enumerate(layer["box_data"]):
            position = box.get("position") if isinstance(box, dict) else None
            corners = isinstance(position, dict) and {"minX", "maxX", "minY", "maxY"} <= set(position)
            centre = isinstance(position, dict) and {"middle", "width", "height"} <= set(position)
            if not (corners or centre):
                raise ValueError(
                    f"{argument}: box {i} needs position {{minX, maxX, minY, maxY}} or {{middle, width, height}}"
                )
            items.append(json_friendly(dict(box)))
        out[str(name)] = {"box_data": items, "class_labels": _labels(layer.get("class_labels"), argument)}
    return out


class Classes(Media):
    """The classes of masks and boxes: ``Classes([{"id": 1, "name": "cat"}, ...])``."""

    kind = "classes"

    def __init__(self, class_set: Sequence[dict[str, Any]]) -> None:
        if isinstance(class_set, (str, bytes)) or not isinstance(class_set, Iterable):
            raise TypeError(f"Classes: class_set must be a list of {{'id': int, 'name': str}}, got {class_set!r}")
        out = []
        for item in class_set:
            if not isinstance(item, dict) or "id" not in item or "name" not in item:
                raise TypeError(f"Classes: each class must be a dict with 'id' and 'name', got {item!r}")
            out.append({"id": int(item["id"]), "name": str(item["name"])})
        self.class_set = out

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        return {"_type": "classes", "class_set": self.class_set}


def _is_figure(value: Any) -> bool:
    """A matplotlib Figure, or the pyplot module (its current figure)."""
    if isinstance(value, types.ModuleType):
        return value.__name__ == "matplotlib.pyplot"
    return type(value).__module__.startswith("matplotlib.") and type(value).__name__ in ("Figure", "SubFigure")


def figure_png(value: Any) -> bytes:
    """PNG bytes of a matplotlib figure (or of pyplot's current figure).  ``savefig``
    draws PNG with the Agg renderer whatever the figure's backend: no display needed."""
    figure = value.gcf() if isinstance(value, types.ModuleType) else value
    figure = getattr(figure, "figure", figure)  # a SubFigure's figure
    buf = io.BytesIO()
    figure.savefig(buf, format="png")
    return buf.getvalue()


class Video(Media):
    """A video to log: the path of an MP4, WebM, OGG or GIF file (stored as it is), or
    frames as an array of shape (time, channels, height, width) (or (batch, time,
    channels, height, width): the batch is tiled into one video), written at ``fps``
    frames a second (default 4) as ``format``: ``gif`` (the default; needs Pillow), or
    ``mp4``, ``webm``, ``ogg`` (need moviepy)."""

    kind = "video"

    def __init__(
        self,
        data_or_path: Any = None,
        caption: str | None = None,
        fps: int | float | None = None,
        format: str | None = None,
        *,
        data: Any = None,
    ) -> None:
        if data_or_path is None:
            data_or_path = data
        self._set_caption(caption)
        if fps is None:
            fps = 4
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 120:
            raise ValueError(f"Video: fps must be a number in (0, 120], got {fps!r}")
        if format is not None and format not in VIDEO_FORMATS:
            raise ValueError(f"Video: format must be one of {', '.join(VIDEO_FORMATS)}, got {format!r}")
        self.fps = fps
        if _is_path(data_or_path):
            self._bytes, self._format = _read_file(data_or_path, VIDEO_FORMATS, "Video")
            return
        frames = _as_array(data_or_path, "Video")
        if frames.ndim == 5:  # (batch, time, channels, height, width): side by side
            frames = frames.transpose(1, 2, 3, 0, 4).reshape(*frames.shape[1:4], -1)
        if frames.ndim != 4 or frames.shape[1] not in (1, 3, 4) or 0 in frames.shape:
            raise ValueError(
                "Video: frames must have shape (time, channels, height, width) with 1, 3 or 4 "
                f"channels; got shape {tuple(frames.shape)}"
            )
        frames = _to_uint8(frames, "Video").transpose(0, 2, 3, 1)
        fmt = format or "gif"
        if fmt == "gif":
            pil = _need_pillow("Video from frames")
            images = [pil.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
            buf = io.BytesIO()
            images[0].save(
                buf, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0
            )
            self._bytes = buf.getvalue()
        else:
            self._bytes = _encode_video(frames, fps, fmt)
        self._format = fmt

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        ref = self._file_reference(store)
        ref["fps"] = self.fps
        return ref


def _encode_video(frames: Any, fps: float, fmt: str) -> bytes:
    """MP4 / WebM / OGG bytes of uint8 frames (T, H, W, C), written by moviepy."""
    import tempfile

    try:
        try:
            from moviepy import ImageSequenceClip  # moviepy 2
        except ImportError:
            from moviepy.editor import ImageSequenceClip  # moviepy 1
    except ImportError:
        raise ImportError(f"Video(format={fmt!r}) from frames needs moviepy: pip install moviepy") from None
    if frames.shape[-1] == 1:
        frames = frames.repeat(3, axis=-1)
    elif frames.shape[-1] == 4:
        frames = frames[..., :3]
    if fmt == "mp4" and (frames.shape[1] % 2 or frames.shape[2] % 2):  # H.264 wants even sizes
        frames = frames[:, : frames.shape[1] // 2 * 2 or 1, : frames.shape[2] // 2 * 2 or 1]
    codec = {"mp4": "libx264", "webm": "libvpx", "ogg": "libtheora"}[fmt]
    with tempfile.TemporaryDirectory(prefix="nbtrack-video-") as folder:
        target = os.path.join(folder, f"video.{fmt}")
        clip = ImageSequenceClip(list(frames), fps=fps)
        try:
            clip.write_videofile(target, codec=codec, audio=False, logger=None)
        finally:
            clip.close()
        with open(target, "rb") as f:
            return f.read()


class Audio(Media):
    """Sound to log: an array of samples with ``sample_rate`` (floats in [-1, 1] or
    int16; shape (samples,) or (samples, channels)), written as 16-bit WAV; or the path
    of a WAV, MP3, OGG, FLAC or M4A file (stored as it is)."""

    kind = "audio"

    def __init__(self, data_or_path: Any, sample_rate: int | None = None, caption: str | None = None) -> None:
        self._set_caption(caption)
        self.sample_rate = sample_rate
        if _is_path(data_or_path):
            self._bytes, self._format = _read_file(data_or_path, AUDIO_FORMATS, "Audio")
            self.duration = None
            return
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 1 <= sample_rate <= 768_000:
            raise ValueError(
                f"Audio: an array needs sample_rate, an integer number of samples a second; got {sample_rate!r}"
            )
        import numpy as np

        samples = _as_array(data_or_path, "Audio")
        if samples.ndim == 2 and samples.shape[0] < samples.shape[1] and samples.shape[0] <= 8:
            samples = samples.T  # (channels, samples), as torchaudio gives it
        if samples.ndim not in (1, 2) or samples.size == 0:
            raise ValueError(
                f"Audio: samples must have shape (samples,) or (samples, channels), got {tuple(samples.shape)}"
            )
        if np.issubdtype(samples.dtype, np.floating):
            pcm = (np.clip(np.nan_to_num(samples), -1.0, 1.0) * 32767).round().astype("<i2")
        elif np.issubdtype(samples.dtype, np.integer):
            pcm = np.clip(samples, -32768, 32767).astype("<i2")
        else:
            raise TypeError(f"Audio: samples must be numbers, got an array of {samples.dtype}")
        buf = io.BytesIO()
        import wave

        with wave.open(buf, "wb") as out:
            out.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            out.writeframes(np.ascontiguousarray(pcm).tobytes())
        self._bytes, self._format = buf.getvalue(), "wav"
        self.duration = pcm.shape[0] / sample_rate

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        ref = self._file_reference(store)
        if self.sample_rate is not None:
            ref["sample_rate"] = self.sample_rate
        if self.duration is not None:
            ref["duration"] = self.duration
        return ref


class Html(Media):
    """HTML to log: a string of HTML, an open file, or the path of an ``.html`` file.
    The panel shows it in a sandboxed frame: its scripts run, but cannot reach the
    notebook's page, cookies or kernel."""

    kind = "html"

    def __init__(self, data: Any, inject: bool = True, data_is_not_path: bool = False) -> None:
        self.inject = inject
        if hasattr(data, "read"):
            text = data.read()
        elif isinstance(data, os.PathLike) or (
            isinstance(data, str)
            and not data_is_not_path
            and not data.lstrip().startswith("<")
            and data.lower().endswith((".html", ".htm"))
            and os.path.isfile(data)
        ):
            text = Path(os.fspath(data)).read_text(encoding="utf-8", errors="replace")
        elif isinstance(data, str):
            text = data
        else:
            raise TypeError(f"Html: data must be an HTML string, a file or a path, got {type(data).__name__}")
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        self.html = text
        self._bytes, self._format = text.encode("utf-8"), "html"

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        return self._file_reference(store)


class _File3D(Media):
    """A file kept with its format (3-D objects and molecules)."""

    _formats: dict[str, str] = {}

    def _from_path(self, path: Any, caption: str | None) -> None:
        self._set_caption(caption)
        name = Path(os.fspath(path)).name.lower()
        fmt = next((f for f in sorted(self._formats, key=len, reverse=True) if name.endswith("." + f)), None)
        if fmt is None:
            raise ValueError(
                f"{type(self).__name__}: {name} is not one of the accepted formats ({', '.join(sorted(self._formats))})"
            )
        try:
            self._bytes = Path(os.fspath(path)).read_bytes()
        except OSError as exc:
            raise ValueError(f"{type(self).__name__}: cannot read {path}: {exc.strerror or exc}") from None
        self._format = fmt

    def _from_io(self, data: Any, file_type: str | None, caption: str | None) -> None:
        self._set_caption(caption)
        if file_type not in self._formats:
            raise ValueError(
                f"{type(self).__name__}: reading a file object needs file_type, one of "
                f"{', '.join(sorted(self._formats))}; got {file_type!r}"
            )
        raw = data.read()
        self._bytes = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        self._format = file_type

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        return self._file_reference(store)


class Object3D(_File3D):
    """A 3-D object or point cloud to log: a numpy array of points (N, 3) x y z, (N, 4)
    x y z category, or (N, 6) x y z r g b; wandb's ``{"type": "lidar/beta", "points":
    ..., "boxes": ..., "vectors": ...}`` dict; or a file (``obj``, ``gltf``, ``glb``,
    ``babylon``, ``stl``, ``pts.json``), kept with its format.  The panel offers the
    file and shows the point count; it does not render 3-D."""

    kind = "object3d"
    _formats = OBJECT3D_FORMATS

    def __init__(
        self, data_or_path: Any, caption: str | None = None, file_type: str | None = None, **_kwargs: Any
    ) -> None:
        self.points: int | None = None
        if _is_path(data_or_path):
            self._from_path(data_or_path, caption)
        elif hasattr(data_or_path, "read"):
            self._from_io(data_or_path, file_type, caption)
        elif isinstance(data_or_path, dict):
            self._set_caption(caption)
            if data_or_path.get("type") != "lidar/beta" or "points" not in data_or_path:
                raise ValueError(
                    "Object3D: a dict must be {'type': 'lidar/beta', 'points': ..., 'boxes': ..., 'vectors': ...}"
                )
            body = {k: json_friendly(_plain(v) if hasattr(v, "tolist") else v) for k, v in data_or_path.items()}
            self.points = len(body["points"])
            self._bytes, self._format = json.dumps(body).encode(), "pts.json"
        else:
            self._set_caption(caption)
            points = _as_array(data_or_path, "Object3D")
            if points.ndim != 2 or points.shape[1] not in (3, 4, 6):
                raise ValueError(
                    f"Object3D: points must have shape (N, 3), (N, 4) or (N, 6), got {tuple(points.shape)}"
                )
            self.points = int(points.shape[0])
            body = {"type": "lidar/beta", "points": points.tolist()}
            self._bytes, self._format = json.dumps(body).encode(), "pts.json"

    @classmethod
    def from_file(cls, data_or_path: Any, caption: str | None = None, file_type: str | None = None) -> Object3D:
        return cls(data_or_path, caption=caption, file_type=file_type)

    @classmethod
    def from_numpy(cls, data: Any, caption: str | None = None) -> Object3D:
        return cls(data, caption=caption)

    @classmethod
    def from_point_cloud(
        cls, points: Any, boxes: Any = None, vectors: Any = None, point_cloud_type: str = "lidar/beta"
    ) -> Object3D:
        return cls({"type": point_cloud_type, "points": points, "boxes": boxes or [], "vectors": vectors or []})

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        ref = self._file_reference(store)
        if self.points is not None:
            ref["points"] = self.points
        return ref


class Molecule(_File3D):
    """A molecule to log: a file (``pdb``, ``pqr``, ``mmcif``, ``mcif``, ``cif``,
    ``sdf``, ``sd``, ``gro``, ``mol2``, ``mmtf``) kept with its format.
    ``Molecule.from_rdkit`` and ``from_smiles`` need RDKit (``pip install rdkit``)."""

    kind = "molecule"
    _formats = MOLECULE_FORMATS

    def __init__(
        self, data_or_path: Any, caption: str | None = None, file_type: str | None = None, **_kwargs: Any
    ) -> None:
        if _is_path(data_or_path):
            self._from_path(data_or_path, caption)
        elif hasattr(data_or_path, "read"):
            self._from_io(data_or_path, file_type, caption)
        else:
            raise TypeError(
                f"Molecule: expected a file path or an open file, got {type(data_or_path).__name__} "
                "(for an RDKit molecule use Molecule.from_rdkit)"
            )

    @classmethod
    def from_rdkit(
        cls,
        data_or_path: Any,
        caption: str | None = None,
        convert_to_3d_and_optimize: bool = True,
        mmff_optimize_molecule_max_iterations: int = 200,
    ) -> Molecule:
        """An RDKit molecule (or a file RDKit reads), as a PDB file."""
        try:
            from rdkit import Chem
            from rdkit.Chem import AllChem
        except ImportError:
            raise ImportError("Molecule.from_rdkit needs RDKit: pip install rdkit") from None
        molecule = Chem.MolFromMolFile(os.fspath(data_or_path)) if _is_path(data_or_path) else data_or_path
        if convert_to_3d_and_optimize:
            molecule = Chem.AddHs(molecule)
            AllChem.EmbedMolecule(molecule)
            AllChem.MMFFOptimizeMolecule(molecule, maxIters=mmff_optimize_molecule_max_iterations)
        return cls(io.StringIO(Chem.MolToPDBBlock(molecule)), caption=caption, file_type="pdb")

    @classmethod
    def from_smiles(
        cls,
        data: str,
        caption: str | None = None,
        sanitize: bool = True,
        convert_to_3d_and_optimize: bool = True,
        mmff_optimize_molecule_max_iterations: int = 200,
    ) -> Molecule:
        try:
            from rdkit import Chem
        except ImportError:
            raise ImportError("Molecule.from_smiles needs RDKit: pip install rdkit") from None
        molecule = Chem.MolFromSmiles(data, sanitize=sanitize)
        if molecule is None:
            raise ValueError(f"Molecule.from_smiles: RDKit cannot read {data!r}")
        return cls.from_rdkit(molecule, caption, convert_to_3d_and_optimize, mmff_optimize_molecule_max_iterations)


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
    ``Table(dataframe=df)`` (a pandas DataFrame; logging a DataFrame directly makes
    one too).  Cells may be numbers, strings, booleans, None or media values
    (``Image``, ``Audio``...); other objects are stored as their JSON form or text."""

    kind = "table"

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        data: Iterable[Sequence] | None = None,
        rows: Iterable[Sequence] | None = None,
        dataframe: Any = None,
        dtype: Any = None,
        optional: Any = True,
        allow_mixed_types: bool = False,
        log_mode: str | None = None,
    ) -> None:
        if rows is not None:
            if data is not None:
                raise ValueError("Table: pass data or rows, not both")
            data = rows
        if dataframe is None and _is_dataframe(data):
            dataframe, data = data, None
        if dataframe is not None:
            if data is not None:
                raise ValueError("Table: pass data or dataframe, not both")
            columns = [str(c) for c in dataframe.columns] if columns is None else columns
            data = dataframe.itertuples(index=False, name=None)
        rows_ = [list(r) for r in (data or [])]
        if columns is None:
            width = len(rows_[0]) if rows_ else 0
            columns = [f"col{i + 1}" for i in range(width)]
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"Table: columns must be a list of strings, got {columns!r}")
        self.columns = list(columns)
        for i, row in enumerate(rows_):
            if len(row) != len(self.columns):
                raise ValueError(f"Table: row {i} has {len(row)} cells, but there are {len(self.columns)} columns")
        self.data = rows_
        self.log_mode = log_mode

    def add_data(self, *cells: Any) -> None:
        """Add a row: one cell per column."""
        if len(cells) != len(self.columns):
            raise ValueError(f"Table.add_data: got {len(cells)} cells for {len(self.columns)} columns")
        self.data.append(list(cells))

    def add_column(self, name: str, data: Sequence[Any], optional: bool = False) -> None:
        """Add a column: ``data`` holds one cell per row."""
        if not isinstance(name, str) or name in self.columns:
            raise ValueError(f"Table.add_column: name must be a new column name, got {name!r}")
        cells = list(_plain(data) if hasattr(data, "tolist") else data)
        if self.data and len(cells) != len(self.data):
            raise ValueError(f"Table.add_column: {name!r} has {len(cells)} cells for {len(self.data)} rows")
        if not self.data:
            self.data = [[] for _ in cells]
        self.columns.append(name)
        for row, cell in zip(self.data, cells, strict=True):
            row.append(cell)

    def get_column(self, name: str, convert_to: str | None = None) -> Any:
        """The cells of a column, as a list (``convert_to="numpy"``: an array)."""
        if name not in self.columns:
            raise ValueError(f"Table.get_column: no column {name!r} (columns: {', '.join(self.columns)})")
        index = self.columns.index(name)
        cells = [row[index] for row in self.data]
        if convert_to == "numpy":
            import numpy as np

            return np.array(cells)
        if convert_to is not None:
            raise ValueError(f"Table.get_column: convert_to must be None or 'numpy', got {convert_to!r}")
        return cells

    def get_index(self) -> list[int]:
        return list(range(len(self.data)))

    def add_computed_columns(self, fn: Any) -> None:
        """Add the columns ``fn(index, row_dict)`` returns (a dict of name to value) for
        every row."""
        computed = [fn(i, dict(zip(self.columns, row, strict=True))) for i, row in enumerate(self.data)]
        for name in computed[0] if computed else {}:
            self.add_column(name, [c[name] for c in computed])

    def get_dataframe(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.data, columns=self.columns)

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        def cell(value: Any) -> Any:
            if isinstance(value, Media):
                return value._reference(store)
            if isinstance(value, MediaRef) and value.file is not None and value.file.is_file():
                # a media value read back (from an artifact's table): its file stored again here
                name = value.file.name
                ext = name.split(".", 1)[1] if "." in name else value.get("format", "bin")
                return {**value, **store.put(value.file.read_bytes(), ext, value.kind)}
            return json_friendly(value)

        body = {"columns": self.columns, "data": [[cell(v) for v in row] for row in self.data]}
        text = json.dumps(body, separators=(",", ":"), allow_nan=True).encode("utf-8")
        ref = store.put(text, "table.json", "table")
        ref.update(columns=self.columns, rows=len(self.data))
        return ref


class JoinedTable(Table):
    """Two tables joined on a key column (``join_key``, or a pair of names, one per
    table): the rows of ``table1`` that have a match in ``table2``, with the columns of
    both (``table2``'s key once; a name in both gets ``table2``'s prefixed with ``t2.``).
    wandb joins in its UI; nbtrack joins when the value is made."""

    def __init__(self, table1: Table, table2: Table, join_key: str | Sequence[str]) -> None:
        for argument, table in (("table1", table1), ("table2", table2)):
            if not isinstance(table, Table):
                raise TypeError(
                    f"JoinedTable: {argument} must be an nbtrack.Table (an artifact's get(name) gives one), "
                    f"got {type(table).__name__}"
                )
        key1, key2 = (join_key, join_key) if isinstance(join_key, str) else tuple(join_key)
        for key, table, argument in ((key1, table1, "table1"), (key2, table2, "table2")):
            if key not in table.columns:
                raise ValueError(f"JoinedTable: {key!r} is not a column of {argument} ({', '.join(table.columns)})")
        i1, i2 = table1.columns.index(key1), table2.columns.index(key2)
        extra = [(j, c) for j, c in enumerate(table2.columns) if j != i2]
        columns = list(table1.columns) + [f"t2.{c}" if c in table1.columns else c for _j, c in extra]
        index: dict[str, list[list[Any]]] = {}
        for row in table2.data:
            index.setdefault(json.dumps(json_friendly(row[i2]), sort_keys=True), []).append(row)
        joined = []
        for row in table1.data:
            for match in index.get(json.dumps(json_friendly(row[i1]), sort_keys=True), []):
                joined.append(list(row) + [match[j] for j, _c in extra])
        super().__init__(columns=columns, data=joined)
        self.join_key = join_key


def _is_dataframe(value: Any) -> bool:
    module = type(value).__module__
    return type(value).__name__ == "DataFrame" and (module == "pandas" or module.startswith("pandas."))


class Chart(Media):
    """A chart to log: a ``Table`` plus how to draw it (``nbtrack.plot.line`` and the
    others make these); the panel draws it."""

    kind = "chart"

    def __init__(self, table: Table, spec: dict[str, Any]) -> None:
        self.table = table
        self.spec = spec

    def _reference(self, store: MediaStore) -> dict[str, Any]:
        ref = self.table._reference(store)
        ref["_type"] = "chart"
        ref["spec"] = self.spec
        return ref


def as_media(value: Any) -> Media | None:
    """The media value ``log()`` stores for a matplotlib figure (or the pyplot module)
    and a pandas DataFrame, as wandb does; None for anything else."""
    if _is_figure(value):
        return Image(value)
    if _is_dataframe(value):
        return Table(dataframe=value)
    return None


class MediaStore:
    """Writes media bytes into a run's folder, once per distinct content.

    With the store's ``objects`` (a content-addressed file store with ``put_bytes`` and
    ``link``), the bytes are stored there once and the run's ``media/`` file is a hard
    link to them: an image logged by many runs, or also put in an artifact, takes its
    size once on disk.
    """

    def __init__(self, folder: Path, objects: Any = None) -> None:
        self.folder = folder
        self.objects = objects
        self._known: set[str] = set()

    def put(self, data: bytes, ext: str, kind: str) -> dict[str, Any]:
        import hashlib  # here: loading OpenSSL costs a few ms that import nbtrack need not pay

        digest = hashlib.sha256(data).hexdigest()
        rel = f"{MEDIA_DIR}/{digest[:32]}.{ext}"
        ref: dict[str, Any] = {"_type": kind, "path": rel, "sha256": digest, "size": len(data)}
        if rel not in self._known:
            target = self.folder / rel
            if self.objects is not None:
                self.objects.put_bytes(data, digest)
                self.objects.link(digest, target)
            elif not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            self._known.add(rel)
        return ref


class MediaRef(dict):
    """A logged media value read back by ``nbtrack.Api``: the stored reference (a dict
    with ``_type``, ``path`` relative to the run folder, ``sha256`` ...) plus access to
    its file.  ``kind`` is ``image``, ``video``, ``audio``, ``html``, ``object3d``,
    ``molecule``, ``histogram``, ``table``, ``chart`` or ``classes``."""

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
        """A table's (or a chart's) ``{"columns": [...], "data": [[...], ...]}``."""
        if self.kind not in ("table", "chart"):
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
