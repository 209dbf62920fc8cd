"""The estimators' parameters: scikit-learn's MLP names and values, sensinet's own, and their checks.

Every check raises a ValueError naming the parameter, the expected and the given value. ``learning_rate``
is MLP's schedule name (``"constant"``, ``"invscaling"``, ``"adaptive"``); a number there is sensinet 0.1's
spelling of the step size, accepted with a FutureWarning as ``learning_rate_init``.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from ._validation import check_bool, check_count, check_number
from .cuda import parse_device
from .layers import ACTIVATIONS

SOLVERS = ("adam", "sgd", "lbfgs", "hierarchical")
SCHEDULES = ("constant", "invscaling", "adaptive")
# MLP's activation names where they differ from the engine's
ACTIVATION_ALIASES = {"logistic": "sigmoid"}
ACTIVATION_NAMES = tuple(sorted(set(ACTIVATIONS) | set(ACTIVATION_ALIASES)))
AUTO_BATCH = 200  # MLP's batch_size="auto": min(200, n_samples)
LR_INIT_DEFAULT = 1e-3


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _sizes(value: Any) -> tuple:
    sizes = (value,) if _is_int(value) else value
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise ValueError(f"hidden_layer_sizes: expected a sequence of ints >= 1, got {value!r}") from None
    if not all(_is_int(s) and s >= 1 for s in sizes):
        raise ValueError(f"hidden_layer_sizes: expected a sequence of ints >= 1, got {value!r}")
    return tuple(int(s) for s in sizes)


def _learning_rate(est: Any) -> tuple:
    """(schedule, step size) from ``learning_rate`` and ``learning_rate_init``."""
    lr, init = est.learning_rate, est.learning_rate_init
    if isinstance(lr, str):
        if lr not in SCHEDULES:
            raise ValueError(f"learning_rate: expected one of {SCHEDULES} (or a number, the deprecated spelling of "
                             f"learning_rate_init), got {lr!r}")
        return lr, check_number(init, "learning_rate_init", 0.0, open_lo=True)
    step = check_number(lr, "learning_rate", 0.0, open_lo=True)
    if init != LR_INIT_DEFAULT:
        raise ValueError(f"learning_rate: a number there is the step size, which learning_rate_init={init!r} also "
                         "sets; give the step size once, as learning_rate_init")
    warnings.warn(f"learning_rate={lr!r}: a number is sensinet 0.1's spelling of the step size; use "
                  "learning_rate_init (learning_rate is scikit-learn's schedule name)", FutureWarning, stacklevel=5)
    return "constant", step


def check_params(est: Any, hierarchical_available: bool) -> dict:
    """All of ``est``'s parameters checked and normalised."""
    sizes = _sizes(est.hidden_layer_sizes)
    if est.activation not in ACTIVATION_NAMES:
        raise ValueError(f"activation: expected one of {ACTIVATION_NAMES}, got {est.activation!r}")
    residual = check_bool(est.residual, "residual")
    if residual and len(set(sizes)) > 1:
        raise ValueError("hidden_layer_sizes: residual=True keeps the width through the residual blocks, so "
                         f"all hidden layers need the same width, got {est.hidden_layer_sizes!r}")
    if est.solver not in SOLVERS:
        raise ValueError(f"solver: expected one of {SOLVERS}, got {est.solver!r}")
    if est.solver == "hierarchical" and not hierarchical_available:
        raise ValueError("solver='hierarchical' needs the module sensinet.hierarchical (with HierarchicalOptimizer), "
                         "which this installation does not have; use solver='adam', 'sgd' or 'lbfgs'")
    if est.n_threads is not None:
        check_count(est.n_threads, "n_threads", 1)
    dtype = None
    if est.dtype is not None:
        try:
            dtype = np.dtype(est.dtype)
        except TypeError:
            dtype = False
        if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype: expected None, 'float64' or 'float32', got {est.dtype!r}")
    batch = est.batch_size
    if batch != "auto":
        check_count(batch, "batch_size", 1)
    schedule, step = _learning_rate(est)
    for name in ("beta_1", "beta_2"):
        check_number(getattr(est, name), name, 0.0, 1.0, open_hi=True)
    if not isinstance(est.verbose, (bool, np.bool_)):  # MLP's verbose is a bool or a verbosity level
        check_count(est.verbose, "verbose")
    return dict(
        sizes=sizes,
        activation=ACTIVATION_ALIASES.get(est.activation, est.activation),
        residual=residual,
        l2=check_number(est.l2, "l2", 0.0),
        alpha=check_number(est.alpha, "alpha", 0.0),
        schedule=schedule,
        learning_rate=step,
        power_t=check_number(est.power_t, "power_t", 0.0),
        momentum=check_number(est.momentum, "momentum", 0.0, 1.0),
        nesterov=check_bool(est.nesterovs_momentum, "nesterovs_momentum"),
        beta_1=float(est.beta_1),
        beta_2=float(est.beta_2),
        epsilon=check_number(est.epsilon, "epsilon", 0.0, open_lo=True),
        batch_size=batch,
        shuffle=check_bool(est.shuffle, "shuffle"),
        max_iter=check_count(est.max_iter, "max_iter", 1),
        max_fun=check_count(est.max_fun, "max_fun", 1),
        tol=check_number(est.tol, "tol", 0.0),
        early_stopping=check_bool(est.early_stopping, "early_stopping"),
        validation_fraction=check_number(est.validation_fraction, "validation_fraction", 0.0, 1.0,
                                         open_lo=True, open_hi=True),
        n_iter_no_change=check_count(est.n_iter_no_change, "n_iter_no_change", 1),
        warm_start=check_bool(est.warm_start, "warm_start"),
        dtype=None if dtype is None else (np.float64 if dtype == np.float64 else np.float32),
        device=parse_device(est.device)[0],
    )


def batch_for(p: dict, n: int) -> int:
    """The minibatch size for ``n`` training samples (MLP's "auto": min(200, n))."""
    return min(AUTO_BATCH if p["batch_size"] == "auto" else int(p["batch_size"]), n)


def weight_decay(p: dict, loss: str, n_fit: int, solver: str) -> float:
    """The engine's per-layer ``l2`` for MLP's ``alpha``, plus sensinet's absolute ``l2``.

    MLP adds ``alpha / (2 B) * ||W||^2`` to the mean loss of each step over B samples (B = n for L-BFGS),
    where its regression loss is half the squared error; sensinet's objective is the mean squared error (not
    halved) plus ``l2 / 2 * ||W||^2``, so the same step is ``l2 = 2 alpha / B`` for regression and
    ``alpha / B`` for the log losses."""
    B = n_fit if solver == "lbfgs" else batch_for(p, n_fit)
    return p["l2"] + (2.0 if loss == "mse" else 1.0) * p["alpha"] / B
