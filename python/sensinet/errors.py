"""The non-finite policy: nothing returns inf or NaN silently. Evaluations raise NonFiniteError naming what
overflowed; training raises DivergenceError and keeps the last finite weights."""
from __future__ import annotations

from typing import Any

import numpy as np


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss; the network keeps the last weights whose loss was finite."""


class NonFiniteError(FloatingPointError):
    """A result computed from finite inputs and weights overflowed (became infinite or NaN).

    The package's policy: nothing returns non-finite values silently. Evaluations (forward, predict,
    loss, gradients, sensitivities, curvatures) raise this error naming what overflowed; training raises
    :class:`DivergenceError` and keeps the last finite weights."""


def _magnitude(name: str, values: Any) -> tuple:
    """(cause, fact) about ``values``: a cause when they hold NaN or infinity, else their largest magnitude."""
    x = np.asarray(getattr(values, "array", values))
    if x.dtype.kind not in "fc" or not x.size:
        return None, None
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        return f"the {name} contain {bad} NaN or infinite value(s)", None
    return None, f"largest |{name[:-1] if name.endswith('s') else name}| {float(np.max(np.abs(x))):.3g}"


def require_finite(values: Any, what: str, where: str, inputs: Any = None, *, targets: Any = None,
                   weights: Any = None, dtype: Any = None) -> Any:
    """``values`` if all finite; else NonFiniteError saying why: which of the weights, inputs or targets hold NaN
    or infinity, or (all finite) that the computation overflowed, with their largest magnitudes. ``weights`` may
    be a callable (read only on the error path: a GPU network's weights cross the bus only then); ``dtype`` is
    the computation's (default: that of ``values``; a float32 network's loss comes back as a Python float)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        if callable(weights):
            weights = weights()
        causes, facts = [], []
        for name, v in (("weights", weights), ("inputs", inputs), ("targets", targets)):
            if v is not None:
                cause, fact = _magnitude(name, v)
                causes += [cause] if cause else []
                facts += [fact] if fact else []
        if causes:
            raise NonFiniteError(f"{where}: the {what} is not finite because {' and '.join(causes)}.")
        dtype = np.dtype(dtype or arr.dtype)
        wider = ", or use float64" if dtype == np.float32 else ""
        measured = f" ({', '.join(facts)})" if facts else ""
        raise NonFiniteError(f"{where}: the {what} overflowed to infinity or NaN in {dtype.name}{measured}. Rescale "
                             f"the inputs and targets (e.g. with sensinet.datasets.Standardizer) or shrink the "
                             f"weights{wider}.")
    return values


def divergence_message(result: Any, loss: str, dtype: Any, X: Any, Y: Any) -> str:
    """What ``fit``'s DivergenceError says: whether a finite step was ever taken, and the data's range."""
    never = (result.steps == 0 if result.optimizer != "lbfgs" else not any(np.isfinite(result.loss_curve)))
    if never:
        return (f"fit: the loss is not finite at the starting weights, so no step was taken and the weights are "
                f"unchanged. The data overflow the {loss} loss in {np.dtype(dtype).name} (largest |X| "
                f"{float(np.max(np.abs(X))):.3g}, largest |y| {float(np.max(np.abs(Y))):.3g}): standardize the inputs "
                "and targets.")
    return (f"fit: the loss became non-finite after {result.steps} steps; the network keeps the last weights with a "
            "finite loss. Lower the learning rate or standardize the inputs and targets.")
