import argparse
import dataclasses
import datetime
import enum

import pytest
from conftest import read_run, run_python

import nbtrack
from nbtrack.errors import ConfigError


def start(store_dir, **kw):
    kw.setdefault("project", "p")
    return nbtrack.init(dir=store_dir, **kw)


def stored_config(store_dir, run):
    run.finish()
    return read_run(store_dir, run.project, run.id).config


def test_dict_config_with_nesting(store_dir):
    run = start(store_dir, config={"lr": 0.01, "model": {"layers": [64, 32], "act": "relu"}})
    assert run.config.lr == 0.01 and run.config["model"]["layers"] == [64, 32]
    assert stored_config(store_dir, run) == {"lr": 0.01, "model": {"layers": [64, 32], "act": "relu"}}


def test_argparse_namespace_and_plain_objects(store_dir):
    ns = argparse.Namespace(lr=0.1, epochs=3)
    run = start(store_dir, config=ns)
    assert dict(run.config.items()) == {"lr": 0.1, "epochs": 3}
    run.finish()

    class Hyper:
        def __init__(self):
            self.width = 8
            self._private = "hidden"

    run = start(store_dir, config=Hyper())
    assert dict(run.config.items()) == {"width": 8}


def test_absl_flags(store_dir):
    flags = pytest.importorskip("absl.flags", reason="absl-py is in the test extra")

    values = flags.FlagValues()
    flags.DEFINE_float("learning_rate", 0.3, "lr", flag_values=values)
    flags.DEFINE_integer("batch", 16, "batch", flag_values=values)
    values(["prog", "--batch=32"])
    run = start(store_dir, config=values)
    assert run.config.learning_rate == 0.3 and run.config.batch == 32


def test_yaml_plain_mapping(store_dir, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.001\nlayers: [64, 32]\noptimizer:\n  name: adam\n  beta: 0.9\n")
    run = start(store_dir, config=str(path))
    assert stored_config(store_dir, run) == {
        "lr": 0.001,
        "layers": [64, 32],
        "optimizer": {"name": "adam", "beta": 0.9},
    }


def test_yaml_value_desc_form(store_dir, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("wandb_version: 1\nlr:\n  desc: learning rate\n  value: 0.02\nepochs:\n  value: 5\n")
    run = start(store_dir, config=path)
    assert stored_config(store_dir, run) == {"lr": 0.02, "epochs": 5}
    path.write_text("lr:\n  desc: learning rate\n  value: 0.5\nbatch:\n  value: 4\n")
    run = start(store_dir, config=str(path))
    assert dict(run.config.items()) == {"lr": 0.5, "batch": 4}


def test_yaml_errors_are_usage_errors(store_dir, tmp_path):
    with pytest.raises(nbtrack.UsageError, match="config: no YAML file at"):
        start(store_dir, config=str(tmp_path / "missing.yaml"))
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(nbtrack.UsageError, match="must hold a mapping"):
        start(store_dir, config=str(bad))
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(nbtrack.UsageError, match="is not valid YAML"):
        start(store_dir, config=str(broken))


def test_config_defaults_yaml_is_loaded_first(store_dir, isolated):
    (isolated / "config-defaults.yaml").write_text("lr: 0.1\nbatch: 32\n")
    run = start(store_dir, config={"lr": 0.5})
    assert dict(run.config.items()) == {"lr": 0.5, "batch": 32}


def test_unsupported_config_type(store_dir):
    with pytest.raises(nbtrack.UsageError, match="config: expected a dict, a path to a YAML file"):
        start(store_dir, config=42)


def test_dotted_keys_suggest_nesting(store_dir):
    with pytest.raises(nbtrack.UsageError, match=r"key 'optim.lr' contains '.'.*nest it instead"):
        start(store_dir, config={"optim.lr": 0.1})
    run = start(store_dir, config={"ok": 1})
    with pytest.raises(nbtrack.UsageError, match="contains '.'"):
        run.config.update({"a.b": 1})
    with pytest.raises(nbtrack.UsageError, match="contains '.'"):
        run.config["nested"] = {"x.y": 1}


def test_values_over_10mb_are_refused(store_dir):
    with pytest.raises(nbtrack.UsageError, match="'big' is 10.5 MB as JSON; config values must be at most 10 MB"):
        start(store_dir, config={"big": "x" * 10_500_000})
    run = start(store_dir, config={"fits": "x" * 1_000_000})
    assert len(run.config.fits) == 1_000_000


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Opt:
    name: str
    betas: tuple


def test_values_become_json_friendly(store_dir):
    np = pytest.importorskip("numpy")
    config = {
        "np_float": np.float32(0.5),
        "np_int": np.int64(7),
        "np_bool": np.bool_(True),
        "array": np.arange(3),
        "when": datetime.date(2026, 11, 22),
        "at": datetime.datetime(2026, 11, 22, 12, 30),
        "color": Color.RED,
        "ids": {3, 1, 2},
        "opt": Opt("adam", (0.9, 0.99)),
    }
    run = start(store_dir, config=config)
    expected = {
        "np_float": 0.5,
        "np_int": 7,
        "np_bool": True,
        "array": [0, 1, 2],
        "when": "2026-11-22",
        "at": "2026-11-22T12:30:00",
        "color": "red",
        "ids": [1, 2, 3],
        "opt": {"name": "adam", "betas": [0.9, 0.99]},
    }
    assert dict(run.config.items()) == expected
    assert type(run.config.np_int) is int and type(run.config.np_float) is float
    assert stored_config(store_dir, run) == expected


def test_include_and_exclude_keys(store_dir):
    cfg = {"a": 1, "b": 2, "c": 3}
    run = start(store_dir, config=cfg, config_include_keys=["a", "c"])
    assert dict(run.config.items()) == {"a": 1, "c": 3}
    run.finish()
    run = start(store_dir, config=cfg, config_exclude_keys=["b"])
    assert dict(run.config.items()) == {"a": 1, "c": 3}
    run.finish()
    with pytest.raises(nbtrack.UsageError, match="config_include_keys and config_exclude_keys cannot be used together"):
        start(store_dir, config=cfg, config_include_keys=["a"], config_exclude_keys=["b"])
    with pytest.raises(nbtrack.UsageError, match="config_include_keys: expected a list of key names"):
        start(store_dir, config=cfg, config_include_keys="a")


def test_allow_val_change_false(store_dir):
    run = start(store_dir, config={"lr": 0.1}, allow_val_change=False)
    run.config.lr = 0.1  # the same value is fine
    with pytest.raises(ConfigError) as err:
        run.config.lr = 0.2
    assert isinstance(err.value, nbtrack.UsageError)
    assert "'lr'" in str(err.value) and "0.1" in str(err.value) and "0.2" in str(err.value)
    assert run.config.lr == 0.1
    run.config.update({"lr": 0.3}, allow_val_change=True)  # an explicit override always works
    assert run.config.lr == 0.3
    run.config.new_key = 1  # new keys are not changes
    assert stored_config(store_dir, run) == {"lr": 0.3, "new_key": 1}


def test_allow_val_change_true(store_dir):
    run = start(store_dir, config={"lr": 0.1}, allow_val_change=True)
    run.config["lr"] = 0.2
    assert stored_config(store_dir, run) == {"lr": 0.2}


def test_allow_val_change_none_is_false_in_a_script(store_dir):
    run = start(store_dir, config={"lr": 0.1})
    with pytest.raises(ConfigError):
        run.config.update({"lr": 0.5})


def test_allow_val_change_none_is_true_in_an_ipython_shell(store_dir):
    # A real IPython shell in a child process: notebook defaults apply there.
    out = run_python(f"""
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        import nbtrack
        run = nbtrack.init(project="p", dir={str(store_dir)!r}, config={{"lr": 0.1}})
        run.config.lr = 0.7
        run.finish()
        print(nbtrack.Api({str(store_dir)!r}).run("p/" + run.id).config)
    """)
    assert out.stdout.strip().splitlines()[-1] == "{'lr': 0.7}"


def test_config_changes_are_written_while_running(store_dir):
    run = start(store_dir, config={"lr": 0.1}, settings={"flush_interval": 0.05})
    run.config.update({"extra": {"depth": 3}})
    run.flush()
    assert read_run(store_dir, "p", run.id).config == {"lr": 0.1, "extra": {"depth": 3}}
