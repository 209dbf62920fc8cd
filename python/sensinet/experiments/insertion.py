"""`sensinet experiment insertion`: the layer-insertion study of Schiela et al. (arXiv:2311.15995) on the two
spirals (300 points per class, 75/25 split, cross-entropy on 2 logits, full-batch gradient descent).

Configurations (30 runs each by default; the runs differ in the initialisation seed):
* ff5:   [5] relu, insert at epoch 450 of 1850 -> [5,5] (lr 0.2), against [5] and [5,5] from scratch;
* ff44:  [4,4] relu (lr 0.2), insertion at the largest against the smallest score;
* res:   Linear(2,3) stem + one tanh residual block of width 3, a second block inserted (lr 0.1), against
         one block and two blocks from scratch;
* res2:  two blocks, insertion at the largest against the smallest score;
* when:  the [5] net with the insertion at epochs 150, 250, ..., 850.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .._plotting import figure, have_matplotlib, save
from .._tables import write_table
from .._progress import ProgressBar
from ..datasets import data_digest, make_spirals, train_test_split
from ..insertion import LayerInsertion
from ..layers import Dense, Residual
from ..losses import error
from ..network import Network
from ..optimizers import SGD
from ._executor import run_resumable
from ._user_data import add_data_arguments, data_from_arguments, standardized_split, user_datasets

EPOCHS, INSERT_AT = 1850, 450
CURVE_POINTS = 200  # points kept of each run's curves (the figures; a run's record stays small)
QUICK_EPOCHS = 600  # --quick: the schedule shrinks in proportion, and every label names the epochs it ran


def _test_error(net: Network, X, y) -> float:
    return error(net.loss, net.forward(X), y)


SPIRALS = (2, 2, "cross_entropy")  # the spirals' network shape: inputs, outputs, loss


def _data(seed: int = 0, dataset: str = "spirals", shared: Optional[dict] = None) -> tuple:
    """(X_train, X_test, y_train, y_test), 75/25; a user data set standardized on its training part (the
    target too, for regression)."""
    if dataset == "spirals":
        d = make_spirals(300)
        return train_test_split(d.X, d.y, test_size=0.25, seed=seed)
    return standardized_split(shared[dataset], 0.25, seed)


def _shape(dataset: str, shared: Optional[dict]) -> tuple:
    """(inputs, outputs, loss) of the study's networks on a data set."""
    if dataset == "spirals":
        return SPIRALS
    d = shared[dataset]
    if d.task == "classification":
        return d.n_features, int(d.y.max()) + 1, "cross_entropy"
    return d.n_features, 1, "mse"


def _ff(widths: list, seed: int, init: str = "auto", shape: tuple = SPIRALS) -> Network:
    n_in, n_out, loss = shape
    return Network(n_in, [Dense(w, "relu") for w in widths] + [Dense(n_out)], loss=loss, seed=seed, init=init)


def _res(blocks: int, seed: int, init: str = "auto", stem: str = "identity", shape: tuple = SPIRALS) -> Network:
    """Linear(n_in, 3) stem (the reference's has tanh after it: ``stem="tanh"``), tanh residual blocks of width 3."""
    n_in, n_out, loss = shape
    return Network(n_in, [Dense(3, stem)] + [Residual(3, "tanh", hidden=3) for _ in range(blocks)] + [Dense(n_out)],
                   loss=loss, seed=seed, init=init)


def _thin(values: Any, n: int = CURVE_POINTS) -> tuple:
    """(positions, values) of at most ``n`` evenly spaced entries, the last one included."""
    values = np.asarray(values, dtype=np.float64)
    idx = np.unique(np.linspace(0, len(values) - 1, min(n, len(values))).round().astype(int)) if len(values) else []
    return [int(i) for i in idx], [float(values[i]) for i in idx]


def _run(net: Network, data: tuple, lr: float, epochs: int, insertion: Optional[LayerInsertion]) -> dict:
    X_tr, X_te, y_tr, y_te = data
    t0 = time.perf_counter()
    if insertion is None:
        curve, times, errs = [], [], []

        def cb(info: dict) -> bool:
            if info["epoch_end"]:
                curve.append(info["loss"])
                times.append(time.perf_counter() - t0)
                if len(curve) % 10 == 0:
                    errs.append(_test_error(net, X_te, y_te))
            return False

        net.fit(X_tr, y_tr, optimizer=SGD(lr=lr), epochs=epochs, batch_size=len(X_tr), shuffle=False, callback=cb)
        final, n_params, ins = net, [net.n_params] * epochs, []
    else:
        final, hist = insertion.fit(net, X_tr, y_tr, epochs=epochs, optimizer=SGD(lr=lr),
                                    validation_data=(X_te, y_te), eval_every=10)
        curve, times, errs, n_params, ins = hist.loss, hist.seconds, hist.val_error, hist.n_params, hist.insertions
    at, loss = _thin(curve)
    err_at, err = _thin(errs)
    return {"epochs": [i + 1 for i in at], "loss": loss, "seconds": _thin(times)[1], "test_error_epochs":
            [10 * (i + 1) for i in err_at], "test_error": err,
            "final_loss": float(final.objective(X_tr, y_tr)), "final_test_error": _test_error(final, X_te, y_te),
            "work": float(np.sum(n_params)) * len(X_tr), "insert_positions": [i.position for i in ins],
            "time": times[-1] if len(times) else 0.0}


def _epoch(e: int, quick: bool) -> int:
    """An epoch of the full schedule, scaled to the quick one."""
    return max(1, round(e * QUICK_EPOCHS / EPOCHS)) if quick else e


def _configs(quick: bool, preset: Optional[str] = None, init: str = "auto", shape: tuple = SPIRALS) -> dict:
    """The configurations; with a ``preset`` the insertions use it and the residual nets get the reference's
    tanh stem. ``shape``: the networks' (inputs, outputs, loss) for the data set."""
    def ins(choose: str = "largest", at: int = INSERT_AT) -> LayerInsertion:
        return LayerInsertion(at_epochs=[_epoch(at, quick)], choose=choose, preset=preset)

    stem = "identity" if preset is None else "tanh"

    def ff(widths: list, seed: int) -> Network:
        return _ff(widths, seed, init, shape)

    def res(blocks: int, seed: int) -> Network:
        return _res(blocks, seed, init, stem, shape)

    cfg = {
        "ff5": [("[5] + insertion -> [5,5]", lambda s: ff([5], s), 0.2, ins()),
                ("[5] only", lambda s: ff([5], s), 0.2, None),
                ("[5,5] from scratch", lambda s: ff([5, 5], s), 0.2, None)],
        "ff44": [("[4,4] insert at largest score", lambda s: ff([4, 4], s), 0.2, ins("largest")),
                 ("[4,4] insert at smallest score", lambda s: ff([4, 4], s), 0.2, ins("smallest"))],
        "res": [("1 block + insertion -> 2 blocks", lambda s: res(1, s), 0.1, ins()),
                ("1 block only", lambda s: res(1, s), 0.1, None),
                ("2 blocks from scratch", lambda s: res(2, s), 0.1, None)],
        "res2": [("2 blocks insert at largest score", lambda s: res(2, s), 0.1, ins("largest")),
                 ("2 blocks insert at smallest score", lambda s: res(2, s), 0.1, ins("smallest"))],
        "when": [(f"[5] insert at epoch {_epoch(e, quick)}", lambda s: ff([5], s), 0.2, ins(at=e))
                 for e in ((150, 450, 850) if quick else range(150, 851, 100))],
    }
    return cfg


@dataclass(frozen=True)
class InsertionTask:
    """One run: variant ``variant`` (its index in the configuration) of configuration ``config``, seed ``run``."""

    config: str
    variant: int
    run: int
    quick: bool
    preset: Optional[str] = None
    init: str = "auto"
    dataset: str = "spirals"
    data: str = ""  # digest of a user data set

    @property
    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:16]


def run_task(task: InsertionTask, shared: Optional[dict] = None) -> dict:
    """One run's record (in any process): final loss and test error, work, insertions, thinned curves."""
    cfg = _configs(task.quick, task.preset, task.init, _shape(task.dataset, shared))
    label, make, lr, ins = cfg[task.config][task.variant]
    out = _run(make(task.run), _data(0, task.dataset, shared), lr, QUICK_EPOCHS if task.quick else EPOCHS, ins)
    return dict(out, key=task.key, config=task.config, label=label, run=task.run, dataset=task.dataset)


def run(out_dir, quick: bool = False, runs: int = 30, configs: Optional[list] = None, progress: bool = True,
        preset: Optional[str] = None, init: str = "auto", data: Any = None, n_jobs: int = 1, scheduler: Any = None,
        resume: bool = True) -> dict:
    """Run the study; write CSV + Markdown tables and figures into out_dir; return the summary rows.
    ``preset`` ("paper", "v2") runs the published settings of the method (and the reference's residual
    stem); ``init`` the networks' initialisation ("torch": PyTorch's, as the reference). ``data``: one user
    data set (a :class:`sensinet.datasets.Dataset` or an ``(X, y)`` pair) in place of the spirals, with the
    same configurations (inputs and outputs from the data, cross-entropy or MSE by its task). ``n_jobs`` /
    ``scheduler`` run the runs in parallel with the same results; finished runs are kept in ``runs.jsonl``
    and skipped when the study runs again (``resume=False`` starts over)."""
    if isinstance(runs, bool) or not isinstance(runs, (int, np.integer)) or runs < 1:
        raise ValueError(f"runs: expected an int >= 1, got {runs!r}")
    runs = min(runs, 3) if quick else runs
    if init not in ("auto", "he_uniform", "glorot", "torch"):
        raise ValueError(f"init: expected one of ('auto', 'he_uniform', 'glorot', 'torch'), got {init!r}")
    if preset not in (None, "paper", "v2"):
        raise ValueError(f"preset: expected 'paper' or 'v2', got {preset!r}")
    shared = user_datasets(data)
    if len(shared) > 1:
        raise ValueError(f"data: the insertion study runs on one data set at a time, got {len(shared)}")
    dataset = next(iter(shared), "spirals")
    allcfg = _configs(quick, preset, init, _shape(dataset, shared))
    chosen = configs or list(allcfg)
    for c in chosen:
        if c not in allcfg:
            raise ValueError(f"configs: expected names from {tuple(allcfg)}, got {c!r}")
    out = Path(out_dir)  # created only once the arguments are known to be good
    out.mkdir(parents=True, exist_ok=True)
    digest = data_digest(shared[dataset]) if shared else ""
    tasks = [InsertionTask(c, v, r, bool(quick), preset, init, dataset, digest)
             for c in chosen for v in range(len(allcfg[c])) for r in range(runs)]
    bar = ProgressBar(len(tasks), desc="insertion study") if progress else None
    recs = run_resumable(tasks, run_task, out, n_jobs=n_jobs, scheduler=scheduler, resume=resume,
                         shared=shared or None, records="runs.jsonl",
                         on_result=None if bar is None else lambda rec, n: bar.update(n, rec["config"]))
    if bar is not None:
        bar.close()
    rows, curves = [], {}
    for cname in chosen:
        for v, (label, *_) in enumerate(allcfg[cname]):
            res = [rec for rec, t in zip(recs, tasks) if (t.config, t.variant) == (cname, v)]
            fl = np.array([x["final_loss"] for x in res])
            fe = np.array([x["final_test_error"] for x in res])
            tm = np.array([x["time"] for x in res])
            wk = np.array([x["work"] for x in res])
            pos = [p for x in res for p in x["insert_positions"]]
            rows.append({"config": cname, "variant": label, "runs": runs, "train_loss_mean": fl.mean(),
                         "train_loss_std": fl.std(), "train_loss_min": fl.min(), "train_loss_max": fl.max(),
                         "test_error_mean": fe.mean(), "test_error_std": fe.std(), "seconds_mean": tm.mean(),
                         "work_mean": wk.mean(),
                         "positions": ";".join(f"{p}:{pos.count(p)}" for p in sorted(set(pos)))})
            curves[(cname, label)] = res
    _saved_compute(rows)
    _write(out, rows)
    with open(out / "records.jsonl", "w") as fh:  # one line per run: the paired comparisons need them
        for (cname, label), res in curves.items():
            for r, x in enumerate(res):
                fh.write(json.dumps({"config": cname, "variant": label, "run": r, "final_loss": x["final_loss"],
                                     "final_test_error": x["final_test_error"],
                                     "insert_positions": x["insert_positions"]}) + "\n")
    _figures(out, curves)
    return {"rows": rows, "out_dir": str(out)}


def _saved_compute(rows: list) -> None:
    """Work (parameter-sample products over training) relative to training the large net from the start."""
    ref = {r["config"]: r["work_mean"] for r in rows if "from scratch" in r["variant"]}
    for r in rows:
        base = ref.get(r["config"])
        r["work_vs_large_from_start"] = r["work_mean"] / base if base else float("nan")


_SUMMARY_COLUMNS = [
    ("config", "config"), ("variant", "variant"), ("runs", "runs"),
    ("train loss mean ± std [min, max]", lambda r: f"{r['train_loss_mean']:.4f} ± {r['train_loss_std']:.4f} "
                                                   f"[{r['train_loss_min']:.4f}, {r['train_loss_max']:.4f}]"),
    ("test error mean ± std", lambda r: f"{r['test_error_mean']:.3f} ± {r['test_error_std']:.3f}"),
    ("seconds", lambda r: f"{r['seconds_mean']:.3f}"),
    ("work vs large from start", lambda r: f"{r['work_vs_large_from_start']:.2f}"),
    ("insert positions", lambda r: r["positions"] or "-"),
]


def _write(out: Path, rows: list) -> None:
    text = write_table(rows, out / "insertion_summary.csv", out / "insertion_summary.md", _SUMMARY_COLUMNS)
    print(text, end="")

def _when_figure(out: Path, items: list, curves: dict) -> None:
    """Final training loss and test error against the insertion epoch (median, quartiles over runs), with
    the fixed architectures as horizontal references when the ff5 configuration ran too."""
    fig, axes = figure((11, 3.8), 1, 2)
    at = np.array([int(label.rsplit(" ", 1)[1]) for label, _ in items])
    for ax, key, name in ((axes[0], "final_loss", "final training loss"),
                          (axes[1], "final_test_error", "final test error")):
        V = np.array([[r[key] for r in res] for _, res in items])
        q1, med, q3 = np.percentile(V, [25, 50, 75], axis=1)
        ax.errorbar(at, med, yerr=[med - q1, q3 - med], fmt="o-", capsize=3, label="[5] -> [5,5] at that epoch")
        for ref, color in (("[5] only", "0.5"), ("[5,5] from scratch", "C2")):
            if ("ff5", ref) in curves:
                ax.axhline(np.median([r[key] for r in curves[("ff5", ref)]]), color=color, ls="--", label=ref)
        ax.set_xlabel("insertion epoch")
        ax.set_ylabel(f"{name} (median, quartile bars)")
        ax.legend(fontsize=7)
    fig.suptitle("layer insertion study: when to insert")
    save(fig, out / "insertion_when.png", dpi=100)


def _figures(out: Path, curves: dict) -> None:
    if not have_matplotlib():
        print("(matplotlib is not installed: no figures)")
        return
    by_cfg: dict = {}
    for (cname, label), res in curves.items():
        by_cfg.setdefault(cname, []).append((label, res))
    for cname, items in by_cfg.items():
        if cname == "when":
            _when_figure(out, items, curves)
            continue
        fig, axes = figure((15, 3.8), 1, 3)
        for label, res in items:
            L = np.array([r["loss"] for r in res])
            T = np.array([r["seconds"] for r in res]).mean(axis=0)
            E = np.array([r["test_error"] for r in res])
            it = np.array(res[0]["epochs"])
            q1, med, q3 = np.percentile(L, [25, 50, 75], axis=0)
            line, = axes[0].semilogy(it, med, label=label)
            axes[0].fill_between(it, q1, q3, alpha=0.2, color=line.get_color())
            axes[1].semilogy(T, med, label=label)
            axes[2].plot(res[0]["test_error_epochs"], np.median(E, axis=0), label=label)
        axes[0].set_xlabel("iteration (full-batch epoch)")
        axes[1].set_xlabel("wall time [s] (mean over runs)")
        axes[2].set_xlabel("iteration")
        axes[0].set_ylabel("training loss (median; band: quartiles)")
        axes[1].set_ylabel("training loss (median)")
        axes[2].set_ylabel("test error (median)")
        axes[0].legend(fontsize=7, title=f"{len(items[0][1])} runs each", title_fontsize=7)
        fig.suptitle(f"layer insertion study: {cname}")
        save(fig, out / f"insertion_{cname}.png", dpi=100)


def demo_section(out_dir) -> dict:
    """`sensinet demo`: one [5] -> [5,5] insertion run on the spirals, with its loss figure."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X_tr, X_te, y_tr, y_te = _data(0)
    print("\n== Layer insertion (Schiela et al.): two spirals, [5] relu, full-batch GD lr 0.2, "
          f"insertion scored at epoch {INSERT_AT} of {EPOCHS}")
    ins = LayerInsertion(at_epochs=[INSERT_AT])
    net = _ff([5], 0)
    scores = ins.candidates(net, X_tr, y_tr)
    t0 = time.perf_counter()
    final, hist = ins.fit(net, X_tr, y_tr, epochs=EPOCHS, optimizer=SGD(lr=0.2), validation_data=(X_te, y_te))
    secs = time.perf_counter() - t0
    small = _ff([5], 0)
    small.fit(X_tr, y_tr, optimizer=SGD(lr=0.2), epochs=EPOCHS, batch_size=len(X_tr), shuffle=False)
    pick = hist.insertions[0]
    print(f"candidate scores at epoch {pick.epoch}: " + ", ".join(f"after layer {p - 1}: {s:.3g}"
                                                                 for p, s in pick.scores.items()))
    print(f"[5] -> {[l.units for l in final.layers[:-1]]}: training loss {hist.loss[INSERT_AT - 1]:.4f} at the "
          f"insertion, {final.objective(X_tr, y_tr):.4f} at the end (test error {_test_error(final, X_te, y_te):.3f}); "
          f"[5] alone: {small.objective(X_tr, y_tr):.4f} (test error {_test_error(small, X_te, y_te):.3f}); "
          f"{EPOCHS} epochs in {secs:.2f} s")
    del scores
    try:
        hist.plot(str(out / "insertion_loss.png"), title="[5] relu on two spirals, insertion -> [5,5]")
        print(f"figure: {out / 'insertion_loss.png'}")
    except ImportError:
        print("(matplotlib is not installed: no figure)")
    return {"final_loss": float(final.objective(X_tr, y_tr)), "small_loss": float(small.objective(X_tr, y_tr))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("sensinet_results/insertion"), help="output folder")
    parser.add_argument("--runs", type=int, default=30, help="runs per configuration (default 30)")
    parser.add_argument("--configs", nargs="+", default=None, metavar="NAME",
                        help="only these configurations (ff5, ff44, res, res2, when)")
    parser.add_argument("--config", action="append", help=argparse.SUPPRESS)  # sensinet 0.1's spelling
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (joblib)")
    parser.add_argument("--scheduler", default=None, help="dask.distributed scheduler address (runs there)")
    parser.add_argument("--no-resume", action="store_true", help="start over instead of skipping finished runs")
    parser.add_argument("--quick", action="store_true", help="3 runs, 600 epochs: a smoke test")
    parser.add_argument("--preset", choices=("paper", "v2"), default=None,
                        help="the published settings of the method (default: sensinet's)")
    parser.add_argument("--init", default="auto", help="initialisation: auto, he_uniform, glorot or torch")
    add_data_arguments(parser)


def main(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise ValueError(f"--runs: expected >= 1, got {args.runs}")
    data = data_from_arguments(args)
    if data is not None and len(data) > 1:
        raise ValueError(f"--data: the insertion study runs on one data set at a time, got {len(data)} files")
    run(args.out, quick=args.quick, runs=args.runs, configs=(args.configs or []) + (args.config or []) or None,
        preset=args.preset, init=args.init, data=data, n_jobs=args.jobs, scheduler=args.scheduler,
        resume=not args.no_resume)
    return 0



if __name__ == "__main__":  # python -m sensinet.experiments.insertion
    import sys

    from . import script

    sys.exit(script(sys.modules[__name__]))
