"""Hierarchical multi-scale optimizer (issue 4) beside full-network backprop, same group, same run.

concrete (UCI, 927 training rows of a 90/10 split, standardized), 8 x 32 tanh, Adam lr 1e-3 batch 32, the same
initial parameters, and the same budget of 50 full-gradient equivalents of weighted work (one epoch of full
backprop = 1; a block epoch counts its FLOP share, a sensitivity sweep is charged too). Each entry asserts that
it reduced the training loss and that it spent (at most) the budget; the wall times are the comparison.
"""
from __future__ import annotations

import pytest

import sensinet as sn
from sensinet.datasets import Standardizer, load_uci, train_test_split
from sensinet.hierarchical import HierarchicalOptimizer

BUDGET = 50


def _setup():
    d = load_uci("concrete")
    X_tr, _, y_tr, _ = train_test_split(d.X, d.y, test_size=0.1, seed=0)
    X = Standardizer().fit_transform(X_tr)
    y = Standardizer().fit_transform(y_tr)
    net = sn.Network(X.shape[1], [sn.Dense(32, "tanh") for _ in range(8)] + [sn.Dense(1)], seed=1000)
    return X, y, net


@pytest.mark.parametrize("method", ["hierarchical", "backprop"])
def test_hierarchical_vs_backprop_equal_work(benchmark, threads, method):
    threads(1)
    X, y, net0 = _setup()
    J0 = net0.objective(X, y)
    out = {}

    def run():
        net = net0.copy()
        if method == "hierarchical":
            res = HierarchicalOptimizer(budget=BUDGET, stall_tol=0.0, random_state=0).run(net, X, y)
            out["work"] = res.work
        else:
            net.fit(X, y, optimizer=sn.Adam(lr=1e-3), epochs=BUDGET, batch_size=32, seed=0)
            out["work"] = float(BUDGET)
        out["J"] = net.objective(X, y)

    benchmark.group = f"(hier) concrete 8x32 tanh, Adam, {BUDGET} full-gradient equivalents of work"
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(final_J=out["J"], initial_J=J0, work=out["work"])
    assert out["J"] < 0.5 * J0
    assert out["work"] <= BUDGET + 1e-9
