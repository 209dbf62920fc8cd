"""Layer specifications: what a network is made of (the parameters live in one flat vector)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional, Union

import numpy as np

ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus")
PIECEWISE_LINEAR = ("identity", "relu", "leaky_relu")


class LayerSpec(NamedTuple):
    """What the engine needs of one layer. ``hidden`` is the inner width of a two-weight residual block
    (0 otherwise); ``width`` is the number of neurons a pruning or a sensitivity sees in the layer."""

    kind: str  # "dense", "residual1" or "residual2"
    n_in: int
    n_out: int
    hidden: int
    activation: str
    alpha: float
    l2: float

    @property
    def width(self) -> int:
        """Neurons of the layer: the inner ones of a two-weight residual block, else its outputs."""
        return int(self.hidden) if self.kind == "residual2" else int(self.n_out)

    @property
    def n_params(self) -> int:
        """Parameters of the layer, counted in Python ints (no overflow)."""
        n_in, n_out, hidden = int(self.n_in), int(self.n_out), int(self.hidden)
        if self.kind == "residual2":
            return n_in * hidden + hidden + hidden * n_out
        return n_in * n_out + n_out


def _check_common(kind: str, activation: str, alpha: float, l2: float) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"{kind}.activation: expected one of {ACTIVATIONS}, got {activation!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) or not (
            np.isfinite(alpha) and float(alpha) >= 0.0):
        raise ValueError(f"{kind}.alpha: expected a finite leaky_relu slope >= 0, got {alpha!r}")
    if isinstance(l2, bool) or not isinstance(l2, (int, float, np.integer, np.floating)) or not (
            np.isfinite(l2) and float(l2) >= 0.0):
        raise ValueError(f"{kind}.l2: expected a finite weight decay >= 0, got {l2!r}")


def _check_width(kind: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not hasattr(value, "__index__"):
        raise TypeError(f"{kind}.{name}: expected an int, got {type(value).__name__}")
    if int(value) < 1:  # type: ignore[call-overload]
        raise ValueError(f"{kind}.{name}: expected a width >= 1, got {value!r}")


@dataclass(frozen=True)
class Dense:
    """Fully connected layer ``h = activation(x @ W + b)`` with ``W`` of shape (n_in, units).

    Parameters
    ----------
    units : int
        Number of neurons.
    activation : str
        One of ``identity, relu, leaky_relu, tanh, sigmoid, softplus``.
    alpha : float
        Slope of ``leaky_relu`` for negative inputs.
    l2 : float
        Weight decay: adds ``l2 / 2 * ||W||^2`` to the objective (biases are not decayed).
    """

    units: int
    activation: str = "identity"
    alpha: float = 0.01
    l2: float = 0.0

    def __post_init__(self) -> None:
        _check_width("Dense", "units", self.units)
        _check_common("Dense", self.activation, self.alpha, self.l2)

    @property
    def width(self) -> int:
        """Neurons of the layer (its outputs)."""
        return int(self.units)

    def spec(self, n_in: int) -> LayerSpec:
        """The engine's :class:`LayerSpec` of this layer on ``n_in`` inputs."""
        return LayerSpec("dense", int(n_in), int(self.units), 0, self.activation, float(self.alpha), float(self.l2))


@dataclass(frozen=True)
class Residual:
    """Residual block that keeps its width.

    ``weights=2``: ``x + activation(x @ W1 + b1) @ W2`` with ``W1`` (width, hidden) and ``W2`` (hidden, width);
    ``weights=1``: ``x + activation(x @ W + b)`` with ``W`` (width, width).

    Parameters
    ----------
    width : int
        Width of the block's input and output (must equal the previous layer's width).
    activation : str
        Activation of the inner neurons.
    hidden : int, optional
        Inner width of the two-weight block (default: ``width``).
    weights : {1, 2}
        Which block form.
    alpha, l2 : float
        As for :class:`Dense`; ``l2`` decays every weight matrix of the block.
    """

    width: int
    activation: str = "relu"
    hidden: Optional[int] = None
    weights: int = 2
    alpha: float = 0.01
    l2: float = 0.0

    def __post_init__(self) -> None:
        _check_width("Residual", "width", self.width)
        if self.hidden is not None:
            _check_width("Residual", "hidden", self.hidden)
        if isinstance(self.weights, bool) or not isinstance(self.weights, (int, np.integer)) or \
                self.weights not in (1, 2):
            raise ValueError(f"Residual.weights: expected 1 or 2, got {self.weights!r}")
        if self.weights == 1 and self.hidden not in (None, self.width):
            raise ValueError(f"Residual.hidden: the one-weight block has hidden == width, got {self.hidden!r}")
        _check_common("Residual", self.activation, self.alpha, self.l2)

    @property
    def inner(self) -> int:
        """Inner width of the block (``hidden``, or ``width`` when not given)."""
        return int(self.hidden if self.hidden is not None else self.width)

    def spec(self, n_in: int) -> LayerSpec:
        """The engine's :class:`LayerSpec` of this block on ``n_in`` inputs (``n_in`` must equal ``width``)."""
        if int(n_in) != int(self.width):
            raise ValueError(f"Residual.width: a residual block keeps its width; its input has {n_in} features, "
                             f"width is {self.width}")
        kind = "residual2" if self.weights == 2 else "residual1"
        return LayerSpec(kind, int(n_in), int(self.width), self.inner if self.weights == 2 else 0, self.activation,
                         float(self.alpha), float(self.l2))


Layer = Union[Dense, Residual]


def as_spec(spec: tuple) -> LayerSpec:
    """A LayerSpec from any 7-sequence in its field order (model files store plain lists)."""
    return spec if isinstance(spec, LayerSpec) else LayerSpec(*spec)


def layer_from_spec(spec: tuple) -> Layer:
    """Inverse of ``Layer.spec``: rebuild the layer object from a LayerSpec."""
    kind, n_in, n_out, hidden, act, alpha, l2 = spec
    if kind == "dense":
        return Dense(int(n_out), act, alpha=float(alpha), l2=float(l2))
    if kind == "residual2":
        return Residual(int(n_out), act, hidden=int(hidden), weights=2, alpha=float(alpha), l2=float(l2))
    if kind == "residual1":
        return Residual(int(n_out), act, weights=1, alpha=float(alpha), l2=float(l2))
    raise ValueError(f"layer kind: expected dense, residual2 or residual1, got {kind!r}")


def layer_params(spec: tuple) -> int:
    """Parameters of one layer spec."""
    return as_spec(spec).n_params
