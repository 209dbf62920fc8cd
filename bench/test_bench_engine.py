"""Engine benchmarks (issue: foundation), each sensinet entry beside PyTorch CPU in the same group.

(a) one SGD training step of 784 -> 512x4 relu -> 10 softmax, batch 256 (timed as an epoch of 8 steps,
    so the figure is the steady-state step; divide the median by 8), float32 and float64, one thread;
(b) a tiny net 2 -> 20x3 tanh -> 1, batch 64, an epoch of 1000 steps, float32 and float64;
(c) forward only of (a); (d) (a) with two threads.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import mlp, needs_torch, torch, torch_flat, torch_twin

STEPS = 8


def _data(n: int, d: int, k: int, dtype, classes: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, k, n) if classes else np.sin(X[:, :1] * 2) * X[:, 1:2]
    return X, y


def _sgd_epoch_pair(net, X, y, batch, lr, loss):
    """Callables doing one epoch of plain SGD in sensinet and in torch, from identical weights."""
    import sensinet as sn

    tmodel = torch_twin(net)
    opt_t = torch.optim.SGD(tmodel.parameters(), lr=lr)
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y if loss == "cross_entropy" else np.asarray(y, dtype=X.dtype))
    lossf = torch.nn.functional.cross_entropy if loss == "cross_entropy" else torch.nn.functional.mse_loss
    opt_s = sn.SGD(lr=lr)

    def run_sensinet():
        net.fit(X, y, optimizer=opt_s, epochs=1, batch_size=batch, shuffle=False)

    def run_torch():
        for s in range(0, X.shape[0], batch):
            opt_t.zero_grad(set_to_none=True)
            lossf(tmodel(Xt[s:s + batch]), yt[s:s + batch]).backward()
            opt_t.step()

    return run_sensinet, run_torch, tmodel


def _check_same_epoch(net, X, y, batch, lr, loss, rtol):
    """One epoch from identical weights must give the same weights in both (the benchmark's correctness)."""
    ref = net.copy()
    run_s, run_t, tmodel = _sgd_epoch_pair(ref, X, y, batch, lr, loss)
    run_s()
    run_t()
    np.testing.assert_allclose(ref.parameters, torch_flat(tmodel), rtol=rtol, atol=rtol)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("impl", ["sensinet", "torch"])
@pytest.mark.parametrize("n_threads", [1, 2], ids=["1thread", "2threads"])
def test_step_784_512x4(benchmark, threads, impl, dtype, n_threads):
    threads(n_threads)
    X, y = _data(256 * STEPS, 784, 10, dtype, classes=True)
    net = mlp(784, [512] * 4, 10, "relu", "cross_entropy", dtype)
    if impl == "sensinet":
        _check_same_epoch(net, X[:512], y[:512], 256, 0.01, "cross_entropy", 1e-9 if dtype == np.float64 else 2e-4)
    run_s, run_t, _ = _sgd_epoch_pair(net, X, y, 256, 0.01, "cross_entropy")
    benchmark.group = f"(a/d) SGD step 784-512x4-10 b256 {np.dtype(dtype).name} {n_threads} thread(s), x{STEPS} steps"
    benchmark.extra_info["steps"] = STEPS
    benchmark.extra_info["gflop_per_step"] = 1.6336e9 / 1e9
    benchmark.pedantic(run_s if impl == "sensinet" else run_t, rounds=10, warmup_rounds=2)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("impl", ["sensinet", "torch"])
def test_tiny_epoch_1000_steps(benchmark, threads, impl, dtype):
    threads(1)
    X, y = _data(64 * 1000, 2, 1, dtype, classes=False)
    net = mlp(2, [20] * 3, 1, "tanh", "mse", dtype)
    if impl == "sensinet":
        _check_same_epoch(net, X[:640], y[:640], 64, 0.05, "mse", 1e-9 if dtype == np.float64 else 1e-4)
    run_s, run_t, _ = _sgd_epoch_pair(net, X, y, 64, 0.05, "mse")
    benchmark.group = f"(b) tiny 2-20x3-1 tanh, epoch of 1000 SGD steps b64 {np.dtype(dtype).name}"
    benchmark.extra_info["steps"] = 1000
    benchmark.pedantic(run_s if impl == "sensinet" else run_t, rounds=5, warmup_rounds=1)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("impl", ["sensinet", "torch"])
def test_forward_784_512x4(benchmark, threads, impl, dtype):
    threads(1)
    X, _ = _data(256, 784, 10, dtype, classes=True)
    net = mlp(784, [512] * 4, 10, "relu", "cross_entropy", dtype)
    tmodel = torch_twin(net)
    Xt = torch.from_numpy(X)
    with torch.no_grad():
        ref = tmodel(Xt).numpy()
    np.testing.assert_allclose(net.forward(X), ref, rtol=1e-9 if dtype == np.float64 else 1e-4,
                               atol=1e-9 if dtype == np.float64 else 1e-4)

    def run_torch():
        with torch.no_grad():
            return tmodel(Xt)

    benchmark.group = f"(c) forward 784-512x4-10 b256 {np.dtype(dtype).name}"
    benchmark.pedantic((lambda: net.forward(X)) if impl == "sensinet" else run_torch, rounds=20, warmup_rounds=3)
