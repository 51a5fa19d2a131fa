"""The notebook file is found through a real Jupyter server's sessions API."""

import json
from pathlib import Path

import pytest
import requests
from browser import TOKEN, JupyterServer
from conftest import wait_for
from kernels import Kernel

import nbtrack

pytestmark = pytest.mark.e2e  # starts kernels, servers or a browser: deselect with -m "not e2e"


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "root"
    (root / "exp").mkdir(parents=True)
    jupyter = JupyterServer("server", root, tmp_path)
    yield jupyter.base, root, tmp_path / "runtime"
    jupyter.stop()


def test_notebook_found_through_the_sessions_api(server, store_dir):
    base, root, runtime = server
    notebook = root / "exp" / "study.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {"marker": "study"}, "nbformat": 4, "nbformat_minor": 5}))
    reply = requests.post(
        f"{base}/api/sessions",
        headers={"Authorization": f"token {TOKEN}"},
        json={"path": "exp/study.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}},
        timeout=30,
    )
    reply.raise_for_status()
    kernel_id = reply.json()["kernel"]["id"]
    connection = runtime / f"kernel-{kernel_id}.json"
    assert wait_for(connection.exists, timeout=180), "the server never wrote the kernel's connection file"
    k = Kernel.attach(connection)  # waits until the kernel answers, however long it takes to start
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
