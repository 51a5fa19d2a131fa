"""An MLflow server as a team runs it, on loopback: PostgreSQL as the backend store, an
S3-compatible artifact store (moto in server mode) and 4 server workers.

Everything lives in one scratch folder the caller owns; PostgreSQL runs as the
``postgres`` user when this process is root (initdb refuses root).  Each service is
stopped by the PID of the process group it leads (``pg_ctl stop`` for PostgreSQL),
never by name.  Needs Debian's ``postgresql`` (``/usr/lib/postgresql/*/bin``) and, in
the MLflow venv, ``psycopg2-binary``, ``boto3`` and ``moto[server]`` (.ci/run installs
them).  ``python tests/team_server.py`` starts one and prints its URL until Ctrl-C.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from mlflow_server import free_port, mlflow_python

WORKERS = 4


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def missing() -> str | None:
    """Why a team server cannot start here, or None."""
    if postgres_bin() is None:
        return "no PostgreSQL (apt-get install postgresql; .ci/run does)"
    python = mlflow_python()
    if python is None:
        return "no Python with mlflow"
    probe = subprocess.run([python, "-c", "import psycopg2, boto3, moto.server"], capture_output=True)
    if probe.returncode != 0:
        return "the MLflow venv lacks psycopg2-binary, boto3 or moto[server] (.ci/run installs them)"
    if not Path(python).with_name("moto_server").exists():
        return "no moto_server next to the MLflow venv's python"
    return None


class TeamServer:
    def __init__(self) -> None:
        # under /tmp, not pytest's folder: the postgres user must be able to enter it
        self.folder = Path(tempfile.mkdtemp(prefix="nbtrack-team-"))
        self.pg_port, self.s3_port, self.port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.s3_url = f"http://127.0.0.1:{self.s3_port}"
        self.bin = postgres_bin()
        self.python = mlflow_python()
        self.as_postgres = os.geteuid() == 0
        self.procs: list[subprocess.Popen] = []
        self.pg_started = False

    # ------------------------------------------------------------- running
    def _pg(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, cwd=self.folder, capture_output=True, text=True, timeout=120)

    def _check(self, done: subprocess.CompletedProcess, what: str) -> None:
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")

    def start(self, timeout: float = 240) -> TeamServer:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        data, run = self.folder / "pgdata", self.folder / "pgrun"
        data.mkdir()
        run.mkdir()
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
            shutil.chown(data, "postgres")
            shutil.chown(run, "postgres")
        self._check(self._pg("initdb", "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8"), "initdb")
        self._check(
            self._pg(
                "pg_ctl",
                "-D",
                str(data),
                "-w",
                "-l",
                str(run / "postgresql.log"),
                "-o",
                f"-p {self.pg_port} -k {run} -c listen_addresses=127.0.0.1",
                "start",
            ),
            "pg_ctl start",
        )
        self.pg_started = True
        self._check(
            self._pg("createdb", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "mlflow", "mlflow"), "createdb"
        )

        env = {k: v for k, v in os.environ.items() if not k.startswith(("NBTRACK_", "MLFLOW_TRACKING_"))}
        env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
        moto = str(Path(self.python).with_name("moto_server"))
        self._spawn([moto, "-H", "127.0.0.1", "-p", str(self.s3_port)], env, "moto.log")
        self._wait(lambda: self._answers(self.s3_url), deadline, "moto")
        requests.put(f"{self.s3_url}/mlflow", timeout=30).raise_for_status()  # the bucket

        env.update(MLFLOW_S3_ENDPOINT_URL=self.s3_url, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.log = self.folder / "mlflow.log"
        self._spawn(
            [
                self.python,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"postgresql+psycopg2://mlflow@127.0.0.1:{self.pg_port}/mlflow",
                "--artifacts-destination",
                "s3://mlflow/artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(WORKERS),
            ],
            env,
            "mlflow.log",
        )
        # /health answers with the first worker up: wait for all of them
        self._wait(
            lambda: self.log.read_text(errors="replace").count("Application startup complete") >= WORKERS,
            deadline,
            "mlflow's workers",
        )
        self._wait(lambda: self._answers(self.url + "/health"), deadline, "mlflow")

    def _spawn(self, args: list[str], env: dict, log: str) -> None:
        out = open(self.folder / log, "ab")
        proc = subprocess.Popen(
            args, cwd=self.folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        self.procs.append(proc)

    def _wait(self, ready, deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{what}: a service exited: {self.logs()}")
            if ready():
                return
            time.sleep(0.25)
        raise RuntimeError(f"{what} not up in time: {self.logs()}")

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            return requests.get(url, timeout=2).status_code < 500
        except requests.RequestException:
            return False

    def logs(self) -> str:
        out = []
        for name in ("mlflow.log", "moto.log", "pgrun/postgresql.log"):
            path = self.folder / name
            if path.exists():
                out.append(f"--- {name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)  # the group it leads: mlflow's workers too
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
        self.procs = []
        if self.pg_started:
            self._pg("pg_ctl", "-D", str(self.folder / "pgdata"), "-m", "fast", "-w", "stop")
            self.pg_started = False
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------- reading
    def s3_keys(self, prefix: str = "") -> list[str]:
        """The object keys in the artifact bucket (moto's S3 list, unsigned)."""
        import re

        body = requests.get(f"{self.s3_url}/mlflow", params={"list-type": "2", "prefix": prefix}, timeout=30).text
        return re.findall(r"<Key>([^<]*)</Key>", body)


if __name__ == "__main__":
    reason = missing()
    if reason:
        raise SystemExit(f"team server: {reason}")
    server = TeamServer().start()
    print(f"MLflow team server at {server.url} (PostgreSQL :{server.pg_port}, S3 {server.s3_url}); Ctrl-C stops it")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
