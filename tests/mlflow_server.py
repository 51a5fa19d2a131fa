"""A real MLflow tracking server on loopback for the online-mode tests.

Started with the light flags from TESTING_RECIPES (one worker, no job runner), a
SQLite backend and served artifacts in the test's folder; stopped by its PID (the
process group it leads), never by name.  The server's Python comes from
``NBTRACK_TEST_MLFLOW_PYTHON``, else ``.venv-mlflow`` (made by .ci/run), else the
benchmark's ``bench/.peers``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
API = "/api/2.0/mlflow/"


def mlflow_python() -> str | None:
    candidates = [
        os.environ.get("NBTRACK_TEST_MLFLOW_PYTHON"),
        ROOT / ".venv-mlflow/bin/python",
        ROOT / "bench/.peers/bin/python",
    ]
    for c in candidates:
        if c and Path(c).exists():
            probe = subprocess.run([str(c), "-c", "import mlflow.server"], capture_output=True)
            if probe.returncode == 0:
                return str(c)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, folder: Path, *, port: int | None = None, auth_password: str | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth_password = auth_password
        self.proc: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 90) -> MlflowServer:
        python = mlflow_python()
        if python is None:
            raise RuntimeError(
                "no Python with mlflow: run .ci/run (it makes .venv-mlflow) or set NBTRACK_TEST_MLFLOW_PYTHON"
            )
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        for name in list(env):
            if name.startswith(("NBTRACK_", "MLFLOW_TRACKING_")):
                del env[name]
        args = [
            python,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        if self.auth_password is not None:
            ini = self.folder / "auth.ini"
            ini.write_text(
                "[mlflow]\ndefault_permission = READ\n"
                f"database_uri = sqlite:///{self.folder / 'auth.db'}\n"
                f"admin_username = admin\nadmin_password = {self.auth_password}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            )
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = "nbtrack-tests-only"
            args += ["--app-name", "basic-auth"]
        self.log = open(self.folder / "server.log", "ab")
        self.proc = subprocess.Popen(
            args, cwd=self.folder, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.folder / 'server.log').read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError("mlflow server did not answer /health in time")

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)  # the group this server leads: its worker too
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL: the server dies without a word, as a crashed or unplugged one does."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=30)
        if getattr(self, "log", None):
            self.log.close()

    # ------------------------------------------------------------ reading
    def session(self) -> requests.Session:
        s = requests.Session()
        if self.auth_password is not None:
            s.auth = ("admin", self.auth_password)
        return s

    def get(self, endpoint: str, **params) -> dict:
        r = self.session().get(self.url + API + endpoint, params=params, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, endpoint: str, body: dict) -> dict:
        r = self.session().post(self.url + API + endpoint, json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    def experiment(self, name: str) -> dict:
        return self.get("experiments/get-by-name", experiment_name=name)["experiment"]

    def runs(self, experiment_name: str) -> list[dict]:
        exp = self.experiment(experiment_name)
        return self.post(
            "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 1000, "run_view_type": "ALL"}
        ).get("runs", [])

    def run_by_tag(self, experiment_name: str, run_id: str) -> dict:
        found = [
            r
            for r in self.runs(experiment_name)
            if {t["key"]: t["value"] for t in r["data"].get("tags", [])}.get("nbtrack.run_id") == run_id
        ]
        assert len(found) == 1, f"expected one MLflow run for {run_id}, found {len(found)}"
        return found[0]

    def history(self, run_id: str, key: str) -> list[dict]:
        return self.get("metrics/get-history", run_id=run_id, metric_key=key, max_results=100_000).get("metrics", [])

    def artifacts(self, run_id: str, path: str = "") -> list[str]:
        body = self.get("artifacts/list", run_id=run_id, path=path)
        out = []
        for f in body.get("files", []):
            if f.get("is_dir"):
                out += self.artifacts(run_id, f["path"])
            else:
                out.append(f["path"])
        return out
