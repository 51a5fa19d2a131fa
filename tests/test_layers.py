"""The core never imports the notebook stack, and lower layers never import higher ones."""

import json
import textwrap

import pytest
from conftest import run_python

NOTEBOOK_STACK = ("IPython", "ipywidgets", "anywidget", "traitlets", "ipykernel", "comm")


def loaded_after(statement: str) -> set[str]:
    code = "import json, sys\n" + textwrap.dedent(statement) + "\nprint(json.dumps(sorted(sys.modules)))\n"
    out = run_python(code)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_nbtrack_loads_no_notebook_stack():
    modules = loaded_after("import nbtrack")
    assert "nbtrack" in modules
    assert not [m for m in modules if m.split(".")[0] in NOTEBOOK_STACK]
    assert "psutil" not in modules and "pynvml" not in modules  # loaded by the sampler's thread
    assert not [m for m in modules if m.split(".")[0] in ("numpy", "PIL", "torch", "tensorboardX", "gymnasium")]


def test_a_script_run_loads_no_notebook_stack(tmp_path):
    modules = loaded_after(f"""
import nbtrack
with nbtrack.init(project="p", dir={str(tmp_path)!r}) as run:
    run.log({{"a": 1}})
nbtrack.Api({str(tmp_path)!r}).runs()
""")
    assert not [m for m in modules if m.split(".")[0] in NOTEBOOK_STACK]
    assert "requests" not in modules and "yaml" not in modules  # loaded only when used


LAYERS = {
    # module: nbtrack modules it must not pull in
    "nbtrack.errors": ["nbtrack.settings", "nbtrack.store", "nbtrack.manager", "nbtrack.api"],
    "nbtrack.diagnostics": [
        "nbtrack.settings",
        "nbtrack.store",
        "nbtrack.active_run",
        "nbtrack.manager",
        "nbtrack.api",
        "nbtrack.workers",
    ],
    "nbtrack.workers": ["nbtrack.settings", "nbtrack.store", "nbtrack.active_run", "nbtrack.manager", "nbtrack.api"],
    "nbtrack.rows": ["nbtrack.store", "nbtrack.active_run", "nbtrack.manager", "nbtrack.api", "nbtrack.jupyter"],
    "nbtrack.starts": ["nbtrack.active_run", "nbtrack.manager", "nbtrack.api", "nbtrack.jupyter", "nbtrack.sync"],
    "nbtrack.settings": ["nbtrack.store", "nbtrack.manager", "nbtrack.active_run", "nbtrack.api"],
    "nbtrack.store": [
        "nbtrack.active_run",
        "nbtrack.manager",
        "nbtrack.hyperparams",
        "nbtrack.api",
        "nbtrack.environment",
        "nbtrack.jupyter",
        "nbtrack.starts",
        "nbtrack.rows",
        "nbtrack.sync",
    ],
    "nbtrack.active_run": ["nbtrack.manager", "nbtrack.api", "nbtrack.jupyter"],
    "nbtrack.manager": ["nbtrack.api", "nbtrack.jupyter", "nbtrack.cli"],
    "nbtrack.sync": [
        "nbtrack.active_run",
        "nbtrack.manager",
        "nbtrack.hyperparams",
        "nbtrack.api",
        "nbtrack.jupyter",
        "nbtrack.system",
    ],
    "nbtrack.system": ["nbtrack.active_run", "nbtrack.manager", "nbtrack.api", "nbtrack.jupyter"],
    "nbtrack.media": [
        "nbtrack.store",
        "nbtrack.active_run",
        "nbtrack.manager",
        "nbtrack.api",
        "nbtrack.jupyter",
        "numpy",
        "PIL",
    ],
    "nbtrack.records": ["nbtrack.store", "nbtrack.active_run", "nbtrack.manager", "nbtrack.api"],
    "nbtrack.page": ["nbtrack.active_run", "nbtrack.manager", "nbtrack.api", "nbtrack.jupyter", *NOTEBOOK_STACK],
    "nbtrack.integrations.tensorboard": [
        "nbtrack.active_run",
        "nbtrack.manager",
        "nbtrack.api",
        "nbtrack.jupyter",
        "torch",
        "tensorboardX",
    ],
    "nbtrack.integrations.gym": [
        "nbtrack.active_run",
        "nbtrack.manager",
        "nbtrack.api",
        "nbtrack.jupyter",
        "gymnasium",
    ],
}


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_lower_layers_do_not_import_higher_ones(module):
    # importing a submodule runs nbtrack/__init__.py, so check from a bare package stub
    modules = loaded_after(f"""
import importlib.util, sys, types, pathlib
spec = importlib.util.find_spec("nbtrack")
pkg = types.ModuleType("nbtrack"); pkg.__path__ = list(spec.submodule_search_locations)
sys.modules["nbtrack"] = pkg
importlib.import_module({module!r})
""")
    assert module in modules
    assert not [m for m in LAYERS[module] if m in modules]


def test_import_nbtrack_leaves_what_init_does_not_need_unloaded():
    """``import nbtrack`` stays quick (bench/bench.py measures it) by loading media,
    artifacts, sweeps, the Api's records and the environment's helpers when first used."""
    modules = loaded_after("import nbtrack")
    heavy = {"dataclasses", "inspect", "platform", "socket", "random", "statistics", "shutil", "tempfile",
             "importlib.abc", "configparser", "wave"}  # fmt: skip
    assert not heavy & modules, heavy & modules
    assert not {"nbtrack.sweeps", "nbtrack.run_record", "nbtrack.login", "nbtrack.compat"} & modules
    loaded = loaded_after("import nbtrack\nnbtrack.Image, nbtrack.sweep, nbtrack.Artifact, nbtrack.RunRecord")
    assert {"nbtrack.media", "nbtrack.sweeps", "nbtrack.artifacts", "nbtrack.run_record"} <= loaded
