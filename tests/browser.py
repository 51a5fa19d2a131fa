"""A real Jupyter server (JupyterLab or Notebook 7) and Debian's Chromium, for browser tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from conftest import ROOT

TOKEN = "nbtrack-browser"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """``jupyter lab``, ``jupyter notebook`` or a bare ``jupyter server`` (app ``"server"``)
    on loopback, stopped by its PID."""

    def __init__(self, app: str, root: Path, tmp: Path, env: dict | None = None) -> None:
        self.app, self.root, self.tmp = app, root, tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.settings = tmp / "lab-settings"
        notify = self.settings / "@jupyterlab" / "apputils-extension"
        notify.mkdir(parents=True, exist_ok=True)
        (notify / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        full_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
            "JUPYTER_DATA_DIR": str(tmp / "data"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
            "JUPYTER_PLATFORM_DIRS": "1",
            **(env or {}),
        }
        module = {"lab": "jupyterlab", "notebook": "notebook", "server": "jupyter_server"}[app]
        cmd = [
            sys.executable,
            "-m",
            module,
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
        ]
        if app != "server":
            name = "LabApp" if app == "lab" else "JupyterNotebookApp"
            cmd += [f"--{name}.news_url=None", f"--{name}.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.log = open(tmp / f"{app}.log", "w")
        self.proc = subprocess.Popen(
            cmd, env=full_env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + 90
        while True:
            try:
                if requests.get(f"{self.base}/api/status", params={"token": TOKEN}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError((tmp / f"{app}.log").read_text())
            time.sleep(0.2)

    def set_theme(self, theme: str) -> None:
        folder = self.settings / "@jupyterlab" / "apputils-extension"
        (folder / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))

    def url(self, notebook: str) -> str:
        path = f"lab/tree/{notebook}" if self.app == "lab" else f"notebooks/{notebook}"
        return f"{self.base}/{path}?token={TOKEN}"

    def wait_kernel_idle(self, page, timeout: float = 90) -> None:
        """The toolbar says 'idle' before the kernel exists: also require a connected,
        idle kernel on the server side."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            sessions = requests.get(f"{self.base}/api/sessions", params={"token": TOKEN}, timeout=5).json()
            connected = any(
                s["kernel"]["connections"] >= 1 and s["kernel"]["execution_state"] == "idle" for s in sessions
            )
            dom = page.evaluate(
                "() => { const e = document.querySelector('.jp-Notebook-ExecutionIndicator');"
                " return e && e.dataset.status; }"
            )
            if connected and dom == "idle":
                return
            time.sleep(0.2)
        raise TimeoutError("kernel not idle")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
