"""ReLU activation clusters and their exact affine maps (Picchiotti & Gori, "Clustering-based interpretation
of deep ReLU networks", arXiv:2110.06593, 2021).

The on/off pattern of the ReLU neurons of a network partitions the input space into regions. Inside one
region the network is *exactly* an affine map ``f(x) = x @ W_eff + b_eff`` of the inputs, so every sample
of a cluster (a distinct pattern among the samples) has an exact linear explanation: the signed effective
weights ``W_eff`` (the paper's feature importances) and the per-feature contributions ``x_j * W_eff[j]``,
which sum with ``b_eff`` to the network's output (its logits for a classification head, so each cluster is
exactly a logistic or softmax regression).

* :class:`ReluClusters` -- ``ReluClusters(net).fit(X)``: packed patterns (C++ kernel), cluster ids, exact
  affine maps of every cluster, a cluster table, per-sample explanations, global importances, figures.
* :meth:`ReluClusters.merge` -- agglomerative merging of the clusters (Hamming distance of the patterns or
  Euclidean distance of the affine maps, size-weighted average linkage), each merged cluster refit as one
  linear model of the network outputs; :class:`MergedClusters` reports the fidelity of that explanation.
* :func:`explain` -- ``sensinet.explain(net, X)``, the same as ``ReluClusters(net).fit(X)``.

How the maps are computed
-------------------------
With the masks of a pattern fixed (slope 1 for an active neuron, 0 -- or ``alpha`` for ``leaky_relu`` -- for
an inactive one), every layer is affine, so the whole network is: ``W_eff = W_1 D_1 W_2 D_2 ... W_out`` and
``b_eff = sum_k b_k D_k (prod_{j>k} W_j D_j) W_out + b_out``; a residual block ``x + act(x W1 + b1) W2``
contributes ``I + W1 D W2`` (and ``x + act(x W + b)`` contributes ``I + W D``). The maps of all clusters are
computed at once by pushing the identity through the layers with stacked masks, either forward (the
(n_inputs + 1)-column augmented identity ``[I; 0]``, bias row included) or backward (the identity of the
n_outputs outputs), whichever is cheaper; every step is one large matrix product over all clusters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from ._config import resolve_threads
from .layers import PIECEWISE_LINEAR
from .losses import CLASSIFICATION_LOSSES, predicted_class
from .network import Network

__all__ = ["ReluClusters", "MergedClusters", "AffineMap", "AffineMaps", "Explanation", "ClusterTable",
           "Fidelity", "FidelityCurve", "explain", "MERGE_MAX_CLUSTERS"]

KINKED = ("relu", "leaky_relu")
TREAT_NONLINEAR = ("error", "refit")
MERGE_BY = ("hamming", "affine")
LINKAGES = ("average", "complete", "single")
#: Largest number of clusters :meth:`ReluClusters.merge` accepts (it keeps a dense C x C distance matrix).
MERGE_MAX_CLUSTERS = 5000
_CHUNK_VALUES = 1 << 21  # clusters per chunk of the batched map computation: ~16 MiB per intermediate


# ============================================================================================ small results
@dataclass(frozen=True)
class AffineMap:
    """The affine map ``f(x) = x @ W_eff + b_eff`` of one cluster: ``W_eff`` (n_inputs, n_outputs)."""

    W_eff: NDArray
    b_eff: NDArray

    def __call__(self, X: Any) -> NDArray:
        return np.asarray(X, dtype=np.float64) @ self.W_eff + self.b_eff


@dataclass(frozen=True)
class AffineMaps:
    """The affine maps of all clusters, stacked: ``W_eff`` (n_clusters, n_inputs, n_outputs), ``b_eff``
    (n_clusters, n_outputs). ``maps[c]`` is the :class:`AffineMap` of cluster ``c``."""

    W_eff: NDArray
    b_eff: NDArray

    def __len__(self) -> int:
        return int(self.W_eff.shape[0])

    def __getitem__(self, c: int) -> AffineMap:
        return AffineMap(self.W_eff[c], self.b_eff[c])

    def __iter__(self) -> Iterator[AffineMap]:
        return (self[c] for c in range(len(self)))

    def predict(self, X: Any, labels: Any) -> NDArray:
        """``X[i] @ W_eff[labels[i]] + b_eff[labels[i]]`` for every row (no loop over samples)."""
        X = np.asarray(X, dtype=np.float64)
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu" or labels.shape != (X.shape[0],):
            raise ValueError(f"labels: expected one integer cluster per row of X ({X.shape[0]}), got dtype "
                             f"{labels.dtype} and shape {labels.shape}")
        bad = (labels < 0) | (labels >= len(self))
        if bad.any():
            raise ValueError(f"labels: expected clusters in [0, {len(self)}), got {int(labels[bad][0])} for row "
                             f"{int(np.flatnonzero(bad)[0])} (-1 marks an activation pattern not seen in fit, which "
                             "has no map here: ReluClusters.explain(x) computes the exact map of its own pattern)")
        return np.einsum("nd,ndk->nk", X, self.W_eff[labels]) + self.b_eff[labels]


@dataclass(frozen=True)
class Fidelity:
    """Agreement of a cluster explanation with the network on a set of samples.

    ``r2``: 1 - SS_res / SS_tot of the network outputs (logits for classifiers), pooled over outputs, each
    output centred on its own mean; ``agreement``: share of samples whose predicted class is the network's
    (classification heads: the sign of each logit for binary_cross_entropy -- averaged over outputs -- and
    the arg-max for cross_entropy; None for regression); ``max_abs_error``: largest |surrogate - network|.
    """

    r2: float
    agreement: Optional[float]
    max_abs_error: float
    n_samples: int


@dataclass
class ClusterTable:
    """A table of clusters: ``rows`` of values under ``columns``; ``str()`` gives aligned text."""

    columns: list
    rows: list
    notes: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> NDArray:
        if name not in self.columns:
            raise KeyError(f"column: expected one of {self.columns}, got {name!r}")
        j = self.columns.index(name)
        return np.array([r[j] for r in self.rows])

    def to_frame(self):
        """The table as a pandas DataFrame (pandas needed)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    def _cells(self, columns: Optional[Sequence[str]], floatfmt: str) -> tuple:
        cols = list(self.columns) if columns is None else list(columns)
        for c in cols:
            if c not in self.columns:
                raise KeyError(f"columns: {c!r} is not a column; expected some of {self.columns}")
        idx = [self.columns.index(c) for c in cols]

        def fmt(v: Any) -> str:
            if isinstance(v, (bool, np.bool_)):
                return "yes" if v else ""
            if isinstance(v, (float, np.floating)):
                return "" if np.isnan(v) else format(float(v), floatfmt)
            return str(v)

        return cols, [[fmt(r[j]) for j in idx] for r in self.rows]

    def to_markdown(self, columns: Optional[Sequence[str]] = None, floatfmt: str = ".3g") -> str:
        cols, cells = self._cells(columns, floatfmt)
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines)

    def to_text(self, columns: Optional[Sequence[str]] = None, floatfmt: str = ".3g") -> str:
        cols, cells = self._cells(columns, floatfmt)
        widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(cols)]
        out = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
        out += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
        return "\n".join(out)

    def to_csv(self, path: Any) -> None:
        import csv

        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(self.columns)
            for r in self.rows:
                w.writerow([int(v) if isinstance(v, (bool, np.bool_)) else v for v in r])

    def __str__(self) -> str:
        return self.to_text()


@dataclass
class Explanation:
    """The explanation of one sample: ``output == contributions.sum(axis=0) + b_eff``.

    ``contributions[j, k] = x[j] * W_eff[j, k]``. For an exact explanation (``exact``) ``output`` is the
    network's output (its logits for classifiers) to rounding; for a merged (refit) one it is the surrogate's,
    and ``network_output`` says how far that is from the network.
    """

    x: NDArray
    cluster: int  # -1: a pattern not seen in fit
    W_eff: NDArray
    b_eff: NDArray
    contributions: NDArray
    output: NDArray
    network_output: NDArray
    feature_names: list
    exact: bool

    def top(self, n: int = 5, output: int = 0) -> list:
        """The n largest |contributions| to one output: (feature, contribution, weight, value)."""
        c = self.contributions[:, output]
        order = np.argsort(-np.abs(c), kind="stable")[:n]
        return [(self.feature_names[j], float(c[j]), float(self.W_eff[j, output]), float(self.x[j])) for j in order]

    def __str__(self) -> str:
        lines = [f"cluster {self.cluster}{'' if self.exact else ' (surrogate)'}: output "
                 + ", ".join(f"{v:.4g}" for v in self.output) + " = bias "
                 + ", ".join(f"{v:.4g}" for v in self.b_eff) + " + contributions"
                 + (" (shown for output 0)" if len(self.output) > 1 else "")]
        for name, c, w, v in self.top(len(self.feature_names)):
            lines.append(f"  {name:>16s}  x={v:<10.4g} w={w:<+10.4g} contribution {c:+.4g}")
        return "\n".join(lines)

    def plot(self, ax=None, output: int = 0, path: Optional[str] = None):
        """Horizontal bars of the contributions to one output (matplotlib)."""
        plt = _pyplot(path)
        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 0.3 * len(self.feature_names) + 1.5))
        _bars(ax, self, output)
        if fig is not None and path is not None:
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
        return ax


@dataclass
class FidelityCurve:
    """Fidelity of the merged explanation against the number of clusters (one hierarchy, cut at each n)."""

    by: str
    n_clusters: NDArray
    r2: NDArray
    agreement: Optional[NDArray]
    max_abs_error: NDArray
    r2_test: Optional[NDArray] = None
    agreement_test: Optional[NDArray] = None
    n_fine: int = 0

    def rows(self) -> tuple:
        cols = ["n_clusters", "r2", "max_abs_error"]
        data = [self.n_clusters, self.r2, self.max_abs_error]
        for name in ("agreement", "r2_test", "agreement_test"):
            v = getattr(self, name)
            if v is not None:
                cols.append(name)
                data.append(v)
        return cols, [[d[i] for d in data] for i in range(len(self.n_clusters))]

    def to_table(self) -> ClusterTable:
        cols, rows = self.rows()
        return ClusterTable(cols, [[int(r[0])] + [float(v) for v in r[1:]] for r in rows])

    def to_csv(self, path: Any) -> None:
        self.to_table().to_csv(path)

    def plot(self, ax=None, path: Optional[str] = None):
        """R^2 (and class agreement) against the number of clusters, log x axis (matplotlib)."""
        plt = _pyplot(path)
        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.n_clusters, self.r2, "o-", label="R$^2$ of the outputs")
        if self.agreement is not None:
            ax.plot(self.n_clusters, self.agreement, "s-", label="class agreement")
        if self.r2_test is not None:
            ax.plot(self.n_clusters, self.r2_test, "o--", label="R$^2$ (test)")
        if self.agreement_test is not None:
            ax.plot(self.n_clusters, self.agreement_test, "s--", label="agreement (test)")
        ax.set_xscale("log")
        ax.set_xlabel("number of clusters after merging")
        ax.set_ylabel("fidelity to the network")
        ax.set_title(f"merged by {self.by} ({self.n_fine} activation patterns)")
        ax.grid(alpha=0.3)
        ax.legend()
        if fig is not None and path is not None:
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
        return ax


# ============================================================================================ helpers
def _pyplot(path: Optional[str]):
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plot() needs matplotlib: pip install matplotlib (or sensinet[plot])") from None
    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, e: Explanation, output: int) -> None:
    c = e.contributions[:, output]
    order = np.argsort(np.abs(c), kind="stable")
    ax.barh([e.feature_names[j] for j in order], c[order], color=["tab:red" if v < 0 else "tab:blue"
                                                                  for v in c[order]])
    ax.axvline(0, color="k", lw=0.6)
    if not np.any(c):
        ax.text(0.5, 0.5, "constant map: no feature contributes", transform=ax.transAxes, ha="center", va="center")
    kind = "exact" if e.exact else "surrogate"
    ax.set_title(f"cluster {e.cluster} ({kind}): output {e.output[output]:.3g} = bias {e.b_eff[output]:.3g} "
                 "+ contributions", fontsize=9)
    ax.set_xlabel("contribution x_j * w_eff_j")


def _as_network(model: Any) -> Network:
    if isinstance(model, Network):
        return model
    module = type(model).__module__
    if module.startswith("sklearn"):
        from .convert import from_sklearn

        return from_sklearn(model)
    if module.startswith("torch"):
        from .convert import from_torch

        return from_torch(model)
    raise TypeError(f"net: expected a sensinet Network, a fitted scikit-learn MLP or a torch nn.Sequential, got "
                    f"{module}.{type(model).__name__}")


def _one_sample(net: Network, x: Any) -> NDArray:
    """One sample as a validated (1, n_inputs) array."""
    d = net.n_inputs
    xa = np.asarray(x)
    if xa.ndim == 1:
        xa = xa.reshape(1, -1)
    if xa.ndim != 2 or xa.shape[0] != 1:
        raise ValueError(f"x: expected one sample of shape ({d},) or (1, {d}), got shape {np.shape(x)}")
    return net._X(xa, "x")


def _pattern_hash(P: NDArray) -> NDArray:
    """A 64-bit mix of each row of packed words (splitmix64 finaliser per word); collisions are checked."""
    with np.errstate(over="ignore"):
        h = np.zeros(P.shape[0], dtype=np.uint64)
        for w in range(P.shape[1]):
            h = (h ^ P[:, w]) * np.uint64(0x9E3779B97F4A7C15)
            h ^= h >> np.uint64(30)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
    return h


def _unique_rows(P: NDArray) -> tuple:
    """(first index, inverse, counts) of the distinct rows of a (n, n_words) uint64 array."""
    if P.shape[1] == 1:
        _, first, inv, counts = np.unique(P[:, 0], return_index=True, return_inverse=True, return_counts=True)
        return first, inv.ravel(), counts, True
    h = _pattern_hash(P)
    _, first, inv, counts = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    if np.array_equal(P[first[inv]], P):
        return first, inv, counts, True
    # a hash collision (never seen in practice): fall back to comparing the raw bytes
    v = np.ascontiguousarray(P).view(np.dtype((np.void, 8 * P.shape[1]))).ravel()
    _, first, inv, counts = np.unique(v, return_index=True, return_inverse=True, return_counts=True)
    return first, inv.ravel(), counts, False


def _unpack(P: NDArray, n_bits: int) -> NDArray:
    """(n, n_words) uint64 -> (n, n_bits) uint8 0/1, bit b = word b // 64, bit b % 64."""
    if n_bits == 0:
        return np.zeros((P.shape[0], 0), dtype=np.uint8)
    u8 = np.ascontiguousarray(P, dtype="<u8").view(np.uint8)
    return np.unpackbits(u8, axis=1, bitorder="little")[:, :n_bits]


def _r2(pred: NDArray, out: NDArray) -> float:
    res = float(np.sum((pred - out) ** 2))
    tot = float(np.sum((out - out.mean(axis=0)) ** 2))
    if tot <= 0.0:
        return 1.0 if res <= 1e-24 * max(1.0, float(np.sum(out ** 2))) else 0.0
    return 1.0 - res / tot


def _fidelity(pred: NDArray, out: NDArray, loss: str) -> Fidelity:
    agree = None
    if loss in CLASSIFICATION_LOSSES:
        agree = float(np.mean(predicted_class(loss, pred) == predicted_class(loss, out)))
    return Fidelity(r2=_r2(pred, out), agreement=agree, max_abs_error=float(np.max(np.abs(pred - out))),
                    n_samples=int(out.shape[0]))


def _lstsq_maps(X: NDArray, Y: NDArray, groups: NDArray, n_groups: int,
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


# ============================================================================================ layer plan
@dataclass
class _Layer:
    kind: str  # dense | residual2 | residual1
    act: str
    alpha: float
    W: NDArray  # W or W1 (float64 copies)
    b: NDArray  # b or b1
    W2: Optional[NDArray]
    bits: Optional[tuple]  # (start, stop) of this layer's neurons in the pattern, None if not clustered
    inner: int  # width of the neurons with the activation


def _plan(net: Network, pattern_layers: Sequence[int]) -> list:
    plan, offset = [], 0
    for l, (kind, n_in, n_out, hidden, act, alpha, _l2) in enumerate(net.specs):
        p = {k: np.array(v, dtype=np.float64) for k, v in net.layer_parameters(l).items()}
        inner = hidden if kind == "residual2" else n_out
        bits = None
        if l in pattern_layers:
            bits = (offset, offset + inner)
            offset += inner
        plan.append(_Layer(kind, act, float(alpha), p.get("W", p.get("W1")), p.get("b", p.get("b1")),
                           p.get("W2"), bits, inner))
    return plan


def _slopes(layer: _Layer, bits: NDArray) -> Optional[NDArray]:
    """(c, inner) slopes of a layer's activation under the patterns, None for identity (all ones)."""
    if layer.act == "identity":
        return None
    m = bits[:, layer.bits[0]:layer.bits[1]]
    if layer.act == "relu":
        return m.astype(np.float64)
    return np.where(m.astype(bool), 1.0, layer.alpha)


def _maps_forward(plan: list, bits: NDArray, d: int) -> tuple:
    """Push the augmented identity [I; 0] ((d + 1) rows, the last one the bias) through the layers."""
    c = bits.shape[0]
    A = None  # (c, d + 1, width); None: the identity
    for layer in plan:
        s = _slopes(layer, bits)
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


def _maps_backward(plan: list, bits: NDArray, d: int, K: int) -> tuple:
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


def _exact_maps(plan: list, P: NDArray, n_bits: int, d: int, K: int, direction: str = "auto") -> tuple:
    """Exact (W_eff, b_eff) for every row of packed patterns P, in chunks of clusters."""
    C = P.shape[0]
    if direction == "auto":
        direction = "backward" if K <= d + 1 else "forward"
    width = max([d, K] + [layer.W.shape[1] for layer in plan] + [layer.W.shape[0] for layer in plan])
    per_cluster = width * (K if direction == "backward" else d + 1)
    step = max(1, _CHUNK_VALUES // max(per_cluster, 1))
    W = np.empty((C, d, K))
    b = np.empty((C, K))
    for s in range(0, C, step):
        bits = _unpack(P[s:s + step], n_bits)
        if direction == "backward":
            W[s:s + step], b[s:s + step] = _maps_backward(plan, bits, d, K)
        else:
            W[s:s + step], b[s:s + step] = _maps_forward(plan, bits, d)
    return W, b


# ============================================================================================ hierarchy
def _pairwise(F: NDArray, by: str) -> NDArray:
    """Dense C x C distances: Hamming share of differing bits, or Euclidean distance of feature rows."""
    C = F.shape[0]
    if by == "hamming":
        B = F.astype(np.float64)
        n_bits = max(B.shape[1], 1)
        D = (B @ (1.0 - B).T + (1.0 - B) @ B.T) / n_bits
    else:
        D = np.empty((C, C))
        step = max(1, (1 << 22) // max(C * F.shape[1], 1))
        for s in range(0, C, step):
            diff = F[s:s + step, None, :] - F[None, :, :]
            D[s:s + step] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    D = 0.5 * (D + D.T)
    np.fill_diagonal(D, np.inf)
    return D


def _linkage(D: NDArray, weights: NDArray, linkage: str) -> NDArray:
    """Agglomerative clustering by the nearest-neighbour chain (valid for these reducible linkages).

    ``average`` is the weighted group average: d(k, i+j) = (w_i d(k, i) + w_j d(k, j)) / (w_i + w_j), i.e.
    every fine cluster counts with its weight (its number of samples when size-weighted). Returns the merges
    sorted by height as a SciPy-style linkage matrix (C - 1, 4): ids a, b (< C original, >= C merged), height,
    weight.
    """
    C = D.shape[0]
    D = D.copy()
    w = np.asarray(weights, dtype=np.float64).copy()
    active = np.ones(C, dtype=bool)
    raw = []  # (slot a, slot b, height); the merged cluster keeps slot min(a, b)
    chain: list = []
    n_active = C
    while n_active > 1:
        if not chain:
            chain.append(int(np.flatnonzero(active)[0]))
        a = chain[-1]
        row = D[a]
        bnn = int(np.argmin(row))
        if len(chain) > 1 and row[chain[-2]] <= row[bnn]:
            bnn = chain[-2]
        if len(chain) > 1 and bnn == chain[-2]:
            chain.pop()
            chain.pop()
            h = float(row[bnn])
            i, j = min(a, bnn), max(a, bnn)
            if linkage == "average":
                new = (w[i] * D[i] + w[j] * D[j]) / (w[i] + w[j])
            elif linkage == "complete":
                new = np.maximum(D[i], D[j])
            else:
                new = np.minimum(D[i], D[j])
            new[~active] = np.inf
            active[j] = False
            new[j] = np.inf
            new[i] = np.inf
            D[i, :] = new
            D[:, i] = new
            D[j, :] = np.inf
            D[:, j] = np.inf
            w[i] += w[j]
            raw.append((i, j, h))
            n_active -= 1
        else:
            chain.append(bnn)
    # sort by height (stable) and number the clusters as SciPy does
    order = sorted(range(len(raw)), key=lambda t: raw[t][2])
    parent = list(range(C))
    cid = list(range(C))  # slot -> current cluster id
    size = np.asarray(weights, dtype=np.float64).copy()
    Z = np.empty((len(raw), 4))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for step, t in enumerate(order):
        i, j, h = raw[t]
        ri, rj = find(i), find(j)
        a, b = sorted((cid[ri], cid[rj]))
        parent[rj] = ri
        size[ri] += size[rj]
        cid[ri] = C + step
        Z[step] = (a, b, h, size[ri])
    return Z


def _cut(Z: NDArray, C: int, n_clusters: int) -> NDArray:
    """Group id (0..n_clusters-1, unordered) of each of the C leaves after the first C - n_clusters merges."""
    root = np.arange(2 * C - 1)
    for step in range(C - n_clusters - 1, -1, -1):  # top-down: a merged node's root is already final
        r = root[C + step]
        root[int(Z[step, 0])] = r
        root[int(Z[step, 1])] = r
    _, groups = np.unique(root[:C], return_inverse=True)
    return groups.ravel()


# ============================================================================================ base class
class _ClusterModel:
    """What fine and merged cluster explanations share: the table, importances and figures."""

    net: Network
    X_: NDArray
    labels_: NDArray
    counts_: NDArray
    affine_maps: AffineMaps
    feature_names: list
    exact: bool

    # ---------------------------------------------------------------- basics
    @property
    def n_clusters_(self) -> int:
        return int(self.counts_.shape[0])

    @property
    def shares_(self) -> NDArray:
        return self.counts_ / float(self.counts_.sum())

    @property
    def outputs_(self) -> NDArray:
        """The network's raw outputs (logits for classification heads) on the fitted samples."""
        return self._outputs()

    @property
    def is_classifier(self) -> bool:
        return self.net.loss in CLASSIFICATION_LOSSES

    @property
    def dead_(self) -> NDArray:
        """True for clusters whose map is constant: every |W_eff| <= 1e-9 x the largest |W_eff| of all clusters
        (or exactly 0)."""
        W = np.abs(self.affine_maps.W_eff)
        top = float(W.max()) if W.size else 0.0
        return np.all(W.reshape(W.shape[0], -1) <= 1e-9 * top, axis=1)

    def _outputs(self) -> NDArray:
        raise NotImplementedError

    def predict(self) -> NDArray:
        """The explanation's outputs on the fitted samples: X @ W_eff[label] + b_eff[label]."""
        return self.affine_maps.predict(self.X_, self.labels_)

    @property
    def fidelity(self) -> Fidelity:
        """Agreement of :meth:`predict` with the network on the fitted samples (see :class:`Fidelity`)."""
        return _fidelity(self.predict(), self.outputs_, self.net.loss)

    def _check_output(self, output: int) -> int:
        K = self.net.n_outputs
        if isinstance(output, bool) or not isinstance(output, (int, np.integer)) or not -K <= output < K:
            raise ValueError(f"output: expected an output index in [0, {K}), got {output!r}")
        return int(output) % K

    # ---------------------------------------------------------------- importances
    def global_importance(self, signed: bool = False, output: int = 0, kind: str = "weight") -> NDArray:
        """One importance per input feature, aggregated over clusters weighted by their size.

        Parameters
        ----------
        signed : bool
            False (default): the size-weighted mean of ``|W_eff|`` over clusters -- the mean over samples of
            the magnitude of each sample's local weight. True: the size-weighted mean of the signed ``W_eff``
            (effects of opposite sign in different clusters cancel).
        output : int
            Which network output (logit) to explain.
        kind : {"weight", "contribution"}
            ``weight``: the effective weights (change of the output per unit of the feature, the paper's
            importance). ``contribution``: the mean over samples of ``|x_j W_eff_j|`` (signed: of
            ``x_j W_eff_j``), which accounts for the features' scales -- contributions are measured from x = 0.
        """
        k = self._check_output(output)
        if kind not in ("weight", "contribution"):
            raise ValueError(f"kind: expected 'weight' or 'contribution', got {kind!r}")
        Wk = self.affine_maps.W_eff[:, :, k]
        if kind == "weight":
            V = Wk if signed else np.abs(Wk)
            return self.shares_ @ V
        contrib = self.X_ * Wk[self.labels_]
        return np.mean(contrib if signed else np.abs(contrib), axis=0)

    # ---------------------------------------------------------------- table
    def _extra_columns(self) -> tuple:
        return [], []

    def table(self, y: Any = None, feature_names: Optional[Sequence[str]] = None, feature_values: Any = None,
              output: int = 0, top: int = 3, weights: bool = True, means: bool = True) -> ClusterTable:
        """One row per cluster (largest first).

        Columns: ``cluster, size, share``; with ``y``: ``mean_y`` (the mean true label; for cross_entropy the
        most frequent true class ``true_class``) and, for classifiers, ``accuracy`` of the network; for
        classifiers ``pred_pos_rate`` (share of samples with logit > 0; for cross_entropy ``pred_class`` and
        its share ``pred_share``); ``mean_output`` (mean network output / logit); ``dead`` (constant map);
        ``n_patterns`` (merged clusters); ``b_eff``; ``top`` (the ``top`` largest |W_eff|, signed);
        ``w_<feature>`` (W_eff, with ``weights``) and ``mean_<feature>`` (with ``means``).

        Parameters
        ----------
        y : array (n_samples,), optional
            True labels / targets of the fitted samples.
        feature_names : sequence of str, optional
            Overrides the names given to ``fit``.
        feature_values : array (n_samples, n_inputs), optional
            Values whose per-cluster means are shown instead of the fitted X (e.g. the unstandardized
            features, when the network was trained on standardized ones).
        output : int
            The output (logit) whose weights are shown.
        """
        k = self._check_output(output)
        names = list(feature_names) if feature_names is not None else list(self.feature_names)
        d = self.X_.shape[1]
        if len(names) != d:
            raise ValueError(f"feature_names: expected {d} names, got {len(names)}")
        n = self.X_.shape[0]
        V = self.X_
        if feature_values is not None:
            V = np.asarray(feature_values, dtype=np.float64)
            if V.shape != self.X_.shape:
                raise ValueError(f"feature_values: expected shape {self.X_.shape}, got {V.shape}")
        yv = None
        if y is not None:
            yv = np.asarray(y)
            if yv.ndim == 2 and yv.shape[1] == 1:
                yv = yv[:, 0]
            if yv.shape[0] != n:
                raise ValueError(f"y: expected {n} values (one per fitted sample), got shape {yv.shape}")
        C = self.n_clusters_
        labels = self.labels_
        counts = np.maximum(self.counts_, 1)

        def per_cluster_mean(v: NDArray) -> NDArray:
            v = np.asarray(v, dtype=np.float64)
            if v.ndim == 1:
                return np.bincount(labels, weights=v, minlength=C) / counts
            return np.stack([np.bincount(labels, weights=v[:, j], minlength=C) for j in range(v.shape[1])],
                            axis=1) / counts[:, None]

        out = self.outputs_
        loss = self.net.loss
        cols = ["cluster", "size", "share"]
        data = [np.arange(C), self.counts_, self.shares_]
        if yv is not None:
            if loss == "cross_entropy" and yv.ndim == 1:
                tc, ts = _mode_per_cluster(labels, yv.astype(np.int64), C)
                cols += ["true_class", "true_share"]
                data += [tc, ts]
            else:
                cols.append("mean_y")
                data.append(per_cluster_mean(yv if yv.ndim == 1 else yv[:, k]))
            if self.is_classifier:
                pc = predicted_class(loss, out)
                if loss == "cross_entropy":
                    truth = yv if yv.ndim == 1 else np.argmax(yv, axis=1)
                    correct = pc == truth
                else:
                    yk = yv if yv.ndim == 1 else yv[:, k]
                    correct = pc[:, k] == (yk > 0.5)
                cols.append("accuracy")
                data.append(per_cluster_mean(correct))
        if self.is_classifier:
            if loss == "cross_entropy":
                pcl, pshare = _mode_per_cluster(labels, np.argmax(out, axis=1), C)
                cols += ["pred_class", "pred_share"]
                data += [pcl, pshare]
            else:
                cols.append("pred_pos_rate")
                data.append(per_cluster_mean(out[:, k] > 0))
        cols.append("mean_output")
        data.append(per_cluster_mean(out[:, k]))
        cols.append("dead")
        data.append(self.dead_)
        extra_cols, extra_data = self._extra_columns()
        cols += extra_cols
        data += extra_data
        Wk = self.affine_maps.W_eff[:, :, k]
        cols.append("b_eff")
        data.append(self.affine_maps.b_eff[:, k])
        if top:
            tops = []
            for c in range(C):
                order = np.argsort(-np.abs(Wk[c]), kind="stable")[:top]
                tops.append(", ".join(f"{names[j]} {Wk[c, j]:+.3g}" for j in order if Wk[c, j] != 0) or "-")
            cols.append("top")
            data.append(tops)
        rows = [[_scalar(col[c]) for col in data] for c in range(C)]
        if weights:
            cols += [f"w_{nm}" for nm in names]
            for c in range(C):
                rows[c] += [float(v) for v in Wk[c]]
        if means:
            M = per_cluster_mean(V)
            cols += [f"mean_{nm}" for nm in names]
            for c in range(C):
                rows[c] += [float(v) for v in M[c]]
        note = (f"{self.n_clusters_} clusters of {n} samples; weights of output {k} "
                f"({'exact affine maps' if self.exact else 'least-squares maps'})")
        return ClusterTable(cols, rows, note)

    # ---------------------------------------------------------------- figures
    def plot(self, path: Optional[str] = None, sample: Any = None, output: int = 0, max_clusters: int = 20,
             feature_names: Optional[Sequence[str]] = None):
        """Three panels: cluster sizes (dead clusters grey), a heatmap of W_eff per cluster (clusters x
        features), and the contributions of one sample: an index into the fitted X, a sample, or by default the
        first sample of the largest cluster whose map is not constant.

        Returns the matplotlib figure; with ``path`` it is saved there and closed.
        """
        k = self._check_output(output)
        plt = _pyplot(path)
        names = list(feature_names) if feature_names is not None else list(self.feature_names)
        shown = min(self.n_clusters_, max_clusters)
        if sample is None:
            live = np.flatnonzero(~self.dead_)
            sample = int(np.argmax(self.labels_ == live[0])) if live.size else 0
        if isinstance(sample, (int, np.integer)) and not isinstance(sample, bool):
            e = self.explain(self.X_[int(sample)])
        else:
            e = self.explain(sample)
        e.feature_names = names
        d = len(names)
        fig, axes = plt.subplots(1, 3, figsize=(13 + 0.2 * d, max(4.0, 0.28 * max(shown, d) + 2)),
                                 gridspec_kw={"width_ratios": [1, max(1.6, 0.1 * d), 1.1]})
        ax = axes[0]
        dead = self.dead_[:shown]
        ax.bar(np.arange(shown), self.shares_[:shown], color=["0.6" if x else "tab:blue" for x in dead])
        ax.set_xlabel("cluster (largest first; grey: constant map)")
        ax.set_ylabel("share of samples")
        ax.set_title(f"{shown} largest of {self.n_clusters_} clusters ({self.shares_[:shown].sum():.0%} of samples)",
                     fontsize=9)
        ax = axes[1]
        M = self.affine_maps.W_eff[:shown, :, k]
        vmax = float(np.abs(M).max()) or 1.0
        im = ax.imshow(M, aspect="auto", cmap="coolwarm", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_xticks(np.arange(d))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(np.arange(shown))
        ax.set_yticklabels([f"{c} ({self.shares_[c]:.0%})" for c in range(shown)], fontsize=7)
        ax.set_ylabel("cluster (share)")
        ax.set_title(f"effective weights W_eff (output {k})", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
        _bars(axes[2], e, k)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
        return fig

    def explain(self, x: Any) -> Explanation:  # pragma: no cover -- overridden
        raise NotImplementedError


def _scalar(v: Any) -> Any:
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _mode_per_cluster(labels: NDArray, values: NDArray, C: int) -> tuple:
    """Most frequent integer value per cluster and its share."""
    lo = int(values.min()) if values.size else 0
    m = int(values.max()) - lo + 1 if values.size else 1
    tab = np.zeros((C, m))
    np.add.at(tab, (labels, values - lo), 1)
    mode = np.argmax(tab, axis=1)
    share = tab[np.arange(C), mode] / np.maximum(tab.sum(axis=1), 1)
    return mode + lo, share


# ============================================================================================ ReluClusters
class ReluClusters(_ClusterModel):
    """Clusters of samples by the on/off pattern of the ReLU neurons, each with its exact affine map.

    Parameters
    ----------
    net : Network
        A network whose activations are piecewise linear (``relu``, ``leaky_relu``, ``identity``), Dense
        layers and residual blocks of both kinds. A fitted scikit-learn MLP or a torch ``nn.Sequential`` is
        converted first (:func:`sensinet.from_sklearn` / :func:`sensinet.from_torch`; torch modules get the
        ``mse`` head, so their outputs are explained but the classifier columns of the table are absent:
        convert it yourself with the right ``loss`` for those).
    layers : sequence of int, optional
        Network layer indices whose neurons define the pattern (default: every ``relu`` / ``leaky_relu``
        layer; a residual block contributes its inner neurons). With a subset the clusters are coarser than
        the linear regions, so the maps are no longer exact: each cluster then gets the least-squares affine
        fit of the network outputs on its samples (``exact`` is False and :attr:`fidelity` says how good).
    treat_nonlinear : {"error", "refit"}
        What to do with a layer whose activation is not piecewise linear (tanh, sigmoid, softplus):
        ``"error"`` (default) raises a ValueError naming the layer; ``"refit"`` leaves such layers out of the
        pattern (they are not clustered) and fits each cluster's map by least squares, as for a ``layers``
        subset.

    Attributes (after :meth:`fit`)
    ------------------------------
    patterns : (n_clusters, n_words) uint64
        The distinct patterns, bit-packed 64 per word (bit b of word w is neuron 64 w + b of the
        concatenated pattern layers, see :attr:`bit_layout`), one row per cluster, largest cluster first.
    labels_ : (n_samples,) int64
        Cluster of each sample; clusters are numbered by size, descending (ties: first occurrence in X).
    counts_ : (n_clusters,) int64
    affine_maps : AffineMaps
        ``affine_maps.W_eff`` (n_clusters, n_inputs, n_outputs), ``affine_maps.b_eff`` (n_clusters,
        n_outputs); ``affine_maps[c].W_eff`` is the (n_inputs, n_outputs) map of cluster c.
    exact : bool
        True when the maps are the exact affine maps (every kinked layer in the pattern).

    Examples
    --------
    >>> rc = ReluClusters(net).fit(X)                       # doctest: +SKIP
    >>> print(rc.table(y, feature_names=names))             # doctest: +SKIP
    >>> rc.explain(X[0]).top(3)                             # doctest: +SKIP
    >>> rc.merge(10).fidelity                               # doctest: +SKIP
    """

    def __init__(self, net: Any, layers: Optional[Sequence[int]] = None, treat_nonlinear: str = "error") -> None:
        net = _as_network(net)
        if treat_nonlinear not in TREAT_NONLINEAR:
            raise ValueError(f"treat_nonlinear: expected one of {TREAT_NONLINEAR}, got {treat_nonlinear!r}")
        specs = net.specs
        nonlinear = [l for l, s in enumerate(specs) if s[4] not in PIECEWISE_LINEAR]
        if nonlinear and treat_nonlinear == "error":
            l = nonlinear[0]
            kind = "Dense" if specs[l].kind == "dense" else "Residual"
            raise ValueError(
                f"net: layer {l} ({kind}, activation {specs[l].activation!r}) is not piecewise linear, so the network has "
                "no exact affine map per activation pattern; use relu, leaky_relu or identity activations, or "
                "ReluClusters(net, treat_nonlinear='refit') to cluster by the piecewise-linear layers only and "
                "fit one least-squares linear map per cluster")
        kinked = [l for l, s in enumerate(specs) if s[4] in KINKED]
        if layers is None:
            chosen = kinked
        else:
            items = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
            chosen = []
            for item in items:
                l = net._check_layer(item, "layers")
                if specs[l].activation not in KINKED:
                    raise ValueError(f"layers: layer {l} has activation {specs[l].activation!r}, which has no on/off "
                                     f"pattern; the relu / leaky_relu layers are {kinked}")
                if l not in chosen:
                    chosen.append(l)
            chosen.sort()
            if not chosen:
                raise ValueError("layers: expected at least one layer index, got none")
        self.net = net
        self.pattern_layers = tuple(chosen)
        self.treat_nonlinear = treat_nonlinear
        self.exact = not nonlinear and list(chosen) == kinked
        widths = [(specs[l].hidden if specs[l].kind == "residual2" else specs[l].n_out) for l in chosen]
        self.n_bits = int(sum(widths))
        #: (layer, neuron) of every pattern bit, in bit order
        self.bit_layout = [(l, j) for l, w in zip(chosen, widths) for j in range(w)]
        self._fitted = False
        self._hierarchies: dict = {}

    # ---------------------------------------------------------------- fit
    def _patterns_of(self, Xa: Any, threads: int) -> NDArray:
        """Packed patterns of Xa (an array or the network's prepared Matrix, which a GPU keeps resident)."""
        if not self.pattern_layers:
            return np.zeros((Xa.shape[0], 1), dtype=np.uint64)
        return self.net._engine.relu_patterns(Xa, list(self.pattern_layers), threads)

    def fit(self, X: Any, feature_names: Optional[Sequence[str]] = None, n_threads: Optional[int] = None,
            _direction: str = "auto") -> "ReluClusters":
        """Patterns of the samples X, cluster ids, and the affine map of every cluster.

        Parameters
        ----------
        X : array (n_samples, n_inputs)
            Finite values; wrong width or NaN raise a ValueError.
        feature_names : sequence of str, optional
            Names of the inputs (default ``x0, x1, ...``; a pandas DataFrame's columns are used).
        n_threads : int, optional
            Threads of the pattern kernel.
        """
        names = feature_names
        if names is None and hasattr(X, "columns"):
            names = [str(c) for c in X.columns]
        Xm = self.net._inputs(X)
        Xa = Xm.array
        threads = resolve_threads(n_threads)
        d, K = self.net.n_inputs, self.net.n_outputs
        if names is None:
            names = [f"x{j}" for j in range(d)]
        names = [str(n) for n in names]
        if len(names) != d:
            raise ValueError(f"feature_names: expected {d} names (one per input), got {len(names)}")
        self.feature_names = names
        self._plan = _plan(self.net, self.pattern_layers)
        P = self._patterns_of(Xm, threads)
        first, inv, counts, self._hash_ok = _unique_rows(P)
        order = np.lexsort((first, -counts))
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        self.labels_ = rank[inv].astype(np.int64)
        self.counts_ = counts[order].astype(np.int64)
        self.patterns = np.ascontiguousarray(P[first[order]])
        self.X_ = np.array(Xa, dtype=np.float64)  # a copy: later changes to the caller's X do not leak in
        self._Xnet = self.X_ if Xa.dtype == np.float64 else Xa
        self._out = None
        self._lookup = None
        self._hierarchies = {}
        if self.exact:
            W, b = _exact_maps(self._plan, self.patterns, self.n_bits, d, K, _direction)
        else:
            W, b = _lstsq_maps(self.X_, self._outputs(), self.labels_, self.n_clusters_)
        self.affine_maps = AffineMaps(W, b)
        self._fitted = True
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("ReluClusters: call fit(X) first")

    def _outputs(self) -> NDArray:
        if self._out is None:
            self._out = np.asarray(self.net.forward(self._Xnet), dtype=np.float64)
        return self._out

    @property
    def bits(self) -> NDArray:
        """(n_clusters, n_bits) 0/1 uint8: the unpacked patterns."""
        self._check_fitted()
        return _unpack(self.patterns, self.n_bits)

    # ---------------------------------------------------------------- lookups
    def _match(self, P: NDArray) -> NDArray:
        """Cluster of each packed pattern row, -1 when the pattern was not seen in fit."""
        if self._lookup is None:
            if self._hash_ok:
                h = _pattern_hash(self.patterns) if self.patterns.shape[1] > 1 else self.patterns[:, 0].copy()
                srt = np.argsort(h, kind="stable")
                self._lookup = ("hash", h[srt], srt)
            else:
                self._lookup = ("dict", {row.tobytes(): c for c, row in enumerate(self.patterns)}, None)
        kind, table, srt = self._lookup
        if kind == "dict":
            return np.array([table.get(row.tobytes(), -1) for row in P], dtype=np.int64)
        h = _pattern_hash(P) if P.shape[1] > 1 else P[:, 0]
        pos = np.minimum(np.searchsorted(table, h), table.size - 1)
        cand = srt[pos]
        ok = np.all(self.patterns[cand] == P, axis=1)
        return np.where(ok, cand, -1).astype(np.int64)

    def cluster_of(self, X: Any, n_threads: Optional[int] = None) -> NDArray:
        """Cluster of each sample of X (-1 for an activation pattern not seen in fit)."""
        self._check_fitted()
        return self._match(self._patterns_of(self.net._inputs(X), resolve_threads(n_threads)))

    def local_maps(self, X: Any, n_threads: Optional[int] = None) -> AffineMaps:
        """The exact affine map of every sample of X from its own pattern (also for patterns not seen in
        fit): ``W_eff`` (n_samples, n_inputs, n_outputs), ``b_eff`` (n_samples, n_outputs)."""
        self._check_fitted()
        if not self.exact:
            raise ValueError("local_maps: the maps are exact only when every relu / leaky_relu layer is in the "
                             "pattern and all activations are piecewise linear")
        P = self._patterns_of(self.net._inputs(X), resolve_threads(n_threads))
        W, b = _exact_maps(self._plan, P, self.n_bits, self.net.n_inputs, self.net.n_outputs)
        return AffineMaps(W, b)

    def _nearest(self, P: NDArray) -> NDArray:
        """The fitted cluster with the smallest Hamming distance to each packed pattern (ties: the larger)."""
        B = self.bits.astype(np.float64)
        Q = _unpack(P, self.n_bits).astype(np.float64)
        D = Q @ (1.0 - B).T + (1.0 - Q) @ B.T
        return np.argmin(D, axis=1).astype(np.int64)

    # ---------------------------------------------------------------- explanations
    def explain(self, x: Any) -> Explanation:
        """Explain one sample: its cluster, W_eff, b_eff and the contributions ``x_j * W_eff[j]``, which sum
        with b_eff to the network's output (exactly, up to rounding, when :attr:`exact`).

        A sample whose pattern was not seen in fit (cluster -1) still gets its exact map from its own
        pattern; with inexact maps it gets the map of the nearest cluster by Hamming distance.
        """
        self._check_fitted()
        Xa = _one_sample(self.net, x)
        P = self._patterns_of(Xa, 1)
        c = int(self._match(P)[0])
        if self.exact:
            if c >= 0:
                W, b = self.affine_maps.W_eff[c], self.affine_maps.b_eff[c]
            else:
                Wl, bl = _exact_maps(self._plan, P, self.n_bits, self.net.n_inputs, self.net.n_outputs)
                W, b = Wl[0], bl[0]
        else:
            m = c if c >= 0 else int(self._nearest(P)[0])
            W, b = self.affine_maps.W_eff[m], self.affine_maps.b_eff[m]
        return _make_explanation(Xa[0].astype(np.float64), c, W, b, self.net.forward(Xa)[0], self.feature_names,
                                 self.exact)

    # ---------------------------------------------------------------- merging
    def _hierarchy(self, by: str, linkage: str, weighted: bool) -> NDArray:
        self._check_fitted()
        if by not in MERGE_BY:
            raise ValueError(f"by: expected one of {MERGE_BY}, got {by!r}")
        if linkage not in LINKAGES:
            raise ValueError(f"linkage: expected one of {LINKAGES}, got {linkage!r}")
        key = (by, linkage, bool(weighted))
        if key not in self._hierarchies:
            C = self.n_clusters_
            if C > MERGE_MAX_CLUSTERS:
                raise ValueError(
                    f"merge: {C} clusters exceed MERGE_MAX_CLUSTERS = {MERGE_MAX_CLUSTERS} (the merge keeps a dense "
                    f"{C} x {C} distance matrix); fit on fewer samples or cluster on fewer layers (layers=...)")
            if C == 1:
                Z = np.zeros((0, 4))
            else:
                if by == "hamming":
                    F = self.bits
                else:
                    F = np.concatenate([self.affine_maps.W_eff.reshape(C, -1), self.affine_maps.b_eff], axis=1)
                w = self.counts_ if weighted else np.ones(C)
                Z = _linkage(_pairwise(F, by), w, linkage)
            self._hierarchies[key] = Z
        return self._hierarchies[key]

    def linkage_matrix(self, by: str = "hamming", linkage: str = "average", weighted: bool = True) -> NDArray:
        """The merge hierarchy as a SciPy linkage matrix (for ``scipy.cluster.hierarchy.dendrogram``)."""
        return self._hierarchy(by, linkage, weighted).copy()

    def merge(self, n_clusters: int, by: str = "hamming", linkage: str = "average", weighted: bool = True,
              ridge: float = 0.0) -> "MergedClusters":
        """Merge the clusters hierarchically into ``n_clusters`` and refit each as one linear model.

        Parameters
        ----------
        n_clusters : int
            In [1, number of clusters]. With all clusters kept the explanation is the exact one (fidelity 1).
        by : {"hamming", "affine"}
            Distance between two clusters: the share of differing pattern bits, or the Euclidean distance of
            their flattened maps ``[W_eff; b_eff]`` (put the inputs on comparable scales for this one).
        linkage : {"average", "complete", "single"}
            Agglomeration rule (nearest-neighbour chain). ``average`` with ``weighted`` is the group average
            in which every cluster counts with its number of samples (UPGMA over the samples).
        weighted : bool
            Weight the clusters by their sizes in the average linkage (default) or count each cluster once.
        ridge : float
            Ridge penalty ``ridge * ||W||^2`` of the refits (0: plain least squares). Strongly correlated inputs
            give large, unstable least-squares weights; a small ridge steadies them at a small cost in fidelity.

        Returns
        -------
        MergedClusters
            Each merged cluster of more than one pattern gets the least-squares affine fit of the network
            outputs (logits for classifiers) on its samples; a merged cluster of one pattern keeps its map.
        """
        self._check_fitted()
        C = self.n_clusters_
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float, np.floating)) or not ridge >= 0 \
                or not np.isfinite(ridge):
            raise ValueError(f"ridge: expected a number >= 0, got {ridge!r}")
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) \
                or not 1 <= n_clusters <= C:
            raise ValueError(f"n_clusters: expected an int in [1, {C}] (the number of clusters), got {n_clusters!r}")
        Z = self._hierarchy(by, linkage, weighted)
        return MergedClusters(self, _cut(Z, C, int(n_clusters)), by=by, linkage=linkage, weighted=weighted,
                              ridge=float(ridge))

    def fidelity_curve(self, ns: Optional[Sequence[int]] = None, by: str = "hamming", linkage: str = "average",
                       weighted: bool = True, X_test: Any = None, ridge: float = 0.0) -> FidelityCurve:
        """Fidelity of the merged explanation for each number of clusters in ``ns`` (default: a log-spaced
        grid from 1 to the number of clusters). With ``X_test`` also on held-out samples, each assigned to its
        cluster or, for an unseen pattern, to the nearest one by Hamming distance."""
        self._check_fitted()
        C = self.n_clusters_
        if ns is None:
            ns = np.unique(np.round(np.geomspace(1, C, num=min(C, 12))).astype(int))
        ns = [int(n) for n in ns]
        for n in ns:
            if not 1 <= n <= C:
                raise ValueError(f"ns: expected cluster counts in [1, {C}], got {n}")
        fid, fid_t = [], []
        for n in ns:
            m = self.merge(n, by=by, linkage=linkage, weighted=weighted, ridge=ridge)
            fid.append(m.fidelity)
            if X_test is not None:
                fid_t.append(m.fidelity_on(X_test))
        cls = self.is_classifier
        return FidelityCurve(
            by=by, n_clusters=np.array(ns), r2=np.array([f.r2 for f in fid]),
            agreement=np.array([f.agreement for f in fid]) if cls else None,
            max_abs_error=np.array([f.max_abs_error for f in fid]),
            r2_test=np.array([f.r2 for f in fid_t]) if fid_t else None,
            agreement_test=np.array([f.agreement for f in fid_t]) if fid_t and cls else None, n_fine=C)

    def summary(self) -> dict:
        """Key numbers: samples, clusters, exactness, share of the largest cluster, dead clusters."""
        self._check_fitted()
        return {"n_samples": int(self.X_.shape[0]), "n_clusters": self.n_clusters_, "n_bits": self.n_bits,
                "exact": bool(self.exact), "largest_share": float(self.shares_[0]),
                "n_dead": int(self.dead_.sum()), "dead_share": float(self.shares_[self.dead_].sum())}

    def __repr__(self) -> str:
        if not self._fitted:
            return f"ReluClusters(layers={list(self.pattern_layers)}, n_bits={self.n_bits}, not fitted)"
        return (f"ReluClusters(n_samples={self.X_.shape[0]}, n_clusters={self.n_clusters_}, "
                f"layers={list(self.pattern_layers)}, n_bits={self.n_bits}, exact={self.exact})")


def _make_explanation(x: NDArray, c: int, W: NDArray, b: NDArray, net_out: NDArray, names: list,
                      exact: bool) -> Explanation:
    contrib = x[:, None] * W
    return Explanation(x=x, cluster=c, W_eff=np.array(W), b_eff=np.array(b), contributions=contrib,
                       output=contrib.sum(axis=0) + b, network_output=np.asarray(net_out, dtype=np.float64),
                       feature_names=list(names), exact=exact)


# ============================================================================================ merged
class MergedClusters(_ClusterModel):
    """Clusters of :class:`ReluClusters` merged hierarchically, each with one least-squares affine map.

    Attributes
    ----------
    labels_, counts_, affine_maps
        As for :class:`ReluClusters`, for the merged clusters (largest first).
    members : list of int arrays
        The fine clusters (indices into the parent's clusters) of each merged cluster.
    fine_to_merged : (n_fine,) int64
    fidelity : Fidelity
        Agreement of the merged explanation with the network on the fitted samples.
    """

    def __init__(self, parent: ReluClusters, groups: NDArray, by: str, linkage: str, weighted: bool,
                 ridge: float = 0.0) -> None:
        self.parent = parent
        self.net = parent.net
        self.by, self.linkage, self.weighted, self.ridge = by, linkage, weighted, ridge
        self.X_ = parent.X_
        self.feature_names = parent.feature_names
        G = int(groups.max()) + 1
        sizes = np.bincount(groups, weights=parent.counts_, minlength=G)
        first = np.full(G, parent.n_clusters_)
        np.minimum.at(first, groups, np.arange(groups.size))
        order = np.lexsort((first, -sizes))
        rank = np.empty(G, dtype=np.int64)
        rank[order] = np.arange(G)
        self.fine_to_merged = rank[groups]
        self.members = [np.flatnonzero(self.fine_to_merged == g) for g in range(G)]
        self.labels_ = self.fine_to_merged[parent.labels_]
        self.counts_ = sizes[order].astype(np.int64)
        fixed = {g: (parent.affine_maps.W_eff[m[0]], parent.affine_maps.b_eff[m[0]])
                 for g, m in enumerate(self.members) if m.size == 1}
        W, b = _lstsq_maps(self.X_, parent.outputs_, self.labels_, G, fixed, ridge)
        self.affine_maps = AffineMaps(W, b)
        #: True for merged clusters whose map is the exact one (a single pattern, exact parent)
        self.exact_clusters = np.array([m.size == 1 and parent.exact for m in self.members])
        self.exact = bool(self.exact_clusters.all())

    def _outputs(self) -> NDArray:
        return self.parent.outputs_

    @property
    def n_patterns_(self) -> NDArray:
        return np.array([m.size for m in self.members])

    def _extra_columns(self) -> tuple:
        return ["n_patterns"], [self.n_patterns_]

    def _assign(self, Xa: NDArray) -> NDArray:
        P = self.parent._patterns_of(Xa, resolve_threads(None))
        fine = self.parent._match(P)
        unseen = fine < 0
        if unseen.any():
            fine[unseen] = self.parent._nearest(P[unseen])
        return self.fine_to_merged[fine]

    def predict(self, X: Any = None) -> NDArray:
        """Surrogate outputs: on the fitted samples (X None) or on new samples, each assigned to the merged
        cluster of its pattern (an unseen pattern: of the fitted pattern nearest by Hamming distance)."""
        if X is None:
            return self.affine_maps.predict(self.X_, self.labels_)
        Xa = self.net._X(X)
        return self.affine_maps.predict(Xa.astype(np.float64), self._assign(Xa))

    def fidelity_on(self, X: Any) -> Fidelity:
        """Fidelity of the surrogate on other samples (e.g. a test set)."""
        Xa = self.net._X(X)
        return _fidelity(self.predict(Xa), np.asarray(self.net.forward(Xa), dtype=np.float64), self.net.loss)

    def explain(self, x: Any) -> Explanation:
        """The surrogate explanation of one sample: contributions sum with b_eff to the *surrogate's* output;
        ``network_output`` is the network's."""
        Xa = _one_sample(self.net, x)
        g = int(self._assign(Xa)[0])
        return _make_explanation(Xa[0].astype(np.float64), g, self.affine_maps.W_eff[g], self.affine_maps.b_eff[g],
                                 self.net.forward(Xa)[0], self.feature_names, bool(self.exact_clusters[g]))

    def fidelity_curve(self, ns: Optional[Sequence[int]] = None, X_test: Any = None) -> FidelityCurve:
        """The parent's fidelity curve for the same distance and linkage (one hierarchy, cut at each n)."""
        return self.parent.fidelity_curve(ns, by=self.by, linkage=self.linkage, weighted=self.weighted,
                                          X_test=X_test, ridge=self.ridge)

    def __repr__(self) -> str:
        f = self.fidelity
        agree = "" if f.agreement is None else f", agreement={f.agreement:.4f}"
        return (f"MergedClusters(n_clusters={self.n_clusters_} of {self.parent.n_clusters_}, by={self.by!r}, "
                f"r2={f.r2:.4f}{agree})")


# ============================================================================================ convenience
def explain(net: Any, X: Any, layers: Optional[Sequence[int]] = None, treat_nonlinear: str = "error",
            feature_names: Optional[Sequence[str]] = None, n_threads: Optional[int] = None) -> ReluClusters:
    """``ReluClusters(net, layers, treat_nonlinear).fit(X, feature_names)``: the activation clusters of the
    samples X with the exact affine map of each (see :class:`ReluClusters`)."""
    return ReluClusters(net, layers=layers, treat_nonlinear=treat_nonlinear).fit(X, feature_names=feature_names,
                                                                                n_threads=n_threads)
