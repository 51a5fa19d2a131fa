"""``%load_ext nbtrack``: what the extension adds to a shell, and how it is removed.

``load`` is idempotent per shell and ``unload`` removes exactly what ``load`` added,
so ``%reload_ext nbtrack`` leaves one of each hook, formatter and listener.
"""

from __future__ import annotations

import ast
import sys
from typing import Any

from .. import diagnostics, events
from ..active_run import Run
from ..run_record import RunList
from . import display as views
from .session import NOTEBOOK_HINT, save_session

_layers: dict[int, NotebookLayer] = {}


def _count_offset() -> int:
    # IPython 9 increments execution_count before pre_run_cell; IPython 8 after the cell.
    import IPython

    return 1 if IPython.version_info[0] >= 9 else 0


class NotebookLayer:
    """Hooks, displays and ``save_code`` for one IPython shell."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.offset = _count_offset()
        self.first_cell: dict[int, int | None] = {}
        self.cell_value_expr: str | None = None
        self.in_magic = False
        self.hinted = False
        self._undo: list = []
        self.magics: Any = None
        # display() outputs by execution count, kept only while a run that saves code is
        # active: ipykernel's publisher does not put them in IPython's output history,
        # which the session history notebook reads.
        self.displays: dict[int, list[dict[str, Any]]] = {}
        self.saving: set[int] = set()  # id() of the active runs that save code
        self.handles: dict[int, list] = {}  # id(run) -> display handles to refresh at finish
        self.offline_ids: set[str] = set()  # those of the lines saved beside live panels
        self.widgets = _widgets_available()

    # ----------------------------------------------------------- lifecycle
    def install(self) -> None:
        from .magics import TrackMagics

        shell = self.shell
        # Loading happens inside a cell whose pre_run_cell has already fired.
        Run.cell = shell.execution_count - self.offset
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)
        self._undo.append(lambda: _unregister(shell, "pre_run_cell", self.pre_run_cell))
        self._undo.append(lambda: _unregister(shell, "post_run_cell", self.post_run_cell))
        # One mime-bundle formatter gives the widget, HTML and text together (a per-type
        # text/html formatter would take priority over the bundle's HTML).
        bundles = shell.display_formatter.mimebundle_formatter
        old_bundle = bundles.for_type(Run, self.run_bundle)
        old_list = bundles.for_type(
            RunList, lambda runs, include=None, exclude=None: _bundle_of(self.runs_view(runs, runs.project))
        )
        self._undo.append(lambda: _restore_formatter(bundles, old_bundle))
        self._undo.append(lambda: _restore_formatter(bundles, old_list, RunList))
        self._undo.append(events.bus.subscribe(events.RUN_STARTED, self.on_started))
        self._undo.append(events.bus.subscribe(events.RUN_ENDING, self.on_ending))
        self._undo.append(events.bus.subscribe(events.RUN_FINISHED, self.on_finished))
        self._undo.append(events.bus.subscribe(events.DISPLAY, self.on_display))
        publisher = shell.display_pub
        original_publish = publisher.publish

        def publish(data: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                if self.saving and Run.cell is not None and isinstance(data, dict):
                    self.displays.setdefault(Run.cell, []).append(dict(data))
            except Exception:
                pass
            return original_publish(data, *args, **kwargs)

        publisher.publish = publish
        self._undo.append(lambda: publisher.__dict__.pop("publish", None))
        self.magics = TrackMagics(shell=shell, layer=self)
        shell.register_magics(self.magics)
        self._undo.append(lambda: _unregister_magics(shell, self.magics))
        # `%load_ext nbtrack` makes `nbtrack.log(...)` work in the next cell, as %pylab
        # brings its names; a name the user already bound is left alone
        if "nbtrack" not in shell.user_ns:
            import nbtrack

            shell.user_ns["nbtrack"] = nbtrack
        diagnostics.lines_to_stdout(True)  # a kernel shows stderr as an alarming red block
        self._undo.append(lambda: diagnostics.lines_to_stdout(False))

    def uninstall(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception:
                pass

    # --------------------------------------------------------------- hooks
    def pre_run_cell(self, *args: Any, **kwargs: Any) -> None:
        try:
            info = args[0] if args else kwargs.get("info")
            if info is not None and not getattr(info, "store_history", True):
                return  # a nested or silent execution: not a notebook cell
            Run.cell = self.shell.execution_count - self.offset
            self.cell_value_expr = _cell_value_expr(self.shell, getattr(info, "raw_cell", "") or "")
        except Exception:
            pass

    def post_run_cell(self, *args: Any, **kwargs: Any) -> None:
        try:
            self.cell_value_expr = None
        except Exception:
            pass

    # -------------------------------------------------------------- events
    def on_started(self, run: Any) -> None:
        self.first_cell[id(run)] = Run.cell
        if getattr(run, "saves_code", False):
            self.saving.add(id(run))
        settings = getattr(run, "settings", None)
        if not self.in_magic and settings is not None and settings.quiet:
            return
        if not self.in_magic and self.will_show_as_cell_value():
            return  # the cell's value is this run: the display hook shows it once
        self.show(run)

    def on_display(self, run: Any, height: int = 420) -> None:
        """``run.display()``: show the run's panel in the current cell."""
        self.show(run)

    def show(self, run: Any) -> None:
        """Display a run, and remember the display so that finish() can refresh it."""
        from IPython.display import display

        handle = display(run, display_id=True)
        if handle is not None and not run.finished:
            self.handles.setdefault(id(run), []).append(handle)
            panel = _live_panel(run)
            if panel is not None:  # said when the notebook is reopened without this kernel
                line = (
                    f"nbtrack: the live panel of run {run.name} ({run.path}) needs its kernel, which is not "
                    f"connected. Run the cell again, or see the run with: nbtrack view {run.project}/{run.id}"
                )
                saved = {"text/html": views.offline_html(panel.view_key, line), "text/plain": ""}
                offline = display(saved, raw=True, display_id=True)
                if offline is not None:
                    self.offline_ids.add(offline.display_id)
                    self.handles[id(run)].append(offline)

    def will_show_as_cell_value(self) -> bool:
        expr = self.cell_value_expr or ""
        return "track_init" in expr or "init(" in expr

    def run_bundle(self, run: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """A run's display: the live panel where widgets work, with HTML and text fallbacks."""
        bundle: dict[str, Any] = {"text/plain": views.status_text(run)}
        series: dict = {}
        page = self._finished_page(run)
        if page is not None:
            bundle["text/html"] = page
            return bundle
        if self.widgets and _in_kernel():
            try:
                from .panel import panel_for

                panel = panel_for(run)
                series = panel.series_points()
                bundle["application/vnd.jupyter.widget-view+json"] = {
                    "version_major": 2,
                    "version_minor": 1,
                    "model_id": panel.model_id,
                }
            except Exception as exc:
                self._widget_failed(exc)
        bundle["text/html"] = views.fallback_html(run, series)
        return bundle

    @staticmethod
    def _finished_page(run: Any) -> str | None:
        """A finished run's output: its panel as a self-contained page (no widget state
        to save, no kernel to reopen with), made from the finalized panel."""
        if not run.finished or getattr(run, "dir", None) is None:
            return None
        panel = _live_panel(run)
        try:
            from ..page import run_fragment, run_state

            if panel is not None and panel.wait_final(10):
                return run_fragment(panel.page_state())
            return run_fragment(run_state(run.record()))  # never shown live: from the store
        except Exception as exc:
            diagnostics.warn_once("page", f"nbtrack: could not make the run's saved page ({exc!r}); showing the panel")
            return None

    def runs_view(
        self, records: list, project: str | None, sort_by: str | None = None, descending: bool = False
    ) -> Any:
        """The interactive runs table where widgets work, else the static one."""
        if self.widgets and _in_kernel():
            try:
                from .runs_view import RunsView

                view = RunsView(list(records), project, sort_by=sort_by, descending=descending)
                self._show_offline_table(view)
                return view
            except Exception as exc:
                self._widget_failed(exc)
        from ..page import RunsTable

        return RunsTable(list(records), project)

    @staticmethod
    def _show_offline_table(view: Any) -> None:
        """The table as it is now, saved beside the live one for a notebook reopened
        without this kernel."""
        from IPython.display import display

        line = "nbtrack: the live runs table needs its kernel, which is not connected; the table as it was:"
        display(
            {"text/html": views.offline_html(view.view_key, line, view._table._repr_html_()), "text/plain": ""},
            raw=True,
        )

    def _widget_failed(self, exc: Exception) -> None:
        if self.widgets:
            self.widgets = False
            diagnostics.notice(f"nbtrack: the live panel is unavailable ({exc!r}); showing a static status instead")

    def on_ending(self, run: Any) -> None:
        """The run's state is final: freeze its panel, save the session's code into its
        folder (before its files are synced)."""
        try:
            self._finalize_panel(run)
        except Exception:
            pass
        first = self.first_cell.pop(id(run), None)
        if not getattr(run, "saves_code", False) or run.dir is None:
            return
        try:
            saved = save_session(run, self.shell, first, Run.cell, self.displays)
        except Exception as exc:
            diagnostics.warn(f"nbtrack: could not save the session history of run {run.id}: {exc}")
            return
        finally:
            self.saving.discard(id(run))
            if not self.saving:
                self.displays.clear()  # no run saves code any more: keep nothing
        try:
            run.record_code(saved)
        except Exception as exc:
            diagnostics.warn(f"nbtrack: could not record the saved code of run {run.id}: {exc}")
        if saved.get("notebook") is None and not self.hinted:
            self.hinted = True
            diagnostics.notice(NOTEBOOK_HINT)

    def on_finished(self, run: Any) -> None:
        """Everything is stored (and synced, online): refresh the run's displays."""
        panel = _live_panel(run)
        if panel is not None:
            try:
                panel.refresh_header(run)  # the final sync state, after finish() waited for it
            except Exception:
                pass
        bundle = None  # made once for all the run's displays (a finished run's page costs its making)
        for handle in self.handles.pop(id(run), []):
            try:
                if handle.display_id in self.offline_ids:
                    self.offline_ids.discard(handle.display_id)
                    handle.update({"text/plain": ""}, raw=True)  # the page replaces the live panel: no line
                else:
                    bundle = bundle or self.run_bundle(run)
                    handle.update(bundle, raw=True)
            except Exception:
                pass

    @staticmethod
    def _finalize_panel(run: Any) -> None:
        panel = _live_panel(run)
        if panel is not None:
            panel.finalize()  # on this thread, so the final state is sent before the cell ends


def _live_panel(run: Any) -> Any:
    """The run's panel, if one was ever made (without importing the panel module)."""
    panels = sys.modules.get("nbtrack.jupyter.panel")
    return panels._panels.get(run) if panels is not None else None


def _widgets_available() -> bool:
    try:
        import anywidget  # noqa: F401  (the panel's only extra need)
    except ImportError:
        diagnostics.notice(
            "nbtrack: install anywidget for the live run panel (pip install anywidget); showing a static status instead"
        )
        return False
    return True


def _in_kernel() -> bool:
    from ..environment import in_kernel

    return in_kernel()


def _cell_value_expr(shell: Any, raw: str) -> str | None:
    """The source of the cell's last statement if the display hook will show its value."""
    if not raw.strip() or raw.rstrip().endswith(";"):
        return None
    try:
        code = shell.transform_cell(raw)
        tree = ast.parse(code)
    except Exception:
        return None
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return None
    return ast.get_source_segment(code, tree.body[-1])


def _unregister(shell: Any, event: str, callback: Any) -> None:
    if callback in shell.events.callbacks.get(event, []):
        shell.events.unregister(event, callback)


def _restore_formatter(formatter: Any, previous: Any, kind: type = Run) -> None:
    formatter.pop(kind, None)
    if previous is not None:
        formatter.for_type(kind, previous)


def _bundle_of(obj: Any) -> Any:
    bundle = getattr(obj, "_repr_mimebundle_", None)
    if bundle is not None:
        return bundle()
    return {"text/html": obj._repr_html_(), "text/plain": repr(obj)}


def _unregister_magics(shell: Any, magics: Any) -> None:
    manager = shell.magics_manager
    for kind, names in magics.magics.items():
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(type(magics).__name__, None)


def load(shell: Any) -> None:
    if id(shell) in _layers:
        return
    layer = NotebookLayer(shell)
    layer.install()
    _layers[id(shell)] = layer


def unload(shell: Any) -> None:
    layer = _layers.pop(id(shell), None)
    if layer is not None:
        layer.uninstall()


def layer_for(shell: Any) -> NotebookLayer | None:
    return _layers.get(id(shell))
