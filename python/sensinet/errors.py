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


def require_finite(values: Any, what: str, where: str, inputs: Any = None) -> Any:
    """``values`` if all finite; else NonFiniteError naming ``where`` and ``what`` (and the inputs' range)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        hint = ""
        if inputs is not None:
            x = np.asarray(getattr(inputs, "array", inputs))
            if x.size:
                hint = f" (largest |input| {float(np.max(np.abs(x))):.3g})"
        raise NonFiniteError(f"{where}: the {what} overflowed to infinity or NaN in {arr.dtype.name} although the "
                             f"inputs and weights are finite{hint}. Rescale the inputs (e.g. with "
                             "sensinet.datasets.Standardizer), shrink the weights, or use float64.")
    return values
