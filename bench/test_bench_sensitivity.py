"""Neuron-sensitivity benchmarks (issue 3), sensinet beside its peers in the same group, one thread.

(sens-a) output sensitivities S[n, k, j] = d yhat_k / d s_j of all 4 hidden layers of 784 -> 512x4 relu
         -> 10, batch 256, reduced by mean |.| over the samples: ``sensinet.sensitivity(net, X,
         layers=[1, 2, 3, 4])`` against ``torch.func.vmap(jacrev)`` of the outputs w.r.t. the scaling factors
         of all hidden layers (factors s = 1 multiplying the activations, so the Jacobian w.r.t. s is
         already (d yhat / d h) * h), float32 and float64. Both must agree before they are timed.
         The same group holds ``method="finite_difference"`` (two forward passes per neuron, 4096 here:
         ~15 s float32, ~35 s float64 on this machine), timed once (rounds=1).
(sens-b) reverse vs finite differences on the same net with width 128 (784 -> 128x4 relu -> 10, 512
         neurons; the reverse / FD ratio grows with the width), FD timed once.

The issue asks for (a) at least the speed of vmap(jacrev) and (b) at least 10x faster than FD.
``python bench/report.py bench.json`` prints the ratios (impl "sensinet" against the other impl).
"""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn
from conftest import mlp, needs_torch, torch, torch_twin

BATCH = 256
LAYERS = [1, 2, 3, 4]


def _inputs(n: int, d: int, dtype, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _torch_sensitivity(net: sn.Network, X: np.ndarray):
    """A callable computing, with torch.func.vmap(jacrev), the (K, width) mean-|.| sensitivity matrices of
    every hidden layer of a dense ReLU net (same weights as ``net``)."""
    from torch.func import jacrev, vmap

    model = torch_twin(net)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    tdt = torch.float64 if net.dtype == np.float64 else torch.float32
    ones = tuple(torch.ones(l.out_features, dtype=tdt) for l in linears[:-1])
    Xt = torch.from_numpy(X)

    def f(scales, x):  # one sample: each hidden activation times its factors
        for lin, s in zip(linears[:-1], scales):
            x = torch.relu(lin(x)) * s
        return linears[-1](x)

    jac = vmap(jacrev(f), in_dims=(None, 0))

    def run():
        with torch.no_grad():
            J = jac(ones, Xt)  # per layer (n, K, width)
            return [j.abs().mean(dim=0) for j in J]

    return run


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("impl", ["sensinet", pytest.param("torch", marks=needs_torch), "finite_difference"])
def test_output_sensitivity_784_512x4(benchmark, threads, impl, dtype):
    threads(1)
    net = mlp(784, [512] * 4, 10, "relu", "cross_entropy", dtype)
    X = _inputs(BATCH, 784, dtype)
    benchmark.group = (f"(sens) output sensitivities, 4 hidden layers, 784-512x4-10 relu b{BATCH} mean_abs "
                       f"{np.dtype(dtype).name} 1 thread")
    benchmark.extra_info["neurons"] = 4 * 512

    def run_sensinet():
        return sn.sensitivity(net, X, sites=LAYERS, reduce="mean_abs").matrices

    if impl == "finite_difference":  # 2 x 2048 forward passes: ~15 s (float32) / ~35 s (float64), timed once
        got = benchmark.pedantic(lambda: sn.sensitivity(net, X, sites=LAYERS, reduce="mean_abs",
                                                        method="finite_difference").matrices,
                                 rounds=1, warmup_rounds=0)
        ref = sn.sensitivity(net.astype(np.float64), X.astype(np.float64), sites=LAYERS).matrices
        tol = 1e-6 if dtype == np.float64 else 5e-2  # float32 FD: step 1e-3, rounding ~1e-7 / 1e-3
        for layer, a, b in zip(LAYERS, got, ref):
            assert _rel(a, b) < tol, f"layer {layer}: finite differences and reverse mode disagree"
        return
    run_torch = _torch_sensitivity(net, X) if torch is not None else None
    if run_torch is not None:  # both must agree before either is timed
        ours, ref = run_sensinet(), run_torch()
        tol = 1e-10 if dtype == np.float64 else 1e-5
        for layer, a, b in zip(LAYERS, ours, ref):
            assert a.shape == (10, 512)
            assert _rel(a, b.numpy()) < tol, f"layer {layer}: sensinet and vmap(jacrev) disagree"
    benchmark.pedantic(run_sensinet if impl == "sensinet" else run_torch, rounds=10, warmup_rounds=2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("impl", ["sensinet", "finite_difference"])
def test_reverse_vs_finite_differences_784_128x4(benchmark, threads, impl, dtype):
    threads(1)
    net = mlp(784, [128] * 4, 10, "relu", "cross_entropy", dtype)
    X = _inputs(BATCH, 784, dtype)
    method = "reverse" if impl == "sensinet" else "finite_difference"

    def run():
        return sn.sensitivity(net, X, sites=LAYERS, reduce="mean_abs", method=method).matrices

    benchmark.group = (f"(sens) reverse vs finite differences, 784-128x4-10 relu b{BATCH} mean_abs "
                       f"{np.dtype(dtype).name} 1 thread (width 128, reduced from 512)")
    benchmark.extra_info["neurons"] = 4 * 128
    if impl == "sensinet":
        benchmark.pedantic(run, rounds=10, warmup_rounds=2)
        return
    got = benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    # checked on the timed call's own result (one FD call is the expensive part of this file)
    ref = sn.sensitivity(net.astype(np.float64), X.astype(np.float64), sites=LAYERS, reduce="mean_abs").matrices
    tol = 1e-6 if dtype == np.float64 else 5e-2  # float32 FD: step 1e-3, rounding ~1e-7 / 1e-3
    for layer, a, b in zip(LAYERS, got, ref):
        assert _rel(a, b) < tol, f"layer {layer}: finite differences and reverse mode disagree"
