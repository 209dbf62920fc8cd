"""The studies behind ``sensinet experiment <name>``: each module has ``add_arguments(parser)``,
``main(args)`` and ``run(...)``."""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any, Optional

from .._outputs import check_folder


def build_record(arguments: Any = None) -> dict:
    """What produced a study's numbers: the package and engine build, the CPU, the libraries, the threads.
    Last-bit rounding differs between builds (SIMD level, compiler), so results are kept with it."""
    import numpy as np

    from .. import __version__, build_info, get_num_threads

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"sensinet": __version__, "engine": build_info(), "cpu": cpu, "machine": platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__, "threads": get_num_threads(),
            "arguments": {k: str(v) for k, v in vars(arguments).items()} if arguments is not None else {}}


# What the studies need beyond numpy (the "experiments" extra): SciPy for every paired test, scikit-learn for
# the data sets it ships (digits, breast cancer) and the held-out splits.
NEEDS = {"scipy": "SciPy", "sklearn": "scikit-learn"}
# Python parameter names the studies check -> their command-line options, where the two differ
FLAGS = {"n_jobs": "--jobs", "n_starts": "--starts", "scheduler": "--scheduler", "runs": "--runs",
         "configs": "--configs", "datasets": "--datasets", "seeds": "--seeds", "data": "--data", "task": "--task",
         "target": "--target", "budget": "--budget", "devices": "--devices", "experiments": "--experiments",
         "depth_starts": "--depth-starts", "variant_starts": "--variant-starts", "scale_starts": "--scale-starts",
         "scale_budget": "--scale-budget", "depth_dataset": "--depth-dataset", "init": "--init", "preset": "--preset"}


def _as_typed(message: str) -> str:
    """An error message whose leading ``name:`` is a Python parameter, with the option the user typed instead."""
    head, sep, rest = message.partition(":")
    flag = FLAGS.get(head.strip())
    return f"{flag}:{rest}" if sep and flag else message


def _preflight(args: argparse.Namespace, name: str) -> Optional[str]:
    """Why the study cannot start (before it does any work or makes a folder), or None."""
    import importlib.util

    missing = [label for mod, label in NEEDS.items() if importlib.util.find_spec(mod) is None]
    if missing:
        return f"needs {' and '.join(missing)}, which this environment lacks: pip install \"sensinet[experiments]\""
    out = getattr(args, "out", None)
    if out is not None:
        try:
            check_folder(out, "--out")
        except ValueError as exc:
            return str(exc)
    if getattr(args, "quick", False) and out is not None and (Path(out) / "build.json").is_file():
        try:
            previous = json.loads((Path(out) / "build.json").read_text()).get("arguments", {})
        except (OSError, ValueError):
            previous = {}
        if previous.get("quick") == "False":
            return (f"--out {out} holds the results of a full run; a --quick run would overwrite them. Choose "
                    "another --out for the quick run")
    return None


def run_study(module: Any, args: argparse.Namespace, name: str) -> int:
    """Run a study's ``main`` and keep its build record beside its results (``build.json``); a bad argument is
    reported in one line naming the option, exit status 2."""
    problem = _preflight(args, name)
    if problem is not None:
        print(f"sensinet experiment {name}: {problem}", file=sys.stderr)
        return 2
    try:
        status = int(module.main(args) or 0)
    except ValueError as exc:
        print(f"sensinet experiment {name}: {_as_typed(str(exc))}", file=sys.stderr)
        return 2
    out = getattr(args, "out", None)
    if status == 0 and out is not None and Path(out).is_dir():
        (Path(out) / "build.json").write_text(json.dumps(build_record(args), indent=1) + "\n")
    return status


def script(module: Any) -> int:
    """``python -m sensinet.experiments.<name>``: the same as ``sensinet experiment <name>``."""
    name = getattr(module.__spec__, "name", module.__name__).rsplit(".", 1)[1]  # __name__ is "__main__" under -m
    parser = argparse.ArgumentParser(prog=f"python -m sensinet.experiments.{name}", description=module.__doc__)
    module.add_arguments(parser)
    return run_study(module, parser.parse_args(), name)
