"""The runs this process is running, by ``(project, run id)``.

For readers that must hand a change to the live run rather than write under it:
``Api().run(path).update()`` on a run this process is running applies the change
through the run itself.
"""

from __future__ import annotations

import weakref
from typing import Any

_runs: weakref.WeakValueDictionary[tuple[str, str], Any] = weakref.WeakValueDictionary()


def add(run: Any) -> None:
    _runs[(run.project, run.id)] = run


def remove(run: Any) -> None:
    key = (run.project, run.id)
    if _runs.get(key) is run:
        del _runs[key]


def find(project: str, run_id: str) -> Any:
    """The live run, or None (not running here, finished, or a forked child's copy)."""
    run = _runs.get((project, run_id))
    if run is None or run.finished or run.detached:
        return None
    return run


def settle(root: Any) -> None:
    """Claim in their store the runs this process started in a new store at ``root``
    and has not claimed yet (see ``manager._claim_later``), so that a reader finds them."""
    for run in list(_runs.values()):
        sink = getattr(run, "_sink", None)
        if sink is not None and not sink.claimed and sink.store.root == root:
            try:
                sink.pk  # noqa: B018 -- the claim
            except Exception:
                pass  # the writer reports it
