"""Tests for sensinet.convert: scikit-learn and PyTorch models give the same outputs as the sensinet network."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import sensinet
from sensinet import Dense, Network, Residual
from sensinet.convert import from_sklearn, from_torch, to_torch

TOL = dict(rtol=1e-12, atol=1e-12)


def _data(n=60, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d))


def _fit(model, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


# ------------------------------------------------------------------------------------------- scikit-learn
sk = pytest.importorskip("sklearn")
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402

SK_ACTS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


@pytest.mark.parametrize("activation", list(SK_ACTS))
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_sklearn_regressor(activation, n_outputs):
    X = _data()
    rng = np.random.default_rng(1)
    y = np.sin(X @ rng.normal(size=(4, n_outputs)))
    y = y.ravel() if n_outputs == 1 else y
    model = _fit(MLPRegressor(hidden_layer_sizes=(7, 5), activation=activation, max_iter=30, random_state=0), X, y)
    net = from_sklearn(model)
    assert net.loss == "mse"
    assert [s[4] for s in net.specs] == [SK_ACTS[activation]] * 2 + ["identity"]
    assert [s[2] for s in net.specs] == [7, 5, n_outputs]
    assert all(s[6] == 0.0 for s in net.specs)
    Xt = _data(25, seed=2)
    ref = model.predict(Xt).reshape(len(Xt), -1)
    np.testing.assert_allclose(net.forward(Xt), ref, **TOL)
    np.testing.assert_allclose(net.predict(Xt), ref, **TOL)
    assert not hasattr(net, "classes_")
    # the weights themselves are copied exactly
    for i, (W, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        views = net.layer_parameters(i)
        np.testing.assert_array_equal(views["W"], W)
        np.testing.assert_array_equal(views["b"], b)


def test_sklearn_no_hidden_layer():
    X = _data()
    y = X @ np.arange(1.0, 5.0)
    model = _fit(MLPRegressor(hidden_layer_sizes=(), max_iter=20, random_state=0), X, y)
    net = from_sklearn(model)
    assert net.n_layers == 1
    np.testing.assert_allclose(net.predict(X)[:, 0], model.predict(X), **TOL)


@pytest.mark.parametrize("activation", list(SK_ACTS))
def test_sklearn_binary_classifier(activation):
    X = _data(80)
    y = np.where(X[:, 0] + X[:, 1] ** 2 > 0.5, "yes", "no")
    model = _fit(MLPClassifier(hidden_layer_sizes=(6,), activation=activation, max_iter=40, random_state=0), X, y)
    net = from_sklearn(model)
    assert net.loss == "binary_cross_entropy"
    assert net.n_outputs == 1
    np.testing.assert_array_equal(net.classes_, model.classes_)
    Xt = _data(30, seed=3)
    np.testing.assert_allclose(net.predict(Xt)[:, 0], model.predict_proba(Xt)[:, 1], **TOL)
    # forward gives the logit; the class decision agrees with sklearn's
    labels = net.classes_[(net.forward(Xt)[:, 0] > 0).astype(int)]
    np.testing.assert_array_equal(labels, model.predict(Xt))


@pytest.mark.parametrize("activation", list(SK_ACTS))
def test_sklearn_multiclass_classifier(activation):
    X = _data(90)
    y = np.digitize(X[:, 0] - X[:, 2], [-0.5, 0.5]) + 10
    model = _fit(MLPClassifier(hidden_layer_sizes=(8, 4), activation=activation, max_iter=40, random_state=0),
                 X, y)
    net = from_sklearn(model)
    assert net.loss == "cross_entropy"
    assert net.n_outputs == 3
    np.testing.assert_array_equal(net.classes_, [10, 11, 12])
    Xt = _data(30, seed=4)
    np.testing.assert_allclose(net.predict(Xt), model.predict_proba(Xt), **TOL)
    np.testing.assert_array_equal(net.classes_[net.forward(Xt).argmax(axis=1)], model.predict(Xt))


def test_sklearn_multilabel_classifier():
    X = _data(90)
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], axis=1).astype(int)
    model = _fit(MLPClassifier(hidden_layer_sizes=(6,), max_iter=40, random_state=0), X, Y)
    net = from_sklearn(model)
    assert net.loss == "binary_cross_entropy"
    assert net.n_outputs == 3
    Xt = _data(30, seed=5)
    np.testing.assert_allclose(net.predict(Xt), model.predict_proba(Xt), **TOL)


def test_sklearn_float32_network():
    X = _data()
    model = _fit(MLPRegressor(hidden_layer_sizes=(5,), activation="tanh", max_iter=20, random_state=0), X, X[:, 0])
    net = from_sklearn(model, dtype=np.float32)
    assert net.dtype == np.float32 and net.parameters.dtype == np.float32
    np.testing.assert_allclose(net.predict(X)[:, 0], model.predict(X), rtol=1e-5, atol=1e-5)


def test_sklearn_import_has_one_spelling():
    X = _data()
    model = _fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=10, random_state=0), X, X[:, 1])
    assert sensinet.from_sklearn is from_sklearn and not hasattr(Network, "from_sklearn")
    np.testing.assert_array_equal(sensinet.from_sklearn(model).parameters, from_sklearn(model).parameters)


def test_sklearn_converted_classifier_saves(tmp_path):
    X = _data(80)
    y = (X[:, 0] > 0).astype(int)
    model = _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=30, random_state=0), X, y)
    net = from_sklearn(model)
    sensinet.save(net, tmp_path / "c.npz", metadata={"classes": net.classes_})
    back = sensinet.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert back.metadata == {"classes": [0, 1]}


def test_sklearn_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        from_sklearn(MLPRegressor())
    with pytest.raises(ValueError):  # NotFittedError is a ValueError too
        from_sklearn(MLPClassifier())


@pytest.mark.parametrize("model", [object(), "MLP", np.zeros(3)])
def test_sklearn_wrong_type(model):
    with pytest.raises(TypeError, match=type(model).__name__):
        from_sklearn(model)


def test_sklearn_other_estimator_type():
    from sklearn.linear_model import LinearRegression

    X = _data()
    with pytest.raises(TypeError, match="LinearRegression"):
        from_sklearn(LinearRegression().fit(X, X[:, 0]))


def test_sklearn_poisson_rejected():
    X = _data()
    y = np.exp(X[:, 0])
    try:
        model = _fit(MLPRegressor(hidden_layer_sizes=(3,), loss="poisson", max_iter=10, random_state=0), X, y)
    except (TypeError, ValueError):
        pytest.skip("this scikit-learn has no MLPRegressor(loss='poisson')")
    with pytest.raises(ValueError, match="out_activation_"):
        from_sklearn(model)


def test_sklearn_bad_dtype():
    X = _data()
    model = _fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=10, random_state=0), X, X[:, 0])
    with pytest.raises(TypeError, match="dtype"):
        from_sklearn(model, dtype=np.int32)


# ------------------------------------------------------------------------------------------- PyTorch
def test_torch_missing_gives_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match="PyTorch"):
        from_torch(object())
    net = Network(2, [Dense(1)], seed=0)
    with pytest.raises(ImportError, match="pip install"):
        to_torch(net)


def _torch():
    return pytest.importorskip("torch")


def _run(module, X):
    torch = _torch()
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))).numpy()


def test_torch_every_activation():
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(4, 6), nn.ReLU(),
        nn.Linear(6, 5), nn.LeakyReLU(0.2),
        nn.Linear(5, 7), nn.Tanh(),
        nn.Linear(7, 6), nn.Sigmoid(),
        nn.Linear(6, 5), nn.Softplus(),
        nn.Linear(5, 4), nn.Identity(),
        nn.Linear(4, 3),
    ).double()
    net = from_torch(module)
    assert net.n_inputs == 4 and net.n_outputs == 3 and net.loss == "mse"
    assert [s[4] for s in net.specs] == ["relu", "leaky_relu", "tanh", "sigmoid", "softplus", "identity", "identity"]
    assert net.specs[1][5] == pytest.approx(0.2)
    X = _data(40)
    np.testing.assert_allclose(net.forward(X), _run(module, X), **TOL)
    np.testing.assert_allclose(net.predict(X), _run(module, X), **TOL)


@pytest.mark.parametrize("act", ["ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softplus"])
def test_torch_final_activation_with_mse(act):
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2), getattr(nn, act)()).double()
    net = from_torch(module, n_inputs=3)
    assert net.specs[-1][4] != "identity"
    X = _data(30, d=3)
    np.testing.assert_allclose(net.forward(X), _run(module, X), **TOL)


def test_torch_float32_module_and_no_bias():
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(2)
    module = nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, 1))  # float32 parameters
    net = from_torch(module)
    np.testing.assert_array_equal(net.layer_parameters(0)["b"], 0.0)
    np.testing.assert_array_equal(net.layer_parameters(0)["W"], module[0].weight.detach().double().numpy().T)
    X = _data(20)
    ref = _run(module.double(), X)  # the float32 weights are exact in float64
    np.testing.assert_allclose(net.forward(X), ref, **TOL)


def test_torch_to_float32_network():
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(3)
    module = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2)).double()
    net = from_torch(module, dtype=np.float32)
    assert net.dtype == np.float32
    X = _data(20)
    np.testing.assert_allclose(net.forward(X), _run(module, X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss, link", [("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid")])
def test_torch_classification_heads(loss, link):
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(4)
    module = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    net = from_torch(module, loss=loss)
    assert net.loss == loss
    X = _data(25)
    logits = _run(module, X)
    np.testing.assert_allclose(net.forward(X), logits, **TOL)
    t = torch.from_numpy(logits)
    probs = (torch.softmax(t, dim=1) if link == "softmax" else torch.sigmoid(t)).numpy()
    np.testing.assert_allclose(net.predict(X), probs, **TOL)


def test_torch_import_has_one_spelling():
    torch = _torch()
    module = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    assert sensinet.from_torch is from_torch and not hasattr(Network, "from_torch")
    np.testing.assert_array_equal(sensinet.from_torch(module, n_inputs=2).parameters, from_torch(module).parameters)


def test_torch_bad_modules():
    torch = _torch()
    nn = torch.nn
    with pytest.raises(TypeError, match="Sequential"):
        from_torch(nn.Linear(2, 3))
    with pytest.raises(TypeError, match="Sequential"):
        from_torch([nn.Linear(2, 3)])
    with pytest.raises(ValueError, match=r"module\[1\].*Dropout2d"):  # Dropout itself is an eval-mode no-op
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.Dropout2d(0.1), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match=r"module\[2\].*GELU"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.GELU(), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match=r"module\[0\].*Conv1d"):
        from_torch(nn.Sequential(nn.Conv1d(1, 1, 1)))
    with pytest.raises(ValueError, match=r"module\[0\].*before any Linear"):
        from_torch(nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    with pytest.raises(ValueError, match=r"module\[2\].*follows another activation"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Tanh(), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match=r"module\[3\].*follows another activation"):  # Identity is a no-op
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Identity(), nn.Tanh(), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match=r"module\[2\].*in_features.*4.*expected 3"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(4, 1)))
    with pytest.raises(ValueError, match="at least one nn.Linear"):
        from_torch(nn.Sequential())
    with pytest.raises(ValueError, match=r"module\[1\].*beta"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.Softplus(beta=2.0), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match=r"module\[1\].*negative_slope"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.LeakyReLU(-0.1), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match=r"loss.*logits.*sigmoid"):
        from_torch(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.Sigmoid()),
                   loss="binary_cross_entropy")
    with pytest.raises(ValueError, match="loss"):
        from_torch(nn.Sequential(nn.Linear(2, 1)), loss="hinge")
    with pytest.raises(ValueError, match="n_inputs: expected 2"):
        from_torch(nn.Sequential(nn.Linear(2, 1)), n_inputs=3)
    with pytest.raises(ValueError, match="n_inputs"):
        from_torch(nn.Sequential(nn.Linear(2, 1)), n_inputs=0)
    with pytest.raises(TypeError, match="dtype"):
        from_torch(nn.Sequential(nn.Linear(2, 1)), dtype=np.int64)
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"module\[0\].*NaN"):
        from_torch(nn.Sequential(lin))


# ------------------------------------------------------------------------------------------- to_torch
ALL_ACTS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus")


@pytest.mark.parametrize("loss", ["mse", "cross_entropy", "binary_cross_entropy"])
def test_to_torch_round_trip(loss):
    torch = _torch()
    net = Network(3, [Dense(5, a, alpha=0.15) for a in ALL_ACTS] + [Dense(2)], loss=loss, seed=0)
    module = to_torch(net)
    assert isinstance(module, torch.nn.Sequential)
    assert all(p.dtype == torch.float64 for p in module.parameters())
    assert sum(isinstance(m, torch.nn.Linear) for m in module) == net.n_layers
    X = _data(30, d=3)
    np.testing.assert_allclose(_run(module, X), net.forward(X), **TOL)
    back = from_torch(module, loss=loss)
    # torch keeps neither l2 nor the alpha of non-leaky layers; everything else comes back
    assert [s[:5] for s in back.specs] == [s[:5] for s in net.specs]
    assert [s[5] for s in back.specs if s[4] == "leaky_relu"] == [0.15]
    np.testing.assert_array_equal(back.parameters.view(np.uint64), net.parameters.view(np.uint64))


def test_to_torch_float32_network_and_dtype_argument():
    torch = _torch()
    net = Network(3, [Dense(4, "relu"), Dense(1)], dtype=np.float32, seed=0)
    m64 = to_torch(net)
    assert next(m64.parameters()).dtype == torch.float64
    back = from_torch(m64, dtype=np.float32)
    np.testing.assert_array_equal(back.parameters, net.parameters)
    m32 = to_torch(net, dtype=torch.float32)
    assert next(m32.parameters()).dtype == torch.float32
    X = _data(10, d=3).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(m32(torch.from_numpy(X)).numpy(), net.forward(X), rtol=1e-5, atol=1e-6)


def test_to_torch_gradients_match_engine():
    """The exported module is a second reference: autograd's gradient equals the engine's."""
    torch = _torch()
    net = Network(3, [Dense(6, "tanh"), Dense(4, "softplus"), Dense(2)], seed=1)
    X = _data(20, d=3)
    Y = _data(20, d=2, seed=9)
    module = to_torch(net)
    out = module(torch.from_numpy(X))
    loss = ((out - torch.from_numpy(Y)) ** 2).mean()
    loss.backward()
    J, g = net.loss_and_grad(X, Y)
    assert J == pytest.approx(loss.item(), rel=1e-12)
    grads = []
    for lin in [m for m in module if isinstance(m, torch.nn.Linear)]:
        grads += [lin.weight.grad.numpy().T.ravel(), lin.bias.grad.numpy()]
    np.testing.assert_allclose(g, np.concatenate(grads), rtol=1e-10, atol=1e-12)


def test_to_torch_rejects_residual_and_non_networks():
    _torch()
    net = Network(3, [Dense(4, "relu"), Residual(4, "relu"), Dense(1)], seed=0)
    with pytest.raises(NotImplementedError, match=r"layer\(s\) \[1\].*residual"):
        to_torch(net)
    with pytest.raises(TypeError, match="Network"):
        to_torch("net")
