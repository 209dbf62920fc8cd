"""CUDA benchmarks (issue 7), each sensinet entry beside PyTorch CUDA in the same group; skipped without a GPU
(sensinet's CUDA extension and a CUDA build of torch both needed).

(e) one SGD training step, float32, softmax cross-entropy:
      784 -> 4096x4 relu -> 10, batch 1024   and   784 -> 512x4 relu -> 10, batch 256,
    sensinet (one training call of STEPS steps; the data go up once per call), PyTorch eager and PyTorch
    with the whole step captured as a CUDA graph (data on the device before timing). Targets: sensinet at
    least as fast as eager and within 1.3x of the graph version.
(f) output sensitivities of all hidden layers of 784 -> 512x4 relu -> 10 on 2048 samples (mean |.| over
    samples), sensinet's stacked-seed reverse sweep against torch.func.vmap(jacrev) on CUDA.

Each entry records the achieved TFLOP/s and its fraction of the device's measured FP32 matrix-multiply
throughput (a 8192^3 torch.mm, no TF32) in extra_info; bench/report.py prints the medians and ratios.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

import sensinet as sn
from conftest import mlp, torch, torch_twin

HAVE_TORCH_CUDA = torch is not None and torch.cuda.is_available()
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not (sn.cuda_available() and HAVE_TORCH_CUDA),
                       reason="needs a CUDA device, sensinet._cuda and a CUDA build of torch"),
]

CONFIGS = {  # name: (widths, batch, batches per epoch, epochs): STEPS = batches * epochs steps per timed call
    "784-4096x4-10 b1024": ([4096] * 4, 1024, 8, 4),
    "784-512x4-10 b256": ([512] * 4, 256, 8, 32),
}
_PEAK: dict = {}


def _step_flops(widths: list, batch: int, n_in: int = 784, n_out: int = 10) -> float:
    """Multiply-add FLOPs of one training step: forward GEMMs, and two GEMMs per layer backward (the first
    layer's input gradient is not needed)."""
    dims = [n_in] + widths + [n_out]
    fwd = sum(2.0 * batch * a * b for a, b in zip(dims[:-1], dims[1:]))
    return fwd + 2 * fwd - 2.0 * batch * dims[0] * dims[1]


def _peak_tflops() -> float:
    """Measured FP32 GEMM throughput of this GPU (TF32 off, as in every benchmark here)."""
    if "fp32" not in _PEAK:
        torch.backends.cuda.matmul.allow_tf32 = False
        a = torch.randn(8192, 8192, device="cuda")
        b = torch.randn(8192, 8192, device="cuda")
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        reps = 10
        for _ in range(reps):
            a @ b
        torch.cuda.synchronize()
        _PEAK["fp32"] = 2 * 8192 ** 3 * reps / (time.perf_counter() - t0) / 1e12
    return _PEAK["fp32"]


def _data(widths, batch, n_batches, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch * n_batches, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch * n_batches)
    return X, y


def _torch_step_fns(net, X, y, batch, n_batches, epochs, lr):
    """Eager and CUDA-graph runs of the same SGD steps in torch, data already on the device."""
    torch.backends.cuda.matmul.allow_tf32 = False
    model = torch_twin(net).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    Xt = torch.from_numpy(X).cuda()
    yt = torch.from_numpy(y).cuda()
    lossf = torch.nn.functional.cross_entropy

    def eager():
        for _ in range(epochs):
            for s in range(n_batches):
                opt.zero_grad(set_to_none=True)
                lossf(model(Xt[s * batch:(s + 1) * batch]), yt[s * batch:(s + 1) * batch]).backward()
                opt.step()
        torch.cuda.synchronize()

    gmodel = torch_twin(net).cuda()
    gopt = torch.optim.SGD(gmodel.parameters(), lr=lr)
    static_x = Xt[:batch].clone()
    static_y = yt[:batch].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as the CUDA-graph docs prescribe
        for _ in range(3):
            gopt.zero_grad(set_to_none=True)
            lossf(gmodel(static_x), static_y).backward()
            gopt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    gopt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = lossf(gmodel(static_x), static_y)
        static_loss.backward()
        gopt.step()

    def graphed():
        for _ in range(epochs):
            for s in range(n_batches):
                static_x.copy_(Xt[s * batch:(s + 1) * batch])
                static_y.copy_(yt[s * batch:(s + 1) * batch])
                graph.replay()
        torch.cuda.synchronize()

    return eager, graphed, model


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("impl", ["sensinet", "sensinet-fit", "torch-eager", "torch-cudagraph"])
def test_cuda_training_step(benchmark, impl, config):
    widths, batch, n_batches, epochs = CONFIGS[config]
    steps = n_batches * epochs
    net = mlp(784, widths, 10, "relu", "cross_entropy", np.float32)
    X, y = _data(widths, batch, n_batches)
    lr = 0.01
    if impl == "sensinet":
        dev = net.copy().to("cuda")
        Y = np.eye(10, dtype=np.float32)[y]
        m = np.zeros(dev.n_params, np.float32)
        v = np.zeros(dev.n_params, np.float32)
        # correctness: one epoch equals torch's SGD from the same weights
        eager, _, tmodel = _torch_step_fns(net, X, y, batch, n_batches, 1, lr)
        dev._engine._dev.train(X, Y, optimizer="sgd", lr=lr, state_m=m, state_v=v, epochs=1, batch_size=batch,
                               shuffle=False)
        eager()
        ref = np.concatenate([p.detach().cpu().numpy().T.ravel() if p.ndim == 2 else p.detach().cpu().numpy()
                              for p in tmodel.parameters()])
        got = dev.parameters
        assert np.max(np.abs(got - ref)) <= 1e-3 * np.max(np.abs(ref))

        def run():
            dev._engine._dev.train(X, Y, optimizer="sgd", lr=lr, state_m=m, state_v=v, epochs=epochs,
                                   batch_size=batch, shuffle=False)
        benchmark.extra_info["device"] = dev._engine._dev.device_name()
    elif impl == "sensinet-fit":  # the public API with NumPy inputs: state and data stay on the device
        dev = net.copy().to("cuda")
        opt = sn.SGD(lr)

        def run():
            dev.fit(X, y, optimizer=opt, epochs=epochs, batch_size=batch, shuffle=False)
        run()
        dev.reset_transfer_stats()
        run()
        s = dev.transfer_stats()
        assert (s["h2d_data_bytes"], s["h2d_state_bytes"], s["h2d_param_bytes"]) == (0, 0, 0), s
        benchmark.extra_info["transfers"] = s
    else:
        eager, graphed, _ = _torch_step_fns(net, X, y, batch, n_batches, epochs, lr)
        run = eager if impl == "torch-eager" else graphed
    run()  # warm-up (cuBLAS heuristics, graph capture, allocator)
    benchmark.group = f"(e) CUDA SGD step {config} f32, x{steps} steps"
    benchmark.extra_info["steps"] = steps
    flops = _step_flops(widths, batch)
    benchmark.extra_info["gflop_per_step"] = flops / 1e9
    benchmark.pedantic(run, rounds=10, warmup_rounds=1)
    per_step = benchmark.stats.stats.median / steps
    tflops = flops / per_step / 1e12
    benchmark.extra_info["tflops"] = tflops
    benchmark.extra_info["fp32_gemm_peak_tflops"] = _peak_tflops()
    benchmark.extra_info["fraction_of_gemm_peak"] = tflops / _peak_tflops()


@pytest.mark.parametrize("impl", ["sensinet", "torch-vmap-jacrev"])
def test_cuda_output_sensitivities(benchmark, impl):
    """Output sensitivities of the four hidden layers of 784-512x4-10 on 2048 samples: mean over samples of
    |d yhat_k / d h_j * h_j| per (output k, neuron j)."""
    net = mlp(784, [512] * 4, 10, "relu", "cross_entropy", np.float32)
    X, _ = _data([512] * 4, 2048, 1, seed=3)
    dev = net.copy().to("cuda")
    layers = [1, 2, 3, 4]
    ref = sn.sensitivity(dev, X, sites=layers, wrt="output")
    if impl == "sensinet":
        def run():
            return sn.sensitivity(dev, X, sites=layers, wrt="output")
    else:
        from torch.func import jacrev, vmap

        Ws = [torch.from_numpy(net.layer_parameters(l)["W"].copy()).cuda() for l in range(5)]
        bs = [torch.from_numpy(net.layer_parameters(l)["b"].copy()).cuda() for l in range(5)]
        Xt = torch.from_numpy(X).cuda()

        def head(h, l):  # the network above hidden layer l (h = activation of layer l-1)
            for i in range(l, 5):
                h = h @ Ws[i] + bs[i]
                if i < 4:
                    h = torch.relu(h)
            return h

        def hidden(x):
            hs, h = [], x
            for i in range(4):
                h = torch.relu(h @ Ws[i] + bs[i])
                hs.append(h)
            return hs

        def run():
            hs = hidden(Xt)
            out = []
            for l, h in zip(layers, hs):
                J = vmap(jacrev(lambda v, l=l: head(v, l)))(h)  # (n, 10, 512)
                out.append((J * h[:, None, :]).abs().mean(0))
            torch.cuda.synchronize()
            return [o.cpu().numpy() for o in out]

        got = run()
        for g, r in zip(got, ref.matrices):
            assert np.max(np.abs(g - r)) <= 1e-3 * np.max(np.abs(r))
    run()
    benchmark.group = "(f) CUDA output sensitivities 784-512x4-10, 2048 samples, 4 hidden layers, f32"
    benchmark.pedantic(run, rounds=10, warmup_rounds=1)
    # reverse sweep with 10 stacked seeds: forward + per layer one (10n x 512) x (512 x 512) GEMM
    flops = 2.0 * 2048 * (784 * 512 + 3 * 512 * 512 + 5120) + 2.0 * 10 * 2048 * (3 * 512 * 512 + 5120)
    benchmark.extra_info["tflops"] = flops / benchmark.stats.stats.median / 1e12
    benchmark.extra_info["fraction_of_gemm_peak"] = benchmark.extra_info["tflops"] / _peak_tflops()
