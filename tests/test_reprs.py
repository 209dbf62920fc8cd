"""Results print as one short line (no arrays dumped), naming what they hold."""
import numpy as np

import sensinet as sn


def test_result_reprs_are_short():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(int)
    net = sn.Network(3, [sn.Dense(32, "relu"), sn.Dense(2)], loss="cross_entropy", seed=0)
    net.fit(X, y, epochs=40)
    rc = sn.ReluClusters(net).fit(X)
    objects = [net.history_, sn.sensitivity(net, X, per_sample=True), rc.affine_maps, rc.affine_maps[0],
               rc.explain(X[0]), rc.table(), rc.merge(3).fidelity_curve([1, 2, 3]),
               sn.pruning_curve(net, X, y, fractions=[0.5], criteria=["magnitude"]),
               sn.HierarchicalOptimizer(budget=2).run(net.copy(), X, y),
               sn.LayerInsertion(at_epochs=[1]).fit(net.copy(), X, y, epochs=30)[1],
               sn.prune(net, X, amount=0.5)[1], sn.SGD(0.1), net]
    for obj in objects:
        text = repr(obj)
        assert len(text) < 240 and "\n" not in text, text
        assert text.startswith(type(obj).__name__), text
