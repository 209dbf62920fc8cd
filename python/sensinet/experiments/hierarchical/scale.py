"""The large-scale test of the paper's efficiency claim: wide, deep networks (widths 1024-2048, depths 8-16),
hierarchical variants against backprop from the same starts, wall-clock and work to a target loss, and paired
tests across starts.

Set-up (chosen before any run, not tuned): concrete (927 training samples of a 90/10 split per start), tanh
layers, float32, Adam lr 1e-3 with minibatches of 128 for every method (at these widths a batch of 32 spends
most of a step in the optimizer update of up to 63 M parameters), one engine thread, the same budget of
full-gradient equivalents for every run. The methods: backprop, the default hierarchical optimizer (first order,
``p_rand=0.1``), second-order scores, random blocks (``p_rand=1``), and the neuron level (``min_neurons`` =
width / 4: two neuron levels below each layer).

A second backprop baseline at lr 1e-4 (``SCALE_ALT_LR``) was added after the first runs showed backprop at lr
1e-3 stalling near J = 0.9 on 16 x 1024 while the block-wise methods trained: it tells whether a hierarchical
advantage is more than a learning rate too large for full backprop. The hierarchical runs keep lr 1e-3.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..._tables import write_table
from .._stats import mean_ci95, wilcoxon_p
from .pairs import pair_records, paired_reach, reach

SCALE_ARCHS = ((8, 1024), (16, 1024), (8, 2048), (16, 2048))
SCALE_VARIANTS = ("default", "score=second_order", "p_rand=1 (random blocks)", "neuron level")
SCALE_TARGET = 0.2  # fixed target: training MSE 0.2 on standardized targets
SCALE_ALT_LR = 1e-4  # the second backprop baseline


def scale_options(variant: str, width: int) -> dict:
    """HierarchicalOptimizer options of a variant of the scale experiment."""
    return {"default": {}, "score=second_order": {"score": "second_order"},
            "p_rand=1 (random blocks)": {"p_rand": 1.0}, "neuron level": {"min_neurons": width // 4}}[variant]


def scale_config(quick: bool, starts: Any = None, budget: Any = None) -> dict:
    if quick:
        return dict(scale_archs=[(2, 32), (3, 48)], scale_starts=starts or 2, scale_budget=budget or 8.0,
                    scale_dataset="concrete", scale_batch=128, scale_variants=list(SCALE_VARIANTS))
    return dict(scale_archs=[tuple(a) for a in SCALE_ARCHS], scale_starts=starts or 5, scale_budget=budget or 16.0,
                scale_dataset="concrete", scale_batch=128, scale_variants=list(SCALE_VARIANTS))


def scale_rows(pairs: dict, fixed_target: float = SCALE_TARGET, alt: Optional[dict] = None) -> list:
    """One row per (network, variant): final and best J (mean, 95 % CI), time and work to the paired and the
    fixed target, seconds per outer iteration and per unit of work, wins/losses and paired Wilcoxon p-values;
    with ``alt`` (the same hierarchical runs paired with the second backprop baseline) its final J, wins/losses
    and p as ``alt_*``."""
    groups: dict = {}
    for key, p in pairs.items():
        if key[0] == "scale" and p["bp"] is not None:
            groups.setdefault((key[2], key[3]), []).append(p)
    rows = []
    for (arch, variant), ps in groups.items():
        depth, width = (int(v) for v in arch.split()[0].split("x"))
        hJ, bJ = [p["hier"]["train_mse"] for p in ps], [p["bp"]["train_mse"] for p in ps]
        hb = [min(c[1] for c in p["hier"]["curve"]) for p in ps]
        bb = [min(c[1] for c in p["bp"]["curve"]) for p in ps]
        th, tb = zip(*(paired_reach(p["hier"], p["bp"]) for p in ps))
        fh = [reach(p["hier"]["curve"], fixed_target) for p in ps]
        fb = [reach(p["bp"]["curve"], fixed_target) for p in ps]
        med = lambda v: float(np.nanmedian(v)) if np.any(np.isfinite(v)) else math.nan  # noqa: E731
        mh, ch = mean_ci95(hJ)
        mb, cb = mean_ci95(bJ)
        row = {"network": arch, "depth": depth, "width": width, "variant": variant, "starts": len(ps),
               "n_params": ps[0]["hier"].get("n_params", 0), "budget": ps[0]["hier"]["budget"],
               "hier_mse_mean": mh, "hier_mse_ci95": ch, "bp_mse_mean": mb, "bp_mse_ci95": cb,
               "hier_best_mse_mean": float(np.mean(hb)), "bp_best_mse_mean": float(np.mean(bb)),
               "wins": int(sum(a < b for a, b in zip(hJ, bJ))), "losses": int(sum(a > b for a, b in zip(hJ, bJ))),
               "p_final": wilcoxon_p(np.subtract(hJ, bJ)),
               "hier_work_to_paired": med([a[0] for a in th]), "bp_work_to_paired": med([b[0] for b in tb]),
               "hier_s_to_paired": med([a[1] for a in th]), "bp_s_to_paired": med([b[1] for b in tb]),
               "p_time_to_paired": wilcoxon_p([a[1] - b[1] for a, b in zip(th, tb)]),
               "fixed_target": fixed_target,
               "hier_reached_fixed": int(sum(np.isfinite(a[1]) for a in fh)),
               "bp_reached_fixed": int(sum(np.isfinite(b[1]) for b in fb)),
               "hier_s_to_fixed": med([a[1] for a in fh]), "bp_s_to_fixed": med([b[1] for b in fb]),
               "hier_seconds": float(np.mean([p["hier"]["time"] for p in ps])),
               "bp_seconds": float(np.mean([p["bp"]["time"] for p in ps])),
               "hier_outer": float(np.mean([p["hier"].get("n_outer", 0) for p in ps]))}
        row["hier_s_per_outer"] = row["hier_seconds"] / row["hier_outer"] if row["hier_outer"] else math.nan
        row.update(_against(alt, ps, "alt_"))
        row["hier_s_per_work"] = row["hier_seconds"] / max(float(np.mean([p["hier"]["work"] for p in ps])), 1e-12)
        row["bp_s_per_work"] = row["bp_seconds"] / max(float(np.mean([p["bp"]["work"] for p in ps])), 1e-12)
        rows.append(row)
    order = {v: i for i, v in enumerate(SCALE_VARIANTS)}
    return sorted(rows, key=lambda r: (r["width"], r["depth"], order.get(r["variant"], 99)))


def _versus(pairs: list) -> dict:
    """(hierarchical, baseline) run pairs compared: how often each ends lower, the geometric mean of the final-J
    ratio and its paired p, the geometric mean of the time-to-paired-target ratio and its paired p, and the
    baseline's mean final J with its 95 % interval."""
    h = np.array([a["train_mse"] for a, _ in pairs])
    b = np.array([c["train_mse"] for _, c in pairs])
    th, tb = (np.array([t[1] for t in ts]) for ts in zip(*(paired_reach(a, c) for a, c in pairs)))
    with np.errstate(divide="ignore", invalid="ignore"):  # a run that never reached the target: nan
        r = th / tb
    r = r[np.isfinite(r) & (r > 0)]
    m, ci = mean_ci95(b)
    return {"bp_mse_mean": m, "bp_mse_ci95": ci, "pairs": len(pairs), "wins": int(np.sum(h < b)),
            "losses": int(np.sum(h > b)), "ratio_geomean": float(np.exp(np.mean(np.log(h / b)))),
            "p_final": wilcoxon_p(h - b),
            "time_ratio_geomean": float(np.exp(np.mean(np.log(r)))) if r.size else math.nan,
            "p_time": wilcoxon_p(th - tb)}


def _against(alt: Optional[dict], ps: list, prefix: str) -> dict:
    """:func:`_versus` of the hierarchical runs ``ps`` against the second baseline, its keys prefixed."""
    if not alt:
        return {}
    got = [(p["hier"], b) for p in ps if (b := alt.get(_key(p["hier"]), {}).get("bp")) is not None]
    return {prefix + k: v for k, v in _versus(got).items()} if got else {}


def _key(rec: dict) -> tuple:
    return (rec["experiment"], rec["dataset"], rec["arch"], rec["variant"], rec["start"])


def pooled_rows(pairs: dict, alt: Optional[dict] = None) -> list:
    """Per variant, over every (network, start) pair: wins/losses and the paired Wilcoxon p of the final J and
    of the time to the paired target (and against the second baseline with ``alt``)."""
    out = []
    for variant in SCALE_VARIANTS:
        ps = [p for k, p in sorted(pairs.items()) if k[0] == "scale" and k[3] == variant and p["bp"] is not None]
        if not ps:
            continue
        v = _versus([(p["hier"], p["bp"]) for p in ps])
        out.append({"variant": variant, "pairs": v["pairs"], "wins": v["wins"], "losses": v["losses"],
                    "final_ratio_geomean": v["ratio_geomean"], "p_final": v["p_final"],
                    "time_to_paired_ratio_geomean": v["time_ratio_geomean"], "p_time_to_paired": v["p_time"],
                    **_against(alt, ps, "alt_")})
    return out


def write_scale(records: list, out: Path) -> tuple:
    """``scale.csv`` / ``.md`` and ``scale_pooled.csv`` / ``.md``; returns (rows, pooled, markdown)."""
    pairs, alt = pair_records(records), pair_records(records, bp_lr=SCALE_ALT_LR)
    rows, pooled = scale_rows(pairs, alt=alt), pooled_rows(pairs, alt=alt)
    if not rows:
        return rows, pooled, ""
    has_alt = any("alt_wins" in r for r in rows)
    alt_cols = [(f"bp lr {SCALE_ALT_LR:g} final MSE",
                 lambda r: f"{r['alt_bp_mse_mean']:.4g} ± {r['alt_bp_mse_ci95']:.2g}"),
                ("W/L vs it", lambda r: f"{r['alt_wins']}/{r['alt_losses']}"), ("p (vs it)", "alt_p_final")]
    cols = ["network", "variant", "starts",
            ("hier final MSE", lambda r: f"{r['hier_mse_mean']:.4g} ± {r['hier_mse_ci95']:.2g}"),
            ("bp final MSE", lambda r: f"{r['bp_mse_mean']:.4g} ± {r['bp_mse_ci95']:.2g}"),
            ("W/L", lambda r: f"{r['wins']}/{r['losses']}"), ("p (final)", "p_final"),
            *(alt_cols if has_alt else []),
            ("hier work to paired target", "hier_work_to_paired"), ("bp work to it", "bp_work_to_paired"),
            ("hier s to paired target", "hier_s_to_paired"), ("bp s to it", "bp_s_to_paired"),
            ("p (time)", "p_time_to_paired"),
            (f"reached J<={SCALE_TARGET:g} hier/bp", lambda r: f"{r['hier_reached_fixed']}/{r['bp_reached_fixed']}"),
            ("hier s to it", "hier_s_to_fixed"), ("bp s to it", "bp_s_to_fixed"),
            ("outer its", "hier_outer"), ("s per outer it", "hier_s_per_outer"),
            ("hier s/work", "hier_s_per_work"), ("bp s/work", "bp_s_per_work")]
    text = write_table(rows, out / "scale.csv", out / "scale.md", cols,
                       title="Large networks (concrete, tanh, float32, Adam lr 1e-3, batch 128): final training MSE "
                             "(mean ± 95 % CI over starts), medians of work and seconds to the paired target "
                             "(the larger of the two methods' best J of a start) and to a fixed target; "
                             "p: two-sided paired Wilcoxon over starts")
    pcols = ["variant", "pairs", ("W/L", lambda r: f"{r['wins']}/{r['losses']}"),
             ("final J ratio hier/bp (geo. mean)", "final_ratio_geomean"), ("p (final)", "p_final"),
             ("time-to-paired-target ratio (geo. mean)", "time_to_paired_ratio_geomean"),
             ("p (time)", "p_time_to_paired")]
    if has_alt:
        pcols += [(f"W/L vs bp lr {SCALE_ALT_LR:g}", lambda r: f"{r['alt_wins']}/{r['alt_losses']}"),
                  ("final J ratio vs it", "alt_ratio_geomean"), ("p (vs it)", "alt_p_final"),
                  ("time-to-paired-target ratio vs it", "alt_time_ratio_geomean"), ("p (time, vs it)", "alt_p_time")]
    text += "\n" + write_table(pooled, out / "scale_pooled.csv", out / "scale_pooled.md", pcols,
                               title="Pooled over networks and starts: each hierarchical variant against backprop")
    return rows, pooled, text
