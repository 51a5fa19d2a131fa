"""Sweeps on Optuna: wandb's sweep configuration, agents in one and in two processes,
hyperband pruning, the run cap."""

import math

import pytest
from conftest import ROOT, spawn_python

import nbtrack

optuna = pytest.importorskip("optuna")


@pytest.fixture
def sweeps_here(store_dir, monkeypatch):
    monkeypatch.setenv("NBTRACK_DIR", str(store_dir))
    monkeypatch.delenv("NBTRACK_SWEEP_STORAGE", raising=False)
    return store_dir


def quadratic():
    run = nbtrack.init()
    x, opt = run.config["x"], run.config["opt"]
    for step in range(3):
        nbtrack.log({"loss": (x - 0.3) ** 2 + (0.1 if opt["name"] == "sgd" else 0.0) + 1 / (step + 1)})


CONFIG = {
    "method": "random",
    "metric": {"name": "loss", "goal": "minimize"},
    "parameters": {
        "x": {"min": 0.0, "max": 1.0},
        "layers": {"values": [[64], [64, 32]]},
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "noise": {"distribution": "normal", "mu": 5.0, "sigma": 0.5},
        "opt": {"parameters": {"name": {"values": ["adam", "sgd"]}, "beta": {"value": 0.9}}},
    },
}


def test_a_random_sweep_runs_trials_as_runs_and_reports_the_best(sweeps_here):
    sweep_id = nbtrack.sweep(CONFIG, project="sw")
    nbtrack.agent(sweep_id, function=quadratic, count=5)
    runs = nbtrack.Api(sweeps_here).runs("sw")
    assert len(runs) == 5 and all(r.group == sweep_id and r.state == "finished" for r in runs)
    for r in runs:
        c = r.config
        assert 0 <= c["x"] <= 1 and c["layers"] in ([64], [64, 32]) and 1e-4 <= c["lr"] <= 1e-1
        assert c["opt"]["beta"] == 0.9 and c["opt"]["name"] in ("adam", "sgd") and 2 < c["noise"] < 8
    sweep = nbtrack.Api(sweeps_here).sweep(f"me/sw/{sweep_id}")
    best = sweep.best_run()
    assert best.summary["loss"] == min(r.summary["loss"] for r in runs)
    assert sweep.study.best_value == best.summary["loss"]
    assert [t["state"] for t in sweep.trials()] == ["complete"] * 5


def test_a_grid_stops_when_done_and_the_run_cap_holds(sweeps_here):
    grid = {
        "method": "grid",
        "metric": {"name": "loss"},
        "parameters": {"x": {"values": [0.1, 0.5]}, "opt": {"parameters": {"name": {"values": ["adam", "sgd"]}}}},
    }
    sweep_id = nbtrack.sweep(grid, project="grid")
    nbtrack.agent(sweep_id, function=quadratic, count=10)
    seen = sorted((r.config["x"], r.config["opt"]["name"]) for r in nbtrack.Api(sweeps_here).runs("grid"))
    assert seen == [(0.1, "adam"), (0.1, "sgd"), (0.5, "adam"), (0.5, "sgd")]
    capped = nbtrack.sweep({**CONFIG, "run_cap": 2}, project="cap")
    nbtrack.agent(capped, function=quadratic)
    assert len(nbtrack.Api(sweeps_here).runs("cap")) == 2


def test_hyperband_prunes_trials_and_their_runs_say_so(sweeps_here):
    config = {
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"offset": {"values": [0.0, 10.0]}},
        "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2, "max_iter": 8},
    }

    def train():
        run = nbtrack.init()
        for step in range(8):
            run.log({"loss": run.config["offset"] + 1 / (step + 1)})

    sweep_id = nbtrack.sweep(config, project="hb")
    sweep = nbtrack.Api(sweeps_here).sweep(sweep_id)
    for _ in range(4):  # Hyperband's brackets depend on the study's name: go on until it prunes
        nbtrack.agent(sweep_id, function=train, count=30)
        trials = sweep.trials()
        pruned = [t for t in trials if t["state"] == "pruned"]
        if pruned:
            break
    assert pruned and all(t["params"]["offset"] == 10.0 for t in pruned)  # only bad trials are stopped
    api = nbtrack.Api(sweeps_here)
    for t in pruned:
        run = api.run(f"hb/{t['run_id']}")
        # the run stopped at the step the pruner judged (raised out of that log() call)
        assert "pruned" in run.tags and run.state == "finished" and run.last_step == t["last_reported_step"]
    assert sweep.best_run().config["offset"] == 0.0


AGENT = """
import os, sys, time
from pathlib import Path
import nbtrack
sweep_id, started = sys.argv[1], Path(sys.argv[2])
def train():
    run = nbtrack.init(settings={"system_interval": 0})
    (started / str(os.getpid())).touch()
    while len(list(started.iterdir())) < 2:  # each agent's first trial waits for the other's first
        time.sleep(0.01)
    run.log({"loss": run.config["x"] + run.config["y"]})
nbtrack.agent(sweep_id, function=train)
print("done", flush=True)
"""


def test_two_agent_processes_share_one_study_without_duplicates(sweeps_here):
    grid = {
        "method": "grid",
        "metric": {"name": "loss"},
        "parameters": {"x": {"values": [1, 2, 3]}, "y": {"values": [10, 20]}},
    }
    sweep_id = nbtrack.sweep(grid, project="two")
    env = {"NBTRACK_DIR": str(sweeps_here), "PYTHONPATH": str(ROOT)}
    ready = sweeps_here / "ready"
    ready.mkdir()
    agents = [spawn_python(AGENT, argv=[sweep_id, str(ready)], env=env) for _ in range(2)]
    try:
        outs = [a.communicate(timeout=300) for a in agents]
    finally:
        for a in agents:
            a.kill()
    assert all(a.returncode == 0 for a in agents), outs
    runs = nbtrack.Api(sweeps_here).runs("two")
    combos = sorted((r.config["x"], r.config["y"]) for r in runs if r.state == "finished")
    assert combos == [(x, y) for x in (1, 2, 3) for y in (10, 20)]  # each grid point run once
    assert {r.pid for r in runs} == {a.pid for a in agents}  # both agents ran trials
    trials = nbtrack.Api(sweeps_here).sweep(sweep_id).trials()
    done = [t for t in trials if t["state"] == "complete"]
    assert len(done) == 6 and len({t["run_id"] for t in done}) == 6
    assert len({t["number"] for t in trials}) == len(trials)


def test_bad_sweep_configurations_are_named(sweeps_here):
    with pytest.raises(nbtrack.UsageError, match="method must be one of grid, random, bayes"):
        nbtrack.sweep({"method": "hill", "parameters": {"x": {"values": [1]}}})
    with pytest.raises(nbtrack.UsageError, match="method 'bayes' needs a metric"):
        nbtrack.sweep({"method": "bayes", "parameters": {"x": {"min": 0, "max": 1}}})
    with pytest.raises(nbtrack.UsageError, match=r"parameters.x needs numbers min < max"):
        nbtrack.sweep({"method": "random", "parameters": {"x": {"min": 1, "max": 0}}})
    with pytest.raises(nbtrack.UsageError, match="method 'grid' needs values .* x has a continuous distribution"):
        nbtrack.sweep({"method": "grid", "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    with pytest.raises(nbtrack.UsageError, match="distribution 'beta' is not one of"):
        nbtrack.sweep({"method": "random", "parameters": {"x": {"distribution": "beta"}}})
    with pytest.raises(nbtrack.UsageError, match="no sweep 'nosuch'"):
        nbtrack.agent("nosuch", function=quadratic)
    sweep_id = nbtrack.sweep(CONFIG)
    with pytest.raises(nbtrack.UsageError, match="pass function="):
        nbtrack.agent(sweep_id)


def test_a_trial_that_raises_fails_and_the_sweep_goes_on(sweeps_here):
    calls = []

    def flaky():
        run = nbtrack.init()
        calls.append(run.id)
        if len(calls) == 1:
            raise RuntimeError("boom")
        run.log({"loss": 1.0})

    sweep_id = nbtrack.sweep(CONFIG, project="flaky")
    with pytest.warns(nbtrack.NbtrackWarning, match="trial 0 failed: RuntimeError"):
        nbtrack.agent(sweep_id, function=flaky, count=2)
    states = [t["state"] for t in nbtrack.Api(sweeps_here).sweep(sweep_id).trials()]
    assert states == ["fail", "complete"]
    assert nbtrack.Api(sweeps_here).run(f"flaky/{calls[0]}").state == "failed"
    assert math.isclose(nbtrack.Api(sweeps_here).run(f"flaky/{calls[1]}").summary["loss"], 1.0)
