"""How closely onnxruntime reproduces exported networks: every activation, residual blocks of both kinds, the
three heads, raw outputs and predictions, float64 and float32, 3 seeds (216 models, 257 inputs each).

Reports the largest |onnxruntime - sensinet| relative to the largest |output|, and each one's distance from
the same network (same weights) evaluated in float64, the reference both approximate. Writes
``docs/results/onnx/agreement.json``.

    python bench/onnx_agreement.py
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

import sensinet as sn

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "onnx"
ACTS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus")
HEADS = (("mse", 2), ("cross_entropy", 3), ("binary_cross_entropy", 1))


def _predict64(net, X):
    return net.astype(np.float64).predict(X.astype(np.float64))


def main() -> None:
    worst: dict = {}
    n = 0
    for dt in (np.float64, np.float32):
        for act in ACTS:
            for loss, k in HEADS:
                for seed in range(3):
                    alpha = 0.3 if act == "leaky_relu" else 0.01
                    net = sn.Network(5, [sn.Dense(16, act, alpha=alpha), sn.Residual(16, act, hidden=8, alpha=alpha),
                                         sn.Residual(16, act, weights=1, alpha=alpha), sn.Dense(12, act, alpha=alpha),
                                         sn.Dense(k)], loss=loss, dtype=dt, seed=seed)
                    net.parameters = net.parameters + np.random.default_rng(seed).normal(size=net.n_params) * 0.3
                    X = (np.random.default_rng(seed).normal(size=(257, 5)) * 2).astype(dt)
                    for out in ("forward", "predict"):
                        model = sn.to_onnx(net, output=out)
                        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
                        got = sess.run(None, {"input": X})[0].astype(np.float64)
                        ours = (net.forward(X) if out == "forward" else net.predict(X)).astype(np.float64)
                        exact = (net.astype(np.float64).forward(X.astype(np.float64)) if out == "forward"
                                 else _predict64(net, X))
                        scale = np.abs(exact).max()
                        key = f"{np.dtype(dt).name} {out}"
                        w = worst.setdefault(key, {"onnxruntime_vs_sensinet": 0.0, "onnxruntime_vs_float64": 0.0,
                                                   "sensinet_vs_float64": 0.0, "models": 0})
                        w["onnxruntime_vs_sensinet"] = max(w["onnxruntime_vs_sensinet"], float(np.abs(got - ours).max() / scale))
                        w["onnxruntime_vs_float64"] = max(w["onnxruntime_vs_float64"], float(np.abs(got - exact).max() / scale))
                        w["sensinet_vs_float64"] = max(w["sensinet_vs_float64"], float(np.abs(ours - exact).max() / scale))
                        w["models"] += 1
                        n += 1
    record = {"models": n, "inputs": 257, "onnxruntime": ort.__version__, "sensinet": sn.__version__,
              "engine": sn.build_info(), "largest_relative_difference": worst}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "agreement.json").write_text(json.dumps(record, indent=1) + "\n")
    for key, w in worst.items():
        print(f"{key:18s} onnxruntime vs sensinet {w['onnxruntime_vs_sensinet']:.1e}; from float64: onnxruntime "
              f"{w['onnxruntime_vs_float64']:.1e}, sensinet {w['sensinet_vs_float64']:.1e}")


if __name__ == "__main__":
    main()
