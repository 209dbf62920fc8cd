"""How the estimators prepare their data: the targets' scale, the held-out split for early stopping and
its score."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

from .losses import predicted_class


def target_scale(Y: NDArray, w: Optional[NDArray] = None) -> tuple:
    """Per-column mean and standard deviation of Y, computed in units of the column's largest ``|value|`` so
    that targets near the float64 limit (1e300) do not overflow the variance."""
    if w is not None:  # the weighted moments: samples of weight 0 do not move the scale at all
        Y, w = Y[w > 0], w[w > 0]
    big = np.max(np.abs(Y), axis=0)
    big = np.where(big > 0, big, 1.0)
    Z = Y / big
    if w is None:
        mean, scale = Z.mean(axis=0) * big, Z.std(axis=0) * big
    else:
        wn = w / w.sum()
        mz = wn @ Z
        mean, scale = mz * big, np.sqrt(wn @ (Z - mz) ** 2) * big
    # Constant targets have no scale: keep them in place instead of dividing by ~0.
    scale = np.where(scale > 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0), scale, 1.0)
    return mean, scale


def held_out(n: int, n_val: int, rng: Any, strata: Optional[NDArray]) -> tuple:
    """(validation, training) indices: ``n_val`` samples drawn by ``rng``, stratified by the class labels
    ``strata`` when every class has at least two samples (as scikit-learn's MLP splits for classifiers)."""
    if strata is not None:
        counts = np.unique(strata, return_counts=True)[1]
        if counts.min() >= 2 and n_val >= counts.size and n - n_val >= counts.size:
            from sklearn.model_selection import train_test_split

            tr, val = train_test_split(np.arange(n), test_size=n_val, random_state=rng, stratify=strata)
            return np.sort(val), np.sort(tr)
    perm = rng.permutation(n)
    return perm[:n_val], perm[n_val:]


def held_out_score(loss: str, out: NDArray, T: NDArray) -> float:
    """R^2 (uniform average over outputs) of a regressor's standardized outputs, or a classifier's accuracy."""
    out, T = np.asarray(out, np.float64), np.asarray(T, np.float64)
    if loss == "mse":
        ss_res = np.sum((T - out) ** 2, axis=0)
        ss_tot = np.sum((T - T.mean(axis=0)) ** 2, axis=0)
        return float(np.mean(1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)))
    truth = T.argmax(axis=1) if loss == "cross_entropy" else T > 0.5
    return float(np.mean(predicted_class(loss, out) == truth))
