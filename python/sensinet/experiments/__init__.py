"""The studies behind ``sensinet experiment <name>``: each module has ``add_arguments(parser)``,
``main(args)`` and ``run(...)``."""
from __future__ import annotations

import argparse
import sys
from typing import Any


def run_study(module: Any, args: argparse.Namespace, name: str) -> int:
    """Run a study's ``main``; a bad argument is reported in one line, exit status 2."""
    try:
        return int(module.main(args) or 0)
    except ValueError as exc:
        print(f"sensinet experiment {name}: {exc}", file=sys.stderr)
        return 2


def script(module: Any) -> int:
    """``python -m sensinet.experiments.<name>``: the same as ``sensinet experiment <name>``."""
    name = getattr(module.__spec__, "name", module.__name__).rsplit(".", 1)[1]  # __name__ is "__main__" under -m
    parser = argparse.ArgumentParser(prog=f"python -m sensinet.experiments.{name}", description=module.__doc__)
    module.add_arguments(parser)
    return run_study(module, parser.parse_args(), name)
