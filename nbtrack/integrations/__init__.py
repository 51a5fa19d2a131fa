"""Capture from other libraries: TensorBoard writers (``sync_tensorboard``) and
gymnasium's video recorder (``monitor_gym``).

Each integration patches its library once, when the first run asks for it, routes
what it sees to the newest run that asked, and undoes the patch when the last such
run finishes.  A failure inside nbtrack never reaches the library's caller: it is
reported once as a warning.  Patches are applied as soon as the library is
imported, so asking for an integration does not import (say) torch.
"""

from __future__ import annotations

import functools
import importlib.machinery
import sys
import threading
from collections.abc import Callable
from typing import Any

from .. import diagnostics, workers


def installed(name: str) -> bool:
    """Whether ``import name`` can work (a module set to None in sys.modules cannot)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class _ImportWatch:
    """Calls ``on_load(module)`` right after one of ``names`` is first imported (a
    finder on ``sys.meta_path``; importlib's abstract bases are not needed for that)."""

    def __init__(self, names: dict[str, Callable[[Any], None]]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        found = self.names.get(name)
        if found is None:
            return None
        on_load: Callable[[Any], None] = found
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        real: Any = spec.loader

        class Loader:
            def create_module(self, spec: Any) -> Any:
                return real.create_module(spec)

            def exec_module(self, module: Any) -> None:
                real.exec_module(module)
                on_load(module)

        spec.loader = Loader()  # type: ignore[assignment]  # a loader by its methods
        return spec


class Patcher:
    """Patches methods of classes in some modules while at least one run needs it.

    Subclasses give ``targets`` (module name -> class attribute name) and
    ``methods``; ``capture(name, instance, args)`` receives each patched call after the
    library's own method returned (``args``: the call's bound arguments).  Calls the
    library makes to its own patched methods from inside one are not captured.
    """

    targets: dict[str, str] = {}
    methods: tuple[str, ...] = ()
    label = ""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: list[Any] = []
        self._originals: dict[tuple[type, str], Any] = {}
        self._watch: _ImportWatch | None = None
        self._local = threading.local()
        workers.on_fork_child(self._after_fork)

    def _after_fork(self) -> None:
        # the parent's runs are not the child's: nothing is routed to them from here on
        self._lock = threading.RLock()
        self._runs = []

    # ------------------------------------------------------------ runs
    def attach(self, run: Any) -> Callable[[], None]:
        with self._lock:
            self._runs.append(run)
            if len(self._runs) == 1:
                self._install()

        def detach() -> None:
            try:
                self.finish(run)
            except Exception as exc:
                self.warn_once(f"finishing {self.label} for run {run.id}: {exc}")
            with self._lock:
                if run in self._runs:
                    self._runs.remove(run)
                    if not self._runs:
                        self._uninstall()

        return detach

    def target(self) -> Any:
        """The run captured values go to: the newest attached run still running."""
        with self._lock:
            for run in reversed(self._runs):
                if not run.finished:
                    return run
        return None

    def finish(self, run: Any) -> None:
        """Called when ``run`` finishes, before it stops taking values."""

    # --------------------------------------------------------- patching
    def _install(self) -> None:
        pending: dict[str, Callable[[Any], None]] = {}
        for module_name in self.targets:
            module = sys.modules.get(module_name)
            if module is not None:
                self._patch_module(module)
            else:
                pending[module_name] = self._patch_module
        if pending:
            self._watch = _ImportWatch(pending)
            sys.meta_path.insert(0, self._watch)

    def _uninstall(self) -> None:
        if self._watch is not None:
            try:
                sys.meta_path.remove(self._watch)
            except ValueError:
                pass
            self._watch = None
        for (cls, name), original in self._originals.items():
            setattr(cls, name, original)
        self._originals.clear()

    def _patch_module(self, module: Any) -> None:
        with self._lock:
            if not self._runs:
                return
            cls = getattr(module, self.targets[module.__name__], None)
            if cls is None:
                return
            for name in self.methods:
                original = cls.__dict__.get(name)
                if original is None or (cls, name) in self._originals:
                    continue
                self._originals[(cls, name)] = original
                setattr(cls, name, self._wrap(name, original))

    def _wrap(self, name: str, original: Callable) -> Callable:
        import inspect

        signature = inspect.signature(original)
        local = self._local
        patcher = self

        @functools.wraps(original)
        def method(instance, *args, **kwargs):
            depth = getattr(local, "depth", 0)
            local.depth = depth + 1
            try:
                result = original(instance, *args, **kwargs)
            finally:
                local.depth = depth
            if depth == 0:
                try:
                    bound = signature.bind(instance, *args, **kwargs)
                    bound.apply_defaults()
                    patcher.capture(name, instance, bound.arguments)
                except Exception as exc:  # never break the library's caller
                    patcher.warn_once(f"{name}: {type(exc).__name__}: {exc}")
            return result

        method.__nbtrack_original__ = original  # type: ignore[attr-defined]
        return method

    def capture(self, name: str, instance: Any, args: dict[str, Any]) -> None:
        raise NotImplementedError

    def warn_once(self, what: str) -> None:
        diagnostics.warn_once(
            f"{self.label}:{what.split(':', 1)[0]}",
            f"nbtrack: {self.label} could not record a value ({what}); the library went on "
            "normally and later failures of this kind are not reported",
            stacklevel=4,
        )
