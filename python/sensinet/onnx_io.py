"""ONNX in and out: :func:`from_onnx` reads the dense graphs that exporters write (PyTorch's ``torch.onnx``,
scikit-learn's ``skl2onnx``, sensinet itself) into a :class:`~sensinet.Network`; :func:`to_onnx` writes any
Dense/Residual network, or a fitted estimator, as an ONNX model with a dynamic batch axis.

Reading walks back from the requested output to the one graph input and keeps the chain of nodes in
between. Linear maps (``Gemm``, ``MatMul`` with a constant), activations, per-feature affine maps (``Add``,
``Sub``, ``Mul``, ``Div`` with a constant, ``BatchNormalization``, ``ai.onnx.ml.Scaler``) and no-ops
(``Dropout``, ``Identity``, ``Flatten``, ``Reshape`` to (batch, features), ``Cast`` to a float type) become
the operations of :mod:`sensinet._chain`, which folds the affine maps into the linear ones. An ``Add`` of the
running tensor and an earlier one closes a residual block. A final ``Softmax`` or ``Sigmoid`` (or
scikit-learn's ``[1 - p, p]`` pair) is the classification head: it becomes the loss, so ``net.predict``
computes it. Writing uses ``Gemm`` and the activation nodes; in float64, where onnxruntime computes
``LeakyRelu`` with a float32 slope and has no ``Softplus`` kernel, it writes exact compositions instead
(``Max(z, alpha * z)``; ``Relu(z) + Log(1 + Exp(-Abs(z)))``), which the reader recognises.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from ._chain import Act, Affine, Block, Linear, build
from ._validation import LOSSES, check_choice, resolve_dtype
from ._version import __version__
from .network import Network

__all__ = ["from_onnx", "to_onnx"]

MIN_OPSET = 13
SUPPORTED = ("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "BatchNormalization", "Relu", "LeakyRelu", "Tanh",
             "Sigmoid", "Softplus", "Softmax", "Dropout", "Identity", "Flatten", "Reshape", "Cast", "Constant",
             "ai.onnx.ml.Scaler")
_ACTS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softplus": "softplus"}


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(f"ONNX import and export need the onnx package (pip install onnx): {exc}") from None
    return onnx


# ---------------------------------------------------------------------------------------------- reading
def _model(model: Any, onnx: Any) -> Any:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        data = bytes(model)
    elif isinstance(model, (str, os.PathLike)):
        with open(os.fspath(model), "rb") as fh:  # FileNotFoundError / IsADirectoryError pass through
            data = fh.read()
    else:
        raise TypeError(f"model: expected a path, bytes or an onnx.ModelProto, got {type(model).__name__}")
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 -- protobuf raises its own DecodeError types
        raise ValueError(f"model: expected a serialized ONNX model, got {len(data)} bytes that do not parse "
                         f"({type(exc).__name__}: {exc})") from None
    if not proto.graph.node:
        raise ValueError("model: expected an ONNX model with a graph of nodes, got an empty graph")
    return proto


def _name(node: Any, idx: int) -> str:
    label = repr(node.name) if node.name else f"#{idx}"
    domain = f"{node.domain}." if node.domain not in ("", "ai.onnx") else ""
    return f"node {label} ({domain}{node.op_type})"


def _fusions(nodes: list, cone: list, consts: dict) -> dict:
    """Node index -> what a known composite makes of it: ``"skip"``, ``("leaky", alpha)``, ``"softplus"`` or
    ``"binary_head"``. The composites are those :func:`to_onnx` and skl2onnx write."""
    consumers: dict = {}
    for i in cone:
        for name in nodes[i].input:
            consumers.setdefault(name, []).append(i)
    producer = {out: i for i in cone for out in nodes[i].output}

    def only(name: str, op: str) -> Optional[int]:
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and nodes[users[0]].op_type == op else None

    def scalar(name: str) -> Optional[float]:
        c = consts.get(name)
        return float(c.ravel()[0]) if c is not None and c.size == 1 else None

    out: dict = {}
    for i in cone:
        n = nodes[i]
        if n.op_type == "Mul" and len(n.input) == 2:  # leaky_relu: Max(z, alpha * z) (Min for alpha > 1)
            z, a = (n.input[0], n.input[1]) if scalar(n.input[1]) is not None else (n.input[1], n.input[0])
            alpha = scalar(a)
            j = consumers.get(n.output[0], [None])[0]
            if alpha is not None and j is not None and len(consumers[n.output[0]]) == 1:
                m = nodes[j]
                if (m.op_type in ("Max", "Min") and sorted(m.input) == sorted([z, n.output[0]])
                        and (m.op_type == "Max") == (alpha <= 1.0)):
                    out[i], out[j] = "skip", ("leaky", alpha)
        elif n.op_type == "Abs":  # softplus: Relu(z) + Log(1 + Exp(-Abs(z)))
            z = n.input[0]
            neg = only(n.output[0], "Neg")
            exp = neg is not None and only(nodes[neg].output[0], "Exp")
            add1 = exp and only(nodes[exp].output[0], "Add")
            log = add1 and scalar([x for x in nodes[add1].input if x != nodes[exp].output[0]][0]) == 1.0 \
                and only(nodes[add1].output[0], "Log")
            last = log and only(nodes[log].output[0], "Add")
            relu = last and [producer.get(x) for x in nodes[last].input if x != nodes[log].output[0]]
            if relu and relu[0] is not None and nodes[relu[0]].op_type == "Relu" and nodes[relu[0]].input[0] == z:
                for k in (i, neg, exp, add1, log, relu[0]):
                    out[k] = "skip"
                out[last] = "softplus"
        elif n.op_type == "Sub" and scalar(n.input[0]) == 1.0:  # skl2onnx's binary probabilities [1 - p, p]
            j = only(n.output[0], "Concat")
            if j is not None and list(nodes[j].input) == [n.output[0], n.input[1]]:
                out[i], out[j] = "skip", "binary_head"
    return out


class _Walker:
    """Turns the chain of nodes into :mod:`sensinet._chain` operations."""

    def __init__(self, consts: dict, source: str) -> None:
        self.consts, self.ops, self.current = consts, [], source
        self.marks = {source: 0}  # chain tensor -> number of ops when it was the running tensor
        self.head: Optional[str] = None
        self.width: Optional[int] = None

    def const(self, name: str, where: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise ValueError(f"{where}: expected {what} to be a constant (an initializer or Constant), got the "
                             f"computed tensor {name!r}")
        return self.consts[name]

    def advance(self, name: str) -> None:
        self.current = name
        self.marks[name] = len(self.ops)

    def data(self, node: Any, where: str) -> tuple:
        """(chain input, other inputs) of a node; the chain input must be the running tensor."""
        chain = [x for x in node.input if x in self.marks]
        if not chain:
            raise ValueError(f"{where}: none of its inputs {list(node.input)} comes from the network's input")
        if len(chain) == 1 and chain[0] != self.current:
            raise ValueError(f"{where}: reads {chain[0]!r}, an earlier tensor than the running one "
                             f"({self.current!r}); the graph branches in a way sensinet's layers do not express")
        return chain, [x for x in node.input if x not in self.marks and x]

    def node(self, n: Any, where: str, fused: Any) -> None:
        op, attrs = n.op_type, {a.name: a for a in n.attribute}
        if fused == "skip":
            return
        if op == "Constant":
            return
        out = n.output[0]
        if fused is not None:  # the last node of a composite whose other nodes read the running tensor
            if fused == "binary_head":
                self.head = "binary"
            else:
                self.ops.append(Act("softplus", where) if fused == "softplus" else Act("leaky_relu", where, fused[1]))
            return self.advance(out)
        chain, others = self.data(n, where)
        if op == "Add" and len(chain) == 2:  # a residual block: the running tensor plus an earlier one
            skip = chain[0] if chain[1] == self.current else chain[1]
            if self.current not in chain or skip == self.current:
                raise ValueError(f"{where}: adds {chain}, expected the running tensor and an earlier one")
            start = self.marks[skip]
            branch, self.ops = self.ops[start:], self.ops[:start]
            self.ops.append(Block(branch, where))
            return self.advance(out)
        if op == "Gemm":
            if _attr(attrs, "transA", 0):
                raise ValueError(f"{where}: transA=1 is not supported (the batch must be the rows of A)")
            B = self.const(n.input[1], where, "B")
            W = B.T if _attr(attrs, "transB", 0) else B
            W = W * _attr(attrs, "alpha", 1.0)
            c = self.const(n.input[2], where, "C") if len(n.input) > 2 and n.input[2] else np.zeros(W.shape[1])
            b = np.broadcast_to(np.asarray(c, np.float64).ravel() * _attr(attrs, "beta", 1.0), (W.shape[1],))
            self.ops.append(Linear(W, b, where))
            self.width = W.shape[1]
        elif op == "MatMul":
            if n.input[0] != self.current:
                raise ValueError(f"{where}: expected the running tensor as the left operand")
            W = self.const(n.input[1], where, "the right operand")
            if W.ndim != 2:
                raise ValueError(f"{where}: expected a 2-D weight, got shape {W.shape}")
            self.ops.append(Linear(W, np.zeros(W.shape[1]), where))
            self.width = W.shape[1]
        elif op in ("Add", "Sub", "Mul", "Div"):
            if len(chain) != 1 or not others:
                raise ValueError(f"{where}: expected the running tensor and a constant, got {list(n.input)}")
            c = np.asarray(self.const(others[0], where, "the other operand"), np.float64)
            first = n.input[0] == self.current
            if op == "Div" and not first:
                raise ValueError(f"{where}: a constant divided by the features is not an affine map")
            one = np.ones_like(c)
            scale, shift = {"Add": (one, c), "Mul": (c, 0 * c), "Div": (1 / c, 0 * c),
                            "Sub": (one, -c) if first else (-one, c)}[op]
            self.ops.append(Affine(scale, shift, where))
        elif op == "BatchNormalization":
            if _attr(attrs, "training_mode", 0) or len([o for o in n.output if o]) > 1:
                raise ValueError(f"{where}: expected inference mode (training_mode=0, one output)")
            s, b, mean, var = (np.asarray(self.const(x, where, "BatchNormalization's " + w), np.float64)
                               for x, w in zip(n.input[1:5], ("scale", "B", "mean", "var")))
            k = s / np.sqrt(var + _attr(attrs, "epsilon", 1e-5))
            self.ops.append(Affine(k, b - mean * k, where))
        elif op == "Scaler" and n.domain == "ai.onnx.ml":
            off = np.asarray(_attr(attrs, "offset", [0.0]), np.float64)
            sc = np.asarray(_attr(attrs, "scale", [1.0]), np.float64)
            self.ops.append(Affine(sc, -off * sc, where))
        elif op in _ACTS:
            self.ops.append(Act(_ACTS[op], where))
        elif op == "LeakyRelu":
            alpha = _attr(attrs, "alpha", 0.01)
            if not alpha >= 0:
                raise ValueError(f"{where}: alpha must be >= 0 for sensinet's leaky_relu, got {alpha}")
            self.ops.append(Act("leaky_relu", where, alpha))
        elif op == "Softmax":
            if _attr(attrs, "axis", -1) not in (-1, 1):
                raise ValueError(f"{where}: expected a softmax over the features (axis=-1 or 1)")
            self.head = "softmax"
        elif op in ("Dropout", "Identity", "Flatten", "Reshape", "Cast"):
            self.no_op(n, op, attrs, where)
        else:
            raise ValueError(f"{where}: unsupported operation; sensinet reads {', '.join(SUPPORTED)}, and "
                             f"Softmax / Sigmoid heads")
        self.advance(out)

    def no_op(self, n: Any, op: str, attrs: dict, where: str) -> None:
        if op == "Dropout":
            if len(n.input) > 2 and n.input[2] and bool(self.const(n.input[2], where, "training_mode").ravel()[0]):
                raise ValueError(f"{where}: training_mode=True drops units at random; expected inference mode")
        elif op == "Flatten" and _attr(attrs, "axis", 1) not in (1, -1):
            raise ValueError(f"{where}: expected axis=1 (a no-op on (batch, features)), got {_attr(attrs, 'axis', 1)}")
        elif op == "Reshape":
            shape = [int(v) for v in self.const(n.input[1], where, "the shape").ravel()]
            w = self.width
            ok = (len(shape) == 2 and shape[0] in (-1, 0) and shape[1] in (w, -1) and shape != [-1, -1]) or \
                 (shape == [-1] and w == 1)
            if not ok:
                raise ValueError(f"{where}: reshapes the features to {shape}; only a reshape to (batch, {w}) is a "
                                 "no-op")
        elif op == "Cast" and _attr(attrs, "to", 1) not in (1, 10, 11, 16):  # float, float16, double, bfloat16
            raise ValueError(f"{where}: casts to a non-float type")


def _attr(attrs: dict, name: str, default: Any) -> Any:
    from onnx import helper

    return helper.get_attribute_value(attrs[name]) if name in attrs else default


def from_onnx(model: Any, loss: Optional[str] = None, dtype: Any = None, output: Optional[str] = None) -> Network:
    """A :class:`~sensinet.Network` computing what a dense ONNX graph computes.

    Parameters
    ----------
    model : str, os.PathLike, bytes or onnx.ModelProto
        An ONNX model of opset 13 or newer with one input of shape (batch, features). Read: ``Gemm``,
        ``MatMul`` with a constant weight, ``Add``/``Sub``/``Mul``/``Div`` with a constant (folded, so
        ``MatMul`` + ``Add`` is one layer), ``BatchNormalization`` (inference mode, folded),
        ``ai.onnx.ml.Scaler`` (folded), ``Relu``, ``LeakyRelu``, ``Tanh``, ``Sigmoid``, ``Softplus``,
        ``Dropout`` / ``Identity`` / ``Flatten`` / ``Reshape`` to (batch, features) / ``Cast`` (no-ops),
        residual ``Add`` s of the form sensinet's blocks have (``x + W2 act(W1 x + b1) (+ b2)``,
        ``x + act(W x + b)``), and a final ``Softmax``, ``Sigmoid`` or ``[1 - p, p]`` head.
    loss : {"mse", "cross_entropy", "binary_cross_entropy"}, optional
        Default: inferred from the head (``Softmax``: cross_entropy; ``Sigmoid``: binary_cross_entropy;
        none: mse). ``loss="mse"`` keeps a final Sigmoid as the last layer's activation.
    dtype : float64 or float32, optional
        Default: the graph input's type.
    output : str, optional
        The graph output to read (default: the first float output, e.g. ``probabilities`` of a skl2onnx
        classifier rather than its ``label``).

    Returns
    -------
    Network
        ``net.predict(X)`` equals the ONNX output (for the ``[1 - p, p]`` head: its second column).

    Raises
    ------
    ImportError
        The onnx package is not installed.
    ValueError
        An unsupported node (named, with its op type and what is supported), an opset below 13, not one
        graph input, a graph that branches outside residual blocks, or a pattern that cannot be folded.
    """
    onnx = _import_onnx()
    proto = _model(model, onnx)
    if loss is not None:
        check_choice(loss, "loss", LOSSES)
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    version = opsets.get("ai.onnx", 0)
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= version <= newest:
        raise ValueError(f"model.opset_import: expected the default-domain opset {MIN_OPSET} to {newest}, got "
                         f"{version} (onnx.version_converter.convert_version can upgrade a model)")
    g = proto.graph
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute:
            value = _attr({a.name: a for a in n.attribute}, n.attribute[0].name, None)
            consts[n.output[0]] = (numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto)
                                   else np.asarray(value))
        elif n.op_type in ("Identity", "Cast") and n.input[0] in consts:
            consts[n.output[0]] = consts[n.input[0]]
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise ValueError(f"model.graph.input: expected one input (batch, features), got {[i.name for i in inputs]}")
    x = inputs[0]
    elem = x.type.tensor_type.elem_type
    floats = {1: np.float32, 11: np.float64}
    outs = [o.name for o in g.output]
    if output is None:
        floating = [o.name for o in g.output if o.type.tensor_type.elem_type in floats]
        output = (floating or outs)[0]
    elif output not in outs:
        raise ValueError(f"output: expected one of the graph outputs {outs}, got {output!r}")
    dt = resolve_dtype(dtype) if dtype is not None else floats.get(elem, np.float64)

    nodes = list(g.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    cone, stack = set(), [output]
    while stack:
        t = stack.pop()
        i = producer.get(t)
        if i is not None and i not in cone and t not in consts:
            cone.add(i)
            stack += list(nodes[i].input)
    order = sorted(cone)
    fused = _fusions(nodes, order, consts)
    walker = _Walker(consts, x.name)
    for i in order:
        walker.node(nodes[i], _name(nodes[i], i), fused.get(i))
    if walker.current != output:
        raise ValueError(f"output: {output!r} is not computed from the input {x.name!r} by a chain of layers")
    ops = walker.ops
    head = walker.head
    last_sigmoid = bool(ops) and isinstance(ops[-1], Act) and ops[-1].name == "sigmoid"
    if head in ("softmax",):
        if loss not in (None, "cross_entropy"):
            raise ValueError(f"loss: the graph ends in Softmax, which only loss='cross_entropy' computes; got {loss!r}")
        loss = "cross_entropy"
    elif (head == "binary" or last_sigmoid) and loss in (None, "binary_cross_entropy"):
        if not last_sigmoid:
            raise ValueError("output: a [1 - p, p] head needs p to be a Sigmoid output")
        ops, loss = ops[:-1], "binary_cross_entropy"
    elif head == "binary":
        raise ValueError(f"loss: the graph ends in [1 - p, p] probabilities; expected loss None or "
                         f"'binary_cross_entropy', got {loss!r}")
    dims = x.type.tensor_type.shape.dim
    first = next((op for op in ops if isinstance(op, Linear)), None)
    if first is None:
        n_inputs = dims[1].dim_value if len(dims) == 2 and dims[1].dim_value > 0 else 0
        if not n_inputs:
            raise ValueError("model: expected at least one linear layer (Gemm or MatMul), got none")
    else:
        n_inputs = int(np.shape(first.W)[0])
    if len(dims) == 2 and dims[1].dim_value > 0 and dims[1].dim_value != n_inputs:
        raise ValueError(f"model.graph.input: declares {dims[1].dim_value} features, the first layer takes "
                         f"{n_inputs}")
    return build(ops, n_inputs, loss or "mse", dt, source="model")


# ---------------------------------------------------------------------------------------------- writing
class _Writer:
    def __init__(self, dtype: Any) -> None:
        from onnx import TensorProto

        self.np = np.dtype(dtype)
        self.elem = TensorProto.FLOAT if self.np == np.float32 else TensorProto.DOUBLE
        self.nodes: list = []
        self.inits: list = []

    def const(self, name: str, value: Any, dtype: Any = None) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype or self.np), name))
        return name

    def node(self, op: str, inputs: list, name: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def act(self, x: str, act: str, alpha: float, where: str) -> str:
        if act == "identity":
            return x
        if act in ("relu", "tanh", "sigmoid") or (act == "softplus" and self.np == np.float32):
            return self.node({"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus"}[act],
                             [x], f"{where}.{act}")
        if act == "leaky_relu" and self.np == np.float32:
            return self.node("LeakyRelu", [x], f"{where}.leaky_relu", alpha=float(alpha))
        if act == "leaky_relu":  # exact in float64: onnxruntime's LeakyRelu uses a float32 alpha
            m = self.node("Mul", [x, self.const(f"{where}.alpha", alpha)], f"{where}.alpha_z")
            return self.node("Max" if alpha <= 1 else "Min", [x, m], f"{where}.leaky_relu")
        if act == "softplus":  # float64: relu(z) + log(1 + exp(-|z|)); onnxruntime has no float64 Softplus
            a = self.node("Abs", [x], f"{where}.abs")
            e = self.node("Exp", [self.node("Neg", [a], f"{where}.neg")], f"{where}.exp")
            lg = self.node("Log", [self.node("Add", [e, self.const(f"{where}.one", 1.0)], f"{where}.one_plus")],
                           f"{where}.log")
            return self.node("Add", [self.node("Relu", [x], f"{where}.relu"), lg], f"{where}.softplus")
        raise NotImplementedError(f"to_onnx: activation {act!r} has no ONNX form")  # pragma: no cover


def to_onnx(model: Any, path: Any = None, output: str = "predict", opset: int = 17) -> Any:
    """Write a network (or a fitted estimator) as an ONNX model.

    Parameters
    ----------
    model : Network, SensiNetRegressor or SensiNetClassifier
        Dense layers and residual blocks, float32 or float64 (the model's type; onnxruntime runs both).
        A pruned, grown or inserted network is a network like any other.
    path : str or os.PathLike, optional
        Where to write the ``.onnx`` file; the model is returned either way.
    output : {"predict", "forward"}
        ``"predict"``: the model computes what ``predict`` does (the softmax or sigmoid of a classification
        head; for an estimator its ``predict`` in the target's units, or ``predict_proba``). ``"forward"``:
        the raw outputs (logits), like ``net.forward`` and :func:`to_torch`.
    opset : int
        Default-domain opset, 13 to the installed onnx package's newest.

    Returns
    -------
    onnx.ModelProto
        Input ``"input"`` of shape (batch, n_inputs), output ``"output"``; checked by ``onnx.checker``.
    """
    onnx = _import_onnx()
    from onnx import helper

    from .convert import as_network

    check_choice(output, "output", ("predict", "forward"))
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset: expected an int from {MIN_OPSET} to {newest}, got {opset!r}")
    head = model.__sensinet_predict_map__() if hasattr(model, "__sensinet_predict_map__") else None
    net = as_network(model)
    w = _Writer(net.dtype)
    x = "input"
    for i, spec in enumerate(net.specs):
        p, where = net.layer_parameters(i), f"layers.{i}"
        if spec.kind == "dense":
            z = w.node("Gemm", [x, w.const(f"{where}.W", p["W"]), w.const(f"{where}.b", p["b"])], f"{where}.linear")
            x = w.act(z, spec.activation, spec.alpha, where)
        elif spec.kind == "residual1":
            z = w.node("Gemm", [x, w.const(f"{where}.W", p["W"]), w.const(f"{where}.b", p["b"])], f"{where}.linear")
            x = w.node("Add", [x, w.act(z, spec.activation, spec.alpha, where)], f"{where}.residual")
        else:
            z = w.node("Gemm", [x, w.const(f"{where}.W1", p["W1"]), w.const(f"{where}.b1", p["b1"])],
                       f"{where}.linear1")
            h = w.act(z, spec.activation, spec.alpha, where)
            x = w.node("Add", [x, w.node("MatMul", [h, w.const(f"{where}.W2", p["W2"])], f"{where}.linear2")],
                       f"{where}.residual")
    shape: list = ["batch", net.n_outputs]
    if output == "predict":
        if head is not None and head["kind"] == "affine":  # a regressor: back to the target's units
            x = w.node("Add", [w.node("Mul", [x, w.const("target.scale", head["scale"])], "target.scaled"),
                               w.const("target.mean", head["shift"])], "target")
            if head["ravel"]:
                x = w.node("Reshape", [x, w.const("target.shape", [-1], np.int64)], "target.ravel")
                shape = ["batch"]
        elif net.loss == "cross_entropy":
            x = w.node("Softmax", [x], "probabilities", axis=-1)
        elif net.loss == "binary_cross_entropy":
            x = w.node("Sigmoid", [x], "probabilities")
            if head is not None and head["kind"] == "proba" and net.n_outputs == 1:  # predict_proba's [1 - p, p]
                q = w.node("Sub", [w.const("one", [1.0]), x], "negative_class")
                x = w.node("Concat", [q, x], "probabilities2", axis=1)
                shape = ["batch", 2]
    w.nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))
    graph = helper.make_graph(w.nodes, "sensinet", [helper.make_tensor_value_info("input", w.elem, ["batch", net.n_inputs])],
                              [helper.make_tensor_value_info("output", w.elem, shape)], w.inits)
    opsets = [helper.make_opsetid("", int(opset))]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="sensinet", producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
        with open(os.fspath(path), "wb") as fh:
            fh.write(proto.SerializeToString())
    return proto
