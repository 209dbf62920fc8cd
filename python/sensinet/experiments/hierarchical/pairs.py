"""What the study compares: each hierarchical run paired with its backprop baseline, and when a curve
reaches a target loss."""
from __future__ import annotations

import math
from typing import Iterable, Optional


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
