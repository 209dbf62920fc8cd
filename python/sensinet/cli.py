"""The `sensinet` command line."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Optional, Sequence

from ._outputs import check_folder


EXPERIMENTS = {
    "hierarchical": "hierarchical multi-scale optimization vs backprop, multi-start (Zhang et al. 2023)",
    "insertion": "sensitivity-based layer insertion on the two spirals (Schiela et al. 2023)",
    "clusters": "ReLU activation clusters: simulation, Titanic, breast cancer (Picchiotti & Gori 2021)",
    "pruning": "neuron pruning criteria compared over seeds on the UCI sets and digits",
}


def _version_text() -> str:
    from . import __version__, build_info

    from .cuda import cuda_info

    info = build_info()
    cuda = cuda_info()
    if cuda["available"]:
        gpu = "yes (" + ", ".join(d["name"] for d in cuda["devices"]) + ")"
    elif cuda["built"]:
        gpu = f"no ({cuda['reason']})"
    else:
        gpu = "no (extension not built)"
    return (f"sensinet {__version__} (Eigen {info['eigen']}, SIMD: {info['simd']}, "
            f"OpenMP: {'yes' if info['openmp'] else 'no'}, CUDA: {gpu})")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``sensinet`` command: ``demo``, ``bench``, ``experiment <study>``, ``--version``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="sensinet", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and how the engine was built")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="show every capability on embedded real data")
    demo.add_argument("--out", type=Path, default=Path("sensinet_results/demo"), help="folder for figures and models")
    demo.add_argument("--section", action="append", help="run only this section (repeatable)")
    demo.add_argument("--quick", action="store_true", help="fewer epochs, for a smoke test")
    from . import bench

    bench.add_arguments(sub.add_parser("bench", help="time training and sensitivities of an architecture here"))
    exp = sub.add_parser("experiment", help="reproduce a paper's study")
    studies = exp.add_subparsers(dest="study")
    for name, help_text in EXPERIMENTS.items():
        try:
            module = importlib.import_module(f"sensinet.experiments.{name}")
        except ImportError as exc:  # an optional dependency of one study must not break the others
            studies.add_parser(name, help=f"{help_text} (unavailable: {exc})")
            continue
        module.add_arguments(studies.add_parser(name, help=help_text))
    args = parser.parse_args(argv)
    if args.version:
        print(_version_text())
        return 0
    if args.command == "experiment":
        if args.study is None:
            exp.print_help()
            return 0
        from .experiments import run_study

        return run_study(importlib.import_module(f"sensinet.experiments.{args.study}"), args, args.study)
    if args.command == "bench":
        try:
            return bench.main(args)
        except (ValueError, RuntimeError) as exc:
            print(f"sensinet bench: {exc}", file=sys.stderr)
            return 2
        except MemoryError:
            print(f"sensinet bench: the network or the batch does not fit in this machine's memory ({args.layers} "
                  f"wide layers, batch {args.batch}); choose smaller sizes", file=sys.stderr)
            return 2
    if args.command == "demo":
        from .demo import run_demo

        try:
            check_folder(args.out, "--out")
            print(_version_text())
            run_demo(args.out, args.section, quick=args.quick)
        except ValueError as exc:
            print(f"sensinet demo: {exc}", file=sys.stderr)
            return 2
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
