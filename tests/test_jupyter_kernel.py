"""Notebook behaviour in real IPython kernels (jupyter_client)."""

import json
import os
import signal
import time

import nbformat
import pytest
from conftest import read_run
from kernels import Kernel

pytestmark = pytest.mark.e2e  # starts kernels, servers or a browser: deselect with -m "not e2e"


def last_line(text):
    return text.strip().splitlines()[-1]


def test_kernel_defaults_and_rerunning_the_init_cell(kernel, store_dir):
    cell = f"%load_ext nbtrack\nrun = %track_init -p k --dir {store_dir} --config lr=0.1"
    kernel.run(cell)
    first = last_line(kernel.run("print(run.id)"))
    kernel.run("run.config.lr = 0.2")  # allow_val_change is True in a kernel
    kernel.run(cell)  # re-running the init cell
    second = last_line(kernel.run("print(run.id)"))
    assert first != second
    assert read_run(store_dir, "k", first).state == "finished"
    assert read_run(store_dir, "k", first).config == {"lr": 0.2}
    assert read_run(store_dir, "k", second).state == "running"


def test_plain_init_in_a_kernel_loads_the_notebook_layer(tmp_path, store_dir):
    kernel = Kernel(tmp_path, env={"NBTRACK_QUIET": "0"})
    request = kernel
    out = kernel.run(
        f"import nbtrack\nrun = nbtrack.init(project='plain', dir={str(store_dir)!r})\nrun.log({{'a': 1}})"
    )
    assert "nbtrack run" in out  # displayed without %load_ext
    kernel.run("run.log({'a': 2})\nrun.finish()")
    rows = read_run(store_dir, "plain", last_line(kernel.run("print(run.id)"))).rows()
    request.stop()
    assert [r["_cell"] for r in rows] == [1, 2]  # each row knows its cell


def test_an_interrupted_cell_leaves_the_run_running(kernel, store_dir):
    kernel.run(f"import nbtrack, time\nrun = nbtrack.init(project='intr', dir={str(store_dir)!r})")
    msg_id = kernel.kc.execute("while True:\n    run.log({'x': 1})\n    time.sleep(0.001)")
    time.sleep(1.5)
    kernel.km.interrupt_kernel()
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "error":
            assert msg["content"]["ename"] == "KeyboardInterrupt"
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            break
    out = kernel.run("before = run.step\nrun.log({'after': 1})\nprint(run.state, run.step == before + 1, before > 10)")
    assert last_line(out) == "running True True"
    kernel.run("run.finish()")
    run_id = last_line(kernel.run("print(run.id)"))
    record = read_run(store_dir, "intr", run_id)
    assert record.state == "finished" and record.rows()[-1]["after"] == 1


def test_session_history_notebook(kernel, store_dir):
    kernel.run("x = 20")  # before the run: saved as code, without outputs
    kernel.run(f"%load_ext nbtrack\nrun = %track_init -p hist --dir {store_dir} --save-code")
    kernel.run("print('hello from cell 3')")
    kernel.run("from IPython.display import display, Markdown\ndisplay(Markdown('**shown**'))\nx * 2 + 2")
    _out, error = kernel.execute("1 / 0")
    assert error is not None
    kernel.run("%track_finish")
    run_id = last_line(kernel.run("print(run.id)"))
    record = read_run(store_dir, "hist", run_id)
    code = store_dir / "nbtrack" / record.folder / "code"
    nb = nbformat.read(code / "_session_history.ipynb", as_version=4)
    nbformat.validate(nb)
    cells = nb.cells
    assert [c.execution_count for c in cells] == [1, 2, 3, 4, 5, 6]
    assert cells[0].source == "x = 20" and cells[0].outputs == []
    assert cells[2].outputs[0]["text"] == "hello from cell 3\n"
    kinds = [o["output_type"] for o in cells[3].outputs]
    assert kinds == ["display_data", "execute_result"]
    assert cells[3].outputs[1]["data"]["text/plain"] == "42"
    assert cells[4].outputs[-1]["ename"] == "ZeroDivisionError"
    script = (code / "_session_history.py").read_text()
    assert script.index("x = 20") < script.index("hello from cell 3") < script.index("1 / 0")
    assert record.metadata["code"]["session_history"] == "code/_session_history.ipynb"
    assert record.metadata["code"]["notebook"] is None  # no notebook file in a bare kernel


def test_notebook_file_from_the_environment(tmp_path, store_dir):
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    k = Kernel(tmp_path, env={"NBTRACK_NOTEBOOK_NAME": str(notebook)})
    try:
        k.run(f"%load_ext nbtrack\nrun = %track_init -p nbfile --dir {store_dir} --save-code")
        k.run("%track_finish")
        run_id = last_line(k.run("print(run.id)"))
    finally:
        k.stop()
    record = read_run(store_dir, "nbfile", run_id)
    saved = record.metadata["code"]["notebook"]
    assert saved["source"] == "NBTRACK_NOTEBOOK_NAME" and saved["file"] == "code/analysis.ipynb"
    assert (store_dir / "nbtrack" / record.folder / "code" / "analysis.ipynb").read_text() == notebook.read_text()


def test_missing_notebook_file_is_said_once(kernel, store_dir):
    outs = []
    for _ in range(2):
        kernel.run(f"%load_ext nbtrack\nrun = %track_init -p hint --dir {store_dir} --save-code")
        outs.append(kernel.run("%track_finish"))
    text = "".join(outs)
    assert text.count("set NBTRACK_NOTEBOOK_NAME=path/to/notebook.ipynb") == 1


def test_kernel_shutdown_finishes_open_runs(tmp_path, store_dir):
    k = Kernel(tmp_path)
    k.run(
        f"import nbtrack\nrun = nbtrack.init(project='shut', dir={str(store_dir)!r}, save_code=True)\n"
        "run.log({'a': 1})"
    )
    run_id = last_line(k.run("print(run.id)"))
    k.stop()  # a clean shutdown request
    deadline = time.time() + 20
    while time.time() < deadline and read_run(store_dir, "shut", run_id).state == "running":
        time.sleep(0.2)
    record = read_run(store_dir, "shut", run_id)
    assert record.state == "finished" and len(record.rows()) == 1
    assert record.metadata["code"]["session_history"]  # saved at kernel exit too


def test_a_killed_kernel_leaves_a_crashed_run_that_auto_resume_continues(tmp_path, store_dir):
    k = Kernel(tmp_path)
    k.run(
        f"import nbtrack\nrun = nbtrack.init(project='dead', dir={str(store_dir)!r}, resume='auto')\n"
        "for i in range(100): run.log({'i': i})\nimport time; time.sleep(1)"
    )
    run_id = last_line(k.run("print(run.id)"))
    os.kill(k.km.provisioner.pid, signal.SIGKILL)  # the kernel dies: no clean-up runs
    k.kc.stop_channels()
    deadline = time.time() + 20
    while time.time() < deadline and read_run(store_dir, "dead", run_id).state != "crashed":
        time.sleep(0.2)
    assert read_run(store_dir, "dead", run_id).state == "crashed"
    k2 = Kernel(tmp_path)
    try:
        out = k2.run(
            f"import nbtrack\nrun = nbtrack.init(project='dead', dir={str(store_dir)!r}, resume='auto')\n"
            "print(run.id, run.resumed, run.step)\nrun.log({'i': 100})\nrun.finish()"
        )
    finally:
        k2.stop()
    assert last_line(out) == f"{run_id} True 100"
    rows = read_run(store_dir, "dead", run_id).rows()
    assert [r["i"] for r in rows] == list(range(101))
