"""The non-finite policy: nothing returns inf/NaN silently. Evaluations raise NonFiniteError naming what
overflowed; training raises DivergenceError, keeps the last finite weights, and says truthfully whether a
finite step ever existed."""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn


def _overflowing_net():
    """Identity layers with unit weights: the output is 8 * sum(x), which overflows for x near 1e308."""
    net = sn.Network(3, [sn.Dense(8, "identity"), sn.Dense(1)], seed=0)
    net.parameters = np.ones(net.n_params)
    X = np.full((4, 3), 2.5e307)
    return net, X, np.zeros(4)


@pytest.mark.parametrize("call, where", [
    (lambda net, X, y: net.forward(X), "forward: the network output overflowed"),
    (lambda net, X, y: net.predict(X), "predict: the network output overflowed"),
    (lambda net, X, y: net.layer_input(X, 2), "layer_input: the input of layer 2 overflowed"),
    (lambda net, X, y: net.objective(X, y), "objective: the objective overflowed"),
    (lambda net, X, y: net.loss_and_grad(X, y), "loss_and_grad: the objective overflowed"),
    (lambda net, X, y: sn.sensitivity(net, X), "sensitivity: the output sensitivity overflowed"),
    (lambda net, X, y: sn.sensitivity(net, X, y, wrt="loss"), "sensitivity: the loss sensitivity overflowed"),
    (lambda net, X, y: sn.group_sensitivity(net, X, y, [{1: None}]), "group_sensitivity"),
    (lambda net, X, y: sn.group_curvature(net, X, y, [{1: None}]), "group_curvature"),
])
def test_evaluations_that_overflow_raise(call, where):
    net, X, y = _overflowing_net()
    with pytest.raises(sn.NonFiniteError, match=where + r".*largest \|input\| 2.5e\+307"):
        call(net, X, y)
    assert issubclass(sn.NonFiniteError, FloatingPointError)


def test_the_loss_overflowing_on_huge_targets_is_an_error_not_inf():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 3))
    net = sn.Network(3, [sn.Dense(4, "tanh"), sn.Dense(1)], seed=0)
    with pytest.raises(sn.NonFiniteError, match="objective"):
        net.objective(X, np.full(32, 1e300))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "lbfgs"])
def test_divergence_without_any_finite_step_says_so(optimizer):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 3))
    y = X.sum(1) * 1e300
    net = sn.Network(3, [sn.Dense(4, "tanh"), sn.Dense(1)], seed=0)
    before = net.parameters.copy()
    with pytest.raises(sn.DivergenceError, match=r"not finite at the starting weights, so no step was taken.*"
                                                 r"largest \|y\| [0-9.]+e\+300"):
        net.fit(X, y, optimizer=optimizer, epochs=3)
    np.testing.assert_array_equal(net.parameters, before)


def test_divergence_after_finite_steps_keeps_finite_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X.sum(1)
    net = sn.Network(3, [sn.Dense(16, "relu"), sn.Dense(1)], seed=0)
    with pytest.raises(sn.DivergenceError, match=r"became non-finite after [1-9]\d* steps"):
        net.fit(X, y, optimizer=sn.SGD(1e6), epochs=50, batch_size=8)
    assert np.isfinite(net.parameters).all()
    assert np.isfinite(net.objective(X, y))


@pytest.mark.filterwarnings("ignore:.*max_iter.*reached")
def test_regressor_on_targets_near_the_float64_limit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) * 1e300
    reg = sn.SensiNetRegressor(hidden_layer_sizes=(16,), max_iter=50, batch_size=16, random_state=0).fit(X, y)
    pred = reg.predict(X)
    assert np.isfinite(pred).all()
    assert np.corrcoef(pred / 1e300, y / 1e300)[0, 1] > 0.9  # (in units of 1e300: the product overflows)


def test_float32_overflow_beyond_the_first_rows_of_the_last_minibatch_is_divergence():
    """Rows 40-63 use only a huge feature; one SGD step blows their predictions up to inf in float32 while
    the first 40 rows stay finite. The end-of-call check used to look at 32 rows and report 'completed'."""
    X = np.zeros((64, 2), np.float32)
    X[:40, 0] = np.linspace(-1, 1, 40)
    X[40:, 1] = 1e15
    y = np.zeros(64, np.float32)
    net = sn.Network(2, [sn.Dense(1)], dtype=np.float32, seed=0)
    before = net.parameters.copy()
    assert np.isfinite(net.objective(X, y))  # finite at the start
    with pytest.raises(sn.DivergenceError, match="after 1 steps"):
        net.fit(X, y, optimizer=sn.SGD(1e-20), epochs=1, batch_size=64, shuffle=False)
    np.testing.assert_array_equal(net.parameters, before)  # the weights whose loss was finite


def test_non_finite_messages_say_what_is_true():
    """A NaN weight is named as such (not "the inputs and weights are finite"); huge targets are measured, not
    blamed on the inputs; float64 is suggested only to float32 networks."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    net = sn.Network(3, [sn.Dense(4, "relu"), sn.Dense(1)], seed=0)
    net.parameters[0] = np.nan
    with pytest.raises(sn.NonFiniteError, match=r"because the weights contain 1 NaN or infinite value\(s\)") as e:
        net.objective(X, y)
    assert "are finite" not in str(e.value)
    net = sn.Network(3, [sn.Dense(4, "relu"), sn.Dense(1)], seed=0)
    with pytest.raises(sn.NonFiniteError, match=r"largest \|target\| [0-9.]+e\+300") as e:
        net.objective(X, y * 1e300)
    assert "float64" not in str(e.value).split(" in float64")[1]  # no advice to use what it already uses
    small = sn.Network(3, [sn.Dense(4, "relu"), sn.Dense(1)], seed=0, dtype=np.float32)
    with pytest.raises(sn.NonFiniteError, match=r"in float32 \(.*\).*or use float64"):
        small.objective(X.astype(np.float32), (y * 1e30).astype(np.float32))
