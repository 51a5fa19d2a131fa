"""``run.watch(model)``: histograms of a PyTorch model's gradients and parameters.

Every ``log_freq``-th forward call of a watched model (one counter per model, kept by
a forward pre-hook, the only hook that runs between samples), nbtrack takes the
parameters' histograms at once and puts one-shot hooks on the parameters' gradients;
the backward pass that follows fills in the gradients' histograms, and the hooks
remove themselves.  The histograms join the run's open row (``commit=False``), so
they are stored with the next row the training loop commits, under
``parameters/<name>`` and ``gradients/<name>`` as wandb names them.

Histograms are computed where the tensor lives (``torch.histc`` on the GPU for a CUDA
tensor); only the 64 counts and the range come back to the host.  ``unwatch()`` and
``finish()`` remove every hook.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .. import diagnostics
from ..errors import UsageError
from ..media import Histogram

LOG_CHOICES = ("gradients", "parameters", "all", None)
BINS = 64


def histogram(tensor: Any, bins: int = BINS) -> Histogram | None:
    """A ``Histogram`` of a tensor's finite values, counted on its device; None when it
    has none."""
    import torch

    with torch.no_grad():
        flat = tensor.detach().reshape(-1)
        if not flat.is_floating_point():
            flat = flat.float()
        finite = flat[torch.isfinite(flat)]
        if finite.numel() == 0:
            return None
        lo, hi = finite.min(), finite.max()
        low, high = float(lo), float(hi)
        if low == high:
            low, high = low - 0.5, high + 0.5
        counts = torch.histc(finite.float(), bins=bins, min=low, max=high)
    step = (high - low) / bins
    return Histogram(np_histogram=(counts.cpu().tolist(), [low + i * step for i in range(bins)] + [high]))


class Watch:
    """The hooks on one model for one run."""

    def __init__(self, run: Any, model: Any, *, log: str | None, log_freq: int, prefix: str, log_graph: bool) -> None:
        self.run = run
        self.model = model
        self.log = log
        self.log_freq = log_freq
        self.prefix = prefix
        self.calls = 0
        self.samples = 0
        self.lock = threading.Lock()
        self.grad_handles: list[Any] = []
        self.fired = 0  # gradient hooks of the current sample that have run
        self.handle = model.register_forward_pre_hook(self._pre_forward)
        if log_graph:
            from ..media import Html

            run.log({f"graph/{prefix or 'model'}": Html(f"<pre>{_escape(repr(model))}</pre>")}, commit=False)

    def _pre_forward(self, module: Any, inputs: Any) -> None:
        self.calls += 1
        if self.grad_handles and self.fired >= len(self.grad_handles):
            self._drop_grad_hooks()  # the sample's backward pass is done: no hook runs until the next
        if self.calls % self.log_freq:
            return  # the only work between samples
        try:
            self._sample()
        except Exception as exc:  # watching must never break training
            diagnostics.warn_once(f"watch:{type(exc).__name__}", f"nbtrack: watch could not sample the model ({exc!r})")

    def _sample(self) -> None:
        self.samples += 1
        values: dict[str, Any] = {}
        wants_parameters = self.log in ("parameters", "all")
        wants_gradients = self.log in ("gradients", "all")
        self._drop_grad_hooks()
        for name, parameter in self.model.named_parameters():
            if wants_parameters:
                h = histogram(parameter)
                if h is not None:
                    values[f"parameters/{self.prefix}{name}"] = h
            if wants_gradients and parameter.requires_grad:
                self.grad_handles.append(parameter.register_hook(self._grad_hook(f"gradients/{self.prefix}{name}")))
        if values:
            self.run.log(values, commit=False)

    def _grad_hook(self, key: str) -> Callable[[Any], None]:
        done = False

        def hook(grad: Any) -> None:
            nonlocal done
            if done:
                return
            done = True
            try:
                h = histogram(grad)
                if h is not None:
                    self.run.log({key: h}, commit=False)
            except Exception as exc:
                diagnostics.warn_once(f"watch-grad:{type(exc).__name__}", f"nbtrack: watch: {key} ({exc!r})")
            with self.lock:
                self.fired += 1

        return hook

    def _drop_grad_hooks(self) -> None:
        handles, self.grad_handles = self.grad_handles, []
        for handle in handles:
            handle.remove()
        with self.lock:
            self.fired = 0

    def remove(self) -> None:
        self.handle.remove()
        self._drop_grad_hooks()


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _models(models: Any) -> list[Any]:
    if isinstance(models, (list, tuple)):
        found = list(models)
    else:
        found = [models]
    for model in found:
        if not hasattr(model, "register_forward_pre_hook") or not hasattr(model, "named_parameters"):
            raise UsageError(f"watch: models must be torch.nn.Module objects, got {type(model).__name__}")
    return found


class WatchMethods:
    """``Run.watch`` and ``Run.unwatch``."""

    _watches: list[Watch]

    def _check_writable(self, what: str) -> None: ...

    def attach(self, undo: Callable[[], None]) -> None: ...

    def watch(
        self,
        models: Any,
        criterion: Any = None,
        log: str | None = "gradients",
        log_freq: int = 1000,
        idx: int | None = None,
        log_graph: bool = False,
    ) -> None:
        """Log histograms of ``models``' gradients (``log="gradients"``), parameters
        (``"parameters"``), both (``"all"``) or neither (None) every ``log_freq``
        forward calls; see the module's doc."""
        self._check_writable("watch")
        if log not in LOG_CHOICES:
            raise UsageError(f"watch: log must be 'gradients', 'parameters', 'all' or None, got {log!r}")
        if isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1:
            raise UsageError(
                f"watch: log_freq must be a positive integer (forward calls between samples), got {log_freq!r}"
            )
        found = _models(models)
        if not self._watches:
            self.attach(self.unwatch)
        for i, model in enumerate(found):
            if any(w.model is model for w in self._watches):
                continue
            number = len(self._watches) if idx is None else idx + i
            prefix = "" if number == 0 else f"graph_{number}/"
            self._watches.append(Watch(self, model, log=log, log_freq=log_freq, prefix=prefix, log_graph=log_graph))

    def unwatch(self, models: Any = None) -> None:
        """Remove the hooks of ``models`` (all watched models by default)."""
        chosen = None if models is None else {id(m) for m in _models(models)}
        kept = []
        for w in self._watches:
            if chosen is None or id(w.model) in chosen:
                w.remove()
            else:
                kept.append(w)
        self._watches = kept
