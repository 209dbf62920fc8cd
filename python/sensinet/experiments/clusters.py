"""`sensinet experiment clusters`: the three studies of the ReLU-cluster interpretation
(Picchiotti & Gori, "Clustering-based interpretation of deep ReLU networks", arXiv:2110.06593).

1. **Simulation** -- 100,000 samples of 10 random bits; three are informative, ``y = x3 x1 + (1 - x3) x2``
   (x3 switches between x1 and x2), seven are noise. A 4+2 ReLU network (``Dense(4, relu)``,
   ``Dense(2, relu)``, ``Dense(1)``, binary cross-entropy) is trained with Adam in two variants:

   * ``l2`` -- sensinet's own trainer (``net.fit``) with L2 weight decay on the first layer. **This is a
     deviation from the paper**, which uses an L1 *activity* penalty: sensinet's engine has only L2 weight
     decay per layer.
   * ``l1_activity`` -- the paper's penalty, ``lambda * mean_n sum_j h_nj`` over both hidden layers' ReLU
     outputs (``|h| = h`` for ReLU), trained by an Adam loop in Python: the engine gives the minibatch
     gradient of the cross-entropy (``net.loss_and_grad``) and NumPy adds the penalty's gradient. The
     minibatch schedule is NumPy's, not the engine's, so the two variants are not step-for-step comparable.

   Does the explanation recover the logic? Per seed and variant the study reports the accuracy on fresh
   samples, the number of clusters, and the checks of :func:`logic_recovery`: the share of samples in
   constant-map (dead) clusters; the share of the other samples in *rule clusters* (all samples with the same
   x3, and the switched-off input weighted at most 5 % of the selected one); whether the local maps say that
   flipping the selected input flips the decision and flipping the switched-off input or a noise bit keeps
   it; and the noise bits' mean |W_eff| relative to the informative bits'.
2. **Titanic** -- the bundled 891 passengers with seven integer-coded features, standardized on an 80 %
   training split; a 3+2 ReLU network with L2 on the first layer and binary cross-entropy; the clusters of
   all 891 passengers, the cluster table (feature means in the original codes, weights per standard
   deviation) and the global importances, across several seeds (how many clusters each seed gives).
3. **Breast cancer** (scikit-learn's copy of the Wisconsin data, 569 samples, 30 features, standardized on
   an 80 % split = 455 training samples) -- a 20x3 ReLU network; the clusters of the training samples before
   and after merging, and the fidelity of the merged explanation (R^2 of the logits, agreement of the
   predicted class) against the number of clusters, on the training samples and on the 114 test samples
   (a test sample with an unseen pattern is assigned to the nearest training pattern by Hamming distance).

Outputs in ``out_dir``: ``summary.md``, ``results.json``, CSV and Markdown tables, PNG figures (when
matplotlib is installed).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .._plotting import figure, have_matplotlib, save
from .._tables import markdown, write_csv
from ..clusters import ClusterTable, ReluClusters
from ..datasets import Standardizer, load_titanic, train_test_split
from ..layers import Dense
from ..network import Network
from . import clusters_user
from ._stats import wilcoxon_p
from ._user_data import add_data_arguments, data_from_arguments, user_datasets

SIM_FEATURES = ["x1", "x2", "x3"] + [f"noise{i}" for i in range(1, 8)]
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1, 2)


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, flush=True)


def _write(path: Path, text: str, files: list) -> None:
    path.write_text(text + ("\n" if not text.endswith("\n") else ""), encoding="utf-8")
    files.append(str(path))


def _accuracy(net: Network, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((net.forward(X)[:, 0] > 0) == (np.asarray(y) > 0.5)))


# ============================================================================================ simulation
def simulation_data(n: int, seed: int = 0) -> tuple:
    """``n`` samples of 10 fair random bits ``[x1, x2, x3, noise1..noise7]`` and ``y = x3 x1 + (1 - x3) x2``."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, size=(n, 10)).astype(np.float64)
    y = X[:, 2] * X[:, 0] + (1.0 - X[:, 2]) * X[:, 1]
    return X, y


def _simulation_net(seed: int, l2: float = 0.0) -> Network:
    return Network(10, [Dense(4, "relu", l2=l2), Dense(2, "relu"), Dense(1)], loss="binary_cross_entropy", seed=seed)


def l1_activity_objective(net: Network, X: np.ndarray, y: np.ndarray, lam: float) -> tuple:
    """``mean BCE + lam * mean_n sum_j h_nj`` over the hidden ReLU layers of a Dense network, and its gradient.

    The engine gives the cross-entropy and its gradient; the penalty's gradient is back-propagated here in
    NumPy (``d|h|/dh = 1`` for the non-negative ReLU outputs, ``d relu / dz = [z > 0]``).
    """
    loss, grad = net.loss_and_grad(X, np.asarray(y, dtype=np.float64).reshape(-1, 1))
    params = [net.layer_parameters(l) for l in range(net.n_layers)]
    hs, zs, h = [X], [], X
    for p in params[:-1]:
        z = h @ p["W"] + p["b"]
        h = np.maximum(z, 0.0)
        zs.append(z)
        hs.append(h)
    scale = lam / X.shape[0]
    penalty = scale * sum(float(hh.sum()) for hh in hs[1:])
    offsets = net.offsets
    g_h = np.zeros_like(hs[-1])
    for l in range(len(zs) - 1, -1, -1):
        g_h = g_h + scale  # the penalty on this layer's activations
        g_z = g_h * (zs[l] > 0)
        n_in, n_out = params[l]["W"].shape
        o = offsets[l]
        grad[o:o + n_in * n_out] += (hs[l].T @ g_z).ravel()
        grad[o + n_in * n_out:o + n_in * n_out + n_out] += g_z.sum(axis=0)
        g_h = g_z @ params[l]["W"].T
    return loss + penalty, grad


def fit_l1_activity(net: Network, X: np.ndarray, y: np.ndarray, lam: float, epochs: int, batch_size: int = 256,
                    lr: float = 1e-2, seed: int = 0) -> list:
    """Adam (as ``torch.optim.Adam`` and the engine's, default constants) on :func:`l1_activity_objective` with
    shuffled minibatches; returns the mean objective per epoch."""
    specs = net.specs
    if any(s.kind != "dense" for s in specs) or any(s.activation != "relu" for s in specs[:-1]):
        raise ValueError("fit_l1_activity: expects Dense relu hidden layers and a Dense head")
    rng = np.random.default_rng(seed)
    m = np.zeros(net.n_params)
    v = np.zeros(net.n_params)
    b1, b2, eps = 0.9, 0.999, 1e-8
    t = 0
    history = []
    y = np.asarray(y, dtype=np.float64)
    for _ in range(epochs):
        order = rng.permutation(X.shape[0])
        total = 0.0
        for s in range(0, X.shape[0], batch_size):
            idx = order[s:s + batch_size]
            obj, grad = l1_activity_objective(net, X[idx], y[idx], lam)
            t += 1
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
            net.parameters[:] = net.parameters - lr * m_hat / (np.sqrt(v_hat) + eps)
            total += obj * idx.size
        history.append(total / X.shape[0])
    return history


def logic_recovery(rc: ReluClusters, clean: float = 0.05) -> dict:
    """How well the cluster maps of a simulation network show the multiplexer logic.

    With ``sel`` the input that x3 selects (x1 when x3 = 1, else x2) and ``other`` the one it switches off;
    "live" samples are those of clusters with a non-constant map:

    * ``dead_share``: share of samples in clusters whose map is constant (e.g. a flat negative region);
    * ``rule_share``: share of the live samples in *rule clusters*: clusters whose samples all have the same
      x3 (>= 99 %) and whose map gives the switched-off input at most ``clean`` (5 %) of the selected input's
      |weight| -- the paper's reading "x3 switches between x1 and x2";
    * ``flip_selected``: share of the live samples for which the local map says flipping ``sel`` flips the
      decision (as it does for y);
    * ``flip_other`` / ``flip_noise``: share of all samples for which the local map says flipping ``other`` /
      any one noise bit keeps the decision;
    * ``noise_ratio``: size-weighted mean |W_eff| of the noise bits over that of the informative bits.
    """
    X = rc.X_
    W = rc.affine_maps.W_eff[:, :, 0]
    lab = rc.labels_
    C = rc.n_clusters_
    Wn = W[lab]  # the local weights of every sample
    logit = rc.predict()[:, 0]
    x3 = X[:, 2] > 0.5
    rows = np.arange(X.shape[0])
    sel = np.where(x3, 0, 1)
    other = 1 - sel
    w_sel, w_other = Wn[rows, sel], Wn[rows, other]
    pos = logit > 0
    flip_sel = ((logit + w_sel * (1.0 - 2.0 * X[rows, sel])) > 0) != pos
    keep_other = ((logit + w_other * (1.0 - 2.0 * X[rows, other])) > 0) == pos
    keep_noise = np.all(((logit[:, None] + Wn[:, 3:] * (1.0 - 2.0 * X[:, 3:])) > 0) == pos[:, None], axis=1)
    live = ~rc.dead_
    x3_mean = np.bincount(lab, weights=X[:, 2], minlength=C) / rc.counts_
    pure1, pure0 = x3_mean >= 0.99, x3_mean <= 0.01
    a1, a2 = np.abs(W[:, 0]), np.abs(W[:, 1])
    rule = live & ((pure1 & (a2 <= clean * a1) & (a1 > 0)) | (pure0 & (a1 <= clean * a2) & (a2 > 0)))
    live_s = live[lab]
    n_live = int(live_s.sum())
    gi = rc.global_importance()
    informative = float(gi[:3].mean())
    return {
        "dead_share": float(np.mean(~live_s)),
        "rule_share": float(rule[lab].sum() / n_live) if n_live else float("nan"),
        "n_rule_clusters": int(rule.sum()),
        "flip_selected": float(flip_sel[live_s].mean()) if n_live else float("nan"),
        "flip_other": float(np.mean(keep_other)),
        "flip_noise": float(np.mean(keep_noise)),
        "noise_ratio": float(gi[3:].mean() / informative) if informative > 0 else float("nan"),
        "max_noise_weight": float(np.abs(W[live][:, 3:]).max()) if live.any() else 0.0,
        "max_informative_weight": float(np.abs(W[live][:, :3]).max()) if live.any() else 0.0,
        "global_importance": [float(v) for v in gi],
    }


def study_simulation(out: Path, quick: bool, seeds: Sequence[int], progress: bool, files: list) -> dict:
    n = 100_000
    epochs = 10 if quick else 20
    l2, lam = 1e-3, 1e-3
    X, y = simulation_data(n, seed=12345)
    X_test, y_test = simulation_data(20_000, seed=54321)
    _say(progress, f"\n== Simulation: {n} samples, y = x3*x1 + (1-x3)*x2 plus 7 noise bits; 4+2 relu net, "
                   f"{epochs} epochs of Adam, seeds {list(seeds)}")
    _say(progress, "   variant l2: L2 weight decay on the first layer (sensinet's trainer; the paper's L1 activity "
                   "penalty is not in the engine)\n   variant l1_activity: the paper's penalty, Adam loop in Python")
    rows, tables, best = [], [], {}
    for variant in ("l2", "l1_activity"):
        for seed in seeds:
            t0 = time.perf_counter()
            if variant == "l2":
                net = _simulation_net(seed, l2=l2)
                net.fit(X, y, optimizer="adam", lr=1e-2, epochs=epochs, batch_size=256, seed=seed)
            else:
                net = _simulation_net(seed)
                fit_l1_activity(net, X, y, lam=lam, epochs=epochs, batch_size=256, lr=1e-2, seed=seed)
            train_s = time.perf_counter() - t0
            rc = ReluClusters(net).fit(X, feature_names=SIM_FEATURES)
            logic = logic_recovery(rc)
            row = {"variant": variant, "seed": int(seed), "test_accuracy": _accuracy(net, X_test, y_test),
                   "n_clusters": rc.n_clusters_, "n_dead": int(rc.dead_.sum()),
                   **{k: v for k, v in logic.items() if k != "global_importance"},
                   "train_seconds": train_s}
            rows.append(row)
            _say(progress, f"   {variant:12s} seed {seed}: accuracy {row['test_accuracy']:.4f}, {rc.n_clusters_:3d} "
                           f"clusters ({row['n_dead']} dead, {row['dead_share']:.0%} of samples), "
                           f"{row['n_rule_clusters']} rule clusters holding {row['rule_share']:.0%} of the live "
                           f"samples; local maps: flip sel -> flips {row['flip_selected']:.3f}, flip other -> keeps "
                           f"{row['flip_other']:.3f}, flip a noise bit -> keeps {row['flip_noise']:.3f}; "
                           f"noise/informative |w| {row['noise_ratio']:.4f}")
            t = rc.table(y, top=3, means=True)
            cols = ["cluster", "size", "share", "mean_y", "pred_pos_rate", "dead", "b_eff", "w_x1", "w_x2", "w_x3",
                    "mean_x1", "mean_x2", "mean_x3", "top"]
            tables.append(f"### {variant}, seed {seed}: test accuracy {row['test_accuracy']:.4f}, "
                          f"{rc.n_clusters_} clusters, max |w| of a noise bit {row['max_noise_weight']:.3g} "
                          f"(informative {row['max_informative_weight']:.3g})\n\n" + t.to_markdown(cols))
            key = (row["test_accuracy"], -row["n_clusters"])
            if variant not in best or key > best[variant][0]:
                best[variant] = (key, rc, seed)
    cols = ["variant", "seed", "test_accuracy", "n_clusters", "n_dead", "dead_share", "n_rule_clusters",
            "rule_share", "flip_selected", "flip_other", "flip_noise", "noise_ratio", "max_noise_weight",
            "max_informative_weight", "train_seconds"]
    summary = ClusterTable(cols, [[r[c] for c in cols] for r in rows])
    summary.to_csv(out / "simulation_summary.csv")
    files.append(str(out / "simulation_summary.csv"))
    _write(out / "simulation_clusters.md",
           "# Simulation: cluster tables per variant and seed\n\n"
           "Deviation from the paper: variant `l2` uses L2 weight decay on the first layer instead of the L1 "
           "activity penalty; variant `l1_activity` implements that penalty in a Python Adam loop.\n\n"
           + summary.to_markdown(floatfmt=".4g") + "\n\n" + "\n\n".join(tables), files)
    if have_matplotlib():
        for variant, (_, rc, seed) in best.items():
            path = out / f"simulation_clusters_{variant}.png"
            rc.plot(path=str(path), max_clusters=20)
            files.append(str(path))
    agg = {}
    for variant in ("l2", "l1_activity"):
        rs = [r for r in rows if r["variant"] == variant]
        solved = [r for r in rs if r["test_accuracy"] > 0.999]
        agg[variant] = {"seeds_solved": len(solved), "seeds": len(rs), "n_clusters": [r["n_clusters"] for r in rs]}
        for k in ("dead_share", "rule_share", "flip_selected", "flip_other", "flip_noise", "noise_ratio"):
            agg[variant][f"median_{k}_solved"] = (float(np.median([r[k] for r in solved])) if solved
                                                  else float("nan"))
    return {"n_samples": n, "epochs": epochs, "l2_first_layer": l2, "l1_activity_lambda": lam, "runs": rows,
            "by_variant": agg}


# ============================================================================================ titanic
def _titanic_model(seed: int, epochs: int, l2: float = 1e-2, features: str = "sensinet") -> dict:
    d = load_titanic(features=features)
    X_tr, X_te, y_tr, y_te = train_test_split(d.X, d.y, test_size=0.2, seed=seed)
    st = Standardizer().fit(X_tr)
    net = Network(d.n_features, [Dense(3, "relu", l2=l2), Dense(2, "relu"), Dense(1)], loss="binary_cross_entropy",
                  seed=seed)
    net.fit(st.transform(X_tr), y_tr, optimizer="adam", lr=1e-2, epochs=epochs, batch_size=32, seed=seed)
    rc = ReluClusters(net).fit(st.transform(d.X), feature_names=list(d.feature_names))
    return {"data": d, "net": net, "scaler": st, "clusters": rc,
            "train_accuracy": _accuracy(net, st.transform(X_tr), y_tr),
            "test_accuracy": _accuracy(net, st.transform(X_te), y_te)}


TITANIC_COLUMNS = ["cluster", "size", "share", "mean_y", "pred_pos_rate", "accuracy", "dead", "top", "mean_pclass",
                   "mean_sex", "mean_age_band", "mean_fare_band", "mean_title", "mean_is_alone"]


def study_titanic(out: Path, quick: bool, seeds: Sequence[int], progress: bool, files: list) -> dict:
    epochs = 80 if quick else 200
    _say(progress, f"\n== Titanic: 891 passengers, 7 features (standardized), 3+2 relu net with L2 = 0.01 on the "
                   f"first layer, {epochs} epochs of Adam, seeds {list(seeds)}")
    rows, importances, sections = [], [], []
    names = None
    for seed in seeds:
        r = _titanic_model(seed, epochs)
        rc, d = r["clusters"], r["data"]
        names = list(d.feature_names)
        gi = rc.global_importance()
        gs = rc.global_importance(signed=True)
        order = np.argsort(-gi, kind="stable")
        row = {"seed": int(seed), "train_accuracy": r["train_accuracy"], "test_accuracy": r["test_accuracy"],
               "n_clusters": rc.n_clusters_, "n_dead": int(rc.dead_.sum()),
               "dead_share": float(rc.shares_[rc.dead_].sum()), "largest_share": float(rc.shares_[0]),
               "top3": ", ".join(f"{names[j]} {gs[j]:+.2f}" for j in order[:3])}
        rows.append(row)
        importances.append([int(seed)] + [float(v) for v in gi] + [float(v) for v in gs])
        _say(progress, f"   seed {seed}: accuracy train {row['train_accuracy']:.3f} test {row['test_accuracy']:.3f}, "
                       f"{rc.n_clusters_:2d} clusters ({row['n_dead']} dead, {row['dead_share']:.0%} of passengers), "
                       f"top |w|: {row['top3']}")
        t = rc.table(d.y, feature_values=d.X)
        sections.append(f"### seed {seed}: {rc.n_clusters_} clusters, test accuracy {row['test_accuracy']:.3f}\n\n"
                        + t.to_markdown(TITANIC_COLUMNS))
        if seed == seeds[0]:
            t.to_csv(out / f"titanic_clusters_seed{seed}.csv")
            files.append(str(out / f"titanic_clusters_seed{seed}.csv"))
            if have_matplotlib():
                path = out / "titanic_clusters.png"
                rc.plot(path=str(path))
                files.append(str(path))
    cols = ["seed", "train_accuracy", "test_accuracy", "n_clusters", "n_dead", "dead_share", "largest_share", "top3"]
    summary = ClusterTable(cols, [[r[c] for c in cols] for r in rows])
    summary.to_csv(out / "titanic_seeds.csv")
    files.append(str(out / "titanic_seeds.csv"))
    imp = ClusterTable(["seed"] + [f"abs_{n}" for n in names] + [f"signed_{n}" for n in names], importances)
    imp.to_csv(out / "titanic_importance.csv")
    files.append(str(out / "titanic_importance.csv"))
    counts = [r["n_clusters"] for r in rows]
    _write(out / "titanic_clusters.md",
           "# Titanic: clusters across seeds\n\nWeights are per standard deviation of the feature; feature means "
           "are in the original integer codes (pclass 1-3, sex 0 male / 1 female, title 0 Mr, 1 Miss, 2 Mrs, "
           "3 Master, 4 rare).\n\n" + summary.to_markdown(floatfmt=".3g") + "\n\n"
           + "Size-weighted mean |W_eff| per feature and seed:\n\n" + imp.to_markdown(
               ["seed"] + [f"abs_{n}" for n in names], floatfmt=".3g") + "\n\n" + "\n\n".join(sections), files)
    gi = np.array([row[1:1 + len(names)] for row in importances])
    return {"epochs": epochs, "runs": rows, "n_clusters": counts, "n_clusters_min": int(min(counts)),
            "n_clusters_max": int(max(counts)), "n_clusters_median": float(np.median(counts)),
            "mean_importance": {n: float(v) for n, v in zip(names, gi.mean(axis=0))},
            "rank1_feature_per_seed": [names[int(np.argmax(g))] for g in gi]}


FEATURE_SEEDS = tuple(range(20))


def study_titanic_features(out: Path, quick: bool, progress: bool, files: list) -> dict:
    """The Titanic network with sensinet's features and with the authors' (load_titanic(features="paper")),
    over 20 seeds: cluster counts and test accuracy, paired by seed (Wilcoxon signed-rank)."""
    epochs, seeds = (80, FEATURE_SEEDS[:3]) if quick else (200, FEATURE_SEEDS)
    rows = []
    for seed in seeds:
        for features in ("sensinet", "paper"):
            r = _titanic_model(seed, epochs, features=features)
            rc = r["clusters"]
            rows.append({"seed": int(seed), "features": features, "n_clusters": int(rc.n_clusters_),
                         "dead_share": float(rc.shares_[rc.dead_].sum()), "test_accuracy": r["test_accuracy"]})
    stats: dict = {}
    for features in ("sensinet", "paper"):
        c = np.array([r["n_clusters"] for r in rows if r["features"] == features])
        a = np.array([r["test_accuracy"] for r in rows if r["features"] == features])
        stats[features] = {"clusters_median": float(np.median(c)), "clusters_q1": float(np.percentile(c, 25)),
                           "clusters_q3": float(np.percentile(c, 75)), "clusters_min": int(c.min()),
                           "clusters_max": int(c.max()), "accuracy_mean": float(a.mean()),
                           "accuracy_sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0}
    diff = np.array([r["n_clusters"] for r in rows if r["features"] == "paper"]) - \
        np.array([r["n_clusters"] for r in rows if r["features"] == "sensinet"])
    p = wilcoxon_p(diff)
    stats["paired"] = {"seeds": len(diff), "median_difference": float(np.median(diff)), "p_wilcoxon": p}
    write_csv(out / "titanic_features.csv", rows)
    lines = ["# Titanic: sensinet's features against the authors' (`load_titanic(features=\"paper\")`)", "",
             f"{len(seeds)} seeds, {epochs} epochs, 3+2 ReLU net with L2 = 0.01 on the first layer.", "",
             "| features | clusters median [quartiles] (min-max) | test accuracy mean ± sd |", "|---|---|---|"]
    for features in ("sensinet", "paper"):
        t = stats[features]
        lines.append(f"| {features} | {t['clusters_median']:.0f} [{t['clusters_q1']:.0f}, {t['clusters_q3']:.0f}] "
                     f"({t['clusters_min']}-{t['clusters_max']}) | {t['accuracy_mean']:.3f} ± {t['accuracy_sd']:.3f} |")
    lines += ["", f"Paired by seed: median difference in clusters (paper - sensinet) "
                  f"{stats['paired']['median_difference']:+.1f}, Wilcoxon p = {p:.2g}.", "",
              markdown(rows, floatfmt=".3g")]
    _write(out / "titanic_features.md", "\n".join(lines), files)
    files.append(str(out / "titanic_features.csv"))
    _say(progress, f"\n== Titanic features (20 seeds): clusters sensinet {stats['sensinet']['clusters_median']:.0f} "
                   f"({stats['sensinet']['clusters_min']}-{stats['sensinet']['clusters_max']}), paper "
                   f"{stats['paper']['clusters_median']:.0f} ({stats['paper']['clusters_min']}-"
                   f"{stats['paper']['clusters_max']}); paired p = {p:.2g}")
    return {"epochs": epochs, "seeds": list(seeds), "runs": rows, **stats}


# ============================================================================================ breast cancer
def study_breast_cancer(out: Path, quick: bool, seed: int, progress: bool, files: list) -> dict:
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError:
        _say(progress, "\n== Breast cancer: skipped (scikit-learn is not installed: pip install scikit-learn)")
        return {"skipped": "scikit-learn is not installed"}
    data = load_breast_cancer()
    X_tr, X_te, y_tr, y_te = train_test_split(data.data, data.target, test_size=0.2, seed=seed)
    st = Standardizer().fit(X_tr)
    Xtr, Xte = st.transform(X_tr), st.transform(X_te)
    epochs = 100 if quick else 200
    net = Network(30, [Dense(20, "relu"), Dense(20, "relu"), Dense(20, "relu"), Dense(1)],
                  loss="binary_cross_entropy", seed=seed)
    net.fit(Xtr, y_tr, optimizer="adam", lr=1e-3, epochs=epochs, batch_size=32, seed=seed)
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    rc = ReluClusters(net).fit(Xtr, feature_names=names)
    C = rc.n_clusters_
    _say(progress, f"\n== Breast cancer: {len(Xtr)} training samples, 30 standardized features, 20x3 relu net, "
                   f"{epochs} epochs of Adam (seed {seed})\n   accuracy train {_accuracy(net, Xtr, y_tr):.3f} test "
                   f"{_accuracy(net, Xte, y_te):.3f}; {C} clusters (activation patterns) among {len(Xtr)} samples, "
                   f"{int(np.sum(rc.counts_ == 1))} of them singletons")
    ns = sorted({n for n in (1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300) if n < C} | {C})
    curves = {}
    rows = []
    for by in ("hamming", "affine"):
        t0 = time.perf_counter()
        curve = rc.fidelity_curve(ns, by=by, X_test=Xte)
        curves[by] = curve
        for i, n in enumerate(curve.n_clusters):
            rows.append([by, int(n), float(curve.r2[i]), float(curve.agreement[i]), float(curve.max_abs_error[i]),
                         float(curve.r2_test[i]), float(curve.agreement_test[i])])
        _say(progress, f"   merged by {by:7s} ({time.perf_counter() - t0:.2f} s): "
                       + ", ".join(f"n={n}: R2 {r:.3f} agree {a:.3f}" for n, r, a in
                                   zip(curve.n_clusters, curve.r2, curve.agreement) if n in (1, 5, 10, 50, C)))
    fid = ClusterTable(["by", "n_clusters", "r2", "agreement", "max_abs_error", "r2_test", "agreement_test"], rows)
    fid.to_csv(out / "breast_cancer_fidelity.csv")
    files.append(str(out / "breast_cancer_fidelity.csv"))
    n_merge = 5
    merged = rc.merge(n_merge, by="hamming")
    y_tr = np.asarray(y_tr)
    before = rc.table(y_tr, means=False, weights=False)
    after = merged.table(y_tr, means=False, weights=False)
    f = merged.fidelity
    ft = merged.fidelity_on(Xte)
    _write(out / "breast_cancer_clusters.md",
           f"# Breast cancer: clusters before and after merging\n\n{C} clusters among {len(Xtr)} training samples "
           f"(the 20 largest shown; label 1 = benign).\n\n"
           + ClusterTable(before.columns, before.rows[:20]).to_markdown(
               ["cluster", "size", "share", "mean_y", "pred_pos_rate", "dead", "top"])
           + f"\n\nMerged into {n_merge} clusters by the Hamming distance of the patterns (size-weighted average "
           f"linkage), each refit by least squares on the logits: R^2 {f.r2:.4f}, class agreement {f.agreement:.4f} "
           f"(test: R^2 {ft.r2:.4f}, agreement {ft.agreement:.4f}).\n\n"
           + after.to_markdown(["cluster", "size", "n_patterns", "share", "mean_y", "pred_pos_rate", "accuracy", "top"])
           + "\n\nFidelity against the number of clusters:\n\n" + fid.to_markdown(floatfmt=".4g"), files)
    if have_matplotlib():
        fig, axes = figure((12, 4.2), 1, 2, sharey=True)
        for ax, (by, curve) in zip(axes, curves.items()):
            curve.plot(ax=ax)
        fig.suptitle(f"breast cancer, 20x3 relu net: fidelity of the merged explanation ({C} patterns, "
                     f"{len(Xtr)} training samples)", fontsize=10)
        save(fig, out / "breast_cancer_fidelity.png")
        files.append(str(out / "breast_cancer_fidelity.png"))
        merged.plot(path=str(out / "breast_cancer_merged.png"))
        files.append(str(out / "breast_cancer_merged.png"))

    def pick(curve, attr):
        return {int(n): float(v) for n, v in zip(curve.n_clusters, getattr(curve, attr))}

    return {"n_train": int(len(Xtr)), "n_test": int(len(Xte)), "epochs": epochs,
            "train_accuracy": _accuracy(net, Xtr, y_tr), "test_accuracy": _accuracy(net, Xte, y_te),
            "n_clusters": C, "n_singletons": int(np.sum(rc.counts_ == 1)), "largest_cluster": int(rc.counts_[0]),
            "fidelity": {by: {"r2": pick(c, "r2"), "agreement": pick(c, "agreement"), "r2_test": pick(c, "r2_test"),
                              "agreement_test": pick(c, "agreement_test")} for by, c in curves.items()},
            "merged5": {"r2": f.r2, "agreement": f.agreement, "r2_test": ft.r2, "agreement_test": ft.agreement,
                        "sizes": [int(v) for v in merged.counts_]}}


# ============================================================================================ driver
def run(out_dir: Any, quick: bool = False, seeds: Optional[Sequence[int]] = None, progress: bool = True,
        data: Any = None, n_jobs: int = 1, scheduler: Any = None, resume: bool = True) -> dict:
    """Run the three studies, write tables and figures into ``out_dir`` and return the key numbers. With
    ``data`` (the user's data sets), run the breast-cancer protocol on each of them over the seeds instead
    (:mod:`sensinet.experiments.clusters_user`; ``n_jobs`` / ``scheduler`` / ``resume`` as in every study).

    Parameters
    ----------
    out_dir : path
        Created if needed.
    quick : bool
        Fewer epochs (simulation 10 instead of 20, Titanic 80 instead of 200, breast cancer 100 instead of 200)
        and three seeds: a smoke test in well under 30 s.
    seeds : sequence of int, optional
        Seeds of the simulation and Titanic networks (default 0..4, quick 0..2); the breast-cancer study uses
        the first.
    progress : bool
        Print what each study finds while it runs.
    """
    seeds = tuple(int(s) for s in (seeds if seeds is not None else (QUICK_SEEDS if quick else DEFAULT_SEEDS)))
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds: expected seeds >= 0, got {list(seeds)}")
    shared = user_datasets(data)
    out = Path(out_dir)  # created only once the arguments are known to be good
    out.mkdir(parents=True, exist_ok=True)
    if shared:
        return {"user": clusters_user.study(out, shared, seeds, quick, n_jobs, scheduler, resume, progress)}
    files: list = []
    t0 = time.perf_counter()
    results: dict = {"quick": bool(quick), "seeds": list(seeds)}
    t = time.perf_counter()
    results["simulation"] = study_simulation(out, quick, seeds, progress, files)
    results["simulation"]["seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    results["titanic"] = study_titanic(out, quick, seeds, progress, files)
    results["titanic"]["seconds"] = time.perf_counter() - t
    results["titanic_features"] = study_titanic_features(out, quick, progress, files)
    t = time.perf_counter()
    results["breast_cancer"] = study_breast_cancer(out, quick, seeds[0], progress, files)
    results["breast_cancer"]["seconds"] = time.perf_counter() - t
    results["seconds"] = time.perf_counter() - t0
    files += [str(out / "summary.md"), str(out / "results.json")]
    results["files"] = files
    (out / "summary.md").write_text(_summary_markdown(results), encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    _say(progress, f"\nclusters study finished in {results['seconds']:.1f} s; outputs in {out}/")
    return results


def _summary_markdown(r: dict) -> str:
    s, t, b = r["simulation"], r["titanic"], r["breast_cancer"]
    lines = ["# ReLU-cluster interpretation (Picchiotti & Gori, arXiv:2110.06593): summary", "",
             f"quick={r['quick']}, seeds {r['seeds']}, {r['seconds']:.1f} s", "",
             f"## Simulation ({s['n_samples']} samples, {s['epochs']} epochs)", "",
             "Deviation from the paper: variant `l2` trains with L2 weight decay on the first layer (sensinet has "
             "no L1 activity penalty); variant `l1_activity` adds the paper's penalty in a Python Adam loop.", "",
             "Medians over the solved seeds (test accuracy > 0.999) of the per-sample checks of the local maps "
             "(see `logic_recovery`).", "",
             "| variant | seeds solved | clusters per seed | dead share | rule share (live) | flip sel flips (live) | "
             "flip other keeps | flip noise keeps | noise/informative mean abs(w) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v, a in s["by_variant"].items():
        lines.append(f"| {v} | {a['seeds_solved']}/{a['seeds']} | {a['n_clusters']} | "
                     f"{a['median_dead_share_solved']:.3f} | {a['median_rule_share_solved']:.3f} | "
                     f"{a['median_flip_selected_solved']:.3f} | "
                     f"{a['median_flip_other_solved']:.3f} | {a['median_flip_noise_solved']:.3f} | "
                     f"{a['median_noise_ratio_solved']:.4f} |")
    lines += ["", f"## Titanic ({t['epochs']} epochs)", "",
              f"clusters per seed: {t['n_clusters']} (min {t['n_clusters_min']}, max {t['n_clusters_max']}); "
              f"most important feature per seed: {t['rank1_feature_per_seed']}", "",
              "| seed | test accuracy | clusters | dead share | top features (signed mean w) |",
              "|---|---|---|---|---|"]
    for row in t["runs"]:
        lines.append(f"| {row['seed']} | {row['test_accuracy']:.3f} | {row['n_clusters']} | {row['dead_share']:.2f} | "
                     f"{row['top3']} |")
    tf = r["titanic_features"]
    lines += ["", f"## Titanic: sensinet's features against the authors' ({len(tf['seeds'])} seeds)", "",
              f"clusters median (min-max): sensinet {tf['sensinet']['clusters_median']:.0f} "
              f"({tf['sensinet']['clusters_min']}-{tf['sensinet']['clusters_max']}), paper "
              f"{tf['paper']['clusters_median']:.0f} ({tf['paper']['clusters_min']}-{tf['paper']['clusters_max']}); "
              f"paired Wilcoxon p = {tf['paired']['p_wilcoxon']:.2g} (`titanic_features.md`)"]
    lines += ["", "## Breast cancer", ""]
    if "skipped" in b:
        lines.append(f"skipped: {b['skipped']}")
    else:
        lines += [f"{b['n_clusters']} clusters among {b['n_train']} training samples ({b['n_singletons']} singletons); "
                  f"accuracy train {b['train_accuracy']:.3f}, test {b['test_accuracy']:.3f}", "",
                  "| merged by | n clusters | R^2 | agreement | R^2 test | agreement test |",
                  "|---|---|---|---|---|---|"]
        for by, f in b["fidelity"].items():
            for n in f["r2"]:
                lines.append(f"| {by} | {n} | {f['r2'][n]:.4f} | {f['agreement'][n]:.4f} | {f['r2_test'][n]:.4f} | "
                             f"{f['agreement_test'][n]:.4f} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sensinet experiment clusters``."""
    parser.add_argument("--out", type=Path, default=Path("sensinet_results") / "clusters",
                        help="folder for tables and figures (default sensinet_results/clusters)")
    parser.add_argument("--quick", action="store_true", help="smaller studies (a smoke test, < 30 s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="network seeds (default 0..4; quick 0..2)")
    parser.add_argument("--no-progress", action="store_true", help="do not print the findings while running")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (joblib; with --data)")
    parser.add_argument("--scheduler", default=None, help="dask.distributed scheduler address (with --data)")
    parser.add_argument("--no-resume", action="store_true", help="start over instead of skipping finished runs")
    add_data_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Entry point of ``sensinet experiment clusters`` (after :func:`add_arguments`)."""
    try:
        run(args.out, quick=args.quick, seeds=args.seeds, progress=not args.no_progress,
            data=data_from_arguments(args), n_jobs=getattr(args, "jobs", 1), scheduler=getattr(args, "scheduler", None),
            resume=not getattr(args, "no_resume", False))
    except ValueError as exc:
        print(f"sensinet experiment clusters: {exc}", file=sys.stderr)
        return 2
    return 0


# ============================================================================================ demo
def demo_section(out_dir: Any, seed: int = 0, epochs: int = 200) -> dict:
    """``sensinet demo`` section: the Titanic cluster table and figure (a second or two)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    r = _titanic_model(seed, epochs)
    rc, d = r["clusters"], r["data"]
    print(f"\n== ReLU clusters (Picchiotti & Gori 2021): Titanic, 3+2 relu net, L2 on the first layer; test accuracy "
          f"{r['test_accuracy']:.3f}")
    print(f"{rc.n_clusters_} activation patterns among {len(d.X)} passengers; inside each the network is exactly "
          "the affine map below (weights per standard deviation, means in the original codes):")
    table = rc.table(d.y, feature_values=d.X)
    print(table.to_text(["cluster", "size", "share", "mean_y", "pred_pos_rate", "dead", "top", "mean_pclass",
                         "mean_sex", "mean_title"]))
    gi = rc.global_importance()
    order = np.argsort(-gi, kind="stable")
    print("global importance (size-weighted mean |w_eff|): "
          + ", ".join(f"{d.feature_names[j]} {gi[j]:.2f}" for j in order))
    dead = rc.dead_
    if dead.any():
        print(f"{int(dead.sum())} clusters ({rc.shares_[dead].sum():.0%} of the passengers) have a constant map: "
              "there the network's prediction does not depend on the features at all")
    live = np.flatnonzero(~dead)
    i = int(np.argmax(rc.labels_ == live[0])) if live.size else 0
    e = rc.explain(rc.X_[i])
    print(f"passenger {i} (cluster {e.cluster}): logit {e.output[0]:+.3f} (network {e.network_output[0]:+.3f}) = bias "
          f"{e.b_eff[0]:+.3f} + " + " + ".join(f"{n} {c:+.3f}" for n, c, _, _ in e.top(3)) + " + ...")
    result = {"clusters": rc, "table": table, "test_accuracy": r["test_accuracy"]}
    if have_matplotlib():
        path = out / "titanic_clusters.png"
        rc.plot(path=str(path))
        print(f"saved the cluster figure to {path}")
        result["figure"] = str(path)
    result["seconds"] = time.perf_counter() - t0
    return result



if __name__ == "__main__":  # python -m sensinet.experiments.clusters
    from . import script

    sys.exit(script(sys.modules[__name__]))
