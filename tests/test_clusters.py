"""ReLU activation clusters (issue 6, Picchiotti & Gori arXiv:2110.06593): exact affine maps, patterns against
a NumPy reference, labels, explanations, importances, tables, merging and fidelity, bad input."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import sensinet as sn
from conftest import make_net, mixed_layers, np_forward
from sensinet.clusters import linkage as cl_linkage
from sensinet.clusters import maps as cl_maps
from sensinet.clusters import patterns as cl_patterns
from sensinet.clusters import relu as cl_relu
from sensinet.clusters import MergedClusters, ReluClusters, explain


def _max_err(pred, out) -> float:
    """max |pred - out| relative to max(1, max |out|)."""
    return float(np.max(np.abs(pred - out)) / max(1.0, float(np.max(np.abs(out)))))


def _data(n, d, seed=0, scale=1.0):
    return np.random.default_rng(seed).normal(scale=scale, size=(n, d))


def _check_exact(rc: ReluClusters, X, out):
    """Every sample's cluster map reproduces the network to 1e-12, both stacked and per cluster."""
    assert rc.exact
    assert _max_err(rc.predict(), out) <= 1e-12
    W, b = rc.affine_maps.W_eff, rc.affine_maps.b_eff
    assert W.shape == (rc.n_clusters_, X.shape[1], out.shape[1]) and b.shape == (rc.n_clusters_, out.shape[1])
    for c in range(min(rc.n_clusters_, 25)):  # the per-cluster view, on that cluster's samples
        idx = rc.labels_ == c
        m = rc.affine_maps[c]
        assert m.W_eff.shape == (X.shape[1], out.shape[1]) and m.b_eff.shape == (out.shape[1],)
        assert _max_err(X[idx] @ m.W_eff + m.b_eff, out[idx]) <= 1e-12
        assert _max_err(m(X[idx]), out[idx]) <= 1e-12


ARCHS = {
    "dense-relu": (5, [sn.Dense(8, "relu"), sn.Dense(6, "relu"), sn.Dense(1)], "mse"),
    "dense-leaky": (5, [sn.Dense(8, "leaky_relu", alpha=0.1), sn.Dense(6, "leaky_relu", alpha=0.3), sn.Dense(2)],
                    "mse"),
    "residual2": (4, [sn.Dense(6, "relu"), sn.Residual(6, "relu", hidden=9, weights=2), sn.Dense(1)], "mse"),
    "residual1": (4, [sn.Dense(6, "relu"), sn.Residual(6, "relu", weights=1), sn.Dense(1)], "mse"),
    "mixed-leaky": (4, mixed_layers(5, "leaky_relu", 3), "mse"),
    "residual-first": (4, [sn.Residual(4, "relu", hidden=7), sn.Residual(4, "leaky_relu", weights=1),
                           sn.Dense(2)], "mse"),
    "softmax-head": (6, [sn.Dense(10, "relu"), sn.Dense(10, "relu"), sn.Dense(4)], "cross_entropy"),
    "sigmoid-head": (6, mixed_layers(7, "relu", 1), "binary_cross_entropy"),
    "multilabel-head": (3, [sn.Dense(12, "relu"), sn.Dense(3)], "binary_cross_entropy"),
    "identity-hidden": (4, [sn.Dense(5, "relu"), sn.Dense(3, "identity"), sn.Dense(4, "relu"), sn.Dense(1)], "mse"),
    "relu-output": (3, [sn.Dense(6, "relu"), sn.Dense(2, "relu")], "mse"),
}


# ============================================================================================ exactness
@pytest.mark.parametrize("direction", ["auto", "forward", "backward"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_affine_maps_reproduce_the_network(arch, direction):
    d, layers, loss = ARCHS[arch]
    net = make_net(d, layers, loss=loss, seed=3)
    X = _data(700, d, seed=1, scale=1.5)
    rc = ReluClusters(net).fit(X, _direction=direction)
    out = net.forward(X)
    assert rc.n_clusters_ > 1
    _check_exact(rc, X, out)
    f = rc.fidelity
    assert f.r2 == pytest.approx(1.0, abs=1e-12) and f.max_abs_error <= 1e-12 * max(1, np.abs(out).max())
    if loss != "mse":
        assert f.agreement == 1.0


def test_directions_agree_on_a_wide_net():
    net = make_net(3, [sn.Dense(16, "relu"), sn.Residual(16, "leaky_relu", hidden=5), sn.Dense(9)], seed=0)
    X = _data(400, 3)
    a = ReluClusters(net).fit(X, _direction="forward").affine_maps
    b = ReluClusters(net).fit(X, _direction="backward").affine_maps
    np.testing.assert_allclose(a.W_eff, b.W_eff, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(a.b_eff, b.b_eff, rtol=1e-12, atol=1e-13)


def test_chunked_map_computation(monkeypatch):
    """Small chunks give the same maps as one chunk (the chunk loop covers every cluster once)."""
    net = make_net(4, [sn.Dense(8, "relu"), sn.Dense(8, "relu"), sn.Dense(2)], seed=2)
    X = _data(900, 4)
    ref = ReluClusters(net).fit(X).affine_maps
    monkeypatch.setattr(cl_maps, "CHUNK_VALUES", 50)
    for direction in ("forward", "backward"):
        got = ReluClusters(net).fit(X, _direction=direction).affine_maps
        np.testing.assert_allclose(got.W_eff, ref.W_eff, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(got.b_eff, ref.b_eff, rtol=1e-12, atol=1e-13)


def test_dense_map_formula():
    """One hidden ReLU layer: W_eff = W1 D W2 and b_eff = b1 D W2 + b2, written out."""
    net = make_net(3, [sn.Dense(5, "relu"), sn.Dense(2)], seed=4)
    X = _data(50, 3)
    rc = ReluClusters(net).fit(X)
    p0, p1 = net.layer_parameters(0), net.layer_parameters(1)
    for c in range(rc.n_clusters_):
        D = np.diag(rc.bits[c].astype(float))
        np.testing.assert_allclose(rc.affine_maps.W_eff[c], p0["W"] @ D @ p1["W"], atol=1e-14)
        np.testing.assert_allclose(rc.affine_maps.b_eff[c], p0["b"] @ D @ p1["W"] + p1["b"], atol=1e-14)


def test_float32_network_is_approximately_affine():
    net = make_net(4, [sn.Dense(8, "relu"), sn.Dense(1)], seed=0, dtype=np.float32)
    X = _data(300, 4)
    rc = ReluClusters(net).fit(X)
    assert rc.X_.dtype == np.float64
    np.testing.assert_allclose(rc.predict(), net.forward(X), rtol=1e-4, atol=1e-4)


# ============================================================================================ imported models
@pytest.mark.parametrize("n_classes", [2, 3])
def test_sklearn_mlp_classifier(n_classes):
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X = _data(300, 5, seed=2)
    y = (X[:, 0] > 0).astype(int) + (n_classes == 3) * (X[:, 1] > 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(hidden_layer_sizes=(12, 6), activation="relu", max_iter=60, random_state=0).fit(X, y)
    rc = ReluClusters(model).fit(X)  # converted via from_sklearn
    net = rc.net
    assert net.loss == ("binary_cross_entropy" if n_classes == 2 else "cross_entropy")
    _check_exact(rc, X, net.forward(X))
    # the maps explain the model's own probabilities
    logits = rc.predict()
    proba = model.predict_proba(X)
    if n_classes == 2:
        np.testing.assert_allclose(1 / (1 + np.exp(-logits[:, 0])), proba[:, 1], rtol=1e-10, atol=1e-12)
    else:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), proba, rtol=1e-10, atol=1e-12)
    assert rc.fidelity.agreement == 1.0
    t = rc.table(y)
    assert "accuracy" in t.columns


def test_torch_sequential(torch):
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 9), nn.ReLU(), nn.Linear(9, 7), nn.LeakyReLU(0.2), nn.Linear(7, 3)).double()
    X = _data(500, 4, seed=5)
    rc = ReluClusters(module).fit(X)
    with torch.no_grad():
        ref = module(torch.from_numpy(X)).numpy()
    assert rc.n_clusters_ > 5
    _check_exact(rc, X, ref)


# ============================================================================================ patterns
def _reference_patterns(net, X) -> np.ndarray:
    """NumPy reference: bits z > 0 of every relu / leaky_relu layer's (inner) neurons, packed 64 per uint64."""
    _, _, zs = np_forward(net, X)
    bits = np.concatenate([np.zeros((X.shape[0], 0), dtype=bool)]
                          + [z > 0 for z, s in zip(zs, net.specs) if s[4] in ("relu", "leaky_relu")], axis=1)
    n_words = max(1, -(-bits.shape[1] // 64))
    out = np.zeros((X.shape[0], n_words), dtype=np.uint64)
    for b in range(bits.shape[1]):
        out[:, b // 64] |= bits[:, b].astype(np.uint64) << np.uint64(b % 64)
    return out


@pytest.mark.parametrize("arch", ["dense-relu", "mixed-leaky", "residual-first", "softmax-head"])
def test_patterns_match_numpy_reference(arch):
    d, layers, loss = ARCHS[arch]
    net = make_net(d, layers, loss=loss, seed=6)
    X = _data(400, d, seed=3)
    rc = ReluClusters(net).fit(X)
    ref = _reference_patterns(net, X)
    np.testing.assert_array_equal(rc.patterns[rc.labels_], ref)
    assert rc.n_bits == sum(1 for _ in rc.bit_layout)


def test_patterns_span_several_words():
    """130 bits: three words; the unpacked bits and the layout follow the layer order."""
    net = make_net(3, [sn.Dense(70, "relu"), sn.Dense(60, "leaky_relu"), sn.Dense(1)], seed=1)
    X = _data(300, 3)
    rc = ReluClusters(net).fit(X)
    assert rc.patterns.shape[1] == 3 and rc.n_bits == 130
    np.testing.assert_array_equal(rc.patterns[rc.labels_], _reference_patterns(net, X))
    _, _, zs = np_forward(net, X)
    np.testing.assert_array_equal(rc.bits[rc.labels_], np.concatenate([zs[0] > 0, zs[1] > 0], axis=1))
    assert rc.bit_layout[0] == (0, 0) and rc.bit_layout[70] == (1, 0) and rc.bit_layout[-1] == (1, 59)
    _check_exact(rc, X, net.forward(X))


# ============================================================================================ labels
def test_labels_are_consistent():
    net = make_net(3, [sn.Dense(6, "relu"), sn.Dense(4, "relu"), sn.Dense(1)], seed=8)
    X = _data(2000, 3, seed=4)
    rc = ReluClusters(net).fit(X)
    ref = _reference_patterns(net, X)
    # same label <=> same pattern
    _, ref_ids = np.unique(ref, axis=0, return_inverse=True)
    ref_ids = ref_ids.ravel()
    assert len(np.unique(ref_ids)) == rc.n_clusters_
    pairs = set(zip(rc.labels_.tolist(), ref_ids.tolist()))
    assert len(pairs) == rc.n_clusters_
    # counts, sorting by size (ties by first occurrence), distinct pattern rows
    np.testing.assert_array_equal(rc.counts_, np.bincount(rc.labels_))
    assert np.all(np.diff(rc.counts_) <= 0)
    first = np.array([np.flatnonzero(rc.labels_ == c)[0] for c in range(rc.n_clusters_)])
    for c in range(rc.n_clusters_ - 1):
        if rc.counts_[c] == rc.counts_[c + 1]:
            assert first[c] < first[c + 1]
    assert len(np.unique(rc.patterns, axis=0)) == rc.n_clusters_
    assert rc.shares_.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(rc.cluster_of(X), rc.labels_)


def test_hash_collision_fallback(monkeypatch):
    """With a hash that collides for every row, cluster ids and look-ups fall back to the raw bytes."""
    net = make_net(3, [sn.Dense(40, "relu"), sn.Dense(40, "relu"), sn.Dense(1)], seed=1)
    X = _data(500, 3)
    ref = ReluClusters(net).fit(X)
    assert ref.patterns.shape[1] == 2
    for module in (cl_patterns, cl_relu):
        monkeypatch.setattr(module, "pattern_hash", lambda P: np.zeros(P.shape[0], dtype=np.uint64))
    rc = ReluClusters(net).fit(X)
    np.testing.assert_array_equal(rc.labels_, ref.labels_)
    np.testing.assert_array_equal(rc.patterns, ref.patterns)
    np.testing.assert_array_equal(rc.cluster_of(X[:50]), ref.labels_[:50])


def test_single_word_and_no_kinks():
    net = make_net(2, [sn.Dense(3, "relu"), sn.Dense(1)], seed=0)
    X = _data(200, 2)
    rc = ReluClusters(net).fit(X)
    assert rc.n_clusters_ <= 7  # 3 lines in the plane
    _check_exact(rc, X, net.forward(X))
    lin = make_net(2, [sn.Dense(3, "identity"), sn.Dense(2)], seed=0)
    rl = ReluClusters(lin).fit(X)
    assert rl.n_clusters_ == 1 and rl.n_bits == 0 and rl.exact
    _check_exact(rl, X, lin.forward(X))


# ============================================================================================ explanations
def test_explain_contributions_sum_to_the_output():
    net = make_net(5, mixed_layers(6, "relu", 2), loss="binary_cross_entropy", seed=2)
    X = _data(300, 5)
    rc = ReluClusters(net).fit(X, feature_names=list("abcde"))
    out = net.forward(X)
    for i in (0, 7, 123):
        e = rc.explain(X[i])
        assert e.cluster == rc.labels_[i] and e.exact
        np.testing.assert_allclose(e.contributions, X[i][:, None] * rc.affine_maps.W_eff[e.cluster], rtol=0, atol=0)
        np.testing.assert_allclose(e.contributions.sum(axis=0) + e.b_eff, e.output, rtol=0, atol=1e-15)
        assert _max_err(e.output, out[i]) <= 1e-12
        np.testing.assert_allclose(e.network_output, out[i], rtol=1e-15, atol=0)
        e2 = rc.explain(X[i:i + 1])
        np.testing.assert_array_equal(e2.contributions, e.contributions)
    top = rc.explain(X[0]).top(2)
    assert len(top) == 2 and top[0][0] in "abcde" and abs(top[0][1]) >= abs(top[1][1])
    assert "cluster" in str(rc.explain(X[0]))


def test_explain_unseen_pattern_is_still_exact():
    net = make_net(3, [sn.Dense(10, "relu"), sn.Dense(10, "relu"), sn.Dense(1)], seed=3)
    X = _data(30, 3)
    rc = ReluClusters(net).fit(X)
    new = _data(200, 3, seed=9, scale=3.0)
    lab = rc.cluster_of(new)
    assert (lab == -1).any()
    j = int(np.flatnonzero(lab == -1)[0])
    e = rc.explain(new[j])
    assert e.cluster == -1
    assert _max_err(e.output, net.forward(new[j:j + 1])[0]) <= 1e-12
    maps = rc.local_maps(new)
    assert _max_err(maps.predict(new, np.arange(len(new))), net.forward(new)) <= 1e-12


def test_global_importance():
    net = make_net(4, [sn.Dense(8, "relu"), sn.Dense(8, "relu"), sn.Dense(2)], seed=5)
    X = _data(500, 4)
    rc = ReluClusters(net).fit(X)
    Wn = rc.affine_maps.W_eff[rc.labels_]  # per-sample maps
    np.testing.assert_allclose(rc.global_importance(), np.mean(np.abs(Wn[:, :, 0]), axis=0), rtol=1e-12)
    np.testing.assert_allclose(rc.global_importance(signed=True, output=1), np.mean(Wn[:, :, 1], axis=0),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rc.global_importance(kind="contribution"), np.mean(np.abs(X * Wn[:, :, 0]), axis=0),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="output"):
        rc.global_importance(output=2)
    with pytest.raises(ValueError, match="kind"):
        rc.global_importance(kind="shap")


# ============================================================================================ table
def _dead_net():
    """x0 < -1 switches every hidden neuron off: that cluster's map is constant."""
    net = sn.Network(2, [sn.Dense(3, "relu"), sn.Dense(1)], loss="binary_cross_entropy", seed=0)
    p = net.layer_parameters(0)
    p["W"][...] = [[1.0, 2.0, 3.0], [0.5, -0.5, 0.0]]
    p["b"][...] = [1.0, 2.0, 3.0]
    q = net.layer_parameters(1)
    q["W"][...] = [[1.0], [-2.0], [0.5]]
    q["b"][...] = [0.25]
    return net


def test_table_columns_and_dead_flag(tmp_path):
    net = _dead_net()
    X = np.column_stack([np.linspace(-3, 3, 601), np.random.default_rng(0).uniform(-0.5, 0.5, 601)])
    y = (X[:, 0] > 0).astype(int)
    rc = ReluClusters(net).fit(X, feature_names=["a", "b"])
    t = rc.table(y)
    for col in ("cluster", "size", "share", "mean_y", "accuracy", "pred_pos_rate", "mean_output", "dead", "b_eff",
                "top", "w_a", "w_b", "mean_a", "mean_b"):
        assert col in t.columns
    assert len(t) == rc.n_clusters_
    assert t.column("size").sum() == len(X) and t.column("share").sum() == pytest.approx(1)
    dead = t.column("dead").astype(bool)
    assert dead.sum() == 1
    c = int(np.flatnonzero(dead)[0])
    idx = rc.labels_ == c
    assert np.all(X[idx, 0] < -0.99)  # the region where every neuron is off
    assert np.all(rc.affine_maps.W_eff[c] == 0) and rc.affine_maps.b_eff[c, 0] == 0.25
    assert t.column("top")[c] == "-"
    np.testing.assert_allclose(t.column("mean_a"), [X[rc.labels_ == k, 0].mean() for k in range(rc.n_clusters_)])
    np.testing.assert_allclose(t.column("mean_y"), [y[rc.labels_ == k].mean() for k in range(rc.n_clusters_)])
    np.testing.assert_allclose(t.column("pred_pos_rate"),
                               [np.mean(net.forward(X)[rc.labels_ == k, 0] > 0) for k in range(rc.n_clusters_)])
    # display values, markdown, text, csv
    t2 = rc.table(feature_values=X * 10, weights=False, top=0)
    np.testing.assert_allclose(t2.column("mean_a"), 10 * t.column("mean_a"))
    assert "w_a" not in t2.columns and "top" not in t2.columns and "mean_y" not in t2.columns
    md = t.to_markdown(["cluster", "size", "dead", "top"])
    assert md.splitlines()[0] == "| cluster | size | dead | top |" and "yes" in md
    assert "cluster" in str(t)
    t.to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines()[0].startswith("cluster,size,share")
    with pytest.raises(ValueError, match="y: expected 601"):
        rc.table(y[:10])
    with pytest.raises(ValueError, match="feature_names"):
        rc.table(feature_names=["only one"])
    with pytest.raises(KeyError):
        t.column("nope")


def test_table_softmax_and_regression():
    net = make_net(4, [sn.Dense(8, "relu"), sn.Dense(3)], loss="cross_entropy", seed=1)
    X = _data(300, 4)
    y = np.random.default_rng(0).integers(0, 3, 300)
    t = ReluClusters(net).fit(X).table(y)
    for col in ("true_class", "true_share", "accuracy", "pred_class", "pred_share"):
        assert col in t.columns
    reg = make_net(4, [sn.Dense(8, "relu"), sn.Dense(1)], seed=1)
    t = ReluClusters(reg).fit(X).table(X[:, 0])
    assert "mean_y" in t.columns and "accuracy" not in t.columns and "pred_pos_rate" not in t.columns


def test_table_to_frame():
    pd = pytest.importorskip("pandas")
    net = make_net(3, [sn.Dense(5, "relu"), sn.Dense(1)], seed=0)
    df = ReluClusters(net).fit(_data(100, 3)).table().to_frame()
    assert isinstance(df, pd.DataFrame) and df["size"].sum() == 100


# ============================================================================================ merging
def _merge_setup(seed=0):
    net = make_net(4, [sn.Dense(8, "relu"), sn.Dense(6, "relu"), sn.Dense(1)], loss="binary_cross_entropy", seed=seed)
    X = _data(600, 4, seed=seed)
    return net, X, ReluClusters(net).fit(X)


@pytest.mark.parametrize("by", ["hamming", "affine"])
def test_merge_keeps_exactness_with_all_clusters(by):
    net, X, rc = _merge_setup()
    C = rc.n_clusters_
    m = rc.merge(C, by=by)
    assert isinstance(m, MergedClusters) and m.n_clusters_ == C and m.exact
    assert m.fidelity.r2 == pytest.approx(1.0, abs=1e-12) and m.fidelity.agreement == 1.0
    np.testing.assert_array_equal(np.sort(m.counts_), np.sort(rc.counts_))


def test_merge_to_one_cluster_is_global_least_squares():
    net, X, rc = _merge_setup()
    m = rc.merge(1)
    assert m.n_clusters_ == 1 and not m.exact and np.all(m.labels_ == 0)
    A = np.column_stack([X, np.ones(len(X))])
    coef = np.linalg.lstsq(A, net.forward(X), rcond=None)[0]
    np.testing.assert_allclose(m.affine_maps.W_eff[0], coef[:-1], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.affine_maps.b_eff[0], coef[-1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("by", ["hamming", "affine"])
def test_merged_clusters_partition_the_fine_ones(by):
    net, X, rc = _merge_setup(1)
    m = rc.merge(7, by=by)
    assert m.n_clusters_ == 7 and m.counts_.sum() == len(X) and np.all(np.diff(m.counts_) <= 0)
    assert sorted(np.concatenate(m.members).tolist()) == list(range(rc.n_clusters_))
    np.testing.assert_array_equal(m.labels_, m.fine_to_merged[rc.labels_])
    np.testing.assert_array_equal(m.n_patterns_, [len(g) for g in m.members])
    # each merged map is the least-squares fit of the logits on its samples
    out = net.forward(X)
    for g in range(m.n_clusters_):
        idx = m.labels_ == g
        if m.n_patterns_[g] == 1:
            np.testing.assert_allclose(m.affine_maps.W_eff[g], rc.affine_maps.W_eff[m.members[g][0]])
            continue
        A = np.column_stack([X[idx], np.ones(idx.sum())])
        coef = np.linalg.lstsq(A, out[idx], rcond=None)[0]
        np.testing.assert_allclose(m.predict()[idx], A @ coef, rtol=1e-8, atol=1e-8)
    t = m.table()
    assert "n_patterns" in t.columns and t.column("size").sum() == len(X)
    e = m.explain(X[0])
    np.testing.assert_allclose(e.contributions.sum(axis=0) + e.b_eff, m.predict()[0], atol=1e-12)
    np.testing.assert_allclose(e.network_output, out[0])
    assert "MergedClusters" in repr(m)


def test_fidelity_curve_is_monotone_in_r2():
    """Cuts of one hierarchy are nested partitions, so the least-squares residual can only fall as n grows."""
    net, X, rc = _merge_setup(2)
    C = rc.n_clusters_
    ns = sorted({1, 2, 3, 5, 8, 13, 21, C // 2, C})
    for by in ("hamming", "affine"):
        curve = rc.fidelity_curve(ns, by=by, X_test=_data(200, 4, seed=11))
        assert list(curve.n_clusters) == ns and curve.n_fine == C
        assert curve.r2[-1] == pytest.approx(1.0, abs=1e-12) and curve.agreement[-1] == 1.0
        assert np.all(np.diff(curve.r2) >= -1e-9), curve.r2
        assert curve.r2_test is not None and curve.r2_test.shape == curve.r2.shape
        print(f"\n{by}: n {ns}\n  r2 {np.round(curve.r2, 4)}\n  agreement {np.round(curve.agreement, 4)}"
              f"\n  r2 test {np.round(curve.r2_test, 4)}")
    m = rc.merge(5)
    c2 = m.fidelity_curve([1, 5, C])
    assert c2.r2[1] == pytest.approx(m.fidelity.r2)
    table = c2.to_table()
    assert table.columns[:2] == ["n_clusters", "r2"]
    default = rc.fidelity_curve()
    assert default.n_clusters[0] == 1 and default.n_clusters[-1] == C


def test_merge_with_ridge():
    net, X, rc = _merge_setup(4)
    plain, ridged = rc.merge(3), rc.merge(3, ridge=10.0)
    assert np.linalg.norm(ridged.affine_maps.W_eff) < np.linalg.norm(plain.affine_maps.W_eff)
    assert ridged.fidelity.r2 <= plain.fidelity.r2 + 1e-12
    g = int(np.argmax(ridged.n_patterns_ > 1))
    idx = ridged.labels_ == g
    Xc = X[idx] - X[idx].mean(axis=0)
    Yc = net.forward(X)[idx] - net.forward(X)[idx].mean(axis=0)
    w = np.linalg.solve(Xc.T @ Xc + 10.0 * np.eye(4), Xc.T @ Yc)
    np.testing.assert_allclose(ridged.affine_maps.W_eff[g], w, rtol=1e-9, atol=1e-12)
    assert rc.merge(rc.n_clusters_, ridge=10.0).fidelity.r2 == pytest.approx(1.0, abs=1e-12)  # singletons exact
    c = ridged.fidelity_curve([1, 3])
    assert c.r2[1] == pytest.approx(ridged.fidelity.r2)
    for bad in (-1.0, np.nan, "x"):
        with pytest.raises(ValueError, match="ridge"):
            rc.merge(2, ridge=bad)


def test_merge_on_new_samples():
    net, X, rc = _merge_setup(3)
    m = rc.merge(rc.n_clusters_)
    new = _data(300, 4, seed=21, scale=2.0)
    assert (rc.cluster_of(new) == -1).any()
    pred = m.predict(new)
    seen = rc.cluster_of(new) >= 0
    # samples with a seen pattern get their exact map
    assert _max_err(pred[seen], net.forward(new)[seen]) <= 1e-12
    f = m.fidelity_on(new)
    assert f.n_samples == 300 and f.r2 <= 1.0


@pytest.mark.parametrize("linkage", ["average", "complete", "single"])
def test_linkage_matches_scipy(linkage):
    hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    rng = np.random.default_rng(0)
    F = rng.normal(size=(30, 4))
    Z = cl_linkage.linkage_matrix(cl_linkage.pairwise(F, "affine"), np.ones(30), linkage)
    np.testing.assert_allclose(Z, hierarchy.linkage(F, linkage), rtol=1e-12)


def test_weighted_average_linkage_is_upgma_over_samples():
    """Size-weighted average linkage of clusters == SciPy's average linkage of the replicated samples."""
    hierarchy = pytest.importorskip("scipy.cluster.hierarchy")
    rng = np.random.default_rng(1)
    F = rng.normal(size=(15, 3))
    w = rng.integers(1, 5, size=15)
    Z = cl_linkage.linkage_matrix(cl_linkage.pairwise(F, "affine"), w, "average")
    rep_of = np.repeat(np.arange(15), w)
    Zs = hierarchy.linkage(F[rep_of], "average")
    for n in range(1, 16):
        ours = cl_linkage.cut(Z, 15, n)
        theirs = hierarchy.cut_tree(Zs, n_clusters=n).ravel()
        theirs = np.array([theirs[rep_of == i][0] for i in range(15)])
        assert len(set(zip(ours.tolist(), theirs.tolist()))) == n


def test_hamming_distance_matches_scipy():
    distance = pytest.importorskip("scipy.spatial.distance")
    B = (np.random.default_rng(0).random((12, 70)) > 0.5).astype(np.uint8)
    D = cl_linkage.pairwise(B, "hamming")
    ref = distance.squareform(distance.pdist(B, "hamming"))
    np.fill_diagonal(ref, np.inf)
    np.testing.assert_allclose(D, ref)


def test_linkage_matrix_for_dendrograms():
    net, X, rc = _merge_setup()
    Z = rc.linkage_matrix()
    assert Z.shape == (rc.n_clusters_ - 1, 4) and np.all(np.diff(Z[:, 2]) >= 0)
    assert Z[-1, 3] == len(X)  # weighted: the root holds every sample


# ============================================================================================ other modes
def test_layer_subset_gives_least_squares_maps():
    net = make_net(3, [sn.Dense(6, "relu"), sn.Dense(6, "relu"), sn.Dense(1)], seed=0)
    X = _data(800, 3)
    full = ReluClusters(net).fit(X)
    sub = ReluClusters(net, layers=[0]).fit(X)
    assert not sub.exact and sub.n_bits == 6 and sub.n_clusters_ <= full.n_clusters_
    assert 0.0 < sub.fidelity.r2 <= 1.0
    np.testing.assert_array_equal(sub.patterns[sub.labels_], _reference_patterns(net, X)[:, :1] & np.uint64(63))
    with pytest.raises(ValueError, match="exact"):
        sub.local_maps(X)
    e = sub.explain(X[0])
    assert not e.exact and e.cluster == sub.labels_[0]


def test_refit_for_nonlinear_layers():
    net = make_net(3, [sn.Dense(6, "relu"), sn.Dense(5, "tanh"), sn.Dense(1)], seed=0)
    X = _data(500, 3)
    rc = ReluClusters(net, treat_nonlinear="refit").fit(X)
    assert not rc.exact and rc.pattern_layers == (0,)
    f = rc.fidelity
    assert 0.5 < f.r2 < 1.0
    smooth = make_net(3, [sn.Dense(6, "tanh"), sn.Dense(1)], seed=0)
    one = ReluClusters(smooth, treat_nonlinear="refit").fit(X)
    assert one.n_clusters_ == 1


def test_convenience_function_and_repr():
    net = make_net(3, [sn.Dense(5, "relu"), sn.Dense(1)], seed=0)
    X = _data(100, 3)
    rc = explain(net, X, feature_names=["u", "v", "w"])
    assert isinstance(rc, ReluClusters) and rc.feature_names == ["u", "v", "w"]
    assert "n_clusters" in repr(rc) and "not fitted" in repr(ReluClusters(net))
    s = rc.summary()
    assert s["n_samples"] == 100 and s["n_clusters"] == rc.n_clusters_ and s["exact"]
    if hasattr(sn, "explain"):  # exported from the package once __init__ re-exports it
        assert sn.explain(net, X).n_clusters_ == rc.n_clusters_


def test_fit_copies_the_samples_and_the_weights():
    net = make_net(3, [sn.Dense(5, "relu"), sn.Dense(1)], seed=0)
    X = _data(100, 3)
    rc = ReluClusters(net).fit(X)
    W = rc.affine_maps.W_eff.copy()
    X[:] = 0
    net.parameters[:] = 0
    assert rc.X_.any() and np.array_equal(rc.affine_maps.W_eff, W)


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    net, X, rc = _merge_setup()
    fig = rc.plot(sample=3)
    assert len(fig.axes) >= 3
    rc.plot(path=str(tmp_path / "clusters.png"), sample=X[5], max_clusters=5)
    assert (tmp_path / "clusters.png").stat().st_size > 1000
    rc.merge(4).plot(path=str(tmp_path / "merged.png"))
    rc.fidelity_curve([1, 2, rc.n_clusters_]).plot(path=str(tmp_path / "curve.png"))
    rc.explain(X[0]).plot(path=str(tmp_path / "explain.png"))
    for f in ("merged.png", "curve.png", "explain.png"):
        assert (tmp_path / f).stat().st_size > 1000


# ============================================================================================ bad input
@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus"])
def test_non_piecewise_linear_network_is_rejected(act):
    net = make_net(3, [sn.Dense(4, "relu"), sn.Residual(4, act, hidden=3), sn.Dense(1)], seed=0)
    with pytest.raises(ValueError, match=rf"layer 1 \(Residual, activation '{act}'\).*treat_nonlinear='refit'"):
        ReluClusters(net)
    with pytest.raises(ValueError, match="not piecewise linear"):
        explain(net, _data(10, 3))


def test_bad_arguments():
    net = make_net(3, [sn.Dense(4, "relu"), sn.Dense(3, "identity"), sn.Dense(1)], seed=0)
    with pytest.raises(ValueError, match="treat_nonlinear"):
        ReluClusters(net, treat_nonlinear="ignore")
    with pytest.raises(ValueError, match="layer 1 has activation 'identity'"):
        ReluClusters(net, layers=[1])
    with pytest.raises(ValueError, match="layer index"):
        ReluClusters(net, layers=[7])
    with pytest.raises(ValueError, match="at least one"):
        ReluClusters(net, layers=[])
    with pytest.raises(TypeError, match="net"):
        ReluClusters("not a network")
    rc = ReluClusters(net)
    with pytest.raises(RuntimeError, match="fit"):
        rc.merge(2)
    X = _data(50, 3)
    with pytest.raises(ValueError, match=r"X: expected 3 features"):
        rc.fit(_data(50, 4))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rc.fit(bad)
    with pytest.raises(ValueError, match="infinity"):
        rc.fit(np.where(bad == bad, bad, np.inf))
    with pytest.raises(ValueError, match="2-D"):
        rc.fit(X[0])
    with pytest.raises(ValueError, match="feature_names"):
        rc.fit(X, feature_names=["a"])
    rc.fit(X)
    with pytest.raises(ValueError, match="x: expected 3 features"):
        rc.explain(np.zeros(4))
    with pytest.raises(ValueError, match="one sample"):
        rc.explain(X[:2])
    with pytest.raises(ValueError, match="NaN"):
        rc.explain(np.array([0.0, np.nan, 1.0]))
    C = rc.n_clusters_
    for n in (0, C + 1, -1, 2.5, True):
        with pytest.raises(ValueError, match=rf"n_clusters: expected an int in \[1, {C}\]"):
            rc.merge(n)
    with pytest.raises(ValueError, match="by"):
        rc.merge(1, by="cosine")
    with pytest.raises(ValueError, match="linkage"):
        rc.merge(1, linkage="ward")
    with pytest.raises(ValueError, match="ns"):
        rc.fidelity_curve([0, 1])
    with pytest.raises(ValueError, match="output"):
        rc.table(output=1)


def test_merge_refuses_too_many_clusters(monkeypatch):
    net, X, rc = _merge_setup()
    monkeypatch.setattr(cl_relu, "MERGE_MAX_CLUSTERS", rc.n_clusters_ - 1)
    with pytest.raises(ValueError, match="MERGE_MAX_CLUSTERS"):
        rc.merge(2)


# ============================================================================================ property test
try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover -- hypothesis is a test extra
    st = None

if st is not None:
    @st.composite
    def _architectures(draw):
        d = draw(st.integers(1, 5))
        width = d
        layers = []
        for _ in range(draw(st.integers(1, 4))):
            act = draw(st.sampled_from(["relu", "leaky_relu", "identity"]))
            kind = draw(st.sampled_from(["dense", "residual2", "residual1"]))
            if kind == "dense":
                width = draw(st.integers(1, 9))
                layers.append(sn.Dense(width, act, alpha=draw(st.sampled_from([0.0, 0.01, 0.5]))))
            elif kind == "residual2":
                layers.append(sn.Residual(width, act, hidden=draw(st.integers(1, 9)), weights=2))
            else:
                layers.append(sn.Residual(width, act, weights=1))
        layers.append(sn.Dense(draw(st.integers(1, 4))))
        return d, layers, draw(st.integers(0, 10_000))

    @settings(max_examples=40, deadline=None)
    @given(_architectures())
    def test_random_architectures_are_exact(arch):
        d, layers, seed = arch
        net = make_net(d, layers, seed=seed)
        X = _data(120, d, seed=seed)
        rc = ReluClusters(net).fit(X)
        _check_exact(rc, X, net.forward(X))
        np.testing.assert_array_equal(rc.patterns[rc.labels_], _reference_patterns(net, X))


# ============================================================================================ the studies
def test_l1_activity_gradient_matches_finite_differences():
    from conftest import fd_gradient
    from sensinet.experiments.clusters import l1_activity_objective, simulation_data

    net = make_net(10, [sn.Dense(4, "relu"), sn.Dense(2, "relu"), sn.Dense(1)], loss="binary_cross_entropy", seed=0)
    X, y = simulation_data(64, seed=1)
    X = X + np.random.default_rng(0).normal(scale=0.05, size=X.shape)  # away from the relu kinks
    theta = net.parameters.copy()

    def f(t):
        net.parameters[:] = t
        return l1_activity_objective(net, X, y, lam=0.3)[0]

    fd = fd_gradient(f, theta)
    net.parameters[:] = theta
    obj, grad = l1_activity_objective(net, X, y, lam=0.3)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    _, _, zs = np_forward(net, X)
    bce = net.objective(X, y)
    assert obj == pytest.approx(bce + 0.3 * sum(np.maximum(z, 0).sum() for z in zs[:2]) / len(X), rel=1e-12)


def test_logic_recovery_of_a_hand_built_multiplexer():
    """A network that implements y = x3 x1 + (1 - x3) x2 with two rule neurons: the checks are all perfect."""
    from sensinet.experiments.clusters import SIM_FEATURES, logic_recovery, simulation_data

    net = sn.Network(10, [sn.Dense(2, "relu"), sn.Dense(1)], loss="binary_cross_entropy", seed=0)
    p = net.layer_parameters(0)
    p["W"][...] = 0
    p["W"][0, 0], p["W"][2, 0], p["b"][0] = 10.0, 10.0, -15.0  # x1 and x3
    p["W"][1, 1], p["W"][2, 1], p["b"][1] = 10.0, -10.0, -5.0  # x2 and not x3
    q = net.layer_parameters(1)
    q["W"][...] = [[4.0], [4.0]]
    q["b"][...] = -10.0
    X, y = simulation_data(4000, seed=0)
    assert np.all((net.forward(X)[:, 0] > 0) == (y > 0.5))
    rc = ReluClusters(net).fit(X, feature_names=SIM_FEATURES)
    r = logic_recovery(rc)
    assert rc.n_clusters_ == 3 and r["n_rule_clusters"] == 2
    assert r["rule_share"] == 1.0 and r["flip_selected"] == 1.0 and r["flip_other"] == 1.0 and r["flip_noise"] == 1.0
    assert r["noise_ratio"] == 0.0 and r["dead_share"] == pytest.approx(0.5, abs=0.03)


def test_experiment_quick_smoke(tmp_path):
    from sensinet.experiments import clusters as study

    res = study.run(tmp_path, quick=True, seeds=[0], progress=False)
    assert res["seconds"] < 30
    assert set(res) >= {"simulation", "titanic", "breast_cancer", "files"}
    for f in res["files"]:
        assert Path(f).exists(), f
    assert res["titanic"]["n_clusters"][0] >= 1
    assert res["simulation"]["by_variant"]["l2"]["seeds"] == 1
    if "skipped" not in res["breast_cancer"]:
        fid = res["breast_cancer"]["fidelity"]["hamming"]["r2"]
        assert fid[max(fid)] == pytest.approx(1.0, abs=1e-12)
    assert (tmp_path / "summary.md").read_text().startswith("# ReLU-cluster")
    import argparse

    parser = argparse.ArgumentParser()
    study.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "cli"), "--quick", "--seeds", "1", "--no-progress"])
    assert args.seeds == [1] and args.quick and args.no_progress
    bad = argparse.Namespace(out=tmp_path / "bad", quick=True, seeds=[], no_progress=True)
    assert study.main(bad) == 2  # a clear error, no traceback


def test_affine_maps_reject_the_unseen_pattern_label():
    """Label -1 (a pattern not seen in fit) used to pick the last cluster's map silently."""
    rng = np.random.default_rng(0)
    net = sn.Network(3, [sn.Dense(6, "relu"), sn.Dense(1)], seed=0)
    X = rng.normal(size=(40, 3))
    rc = sn.explain(net, X)
    maps = rc.affine_maps
    np.testing.assert_allclose(maps.predict(X, rc.labels_), net.forward(X), rtol=1e-12, atol=1e-12)
    labels = rc.labels_.copy()
    labels[3] = -1
    with pytest.raises(ValueError, match=r"labels: expected clusters in \[0, .*-1 for row 3.*not seen in fit"):
        maps.predict(X, labels)
    with pytest.raises(ValueError, match="one integer cluster per row"):
        maps.predict(X, rc.labels_.astype(float))
