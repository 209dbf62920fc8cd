"""Explain a trained ReLU network exactly: clusters of samples by activation pattern, one affine map each."""
import numpy as np

import sensinet as sn
from _common import concrete, options

args = options(__doc__)
X_tr, X_te, y_tr, y_te, names = concrete()
net = sn.Network(8, [sn.Dense(8, "relu"), sn.Dense(8, "relu"), sn.Dense(1)], seed=0)
net.fit(X_tr, y_tr, epochs=10 if args.quick else 200, seed=0)
rc = sn.explain(net, X_tr, feature_names=names)
print(f"{rc.n_clusters_} activation patterns on {len(X_tr)} samples")
e = rc.explain(X_te[0])
assert np.allclose(e.output, net.forward(X_te[:1])[0])           # exact: the map reproduces the network
print(e)
merged = rc.merge(10)
print(f"merged into 10 clusters: R^2 {merged.fidelity.r2:.3f} of the network's outputs")
rc.plot(args.out / "concrete_clusters.png")
print(f"figure: {args.out / 'concrete_clusters.png'}")
