"""Which neurons and layers matter: scaling-factor sensitivities, their finite-difference check, a figure."""
import numpy as np

import sensinet as sn
from _common import concrete, options

args = options(__doc__)
X_tr, X_te, y_tr, y_te, names = concrete()
net = sn.Network(8, [sn.Dense(32, "relu"), sn.Dense(32, "relu"), sn.Dense(1)], seed=0)
net.fit(X_tr, y_tr, epochs=10 if args.quick else 200, seed=0)
res = sn.sensitivity(net, X_tr)                               # d yhat / d s_j, mean |.| over samples
print("layer importance:", np.round(res.layer_importance(), 4))
# top() ranks every neuron of every site as (site name, neuron, score, importance); the input site is "0"
print("top inputs:", [(names[j], round(score, 4)) for site, j, score, _ in res.top(len(res.ranked())) if site == "0"][:3])
g = sn.sensitivity(net, X_tr, y_tr, wrt="loss", sites=[1, 2])  # dJ/ds per hidden neuron
fd = sn.sensitivity(net, X_tr, y_tr, wrt="loss", sites=[1, 2], method="finite_difference")
err = max(float(np.max(np.abs(a - b))) for a, b in zip(g.matrices, fd.matrices))
print(f"reverse mode vs central differences: max |difference| {err:.2e}")
res.plot(args.out / "concrete_sensitivity.png")
print(f"figure: {args.out / 'concrete_sensitivity.png'}")
