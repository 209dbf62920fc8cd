"""Train a dense network on real data, keep the data prepared once, stop early, save and load it."""
import numpy as np

import sensinet as sn
from _common import concrete, options
from sensinet.datasets import train_test_split

args = options(__doc__)
X_tr, X_te, y_tr, y_te, names = concrete()
# early stopping watches a validation split of the training data; the test split is only for the last line
X_fit, X_val, y_fit, y_val = train_test_split(X_tr, y_tr, test_size=0.1, seed=1)
data = sn.Dataset(X_fit, y_fit)                   # validated and converted once, reused by every call
net = sn.Network(8, [sn.Dense(64, "tanh"), sn.Dense(64, "tanh"), sn.Dense(1)], seed=0)
net.fit(data, optimizer=sn.Adam(1e-3), epochs=20 if args.quick else 300, batch_size=32,
        validation_data=(X_val, y_val), patience=30, seed=0)
h = net.history_
print(f"{h.status} after {h.epochs} epochs; best validation loss {min(h.val_curve):.4f} at epoch {h.best_epoch}")
rmse = float(np.sqrt(np.mean((net.predict(X_te).ravel() - y_te) ** 2)))
print(f"test RMSE (standardized target): {rmse:.3f}")
path = args.out / "concrete_network.npz"
sn.save(net, path, metadata={"features": list(names)})
same = sn.load(path)
assert np.array_equal(same.parameters, net.parameters)
print(f"saved and reloaded {path} ({same.n_params} parameters)")
