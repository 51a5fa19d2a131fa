"""MLflow's key rules as the sync checks them on the client, and the sync's settings
from the environment (no server needed)."""

from __future__ import annotations

import time
import warnings

import pytest

from nbtrack import NbtrackWarning
from nbtrack.sync import keys
from nbtrack.sync.client import CommError
from nbtrack.sync.uploader import _parallel


@pytest.mark.parametrize("key", ["loss", "train/loss", "a b", "lr:0", "x.y-z_1", "ünï/cödé", "m" * 250])
def test_keys_mlflow_takes_are_sent_as_they_are(key):
    assert keys.valid(key) and keys.mapped(key) == key


@pytest.mark.parametrize("key", ["acc@1", "m" * 251, "a//b", "/abs", "a/", "..", "a/../b", ".", "", "q?x", "x/./y"])
def test_keys_mlflow_refuses_map_to_valid_unique_names(key):
    name = keys.mapped(key)
    assert not keys.valid(key) and keys.valid(name) and len(name) <= keys.MAX_KEY
    assert name == keys.mapped(key)  # the same on every call, machine and run
    assert name[-7] == "-" and all(c in "0123456789abcdef" for c in name[-6:])


def test_mapped_names_never_collide_with_each_other_or_a_valid_key():
    originals = ["acc@1", "acc#1", "acc 1?", "m" * 300, "m" * 301, "acc_1"]
    names = [keys.mapped(k) for k in originals]
    assert len(set(names)) == len(names)
    assert keys.mapped("acc_1") == "acc_1" and keys.mapped("acc@1").startswith("acc_1-")


def test_sync_parallel_from_the_environment():
    assert _parallel(None) == 4 and _parallel("") == 4 and _parallel("1") == 1 and _parallel("16") == 16
    for bad in ("0", "17", "four", "-2"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _parallel(bad) == 4
        assert any(
            issubclass(w.category, NbtrackWarning)
            and "NBTRACK_SYNC_PARALLEL must be a whole number from 1 to 16" in str(w.message)
            for w in caught
        ), [str(w.message) for w in caught]


@pytest.mark.parametrize("last_pass", ["failed", "answered"])
def test_once_finish_leaves_a_run_to_nbtrack_sync_this_process_sends_no_more(last_pass, monkeypatch):
    """A pass under way when finish() gives up ends before finish() returns, and no pass
    runs after: `nbtrack sync` is then the only writer of the run's sync state (a closing
    pass that went on in the background re-sent rows the command had sent).  After a
    failed pass finish() leaves at once; after an answered one it first tries to send
    the end state (the closing pass, here cut to 0.2 s)."""
    import threading

    from nbtrack.sync import service
    from nbtrack.sync.service import RunSync

    monkeypatch.setattr(service, "CLOSE_WAIT", 0.2)

    in_request, release = threading.Event(), threading.Event()
    pushes = []

    class Uploader:
        state = {"rows_sent": 0}
        server = "http://127.0.0.1:9"
        url = None

        def push(self, stop, **kwargs):
            pushes.append(time.monotonic())
            in_request.set()
            release.wait(30)  # a request the server has not answered yet
            raise CommError("cannot reach http://127.0.0.1:9")

        def pending(self):
            return (500, 0)

    class Service:
        def wake(self):
            pass

        def remove(self, entry):
            pass

    said = []
    entry = RunSync(Service(), Uploader(), "p/r", "nbtrack sync --run r", said.append)
    entry.error = "cannot reach http://127.0.0.1:9" if last_pass == "failed" else None
    worker = threading.Thread(target=entry.run_pass, args=(lambda: entry.left_behind,))
    worker.start()
    assert in_request.wait(30)
    threading.Timer(0.3, release.set).start()
    assert entry.finish(timeout=0.05) is False
    assert not worker.is_alive()  # finish() returned only once the pass had ended
    assert entry.status()["state"] == "unsent" and "nbtrack sync --run r" in said[-1]
    assert entry.closing is (last_pass == "answered")
    assert entry.run_pass(lambda: False) is False and len(pushes) == 1  # and no pass after it
