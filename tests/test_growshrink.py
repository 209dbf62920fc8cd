"""Grow-and-shrink training: insertion and pruning in one run, with the work accounted."""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn
from sensinet.datasets import make_spirals
from sensinet.growshrink import GrowShrink


def test_grows_then_sheds_dead_neurons():
    d = make_spirals(120)
    net = sn.Network(2, [sn.Dense(8, "relu"), sn.Dense(2)], loss="cross_entropy", seed=0)
    p = net.layer_parameters(0)
    p["W"][:, [0, 1]] = 0.0  # two dead ReLUs: zero input weights, negative bias: never active, never revived
    p["b"][[0, 1]] = -1.0
    gs = GrowShrink(insertion=sn.LayerInsertion(at_epochs=[20]), prune_every=60, threshold=1e-9)
    res = gs.fit(net, d.X, d.y, epochs=150, optimizer=sn.SGD(0.1))
    kinds = [e["kind"] for e in res.events]
    assert kinds[0] == "insert" and "prune" in kinds
    assert res.network.n_layers == 3 and res.network.specs[0][2] == 6  # the two dead neurons are gone
    assert net.n_layers == 2 and net.specs[0][2] == 8  # the network given is left as it was
    assert len(res.loss) == len(res.n_params) == 150
    n = len(d.X)  # 240: two spirals of 120
    assert res.work == sum(res.n_params) * n
    assert np.isfinite(res.loss).all()
    cmp = res.compare_fixed(d.X, d.y, seeds=(0, 1))
    assert cmp["n_params"] == res.network.n_params and len(cmp["fixed_losses"]) == 2
    assert cmp["fixed_epochs"] == round(res.work / (res.network.n_params * n))
    # on held-out data: the same fixed networks (same seeds), evaluated there too
    held = res.compare_fixed(d.X, d.y, seeds=(0, 1), validation_data=(d.X[:40], d.y[:40]))
    assert held["fixed_losses"] == cmp["fixed_losses"] and len(held["fixed_val_losses"]) == 2
    assert held["grow_shrink_val_loss"] == res.network.objective(d.X[:40], d.y[:40])
    assert "fixed_val_losses" not in cmp


def test_short_last_chunk_and_no_insertions_left():
    d = make_spirals(60)
    net = sn.Network(2, [sn.Dense(6, "relu"), sn.Dense(2)], loss="cross_entropy", seed=1)
    gs = GrowShrink(insertion=sn.LayerInsertion(at_epochs=[30]), prune_every=40, threshold=1e-9)
    res = gs.fit(net, d.X, d.y, epochs=90, optimizer="sgd", lr=0.1)  # chunks of 40, 40, 10
    assert sum(e["kind"] == "insert" for e in res.events) == 1  # max_insertions counts over the run
    assert len(res.loss) == 90


@pytest.mark.parametrize("kw, exc, match", [
    (dict(prune_every=0), ValueError, "prune_every"),
    (dict(threshold=1.5), ValueError, "threshold"),
    (dict(threshold=0), ValueError, "threshold"),
    (dict(criterion="random"), ValueError, "criterion"),
    (dict(min_width=0), ValueError, "min_width"),
    (dict(insertion="yes"), TypeError, "insertion"),
])
def test_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        GrowShrink(**kw)
