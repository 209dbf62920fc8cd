"""Structural pruning: the smaller network computes what the rules promise, and the scores are what their
definitions say."""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn
from sensinet.pruning import neuron_scores, prunable_groups, prune


def _data(n=128, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]


def _net(seed=0):
    return sn.Network(6, [sn.Dense(12, "tanh"), sn.Dense(10, "relu"), sn.Residual(10, "tanh", hidden=8),
                          sn.Dense(7, "leaky_relu"), sn.Dense(1)], seed=seed)


def test_prunable_groups():
    net = _net()
    names = [g.name for g in prunable_groups(net, inputs=True)]
    # layer 1 feeds a residual block (its width is the block's skip connection): kept whole
    assert names == ["inputs", "layer 0", "layer 2", "layer 3"]


def test_removing_neurons_without_outgoing_weights_keeps_the_function():
    X, y = _data()
    net = _net()
    rng = np.random.default_rng(1)
    for l, name in ((1, "W"), (3, "W2"), (4, "W")):  # rows of what layers 0, 2 (inner) and 3 feed
        W = net.layer_parameters(l if l != 3 else 2)[name]
        W[rng.choice(W.shape[0], 3, replace=False)] = 0.0
    net.layer_parameters(0)["W"][[1, 4]] = 0.0  # two inputs that nothing reads
    small, r = prune(net, X, amount=11, criterion="sensitivity", scope="global", inputs=True)
    assert {k: len(v) for k, v in r.removed.items()} == {"inputs": 2, "layer 0": 3, "layer 2": 3, "layer 3": 3}
    assert small.n_params == r.n_params_after < net.n_params
    np.testing.assert_allclose(small.forward(X[:, r.inputs_kept]), net.forward(X), rtol=0, atol=1e-14)


def test_fold_mean_is_exact_for_constant_neurons():
    X, y = _data()
    net = _net()
    p0, p2, p3 = (net.layer_parameters(l) for l in (0, 2, 3))
    p0["W"][:, [2, 5]] = 0.0  # tanh(0.4): constant neurons of layer 0
    p0["b"][[2, 5]] = 0.4
    p2["W1"][:, [0, 6]] = 0.0  # constant inner neurons of the residual block (feeding a Dense layer)
    p2["b1"][[0, 6]] = -0.3
    p3["W"][:, 1] = 0.0  # a constant leaky-relu neuron
    p3["b"][1] = 0.9
    small, r = prune(net, X, amount=5, criterion="magnitude", scope="global", fold_mean=True)
    assert {k: list(v) for k, v in r.removed.items()} == {"layer 0": [2, 5], "layer 2": [0, 6], "layer 3": [1]}
    np.testing.assert_allclose(small.forward(X), net.forward(X), rtol=0, atol=1e-12)
    assert r.notes == []
    unfolded, _ = prune(net, X, amount=5, criterion="magnitude", scope="global")
    assert np.max(np.abs(unfolded.forward(X) - net.forward(X))) > 1e-3  # the fold is what keeps it exact


def test_scores_follow_their_definitions():
    X, y = _data()
    net = _net()
    net.fit(X, y, epochs=5, seed=0)
    taylor = neuron_scores(net, X, y, "taylor")
    loss = neuron_scores(net, X, y, "loss_sensitivity")
    out = neuron_scores(net, X, None, "sensitivity")
    ps = sn.sensitivity(net, X, y, sites=[1], wrt="loss", per_sample=True)
    np.testing.assert_allclose(taylor["layer 0"], np.mean(np.abs(ps.per_sample[0][:, 0, :]), axis=0), rtol=1e-12)
    # |dJ/ds_j| for single neurons is the group sensitivity of a one-neuron group
    g = sn.group_sensitivity(net, X, y, [{"3:inner": [j]} for j in range(8)])
    np.testing.assert_allclose(loss["layer 2"], np.abs(g), rtol=1e-10)
    S = sn.sensitivity(net, X, sites=[4]).matrices[0]
    np.testing.assert_allclose(out["layer 3"], np.linalg.norm(S, axis=0), rtol=1e-12)
    mag = neuron_scores(net, X, criterion="magnitude")
    np.testing.assert_allclose(mag["layer 3"], np.linalg.norm(net.layer_parameters(3)["W"], axis=0))
    r1, r2 = neuron_scores(net, X, criterion="random", seed=3), neuron_scores(net, X, criterion="random", seed=3)
    assert all(np.array_equal(r1[k], r2[k]) for k in r1)


def test_amount_scope_and_min_width():
    X, y = _data()
    net = _net()
    _, r = prune(net, X, amount=0.5)
    assert {k: len(v) for k, v in r.kept.items()} == {"layer 0": 6, "layer 2": 4, "layer 3": 4}
    _, r = prune(net, X, amount=0.9, min_width=3)
    assert all(len(v) >= 3 for v in r.kept.values())
    _, r = prune(net, X, amount=20, scope="global", min_width=2)
    assert r.n_removed == 20 and all(len(v) >= 2 for v in r.kept.values())
    for name in r.groups:  # kept and removed partition every group
        assert sorted(np.concatenate([r.kept[name], r.removed[name]])) == list(range(len(r.scores[name])))
    small, r0 = prune(net, X, amount=0.0)
    np.testing.assert_array_equal(small.parameters, net.parameters)
    assert "layer 0: 12->12" in repr(r0)


def test_pruned_network_trains_and_keeps_its_device_and_dtype():
    X, y = _data()
    net = _net().astype(np.float32)
    small, r = prune(net, X.astype(np.float32), amount=0.5, criterion="taylor", y=y)
    assert small.dtype == np.float32 and small.device == "cpu"
    small.fit(X, y, epochs=3)
    assert np.isfinite(small.objective(X, y))


@pytest.mark.parametrize("kw, exc, match", [
    (dict(amount=1.0), ValueError, "amount: expected a fraction in"),
    (dict(amount=-0.1), ValueError, "amount: expected a fraction in"),
    (dict(amount=10**6), ValueError, "amount: expected a count in"),
    (dict(amount="half"), ValueError, "amount"),
    (dict(criterion="l1"), ValueError, "criterion: expected one of"),
    (dict(scope="net"), ValueError, "scope: expected one of"),
    (dict(min_width=0), ValueError, "min_width"),
    (dict(criterion="taylor"), ValueError, "y: criterion='taylor' needs the targets"),
    (dict(fold_mean="yes"), TypeError, "fold_mean"),
])
def test_bad_arguments(kw, exc, match):
    X, _ = _data()
    with pytest.raises(exc, match=match):
        prune(_net(), X, **kw)


def test_pruning_curve_one_shot_and_iterative(tmp_path):
    from sensinet.pruning import pruning_curve

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    net = sn.Network(4, [sn.Dense(16, "relu"), sn.Dense(12, "relu"), sn.Dense(2)], loss="cross_entropy", seed=0)
    net.fit(X, y, epochs=30)
    one = pruning_curve(net, X, y, fractions=[0.25, 0.5, 0.75], criteria=["sensitivity", "random"])
    it = pruning_curve(net, X, y, fractions=[0.25, 0.5, 0.75], criteria=["sensitivity"], schedule="iterative",
                       fine_tune_epochs=2)
    rows = one.rows
    assert [(r["criterion"], r["fraction"]) for r in rows] == [
        ("sensitivity", 0.0), ("random", 0.0), ("sensitivity", 0.25), ("sensitivity", 0.5), ("sensitivity", 0.75),
        ("random", 0.25), ("random", 0.5), ("random", 0.75)]
    base = [r for r in rows if r["fraction"] == 0]
    assert base[0]["loss"] == net.objective(X, y) and base[0]["n_params"] == net.n_params
    sens = [r["n_params"] for r in rows if r["criterion"] == "sensitivity"]
    assert sens == sorted(sens, reverse=True)
    # the iterative schedule reaches the same widths as one shot (16 -> 12, 8, 4 and 12 -> 9, 6, 3)
    assert [r["n_params"] for r in it.rows] == sens
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    ax = one.plot(tmp_path / "curve.png", metric="accuracy")
    assert (tmp_path / "curve.png").stat().st_size > 1000 and ax.get_xlabel() == "parameters kept"
    assert list(one.to_frame().columns)[:4] == ["criterion", "fraction", "n_params", "loss"]
    with pytest.raises(ValueError, match="fractions: expected values in"):
        pruning_curve(net, X, y, fractions=[1.2])
    with pytest.raises(ValueError, match="criteria: expected one of"):
        pruning_curve(net, X, y, criteria=["l0"])


def test_amount_per_group():
    X, _ = _data()
    small, r = prune(_net(), X, amount={"layer 0": 5, "layer 3": 2})
    assert {k: len(v) for k, v in r.removed.items()} == {"layer 0": 5, "layer 2": 0, "layer 3": 2}
    with pytest.raises(ValueError, match="amount: unknown groups"):
        prune(_net(), X, amount={"layer 1": 2})


# ------------------------------------------------------------------------------------ the study
def test_study_holm_and_verdicts():
    from sensinet.experiments.pruning import COMPARISONS, SETTINGS, _holm, compare

    assert _holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert _holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    # "sensitivity" halves every loss of "magnitude" on every seed; the others tie with noise
    rng = np.random.default_rng(0)
    rows = []
    for d in ("a", "b"):
        for s in range(8):
            for f in (0.5, 0.9):
                for st in SETTINGS:
                    base = 1.0 + rng.random()
                    for crit in ("magnitude", "taylor", "loss_sensitivity"):
                        rows.append(dict(dataset=d, seed=s, criterion=crit, fraction=f, setting=st,
                                         test_loss=base * (1 + 0.05 * rng.standard_normal())))
                    rows.append(dict(dataset=d, seed=s, criterion="sensitivity", fraction=f, setting=st,
                                     test_loss=base / 2))
    cells, primary = compare(rows, ("a", "b"), (0.5, 0.9))
    assert len(primary) == len(SETTINGS) * len(COMPARISONS) and len(cells) == len(primary) * 2 * 2
    verdict = {(r["setting"], r["a"], r["b"]): r["verdict"] for r in primary}
    for st in SETTINGS:
        assert verdict[st, "sensitivity", "magnitude"] == "sensitivity better"
        assert verdict[st, "sensitivity", "taylor"] == "sensitivity better"
        assert verdict[st, "loss_sensitivity", "magnitude"] == "no significant difference"
    r = next(r for r in primary if r["a"] == "sensitivity")
    assert r["pairs"] == 16 and r["wins_a"] == 16 and r["geo_mean_loss_ratio"] < 0.55
    assert all(r["p_holm"] >= r["p_wilcoxon"] for r in primary)


def test_study_quick_writes_records_tables_and_figures(tmp_path):
    pytest.importorskip("scipy")
    pytest.importorskip("sklearn")
    from sensinet.cli import main

    assert main(["experiment", "pruning", "--quick", "--seeds", "2", "--dataset", "yacht", "--dataset", "digits",
                 "--out", str(tmp_path)]) == 0
    import json

    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    meta = json.loads(lines[0])["meta"]
    rows = [json.loads(l) for l in lines[1:]]
    assert meta["seeds"] == 2 and meta["datasets"] == ["yacht", "digits"]
    # per dataset and seed: 2 unpruned rows + 5 criteria x 2 fractions x 2 settings
    assert len(rows) == 2 * 2 * (2 + 5 * 2 * 2)
    digits = [r for r in rows if r["dataset"] == "digits"]
    assert all(0 <= r["accuracy"] <= 1 for r in digits)
    full = {r["n_params"] for r in rows if r["dataset"] == "yacht" and r["criterion"] == "none"}
    assert full == {6 * 64 + 64 + 64 * 64 + 64 + 64 + 1}
    half = {r["n_params"] for r in rows if r["dataset"] == "yacht" and r["fraction"] == 0.5}
    assert half == {6 * 32 + 32 + 32 * 32 + 32 + 32 + 1}
    assert all(r["clusters"] >= 1 for r in rows)
    for f in ("summary.md", "summary.csv", "comparisons.csv", "orderings.csv", "pruning_yacht.png"):
        assert (tmp_path / f).stat().st_size > 100
    assert "Holm" in (tmp_path / "summary.md").read_text()
    gs = [json.loads(l) for l in (tmp_path / "grow_shrink.jsonl").read_text().splitlines()]
    assert len(gs) == 4 and {g["dataset"] for g in gs} == {"yacht", "digits"}
    for g in gs:
        assert g["fixed_epochs"] >= 1 and g["grow_shrink_test_loss"] > 0 and g["fixed_test_loss"] > 0
        assert g["n_params"] < 64 * 64 * 3  # started from one layer of 32: at most two insertions of 32
    assert "Grow and shrink against its final architecture" in (tmp_path / "summary.md").read_text()


def _layered():
    import sensinet as sn

    return sn.Network(3, [sn.Dense(6, "relu"), sn.Dense(4, "relu"), sn.Dense(1)], seed=0)


def test_layer_scope_count_is_exact_and_never_clipped_silently():
    """An integer amount with scope="layer" removes exactly that many neurons, split in proportion to the widths
    (amount=1 used to remove none, 3 removed 2); more than min_width allows, or a per-group count larger than
    its group, is an error instead of a silent clip."""
    import sensinet as sn

    X = np.random.default_rng(0).normal(size=(30, 3))
    net = _layered()
    for amount in (1, 2, 3, 5, 8):
        _, rec = sn.prune(net, X, amount=amount, criterion="magnitude")
        assert rec.n_removed == amount
    _, rec = sn.prune(net, X, amount=5, criterion="magnitude")
    assert [len(rec.removed[g]) for g in rec.groups] == [3, 2]  # 5 x 6/10 = 3, 5 x 4/10 = 2
    with pytest.raises(ValueError, match=r"amount: at most 8 neurons can go"):
        sn.prune(net, X, amount=9, criterion="magnitude")
    with pytest.raises(ValueError, match=r"amount\['layer 1'\]: group 'layer 1' can lose at most 3"):
        sn.prune(net, X, amount={"layer 1": 4}, criterion="magnitude")


@pytest.mark.parametrize("kw, exc, match", [
    (dict(X="not an array", criterion="magnitude"), (ValueError, TypeError), "X"),
    (dict(criterion="random", inputs="yes"), TypeError, "inputs"),
    (dict(criterion="random", seed=-1), ValueError, r"seed: expected an int >= 0 or None, got -1"),
])
def test_prune_checks_every_argument(kw, exc, match):
    import sensinet as sn

    X = np.random.default_rng(0).normal(size=(30, 3))
    args = dict(X=X, amount=0.5)
    args.update(kw)
    with pytest.raises(exc, match=match):
        sn.prune(_layered(), args.pop("X"), **args)


@pytest.mark.parametrize("kw, match", [
    (dict(criteria=[]), "criteria: expected at least one"),
    (dict(fractions="0.5"), "fractions: expected a sequence"),
    (dict(fractions=[]), "fractions: expected at least one"),
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(batch_size=0), "batch_size"),
    (dict(seed=-1), r"seed: expected an int >= 0, got -1"),
    (dict(validation_data=(np.zeros((3, 3)),)), r"validation_data: expected a tuple \(X_val, y_val\)"),
])
def test_pruning_curve_checks_every_argument(kw, match):
    import sensinet as sn

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    with pytest.raises(ValueError, match=match):
        sn.pruning_curve(_layered(), X, y, **kw)
