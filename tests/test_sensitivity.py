"""Neuron sensitivities through scaling factors (issue 3, Zhang et al. 2023).

References used here, each independent of the reverse kernel under test:

* central finite differences on the scaling factors (``method="finite_difference"``, float64);
* closed forms: a linear network (``S = x * (W1 W2)``), the last hidden layer (``S = h * W_out``), the
  weight-gradient identity ``g_j = sum_k W[j, k] dJ/dW[j, k]`` of the next dense layer;
* PyTorch autograd (``torch.func.jacrev`` for output / loss sensitivities, double backward for the
  curvature of a shared group factor) on a forward pass written here from the layer specs;
* the Gauss-Newton value of the curvature of a single-layer group in a pure-ReLU net with an mse head.

Relative errors are ``max |a - b| / max |b|`` over one site (conftest.rel_err).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import sensinet as sn
from conftest import ACTIVATIONS, HEADS, data_away_from_kinks, draw_hidden_layers, make_net, random_data, rel_err
from sensinet.sensitivity import sites_of

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # only the random-architecture test needs it
    st = None

SMOOTH = ("tanh", "sigmoid", "softplus")
TOL = 1e-6  # reverse vs central differences, float64
REDUCES = ("mean_abs", "rms", "mean")
MARGIN = 1e-3  # data whose relu pre-activations all satisfy |z| > MARGIN (FD steps are ~1e-6)


# ---------------------------------------------------------------------------------------------- helpers
def arch(kind: str, act: str, n_out: int) -> list:
    """Small architectures exercising every block type (hidden != width for the two-weight residual)."""
    if kind == "dense":
        return [sn.Dense(5, act), sn.Dense(4, act), sn.Dense(n_out)]
    if kind == "res2":
        return [sn.Dense(5, act), sn.Residual(5, act, hidden=7, weights=2), sn.Dense(n_out)]
    if kind == "res1":
        return [sn.Dense(5, act), sn.Residual(5, act, weights=1), sn.Dense(n_out)]
    if kind == "mixed":
        return [sn.Dense(5, act), sn.Residual(5, act, hidden=3, weights=2), sn.Residual(5, act, weights=1),
                sn.Dense(n_out)]
    if kind == "res_last":  # a residual block as the output layer: its inner neurons are a site, its output not
        return [sn.Dense(n_out, act), sn.Residual(n_out, act, hidden=4, weights=2)]
    raise ValueError(kind)


def net_and_data(kind, act, head, seed=0, n=10, soft=False):
    loss, k = HEADS[head]
    net = make_net(3, arch(kind, act, k), loss=loss, seed=seed)
    X, y = data_away_from_kinks(net, n=n, seed=seed, margin=MARGIN, soft=soft)
    return net, X, y


def one_hot_targets(net, y):
    """Targets as the (n, K) matrix of the head (labels -> one-hot for cross_entropy)."""
    y = np.asarray(y)
    n, k = y.shape[0], net.n_outputs
    if net.loss == "cross_entropy" and y.ndim == 1:
        Y = np.zeros((n, k))
        Y[np.arange(n), y.astype(int)] = 1
        return Y
    return np.asarray(y, np.float64).reshape(n, k)


def assert_sites_close(a, b, tol, what="", atol=0.0):
    """Every site of result a agrees with result b (same sites): reduced and, where present, per sample, to a
    relative ``tol`` (of the largest entry of b) plus ``atol``."""
    assert [s.name for s in a.sites] == [s.name for s in b.sites]
    for i, s in enumerate(a.sites):
        assert a.matrices[i].shape == b.matrices[i].shape
        pairs = [("reduced", a.matrices[i], b.matrices[i])]
        if a.per_sample is not None and b.per_sample is not None:
            pairs.append(("per sample", a.per_sample[i], b.per_sample[i]))
        for kind, x, ref in pairs:
            x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
            err, bound = np.max(np.abs(x - ref)), tol * np.max(np.abs(ref)) + atol
            assert err <= bound, f"{what} site {s.name}: error {err:.3g} > {bound:.3g} ({kind})"


def fd_floor(net, X, y, step):
    """The roundoff floor of a central difference with ``step`` of values of the size of the network's outputs
    or per-sample losses: a few eps of the largest of them, divided by the step. Tiny sensitivities (1e4 times
    below the outputs) reach it before a relative tolerance does; a wrong sensitivity is off by far more."""
    scale = max(1.0, float(np.max(np.abs(net.forward(X)))), abs(net.objective(X, y)) * len(X))
    return 16 * np.finfo(np.float64).eps * scale / step


def reduce_np(v, reduce):
    v = np.asarray(v, np.float64)
    if reduce == "mean_abs":
        return np.mean(np.abs(v), axis=0)
    if reduce == "rms":
        return np.sqrt(np.mean(v ** 2, axis=0))
    return np.mean(v, axis=0)


# ---------------------------------------------------------------------------------------------- reverse vs FD
@pytest.mark.parametrize("head", ["mse1", "mse3", "ce3", "bce1"])
@pytest.mark.parametrize("kind", ["dense", "res2", "res1"])
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("wrt", ["output", "loss"])
def test_reverse_matches_finite_differences(wrt, act, kind, head):
    net, X, y = net_and_data(kind, act, head, seed=3)
    for reduce in REDUCES:
        r = sn.sensitivity(net, X, y, wrt=wrt, reduce=reduce, per_sample=True)
        f = sn.sensitivity(net, X, y, wrt=wrt, reduce=reduce, per_sample=True, method="finite_difference")
        assert r.method == "reverse" and f.method == "finite_difference" and r.reduce == reduce
        assert_sites_close(r, f, TOL, f"{wrt}/{reduce}")
        # the reduction is the stated one of the per-sample values
        for M, P in zip(r.matrices, r.per_sample):
            np.testing.assert_allclose(M, reduce_np(P, reduce), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("wrt", ["output", "loss"])
def test_mixed_blocks_and_residual_output_layer(act, wrt):
    for kind, head in (("mixed", "ce3"), ("res_last", "mse3"), ("res_last", "mse1")):
        net, X, y = net_and_data(kind, act, head, seed=5, soft=True)
        r = sn.sensitivity(net, X, y, wrt=wrt, per_sample=True)
        f = sn.sensitivity(net, X, y, wrt=wrt, per_sample=True, method="finite_difference")
        assert_sites_close(r, f, TOL, f"{kind}/{head}")
        names = [s.name for s in r.sites]
        last = net.n_layers
        if kind == "res_last":
            assert f"{last}:inner" in names and f"{last}:output" not in names
            assert r.matrix(f"{last}:inner").shape == (net.n_outputs if wrt == "output" else 1, 4)


def test_default_reduction_and_shapes():
    net, X, y = net_and_data("mixed", "tanh", "mse3", seed=1, n=7)
    r = sn.sensitivity(net, X)
    assert r.reduce == "mean_abs" and r.wrt == "output" and r.per_sample is None and r.n_samples == 7
    assert [s.name for s in r.sites] == ["0", "1", "2:inner", "2:output", "3:inner", "3:output"]
    widths = [3, 5, 3, 5, 5, 5]
    assert [m.shape for m in r.matrices] == [(3, w) for w in widths]
    assert all(m.dtype == np.float64 for m in r.matrices)
    assert r.output_names == ["output 0", "output 1", "output 2"]
    rl = sn.sensitivity(net, X, y, wrt="loss", per_sample=True)
    assert rl.reduce == "mean" and rl.output_names == ["loss"]
    assert [m.shape for m in rl.matrices] == [(1, w) for w in widths]
    assert [p.shape for p in rl.per_sample] == [(7, 1, w) for w in widths]
    ro = sn.sensitivity(net, X, per_sample=True)
    assert [p.shape for p in ro.per_sample] == [(7, 3, w) for w in widths]
    assert all(p.dtype == np.float64 for p in ro.per_sample)


def test_loss_mean_is_objective_sensitivity():
    """reduce="mean" of the loss sensitivity is dJ/ds; the L2 terms of J do not depend on s."""
    net = make_net(3, [sn.Dense(5, "tanh", l2=0.3), sn.Residual(5, "sigmoid", hidden=4, l2=0.2),
                       sn.Dense(2, l2=0.1)], seed=2)
    X, y = random_data(net, 9, seed=2)
    r = sn.sensitivity(net, X, y, wrt="loss")
    G = sn.group_sensitivity(net, X, y, [{s.name: [j]} for s in r.sites for j in range(s.width)],
                             method="finite_difference")
    flat = np.concatenate([m[0] for m in r.matrices])
    assert rel_err(flat, G) < TOL


# ---------------------------------------------------------------------------------------------- closed forms
def test_linear_network_closed_form():
    """Identity activations: yhat = x W1 W2 + c, so S^0 = x_j (W1 W2)[j, k] and S^1 = h_j W2[j, k]."""
    net = make_net(4, [sn.Dense(6, "identity"), sn.Dense(3)], seed=7)
    X, _ = random_data(net, 11, seed=7)
    r = sn.sensitivity(net, X, sites=[0, 1], per_sample=True)
    W1, b1 = net.layer_parameters(0)["W"], net.layer_parameters(0)["b"]
    W2 = net.layer_parameters(1)["W"]
    S0 = X[:, None, :] * (W1 @ W2).T[None, :, :]
    H = X @ W1 + b1
    S1 = H[:, None, :] * W2.T[None, :, :]
    assert rel_err(r.per_sample[0], S0) < 1e-13
    assert rel_err(r.per_sample[1], S1) < 1e-13
    assert rel_err(r.matrix(0), np.mean(np.abs(S0), axis=0)) < 1e-13


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_last_hidden_layer_closed_form(act):
    """S[n, k, j] = h[n, j] * W_out[j, k] for the last hidden layer, whatever the activation (kinks too)."""
    net = make_net(3, [sn.Dense(6, act), sn.Dense(5, act), sn.Dense(2)], seed=11)
    X, _ = random_data(net, 13, seed=11)
    r = sn.sensitivity(net, X, sites=2, per_sample=True, reduce="rms")
    H = net.layer_input(X, 2)
    W = net.layer_parameters(2)["W"]
    S = H[:, None, :] * W.T[None, :, :]
    assert rel_err(r.per_sample[0], S) < 1e-13
    assert rel_err(r.matrix(2), np.sqrt(np.mean(S ** 2, axis=0))) < 1e-13


@pytest.mark.parametrize("head", ["mse1", "mse3", "ce3", "bce1"])
@pytest.mark.parametrize("act", ["tanh", "relu", "softplus"])
@pytest.mark.parametrize("l2", [0.0, 0.25])
def test_weight_gradient_identity(head, act, l2):
    """g^i_j = dJ/ds^i_j = sum_k W[j, k] (dJ/dW[j, k] - l2 W[j, k]) with W the next (dense) layer's weight.

    Sensitivity layer i is network layer i - 1; the next network layer is i. The inner neurons of a
    two-weight residual block feed only W2, so the same identity holds for them with W2.
    """
    loss, k = HEADS[head]
    net = make_net(3, [sn.Dense(6, act, l2=l2), sn.Dense(5, act, l2=l2), sn.Residual(5, act, hidden=4, l2=l2),
                       sn.Dense(k, l2=l2)], loss=loss, seed=4)
    X, y = random_data(net, 12, seed=4)
    r = sn.sensitivity(net, X, y, wrt="loss", reduce="mean", sites=[1, "3:inner"])
    _, grad = net.loss_and_grad(X, y)
    off = net.offsets
    # sensitivity layer 1 (network layer 0, dense) is followed by network layer 1 (dense)
    W = net.layer_parameters(1)["W"]
    G = grad[off[1]:off[1] + W.size].reshape(W.shape) - l2 * W
    assert rel_err(r.matrix(1)[0], np.sum(W * G, axis=1)) < 1e-12
    # sensitivity layer 2 (network layer 1, dense) is followed by the residual block's W1 *and* its skip
    # path, so no identity there; the block's inner neurons feed only W2
    p = net.layer_parameters(2)
    W2 = p["W2"]
    o2 = off[2] + p["W1"].size + p["b1"].size
    G2 = grad[o2:o2 + W2.size].reshape(W2.shape) - l2 * W2
    assert rel_err(r.matrix("3:inner")[0], np.sum(W2 * G2, axis=1)) < 1e-12
    # the residual block's output is followed by the dense head (network layer 3)
    W3 = net.layer_parameters(3)["W"]
    G3 = grad[off[3]:off[3] + W3.size].reshape(W3.shape) - l2 * W3
    r3 = sn.sensitivity(net, X, y, wrt="loss", sites="3:output")
    assert rel_err(r3.matrix("3:output")[0], np.sum(W3 * G3, axis=1)) < 1e-12


# ---------------------------------------------------------------------------------------------- selection
def test_selected_layers_match_full_result():
    net, X, y = net_and_data("mixed", "softplus", "mse3", seed=2)
    for wrt in ("output", "loss"):
        full = sn.sensitivity(net, X, y, wrt=wrt, per_sample=True)
        by_name = {s.name: i for i, s in enumerate(full.sites)}
        for layers, expect in (([2], ["2:inner", "2:output"]), (2, ["2:inner", "2:output"]),
                               ("2:inner", ["2:inner"]), (["3:output"], ["3:output"]), ([0], ["0"]),
                               ([3, 1], ["1", "3:inner", "3:output"]), (["2:output", 0], ["0", "2:output"]),
                               ([1, "1", 1], ["1"]), (np.int64(3), ["3:inner", "3:output"]),
                               (["3:output", "3:inner"], ["3:inner", "3:output"])):
            r = sn.sensitivity(net, X, y, wrt=wrt, sites=layers, per_sample=True)
            assert [s.name for s in r.sites] == expect, layers
            for i, s in enumerate(r.sites):
                j = by_name[s.name]
                np.testing.assert_array_equal(r.matrices[i], full.matrices[j])
                np.testing.assert_array_equal(r.per_sample[i], full.per_sample[j])
            f = sn.sensitivity(net, X, y, wrt=wrt, sites=layers, method="finite_difference")
            assert_sites_close(r, f, TOL, str(layers))
        # lookups by layer number and by name
        assert full.matrix("2:output") is full.matrices[by_name["2:output"]]
        assert full.matrix(1) is full.matrices[by_name["1"]]
        assert full.matrix(np.int64(0)) is full.matrices[by_name["0"]]


def test_input_layer_zero():
    """Layer 0 is the classic input sensitivity x_j d yhat / d x_j."""
    net, X, y = net_and_data("mixed", "sigmoid", "mse3", seed=8)
    r = sn.sensitivity(net, X, sites=0, per_sample=True)
    assert [s.name for s in r.sites] == ["0"] and r.per_sample[0].shape == (X.shape[0], 3, 3)
    h = 1e-6
    J = np.empty((X.shape[0], 3, 3))
    for j in range(3):
        E = np.zeros_like(X)
        E[:, j] = h
        J[:, :, j] = (net.forward(X + E) - net.forward(X - E)) / (2 * h)
    assert rel_err(r.per_sample[0], J * X[:, None, :]) < TOL


def test_many_chunks_of_samples():
    """More samples than one engine chunk (sensitivities: 2^20 / (K * max width) rows; curvature: 256)."""
    net = make_net(1500, [sn.Dense(8, "tanh"), sn.Residual(8, "softplus", hidden=3), sn.Dense(3)], seed=9)
    rng = np.random.default_rng(9)
    X = rng.normal(size=(700, 1500)) * 0.05
    y = rng.normal(size=(700, 3))
    for wrt in ("output", "loss"):
        r = sn.sensitivity(net, X, y, wrt=wrt, per_sample=True)
        parts = [sn.sensitivity(net, X[s:s + 50], y[s:s + 50], wrt=wrt, per_sample=True) for s in range(0, 700, 50)]
        for i, s in enumerate(r.sites):
            ref = np.concatenate([p.per_sample[i] for p in parts])
            assert rel_err(r.per_sample[i], ref) < 1e-12, s.name
            assert rel_err(r.matrices[i], reduce_np(ref, r.reduce)) < 1e-12, s.name
        f = sn.sensitivity(net, X, y, wrt=wrt, sites=[1, 2], method="finite_difference")
        assert_sites_close(sn.sensitivity(net, X, y, wrt=wrt, sites=[1, 2]), f, TOL)
    groups = [{1: None}, {"2:inner": [0, 2], "2:output": [1]}]
    exact = sn.group_curvature(net, X, y, groups)
    fd = sn.group_curvature(net, X, y, groups, method="finite_difference")
    assert rel_err(exact, fd) < TOL


# ---------------------------------------------------------------------------------------------- random architectures
def architectures(draw):
    n_in = draw(st.integers(1, 4))
    blocks = draw_hidden_layers(draw, draw(st.integers(1, 3)), None, alphas=(0.01, 0.3))
    head = draw(st.sampled_from(sorted(HEADS)))
    wrt = draw(st.sampled_from(["output", "loss"]))
    reduce = draw(st.sampled_from(REDUCES))
    seed = draw(st.integers(0, 10_000))
    return n_in, blocks, head, wrt, reduce, seed


def _random_architectures(case):
    n_in, blocks, head, wrt, reduce, seed = case
    loss, k = HEADS[head]
    net = make_net(n_in, blocks + [sn.Dense(k)], loss=loss, seed=seed)
    X, y = data_away_from_kinks(net, n=8, seed=seed, margin=MARGIN)
    r = sn.sensitivity(net, X, y, wrt=wrt, reduce=reduce, per_sample=True)
    f = sn.sensitivity(net, X, y, wrt=wrt, reduce=reduce, per_sample=True, method="finite_difference")
    sites = sites_of(net)
    assert [s.name for s in r.sites] == [s.name for s in sites]
    assert_sites_close(r, f, TOL, repr(net), atol=fd_floor(net, X, y, 1e-6))
    # one random group over all sites (every other neuron, shifted by the seed) and every whole site
    groups = [{s.name: [j for j in range(s.width) if (j + seed) % 2 == 0] for s in sites}]
    groups += [{s.name: None} for s in sites]
    rev = sn.group_sensitivity(net, X, y, groups)
    fd = sn.group_sensitivity(net, X, y, groups, method="finite_difference")
    assert np.all(np.abs(rev - fd) <= TOL * np.abs(fd).max() + fd_floor(net, X, y, 1e-6)), (rev, fd)
    if all(spec[4] not in ("relu", "leaky_relu") for spec in net.specs):  # FD curvature: no kinks crossed
        exact = sn.group_curvature(net, X, y, groups)
        fdc = sn.group_curvature(net, X, y, groups, method="finite_difference")
        # The five-point second difference adds J values of size |J| with weights up to 30 / (12 h^2): its
        # roundoff floor is about 64 eps |J| / h^2 (h = 1e-3 in float64). Curvatures 1e4 times smaller than J
        # reach that floor before the relative TOL (hypothesis found one: 1e-4 against J ~ 0.7), so the floor
        # is the absolute part of the bound; a wrong curvature is still off by far more than either.
        floor = 64 * np.finfo(np.float64).eps * max(abs(net.objective(X, y)), 1.0) / 1e-3 ** 2
        assert np.all(np.abs(exact - fdc) <= TOL * np.abs(fdc).max() + floor), (exact, fdc)


if st is not None:
    test_random_architectures = settings(
        max_examples=20, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )(given(st.composite(architectures)())(_random_architectures))
else:
    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_random_architectures():
        pass


@pytest.mark.parametrize("wrt", ["output", "loss"])
def test_threads_agree(wrt):
    net = make_net(30, [sn.Dense(64, "tanh"), sn.Residual(64, "relu", hidden=32), sn.Dense(4)], seed=3)
    X, y = random_data(net, 300, seed=3)
    r1 = sn.sensitivity(net, X, y, wrt=wrt, per_sample=True, n_threads=1)
    r2 = sn.sensitivity(net, X, y, wrt=wrt, per_sample=True, n_threads=2)
    assert_sites_close(r2, r1, 1e-12, "2 threads")
    g = [{1: None}, {"2:inner": None}]
    assert rel_err(sn.group_curvature(net, X, y, g, n_threads=2), sn.group_curvature(net, X, y, g)) < 1e-12


# ---------------------------------------------------------------------------------------------- float32
@pytest.mark.parametrize("act", ["tanh", "relu", "softplus", "sigmoid"])
@pytest.mark.parametrize("wrt", ["output", "loss"])
def test_float32_close_to_float64(act, wrt):
    net, X, y = net_and_data("mixed", act, "ce3", seed=6, n=20)
    net32 = net.astype(np.float32)
    X32 = X.astype(np.float32)  # the same inputs in both
    r64 = sn.sensitivity(net, X32.astype(np.float64), y, wrt=wrt, per_sample=True)
    r32 = sn.sensitivity(net32, X32, y, wrt=wrt, per_sample=True)
    assert all(p.dtype == np.float32 for p in r32.per_sample)
    assert all(m.dtype == np.float64 for m in r32.matrices)  # accumulated in double
    assert_sites_close(r32, r64, 1e-4, "float32")
    # the float32 finite differences (step 1e-3) as a coarse check of the float32 scaled forward pass
    f32 = sn.sensitivity(net32, X32, y, wrt=wrt, method="finite_difference")
    for a, b in zip(f32.matrices, r64.matrices):
        assert rel_err(a, b) < 2e-2
    g = [{1: None}, {"2:inner": [0, 1], 3: [2]}]
    c64 = sn.group_curvature(net, X32.astype(np.float64), y, g)
    c32 = sn.group_curvature(net32, X32, y, g)
    assert rel_err(c32, c64) < 1e-4
    s64 = sn.group_sensitivity(net, X32.astype(np.float64), y, g)
    s32 = sn.group_sensitivity(net32, X32, y, g)
    assert rel_err(s32, s64) < 1e-4


# ---------------------------------------------------------------------------------------------- groups
GROUPS = [
    {1: None},
    {1: [0, 3]},
    {"2:inner": np.array([True, False, True])},
    {"2:output": [4], "3:inner": [0, 1, 2]},
    {0: [1], 1: [2], "3:output": None},  # input, hidden and residual output in one factor
    {2: [0, 1]},  # an int key of a residual layer: both of its sites
]


@pytest.mark.parametrize("head", ["mse3", "ce3", "bce1"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_group_sensitivity_reverse_vs_fd(head, act):
    net, X, y = net_and_data("mixed", act, head, seed=12)
    rev = sn.group_sensitivity(net, X, y, GROUPS)
    fd = sn.group_sensitivity(net, X, y, GROUPS, method="finite_difference")
    assert rev.shape == (len(GROUPS),)
    assert rel_err(rev, fd) < TOL
    # one shared factor: the signed sum of the members' dJ/ds
    r = sn.sensitivity(net, X, y, wrt="loss")
    g = {s.name: r.matrices[i][0] for i, s in enumerate(r.sites)}
    assert rev[1] == pytest.approx(g["1"][0] + g["1"][3], rel=1e-12, abs=1e-15)
    assert rev[5] == pytest.approx(g["2:inner"][0] + g["2:inner"][1] + g["2:output"][0] + g["2:output"][1],
                                   rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("head", ["mse1", "mse3", "ce3", "bce1"])
@pytest.mark.parametrize("act", SMOOTH + ("identity",))
def test_group_curvature_exact_vs_fd(head, act):
    net, X, y = net_and_data("mixed", act, head, seed=13, soft=True)
    exact = sn.group_curvature(net, X, y, GROUPS)
    fd = sn.group_curvature(net, X, y, GROUPS, method="finite_difference")
    assert exact.shape == (len(GROUPS),)
    assert rel_err(exact, fd) < TOL, (exact, fd)


def test_group_curvature_relu_mse_is_gauss_newton():
    """Pure-ReLU net, mse head: with the activation pattern fixed, yhat is affine in the factor of a group
    inside one layer, so d2J/ds^2 = 2/(n K) sum_nk (d yhat_nk / ds)^2 exactly (the Gauss-Newton value), with
    d yhat / ds the sum of the members' per-sample output sensitivities. (Finite differences of the
    curvature are not used for ReLU nets: their +-2h steps of the factor can cross activation kinks.)"""
    net = make_net(3, [sn.Dense(6, "relu"), sn.Dense(5, "relu"), sn.Residual(5, "relu", hidden=4), sn.Dense(3)],
                   seed=14)
    X, y = random_data(net, 15, seed=14)
    r = sn.sensitivity(net, X, per_sample=True)
    P = {s.name: r.per_sample[i] for i, s in enumerate(r.sites)}
    groups = [{1: None}, {"2": [0, 3]}, {"3:inner": [1, 2]}, {"3:output": None}, {0: None}]
    exact = sn.group_curvature(net, X, y, groups)
    n, K = X.shape[0], 3
    for c, g in zip(exact, groups):
        (name, idx), = g.items()
        name = str(name)
        D = P[name][:, :, slice(None) if idx is None else idx].sum(axis=2)  # (n, K)
        gn = 2.0 / (n * K) * np.sum(D ** 2)
        assert c == pytest.approx(gn, rel=1e-10)


# ---------------------------------------------------------------------------------------------- result object
def _result(wrt="output", reduce=None, per_sample=False):
    net, X, y = net_and_data("mixed", "tanh", "mse3", seed=21, n=16)
    return net, X, y, sn.sensitivity(net, X, y, wrt=wrt, reduce=reduce, per_sample=per_sample)


def test_importances_ranked_top():
    _, _, _, r = _result()
    scores = r.neuron_scores()
    for sc, M in zip(scores, r.matrices):
        np.testing.assert_allclose(sc, np.sqrt(np.sum(M ** 2, axis=0)), rtol=1e-15)
    imp = r.neuron_importance()
    assert max(float(i.max()) for i in imp) == 1.0
    assert all(np.all(i >= 0) and np.all(i <= 1) for i in imp)
    li = r.layer_importance()
    assert li.shape == (len(r.sites),) and li.max() == 1.0 and np.all(li >= 0)
    for rule in ("l1", "max"):
        assert r.layer_importance(rule).max() == 1.0
    rows = r.ranked()
    assert len(rows) == sum(s.width for s in r.sites)
    sc = [row[2] for row in rows]
    assert sc == sorted(sc, reverse=True)
    assert rows[0][3] == 1.0
    site, j, score, importance = rows[0]
    assert score == pytest.approx(scores[[s.name for s in r.sites].index(site)][j], rel=0, abs=0)
    assert r.top(5) == rows[:5] and r.top() == rows[:10] and len(r.top(10_000)) == len(rows)


def test_group_scores_rules():
    _, _, _, r = _result(per_sample=True)
    scores = {s.name: v for s, v in zip(r.sites, r.neuron_scores())}
    groups = {"a": {"1": [0, 2, 4]}, "b": {"2:inner": [1], "3:output": np.arange(5)}}
    vals = {"a": scores["1"][[0, 2, 4]], "b": np.concatenate([scores["2:inner"][[1]], scores["3:output"]])}
    for rule, fn in (("l2", lambda v: np.sqrt(np.sum(v ** 2))), ("l1", lambda v: np.sum(np.abs(v))),
                     ("max", lambda v: np.max(np.abs(v)))):
        got = r.group_scores(groups, rule)
        for name in groups:
            assert got[name] == pytest.approx(fn(vals[name]), rel=1e-13)
    assert r.group_scores(groups) == r.group_scores(groups, "l2")
    ls = r.layer_scores("l1")
    np.testing.assert_allclose(ls, [np.sum(v) for v in scores.values()], rtol=1e-13)


def test_group_scores_shared_for_output_from_per_sample():
    """shared: one factor for the group -> per-sample signed sum, reduced, L2 over outputs. Checked for an
    input group against central differences of the network output along the shared factor."""
    net, X, _, r = _result(per_sample=True)
    u = np.array([1.0, 0.0, 1.0])
    h = 1e-6
    D = (net.forward(X * (1 + h * u)) - net.forward(X * (1 - h * u))) / (2 * h)  # (n, K)
    ref = np.sqrt(np.sum(np.mean(np.abs(D), axis=0) ** 2))
    got = r.group_scores({"g": {0: [0, 2]}}, "shared")["g"]
    assert got == pytest.approx(ref, rel=TOL)
    _, _, _, r2 = _result()
    with pytest.raises(ValueError, match="rule"):
        r2.group_scores({"g": {0: [0, 2]}}, "shared")


def test_group_scores_shared_loss_mean_equals_group_sensitivity():
    net, X, y, r = _result(wrt="loss", reduce="mean")
    groups = {"a": {"1": [0, 2]}, "b": {"2:inner": [1], "3:output": [0, 4]}, "c": {"0": [0, 1, 2]}}
    got = r.group_scores(groups, "shared")
    g = {s.name: m[0] for s, m in zip(r.sites, r.matrices)}
    assert got["a"] == pytest.approx(g["1"][0] + g["1"][2], rel=1e-13)
    assert got["b"] == pytest.approx(g["2:inner"][1] + g["3:output"][0] + g["3:output"][4], rel=1e-13)
    gs = sn.group_sensitivity(net, X, y, list(groups.values()))
    np.testing.assert_allclose([got[k] for k in groups], gs, rtol=1e-12)
    # with per_sample as well, the per-sample route gives the same value
    r_ps = sn.sensitivity(net, X, y, wrt="loss", reduce="mean", per_sample=True)
    np.testing.assert_allclose([r_ps.group_scores(groups, "shared")[k] for k in groups], gs, rtol=1e-12)
    ls = r.layer_scores("shared")
    np.testing.assert_allclose(ls, [np.sum(m) for m in r.matrices], rtol=1e-12, atol=1e-15)


def test_group_scores_int_key_of_residual_layer_matches_group_sensitivity():
    """An int key of a residual layer means both of its sites in group_sensitivity / group_curvature
    (``_group_sites`` expands it with select_sites); SensitivityResult.group_scores must read the same
    neurons, otherwise "shared" for wrt="loss", reduce="mean" is not group_sensitivity."""
    net, X, y, r = _result(wrt="loss", reduce="mean")
    group = {2: [0, 1]}
    gs = sn.group_sensitivity(net, X, y, [group])[0]
    g = {s.name: m[0] for s, m in zip(r.sites, r.matrices)}
    assert gs == pytest.approx(g["2:inner"][0] + g["2:inner"][1] + g["2:output"][0] + g["2:output"][1], rel=1e-12)
    assert r.group_scores({"g": group}, "shared")["g"] == pytest.approx(gs, rel=1e-12)


def test_group_scores_accept_the_group_forms_of_group_sensitivity():
    """group_sensitivity takes indices, a boolean mask or None (all neurons) per site; the same group dict
    given to SensitivityResult.group_scores must select the same neurons (a mask must not be read as the
    integer indices 0/1, None must not fail)."""
    net, X, y, r = _result(wrt="loss", reduce="mean")
    mask = np.array([True, False, True, False, True])
    by_idx = {"g": {"1": [0, 2, 4]}}
    by_mask = {"g": {"1": mask}}
    for rule in ("l2", "l1", "max", "shared"):
        assert r.group_scores(by_mask, rule)["g"] == pytest.approx(r.group_scores(by_idx, rule)["g"], rel=1e-14)
    assert r.group_scores({"g": {"1": mask}}, "shared")["g"] == pytest.approx(
        sn.group_sensitivity(net, X, y, [{"1": mask}])[0], rel=1e-12)
    all_idx = {"g": {"2:inner": [0, 1, 2]}}
    for rule in ("l2", "shared"):
        assert r.group_scores({"g": {"2:inner": None}}, rule)["g"] == pytest.approx(
            r.group_scores(all_idx, rule)["g"], rel=1e-14)


def test_group_scores_bad_groups():
    """Out-of-range or negative neuron indices and wrong mask lengths in group_scores raise a ValueError
    naming ``groups`` (as group_sensitivity does), instead of an IndexError or silently wrapping around."""
    _, _, _, r = _result(wrt="loss", reduce="mean", per_sample=True)
    for rule in ("l2", "shared"):
        for bad in ({"1": [99]}, {"1": [-1]}, {"2:inner": np.ones(5, bool)}):
            with pytest.raises(ValueError, match="groups"):
                r.group_scores({"g": bad}, rule)
    with pytest.raises(ValueError):
        r.group_scores({"g": {"9": [0]}})


def test_to_frame():
    pd = pytest.importorskip("pandas")
    _, _, _, r = _result()
    df = r.to_frame()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["rank", "layer", "neuron", "score", "importance"]
    assert len(df) == sum(s.width for s in r.sites)
    assert df["rank"].tolist() == list(range(1, len(df) + 1))
    assert df["score"].is_monotonic_decreasing and df["importance"].iloc[0] == 1.0
    assert set(df["layer"]) == {s.name for s in r.sites}
    assert [tuple(row) for row in df[["layer", "neuron", "score", "importance"]].itertuples(index=False)] == r.ranked()


@pytest.mark.parametrize("reduce", ["mean_abs", "mean"])
def test_plot_writes_png(tmp_path, reduce):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    _, _, _, r = _result(wrt="loss" if reduce == "mean" else "output", reduce=reduce)
    path = tmp_path / "sens.png"
    fig = r.plot(str(path))
    assert path.exists() and path.stat().st_size > 1000
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert fig is not None
    plt.close("all")


# ---------------------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("wrt", ["output", "loss"])
@pytest.mark.parametrize("batch_size", [1, 7, 23, 1000])
def test_iter_per_sample(wrt, batch_size):
    from sensinet.sensitivity import iter_per_sample

    net, X, y = net_and_data("mixed", "tanh", "ce3", seed=31, n=23)
    full = sn.sensitivity(net, X, y, wrt=wrt, sites=[1, "2:inner", 3], per_sample=True)
    starts, chunks = [], []
    for start, sites, values in iter_per_sample(net, X, y, sites=[1, "2:inner", 3], wrt=wrt, batch_size=batch_size):
        assert [s.name for s in sites] == [s.name for s in full.sites]
        m = values[0].shape[0]
        assert 1 <= m <= batch_size and all(v.shape[0] == m for v in values)
        starts.append(start)
        chunks.append(values)
    assert starts == list(range(0, 23, batch_size))
    for i in range(len(full.sites)):
        np.testing.assert_allclose(np.concatenate([c[i] for c in chunks]), full.per_sample[i], rtol=1e-13,
                                   atol=1e-15)


def test_iter_per_sample_bad_batch_size():
    from sensinet.sensitivity import iter_per_sample

    net, X, y = net_and_data("dense", "tanh", "mse1", n=4)
    for bad in (0, -3, 2.5, True, "8"):
        with pytest.raises(ValueError, match="batch_size"):
            next(iter_per_sample(net, X, batch_size=bad))


# ---------------------------------------------------------------------------------------------- imported networks
def test_from_sklearn_regressor():
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    Y = np.c_[np.sin(X[:, 0]) + X[:, 1], X[:, 2] * X[:, 3]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPRegressor(hidden_layer_sizes=(7, 5), activation="tanh", max_iter=150, random_state=0).fit(X, Y)
    net = sn.from_sklearn(model)
    np.testing.assert_allclose(net.predict(X), model.predict(X), rtol=1e-10, atol=1e-12)
    r = sn.sensitivity(net, X, per_sample=True)
    f = sn.sensitivity(net, X, per_sample=True, method="finite_difference")
    assert_sites_close(r, f, TOL, "sklearn")
    # last hidden layer: S = h * coefs_[-1]
    H = np.tanh(np.tanh(X @ model.coefs_[0] + model.intercepts_[0]) @ model.coefs_[1] + model.intercepts_[1])
    S = H[:, None, :] * model.coefs_[2].T[None]
    assert rel_err(r.per_sample[2], S) < 1e-12
    rl = sn.sensitivity(net, X, Y, wrt="loss")
    fl = sn.sensitivity(net, X, Y, wrt="loss", method="finite_difference")
    assert_sites_close(rl, fl, TOL, "sklearn loss")


def test_from_torch_against_autograd_on_the_module(torch):
    """The imported net's output sensitivities equal torch's Jacobian w.r.t. factors multiplied (by forward
    hooks) into the activations of the original module."""
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 2)).double()
    net = sn.from_torch(module)
    X = np.random.default_rng(1).normal(size=(9, 4))
    r = sn.sensitivity(net, X, per_sample=True)
    holder = {}
    module[1].register_forward_hook(lambda m, i, o: o * holder["s"][0])
    module[3].register_forward_hook(lambda m, i, o: o * holder["s"][1])

    def f(s1, s2, x):
        holder["s"] = (s1, s2)
        return module(x * 1.0)

    from torch.func import jacrev, vmap

    ones = (torch.ones(6, dtype=torch.float64), torch.ones(5, dtype=torch.float64))
    J = vmap(jacrev(f, argnums=(0, 1)), in_dims=(None, None, 0))(*ones, torch.from_numpy(X))
    J1, J2 = J[0].detach().numpy(), J[1].detach().numpy()
    assert rel_err(r.matrix(1), np.mean(np.abs(J1), axis=0)) < 1e-10
    assert rel_err(r.per_sample[1], J1) < 1e-10
    assert rel_err(r.per_sample[2], J2) < 1e-10


# ---------------------------------------------------------------------------------------------- torch autograd
def torch_act(torch, name, z, alpha):
    if name == "identity":
        return z
    if name == "relu":
        return torch.relu(z)
    if name == "leaky_relu":
        return torch.where(z > 0, z, alpha * z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "softplus":
        return torch.clamp(z, min=0) + torch.log1p(torch.exp(-torch.abs(z)))
    raise ValueError(name)


def torch_forward_fn(torch, net):
    """forward(x, s) with s a dict site name -> factor tensor multiplying that site's neurons."""
    params = [{k: torch.from_numpy(np.array(v, np.float64)) for k, v in net.layer_parameters(l).items()}
              for l in range(net.n_layers)]

    def forward(x, s):
        if "0" in s:
            x = x * s["0"]
        for l, (kind, _, _, _, act, alpha, _) in enumerate(net.specs):
            i, p = l + 1, params[l]
            if kind == "dense":
                x = torch_act(torch, act, x @ p["W"] + p["b"], alpha)
                if str(i) in s:
                    x = x * s[str(i)]
                continue
            W1, b1 = (p["W1"], p["b1"]) if kind == "residual2" else (p["W"], p["b"])
            h = torch_act(torch, act, x @ W1 + b1, alpha)
            if f"{i}:inner" in s:
                h = h * s[f"{i}:inner"]
            x = x + (h @ p["W2"] if kind == "residual2" else h)
            if f"{i}:output" in s:
                x = x * s[f"{i}:output"]
        return x

    return forward


def torch_loss(torch, loss, out, Y):
    """Per-sample loss (last axis = outputs), as the engine's heads define it."""
    if loss == "mse":
        return torch.mean((out - Y) ** 2, dim=-1)
    if loss == "cross_entropy":
        return torch.sum(Y * (torch.logsumexp(out, dim=-1, keepdim=True) - out), dim=-1)
    return torch.sum(torch.clamp(out, min=0) + torch.log1p(torch.exp(-torch.abs(out))) - Y * out, dim=-1)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("head", ["mse3", "ce3", "bce1"])
def test_sensitivities_match_torch_jacrev(torch, act, head):
    from torch.func import jacrev, vmap

    net, X, y = net_and_data("mixed", act, head, seed=41, n=12)
    Y = one_hot_targets(net, y)
    fwd = torch_forward_fn(torch, net)
    names = [s.name for s in sites_of(net)]
    ones = tuple(torch.ones(s.width, dtype=torch.float64) for s in sites_of(net))

    def out_fn(svals, x):
        return fwd(x, dict(zip(names, svals)))

    def loss_fn(svals, x, yv):
        return torch_loss(torch, net.loss, out_fn(svals, x), yv)

    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    Jout = vmap(jacrev(out_fn), in_dims=(None, 0))(ones, Xt)  # per site (n, K, width)
    Jloss = vmap(jacrev(loss_fn), in_dims=(None, 0, 0))(ones, Xt, Yt)  # per site (n, width)
    for reduce in REDUCES:
        r = sn.sensitivity(net, X, wrt="output", reduce=reduce, per_sample=True)
        rl = sn.sensitivity(net, X, y, wrt="loss", reduce=reduce, per_sample=True)
        for i, name in enumerate(names):
            ref = Jout[i].numpy()
            assert rel_err(r.per_sample[i], ref) < 1e-10, name
            assert rel_err(r.matrices[i], reduce_np(ref, reduce)) < 1e-10, name
            refl = Jloss[i].numpy()[:, None, :]
            assert rel_err(rl.per_sample[i], refl) < 1e-10, name
            assert rel_err(rl.matrices[i], reduce_np(refl, reduce)) < 1e-10, name


def torch_curvature(torch, net, X, Y, group):
    """d2J/dt2 at t = 0 with s = 1 + t u for the sites of ``group`` (site name -> indices / mask / None)."""
    fwd = torch_forward_fn(torch, net)
    widths = {s.name: s.width for s in sites_of(net)}
    t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    s = {}
    for name, idx in group.items():
        u = np.zeros(widths[name])
        if idx is None:
            u[:] = 1
        else:
            u[np.asarray(idx)] = 1
        s[name] = 1 + t * torch.from_numpy(u)
    J = torch.mean(torch_loss(torch, net.loss, fwd(torch.from_numpy(X), s), torch.from_numpy(Y)))
    (g,) = torch.autograd.grad(J, t, create_graph=True)
    (H,) = torch.autograd.grad(g, t)
    return float(g.detach()), float(H.detach())


NAMED_GROUPS = [
    {"1": None},
    {"2:inner": [0, 2]},
    {"2:output": np.array([True, False, True, True, False])},
    {"3:inner": [4], "3:output": [0, 1]},
    {"0": None, "1": [1, 2], "2:inner": [1], "3:output": None},  # every depth in one factor
    {"1": None, "2:inner": None, "2:output": None, "3:inner": None, "3:output": None},
]


@pytest.mark.parametrize("act", SMOOTH)
@pytest.mark.parametrize("head", ["mse3", "ce3", "bce1", "mse1"])
def test_group_curvature_matches_torch_double_backward(torch, act, head):
    net, X, y = net_and_data("mixed", act, head, seed=51, n=11, soft=True)
    Y = one_hot_targets(net, y)
    exact = sn.group_curvature(net, X, y, NAMED_GROUPS)
    grads = sn.group_sensitivity(net, X, y, NAMED_GROUPS)
    ref = [torch_curvature(torch, net, X, Y, g) for g in NAMED_GROUPS]
    for c, dj, (g_ref, h_ref), grp in zip(exact, grads, ref, NAMED_GROUPS):
        assert abs(c - h_ref) <= 1e-9 * abs(h_ref) + 1e-14, (grp, c, h_ref)
        assert abs(dj - g_ref) <= 1e-10 * abs(g_ref) + 1e-15, (grp, dj, g_ref)


def test_group_curvature_relu_multi_layer_matches_torch(torch):
    """Multi-layer groups of a ReLU net: the factor enters yhat polynomially, so the curvature is not
    Gauss-Newton; torch's double backward (relu'' = 0) is the reference inside the activation pattern."""
    net = make_net(3, [sn.Dense(5, "relu"), sn.Residual(5, "relu", hidden=3), sn.Residual(5, "leaky_relu",
                                                                                         weights=1),
                       sn.Dense(3)], loss="cross_entropy", seed=52)
    X, y = random_data(net, 12, seed=52)
    Y = one_hot_targets(net, y)
    exact = sn.group_curvature(net, X, y, NAMED_GROUPS)
    for c, grp in zip(exact, NAMED_GROUPS):
        _, h_ref = torch_curvature(torch, net, X, Y, grp)
        assert abs(c - h_ref) <= 1e-9 * abs(h_ref) + 1e-14, (grp, c, h_ref)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.fixture
def small():
    net, X, y = net_and_data("mixed", "tanh", "mse3", n=6)
    return net, X, y


def test_bad_sites(small):
    net, X, y = small
    for bad in (99, [1, 99], -1, "7", "2:hidden", "1:inner", "4", "x", []):
        with pytest.raises(ValueError, match="sites"):
            sn.sensitivity(net, X, sites=bad)
    for bad in (1.5, [None], [True], True):
        with pytest.raises((TypeError, ValueError), match="sites"):
            sn.sensitivity(net, X, sites=bad)
    # the output layer (a dense head) carries no scaling factors
    with pytest.raises(ValueError, match="sites"):
        sn.sensitivity(net, X, sites=4)


def test_layers_is_the_former_name_of_sites(small):
    net, X, y = small
    with pytest.warns(FutureWarning, match="sites="):
        old = sn.sensitivity(net, X, layers=[1, 2])
    new = sn.sensitivity(net, X, sites=[1, 2])
    for a, b in zip(old.matrices, new.matrices):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="sites: given twice"):
        sn.sensitivity(net, X, sites=[1], layers=[1])


def test_bad_X(small):
    net, X, y = small
    for bad, exc in ((np.empty((0, 3)), ValueError), (X[:, :2], ValueError), (X[0], ValueError),
                     (np.array([["a", "b", "c"]]), TypeError)):
        with pytest.raises(exc, match="X"):
            sn.sensitivity(net, bad)
    for v in (np.nan, np.inf, -np.inf):
        Xb = X.copy()
        Xb[2, 1] = v
        for call in (lambda: sn.sensitivity(net, Xb), lambda: sn.sensitivity(net, Xb, y, wrt="loss"),
                     lambda: sn.group_sensitivity(net, Xb, y, [{1: None}]),
                     lambda: sn.group_curvature(net, Xb, y, [{1: None}]),
                     lambda: sn.sensitivity(net, Xb, method="finite_difference")):
            with pytest.raises(ValueError, match="X"):
                call()


def test_bad_y(small):
    net, X, y = small
    with pytest.raises(ValueError, match="y"):
        sn.sensitivity(net, X, wrt="loss")
    with pytest.raises(ValueError, match="y"):
        sn.sensitivity(net, X, None, wrt="loss", method="finite_difference")
    for bad in (y[:4], y[:, :2], np.ones((6, 4)), y.ravel(), np.where(np.ones_like(y), np.nan, y)):
        with pytest.raises(ValueError, match="y"):
            sn.sensitivity(net, X, bad, wrt="loss")
        with pytest.raises(ValueError, match="y"):
            sn.group_sensitivity(net, X, bad, [{1: None}])
        with pytest.raises(ValueError, match="y"):
            sn.group_curvature(net, X, bad, [{1: None}])
    with pytest.raises(ValueError, match="y"):
        sn.group_sensitivity(net, X, None, [{1: None}])
    ce = make_net(3, [sn.Dense(4, "tanh"), sn.Dense(3)], loss="cross_entropy")
    with pytest.raises(ValueError, match="y"):
        sn.sensitivity(ce, X, np.array([0, 1, 2, 3, 0, 1]), wrt="loss")  # label out of range


def test_bad_choices(small):
    net, X, y = small
    with pytest.raises(ValueError, match="reduce"):
        sn.sensitivity(net, X, reduce="median")
    with pytest.raises(ValueError, match="method"):
        sn.sensitivity(net, X, method="adjoint")
    with pytest.raises(ValueError, match="wrt"):
        sn.sensitivity(net, X, wrt="input")
    with pytest.raises(ValueError, match="method"):
        sn.group_sensitivity(net, X, y, [{1: None}], method="exact")
    with pytest.raises(ValueError, match="method"):
        sn.group_curvature(net, X, y, [{1: None}], method="reverse")
    with pytest.raises(ValueError, match="n_threads"):
        sn.sensitivity(net, X, n_threads=0)
    r = sn.sensitivity(net, X)
    with pytest.raises(ValueError, match="rule"):
        r.group_scores({"g": {1: [0]}}, "mean")
    with pytest.raises(ValueError, match="layer"):
        r.matrix("9")


def test_bad_groups(small):
    net, X, y = small
    for fn in (sn.group_sensitivity, sn.group_curvature):
        for bad in ([{1: [5]}], [{1: [-1]}], [{"2:inner": [3]}], [{"2:output": [0, 5]}], [{2: [4]}],
                    [{1: np.ones(4, bool)}], [{1: np.ones(6, bool)}], [{"2:inner": np.ones(5, bool)}],
                    [{}], [[1, 2]], ["1"]):
            with pytest.raises(ValueError, match="groups"):
                fn(net, X, y, bad)


def test_unknown_site_in_group_names_groups(small):
    """An unknown layer inside a group is a bad ``groups`` argument; the message must name it (functions
    that take ``groups`` have no ``layers`` argument)."""
    net, X, y = small
    for fn in (sn.group_sensitivity, sn.group_curvature):
        for bad in ([{7: None}], [{"2:hidden": [0]}], [{4: None}]):
            with pytest.raises(ValueError, match="groups"):
                fn(net, X, y, bad)


def test_not_a_network(small):
    from sensinet.sensitivity import iter_per_sample

    net, X, y = small
    for obj in (None, "net", net.parameters, net.engine._model):
        with pytest.raises(TypeError, match="net"):
            sn.sensitivity(obj, X)
        with pytest.raises(TypeError, match="net"):
            sn.group_sensitivity(obj, X, y, [{1: None}])
        with pytest.raises(TypeError, match="net"):
            sn.group_curvature(obj, X, y, [{1: None}])
        with pytest.raises(TypeError, match="net"):
            next(iter_per_sample(obj, X))


def test_inputs_not_modified_and_layouts(small):
    """F-order, strided and read-only inputs give the same result and are left untouched."""
    net, X, y = small
    ref = sn.sensitivity(net, X, y, wrt="loss", per_sample=True)
    Xf = np.asfortranarray(X)
    Xs = np.repeat(X, 2, axis=0)[::2]
    Xr = X.copy()
    Xr.flags.writeable = False
    for Xv in (Xf, Xs, Xr, X.tolist()):
        before = np.array(Xv, copy=True)
        r = sn.sensitivity(net, Xv, y, wrt="loss", per_sample=True)
        for a, b in zip(r.per_sample, ref.per_sample):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.asarray(Xv), before)
