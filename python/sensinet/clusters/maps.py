"""The exact affine map of every activation pattern (masks fixed: the network is affine), and least-squares
maps of merged clusters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from ..network import Network
from .patterns import unpack

CHUNK_VALUES = 1 << 21  # clusters per chunk of the batched map computation: ~16 MiB per intermediate


def lstsq_maps(X: NDArray, Y: NDArray, groups: NDArray, n_groups: int,
                fixed: Optional[dict] = None, ridge: float = 0.0) -> tuple:
    """One least-squares affine map of Y on X per group (minimum-norm on centred data, so a feature that is
    constant inside a group gets weight 0 and its effect goes to the bias; ``ridge`` > 0 adds
    ``ridge * ||W||^2``). ``fixed`` maps group ids to (W, b) kept as they are."""
    d, K = X.shape[1], Y.shape[1]
    W = np.zeros((n_groups, d, K))
    b = np.zeros((n_groups, K))
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(n_groups + 1))
    for g in range(n_groups):
        if fixed is not None and g in fixed:
            W[g], b[g] = fixed[g]
            continue
        idx = order[bounds[g]:bounds[g + 1]]
        if idx.size == 0:
            continue
        Xg, Yg = X[idx], Y[idx]
        mx, my = Xg.mean(axis=0), Yg.mean(axis=0)
        if idx.size > 1 and ridge > 0:
            A = np.vstack([Xg - mx, np.sqrt(ridge) * np.eye(d)])
            W[g] = np.linalg.lstsq(A, np.vstack([Yg - my, np.zeros((d, K))]), rcond=None)[0]
        elif idx.size > 1:
            W[g] = np.linalg.lstsq(Xg - mx, Yg - my, rcond=None)[0]
        b[g] = my - mx @ W[g]
    return W, b


@dataclass
class MapLayer:
    kind: str  # dense | residual2 | residual1
    act: str
    alpha: float
    W: NDArray  # W or W1 (float64 copies)
    b: NDArray  # b or b1
    W2: Optional[NDArray]
    bits: Optional[tuple]  # (start, stop) of this layer's neurons in the pattern, None if not clustered
    inner: int  # width of the neurons with the activation


def plan(net: Network, pattern_layers: Sequence[int]) -> list:
    """The layers of ``net`` as the cluster maps use them: float64 weights and, for the layers in
    ``pattern_layers``, where their bits sit in an activation pattern."""
    plan, offset = [], 0
    for l, (kind, n_in, n_out, hidden, act, alpha, _l2) in enumerate(net.specs):
        p = {k: np.array(v, dtype=np.float64) for k, v in net.layer_parameters(l).items()}
        inner = hidden if kind == "residual2" else n_out
        bits = None
        if l in pattern_layers:
            bits = (offset, offset + inner)
            offset += inner
        plan.append(MapLayer(kind, act, float(alpha), p.get("W", p.get("W1")), p.get("b", p.get("b1")),
                           p.get("W2"), bits, inner))
    return plan


def slopes(layer: MapLayer, bits: NDArray) -> Optional[NDArray]:
    """(c, inner) slopes of a layer's activation under the patterns, None for identity (all ones)."""
    if layer.act == "identity":
        return None
    m = bits[:, layer.bits[0]:layer.bits[1]]
    if layer.act == "relu":
        return m.astype(np.float64)
    return np.where(m.astype(bool), 1.0, layer.alpha)


def maps_forward(plan: list, bits: NDArray, d: int) -> tuple:
    """Push the augmented identity [I; 0] ((d + 1) rows, the last one the bias) through the layers."""
    c = bits.shape[0]
    A = None  # (c, d + 1, width); None: the identity
    for layer in plan:
        s = slopes(layer, bits)
        if A is None and layer.kind == "dense":
            Z = np.empty((c, d + 1, layer.W.shape[1]))
            Z[:, :d, :] = layer.W
            Z[:, d, :] = layer.b
        else:
            if A is None:
                A = np.zeros((c, d + 1, d))
                A[:, np.arange(d), np.arange(d)] = 1.0
            Z = (A.reshape(-1, A.shape[2]) @ layer.W).reshape(c, d + 1, -1)
            Z[:, d, :] += layer.b
        if s is not None:
            Z *= s[:, None, :]
        if layer.kind == "dense":
            A = Z
        elif layer.kind == "residual2":
            A = A + (Z.reshape(-1, Z.shape[2]) @ layer.W2).reshape(c, d + 1, -1)
        else:
            A = A + Z
    return np.ascontiguousarray(A[:, :d, :]), np.ascontiguousarray(A[:, d, :])


def maps_backward(plan: list, bits: NDArray, d: int, K: int) -> tuple:
    """Pull the identity of the K outputs back through the layers, cluster-major:
    G[c, k, i] = d out_k / d (input i of the current layer) under the pattern of cluster c."""
    c = bits.shape[0]
    G = np.eye(K)[None, :, :]  # (1 or c, K, width of the current layer's output)
    beff = np.zeros((c, K))
    for layer in reversed(plan):
        if layer.kind == "residual2":
            T = (G.reshape(-1, G.shape[2]) @ layer.W2.T).reshape(G.shape[0], K, -1)
        else:
            T = G
        if layer.act != "identity":
            m = bits[:, None, layer.bits[0]:layer.bits[1]]
            if layer.act == "relu":
                T = T * m  # uint8 0/1 masks, cast inside the multiplication
            else:
                T = T * np.where(m.astype(bool), 1.0, layer.alpha)
        beff += T @ layer.b
        back = (T.reshape(-1, T.shape[2]) @ layer.W.T).reshape(T.shape[0], K, -1)
        G = back if layer.kind == "dense" else G + back
    W = np.broadcast_to(G, (c, K, d)).transpose(0, 2, 1)
    return np.ascontiguousarray(W), beff


def exact_maps(plan: list, P: NDArray, n_bits: int, d: int, K: int, direction: str = "auto") -> tuple:
    """Exact (W_eff, b_eff) for every row of packed patterns P, in chunks of clusters."""
    C = P.shape[0]
    if direction == "auto":
        direction = "backward" if K <= d + 1 else "forward"
    width = max([d, K] + [layer.W.shape[1] for layer in plan] + [layer.W.shape[0] for layer in plan])
    per_cluster = width * (K if direction == "backward" else d + 1)
    step = max(1, CHUNK_VALUES // max(per_cluster, 1))
    W = np.empty((C, d, K))
    b = np.empty((C, K))
    for s in range(0, C, step):
        bits = unpack(P[s:s + step], n_bits)
        if direction == "backward":
            W[s:s + step], b[s:s + step] = maps_backward(plan, bits, d, K)
        else:
            W[s:s + step], b[s:s + step] = maps_forward(plan, bits, d)
    return W, b
