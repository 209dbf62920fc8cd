"""The command line: version, demo sections and a study, in-process (fast) and as the console script."""
import json
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


def test_bench_command_reports_rates_and_checks_arguments(tmp_path, capsys):
    from sensinet.cli import main

    out = tmp_path / "b.json"
    assert main(["bench", "--layers", "16x2,8", "--inputs", "6", "--outputs", "3", "--batch", "32", "--steps", "2",
                 "--repeat", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "6-16x2,8-3" in text and "steps/s" in text and "TFLOP/s" in text and "of the GEMM rate" in text
    import json

    rec = json.loads(out.read_text())
    assert rec["n_params"] == 6 * 16 + 16 + 16 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3
    assert rec["step_seconds"] > 0 and rec["gemm_tflops"] > 0 and rec["steps_per_second"] > 0
    for bad, msg in ((["--layers", "4x0"], "layers: widths and counts must be >= 1"),
                     (["--layers", "wide"], "layers: expected widths"),
                     (["--batch", "0"], "batch: expected an int >= 1"),
                     (["--device", "tpu"], "device: expected 'cpu', 'cuda' or 'cuda:N'")):
        assert main(["bench", *bad, "--no-torch"]) == 2
        assert msg in capsys.readouterr().err


@pytest.mark.parametrize("argv, msg", [
    (["experiment", "hierarchical", "--quick", "--depth-starts", "-1"], "--depth-starts: expected an int >= 1"),
    (["experiment", "hierarchical", "--quick", "--variant-starts", "0"], "--variant-starts: expected an int >= 1"),
    (["experiment", "insertion", "--quick", "--runs", "0"], "runs"),
    (["experiment", "insertion", "--quick", "--config", "nope"], "configs: expected names"),
    (["experiment", "clusters", "--quick", "--seeds", "-3"], "seeds: expected seeds >= 0"),
    (["experiment", "pruning", "--quick", "--seeds", "1"], "seeds: expected an int >= 2"),
    (["experiment", "pruning", "--quick", "--dataset", "mnist"], "datasets: expected names from"),
])
def test_bad_study_arguments_fail_before_writing_anything(tmp_path, capsys, argv, msg):
    from sensinet.cli import main

    out = tmp_path / "never"
    assert main([*argv, "--out", str(out)]) == 2
    assert msg in capsys.readouterr().err
    assert not out.exists()


def test_python_dash_m_runs_the_same_command_line():
    r = subprocess.run([sys.executable, "-m", "sensinet", "experiment", "pruning", "--seeds", "1", "--out", "/nonexistent/x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "seeds: expected an int >= 2" in r.stderr
    r = subprocess.run([sys.executable, "-m", "sensinet", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("sensinet ")


@pytest.mark.parametrize("study, bad, msg", [
    ("insertion", ["--runs", "0"], "--runs"), ("pruning", ["--seeds", "1"], "seeds: expected an int >= 2"),
    ("hierarchical", ["--quick", "--depth-starts", "-1"], "--depth-starts"), ("clusters", ["--seeds", "-3"], "seeds"),
])
def test_every_study_runs_as_a_module(study, bad, msg, tmp_path):
    out = tmp_path / "never"
    r = subprocess.run([sys.executable, "-m", f"sensinet.experiments.{study}", *bad, "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and msg in r.stderr and f"sensinet experiment {study}" in r.stderr
    assert not out.exists()


def test_a_study_keeps_its_build_record(tmp_path):
    import json

    assert main(["experiment", "pruning", "--quick", "--seeds", "2", "--dataset", "yacht", "--out", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "build.json").read_text())
    assert set(rec) >= {"sensinet", "engine", "cpu", "python", "numpy", "threads", "arguments"}
    assert rec["engine"]["simd"] and rec["threads"] >= 1
    assert rec["arguments"]["quick"] == "True" and rec["arguments"]["dataset"] == "['yacht']"


def test_study_errors_name_the_option_typed(tmp_path, capsys):
    from sensinet.cli import main

    assert main(["experiment", "hierarchical", "--quick", "--jobs", "0", "--out", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert "--jobs: expected an int >= 1 or -1, got 0" in err and "n_jobs" not in err
    assert not (tmp_path / "h").exists()  # nothing made before the arguments were known to be good


def test_quick_run_never_overwrites_a_full_run(tmp_path, capsys):
    from sensinet.cli import main

    out = tmp_path / "full"
    out.mkdir()
    (out / "build.json").write_text(json.dumps({"arguments": {"quick": "False"}}))
    (out / "summary.md").write_text("the full run's results")
    assert main(["experiment", "pruning", "--quick", "--out", str(out)]) == 2
    assert "holds the results of a full run" in capsys.readouterr().err
    assert (out / "summary.md").read_text() == "the full run's results"


def test_missing_study_dependencies_are_named_before_any_work(tmp_path, capsys, monkeypatch):
    import importlib.util

    from sensinet.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else real(name, *a))
    out = tmp_path / "never"
    assert main(["experiment", "insertion", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs SciPy" in err and 'pip install "sensinet[experiments]"' in err
    assert not out.exists()


def test_every_option_has_help_text(monkeypatch):
    """Each option of every subcommand says what it does (``sensinet <cmd> --help``)."""
    import argparse

    from sensinet.cli import main

    bare = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])
            elif action.option_strings and action.help is None:
                bare.append(" ".join(path + [action.option_strings[0]]))

    def capture(self, args=None, namespace=None):
        walk(self, ["sensinet"])
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        main([])
    assert bare == []


@pytest.mark.parametrize("argv", [["demo", "--quick", "--section", "training"], ["experiment", "pruning", "--quick"],
                                  ["experiment", "insertion", "--quick"]])
def test_unusable_out_is_a_usage_error_before_any_work(tmp_path, capsys, argv):
    from sensinet.cli import main

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(argv + ["--out", str(blocker / "results")]) == 2
    err = capsys.readouterr().err
    assert f"--out: cannot write to {blocker / 'results'}: {blocker} is a file" in err and "Traceback" not in err
    assert blocker.read_text() == "x"


def test_bench_json_target_checked_before_the_timed_run(tmp_path, capsys, monkeypatch):
    from sensinet import bench
    from sensinet.cli import main

    ran = []
    monkeypatch.setattr(bench, "run_bench", lambda *a: ran.append(1))
    base = ["bench", "--layers", "8", "--steps", "2"]
    for target, msg in ((str(tmp_path / "missing" / "b.json"), "does not exist"), (str(tmp_path), "it is a folder"),
                        ("", "expected a file name")):
        assert main(base + ["--json", target]) == 2
        err = capsys.readouterr().err
        assert "--json: " in err and msg in err
    assert ran == []  # nothing was timed
    monkeypatch.setattr(bench, "run_bench", lambda *a: (_ for _ in ()).throw(MemoryError()))
    assert main(base) == 2
    assert "does not fit in this machine's memory" in capsys.readouterr().err


def test_unreachable_scheduler_is_a_usage_error(tmp_path, capsys, monkeypatch):
    pytest.importorskip("dask.distributed")
    from sensinet.cli import main
    from sensinet.experiments import _executor

    monkeypatch.setattr(_executor, "CONNECT_SECONDS", 2)
    assert main(["experiment", "pruning", "--quick", "--scheduler", "tcp://127.0.0.1:9", "--out",
                 str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "--scheduler: cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'" in err and "Traceback" not in err
