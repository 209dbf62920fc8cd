"""ReluClusters: samples clustered by their ReLU pattern, each cluster with its exact affine map."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from .._config import resolve_threads
from ..convert import as_network
from ..layers import PIECEWISE_LINEAR
from .linkage import cut, linkage_matrix, pairwise
from .maps import exact_maps, lstsq_maps, plan
from .merged import MergedClusters
from .model import ClusterModel, one_sample
from .patterns import pattern_hash, unique_rows, unpack
from .records import AffineMaps, Explanation, FidelityCurve, make_explanation

KINKED = ("relu", "leaky_relu")
TREAT_NONLINEAR = ("error", "refit")
MERGE_BY = ("hamming", "affine")
LINKAGES = ("average", "complete", "single")
#: Largest number of clusters :meth:`ReluClusters.merge` accepts (it keeps a dense C x C distance matrix).
MERGE_MAX_CLUSTERS = 5000


class ReluClusters(ClusterModel):
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

    Attributes
    ----------
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

    The attributes other than ``exact`` are set by :meth:`fit`.

    Examples
    --------
    >>> rc = ReluClusters(net).fit(X)                       # doctest: +SKIP
    >>> print(rc.table(y, feature_names=names))             # doctest: +SKIP
    >>> rc.explain(X[0]).top(3)                             # doctest: +SKIP
    >>> rc.merge(10).fidelity                               # doctest: +SKIP
    """

    def __init__(self, net: Any, layers: Optional[Sequence[int]] = None, treat_nonlinear: str = "error") -> None:
        net = as_network(net)
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
                l = net.layer_index(item, "layers")
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
    def patterns_of(self, Xa: Any, threads: int) -> NDArray:
        """Packed patterns of Xa (an array or the network's prepared Matrix, which a GPU keeps resident)."""
        if not self.pattern_layers:
            return np.zeros((Xa.shape[0], 1), dtype=np.uint64)
        return self.net.engine.relu_patterns(Xa, list(self.pattern_layers), threads)

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
        Xm = self.net.input_matrix(X)
        Xa = Xm.array
        threads = resolve_threads(n_threads)
        d, K = self.net.n_inputs, self.net.n_outputs
        if names is None:
            names = [f"x{j + 1}" for j in range(d)]  # 1-based, as the data sets name their features
        names = [str(n) for n in names]
        if len(names) != d:
            raise ValueError(f"feature_names: expected {d} names (one per input), got {len(names)}")
        self.feature_names = names
        self._plan = plan(self.net, self.pattern_layers)
        P = self.patterns_of(Xm, threads)
        first, inv, counts, self._hash_ok = unique_rows(P)
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
            W, b = exact_maps(self._plan, self.patterns, self.n_bits, d, K, _direction)
        else:
            W, b = lstsq_maps(self.X_, self._outputs(), self.labels_, self.n_clusters_)
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
        return unpack(self.patterns, self.n_bits)

    # ---------------------------------------------------------------- lookups
    def match_patterns(self, P: NDArray) -> NDArray:
        """Cluster of each packed pattern row, -1 when the pattern was not seen in fit."""
        if self._lookup is None:
            if self._hash_ok:
                h = pattern_hash(self.patterns) if self.patterns.shape[1] > 1 else self.patterns[:, 0].copy()
                srt = np.argsort(h, kind="stable")
                self._lookup = ("hash", h[srt], srt)
            else:
                self._lookup = ("dict", {row.tobytes(): c for c, row in enumerate(self.patterns)}, None)
        kind, table, srt = self._lookup
        if kind == "dict":
            return np.array([table.get(row.tobytes(), -1) for row in P], dtype=np.int64)
        h = pattern_hash(P) if P.shape[1] > 1 else P[:, 0]
        pos = np.minimum(np.searchsorted(table, h), table.size - 1)
        cand = srt[pos]
        ok = np.all(self.patterns[cand] == P, axis=1)
        return np.where(ok, cand, -1).astype(np.int64)

    def cluster_of(self, X: Any, n_threads: Optional[int] = None) -> NDArray:
        """Cluster of each sample of X (-1 for an activation pattern not seen in fit)."""
        self._check_fitted()
        return self.match_patterns(self.patterns_of(self.net.input_matrix(X), resolve_threads(n_threads)))

    def local_maps(self, X: Any, n_threads: Optional[int] = None) -> AffineMaps:
        """The exact affine map of every sample of X from its own pattern (also for patterns not seen in
        fit): ``W_eff`` (n_samples, n_inputs, n_outputs), ``b_eff`` (n_samples, n_outputs)."""
        self._check_fitted()
        if not self.exact:
            raise ValueError("local_maps: the maps are exact only when every relu / leaky_relu layer is in the "
                             "pattern and all activations are piecewise linear")
        P = self.patterns_of(self.net.input_matrix(X), resolve_threads(n_threads))
        W, b = exact_maps(self._plan, P, self.n_bits, self.net.n_inputs, self.net.n_outputs)
        return AffineMaps(W, b)

    def nearest_cluster(self, P: NDArray) -> NDArray:
        """The fitted cluster with the smallest Hamming distance to each packed pattern (ties: the larger)."""
        B = self.bits.astype(np.float64)
        Q = unpack(P, self.n_bits).astype(np.float64)
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
        Xa = one_sample(self.net, x)
        P = self.patterns_of(Xa, 1)
        c = int(self.match_patterns(P)[0])
        if self.exact:
            if c >= 0:
                W, b = self.affine_maps.W_eff[c], self.affine_maps.b_eff[c]
            else:
                Wl, bl = exact_maps(self._plan, P, self.n_bits, self.net.n_inputs, self.net.n_outputs)
                W, b = Wl[0], bl[0]
        else:
            m = c if c >= 0 else int(self.nearest_cluster(P)[0])
            W, b = self.affine_maps.W_eff[m], self.affine_maps.b_eff[m]
        return make_explanation(Xa[0].astype(np.float64), c, W, b, self.net.forward(Xa)[0], self.feature_names,
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
                Z = linkage_matrix(pairwise(F, by), w, linkage)
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
        return MergedClusters(self, cut(Z, C, int(n_clusters)), by=by, linkage=linkage, weighted=weighted,
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
        bad = [n for n in ns if isinstance(n, bool) or not isinstance(n, (int, np.integer))]
        if bad:
            raise ValueError(f"ns: expected int cluster counts, got {bad[0]!r}")
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


def explain(net: Any, X: Any, layers: Optional[Sequence[int]] = None, treat_nonlinear: str = "error",
            feature_names: Optional[Sequence[str]] = None, n_threads: Optional[int] = None) -> ReluClusters:
    """``ReluClusters(net, layers, treat_nonlinear).fit(X, feature_names)``: the activation clusters of the
    samples X with the exact affine map of each (see :class:`ReluClusters`)."""
    return ReluClusters(net, layers=layers, treat_nonlinear=treat_nonlinear).fit(X, feature_names=feature_names,
                                                                                n_threads=n_threads)
