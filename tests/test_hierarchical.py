"""Hierarchical multi-scale optimizer (issue 4): tree descent, block training, work accounting, scoring rules,
stopping rules, robustness, and the multi-start study (serial, joblib, dask, resume)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import sensinet as sn
from sensinet import hierarchical as hz
from sensinet.sensitivity import output_group_curvature, output_sensitivity
from sensinet.experiments import hierarchical as study
from sensinet.experiments.hierarchical import tasks as study_tasks
from sensinet.hierarchical import HierarchicalOptimizer, descend


def _data(n=120, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
    return X, y


def _net(depth=4, width=8, act="tanh", d=3, seed=0):
    return sn.Network(d, [sn.Dense(width, act) for _ in range(depth)] + [sn.Dense(1)], seed=seed)


# ================================================================================================ tree descent
def _compare_from(layer_scores):
    def compare(left, right):
        s = lambda n: float(sum(layer_scores[i] for i in range(n[0], n[1] + 1)))  # noqa: E731
        return s(left), s(right), "first_order"
    return compare


def test_descent_takes_the_larger_child_at_every_level():
    scores = {1: 1.0, 2: 5.0, 3: 2.0, 4: 2.0, 5: 3.0, 6: 3.0, 7: 0.5, 8: 0.1}
    node, score, rule, rnd, path = descend(1, 8, _compare_from(scores))
    # (1-4)=10 > (5-8)=6.6 ; (1-2)=6 > (3-4)=4 ; (2)=5 > (1)=1
    assert node == (2, 2) and score == 5.0 and not rnd and rule == "first_order"
    assert [p[4] for p in path] == [(1, 4), (1, 2), (2, 2)]
    # greedy per level, not the global maximum: a big leaf in the weaker half is not reached
    scores2 = {1: 4.0, 2: 4.0, 3: 6.0, 4: 0.0}
    assert descend(1, 4, _compare_from(scores2))[0] == (2, 2)  # (1-2)=8 > (3-4)=6, then a tie: the upper child
    # ties go to the upper child
    assert descend(1, 2, _compare_from({1: 1.0, 2: 1.0}))[0] == (2, 2)
    # min_block stops the descent early; odd sizes split lower half larger
    assert descend(1, 8, _compare_from(scores), min_block=2)[0] == (1, 2)
    assert descend(1, 5, _compare_from({i: float(i) for i in range(1, 6)}))[0] == (5, 5)
    assert descend(3, 3, _compare_from(scores))[0] == (3, 3)


def test_first_step_picks_the_block_with_the_largest_sensitivity_norm():
    X, y = _data()
    net = _net(depth=4)
    r = sn.sensitivity(net, X, y, sites=[1, 2, 3, 4], wrt="loss", reduce="mean")
    sq = {s.layer: float(np.sum(M ** 2)) for s, M in zip(r.sites, r.matrices)}
    expected = descend(1, 4, _compare_from(sq))[0]
    res = HierarchicalOptimizer(block="both", p_rand=0.0, max_outer=1, random_state=0).run(net, X, y)
    assert res.steps[0].sites == expected
    assert res.steps[0].block == hz.sites_to_layers(*expected, "both", net.n_layers)
    assert math.isclose(res.steps[0].score, sq[expected[0]], rel_tol=1e-9)
    # a constructed case: layer 3 carries the largest ||g||^2, but its half (3-4) must also win at the root
    fake = {1: np.array([0.5, 0.5]), 2: np.array([0.6]), 3: np.array([1.0, 1.0]), 4: np.array([0.1])}
    HierarchicalOptimizer._fake = fake
    orig = HierarchicalOptimizer._site_sensitivities
    try:
        HierarchicalOptimizer._site_sensitivities = lambda self, *a, **k: dict(self._fake)
        res2 = HierarchicalOptimizer(p_rand=0.0, max_outer=1).run(_net(depth=4), X, y)
        assert res2.steps[0].sites == (3, 3) and res2.steps[0].score == pytest.approx(2.0)
        HierarchicalOptimizer._fake = {**fake, 1: np.array([1.5, 1.5])}  # (1-2) = 4.86 > (3-4) = 2.01
        assert HierarchicalOptimizer(p_rand=0.0, max_outer=1).run(_net(depth=4), X, y).steps[0].sites == (1, 1)
    finally:
        HierarchicalOptimizer._site_sensitivities = orig
        del HierarchicalOptimizer._fake


def test_p_rand_one_picks_random_children_reproducibly():
    scores = {i: float(i) for i in range(1, 9)}
    picks = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        node, _, _, rnd, path = descend(1, 8, _compare_from(scores), p_rand=1.0, rng=rng)
        assert rnd and all(p[5] for p in path)
        # replay the documented draws: one random() per level, then integers(2)
        ref = np.random.default_rng(seed)
        lo, hi = 1, 8
        while hi > lo:
            ref.random()
            left, right = hz.split_node(lo, hi)
            lo, hi = (left, right)[int(ref.integers(2))]
        assert node == (lo, hi)
        assert descend(1, 8, _compare_from(scores), p_rand=1.0, rng=np.random.default_rng(seed))[0] == node
        picks.append(node)
    assert len(set(picks)) >= 4  # not always the best leaf (8, 8)
    # in the optimizer: the same seed gives the same block sequence, another seed another one
    X, y = _data()
    runs = [HierarchicalOptimizer(p_rand=1.0, max_outer=6, inner_iters=1, random_state=s).run(_net(), X, y)
            for s in (3, 3, 4)]
    seq = [[st.block for st in r.steps] for r in runs]
    assert seq[0] == seq[1] and seq[0] != seq[2]
    assert all(st.random for st in runs[0].steps)


# ================================================================================================ blocks
@pytest.mark.parametrize("block", hz.BLOCKS)
def test_inner_steps_change_only_the_chosen_block(block):
    X, y = _data()
    net = _net(depth=5)
    for it in range(4):
        before = net.parameters.copy()
        opt = HierarchicalOptimizer(block=block, max_outer=1, p_rand=0.5, random_state=it, inner_iters=2)
        res = opt.run(net, X, y)
        first, last = res.steps[0].block
        sl = net.block_slice(range(first, last + 1))
        diff = net.parameters - before
        assert np.all(diff[:sl.start] == 0) and np.all(diff[sl.stop:] == 0)
        assert np.any(diff[sl] != 0)


# ================================================================================================ neuron level
@pytest.mark.parametrize("block", hz.BLOCKS)
def test_neuron_mask_holds_the_group_parameters(block):
    net = _net(depth=3, width=6)
    for site in range(0, net.n_layers + 1):
        width = net.n_inputs if site == 0 else net.specs[site - 1].n_out
        m = hz.neuron_mask(net, site, 1, min(3, width - 1), block)
        want = np.zeros(net.n_params, bool)
        if block != "outgoing" and site >= 1:
            v = net.parameter_views(want, site - 1)
            v["W"][:, 1:4] = True
            v["b"][1:4] = True
        if block != "incoming" and site < net.n_layers:
            net.parameter_views(want, site)["W"][1:4, :] = True
        np.testing.assert_array_equal(m, want)


@pytest.mark.parametrize("block", hz.BLOCKS)
def test_neuron_level_trains_only_the_chosen_group(block):
    X, y = _data()
    net = _net(depth=4, width=12)
    for it in range(4):
        before = net.parameters.copy()
        res = HierarchicalOptimizer(block=block, min_neurons=3, max_outer=1, p_rand=0.3, random_state=it,
                                    inner_iters=2).run(net, X, y)
        st = res.steps[0]
        lo, hi = st.neurons
        assert st.sites[0] == st.sites[1] and 0 <= lo <= hi and hi - lo + 1 <= 3
        mask = hz.neuron_mask(net, st.sites[0], lo, hi, block)
        diff = net.parameters - before
        assert np.all(diff[~mask] == 0) and np.count_nonzero(diff[mask]) > 0
        assert res.neuron_counts() == {(st.sites[0], lo, hi): 1}


def test_neuron_level_descends_by_the_group_score():
    """Greedy first order: at every level of the layer's neuron tree the half with the larger sum of g^2 wins."""
    X, y = _data()
    net = _net(depth=4, width=16)
    st = HierarchicalOptimizer(min_neurons=2, p_rand=0.0, max_outer=1).run(net.copy(), X, y).steps[0]
    site = st.sites[0]
    g = np.asarray(sn.sensitivity(net, X, y, sites=[site], wrt="loss", reduce="mean").matrices[0][0])
    node = descend(0, g.size - 1, lambda a, b: (float(np.sum(g[a[0]:a[1] + 1] ** 2)),
                                                 float(np.sum(g[b[0]:b[1] + 1] ** 2)), "first_order"), 2)
    assert st.neurons == node[0] and st.score == pytest.approx(node[1], rel=1e-9)
    # the layer level chose the same layer as without the neuron level
    assert HierarchicalOptimizer(p_rand=0.0, max_outer=1).run(net.copy(), X, y).steps[0].sites == st.sites


def test_neuron_level_second_order_uses_the_group_curvature():
    X, y = _data()
    checked = 0
    for seed in range(6):
        net = _net(depth=2, width=8, seed=seed)
        r = HierarchicalOptimizer(min_neurons=4, score="second_order", p_rand=0.0, max_outer=1, inner_iters=1)
        st = r.run(net.copy(), X, y).steps[0]
        site, (lo, hi) = st.sites[0], st.neurons
        halves = ((0, 3), (4, 7))
        H = sn.group_curvature(net, X, y, [{site: np.arange(a, b + 1)} for a, b in halves], method="exact")
        assert (st.rule == "second_order") == bool(np.all(H > 0))
        if st.rule == "second_order":
            g = np.asarray(sn.sensitivity(net, X, y, sites=[site], wrt="loss", reduce="mean").matrices[0][0])
            pred = [float(np.sum(g[a:b + 1])) ** 2 / (2 * h) for (a, b), h in zip(halves, H)]
            assert (lo, hi) == halves[int(np.argmax(pred))] and st.score == pytest.approx(max(pred), rel=1e-8)
            checked += 1
    assert checked >= 1


def test_neuron_level_needs_dense_layers():
    X, y = _data()
    net = sn.Network(3, [sn.Dense(6, "tanh"), sn.Residual(6, "tanh", hidden=4), sn.Dense(1)], seed=0)
    with pytest.raises(ValueError, match="min_neurons: the neuron level needs Dense layers, got a residual2 layer "
                                         "at index 1"):
        HierarchicalOptimizer(min_neurons=2).run(net, X, y)


def test_block_definitions_and_tree_ranges():
    L = 5
    assert hz.sites_to_layers(2, 3, "incoming", L) == (1, 2)
    assert hz.sites_to_layers(2, 3, "outgoing", L) == (2, 3)
    assert hz.sites_to_layers(2, 3, "both", L) == (1, 3)
    assert hz.sites_to_layers(5, 5, "incoming", L) == (4, 4)  # output site -> output layer
    assert hz.sites_to_layers(0, 0, "outgoing", L) == (0, 0)  # input site -> first layer
    net = _net(depth=4)
    assert HierarchicalOptimizer(block="incoming").tree_range(net) == (1, 5)
    assert HierarchicalOptimizer(block="outgoing").tree_range(net) == (0, 4)
    assert HierarchicalOptimizer(block="both").tree_range(net) == (1, 4)
    assert HierarchicalOptimizer(block="incoming", io_sites=False).tree_range(net) == (1, 4)
    # every network layer is reachable in every mode
    for block in hz.BLOCKS:
        lo, hi = HierarchicalOptimizer(block=block).tree_range(net)
        covered = set()
        for i in range(lo, hi + 1):
            f, l_ = hz.sites_to_layers(i, i, block, net.n_layers)
            covered |= set(range(f, l_ + 1))
        assert covered == set(range(net.n_layers))


def test_output_site_sensitivity_and_curvature_match_finite_differences():
    from sensinet.losses import per_sample_loss

    X, y = _data()
    for loss, yy, k in (("mse", y, 1), ("cross_entropy", (y > 0).astype(int), 2),
                        ("binary_cross_entropy", (y > 0).astype(float), 1)):
        net = sn.Network(3, [sn.Dense(6, "tanh"), sn.Dense(k)], loss=loss, seed=1)
        g = output_sensitivity(net, X, yy)
        Y = sn._validation.targets(yy, loss, k, X.shape[0], np.float64)
        Z = net.forward(X)
        for j in range(k):
            def J(t):
                Zs = Z.copy()
                Zs[:, j] *= 1 + t
                return np.mean(per_sample_loss(net.loss, Zs, Y))
            assert math.isclose(g[j], (J(1e-6) - J(-1e-6)) / 2e-6, rel_tol=1e-6, abs_tol=1e-10)
    net = _net(depth=2)
    Z = net.forward(X)
    H = output_group_curvature(net, X, y)
    assert math.isclose(H, 2 * np.mean(Z ** 2), rel_tol=1e-6)  # mse, one output: d2/ds2 mean (sz - y)^2
    # shared with a hidden layer: agrees with a plain second difference of J along the shared factor
    H2 = output_group_curvature(net, X, y, hidden_sites=[2])
    from sensinet.sensitivity import group_curvature
    assert np.isfinite(H2) and H2 != H
    assert group_curvature(net, X, y, [{2: None}], method="exact")[0] != H2


# ================================================================================================ work accounting
def test_work_accounting_formula():
    net = sn.Network(4, [sn.Dense(10, "tanh"), sn.Dense(20, "tanh"), sn.Dense(5, "tanh"), sn.Dense(2)], seed=0)
    c = hz.layer_macs(net)
    assert list(c) == [40, 200, 100, 10]
    full = 3 * c.sum() - c[0]
    assert math.isclose(hz.block_work(net, 0, 3), 1.0)
    # block 1..2: forward of layers 1..3, input grads of layers 2..3, weight grads of layers 1..2
    assert math.isclose(hz.block_work(net, 1, 2), ((200 + 100 + 10) + (100 + 10) + (200 + 100)) / full)
    assert math.isclose(hz.block_work(net, 3, 3), (10 + 0 + 10) / full)
    assert math.isclose(hz.sweep_work(net, 1), (c.sum() + c[1:].sum()) / full)
    assert math.isclose(hz.sweep_work(net, 0), 2 * c.sum() / full)
    assert math.isclose(hz.curvature_work(net, 2), (c.sum() + 3 * c[2:].sum()) / full)
    res = sn.Network(5, [sn.Residual(5, "relu", hidden=7), sn.Dense(1)], seed=0)
    assert list(hz.layer_macs(res)) == [5 * 7 + 7 * 5, 5]
    # one outer iteration: sweep + cached frozen input + inner epochs x block share
    X, _ = _data(n=100, d=4)
    y = np.column_stack([X[:, 0], X[:, 1] ** 2])
    r = HierarchicalOptimizer(p_rand=0.0, max_outer=1, inner_iters=3, batch_size=25).run(net, X, y)
    first, last = r.steps[0].block
    expected = hz.sweep_work(net, 1) + hz.forward_share(c, 0, first - 1) * (first > 0) \
        + 3 * hz.block_work(net, first, last)
    assert math.isclose(r.work, expected, rel_tol=1e-12)
    # the budget is respected
    r = HierarchicalOptimizer(budget=7.5, stall_tol=0).run(_net(), *_data())
    assert r.status == "budget" and r.work <= 7.5 + 1e-9 and r.work > 5.0


# ================================================================================================ second order
def test_second_order_rule_uses_the_curvature(monkeypatch):
    X, y = _data()
    net = _net(depth=2)  # tree (1, 2): one comparison between layer 1 and layer 2
    first = HierarchicalOptimizer(p_rand=0.0, max_outer=1).run(net.copy(), X, y).steps[0]
    other = (2, 2) if first.sites == (1, 1) else (1, 1)
    # mocked curvature: tiny for the first-order loser, huge for the winner -> second order flips the choice
    monkeypatch.setattr(HierarchicalOptimizer, "_curvature",
                        lambda self, net, data, node, th, c: (1e-12 if node == other else 1e12, 0.0))
    s2 = HierarchicalOptimizer(score="second_order", p_rand=0.0, max_outer=1).run(net.copy(), X, y).steps[0]
    assert s2.sites == other and s2.rule == "second_order"
    # a non-positive curvature falls back to the first-order comparison
    monkeypatch.setattr(HierarchicalOptimizer, "_curvature",
                        lambda self, net, data, node, th, c: (-1.0 if node == first.sites else 1.0, 0.0))
    s3 = HierarchicalOptimizer(score="second_order", p_rand=0.0, max_outer=1).run(net.copy(), X, y).steps[0]
    assert s3.sites == first.sites and s3.rule == "first_order"
    monkeypatch.undo()
    # real curvature: the score of the chosen leaf is g_G^2 / (2 H_G) with H_G from group_curvature(exact)
    checked = 0
    for seed in range(10):
        n_s = _net(depth=2, seed=seed)
        st = HierarchicalOptimizer(score="second_order", p_rand=0.0, max_outer=1).run(n_s.copy(), X, y).steps[0]
        H = sn.group_curvature(n_s, X, y, [{1: None}, {2: None}], method="exact")
        assert (st.rule == "second_order") == bool(np.all(H > 0))
        if st.rule == "second_order":
            i = st.sites[0]
            gG = float(np.sum(sn.sensitivity(n_s, X, y, sites=[i], wrt="loss", reduce="mean").matrices[0]))
            assert math.isclose(st.score, gG ** 2 / (2 * H[i - 1]), rel_tol=1e-8)
            checked += 1
    assert checked >= 1
    # the curvature work is charged
    r1 = HierarchicalOptimizer(p_rand=0.0, max_outer=1, inner_iters=1).run(net.copy(), X, y)
    r2 = HierarchicalOptimizer(score="second_order", p_rand=0.0, max_outer=1, inner_iters=1).run(net.copy(), X, y)
    if r1.steps[0].block == r2.steps[0].block:
        assert math.isclose(r2.work - r1.work, hz.curvature_work(net, 1) + hz.curvature_work(net, 2), rel_tol=1e-9)


def test_second_order_with_output_site_runs():
    X, y = _data()
    res = HierarchicalOptimizer(block="incoming", score="second_order", max_outer=3, random_state=0).run(_net(), X, y)
    assert res.n_outer == 3 and all(np.isfinite(s.score) for s in res.steps)


# ================================================================================================ stopping rules
def test_stopping_rules():
    X, y = _data()
    r = HierarchicalOptimizer(tol=1e9).run(_net(), X, y)
    assert r.status == "tol" and r.n_outer == 0 and r.work > 0  # the sweep is charged
    r = HierarchicalOptimizer(stall_window=1, stall_tol=1.0).run(_net(), X, y)
    assert r.status == "stall" and r.n_outer == 1
    r = HierarchicalOptimizer(stall_window=3, stall_tol=1e-300, budget=1000, inner_iters=1, random_state=0,
                              max_outer=40).run(_net(), X, y)
    assert r.status in ("max_outer", "stall")
    r = HierarchicalOptimizer(max_outer=2).run(_net(), X, y)
    assert r.status == "max_outer" and r.n_outer == 2
    r = HierarchicalOptimizer(budget=3.0, stall_tol=0.0).run(_net(), X, y)
    assert r.status == "budget" and r.work <= 3.0
    r = HierarchicalOptimizer(budget=10.0, polish_iters=4, stall_tol=0.0).run(_net(), X, y)
    assert r.polish_work == pytest.approx(4.0) and r.work <= 10.0 + 1e-9 and r.curve[-1][0] == r.work
    calls = []
    r = HierarchicalOptimizer().run(_net(), X, y, callback=lambda info: calls.append(info) or len(calls) >= 2)
    assert r.status == "stopped" and r.n_outer == 2 and calls[0]["epoch_end"]


def test_objective_never_increases_with_a_safe_inner_optimizer():
    X, y = _data()
    r = HierarchicalOptimizer(inner="lbfgs", inner_iters=10, budget=60, stall_tol=0, random_state=0).run(_net(), X, y)
    Js = [r.J0] + [s.J for s in r.steps]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(Js, Js[1:])) and r.n_outer >= 3
    # Adam with a large learning rate can increase J; monotone=True rejects those outer iterations
    r = HierarchicalOptimizer(lr=0.3, monotone=True, budget=40, stall_tol=0, random_state=1).run(_net(), X, y)
    Js = [r.J0] + [s.J for s in r.steps]
    assert all(b <= a for a, b in zip(Js, Js[1:]))
    assert all(s.accepted or s.J == s.J_before for s in r.steps)


# ================================================================================================ options and errors
@pytest.mark.parametrize("kw", [
    {"block": "both_ways"}, {"score": "third"}, {"inner": "rmsprop"}, {"inner_state": "none"}, {"p_rand": -0.1},
    {"p_rand": 1.5}, {"p_rand": "a"}, {"inner_iters": 0}, {"inner_iters": 2.5}, {"lr": 0.0}, {"lr": -1.0},
    {"lr": float("nan")}, {"batch_size": 0}, {"min_block": 0}, {"budget": 0}, {"budget": float("inf")},
    {"max_outer": 0}, {"tol": -1.0}, {"stall_window": 0}, {"stall_tol": -1e-3}, {"polish_iters": -1},
    {"momentum": 2.0}, {"random_state": -1}, {"n_threads": 0}, {"inner_iters": True}, {"min_neurons": 0},
    {"min_neurons": 2.5}, {"min_neurons": 4, "min_block": 2},
])
def test_bad_options_raise_value_error(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        HierarchicalOptimizer(**kw)


@pytest.mark.parametrize("kw", [{"monotone": "yes"}, {"io_sites": 1}])
def test_non_bool_switches_raise_type_error(kw):
    with pytest.raises(TypeError, match=f"{next(iter(kw))}: expected True or False"):
        HierarchicalOptimizer(**kw)


def test_bad_run_arguments():
    X, y = _data()
    opt = HierarchicalOptimizer()
    with pytest.raises(TypeError, match="net"):
        opt.run("net", X, y)
    with pytest.raises(ValueError, match="X"):
        opt.run(_net(), X[:, :2], y)
    with pytest.raises(ValueError, match="y"):
        opt.run(_net(), X, y[:5])
    with pytest.raises(ValueError, match="budget"):
        opt.run(_net(), X, y, budget=-1)
    with pytest.raises(ValueError, match="patience"):
        opt.run(_net(), X, y, patience=3)
    with pytest.raises(ValueError, match="polish_iters"):
        HierarchicalOptimizer(polish_iters=20).run(_net(), X, y, budget=10)
    with pytest.raises(ValueError, match="options"):
        hz.fit_hierarchical(_net(), X, y, 10, 0, bogus=1)
    with pytest.raises(ValueError, match="n_starts"):
        study.run("/nonexistent/never", n_starts=0)
    with pytest.raises(ValueError, match="experiments"):
        study.run("/nonexistent/never", experiments=["bogus"])


def test_divergence_is_raised_with_the_partial_trace_and_recorded_in_the_study(tmp_path):
    X, y = _data()
    net = sn.Network(3, [sn.Dense(8, "identity"), sn.Dense(8, "identity"), sn.Dense(1)], seed=0)
    with pytest.raises(sn.DivergenceError) as info:
        HierarchicalOptimizer(inner="sgd", lr=10.0, random_state=0, budget=20).run(net, X, y)
    assert info.value.result.status == "diverged"
    assert np.isfinite(net.parameters).all()
    t = study.Task("main", "sin3", 2, 8, "identity", 0, "hierarchical", inner="sgd", lr=10.0, budget=10,
                   n_samples=100)
    rec = study.run_task(t)
    assert rec["status"] == "diverged" and np.isfinite(rec["train_mse"])
    rec_bp = study.run_task(study.Task(**{**t.__dict__, "method": "backprop"}))
    assert rec_bp["status"] == "diverged"


# ================================================================================================ API surface
def test_result_table_plot_and_estimator_protocol(tmp_path):
    X, y = _data()
    net = _net()
    res = hz.fit_hierarchical(net, X, y, max_iter=15, random_state=0, p_rand=0.2, inner_iters=2)
    assert res.work <= 15 and res.J < res.J0
    assert sum(res.block_counts().values()) == res.n_outer
    json.dumps(res.to_dict())
    pytest.importorskip("pandas")
    df = res.to_frame()
    assert len(df) == res.n_outer and {"first", "last", "score", "J", "work"} <= set(df.columns)
    pytest.importorskip("matplotlib")
    res.plot(tmp_path / "trace.png")
    assert (tmp_path / "trace.png").stat().st_size > 1000
    # the protocol of the scikit-learn estimators' solver="hierarchical"
    opt = HierarchicalOptimizer(lr=1e-3)
    net = _net()
    Xv, yv = _data(n=40, seed=5)
    out = opt.fit(net, X, y, epochs=20, batch_size=16, shuffle=True, seed=0, validation_data=(Xv, yv),
                  patience=50, tol=0.0, callback=None, progress=False, n_threads=1)
    assert out is opt
    h = net.history_
    assert h.optimizer == "hierarchical" and h.steps == opt.result_.n_outer and h.epochs >= 1
    assert len(h.loss_curve) == h.steps and len(h.val_curve) == h.steps and h.status == "max_iter"


# ================================================================================================ the study
FAST = dict(quick=True, n_starts=2, experiments=("main",), datasets=("sin3",), progress=False, budget=8.0)


def _strip(records):
    keep = ("key", "train_mse", "test_rmse", "work", "status", "n_outer", "blocks")
    return sorted(([r[k] for k in keep if k in r] + [[c[:2] for c in r["curve"]]]) for r in records)


def test_study_runs_end_to_end_and_writes_tables(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "study"
    res = study.run(out, quick=True, n_starts=2, depth_starts=1, variant_starts=1, progress=False, budget=8.0)
    for name in ("summary.md", "table_sin3.csv", "table_sin3.md", "table_yacht.md", "depth.csv", "depth.md",
                 "variants.csv", "variants.md", "records.jsonl", "depth_scaling.png"):
        assert (out / name).exists(), name
    assert list(out.glob("curves_*.png"))
    header = (out / "table_sin3.csv").read_text().splitlines()[0]
    for col in ("hier_mse_mean", "hier_mse_best", "hier_mse_worst", "bp_mse_mean", "hier_test_rmse", "hier_time",
                "hier_work", "wins", "ties", "losses"):
        assert col in header
    md = (out / "summary.md").read_text()
    assert "W/T/L" in md and "sin3" in md and "Depth scaling" in md
    row = res["main"][0]
    assert row["wins"] + row["ties"] + row["losses"] == row["starts"] == 2
    assert abs(row["bp_work"] - 8.0) < 1e-9 and row["hier_work"] <= 8.0 + 1e-9


def test_joblib_parallel_equals_serial(tmp_path):
    serial = study.run(tmp_path / "a", n_jobs=1, figures=False, **FAST)["records"]
    par = study.run(tmp_path / "b", n_jobs=2, figures=False, **FAST)["records"]
    assert _strip(serial) == _strip(par)


@pytest.mark.slow
@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_dask_local_cluster_equals_serial(tmp_path, processes):
    distributed = pytest.importorskip("dask.distributed")
    serial = study.run(tmp_path / "a", n_jobs=1, figures=False, **FAST)["records"]
    # on loopback only; an in-process cluster needs the tcp protocol to bind to a host
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes, host="127.0.0.1",
                                  protocol="tcp://", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask_recs = study.run(tmp_path / "b", scheduler=client, figures=False, **FAST)["records"]
    assert _strip(serial) == _strip(dask_recs)


def test_interrupted_study_resumes_and_skips_finished_runs(tmp_path, monkeypatch):
    out = tmp_path / "s"
    first = study.run(out, figures=False, **FAST)["records"]
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == len(first)
    # an interruption: the last three runs are missing and the one being written is cut off
    (out / "records.jsonl").write_text("\n".join(lines[:-3]) + "\n" + lines[-3][: len(lines[-3]) // 2])
    calls = []
    real = study.run_task
    monkeypatch.setattr(study, "run_task", lambda t, shared=None: calls.append(t) or real(t, shared))
    again = study.run(out, figures=False, **FAST)["records"]
    assert len(calls) == 3
    assert _strip(first) == _strip(again)
    # a crash in the middle keeps the finished runs on disk
    (out / "records.jsonl").unlink()
    n = {"k": 0}

    def crash(t, shared=None):
        n["k"] += 1
        if n["k"] == 3:
            raise KeyboardInterrupt
        return real(t, shared)

    monkeypatch.setattr(study, "run_task", crash)
    with pytest.raises(KeyboardInterrupt):
        study.run(out, figures=False, **FAST)
    assert len((out / "records.jsonl").read_text().splitlines()) == 2


def test_demo_section_prints_a_table(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rows = study.demo_section(tmp_path, dataset="yacht", n_starts=2, budget=10)
    assert len(rows) == 2
    out = capsys.readouterr().out
    assert "wins" in out and "hier MSE" in out


# ================================================================================================ scale experiment
def test_scale_experiment_runs_end_to_end(tmp_path):
    from sensinet.experiments.hierarchical import scale

    res = study.run(tmp_path, quick=True, experiments=["scale"], progress=False, figures=False)
    recs = res["records"]
    cfg = study.study_config(True, 3, None, None, "concrete", None, None)
    n_arch, n_starts = len(cfg["scale_archs"]), cfg["scale_starts"]
    # one backprop per start shared by the variants, and the second baseline at a smaller learning rate
    assert len(recs) == n_arch * n_starts * (len(scale.SCALE_VARIANTS) + 2)
    assert sorted({r["lr"] for r in recs if r["method"] == "backprop"}) == [scale.SCALE_ALT_LR, 1e-3]
    assert all(r["dtype"] == "float32" and r["batch_size"] == 128 for r in recs)
    bp = [r for r in recs if r["method"] == "backprop"]
    assert all(r["every"] == 1 and len(r["curve"]) == int(r["budget"]) + 1 for r in bp)
    for r in recs:
        if r["variant"] == "neuron level":
            assert r["neurons"] and all(hi - lo + 1 <= r["width"] // 4 for lo, hi in r["neurons"])
        elif r["method"] == "hierarchical":
            assert r["neurons"] == []
    rows = res["scale"]
    assert len(rows) == n_arch * len(scale.SCALE_VARIANTS) and all(r["starts"] == n_starts for r in rows)
    assert [p["variant"] for p in res["scale_pooled"]] == list(scale.SCALE_VARIANTS)
    assert all(r["alt_pairs"] == n_starts and r["alt_wins"] + r["alt_losses"] <= n_starts for r in rows)
    by = {(r["arch"], r["start"], r["lr"]): r for r in bp}
    for row in rows:  # the alt columns are the lr 1e-4 runs, not the lr 1e-3 ones
        alt = [by[(row["network"], k, scale.SCALE_ALT_LR)]["train_mse"] for k in range(n_starts)]
        assert row["alt_bp_mse_mean"] == pytest.approx(np.mean(alt))
    assert (tmp_path / "scale.md").exists() and (tmp_path / "scale_pooled.csv").exists()
    assert "Large networks" in (tmp_path / "summary.md").read_text()
    # resumed: nothing reruns and the tables are identical
    again = study.run(tmp_path, quick=True, experiments=["scale"], progress=False, figures=False)
    assert again["scale"] == rows


def test_scale_rows_pair_targets_and_tests():
    """Paired targets, times and the Wilcoxon p-value from hand-made records."""
    from scipy.stats import wilcoxon

    from sensinet.experiments.hierarchical import pairs, scale

    recs = []
    for k in range(6):
        base = dict(experiment="scale", dataset="concrete", arch="8x1024 tanh", inner="adam", start=k, budget=4.0,
                    time=4.0, n_outer=2, lr=1e-3)
        # hierarchical reaches J 0.5 at work 1 (second 1.0); backprop reaches 0.5 + 0.01 k only at its end
        hc = [[0, 1.0, 0.0], [1, 0.5, 1.0], [4, 0.4 - 0.01 * k, 4.0]]
        bc = [[0, 1.0, 0.0], [2, 0.8, 2.0], [4, 0.5 + 0.01 * k, 4.0]]
        recs.append({**base, "method": "hierarchical", "variant": "default", "train_mse": hc[-1][1], "curve": hc,
                     "work": 4.0})
        recs.append({**base, "method": "backprop", "variant": "backprop-adam", "train_mse": bc[-1][1], "curve": bc,
                     "work": 4.0})
    rows = scale.scale_rows(pairs.pair_records(recs), fixed_target=0.45)
    (r,) = rows
    hJ = [0.4 - 0.01 * k for k in range(6)]
    bJ = [0.5 + 0.01 * k for k in range(6)]
    assert r["wins"] == 6 and r["losses"] == 0
    assert r["p_final"] == pytest.approx(wilcoxon(np.array(hJ) - np.array(bJ)).pvalue)
    # paired target = the larger best J = backprop's final 0.5 + 0.01 k, which hierarchical passes at work 1
    assert r["hier_work_to_paired"] == 1 and r["bp_work_to_paired"] == 4
    assert r["hier_s_to_paired"] == 1.0 and r["bp_s_to_paired"] == 4.0
    assert r["hier_reached_fixed"] == 6 and r["bp_reached_fixed"] == 0 and r["hier_s_to_fixed"] == 4.0
    assert r["hier_mse_mean"] == pytest.approx(np.mean(hJ))
    assert r["hier_s_per_outer"] == 2.0
    (p,) = scale.pooled_rows(pairs.pair_records(recs))
    assert p["pairs"] == 6 and p["time_to_paired_ratio_geomean"] == pytest.approx(0.25)


def test_divergence_inside_run_raises_divergence_error_with_the_last_finite_weights():
    """An inner step size that blows the weights up (lr 1e8, ReLU, SGD) is a divergence: DivergenceError with the
    partial result, the network at the last weights with a finite objective, no advice to use float64."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    y = np.sin(X[:, 0]) * 1e3
    net = sn.Network(3, [sn.Dense(8, "relu"), sn.Dense(8, "relu"), sn.Dense(1)], seed=0)
    with pytest.raises(sn.DivergenceError, match="made the objective non-finite; the network keeps the weights before") as info:
        sn.HierarchicalOptimizer(lr=1e8, inner="sgd", random_state=0).run(net, X, y, budget=10)
    assert "float64" not in str(info.value)
    assert info.value.result.status == "diverged" and np.isfinite(info.value.result.curve[-1][1])
    assert np.isfinite(net.objective(X, y)) and np.isfinite(net.parameters).all()
