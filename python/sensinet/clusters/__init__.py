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

from .merged import MergedClusters
from .model import ClusterModel
from .records import AffineMap, AffineMaps, ClusterTable, Explanation, Fidelity, FidelityCurve
from .relu import MERGE_MAX_CLUSTERS, ReluClusters, explain

__all__ = ["ReluClusters", "MergedClusters", "ClusterModel", "AffineMap", "AffineMaps", "Explanation", "ClusterTable",
           "Fidelity", "FidelityCurve", "explain", "MERGE_MAX_CLUSTERS"]
