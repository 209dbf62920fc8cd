"""The engine boundary: one handle per backend, data validated once (and invalidated when changed), and the
device protocol (parameters, optimizer state and data stay on the device) proved on a CPU stand-in."""
from __future__ import annotations

import ast
import pathlib
import pickle
import re

import numpy as np
import pytest

import sensinet as sn
from sensinet.data import cache_stats

import fake_cuda

PKG = pathlib.Path(sn.__file__).parent


def _data(n=96, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, np.sin(X).sum(1)


def _net(device="cpu", dtype=np.float64, seed=0, d=5):
    return sn.Network(d, [sn.Dense(16, "tanh"), sn.Dense(12, "relu"), sn.Dense(1)], dtype=dtype, seed=seed,
                      device=device)


# ---------------------------------------------------------------------------------------------- the boundary
def test_only_the_engine_module_imports_the_extensions():
    """_core / _cuda are imported by _engine.py alone (cuda.py loads _cuda to report availability)."""
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        if rel in ("_engine.py", "cuda.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n.split(".")[-1] in ("_core", "_cuda") for n in names):
                offenders.append(rel)
        if re.search(r"\._model\b|(?<!\w)net\._cuda\b", path.read_text()):
            offenders.append(rel + " (reaches into the engine)")
    assert offenders == []


def test_cpu_engine_takes_the_block_input_layer():
    X, y = _data()
    net = _net()
    Xm, Ym = net.matrices(X, y)
    for first in range(net.n_layers):
        want = net.loss_and_grad(X, y, layers=(first, net.n_layers - 1))
        got = net.engine.loss_and_grad(Xm, Ym, first, -1, True, None, 0)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])
    # at another theta the block input is computed at that theta too
    theta = net.parameters * 0.5
    want = net.loss_and_grad(X, y, theta=theta, layers=2)
    got = net.engine.loss_and_grad(Xm, Ym, 2, 2, True, theta.copy(), 0)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])


def test_cpu_train_from_a_lower_input_layer_equals_training_on_the_block_input():
    X, y = _data()
    a, b = _net(), _net()
    Xm, Ym = a.matrices(X, y)
    a.engine.train(Xm, Ym, sn.SGD(0.05), epochs=2, batch_size=16, shuffle=True, seed=3, first=1, input_layer=0)
    H = b.layer_input(X, 1)
    b.engine.train(H, Ym, sn.SGD(0.05), epochs=2, batch_size=16, shuffle=True, seed=3, first=1)
    np.testing.assert_array_equal(a.parameters, b.parameters)


# ---------------------------------------------------------------------------------------------- data
def test_repeated_calls_with_the_same_arrays_validate_once():
    X, y = _data()
    net = _net()
    net.fit(X, y, epochs=1)
    before = cache_stats()
    net.fit(X, y, epochs=1, validation_data=(X, y))  # the pair (X, y) again and once as validation data
    net.objective(X, y)
    after = cache_stats()
    assert after["prepared"] == before["prepared"]
    assert after["reused"] >= before["reused"] + 3


@pytest.mark.parametrize("mutate", ["value", "row_swap", "one_bit", "y"])
def test_an_array_changed_in_place_is_prepared_again(mutate):
    X, y = _data()
    net = _net()
    J0 = net.objective(X, y)
    if mutate == "value":
        X[3, 2] += 1.0
    elif mutate == "row_swap":
        X[[0, 5]] = X[[5, 0]]
        y[[0, 5]] = y[[5, 0]]  # the objective is permutation invariant: check the prepared arrays instead
    elif mutate == "one_bit":
        X.view(np.uint64)[7, 1] ^= np.uint64(1)
    else:
        y[0] += 1.0
    before = cache_stats()["prepared"]
    Xm, Ym = net.matrices(X, y)
    assert cache_stats()["prepared"] == before + 1
    np.testing.assert_array_equal(Xm.array, X)
    np.testing.assert_array_equal(Ym.array[:, 0], y)
    fresh = _net()
    assert net.objective(X, y) == fresh.objective(X.copy(), y.copy())
    if mutate in ("value", "y"):  # (one flipped last bit need not change J)
        assert net.objective(X, y) != J0


def test_dataset_is_validated_once_and_immutable():
    X, y = _data()
    data = sn.Dataset(X, y)
    X[0, 0] = 99.0  # the data set holds its own copy
    assert data.X[0, 0] != 99.0
    with pytest.raises(ValueError):
        data.X[0, 0] = 1.0
    net = _net()
    before = cache_stats()
    net.fit(data, epochs=2, validation_data=data, patience=5)
    net.predict(data)
    sn.sensitivity(net, data, wrt="loss")
    assert cache_stats() == before  # a Dataset never goes through the array cache
    # the prepared arrays are made once per dtype and head, and shared by every call and network
    assert net.input_matrix(data) is _net().input_matrix(data)
    assert net.matrices(data, None)[1] is net.matrices(data, None)[1]
    assert len(data) == 96 and data.n_features == 5 and "Dataset" in repr(data)


@pytest.mark.parametrize("bad, exc, match", [
    (lambda X, y: sn.Dataset(X[:, :, None], y), ValueError, "X: expected a 2-D"),
    (lambda X, y: sn.Dataset(np.where(X > 2, np.nan, X), y), ValueError, "X: contains NaN"),
    (lambda X, y: sn.Dataset(X, y[:-1]), ValueError, "y: expected 96 rows"),
    (lambda X, y: sn.Dataset(X, np.full_like(y, np.inf)), ValueError, "y: contains NaN"),
    (lambda X, y: sn.Dataset(X.astype(str), y), TypeError, "X: expected a numeric"),
    (lambda X, y: _net().fit(sn.Dataset(X), epochs=1), ValueError, "no targets"),
    (lambda X, y: _net().fit(sn.Dataset(X, y), y, epochs=1), ValueError, "inside the Dataset"),
    (lambda X, y: _net(d=4).predict(sn.Dataset(X, y)), ValueError, "X: expected 4 features"),
    (lambda X, y: _net().fit(X, y, epochs=1, validation_data=sn.Dataset(X)), ValueError, "validation_data.y"),
])
def test_dataset_bad_input(bad, exc, match):
    X, y = _data()
    with pytest.raises(exc, match=match):
        bad(X, y)


def test_float32_network_from_a_float64_dataset():
    X, y = _data()
    data = sn.Dataset(X, y)
    a, b = _net(dtype=np.float32), _net(dtype=np.float32)
    a.fit(data, epochs=2, seed=1)
    b.fit(X.astype(np.float32), y.astype(np.float32), epochs=2, seed=1)
    np.testing.assert_array_equal(a.parameters, b.parameters)
    with pytest.raises(ValueError, match="X: values up to 1e.300 overflow float32"):
        _net(dtype=np.float32).predict(sn.Dataset(np.full((2, 5), 1e300)))


# ---------------------------------------------------------------------------------------------- device protocol
@pytest.fixture
def fake(monkeypatch):
    fake_cuda.install(monkeypatch)


def test_device_results_equal_the_cpu_engine(fake):
    X, y = _data()
    cpu, dev = _net(), _net("cuda")
    assert dev.device == "cuda" and "device='cuda'" in repr(dev)
    o_cpu, o_dev = sn.Adam(1e-2), sn.Adam(1e-2)
    for _ in range(2):  # the second call continues from the state kept on the device
        cpu.fit(X, y, optimizer=o_cpu, epochs=2, batch_size=16, seed=4)
        dev.fit(X, y, optimizer=o_dev, epochs=2, batch_size=16, seed=4)
    np.testing.assert_array_equal(dev.parameters, cpu.parameters)
    np.testing.assert_array_equal(o_dev.state_m, o_cpu.state_m)
    np.testing.assert_array_equal(o_dev.state_v, o_cpu.state_v)
    assert o_dev.t == o_cpu.t
    np.testing.assert_array_equal(dev.predict(X), cpu.predict(X))
    assert dev.loss_and_grad(X, y, layers=1)[0] == cpu.loss_and_grad(X, y, layers=1)[0]
    for wrt in ("output", "loss"):
        a, b = sn.sensitivity(dev, X, y, wrt=wrt), sn.sensitivity(cpu, X, y, wrt=wrt)
        for m1, m2 in zip(a.matrices, b.matrices):
            np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(sn.group_curvature(dev, X, y, [{1: None}]), sn.group_curvature(cpu, X, y, [{1: None}]))
    dev.fit(X, y, optimizer="lbfgs", epochs=1)  # on the host mirror, pushed back
    cpu.fit(X, y, optimizer="lbfgs", epochs=1)
    np.testing.assert_array_equal(dev.engine._dev._m.parameters, cpu.parameters)


def test_a_second_fit_uploads_neither_data_nor_state(fake):
    X, y = _data()
    Xv, yv = _data(32, seed=1)
    net, opt = _net("cuda"), sn.Adam(1e-2)
    net.fit(X, y, optimizer=opt, epochs=1, validation_data=(Xv, yv))
    first = net.transfer_stats()
    assert first["h2d_data_bytes"] == X.nbytes + y.nbytes + Xv.nbytes + yv.nbytes
    assert first["h2d_state_bytes"] == 2 * net.parameters.nbytes
    net.reset_transfer_stats()
    net.fit(X, y, optimizer=opt, epochs=1, validation_data=(Xv, yv))
    net.objective(X, y)
    sn.sensitivity(net, X, y, wrt="loss")
    s = net.transfer_stats()
    assert (s["h2d_data_bytes"], s["h2d_state_bytes"], s["h2d_param_bytes"]) == (0, 0, 0)
    assert (s["d2h_state_bytes"], s["d2h_param_bytes"]) == (0, 0)
    # the same with a Dataset, and a changed array is uploaded again
    data = sn.Dataset(X, y)
    net.fit(data, optimizer=opt, epochs=1)
    net.reset_transfer_stats()
    net.fit(data, optimizer=opt, epochs=1)
    assert net.transfer_stats()["h2d_data_bytes"] == 0
    X[0, 0] += 1
    net.fit(X, y, optimizer=opt, epochs=1)
    assert net.transfer_stats()["h2d_data_bytes"] == X.nbytes + y.nbytes  # the pair (X, y) is prepared anew


def test_parameter_writes_reach_the_device(fake):
    X, y = _data()
    dev, cpu = _net("cuda"), _net()
    dev.parameters[3] = 0.25  # through the view
    cpu.parameters[3] = 0.25
    np.testing.assert_array_equal(dev.forward(X), cpu.forward(X))
    W = dev.layer_parameters(1)["W"]  # a layer view, written after it was taken
    W[...] = 0.1
    cpu.layer_parameters(1)["W"][...] = 0.1
    np.testing.assert_array_equal(dev.forward(X), cpu.forward(X))
    # a view held across a fit shows the new weights (no stale mirror)
    dev.fit(X, y, epochs=1, seed=2)
    cpu.fit(X, y, epochs=1, seed=2)
    np.testing.assert_array_equal(W, cpu.layer_parameters(1)["W"])
    del W
    dev.parameters = cpu.parameters * 2
    np.testing.assert_array_equal(dev.forward(X), _with(cpu, cpu.parameters * 2).forward(X))


def _with(net, theta):
    new = net.copy()
    new.parameters = theta
    return new


def test_without_live_views_reading_parameters_downloads_lazily(fake):
    X, y = _data()
    net = _net("cuda")
    net.fit(X, y, epochs=1)
    net.reset_transfer_stats()
    net.fit(X, y, epochs=1)
    assert net.transfer_stats()["d2h_param_bytes"] == 0  # nobody read them
    p = net.parameters.copy()
    assert net.transfer_stats()["d2h_param_bytes"] == p.nbytes
    np.testing.assert_array_equal(p, net.engine._dev._m.parameters)


def test_optimizer_state_follows_the_optimizer_between_devices(fake):
    X, y = _data()
    dev, cpu, ref = _net("cuda"), _net(), _net()
    opt, ref_opt = sn.Adam(1e-2), sn.Adam(1e-2)
    dev.fit(X, y, optimizer=opt, epochs=1, seed=1)
    ref.fit(X, y, optimizer=ref_opt, epochs=1, seed=1)
    cpu.parameters = dev.parameters
    cpu.fit(X, y, optimizer=opt, epochs=1, seed=2)  # the state comes down from the device first
    ref.fit(X, y, optimizer=ref_opt, epochs=1, seed=2)
    np.testing.assert_array_equal(cpu.parameters, ref.parameters)
    # pickled with its state on the device: the state comes along
    clone = pickle.loads(pickle.dumps(ref_opt))
    np.testing.assert_array_equal(clone.state_m, ref_opt.state_m)


def test_many_optimizers_share_the_device_states(fake):
    """More optimizers than the device keeps: the oldest state returns to its optimizer, nothing is lost."""
    X, y = _data()
    dev, ref = _net("cuda"), _net()
    opts = [sn.SGD(0.01 * (i + 1), momentum=0.9) for i in range(6)]
    ref_opts = [sn.SGD(0.01 * (i + 1), momentum=0.9) for i in range(6)]
    for rnd in range(2):
        for o, r in zip(opts, ref_opts):
            dev.fit(X, y, optimizer=o, epochs=1, seed=rnd)
            ref.fit(X, y, optimizer=r, epochs=1, seed=rnd)
    np.testing.assert_array_equal(dev.parameters, ref.parameters)
    for o, r in zip(opts, ref_opts):
        np.testing.assert_array_equal(o.state_m, r.state_m)
    assert len(dev.engine._dev.states) <= dev.engine._MAX_STATES


def test_hierarchical_run_uploads_no_data_or_parameters_per_outer_iteration(fake):
    X, y = _data(256)
    net = sn.Network(5, [sn.Dense(16, "tanh") for _ in range(4)] + [sn.Dense(1)], seed=0, device="cuda")
    ref = sn.Network(5, [sn.Dense(16, "tanh") for _ in range(4)] + [sn.Dense(1)], seed=0)
    seen = []
    opt = sn.HierarchicalOptimizer(max_outer=4, inner_iters=2, random_state=0)
    r = opt.run(net, X, y, budget=50, callback=lambda info: seen.append(net.transfer_stats()))
    r_ref = sn.HierarchicalOptimizer(max_outer=4, inner_iters=2, random_state=0).run(ref, X, y, budget=50)
    assert [s.sites for s in r.steps] == [s.sites for s in r_ref.steps]
    np.testing.assert_array_equal(net.parameters, ref.parameters)
    assert len(seen) == 4
    for a, b in zip(seen, seen[1:]):  # after the first iteration: nothing of X or theta goes up
        assert b["h2d_data_bytes"] == a["h2d_data_bytes"]
        assert b["h2d_param_bytes"] == a["h2d_param_bytes"]


def test_insertion_on_a_device_network_stays_on_the_device(fake):
    from sensinet.datasets import make_spirals

    d = make_spirals(60)
    net = sn.Network(2, [sn.Dense(5, "relu"), sn.Dense(2)], loss="cross_entropy", seed=0, device="cuda")
    ref = sn.Network(2, [sn.Dense(5, "relu"), sn.Dense(2)], loss="cross_entropy", seed=0)
    ins = sn.LayerInsertion(at_epochs=[5])
    final, _ = ins.fit(net, d.X, d.y, epochs=10, optimizer=sn.SGD(0.1))
    final_ref, _ = sn.LayerInsertion(at_epochs=[5]).fit(ref, d.X, d.y, epochs=10, optimizer=sn.SGD(0.1))
    assert final.device == "cuda" and final.n_layers == 3
    np.testing.assert_array_equal(final.parameters, final_ref.parameters)


def test_copy_pickle_and_move_keep_the_weights(fake):
    X, y = _data()
    net = _net("cuda")
    net.fit(X, y, epochs=1)
    c = net.copy()
    assert c.device == "cuda"
    np.testing.assert_array_equal(c.predict(X), net.predict(X))
    c.fit(X, y, epochs=1)  # independent
    assert not np.array_equal(c.parameters, net.parameters)
    back = pickle.loads(pickle.dumps(net))
    assert back.device == "cuda"
    np.testing.assert_array_equal(back.parameters, net.parameters)
    p = net.parameters.copy()
    net.to("cpu")
    assert net.device == "cpu"
    np.testing.assert_array_equal(net.parameters, p)
    assert net.transfer_stats()["h2d_bytes"] == 0


def test_precision_follows_the_network(fake):
    net = sn.Network(5, [sn.Dense(8, "relu"), sn.Dense(1)], dtype=np.float32, device="cuda", precision="tf32")
    assert net.precision == "tf32" and net.engine._dev.tf32 and "precision='tf32'" in repr(net)
    assert net.copy().engine._dev.tf32
    assert pickle.loads(pickle.dumps(net)).engine._dev.tf32
    net.to("cpu")
    assert net.precision == "tf32"  # kept for the next move; the CPU computes in full float32
    net.to("cuda")
    assert net.engine._dev.tf32
    net.precision = "highest"
    assert not net.engine._dev.tf32
    assert net.astype(np.float64).precision == "highest"
    with pytest.raises(ValueError, match="precision: 'tf32' applies to float32"):
        sn.Network(5, [sn.Dense(1)], precision="tf32")
    with pytest.raises(ValueError, match="precision: expected one of"):
        sn.Network(5, [sn.Dense(1)], dtype=np.float32, precision="bf16")


@pytest.mark.filterwarnings("ignore:.*max_iter.*reached")
def test_estimators_take_a_device(fake):
    X, y = _data()
    cpu = sn.SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    dev = sn.SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0, device="cuda").fit(X, y)
    assert dev.network_.device == "cuda" and dev.get_params()["device"] == "cuda"
    np.testing.assert_array_equal(dev.predict(X), cpu.predict(X))
    back = pickle.loads(pickle.dumps(dev))
    assert back.network_.device == "cuda"
    np.testing.assert_array_equal(back.predict(X), cpu.predict(X))
    clf = sn.SensiNetClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0, device="cuda")
    assert clf.fit(X, (y > 0).astype(int)).network_.device == "cuda"
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N'"):
        sn.SensiNetRegressor(device="gpu").fit(X, y)


def test_multistart_runs_go_to_the_devices_in_turn(fake):
    from sensinet.experiments import hierarchical as study

    tasks = [t for t in study.make_tasks(study.study_config(True, 2, ["yacht"], 3.0, "concrete", 1, 1), ["main"])][:4]
    seen = []
    recs = study.execute(tasks, devices=["cuda:0", "cuda:1"], on_result=lambda r: seen.append(r["device"]))
    assert [r["device"] for r in recs] == ["cuda", "cuda:1", "cuda", "cuda:1"]  # "cuda" is cuda:0
    assert [r["key"] for r in recs] == [t.key for t in tasks]  # the device is not part of a run's identity
    cpu = study.execute(tasks[:2])
    for a, b in zip(recs[:2], cpu):  # the stand-in device computes exactly what the CPU does
        assert (a["train_mse"], a["test_rmse"], a["work"]) == (b["train_mse"], b["test_rmse"], b["work"])
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N'"):
        study.execute(tasks, devices="tpu:0")


@pytest.mark.parametrize("how", ["to_cpu", "garbage_collected"])
def test_optimizer_state_survives_its_engine(fake, how):
    import gc

    X, y = _data()
    dev, ref = _net("cuda"), _net()
    opt, ref_opt = sn.Adam(1e-2), sn.Adam(1e-2)
    dev.fit(X, y, optimizer=opt, epochs=2, seed=1)
    ref.fit(X, y, optimizer=ref_opt, epochs=2, seed=1)
    if how == "to_cpu":
        dev.to("cpu")
    else:
        del dev
    gc.collect()
    np.testing.assert_array_equal(opt.state_m, ref_opt.state_m)  # not the stale host arrays
    np.testing.assert_array_equal(opt.state_v, ref_opt.state_v)
    assert opt.t == ref_opt.t


def test_relu_clusters_of_a_device_network(fake):
    X, y = _data()
    cpu = sn.Network(5, [sn.Dense(12, "relu"), sn.Residual(12, "relu", hidden=6), sn.Dense(1)], seed=3)
    dev = cpu.copy().to("cuda")
    a, b = sn.explain(dev, X), sn.explain(cpu, X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.affine_maps.W_eff, b.affine_maps.W_eff)
    dev.reset_transfer_stats()
    sn.explain(dev, X)
    assert dev.transfer_stats()["h2d_data_bytes"] == 0  # the prepared X stayed on the device


def test_pruning_a_device_network(fake):
    X, y = _data()
    cpu = _net()
    dev = cpu.copy().to("cuda")
    a, ra = sn.prune(dev, X, y, amount=0.5, criterion="taylor")
    b, rb = sn.prune(cpu, X, y, amount=0.5, criterion="taylor")
    assert a.device == "cuda" and b.device == "cpu"
    assert {k: list(v) for k, v in ra.removed.items()} == {k: list(v) for k, v in rb.removed.items()}
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_weighted_training_of_a_device_network_equals_the_cpu_engine(fake):
    X, y = _data()
    w = np.random.default_rng(1).integers(0, 3, len(X)).astype(float)
    cpu, dev = _net(), _net("cuda")
    opt_c, opt_d = sn.Adam(1e-2), sn.Adam(1e-2)
    for _ in range(2):  # the second call continues the optimizer state wherever it lives
        cpu.fit(X, y, optimizer=opt_c, epochs=3, batch_size=16, seed=2, sample_weight=w)
        dev.fit(X, y, optimizer=opt_d, epochs=3, batch_size=16, seed=2, sample_weight=w)
    np.testing.assert_array_equal(dev.parameters, cpu.parameters)
    assert opt_d.t == opt_c.t
    np.testing.assert_array_equal(opt_d.state_m, opt_c.state_m)
    dev.fit(X, y, optimizer=opt_d, epochs=1, batch_size=16, seed=5)  # unweighted again, on the device
    cpu.fit(X, y, optimizer=opt_c, epochs=1, batch_size=16, seed=5)
    np.testing.assert_allclose(dev.parameters, cpu.parameters, rtol=1e-12, atol=1e-14)


def test_masked_training_of_a_device_network_equals_the_cpu_engine(fake):
    X, y = _data()
    cpu, dev = _net(), _net("cuda")
    mask = np.zeros(cpu.n_params, bool)
    mask[cpu.block_slice(1)] = True
    opt_c, opt_d = sn.Adam(1e-2), sn.Adam(1e-2)
    for net, opt in ((cpu, opt_c), (dev, opt_d)):
        net.fit(X, y, optimizer=opt, epochs=2, batch_size=16, seed=2)
        net.fit(X, y, optimizer=opt, epochs=2, batch_size=16, seed=3, trainable=mask)
        net.fit(X, y, optimizer=sn.LBFGS(max_iter=3), trainable=mask)
    np.testing.assert_allclose(dev.parameters, cpu.parameters, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(opt_d.state_m, opt_c.state_m, rtol=1e-12, atol=1e-14)
