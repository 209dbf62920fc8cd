"""What fine and merged cluster explanations share: inputs, the cluster table, importances, figures."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from .._plotting import panels, save
from ..losses import CLASSIFICATION_LOSSES, predicted_class
from ..network import Network
from .records import AffineMaps, ClusterTable, Explanation, Fidelity, contribution_bars, fidelity


def one_sample(net: Network, x: Any) -> NDArray:
    """One sample as a validated (1, n_inputs) array."""
    d = net.n_inputs
    xa = np.asarray(x)
    if xa.ndim == 1:
        xa = xa.reshape(1, -1)
    if xa.ndim != 2 or xa.shape[0] != 1:
        raise ValueError(f"x: expected one sample of shape ({d},) or (1, {d}), got shape {np.shape(x)}")
    return net.input_array(xa, "x")


class ClusterModel:
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
        """Number of clusters."""
        return int(self.counts_.shape[0])

    @property
    def shares_(self) -> NDArray:
        """Share of the samples in each cluster (``counts_ / counts_.sum()``)."""
        return self.counts_ / float(self.counts_.sum())

    @property
    def outputs_(self) -> NDArray:
        """The network's raw outputs (logits for classification heads) on the fitted samples."""
        return self._outputs()

    @property
    def is_classifier(self) -> bool:
        """Whether the network has a classification head (its explanations are of logits)."""
        return self.net.loss in CLASSIFICATION_LOSSES

    @property
    def dead_(self) -> NDArray:
        """True for clusters whose map is constant: every ``|W_eff|`` <= 1e-9 x the largest ``|W_eff|`` of all clusters
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
        return fidelity(self.predict(), self.outputs_, self.net.loss)

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
                tc, ts = mode_per_cluster(labels, yv.astype(np.int64), C)
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
                pcl, pshare = mode_per_cluster(labels, np.argmax(out, axis=1), C)
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
        rows = [[scalar(col[c]) for col in data] for c in range(C)]
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
             feature_names: Optional[Sequence[str]] = None, ax: Any = None):
        """Three panels: cluster sizes (dead clusters grey), a heatmap of W_eff per cluster (clusters x
        features), and the contributions of one sample: an index into the fitted X, a sample, or by default the
        first sample of the largest cluster whose map is not constant.

        ``ax``: three axes to draw on (default: a new figure, made without pyplot; the backend is left alone).
        Returns the figure; with ``path`` it is saved there.
        """
        k = self._check_output(output)
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
        fig, axes = panels(ax, 3, (13 + 0.2 * d, max(4.0, 0.28 * max(shown, d) + 2)),
                           "cluster sizes, effective weights, one sample's contributions",
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
        fig.colorbar(im, ax=ax, shrink=0.8, label="effective weight W_eff")
        contribution_bars(axes[2], e, k)
        save(fig, path)
        return fig

    def explain(self, x: Any) -> Explanation:  # pragma: no cover -- overridden
        """Per-feature contributions ``x_j * w_eff[j]`` of one sample inside its cluster; with ``b_eff`` they sum to the output."""
        raise NotImplementedError


def scalar(v: Any) -> Any:
    """A numpy scalar as a Python bool, int or float; any other value unchanged."""
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def mode_per_cluster(labels: NDArray, values: NDArray, C: int) -> tuple:
    """Most frequent integer value per cluster and its share."""
    lo = int(values.min()) if values.size else 0
    m = int(values.max()) - lo + 1 if values.size else 1
    tab = np.zeros((C, m))
    np.add.at(tab, (labels, values - lo), 1)
    mode = np.argmax(tab, axis=1)
    share = tab[np.arange(C), mode] / np.maximum(tab.sum(axis=1), 1)
    return mode + lo, share
