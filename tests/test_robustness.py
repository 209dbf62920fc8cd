"""Property-based robustness over the public entry points.

1. Any finite input gives finite output or a clear error (ValueError / TypeError / NonFiniteError /
   DivergenceError with a message): never another exception, never a silent inf or NaN, never a raw
   numpy warning.
2. Any malformed argument gives a ValueError or TypeError whose message names the argument.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import sensinet as sn

hyp = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CLEAR = (ValueError, TypeError, sn.NonFiniteError, sn.DivergenceError)
# 60 examples a property in CI; SENSINET_ROBUSTNESS_EXAMPLES=2000 for a deep run
SETTINGS = dict(max_examples=int(os.environ.get("SENSINET_ROBUSTNESS_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------- 1. finite inputs
@st.composite
def problems(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    d = draw(st.integers(1, 4))
    layers = []
    for _ in range(draw(st.integers(0, 2))):
        act = draw(st.sampled_from(sn.ACTIVATIONS))
        if layers and draw(st.booleans()):
            width = layers[-1].units if isinstance(layers[-1], sn.Dense) else layers[-1].width
            if draw(st.booleans()):
                layers.append(sn.Residual(width, act, hidden=draw(st.integers(1, 4)), weights=2))
            else:
                layers.append(sn.Residual(width, act, weights=1))
        else:
            layers.append(sn.Dense(draw(st.integers(1, 5)), act))
    head = draw(st.sampled_from(["mse", "cross_entropy", "binary_cross_entropy"]))
    k = draw(st.integers(2, 3)) if head == "cross_entropy" else draw(st.integers(1, 2))
    layers.append(sn.Dense(k))
    net = sn.Network(d, layers, loss=head, dtype=dtype, seed=draw(st.integers(0, 3)))
    n = draw(st.integers(1, 6))
    scale = draw(st.sampled_from([1.0, 1e3, 1e30, 1e150, 1e300]))
    X = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=n * d, max_size=n * d))).reshape(n, d) * scale
    rng = np.random.default_rng(draw(st.integers(0, 100)))
    if head == "mse":
        y = rng.normal(size=(n, k)) * draw(st.sampled_from([1.0, 1e100, 1e300]))
    elif head == "cross_entropy":
        y = rng.integers(0, k, n)
    else:
        y = rng.integers(0, 2, (n, k)).astype(float)
    return net, X, y


def _finite(out) -> bool:
    if isinstance(out, (tuple, list)):
        return all(_finite(o) for o in out)
    if isinstance(out, sn.SensitivityResult):
        return all(np.isfinite(m).all() for m in out.matrices)
    if isinstance(out, sn.Network):
        return bool(np.isfinite(out.parameters).all())
    if isinstance(out, (float, int, np.ndarray, np.number)):
        return bool(np.isfinite(out).all())
    return True


ENTRY_POINTS = {
    "forward": lambda net, X, y: net.forward(X),
    "predict": lambda net, X, y: net.predict(X),
    "layer_input": lambda net, X, y: net.layer_input(X, net.n_layers),
    "objective": lambda net, X, y: net.objective(X, y),
    "loss_and_grad": lambda net, X, y: net.loss_and_grad(X, y),
    "block_gradient": lambda net, X, y: net.loss_and_grad(X, y, layers=net.n_layers - 1),
    "sensitivity": lambda net, X, y: sn.sensitivity(net, X),
    "loss_sensitivity": lambda net, X, y: sn.sensitivity(net, X, y, wrt="loss", per_sample=True),
    "group_sensitivity": lambda net, X, y: sn.group_sensitivity(net, X, y, [{0: None}]),
    "group_curvature": lambda net, X, y: sn.group_curvature(net, X, y, [{0: None}]),
    "fit_sgd": lambda net, X, y: net.fit(X, y, optimizer=sn.SGD(0.01), epochs=2, batch_size=2),
    "fit_lbfgs": lambda net, X, y: net.fit(X, y, optimizer=sn.LBFGS(max_iter=3)),
    "fit_weighted": lambda net, X, y: net.fit(X, y, optimizer=sn.SGD(0.01), epochs=2, batch_size=2,
                                              sample_weight=np.arange(len(X)) % 3 + 0.5),
    "lbfgs_weighted": lambda net, X, y: net.fit(X, y, optimizer=sn.LBFGS(max_iter=3),
                                                sample_weight=np.linspace(0.0, 2.0, len(X)) + (len(X) == 1)),
    "dataset_fit": lambda net, X, y: net.fit(sn.Dataset(X, y), epochs=1),
    "insertion_scores": lambda net, X, y: [c.score for c in sn.LayerInsertion(kind="residual2").candidates(net, X, y)],
    "hierarchical": lambda net, X, y: sn.HierarchicalOptimizer(max_outer=2, inner_iters=1).run(net, X, y, budget=5).J,
    "prune": lambda net, X, y: sn.prune(net, X, y, amount=0.5, criterion="taylor", fold_mean=True)[0],
}


@settings(**SETTINGS)
@given(problems(), st.sampled_from(sorted(ENTRY_POINTS)))
def test_finite_input_gives_finite_output_or_a_clear_error(problem, name):
    net, X, y = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a raw numpy overflow warning is a leak
        try:
            out = ENTRY_POINTS[name](net, X, y)
        except CLEAR as exc:
            assert str(exc), f"{name}: {type(exc).__name__} without a message"
            return
    assert _finite(out), f"{name} returned non-finite values"
    assert np.isfinite(net.parameters).all()


@settings(**SETTINGS)
@given(problems())
def test_relu_clusters_of_finite_input_are_finite_or_a_clear_error(problem):
    net, X, y = problem
    if any(s[4] not in ("relu", "leaky_relu", "identity") for s in net.specs):
        with pytest.raises(ValueError):
            sn.explain(net, X)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            rc = sn.explain(net, X)
        except CLEAR as exc:
            assert str(exc)
            return
    assert np.isfinite(rc.affine_maps.W_eff).all() and np.isfinite(rc.affine_maps.b_eff).all()


# ---------------------------------------------------------------------------------------------- 2. bad arguments
NAN, INF = float("nan"), float("inf")
COUNT_BAD = [-1, 1.5, "3", 2**63, True, NAN, None, [1]]
POSITIVE_BAD = [0, -1.0, NAN, INF, "1e-3", None, True]
CHOICE_BAD = ["nope", 3, None, ""]


def _net():
    return sn.Network(3, [sn.Dense(4, "relu"), sn.Dense(1)], seed=0)


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 3))
    return X, X.sum(1)


# (argument name as it must appear in the message, call with the bad value, bad values)
BAD_ARGUMENTS = [
    ("n_inputs", lambda v: sn.Network(v, [sn.Dense(1)]), [0, -3, 1.5, "3", None, True]),
    ("loss", lambda v: sn.Network(3, [sn.Dense(1)], loss=v), CHOICE_BAD),
    ("dtype", lambda v: sn.Network(3, [sn.Dense(1)], dtype=v), [np.int32, "float16", np.complex128]),
    ("device", lambda v: sn.Network(3, [sn.Dense(1)], device=v), ["gpu", "cuda:x", 3, None]),
    ("precision", lambda v: sn.Network(3, [sn.Dense(1)], dtype=np.float32, precision=v), CHOICE_BAD),
    ("units", lambda v: sn.Dense(v), [0, -1, 1.5, "4", None, True]),
    ("activation", lambda v: sn.Dense(3, v), CHOICE_BAD),
    ("alpha", lambda v: sn.Dense(3, "leaky_relu", alpha=v), [-0.1, NAN, INF, "x", None]),
    ("l2", lambda v: sn.Dense(3, l2=v), [-1.0, NAN, INF, "x", None]),
    ("epochs", lambda v: _net().fit(*_data(), epochs=v), COUNT_BAD),
    ("batch_size", lambda v: _net().fit(*_data(), batch_size=v), COUNT_BAD + [0]),
    ("max_steps", lambda v: _net().fit(*_data(), max_steps=v), [-1, 1.5, "3", 2**63, True, NAN]),
    ("callback_every", lambda v: _net().fit(*_data(), callback_every=v), COUNT_BAD),
    ("patience", lambda v: _net().fit(*_data(), validation_data=_data(), patience=v), [0, -1, 1.5, "2", 2**63, True]),
    ("tol", lambda v: _net().fit(*_data(), validation_data=_data(), tol=v), [-1.0, NAN, INF, "x", None, True]),
    ("shuffle", lambda v: _net().fit(*_data(), shuffle=v), ["no", 1, None, 0.0]),
    ("seed", lambda v: _net().fit(*_data(), seed=v), [-1, 1.5, "3", 2**64, True]),
    ("n_threads", lambda v: _net().fit(*_data(), n_threads=v), [0, -1, 1.5, "2", 2**31, True]),
    ("layers", lambda v: _net().fit(*_data(), layers=v), [5, -3, (1, 0), [0, 2, 5], "0", 1.5]),
    ("optimizer", lambda v: _net().fit(*_data(), optimizer=v), CHOICE_BAD + [sn.Dense(1)]),
    ("lr", lambda v: _net().fit(*_data(), optimizer="sgd", lr=v), [v for v in POSITIVE_BAD if v is not None]),
    ("callback", lambda v: _net().fit(*_data(), callback=v), [3, "f"]),
    ("validation_data", lambda v: _net().fit(*_data(), validation_data=v), [3, (1,), (None, None)]),
    ("SGD.lr", lambda v: sn.SGD(v), POSITIVE_BAD),
    ("SGD.momentum", lambda v: sn.SGD(0.1, v), [-0.5, NAN, INF, "x", None]),
    ("SGD.nesterov", lambda v: sn.SGD(0.1, 0.9, v), ["yes", 1, None]),
    ("Adam.lr", lambda v: sn.Adam(v), POSITIVE_BAD),
    ("Adam.beta1", lambda v: sn.Adam(1e-3, v), [1.0, -0.1, NAN, "x", None]),
    ("Adam.eps", lambda v: sn.Adam(1e-3, 0.9, 0.999, v), POSITIVE_BAD),
    ("LBFGS.max_iter", lambda v: sn.LBFGS(max_iter=v), COUNT_BAD),
    ("LBFGS.history", lambda v: sn.LBFGS(history=v), COUNT_BAD + [0]),
    ("n_threads", lambda v: sn.set_num_threads(v), [0, -1, 1.5, "2", 2**31, True, None]),
    ("wrt", lambda v: sn.sensitivity(_net(), _data()[0], wrt=v), CHOICE_BAD),
    ("reduce", lambda v: sn.sensitivity(_net(), _data()[0], reduce=v), ["nope", 3, ""]),
    ("method", lambda v: sn.sensitivity(_net(), _data()[0], method=v), CHOICE_BAD),
    ("eps", lambda v: sn.sensitivity(_net(), _data()[0], method="finite_difference", eps=v),
     [v for v in POSITIVE_BAD if v is not None]),
    ("sites", lambda v: sn.sensitivity(_net(), _data()[0], sites=v), [7, "9:inner", [], 1.5]),
    ("groups", lambda v: sn.group_sensitivity(_net(), *_data(), v), [[{}], [3], [{1: [9]}], [{1: [0.5]}]]),
    ("groups", lambda v: sn.group_curvature(_net(), *_data(), v), [[{}], [3], [{1: [-9]}], [{1: ["a"]}]]),
    ("X", lambda v: _net().predict(v), [None, "x", [[1.0, 2.0], [3.0]], np.zeros((0, 3)), np.full((2, 3), NAN),
                                        np.zeros((2, 4)), np.zeros(3)]),
    ("y", lambda v: _net().fit(_data()[0], v), [None, "x", np.zeros(5), np.full(8, INF)]),
    ("X", lambda v: sn.Dataset(v), [None, "x", np.zeros((0, 2)), np.full((2, 2), NAN), np.zeros(3)]),
    ("kind", lambda v: sn.LayerInsertion(kind=v), CHOICE_BAD),
    ("choose", lambda v: sn.LayerInsertion(choose=v), CHOICE_BAD),
    ("at_epochs", lambda v: sn.LayerInsertion(at_epochs=v), [[0], [-5], ["a"], 3]),
    ("lr_factor", lambda v: sn.LayerInsertion(lr_factor=v), POSITIVE_BAD),
    ("residual_scale", lambda v: sn.LayerInsertion(residual_scale=v), POSITIVE_BAD),
    ("plateau", lambda v: sn.LayerInsertion(plateau=v), [(0, 1e-3), (5,), (5, -1), "x"]),
    ("max_insertions", lambda v: sn.LayerInsertion(max_insertions=v), [-1, 1.5, "2", True]),
    ("validation_data[1]", lambda v: sn.LayerInsertion(at_epochs=[1]).fit(
        sn.Network(2, [sn.Dense(3, "relu"), sn.Dense(2)], loss="cross_entropy", seed=0), np.zeros((4, 2)),
        np.array([0, 1, 0, 1]), epochs=2, validation_data=(np.zeros((4, 2)), v)),
     [np.array([0, 1, 5, 1]), np.array([0.5, 1, 0, 1]), np.zeros(3)]),
    ("width", lambda v: sn.Residual(v), [0, -1, 1.5, "4", None]),
    ("hidden", lambda v: sn.Residual(4, hidden=v), [0, -2, 1.5, "3"]),
    ("weights", lambda v: sn.Residual(4, weights=v), [0, 3, 1.5, "2"]),
    ("score", lambda v: sn.HierarchicalOptimizer(score=v), CHOICE_BAD),
    ("p_rand", lambda v: sn.HierarchicalOptimizer(p_rand=v), [-0.1, 1.5, NAN, "x"]),
    ("inner", lambda v: sn.HierarchicalOptimizer(inner=v), CHOICE_BAD),
    ("inner_iters", lambda v: sn.HierarchicalOptimizer(inner_iters=v), [0, -1, 1.5, "3", True]),
    ("budget", lambda v: sn.HierarchicalOptimizer().run(_net(), *_data(), budget=v), [0, -1.0, NAN, "x"]),
    ("n_clusters", lambda v: sn.explain(_net(), _data()[0]).merge(v), [0, -1, 1.5, "2", 10**6]),
    ("by", lambda v: sn.explain(_net(), _data()[0]).merge(2, by=v), CHOICE_BAD),
    ("batch_size", lambda v: list(sn.sensitivity.__globals__["iter_per_sample"](_net(), _data()[0], batch_size=v)),
     [0, -1, 1.5, "2"]),
    ("layer", lambda v: _net().layer_parameters(v), [2, -3, 1.5, "0", None]),
    ("device", lambda v: _net().to(v), ["gpu", 3, None, "cuda:-1"]),
    ("path", lambda v: sn.save(_net(), v), [3, None, 1.5]),
    ("amount", lambda v: sn.prune(_net(), _data()[0], amount=v), [1.0, -0.1, "x", None, NAN, 10**6, True]),
    ("criterion", lambda v: sn.prune(_net(), _data()[0], criterion=v), CHOICE_BAD),
    ("scope", lambda v: sn.prune(_net(), _data()[0], scope=v), CHOICE_BAD),
    ("min_width", lambda v: sn.prune(_net(), _data()[0], min_width=v), [0, -1, 1.5, "2", True]),
]


@pytest.mark.parametrize("name, call, values", BAD_ARGUMENTS, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD_ARGUMENTS)])
def test_malformed_arguments_raise_naming_the_argument(name, call, values):
    for v in values:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            try:
                call(v)
            except (ValueError, TypeError) as exc:
                assert name.split(".")[-1] in str(exc), f"{name}={v!r}: the message does not name it: {exc}"
                continue
            except Exception as exc:  # noqa: BLE001 - reported as a failure
                pytest.fail(f"{name}={v!r}: {type(exc).__name__} instead of ValueError/TypeError: {exc}")
            pytest.fail(f"{name}={v!r} was accepted")


def _crafted_pair(words):
    """Words 0 and 8 (64 bytes apart, the same lane) changed so that the *unkeyed* fingerprint of sensinet 0.2
    is kept: flip a bit of word 0, then invert the lane's step to pick word 8 (multiplication by an odd
    constant and the xor-shift are both invertible)."""
    M, K = 2 ** 64, 0x9E3779B97F4A7C15

    def step(lane, v):
        lane = ((lane ^ v) * K) % M
        return lane ^ (lane >> 29)

    def unshift(y):
        return y ^ (y >> 29) ^ (y >> 58)

    lane0 = 0x243F6A8885A308D3  # the public start of lane 0
    target = step(step(lane0, int(words[0])), int(words[8]))
    new0 = int(words[0]) ^ (1 << 52)
    after = step(lane0, new0)
    return new0, ((unshift(target) * pow(K, -1, M)) % M) ^ after


def _unkeyed(a):
    """sensinet 0.2's fingerprint, in Python (the reference the attack is built against)."""
    M, K = 2 ** 64, 0x9E3779B97F4A7C15
    w = [int(x) for x in np.frombuffer(a.tobytes(), dtype=np.uint64)]
    lanes = [(0x243F6A8885A308D3 + i * 0x13198A2E03707344) % M for i in range(8)]
    for b in range(0, len(w) - len(w) % 8, 8):
        for i in range(8):
            v = ((lanes[i] ^ w[b + i]) * K) % M
            lanes[i] = v ^ (v >> 29)
    return lanes


def test_array_cache_cannot_be_fooled_by_a_crafted_change():
    """A change crafted to keep the unkeyed fingerprint (two words 64 bytes apart) changes the keyed one, so a
    network's array cache never serves the old array's prepared form for it."""
    from sensinet._engine import fingerprint

    X = np.random.default_rng(0).normal(size=(32, 4))
    words = X.view(np.uint64).ravel()
    new0, new8 = _crafted_pair(words)
    Y = X.copy()
    Y.view(np.uint64).ravel()[[0, 8]] = [new0, new8]
    assert _unkeyed(Y) == _unkeyed(X) and not np.array_equal(X.view(np.uint64), Y.view(np.uint64))  # the attack
    assert fingerprint(Y) != fingerprint(X)
    net = sn.Network(4, [sn.Dense(3, "tanh"), sn.Dense(1)], seed=0)
    first = net.predict(X)
    X[...] = Y  # in place: the same array object, crafted bytes
    try:
        again = net.predict(X)
    except ValueError:  # the crafted words decode to NaN: caught, so the array was prepared again
        return
    np.testing.assert_array_equal(again, sn.Network(4, [sn.Dense(3, "tanh"), sn.Dense(1)], seed=0).predict(Y.copy()))
    assert not np.array_equal(again, first)
