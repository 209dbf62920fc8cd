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
import csv
import hashlib
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from .._progress import ProgressBar

DATASETS = ("sin3", "friedman10", "concrete", "energy", "yacht", "power_plant")
SIMULATED = ("sin3", "friedman10")
TIE_RTOL = 0.01  # |J_h - J_bp| <= 1 % of the smaller one counts as a tie

# variant name -> HierarchicalOptimizer options (the baseline of each is backprop with the same inner optimizer)
VARIANTS: dict = {
    "default": {},
    "score=second_order": {"score": "second_order"},
    "p_rand=0 (greedy)": {"p_rand": 0.0},
    "p_rand=0.3": {"p_rand": 0.3},
    "p_rand=1 (random blocks)": {"p_rand": 1.0},
    "block=incoming": {"block": "incoming"},
    "block=outgoing": {"block": "outgoing"},
    "inner_iters=1": {"inner_iters": 1},
    "inner_iters=20": {"inner_iters": 20},
    "inner_state=per_block": {"inner_state": "per_block"},
    "min_block=2": {"min_block": 2},
    "monotone": {"monotone": True},
    "polish=10": {"polish_iters": 10},
    "inner=lbfgs": {"inner": "lbfgs", "inner_iters": 20},
}


# ================================================================================================ tasks
@dataclass(frozen=True)
class Task:
    """One run: a method on one start of one (data set, network) setting."""

    experiment: str  # main | depth | variants
    dataset: str
    depth: int
    width: int
    activation: str
    start: int
    method: str  # "hierarchical" | "backprop"
    variant: str = "default"
    inner: str = "adam"
    budget: float = 100.0
    lr: float = 1e-3
    batch_size: int = 32
    n_samples: int = 1000  # simulated data only
    options: str = "{}"  # JSON of HierarchicalOptimizer options
    device: str = "cpu"  # where the run trains (not part of its identity: a resumed study may move)

    @property
    def arch(self) -> str:
        return f"{self.depth}x{self.width} {self.activation}"

    @property
    def key(self) -> str:
        body = json.dumps({k: v for k, v in self.__dict__.items() if k != "device"}, sort_keys=True)
        return hashlib.sha1(body.encode()).hexdigest()[:16]

    @property
    def pair(self) -> tuple:
        """What a hierarchical run and its backprop baseline have in common."""
        return (self.experiment, self.dataset, self.arch, self.variant, self.start)


def _load_data(name: str, n_samples: int):
    from ..datasets import load_uci, make_regression_function

    if name in SIMULATED:
        return make_regression_function(name, n_samples=n_samples, noise=0.1, seed=0)
    return load_uci(name)


def _prepare(task: Task):
    from ..datasets import Standardizer, train_test_split

    data = _load_data(task.dataset, task.n_samples)
    X_tr, X_te, y_tr, y_te = train_test_split(data.X, data.y, test_size=0.1, seed=task.start)
    xs, ys = Standardizer().fit(X_tr), Standardizer().fit(y_tr)
    return xs.transform(X_tr), ys.transform(y_tr), xs.transform(X_te), y_te, ys


def _network(task: Task, n_inputs: int):
    from ..layers import Dense
    from ..network import Network

    layers = [Dense(task.width, task.activation) for _ in range(task.depth)] + [Dense(1)]
    return Network(n_inputs, layers, seed=1000 + task.start, device=task.device)


def _thin(curve: list, n: int = 120) -> list:
    if len(curve) <= n:
        return [list(map(float, c)) for c in curve]
    idx = np.unique(np.linspace(0, len(curve) - 1, n).round().astype(int))
    return [list(map(float, curve[i])) for i in idx]


def run_task(task: Task) -> dict:
    """Run one task (in any process) and return its JSON-able record."""
    from ..hierarchical import HierarchicalOptimizer
    from ..network import DivergenceError
    from ..optimizers import LBFGS, Adam, SGD

    Xtr, ytr, Xte, y_te, ys = _prepare(task)
    net = _network(task, Xtr.shape[1])
    rec: dict = {"key": task.key, **task.__dict__, "arch": task.arch, "status": "ok"}
    t0 = time.perf_counter()
    curve: list = []
    try:
        if task.method == "hierarchical":
            opts = json.loads(task.options)
            opt = HierarchicalOptimizer(inner=task.inner, lr=task.lr, batch_size=task.batch_size, budget=task.budget,
                                        random_state=task.start, stall_tol=0.0, tol=0.0, n_threads=1, **opts)
            try:
                res = opt.run(net, Xtr, ytr)
            except DivergenceError as exc:
                res = getattr(exc, "result", None)
                rec["status"] = "diverged"
            if res is not None:
                curve = res.curve
                rec.update(work=res.work, n_outer=res.n_outer, stop=res.status,
                           steps=[[s.work, s.J, s.block[0], s.block[1], int(s.random)] for s in res.steps],
                           blocks={f"{b[0]}-{b[1]}": n for b, n in res.block_counts().items()})
        else:
            J0 = net.objective(Xtr, ytr, n_threads=1)
            curve = [(0.0, J0, 0.0)]
            if task.inner == "lbfgs":
                def cb(info: dict) -> bool:
                    curve.append((float(info["step"]), float(info["loss"]), time.perf_counter() - t0))
                    return info["step"] >= task.budget

                try:
                    net.fit(Xtr, ytr, optimizer=LBFGS(max_iter=int(task.budget)), callback=cb, n_threads=1)
                finally:
                    rec["work"] = float(getattr(net, "history_").steps)
            else:
                opt = Adam(lr=task.lr) if task.inner == "adam" else SGD(lr=task.lr)
                every, done = 5, 0
                total = int(task.budget)
                try:
                    while done < total:
                        e = min(every, total - done)
                        net.fit(Xtr, ytr, optimizer=opt, epochs=e, batch_size=min(task.batch_size, Xtr.shape[0]),
                                seed=task.start * 100003 + done, n_threads=1)
                        done += e
                        curve.append((float(done), net.objective(Xtr, ytr, n_threads=1), time.perf_counter() - t0))
                finally:
                    rec["work"] = float(done)
            rec["n_outer"] = 0
    except DivergenceError:
        rec["status"] = "diverged"
    rec["time"] = time.perf_counter() - t0
    J = net.objective(Xtr, ytr, n_threads=1)
    pred = ys.inverse_transform(net.predict(Xte, n_threads=1).ravel())
    rec["train_mse"] = float(J)
    rec["test_rmse"] = float(np.sqrt(np.mean((pred - y_te) ** 2)))
    rec["curve"] = _thin(curve)
    rec.setdefault("work", 0.0)
    return rec


# ================================================================================================ task lists
def _config(quick: bool, n_starts: int, datasets: Optional[Sequence[str]], budget: Optional[float],
            depth_dataset: str, depth_starts: Optional[int], variant_starts: Optional[int]) -> dict:
    if quick:
        cfg = dict(datasets=list(datasets or ("sin3", "yacht")), archs=[(2, 10, "tanh"), (3, 16, "tanh")],
                   n_starts=min(n_starts, 3), budget=budget or 30.0, depths=[2, 4], depth_widths=[16],
                   depth_starts=depth_starts or 2, depth_budget=budget or 30.0,
                   variant_datasets=["sin3"], variant_arch=(3, 16, "tanh"),
                   variants=["default", "score=second_order", "p_rand=1 (random blocks)", "inner=lbfgs"],
                   variant_starts=variant_starts or 2, n_samples=300)
    else:
        cfg = dict(datasets=list(datasets or DATASETS), archs=[(2, 10, "tanh"), (4, 64, "tanh")],
                   n_starts=n_starts, budget=budget or 100.0, depths=[2, 4, 8, 16], depth_widths=[64, 256],
                   depth_starts=depth_starts or min(n_starts, 5), depth_budget=budget or 100.0,
                   variant_datasets=["concrete", "sin3"], variant_arch=(8, 32, "tanh"), variants=list(VARIANTS),
                   variant_starts=variant_starts or min(n_starts, 10), n_samples=1000)
    for d in cfg["datasets"]:
        if d not in DATASETS:
            raise ValueError(f"datasets: expected names from {DATASETS}, got {d!r}")
    if depth_dataset not in DATASETS:
        raise ValueError(f"depth_dataset: expected one of {DATASETS}, got {depth_dataset!r}")
    cfg["depth_dataset"] = depth_dataset
    return cfg


def make_tasks(cfg: dict, experiments: Sequence[str]) -> list:
    tasks = []
    ns = cfg["n_samples"]

    def both(exp: str, ds: str, depth: int, width: int, act: str, k: int, budget: float, variant: str = "default",
             options: Optional[dict] = None) -> None:
        options = dict(options or {})
        inner = options.pop("inner", "adam")
        common = dict(experiment=exp, dataset=ds, depth=depth, width=width, activation=act, start=k, budget=budget,
                      inner=inner, n_samples=ns)
        tasks.append(Task(method="hierarchical", variant=variant, options=json.dumps(options, sort_keys=True),
                          **common))
        bp = Task(method="backprop", variant=variant, **common)
        tasks.append(bp)

    if "main" in experiments:
        for ds in cfg["datasets"]:
            for depth, width, act in cfg["archs"]:
                for k in range(cfg["n_starts"]):
                    both("main", ds, depth, width, act, k, cfg["budget"])
    if "depth" in experiments:
        for width in cfg["depth_widths"]:
            for depth in cfg["depths"]:
                for k in range(cfg["depth_starts"]):
                    both("depth", cfg["depth_dataset"], depth, width, "tanh", k, cfg["depth_budget"])
    if "variants" in experiments:
        depth, width, act = cfg["variant_arch"]
        for ds in cfg["variant_datasets"]:
            for v in cfg["variants"]:
                for k in range(cfg["variant_starts"]):
                    both("variants", ds, depth, width, act, k, cfg["budget"], v, VARIANTS[v])
    # a backprop baseline is the same run for every variant with the same inner optimizer: keep one
    seen, out = set(), []
    for t in tasks:
        ident = t.key if t.method == "hierarchical" else ("bp", t.experiment, t.dataset, t.arch, t.start, t.inner,
                                                           t.budget)
        if t.method == "backprop" and t.experiment == "variants":
            t = Task(**{**t.__dict__, "variant": f"backprop-{t.inner}"})
            ident = t.key
        if ident not in seen:
            seen.add(ident)
            out.append(t)
    return out


# ================================================================================================ execution
def _read_records(path: Path) -> dict:
    out: dict = {}
    if path.exists():
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by an interruption
                    continue
                out[rec["key"]] = rec
    return out


def resolve_devices(devices: Any) -> list:
    """Devices for the runs: "cpu", "auto" (every CUDA device, else the CPU) or a list / comma-separated
    string of device names ("cuda:0,cuda:1")."""
    from .. import cuda as _cuda

    if devices is None or devices == "cpu":
        return ["cpu"]
    if devices == "auto":
        n = len(_cuda.cuda_info()["devices"]) if _cuda.cuda_available() else 0
        return [f"cuda:{i}" for i in range(n)] or ["cpu"]
    names = devices.split(",") if isinstance(devices, str) else list(devices)
    if not names:
        raise ValueError("devices: expected 'cpu', 'auto' or device names, got none")
    out = []
    for name in names:
        dev, index = _cuda.parse_device(str(name).strip())
        if index is not None:
            _cuda.require(index)
        out.append(dev)
    return out


def execute(tasks: Sequence[Task], n_jobs: int = 1, scheduler: Any = None,
            on_result: Optional[Callable[[dict], None]] = None, devices: Any = "cpu") -> list:
    """Run ``tasks`` serially, through joblib (``n_jobs``) or on a Dask cluster (``scheduler``); calls
    ``on_result`` in this process as each run finishes and returns the records in the order of ``tasks``.
    ``devices`` (see :func:`resolve_devices`): the runs go to them in turn, one start per GPU."""
    results: dict = {}
    names = resolve_devices(devices)
    tasks = [t if len(names) == 1 and names[0] == t.device else replace(t, device=names[i % len(names)])
             for i, t in enumerate(tasks)]

    def done(rec: dict) -> None:
        results[rec["key"]] = rec
        if on_result is not None:
            on_result(rec)

    tasks = list(tasks)
    if not tasks:
        return []
    if scheduler is not None:
        from dask.distributed import Client, as_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            futures = client.map(run_task, tasks, pure=False)
            for fut in as_completed(futures):
                done(fut.result())
        finally:
            if client is not scheduler:
                client.close()
    elif n_jobs is None or n_jobs == 1:
        for t in tasks:
            done(run_task(t))
    else:
        from joblib import Parallel, delayed, parallel_config

        with parallel_config(backend="loky", inner_max_num_threads=1):
            for rec in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(delayed(run_task)(t) for t in tasks):
                done(rec)
    return [results[t.key] for t in tasks]


# ================================================================================================ tables
def _pairs(records: Iterable[dict]) -> dict:
    """(experiment, dataset, arch, variant, start) -> {"hier": rec, "bp": rec}."""
    recs = list(records)
    bps = {}
    for r in recs:
        if r["method"] == "backprop":
            bps[(r["experiment"], r["dataset"], r["arch"], r["inner"], r["start"], r["budget"])] = r
    out: dict = {}
    for r in recs:
        if r["method"] != "hierarchical":
            continue
        bp = bps.get((r["experiment"], r["dataset"], r["arch"], r["inner"], r["start"], r["budget"]))
        out[(r["experiment"], r["dataset"], r["arch"], r["variant"], r["start"])] = {"hier": r, "bp": bp}
    return out


def _wtl(pairs: list) -> tuple:
    w = t = l = 0
    for p in pairs:
        if p["bp"] is None:
            continue
        a, b = p["hier"]["train_mse"], p["bp"]["train_mse"]
        if abs(a - b) <= TIE_RTOL * min(a, b):
            t += 1
        elif a < b:
            w += 1
        else:
            l += 1
    return w, t, l


def _stats(recs: list, prefix: str) -> dict:
    J = np.array([r["train_mse"] for r in recs])
    te = np.array([r["test_rmse"] for r in recs])
    return {f"{prefix}_mse_mean": J.mean(), f"{prefix}_mse_best": J.min(), f"{prefix}_mse_worst": J.max(),
            f"{prefix}_test_rmse": te.mean(), f"{prefix}_test_rmse_sd": te.std(),
            f"{prefix}_time": float(np.mean([r["time"] for r in recs])),
            f"{prefix}_work": float(np.mean([r["work"] for r in recs])),
            f"{prefix}_diverged": int(sum(r["status"] == "diverged" for r in recs))}


def summary_rows(records: Iterable[dict], experiment: str) -> list:
    """One row per (dataset, arch, variant): both methods' statistics and the wins/ties/losses."""
    groups: dict = {}
    for key, p in _pairs(records).items():
        if key[0] != experiment:
            continue
        groups.setdefault(key[1:4], []).append(p)
    rows = []
    for (ds, arch, variant), ps in sorted(groups.items()):
        ps = [p for p in ps if p["bp"] is not None]
        if not ps:
            continue
        w, t, l = _wtl(ps)
        row = {"dataset": ds, "network": arch, "variant": variant, "inner": ps[0]["hier"]["inner"], "starts": len(ps),
               "budget": ps[0]["hier"]["budget"]}
        row.update(_stats([p["hier"] for p in ps], "hier"))
        row.update(_stats([p["bp"] for p in ps], "bp"))
        row.update(wins=w, ties=t, losses=l)
        row["hier_outer"] = float(np.mean([p["hier"].get("n_outer", 0) for p in ps]))
        rows.append(row)
    return rows


def _target_time(curve: list, target: float) -> tuple:
    for w, J, t in curve:
        if J <= target:
            return w, t
    return math.nan, math.nan


DEPTH_TARGET = 0.1  # fixed target of the depth experiment: training MSE 0.1 on standardized targets


def depth_rows(records: Iterable[dict], fixed_target: float = DEPTH_TARGET) -> list:
    """Time and work to a target loss as depth grows, two ways: the per-start paired target (the larger of the
    two methods' *best* J along their curves, so both reach it) and a fixed target J <= ``fixed_target`` (with
    how many starts reach it; medians over those that do)."""
    groups: dict = {}
    for key, p in _pairs(records).items():
        if key[0] == "depth" and p["bp"] is not None:
            groups.setdefault((key[1], key[2]), []).append(p)
    rows = []
    for (ds, arch), ps in groups.items():
        depth, width = (int(v) for v in arch.split()[0].split("x"))
        th, tb, wh, wb, fh, fb = [], [], [], [], [], []
        for p in ps:
            best = [min(c[1] for c in p[m]["curve"]) for m in ("hier", "bp")]
            target = max(best) * (1 + 1e-12)
            a, b = _target_time(p["hier"]["curve"], target), _target_time(p["bp"]["curve"], target)
            wh.append(a[0]), th.append(a[1]), wb.append(b[0]), tb.append(b[1])
            fh.append(_target_time(p["hier"]["curve"], fixed_target)[1])
            fb.append(_target_time(p["bp"]["curve"], fixed_target)[1])
        w, t, l = _wtl(ps)
        med = lambda v: float(np.nanmedian(v)) if np.any(np.isfinite(v)) else math.nan  # noqa: E731
        row = {"dataset": ds, "network": arch, "depth": depth, "width": width, "starts": len(ps),
               "hier_time_to_target": med(th), "bp_time_to_target": med(tb),
               "hier_work_to_target": med(wh), "bp_work_to_target": med(wb),
               "time_ratio_hier_over_bp": med(np.array(th) / np.array(tb)),
               "fixed_target": fixed_target,
               "hier_reached_fixed": int(np.sum(np.isfinite(fh))), "bp_reached_fixed": int(np.sum(np.isfinite(fb))),
               "hier_time_to_fixed": med(fh), "bp_time_to_fixed": med(fb)}
        row.update({k: v for k, v in _stats([p["hier"] for p in ps], "hier").items()
                    if k in ("hier_mse_mean", "hier_time", "hier_work")})
        row.update({k: v for k, v in _stats([p["bp"] for p in ps], "bp").items()
                    if k in ("bp_mse_mean", "bp_time", "bp_work")})
        row["hier_best_mse_mean"] = float(np.mean([min(c[1] for c in p["hier"]["curve"]) for p in ps]))
        row["bp_best_mse_mean"] = float(np.mean([min(c[1] for c in p["bp"]["curve"]) for p in ps]))
        row["hier_seconds_per_work"] = row["hier_time"] / max(row["hier_work"], 1e-12)
        row["bp_seconds_per_work"] = row["bp_time"] / max(row["bp_work"], 1e-12)
        row.update(wins=w, ties=t, losses=l)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["width"], r["depth"]))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.4g}"
    return str(v)


def write_table(rows: list, path_csv: Optional[Path], path_md: Optional[Path] = None, columns: Optional[list] = None,
                title: str = "") -> str:
    """Write rows as CSV (every column) and Markdown (``columns``: names or (header, name or callable));
    returns the Markdown."""
    if not rows:
        return ""
    if path_csv is not None:
        keys = [k for k in rows[0] if not k.startswith("_")]
        with open(path_csv, "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            wr.writeheader()
            for r in rows:
                wr.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in keys})
    cols = _named(columns or [k for k in rows[0] if not k.startswith("_")])
    lines = ([f"### {title}", ""] if title else []) + ["| " + " | ".join(h for h, _ in cols) + " |",
                                                          "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, c) for _, c in cols) + " |")
    md = "\n".join(lines) + "\n"
    if path_md is not None:
        path_md.write_text(md)
    return md


def _named(cols: list) -> list:
    return [c if isinstance(c, tuple) else (c, c) for c in cols]


def _cell(r: dict, c: Any) -> str:
    if callable(c):
        return c(r)
    return _fmt(r.get(c, ""))


_MAIN_COLS = [
    ("network", "network"), ("method", lambda r: r["_m"]), ("starts", "starts"),
    ("train MSE mean", lambda r: _fmt(r[f"{r['_p']}_mse_mean"])),
    ("best", lambda r: _fmt(r[f"{r['_p']}_mse_best"])), ("worst", lambda r: _fmt(r[f"{r['_p']}_mse_worst"])),
    ("test RMSE (orig. scale)", lambda r: f"{r[r['_p'] + '_test_rmse']:.4g} ± {r[r['_p'] + '_test_rmse_sd']:.2g}"),
    ("time s", lambda r: _fmt(r[f"{r['_p']}_time"])), ("work", lambda r: _fmt(r[f"{r['_p']}_work"])),
    ("diverged", lambda r: _fmt(r[f"{r['_p']}_diverged"])),
    ("hier W/T/L", lambda r: f"{r['wins']}/{r['ties']}/{r['losses']}" if r["_p"] == "hier" else ""),
]


def _long(rows: list) -> list:
    out = []
    for r in rows:
        out.append({**r, "_m": "hierarchical" if r["variant"] == "default" else f"hier ({r['variant']})", "_p": "hier"})
        out.append({**r, "_m": f"backprop ({r['inner']})", "_p": "bp"})
    return out


# ================================================================================================ figures
def _median_curve(curves: list, grid: np.ndarray) -> tuple:
    vals = []
    for c in curves:
        w = np.array([p[0] for p in c])
        J = np.array([p[1] for p in c])
        # log J interpolated linearly in the work between the recorded points (held after the last one)
        vals.append(np.exp(np.interp(grid, w, np.log(np.maximum(J, 1e-300)))))
    V = np.array(vals)
    return np.nanmedian(V, axis=0), np.nanmin(V, axis=0), np.nanmax(V, axis=0)


def plot_curves(pairs: list, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    budget = max(p["hier"]["budget"] for p in pairs)
    grid = np.linspace(0, budget, 200)
    ax = axes[0]
    for name, key, color in (("hierarchical", "hier", "C0"), ("backprop", "bp", "C1")):
        curves = [p[key]["curve"] for p in pairs if p[key] is not None and p[key]["curve"]]
        if not curves:
            continue
        med, lo, hi = _median_curve(curves, grid)
        ax.plot(grid, med, color=color, label=f"{name} (median of {len(curves)} starts)")
        ax.fill_between(grid, lo, hi, color=color, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("work (full-gradient equivalents)")
    ax.set_ylabel("training MSE J (standardized)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    # one start in detail, blocks marked
    ax = axes[1]
    p = pairs[0]
    if p["bp"] is not None:
        c = p["bp"]["curve"]
        ax.plot([q[0] for q in c], [q[1] for q in c], color="C1", label="backprop")
    c = p["hier"]["curve"]
    ax.plot([q[0] for q in c], [q[1] for q in c], color="0.6", lw=1)
    steps = p["hier"].get("steps", [])
    blocks = sorted({(s[2], s[3]) for s in steps})
    cmap = plt.get_cmap("viridis", max(len(blocks), 2))
    for k, b in enumerate(blocks):
        pts = [s for s in steps if (s[2], s[3]) == b]
        ax.scatter([s[0] for s in pts], [s[1] for s in pts], s=16, color=cmap(k),
                   edgecolors=["k" if s[4] else "none" for s in pts],
                   label=f"layers {b[0]}-{b[1]}" if b[0] != b[1] else f"layer {b[0]}")
    ax.set_yscale("log")
    ax.set_xlabel("work (full-gradient equivalents)")
    ax.set_title(f"start {p['hier']['start']}: trained block per outer iteration (black edge: random)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_depth(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for width, ls in zip(sorted({r["width"] for r in rows}), ("-", "--", ":")):
        rs = sorted([r for r in rows if r["width"] == width], key=lambda r: r["depth"])
        d = [r["depth"] for r in rs]
        for key, color, name in (("hier", "C0", "hierarchical"), ("bp", "C1", "backprop")):
            axes[0].plot(d, [r[f"{key}_time_to_target"] for r in rs], ls, color=color, marker="o",
                         label=f"{name}, width {width}")
            axes[1].plot(d, [r[f"{key}_work_to_target"] for r in rs], ls, color=color, marker="o",
                         label=f"{name}, width {width}")
    for ax, lab in zip(axes, ("median seconds to target J", "median work to target J")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden layers")
        ax.set_ylabel(lab)
        ax.legend(fontsize=7)
    axes[0].set_title("paired target: the larger of the two best J of a start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ================================================================================================ the study
def run(out_dir: Any, quick: bool = False, n_starts: int = 20, n_jobs: int = 1, scheduler: Any = None,
        datasets: Optional[Sequence[str]] = None, budget: Optional[float] = None,
        experiments: Sequence[str] = ("main", "depth", "variants"), depth_dataset: str = "concrete",
        depth_starts: Optional[int] = None, variant_starts: Optional[int] = None, resume: bool = True,
        progress: bool = True, figures: bool = True, devices: Any = "cpu") -> dict:
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
    experiments : subset of ("main", "depth", "variants")
    depth_dataset : str
        Data set of the depth-scaling experiment.
    depth_starts, variant_starts : int, optional
        Starts of those experiments (default min(n_starts, 5) and min(n_starts, 10)).
    devices : "cpu", "auto" or device names
        Where the runs train: "auto" spreads them over every CUDA device in turn (one start per GPU; give
        ``n_jobs`` = the number of GPUs so they run at once), or the CPU when there is none.

    Returns
    -------
    dict with the records and the rows of every table.
    """
    if isinstance(n_starts, bool) or not isinstance(n_starts, (int, np.integer)) or n_starts < 1:
        raise ValueError(f"n_starts: expected an int >= 1, got {n_starts!r}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs: expected an int >= 1 or -1, got {n_jobs!r}")
    for e in experiments:
        if e not in ("main", "depth", "variants"):
            raise ValueError(f"experiments: expected a subset of ('main', 'depth', 'variants'), got {e!r}")
    if budget is not None and not (isinstance(budget, (int, float)) and budget > 0):
        raise ValueError(f"budget: expected a number > 0, got {budget!r}")
    for name, v in (("depth_starts", depth_starts), ("variant_starts", variant_starts)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{name}: expected an int >= 1 (or None for the default), got {v!r}")
    cfg = _config(quick, int(n_starts), datasets, budget, depth_dataset, depth_starts, variant_starts)
    devices = resolve_devices(devices)  # checked before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = make_tasks(cfg, experiments)
    rec_path = out / "records.jsonl"
    known = _read_records(rec_path) if resume else {}
    if not resume and rec_path.exists():
        rec_path.unlink()
    todo = [t for t in tasks if t.key not in known]
    bar = ProgressBar(len(tasks), desc="hierarchical study") if progress else None
    n_done = len(tasks) - len(todo)
    if bar is not None:
        bar.update(n_done, f"{n_done} resumed", force=True)
    t0 = time.perf_counter()

    with open(rec_path, "a") as fh:
        def on_result(rec: dict) -> None:
            nonlocal n_done
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            known[rec["key"]] = rec
            n_done += 1
            if bar is not None:
                bar.update(n_done, f"{rec['dataset']} {rec['arch']} {rec['method']} start {rec['start']}")

        execute(todo, n_jobs=n_jobs, scheduler=scheduler, on_result=on_result, devices=devices)
    if bar is not None:
        bar.close(f"done in {time.perf_counter() - t0:.1f} s")
    records = [known[t.key] for t in tasks]
    return write_outputs(records, out, cfg, figures=figures)


def write_outputs(records: list, out: Path, cfg: dict, figures: bool = True) -> dict:
    """Tables (CSV + Markdown) and figures from the records."""
    result: dict = {"records": records, "main": [], "depth": [], "variants": []}
    md = ["# Hierarchical multi-scale optimization vs backpropagation: multi-start study", "",
          f"Budget {cfg['budget']:g} full-gradient equivalents per run (depth: {cfg['depth_budget']:g}); Adam lr 1e-3, "
          "batch 32 for both methods unless a variant says otherwise; same initial parameters and split per start. "
          f"W/T/L: hierarchical final training MSE lower / within {TIE_RTOL:.0%} / higher than backprop's on the same "
          "start. Training MSE is on standardized targets; test RMSE on the original scale (90/10 split).", ""]
    main = summary_rows(records, "main")
    result["main"] = main
    pairs = _pairs(records)
    for ds in dict.fromkeys(r["dataset"] for r in main):
        rows = [r for r in main if r["dataset"] == ds]
        write_table(rows, out / f"table_{ds}.csv")
        text = write_table(_long(rows), None, out / f"table_{ds}.md", _MAIN_COLS, title=ds)
        md += [text]
        if figures:
            for arch in dict.fromkeys(r["network"] for r in rows):
                ps = [p for k, p in sorted(pairs.items()) if k[0] == "main" and k[1] == ds and k[2] == arch]
                if ps:
                    plot_curves(ps, out / f"curves_{ds}_{arch.replace(' ', '_')}.png", f"{ds}, {arch}")
    dep = depth_rows(records)
    result["depth"] = dep
    if dep:
        cols = ["network", "starts", ("hier final MSE", "hier_mse_mean"), ("bp final MSE", "bp_mse_mean"),
                ("hier best MSE", "hier_best_mse_mean"), ("bp best MSE", "bp_best_mse_mean"),
                ("hier s to paired target", "hier_time_to_target"), ("bp s to paired target", "bp_time_to_target"),
                ("time ratio hier/bp", "time_ratio_hier_over_bp"),
                ("hier work to paired target", "hier_work_to_target"),
                ("bp work to paired target", "bp_work_to_target"),
                (f"hier reached J<={DEPTH_TARGET:g}", "hier_reached_fixed"),
                (f"bp reached J<={DEPTH_TARGET:g}", "bp_reached_fixed"),
                ("hier s to it", "hier_time_to_fixed"), ("bp s to it", "bp_time_to_fixed"),
                ("hier s/work", "hier_seconds_per_work"), ("bp s/work", "bp_seconds_per_work"),
                ("hier W/T/L (final)", lambda r: f"{r['wins']}/{r['ties']}/{r['losses']}")]
        md += [write_table(dep, out / "depth.csv", out / "depth.md", cols,
                           title=f"Depth scaling on {dep[0]['dataset']}: median time and work to a target loss "
                                 "(paired target: the larger of the two methods' best J of a start)")]
        if figures:
            for arch in dict.fromkeys(r["network"] for r in dep):
                ps = [p for k, p in sorted(pairs.items()) if k[0] == "depth" and k[2] == arch]
                if ps:
                    plot_curves(ps, out / f"curves_depth_{arch.replace(' ', '_')}.png",
                                f"{ps[0]['hier']['dataset']}, {arch}")
        if figures:
            plot_depth(dep, out / "depth_scaling.png")
    var = summary_rows(records, "variants")
    result["variants"] = var
    if var:
        cols = ["dataset", "network", "variant", "inner", "starts", ("hier MSE mean", "hier_mse_mean"),
                ("hier best", "hier_mse_best"), ("hier worst", "hier_mse_worst"), ("bp MSE mean", "bp_mse_mean"),
                ("hier time s", "hier_time"), ("bp time s", "bp_time"), ("outer its", "hier_outer"),
                ("W/T/L", lambda r: f"{r['wins']}/{r['ties']}/{r['losses']}")]
        md += [write_table(var, out / "variants.csv", out / "variants.md", cols,
                           title="Variants (each against backprop with the same inner optimizer and budget)")]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    return result


# ================================================================================================ demo and CLI
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
    w, t, l = _wtl(pairs)
    print(f"hierarchical vs backprop on the same starts: {w} wins, {t} ties, {l} losses (training MSE)")
    try:
        plot_curves(pairs, out / "hierarchical_demo.png", f"{dataset}, 4x32 tanh")
        print(f"saved J against work to {out / 'hierarchical_demo.png'}")
    except ImportError:
        print("(matplotlib is not installed: no figure)")
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``sensinet experiment hierarchical``."""
    parser.add_argument("--out", type=Path, default=Path("results/hierarchical"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="a small configuration (under a minute)")
    parser.add_argument("--starts", type=int, default=20, help="starts per data set and network (default 20)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (joblib)")
    parser.add_argument("--scheduler", default=None, help="dask.distributed scheduler address (runs there)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=None, help="data sets of the main table")
    parser.add_argument("--budget", type=float, default=None, help="work budget per run (full-gradient equivalents)")
    parser.add_argument("--experiments", nargs="+", choices=("main", "depth", "variants"),
                        default=["main", "depth", "variants"], help="which parts to run")
    parser.add_argument("--depth-dataset", default="concrete", choices=DATASETS)
    parser.add_argument("--depth-starts", type=int, default=None)
    parser.add_argument("--variant-starts", type=int, default=None)
    parser.add_argument("--no-resume", action="store_true", help="start over instead of skipping finished runs")
    parser.add_argument("--devices", default="cpu",
                        help="cpu (default), auto (every CUDA device in turn) or names such as cuda:0,cuda:1")
    return parser


def main(args: argparse.Namespace) -> int:
    """Entry point of ``sensinet experiment hierarchical``."""
    res = run(args.out, quick=args.quick, n_starts=args.starts, n_jobs=args.jobs, scheduler=args.scheduler,
              datasets=args.datasets, budget=args.budget, experiments=args.experiments,
              depth_dataset=args.depth_dataset, depth_starts=args.depth_starts, variant_starts=args.variant_starts,
              resume=not args.no_resume, devices=args.devices)
    print((Path(args.out) / "summary.md").read_text())
    print(f"tables and figures in {args.out}/ ({len(res['records'])} runs)")
    return 0


if __name__ == "__main__":  # python -m sensinet.experiments.hierarchical
    import sys

    sys.exit(main(add_arguments(argparse.ArgumentParser(prog="sensinet experiment hierarchical")).parse_args()))
