"""Sensitivity-based layer insertion (issue 5, Schiela et al., arXiv:2311.15995).

References used here, each independent of the one-pass scoring under test:

* the extended network itself: every candidate is inserted explicitly (``LayerInsertion.insert``) and the
  gradient of the new layer's parameters is taken from ``Network.loss_and_grad`` of the extended network,
  sliced with ``block_slice(position)`` (per minibatch for the minibatch score);
* the outputs of the original network (an insertion must not change the function, to 1e-14);
* an un-grown twin trained with the same optimizer (the loss curve must continue through an insertion, and
  the old parameters' first step after it must be the twin's step: the carried optimizer state);
* PyTorch autograd: the whole [5] study run (1850 full-batch GD epochs, identity ReLU layer inserted at 450)
  replayed step by step in float64 from the same initial weights.
"""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn
from conftest import make_net, random_data
from sensinet.insertion import Candidate, InsertionHistory, LayerInsertion

HEADS = {"mse1": ("mse", 1), "mse2": ("mse", 2), "ce3": ("cross_entropy", 3), "bce2": ("binary_cross_entropy", 2)}


# ---------------------------------------------------------------------------------------------- networks
def ff(widths, act="relu", loss="mse", n_out=1, seed=0, n_in=3, dtype=np.float64) -> sn.Network:
    return make_net(n_in, [sn.Dense(w, act) for w in widths] + [sn.Dense(n_out)], loss=loss, seed=seed, dtype=dtype)


def res(blocks=2, act="tanh", loss="mse", n_out=1, seed=0, n_in=3, weights=2) -> sn.Network:
    """A Linear stem Dense(3) + residual blocks of width 3 + a linear head."""
    layers = [sn.Dense(3)] + [sn.Residual(3, act, weights=weights) for _ in range(blocks)] + [sn.Dense(n_out)]
    return make_net(n_in, layers, loss=loss, seed=seed)


NETS = {
    "ff5_relu": lambda loss, k: ff([5], loss=loss, n_out=k),
    "ff44_relu": lambda loss, k: ff([4, 4], loss=loss, n_out=k),
    "ff362_relu": lambda loss, k: ff([3, 6, 2], loss=loss, n_out=k),
    "ff44_tanh": lambda loss, k: ff([4, 4], "tanh", loss=loss, n_out=k),
    "res_tanh": lambda loss, k: res(2, "tanh", loss, k),
    "res_relu": lambda loss, k: res(2, "relu", loss, k),
    "res_identity": lambda loss, k: res(2, "identity", loss, k),
    "res_leaky": lambda loss, k: res(2, "leaky_relu", loss, k),
    "res_sigmoid": lambda loss, k: res(2, "sigmoid", loss, k),
    "res_softplus": lambda loss, k: res(2, "softplus", loss, k),
    "res1_tanh": lambda loss, k: res(2, "tanh", loss, k, weights=1),
}

# (kind, net): identity after ReLU layers; residual2 with any activation (W2 = 0); residual1 when act(0) = 0
CASES = [("identity", "ff5_relu"), ("identity", "ff44_relu"), ("identity", "ff362_relu"),
         ("residual2", "res_tanh"), ("residual2", "res_relu"), ("residual2", "res_sigmoid"),
         ("residual2", "res_softplus"), ("residual2", "ff44_tanh"), ("residual2", "res1_tanh"),
         ("residual1", "res_tanh"), ("residual1", "res_relu"), ("residual1", "res_identity"),
         ("residual1", "res_leaky"), ("residual1", "res1_tanh")]


def layer_grads(net: sn.Network, layer: int, g: np.ndarray) -> dict:
    """The gradient slice of one layer split like ``layer_parameters`` (W, b or W1, b1, W2)."""
    gl = g[net.block_slice(layer)]
    out, o = {}, 0
    for name, v in net.layer_parameters(layer).items():
        out[name] = gl[o:o + v.size].reshape(v.shape)
        o += v.size
    assert o == gl.size
    return out


def explicit_norm2(new: sn.Network, position: int, kind: str, X, y, include_bias: bool) -> float:
    """Squared norm of the inserted layer's gradient in the explicitly extended network."""
    _, g = new.loss_and_grad(X, y)
    d = layer_grads(new, position, g)
    if kind == "residual2":  # W2 = 0 blocks the gradient of W1 and b1 exactly
        assert np.all(d["W1"] == 0) and np.all(d["b1"] == 0)
        return float(np.sum(d["W2"] ** 2) + np.sum(d["W1"] ** 2) + (np.sum(d["b1"] ** 2) if include_bias else 0.0))
    return float(np.sum(d["W"] ** 2) + (np.sum(d["b"] ** 2) if include_bias else 0.0))


def close(a: float, b: float, rtol: float = 1e-10) -> bool:
    return abs(a - b) <= rtol * abs(b) + 1e-300


def gd(net, X, y, lr, epochs, optimizer=None):
    """Full-batch training of a twin; returns its per-epoch losses."""
    net.fit(X, y, optimizer=optimizer or sn.SGD(lr=lr), epochs=epochs, batch_size=len(X), shuffle=False)
    return net.history_.loss_curve


# ================================================================================================ same function
@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_insertion_keeps_the_function_exactly(kind, name, head):
    loss, k = HEADS[head]
    net = NETS[name](loss, k)
    X, _ = random_data(net, n=40, seed=1)
    X = 2.0 * X  # also pushes some pre-activations far out
    li = LayerInsertion(kind=kind)
    cands = li.candidates(net)
    if kind == "identity" or name.startswith("res"):
        assert [c.position for c in cands] == list(range(1, net.n_layers))  # before each block and after the last
    before = net.forward(X)
    theta = net.parameters.copy()
    for c in cands:
        new, _ = li.insert(net, c)
        assert new.n_layers == net.n_layers + 1
        np.testing.assert_allclose(new.forward(X), before, rtol=0, atol=1e-14)
        np.testing.assert_allclose(new.predict(X), net.predict(X), rtol=0, atol=1e-14)
        # the old layers keep their parameters, the new one is neutral
        for l in range(net.n_layers):
            nl = l if l < c.position else l + 1
            np.testing.assert_array_equal(new.parameters[new.block_slice(nl)], net.parameters[net.block_slice(l)])
        v = new.layer_parameters(c.position)
        w = c.width
        if kind == "identity":
            assert new.specs[c.position][:5] == ("dense", w, w, 0, "relu")
            np.testing.assert_array_equal(v["W"], np.eye(w))
            assert np.all(v["b"] == 0)
        elif kind == "residual2":
            assert new.specs[c.position][0] == "residual2"
            np.testing.assert_array_equal(v["W1"], 0.8 * np.eye(w))
            assert np.all(v["b1"] == 0) and np.all(v["W2"] == 0)
        else:
            assert new.specs[c.position][0] == "residual1"
            assert np.all(v["W"] == 0) and np.all(v["b"] == 0)
    np.testing.assert_array_equal(net.parameters, theta)  # the original is untouched


def test_insertion_keeps_the_function_in_float32_and_the_residual_scale():
    net = ff([4, 4], dtype=np.float32)
    X = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    for c in LayerInsertion().candidates(net):
        new, _ = LayerInsertion().insert(net, c)
        assert new.dtype == np.float32
        np.testing.assert_array_equal(new.forward(X), net.forward(X))
    net = res(1, "tanh")
    li = LayerInsertion(kind="residual2", residual_scale=0.5)
    new, _ = li.insert(net, li.candidates(net)[0])
    np.testing.assert_array_equal(new.layer_parameters(1)["W1"], 0.5 * np.eye(3))
    np.testing.assert_allclose(new.forward(X.astype(np.float64)), net.forward(X.astype(np.float64)), atol=1e-14,
                               rtol=0)


def test_metadata_and_classes_travel_with_the_network():
    net = ff([4])
    net.metadata = {"a": 1}
    net.classes_ = np.array([3, 7])
    new, opt = LayerInsertion().insert(net, LayerInsertion().candidates(net)[0], optimizer="sgd")
    assert new.metadata == {"a": 1} and list(new.classes_) == [3, 7]
    assert opt == "sgd"  # a name is passed through (no state to move)


# ================================================================================================ scores
@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_scores_equal_the_explicit_gradient_of_the_inserted_layer(kind, name, head):
    loss, k = HEADS[head]
    net = NETS[name](loss, k)
    X, y = random_data(net, n=50, seed=2)
    theta = net.parameters.copy()
    mb = 16  # batches 16, 16, 16, 2
    for include_bias in (True, False):
        fro = LayerInsertion(kind=kind, include_bias=include_bias).candidates(net, X, y)
        nrm = LayerInsertion(kind=kind, include_bias=include_bias, score="normalized").candidates(net, X, y)
        mbs = LayerInsertion(kind=kind, include_bias=include_bias, score="minibatch",
                             minibatch_size=mb).candidates(net, X, y)
        for c, cn, cm in zip(fro, nrm, mbs):
            assert c.position == cn.position == cm.position and c.kind == kind
            new, _ = LayerInsertion(kind=kind).insert(net, c)
            ref = explicit_norm2(new, c.position, kind, X, y, include_bias)
            assert close(c.score, ref), (c, ref)
            assert close(c.grad_norm2, ref)
            # normalized: divided by the number of virtual parameters (W [+ b]; W1, W2 [+ b1])
            w = c.width
            n_virtual = (2 * w * w if kind == "residual2" else w * w) + (w if include_bias else 0)
            assert c.n_params == cn.n_params == n_virtual
            assert close(cn.score, ref / n_virtual)
            # minibatch: mean over minibatches of the squared norm of the minibatch mean gradient
            per_batch = [explicit_norm2(new, c.position, kind, X[s:s + mb], y[s:s + mb], include_bias)
                         for s in range(0, len(X), mb)]
            assert close(cm.score, float(np.mean(per_batch)))
    np.testing.assert_array_equal(net.parameters, theta)  # scoring makes no update
    if kind == "residual1" and name == "res_relu":  # relu'(0) = 0: a one-weight relu block is insensitive
        assert all(c.score == 0 for c in fro)
    elif kind != "residual2" or name != "res_relu":
        assert all(c.score > 0 for c in fro)


def test_scores_on_a_subset_of_positions_and_without_data():
    net = ff([3, 6, 2])
    X, y = random_data(net, n=30)
    li = LayerInsertion()
    full = {c.position: c.score for c in li.candidates(net, X, y)}
    sub = li.candidates(net, X, y, positions=[3, 1])
    assert [c.position for c in sub] == [3, 1]
    assert [c.score for c in sub] == [full[3], full[1]]
    assert [c.width for c in sub] == [2, 3]
    assert all(c.score == 0 for c in li.candidates(net))


def test_auto_kind():
    assert {c.kind for c in LayerInsertion().candidates(ff([4, 4]))} == {"identity"}
    assert {c.kind for c in LayerInsertion().candidates(res(1))} == {"residual2"}


# ================================================================================================ when and where
def _trained_ff362(seed=0):
    net = ff([3, 6, 2], seed=seed)
    X, y = random_data(net, n=60, seed=3)
    return net, X, y


@pytest.mark.parametrize("choose", ["largest", "smallest"])
def test_choose_picks_the_largest_or_smallest_score(choose):
    net, X, y = _trained_ff362()
    twin = net.copy()
    li = LayerInsertion(at_epochs=[4], choose=choose)
    final, hist = li.fit(net, X, y, epochs=8, optimizer="sgd", lr=0.05)
    gd(twin, X, y, 0.05, 4)
    ref = {c.position: c.score for c in LayerInsertion().candidates(twin, X, y)}
    (ins,) = hist.insertions
    assert ins.epoch == 4 and ins.kind == "identity" and set(ins.scores) == {1, 2, 3}
    for p in ref:
        assert close(ins.scores[p], ref[p], 1e-12)
    assert len(set(ref.values())) == 3
    pick = (max if choose == "largest" else min)(ref, key=ref.get)
    assert ins.position == pick
    widths = [3, 6, 2]
    assert [l.units for l in final.layers[:-1]] == widths[:pick] + [widths[pick - 1]] + widths[pick:]


def test_at_epochs_schedule_several_insertions_and_max_insertions():
    net, X, y = _trained_ff362()
    p0 = net.n_params
    li = LayerInsertion(at_epochs=[12, 5, 9], max_insertions=2)
    final, hist = li.fit(net, X, y, epochs=20, optimizer="sgd", lr=0.05)
    assert [i.epoch for i in hist.insertions] == [5, 9]  # sorted schedule, stops at max_insertions
    assert len(hist.loss) == len(hist.seconds) == len(hist.n_params) == 20
    assert final.n_layers == net.n_layers + 2 == 6
    p1, p2 = hist.insertions[0].n_params_after, hist.insertions[1].n_params_after
    assert p0 < p1 < p2 == final.n_params
    assert hist.n_params == [p0] * 5 + [p1] * 4 + [p2] * 11
    assert np.all(np.diff(hist.seconds) >= 0)
    assert net.n_params == p0  # the argument is trained up to the first insertion, not grown


def test_max_layers_is_respected():
    net, X, y = _trained_ff362()  # 4 layers
    final, hist = LayerInsertion(at_epochs=[2, 4, 6], max_insertions=5, max_layers=5).fit(
        net, X, y, epochs=10, optimizer="sgd", lr=0.05)
    assert len(hist.insertions) == 1 and final.n_layers == 5 and len(hist.loss) == 10
    final, hist = LayerInsertion(at_epochs=[2], max_layers=4).fit(net.copy(), X, y, epochs=5, lr=0.05)
    assert hist.insertions == [] and final.n_layers == 4
    with pytest.raises(ValueError, match="max_layers"):
        LayerInsertion(max_layers=4).insert(net, Candidate(1, "identity", 3))


def test_plateau_rule_triggers_when_the_loss_stalls():
    net, X, y = _trained_ff362()
    li = LayerInsertion(plateau=(5, 1e-6), check_every=5)
    final, hist = li.fit(net, X, y, epochs=30, optimizer="sgd", lr=1e-12)  # the loss does not move
    assert [i.epoch for i in hist.insertions] == [10]  # first check with a full window: after 10 epochs
    assert final.n_layers == 5 and len(hist.loss) == 30


def test_plateau_rule_stays_quiet_while_the_loss_falls():
    net, X, y = _trained_ff362()
    li = LayerInsertion(plateau=(5, 1e-4), check_every=5)
    final, hist = li.fit(net, X, y, epochs=40, optimizer="sgd", lr=0.05)
    L = np.array(hist.loss)
    assert np.all((L[:-5] - L[5:]) / L[:-5] > 1e-4)  # the premise: every 5-epoch window falls enough
    assert hist.insertions == [] and final.n_layers == net.n_layers


def test_plateau_rule_several_insertions():
    net, X, y = _trained_ff362()
    li = LayerInsertion(plateau=(3, 1e-6), check_every=4, max_insertions=3)
    final, hist = li.fit(net, X, y, epochs=30, optimizer="sgd", lr=1e-12)
    assert [i.epoch for i in hist.insertions] == [4, 8, 12] and final.n_layers == 7


def test_score_threshold_rule():
    net, X, y = _trained_ff362()
    final, hist = LayerInsertion(score_threshold=0.0, check_every=3).fit(net.copy(), X, y, epochs=10,
                                                                          optimizer="sgd", lr=0.05)
    assert [i.epoch for i in hist.insertions] == [3]
    assert max(hist.insertions[0].scores.values()) > 0
    final, hist = LayerInsertion(score_threshold=1e300, check_every=3).fit(net.copy(), X, y, epochs=10,
                                                                            optimizer="sgd", lr=0.05)
    assert hist.insertions == [] and final.n_layers == net.n_layers
    # a threshold between the best scores of the first two checks: no insertion at the first, one at the second
    net, X, y = _trained_ff362(seed=2)
    twin = net.copy()
    best = []
    for _ in range(2):
        gd(twin, X, y, 0.05, 3)
        best.append(max(c.score for c in LayerInsertion().candidates(twin, X, y)))
    assert best[1] > best[0]  # the premise (this seed's scores rise from the first check to the second)
    _, hist = LayerInsertion(score_threshold=0.5 * (best[0] + best[1]), check_every=3).fit(
        net, X, y, epochs=12, optimizer="sgd", lr=0.05)
    assert [i.epoch for i in hist.insertions] == [6]
    assert max(hist.insertions[0].scores.values()) == pytest.approx(best[1], rel=1e-12)


# ================================================================================================ optimizer state
def _assert_state_moved(net, new, opt, new_opt, position):
    for l in range(net.n_layers):
        nl = l if l < position else l + 1
        np.testing.assert_array_equal(new_opt.state_m[new.block_slice(nl)], opt.state_m[net.block_slice(l)])
        np.testing.assert_array_equal(new_opt.state_v[new.block_slice(nl)], opt.state_v[net.block_slice(l)])
    assert np.all(new_opt.state_m[new.block_slice(position)] == 0)
    assert np.all(new_opt.state_v[new.block_slice(position)] == 0)
    assert new_opt.state_m.shape == (new.n_params,) and new_opt.t == opt.t


@pytest.mark.parametrize("kind,name", [("identity", "ff362_relu"), ("residual2", "res_tanh"),
                                       ("residual1", "res_tanh")])
@pytest.mark.parametrize("optname", ["adam", "sgd_momentum", "sgd_nesterov"])
def test_optimizer_state_moves_with_the_old_parameters(kind, name, optname):
    net = NETS[name]("mse", 1)
    X, y = random_data(net, n=40, seed=4)
    opt = {"adam": sn.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-7), "sgd_momentum": sn.SGD(lr=0.02, momentum=0.9),
           "sgd_nesterov": sn.SGD(lr=0.02, momentum=0.7, nesterov=True)}[optname]
    net.fit(X, y, optimizer=opt, epochs=3, batch_size=10, shuffle=False)
    assert opt.t == 12 and np.any(opt.state_m != 0)
    li = LayerInsertion(kind=kind)
    for c in li.candidates(net):
        new, new_opt = li.insert(net, c, opt)
        assert new_opt is not opt and type(new_opt) is type(opt)
        if optname == "adam":
            assert (new_opt.lr, new_opt.beta1, new_opt.beta2, new_opt.eps) == (0.01, 0.8, 0.99, 1e-7)
        else:
            assert (new_opt.lr, new_opt.momentum, new_opt.nesterov) == (opt.lr, opt.momentum, opt.nesterov)
        _assert_state_moved(net, new, opt, new_opt, c.position)
        # the old parameters' next step is the un-grown twin's step (same gradient, same state)
        twin, twin_opt = net.copy(), type(opt)(**{k: getattr(opt, k) for k in opt.__dataclass_fields__
                                                  if k not in ("state_m", "state_v", "t")})
        twin_opt.state_m, twin_opt.state_v, twin_opt.t = opt.state_m.copy(), opt.state_v.copy(), opt.t
        twin.fit(X, y, optimizer=twin_opt, epochs=1, batch_size=len(X), shuffle=False)
        grown = new.copy()
        grown.fit(X, y, optimizer=new_opt, epochs=1, batch_size=len(X), shuffle=False)
        for l in range(net.n_layers):
            nl = l if l < c.position else l + 1
            np.testing.assert_allclose(grown.parameters[grown.block_slice(nl)],
                                       twin.parameters[twin.block_slice(l)], rtol=0, atol=1e-14)
        assert new_opt.t == opt.t + 1
    assert opt.t == 12  # the old optimizer is left alone


@pytest.mark.parametrize("optname", ["adam", "sgd"])
def test_reset_optimizer_and_lr_factor(optname):
    net = ff([4, 4])
    X, y = random_data(net, n=30)
    opt = sn.Adam(lr=0.01) if optname == "adam" else sn.SGD(lr=0.02, momentum=0.9)
    net.fit(X, y, optimizer=opt, epochs=2, batch_size=10)
    c = LayerInsertion().candidates(net)[0]
    _, fresh = LayerInsertion(reset_optimizer=True, lr_factor=0.5).insert(net, c, opt)
    assert fresh.state_m is None and fresh.state_v is None and fresh.t == 0
    assert fresh.lr == pytest.approx(0.5 * opt.lr, rel=1e-15)
    new, kept = LayerInsertion(lr_factor=3.0).insert(net, c, opt)
    assert kept.lr == pytest.approx(3.0 * opt.lr, rel=1e-15) and kept.t == opt.t
    _assert_state_moved(net, new, opt, kept, c.position)
    # an optimizer that never stepped: no state to carry
    _, unused = LayerInsertion().insert(net, c, sn.Adam(lr=0.1))
    assert unused.state_m is None and unused.t == 0
    # LBFGS keeps no per-parameter state and is passed through
    lb = sn.LBFGS()
    assert LayerInsertion().insert(net, c, lb)[1] is lb


def test_fit_applies_lr_factor_after_each_insertion():
    net, X, y = _trained_ff362()
    seen = []
    li = LayerInsertion(at_epochs=[2, 4], max_insertions=2, lr_factor=0.5)
    orig = li.insert

    def spy(n, c, o):
        new, opt = orig(n, c, o)
        seen.append(opt.lr)
        return new, opt

    li.insert = spy
    li.fit(net, X, y, epochs=6, optimizer=sn.SGD(lr=0.08))
    assert seen == [0.04, 0.02]


# ================================================================================================ training
@pytest.mark.parametrize("kind,name,optname", [("identity", "ff44_relu", "sgd"), ("residual2", "res_tanh", "sgd"),
                                               ("residual1", "res_tanh", "adam"), ("identity", "ff362_relu", "adam")])
def test_training_continues_from_the_same_function(kind, name, optname):
    net = NETS[name]("mse", 1)
    X, y = random_data(net, n=40, seed=5)
    make = (lambda: sn.SGD(lr=0.05, momentum=0.5)) if optname == "sgd" else (lambda: sn.Adam(lr=0.01))
    twin = net.copy()
    twin_loss = gd(twin, X, y, None, 9, optimizer=make())
    final, hist = LayerInsertion(kind=kind, at_epochs=[6]).fit(net, X, y, epochs=9, optimizer=make())
    # the engine records each full-batch epoch's loss before its step: epoch 7 is the grown net's first loss
    np.testing.assert_allclose(hist.loss[:7], twin_loss[:7], rtol=1e-14, atol=0)
    assert hist.loss[6] == pytest.approx(net.objective(X, y), rel=1e-14)  # net: trained up to the insertion
    assert hist.insertions[0].loss == hist.loss[5]
    assert final.objective(X, y) < hist.loss[6]


def test_determinism_same_seed_same_result():
    net0, X, y = _trained_ff362(seed=7)

    def go(seed):
        li = LayerInsertion(at_epochs=[3], plateau=(2, 1e-3), check_every=2, max_insertions=2, score="minibatch",
                            minibatch_size=8)
        return li.fit(net0.copy(), X, y, epochs=10, optimizer="adam", lr=0.01, batch_size=16, seed=seed)

    (f1, h1), (f2, h2), (f3, h3) = go(3), go(3), go(4)
    assert h1.loss == h2.loss and h1.n_params == h2.n_params
    assert [(i.epoch, i.position, i.scores) for i in h1.insertions] == \
        [(i.epoch, i.position, i.scores) for i in h2.insertions]
    np.testing.assert_array_equal(f1.parameters, f2.parameters)
    assert h3.loss != h1.loss  # the seed drives the minibatch shuffle


def test_validation_error_and_plot(tmp_path):
    net = ff([4], loss="cross_entropy", n_out=3, n_in=2)
    X, y = random_data(net, n=60, seed=1)
    final, hist = LayerInsertion(at_epochs=[4]).fit(net, X[:40], y[:40], epochs=10, lr=0.1,
                                                    validation_data=(X[40:], y[40:]), eval_every=2)
    assert len(hist.val_error) == 5 and all(0 <= e <= 1 for e in hist.val_error)
    assert isinstance(hist, InsertionHistory)
    pytest.importorskip("matplotlib")
    hist.plot(str(tmp_path / "h.png"))
    assert (tmp_path / "h.png").stat().st_size > 1000


# ================================================================================================ PyTorch replay
def test_study_run_matches_torch_step_by_step(torch):
    """[5] relu on the spirals train split, full-batch GD lr 0.2 for 1850 epochs, identity layer inserted after
    epoch 450, replayed in torch float64 from the same initial weights."""
    from sensinet.experiments.insertion import EPOCHS, INSERT_AT, _data, _ff

    X, _, y, _ = _data(0)
    net = _ff([5], 0)
    init = [{k: v.copy() for k, v in net.layer_parameters(l).items()} for l in range(2)]
    final, hist = LayerInsertion(at_epochs=[INSERT_AT]).fit(net, X, y, epochs=EPOCHS, optimizer=sn.SGD(lr=0.2))
    assert [(i.epoch, i.position, i.kind) for i in hist.insertions] == [(450, 1, "identity")]

    def linear(p):
        lin = torch.nn.Linear(*p["W"].shape).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(p["W"].T.copy()))
            lin.bias.copy_(torch.from_numpy(p["b"]))
        return lin

    l1, l2 = linear(init[0]), linear(init[1])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y, dtype=np.int64))
    ce = torch.nn.functional.cross_entropy
    model = torch.nn.Sequential(l1, torch.nn.ReLU(), l2)
    losses = []

    def steps(model, n):
        opt = torch.optim.SGD(model.parameters(), lr=0.2)
        for _ in range(n):
            opt.zero_grad()
            loss = ce(model(Xt), yt)
            loss.backward()
            opt.step()
            losses.append(loss.item())

    steps(model, INSERT_AT)
    mid = linear({"W": np.eye(5), "b": np.zeros(5)})
    model = torch.nn.Sequential(l1, torch.nn.ReLU(), mid, torch.nn.ReLU(), l2)
    model.zero_grad()
    ce(model(Xt), yt).backward()
    score = float(mid.weight.grad.pow(2).sum() + mid.bias.grad.pow(2).sum())
    assert close(hist.insertions[0].scores[1], score, 1e-9)
    steps(model, EPOCHS - INSERT_AT)
    flat = np.concatenate([np.concatenate([m.weight.detach().numpy().T.ravel(), m.bias.detach().numpy()])
                           for m in (l1, mid, l2)])
    np.testing.assert_allclose(final.parameters, flat, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hist.loss, losses, rtol=1e-9, atol=0)
    with torch.no_grad():
        assert final.objective(X, y) == pytest.approx(ce(model(Xt), yt).item(), rel=1e-9)


# ================================================================================================ bad input
def test_identity_insertion_needs_relu():
    net = ff([4, 4], "tanh")
    X, y = random_data(net)
    for li in (LayerInsertion(), LayerInsertion(kind="identity")):
        with pytest.raises(ValueError, match="residual2"):
            li.candidates(net)
        with pytest.raises(ValueError, match="residual2"):
            li.fit(net, X, y, epochs=5)
    with pytest.raises(ValueError, match="residual2"):  # a hand-made candidate is checked too
        LayerInsertion().insert(net, Candidate(1, "identity", 4))
    with pytest.raises(ValueError, match="residual2"):
        LayerInsertion().candidates(ff([4], "leaky_relu"))  # leaky(leaky(z)) != leaky(z)
    assert len(LayerInsertion(kind="residual2").candidates(net)) == 2


@pytest.mark.parametrize("act", ["sigmoid", "softplus"])
def test_one_weight_insertion_needs_act0_zero(act):
    net = res(2, act)
    X, y = random_data(net)
    li = LayerInsertion(kind="residual1")
    for call in (lambda: li.candidates(net), lambda: li.candidates(net, X, y),
                 lambda: li.insert(net, Candidate(1, "residual1", 3)),
                 lambda: LayerInsertion(kind="residual1", at_epochs=[2]).fit(net, X, y, epochs=5)):
        with pytest.raises(ValueError, match=r"act\(0\) = 0"):
            call()
    with pytest.raises(ValueError, match=r"act\(0\) = 0"):
        li.candidates(ff([4], act))
    assert len(LayerInsertion(kind="residual2").candidates(net)) == 3


def test_invalid_positions_and_candidates():
    net = ff([3, 6, 2])
    X, y = random_data(net)
    li = LayerInsertion()
    for bad in ([0], [4], [1, 9], [-1]):
        with pytest.raises(ValueError, match="positions"):
            li.candidates(net, X, y, positions=bad)
    for p in (0, 4, 7, -1):
        with pytest.raises(ValueError, match="position"):
            li.insert(net, Candidate(p, "identity", 3))
    with pytest.raises(ValueError, match="width"):
        li.insert(net, Candidate(2, "identity", 3))  # layer 1 has 6 units
    with pytest.raises(ValueError, match="kind"):
        li.insert(net, Candidate(1, "auto", 3))
    mixed = make_net(3, [sn.Dense(3, "tanh"), sn.Residual(3, "tanh"), sn.Dense(1)])
    with pytest.raises(ValueError, match="identity"):
        LayerInsertion(kind="identity").candidates(mixed)
    with pytest.raises(ValueError, match="no insertion position"):
        LayerInsertion(kind="residual2").candidates(sn.Network(3, [sn.Dense(1)]))


def test_bad_schedule_and_arguments():
    net = ff([4])
    X, y = random_data(net)
    with pytest.raises(ValueError, match="at_epochs"):
        LayerInsertion(at_epochs=[10]).fit(net, X, y, epochs=10)
    with pytest.raises(ValueError, match="at_epochs"):
        LayerInsertion(at_epochs=[3, 50]).fit(net, X, y, epochs=10)
    with pytest.raises(ValueError, match="at_epochs"):
        LayerInsertion(at_epochs=[0])
    with pytest.raises(ValueError, match="epochs"):
        LayerInsertion().fit(net, X, y, epochs=0)
    for kw, name in [({"lr_factor": 0}, "lr_factor"), ({"lr_factor": -1.0}, "lr_factor"),
                     ({"lr_factor": float("nan")}, "lr_factor"), ({"kind": "dense"}, "kind"),
                     ({"score": "l1"}, "score"), ({"choose": "random"}, "choose"), ({"plateau": 5}, "plateau"),
                     ({"plateau": (5,)}, "plateau"), ({"plateau": (0, 0.1)}, "plateau"),
                     ({"plateau": (5, 0.0)}, "plateau"), ({"plateau": (5, -1e-3)}, "plateau"),
                     ({"plateau": ("a", 0.1)}, "plateau"), ({"plateau": (2.5, 0.1)}, "plateau"),
                     ({"plateau": (5, 0.1, 1)}, "plateau"), ({"check_every": 0}, "check_every"),
                     ({"max_insertions": -1}, "max_insertions"), ({"max_layers": 0}, "max_layers"),
                     ({"minibatch_size": 0}, "minibatch_size"), ({"minibatch_size": 2.0}, "minibatch_size")]:
        with pytest.raises(ValueError, match=name):
            LayerInsertion(**kw)
    assert LayerInsertion(plateau=(5, 1e-3)).plateau == (5, 1e-3)


# ================================================================================================ study and demo
def test_study_quick_run_writes_tables_and_figures(tmp_path, capsys):
    from sensinet.experiments import insertion as study

    out = study.run(tmp_path, quick=True, runs=1, configs=["ff5"], progress=False)
    rows = out["rows"]
    assert [r["variant"] for r in rows] == ["[5] + insertion -> [5,5]", "[5] only", "[5,5] from scratch"]
    assert rows[0]["positions"] == "1:1" and rows[1]["positions"] == ""
    assert rows[2]["work_vs_large_from_start"] == 1.0 and rows[1]["work_vs_large_from_start"] < 1.0
    assert all(np.isfinite(r["train_loss_mean"]) and 0 <= r["test_error_mean"] <= 1 for r in rows)
    csv = (tmp_path / "insertion_summary.csv").read_text().splitlines()
    assert csv[0].startswith("config,variant") and len(csv) == 4
    md = (tmp_path / "insertion_summary.md").read_text()
    assert "[5] + insertion -> [5,5]" in md and md.count("\n") == 5
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "insertion_ff5.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="configs"):
        study.run(tmp_path, quick=True, runs=1, configs=["nope"], progress=False)


def test_demo_section(tmp_path, capsys):
    from sensinet.experiments.insertion import demo_section

    r = demo_section(tmp_path)
    assert np.isfinite(r["final_loss"]) and np.isfinite(r["small_loss"])
    text = capsys.readouterr().out
    assert "Layer insertion" in text and "candidate scores at epoch 450" in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "insertion_loss.png").stat().st_size > 1000


def test_presets_follow_the_published_settings():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    res = sn.Network(2, [sn.Dense(3, "tanh"), sn.Residual(3, "tanh", hidden=3), sn.Residual(3, "tanh", hidden=3),
                         sn.Dense(2)], loss="cross_entropy", seed=0)
    # the paper offers a new block only in front of an existing one; v2 and the default also after the last
    assert [c.position for c in LayerInsertion(preset="paper").candidates(res)] == [1, 2]
    assert [c.position for c in LayerInsertion(preset="v2").candidates(res)] == [1, 2, 3]
    assert [c.position for c in LayerInsertion().candidates(res)] == [1, 2, 3]
    ff = sn.Network(2, [sn.Dense(4, "relu"), sn.Dense(4, "relu"), sn.Dense(2)], loss="cross_entropy", seed=0)
    default = {c.position: c for c in LayerInsertion().candidates(ff, X, y)}
    v2 = {c.position: c for c in LayerInsertion(preset="v2").candidates(ff, X, y)}
    paper = {c.position: c for c in LayerInsertion(preset="paper").candidates(ff, X, y)}
    weights_only = {c.position: c for c in LayerInsertion(include_bias=False).candidates(ff, X, y)}
    for p in default:
        assert v2[p].score == pytest.approx(weights_only[p].grad_norm2, rel=1e-14)      # weights only, unscaled
        assert paper[p].score == pytest.approx(v2[p].score / 16, rel=1e-14)             # / numel(V) = 4 x 4
        assert default[p].grad_norm2 >= v2[p].grad_norm2                                # the default adds the bias
    with pytest.raises(ValueError, match="preset: 'paper' sets \\['score'\\] itself"):
        LayerInsertion(preset="paper", score="frobenius")
    with pytest.raises(ValueError, match="preset: expected one of"):
        LayerInsertion(preset="v3")
