"""Result records of the cluster explanations: affine maps, fidelity, tables, per-sample explanations."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from .._plotting import axes, save
from .._tables import brief, cell, frame, markdown, write_csv
from ..losses import CLASSIFICATION_LOSSES, predicted_class


@dataclass(frozen=True)
class AffineMap:
    """The affine map ``f(x) = x @ W_eff + b_eff`` of one cluster: ``W_eff`` (n_inputs, n_outputs)."""

    W_eff: NDArray
    b_eff: NDArray

    def __repr__(self) -> str:
        return brief("AffineMap", W_eff=self.W_eff, b_eff=self.b_eff)

    def __call__(self, X: Any) -> NDArray:
        return np.asarray(X, dtype=np.float64) @ self.W_eff + self.b_eff


@dataclass(frozen=True)
class AffineMaps:
    """The affine maps of all clusters, stacked: ``W_eff`` (n_clusters, n_inputs, n_outputs), ``b_eff``
    (n_clusters, n_outputs). ``maps[c]`` is the :class:`AffineMap` of cluster ``c``."""

    W_eff: NDArray
    b_eff: NDArray

    def __repr__(self) -> str:
        return brief("AffineMaps", n_clusters=len(self), W_eff=self.W_eff, b_eff=self.b_eff)

    def __len__(self) -> int:
        return int(self.W_eff.shape[0])

    def __getitem__(self, c: int) -> AffineMap:
        return AffineMap(self.W_eff[c], self.b_eff[c])

    def __iter__(self) -> Iterator[AffineMap]:
        return (self[c] for c in range(len(self)))

    def predict(self, X: Any, labels: Any) -> NDArray:
        """``X[i] @ W_eff[labels[i]] + b_eff[labels[i]]`` for every row (no loop over samples)."""
        X = np.asarray(X, dtype=np.float64)
        n_in = int(self.W_eff.shape[1])
        if X.ndim != 2 or X.shape[1] != n_in:
            raise ValueError(f"X: expected shape (n_samples, {n_in}) (the maps' inputs), got {X.shape}")
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
    the arg-max for cross_entropy; None for regression); ``max_abs_error``: largest ``|surrogate - network|``.
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

    def __repr__(self) -> str:
        return brief("ClusterTable", columns=list(self.columns), rows=len(self.rows))

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> NDArray:
        """One column of the table as an array."""
        if name not in self.columns:
            raise KeyError(f"column: expected one of {self.columns}, got {name!r}")
        j = self.columns.index(name)
        return np.array([r[j] for r in self.rows])

    def to_frame(self):
        """The table as a pandas DataFrame (pandas needed)."""
        return frame(self.rows, self.columns)

    def _dicts(self, columns: Optional[Sequence[str]]) -> tuple:
        cols = list(self.columns) if columns is None else list(columns)
        for c in cols:
            if c not in self.columns:
                raise KeyError(f"columns: {c!r} is not a column; expected some of {self.columns}")
        return cols, [dict(zip(self.columns, r)) for r in self.rows]

    def to_markdown(self, columns: Optional[Sequence[str]] = None, floatfmt: str = ".3g") -> str:
        """The table as Markdown, with the chosen columns (default: all)."""
        cols, rows = self._dicts(columns)
        return markdown(rows, cols, floatfmt=floatfmt).rstrip("\n")

    def to_text(self, columns: Optional[Sequence[str]] = None, floatfmt: str = ".3g") -> str:
        """The table as aligned plain text."""
        cols, rows = self._dicts(columns)
        cells = [[cell(r[c], floatfmt) for c in cols] for r in rows]
        widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(cols)]
        out = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
        out += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
        return "\n".join(out)

    def to_csv(self, path: Any) -> None:
        """Write the table to a CSV file."""
        write_csv(path, self._dicts(None)[1], self.columns)

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

    def __repr__(self) -> str:
        return brief("Explanation", cluster=self.cluster, exact=self.exact, output=self.output,
                     top=[(n, round(c, 4)) for n, c, _, _ in self.top(3)])

    def top(self, n: int = 5, output: int = 0) -> list:
        """The n largest ``|contributions|`` to one output: (feature, contribution, weight, value)."""
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
        fig, ax = axes(ax, (6, 0.3 * len(self.feature_names) + 1.5))
        contribution_bars(ax, self, output)
        save(fig, path)
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

    def __repr__(self) -> str:
        return brief("FidelityCurve", by=self.by, n_clusters=list(map(int, self.n_clusters)), n_fine=self.n_fine)

    def rows(self) -> tuple:
        """(columns, rows): n_clusters, r2, max_abs_error, then agreement, r2_test, agreement_test where measured; one
        row per number of clusters."""
        cols = ["n_clusters", "r2", "max_abs_error"]
        data = [self.n_clusters, self.r2, self.max_abs_error]
        for name in ("agreement", "r2_test", "agreement_test"):
            v = getattr(self, name)
            if v is not None:
                cols.append(name)
                data.append(v)
        return cols, [[d[i] for d in data] for i in range(len(self.n_clusters))]

    def to_table(self) -> ClusterTable:
        """The curve as a :class:`ClusterTable`."""
        cols, rows = self.rows()
        return ClusterTable(cols, [[int(r[0])] + [float(v) for v in r[1:]] for r in rows])

    def to_csv(self, path: Any) -> None:
        """Write the curve to a CSV file."""
        self.to_table().to_csv(path)

    def plot(self, ax=None, path: Optional[str] = None):
        """R^2 (and class agreement) against the number of clusters, log x axis (matplotlib)."""
        fig, ax = axes(ax, (6, 4))
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
        save(fig, path)
        return ax


def contribution_bars(ax, e: Explanation, output: int) -> None:
    """Draw an explanation's contributions as horizontal bars on ``ax``."""
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


def r2_score(pred: NDArray, out: NDArray) -> float:
    """Coefficient of determination of ``pred`` against ``target`` (averaged over outputs)."""
    res = float(np.sum((pred - out) ** 2))
    tot = float(np.sum((out - out.mean(axis=0)) ** 2))
    if tot <= 0.0:
        return 1.0 if res <= 1e-24 * max(1.0, float(np.sum(out ** 2))) else 0.0
    return 1.0 - res / tot


def fidelity(pred: NDArray, out: NDArray, loss: str) -> Fidelity:
    """The fidelity of ``pred`` to the network's outputs ``out``: R^2, class agreement (classifiers), largest error."""
    agree = None
    if loss in CLASSIFICATION_LOSSES:
        agree = float(np.mean(predicted_class(loss, pred) == predicted_class(loss, out)))
    return Fidelity(r2=r2_score(pred, out), agreement=agree, max_abs_error=float(np.max(np.abs(pred - out))),
                    n_samples=int(out.shape[0]))


def make_explanation(x: NDArray, c: int, W: NDArray, b: NDArray, net_out: NDArray, names: list,
                      exact: bool) -> Explanation:
    """The per-feature contributions of one sample inside its cluster."""
    contrib = x[:, None] * W
    return Explanation(x=x, cluster=c, W_eff=np.array(W), b_eff=np.array(b), contributions=contrib,
                       output=contrib.sum(axis=0) + b, network_output=np.asarray(net_out, dtype=np.float64),
                       feature_names=list(names), exact=exact)
