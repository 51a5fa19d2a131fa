"""The notebook file is found through a real Jupyter server's sessions API."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import nbtrack

from conftest import ROOT
from kernels import Kernel

TOKEN = "nbtrack-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "root"
    (root / "exp").mkdir(parents=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NBTRACK_QUIET": "1",
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_PLATFORM_DIRS": "1"}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={root}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(f"{base}/api/status", params={"token": TOKEN}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError((tmp_path / "server.log").read_text())
            time.sleep(0.2)
        yield base, root, tmp_path / "runtime"
    finally:
        proc.send_signal(signal.SIGTERM)  # by PID: the server shuts its kernels down
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_notebook_found_through_the_sessions_api(server, store_dir):
    base, root, runtime = server
    notebook = root / "exp" / "study.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {"marker": "study"}, "nbformat": 4,
                                    "nbformat_minor": 5}))
    reply = requests.post(f"{base}/api/sessions", headers={"Authorization": f"token {TOKEN}"},
                          json={"path": "exp/study.ipynb", "type": "notebook", "name": "",
                                "kernel": {"name": "python3"}}, timeout=30)
    reply.raise_for_status()
    kernel_id = reply.json()["kernel"]["id"]
    connection = runtime / f"kernel-{kernel_id}.json"
    deadline = time.time() + 30
    while not connection.exists() and time.time() < deadline:
        time.sleep(0.1)
    k = Kernel.attach(connection)
    try:
        # leave only the server's API as a way to find the notebook
        k.run("import os; os.environ.pop('JPY_SESSION_NAME', None); os.environ.pop('NBTRACK_NOTEBOOK_NAME', None)")
        k.run(f"%load_ext nbtrack\nrun = %track_init -p srv --dir {store_dir} --save-code")
        k.run("%track_finish")
        run_id = k.run("print(run.id)").strip().splitlines()[-1]
    finally:
        k.kc.stop_channels()
    record = nbtrack.Api(store_dir).run(f"srv/{run_id}")
    saved = record.metadata["code"]["notebook"]
    assert saved["source"] == "jupyter server /api/sessions"
    assert Path(saved["path"]) == notebook
    copied = store_dir / "nbtrack" / record.folder / saved["file"]
    assert json.loads(copied.read_text())["metadata"]["marker"] == "study"
