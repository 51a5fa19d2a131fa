"""Shared fixtures: an isolated environment per test and a helper to run child Pythons."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import nbtrack
from nbtrack import diagnostics
from nbtrack.manager import manager

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list) -> None:
    """A test that takes a real kernel is end to end, as whole modules of servers and browsers are."""
    for item in items:
        if "kernel" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test starts in its own working directory with no NBTRACK_* variables,
    and leaves no active run behind."""
    for name in list(os.environ):
        if name.startswith(("NBTRACK_", "MLFLOW_")):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("NBTRACK_QUIET", "1")
    diagnostics.forget("")  # each test sees nbtrack's warn-once warnings afresh
    yield work
    manager.finish_all()


@pytest.fixture
def store_dir(tmp_path) -> Path:
    d = tmp_path / "store"
    d.mkdir()
    return d


def _child_env(env: dict | None) -> dict:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NBTRACK_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env["NBTRACK_QUIET"] = "1"
    full_env.update(env or {})
    return full_env


def run_python(
    code: str,
    *,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 120,
    check: bool = True,
    argv: list[str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (this venv, this checkout on the path); a child
    that outlives ``timeout`` is killed and fails the test."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *(argv or [])],
        cwd=cwd,
        env=_child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn_python(
    code: str, *, cwd: Path | None = None, env: dict | None = None, argv: list[str] | None = None, stdin: bool = False
) -> subprocess.Popen:
    """Start ``code`` in a fresh interpreter; the caller waits for it and kills it by PID."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *(argv or [])],
        cwd=cwd,
        env=_child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE if stdin else None,
        text=True,
    )


def wait_for(predicate, timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def read_run(dir: Path, project: str, run_id: str) -> nbtrack.RunRecord:
    return nbtrack.Api(dir).run(f"{project}/{run_id}")


@pytest.fixture
def kernel(tmp_path):
    from kernels import Kernel

    k = Kernel(tmp_path)
    yield k
    k.stop()


def page_state(html: str) -> dict:
    """The state a self-contained page (nbtrack.page) carries, unpacked as its loader does."""
    import base64
    import gzip
    import json
    import re

    found = re.search(r'<script data-state="([A-Za-z0-9+/=]+)">', html)
    assert found, "no page state in this HTML"
    return json.loads(gzip.decompress(base64.b64decode(found.group(1))))
