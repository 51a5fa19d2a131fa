import subprocess
import sys

from conftest import ROOT

import nbtrack


def test_demo_tracks_a_real_run(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "nbtrack", "demo", "--dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert "Tracked run" in out.stdout and ": finished" in out.stdout
    (record,) = nbtrack.Api(tmp_path / "d").runs("nbtrack-demo")
    rows = record.rows()
    assert len(rows) == 30 and record.state == "finished"
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]  # it really trained
    assert record.summary["val/acc"] > 0.8
    assert str(tmp_path / "d" / "nbtrack" / "nbtrack.db") in out.stdout


def test_runs_lists_stored_runs(tmp_path, capsys):
    from nbtrack.cli import main

    run = nbtrack.init(project="listed", dir=tmp_path, name="visible-run")
    run.log({"a": 1})
    run.finish()
    assert main(["runs", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "visible-run" in out and run.id in out and "finished" in out
    assert main(["runs", "--dir", str(tmp_path / "none")]) == 0
    assert "no runs under" in capsys.readouterr().out
