"""A dense network as a chain of plain operations: the form the importers (PyTorch, ONNX) produce and one
builder turns into a :class:`~sensinet.Network`.

The operations are linear maps, activations, per-feature affine maps (BatchNorm in eval mode, scalers:
``x * scale + shift``) and residual blocks (``x + branch(x)``). An affine map is folded exactly into the
adjacent linear map: into the one before it when no activation lies between them, else into the next one
(an affine map of the features is a change of the next layer's weights and bias). A shift whose scale is 1
passes through a residual block (the branch's first bias absorbs it and the skip carries it on), so the
bias of a residual branch's second linear map, which sensinet's blocks do not have, is carried to the next
linear layer. What cannot be folded exactly gets a ValueError naming the operation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from .layers import ACTIVATIONS, Dense, Residual
from .network import Network


@dataclass(eq=False)
class Linear:
    """``x @ W + b``, ``W`` of shape (n_in, n_out)."""

    W: np.ndarray
    b: np.ndarray
    where: str


@dataclass(eq=False)
class Act:
    """An activation of sensinet's engine (``alpha``: the leaky_relu slope)."""

    name: str
    where: str
    alpha: float = 0.01


@dataclass(eq=False)
class Affine:
    """``x * scale + shift`` per feature (scale and shift of shape (n,), or (1,) for every feature)."""

    scale: np.ndarray
    shift: np.ndarray
    where: str


@dataclass(eq=False)
class Block:
    """A residual block ``x + branch(x)``."""

    branch: list
    where: str


Op = Union[Linear, Act, Affine, Block]


@dataclass(eq=False)
class _Layer:
    W: np.ndarray
    b: np.ndarray
    where: str
    act: str = "identity"
    alpha: float = 0.01
    act_where: Optional[str] = None


@dataclass(eq=False)
class _Run:
    """Dense layers being assembled, the per-feature affine map not yet folded, and the current width."""

    width: int
    layers: list = field(default_factory=list)
    pending: Optional[tuple] = None  # (scale, shift, where)

    def open(self) -> Optional[_Layer]:
        """The last layer while nothing non-linear follows it (an affine map can still fold into it)."""
        return self.layers[-1] if self.layers and self.layers[-1].act == "identity" else None


def _features(arr: Any, n: int, what: str, where: str) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64).ravel()
    if a.size == 1:
        a = np.full(n, a[0])
    if a.shape != (n,):
        raise ValueError(f"{where}: expected a {what} of {n} features (or one for all), got shape "
                         f"{np.shape(arr)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: the {what} contains NaN or infinity")
    return a


def _step(run: _Run, op: Op) -> None:
    """Add one linear map, activation or affine map to a run of dense layers."""
    if isinstance(op, Linear):
        W, b = np.asarray(op.W, np.float64), np.asarray(op.b, np.float64).ravel()
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(f"{op.where}: expected a weight of shape (in_features, k) and a bias of shape (k,), "
                             f"got {W.shape} and {b.shape}")
        if W.shape[0] != run.width:
            raise ValueError(f"{op.where}: in_features is {W.shape[0]}, expected {run.width} (the width of what "
                             "comes before it)")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ValueError(f"{op.where}: the weight or bias contains NaN or infinity")
        if run.pending is not None:  # (x * s + t) @ W + b = x @ (s[:, None] * W) + (t @ W + b)
            s, t, _ = run.pending
            W, b = s[:, None] * W, t @ W + b
            run.pending = None
        run.layers.append(_Layer(W, b, op.where))
        run.width = W.shape[1]
    elif isinstance(op, Affine):
        s = _features(op.scale, run.width, "scale", op.where)
        t = _features(op.shift, run.width, "shift", op.where)
        last = run.open()
        if last is not None and run.pending is None:  # (x @ W + b) * s + t
            last.W, last.b = last.W * s[None, :], last.b * s + t
        elif run.pending is None:
            run.pending = (s, t, op.where)
        else:
            s0, t0, where = run.pending
            run.pending = (s0 * s, t0 * s + t, where)
    elif isinstance(op, Act):
        if op.name not in ACTIVATIONS:  # pragma: no cover -- importers map names first
            raise ValueError(f"{op.where}: activation {op.name!r} is not one of {ACTIVATIONS}")
        if op.name == "identity":
            return
        if not run.layers:
            raise ValueError(f"{op.where}: the activation comes before any Linear layer; each activation must "
                             "follow a linear map")
        last = run.layers[-1]
        if last.act != "identity" or run.pending is not None:
            between = "a per-feature scale/shift and " if run.pending is not None else ""
            raise ValueError(f"{op.where}: the activation follows {between}another activation ({last.act_where}); "
                             "each linear map takes at most one activation")
        last.act, last.alpha, last.act_where = op.name, float(op.alpha), op.where
    else:
        raise ValueError(f"{op.where}: a residual block inside a residual branch is not supported")


def _block(run: _Run, op: Block) -> tuple:
    """A residual block as (Residual layer, weights); a bias of the branch's second map joins the pending shift."""
    if run.pending is not None and not np.all(run.pending[0] == 1.0):
        raise ValueError(f"{op.where}: a per-feature scale ({run.pending[2]}) before a residual block cannot be "
                         "folded (the skip connection would need it too)")
    width = run.width
    first = next((sub for sub in op.branch if not isinstance(sub, Affine)), None)
    if not isinstance(first, Linear):
        what = f"with {first.where}" if first is not None else "empty"
        raise ValueError(f"{op.where}: a residual branch must start with a linear map (sensinet's blocks are "
                         f"x + W2 act(W1 x + b1) and x + act(W x + b)), got one {what}")
    inner = _Run(width, pending=run.pending)
    for sub in op.branch:
        _step(inner, sub)
    if inner.pending is not None:
        raise ValueError(f"{inner.pending[2]}: a per-feature scale/shift after the last activation of a residual "
                         "branch cannot be folded into a linear map")
    shapes = [(l.W.shape, l.act) for l in inner.layers]
    if inner.width != width:
        raise ValueError(f"{op.where}: the residual branch maps {width} features to {inner.width}; a residual "
                         "block keeps its width")
    if len(inner.layers) == 1:  # x + act(x @ W + b)
        l1 = inner.layers[0]
        return Residual(width, l1.act, weights=1, alpha=l1.alpha), {"W": l1.W, "b": l1.b}
    if len(inner.layers) == 2 and inner.layers[1].act == "identity":  # x + act(x @ W1 + b1) @ W2 (+ b2)
        l1, l2 = inner.layers
        if np.any(l2.b != 0):
            s, t = np.ones(width), l2.b.copy()
            if run.pending is not None:
                t = t + run.pending[1]
            run.pending = (s, t, l2.where)
        return (Residual(width, l1.act, hidden=l1.W.shape[1], weights=2, alpha=l1.alpha),
                {"W1": l1.W, "b1": l1.b, "W2": l2.W})
    raise ValueError(f"{op.where}: a residual branch must be linear-activation or linear-activation-linear "
                     f"(sensinet's blocks), got the layers {shapes}")


def build(ops: list, n_inputs: int, loss: str, dtype: Any, source: str = "model") -> Network:
    """The Network computing the chain ``ops`` on ``n_inputs`` features (weights copied, affine maps folded)."""
    run = _Run(int(n_inputs))
    layers: list = []
    weights: list = []

    def flush() -> None:
        for l in run.layers:
            layers.append(Dense(l.W.shape[1], l.act, alpha=l.alpha))
            weights.append({"W": l.W, "b": l.b})
        run.layers = []

    for op in ops:
        if isinstance(op, Block):
            flush()
            layer, w = _block(run, op)
            layers.append(layer)
            weights.append(w)
        else:
            _step(run, op)
    if not layers and not run.layers:
        raise ValueError(f"{source}: expected at least one linear layer, got none")
    if run.pending is not None:
        s, t, where = run.pending
        last = run.open()
        if last is None:
            raise ValueError(f"{where}: a per-feature scale/shift after the network's last activation (or last "
                             "residual block) cannot be folded into a linear map")
        last.W, last.b = last.W * s[None, :], last.b * s + t
        run.pending = None
    flush()
    net = Network(int(n_inputs), layers, loss=loss, dtype=dtype)
    for i, w in enumerate(weights):
        views = net.layer_parameters(i)
        for key, value in w.items():
            views[key][...] = value
    return net
