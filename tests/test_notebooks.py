"""Each notebook in notebooks/ is executed by a real kernel (nbclient); then its outputs and
the store it wrote are checked."""

import nbformat
import pytest
from conftest import ROOT, page_state
from nbclient import NotebookClient

import nbtrack

pytestmark = pytest.mark.e2e  # starts kernels, servers or a browser: deselect with -m "not e2e"

NOTEBOOKS = ROOT / "notebooks"


def execute(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb, nbtrack.Api(tmp_path / "runs")


def text(cell):
    parts = []
    for out in cell.outputs:
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_every_notebook_is_tested():
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == {
        "quickstart.ipynb",
        "resume_and_fork.ipynb",
        "media_and_tensorboard.ipynb",
        "frameworks.ipynb",
    }


def test_quickstart(tmp_path, monkeypatch):
    nb, api = execute("quickstart.ipynb", tmp_path, monkeypatch)
    runs = api.runs("quickstart")
    assert len(runs) == 2 and {r.state for r in runs} == {"finished"}
    first = runs[1]
    assert first.config == {"lr": 0.5, "epochs": 200, "hidden": 16, "seed": 0} and first.tags == ("first-try",)
    history = first.rows()
    assert len(history) == 200 and history[-1]["train/loss"] < history[0]["train/loss"]  # it learned
    assert first.summary["train/acc"] > 0.8
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "final loss" in text(code[3]) and "nbtrack run" in text(code[4])  # training output, status
    assert "finished" in text(code[5])
    table = text(code[7])
    assert "config.lr" in table and first.id in table and runs[0].id in table
    assert "best run:" in text(code[8])
    assert {r["_cell"] for r in history} == {code[3].execution_count}  # rows know their cell


def test_resume_and_fork(tmp_path, monkeypatch):
    nb, api = execute("resume_and_fork.ipynb", tmp_path, monkeypatch)
    base = api.run("lineage/base-run")
    assert base.state == "finished" and base.resumed and base.rewinds[0]["step"] == 59
    rows = base.rows()
    assert [r["_step"] for r in rows] == list(range(80))
    assert all(r["loss"] < 0.5 for r in rows[60:])  # the bad stretch was rewound away
    (fork,) = [r for r in api.runs("lineage") if r.id != "base-run"]
    assert (fork.parent, fork.branch_step, fork.config) == ("base-run", 40, {"lr": 0.05})
    assert [r["_step"] for r in fork.rows()] == list(range(60))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "resumed: True next step: 50" in text(code[2])


def test_saved_notebook_keeps_the_panel_state_and_fallbacks(tmp_path, monkeypatch):
    nb, api = execute("quickstart.ipynb", tmp_path, monkeypatch)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    panels = [m["state"] for m in state.values() if m["state"].get("_anywidget_id", "").endswith("RunPanel")]
    assert len(panels) == 2  # one per run shown
    first = next(p for p in panels if p["name"] == api.runs("quickstart")[1].name)
    assert first["state"] == "finished" and first["step"] == 200
    xs, ys = first["snapshot"]["train/loss"]
    assert xs[0] == 0 and xs[-1] == 199 and len(xs) <= first["max_points"]
    assert first["summary"]["train/loss"] == pytest.approx(ys[-1])
    # a finished run's display is refreshed at finish into a self-contained page: no
    # widget to lose on save; the page carries the same series, and SVG for viewers without scripts
    outputs = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "display_data"
    ]
    pages = [o["data"] for o in outputs if "nbtrack-page" in o["data"].get("text/html", "")]
    # the two runs' init cells and %track_status of the first
    assert len(pages) == 3 and all("application/vnd.jupyter.widget-view+json" not in b for b in pages)
    # the "kernel not connected" lines saved beside live panels are emptied at finish; the
    # runs table (a live widget) keeps its line, with the table as it was under it
    offline = [o["data"] for o in outputs if "nbtrack-offline" in o["data"].get("text/html", "")]
    assert len(offline) == 1 and "runs table" in offline[0]["text/html"]
    assert offline[0]["text/html"].count("<tr>") == 3
    assert all("finished" in b["text/plain"] for b in pages)
    saved = next(page_state(b["text/html"])["run"] for b in pages if first["name"] in b["text/html"])
    assert saved["state"] == "finished" and saved["snapshot"]["train/loss"][0] == pytest.approx(xs)
    assert saved["snapshot"]["train/loss"][1] == pytest.approx(ys, rel=1e-5)
    assert '<img class="nbt-svg"' in pages[0]["text/html"] and 'data-key="train/loss"' in pages[0]["text/html"]


def test_api_runs_in_a_cell_is_the_interactive_table(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    d = str(tmp_path / "runs")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"import nbtrack\nfor i in range(2):\n"
            f"    with nbtrack.init(project='t', dir={d!r}, settings={{'quiet': True}}) as r:\n"
            "        r.log({'loss': i})"
        ),
        nbformat.v4.new_code_cell(f"nbtrack.Api({d!r}).runs('t')"),
    ]
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    offline, table = (o["data"] for o in nb.cells[1].outputs)
    assert "nbtrack-offline" in offline["text/html"] and offline["text/html"].count("<tr>") == 3  # saved beside it
    data = table
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/html"].count("<tr>") == 3 and "config" not in data["text/plain"].split("\n")[0][:4]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    (view,) = [m["state"] for m in state.values() if m["state"].get("_anywidget_id", "").endswith("RunsView")]
    assert len(view["rows"]) == 2 and view["metrics"] == ["loss"]


def test_media_and_tensorboard(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    np = pytest.importorskip("numpy")
    nb, api = execute("media_and_tensorboard.ipynb", tmp_path, monkeypatch)
    (run,) = api.runs("media-demo")
    assert run.state == "finished" and run.name == "moons"
    # TensorBoard scalars arrived at their global steps, and the model learned
    losses = run.rows(keys=["train/loss"])
    assert [r["_step"] for r in losses] == list(range(60)) and losses[-1]["train/loss"] < losses[0]["train/loss"]
    assert [r["_step"] for r in run.rows(keys=["weights"])] == [0, 10, 20, 30, 40, 50]
    assert run.config["lr"] == 0.5 and run.config["features"] == 10  # add_hparams
    assert run.summary["hparam/final_acc"] > 0.8
    # nbtrack media: one image per 10 epochs, each a different picture of the boundary
    images = run.rows(keys=["boundary"])
    assert [r["_step"] for r in images] == [0, 10, 20, 30, 40, 50]
    assert len({r["boundary"]["sha256"] for r in images}) == 6
    last = images[-1]["boundary"].to_numpy()
    assert last.shape == (64, 64, 3) and set(np.unique(last[..., 1])) == {76}  # 0.3 of 255, floats scaled
    assert (last[..., 0].astype(int) + last[..., 2] == 255).all()  # red = 1 - p, blue = p
    assert len(np.unique(last.reshape(-1, 3), axis=0)) > 100  # a learned, graded boundary
    table = run.summary["mistakes"].table()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert f"{len(table['data'])} mistakes" in text(code[3])
    assert table["columns"] == ["index", "x", "y", "label", "p"]
    events = sorted((run.dir / "tensorboard").rglob("*tfevents*"))
    assert len(events) == 2  # the writer's and the hparams session's
    assert "boundary image: 50 (64, 64, 3) epoch 50" in text(code[5])
    # the panel was displayed, and once finished it is a page holding the newest image itself
    (shown,) = [
        o["data"]["text/html"] for o in code[1].outputs if "nbtrack-page" in o.get("data", {}).get("text/html", "")
    ]
    media = page_state(shown)["run"]["media"]
    assert [step for step, _ in media["boundary"]] == [0, 10, 20, 30, 40, 50]
    assert media["boundary"][-1][1][0]["src"].startswith("data:image/png;base64,")


def test_frameworks(tmp_path, monkeypatch):
    for module in ("sklearn", "torch", "optuna"):
        pytest.importorskip(module)
    nb, api = execute("frameworks.ipynb", tmp_path, monkeypatch)
    forest = api.runs("frameworks", filters={"display_name": "forest"})[0]
    logged = {k for r in forest.rows() for k in r if not k.startswith("_")}
    assert {"confusion_matrix", "roc", "pr", "feature_importances", "calibration_curve"} <= logged
    mlp = api.runs("frameworks", filters={"display_name": "mlp"})[0]
    assert [r["_step"] for r in mlp.rows() if "gradients/0.weight" in r] == [9, 19, 29, 39, 49]
    trials = api.runs("frameworks-sweep")
    assert len(trials) == 4 and len({r.group for r in trials}) == 1
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    (view,) = [m["state"] for m in state.values() if m["state"].get("_anywidget_id", "").endswith("RunsView")]
    assert len(view["rows"]) == 4 and view["initial_sort"] == {"key": "val_loss", "dir": 1}
    assert "lr" in view["params"] and set(view["params"]) <= {"hidden", "lr"}  # keys that vary (lr always does)
