"""Training loop semantics: determinism, zero-copy parameters, real-data convergence, blocks, divergence,
callbacks, early stopping, optimizer state and step limits."""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn
from conftest import make_net, random_data, run_python
from sensinet.datasets import Standardizer, load_concrete


@pytest.fixture(scope="module")
def concrete():
    ds = load_concrete()
    return Standardizer().fit_transform(ds.X), Standardizer().fit_transform(ds.y)


def small_net(seed=0, **kw):
    return make_net(3, [sn.Dense(6, "tanh"), sn.Residual(6, "relu", hidden=4), sn.Dense(1)], seed=seed, **kw)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return X, np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]


# ---------------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_same_seed_is_bitwise_reproducible(data, opt):
    X, y = data
    nets = [small_net() for _ in range(3)]
    nets[0].fit(X, y, optimizer=opt, lr=0.01, epochs=5, batch_size=7, seed=123, n_threads=1)
    nets[1].fit(X, y, optimizer=opt, lr=0.01, epochs=5, batch_size=7, seed=123, n_threads=1)
    nets[2].fit(X, y, optimizer=opt, lr=0.01, epochs=5, batch_size=7, seed=124, n_threads=1)
    np.testing.assert_array_equal(nets[0].parameters, nets[1].parameters)
    assert nets[0].history_.loss_curve == nets[1].history_.loss_curve
    assert not np.array_equal(nets[0].parameters, nets[2].parameters)


def test_same_init_seed_same_weights():
    def build(seed):
        return sn.Network(3, [sn.Dense(5, "relu"), sn.Residual(5, "tanh", hidden=2), sn.Dense(1)], seed=seed)

    np.testing.assert_array_equal(build(1).parameters, build(1).parameters)
    assert not np.array_equal(build(1).parameters, build(2).parameters)


def test_no_shuffle_ignores_the_seed(data):
    X, y = data
    a, b = small_net(), small_net()
    a.fit(X, y, optimizer="sgd", epochs=2, batch_size=8, shuffle=False, seed=1)
    b.fit(X, y, optimizer="sgd", epochs=2, batch_size=8, shuffle=False, seed=2)
    np.testing.assert_array_equal(a.parameters, b.parameters)


# ---------------------------------------------------------------------------------------------- zero-copy parameters
def test_parameters_are_a_zero_copy_view(data):
    X, _ = data
    net = small_net()
    p = net.parameters
    assert np.shares_memory(p, net.parameters) and p.flags.writeable
    before = net.forward(X)
    p[net.block_slice(2)] += 1.0  # the head's weights and bias
    after = net.forward(X)
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(net.forward(X), after)
    net.parameters = np.zeros(net.n_params)
    assert np.all(p == 0)  # the setter writes into the same buffer


def test_layer_parameter_views_share_memory():
    net = small_net()
    p = net.parameters
    for l in range(net.n_layers):
        views = net.layer_parameters(l)
        for v in views.values():
            assert np.shares_memory(v, p)
        next(iter(views.values()))[...] = 7.0
    sizes = {l: sum(v.size for v in net.layer_parameters(l).values()) for l in range(net.n_layers)}
    assert [sizes[l] for l in range(net.n_layers)] == list(np.diff(net.offsets))
    W1 = net.layer_parameters(1)["W1"]
    assert W1.shape == (6, 4) and net.layer_parameters(1)["W2"].shape == (4, 6)
    np.testing.assert_array_equal(p[net.offsets[1]:net.offsets[1] + 24], W1.ravel())


def test_parameters_view_outlives_the_network(data):
    X, _ = data
    net = small_net()
    p = net.parameters
    expected = p.copy()
    del net
    np.testing.assert_array_equal(p, expected)


def test_copy_is_independent(data):
    X, y = data
    net = small_net()
    twin = net.copy()
    np.testing.assert_array_equal(twin.parameters, net.parameters)
    assert not np.shares_memory(twin.parameters, net.parameters)
    ref = net.forward(X)
    twin.parameters[:] += 1
    twin.fit(X, y, epochs=2)
    np.testing.assert_array_equal(net.forward(X), ref)
    net.parameters[:] = 0
    assert np.all(twin.parameters != 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_astype_round_trip(data, dtype):
    X, _ = data
    net = make_net(3, [sn.Dense(5, "leaky_relu", alpha=0.2, l2=0.1), sn.Residual(5, "tanh", weights=1),
                       sn.Residual(5, "sigmoid", hidden=2), sn.Dense(2)], loss="cross_entropy")
    other = net.astype(dtype)
    assert other.parameters.dtype == dtype and other.specs == net.specs and other.loss == net.loss
    assert not np.shares_memory(other.parameters, net.parameters)
    back = other.astype(np.float64)
    if dtype == np.float64:
        np.testing.assert_array_equal(back.parameters, net.parameters)
    else:
        np.testing.assert_array_equal(back.parameters, net.parameters.astype(np.float32).astype(np.float64))
        np.testing.assert_allclose(other.forward(X), net.forward(X), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- real data
@pytest.mark.parametrize("optimizer,kw", [
    ("adam", dict(lr=0.01, epochs=30, batch_size=32)),
    (sn.SGD(lr=0.01, momentum=0.9), dict(epochs=30, batch_size=32)),
    (sn.SGD(lr=0.01, momentum=0.9, nesterov=True), dict(epochs=30, batch_size=32)),
    (sn.LBFGS(max_iter=150), {}),
], ids=["adam", "sgd-momentum", "sgd-nesterov", "lbfgs"])
def test_training_reduces_the_loss_on_concrete(concrete, optimizer, kw):
    X, y = concrete
    net = sn.Network(8, [sn.Dense(16, "tanh"), sn.Dense(16, "relu"), sn.Dense(1)], seed=0)
    J0 = net.objective(X, y)
    net.fit(X, y, optimizer=optimizer, seed=0, **kw)
    J1 = net.objective(X, y)
    assert J1 < 0.25 * J0 and J1 < 0.3, (J0, J1)  # a linear model reaches ~0.39 on the standardized target
    curve = net.history_.loss_curve
    assert curve[-1] < curve[0]
    assert np.isfinite(net.parameters).all()


def test_lbfgs_history_and_status(concrete):
    X, y = concrete
    net = sn.Network(8, [sn.Dense(8, "tanh"), sn.Dense(1)], seed=1)
    net.fit(X, y, optimizer=sn.LBFGS(max_iter=30))
    h = net.history_
    assert h.status in ("max_iter", "ftol", "gtol") and h.optimizer == "lbfgs"
    assert np.all(np.diff(h.loss_curve) <= 0)  # every accepted step decreases J (sufficient decrease)
    assert h.loss_curve[-1] == pytest.approx(net.objective(X, y), rel=1e-12)


# ---------------------------------------------------------------------------------------------- blocks
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("block", [(1, 1), (0, 1), (2, 2)])
def test_block_training_changes_only_that_slice(data, optimizer, block):
    X, y = data
    net = small_net()
    before = net.parameters.copy()
    net.fit(X, y, optimizer=optimizer, epochs=3, batch_size=10, layers=block)
    sl = net.block_slice(block)
    mask = np.zeros(net.n_params, bool)
    mask[sl] = True
    np.testing.assert_array_equal(net.parameters[~mask], before[~mask])
    assert np.any(net.parameters[mask] != before[mask])
    assert net.history_.block == block


def test_block_training_follows_the_block_gradient(data):
    # one full-batch SGD step on a block moves exactly that slice by -lr * (block gradient)
    X, y = data
    net = small_net()
    before = net.parameters.copy()
    _, g = net.loss_and_grad(X, y, layers=(1, 1))
    net.fit(X, y, optimizer=sn.SGD(lr=0.1), epochs=1, batch_size=len(X), shuffle=False, layers=(1, 1))
    sl = net.block_slice((1, 1))
    np.testing.assert_allclose(net.parameters[sl], before[sl] - 0.1 * g, rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------------------------- divergence
def test_divergence_raises_and_keeps_finite_weights(concrete):
    X, y = concrete
    net = sn.Network(8, [sn.Dense(16, "relu"), sn.Dense(1)], seed=0)
    with pytest.raises(sn.DivergenceError):
        net.fit(X, y, optimizer=sn.SGD(lr=1e4), epochs=5, batch_size=32)
    assert net.history_.status == "diverged"
    assert np.isfinite(net.parameters).all()
    assert np.isfinite(net.objective(X, y))
    assert np.isfinite(net.forward(X)).all()


@pytest.mark.parametrize("lr", [1e300, 1e308])
def test_divergence_in_the_last_step_is_detected(data, lr):
    # One full-batch step that blows the weights up: fit must not report "completed" with weights whose
    # objective is not finite.
    X, y = data
    net = small_net()
    try:
        net.fit(X, y, optimizer=sn.SGD(lr=lr), epochs=1, batch_size=len(X), shuffle=False)
    except sn.DivergenceError:
        assert net.history_.status == "diverged"
    assert np.isfinite(net.parameters).all()
    assert np.isfinite(net.objective(X, y)), f"status {net.history_.status!r} with a non-finite objective"


# ---------------------------------------------------------------------------------------------- callbacks
def test_callback_schedule(data):
    X, y = data  # 40 rows, batches of 10: 4 steps per epoch
    calls = []
    small_net().fit(X, y, optimizer="sgd", epochs=3, batch_size=10, callback=lambda i: calls.append(dict(i)),
                    callback_every=3)
    got = [(c["step"], c["epoch"], c["epoch_end"]) for c in calls]
    assert got == [(3, 0, False), (4, 0, True), (6, 1, False), (8, 1, True), (9, 2, False), (12, 2, False),
                   (12, 2, True)]
    assert all(np.isfinite(c["loss"]) for c in calls)


def test_callback_at_epoch_ends_only(data):
    X, y = data
    calls = []
    net = small_net()
    net.fit(X, y, optimizer="adam", epochs=4, batch_size=16, callback=lambda i: calls.append(dict(i)))
    assert [c["epoch"] for c in calls] == [0, 1, 2, 3] and all(c["epoch_end"] for c in calls)
    np.testing.assert_allclose([c["loss"] for c in calls], net.history_.loss_curve, rtol=1e-15)


@pytest.mark.parametrize("every,stop_at,steps", [(0, 2, 12), (5, 5, 5), (1, 4, 4)])
def test_callback_returning_true_stops(data, every, stop_at, steps):
    X, y = data

    def cb(info):
        return info["step"] >= stop_at if every else info["epoch"] >= stop_at

    net = small_net()
    net.fit(X, y, optimizer="sgd", epochs=10, batch_size=10, callback=cb, callback_every=every)
    assert net.history_.status == "stopped"
    assert net.history_.steps == steps


def test_callback_sees_the_current_weights(data):
    # net.parameters inside the callback must be the weights the engine has reached at that point
    X, y = data
    seen = []
    net = small_net()
    net.fit(X, y, optimizer="sgd", epochs=3, batch_size=len(X),
            callback=lambda i: seen.append(net.parameters.copy()))
    assert len(seen) == 3
    np.testing.assert_array_equal(seen[-1], net.parameters)
    assert not np.array_equal(seen[0], seen[1])


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("every,batch,when", [
    (0, 10, lambda i: i["epoch_end"]),
    (3, 10, lambda i: not i["epoch_end"]),
    (1, 40, lambda i: i["step"] >= 2 and not i["epoch_end"]),  # that step poll is also the epoch's last step
    (4, 10, lambda i: not i["epoch_end"]),
], ids=["epoch-end", "mid-epoch", "one-step-epochs", "step-poll-at-epoch-end"])
def test_callback_exception_propagates(data, every, batch, when):
    X, y = data

    def cb(info):
        if when(info):
            raise Boom("from the callback")

    net = small_net()
    with pytest.raises(Boom, match="from the callback"):
        net.fit(X, y, optimizer="adam", epochs=5, batch_size=batch, callback=cb, callback_every=every)
    assert np.isfinite(net.parameters).all()
    assert np.isfinite(net.forward(X)).all()  # still usable


# These run in a child process: a deadlock there fails the test (with the child's stack) instead of hanging.
CHILD_PRELUDE = """
import faulthandler, numpy as np, sensinet as sn
faulthandler.dump_traceback_later(6, exit=True)
rng = np.random.default_rng(0)
X = rng.normal(size=(120, 3)); y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
Xv = rng.normal(size=(60, 3)); yv = np.sin(2 * Xv[:, 0]) + Xv[:, 1] ** 2 + rng.normal(0, 0.5, 60)
net = sn.Network(3, [sn.Dense(64, "tanh"), sn.Dense(64, "tanh"), sn.Dense(1)], seed=0)
"""


def test_callback_may_use_the_network():
    # a progress callback that evaluates the network (documented use) must not deadlock the engine
    r = run_python(CHILD_PRELUDE + """
vals = []
net.fit(X, y, epochs=3, batch_size=40, callback=lambda i: vals.append(net.objective(X, y)))
assert len(vals) == 3 and np.isfinite(vals).all()
print("OK")
""", timeout=20)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-2000:]


def test_validation_curve():
    r = run_python(CHILD_PRELUDE + """
net.fit(X, y, optimizer="adam", lr=0.01, epochs=4, batch_size=len(X), shuffle=False, validation_data=(Xv, yv))
h = net.history_
assert h.status == "completed" and len(h.val_curve) == 4, h
val = net.objective(Xv, yv)  # the last epoch-end evaluation saw the final weights
assert abs(h.val_curve[-1] - val) <= 1e-12 * val, (h.val_curve, val)
print("OK")
""", timeout=20)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-2000:]


def test_early_stopping_restores_the_best_weights():
    r = run_python(CHILD_PRELUDE + """
net.fit(X, y, optimizer="adam", lr=0.05, epochs=300, batch_size=len(X), shuffle=False,
        validation_data=(Xv, yv), patience=5)
h = net.history_
assert h.status == "early_stopped", h.status
assert h.epochs < 300 and len(h.val_curve) == h.epochs
best = int(np.argmin(h.val_curve))
assert h.best_epoch == best and h.epochs == best + 1 + 5, (h.best_epoch, best, h.epochs)
val = net.objective(Xv, yv)
assert abs(val - h.val_curve[best]) <= 1e-12 * val, (val, h.val_curve[best])
print("OK")
""", timeout=20)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-2000:]


# ---------------------------------------------------------------------------------------------- optimizer state
def test_adam_state_continues_across_fits(data):
    X, y = data
    opt = sn.Adam(lr=0.01)
    a = small_net()
    a.fit(X, y, optimizer=opt, epochs=2, batch_size=len(X), shuffle=False)
    assert opt.t == 2 and opt.state_m is not None and np.any(opt.state_v != 0)
    a.fit(X, y, optimizer=opt, epochs=3, batch_size=len(X), shuffle=False)
    assert opt.t == 5
    b = small_net()
    b.fit(X, y, optimizer=sn.Adam(lr=0.01), epochs=5, batch_size=len(X), shuffle=False)
    np.testing.assert_array_equal(a.parameters, b.parameters)
    c = small_net()  # a fresh Adam each time restarts the moments: a different trajectory
    c.fit(X, y, optimizer=sn.Adam(lr=0.01), epochs=2, batch_size=len(X), shuffle=False)
    c.fit(X, y, optimizer=sn.Adam(lr=0.01), epochs=3, batch_size=len(X), shuffle=False)
    assert not np.array_equal(c.parameters, b.parameters)
    opt.reset()
    assert opt.t == 0 and opt.state_m is None


def test_sgd_momentum_state_continues_across_fits(data):
    X, y = data
    opt = sn.SGD(lr=0.01, momentum=0.9)
    a, b = small_net(), small_net()
    a.fit(X, y, optimizer=opt, epochs=1, batch_size=len(X), shuffle=False)
    a.fit(X, y, optimizer=opt, epochs=2, batch_size=len(X), shuffle=False)
    b.fit(X, y, optimizer=sn.SGD(lr=0.01, momentum=0.9), epochs=3, batch_size=len(X), shuffle=False)
    np.testing.assert_array_equal(a.parameters, b.parameters)


# ---------------------------------------------------------------------------------------------- step limits
@pytest.mark.parametrize("max_steps", [1, 3, 7])
def test_max_steps(data, max_steps):
    X, y = data
    net = small_net()
    net.fit(X, y, optimizer="sgd", epochs=100, batch_size=10, max_steps=max_steps)
    assert net.history_.steps == max_steps
    assert net.history_.epochs == max_steps // 4


def test_max_steps_zero_takes_no_step(data):
    X, y = data
    net = small_net()
    before = net.parameters.copy()
    net.fit(X, y, optimizer="sgd", epochs=5, batch_size=10, max_steps=0)
    assert net.history_.steps == 0
    np.testing.assert_array_equal(net.parameters, before)


def test_zero_epochs_is_a_no_op(data):
    X, y = data
    net = small_net()
    before = net.parameters.copy()
    net.fit(X, y, epochs=0)
    assert net.history_.steps == 0 and net.history_.status == "completed"
    np.testing.assert_array_equal(net.parameters, before)


def test_batch_larger_than_data_is_one_full_batch(data):
    X, y = data
    a, b = small_net(), small_net()
    a.fit(X, y, optimizer="sgd", epochs=2, batch_size=1000, shuffle=False)
    b.fit(X, y, optimizer="sgd", epochs=2, batch_size=len(X), shuffle=False)
    assert a.history_.steps == 2
    np.testing.assert_array_equal(a.parameters, b.parameters)


def test_fit_returns_self_and_history(data):
    X, y = data
    net = small_net()
    assert net.fit(X, y, epochs=2, batch_size=15) is net
    h = net.history_
    assert h.optimizer == "adam" and h.epochs == 2 and h.steps == 6 and len(h.loss_curve) == 2
    assert h.block == (0, net.n_layers - 1) and h.seconds >= 0


@pytest.mark.parametrize("head", ["cross_entropy", "binary_cross_entropy"])
def test_classification_training(head):
    k = 3 if head == "cross_entropy" else 2
    net = make_net(4, [sn.Dense(16, "relu"), sn.Dense(k)], loss=head, seed=0)
    X, _ = random_data(net, n=200, seed=0)
    if head == "cross_entropy":
        y = np.argmax(X[:, :3] + 0.5 * X[:, 3:4], axis=1)
    else:
        y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0], axis=1).astype(float)
    J0 = net.objective(X, y)
    net.fit(X, y, optimizer="adam", lr=0.02, epochs=40, batch_size=20)
    assert net.objective(X, y) < 0.3 * J0
    P = net.predict(X)
    acc = np.mean(P.argmax(1) == y) if head == "cross_entropy" else np.mean((P > 0.5) == y)
    assert acc > 0.9


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_ctrl_c_stops_promptly_with_consistent_weights(optimizer):
    # SIGINT during a long fit (no Python callback): KeyboardInterrupt within a fraction of a second, and
    # the network keeps finite weights that evaluate to a finite loss.
    r = run_python(CHILD_PRELUDE + f"""
import os, signal, threading, time
threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
t0 = time.perf_counter()
try:
    if "{optimizer}" == "lbfgs":
        net.fit(X, y, optimizer=sn.LBFGS(max_iter=10**7, gtol=0, ftol=0))
    else:
        net.fit(X, y, optimizer="adam", epochs=10**7, batch_size=8)
except KeyboardInterrupt:
    waited = time.perf_counter() - t0
    assert waited < 1.5, waited
    assert np.isfinite(net.parameters).all() and np.isfinite(net.objective(X, y))
    print("OK", round(waited, 2))
""", timeout=20)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-2000:]


def test_optimizer_state_pickles_and_old_pickles_load():
    import pickle

    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.random.default_rng(1).normal(size=40)
    net = sn.Network(3, [sn.Dense(4, "tanh"), sn.Dense(1)], seed=0)
    opt = sn.Adam(0.01)
    net.fit(X, y, optimizer=opt, epochs=2, batch_size=8)
    back = pickle.loads(pickle.dumps(opt))
    assert back.t == opt.t == 10 and back.lr == 0.01
    np.testing.assert_array_equal(back.state_m, opt.state_m)
    np.testing.assert_array_equal(back.state_v, opt.state_v)
    # sensinet 0.1 pickled the state as _m, _v, t (and a weak reference that is not restored)
    legacy = sn.Adam.__new__(sn.Adam)
    legacy.__setstate__({"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "_m": opt.state_m.copy(),
                         "_v": opt.state_v.copy(), "t": 10})
    assert legacy.t == 10 and legacy.lr == 0.01
    np.testing.assert_array_equal(legacy.state_m, opt.state_m)
    a, b = net.copy(), net.copy()
    a.fit(X, y, optimizer=opt, epochs=1, batch_size=8, seed=3)
    b.fit(X, y, optimizer=legacy, epochs=1, batch_size=8, seed=3)
    np.testing.assert_array_equal(a.parameters, b.parameters)


# ------------------------------------------------------------------------------------ sample weights
def _weighted_problem(loss, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 3)).astype(dtype)
    if loss == "mse":
        y = rng.normal(size=(30, 2))
    elif loss == "cross_entropy":
        y = rng.integers(0, 3, 30)
    else:
        y = rng.integers(0, 2, (30, 2)).astype(float)
    k = 3 if loss == "cross_entropy" else 2
    net = sn.Network(3, [sn.Dense(5, "tanh"), sn.Dense(k)], loss=loss, dtype=dtype, seed=seed)
    w = rng.integers(0, 4, 30).astype(float)
    w[0] = 1.0
    return net, X, y, w


@pytest.mark.parametrize("loss", ["mse", "cross_entropy", "binary_cross_entropy"])
def test_integer_sample_weights_equal_duplicated_samples(loss):
    net, X, y, w = _weighted_problem(loss)
    rep = np.repeat(np.arange(30), w.astype(int))
    a, b = net.copy(), net.copy()
    # full batch, no shuffling: the weighted mean loss is the mean over the duplicated rows, step for step
    a.fit(X, y, sample_weight=w, optimizer=sn.SGD(0.3), epochs=20, batch_size=30, shuffle=False)
    b.fit(X[rep], np.asarray(y)[rep], optimizer=sn.SGD(0.3), epochs=20, batch_size=len(rep), shuffle=False)
    np.testing.assert_allclose(a.parameters, b.parameters, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a.history_.loss_curve, b.history_.loss_curve, rtol=1e-11)
    # L-BFGS: the first iterations agree to rounding (later ones amplify the last bits through the line search)
    a, b = net.copy(), net.copy()
    a.fit(X, y, sample_weight=w, optimizer=sn.LBFGS(max_iter=2))
    b.fit(X[rep], np.asarray(y)[rep], optimizer=sn.LBFGS(max_iter=2))
    np.testing.assert_allclose(a.parameters, b.parameters, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.history_.loss_curve, b.history_.loss_curve, rtol=1e-12)


def test_unit_weights_change_nothing_and_zero_weights_drop_samples():
    net, X, y, w = _weighted_problem("mse")
    a, b = net.copy(), net.copy()
    a.fit(X, y, sample_weight=np.ones(30), optimizer="adam", epochs=5, batch_size=7, seed=3)
    b.fit(X, y, optimizer="adam", epochs=5, batch_size=7, seed=3)
    np.testing.assert_allclose(a.parameters, b.parameters, rtol=1e-12, atol=1e-14)
    keep = w > 0
    a, b = net.copy(), net.copy()
    a.fit(X, y, sample_weight=keep.astype(float), optimizer=sn.SGD(0.1), epochs=10, batch_size=30, shuffle=False)
    b.fit(X[keep], y[keep], optimizer=sn.SGD(0.1), epochs=10, batch_size=int(keep.sum()), shuffle=False)
    np.testing.assert_allclose(a.parameters, b.parameters, rtol=1e-11, atol=1e-13)
    # a minibatch whose weights are all zero contributes nothing (no NaN from 0 / 0)
    z = np.zeros(30)
    z[-1] = 1.0
    c = net.copy()
    c.fit(X, y, sample_weight=z, optimizer=sn.SGD(0.1), epochs=3, batch_size=10, shuffle=False)
    assert np.all(np.isfinite(c.parameters)) and c.history_.status == "completed"


@pytest.mark.parametrize("bad, exc, msg", [
    (np.ones(29), ValueError, r"sample_weight: expected shape \(30,\)"),
    (-np.ones(30), ValueError, "sample_weight: expected finite weights >= 0"),
    (np.full(30, np.nan), ValueError, "sample_weight: expected finite weights >= 0"),
    (np.zeros(30), ValueError, "sample_weight: expected a positive sum"),
    (np.array(["a"] * 30), TypeError, "sample_weight: expected a numeric array"),
])
def test_bad_sample_weights(bad, exc, msg):
    net, X, y, _ = _weighted_problem("mse")
    with pytest.raises(exc, match=msg):
        net.fit(X, y, sample_weight=bad, epochs=1)


# ------------------------------------------------------------------------------------ initialisation rules
def test_init_rules():
    layers = [sn.Dense(400, "relu"), sn.Dense(300, "tanh"), sn.Residual(300, "relu", hidden=200), sn.Dense(2)]
    bounds = {"he_uniform": lambda i, o: np.sqrt(6 / i), "glorot": lambda i, o: np.sqrt(6 / (i + o)),
              "torch": lambda i, o: 1 / np.sqrt(i)}
    for init, bound in bounds.items():
        net = sn.Network(500, layers, init=init, seed=1)
        assert net.init == init
        for l in range(net.n_layers):
            for name, W in net.layer_parameters(l).items():
                if W.ndim == 2:
                    b = bound(*W.shape)
                    # uniform in [-b, b]: inside the bound, the std of a uniform, no structure
                    assert np.abs(W).max() <= b and np.abs(W).max() > 0.99 * b
                    assert abs(W.std() / (b / np.sqrt(3)) - 1) < 0.02
            biases = [v for k, v in net.layer_parameters(l).items() if v.ndim == 1]
            if init == "torch":  # PyTorch also draws the biases, in the same bound as the weights
                fan_in = net.specs[l].n_in
                assert all(np.abs(v).max() <= 1 / np.sqrt(fan_in) and np.any(v != 0) for v in biases)
            else:
                assert all(not np.any(v) for v in biases)
    auto = sn.Network(500, layers, seed=1)
    he, gl = sn.Network(500, layers, seed=1, init="he_uniform"), sn.Network(500, layers, seed=1, init="glorot")
    # auto: He into the relu layers (and a residual block's first weight), Glorot elsewhere
    np.testing.assert_array_equal(auto.layer_parameters(0)["W"], he.layer_parameters(0)["W"])
    assert np.abs(auto.layer_parameters(1)["W"]).max() <= np.sqrt(6 / 700)
    assert sn.Network(500, layers, seed=1, init="torch").copy().init == "torch"
    with pytest.raises(ValueError, match="init: expected one of"):
        sn.Network(3, [sn.Dense(1)], init="kaiming")


def test_torch_init_matches_pytorch_statistics():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 4096)  # 4096 biases: their std is known to about 1 %
    ours = sn.Network(256, [sn.Dense(4096)], init="torch", seed=0).layer_parameters(0)
    for a, b in ((lin.weight.detach().numpy().T, ours["W"]), (lin.bias.detach().numpy(), ours["b"])):
        assert abs(np.abs(a).max() - np.abs(b).max()) < 0.002 and abs(a.std() - b.std()) / a.std() < 0.05


# ---------------------------------------------------------------------------------------------- trainable masks
def _neuron_mask(net, layer, neurons):
    """Incoming weights and biases of some neurons of ``layer`` and the weights of the next layer that read them."""
    mask = np.zeros(net.n_params, bool)
    v = net.parameter_views(mask, layer)
    v["W"][:, neurons] = True
    v["b"][neurons] = True
    net.parameter_views(mask, layer + 1)["W"][neurons, :] = True
    return mask


def _plain_net(seed=0, dtype=np.float64):
    return make_net(3, [sn.Dense(6, "tanh"), sn.Dense(5, "tanh"), sn.Dense(1)], seed=seed, dtype=dtype)


@pytest.mark.parametrize("opt", [lambda: sn.Adam(lr=0.01), lambda: sn.SGD(lr=0.05),
                                 lambda: sn.SGD(lr=0.05, momentum=0.9), lambda: sn.SGD(lr=0.05, momentum=0.9,
                                                                                       nesterov=True),
                                 lambda: sn.LBFGS(max_iter=5)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_trainable_mask_freezes_the_rest(data, opt, dtype):
    X, y = data
    net = _plain_net(dtype=dtype)
    p0 = net.parameters.copy()
    mask = _neuron_mask(net, 0, [1, 4])
    net.fit(X, y, optimizer=opt(), epochs=3, batch_size=8, trainable=mask)
    d = net.parameters - p0
    np.testing.assert_array_equal(d[~mask], 0)
    assert np.count_nonzero(d[mask]) > 0.9 * mask.sum()
    assert net.objective(X, y) < _plain_net(dtype=dtype).objective(X, y)


def test_masked_adam_step_equals_the_update_rule_on_the_masked_gradient(data):
    """One full-batch step from warm Adam moments: trainable entries follow Adam on the gradient, frozen ones keep
    their values and their moments (a zeroed gradient alone would let the moments decay and move them)."""
    X, y = data
    net = _plain_net()
    opt = sn.Adam(lr=0.01)
    net.fit(X, y, optimizer=opt, epochs=2, batch_size=len(X), shuffle=False)  # warm, non-zero moments everywhere
    p0, m0, v0, t0 = net.parameters.copy(), opt.state_m.copy(), opt.state_v.copy(), opt.t
    _, g = net.loss_and_grad(X, y)
    mask = _neuron_mask(net, 1, [0, 3])
    net.fit(X, y, optimizer=opt, epochs=1, batch_size=len(X), shuffle=False, trainable=mask)
    t = t0 + 1
    m = 0.9 * m0 + 0.1 * g
    v = 0.999 * v0 + 0.001 * g * g
    step = 0.01 / (1 - 0.9 ** t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** t) + 1e-8)
    np.testing.assert_allclose(net.parameters[mask], (p0 - step)[mask], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(net.parameters[~mask], p0[~mask])
    np.testing.assert_allclose(opt.state_m[mask], m[mask], rtol=1e-12, atol=1e-16)
    np.testing.assert_array_equal(opt.state_m[~mask], m0[~mask])
    np.testing.assert_array_equal(opt.state_v[~mask], v0[~mask])
    assert opt.t == t


def test_masked_lbfgs_minimizes_in_the_trainable_subspace(data):
    """L-BFGS on a mask converges to a point where the masked gradient vanishes (the full one does not).

    gtol sits well above this problem's rounding floor: at J = 0.056 a line search cannot resolve decreases
    below ~eps * J, so the masked gradient stalls near 1e-8 (9e-9 with AVX-512 kernels, 2.2e-8 with AVX2).
    1e-6 is reachable at every SIMD width and still 3,000 times below the frozen part's gradient (0.03)."""
    X, y = data
    net = _plain_net()
    mask = _neuron_mask(net, 0, [2])
    net.fit(X, y, optimizer=sn.LBFGS(max_iter=2000, gtol=1e-6, ftol=0.0), trainable=mask)
    assert net.history_.status == "gtol"  # the stopping rule sees the masked (projected) gradient
    _, g = net.loss_and_grad(X, y)
    assert np.abs(g[mask]).max() <= 1e-6
    assert np.abs(g[~mask]).max() > 1e-3


def test_masked_lbfgs_reports_an_unreachable_tolerance_honestly(data):
    """Below the rounding floor (gtol=0) the run stops on the line search or ftol, never claiming gtol, and the
    masked gradient it reached is at that floor."""
    X, y = data
    net = _plain_net()
    mask = _neuron_mask(net, 0, [2])
    net.fit(X, y, optimizer=sn.LBFGS(max_iter=2000, gtol=0.0, ftol=0.0), trainable=mask)
    assert net.history_.status in ("line_search_failed", "ftol")
    _, g = net.loss_and_grad(X, y)
    assert np.abs(g[mask]).max() <= 1e-7


def test_all_true_mask_equals_no_mask(data):
    X, y = data
    a, b = small_net(), small_net()
    a.fit(X, y, optimizer=sn.Adam(lr=0.01), epochs=3, batch_size=8, seed=4)
    b.fit(X, y, optimizer=sn.Adam(lr=0.01), epochs=3, batch_size=8, seed=4, trainable=np.ones(b.n_params, bool))
    # the masked update is a differently compiled expression (select): equal up to the last bit or two
    np.testing.assert_allclose(a.parameters, b.parameters, rtol=1e-13, atol=1e-15)


def test_mask_with_a_block_trains_the_intersection(data):
    X, y = data
    net = _plain_net()
    p0 = net.parameters.copy()
    mask = _neuron_mask(net, 0, [0, 1])  # layer 0 rows/biases and layer 1 rows; train layer 1 only
    net.fit(X, y, epochs=2, layers=1, trainable=mask)
    d = net.parameters - p0
    changed = np.flatnonzero(d)
    assert changed.size and set(changed) <= set(np.flatnonzero(mask[net.block_slice(1)]) + net.offsets[1])


@pytest.mark.parametrize("bad, exc, msg", [
    (lambda n: np.ones(n), TypeError, "trainable: expected a bool array, got dtype float64"),
    (lambda n: np.ones(n + 1, bool), ValueError, r"trainable: expected shape \(\d+,\), one entry per parameter"),
    (lambda n: np.ones((n, 1), bool), ValueError, "trainable: expected shape"),
    (lambda n: np.zeros(n, bool), ValueError, "trainable: no parameter of the trained layers"),
])
def test_bad_trainable_masks(data, bad, exc, msg):
    X, y = data
    net = _plain_net()
    p0 = net.parameters.copy()
    with pytest.raises(exc, match=msg):
        net.fit(X, y, epochs=1, trainable=bad(net.n_params))
    np.testing.assert_array_equal(net.parameters, p0)


@pytest.mark.filterwarnings("error")  # numpy's overflow warning must not leak either
@pytest.mark.parametrize("dtype, big", [(np.float64, 1e307), (np.float32, 1e37)])
def test_sample_weights_whose_sum_overflows_train_like_their_ratios(data, dtype, big):
    """Each weight finite, their sum beyond the dtype: only the ratios matter, so the fit equals the fit with the
    weights divided by ``big`` (to rounding), with finite losses and a real status."""
    X, y = data
    w = np.linspace(1.0, 2.0, len(y))
    a, b = _plain_net(dtype=dtype), _plain_net(dtype=dtype)
    a.fit(X.astype(dtype), y.astype(dtype), epochs=3, batch_size=8, seed=1, sample_weight=w * big)
    b.fit(X.astype(dtype), y.astype(dtype), epochs=3, batch_size=8, seed=1, sample_weight=w)
    assert np.all(np.isfinite(a.history_.loss_curve)) and a.history_.status == "completed"
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(a.parameters, b.parameters, rtol=tol, atol=tol)
    # full batches, where the sum of the weights itself overflows: the same as unit weights
    for opt, kw in (("lbfgs", {}), ("adam", dict(epochs=3, batch_size=len(y)))):
        c, d = _plain_net(dtype=dtype), _plain_net(dtype=dtype)
        c.fit(X.astype(dtype), y.astype(dtype), optimizer=opt, sample_weight=np.full(len(y), big * 10), **kw)
        d.fit(X.astype(dtype), y.astype(dtype), optimizer=opt, **kw)
        # (the weighted mean rounds differently from the plain one; L-BFGS's later iterations amplify that)
        np.testing.assert_allclose(c.history_.loss_curve[:10], d.history_.loss_curve[:10], rtol=tol)


def test_lbfgs_callback_writing_nan_raises_and_keeps_finite_weights(data):
    """The rule of SGD and Adam for L-BFGS too: DivergenceError, and the last finite weights kept."""
    X, y = data
    net = _plain_net()

    def vandal(info):
        if info["epoch"] >= 3:
            net.parameters[:] = np.nan  # in place, through the view (the setter itself refuses NaN)
        return False

    with pytest.raises(sn.DivergenceError, match="callback left non-finite weights"):
        net.fit(X, y, optimizer=sn.LBFGS(max_iter=50), callback=vandal)
    assert np.isfinite(net.parameters).all() and net.history_.status == "diverged"
    assert np.isfinite(net.objective(X, y))


def test_dataset_checks_and_pickles(data):
    """sn.Dataset refuses 0 features and a non-bool copy, and pickles (to joblib / Dask workers) as its arrays:
    the unpickled one trains to the same weights and keeps its arrays read-only."""
    import pickle

    X, y = data
    with pytest.raises(ValueError, match=r"X: expected at least one feature \(column\), got shape \(40, 0\)"):
        sn.Dataset(np.empty((40, 0)), y)
    with pytest.raises(TypeError, match="copy"):
        sn.Dataset(X, y, copy="no")
    d = sn.Dataset(X, y)
    a, b = _plain_net(), _plain_net()
    a.fit(d, epochs=2, seed=0)  # prepared once on the original: the caches must not travel
    back = pickle.loads(pickle.dumps(d))
    b.fit(back, epochs=2, seed=0)
    np.testing.assert_array_equal(a.parameters, b.parameters)
    assert not back.X.flags.writeable and back.n_samples == 40


def test_building_a_deep_network_is_linear_in_depth(monkeypatch):
    """The layer offsets are asked of the engine once, not once per layer (which made building quadratic: 16,000
    layers took 7.5 s); counted, not timed."""
    from sensinet._engine import CpuEngine

    calls = []
    real = CpuEngine.offsets
    monkeypatch.setattr(CpuEngine, "offsets", property(lambda self: calls.append(1) or real.fget(self)))
    net = sn.Network(4, [sn.Dense(4, "relu") for _ in range(2000)] + [sn.Dense(1)], seed=0)
    net.layer_parameters(1500)["W"][...] = 1.0
    assert len(calls) <= 1
    assert net.offsets[-1] == net.n_params and net.offsets[1501] - net.offsets[1500] == 20
