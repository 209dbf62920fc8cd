"""Bring networks in from scikit-learn and PyTorch, and send them back (weights, not copies of code)."""
import numpy as np
from sklearn.neural_network import MLPRegressor

import sensinet as sn
from _common import concrete, options

args = options(__doc__)
X_tr, X_te, y_tr, y_te, _ = concrete()
mlp = MLPRegressor(hidden_layer_sizes=(16,), max_iter=50 if args.quick else 1000, random_state=0)
mlp.fit(X_tr, y_tr)
net = sn.from_sklearn(mlp)
assert np.allclose(net.forward(X_te).ravel(), mlp.predict(X_te))
print(f"scikit-learn MLP -> sensinet: {net}")
try:
    import torch
except ImportError:
    print("(torch is not installed: the PyTorch round trip is skipped)")
else:
    module = sn.to_torch(net)
    with torch.no_grad():
        out = module(torch.as_tensor(X_te)).numpy().ravel()
    assert np.allclose(out, net.forward(X_te).ravel())
    back = sn.from_torch(module)
    print(f"sensinet -> torch {type(module).__name__} -> sensinet: same weights {np.array_equal(back.parameters, net.parameters)}")
