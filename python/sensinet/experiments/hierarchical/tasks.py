"""The study's runs: one task per (data set, network, method, start), run serially, by joblib or on Dask."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .._executor import execute as run_all


DATASETS = ("sin3", "friedman10", "concrete", "energy", "yacht", "power_plant")


SIMULATED = ("sin3", "friedman10")


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


@dataclass(frozen=True)
class Task:
    """One run: a method on one start of one (data set, network) setting."""

    experiment: str  # main | depth | variants | scale
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
    dtype: str = "float64"
    every: int = 5  # backprop: epochs between two points of its curve
    device: str = "cpu"  # where the run trains (not part of its identity: a resumed study may move)
    data: str = ""  # digest of a user data set (sensinet.datasets.data_digest); "" for the embedded ones

    @property
    def arch(self) -> str:
        return f"{self.depth}x{self.width} {self.activation}"

    @property
    def key(self) -> str:
        body = json.dumps({k: v for k, v in self.__dict__.items() if k != "device" and (k != "data" or v)},
                          sort_keys=True)
        return hashlib.sha1(body.encode()).hexdigest()[:16]

    @property
    def pair(self) -> tuple:
        """What a hierarchical run and its backprop baseline have in common."""
        return (self.experiment, self.dataset, self.arch, self.variant, self.start)


def _load_data(name: str, n_samples: int, shared: Optional[dict] = None):
    from ...datasets import load_uci, make_regression_function

    if shared and name in shared:  # the user's data set
        return shared[name]
    if name in SIMULATED:
        return make_regression_function(name, n_samples=n_samples, noise=0.1, seed=0)
    return load_uci(name)


def _prepare(task: Task, shared: Optional[dict] = None):
    from ...datasets import Standardizer, train_test_split

    data = _load_data(task.dataset, task.n_samples, shared)
    X_tr, X_te, y_tr, y_te = train_test_split(data.X, data.y, test_size=0.1, seed=task.start)
    xs, ys = Standardizer().fit(X_tr), Standardizer().fit(y_tr)
    return xs.transform(X_tr), ys.transform(y_tr), xs.transform(X_te), y_te, ys


def _network(task: Task, n_inputs: int):
    from ...layers import Dense
    from ...network import Network

    layers = [Dense(task.width, task.activation) for _ in range(task.depth)] + [Dense(1)]
    return Network(n_inputs, layers, seed=1000 + task.start, device=task.device, dtype=task.dtype)


def _thin(curve: list, n: int = 120) -> list:
    if len(curve) <= n:
        return [list(map(float, c)) for c in curve]
    idx = np.unique(np.linspace(0, len(curve) - 1, n).round().astype(int))
    return [list(map(float, curve[i])) for i in idx]


def run_task(task: Task, shared: Optional[dict] = None) -> dict:
    """Run one task (in any process) and return its JSON-able record; ``shared``: {name: the user's data set}."""
    from ...hierarchical import HierarchicalOptimizer
    from ...errors import DivergenceError
    from ...optimizers import LBFGS, Adam, SGD

    Xtr, ytr, Xte, y_te, ys = _prepare(task, shared)
    net = _network(task, Xtr.shape[1])
    rec: dict = {"key": task.key, **task.__dict__, "arch": task.arch, "status": "ok", "n_params": net.n_params}
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
                rec.update(work=res.work, n_outer=res.n_outer, stop=res.status, monitor_seconds=res.monitor_seconds,
                           seconds=res.seconds,
                           neurons=[list(s.neurons) for s in res.steps if s.neurons is not None],
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
                done, monitor = 0, 0.0
                total = int(task.budget)
                data = net.prepare(Xtr, ytr)
                t0 = time.perf_counter()
                try:
                    while done < total:
                        e = min(task.every, total - done)
                        net.fit(data, optimizer=opt, epochs=e, batch_size=min(task.batch_size, Xtr.shape[0]),
                                seed=task.start * 100003 + done, n_threads=1)
                        done += e
                        tm = time.perf_counter()
                        clock = tm - t0 - monitor  # without the curve's own evaluations of J, as the hierarchical trace
                        J = net.objective(data, n_threads=1)
                        monitor += time.perf_counter() - tm
                        curve.append((float(done), J, clock))
                finally:
                    rec["work"] = float(done)
                    rec["monitor_seconds"] = monitor
            rec["n_outer"] = 0
    except DivergenceError:
        rec["status"] = "diverged"
    # the run's own clock (from its first step, monitoring evaluations of J left out), the same for both methods
    rec["time"] = rec.pop("seconds", time.perf_counter() - t0 - rec.get("monitor_seconds", 0.0))
    J = net.objective(Xtr, ytr, n_threads=1)
    pred = ys.inverse_transform(net.predict(Xte, n_threads=1).ravel())
    rec["train_mse"] = float(J)
    rec["test_rmse"] = float(np.sqrt(np.mean((pred - y_te) ** 2)))
    rec["curve"] = _thin(curve)
    rec.setdefault("work", 0.0)
    return rec


def study_config(quick: bool, n_starts: int, datasets: Optional[Sequence[str]], budget: Optional[float],
            depth_dataset: str, depth_starts: Optional[int], variant_starts: Optional[int],
            scale_starts: Optional[int] = None, scale_budget: Optional[float] = None,
            user: Sequence[str] = ()) -> dict:
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
    known = tuple(DATASETS) + tuple(user)
    for d in cfg["datasets"]:
        if d not in known:
            raise ValueError(f"datasets: expected names from {known}, got {d!r}")
    if depth_dataset not in known:
        raise ValueError(f"depth_dataset: expected one of {known}, got {depth_dataset!r}")
    cfg["depth_dataset"] = depth_dataset
    from .scale import scale_config

    cfg.update(scale_config(quick, scale_starts, scale_budget))
    return cfg


def make_tasks(cfg: dict, experiments: Sequence[str], digests: Optional[dict] = None) -> list:
    """The study's runs; ``digests``: {user data set name: its data digest}, part of those runs' keys."""
    tasks = []
    ns = cfg["n_samples"]
    digests = digests or {}

    def both(exp: str, ds: str, depth: int, width: int, act: str, k: int, budget: float, variant: str = "default",
             options: Optional[dict] = None, **setup: Any) -> None:
        options = dict(options or {})
        inner = options.pop("inner", "adam")
        common = dict(experiment=exp, dataset=ds, depth=depth, width=width, activation=act, start=k, budget=budget,
                      inner=inner, n_samples=ns, data=digests.get(ds, ""), **setup)
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
    if "scale" in experiments:
        from .scale import SCALE_ALT_LR, scale_options

        for depth, width in cfg["scale_archs"]:
            for k in range(cfg["scale_starts"]):
                for v in cfg["scale_variants"]:
                    both("scale", cfg["scale_dataset"], depth, width, "tanh", k, cfg["scale_budget"], v,
                         scale_options(v, width), batch_size=cfg["scale_batch"], dtype="float32", every=1)
                tasks.append(replace(tasks[-1], lr=SCALE_ALT_LR))  # the second baseline: backprop at another lr
    # a backprop baseline is the same run for every variant with the same inner optimizer: keep one
    seen, out = set(), []
    for t in tasks:
        ident = t.key if t.method == "hierarchical" else ("bp", t.experiment, t.dataset, t.arch, t.start, t.inner,
                                                           t.budget)
        if t.method == "backprop" and t.experiment in ("variants", "scale"):
            t = Task(**{**t.__dict__, "variant": f"backprop-{t.inner}"})
            ident = t.key
        if ident not in seen:
            seen.add(ident)
            out.append(t)
    return out


def resolve_devices(devices: Any) -> list:
    """Devices for the runs: "cpu", "auto" (every CUDA device, else the CPU) or a list / comma-separated
    string of device names ("cuda:0,cuda:1")."""
    from ... import cuda as _cuda

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
            on_result: Optional[Callable[[dict], None]] = None, devices: Any = "cpu", shared: Optional[dict] = None) -> list:
    """Run ``tasks`` through the studies' executor (serially, joblib or Dask); ``devices`` (see
    :func:`resolve_devices`): the runs go to them in turn, one start per GPU."""
    return run_all(assign_devices(tasks, devices), run_task, n_jobs=n_jobs, scheduler=scheduler, on_result=on_result,
                   shared=shared)


def assign_devices(tasks: Sequence[Task], devices: Any) -> list:
    """The tasks spread over ``devices`` in turn (see :func:`resolve_devices`)."""
    names = resolve_devices(devices)
    return [t if len(names) == 1 and names[0] == t.device else replace(t, device=names[i % len(names)])
            for i, t in enumerate(tasks)]
