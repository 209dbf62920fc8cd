"""Bring networks in from scikit-learn, PyTorch and ONNX, and send them back (weights, not copies of code);
keep a fitted estimator in a safe model file."""
import warnings

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
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
    # the tabular MLP people write: BatchNorm1d is folded into the Linear before it, Dropout dropped (eval mode)
    torch.manual_seed(0)
    tab = torch.nn.Sequential(torch.nn.Linear(X_tr.shape[1], 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                              torch.nn.Dropout(0.1), torch.nn.Linear(32, 1)).double()
    tab(torch.as_tensor(X_tr))  # one training-mode pass gives the BatchNorm running statistics
    folded = sn.from_torch(tab)
    with torch.no_grad():
        gap = np.abs(folded.forward(X_te) - tab.eval()(torch.as_tensor(X_te)).numpy()).max()
    print(f"torch Linear+BatchNorm1d+ReLU+Dropout+Linear -> {[f'{s.kind}:{s.n_out}' for s in folded.specs]}, "
          f"largest difference {gap:.1e}")

try:
    import onnxruntime
except ImportError:
    print("(onnx / onnxruntime are not installed: the ONNX round trip is skipped; pip install 'sensinet[onnx]')")
else:
    small, _ = sn.prune(net, X_tr, y_tr, amount=0.5)  # a pruned network deploys like any other
    model = sn.to_onnx(small, args.out / "pruned.onnx")
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_out = session.run(None, {"input": X_te})[0]
    print(f"pruned net ({small.n_params} of {net.n_params} parameters) -> ONNX: onnxruntime agrees to "
          f"{np.abs(ort_out - small.predict(X_te)).max():.1e}")
    print(f"ONNX -> sensinet: same layers {sn.from_onnx(args.out / 'pruned.onnx').specs == small.specs}")

Xd, yd = load_diabetes(return_X_y=True)
reg = sn.SensiNetRegressor(hidden_layer_sizes=(16,), max_iter=20 if args.quick else 200, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    reg.fit(Xd, yd)
sn.save(reg, args.out / "regressor.npz")
same = sn.load(args.out / "regressor.npz")
print(f"estimator -> model file -> {type(same).__name__}: predictions bitwise equal "
      f"{np.array_equal(same.predict(Xd), reg.predict(Xd))}, first prediction {same.predict(Xd[:1])[0]:.1f}")
