"""The studies behind ``sensinet experiment <name>``: each module has ``add_arguments(parser)``,
``main(args)`` and ``run(...)``."""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any


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


def run_study(module: Any, args: argparse.Namespace, name: str) -> int:
    """Run a study's ``main`` and keep its build record beside its results (``build.json``); a bad argument is
    reported in one line, exit status 2."""
    try:
        status = int(module.main(args) or 0)
    except ValueError as exc:
        print(f"sensinet experiment {name}: {exc}", file=sys.stderr)
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
