import pytest

import nbtrack
from nbtrack import Settings

ENV = {
    "NBTRACK_PROJECT": "env-project",
    "NBTRACK_ENTITY": "env-entity",
    "NBTRACK_RUN_ID": "envid001",
    "NBTRACK_NAME": "env-name",
    "NBTRACK_NOTES": "env notes",
    "NBTRACK_TAGS": "a, b,c",
    "NBTRACK_RUN_GROUP": "env-group",
    "NBTRACK_JOB_TYPE": "env-job",
    "NBTRACK_SAVE_CODE": "true",
}


def test_unknown_settings_key_is_named(store_dir):
    with pytest.raises(nbtrack.UsageError, match="unknown key 'flush_intervall'.*accepted keys are"):
        nbtrack.init(project="p", dir=store_dir, settings={"flush_intervall": 1})
    with pytest.raises(nbtrack.UsageError, match="unknown key 'colour'"):
        Settings(colour="red")


def test_settings_must_be_settings_or_dict(store_dir):
    with pytest.raises(nbtrack.UsageError, match="settings: expected an nbtrack.Settings or a dict, got list"):
        nbtrack.init(project="p", dir=store_dir, settings=[("mode", "offline")])


def test_settings_values_are_checked():
    with pytest.raises(nbtrack.UsageError, match="flush_interval .*must be a finite number of seconds"):
        nbtrack.init(project="p", settings={"flush_interval": "fast"})


def test_environment_variables_apply(store_dir, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("NBTRACK_DIR", str(store_dir))
    run = nbtrack.init()
    assert (run.project, run.entity, run.id, run.name, run.notes) == (
        "env-project",
        "env-entity",
        "envid001",
        "env-name",
        "env notes",
    )
    assert run.tags == ("a", "b", "c")
    assert (run.group, run.job_type) == ("env-group", "env-job")
    assert run.dir.startswith(str(store_dir / "nbtrack"))
    run.finish()
    record = nbtrack.Api(store_dir).run("env-project/envid001")
    assert record.metadata["save_code"] is True


def test_precedence_explicit_over_settings_over_env(store_dir, monkeypatch):
    monkeypatch.setenv("NBTRACK_PROJECT", "from-env")
    monkeypatch.setenv("NBTRACK_NAME", "env-name")
    monkeypatch.setenv("NBTRACK_NOTES", "env-notes")
    settings = Settings(project="from-settings", run_name="settings-name")
    run = nbtrack.init(dir=store_dir, settings=settings, name="explicit-name")
    assert run.project == "from-settings"  # settings beat the environment
    assert run.name == "explicit-name"  # explicit beats settings
    assert run.notes == "env-notes"  # the environment beats the default
    run.finish()
    run = nbtrack.init(dir=store_dir, settings={"project": "dict-settings"}, project="explicit")
    assert run.project == "explicit"


def test_environment_is_read_at_each_init(store_dir, monkeypatch):
    monkeypatch.setenv("NBTRACK_PROJECT", "first")
    a = nbtrack.init(dir=store_dir)
    a.finish()
    monkeypatch.setenv("NBTRACK_PROJECT", "second")
    b = nbtrack.init(dir=store_dir)
    assert (a.project, b.project) == ("first", "second")


def test_env_mode_and_resume(store_dir, monkeypatch):
    monkeypatch.setenv("NBTRACK_MODE", "disabled")
    run = nbtrack.init(project="p", dir=store_dir)
    assert run.mode == "disabled"
    monkeypatch.setenv("NBTRACK_MODE", "sideways")
    with pytest.raises(nbtrack.UsageError, match="mode='sideways' is not accepted"):
        nbtrack.init(project="p", dir=store_dir)
    monkeypatch.delenv("NBTRACK_MODE")
    monkeypatch.setenv("NBTRACK_RESUME", "sometimes")
    with pytest.raises(nbtrack.UsageError, match="resume='sometimes' is not accepted"):
        nbtrack.init(project="p", dir=store_dir)


def test_bad_env_flag_names_the_variable(monkeypatch):
    monkeypatch.setenv("NBTRACK_SAVE_CODE", "maybe")
    with pytest.raises(nbtrack.UsageError, match="NBTRACK_SAVE_CODE='maybe' is not valid"):
        nbtrack.init(project="p")
