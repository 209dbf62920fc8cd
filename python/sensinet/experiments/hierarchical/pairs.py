"""What the study compares: each hierarchical run paired with its backprop baseline, and when a curve
reaches a target loss."""
from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np

from .._stats import wilcoxon_p


def pair_records(records: Iterable[dict], bp_lr: Optional[float] = None) -> dict:
    """(experiment, dataset, arch, variant, start) -> {"hier": rec, "bp": rec}: each hierarchical run with the
    backprop run of the same start, inner optimizer and budget, at the same learning rate (or at ``bp_lr``)."""
    recs = list(records)
    bps = {}
    for r in recs:
        if r["method"] == "backprop":
            bps[(r["experiment"], r["dataset"], r["arch"], r["inner"], r["start"], r["budget"], r["lr"])] = r
    out: dict = {}
    for r in recs:
        if r["method"] != "hierarchical":
            continue
        lr = r["lr"] if bp_lr is None else bp_lr
        bp = bps.get((r["experiment"], r["dataset"], r["arch"], r["inner"], r["start"], r["budget"], lr))
        out[(r["experiment"], r["dataset"], r["arch"], r["variant"], r["start"])] = {"hier": r, "bp": bp}
    return out


def reach(curve: list, target: float) -> tuple:
    """(work, seconds) at which a curve of (work, J, seconds) first reaches J <= target (nan if never)."""
    for w, J, t in curve:
        if J <= target:
            return w, t
    return math.nan, math.nan


def versus_default(records: Iterable[dict], experiment: str) -> list:
    """Each hierarchical variant of ``experiment`` against the default one on the same starts (and data set and
    network): how often it ends lower, the geometric mean of the final-J ratio variant / default, and the paired
    Wilcoxon p of its logarithm."""
    hier = {(r["dataset"], r["arch"], r["start"], r["variant"]): r["train_mse"] for r in records
            if r["experiment"] == experiment and r["method"] == "hierarchical"}
    out = []
    for variant in dict.fromkeys(k[3] for k in hier):
        if variant == "default":
            continue
        ks = [k[:3] for k in hier if k[3] == variant and (*k[:3], "default") in hier]
        if not ks:
            continue
        r = np.log([hier[(*k, variant)] / hier[(*k, "default")] for k in ks])
        out.append({"variant": variant, "pairs": len(ks), "lower_than_default": int(np.sum(r < 0)),
                    "ratio_geomean": float(np.exp(r.mean())), "p_wilcoxon": wilcoxon_p(r)})
    return out


def paired_reach(a: dict, b: dict) -> tuple:
    """When two runs of one start reach their paired target, the larger of their best J: ((work, seconds) of
    ``a``, (work, seconds) of ``b``). Both reach it by construction."""
    target = max(min(c[1] for c in a["curve"]), min(c[1] for c in b["curve"])) * (1 + 1e-12)
    return reach(a["curve"], target), reach(b["curve"], target)
