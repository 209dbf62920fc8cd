"""The loss heads in Python (sensinet.losses) agree with the engine, with finite differences, and stay
finite for huge logits."""
import warnings

import numpy as np
import pytest

import sensinet as sn
from sensinet import losses
from sensinet._validation import targets

HEADS = (("mse", 3), ("cross_entropy", 4), ("binary_cross_entropy", 2))


def _problem(loss, k, n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    if loss == "mse":
        y = rng.normal(size=(n, k))
    elif loss == "cross_entropy":
        y = rng.integers(0, k, n)
    else:
        y = rng.integers(0, 2, (n, k)).astype(float)
    net = sn.Network(5, [sn.Dense(7, "tanh"), sn.Dense(k)], loss=loss, seed=seed)
    return net, X, y, targets(y, loss, k, n, np.float64)


@pytest.mark.parametrize("loss, k", HEADS)
def test_mean_loss_equals_the_engine_objective(loss, k):
    net, X, y, Y = _problem(loss, k)
    assert np.mean(losses.per_sample_loss(loss, net.forward(X), Y)) == pytest.approx(net.objective(X, y), rel=1e-13)


@pytest.mark.parametrize("loss, k", HEADS)
def test_output_gradient_matches_central_differences(loss, k):
    net, X, y, Y = _problem(loss, k)
    Z = net.forward(X)
    G = losses.output_gradient(loss, Z, Y)
    h = 1e-6
    for i, j in ((0, 0), (7, k - 1), (39, k // 2)):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[i, j] += h
        Zm[i, j] -= h
        fd = (np.mean(losses.per_sample_loss(loss, Zp, Y)) - np.mean(losses.per_sample_loss(loss, Zm, Y))) / (2 * h)
        assert G[i, j] == pytest.approx(fd, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("loss, k", HEADS[1:])
def test_huge_logits_stay_finite_without_warnings(loss, k):
    Z = np.array([[1e30] + [-1e30] * (k - 1), [-1e30] * k])
    Y = np.zeros_like(Z)
    Y[:, 0] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(np.isfinite(losses.per_sample_loss(loss, Z, Y)))
        assert np.all(np.isfinite(losses.output_gradient(loss, Z, Y)))
        assert np.all(np.isfinite(losses.log_softmax(Z))) and np.all(np.isfinite(losses.log_sigmoid(Z)))


def test_decisions_and_errors():
    Z = np.array([[2.0, -1.0], [-3.0, 0.5], [0.1, 0.2]])
    assert list(losses.predicted_class("cross_entropy", Z)) == [0, 1, 1]
    assert losses.error("cross_entropy", Z, [0, 1, 0]) == pytest.approx(1 / 3)
    assert losses.error("binary_cross_entropy", Z[:, :1], [1, 1, 1]) == pytest.approx(1 / 3)
    assert losses.error("mse", Z, Z + 2.0) == pytest.approx(2.0)
    assert np.allclose(np.exp(losses.log_softmax(Z)).sum(axis=1), 1.0)
    assert np.allclose(losses.sigmoid(np.array([0.0, 50.0])), [0.5, 1.0])
