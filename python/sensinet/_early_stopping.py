"""The one early-stopping rule, shared by ``Network.fit``, the hierarchical optimizer and the estimators.

A monitored value (a validation objective, or the training loss) is recorded after every epoch or outer
iteration. Training stops once ``patience`` records in a row failed to improve on the best by more than
``tol``. The best record is tracked exactly, whatever ``tol``, and so are its weights when asked.
scikit-learn's MLP stops once *more than* ``n_iter_no_change`` records in a row failed, so the estimators
pass ``patience = n_iter_no_change + 1`` and stop on the same epoch as MLP.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from numpy.typing import NDArray


class Patience:
    """Counts records without an improvement larger than ``tol``; keeps the best record and its weights.

    ``patience=None`` only records (no stop). ``update(value, weights)`` returns True when training should
    stop; ``weights`` is called (for a copy of the parameters) only when ``value`` is a new best.
    """

    def __init__(self, patience: Optional[int], tol: float = 0.0) -> None:
        self.patience, self.tol = patience, float(tol)
        self.curve: list = []
        self.best = np.inf
        self.best_index: Optional[int] = None
        self.best_weights: Optional[NDArray] = None
        self.wait = 0
        self.stopped = False

    def update(self, value: float, weights: Optional[Callable[[], NDArray]] = None) -> bool:
        value = float(value)
        self.curve.append(value)
        self.wait = 0 if value < self.best - self.tol else self.wait + 1
        if value < self.best:
            self.best, self.best_index = value, len(self.curve) - 1
            if weights is not None:
                self.best_weights = np.array(weights(), copy=True)
        if self.patience is not None and self.wait >= self.patience:
            self.stopped = True
        return self.stopped
