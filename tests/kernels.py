"""A real IPython kernel for tests, driven with jupyter_client."""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path

from conftest import ROOT
from jupyter_client.manager import KernelManager


class Kernel:
    """Start a python3 kernel in ``cwd``; ``run(code)`` returns its output or raises."""

    def __init__(self, cwd: Path, env: dict | None = None) -> None:
        kernel_env = {k: v for k, v in os.environ.items() if not k.startswith("NBTRACK_")}
        kernel_env.update({"PYTHONPATH": str(ROOT), "NBTRACK_QUIET": "1"})
        kernel_env.update(env or {})
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd), env=kernel_env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    @classmethod
    def attach(cls, connection_file: Path) -> Kernel:
        """A client of a kernel someone else started (a Jupyter server)."""
        from jupyter_client import BlockingKernelClient

        self = cls.__new__(cls)
        self.km = None
        self.kc = BlockingKernelClient(connection_file=str(connection_file))
        self.kc.load_connection_file()
        self.kc.start_channels()
        # A kernel a server started may not be up yet (its heartbeat silent, which makes
        # wait_for_ready() give up at once).  A kernel_info request waits in the client's
        # queue until the kernel binds its socket, so its reply says the kernel is up; and
        # the kernel's iopub status for a request says this client's subscription is live
        # (ZeroMQ drops what is published before a subscriber joins): both are waited for.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            msg_id = self.kc.kernel_info()
            while self.kc.get_shell_msg(timeout=180)["parent_header"].get("msg_id") != msg_id:
                pass
            try:
                while self.kc.get_iopub_msg(timeout=1)["parent_header"].get("msg_id") != msg_id:
                    pass
                return self  # execute() reads only the iopub messages of its own requests
            except queue.Empty:
                continue  # published before the subscription took: ask again
        raise TimeoutError(f"the kernel of {connection_file} did not answer on iopub")

    def execute(self, code: str, timeout: float = 60) -> tuple[str, dict | None]:
        """Run ``code``; return (stdout + stderr text, error content or None)."""
        msg_id = self.kc.execute(code)
        out: list[str] = []
        error = None
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"kernel did not finish {code!r}; output so far: {''.join(out)}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                error = content
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out), error

    def run(self, code: str, timeout: float = 60) -> str:
        out, error = self.execute(code, timeout)
        if error is not None:
            raise AssertionError(f"{error['ename']}: {error['evalue']}\n{out}")
        return out

    def stop(self) -> None:
        self.kc.stop_channels()
        if self.km is not None and self.km.is_alive():
            self.km.shutdown_kernel(now=False)
