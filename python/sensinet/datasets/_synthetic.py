"""Seeded synthetic data: the two-spirals problem and simulated regression functions."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .._validation import check_positive
from ._loaders import Dataset

__all__ = ["make_spirals", "make_regression_function", "REGRESSION_FUNCTIONS"]


def make_spirals(
    n_per_class: int = 300,
    noise: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> Dataset:
    """Generate the two-spirals binary classification problem.

    With ``N = n_per_class`` and ``i = 0, ..., N - 1``::

        phi_i = 2 * pi * i / N,    r_i = 0.5 + i / N
        class 0:  -r_i * (cos phi_i, sin phi_i)
        class 1:  +r_i * (cos phi_i, sin phi_i)

    Parameters
    ----------
    n_per_class : int, default 300
        Number of points N in each class (>= 1).
    noise : float, default 0.0
        Standard deviation of the isotropic Gaussian noise added to every
        coordinate (>= 0). No random numbers are drawn when it is 0.
    seed : int, numpy.random.Generator or None, default None
        Passed to :func:`numpy.random.default_rng`. It only matters when
        ``noise > 0``.

    Returns
    -------
    Dataset
        Classification dataset with `X` of shape (2N, 2) and features
        ``("x1", "x2")``. The N rows of class 0 come first, then the N rows
        of class 1. `y` is int64 with values in {0, 1}.

    Raises
    ------
    ValueError
        If ``n_per_class < 1`` or ``noise < 0``.
    """
    n = check_positive(n_per_class, "n_per_class", integer=True)
    noise = check_positive(noise, "noise", allow_zero=True)
    i = np.arange(n, dtype=np.float64)
    phi = 2.0 * np.pi * i / n
    r = 0.5 + i / n
    arm = np.column_stack([r * np.cos(phi), r * np.sin(phi)])
    X = np.vstack([-arm, arm])
    if noise > 0:
        X = X + noise * np.random.default_rng(seed).standard_normal(X.shape)
    y = np.repeat(np.arange(2, dtype=np.int64), n)
    return Dataset(
        X=X,
        y=y,
        feature_names=("x1", "x2"),
        target_name="class",
        description=(
            f"Two spirals, {n} points per class: phi_i = 2 pi i/N, "
            f"r_i = 0.5 + i/N (i = 0..N-1); class 0 at -r_i (cos phi_i, sin phi_i), "
            f"class 1 at +r_i (cos phi_i, sin phi_i); Gaussian noise std {noise}."
        ),
        task="classification",
    )


class _RegressionFunction(NamedTuple):
    n_features: int
    low: float
    high: float
    f: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    formula: str


# Columns are 0-based here; the formulas use the 1-based names x1, x2, ...
_FUNCTIONS: dict[str, _RegressionFunction] = {
    "sin3": _RegressionFunction(
        3, -1.0, 1.0,
        lambda X: np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 2],
        "y = sin(pi x1) + x2^2 - 0.5 x3, x ~ U[-1, 1]^3",
    ),
    "friedman10": _RegressionFunction(
        10, 0.0, 1.0,
        lambda X: (
            10.0 * np.sin(np.pi * X[:, 0] * X[:, 1])
            + 20.0 * (X[:, 2] - 0.5) ** 2
            + 10.0 * X[:, 3]
            + 5.0 * X[:, 4]
        ),
        "y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5, x ~ U[0, 1]^10 "
        "(x6..x10 are irrelevant)",
    ),
    "tanh2": _RegressionFunction(
        2, -2.0, 2.0,
        lambda X: np.tanh(X[:, 0]) * X[:, 1],
        "y = tanh(x1) x2, x ~ U[-2, 2]^2",
    ),
}

#: Names accepted by :func:`make_regression_function`.
REGRESSION_FUNCTIONS: tuple[str, ...] = tuple(_FUNCTIONS)


def make_regression_function(
    name: str,
    n_samples: int = 1000,
    noise: float = 0.1,
    seed: int | np.random.Generator | None = None,
) -> Dataset:
    """Sample a known regression function, with optional Gaussian noise.

    The functions (``eps ~ N(0, 1)`` independently for each sample):

    ``"sin3"``
        x ~ U[-1, 1]^3, y = sin(pi x1) + x2^2 - 0.5 x3 + noise * eps.
    ``"friedman10"``
        x ~ U[0, 1]^10,
        y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + noise * eps.
        The features x6..x10 do not affect y.
    ``"tanh2"``
        x ~ U[-2, 2]^2, y = tanh(x1) x2 + noise * eps.

    Parameters
    ----------
    name : str
        One of :data:`REGRESSION_FUNCTIONS`.
    n_samples : int, default 1000
        Number of samples (>= 1).
    noise : float, default 0.1
        Standard deviation of the additive Gaussian noise (>= 0).
    seed : int, numpy.random.Generator or None, default None
        Passed to :func:`numpy.random.default_rng`. `X` is drawn before the
        noise, and the noise is drawn even when ``noise=0``. So for a fixed
        int seed, `X` does not depend on `noise`, and only `y` changes.

    Returns
    -------
    Dataset
        Regression dataset with `X` of shape (n_samples, d), features
        ``("x1", ..., "xd")``, and float64 target ``"y"``.

    Raises
    ------
    ValueError
        If `name` is unknown, ``n_samples < 1`` or ``noise < 0``.
    """
    if name not in _FUNCTIONS:
        raise ValueError(
            f"name must be one of {', '.join(map(repr, REGRESSION_FUNCTIONS))}; got {name!r}"
        )
    n = check_positive(n_samples, "n_samples", integer=True)
    noise = check_positive(noise, "noise", allow_zero=True)
    spec = _FUNCTIONS[name]
    rng = np.random.default_rng(seed)
    X = rng.uniform(spec.low, spec.high, size=(n, spec.n_features))
    eps = rng.standard_normal(n)
    y = spec.f(X) + noise * eps
    return Dataset(
        X=X,
        y=y,
        feature_names=tuple(f"x{j + 1}" for j in range(spec.n_features)),
        target_name="y",
        description=(
            f"Simulated regression function {name!r}: {spec.formula}, plus "
            f"Gaussian noise with std {noise}; {n} samples."
        ),
        task="regression",
    )
