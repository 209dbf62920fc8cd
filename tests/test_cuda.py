"""The optional CUDA backend.

GPU tests (``pytest.mark.cuda``) skip cleanly without a usable device; each compares a device result with the
CPU engine on the same weights and data:

* float64: max |gpu - cpu| / max |cpu| < 1e-10 (forward, loss, gradients, training steps, sensitivities);
* float32: the same measure < FLOAT32_RTOL = 1e-4 for single evaluations and < FLOAT32_TRAIN_RTOL = 1e-3
  for weights after a few training epochs. The engines differ by rounding only: cuBLAS sums the GEMMs in
  another order than Eigen, and the GPU reductions (bias gradients, losses, sensitivities) accumulate in
  double where the CPU engine sums in float.

CPU-only tests (availability checks, error messages, the device argument) run everywhere.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import sensinet as sn
from conftest import ACTIVATIONS, HEADS, make_net, mixed_layers, random_data, rel_err, run_python
from sensinet import cuda as sncuda

import fake_cuda

GPU = sn.cuda_available()
# Without a GPU, the device tests run on the CPU stand-in of the device (tests/fake_cuda.py): that checks
# the engine handle's protocol (mirror, residency, callbacks, early stopping), not the kernels. Tests that
# need the real hardware (device memory, CUDA graphs, TF32, the device list) skip.
needs_gpu = pytest.mark.usefixtures("device_backend")
needs_real_gpu = pytest.mark.skipif(not GPU, reason="needs a usable CUDA device (and sensinet._cuda)")
no_gpu = pytest.mark.skipif(GPU, reason="a CUDA device is available")


@pytest.fixture
def device_backend(monkeypatch):
    if not GPU:
        fake_cuda.install(monkeypatch)

FLOAT64_RTOL = 1e-10
FLOAT32_RTOL = 1e-4
FLOAT32_TRAIN_RTOL = 1e-3
DTYPES = (np.float64, np.float32)


def rtol(dtype, train: bool = False) -> float:
    if dtype == np.float64:
        return FLOAT64_RTOL
    return FLOAT32_TRAIN_RTOL if train else FLOAT32_RTOL


def pair(n_inputs, layers, loss="mse", dtype=np.float64, seed=0):
    """The same network on the CPU and on the GPU."""
    cpu = make_net(n_inputs, layers, loss=loss, seed=seed, dtype=dtype)
    return cpu, cpu.copy().to("cuda")


# ============================================================================================ CPU-only tests
def test_cuda_available_never_raises_and_is_a_bool():
    assert isinstance(sn.cuda_available(), bool)
    info = sn.cuda_info()
    assert set(info) >= {"available", "built", "reason", "devices", "build"}
    assert info["available"] == sn.cuda_available()
    if not info["available"]:
        assert isinstance(info["reason"], str) and info["reason"]


@no_gpu
def test_cuda_available_is_false_without_a_gpu():
    assert sn.cuda_available() is False
    assert sn.cuda_info()["devices"] == []


@no_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "CUDA"])
def test_network_on_cuda_without_a_gpu_raises_a_clear_error(device):
    with pytest.raises(RuntimeError, match="CUDA is not available: "):
        sn.Network(3, [sn.Dense(4, "relu"), sn.Dense(1)], device=device)


@no_gpu
def test_to_cuda_without_a_gpu_raises_and_keeps_the_network_usable():
    net = sn.Network(3, [sn.Dense(4, "tanh"), sn.Dense(1)], seed=0)
    before = net.parameters.copy()
    with pytest.raises(RuntimeError, match="CUDA is not available: "):
        net.to("cuda")
    assert net.device == "cpu"
    np.testing.assert_array_equal(net.parameters, before)
    assert net.forward(np.ones((2, 3))).shape == (2, 1)


@pytest.mark.parametrize("device", ["foo", "gpu", "cuda:x", "cuda:-1", "", 3, None])
def test_bad_device_is_a_value_error(device):
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N'"):
        sn.Network(3, [sn.Dense(1)], device=device)
    net = sn.Network(3, [sn.Dense(1)])
    with pytest.raises(ValueError, match="device"):
        net.to(device)


def test_cpu_device_is_the_default_and_to_cpu_is_a_no_op():
    net = sn.Network(3, [sn.Dense(4, "relu"), sn.Dense(1)], seed=0, device="cpu")
    assert net.device == "cpu"
    p = net.parameters
    assert net.to("cpu") is net
    assert np.shares_memory(net.parameters, p)  # still the zero-copy view
    assert "device" not in repr(net)


def test_parse_device():
    assert sncuda.parse_device("cpu") == ("cpu", None)
    assert sncuda.parse_device("cuda") == ("cuda", 0)
    assert sncuda.parse_device("cuda:0") == ("cuda", 0)
    assert sncuda.parse_device("cuda:2") == ("cuda:2", 2)


def test_version_text_mentions_cuda():
    from sensinet.cli import _version_text

    text = _version_text()
    assert "CUDA: " in text
    assert ("CUDA: yes" in text) == GPU


def test_importing_the_cuda_extension_is_clean():
    """Without a GPU (or a driver) the extension either is absent / fails to import with ImportError, or
    imports and reports no device; it never crashes the interpreter."""
    r = run_python("""
        import sensinet as sn
        try:
            import sensinet._cuda as c
        except ImportError as exc:
            print("import-error", exc)
        else:
            print("imported", c.available(), c.probe()[0] >= 0)
        print("available", sn.cuda_available())
    """)
    assert r.returncode == 0, r.stderr
    assert ("available True" in r.stdout) == GPU


@no_gpu
def test_cuda_models_without_a_device_raise_runtime_error():
    mod = sncuda._load()
    if mod is None:
        pytest.skip("sensinet._cuda is not built")
    with pytest.raises(RuntimeError, match="CUDA"):
        mod.CudaModel64([("dense", 2, 3, 0, "relu", 0.01, 0.0)], "mse")
    assert mod.available() is False
    assert mod.devices() == []
    assert mod.bytes_in_use() == 0


# ============================================================================================ GPU tests
def _arch(act, n_out=2):
    return mixed_layers(6, act, n_out)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_forward_equals_cpu(act, dtype):
    cpu, dev = pair(4, _arch(act), dtype=dtype)
    X, _ = random_data(cpu, n=37)
    X = X.astype(dtype)
    assert rel_err(dev.forward(X), cpu.forward(X)) < rtol(dtype)
    assert rel_err(dev.layer_input(X, 2), cpu.layer_input(X, 2)) < rtol(dtype)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", list(HEADS))
def test_predict_equals_cpu_for_every_head(head, dtype):
    loss, k = HEADS[head]
    cpu, dev = pair(3, [sn.Dense(8, "tanh"), sn.Residual(8, "relu"), sn.Dense(k)], loss=loss, dtype=dtype)
    X, _ = random_data(cpu, n=25)
    assert rel_err(dev.predict(X), cpu.predict(X)) < rtol(dtype)


@pytest.mark.cuda
@needs_gpu
def test_forward_in_several_chunks_equals_cpu():
    cpu, dev = pair(16, [sn.Dense(1500, "relu"), sn.Dense(3)])  # 2^22 / 1500 -> 2796 rows per chunk
    X = np.random.default_rng(0).normal(size=(7000, 16))
    assert rel_err(dev.forward(X), cpu.forward(X)) < 1e-10


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("act", ["tanh", "relu", "softplus"])
def test_loss_and_gradient_equal_cpu(act, head, dtype):
    loss, k = HEADS[head]
    layers = [sn.Dense(6, act, l2=1e-2), sn.Residual(6, act, hidden=7, weights=2, l2=3e-3),
              sn.Residual(6, act, weights=1), sn.Dense(k, l2=1e-3)]
    cpu, dev = pair(4, layers, loss=loss, dtype=dtype)
    X, y = random_data(cpu, n=29)
    Jc, gc = cpu.loss_and_grad(X, y)
    Jd, gd = dev.loss_and_grad(X, y)
    assert abs(Jd - Jc) / abs(Jc) < rtol(dtype)
    assert rel_err(gd, gc) < rtol(dtype)
    assert abs(dev.objective(X, y) - cpu.objective(X, y)) / abs(Jc) < rtol(dtype)
    theta = cpu.parameters * np.asarray(1.1, dtype)  # evaluated at another theta
    Jc2, gc2 = cpu.loss_and_grad(X, y, theta=theta)
    Jd2, gd2 = dev.loss_and_grad(X, y, theta=theta)
    assert abs(Jd2 - Jc2) / abs(Jc2) < rtol(dtype) and rel_err(gd2, gc2) < rtol(dtype)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", [0, (1, 2), 3, (2, 3)])
def test_block_gradient_equals_cpu_and_the_full_gradient_slice(block, dtype):
    cpu, dev = pair(4, _arch("tanh", 3), loss="cross_entropy", dtype=dtype)
    X, y = random_data(cpu, n=31)
    _, full = dev.loss_and_grad(X, y)
    Jb, gb = dev.loss_and_grad(X, y, layers=block)
    Jc, gc = cpu.loss_and_grad(X, y, layers=block)
    assert rel_err(gb, gc) < rtol(dtype)
    assert rel_err(gb, full[dev.block_slice(block)]) < rtol(dtype)
    assert abs(Jb - Jc) / abs(Jc) < rtol(dtype)


@pytest.mark.cuda
@needs_gpu
def test_gradient_over_several_chunks_equals_cpu():
    cpu, dev = pair(8, [sn.Dense(2000, "tanh"), sn.Dense(2)])  # 2097 rows per chunk
    X = np.random.default_rng(1).normal(size=(5000, 8))
    y = np.random.default_rng(2).normal(size=(5000, 2))
    Jc, gc = cpu.loss_and_grad(X, y)
    Jd, gd = dev.loss_and_grad(X, y)
    assert abs(Jd - Jc) / Jc < 1e-10 and rel_err(gd, gc) < 1e-10


OPTIMIZERS = {
    "sgd": lambda: sn.SGD(lr=0.05),
    "momentum": lambda: sn.SGD(lr=0.05, momentum=0.9),
    "nesterov": lambda: sn.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda: sn.Adam(lr=1e-2),
}


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("head", ["mse3", "ce3", "bce2"])
def test_training_steps_equal_cpu(opt, head, dtype):
    """Same seeded permutation, same minibatches (70 rows, batches of 16: a partial last batch), same
    optimizer conventions: the weights, loss curves and optimizer state follow the CPU engine."""
    loss, k = HEADS[head]
    layers = [sn.Dense(8, "tanh", l2=1e-3), sn.Residual(8, "tanh", hidden=5), sn.Residual(8, "sigmoid", weights=1),
              sn.Dense(k)]
    cpu, dev = pair(5, layers, loss=loss, dtype=dtype)
    X, y = random_data(cpu, n=70)
    oc, od = OPTIMIZERS[opt](), OPTIMIZERS[opt]()
    cpu.fit(X, y, optimizer=oc, epochs=3, batch_size=16, seed=7)
    dev.fit(X, y, optimizer=od, epochs=3, batch_size=16, seed=7)
    tol = rtol(dtype, train=True)
    assert rel_err(dev.parameters, cpu.parameters) < tol
    assert rel_err(dev.history_.loss_curve, cpu.history_.loss_curve) < tol
    assert dev.history_.steps == cpu.history_.steps == 15
    assert od.t == oc.t
    if oc.state_m is not None and np.any(oc.state_m):
        assert rel_err(od.state_m, oc.state_m) < tol
    # the host mirror follows the device
    np.testing.assert_array_equal(dev.engine.host().read_parameters(), dev.parameters)


@pytest.mark.cuda
@needs_real_gpu
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_cuda_graph_steps_equal_plain_launches(opt, dtype):
    """Full minibatches replayed as CUDA graphs give bitwise the weights of plain launches."""
    base = make_net(6, [sn.Dense(32, "relu"), sn.Dense(32, "tanh"), sn.Dense(3)], loss="cross_entropy", dtype=dtype)
    X, y = random_data(base, n=300)
    Y = np.eye(3, dtype=dtype)[y]
    X = X.astype(dtype)
    results = []
    for graphs in (True, False):
        dev = base.copy().to("cuda")
        m = np.zeros(dev.n_params, dtype)
        v = np.zeros(dev.n_params, dtype)
        r = dev.engine._dev.train(X, Y, optimizer=opt, lr=0.01, momentum=0.0, state_m=m, state_v=v, epochs=4,
                            batch_size=32, seed=3, cuda_graphs=graphs)
        assert r["graphs"] == graphs
        results.append((dev.parameters, r["epoch_loss"], m, r["t"]))
    (p1, l1, m1, t1), (p2, l2, m2, t2) = results
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(m1, m2)
    assert t1 == t2


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("shuffle", [True, False])
def test_long_training_with_graphs_equals_cpu(shuffle):
    cpu, dev = pair(6, [sn.Dense(24, "tanh"), sn.Dense(24, "tanh"), sn.Dense(2)])
    X, y = random_data(cpu, n=512)
    cpu.fit(X, y, optimizer=sn.Adam(lr=1e-3), epochs=5, batch_size=32, shuffle=shuffle, seed=11)
    dev.fit(X, y, optimizer=sn.Adam(lr=1e-3), epochs=5, batch_size=32, shuffle=shuffle, seed=11)
    assert rel_err(dev.parameters, cpu.parameters) < 1e-10


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("block", [(1, 2), 2, (0, 1)])
def test_block_training_equals_cpu(block):
    cpu, dev = pair(4, _arch("tanh", 2))
    X, y = random_data(cpu, n=50)
    before = cpu.parameters.copy()
    cpu.fit(X, y, optimizer="adam", lr=1e-2, epochs=2, batch_size=8, layers=block, seed=1)
    dev.fit(X, y, optimizer="adam", lr=1e-2, epochs=2, batch_size=8, layers=block, seed=1)
    assert rel_err(dev.parameters, cpu.parameters) < 1e-10
    outside = np.ones(cpu.n_params, bool)
    outside[cpu.block_slice(block)] = False
    np.testing.assert_array_equal(dev.parameters[outside], before[outside])


@pytest.mark.cuda
@needs_gpu
def test_validation_early_stopping_and_callbacks_equal_cpu():
    cpu, dev = pair(4, [sn.Dense(16, "tanh"), sn.Dense(1)])
    X, y = random_data(cpu, n=120, seed=1)
    Xv, yv = random_data(cpu, n=40, seed=2)
    seen = {"cpu": [], "cuda": []}
    for name, net in (("cpu", cpu), ("cuda", dev)):
        net.fit(X, y, optimizer=sn.SGD(lr=0.2, momentum=0.9), epochs=30, batch_size=16, seed=5,
                validation_data=(Xv, yv), patience=3, callback=lambda info, n=name: seen[n].append(dict(info)),
                callback_every=4)
    assert rel_err(dev.history_.val_curve, cpu.history_.val_curve) < 1e-10
    assert dev.history_.best_epoch == cpu.history_.best_epoch
    assert dev.history_.status == cpu.history_.status
    assert rel_err(dev.parameters, cpu.parameters) < 1e-10
    assert [(i["epoch"], i["step"], i["epoch_end"]) for i in seen["cuda"]] == \
        [(i["epoch"], i["step"], i["epoch_end"]) for i in seen["cpu"]]


@pytest.mark.cuda
@needs_gpu
def test_callback_sees_the_current_weights_and_may_stop():
    dev = make_net(3, [sn.Dense(8, "tanh"), sn.Dense(1)]).to("cuda")
    X, y = random_data(dev, n=64)
    snaps = []

    def cb(info):
        snaps.append(dev.parameters.copy())
        return info["step"] >= 6

    dev.fit(X, y, optimizer="sgd", lr=0.1, epochs=10, batch_size=8, callback=cb, callback_every=3)
    assert dev.history_.status == "stopped" and dev.history_.steps == 6
    np.testing.assert_array_equal(snaps[-1], dev.parameters)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("lr", [1e3, 1e6])
def test_divergence_equals_cpu(lr):
    cpu, dev = pair(3, [sn.Dense(16, "relu"), sn.Dense(1)])
    X, y = random_data(cpu, n=64)
    y = y * 1e3
    for net in (cpu, dev):
        with pytest.raises(sn.DivergenceError):
            net.fit(X, y, optimizer="sgd", lr=lr, epochs=50, batch_size=8, seed=0)
    assert dev.history_.steps == cpu.history_.steps
    assert np.isfinite(dev.parameters).all()
    assert rel_err(dev.parameters, cpu.parameters) < 1e-10


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("max_steps", [0, 1, 5, 13])
def test_max_steps_equal_cpu(max_steps):
    cpu, dev = pair(3, [sn.Dense(8, "tanh"), sn.Dense(1)])
    X, y = random_data(cpu, n=40)
    for net in (cpu, dev):
        net.fit(X, y, optimizer="adam", epochs=10, batch_size=4, max_steps=max_steps)
    assert dev.history_.steps == cpu.history_.steps == max_steps
    assert rel_err(dev.parameters, cpu.parameters) < 1e-10 or max_steps == 0


@pytest.mark.cuda
@needs_gpu
def test_lbfgs_on_a_cuda_network_equals_the_cpu_engine():
    """L-BFGS runs on the host mirror for now; the result reaches the device."""
    cpu = make_net(3, [sn.Dense(4, "tanh"), sn.Dense(1)])
    dev = cpu.copy().to("cuda")
    X, y = random_data(dev, n=10)
    cpu.fit(X, y, optimizer="lbfgs")
    dev.fit(X, y, optimizer="lbfgs")
    assert rel_err(dev.parameters, cpu.parameters) < 1e-10
    assert rel_err(dev.predict(X), cpu.predict(X)) < 1e-10


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", ["mean_abs", "rms", "mean"])
@pytest.mark.parametrize("wrt", ["output", "loss"])
@pytest.mark.parametrize("head", ["mse3", "ce3", "bce1"])
def test_sensitivities_equal_cpu(head, wrt, reduce, dtype):
    loss, k = HEADS[head]
    cpu, dev = pair(5, [sn.Dense(7, "softplus"), sn.Residual(7, "tanh", hidden=4), sn.Residual(7, "relu", weights=1),
                        sn.Dense(6, "sigmoid"), sn.Dense(k)], loss=loss, dtype=dtype)
    X, y = random_data(cpu, n=53)
    rc = sn.sensitivity(cpu, X, y, wrt=wrt, reduce=reduce)
    rd = sn.sensitivity(dev, X, y, wrt=wrt, reduce=reduce)
    assert [s.name for s in rd.sites] == [s.name for s in rc.sites]
    for Md, Mc in zip(rd.matrices, rc.matrices):
        assert Md.shape == Mc.shape
        assert rel_err(Md, Mc) < rtol(dtype)


@pytest.mark.cuda
@needs_gpu
def test_sensitivities_in_several_chunks_and_group_sensitivity_equal_cpu():
    cpu, dev = pair(20, [sn.Dense(600, "tanh"), sn.Dense(600, "relu"), sn.Dense(10)], loss="cross_entropy")
    X, y = random_data(cpu, n=6000)  # 2^24 / (10 * 600) -> 2796 rows per chunk
    for wrt in ("output", "loss"):
        rc = sn.sensitivity(cpu, X, y, wrt=wrt)
        rd = sn.sensitivity(dev, X, y, wrt=wrt)
        for Md, Mc in zip(rd.matrices, rc.matrices):
            assert rel_err(Md, Mc) < 1e-10
    groups = [{1: [0, 3, 5]}, {2: None, 0: [1, 2]}]
    assert rel_err(sn.group_sensitivity(dev, X, y, groups), sn.group_sensitivity(cpu, X, y, groups)) < 1e-10


@pytest.mark.cuda
@needs_gpu
def test_per_sample_sensitivities_on_cuda_come_from_the_host_copy():
    cpu, dev = pair(3, [sn.Dense(5, "tanh"), sn.Dense(2)])
    X, _ = random_data(cpu, n=9)
    rc = sn.sensitivity(cpu, X, per_sample=True)
    rd = sn.sensitivity(dev, X, per_sample=True)
    for a, b in zip(rd.per_sample, rc.per_sample):
        np.testing.assert_array_equal(a, b)


@pytest.mark.cuda
@needs_real_gpu
@needs_gpu
def test_out_of_memory_is_a_memory_error_naming_the_size():
    mod = sncuda._load()
    with pytest.raises(MemoryError, match=r"CUDA out of memory: cannot allocate .*\(1125899906842624 bytes\)"):
        mod._try_alloc(1 << 50)
    with pytest.raises(MemoryError, match="out of memory.*bytes"):
        mod.CudaModel32([("dense", 1 << 18, 1 << 18, 0, "identity", 0.01, 0.0)], "mse")  # 256 GiB
    net = make_net(3, [sn.Dense(4, "tanh"), sn.Dense(1)]).to("cuda")  # the device still works
    assert np.isfinite(net.forward(np.ones((5, 3)))).all()


@pytest.mark.cuda
@needs_real_gpu
@needs_gpu
def test_no_device_memory_leak_over_200_fits():
    mod = sncuda._load()
    X = np.random.default_rng(0).normal(size=(256, 8))
    y = np.random.default_rng(1).normal(size=256)

    def one_round(i):
        net = make_net(8, [sn.Dense(64, "relu"), sn.Dense(1)], seed=i).to("cuda")
        net.fit(X, y, optimizer="adam", epochs=2, batch_size=16, validation_data=(X[:64], y[:64]))
        net.loss_and_grad(X, y)
        sn.sensitivity(net, X[:32])
        return net

    keep = one_round(0)  # warm-up: cuBLAS / graph resources of the first use, buffers of every size used
    keep.fit(X, y, optimizer="sgd", lr=0.01, epochs=1, batch_size=32)
    base_bytes = mod.bytes_in_use()
    base_free = keep.engine._dev.memory_info()["free"]
    for i in range(200):
        keep.fit(X, y, optimizer="sgd", lr=0.01, epochs=1, batch_size=32)
        if i % 20 == 0:
            one_round(i)
    assert mod.bytes_in_use() == base_bytes
    assert abs(keep.engine._dev.memory_info()["free"] - base_free) < 16 << 20


@pytest.mark.cuda
@needs_gpu
def test_data_moves_to_the_device_once_per_fit():
    dev = make_net(10, [sn.Dense(32, "relu"), sn.Dense(2)]).to("cuda")
    X, y = random_data(dev, n=4000)
    Y = np.asarray(y, np.float64)
    epochs, bs = 3, 40  # 300 steps
    dev.reset_transfer_stats()
    dev.fit(X, y, optimizer="adam", epochs=epochs, batch_size=bs)
    s = dev.transfer_stats()
    P = dev.n_params * 8
    # X, Y and the optimizer state once, the permutation (8 bytes a row) once per epoch; nothing per step
    assert s["h2d_bytes"] <= X.nbytes + Y.nbytes + 2 * P + epochs * len(X) * 8 + 4096
    assert s["h2d_calls"] <= 4 + epochs
    assert s["d2h_bytes"] <= 4 * P + 300 * 8 + 4096  # state, parameters, step losses
    assert dev.history_.steps == 300


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_second_fit_uploads_neither_data_nor_state(dtype):
    """Parameters, optimizer state and prepared data stay on the device between calls."""
    cpu = make_net(10, [sn.Dense(32, "relu"), sn.Dense(16, "tanh"), sn.Dense(2)], loss="cross_entropy", dtype=dtype)
    dev = cpu.copy().to("cuda")
    X, y = random_data(dev, n=512)
    X = X.astype(dtype)
    oc, od = sn.Adam(1e-2), sn.Adam(1e-2)
    val = (X[:64], y[:64])
    dev.fit(X, y, optimizer=od, epochs=2, batch_size=32, validation_data=val)
    cpu.fit(X, y, optimizer=oc, epochs=2, batch_size=32, validation_data=val)
    dev.reset_transfer_stats()
    dev.fit(X, y, optimizer=od, epochs=2, batch_size=32, validation_data=val)
    cpu.fit(X, y, optimizer=oc, epochs=2, batch_size=32, validation_data=val)
    s = dev.transfer_stats()
    assert (s["h2d_data_bytes"], s["h2d_state_bytes"], s["h2d_param_bytes"]) == (0, 0, 0)
    assert (s["d2h_state_bytes"], s["d2h_param_bytes"]) == (0, 0)
    assert rel_err(dev.parameters, cpu.parameters) < rtol(dtype, train=True)  # the kept state was the right one
    assert rel_err(od.state_v, oc.state_v) < rtol(dtype, train=True)
    # a Dataset, sensitivities and objectives reuse the same device copies
    data = sn.Dataset(X, y)
    dev.fit(data, optimizer=od, epochs=1)
    dev.reset_transfer_stats()
    dev.fit(data, optimizer=od, epochs=1)
    dev.objective(data)
    sn.sensitivity(dev, data, wrt="loss")
    assert dev.transfer_stats()["h2d_data_bytes"] == 0
    X[0, 0] += 1.0  # changed in place: uploaded again, never stale
    assert rel_err(dev.predict(X), dev.copy().to("cpu").predict(X)) < rtol(dtype)


@pytest.mark.cuda
@needs_gpu
def test_parameter_views_of_a_cuda_network_write_through():
    cpu = make_net(4, [sn.Dense(8, "tanh"), sn.Dense(2)])
    dev = cpu.copy().to("cuda")
    X, y = random_data(dev, n=40)
    W = dev.layer_parameters(0)["W"]
    W[...] = 0.3
    cpu.layer_parameters(0)["W"][...] = 0.3
    assert rel_err(dev.forward(X), cpu.forward(X)) < 1e-12
    dev.fit(X, y, epochs=2, seed=1)
    cpu.fit(X, y, epochs=2, seed=1)
    assert rel_err(W, cpu.layer_parameters(0)["W"]) < 1e-10  # a held view is never stale


@pytest.mark.cuda
@needs_gpu
def test_device_round_trip_copy_pickle_and_writable_parameters():
    net = make_net(3, [sn.Dense(6, "relu"), sn.Residual(6, "tanh"), sn.Dense(2)], loss="cross_entropy")
    theta = net.parameters.copy()
    assert net.to("cuda") is net and net.device == "cuda"
    assert "device='cuda'" in repr(net)
    p = net.parameters
    assert p.flags.writeable
    np.testing.assert_array_equal(p, theta)
    del p
    net.parameters = theta * 2  # the setter uploads
    np.testing.assert_array_equal(net.parameters, theta * 2)
    c = net.copy()
    assert c.device == "cuda" and c.engine._dev is not net.engine._dev
    c.parameters = theta
    np.testing.assert_array_equal(net.parameters, theta * 2)
    u = pickle.loads(pickle.dumps(net))
    assert u.device == "cuda"
    np.testing.assert_array_equal(u.parameters, theta * 2)
    f = net.astype(np.float32)
    assert f.device == "cuda" and f.dtype == np.float32
    net.reinitialize(3)
    assert not np.array_equal(net.parameters, theta * 2)
    net.to("cpu")
    assert net.device == "cpu" and net.engine.device == "cpu" and net.parameters.flags.writeable


@pytest.mark.cuda
@needs_real_gpu
@needs_gpu
def test_cuda_info_lists_the_device():
    info = sn.cuda_info()
    assert info["available"] and info["devices"] and info["devices"][0]["name"]
    dev = make_net(3, [sn.Dense(4), sn.Dense(1)]).to("cuda")
    assert dev.engine._dev.device_name() == info["devices"][0]["name"]
    m = dev.engine._dev.memory_info()
    assert 0 < m["free"] <= m["total"] and m["model_bytes"] > 0


@pytest.mark.cuda
@needs_real_gpu
@needs_gpu
def test_tf32_precision_accuracy_against_float64():
    """TF32 products: measured against float64 (and reported); full float32 stays within float32 rounding."""
    ref = make_net(256, [sn.Dense(512, "relu"), sn.Dense(512, "tanh"), sn.Dense(4)])
    X, _ = random_data(ref, n=1024)
    want = ref.forward(X)
    f32 = ref.astype(np.float32).to("cuda")
    tf32 = ref.astype(np.float32).to("cuda")
    tf32.precision = "tf32"
    e32 = rel_err(f32.forward(X.astype(np.float32)), want)
    etf = rel_err(tf32.forward(X.astype(np.float32)), want)
    print(f"relative error against float64: float32 {e32:.2e}, tf32 {etf:.2e}")
    assert e32 < 1e-5
    assert etf < 1e-2
    assert etf > e32  # tensor cores were used


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("width", [300, 1100, 2049])  # parameter vectors of ~0.7, 9.7 and 33.6 MB (float64)
def test_staged_transfers_round_trip_exactly(width):
    """Large transfers go through the pinned double buffer in 8 MiB chunks: sizes below, across and
    beyond several chunks (and not multiples of them) must arrive bit for bit."""
    net = sn.Network(width, [sn.Dense(width), sn.Dense(3)], seed=0)
    theta = np.random.default_rng(width).normal(size=net.n_params)
    dev = net.to("cuda")
    dev.parameters = theta
    back = dev.engine._dev.get_parameters()
    np.testing.assert_array_equal(back, theta)
    X = np.random.default_rng(1).normal(size=(4096, width))  # a large upload of data as well
    cpu = dev.copy().to("cpu")
    assert rel_err(dev.forward(X), cpu.forward(X)) < 1e-12


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_patterns_on_the_device_equal_the_cpu_engine(dtype):
    cpu = make_net(7, [sn.Dense(40, "relu"), sn.Residual(40, "leaky_relu", hidden=70), sn.Dense(33, "relu"),
                       sn.Dense(2)], dtype=dtype)
    dev = cpu.copy().to("cuda")
    X = np.random.default_rng(0).normal(size=(3000, 7)).astype(dtype)
    layers = [0, 1, 2]
    P_dev = dev.engine.relu_patterns(dev.input_matrix(X), layers)
    P_cpu = cpu.engine.relu_patterns(cpu.input_matrix(X), layers)
    assert P_dev.shape == P_cpu.shape == (3000, 3)  # 40 + 70 + 33 bits: words shared across layers
    if dtype == np.float64:
        np.testing.assert_array_equal(P_dev, P_cpu)
        np.testing.assert_array_equal(sn.explain(dev, X[:500]).counts_, sn.explain(cpu, X[:500]).counts_)
    else:  # a pre-activation near 0 may round to either side in float32
        assert np.mean(np.all(P_dev == P_cpu, axis=1)) > 0.99
