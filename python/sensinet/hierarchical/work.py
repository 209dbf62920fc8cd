"""The work model: what a forward pass, a block gradient, a sensitivity sweep and a curvature cost, in
full-gradient equivalents (see the package docstring)."""
from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import NDArray

from ..network import Network


def layer_macs(net: Network) -> NDArray:
    """Multiply-adds per sample of every network layer's forward pass (weights only; biases and activations
    are lower-order)."""
    out = []
    for s in net.specs:
        out.append(s.n_in * s.hidden + s.hidden * s.n_out if s.kind == "residual2" else s.n_in * s.n_out)
    return np.asarray(out, dtype=np.float64)


def full_grad(c: NDArray) -> float:
    """Multiply-adds per sample of one full-network gradient (forward, input and weight gradients)."""
    return float(3 * c.sum() - c[0])


def block_work(net: Network, first: int, last: int, c: Optional[NDArray] = None) -> float:
    """Share of a full-network gradient that a gradient of the block ``first..last`` costs (its frozen input
    given): forward from ``first`` up, input gradients of the layers above ``first``, weight gradients of the
    block."""
    c = layer_macs(net) if c is None else c
    cost = c[first:].sum() + c[first + 1:].sum() + c[first:last + 1].sum()
    return float(cost / full_grad(c))


def forward_share(c: NDArray, first: int, last: Optional[int] = None) -> float:
    """Share of a full gradient that a forward pass through layers ``first..last`` costs."""
    last = len(c) - 1 if last is None else last
    return float(c[first:last + 1].sum() / full_grad(c))


def sweep_work(net: Network, lowest_site: int, c: Optional[NDArray] = None) -> float:
    """Share of a full gradient that one sensitivity sweep costs: a full forward plus input gradients from the
    output down to sensitivity layer ``lowest_site`` (0 = the inputs, which needs the whole reverse pass)."""
    c = layer_macs(net) if c is None else c
    return float((c.sum() + c[max(lowest_site, 0):].sum()) / full_grad(c))


def curvature_work(net: Network, lowest_site: int, c: Optional[NDArray] = None) -> float:
    """Share of a full gradient of one exact group curvature (Hessian-vector product): a full forward, then a
    tangent forward, a reverse and a second-order reverse pass from the group's lowest site up."""
    c = layer_macs(net) if c is None else c
    return float((c.sum() + 3 * c[max(lowest_site, 0):].sum()) / full_grad(c))
