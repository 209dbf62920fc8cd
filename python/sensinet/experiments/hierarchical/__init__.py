"""The multi-start study of the hierarchical multi-scale optimizer (Zhang et al., Applied Intelligence 2023).

``sensinet experiment hierarchical`` (or :func:`run`) compares :class:`sensinet.hierarchical.HierarchicalOptimizer`
with full-network backpropagation:

* **Multi-start.** Start ``k`` draws the 90/10 split (seed ``k``) and the initial parameters (seed
  ``1000 + k``); the hierarchical optimizer and backprop start from the *same* parameters, use the same inner
  optimizer (Adam, lr 1e-3, batch 32 unless changed) and the same budget in weighted work (full-gradient
  equivalents, see :mod:`sensinet.hierarchical`; one epoch of backprop = 1). The study disables the
  hierarchical stall rule so that both spend the whole budget.
* **Data.** Simulated ``sin3`` (y = sin(pi x1) + x2^2 - 0.5 x3 + noise) and ``friedman10``
  (:func:`sensinet.datasets.make_regression_function`, 1000 samples, noise 0.1, drawn once with seed 0) and the
  four UCI sets (concrete, energy, yacht, power_plant); repeated 90/10 splits, inputs and targets standardized
  on the training part. Test RMSE is reported on the original scale of the target.
* **Networks.** ``main``: every data set with a small (2 x 10 tanh) and a medium (4 x 64 tanh) network;
  ``depth``: time-to-target-loss as depth grows (depths 2/4/8/16 at widths 64 and 256 on one data set; the
  paired target of a start is the larger of the two methods' best J along their curves, so both reach it;
  a fixed target J <= 0.1 is reported too, with how many starts reach it); ``variants``: the
  alternatives of the method (second-order scoring, randomization, block definitions, L-BFGS inside with
  full-network L-BFGS as its baseline, ...) on two data sets.
* **Output** (in ``out_dir``): ``records.jsonl`` (one line per finished run, written as it finishes, so an
  interrupted study keeps them and a rerun skips them), per data set ``table_<dataset>.csv`` / ``.md`` (final
  training MSE mean/best/worst, test RMSE, time, work, wins/ties/losses of the hierarchical optimizer against
  backprop per start), ``depth.csv`` / ``.md``, ``variants.csv`` / ``.md``, ``summary.md``, and figures
  ``curves_<dataset>_<arch>.png`` (J against work) and ``depth_scaling.png``.
* **Parallel.** ``n_jobs`` runs starts through joblib (process workers, one engine thread each);
  ``scheduler`` (a ``dask.distributed.Client`` or a scheduler address) runs them on a Dask cluster. Each run
  depends on its seeds only, so the results equal the serial run (times aside).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..._progress import ProgressBar
from ...datasets import data_digest

from .figures import plot_curves
from .report import wins_ties_losses, write_outputs
from .._executor import run_resumable
from .._user_data import add_data_arguments, data_from_arguments, user_datasets
from .tasks import (DATASETS, SIMULATED, VARIANTS, Task, assign_devices, execute, make_tasks, resolve_devices,
                    run_task, study_config)

EXPERIMENTS = ("main", "depth", "variants", "scale")

__all__ = ["EXPERIMENTS", "DATASETS", "SIMULATED", "VARIANTS", "Task", "execute", "make_tasks", "run", "run_task",
           "study_config", "write_outputs", "demo_section", "add_arguments", "main"]


def run(out_dir: Any, quick: bool = False, n_starts: int = 20, n_jobs: int = 1, scheduler: Any = None,
        datasets: Optional[Sequence[str]] = None, budget: Optional[float] = None,
        experiments: Optional[Sequence[str]] = None, depth_dataset: str = "concrete",
        depth_starts: Optional[int] = None, variant_starts: Optional[int] = None, resume: bool = True,
        progress: bool = True, figures: bool = True, devices: Any = "cpu", scale_starts: Optional[int] = None,
        scale_budget: Optional[float] = None, data: Any = None) -> dict:
    """Run the multi-start study and write its tables and figures to ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output folder (created). ``records.jsonl`` there holds one line per finished run; with ``resume``
        (default) runs already in it are skipped.
    quick : bool
        Two small data sets, small networks, three starts, budget 30 (under a minute).
    n_starts : int
        Starts per (data set, network) of the main experiment (default 20).
    n_jobs : int
        Parallel worker processes (joblib); ``scheduler`` takes precedence.
    scheduler : dask.distributed.Client or str, optional
        Run on this Dask cluster.
    datasets : sequence of str, optional
        Subset of :data:`DATASETS` for the main experiment.
    budget : float, optional
        Work budget of every run in full-gradient equivalents (default 100; quick: 30).
    experiments : subset of ("main", "depth", "variants", "scale"), optional
        Default: main, depth and variants; only main when ``data`` is given.
        ``"scale"`` (not in the default) is the large-network test of :mod:`.scale`: widths 1024 and 2048,
        depths 8 and 16, four hierarchical variants against backprop (about 1.5 hours on one core).
    depth_dataset : str
        Data set of the depth-scaling experiment.
    depth_starts, variant_starts : int, optional
        Starts of those experiments (default min(n_starts, 5) and min(n_starts, 10)).
    scale_starts, scale_budget : optional
        Starts (default 5) and budget (default 16) of the scale experiment.
    devices : "cpu", "auto" or device names
        Where the runs train: "auto" spreads them over every CUDA device in turn (one start per GPU; give
        ``n_jobs`` = the number of GPUs so they run at once), or the CPU when there is none.
    data : sequence of sensinet.datasets.Dataset or (X, y), optional
        The user's regression data sets (:func:`sensinet.datasets.load_table` reads files; ``(X, y)`` arrays
        are named ``data0``, ``data1``, ...). The main experiment then runs on these instead of the embedded
        sets (``datasets`` may add embedded names), with the same protocol: repeated 90/10 splits, inputs
        and target standardized on the training part only. A run's key includes its data's digest, so a
        resumed study never mixes runs on other data under the same name.

    Returns
    -------
    dict with the records and the rows of every table.
    """
    if isinstance(n_starts, bool) or not isinstance(n_starts, (int, np.integer)) or n_starts < 1:
        raise ValueError(f"n_starts: expected an int >= 1, got {n_starts!r}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs: expected an int >= 1 or -1, got {n_jobs!r}")
    if experiments is None:
        experiments = ("main",) if data is not None else ("main", "depth", "variants")
    for e in experiments:
        if e not in EXPERIMENTS:
            raise ValueError(f"experiments: expected a subset of {EXPERIMENTS}, got {e!r}")
    if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
        raise ValueError(f"budget: expected a number > 0, got {budget!r}")
    if scale_budget is not None and not (isinstance(scale_budget, (int, float)) and scale_budget > 0):
        raise ValueError(f"scale_budget: expected a number > 0, got {scale_budget!r}")
    for name, v in (("depth_starts", depth_starts), ("variant_starts", variant_starts), ("scale_starts", scale_starts)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{name}: expected an int >= 1 (or None for the default), got {v!r}")
    shared = user_datasets(data, "regression", "the hierarchical study compares training MSE on regression data")
    if shared and datasets is None:
        datasets = list(shared)
    cfg = study_config(quick, int(n_starts), datasets, budget, depth_dataset, depth_starts, variant_starts,
                       scale_starts, scale_budget, user=tuple(shared))
    devices = resolve_devices(devices)  # checked before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = make_tasks(cfg, experiments, {name: data_digest(d) for name, d in shared.items()})
    bar = ProgressBar(len(tasks), desc="hierarchical study") if progress else None
    t0 = time.perf_counter()

    def on_result(rec: dict, n_done: int) -> None:
        if bar is not None:
            bar.update(n_done, f"{rec['dataset']} {rec['arch']} {rec['method']} start {rec['start']}")

    tasks = assign_devices(tasks, devices)
    records = run_resumable(tasks, run_task, out, n_jobs=n_jobs, scheduler=scheduler, resume=resume,
                            shared=shared or None, on_result=on_result)
    if bar is not None:
        bar.close(f"done in {time.perf_counter() - t0:.1f} s")
    return write_outputs(records, out, cfg, figures=figures)


def demo_section(out_dir: Any, dataset: str = "concrete", n_starts: int = 3, budget: float = 100.0) -> list:
    """A short hierarchical-vs-backprop comparison on an embedded UCI set (a few starts, well under a minute);
    prints a small table and returns its rows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"\n== Hierarchical multi-scale optimization vs backprop: {dataset}, 4 x 32 tanh, {n_starts} starts, "
          f"budget {budget:g} full-gradient equivalents each")
    tasks = []
    for k in range(n_starts):
        for m in ("hierarchical", "backprop"):
            tasks.append(Task("demo", dataset, 4, 32, "tanh", k, m, budget=budget))
    bar = ProgressBar(len(tasks), desc="starts")
    recs = []
    for i, t in enumerate(tasks):
        recs.append(run_task(t))
        bar.update(i + 1)
    bar.close()
    print(f"{'start':>5s} {'hier MSE':>9s} {'bp MSE':>9s} {'hier test RMSE':>14s} {'bp test RMSE':>12s} "
          f"{'hier s':>7s} {'bp s':>6s}  blocks trained (network layers: times)")
    rows = []
    for k in range(n_starts):
        h, b = recs[2 * k], recs[2 * k + 1]
        rows.append((k, h["train_mse"], b["train_mse"], h["test_rmse"], b["test_rmse"], h["time"], b["time"]))
        print(f"{k:5d} {h['train_mse']:9.4f} {b['train_mse']:9.4f} {h['test_rmse']:14.3f} {b['test_rmse']:12.3f} "
              f"{h['time']:7.2f} {b['time']:6.2f}  {h.get('blocks', {})}")
    pairs = [{"hier": recs[2 * k], "bp": recs[2 * k + 1]} for k in range(n_starts)]
    w, t, l = wins_ties_losses(pairs)
    print(f"hierarchical vs backprop on the same starts: {w} wins, {t} ties, {l} losses (training MSE)")
    try:
        plot_curves(pairs, out / "hierarchical_demo.png", f"{dataset}, 4x32 tanh")
        print(f"saved J against work to {out / 'hierarchical_demo.png'}")
    except ImportError:
        print("(matplotlib is not installed: no figure)")
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``sensinet experiment hierarchical``."""
    parser.add_argument("--out", type=Path, default=Path("sensinet_results/hierarchical"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="a small configuration (under a minute)")
    parser.add_argument("--starts", type=int, default=20, help="starts per data set and network (default 20)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (joblib)")
    parser.add_argument("--scheduler", default=None, help="dask.distributed scheduler address (runs there)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=None, help="data sets of the main table")
    parser.add_argument("--budget", type=float, default=None, help="work budget per run (full-gradient equivalents)")
    parser.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=None,
                        help="which parts to run (default: main depth variants; main only with --data; scale: the "
                             "large-network test, not run by default)")
    parser.add_argument("--depth-dataset", default="concrete", choices=DATASETS,
                        help="data set of the depth experiment (default concrete)")
    parser.add_argument("--depth-starts", type=int, default=None, help="starts of the depth experiment (default 5)")
    parser.add_argument("--variant-starts", type=int, default=None,
                        help="starts of the variants experiment (default 10)")
    parser.add_argument("--scale-starts", type=int, default=None, help="starts of the scale experiment (default 5)")
    parser.add_argument("--scale-budget", type=float, default=None, help="its budget per run (default 16)")
    parser.add_argument("--no-resume", action="store_true", help="start over instead of skipping finished runs")
    parser.add_argument("--devices", default="cpu",
                        help="cpu (default), auto (every CUDA device in turn) or names such as cuda:0,cuda:1")
    add_data_arguments(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    """Entry point of ``sensinet experiment hierarchical``."""
    data = data_from_arguments(args)
    res = run(args.out, quick=args.quick, n_starts=args.starts, n_jobs=args.jobs, scheduler=args.scheduler,
              datasets=args.datasets, budget=args.budget, experiments=args.experiments, data=data,
              depth_dataset=args.depth_dataset, depth_starts=args.depth_starts, variant_starts=args.variant_starts,
              resume=not args.no_resume, devices=args.devices, scale_starts=args.scale_starts,
              scale_budget=args.scale_budget)
    print((Path(args.out) / "summary.md").read_text())
    print(f"tables and figures in {args.out}/ ({len(res['records'])} runs)")
    return 0
