"""``save_code`` in a notebook: the session history as a notebook and a script, and a
copy of the notebook file itself when its path can be found."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..environment import anonymise_text

NOTEBOOK_HINT = (
    "nbtrack: could not find this notebook's file to save with the run; "
    "set NBTRACK_NOTEBOOK_NAME=path/to/notebook.ipynb (the session history is saved anyway)"
)


def _cell_source(shell: Any) -> dict[int, str]:
    """Executed cells by execution count, from the in-memory input history."""
    raw = list(getattr(shell.history_manager, "input_hist_raw", []) or [])
    return {n: src for n, src in enumerate(raw) if n > 0 and src.strip()}


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


_TEXT_TYPES = ("text/plain", "text/html", "text/markdown", "text/latex")


def _display(data: dict[str, Any]) -> dict[str, Any] | None:
    kept = {k: _lines(v) if isinstance(v, str) else v for k, v in data.items() if k in _TEXT_TYPES}
    return {"output_type": "display_data", "data": kept, "metadata": {}} if kept else None


def _outputs(shell: Any, count: int, displays: list[dict] | None = None) -> list[dict[str, Any]]:
    """The outputs of one cell, as nbformat v4 outputs: IPython's record of streams,
    results and errors, and the ``displays`` seen by the extension when IPython did
    not record them (in a kernel)."""
    hm = shell.history_manager
    recorded = getattr(hm, "outputs", None)
    outputs: list[dict[str, Any]] = []
    items = list(recorded.get(count, [])) if recorded is not None else []
    if displays and not any(i.output_type == "display_data" for i in items):
        outputs.extend(d for d in map(_display, displays) if d)
    if recorded is not None:  # IPython >= 9 records streams, displays and results
        for item in items:
            kind, bundle = item.output_type, item.bundle
            if kind in ("out_stream", "err_stream"):
                outputs.append(
                    {
                        "output_type": "stream",
                        "name": "stdout" if kind == "out_stream" else "stderr",
                        "text": _lines("".join(bundle.get("stream", []))),
                    }
                )
            elif kind in ("display_data", "execute_result"):
                data = {k: _lines(v) if isinstance(v, str) else v for k, v in bundle.items() if k in _TEXT_TYPES}
                if not data:
                    continue
                out = {"output_type": kind, "data": data, "metadata": {}}
                if kind == "execute_result":
                    out["execution_count"] = count
                outputs.append(out)
        error = getattr(hm, "exceptions", {}).get(count)
        if error:
            outputs.append(
                {
                    "output_type": "error",
                    "ename": error.get("ename", ""),
                    "evalue": error.get("evalue", ""),
                    "traceback": list(error.get("traceback", [])),
                }
            )
        return outputs
    # IPython 8: only the results (Out) are known
    result = shell.user_ns.get("Out", {}).get(count)
    if result is not None:
        outputs.append(
            {
                "output_type": "execute_result",
                "execution_count": count,
                "data": {"text/plain": _lines(repr(result))},
                "metadata": {},
            }
        )
    return outputs


def session_notebook(
    shell: Any, first: int | None, last: int | None, displays: dict[int, list[dict]] | None = None
) -> dict[str, Any]:
    """An nbformat v4 notebook of the session's executed cells.

    Every executed cell is included as code; outputs only for the cells executed
    while the run was active (``first`` to ``last`` execution counts).
    """
    cells = []
    for count, source in sorted(_cell_source(shell).items()):
        active = first is not None and count >= first and (last is None or count <= last)
        cells.append(
            {
                "cell_type": "code",
                "id": uuid.uuid4().hex[:12],
                "execution_count": count,
                "metadata": {"nbtrack": {"run_active": active}},
                "source": _lines(source),
                "outputs": _outputs(shell, count, (displays or {}).get(count)) if active else [],
            }
        )
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": cells,
    }


def session_script(shell: Any) -> str:
    parts = [f"# In[{count}]:\n{source.rstrip()}\n" for count, source in sorted(_cell_source(shell).items())]
    return "# Session history saved by nbtrack\n\n" + "\n".join(parts)


def _kernel_id() -> str | None:
    try:
        from ipykernel import get_connection_file
    except ImportError:
        return None
    try:
        name = Path(get_connection_file()).name
    except Exception:
        return None
    if name.startswith("kernel-") and name.endswith(".json"):
        return name[len("kernel-") : -len(".json")]
    return None


def _servers() -> list[dict[str, Any]]:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return []
    found = []
    for path in sorted(Path(jupyter_runtime_dir()).glob("jpserver-*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    return found


def notebook_from_server(timeout: float = 1.0) -> Path | None:
    """Ask each running Jupyter server which notebook this kernel belongs to."""
    kernel_id = _kernel_id()
    if kernel_id is None:
        return None
    import requests

    for server in _servers():
        url = server.get("url", "").rstrip("/")
        if not url:
            continue
        try:
            reply = requests.get(
                f"{url}/api/sessions", timeout=timeout, headers={"Authorization": f"token {server.get('token', '')}"}
            )
            reply.raise_for_status()
            sessions = reply.json()
        except Exception:
            continue
        for session in sessions:
            if session.get("kernel", {}).get("id") == kernel_id:
                rel = session.get("path") or session.get("notebook", {}).get("path")
                if rel:
                    return Path(server.get("root_dir", ".")) / rel
    return None


def find_notebook(shell: Any, configured: str | None) -> tuple[Path | None, str | None]:
    """The notebook file of this session, and which source named it."""
    if configured:
        return Path(configured).expanduser().absolute(), "NBTRACK_NOTEBOOK_NAME"
    vsc = shell.user_ns.get("__vsc_ipynb_file__")
    if vsc:
        return Path(vsc), "__vsc_ipynb_file__"
    session_name = os.environ.get("JPY_SESSION_NAME")
    if session_name and session_name.endswith(".ipynb"):
        return Path(session_name).expanduser().absolute(), "JPY_SESSION_NAME"
    path = notebook_from_server()
    if path is not None:
        return path, "jupyter server /api/sessions"
    return None, None


def save_session(
    run: Any, shell: Any, first_cell: int | None, last_cell: int | None, displays: dict[int, list[dict]] | None = None
) -> dict[str, Any]:
    """Write the session history (``.ipynb`` and ``.py``) and the notebook file into the
    run's ``code/`` folder; return what was saved, for the run's metadata."""
    code = Path(run.dir) / "code"
    code.mkdir(parents=True, exist_ok=True)
    # anonymous="must": nothing saved may say who ran it (home folder, user name)
    anonymous = getattr(run, "anonymous", None) == "must"
    clean = anonymise_text if anonymous else (lambda text: text)
    saved: dict[str, Any] = {}
    nb = session_notebook(shell, first_cell, last_cell, displays)
    (code / "_session_history.ipynb").write_text(clean(json.dumps(nb, indent=1)))
    saved["session_history"] = "code/_session_history.ipynb"
    (code / "_session_history.py").write_text(clean(session_script(shell)))
    saved["session_script"] = "code/_session_history.py"
    settings = getattr(run, "settings", None)
    path, source = find_notebook(shell, getattr(settings, "notebook_name", None))
    if path is not None and path.is_file():
        if anonymous:
            (code / path.name).write_text(clean(path.read_text(errors="replace")))
        else:
            shutil.copy2(path, code / path.name)
        saved["notebook"] = {
            "file": f"code/{path.name}",
            "source": source,
            "path": path.name if anonymous else str(path),
        }
    else:
        saved["notebook"] = None
    return saved
