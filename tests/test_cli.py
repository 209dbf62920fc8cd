"""The command line: version, demo sections and a study, in-process (fast) and as the console script."""
import shutil
import subprocess
import sys

import pytest

from sensinet.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sensinet ") and "Eigen" in out and "CUDA" in out


def test_demo_training_section(tmp_path, capsys):
    pytest.importorskip("sklearn")
    assert main(["demo", "--quick", "--section", "training", "--section", "sensitivity", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "scikit-learn MLPRegressor" in out and "top hidden neurons" in out
    assert (tmp_path / "demo_network.npz").exists()


def test_demo_unknown_section(tmp_path, capsys):
    assert main(["demo", "--section", "nope", "--out", str(tmp_path)]) == 2
    assert "section" in capsys.readouterr().err


def test_experiment_insertion_quick(tmp_path):
    assert main(["experiment", "insertion", "--quick", "--runs", "1", "--config", "ff5", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "insertion_summary.csv").exists()


def test_experiment_bad_argument(tmp_path, capsys):
    assert main(["experiment", "insertion", "--runs", "0", "--out", str(tmp_path)]) == 2
    assert "--runs" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("sensinet") is None, reason="console script not installed")
def test_console_script():
    r = subprocess.run(["sensinet", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "sensinet" in r.stdout
