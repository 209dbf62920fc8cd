"""Neuron sensitivities through scaling factors (Zhang, Vassiliadis, Dorneanu, Arellano-Garcia,
"Hierarchical multi-scale parametric optimization of deep neural networks", Applied Intelligence 53, 2023).

Every neuron value v (a hidden layer's activation, a residual block's inner activation or its output, or
an input) is multiplied by a scaling factor s = 1 that is never trained, only differentiated:

* output sensitivity ``S[n, k, j] = d yhat_k(x_n) / d s_j = (d yhat_k / d v_j) * v_j``. Since
  ``d/ds = d/d(ln v)`` it is scale-free, so neurons and layers can be compared;
* loss sensitivity, per sample ``d l_n / d s_j``; its mean over samples is the objective sensitivity
  ``g_j = dJ/ds_j = sum_n (dJ/dv_nj) v_nj`` (the L2 terms do not depend on s).

Sensitivity layers are numbered as in the paper: 0 is the input, layer ``i >= 1`` the neurons of network
layer ``i - 1`` (the last network layer is the output, not a sensitivity layer, unless it is a residual
block, whose inner neurons are hidden). A residual block has two sites: its inner neurons and its output.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from ._config import resolve_threads
from ._plotting import figure, panels, save
from ._tables import brief, frame
from ._validation import check_bool, check_choice
from .convert import as_network
from .data import Matrix
from .losses import output_gradient, per_sample_loss
from .errors import require_finite
from .network import Network

REDUCTIONS = ("mean_abs", "rms", "mean")
GROUP_RULES = ("l2", "l1", "max", "shared")


@dataclass(frozen=True)
class Site:
    """A set of neurons that carry scaling factors."""

    layer: int  # sensitivity layer: 0 input, i >= 1 network layer i - 1
    part: str  # "input" | "hidden" | "inner" | "output"
    width: int

    @property
    def name(self) -> str:
        """The site's name: ``"0"`` for the inputs, ``"i"`` for layer i's neurons, ``"i:inner"`` /
        ``"i:output"`` in a residual block."""
        return f"{self.layer}" if self.part in ("input", "hidden") else f"{self.layer}:{self.part}"

    @property
    def engine(self) -> tuple:
        """(network layer, part) as the engine numbers sites (input: layer -1)."""
        if self.part == "input":
            return (-1, 0)
        return (self.layer - 1, 1 if self.part == "output" else 0)


def sites_of(net: Network) -> list:
    """Every site of a network, bottom-up."""
    out = [Site(0, "input", net.n_inputs)]
    for l, spec in enumerate(net.specs):
        last = l == net.n_layers - 1
        if spec.kind == "dense":
            if not last:
                out.append(Site(l + 1, "hidden", spec.n_out))
        else:
            out.append(Site(l + 1, "inner", spec.width))
            if not last:
                out.append(Site(l + 1, "output", spec.n_out))
    return out


def select_sites(net: Network, sites: Any) -> list:
    """The sites named by ``sites``: None (every site), an int or a sequence of ints (sensitivity layers; a residual
    layer brings both its sites) or site names such as ``"2:inner"``."""
    all_sites = sites_of(net)
    if sites is None:
        return all_sites
    if isinstance(sites, (int, np.integer, str)):
        items = [sites]
    else:
        try:
            items = list(sites)
        except TypeError:
            raise TypeError(f"sites: expected an int, a site name or a sequence of them, got "
                            f"{type(sites).__name__}") from None
    if not items:
        raise ValueError("sites: expected at least one layer, got none")
    chosen = []
    for item in items:
        if isinstance(item, str):
            match = [s for s in all_sites if s.name == item]
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            match = [s for s in all_sites if s.layer == int(item)]
        else:
            raise TypeError(f"sites: expected ints or site names, got {type(item).__name__}")
        if not match:
            valid = sorted({s.layer for s in all_sites})
            raise ValueError(f"sites: no neurons at {item!r}; valid sensitivity layers are {valid} "
                             f"(0 = inputs) and site names {[s.name for s in all_sites]}")
        chosen += [s for s in match if s not in chosen]
    return sorted(chosen, key=lambda s: (s.layer, s.part != "inner"))


@dataclass
class SensitivityResult:
    """Sensitivity matrices per site, with importances, a ranked table and figures.

    ``matrices[i]`` has shape (n_outputs, width) for ``wrt="output"`` and (1, width) for ``wrt="loss"``:
    the per-sample values reduced over samples by ``reduce``. ``per_sample[i]`` (on request) has shape
    (n_samples, n_outputs or 1, width).
    """

    wrt: str
    reduce: str
    method: str
    sites: list
    matrices: list
    n_samples: int
    per_sample: Optional[list] = None
    output_names: list = field(default_factory=list)


    def __repr__(self) -> str:
        return brief("SensitivityResult", wrt=self.wrt, reduce=self.reduce, method=self.method,
                     sites=[s.name for s in self.sites], n_samples=self.n_samples,
                     per_sample=self.per_sample is not None)

    def _index(self, layer: Union[int, str]) -> int:
        for i, s in enumerate(self.sites):
            if s.name == str(layer) or (isinstance(layer, (int, np.integer)) and s.layer == layer):
                return i
        raise ValueError(f"layer: expected one of {[s.name for s in self.sites]}, got {layer!r}")

    def _members(self, members: dict) -> list:
        """(site index, neuron indices) per site of a group, with the key and index forms of group_sensitivity:
        an int key of a residual layer means both of its sites; indices, a boolean mask or None (all)."""
        out = []
        for key, idx in members.items():
            found = [i for i, s in enumerate(self.sites) if s.name == str(key) or
                     (isinstance(key, (int, np.integer)) and not isinstance(key, bool) and s.layer == key)]
            if not found:
                raise ValueError(f"groups[{key!r}]: expected one of {[s.name for s in self.sites]}")
            for i in found:
                sel = _neuron_indices(key, idx, self.sites[i].width)
                out.append((i, sel))
        return out

    def matrix(self, layer: Union[int, str]) -> NDArray:
        """The sensitivity matrix of one site (by sensitivity layer number or site name)."""
        return self.matrices[self._index(layer)]

    def neuron_scores(self) -> list:
        """Per site, one score per neuron: the L2 norm over outputs of the reduced values (``|dJ/ds|`` for loss)."""
        return [np.sqrt(np.sum(M ** 2, axis=0)) for M in self.matrices]

    def neuron_importance(self) -> list:
        """Neuron scores normalized so that the most important neuron of the network has importance 1."""
        scores = self.neuron_scores()
        top = max((float(s.max()) for s in scores if s.size), default=0.0)
        return [s / top if top > 0 else s for s in scores]

    def group_scores(self, groups: dict, rule: str = "l2") -> dict:
        """Scores of neuron groups. ``groups`` maps a name to ``{site name or layer: neuron indices}``.

        rule: ``l2`` (default), ``l1`` or ``max`` of the neuron scores, or ``shared``: the sensitivity of
        one factor shared by the group, i.e. the signed sum of the per-sample values before reduction
        (needs ``per_sample``; for ``wrt="loss", reduce="mean"`` the signed sum of the reduced values is exact).
        """
        check_choice(rule, "rule", GROUP_RULES)
        if not isinstance(groups, dict):
            raise TypeError(f"groups: expected a dict {{name: {{site: neuron indices}}}}, got {type(groups).__name__}")
        for name, members in groups.items():
            if not isinstance(members, dict) or not members:
                raise ValueError(f"groups[{name!r}]: expected a non-empty dict {{site: neuron indices or None}}, got "
                                 f"{members!r}")
        scores = self.neuron_scores()
        out = {}
        for name, members in groups.items():
            if rule == "shared":
                out[name] = self._shared(members)
                continue
            vals = np.concatenate([np.asarray(scores[i])[sel] for i, sel in self._members(members)])
            out[name] = float({"l2": lambda v: np.sqrt(np.sum(v ** 2)), "l1": lambda v: np.sum(np.abs(v)),
                               "max": lambda v: np.max(np.abs(v))}[rule](vals))
        return out

    def _shared(self, members: dict) -> float:
        if self.wrt == "loss" and self.reduce == "mean":
            return float(sum(np.sum(self.matrices[i][0, sel]) for i, sel in self._members(members)))
        if self.per_sample is None:
            raise ValueError("rule: 'shared' needs per-sample values; call sensitivity(..., per_sample=True)")
        total = sum(np.sum(self.per_sample[i][:, :, sel], axis=2) for i, sel in self._members(members))  # (n, K)
        return float(np.sqrt(np.sum(_reduce(total, self.reduce) ** 2)))

    def layer_scores(self, rule: str = "l2") -> NDArray:
        """One score per site from its neurons (``l2``, ``l1``, ``max`` or ``shared``)."""
        groups = {s.name: {s.name: np.arange(s.width)} for s in self.sites}
        sc = self.group_scores(groups, rule)
        return np.array([sc[s.name] for s in self.sites])

    def layer_importance(self, rule: str = "l2") -> NDArray:
        """Layer scores normalized so that the most important site has importance 1."""
        sc = self.layer_scores(rule)
        return sc / sc.max() if sc.max() > 0 else sc

    def ranked(self) -> list:
        """Rows (site, neuron, score, importance), most important first."""
        rows = []
        for site, sc, imp in zip(self.sites, self.neuron_scores(), self.neuron_importance()):
            rows += [(site.name, j, float(sc[j]), float(imp[j])) for j in range(site.width)]
        return sorted(rows, key=lambda r: -r[2])

    def top(self, n: int = 10) -> list:
        """The ``n`` most important neurons of all sites, as :meth:`ranked` rows ``(site name, neuron, score,
        importance)``; the site name is a str (``"0"`` is the input site, ``"2:inner"`` a residual block's)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n: expected an int >= 0 (how many neurons), got {n!r}")
        return self.ranked()[:n]

    def to_frame(self):
        """The ranked neuron table as a pandas DataFrame (pandas needed)."""
        df = frame(self.ranked(), ["layer", "neuron", "score", "importance"])
        df.insert(0, "rank", np.arange(1, len(df) + 1))
        return df

    def plot(self, path: Optional[str] = None, max_sites: int = 8, ax: Any = None,
             feature_names: Optional[Sequence[str]] = None):
        """One heatmap per site (outputs x neurons), each with its own colour scale (the inputs' sensitivities
        are often orders of magnitude larger than the hidden sites'), and a bar chart of layer importance.
        ``feature_names`` label the input site's columns. ``ax``: one axes per shown site plus one, or one axes
        of a grid to divide into those panels (default: a new figure, made without pyplot: the backend is left
        alone). Saves to ``path``; returns the figure."""
        shown = list(range(len(self.sites)))[:max_sites]
        if ax is None:
            fig, grid = figure((9, 1.3 * len(shown) + 2.8), len(shown) + 1, 1, squeeze=False)
            axes = list(grid[:, 0])
        else:
            fig, axes = panels(ax, len(shown) + 1, (9, 4), "one per shown site, then layer importance",
                               stack="column")
        cmap = "viridis" if self.reduce != "mean" else "coolwarm"
        what = "dJ/ds" if self.wrt == "loss" else "d output/ds"
        for a, i in zip(axes[:-1], shown):
            site, M = self.sites[i], self.matrices[i]
            vmax = float(np.abs(M).max()) or 1.0
            vmin = 0.0 if self.reduce != "mean" else -vmax
            im = a.imshow(M, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            a.set_ylabel(f"site {site.name}", rotation=0, ha="right", va="center", fontsize=8)
            a.set_yticks(range(len(self.output_names)) if len(self.output_names) <= 10 else [])
            if len(self.output_names) <= 10:
                a.set_yticklabels(self.output_names, fontsize=6)
            if site.layer == 0 and feature_names is not None:
                if len(feature_names) != M.shape[1]:
                    raise ValueError(f"feature_names: expected {M.shape[1]} names (the inputs), got "
                                     f"{len(feature_names)}")
                a.set_xticks(range(M.shape[1]))
                a.set_xticklabels(list(feature_names), rotation=45, ha="right", fontsize=7)
            fig.colorbar(im, ax=a, pad=0.01, label=f"{self.reduce} {what}")
        axes[-2].set_xlabel("neuron (inputs: feature)")
        axes[0].set_title(f"{self.wrt} sensitivity ({self.reduce} over {self.n_samples} samples); each site on "
                          "its own colour scale")
        a = axes[-1]
        a.bar([s.name for s in self.sites], self.layer_importance())
        a.set_ylabel("layer importance")
        a.set_xlabel("sensitivity layer (0 = inputs)")
        save(fig, path)
        return fig


def _neuron_indices(key: Any, idx: Any, width: int) -> NDArray:
    """Indices of a group's neurons in one site: indices, a boolean mask, or None (all)."""
    if idx is None:
        return np.arange(width)
    a = np.asarray(idx)
    if a.ndim > 1:
        raise ValueError(f"groups[{key!r}]: expected a 1-D list of neuron indices or a mask, got shape {a.shape}")
    if a.dtype == bool:
        if a.shape != (width,):
            raise ValueError(f"groups[{key!r}]: a mask needs {width} entries, got shape {a.shape}")
        return np.flatnonzero(a)
    if a.size and a.dtype.kind not in "iu":
        raise TypeError(f"groups[{key!r}]: expected integer neuron indices, a boolean mask or None, got dtype "
                        f"{a.dtype} ({idx!r:.60})")
    sel = a.astype(np.int64).ravel()
    if sel.size and (sel.min() < 0 or sel.max() >= width):
        raise ValueError(f"groups[{key!r}]: neuron indices must be in [0, {width}), got {sel} (name one site of "
                         f"a residual layer, e.g. '2:inner', or pass None for all its neurons)")
    return sel


def _reduce(values: NDArray, reduce: str) -> NDArray:
    """Reduce (n, ...) per-sample values over samples."""
    if reduce == "mean_abs":
        return np.mean(np.abs(values), axis=0)
    if reduce == "rms":
        return np.sqrt(np.mean(values ** 2, axis=0))
    return np.mean(values, axis=0)


def _fd_site(net: Network, X: NDArray, Y: Optional[NDArray], site: Site, wrt: str, eps: float,
             members: Optional[NDArray] = None, threads: int = 1) -> NDArray:
    """Central differences on the scaling factors of one site: (n, K, width) per-sample values; with
    ``members`` one shared factor for those neurons: (n, K, 1)."""
    layer, part = site.engine
    cols = [np.asarray(members)] if members is not None else [np.array([j]) for j in range(site.width)]
    out = []
    for idx in cols:
        vals = []
        for sign in (1.0, -1.0):
            s = np.ones(site.width, dtype=net.dtype)
            s[idx] += sign * eps
            if layer < 0:
                o = net.engine.forward(np.ascontiguousarray(X * s), False, 0, threads)
            else:
                o = net.engine.scaled_forward(X, None, [(layer, part, s)], threads)
            vals.append(o if wrt == "output" else per_sample_loss(net.loss, o, Y)[:, None])
        out.append((vals[0] - vals[1]) / (2 * eps))
    return np.stack(out, axis=2)


def _prepare(net: Network, X: Any, y: Any, wrt: str) -> tuple:
    """(X, Y or None) Matrices of a Dataset or arrays, through the network's cache."""
    check_choice(wrt, "wrt", ("output", "loss"))
    if wrt == "loss":
        if y is None and getattr(X, "y", None) is None:
            raise ValueError("y: required for wrt='loss' (the loss needs targets)")
        return net.matrices(X, y)
    return net.input_matrix(X), None  # the outputs' sensitivities need no targets: y is not read


def sensitivity(net: Network, X: Any, y: Any = None, sites: Any = None, wrt: str = "output",
                reduce: Optional[str] = None, method: str = "reverse", per_sample: bool = False,
                eps: Optional[float] = None, n_threads: Optional[int] = None, *,
                layers: Any = None) -> SensitivityResult:
    """Neuron sensitivity matrices of ``net`` on the samples ``X``.

    Parameters
    ----------
    net : Network
        Any sensinet network, including ones imported from scikit-learn or PyTorch.
    X : array (n_samples, n_inputs)
    y : array, optional
        Targets; required for ``wrt="loss"``. With ``wrt="output"`` they are not read at all (not even checked),
        so code can pass them for either kind of sensitivity.
    sites : int, sequence of int, or site names, optional
        Sensitivity layers (sites) to compute (0 = inputs, ``"2:inner"`` / ``"2:output"`` for the two sites of
        a residual block; default every site). The reverse sweep stops at the lowest one. (``layers=`` is the
        former name of this argument: it still works, with a FutureWarning; elsewhere ``layers`` means
        network layers.)
    wrt : {"output", "loss"}
        Sensitivity of every output ``yhat_k`` or of the per-sample loss.
    reduce : {"mean_abs", "rms", "mean"}, optional
        Reduction over samples; default ``mean_abs`` for outputs and ``mean`` for the loss (then the matrix
        is the objective sensitivity ``dJ/ds``).
    method : {"reverse", "finite_difference"}
        Reverse mode (one sweep for all outputs, in C++) or central differences on the scaling factors
        (two forward passes per neuron; the validation method).
    per_sample : bool
        Also return the (n_samples, K, width) per-sample values. For large data use
        :func:`iter_per_sample`, which streams them in batches.
        On a CUDA network the reduced matrices come from the GPU; per-sample values and finite
        differences from the CPU engine on the host copy of the weights.
    eps : float, optional
        Finite-difference step (default 1e-6 in float64, 1e-3 in float32).
    """
    net = as_network(net)
    Xa, Y = _prepare(net, X, y, wrt)
    per_sample = check_bool(per_sample, "per_sample")
    reduce = reduce if reduce is not None else ("mean_abs" if wrt == "output" else "mean")
    check_choice(reduce, "reduce", REDUCTIONS)
    check_choice(method, "method", ("reverse", "finite_difference"))
    sites = select_sites(net, _renamed(sites, layers))
    threads = resolve_threads(n_threads)
    if method == "reverse":
        mats, samples = net.engine.sensitivities(Xa, Y, wrt == "loss", [s.engine for s in sites], reduce,
                                                  per_sample, threads)
    else:
        step = _fd_step(eps, net.dtype, 1e-6, 1e-3)
        vals = [_fd_site(net, Xa.array, _array(Y), s, wrt, step, threads=threads) for s in sites]
        mats = [_reduce(v.astype(np.float64), reduce) for v in vals]
        samples = vals if per_sample else None
    for m in mats:
        require_finite(m, f"{wrt} sensitivity", "sensitivity", Xa)
    for v in samples or ():
        require_finite(v, f"per-sample {wrt} sensitivity", "sensitivity", Xa)
    names = [f"output {k}" for k in range(net.n_outputs)] if wrt == "output" else ["loss"]
    return SensitivityResult(wrt=wrt, reduce=reduce, method=method, sites=sites, matrices=mats,
                             n_samples=Xa.shape[0], per_sample=samples, output_names=names)


def _renamed(sites: Any, layers: Any) -> Any:
    """``sites``, or the value of its former name ``layers`` (with a FutureWarning)."""
    if layers is None:
        return sites
    if sites is not None:
        raise TypeError("sites: given twice (as sites= and as its former name layers=); pass sites= only")
    warnings.warn("sensitivity(layers=...) is now sensitivity(sites=...): 'layers' means network layers "
                  "everywhere else in sensinet", FutureWarning, stacklevel=3)
    return layers


def _array(m: Optional[Matrix]) -> Optional[NDArray]:
    return None if m is None else m.array


def _fd_step(eps: Optional[float], dtype: Any, default64: float, default32: float) -> float:
    """A finite-difference step: the default of the dtype, or a checked user value."""
    if eps is None:
        return default64 if dtype == np.float64 else default32
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)) or not (
            np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a finite step > 0, got {eps!r}")
    return float(eps)


def iter_per_sample(net: Network, X: Any, y: Any = None, sites: Any = None, wrt: str = "output",
                    batch_size: int = 4096, n_threads: Optional[int] = None, *, layers: Any = None) -> Iterator[tuple]:
    """Yield ``(start, sites, values)`` per batch of samples, ``values[i]`` of shape (batch, K, width):
    the per-sample sensitivity tensor with memory bounded by ``batch_size``."""
    net = as_network(net)
    Xa, Y = _prepare(net, X, y, wrt)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    sites = select_sites(net, _renamed(sites, layers))
    threads = resolve_threads(n_threads)
    Xa, Y = Xa.array, _array(Y)
    for s in range(0, Xa.shape[0], batch_size):
        Yb = None if Y is None else Y[s:s + batch_size]
        _, samples = net.engine.sensitivities(Xa[s:s + batch_size], Yb, wrt == "loss", [t.engine for t in sites],
                                               "mean", True, threads)
        yield s, sites, samples


def _group_list(groups: Any) -> list:
    """The groups argument as a list of group dicts, or TypeError naming it."""
    if groups is None or isinstance(groups, (dict, str, bytes)) or not hasattr(groups, "__iter__"):
        raise TypeError(f"groups: expected a list of {{site: neuron indices}} dicts, got {type(groups).__name__}")
    return list(groups)


def _group_sites(net: Network, group: dict) -> list:
    """{site name or layer: indices, mask or None (all)} -> engine triples (layer, part, weights)."""
    if not isinstance(group, dict) or not group:
        raise ValueError("groups: each group must be a non-empty dict {layer: neuron indices}")
    triples = []
    for key, idx in group.items():
        try:
            key_sites = select_sites(net, [key])
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"groups: bad site {key!r} ({exc})") from None
        for site in key_sites:
            u = np.zeros(site.width, dtype=net.dtype)
            u[_neuron_indices(key, idx, site.width)] = 1
            triples.append((*site.engine, u))
    return triples


def group_sensitivity(net: Network, X: Any, y: Any, groups: Sequence[dict], method: str = "reverse",
                      eps: Optional[float] = None, n_threads: Optional[int] = None) -> NDArray:
    """dJ/ds_G for one factor s_G shared by each group of neurons (the signed sum of the members' g)."""
    net = as_network(net)
    Xa, Y = _prepare(net, X, y, "loss")
    check_choice(method, "method", ("reverse", "finite_difference"))
    threads = resolve_threads(n_threads)
    trip = [_group_sites(net, g) for g in _group_list(groups)]
    if method == "reverse":
        sites = sorted({(l, p) for t in trip for (l, p, _) in t})
        mats, _ = net.engine.sensitivities(Xa, Y, True, sites, "mean", False, threads)
        for m in mats:
            require_finite(m, "loss sensitivity", "group_sensitivity", Xa)
        g = {site: m[0] for site, m in zip(sites, mats)}
        with np.errstate(over="ignore", invalid="ignore"):  # a finite sum that overflows is reported below
            out = np.array([sum(float(np.dot(g[(l, p)], u)) for l, p, u in t) for t in trip])
        return require_finite(out, "group sensitivity", "group_sensitivity", Xa)
    step = _fd_step(eps, net.dtype, 1e-6, 1e-3)
    Xa, Y = Xa.array, Y.array
    return np.array([(_scaled_objective(net, Xa, Y, t, step, threads) -
                      _scaled_objective(net, Xa, Y, t, -step, threads)) / (2 * step) for t in trip])


def scaled_inputs(net: Network, Xa: NDArray, triples: list, t: float) -> tuple:
    """(X, engine scales) with a group factor set to 1 + t: input sites scale X, the others the engine."""
    scales, Xs = [], Xa
    for layer, part, u in triples:
        if layer < 0:
            Xs = np.ascontiguousarray(Xa * (1 + t * u))
        else:
            scales.append((layer, part, (1 + t * u).astype(net.dtype)))
    return Xs, scales


def _scaled_objective(net: Network, Xa: NDArray, Y: NDArray, triples: list, t: float, threads: int) -> float:
    """J with the group factor set to 1 + t (the shared factor multiplies every member neuron)."""
    Xs, scales = scaled_inputs(net, Xa, triples, t)
    return float(net.engine.scaled_forward(Xs, Y, scales, threads))


def group_curvature(net: Network, X: Any, y: Any, groups: Sequence[dict], method: str = "exact",
                    eps: Optional[float] = None, n_threads: Optional[int] = None) -> NDArray:
    """d2J/ds_G^2 of one factor shared by each group of neurons, at s = 1.

    ``method="exact"``: a Hessian-vector product in C++ (tangent forward pass, then a second-order reverse
    pass); ``"finite_difference"``: a five-point second difference of J along the group factor.
    """
    net = as_network(net)
    Xa, Y = _prepare(net, X, y, "loss")
    check_choice(method, "method", ("exact", "finite_difference"))
    threads = resolve_threads(n_threads)
    trip = [_group_sites(net, g) for g in _group_list(groups)]
    if method == "exact":
        return require_finite(net.engine.group_curvature(Xa, Y, trip, threads), "group curvature",
                              "group_curvature", Xa)
    h = _fd_step(eps, net.dtype, 1e-3, 3e-2)
    Xa, Y = Xa.array, Y.array
    out = []
    for t in trip:
        J = [_scaled_objective(net, Xa, Y, t, k * h, threads) for k in (-2, -1, 0, 1, 2)]
        out.append((-J[0] + 16 * J[1] - 30 * J[2] + 16 * J[3] - J[4]) / (12 * h * h))
    return np.array(out)


# ---------------------------------------------------------------------------------- the output site
def output_sensitivity(net: Network, X: Any, y: Any = None, n_threads: Optional[int] = None) -> NDArray:
    """Objective sensitivity of a scaling factor on each raw network output: ``g_k = sum_n dJ/dz_nk z_nk``."""
    net = as_network(net)
    threads = resolve_threads(n_threads)
    Xm, Ym = net.matrices(X, y)
    Z = np.asarray(net.engine.forward(Xm, False, 0, threads), dtype=np.float64)
    return np.sum(output_gradient(net.loss, Z, Ym.array.astype(np.float64)) * Z, axis=0)


def output_group_curvature(net: Network, X: Any, y: Any, hidden_sites: Sequence[int] = (),
                           n_threads: Optional[int] = None, h: float = 1e-3) -> float:
    """d2J/ds_G^2 of one factor shared by the outputs and the given hidden sensitivity layers (five-point
    second difference; the L2 terms do not depend on s)."""
    net = as_network(net)
    threads = resolve_threads(n_threads)
    Xm, Ym = net.matrices(X, y)
    Xa, Y = Xm.array, Ym.array
    trip = _group_sites(net, {i: None for i in hidden_sites}) if hidden_sites else []
    Z0 = None if trip else np.asarray(net.engine.forward(Xm, False, 0, threads), dtype=np.float64)
    vals = []
    for k in (-2, -1, 0, 1, 2):
        t = k * h
        if trip:
            Xs, scales = scaled_inputs(net, Xa, trip, t)
            Z = np.asarray(net.engine.scaled_forward(Xs, None, scales, threads), dtype=np.float64)
        else:
            Z = Z0
        vals.append(float(np.mean(per_sample_loss(net.loss, (1 + t) * Z, Y))))
    return (-vals[0] + 16 * vals[1] - 30 * vals[2] + 16 * vals[3] - vals[4]) / (12 * h * h)
