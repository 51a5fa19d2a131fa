"""The magics in a real in-process IPython shell: every flag, every error path, %reload_ext."""

import pytest
from conftest import read_run
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

import nbtrack
from nbtrack.active_run import Run
from nbtrack.jupyter import extension


@pytest.fixture
def shell(store_dir):
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.TrackMagics.default_dir = str(store_dir)
    sh = InteractiveShell.instance(config=config)
    sh.run_cell("%load_ext nbtrack", store_history=True)
    yield sh
    from nbtrack.manager import manager

    manager.finish_all()
    extension.unload(sh)
    InteractiveShell.clear_instance()
    Run.cell = None


def run(shell, code):
    """Run a cell; return (captured, result)."""
    with capture_output() as cap:
        result = shell.run_cell(code, store_history=True)
    return cap, result


def ok(shell, code):
    cap, result = run(shell, code)
    assert result.success, (cap.stdout, cap.stderr, result.error_in_exec, result.error_before_exec)
    return cap


def usage_error(shell, code):
    cap, result = run(shell, code)
    assert not result.success
    text = cap.stdout + cap.stderr
    assert "UsageError" in text and "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # one line, no traceback
    return lines[0]


def test_every_init_flag(shell, store_dir, tmp_path):
    ok(shell, "src = %track_init -p flags --id source1 --reinit create_new")
    ok(shell, "src.log({'x': 1}); src.log({'x': 2}); src.finish()")
    ok(
        shell,
        "run = %track_init -p flags -e team -n my-run --id flag1 --notes 'two words' --tags a b c "
        "-g grp --job-type train --mode offline --reinit finish_previous --resume allow "
        "--no-save-code --no-allow-val-change --config lr=0.01 layers=[64,32] name=resnet "
        "optim.beta=0.9 --config-exclude name --anonymous must",
    )
    r = shell.user_ns["run"]
    assert isinstance(r, Run)
    assert (r.project, r.entity, r.name, r.id, r.notes, r.tags, r.group, r.job_type, r.mode) == (
        "flags",
        "team",
        "my-run",
        "flag1",
        "two words",
        ("a", "b", "c"),
        "grp",
        "train",
        "offline",
    )
    assert dict(r.config.items()) == {"lr": 0.01, "layers": [64, 32], "optim": {"beta": 0.9}}
    assert type(r.config.lr) is float and r.dir.startswith(str(store_dir))
    with pytest.raises(nbtrack.ConfigError):  # --no-allow-val-change, even in a shell
        r.config.lr = 0.5
    ok(shell, "%track_finish")
    record = read_run(store_dir, "flags", "flag1")
    assert record.metadata["anonymous"] == "must" and record.metadata["save_code"] is False

    ok(shell, "r2 = %track_init -p flags --config-include lr --config lr=1 batch=2 --allow-val-change --save-code")
    r2 = shell.user_ns["r2"]
    assert dict(r2.config.items()) == {"lr": 1} and r2._save_code is True
    r2.config.lr = 3
    ok(shell, "%track_finish")

    ok(shell, f"r3 = %track_init -p flags --dir {tmp_path / 'elsewhere'}")
    assert shell.user_ns["r3"].dir.startswith(str(tmp_path / "elsewhere" / "nbtrack"))
    ok(shell, "%track_finish")


def test_fork_and_rewind_flags(shell, store_dir):
    ok(shell, "s = %track_init -p fr --id base")
    ok(shell, "for i in range(5): s.log({'i': i})")
    ok(shell, "f = %track_init -p fr --fork-from base?_step=2")
    assert shell.user_ns["s"].state == "finished" and shell.user_ns["f"].step == 3
    ok(shell, "w = %track_init -p fr --resume-from base?_step=1")
    assert shell.user_ns["w"].id == "base" and shell.user_ns["w"].step == 2
    ok(shell, "%track_finish")


def test_integration_and_force_flags(shell):
    from nbtrack.integrations import gym, tensorboard

    ok(shell, "t = %track_init -p integ --sync-tensorboard --monitor-gym")
    meta_flags = shell.user_ns["t"]
    assert meta_flags.state == "running"
    assert tensorboard.patcher.target() is meta_flags and gym.patcher.target() is meta_flags
    line = usage_error(shell, "%track_init -p integ --mode online --force")
    assert "needs a tracking server" in line


def test_config_from_a_yaml_file(shell, tmp_path):
    path = tmp_path / "hp.yaml"
    path.write_text("lr:\n  value: 0.3\n  desc: learning rate\nbatch:\n  value: 8\n")
    ok(shell, f"y = %track_init -p yaml --config {path}")
    assert dict(shell.user_ns["y"].config.items()) == {"lr": 0.3, "batch": 8}


def test_returns_the_run_and_displays_it_once(shell):
    cap = ok(shell, "run = %track_init -p disp")
    assert sum("nbtrack run" in str(o.data.get("text/plain", "")) for o in cap.outputs) == 1
    assert "Out[" not in cap.stdout
    html = cap.outputs[0].data["text/html"]
    assert 'data-state="running"' in html and shell.user_ns["run"].id in html
    # as the cell's value: shown once, and the magic returns nothing to show again
    first = shell.user_ns["run"]
    cap = ok(shell, "%track_init -p disp")
    new = nbtrack.run
    assert new is not first
    assert sum(new.id in str(o.data.get("text/plain", "")) for o in cap.outputs) == 1
    assert "Out[" not in cap.stdout
    # the finished run's display was refreshed to its final state
    assert any(
        first.id in str(o.data.get("text/plain", "")) and "finished" in str(o.data.get("text/plain", ""))
        for o in cap.outputs
    )
    cap = ok(shell, "%track_status")
    assert sum("nbtrack run" in str(o.data.get("text/plain", "")) for o in cap.outputs) == 1


def test_user_text_is_escaped_in_html(shell):
    ok(shell, "x = %track_init -p esc -n '<img src=x onerror=alert(1)>' --tags '<b>t</b>'")
    html = shell.display_formatter.format(shell.user_ns["x"])[0]["text/html"]
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>t</b>" not in html


@pytest.mark.parametrize(
    "line, expected",
    [
        ("%track_init --bogus", "unrecognized arguments: --bogus"),
        ("%track_init --mode sideways", "argument --mode: invalid choice: 'sideways'"),
        ("%track_init --reinit sometimes", "argument --reinit: invalid choice"),
        ("%track_init --resume sometimes", "argument --resume: invalid choice"),
        ("%track_init --anonymous maybe", "argument --anonymous: invalid choice"),
        ("%track_init --id a/b", "id='a/b' contains '/'"),
        ("%track_init -p a:b", "project='a:b' contains ':'"),
        ("%track_init --config lr", "'lr' is neither an existing YAML file nor key=value pairs"),
        ("%track_init --config missing.yaml", "no YAML file at 'missing.yaml'"),
        ("%track_init --config lr=1 broken", "--config: expected key=value pairs"),
        ("%track_init --tags " + "x" * 65, "each tag must be 1-64 characters"),
        ("%track_init --config-include a --config-exclude b", "cannot be used together"),
        ("%track_init --resume-from nope", "resume_from='nope' is not of the form"),
        ("%track_init --notes 'unbalanced", "cannot split the arguments"),
        ("%track_finish", "%track_finish: no active run"),
        ("%track_finish --exit-code x", "argument --exit-code: invalid int value"),
        ("%track_log a=1", "call nbtrack.init() first"),
        ("%track_config", "no active run; start one with %track_init"),
        ("%track_status", "no active run"),
        ("%track_runs --limit 0", "--limit: expected a positive number"),
    ],
)
def test_bad_input_is_one_usage_error_line(shell, line, expected):
    message = usage_error(shell, line)
    assert expected in message, message


def test_usage_errors_with_an_active_run(shell):
    ok(shell, "r = %track_init -p errs --no-allow-val-change --config lr=1")
    assert "track_log: expected key=value pairs" in usage_error(shell, "%track_log loss")
    assert "refusing to change it" in usage_error(shell, "%track_config lr=2")
    assert "is given a value and nested keys" in usage_error(shell, "%track_config a.b=1 a=2")
    assert "already holds a value" in usage_error(shell, "%track_config a=2 a.b=1")


def test_finish_log_config_status(shell, store_dir):
    ok(shell, "r = %track_init -p ops --config lr=0.1")
    ok(shell, "%track_log loss=0.25 note=fine")
    cap = ok(shell, "%track_config")
    assert "{'lr': 0.1}" in cap.stdout
    ok(shell, "%track_config lr=0.2 model.depth=3")
    r = shell.user_ns["r"]
    assert dict(r.config.items()) == {"lr": 0.2, "model": {"depth": 3}}
    cap = ok(shell, "%track_finish --exit-code 3")
    assert "failed" in cap.stdout
    record = read_run(store_dir, "ops", r.id)
    assert record.state == "failed" and record.exit_code == 3
    assert record.rows()[0]["loss"] == 0.25 and record.rows()[0]["note"] == "fine"


def test_track_runs_table(shell, store_dir):
    for lr in (0.1, 0.2):
        ok(shell, f"r = %track_init -p table --config lr={lr}")
        ok(shell, f"r.log({{'loss': {lr / 2}}})")
        ok(shell, "%track_finish")
    cap = ok(shell, "%track_runs -p table --limit 5")
    assert "config.lr" in cap.stdout and "loss" in cap.stdout and cap.stdout.count("finished") == 2
    table = shell.user_ns["_"]
    html = table._repr_html_()
    assert html.count("<tr>") == 3 and 'data-col="config.lr">0.2<' in html
    assert [row["config.lr"] for row in table.rows()] == ["0.2", "0.1"]  # newest first


def test_track_runs_with_nothing_to_show_says_where_it_looked(shell, store_dir, tmp_path):
    other = tmp_path / "elsewhere"
    ok(shell, f"r = %track_init -p made-elsewhere --dir {other}")
    ok(shell, "%track_finish")
    made = shell.user_ns["r"].id
    cap = ok(shell, "%track_runs -p made-elsewhere")  # looks in the default store, not --dir's
    assert "Out[" not in cap.stdout  # no empty, header-only table
    assert f"no runs of project 'made-elsewhere' in the store under {store_dir}" in cap.stdout
    assert "pass --dir D" in cap.stdout
    ok(shell, "r = %track_init -p here")
    ok(shell, "%track_finish")
    cap = ok(shell, "%track_runs -p missing")
    assert "projects there: here" in cap.stdout
    cap = ok(shell, f"%track_runs -p made-elsewhere --dir {other}")
    assert made in cap.stdout and "finished" in cap.stdout  # with --dir, the table


def test_cell_magic_success_and_failure(shell, store_dir):
    ok(shell, "import nbtrack")
    ok(shell, "%%track -p cells -n good\nnbtrack.log({'a': 1})\ncell_value = 42")
    assert shell.user_ns["cell_value"] == 42
    good = nbtrack.Api(store_dir).runs("cells")[0]
    assert (good.name, good.state, len(good.rows())) == ("good", "finished", 1)
    cap, result = run(shell, "%%track -p cells -n bad\nnbtrack.log({'a': 1})\nraise ValueError('boom')")
    assert not result.success and "ValueError" in cap.stdout + cap.stderr  # the exception still shows
    bad = nbtrack.Api(store_dir).runs("cells")[0]
    assert (bad.name, bad.state, bad.exit_code) == ("bad", "failed", 1)


def test_reload_ext_leaves_one_of_each(shell):
    def ours(event):
        return [
            cb
            for cb in shell.events.callbacks[event]
            if getattr(cb, "__self__", None).__class__.__name__ == "NotebookLayer"
        ]

    for _ in range(3):
        ok(shell, "%reload_ext nbtrack")
    assert len(ours("pre_run_cell")) == 1 and len(ours("post_run_cell")) == 1
    assert "track_init" in shell.magics_manager.magics["line"]
    from nbtrack import events

    assert len(events.bus.listeners(events.RUN_STARTED)) == 1
    ok(shell, "%unload_ext nbtrack")
    extension.unload(shell)  # unloading twice is harmless
    assert ours("pre_run_cell") == [] and "track_init" not in shell.magics_manager.magics["line"]
    assert events.bus.listeners(events.RUN_STARTED) == []
    ok(shell, "%load_ext nbtrack")
    assert len(ours("pre_run_cell")) == 1


def test_hooks_take_anything_and_never_raise(shell):
    layer = extension.layer_for(shell)
    layer.pre_run_cell()
    layer.pre_run_cell(None, 1, x=2)
    layer.post_run_cell(object(), extra=True)
    layer.shell = None  # a broken layer still does not raise into the cell
    layer.pre_run_cell(object())
    layer.shell = shell


def test_rows_record_the_cell_that_logged_them(shell, store_dir):
    ok(shell, "r = %track_init -p cellno")
    ok(shell, "r.log({'a': 1})")
    first = shell.execution_count - 1
    ok(shell, "r.log({'a': 2}); r.log({'a': 3})")
    ok(shell, "%track_finish")
    rows = read_run(store_dir, "cellno", shell.user_ns["r"].id).rows()
    assert [row["_cell"] for row in rows] == [first, first + 1, first + 1]


def test_defaults_from_ipython_config(store_dir):
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.TrackMagics.default_project = "from-config"
    config.TrackMagics.default_dir = str(store_dir)
    sh = InteractiveShell.instance(config=config)
    try:
        sh.run_cell("%load_ext nbtrack")
        sh.run_cell("a = %track_init")
        sh.run_cell("b = %track_init -p explicit")
        assert sh.user_ns["a"].project == "from-config" and sh.user_ns["b"].project == "explicit"
        assert sh.user_ns["a"].state == "finished"  # finish_previous is the default in a shell
    finally:
        from nbtrack.manager import manager

        manager.finish_all()
        extension.unload(sh)
        InteractiveShell.clear_instance()


def test_help_is_real(shell):
    doc = shell.find_line_magic("track_init").__doc__
    assert "--resume-from" in doc and "--config" in doc and "Start a run" in doc


def _saved_notebook(shell, store_dir, project):
    ok(shell, f"r = %track_init -p {project} --save-code")
    ok(shell, "%track_finish")
    return read_run(store_dir, project, shell.user_ns["r"].id).metadata["code"]["notebook"]


def test_notebook_file_from_vscode(shell, store_dir, tmp_path):
    notebook = tmp_path / "vsc.ipynb"
    notebook.write_text("{}")
    shell.user_ns["__vsc_ipynb_file__"] = str(notebook)
    saved = _saved_notebook(shell, store_dir, "vsc")
    assert saved["source"] == "__vsc_ipynb_file__" and saved["file"] == "code/vsc.ipynb"


def test_notebook_file_from_jpy_session_name(shell, store_dir, tmp_path, monkeypatch):
    notebook = tmp_path / "jpy.ipynb"
    notebook.write_text("{}")
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    saved = _saved_notebook(shell, store_dir, "jpy")
    assert saved["source"] == "JPY_SESSION_NAME" and saved["path"] == str(notebook)


def test_a_yaml_bomb_in_track_init_config_is_one_usage_error_line(shell):
    """A --config value whose YAML aliases stand for 9 ** 9 values is refused at once
    (it ran for minutes before)."""
    levels = ["&b0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [f"&b{n} [{', '.join([f'*b{n - 1}'] * 9)}]" for n in range(1, 9)]
    line = usage_error(shell, f"%track_init -p p --config 'deep=[{', '.join(levels)}]'")
    assert "--config deep" in line and "expands to more than 1,000,000 values" in line
    assert nbtrack.run is None


def test_load_ext_puts_nbtrack_in_the_namespace(shell):
    assert shell.user_ns["nbtrack"] is nbtrack  # the README's notebook example needs no import
    ok(shell, "run = %track_init -p ns\nnbtrack.log({'a': 1})\n%track_finish")
    shell.user_ns["nbtrack"] = "mine"
    ok(shell, "%reload_ext nbtrack")
    assert shell.user_ns["nbtrack"] == "mine"  # a name the user bound is left alone


def test_displays_are_kept_only_while_a_run_saves_code(shell):
    layer = extension.layer_for(shell)

    def cell(code):  # not ok(): capture_output() would swap the display publisher out
        assert shell.run_cell(code, store_history=True).success

    cell("from IPython.display import display, HTML\nfor i in range(200): display(HTML('<b>x</b>' * 100))")
    assert layer.displays == {}  # no run saves code: nothing kept (it grew for ever before)
    cell("run = %track_init -p keep --save-code")
    cell("display(HTML('<i>kept</i>'))")
    assert any("<i>kept</i>" in str(d) for shown in layer.displays.values() for d in shown)
    cell("%track_finish")
    assert layer.displays == {}
    cell("display(HTML('<b>after</b>'))")
    assert layer.displays == {}


def test_run_display_shows_the_run_in_the_cell(shell):
    ok(shell, "run = %track_init -p shown")
    cap = ok(shell, "shown = run.display(height=300)")
    assert shell.user_ns["shown"] is True
    run_id = shell.user_ns["run"].id
    assert sum(run_id in str(o.data.get("text/plain", "")) for o in cap.outputs) == 1
    cap = ok(shell, "hidden = run.display(hidden=True)")
    assert shell.user_ns["hidden"] is False and not cap.outputs
