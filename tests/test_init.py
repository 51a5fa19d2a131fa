import os
import subprocess
import sys
import warnings

import pytest
from conftest import ROOT, read_run, run_python

import nbtrack


# ------------------------------------------------------------------ mode
@pytest.mark.parametrize("bad", ["sideways", "ONLINE", 1])
def test_invalid_mode(bad, store_dir):
    with pytest.raises(nbtrack.UsageError, match="mode.*'online', 'offline' or 'disabled'"):
        nbtrack.init(project="p", dir=store_dir, mode=bad)


def test_mode_aliases(store_dir):
    run = nbtrack.init(project="p", dir=store_dir, mode="dryrun")
    assert run.mode == "offline"
    run.finish()
    assert read_run(store_dir, "p", run.id).mode == "offline"


def test_online_without_server_falls_back_with_a_notice(store_dir, capsys, monkeypatch):
    monkeypatch.delenv("NBTRACK_QUIET")
    for mode in ("online", "run"):
        run = nbtrack.init(project="p", dir=store_dir, mode=mode)
        assert run.mode == "offline"
        run.finish()
    err = capsys.readouterr().err
    assert err.count("no tracking server is configured (NBTRACK_TRACKING_URI); this run is stored offline") == 2


def test_online_with_force_and_no_server_is_an_error(store_dir):
    with pytest.raises(nbtrack.UsageError, match="needs a tracking server"):
        nbtrack.init(project="p", dir=store_dir, mode="online", force=True)


def test_disabled_mode_writes_nothing(tmp_path):
    target = tmp_path / "never"
    run = nbtrack.init(project="p", dir=target, mode="disabled", config={"lr": 1})
    run.log({"a": 1})
    run.log("anything at all")
    run.config.lr = 2  # config still works in memory
    with run as same:
        same.log({"b": 2})
    run.finish()
    assert run.config.lr == 2 and run.mode == "disabled" and run.dir is None
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "work"]  # and nothing in the working dir
    assert list((tmp_path / "work").iterdir()) == []


# ------------------------------------------------------------- anonymous
def test_invalid_anonymous(store_dir):
    with pytest.raises(nbtrack.UsageError, match="anonymous='sometimes'.*'never', 'allow' or 'must'"):
        nbtrack.init(project="p", dir=store_dir, anonymous="sometimes")


IDENTITY_SCRIPT = """
import os, socket
socket.gethostname = lambda: os.environ["FAKE_HOST"]   # a distinctive host name to look for
import nbtrack
run = nbtrack.init(dir=os.environ["OUT_DIR"], anonymous=os.environ["ANONYMOUS"], save_code=True)
run.log({"a": 1})
run.finish()
print(run.project, run.id)
"""


@pytest.mark.parametrize("anonymous", ["never", "must"])
def test_anonymous_must_records_no_identity(anonymous, tmp_path):
    home = tmp_path / "home" / "zq_user_81x"
    repo = home / "repo"
    repo.mkdir(parents=True)
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "config", "user.email", "zq.author81x@example.com"], check=True)
    (repo / "train.py").write_text(IDENTITY_SCRIPT)
    env = {
        **os.environ,
        "USER": "zq_user_81x",
        "LOGNAME": "zq_user_81x",
        "HOME": str(home),
        "FAKE_HOST": "zq-host-81x",
        "OUT_DIR": str(tmp_path / "out"),
        "ANONYMOUS": anonymous,
        "PYTHONPATH": str(ROOT),
        "NBTRACK_QUIET": "1",
    }
    out = subprocess.run([sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True, check=True)
    project, run_id = out.stdout.split()
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == "train.py" for p in files)  # save_code copied the program
    blobs = b"".join(p.read_bytes() for p in files)
    found = {s for s in ("zq_user_81x", "zq-host-81x", "zq.author81x@example.com") if s.encode() in blobs}
    if anonymous == "never":
        assert found == {"zq_user_81x", "zq-host-81x", "zq.author81x@example.com"}  # the check can see them
    else:
        assert found == set()
        record = nbtrack.Api(tmp_path / "out").run(f"{project}/{run_id}")
        assert record.metadata["anonymous"] == "must" and "user" not in record.metadata
        assert record.metadata["program"] == "train.py"
        assert record.state == "finished"


# --------------------------------------------------- reinit, resume values
@pytest.mark.parametrize("bad", ["sometimes", 2, "FINISH_PREVIOUS"])
def test_invalid_reinit(bad, store_dir):
    with pytest.raises(nbtrack.UsageError, match="reinit=.*is not accepted.*'create_new'"):
        nbtrack.init(project="p", dir=store_dir, reinit=bad)


@pytest.mark.parametrize("bad", ["sometimes", 1, "ALLOW"])
def test_invalid_resume(bad, store_dir):
    with pytest.raises(nbtrack.UsageError, match="resume=.*is not accepted.*'allow', 'never', 'must', 'auto'"):
        nbtrack.init(project="p", dir=store_dir, resume=bad)


@pytest.mark.parametrize("value", ["default", "return_previous", "finish_previous", "create_new", None])
def test_reinit_literals_are_accepted(value, store_dir):
    run = nbtrack.init(project="p", dir=store_dir, reinit=value)
    assert run.state == "running"


@pytest.mark.parametrize("value, literal", [(True, "finish_previous"), (False, "return_previous")])
def test_boolean_reinit_is_deprecated(value, literal, store_dir):
    with pytest.warns(DeprecationWarning, match=f"reinit={literal!r}"):
        nbtrack.init(project="p", dir=store_dir, reinit=value)


@pytest.mark.parametrize("argument", ["force", "save_code", "allow_val_change", "sync_tensorboard", "monitor_gym"])
def test_boolean_arguments_are_checked(argument, store_dir):
    with pytest.raises(nbtrack.UsageError, match=f"{argument}: expected True, False or None"):
        nbtrack.init(project="p", dir=store_dir, **{argument: "yes"})


@pytest.mark.parametrize("argument", ["name", "notes", "group", "job_type", "entity"])
def test_text_arguments_are_checked(argument, store_dir):
    with pytest.raises(nbtrack.UsageError, match=f"{argument}: expected a string"):
        nbtrack.init(project="p", dir=store_dir, **{argument: 12})


def test_dir_must_be_a_path():
    with pytest.raises(nbtrack.UsageError, match="dir: expected a path"):
        nbtrack.init(project="p", dir=3)


# ---------------------------------------------- older and later arguments
def test_magic_is_accepted_with_a_deprecation_warning(store_dir):
    with pytest.warns(DeprecationWarning, match="magic"):
        run = nbtrack.init(project="p", dir=store_dir, magic=True)
    assert run.state == "running"


def test_tensorboard_is_an_alias_of_sync_tensorboard(store_dir):
    from nbtrack.integrations.tensorboard import patcher

    with pytest.warns(DeprecationWarning, match="use sync_tensorboard"):
        run = nbtrack.init(project="p", dir=store_dir, tensorboard=True)
    assert patcher.target() is run
    run.finish()
    assert patcher.target() is None
    assert read_run(store_dir, "p", run.id).metadata["sync_tensorboard"] is True


def test_monitor_gym_is_recorded(store_dir):
    from nbtrack.integrations.gym import patcher

    run = nbtrack.init(project="p", dir=store_dir, monitor_gym=True)
    assert patcher.target() is run
    run.finish()
    assert read_run(store_dir, "p", run.id).metadata["monitor_gym"] is True


def test_save_code_copies_the_program_in_a_script(tmp_path):
    script = tmp_path / "train_me.py"
    script.write_text(
        f"import nbtrack\nrun = nbtrack.init(project='p', dir={str(tmp_path)!r}, save_code=True)\n"
        "run.finish()\nprint(run.dir)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    run_dir = out.stdout.strip().splitlines()[-1]
    assert open(os.path.join(run_dir, "code", "train_me.py")).read() == script.read_text()
    (record,) = nbtrack.Api(tmp_path).runs("p")
    assert record.metadata["code"] == {"program": "code/train_me.py"}  # the run says what it saved


# ------------------------------------------------------- project inference
def test_project_from_git_root_and_subdirectory(tmp_path, store_dir, monkeypatch):
    repo = tmp_path / "my-repo"
    (repo / "experiments" / "mnist").mkdir(parents=True)
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    monkeypatch.chdir(repo)
    assert nbtrack.init(dir=store_dir).project == "my-repo"
    monkeypatch.chdir(repo / "experiments" / "mnist")
    assert nbtrack.init(dir=store_dir, reinit="finish_previous").project == "my-repo-experiments-mnist"


def test_project_from_program_file_then_uncategorized(tmp_path, store_dir):
    script = tmp_path / "cifar_sweep.py"
    script.write_text(f"import nbtrack\nprint(nbtrack.init(dir={str(store_dir)!r}).project)\n")
    out = run_python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')", cwd=tmp_path)
    # runpy sets __main__.__file__ to the script, as `python cifar_sweep.py` does
    assert out.stdout.strip() == "cifar_sweep"
    out = run_python(f"import nbtrack; print(nbtrack.init(dir={str(store_dir)!r}).project)", cwd=tmp_path)
    assert out.stdout.strip() == "uncategorized"


def test_a_dir_that_cannot_hold_a_store_is_refused_before_anything_runs(tmp_path):
    """A run is never kept "in memory only" behind the user's back: init() says which
    path cannot be used and what to do, and no run is made."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(nbtrack.UsageError, match=r"a-file/sub/nbtrack.*is not a folder.*pass dir="):
        nbtrack.init(project="p", dir=blocker / "sub")
    assert nbtrack.run is None


def test_no_warnings_on_a_plain_init(store_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nbtrack.init(project="p", dir=store_dir).finish()


def test_init_in_a_new_folder_claims_the_run_just_after_it_returns(tmp_path):
    """In a folder with no store, init() returns before the store exists; the writer's
    first round creates it and claims the run.  A reader in this process, flush() and
    finish() all see the run claimed first; nothing logged meanwhile is lost."""
    run = nbtrack.init(project="p", dir=tmp_path, settings={"system_interval": 0})
    assert os.path.isdir(run.dir)  # made before init() returns
    for i in range(100):
        run.log({"a": i})
    record = nbtrack.Api(tmp_path).run(f"p/{run.id}")  # settles the claim in this process
    assert record.state == "running" and record.name == run.name
    second = nbtrack.init(project="p", dir=tmp_path, reinit="create_new", settings={"system_interval": 0})
    assert run.name.endswith("-1") and second.name.endswith("-2")
    second.log({"b": 1})
    second.finish()
    run.finish()
    runs = nbtrack.Api(tmp_path).runs("p")
    assert sorted(r.id for r in runs) == sorted([run.id, second.id])
    assert [r["a"] for r in nbtrack.Api(tmp_path).run(f"p/{run.id}").rows()] == list(range(100))
    assert nbtrack.Api(tmp_path).run(f"p/{run.id}").metadata["python"]  # gathered by the writer


def test_a_run_killed_right_after_init_and_flush_is_in_its_new_store(tmp_path):
    code = f"""
import os, signal, nbtrack
run = nbtrack.init(project="p", dir={str(tmp_path)!r}, settings={{"system_interval": 0}})
run.log({{"a": 1}})
run.flush()
print(run.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    run_id = out.stdout.strip()
    record = nbtrack.Api(tmp_path).run(f"p/{run_id}")
    assert record.state == "crashed" and [r["a"] for r in record.rows()] == [1]
