"""Input that could hang, crash or leak: refused at once with a UsageError naming it,
before anything is written; and secrets never stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import read_run, run_python

import nbtrack


def yaml_bomb(levels: int = 9, width: int = 9) -> str:
    """A few hundred bytes of YAML whose aliases stand for width ** levels values."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"a: &a [{','.join(['lol'] * width)}]"]
    for n in range(1, levels):
        lines.append(f"{names[n]}: &{names[n]} [{','.join([f'*{names[n - 1]}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_bomb_is_refused_at_once_wherever_it_comes_from(tmp_path):
    bomb = yaml_bomb()
    assert len(bomb) < 400  # 9 ** 9 = 387,420,489 values
    (tmp_path / "bomb.yaml").write_text(bomb)
    cwd = tmp_path / "with-defaults"
    cwd.mkdir()
    (cwd / "config-defaults.yaml").write_text(bomb)
    # in a child with a timeout: before the fix this ran for minutes
    out = run_python(
        f"""
        import nbtrack
        for source, where in ((r"{tmp_path / "bomb.yaml"}", "."), (None, r"{cwd}")):
            import os
            os.chdir(where)
            try:
                nbtrack.init(project="p", dir=r"{tmp_path / "store"}", config=source)
                print("accepted")
            except nbtrack.UsageError as exc:
                print("refused:", exc)
    """,
        timeout=60,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("refused: config: ") and "bomb.yaml" in lines[0]
    assert lines[1].startswith("refused: config-defaults.yaml: ")
    for line in lines:
        assert "expands to more than 1,000,000 values" in line and "YAML aliases" in line


@pytest.mark.parametrize(
    "argument, value, message",
    [
        ("project", "a\x00b", r"project='a\\x00b' contains the control character '\\x00'"),
        ("project", "..", r"project='\.\.' is '\.\.'"),
        ("project", ".", r"project='\.' is '\.'"),
        ("id", "run\x00", r"id='run\\x00' contains the control character"),
        ("id", "caf\udce9", r"id='caf\\udce9' contains the lone surrogate"),
        ("name", "tab\there", r"name='tab\\there' contains the control character '\\t'"),
        ("group", "g\x1b[31m", r"group='g\\x1b\[31m' contains the control character"),
        ("tags", ["ok", "\udcff"], r"tags: the tag '\\udcff' contains the lone surrogate"),
    ],
)
def test_names_that_cannot_be_stored_are_refused_before_anything_is_written(store_dir, argument, value, message):
    with pytest.raises(nbtrack.UsageError, match=message):
        nbtrack.init(dir=store_dir, **{"project": "p", argument: value})
    assert not (store_dir / "nbtrack").exists()  # no store made, no run row left "running"
    assert nbtrack.run is None


def test_cyclic_and_too_deep_values_name_their_key(store_dir):
    loop: dict = {"a": 1}
    loop["self"] = loop
    deep: dict = {}
    level = deep
    for _ in range(150):
        level["next"] = {}
        level = level["next"]
    shared = [1]
    for _ in range(30):
        shared = [shared, shared]  # 2**30 values from 31 lists
    with pytest.raises(nbtrack.UsageError, match=r"config: the value of 'model' contains itself \(a cycle\)"):
        nbtrack.init(project="p", dir=store_dir, config={"model": loop})
    with pytest.raises(nbtrack.UsageError, match=r"config: the value of 'net' is nested more than 100 levels deep"):
        nbtrack.init(project="p", dir=store_dir, config={"net": deep})
    with pytest.raises(nbtrack.UsageError, match=r"config: the value of 'grid' expands to more than 1,000,000"):
        nbtrack.init(project="p", dir=store_dir, config={"grid": shared})
    run = nbtrack.init(project="p", dir=store_dir)
    with pytest.raises(nbtrack.UsageError, match=r"config: the value of 'later' contains itself"):
        run.config.later = loop
    with pytest.raises(nbtrack.UsageError, match=r"log: the value of 'm/self' contains itself.*nothing of this call"):
        run.log({"ok": 1, "m": loop})
    with pytest.raises(nbtrack.UsageError, match=r"log: the value of 'deep(/next)+' nests dicts more than 100"):
        run.log({"deep": deep})
    run.log({"fine": 1})
    run.finish()
    rows = read_run(store_dir, "p", run.id).rows()
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows] == [{"fine": 1}]


@pytest.mark.parametrize(
    "variable, value",
    [
        ("NBTRACK_FLUSH_INTERVAL", "inf"),
        ("NBTRACK_FINISH_TIMEOUT", "nan"),
        ("NBTRACK_HEARTBEAT_INTERVAL", "-1"),
        ("NBTRACK_SYNC_TIMEOUT", "1e300"),
    ],
)
def test_settings_reject_non_finite_and_absurd_seconds(store_dir, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    name = variable.removeprefix("NBTRACK_").lower()
    with pytest.raises(nbtrack.UsageError, match=rf"settings: {name} \(or {variable}\) must be a finite number"):
        nbtrack.init(project="p", dir=store_dir)
    assert nbtrack.run is None


# ------------------------------------------------------------------ secrets
def _all_stored_text(store_dir: Path) -> str:
    """Every byte nbtrack stored under ``store_dir``, as text (database and files)."""
    parts = []
    for path in sorted((store_dir / "nbtrack").rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


@pytest.mark.parametrize("anonymous", ["never", "must"])
def test_credentials_in_a_git_remote_and_in_argv_are_never_stored(tmp_path, store_dir, anonymous):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "config").write_text(
        '[remote "origin"]\n\turl = https://someone:ghp_SECRET123@github.com/org/proj.git\n'
    )
    script = repo / "train.py"
    script.write_text(f"""
import nbtrack
run = nbtrack.init(project="p", dir={str(store_dir)!r}, anonymous={anonymous!r}, save_code=True)
run.log({{"a": 1}})
run.finish()
print(run.id)
""")
    out = run_python(
        f"import runpy, sys; sys.argv = {[str(script), '--password', 'hunter2', '--lr', '0.1', '--api-key=KEY42', 'token=TOK77', '--tracking-uri', 'https://u:PW99@mlflow.example/x']!r}; runpy.run_path({str(script)!r}, run_name='__main__')",
        cwd=repo,
    )
    record = read_run(store_dir, "p", out.stdout.strip())
    assert record.metadata["git"]["remote"] == "https://github.com/org/proj.git"
    if anonymous == "never":
        assert record.metadata["argv"][1:] == [
            "--password",
            "***",
            "--lr",
            "0.1",
            "--api-key=***",
            "token=***",
            "--tracking-uri",
            "https://mlflow.example/x",
        ]
    stored = _all_stored_text(store_dir)
    for secret in ("ghp_SECRET123", "hunter2", "KEY42", "TOK77", "PW99"):
        assert secret not in stored


@pytest.mark.e2e
def test_anonymous_must_in_a_notebook_stores_no_home_path_or_user_name(tmp_path):
    """With anonymous='must' and save_code in a real kernel: the database, the session
    history, the copied notebook and every other file stored hold neither the home folder
    nor the user name."""
    from kernels import Kernel

    home = tmp_path / "home" / "nbtrackperson"
    project_dir = home / "experiments"
    project_dir.mkdir(parents=True)
    notebook = project_dir / "study.ipynb"
    notebook.write_text(
        f'{{"cells": [{{"cell_type": "code", "source": "open(\'{home}/data.csv\')", "metadata": {{}}, '
        '"outputs": [], "execution_count": null}], "metadata": {}, "nbformat": 4, '
        '"nbformat_minor": 5}'
    )
    env = {
        "HOME": str(home),
        "USER": "nbtrackperson",
        "LOGNAME": "nbtrackperson",
        "NBTRACK_NOTEBOOK_NAME": str(notebook),
    }
    k = Kernel(project_dir, env=env)
    try:
        k.run("%load_ext nbtrack")
        k.run(f"run = %track_init -p p --dir {project_dir} --anonymous must --save-code")
        k.run("print(run.dir); import os; print(os.getcwd())")  # outputs that name the home folder
        k.run("run.log({'a': 1})\n%track_finish")
    finally:
        k.stop()
    stored = _all_stored_text(project_dir)
    assert "_session_history.ipynb" in str(list((project_dir / "nbtrack").rglob("*")))
    assert "study.ipynb" in str(list((project_dir / "nbtrack").rglob("*")))
    assert str(home) not in stored and "nbtrackperson" not in stored
    assert "~/experiments" in stored  # the paths are there, home replaced
