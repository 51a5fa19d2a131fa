"""``sync_tensorboard=True``: what TensorBoard's ``SummaryWriter`` writes also lands in the run.

Both ``torch.utils.tensorboard.SummaryWriter`` and ``tensorboardX.SummaryWriter``
are patched (the library's method runs first and unchanged):

* ``add_scalar(tag, value, global_step)`` -> ``log({tag: value}, step=global_step)``;
  ``add_scalars(main, {tag: v})`` -> ``main/tag`` keys.  Values with the same
  ``global_step`` share one row.  A ``global_step`` lower than the run's step (an
  epoch counter beside a batch counter, a restarted writer) cannot go back in
  time: the value joins the current row, with one warning.  No ``global_step``:
  the value joins the current row.
* ``add_histogram`` -> ``nbtrack.Histogram``; ``add_image`` -> ``nbtrack.Image``.
* ``add_hparams(hparams, metrics)`` -> ``config.update(hparams)`` and the metrics
  into the summary.
* The writers' event files (``*tfevents*``) are copied into the run folder under
  ``tensorboard/<log dir name>/`` when a writer closes and when the run finishes.
"""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path
from typing import Any

from .. import diagnostics
from ..errors import UsageError
from ..media import MAX_BINS, Histogram, Image, _as_array
from . import Patcher, installed

INSTALL_HINT = (
    "pip install tensorboardX (or pip install tensorboard, for torch.utils.tensorboard); "
    "both come with pip install 'nbtrack[tensorboard]'"
)


def check_available() -> None:
    if installed("tensorboardX") or (installed("torch") and installed("tensorboard")):
        return
    raise UsageError(
        f"sync_tensorboard=True: neither tensorboardX nor torch.utils.tensorboard "
        f"(torch with tensorboard) is installed; {INSTALL_HINT}"
    )


def _logdir(writer: Any) -> str | None:
    for attr in ("log_dir", "logdir"):
        value = getattr(writer, attr, None)
        if isinstance(value, str):
            return value
    getter = getattr(writer, "get_logdir", None)
    return getter() if callable(getter) else None


def _hwc(img: Any, dataformats: str | None) -> Any:
    arr = _as_array(img, "add_image")
    fmt = (dataformats or "CHW").upper()
    if len(fmt) != arr.ndim or sorted(fmt) not in (sorted("CHW"), sorted("HW")):
        return arr
    order = "HWC" if "C" in fmt else "HW"
    return arr.transpose([fmt.index(c) for c in order])


class TensorBoardPatcher(Patcher):
    targets = {"torch.utils.tensorboard.writer": "SummaryWriter", "tensorboardX.writer": "SummaryWriter"}
    methods = ("add_scalar", "add_scalars", "add_histogram", "add_image", "add_hparams", "close")
    label = "sync_tensorboard"

    def __init__(self) -> None:
        super().__init__()
        self._writers: dict[str, weakref.WeakSet] = {}  # run id -> writers seen
        self._logdirs: dict[str, set[str]] = {}

    def capture(self, name: str, writer: Any, args: dict[str, Any]) -> None:
        run = self.target()
        if run is None:
            return
        logdir = _logdir(writer)
        if logdir:
            self._logdirs.setdefault(run.id, set()).add(logdir)
        self._writers.setdefault(run.id, weakref.WeakSet()).add(writer)
        step = args.get("global_step")
        if name == "add_scalar":
            self._log(run, {args["tag"]: args["scalar_value"]}, step)
        elif name == "add_scalars":
            main = args["main_tag"]
            self._log(run, {f"{main}/{tag}": v for tag, v in args["tag_scalar_dict"].items()}, step)
        elif name == "add_histogram":
            bins = args.get("max_bins") or 64
            self._log(run, {args["tag"]: Histogram(args["values"], num_bins=min(int(bins), MAX_BINS))}, step)
        elif name == "add_image":
            self._log(run, {args["tag"]: Image(_hwc(args["img_tensor"], args.get("dataformats")))}, step)
        elif name == "add_hparams":
            run.config.update(dict(args["hparam_dict"]), allow_val_change=True)
            run.summary.update(dict(args["metric_dict"]))
        elif name == "close":
            self._copy_events(run)

    def _log(self, run: Any, row: dict[str, Any], global_step: Any) -> None:
        if global_step is None:
            run.log(row, commit=False)
            return
        step = int(global_step)
        if step < run.step:
            diagnostics.warn_once(
                f"{run.project}/{run.id}:tensorboard-behind",  # forgotten when the run finishes
                f"nbtrack: TensorBoard global_step {step} is lower than run {run.id}'s step {run.step}; "
                "steps cannot go back, so such values join the current row (use one increasing "
                "global_step for every tag of a run to keep them apart)",
                stacklevel=4,
            )
            run.log(row, commit=False)
            return
        run.log(row, step=step)

    def finish(self, run: Any) -> None:
        for writer in list(self._writers.pop(run.id, ())):
            try:
                writer.flush()
            except Exception:
                pass  # a closed writer has nothing left to flush
        self._copy_events(run)
        self._logdirs.pop(run.id, None)

    def _copy_events(self, run: Any) -> None:
        if run.dir is None:
            return
        target = Path(run.dir) / "tensorboard"
        for logdir in sorted(self._logdirs.get(run.id, ())):
            source = Path(logdir)
            if not source.is_dir():
                continue
            for path in source.rglob("*tfevents*"):
                if not path.is_file():
                    continue
                dest = target / source.name / path.relative_to(source)
                stat = path.stat()
                if dest.exists() and dest.stat().st_size == stat.st_size:
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)


patcher = TensorBoardPatcher()
