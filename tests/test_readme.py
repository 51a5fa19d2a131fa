"""The README's examples run as written: its ``python`` blocks in fresh interpreters and
its ``ipython`` blocks as the cells of one notebook in a real kernel, all in one folder."""

from __future__ import annotations

import re

import nbformat
import pytest
from conftest import ROOT, run_python
from nbclient import NotebookClient

import nbtrack

pytestmark = pytest.mark.e2e  # starts a kernel

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(kind: str) -> list[str]:
    return [code for lang, code in FENCE.findall((ROOT / "README.md").read_text()) if lang == kind]


def test_the_readme_has_examples_of_each_kind():
    assert len(blocks("python")) >= 2 and len(blocks("ipython")) >= 4 and len(blocks("bash")) >= 2


def test_the_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells = blocks("ipython")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert errors == []
    outputs = [o for c in nb.cells for o in c.outputs]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)  # panel, table
    printed = [run_python(code, cwd=tmp_path).stdout for code in blocks("python")]
    assert printed[0].split()[0] == "finished"
    notebook_runs = [r for r in nbtrack.Api(tmp_path).runs("tour") if r.config.get("epochs") == 50]
    assert sorted(r.config["lr"] for r in notebook_runs) == [0.5, 1.5]
    assert all(r.state == "finished" and len(r.rows(keys=["loss"])) == 50 for r in notebook_runs)
    assert len(printed[1].strip().splitlines()) == 3  # the script's run and the two notebook runs
