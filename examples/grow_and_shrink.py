"""Grow by layer insertion and shrink by pruning in one run, against the same final network from scratch."""
import sensinet as sn
from _common import concrete, options

args = options(__doc__)
X_tr, X_te, y_tr, y_te, _ = concrete()
epochs = 40 if args.quick else 240
gs = sn.GrowShrink(prune_every=epochs // 4, threshold=0.1)
res = gs.fit(sn.Network(8, [sn.Dense(32, "relu"), sn.Dense(1)], seed=0), X_tr, y_tr, epochs=epochs,
             optimizer="adam", lr=1e-3, batch_size=32)
for e in res.events:
    print(f"epoch {e['epoch']:4d}: {e['kind']:6s} -> {e['n_params']} parameters")
cmp = res.compare_fixed(X_tr, y_tr, seeds=(0, 1))
print(f"final widths {[l.units for l in res.network.layers[:-1]]}: loss {cmp['grow_shrink_loss']:.4f}; "
      f"the same network from scratch for the same work: {cmp['fixed_mean']:.4f}")
