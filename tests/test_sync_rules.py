"""MLflow's key rules as the sync checks them on the client, and the sync's settings
from the environment (no server needed)."""

from __future__ import annotations

import warnings

import pytest

from nbtrack import NbtrackWarning
from nbtrack.sync import keys
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
