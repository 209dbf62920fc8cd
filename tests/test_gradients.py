"""dJ/d(parameters) of the engine against central finite differences in float64."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sensinet as sn
from conftest import (ACTIVATIONS, HEADS, data_away_from_kinks, draw_hidden_layers, fd_gradient, make_net,
                      mixed_layers, np_forward, random_data, rel_err)

FD_TOL = 1e-6


def check_fd(net, X, y, tol=FD_TOL):
    """The engine's gradient matches central finite differences of its own objective."""
    theta = net.parameters.copy()
    loss, g = net.loss_and_grad(X, y)
    assert np.isfinite(loss) and g.shape == (net.n_params,)
    fd = fd_gradient(lambda t: net.loss_and_grad(X, y, theta=t)[0], theta)
    assert np.array_equal(net.parameters, theta), "loss_and_grad(theta=...) must not change the parameters"
    err = rel_err(g, fd)
    assert err < tol, f"relative error {err:.3g} of the gradient against finite differences"
    return g


# ---------------------------------------------------------------------------------------------- activations
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_activation_dense(act):
    net = make_net(3, [sn.Dense(5, act), sn.Dense(4, act), sn.Dense(2)], seed=1)
    X, y = data_away_from_kinks(net, n=10, seed=0)
    check_fd(net, X, y)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_activation_residual(act):
    net = make_net(3, mixed_layers(4, act, n_out=1), seed=2)
    X, y = data_away_from_kinks(net, n=10, seed=0)
    check_fd(net, X, y)


def test_leaky_relu_custom_slope():
    net = make_net(3, [sn.Dense(5, "leaky_relu", alpha=0.3), sn.Residual(5, "leaky_relu", alpha=0.2), sn.Dense(1)])
    X, y = data_away_from_kinks(net, n=10)
    check_fd(net, X, y)


# ---------------------------------------------------------------------------------------------- heads
@pytest.mark.parametrize("head,soft", [(h, False) for h in sorted(HEADS)] + [("ce3", True), ("bce1", True),
                                                                            ("bce2", True)])
def test_every_head(head, soft):
    loss, k = HEADS[head]
    net = make_net(4, [sn.Dense(6, "tanh"), sn.Residual(6, "softplus", hidden=3), sn.Dense(k)], loss=loss, seed=3)
    X, y = random_data(net, n=15, seed=4, soft=soft)
    check_fd(net, X, y)


def test_cross_entropy_saturated_logits_gradient_is_finite():
    # logits of +-800 overflow a naive softmax; the log-sum-exp head must stay finite and exact.
    net = make_net(2, [sn.Dense(3)], loss="cross_entropy", bias_scale=0.0)
    W = net.layer_parameters(0)["W"]
    W[:] = [[800.0, -800.0, 0.0], [0.0, 0.0, 0.0]]
    X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    loss, g = net.loss_and_grad(X, np.array([1, 0]))
    assert loss == pytest.approx(0.5 * (1600.0 + 1600.0), rel=1e-12)
    assert np.isfinite(g).all()


@pytest.mark.parametrize("kind", ["dense", "residual2", "residual1"])
def test_each_block_type(kind):
    block = {"dense": sn.Dense(4, "tanh"), "residual2": sn.Residual(4, "tanh", hidden=7, weights=2),
             "residual1": sn.Residual(4, "tanh", weights=1)}[kind]
    net = make_net(4, [block, block, sn.Dense(2)], seed=5)
    X, y = random_data(net, n=9, seed=5)
    check_fd(net, X, y)


def test_residual_as_last_layer():
    net = make_net(3, [sn.Dense(3, "sigmoid"), sn.Residual(3, "tanh", hidden=2)], seed=6)
    X, y = random_data(net, n=8, seed=6)
    check_fd(net, X, y)


# ---------------------------------------------------------------------------------------------- L2
@pytest.mark.parametrize("kind", ["dense", "residual2", "residual1"])
def test_l2_decay(kind):
    mid = {"dense": sn.Dense(4, "softplus", l2=0.3), "residual2": sn.Residual(4, "tanh", hidden=2, l2=0.7),
           "residual1": sn.Residual(4, "sigmoid", weights=1, l2=1.1)}[kind]
    net = make_net(3, [sn.Dense(4, "tanh", l2=0.05), mid, sn.Dense(1, l2=0.2)], seed=7)
    X, y = random_data(net, n=10, seed=7)
    g = check_fd(net, X, y)
    # The L2 part of J is sum_l l2/2 ||W||^2 over every weight matrix, biases excluded.
    reg = 0.0
    for l, (_, _, _, _, _, _, l2) in enumerate(net.specs):
        reg += 0.5 * l2 * sum(np.sum(v ** 2) for v in net.layer_parameters(l).values() if v.ndim == 2)
    plain = make_net(3, [sn.Dense(4, "tanh"), dataclasses.replace(mid, l2=0.0), sn.Dense(1)], seed=7)
    plain.parameters = net.parameters
    assert net.loss_and_grad(X, y)[0] == pytest.approx(plain.loss_and_grad(X, y)[0] + reg, rel=1e-13)
    assert not np.allclose(g, plain.loss_and_grad(X, y)[1])


# ---------------------------------------------------------------------------------------------- float32
@pytest.mark.parametrize("head", ["mse3", "ce3", "bce2"])
@pytest.mark.parametrize("act", ["tanh", "relu", "softplus"])
def test_float32_gradient_matches_float64(head, act):
    loss, k = HEADS[head]
    net64 = make_net(4, mixed_layers(5, act, n_out=k), loss=loss, seed=8)
    net32 = net64.astype(np.float32)
    net64 = net32.astype(np.float64)  # the very same (float32-representable) weights in both
    assert net32.parameters.dtype == np.float32
    X, y = data_away_from_kinks(net64, n=20, seed=8, margin=1e-2)
    X = X.astype(np.float32).astype(np.float64)
    l32, g32 = net32.loss_and_grad(X, y)
    l64, g64 = net64.loss_and_grad(X, y)
    assert g32.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    assert rel_err(g32, g64) < 1e-4


# ---------------------------------------------------------------------------------------------- blocks
@pytest.fixture(scope="module")
def deep_net():
    net = make_net(3, [sn.Dense(5, "tanh", l2=0.1), sn.Residual(5, "softplus", hidden=3, l2=0.2),
                       sn.Residual(5, "sigmoid", weights=1), sn.Dense(4, "leaky_relu"), sn.Dense(2, l2=0.05)],
                   seed=9)
    X, y = data_away_from_kinks(net, n=17, seed=9)
    return net, X, y


def _blocks(n):
    return [(a, b) for a in range(n) for b in range(a, n)]


@pytest.mark.parametrize("block", _blocks(5))
def test_block_gradient_is_the_slice_of_the_full_gradient(deep_net, block):
    net, X, y = deep_net
    loss, g = net.loss_and_grad(X, y)
    bl, bg = net.loss_and_grad(X, y, layers=block)
    sl = net.block_slice(block)
    assert sl == slice(net.offsets[block[0]], net.offsets[block[1] + 1])
    assert bg.shape == (sl.stop - sl.start,)
    assert bl == pytest.approx(loss, rel=1e-12, abs=0)
    assert rel_err(bg, g[sl]) < 1e-12


@pytest.mark.parametrize("layers,block", [(2, (2, 2)), (-1, (4, 4)), ([1, 2, 3], (1, 3)), (range(0, 2), (0, 1)),
                                          ((3, 1, 2), (1, 3))])
def test_block_spellings(deep_net, layers, block):
    net, X, y = deep_net
    assert net.block_slice(layers) == net.block_slice(block)
    np.testing.assert_array_equal(net.loss_and_grad(X, y, layers=layers)[1], net.loss_and_grad(X, y, layers=block)[1])


def test_block_gradient_with_fd(deep_net):
    net, X, y = deep_net
    sl = net.block_slice((1, 2))
    theta = net.parameters.copy()

    def f(tb):
        t = theta.copy()
        t[sl] = tb
        return net.loss_and_grad(X, y, theta=t)[0]

    _, bg = net.loss_and_grad(X, y, layers=(1, 2))
    assert rel_err(bg, fd_gradient(f, theta[sl])) < FD_TOL


# ---------------------------------------------------------------------------------------------- theta=
def test_theta_argument_equals_setting_parameters(deep_net):
    net, X, y = deep_net
    net = net.copy()
    other = np.random.default_rng(0).normal(0, 0.5, net.n_params)
    saved = net.parameters.copy()
    l_t, g_t = net.loss_and_grad(X, y, theta=other)
    lb_t, gb_t = net.loss_and_grad(X, y, theta=other, layers=(2, 3))
    np.testing.assert_array_equal(net.parameters, saved)
    net.parameters = other
    l_s, g_s = net.loss_and_grad(X, y)
    lb_s, gb_s = net.loss_and_grad(X, y, layers=(2, 3))
    assert l_t == l_s and lb_t == lb_s
    np.testing.assert_array_equal(g_t, g_s)
    np.testing.assert_array_equal(gb_t, gb_s)
    # list / float32 / non-contiguous theta are converted
    np.testing.assert_array_equal(net.loss_and_grad(X, y, theta=list(other))[1], g_s)
    doubled = np.repeat(other, 2)[::2]
    np.testing.assert_array_equal(net.loss_and_grad(X, y, theta=doubled)[1], g_s)


def test_threads_give_the_same_gradient(deep_net):
    net, X, y = deep_net
    l1, g1 = net.loss_and_grad(X, y, n_threads=1)
    l2, g2 = net.loss_and_grad(X, y, n_threads=2)
    assert l2 == pytest.approx(l1, rel=1e-14)
    assert rel_err(g2, g1) < 1e-13


def test_objective_equals_loss_and_grad(deep_net):
    net, X, y = deep_net
    assert net.objective(X, y) == net.loss_and_grad(X, y)[0]


def test_scipy_lbfgsb_with_loss_and_grad():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    net = make_net(2, [sn.Dense(6, "tanh"), sn.Dense(1)], seed=10)
    rng = np.random.default_rng(10)
    X = rng.uniform(-2, 2, size=(40, 2))
    y = np.sin(X[:, 0]) * X[:, 1]
    x0 = net.parameters.copy()
    f0 = net.loss_and_grad(X, y)[0]
    res = scipy_optimize.minimize(lambda t: net.loss_and_grad(X, y, theta=t), x0, jac=True, method="L-BFGS-B",
                                  options={"maxiter": 200})
    assert res.fun < 0.2 * f0
    np.testing.assert_array_equal(net.parameters, x0)
    net.parameters = res.x
    assert net.objective(X, y) == pytest.approx(res.fun, rel=1e-12)


# ---------------------------------------------------------------------------------------------- row chunks
@pytest.mark.parametrize("n_inputs", [1, 3])
def test_full_batch_over_several_row_chunks(n_inputs):
    # A wide layer makes the engine process the batch in chunks of 256 rows; the sum over chunks must equal
    # the weighted sum of single-chunk evaluations. With one input the first layer's weight gradient
    # (1 x 256 x 4096, 2.1 MFLOP) accumulates over chunks in the small-matrix kernel, with three in Eigen's.
    net = make_net(n_inputs, [sn.Dense(4096, "tanh"), sn.Dense(2, l2=0.1)], seed=11, bias_scale=0.1)
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(700, n_inputs)), rng.normal(size=(700, 2))
    loss, g = net.loss_and_grad(X, Y)
    parts = [slice(0, 200), slice(200, 450), slice(450, 700)]
    reg = 0.5 * 0.1 * np.sum(net.layer_parameters(1)["W"] ** 2)
    reg_g = np.zeros(net.n_params)
    reg_g[net.block_slice(1)][: 4096 * 2] = 0.1 * net.layer_parameters(1)["W"].ravel()
    acc_l, acc_g = 0.0, np.zeros(net.n_params)
    for p in parts:
        lp, gp = net.loss_and_grad(X[p], Y[p])
        w = (p.stop - p.start) / 700
        acc_l += w * (lp - reg)
        acc_g += w * (gp - reg_g)
    assert loss == pytest.approx(acc_l + reg, rel=1e-12)
    assert rel_err(g, acc_g + reg_g) < 1e-11


# ---------------------------------------------------------------------------------------------- small products
# Products under 4 MFLOP run on the register-blocked kernel (small_gemm.hpp): rows in blocks of 4, columns in
# vectors of 4/8/16 values with a masked last vector. Widths and batch sizes on both sides of every edge.
@pytest.mark.parametrize("width", [2, 3, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 33, 49])
@pytest.mark.parametrize("rows", [1, 3, 13])
def test_widths_across_simd_vector_edges(width, rows):
    layers = [sn.Dense(width, "tanh"), sn.Residual(width, "sigmoid", hidden=width + 1), sn.Residual(width, "softplus"),
              sn.Dense(3)]
    net = make_net(5, layers, seed=width)
    X, y = random_data(net, n=rows, seed=width)
    out, _, _ = np_forward(net, X)
    np.testing.assert_allclose(net.forward(X), out, rtol=1e-12, atol=1e-13)
    check_fd(net, X, y)
    net32 = net.astype(np.float32)
    np.testing.assert_allclose(net32.forward(X.astype(np.float32)), out, rtol=2e-5, atol=2e-5)


# ---------------------------------------------------------------------------------------------- hypothesis
@st.composite
def architectures(draw):
    n_in = draw(st.integers(1, 6))
    depth = draw(st.integers(1, 4))
    loss, k = HEADS[draw(st.sampled_from(sorted(HEADS)))]
    layers = draw_hidden_layers(draw, depth - 1, n_in, l2=(0.0, 0.0, 0.3))
    head_act = "identity" if loss != "mse" else draw(st.sampled_from(ACTIVATIONS))
    layers.append(sn.Dense(k, head_act, l2=draw(st.sampled_from([0.0, 0.1]))))
    return n_in, layers, loss, draw(st.integers(0, 2**16))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(architectures(), st.data())
def test_random_architectures(arch, data):
    n_in, layers, loss, seed = arch
    net = make_net(n_in, layers, loss=loss, seed=seed)
    X, y = data_away_from_kinks(net, n=8, seed=seed)
    g = check_fd(net, X, y)
    a = data.draw(st.integers(0, net.n_layers - 1), label="first")
    b = data.draw(st.integers(a, net.n_layers - 1), label="last")
    # a list of the block's indices (the (first, last) spelling is covered by the block tests above)
    bl, bg = net.loss_and_grad(X, y, layers=list(range(a, b + 1)))
    assert bl == pytest.approx(net.loss_and_grad(X, y)[0], rel=1e-12, abs=0)
    assert rel_err(bg, g[net.offsets[a]:net.offsets[b + 1]]) < 1e-12
