"""Statistics the studies share: the paired Wilcoxon test over seeds and a t interval of a mean."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (non-finite ones dropped); 1.0 when fewer than
    two remain or all are 0 (no evidence of an ordering)."""
    from scipy.stats import wilcoxon

    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    return float(wilcoxon(d).pvalue) if d.size > 1 and np.any(d != 0) else 1.0


def mean_ci95(values: Sequence[float]) -> tuple:
    """Mean and the half-width of its 95 % Student-t interval (nan with fewer than two values)."""
    from scipy.stats import t as student

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan), math.nan
    return float(x.mean()), float(student.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
