"""The ReLU-cluster study on the user's data (``sensinet experiment clusters --data ...``): per seed, an
80/20 split standardized on its training part, a 20x3 ReLU network trained with Adam (cross-entropy or MSE by
the task), its activation patterns on the training inputs, and the fidelity of explanations merged to fewer
clusters (by pattern Hamming distance and by affine-map distance), on training and test inputs. The same
protocol as the study's breast-cancer part, over seeds, through the studies' executor."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .._plotting import figure, have_matplotlib, save
from ..clusters import ReluClusters
from ..datasets import data_digest
from ..layers import Dense
from ..losses import error
from ..network import Network
from ._executor import run_resumable
from ._user_data import standardized_split

MERGED = 5  # clusters of the merged explanation reported per seed
SIZES = (1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300)


@dataclass(frozen=True)
class ClusterTask:
    dataset: str
    seed: int
    epochs: int
    data: str  # the data set's digest

    @property
    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:16]


def run_task(task: ClusterTask, shared: Optional[dict] = None) -> dict:
    """One seed: train, find the clusters, measure the merged explanations' fidelity."""
    d = shared[task.dataset]
    Xtr, Xte, y_tr, y_te = standardized_split(d, 0.2, task.seed)
    if d.task == "classification":
        k = int(d.y.max()) + 1
        loss, n_out = ("binary_cross_entropy", 1) if k == 2 else ("cross_entropy", k)
    else:
        loss, n_out = "mse", 1
    net = Network(d.n_features, [Dense(20, "relu") for _ in range(3)] + [Dense(n_out)], loss=loss, seed=task.seed)
    net.fit(Xtr, y_tr, optimizer="adam", lr=1e-3, epochs=task.epochs, batch_size=32, seed=task.seed)
    rc = ReluClusters(net).fit(Xtr, feature_names=list(d.feature_names))
    C = rc.n_clusters_
    ns = sorted({n for n in SIZES if n < C} | {C})
    fidelity = {}
    for by in ("hamming", "affine"):
        c = rc.fidelity_curve(ns, by=by, X_test=Xte)
        fidelity[by] = {k: None if getattr(c, k) is None else [float(x) for x in getattr(c, k)]
                        for k in ("r2", "agreement", "r2_test", "agreement_test")}  # agreement: classifiers
    merged = rc.merge(min(MERGED, C), by="hamming")
    f, ft = merged.fidelity, merged.fidelity_on(Xte)
    return {"key": task.key, "dataset": task.dataset, "seed": task.seed, "epochs": task.epochs, "loss": loss,
            "test_error": error(loss, net.forward(Xte), y_te), "train_error": error(loss, net.forward(Xtr), y_tr),
            "n_train": int(len(Xtr)), "n_clusters": int(C), "n_singletons": int(np.sum(rc.counts_ == 1)),
            "largest_cluster": int(rc.counts_[0]), "dead_share": float(np.mean(rc.dead_[rc.labels_])),
            "n_clusters_grid": ns, "fidelity": fidelity,
            "merged": {"n": int(merged.n_clusters_), "r2": f.r2, "agreement": f.agreement, "r2_test": ft.r2,
                       "agreement_test": ft.agreement},
            "top_features": [d.feature_names[j] for j in np.argsort(-rc.global_importance())[:3]]}


def study(out: Path, shared: dict, seeds: tuple, quick: bool, n_jobs: int = 1, scheduler: Any = None,
          resume: bool = True, progress: bool = True) -> dict:
    """Every (data set, seed); writes ``clusters_<name>.md``, ``.png`` and the per-seed records."""
    epochs = 100 if quick else 200
    tasks = [ClusterTask(name, s, epochs, data_digest(d)) for name, d in shared.items() for s in seeds]
    recs = run_resumable(tasks, run_task, out, n_jobs=n_jobs, scheduler=scheduler, resume=resume, shared=shared,
                         records="runs.jsonl")
    results = {}
    for name, d in shared.items():
        mine = [r for r in recs if r["dataset"] == name]
        results[name] = summary = _summary(name, d, mine)
        (out / f"clusters_{name}.md").write_text(_markdown(name, d, mine, summary), encoding="utf-8")
        _figure(out / f"clusters_{name}.png", name, mine)
        if progress:
            print(_markdown(name, d, mine, summary))
    return results


def _summary(name: str, d: Any, recs: list) -> dict:
    cl = [r["n_clusters"] for r in recs]
    return {"task": d.task, "seeds": [r["seed"] for r in recs], "n_clusters_median": float(np.median(cl)),
            "n_clusters_min": int(min(cl)), "n_clusters_max": int(max(cl)),
            "test_error_mean": float(np.mean([r["test_error"] for r in recs])),
            "test_error_sd": float(np.std([r["test_error"] for r in recs], ddof=1)) if len(recs) > 1 else 0.0,
            "merged_r2_test_median": float(np.median([r["merged"]["r2_test"] for r in recs]))}


def _markdown(name: str, d: Any, recs: list, s: dict) -> str:
    err = "test error (share misclassified)" if d.task == "classification" else "test RMSE (standardized target)"
    lines = [f"# ReLU clusters on {name} ({d.n_samples} samples, {d.n_features} features, {d.task})", "",
             f"20x3 ReLU network, {recs[0]['epochs']} epochs of Adam, 80/20 split per seed. Clusters per seed: "
             f"median {s['n_clusters_median']:.0f} (min {s['n_clusters_min']}, max {s['n_clusters_max']}); {err}: "
             f"{s['test_error_mean']:.3f} (sample SD {s['test_error_sd']:.3f}).", "",
             f"| seed | {err} | clusters | singletons | largest | dead share | merged to {MERGED}: R^2 train / test"
             " | agreement train / test | top features |", "|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        m = r["merged"]
        agree = "-" if m["agreement"] is None else f"{m['agreement']:.3f} / {m['agreement_test']:.3f}"
        lines.append(f"| {r['seed']} | {r['test_error']:.3f} | {r['n_clusters']} | {r['n_singletons']} | "
                     f"{r['largest_cluster']} | {r['dead_share']:.2f} | {m['r2']:.3f} / {m['r2_test']:.3f} | {agree} | "
                     f"{', '.join(r['top_features'])} |")
    return "\n".join(lines) + "\n"


def _figure(path: Path, name: str, recs: list) -> None:
    if not have_matplotlib():
        return
    fig, axes = figure((11, 4), 1, 2, sharey=True)
    for ax, by in zip(axes, ("hamming", "affine")):
        for r in recs:
            ax.semilogx(r["n_clusters_grid"], r["fidelity"][by]["r2_test"], marker="o", ms=3, label=f"seed {r['seed']}")
        ax.set_xlabel(f"clusters after merging by {by}")
        ax.set_title(f"{name}: fidelity of the merged explanation")
    axes[0].set_ylabel("R^2 of the logits / outputs on test inputs")
    axes[0].legend(fontsize=7)
    save(fig, path)
