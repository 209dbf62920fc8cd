"""`sensinet experiment pruning`: which neurons to remove, compared over seeds on real data.

Data: the four embedded UCI regression sets (concrete, energy, yacht, power plant; inputs and target
standardised on the training split, MSE) and scikit-learn's digits (8x8 images, pixels / 16, 10-class
cross-entropy). Nothing is downloaded. Each seed draws its own 75/25 split and initialisation.

Per dataset and seed, a ReLU network with two hidden layers of 64 neurons is trained with Adam
(lr 1e-3, batch 32, about 6,000 steps). Every criterion of :func:`sensinet.prune` then removes 25, 50, 75
and 90 % of the neurons of each hidden layer (one-shot, from the trained network), and the pruned network is
measured on the test split twice: as pruned, and after fine-tuning for a tenth of the training steps.

Reported:
* test loss (and digits' accuracy) against parameters kept, per criterion (median and quartiles over seeds);
* paired comparisons, seed by seed: the scaling-factor sensitivities ("sensitivity", "loss_sensitivity")
  against "magnitude" and "taylor". Per dataset and fraction, the wins and a two-sided Wilcoxon signed-rank
  p-value (descriptive). The stated orderings come from one test per comparison and setting, on the mean
  log loss ratio over the four fractions, one value per (dataset, seed) pair, Holm-corrected over the
  comparisons.
* the number of ReLU activation patterns (exact linear regions visited, `sensinet.ReluClusters`) on
  the training inputs, as the network is pruned.
* grow and shrink: `sensinet.GrowShrink` from one hidden layer of 32 (insertions by the default rule, pruning
  by output sensitivity below a tenth of the layer's highest, every fifth of the run) for the same epochs,
  against its final architecture trained from scratch (same seed) for the same work; test losses paired
  over (dataset, seed), Wilcoxon signed-rank.
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
from .._tables import write_csv
from .._progress import ProgressBar
from ..clusters import ReluClusters
from ..datasets import data_digest, load_uci, train_test_split
from ..growshrink import GrowShrink
from ..layers import Dense
from ..losses import error
from ..network import Network
from ..pruning import CRITERIA, prune
from ._executor import run_resumable
from ._stats import wilcoxon_p
from ._user_data import add_data_arguments, data_from_arguments, standardized_split, user_datasets

DATASETS = ("concrete", "energy", "yacht", "power_plant", "digits")
FRACTIONS = (0.25, 0.5, 0.75, 0.9)
COMPARISONS = (("sensitivity", "magnitude"), ("sensitivity", "taylor"),
               ("loss_sensitivity", "magnitude"), ("loss_sensitivity", "taylor"))
SETTINGS = ("pruned", "fine_tuned")
WIDTH, STEPS, BATCH, LR = 64, 6000, 32, 1e-3


@dataclass(frozen=True)
class PruneTask:
    """One (dataset, seed) of the study: the criteria ("criteria") or grow-and-shrink ("grow_shrink")."""

    kind: str
    dataset: str
    seed: int
    steps: int
    fractions: tuple = ()
    data: str = ""  # digest of a user data set; "" for the embedded ones

    @property
    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:16]


def run_task(task: PruneTask, shared: Optional[dict] = None) -> dict:
    """One task's record (in any process): its rows, or its grow-and-shrink row."""
    if task.kind == "criteria":
        rows = _one(task.dataset, task.seed, task.steps, task.fractions, CRITERIA, shared)
        return {"key": task.key, "rows": rows}
    return {"key": task.key, "grow_shrink": _grow_shrink(task.dataset, task.seed, task.steps, shared)}


def _split(name: str, seed: int, shared: Optional[dict] = None) -> tuple:
    """(X_train, X_test, y_train, y_test, loss, n_outputs), standardised on the training split (the target
    too, for regression)."""
    if shared and name in shared:  # the user's data set
        d = shared[name]
        head = ("cross_entropy", int(d.y.max()) + 1) if d.task == "classification" else ("mse", 1)
        return (*standardized_split(d, 0.25, seed), *head)
    if name == "digits":
        from sklearn.datasets import load_digits  # ships with scikit-learn

        d = load_digits()
        X_tr, X_te, y_tr, y_te = train_test_split(d.data / 16.0, d.target.astype(np.int64), test_size=0.25,
                                                  seed=seed)
        return X_tr, X_te, y_tr, y_te, "cross_entropy", 10
    d = load_uci(name)
    X_tr, X_te, y_tr, y_te = train_test_split(d.X, d.y, test_size=0.25, seed=seed)
    mu, sd = X_tr.mean(axis=0), X_tr.std(axis=0)
    sd[sd == 0] = 1.0
    ym, ys = y_tr.mean(), y_tr.std()
    return (X_tr - mu) / sd, (X_te - mu) / sd, (y_tr - ym) / ys, (y_te - ym) / ys, "mse", 1


def _epochs(n: int, steps: int) -> int:
    """Epochs of minibatches of BATCH that make about ``steps`` optimizer steps on ``n`` samples."""
    return max(1, int(np.ceil(steps / np.ceil(n / BATCH))))


def _measure(net: Network, X_te: Any, y_te: Any, X_tr: Any) -> dict:
    row = {"n_params": net.n_params, "test_loss": float(net.objective(X_te, y_te)),
           "clusters": ReluClusters(net).fit(X_tr).n_clusters_}
    if net.loss == "cross_entropy":
        row["accuracy"] = 1.0 - error(net.loss, net.forward(X_te), y_te)
    return row


def _one(name: str, seed: int, steps: int, fractions: tuple, criteria: tuple, shared: Optional[dict] = None) -> list:
    """All rows of one (dataset, seed): the unpruned network, then every criterion x fraction x setting."""
    X_tr, X_te, y_tr, y_te, loss, n_out = _split(name, seed, shared)
    net = Network(X_tr.shape[1], [Dense(WIDTH, "relu"), Dense(WIDTH, "relu"), Dense(n_out)], loss=loss, seed=seed)
    epochs = _epochs(len(X_tr), steps)
    tune = max(1, epochs // 10)
    net.fit(X_tr, y_tr, optimizer="adam", lr=LR, epochs=epochs, batch_size=BATCH, seed=seed)
    base = {"dataset": name, "seed": seed, "criterion": "none", "fraction": 0.0, "epochs": epochs,
            "fine_tune_epochs": tune}
    rows = [dict(base, setting=s, **_measure(net, X_te, y_te, X_tr)) for s in SETTINGS]
    for crit in criteria:
        for f in fractions:
            t0 = time.perf_counter()
            small, _ = prune(net, X_tr, y_tr, amount=f, criterion=crit, seed=seed)
            secs = time.perf_counter() - t0
            key = dict(base, criterion=crit, fraction=f, prune_seconds=secs)
            rows.append(dict(key, setting="pruned", **_measure(small, X_te, y_te, X_tr)))
            small.fit(X_tr, y_tr, optimizer="adam", lr=LR, epochs=tune, batch_size=BATCH, seed=seed + 1)
            rows.append(dict(key, setting="fine_tuned", **_measure(small, X_te, y_te, X_tr)))
    return rows


def _grow_shrink(name: str, seed: int, steps: int, shared: Optional[dict] = None) -> dict:
    """GrowShrink from [32] against its final architecture from scratch for the same work, on test loss."""
    X_tr, X_te, y_tr, y_te, loss, n_out = _split(name, seed, shared)
    epochs = _epochs(len(X_tr), steps)
    start = Network(X_tr.shape[1], [Dense(32, "relu"), Dense(n_out)], loss=loss, seed=seed)
    res = GrowShrink(prune_every=max(epochs // 5, 1), threshold=0.1).fit(
        start, X_tr, y_tr, epochs=epochs, optimizer="adam", lr=LR, batch_size=BATCH, seed=seed)
    final = res.network
    cmp = res.compare_fixed(X_tr, y_tr, seeds=(seed,), validation_data=(X_te, y_te))
    return {"dataset": name, "seed": seed, "epochs": epochs, "widths": [l.units for l in final.layers[:-1]],
            "n_params": final.n_params, "insertions": sum(e["kind"] == "insert" for e in res.events),
            "prunings": sum(e["kind"] == "prune" for e in res.events),
            "grow_shrink_test_loss": cmp["grow_shrink_val_loss"], "fixed_epochs": cmp["fixed_epochs"],
            "fixed_test_loss": cmp["fixed_val_losses"][0]}


def compare_grow_shrink(gs_rows: list) -> dict:
    """Grow-and-shrink against the same architecture from scratch for the same work, paired over runs."""
    r = np.log([g["grow_shrink_test_loss"] / g["fixed_test_loss"] for g in gs_rows])
    p = wilcoxon_p(r)
    verdict = "no significant difference" if p >= 0.05 else (
        "grow-and-shrink better" if np.mean(r) < 0 else "fixed architecture better")
    return {"pairs": len(r), "wins_grow_shrink": int(np.sum(r < 0)), "geo_mean_loss_ratio": float(np.exp(np.mean(r))),
            "p_wilcoxon": p, "verdict": verdict}


def _holm(p: list) -> list:
    """Holm step-down adjusted p-values."""
    order = np.argsort(p)
    m, out, running = len(p), [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def compare(rows: list, datasets: tuple, fractions: tuple) -> tuple:
    """(per-cell rows, primary rows): paired comparisons of criteria over seeds (see the module docstring)."""
    loss = {(r["dataset"], r["seed"], r["criterion"], r["fraction"], r["setting"]): r["test_loss"] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    cells, primary = [], []
    for setting in SETTINGS:
        for a, b in COMPARISONS:
            pooled = []
            for d in datasets:
                per_seed = []
                for f in fractions:
                    r = np.array([np.log(loss[d, s, a, f, setting] / loss[d, s, b, f, setting]) for s in seeds])
                    per_seed.append(r)
                    p = wilcoxon_p(r)
                    cells.append({"setting": setting, "a": a, "b": b, "dataset": d, "fraction": f,
                                  "wins_a": int(np.sum(r < 0)), "n": len(r),
                                  "median_loss_ratio": float(np.exp(np.median(r))), "p_wilcoxon": p})
                pooled.extend(np.mean(per_seed, axis=0))
            r = np.array(pooled)
            p = wilcoxon_p(r)
            primary.append({"setting": setting, "a": a, "b": b, "pairs": len(r), "wins_a": int(np.sum(r < 0)),
                            "geo_mean_loss_ratio": float(np.exp(np.mean(r))), "p_wilcoxon": p})
    for row, padj in zip(primary, _holm([r["p_wilcoxon"] for r in primary])):
        row["p_holm"] = padj
        if padj >= 0.05:
            row["verdict"] = "no significant difference"
        else:
            row["verdict"] = f"{row['a']} better" if row["geo_mean_loss_ratio"] < 1 else f"{row['b']} better"
    return cells, primary


def summary_rows(rows: list, datasets: tuple, fractions: tuple, criteria: tuple) -> list:
    """Median and quartiles over seeds of test loss, accuracy and clusters per dataset x criterion x fraction."""
    out = []
    for d in datasets:
        for setting in SETTINGS:
            for crit in ("none",) + tuple(criteria):
                for f in ((0.0,) if crit == "none" else fractions):
                    sel = [r for r in rows if r["dataset"] == d and r["setting"] == setting
                           and r["criterion"] == crit and r["fraction"] == f]
                    L = np.array([r["test_loss"] for r in sel])
                    C = np.array([r["clusters"] for r in sel])
                    row = {"dataset": d, "setting": setting, "criterion": crit, "fraction": f,
                           "n_params": sel[0]["n_params"], "seeds": len(sel),
                           "test_loss_median": float(np.median(L)), "test_loss_q1": float(np.percentile(L, 25)),
                           "test_loss_q3": float(np.percentile(L, 75)), "clusters_median": float(np.median(C))}
                    if "accuracy" in sel[0]:
                        row["accuracy_median"] = float(np.median([r["accuracy"] for r in sel]))
                    out.append(row)
    return out


def _markdown(summary: list, cells: list, primary: list, meta: dict, gs_rows: list, gs: dict) -> str:
    lines = [f"# Pruning study ({meta['seeds']} seeds, {meta['width']}x2 ReLU, {meta['steps']} Adam steps; "
             f"fine-tuning: a tenth of them)", "",
             "## Stated orderings (Wilcoxon signed-rank over (dataset, seed) pairs, mean log loss ratio over the "
             "fractions, Holm-corrected)", "",
             "| setting | comparison | pairs | a wins | geometric mean loss ratio a/b | p | p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in primary:
        lines.append(f"| {r['setting']} | {r['a']} vs {r['b']} | {r['pairs']} | {r['wins_a']} | "
                     f"{r['geo_mean_loss_ratio']:.3f} | {r['p_wilcoxon']:.2g} | {r['p_holm']:.2g} | {r['verdict']} |")
    lines += ["", "## Grow and shrink against its final architecture from scratch for the same work", "",
              f"{gs['wins_grow_shrink']} of {gs['pairs']} runs better, geometric mean test loss ratio "
              f"{gs['geo_mean_loss_ratio']:.3f}, Wilcoxon p = {gs['p_wilcoxon']:.2g}: {gs['verdict']}.", "",
              "| dataset | final widths (median parameters) | insertions | prunings | grow-shrink test loss | "
              "fixed test loss | grow-shrink better |", "|---|---|---|---|---|---|---|"]
    for d in dict.fromkeys(g["dataset"] for g in gs_rows):
        sel = [g for g in gs_rows if g["dataset"] == d]
        widths = sorted({tuple(g["widths"]) for g in sel}, key=len)
        lines.append(f"| {d} | {' '.join(map(str, map(list, widths[:3])))}{' ...' if len(widths) > 3 else ''} "
                     f"({np.median([g['n_params'] for g in sel]):.0f}) | "
                     f"{np.median([g['insertions'] for g in sel]):.0f} | {np.median([g['prunings'] for g in sel]):.0f}"
                     f" | {np.median([g['grow_shrink_test_loss'] for g in sel]):.4g} | "
                     f"{np.median([g['fixed_test_loss'] for g in sel]):.4g} | "
                     f"{sum(g['grow_shrink_test_loss'] < g['fixed_test_loss'] for g in sel)}/{len(sel)} |")
    lines += ["", "## Test loss, median over seeds [quartiles]; clusters = ReLU patterns on the training inputs", ""]
    for d in dict.fromkeys(r["dataset"] for r in summary):
        for setting in SETTINGS:
            sel = [r for r in summary if r["dataset"] == d and r["setting"] == setting]
            acc = "accuracy_median" in sel[0]
            lines += [f"### {d}, {setting.replace('_', '-')}", "",
                      "| criterion | fraction removed | parameters | test loss | " + ("accuracy | " if acc else "")
                      + "clusters |", "|---|---|---|---|" + ("---|" if acc else "") + "---|"]
            for r in sel:
                lines.append(f"| {r['criterion']} | {r['fraction']:.2f} | {r['n_params']} | "
                             f"{r['test_loss_median']:.4g} [{r['test_loss_q1']:.4g}, {r['test_loss_q3']:.4g}] | "
                             + (f"{r['accuracy_median']:.3f} | " if acc else "") + f"{r['clusters_median']:.0f} |")
            lines.append("")
    lines += ["## Per dataset and fraction (descriptive: uncorrected Wilcoxon p)", "",
              "| setting | comparison | dataset | fraction | a wins / n | median loss ratio a/b | p |",
              "|---|---|---|---|---|---|---|"]
    for r in cells:
        lines.append(f"| {r['setting']} | {r['a']} vs {r['b']} | {r['dataset']} | {r['fraction']:.2f} | "
                     f"{r['wins_a']}/{r['n']} | {r['median_loss_ratio']:.3f} | {r['p_wilcoxon']:.2g} |")
    return "\n".join(lines) + "\n"


def _figures(out: Path, summary: list, criteria: tuple) -> None:
    if not have_matplotlib():
        print("(matplotlib is not installed: no figures)")
        return
    for d in dict.fromkeys(r["dataset"] for r in summary):
        fig, axes = figure((14, 4), 1, 3)
        for ax, setting in zip(axes[:2], SETTINGS):
            for crit in criteria:
                sel = sorted((r for r in summary if r["dataset"] == d and r["setting"] == setting
                              and r["criterion"] in (crit, "none")), key=lambda r: -r["n_params"])
                x = [r["n_params"] for r in sel]
                ax.plot(x, [r["test_loss_median"] for r in sel], "o-", ms=3, label=crit)
                ax.fill_between(x, [r["test_loss_q1"] for r in sel], [r["test_loss_q3"] for r in sel], alpha=0.12)
            ax.set_yscale("log")
            ax.set_xlabel("parameters kept")
            ax.set_ylabel("test loss (median, quartile band)")
            ax.set_title(f"{d}: {setting.replace('_', '-')}")
            ax.legend(title="criterion", fontsize=7)
        for crit in criteria:
            sel = sorted((r for r in summary if r["dataset"] == d and r["setting"] == "fine_tuned"
                          and r["criterion"] in (crit, "none")), key=lambda r: -r["n_params"])
            axes[2].plot([r["n_params"] for r in sel], [r["clusters_median"] for r in sel], "o-", ms=3, label=crit)
        axes[2].set_xlabel("parameters kept")
        axes[2].set_ylabel("ReLU patterns on the training inputs (median)")
        axes[2].set_title(f"{d}: clusters after fine-tuning")
        axes[2].legend(title="criterion", fontsize=7)
        save(fig, out / f"pruning_{d}.png", dpi=100)


def run(out_dir: Any, seeds: int = 10, datasets: Optional[list] = None, quick: bool = False,
        progress: bool = True, data: Any = None, n_jobs: int = 1, scheduler: Any = None, resume: bool = True) -> dict:
    """Run the study; write records, tables and figures into out_dir; return the primary comparisons.

    ``data``: the user's data sets (:class:`sensinet.datasets.Dataset` or ``(X, y)`` pairs; regression or
    classification), which replace the embedded ones unless ``datasets`` names some of those too. ``n_jobs``
    (joblib processes) or ``scheduler`` (a Dask client or address) run the (dataset, seed) tasks in parallel
    with the same results; finished tasks are kept in ``runs.jsonl`` and skipped when the study is run again
    (``resume=False`` starts over)."""
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 2:
        raise ValueError(f"seeds: expected an int >= 2 (the comparisons are paired over seeds), got {seeds!r}")
    shared = user_datasets(data)
    chosen = tuple(datasets or (tuple(shared) if shared else DATASETS))
    for d in chosen:
        if d not in DATASETS + tuple(shared):
            raise ValueError(f"datasets: expected names from {DATASETS + tuple(shared)}, got {d!r}")
    steps = 600 if quick else STEPS
    seeds = min(seeds, 3) if quick else int(seeds)
    fractions = (0.5, 0.9) if quick else FRACTIONS
    out = Path(out_dir)  # created only once the arguments are known to be good
    out.mkdir(parents=True, exist_ok=True)
    digests = {name: data_digest(d) for name, d in shared.items()}
    tasks = [PruneTask(kind, d, s, steps, fractions if kind == "criteria" else (), digests.get(d, ""))
             for kind in ("criteria", "grow_shrink") for d in chosen for s in range(seeds)]
    bar = ProgressBar(len(tasks), desc="pruning study") if progress else None
    t0 = time.perf_counter()
    recs = run_resumable(tasks, run_task, out, n_jobs=n_jobs, scheduler=scheduler, resume=resume,
                         shared=shared or None, records="runs.jsonl",
                         on_result=None if bar is None else lambda rec, n: bar.update(n))
    rows = [r for rec in recs if "rows" in rec for r in rec["rows"]]
    gs_rows = [rec["grow_shrink"] for rec in recs if "grow_shrink" in rec]
    if bar is not None:
        bar.close()
    meta = {"seeds": seeds, "width": WIDTH, "steps": steps, "batch": BATCH, "lr": LR, "fractions": list(fractions),
            "datasets": list(chosen), "criteria": list(CRITERIA), "quick": bool(quick),
            "seconds": time.perf_counter() - t0}
    cells, primary = compare(rows, chosen, fractions)
    summary = summary_rows(rows, chosen, fractions, CRITERIA)
    gs = compare_grow_shrink(gs_rows)
    with open(out / "records.jsonl", "w") as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(out / "grow_shrink.jsonl", "w") as f:
        for g in gs_rows:
            f.write(json.dumps(g) + "\n")
    write_csv(out / "summary.csv", summary)
    write_csv(out / "comparisons.csv", cells)
    write_csv(out / "orderings.csv", primary)
    text = _markdown(summary, cells, primary, meta, gs_rows, gs)
    (out / "summary.md").write_text(text)
    _figures(out, summary, CRITERIA)
    print(text.split("## Test loss")[0])
    return {"primary": primary, "summary": summary, "grow_shrink": gs, "out_dir": str(out)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("sensinet_results/pruning"), help="output folder")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per dataset (default 10)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help=f"only these datasets ({', '.join(DATASETS)}, or the names of --data files)")
    parser.add_argument("--dataset", action="append", help=argparse.SUPPRESS)  # sensinet 0.1's spelling
    parser.add_argument("--quick", action="store_true", help="3 seeds, 600 steps, 2 fractions: a smoke test")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (joblib)")
    parser.add_argument("--scheduler", default=None, help="dask.distributed scheduler address (runs there)")
    parser.add_argument("--no-resume", action="store_true", help="start over instead of skipping finished runs")
    add_data_arguments(parser)


def main(args: argparse.Namespace) -> int:
    run(args.out, seeds=args.seeds, datasets=(args.datasets or []) + (args.dataset or []) or None, quick=args.quick,
        data=data_from_arguments(args), n_jobs=args.jobs, scheduler=args.scheduler, resume=not args.no_resume)
    return 0



if __name__ == "__main__":  # python -m sensinet.experiments.pruning
    import sys

    from . import script

    sys.exit(script(sys.modules[__name__]))
