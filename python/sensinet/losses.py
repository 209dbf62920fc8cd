"""The loss heads in Python: the same formulas as the engine's ``loss.hpp``, for the code that works on raw
network outputs (finite differences at the output site, per-sample losses, class decisions, errors).

Every function takes the head's name (``"mse"``, ``"cross_entropy"``, ``"binary_cross_entropy"``), the raw
outputs ``out`` (n, K) and, where needed, the targets ``Y`` (n, K) in the engine's layout (one-hot or
probability rows for cross_entropy, 0/1 per logit for binary_cross_entropy). All are stable for any finite
``out``: logits of 1e30 give finite losses and gradients.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

CLASSIFICATION_LOSSES = ("cross_entropy", "binary_cross_entropy")


def log_softmax(out: NDArray) -> NDArray:
    """log of the softmax over each row."""
    m = out.max(axis=1, keepdims=True)
    return out - (m + np.log(np.sum(np.exp(out - m), axis=1, keepdims=True)))


def log_sigmoid(z: NDArray) -> NDArray:
    """log(1 / (1 + exp(-z))), elementwise."""
    return -np.logaddexp(0.0, -z)


def sigmoid(z: NDArray) -> NDArray:
    """The logistic function, evaluated without overflow for large ``|z|``."""
    return np.exp(log_sigmoid(z))


def per_sample_loss(loss: str, out: NDArray, Y: NDArray) -> NDArray:
    """l_n of every sample: the mean squared error over outputs (mse), the cross-entropy of the softmax
    (cross_entropy), or the binary cross-entropies summed over logits."""
    if loss == "mse":
        return np.mean((out - Y) ** 2, axis=1)
    if loss == "cross_entropy":
        return -np.sum(Y * log_softmax(out), axis=1)
    return np.sum(np.maximum(out, 0) - Y * out + np.log1p(np.exp(-np.abs(out))), axis=1)


def output_gradient(loss: str, out: NDArray, Y: NDArray) -> NDArray:
    """dJ/d out of the mean loss J = mean_n l_n, shape (n, K)."""
    n, K = out.shape
    if loss == "mse":
        return 2.0 * (out - Y) / (n * K)
    if loss == "cross_entropy":
        return (np.exp(log_softmax(out)) * Y.sum(axis=1, keepdims=True) - Y) / n
    return (sigmoid(out) - Y) / n


def predicted_class(loss: str, out: NDArray) -> NDArray:
    """The decision of a classification head: the arg-max class (cross_entropy) or logit > 0 per output."""
    if loss == "cross_entropy":
        return np.argmax(out, axis=1)
    return out > 0


def error(loss: str, out: NDArray, y: Any) -> float:
    """Share misclassified for a classification head (y: class labels, or 0/1 per logit), RMSE otherwise."""
    y = np.asarray(y)
    if loss == "cross_entropy":
        return float(np.mean(predicted_class(loss, out) != y.ravel()))
    if loss == "binary_cross_entropy":
        return float(np.mean(predicted_class(loss, out) != (y.reshape(out.shape) > 0.5)))
    return float(np.sqrt(np.mean((out - y.reshape(out.shape)) ** 2)))
