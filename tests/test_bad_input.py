"""Bad input gives a ValueError / TypeError that names the argument; nothing crashes the interpreter."""
from __future__ import annotations

import io

import numpy as np
import pytest

import sensinet as sn
from sensinet import _core
from conftest import make_net

BAD = (ValueError, TypeError)


@pytest.fixture
def reg():
    net = make_net(3, [sn.Dense(4, "tanh"), sn.Residual(4, "relu", hidden=2), sn.Dense(2)], seed=0)
    rng = np.random.default_rng(0)
    return net, rng.normal(size=(10, 3)), rng.normal(size=(10, 2))


@pytest.fixture
def clf():
    net = make_net(3, [sn.Dense(4, "tanh"), sn.Dense(3)], loss="cross_entropy", seed=0)
    rng = np.random.default_rng(0)
    return net, rng.normal(size=(10, 3)), rng.integers(0, 3, 10)


@pytest.fixture
def bce():
    net = make_net(3, [sn.Dense(4, "tanh"), sn.Dense(2)], loss="binary_cross_entropy", seed=0)
    rng = np.random.default_rng(0)
    return net, rng.normal(size=(10, 3)), rng.integers(0, 2, (10, 2)).astype(float)


# ---------------------------------------------------------------------------------------------- construction
@pytest.mark.parametrize("build,exc,match", [
    (lambda: sn.Network(0, [sn.Dense(1)]), ValueError, "n_inputs"),
    (lambda: sn.Network(-2, [sn.Dense(1)]), ValueError, "n_inputs"),
    (lambda: sn.Network(2.5, [sn.Dense(1)]), ValueError, "n_inputs"),
    (lambda: sn.Network(True, [sn.Dense(1)]), ValueError, "n_inputs"),
    (lambda: sn.Network(3, []), ValueError, "layers"),
    (lambda: sn.Network(3, [sn.Dense(2), "dense"]), TypeError, r"layers\[1\]"),
    (lambda: sn.Dense(0), ValueError, "units"),
    (lambda: sn.Dense(-1), ValueError, "units"),
    (lambda: sn.Dense(2.0), TypeError, "units"),
    (lambda: sn.Dense(3, "foo"), ValueError, "activation"),
    (lambda: sn.Dense(3, "relu", alpha=-1), ValueError, "alpha"),
    (lambda: sn.Dense(3, l2=-0.1), ValueError, "l2"),
    (lambda: sn.Dense(3, l2=float("nan")), ValueError, "l2"),
    (lambda: sn.Residual(0), ValueError, "width"),
    (lambda: sn.Residual(3, hidden=0), ValueError, "hidden"),
    (lambda: sn.Residual(3, weights=3), ValueError, "weights"),
    (lambda: sn.Residual(3, hidden=2, weights=1), ValueError, "hidden"),
    (lambda: sn.Residual(3, "swish"), ValueError, "activation"),
    (lambda: sn.Network(3, [sn.Dense(4), sn.Residual(5)]), ValueError, "width"),
    (lambda: sn.Network(3, [sn.Residual(4)]), ValueError, "width"),
    (lambda: sn.Network(3, [sn.Dense(2)], loss="foo"), ValueError, "loss"),
    (lambda: sn.Network(3, [sn.Dense(2, "relu")], loss="cross_entropy"), ValueError, "layers"),
    (lambda: sn.Network(3, [sn.Dense(2, "sigmoid")], loss="binary_cross_entropy"), ValueError, "layers"),
    (lambda: sn.Network(3, [sn.Dense(2)], dtype="int32"), BAD, "dtype"),
    (lambda: sn.Network(3, [sn.Dense(2)], dtype=np.complex128), BAD, "dtype"),
    (lambda: sn.SGD(lr=0), ValueError, "lr"),
    (lambda: sn.SGD(lr=-1), ValueError, "lr"),
    (lambda: sn.SGD(lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (lambda: sn.SGD(lr=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda: sn.Adam(lr=float("nan")), ValueError, "lr"),
    (lambda: sn.Adam(beta1=1.0), ValueError, "beta1"),
    (lambda: sn.Adam(beta2=-0.1), ValueError, "beta2"),
    (lambda: sn.Adam(eps=0), ValueError, "eps"),
    (lambda: sn.LBFGS(max_iter=-1), ValueError, "max_iter"),
    (lambda: sn.LBFGS(history=0), ValueError, "history"),
    (lambda: sn.set_num_threads(0), ValueError, "n_threads"),
])
def test_construction(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


# ---------------------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("method", ["forward", "predict", "layer_input", "loss_and_grad", "objective"])
@pytest.mark.parametrize("X,exc,match", [
    (np.zeros((5, 4)), ValueError, "X: expected 3"),
    (np.zeros((5, 2)), ValueError, "X: expected 3"),
    (np.zeros(3), ValueError, "X: expected a 2-D"),
    (np.zeros((2, 5, 3)), ValueError, "X: expected a 2-D"),
    (np.float64(1.0), ValueError, "X: expected a 2-D"),
    (np.zeros((0, 3)), ValueError, "X: expected at least one"),
    (np.array([[0.0, np.nan, 1.0]]), ValueError, "X: contains NaN"),
    (np.array([[0.0, np.inf, 1.0]]), ValueError, "X: contains NaN"),
    (np.array([[0.0, -np.inf, 1.0]]), ValueError, "X: contains NaN"),
    (np.array([["a", "b", "c"]]), TypeError, "X: expected a numeric"),
    (np.array([[1, 2, 3]], dtype=object), TypeError, "X: expected a numeric"),
    (np.zeros((2, 3), dtype=complex), TypeError, "X: expected a numeric"),
    ([[1.0, 2.0], [3.0]], ValueError, "X"),
    (None, TypeError, "X"),
])
def test_bad_X(reg, method, X, exc, match):
    net, _, Y = reg
    call = {
        "forward": lambda: net.forward(X),
        "predict": lambda: net.predict(X),
        "layer_input": lambda: net.layer_input(X, 1),
        "loss_and_grad": lambda: net.loss_and_grad(X, Y[:1]),
        "objective": lambda: net.objective(X, Y[:1]),
    }[method]
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("layer,exc", [(4, ValueError), (-5, ValueError), (1.0, TypeError), (None, TypeError)])
def test_layer_input_bad_layer(reg, layer, exc):
    net, X, _ = reg
    with pytest.raises(exc, match="layer"):
        net.layer_input(X, layer)


@pytest.mark.parametrize("n", [0, -1, 1.5])
def test_bad_n_threads(reg, n):
    net, X, _ = reg
    with pytest.raises(ValueError, match="n_threads"):
        net.forward(X, n_threads=n)


# ---------------------------------------------------------------------------------------------- targets
def _y_cases():
    return [
        ("reg", lambda y: y[:5], ValueError, "y: expected 10 rows"),
        ("reg", lambda y: y[:, :1], ValueError, "y: expected 2 target"),
        ("reg", lambda y: np.concatenate([y, y], axis=1), ValueError, "y: expected 2 target"),
        ("reg", lambda y: np.where(np.arange(20).reshape(10, 2) == 3, np.nan, y), ValueError, "y: contains NaN"),
        ("reg", lambda y: np.where(np.arange(20).reshape(10, 2) == 3, np.inf, y), ValueError, "y: contains NaN"),
        ("reg", lambda y: y.astype(str), TypeError, "y: expected a numeric"),
        ("reg", lambda y: y.reshape(10, 2, 1), ValueError, "y: expected a 1-D or 2-D"),
        ("clf", lambda y: np.where(np.arange(10) == 2, 3, y), ValueError, r"y: expected class labels in \[0, 3\)"),
        ("clf", lambda y: np.where(np.arange(10) == 2, -1, y), ValueError, r"y: expected class labels in \[0, 3\)"),
        ("clf", lambda y: y + 0.5, ValueError, "y: expected integer class labels"),
        ("clf", lambda y: np.full((10, 3), 0.5) * 3, ValueError, r"y: expected labels or probabilities in \[0, 1\]"),
        ("clf", lambda y: y[:9], ValueError, "y: expected 10 rows"),
        ("bce", lambda y: y * 2, ValueError, r"y: expected labels or probabilities in \[0, 1\]"),
        ("bce", lambda y: y - 1, ValueError, r"y: expected labels or probabilities in \[0, 1\]"),
        ("bce", lambda y: y[:, 0], ValueError, "y: expected 2 target"),
    ]


@pytest.mark.parametrize("which,bad,exc,match", _y_cases())
@pytest.mark.parametrize("method", ["fit", "loss_and_grad", "objective"])
def test_bad_y(reg, clf, bce, which, bad, exc, match, method):
    net, X, y = {"reg": reg, "clf": clf, "bce": bce}[which]
    yb = bad(y)
    call = {
        "fit": lambda: net.fit(X, yb, epochs=1),
        "loss_and_grad": lambda: net.loss_and_grad(X, yb),
        "objective": lambda: net.objective(X, yb),
    }[method]
    before = net.parameters.copy()
    with pytest.raises(exc, match=match):
        call()
    np.testing.assert_array_equal(net.parameters, before)


# ---------------------------------------------------------------------------------------------- fit arguments
@pytest.mark.parametrize("kw,exc,match", [
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(epochs=1.5), ValueError, "epochs"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=-3), ValueError, "batch_size"),
    (dict(batch_size=2.5), ValueError, "batch_size"),
    (dict(optimizer="sgd", lr=0), ValueError, "lr"),
    (dict(optimizer="adam", lr=-1e-3), ValueError, "lr"),
    (dict(optimizer="sgd", lr=float("inf")), ValueError, "lr"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer"),
    (dict(optimizer=None), ValueError, "optimizer"),
    (dict(patience=3), ValueError, "patience"),
    (dict(patience=0, validation_data="x"), ValueError, "patience"),
    (dict(validation_data=(np.zeros((4, 3)),)), ValueError, "validation_data"),
    (dict(validation_data=(np.zeros((4, 2)), np.zeros((4, 2)))), ValueError, r"validation_data\[0\]"),
    (dict(validation_data=(np.zeros((4, 3)), np.zeros((3, 2)))), ValueError, r"validation_data\[1\]"),
    (dict(callback=42), TypeError, "callback"),
    (dict(layers=3), ValueError, "layers"),
    (dict(layers=-4), ValueError, "layers"),
    (dict(layers=[0, 5]), ValueError, "layers"),
    (dict(layers=[0, 2, 1, 4]), ValueError, "layers"),
    (dict(layers=[0, 2, 3]), ValueError, "layers"),
    (dict(layers=[]), ValueError, "layers"),
    (dict(layers=1.0), TypeError, "layers"),
    (dict(max_steps=-1), ValueError, "max_steps"),
    (dict(n_threads=0), ValueError, "n_threads"),
])
def test_bad_fit_arguments(reg, kw, exc, match):
    net, X, y = reg
    before = net.parameters.copy()
    with pytest.raises(exc, match=match):
        net.fit(X, y, **{"epochs": 1, **kw})
    np.testing.assert_array_equal(net.parameters, before)


@pytest.mark.parametrize("layers,exc", [(3, ValueError), ([0, 2, 3], ValueError), ([], ValueError),
                                        ("0", TypeError), (0.5, TypeError)])
def test_bad_blocks(reg, layers, exc):
    net, X, y = reg
    with pytest.raises(exc, match="layers"):
        net.loss_and_grad(X, y, layers=layers)
    with pytest.raises(exc, match="layers"):
        net.block_slice(layers)


# ---------------------------------------------------------------------------------------------- theta / parameters
@pytest.mark.parametrize("theta,exc,match", [
    (lambda n: np.zeros(n - 1), ValueError, "theta"),
    (lambda n: np.zeros(n + 1), ValueError, "theta"),
    (lambda n: np.zeros((1, n)), ValueError, "theta"),
    (lambda n: np.zeros(()), ValueError, "theta"),
    (lambda n: np.array(["a"] * n), BAD, "theta|could not convert"),
])
def test_bad_theta(reg, theta, exc, match):
    net, X, y = reg
    with pytest.raises(exc, match=match):
        net.loss_and_grad(X, y, theta=theta(net.n_params))


@pytest.mark.parametrize("value,exc,match", [
    (lambda n: np.zeros(n - 1), ValueError, "parameters"),
    (lambda n: np.zeros((n, 1)), ValueError, "parameters"),
    (lambda n: np.full(n, np.nan), ValueError, "parameters"),
    (lambda n: np.r_[np.zeros(n - 1), np.inf], ValueError, "parameters"),
])
def test_bad_parameters_setter(reg, value, exc, match):
    net, X, _ = reg
    before = net.parameters.copy()
    with pytest.raises(exc, match=match):
        net.parameters = value(net.n_params)
    np.testing.assert_array_equal(net.parameters, before)


@pytest.mark.parametrize("layer", [3, -4, "W"])
def test_bad_layer_parameters(reg, layer):
    net, _, _ = reg
    with pytest.raises(BAD, match="layer"):
        net.layer_parameters(layer)


# ---------------------------------------------------------------------------------------------- the private engine
def test_core_model_checks_dtype_and_shape(reg):
    net, X, y = reg
    m = net.engine._model
    with pytest.raises(TypeError, match="X: expected a float64"):
        m.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="X: expected a float64"):
        m.forward(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="X: expected a 2-D"):
        m.forward(np.zeros(3))
    with pytest.raises(ValueError, match="X: expected 3 columns"):
        m.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="X: expected at least one row"):
        m.forward(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="X: expected a C-contiguous"):
        m.forward(np.asfortranarray(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="X: expected a C-contiguous"):
        m.forward(np.zeros((4, 6))[::2, ::2])
    with pytest.raises(ValueError, match="first"):
        m.forward(X, False, 3)
    with pytest.raises(ValueError, match="layer"):
        m.layer_input(X, 4)
    with pytest.raises(ValueError, match="Y: expected 10 rows"):
        m.loss_and_grad(X, y[:4])
    with pytest.raises(ValueError, match="Y: expected 2 columns"):
        m.loss_and_grad(X, y[:, :1].copy())
    with pytest.raises(TypeError, match="Y: expected a float64"):
        m.loss_and_grad(X, y.astype(np.float32))
    with pytest.raises(TypeError, match="theta: expected a float64"):
        m.loss_and_grad(X, y, np.zeros(net.n_params, np.float32))
    with pytest.raises(ValueError, match="theta: expected shape"):
        m.loss_and_grad(X, y, np.zeros(net.n_params + 1))
    ro = np.zeros(net.n_params)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="theta"):
        m.loss_and_grad(X, y, ro)
    with pytest.raises(ValueError, match="block"):
        m.loss_and_grad(X, y, None, 2, 1)
    with pytest.raises(ValueError, match="block"):
        m.loss_and_grad(X, y, None, 0, 3)
    with pytest.raises(ValueError, match="X: expected 4 columns"):
        m.loss_and_grad(X, y, None, 1, 2)  # X must be the input of layer `first`


def test_core_float32_model_rejects_float64(reg):
    net, X, y = reg
    m = net.astype(np.float32).engine._model
    with pytest.raises(TypeError, match="X: expected a float32"):
        m.forward(X)
    with pytest.raises(TypeError, match="Y: expected a float32"):
        m.loss_and_grad(X.astype(np.float32), y)


def test_core_model_constructor():
    with pytest.raises(ValueError, match="layers"):
        _core.Model64([], "mse")
    with pytest.raises(ValueError, match="layer kind"):
        _core.Model64([("conv", 3, 2, 0, "relu", 0.01, 0.0)], "mse")
    with pytest.raises(ValueError, match="activation"):
        _core.Model64([("dense", 3, 2, 0, "swish", 0.01, 0.0)], "mse")
    with pytest.raises(ValueError, match="loss"):
        _core.Model64([("dense", 3, 2, 0, "identity", 0.01, 0.0)], "hinge")
    with pytest.raises(ValueError, match=r"layers\[1\].*n_in"):
        _core.Model64([("dense", 3, 2, 0, "relu", 0.01, 0.0), ("dense", 3, 1, 0, "identity", 0.01, 0.0)], "mse")
    with pytest.raises(ValueError, match=r"layers\[0\].*widths"):
        _core.Model64([("dense", 0, 2, 0, "relu", 0.01, 0.0)], "mse")
    with pytest.raises(ValueError, match="residual"):
        _core.Model64([("residual2", 3, 3, 0, "relu", 0.01, 0.0)], "mse")
    with pytest.raises(ValueError, match="residual"):
        _core.Model64([("residual1", 3, 2, 0, "relu", 0.01, 0.0)], "mse")
    with pytest.raises(ValueError, match="l2"):
        _core.Model64([("dense", 3, 2, 0, "relu", 0.01, -1.0)], "mse")
    with pytest.raises(TypeError):
        _core.Model64([("dense", 3)], "mse")


def test_core_train_checks(reg):
    net, X, y = reg
    m, n = net.engine._model, net.n_params
    ok = dict(optimizer="sgd", lr=0.1, state_m=np.zeros(n), state_v=np.zeros(n))
    cases = [
        (dict(ok, optimizer="rmsprop"), ValueError, "optimizer"),
        (dict(ok, lr=0.0), ValueError, "lr"),
        (dict(ok, lr=float("nan")), ValueError, "lr"),
        (dict(ok, epochs=-1), ValueError, "epochs"),
        (dict(ok, batch_size=0), ValueError, "batch_size"),
        (dict(ok, state_m=np.zeros(n - 1)), ValueError, "state_m"),
        (dict(ok, state_v=np.zeros(n, np.float32)), TypeError, "state_v"),
        (dict(ok, first=2, last=1), ValueError, "block"),
        (dict(ok, last=3), ValueError, "block"),
    ]
    before = net.parameters.copy()
    for kw, exc, match in cases:
        with pytest.raises(exc, match=match):
            _core.train(m, X, y, **kw)
    with pytest.raises(TypeError, match="X: expected a float64"):
        _core.train(m, X.astype(np.float32), y, **ok)
    with pytest.raises(ValueError, match="Y: expected 10 rows"):
        _core.train(m, X, y[:3], **ok)
    with pytest.raises(ValueError, match="max_iter"):
        _core.lbfgs(m, X, y, max_iter=-1)
    with pytest.raises(ValueError, match="history"):
        _core.lbfgs(m, X, y, history=0)
    with pytest.raises(ValueError, match="block"):
        _core.lbfgs(m, X, y, first=1, last=0)
    np.testing.assert_array_equal(net.parameters, before)


def test_core_activation_checks():
    with pytest.raises(ValueError, match="activation"):
        _core.activation("gelu", np.zeros(3))
    with pytest.raises(TypeError):
        _core.activation("tanh", np.array(["a", "b"]))


# ---------------------------------------------------------------------------------------------- silently accepted before
@pytest.mark.parametrize("call, exc, match", [
    (lambda net, X, y: net.fit(X, y, optimizer=sn.SGD(0.1), lr=0.5), ValueError, "lr: the optimizer object SGD"),
    (lambda net, X, y: net.fit(X, y, optimizer="lbfgs", lr=-1), ValueError, "lr: L-BFGS takes no learning rate"),
    (lambda net, X, y: net.fit(X, y, shuffle="no"), TypeError, "shuffle: expected True or False"),
    (lambda net, X, y: net.fit(X, y, seed=1.5), ValueError, "seed: expected an int"),
    (lambda net, X, y: net.fit(X, y, seed=-1), ValueError, "seed: expected an int"),
    (lambda net, X, y: net.fit(X, y, validation_data=(X, y), tol=float("nan")), ValueError, "tol: expected a finite"),
    (lambda net, X, y: net.fit(X, y, callback_every=-2), ValueError, "callback_every"),
    (lambda net, X, y: sn.Dense(3, "leaky_relu", alpha=float("inf")), ValueError, "Dense.alpha: expected a finite"),
    (lambda net, X, y: sn.LayerInsertion(residual_scale=float("nan")), ValueError, "residual_scale"),
    (lambda net, X, y: sn.group_sensitivity(net, X, y, [{1: [0.5, 1.7]}]), TypeError, "integer neuron indices"),
    (lambda net, X, y: sn.group_sensitivity(net, X, y, [{1: ["0"]}]), TypeError, "integer neuron indices"),
    (lambda net, X, y: sn.sensitivity(net, X, method="finite_difference", eps=0), ValueError, "eps: expected"),
    (lambda net, X, y: sn.group_curvature(net, X, y, [{1: None}], method="finite_difference", eps=-1e-3),
     ValueError, "eps: expected"),
])
def test_arguments_that_used_to_be_accepted_silently(reg, call, exc, match):
    net, X, Y = reg
    with pytest.raises(exc, match=match):
        call(net, X, Y)


def test_sgd_positional_arguments_are_hyperparameters():
    assert sn.SGD(0.1).lr == 0.1 and sn.SGD(0.1, 0.9, True).nesterov
    assert sn.Adam(0.01, 0.8).beta1 == 0.8
    assert "state" not in repr(sn.Adam(0.01))


def test_cross_entropy_probability_rows_must_sum_to_one():
    net = sn.Network(2, [sn.Dense(3)], loss="cross_entropy", seed=0)
    X = np.zeros((2, 2))
    with pytest.raises(ValueError, match="summing to 1 for cross_entropy.*row 1 summing to 0.5"):
        net.objective(X, np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.3]]))
    net.objective(X, np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]]))  # valid rows are fine


@pytest.mark.parametrize("make, exc, match", [
    (lambda: sn.Residual(4, weights=2.0), ValueError, "Residual.weights"),
    (lambda: sn.Network(3, [sn.Dense(1)], dtype=None), TypeError, "dtype: expected float64 or float32, got None"),
    (lambda: sn.Network(3, [sn.Dense(1)], dtype="foo"), TypeError, "dtype: expected float64 or float32, got 'foo'"),
    (lambda: sn.Network(3, [sn.Dense(1)]).fit(np.ones((4, 3)), np.ones(4), progress="yes"), TypeError, "progress"),
    (lambda: __import__("sensinet.datasets", fromlist=["x"]).Standardizer().fit(np.array([[1.0], [np.nan]])),
     ValueError, "X: contains NaN"),
    (lambda: __import__("sensinet.datasets", fromlist=["x"]).load_titanic(raw="yes"), TypeError, "raw"),
    (lambda: sn.save(sn.Network(3, [sn.Dense(1)]), io.BytesIO(), metadata={"a": {1: "b"}}), TypeError,
     r"metadata\['a'\]: expected str keys"),
])
def test_still_accepted_before_now_refused(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_repeated_keys_in_a_model_header_are_refused(tmp_path):
    path = tmp_path / "n.npz"
    sn.save(sn.Network(3, [sn.Dense(1)]), path)
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    text = members["header"].tobytes().decode()
    members["header"] = np.frombuffer(text.replace('"loss": "mse"', '"loss": "mse", "loss": "cross_entropy"')
                                      .encode(), np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **members)
    with pytest.raises(ValueError, match=r"repeated key\(s\) \['loss'\]"):
        sn.load(path)


def _small():
    return sn.Network(3, [sn.Dense(4, "relu"), sn.Dense(4, "relu"), sn.Dense(1)], seed=0)


_X = np.random.default_rng(0).normal(size=(30, 3))
_Y = _X[:, 0].copy()


@pytest.mark.parametrize("call, exc, match", [
    (lambda: sn.group_sensitivity(_small(), _X, _Y, [{1: [[0, 1], [2, 3]]}]), ValueError, r"groups\[1\]: expected a 1-D"),
    (lambda: sn.group_sensitivity(_small(), _X, _Y, None), TypeError, "groups: expected a list"),
    (lambda: sn.explain(_small(), _X).fidelity_curve([1.7]), ValueError, "ns: expected int cluster counts"),
    (lambda: sn.sensitivity(_small(), _X, per_sample="yes"), TypeError, "per_sample"),
    (lambda: sn.LayerInsertion(score_threshold=float("nan")), ValueError, "score_threshold"),
    (lambda: sn.LayerInsertion(score_threshold="a"), ValueError, "score_threshold"),
    (lambda: sn.LayerInsertion(include_bias="no"), TypeError, "include_bias"),
    (lambda: sn.LayerInsertion().fit(_small(), _X, _Y, epochs=2, batch_size=1.7), ValueError, "batch_size"),
    (lambda: sn.LayerInsertion().insert(_small(), None), TypeError, "candidate: expected a Candidate"),
    (lambda: sn.Network(3, [sn.Dense(1)], seed=-1), ValueError, "seed: expected an int >= 0 or None, got -1"),
    (lambda: sn.Network(3, [sn.Dense(1)], seed=1.5), ValueError, "seed: expected an int >= 0 or None, got 1.5"),
    (lambda: _small().reinitialize(-1), ValueError, "seed: expected an int >= 0"),
    (lambda: sn.Network(3, None), TypeError, "layers: expected a sequence"),
    (lambda: _small().fit(_X, _Y, epochs=1, callback=lambda: None), TypeError,
     "callback: expected a callable taking one argument"),
])
def test_unclear_or_silent_before_now_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_targets_are_not_read_for_output_sensitivities():
    """wrt='output' does not read y (documented): the result is that of no targets at all."""
    a = sn.sensitivity(_small(), _X, np.full(30, np.nan), wrt="output")
    b = sn.sensitivity(_small(), _X, wrt="output")
    assert all(np.array_equal(m, n) for m, n in zip(a.matrices, b.matrices))


def test_figure_path_under_a_file(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=f"path: cannot write to {blocker / 'x.png'}: {blocker} is not a folder"):
        sn.sensitivity(_small(), _X).plot(blocker / "x.png")


@pytest.mark.parametrize("groups, exc, match", [
    ({"g": {}}, ValueError, r"groups\['g'\]: expected a non-empty dict"),
    ({"g": None}, ValueError, r"groups\['g'\]: expected a non-empty dict"),
    ([1, 2], TypeError, "groups: expected a dict"),
])
def test_group_scores_bad_groups(groups, exc, match):
    with pytest.raises(exc, match=match):
        sn.sensitivity(_small(), _X).group_scores(groups)


def test_affine_maps_predict_with_too_few_columns():
    maps = sn.explain(_small(), _X).affine_maps
    with pytest.raises(ValueError, match=r"X: expected shape \(n_samples, 3\)"):
        maps.predict(_X[:, :2], np.zeros(30, int))


def test_model_header_nested_too_deeply(tmp_path):
    path = tmp_path / "n.npz"
    sn.save(sn.Network(3, [sn.Dense(1)]), path)
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    deep = '{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    members["header"] = np.frombuffer(deep.encode(), np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **members)
    with pytest.raises(ValueError, match="nested too deeply"):
        sn.load(path)
