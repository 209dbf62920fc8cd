"""ONNX in and out, with onnxruntime as the oracle: every exported architecture, activation, dtype and head
agrees with onnxruntime to 1e-12 (float64) / 1e-6 (float32, relative); graphs written by hand, by
torch.onnx and by skl2onnx import to the same predictions; unsupported nodes are named."""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TOL = {np.float64: 1e-12, np.float32: 1e-6}
ACTS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus")


def _run(model, X):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})


def _close(a, b, dtype):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype] * max(np.abs(b).max(), 1e-300))


def _X(n_in, dtype, n=33, seed=0):
    return (np.random.default_rng(seed).normal(size=(n, n_in)) * 2).astype(dtype)


def _net(act, dtype, loss="mse", n_out=2, seed=0):
    alpha = 0.3 if act == "leaky_relu" else 0.01
    layers = [sn.Dense(6, act, alpha=alpha), sn.Residual(6, act, hidden=4, alpha=alpha),
              sn.Residual(6, act, weights=1, alpha=alpha), sn.Dense(5, act, alpha=alpha), sn.Dense(n_out)]
    net = sn.Network(3, layers, loss=loss, dtype=dtype, seed=seed)
    net.parameters = net.parameters + np.random.default_rng(seed).normal(size=net.n_params) * 0.3  # biases too
    return net


# ---------------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("act", ACTS)
def test_export_matches_onnxruntime(act, dtype):
    net = _net(act, dtype)
    X = _X(3, dtype)
    model = sn.to_onnx(net, output="forward")
    (out,) = _run(model, X)
    assert out.dtype == dtype
    _close(out, net.forward(X), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss, n_out", [("cross_entropy", 3), ("binary_cross_entropy", 1),
                                         ("binary_cross_entropy", 2), ("mse", 2)])
def test_export_predict_head(loss, n_out, dtype):
    net = _net("relu", dtype, loss=loss, n_out=n_out)
    X = _X(3, dtype)
    (out,) = _run(sn.to_onnx(net), X)
    _close(out, net.predict(X), dtype)


def test_dynamic_batch_axis_and_file(tmp_path):
    net = _net("tanh", np.float64)
    path = tmp_path / "net.onnx"
    model = sn.to_onnx(net, path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 3
    for n in (1, 2, 500):
        (out,) = _run(onnx.load(path), _X(3, np.float64, n=n))
        assert out.shape == (n, 2)


@pytest.mark.parametrize("opset", [13, 17, onnx.defs.onnx_opset_version()])
def test_opsets(opset):
    net = _net("softplus", np.float64)
    model = sn.to_onnx(net, opset=opset)
    assert model.opset_import[0].version == opset
    _close(_run(model, _X(3, np.float64))[0], net.predict(_X(3, np.float64)), np.float64)
    assert sn.from_onnx(model).specs == net.specs


def test_round_trip_through_onnx():
    for act in ACTS:
        for dtype in (np.float64, np.float32):
            net = _net(act, dtype, loss="cross_entropy", n_out=3)
            back = sn.from_onnx(sn.to_onnx(net))
            assert back.loss == "cross_entropy" and back.dtype == dtype
            assert [s[:5] for s in back.specs] == [s[:5] for s in net.specs]
            X = _X(3, dtype)
            np.testing.assert_array_equal(back.forward(X), net.forward(X))  # same weights, same kernels


def test_pruned_grown_and_inserted_networks_export():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), rng.normal(size=60)
    net = sn.Network(3, [sn.Dense(8, "relu"), sn.Dense(8, "relu"), sn.Dense(1)], seed=0)
    small, _ = sn.prune(net, X, y, amount=0.5)
    ins = sn.LayerInsertion()
    grown, _ = ins.insert(net, ins.candidates(net, X, y)[1])
    grown.parameters = grown.parameters + 0.1  # move off the neutral values, so the new layer does something
    res = sn.LayerInsertion(kind="residual2").insert(net, sn.LayerInsertion(kind="residual2").candidates(net)[1])[0]
    for model in (small, grown, res):
        _close(_run(sn.to_onnx(model), X)[0], model.predict(X), np.float64)


def test_estimators_export_what_they_predict():
    from sklearn.datasets import load_diabetes, load_iris

    Xd, yd = load_diabetes(return_X_y=True)
    reg = sn.SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with pytest.warns(Warning):
        reg.fit(Xd, yd)
    (out,) = _run(sn.to_onnx(reg), Xd)
    assert out.shape == (len(yd),)
    _close(out, reg.predict(Xd), np.float64)
    Xi, yi = load_iris(return_X_y=True)
    for labels in (yi, (yi == 1).astype(int)):
        clf = sn.SensiNetClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
        with pytest.warns(Warning):
            clf.fit(Xi, labels)
        _close(_run(sn.to_onnx(clf), Xi)[0], clf.predict_proba(Xi), np.float64)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(output="proba"), ValueError, "output"),
    (dict(opset=12), ValueError, r"opset: expected an int from 13"),
    (dict(opset=True), ValueError, "opset"),
    (dict(path=3), TypeError, "path"),
])
def test_export_bad_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        sn.to_onnx(_net("relu", np.float64), **kw)


# ---------------------------------------------------------------------------------------------- import
def _graph(nodes, inits, n_in=3, n_out=None, dtype=TensorProto.DOUBLE, opset=17, outputs=("y",)):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", dtype, [None, n_in])],
                          [helper.make_tensor_value_info(o, dtype, None) for o in outputs],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 8
    return m


def _check_import(model, dtype=np.float64, n_in=3, **kw):
    X = _X(n_in, dtype)
    ref = _run(model, X)[0]
    net = sn.from_onnx(model, **kw)
    out = net.predict(X)
    _close(out.reshape(ref.shape) if ref.ndim == 1 else out, ref if ref.shape[-1] != 2 or out.shape[1] == 2
           else ref, dtype)
    return net


def test_import_hand_written_patterns():
    rng = np.random.default_rng(1)
    W1, b1 = rng.normal(size=(4, 3)), rng.normal(size=4)  # Gemm transB=1 (torch layout)
    W2, b2 = rng.normal(size=(4, 4)), rng.normal(size=4)
    R1, R2, r2 = rng.normal(size=(4, 5)), rng.normal(size=(5, 4)), rng.normal(size=4)
    W3 = rng.normal(size=(4, 2))
    bn = dict(s=rng.normal(size=4), B=rng.normal(size=4), m=rng.normal(size=4), v=rng.random(4) + 0.5)
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], to=TensorProto.DOUBLE),
        helper.make_node("Sub", ["c", "mu"], ["s0"]), helper.make_node("Div", ["s0", "sd"], ["s1"]),  # a scaler
        helper.make_node("Gemm", ["s1", "W1", "b1"], ["g1"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("BatchNormalization", ["g1", "s", "B", "m", "v"], ["n1"], epsilon=1e-3),
        helper.make_node("LeakyRelu", ["n1"], ["a1"], alpha=0.25),
        helper.make_node("Dropout", ["a1"], ["d1"]),
        helper.make_node("Flatten", ["d1"], ["f1"], axis=1),
        helper.make_node("MatMul", ["f1", "W2"], ["m2"]), helper.make_node("Add", ["m2", "b2"], ["g2"]),
        helper.make_node("Tanh", ["g2"], ["t2"]),
        # a residual block with a bias on its second map (carried on to the next layer)
        helper.make_node("MatMul", ["t2", "R1"], ["q1"]), helper.make_node("Relu", ["q1"], ["q2"]),
        helper.make_node("Gemm", ["q2", "R2", "r2"], ["q3"]), helper.make_node("Add", ["t2", "q3"], ["res"]),
        helper.make_node("Identity", ["res"], ["i1"]),
        helper.make_node("MatMul", ["i1", "W3"], ["o1"]),
        helper.make_node("Reshape", ["o1", "shape"], ["y"]),
    ]
    inits = dict(W1=W1, b1=b1, W2=W2, b2=b2, R1=R1, R2=R2, r2=r2, W3=W3, mu=np.array([0.1, -0.2, 0.3]),
                 sd=np.array([2.0, 0.5, 1.5]), shape=np.array([-1, 2], np.int64), **bn)
    net = _check_import(_graph(nodes, inits))
    assert [s.kind for s in net.specs] == ["dense", "dense", "residual2", "dense"]
    assert net.specs[0].activation == "leaky_relu" and net.specs[0].alpha == np.float32(0.25)


def test_import_softmax_and_sigmoid_heads():
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=4)
    soft = _graph([helper.make_node("Gemm", ["x", "W", "b"], ["z"]), helper.make_node("Softmax", ["z"], ["y"])],
                  dict(W=W, b=b))
    assert _check_import(soft).loss == "cross_entropy"
    sig = _graph([helper.make_node("Gemm", ["x", "W", "b"], ["z"]), helper.make_node("Sigmoid", ["z"], ["y"])],
                 dict(W=W, b=b))
    assert _check_import(sig).loss == "binary_cross_entropy"
    kept = _check_import(sig, loss="mse")
    assert kept.loss == "mse" and kept.specs[-1].activation == "sigmoid"
    with pytest.raises(ValueError, match="Softmax"):
        sn.from_onnx(soft, loss="mse")


@pytest.mark.parametrize("nodes, inits, match", [
    ([helper.make_node("Gemm", ["x", "W", "b"], ["z"], name="fc"), helper.make_node("Gelu", ["z"], ["y"], name="act")],
     "Wb", r"node 'act' \(Gelu\): unsupported operation; sensinet reads Gemm"),
    ([helper.make_node("Gemm", ["x", "W", "b"], ["z"]), helper.make_node("Mul", ["z", "z"], ["y"])],
     "Wb", r"node #1 \(Mul\): expected the running tensor and a constant"),
    ([helper.make_node("Gemm", ["x", "W", "b"], ["z"]), helper.make_node("Relu", ["z"], ["r"]),
      helper.make_node("Add", ["z", "r"], ["y"])], "Wb", r"node #2 \(Add\): a residual branch must start with a linear"),
    ([helper.make_node("Gemm", ["x", "W", "b"], ["z"]), helper.make_node("Reshape", ["z", "sh"], ["y"])],
     "Wbs", r"node #1 \(Reshape\): reshapes the features to \[2, -1\]"),
    ([helper.make_node("Gemm", ["x", "W", "b"], ["z"], transA=1)], "Wb", "transA"),
    ([helper.make_node("Gemm", ["x", "x", "b"], ["y"])], "Wb", r"expected B to be a constant"),
])
def test_unsupported_graphs_named(nodes, inits, match):
    rng = np.random.default_rng(3)
    pool = dict(W=rng.normal(size=(3, 3)), b=rng.normal(size=3), sh=np.array([2, -1], np.int64))
    init = {k: pool[{"W": "W", "b": "b", "s": "sh"}[c]] for c in inits for k in [{"W": "W", "b": "b", "s": "sh"}[c]]}
    out = nodes[-1].output[0]
    with pytest.raises(ValueError, match=match):
        sn.from_onnx(_graph(nodes, init, outputs=(out,)))


def test_import_bad_models(tmp_path):
    with pytest.raises(FileNotFoundError):
        sn.from_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x01\x02not onnx at all")
    with pytest.raises(ValueError, match="model: expected a serialized ONNX model"):
        sn.from_onnx(tmp_path / "junk.onnx")
    with pytest.raises(TypeError, match="model: expected a path"):
        sn.from_onnx(3.5)
    old = sn.to_onnx(_net("relu", np.float64))
    old.opset_import[0].version = 12
    with pytest.raises(ValueError, match="opset 13 to"):
        sn.from_onnx(old)
    with pytest.raises(ValueError, match="output: expected one of the graph outputs"):
        sn.from_onnx(sn.to_onnx(_net("relu", np.float64)), output="nope")


# ---------------------------------------------------------------------------------------------- exporters
def test_models_exported_by_torch_onnx(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Res(nn.Module):  # the residual MLP people write, beside a Sequential with BatchNorm and Dropout
        def __init__(self):
            super().__init__()
            self.inp, self.a, self.b, self.out = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)

        def forward(self, x):
            h = torch.tanh(self.inp(x))
            return self.out(h + self.b(torch.relu(self.a(h))))

    torch.manual_seed(0)
    seq = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2),
                        nn.Linear(8, 8), nn.LeakyReLU(0.1), nn.Linear(8, 8), nn.Softplus(), nn.Linear(8, 3))
    with torch.no_grad():
        seq[2].running_mean.normal_()
        seq[2].running_var.uniform_(0.5, 2.0)
    for module in (seq.eval(), Res().eval()):  # float32, as models are exported (onnxruntime has no float64 LeakyRelu)
        path = tmp_path / "m.onnx"
        torch.onnx.export(module, (torch.zeros(2, 4),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}})
        net = _check_import(onnx.load(path), dtype=np.float32, n_in=4)
        assert net.dtype == np.float32
        X = _X(4, np.float32)
        with torch.no_grad():
            _close(net.forward(X), module(torch.from_numpy(X)).numpy(), np.float32)
        assert [s.kind for s in net.specs] == (["dense"] * 4 if module is seq else ["dense", "residual2", "dense"])


def test_models_exported_by_skl2onnx():
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx as skl_to_onnx
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xd, yd = load_diabetes(return_X_y=True)
    Xb, yb = load_breast_cancer(return_X_y=True)
    models = [
        (make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=50, random_state=0)), Xd, yd),
        (make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", max_iter=50,
                                                       random_state=0)), Xb, yb),
    ]
    for model, X, y in models:
        with pytest.warns(Warning):
            model.fit(X, y)
        opts = {"zipmap": False} if hasattr(model, "predict_proba") else None
        proto = skl_to_onnx(model, X[:1].astype(np.float32), options=opts)
        net = sn.from_onnx(proto)
        X32 = X.astype(np.float32)
        ref = _run(proto, X32)
        out = net.predict(X32)
        if net.loss == "mse":
            _close(out.ravel(), ref[0].ravel(), np.float32)
        else:  # label and [1 - p, p]
            _close(out.ravel(), ref[1][:, 1], np.float32)
            np.testing.assert_allclose(out.ravel(), model.predict_proba(X)[:, 1], rtol=1e-5, atol=1e-6)


def test_models_exported_by_the_dynamo_exporter(tmp_path):
    """torch.onnx's default exporter (torch.export + onnxscript) folds BatchNorm and drops Dropout itself."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    nn = torch.nn
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 8),
                           nn.Tanh(), nn.Linear(8, 2), nn.Softmax(dim=-1)).eval()
    with torch.no_grad():
        module[1].running_mean.normal_()
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(module, (torch.zeros(3, 4),), dynamo=True, dynamic_shapes=({0: batch},),
                                verbose=False)
    path = tmp_path / "d.onnx"
    program.save(str(path))
    net = _check_import(onnx.load(path), dtype=np.float32, n_in=4)
    assert net.loss == "cross_entropy"
    X = _X(4, np.float32)
    with torch.no_grad():
        _close(net.predict(X), module(torch.from_numpy(X)).numpy(), np.float32)
