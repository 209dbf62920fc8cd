"""ReLU activation clusters (issue 6): patterns, cluster ids and exact affine maps of 100,000 samples of a
10 -> 64x4 relu -> 1 network, sensinet ``ReluClusters.fit`` beside a straightforward NumPy implementation
(forward pass in NumPy, patterns by ``np.packbits``, ids by ``np.unique(axis=0)``, the map of each cluster by
a Python loop of mask-scaled matrix products) in the same group. Both results are checked against each
other and against the network.

    PYTHONPATH=python python -m pytest bench/test_bench_clusters.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn
from sensinet.clusters import ReluClusters

GROUP = "(clusters) 100k x 64x4"
N, D, WIDTH, DEPTH = 100_000, 10, 64, 4


@pytest.fixture(scope="module")
def problem():
    net = sn.Network(D, [sn.Dense(WIDTH, "relu") for _ in range(DEPTH)] + [sn.Dense(1)], seed=0)
    rng = np.random.default_rng(1)
    for l in range(net.n_layers):  # nonzero biases, as in a trained network
        net.layer_parameters(l)["b"][:] = rng.normal(0.0, 0.1, net.layer_parameters(l)["b"].shape)
    X = np.random.default_rng(0).normal(size=(N, D))
    return net, X


def numpy_clusters(net: sn.Network, X: np.ndarray) -> dict:
    """The straightforward NumPy implementation: labels (clusters by size, descending), W_eff, b_eff."""
    params = [(np.asarray(p["W"]), np.asarray(p["b"])) for p in (net.layer_parameters(l) for l in range(net.n_layers))]
    h, bits = X, []
    for W, b in params[:-1]:
        z = h @ W + b
        bits.append(z > 0)
        h = np.maximum(z, 0.0)
    B = np.concatenate(bits, axis=1)
    packed = np.packbits(B, axis=1)
    _, first, inv, counts = np.unique(packed, axis=0, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    labels = rank[inv.ravel()]
    C = order.size
    W_eff = np.empty((C, D, 1))
    b_eff = np.empty((C, 1))
    for c in range(C):
        m = B[first[order[c]]]
        Wc, bc, o = np.eye(D), np.zeros(D), 0
        for W, b in params[:-1]:
            mask = m[o:o + W.shape[1]]
            o += W.shape[1]
            Wc = (Wc @ W) * mask
            bc = (bc @ W + b) * mask
        W_eff[c] = Wc @ params[-1][0]
        b_eff[c] = bc @ params[-1][0] + params[-1][1]
    return {"labels": labels, "counts": counts[order], "W_eff": W_eff, "b_eff": b_eff}


def sensinet_clusters(net: sn.Network, X: np.ndarray) -> dict:
    rc = ReluClusters(net).fit(X)
    return {"labels": rc.labels_, "counts": rc.counts_, "W_eff": rc.affine_maps.W_eff, "b_eff": rc.affine_maps.b_eff}


IMPLS = {"sensinet": sensinet_clusters, "numpy": numpy_clusters}


@pytest.fixture(scope="module")
def reference(problem):
    net, X = problem
    return numpy_clusters(net, X)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_clusters_100k(benchmark, problem, reference, impl):
    net, X = problem
    benchmark.group = GROUP
    benchmark.extra_info["n_clusters"] = int(reference["counts"].size)
    fn = IMPLS[impl]
    rounds = 5 if impl == "sensinet" else 2
    warmup = 1 if impl == "sensinet" else 0
    got = benchmark.pedantic(fn, args=(net, X), rounds=rounds, iterations=1, warmup_rounds=warmup)
    # both implementations: same clusters in the same order, the same maps, and the maps reproduce the net
    np.testing.assert_array_equal(got["labels"], reference["labels"])
    np.testing.assert_array_equal(got["counts"], reference["counts"])
    np.testing.assert_allclose(got["W_eff"], reference["W_eff"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["b_eff"], reference["b_eff"], rtol=1e-10, atol=1e-12)
    labels = got["labels"]
    pred = np.einsum("nd,ndk->nk", X, got["W_eff"][labels]) + got["b_eff"][labels]
    out = net.forward(X)
    assert np.max(np.abs(pred - out)) <= 1e-12 * max(1.0, np.abs(out).max())
