"""MergedClusters: fine clusters merged hierarchically, each merged cluster one least-squares affine map."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from .._config import resolve_threads
from .maps import lstsq_maps
from .model import ClusterModel, one_sample
from .records import AffineMaps, Explanation, Fidelity, FidelityCurve, fidelity, make_explanation

if TYPE_CHECKING:  # relu.py builds MergedClusters; only the annotation looks back
    from .relu import ReluClusters


class MergedClusters(ClusterModel):
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
        W, b = lstsq_maps(self.X_, parent.outputs_, self.labels_, G, fixed, ridge)
        self.affine_maps = AffineMaps(W, b)
        #: True for merged clusters whose map is the exact one (a single pattern, exact parent)
        self.exact_clusters = np.array([m.size == 1 and parent.exact for m in self.members])
        self.exact = bool(self.exact_clusters.all())

    def _outputs(self) -> NDArray:
        return self.parent.outputs_

    @property
    def n_patterns_(self) -> NDArray:
        """Number of activation patterns of each merged cluster."""
        return np.array([m.size for m in self.members])

    def _extra_columns(self) -> tuple:
        return ["n_patterns"], [self.n_patterns_]

    def _assign(self, Xa: NDArray) -> NDArray:
        P = self.parent.patterns_of(Xa, resolve_threads(None))
        fine = self.parent.match_patterns(P)
        unseen = fine < 0
        if unseen.any():
            fine[unseen] = self.parent.nearest_cluster(P[unseen])
        return self.fine_to_merged[fine]

    def predict(self, X: Any = None) -> NDArray:
        """Surrogate outputs: on the fitted samples (X None) or on new samples, each assigned to the merged
        cluster of its pattern (an unseen pattern: of the fitted pattern nearest by Hamming distance)."""
        if X is None:
            return self.affine_maps.predict(self.X_, self.labels_)
        Xa = self.net.input_array(X)
        return self.affine_maps.predict(Xa.astype(np.float64), self._assign(Xa))

    def fidelity_on(self, X: Any) -> Fidelity:
        """Fidelity of the surrogate on other samples (e.g. a test set)."""
        Xa = self.net.input_array(X)
        return fidelity(self.predict(Xa), np.asarray(self.net.forward(Xa), dtype=np.float64), self.net.loss)

    def explain(self, x: Any) -> Explanation:
        """The surrogate explanation of one sample: contributions sum with b_eff to the *surrogate's* output;
        ``network_output`` is the network's."""
        Xa = one_sample(self.net, x)
        g = int(self._assign(Xa)[0])
        return make_explanation(Xa[0].astype(np.float64), g, self.affine_maps.W_eff[g], self.affine_maps.b_eff[g],
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
