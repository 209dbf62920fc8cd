"""Structural neuron pruning: remove the neurons that matter least and return a smaller dense network.

Prunable neurons are the hidden neurons of a Dense layer followed by a Dense layer, the inner neurons of
two-weight residual blocks, and (on request) the inputs. A Dense layer that feeds a residual block shares
its width with the block's skip connection and is kept whole. Removing neuron ``j`` deletes its incoming
column and bias and its outgoing row, so the smaller network runs on the same dense engine with no masks.

Criteria (a score per neuron; the lowest go first):

* ``"sensitivity"``: this package's output sensitivity (Zhang et al. 2023), ``mean_n |d yhat_k / d s_j|``,
  L2 over the outputs. Scale-free, so scores of different layers compare (``scope="global"``).
* ``"loss_sensitivity"``: ``|dJ/ds_j|``, the objective's scaling-factor sensitivity (needs ``y``).
* ``"taylor"``: first-order Taylor importance (Molchanov et al. 2017), ``mean_n |dl_n/dh_nj * h_nj|``:
  the per-sample loss sensitivity reduced by mean absolute value (needs ``y``).
* ``"magnitude"``: L2 norm of the neuron's incoming weights.
* ``"random"``: uniform random scores (``seed``), the control.

With ``fold_mean=True`` a removed neuron's mean activation over ``X`` is folded into the next layer's bias
(``b_next += mean_j * W_next[j]``): exact for a neuron that is constant on ``X``, and the usual first-order
correction otherwise. A neuron whose outgoing weights are all zero is removed without changing the function.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np
from numpy.typing import NDArray

from ._engine import activation
from ._plotting import axes, save
from ._tables import brief, frame
from ._validation import check_bool, check_choice, check_count
from .convert import as_network
from .layers import Dense, Residual
from .losses import CLASSIFICATION_LOSSES, error
from .errors import require_finite
from .network import Network

CRITERIA = ("sensitivity", "loss_sensitivity", "taylor", "magnitude", "random")
SCOPES = ("layer", "global")


@dataclass(frozen=True)
class _Group:
    """A set of prunable neurons: network layer ``layer`` (its hidden or inner neurons), or the inputs."""

    layer: int  # -1: the inputs
    width: int

    @property
    def name(self) -> str:
        return "inputs" if self.layer < 0 else f"layer {self.layer}"

    @property
    def site(self) -> Union[int, str]:
        """The sensitivity site of these neurons (see sensinet.sensitivity)."""
        return 0 if self.layer < 0 else self.layer + 1


def prunable_groups(net: Network, inputs: bool = False) -> list:
    """The groups of neurons ``prune`` may remove from ``net``."""
    net = as_network(net)
    # inputs that feed a residual block are its skip connection too: they are kept whole
    groups = [_Group(-1, net.n_inputs)] if inputs and net.specs[0].kind == "dense" else []
    for l, spec in enumerate(net.specs):
        if spec.kind == "residual2" or (spec.kind == "dense" and l + 1 < net.n_layers
                                        and net.specs[l + 1].kind == "dense"):
            groups.append(_Group(l, spec.width))
    return groups


@dataclass
class PruneResult:
    """What :func:`prune` removed: per group, the kept and removed neuron indices and their scores."""

    criterion: str
    scope: str
    groups: list  # group names, bottom-up
    kept: dict  # group name -> indices kept (ascending)
    removed: dict  # group name -> indices removed (ascending)
    scores: dict  # group name -> score of every neuron before pruning
    n_params_before: int
    n_params_after: int
    fold_mean: bool = False
    inputs_kept: Optional[NDArray] = None  # with inputs pruned: X[:, inputs_kept] feeds the new network
    notes: list = field(default_factory=list)

    @property
    def n_removed(self) -> int:
        """Number of neurons removed, over all pruned groups."""
        return int(sum(len(v) for v in self.removed.values()))

    def rows(self) -> list:
        """One dict per pruned group: its neurons before and after, and how many were removed."""
        return [{"group": g, "before": len(self.kept[g]) + len(self.removed[g]), "after": len(self.kept[g]),
                 "removed": len(self.removed[g])} for g in self.groups]

    def to_frame(self) -> Any:
        """The per-layer rows as a pandas DataFrame."""
        return frame(self.rows())

    def __repr__(self) -> str:
        widths = ", ".join(f"{r['group']}: {r['before']}->{r['after']}" for r in self.rows())
        return (f"PruneResult({self.criterion}, {self.scope}: {widths}; parameters {self.n_params_before} -> "
                f"{self.n_params_after})")


# ---------------------------------------------------------------------------------------------- scores
def neuron_scores(net: Network, X: Any, y: Any = None, criterion: str = "sensitivity", inputs: bool = False,
                  seed: Optional[int] = None, n_threads: Optional[int] = None) -> dict:
    """{group name: score per neuron} of every prunable group (see the module docstring for criteria)."""
    from .sensitivity import sensitivity

    net = as_network(net)
    check_choice(criterion, "criterion", CRITERIA)
    groups = prunable_groups(net, inputs)
    if not groups:
        return {}
    if criterion in ("loss_sensitivity", "taylor") and y is None and getattr(X, "y", None) is None:
        raise ValueError(f"y: criterion={criterion!r} needs the targets")
    out: dict = {}
    if criterion == "random":
        rng = np.random.default_rng(seed)
        return {g.name: rng.random(g.width) for g in groups}
    if criterion == "magnitude":
        for g in groups:
            if g.layer < 0:
                W = net.layer_parameters(0)["W" if net.specs[0].kind == "dense" else "W1"]
                out[g.name] = np.linalg.norm(W, axis=1)  # an input's outgoing weights are its only ones
            else:
                views = net.layer_parameters(g.layer)
                out[g.name] = np.linalg.norm(views["W" if "W" in views else "W1"], axis=0)
        return out
    sites = [g.site if g.layer < 0 or net.specs[g.layer].kind == "dense" else f"{g.site}:inner" for g in groups]
    if criterion == "sensitivity":
        res = sensitivity(net, X, sites=sites, n_threads=n_threads)
        mats = [np.sqrt(np.sum(np.asarray(m, np.float64) ** 2, axis=0)) for m in res.matrices]
    else:
        reduce = "mean" if criterion == "loss_sensitivity" else "mean_abs"
        res = sensitivity(net, X, y, sites=sites, wrt="loss", reduce=reduce, n_threads=n_threads)
        mats = [np.abs(np.asarray(m[0], np.float64)) for m in res.matrices]
    by_name = {s.name: m for s, m in zip(res.sites, mats)}
    for g, site in zip(groups, sites):
        out[g.name] = by_name[str(site)]
    return out


# ---------------------------------------------------------------------------------------------- pruning
def _proportional(groups: list, room: dict, count: int) -> dict:
    """Exactly ``count`` neurons split over the groups in proportion to their widths (largest remainders), no
    group beyond its room; what a full group cannot take goes to the others the same way."""
    take = {g.name: 0 for g in groups}
    left = count
    while left > 0:
        open_ = [g for g in groups if take[g.name] < room[g.name]]
        width = sum(g.width for g in open_)
        share = {g.name: left * g.width / width for g in open_}
        add = {k: min(int(np.floor(v)), room[k] - take[k]) for k, v in share.items()}
        rest = left - sum(add.values())
        for k in sorted(share, key=lambda k: (-(share[k] - np.floor(share[k])), k)):  # largest remainders first
            if rest == 0:
                break
            if take[k] + add[k] < room[k]:
                add[k] += 1
                rest -= 1
        for k, v in add.items():
            take[k] += v
        left -= sum(add.values())
    return take


def _counts(groups: list, scores: dict, amount: Any, scope: str, min_width: int) -> dict:
    """How many neurons of each group to remove."""
    total = sum(g.width for g in groups)
    room = {g.name: max(g.width - min_width, 0) for g in groups}
    if isinstance(amount, dict):  # a count per group
        unknown = sorted(set(amount) - set(room))
        if unknown:
            raise ValueError(f"amount: unknown groups {unknown}; prunable groups are {sorted(room)}")
        for k, v in amount.items():
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"amount[{k!r}]: expected a count >= 0, got {v!r}")
            if v > room[k]:
                raise ValueError(f"amount[{k!r}]: group {k!r} can lose at most {room[k]} neurons and keep min_width, "
                                 f"got {v}")
        return {g.name: int(amount.get(g.name, 0)) for g in groups}
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.integer, np.floating)):
        raise ValueError(f"amount: expected a fraction in [0, 1) or a count of neurons, got {amount!r}")
    if isinstance(amount, (int, np.integer)):
        if not 0 <= amount <= total:
            raise ValueError(f"amount: expected a count in [0, {total}], got {amount}")
        frac, count = None, int(amount)
    else:
        if not (np.isfinite(amount) and 0.0 <= amount < 1.0):
            raise ValueError(f"amount: expected a fraction in [0, 1) or a count of neurons, got {amount!r}")
        frac, count = float(amount), None
    if count is not None and count > sum(room.values()):
        raise ValueError(f"amount: at most {sum(room.values())} neurons can go while every group keeps min_width, "
                         f"got {count}")
    if scope == "layer":
        if frac is not None:
            return {g.name: min(int(np.floor(frac * g.width)), room[g.name]) for g in groups}
        return _proportional(groups, room, count)
    # global: the lowest scores of all groups together, each group keeping min_width
    n = int(np.floor(frac * total)) if frac is not None else count
    entries = sorted((float(s), g.name, j) for g in groups for j, s in enumerate(scores[g.name]))
    take = {g.name: 0 for g in groups}
    for s, name, _ in entries:
        if n <= 0:
            break
        if take[name] < room[name]:
            take[name] += 1
            n -= 1
    return take


def _check_seed(seed: Any, none_ok: bool = True) -> None:
    if seed is None and none_ok:
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0{' or None' if none_ok else ''}, got {seed!r}")


def prune(net: Network, X: Any, y: Any = None, amount: Union[float, int] = 0.5, criterion: str = "sensitivity",
          scope: str = "layer", min_width: int = 1, inputs: bool = False, fold_mean: bool = False,
          seed: Optional[int] = None, n_threads: Optional[int] = None) -> tuple:
    """Remove the lowest-scoring neurons of ``net`` and return ``(smaller_network, PruneResult)``.

    Parameters
    ----------
    net : Network
        Left unchanged; the result is a new network on the same device.
    X, y : arrays or a Dataset
        Samples that score the neurons (``y`` for the loss-based criteria) and, with ``fold_mean``, give
        the mean activations.
    amount : float in [0, 1), int or dict
        The fraction of every group's neurons (``scope="layer"``) or of all prunable neurons
        (``scope="global"``) to remove, a count of neurons, or ``{group name: count}``.
    criterion : {"sensitivity", "loss_sensitivity", "taylor", "magnitude", "random"}
    scope : {"layer", "global"}
    min_width : int
        Neurons every group keeps at least.
    inputs : bool
        Also prune input features; ``result.inputs_kept`` selects the columns the new network takes.
    fold_mean : bool
        Fold each removed neuron's mean activation over X into the next layer's bias.
    """
    net = as_network(net)
    check_choice(scope, "scope", SCOPES)
    if isinstance(min_width, bool) or not isinstance(min_width, (int, np.integer)) or min_width < 1:
        raise ValueError(f"min_width: expected an int >= 1, got {min_width!r}")
    if not isinstance(fold_mean, (bool, np.bool_)):
        raise TypeError(f"fold_mean: expected True or False, got {fold_mean!r}")
    inputs = check_bool(inputs, "inputs")
    _check_seed(seed)
    net.input_matrix(getattr(X, "X", X))  # X is checked whatever the criterion (magnitude and random do not read it)
    scores = neuron_scores(net, X, y, criterion, inputs, seed, n_threads)
    groups = prunable_groups(net, inputs)
    for g in groups:
        require_finite(scores[g.name], f"{criterion} score of {g.name}", "prune")
    counts = _counts(groups, scores, amount, scope, int(min_width))
    removed, kept = {}, {}
    for g in groups:
        order = np.argsort(scores[g.name], kind="stable")
        rm = np.sort(order[:counts[g.name]])
        removed[g.name] = rm
        kept[g.name] = np.setdiff1d(np.arange(g.width), rm)
    means = _mean_activations(net, X, groups, removed) if fold_mean else {}
    notes: list = []
    new = _rebuild(net, groups, kept, removed, means, notes)
    result = PruneResult(criterion=criterion, scope=scope, groups=[g.name for g in groups], kept=kept,
                         removed=removed, scores=scores, n_params_before=net.n_params, n_params_after=new.n_params,
                         fold_mean=bool(fold_mean),
                         inputs_kept=kept.get("inputs") if inputs and groups and groups[0].layer < 0 else None,
                         notes=notes)
    return new, result


def _mean_activations(net: Network, X: Any, groups: list, removed: dict) -> dict:
    """Mean activation over X of each removed neuron (inputs: the mean feature value)."""
    Xa = net.input_array(X)
    out = {}
    for g in groups:
        if not len(removed[g.name]):
            continue
        if g.layer < 0:
            out[g.name] = Xa.mean(axis=0, dtype=np.float64)
        elif net.specs[g.layer].kind == "dense":
            out[g.name] = net.layer_input(Xa, g.layer + 1).mean(axis=0, dtype=np.float64)
        else:  # the inner activations of a residual block: act(x W1 + b1) from the block's input
            spec = net.specs[g.layer]
            v = net.layer_parameters(g.layer)
            z = net.layer_input(Xa, g.layer) @ v["W1"] + v["b1"]
            out[g.name] = activation(spec.activation, np.ascontiguousarray(z), spec.alpha).mean(axis=0,
                                                                                              dtype=np.float64)
    return out


def _rebuild(net: Network, groups: list, kept: dict, removed: dict, means: dict, notes: list) -> Network:
    """The network without the removed neurons (and with their mean activations folded into biases)."""
    by_layer = {g.layer: g.name for g in groups}
    old = net.engine.read_parameters()
    src = [{k: np.asarray(v, np.float64) for k, v in net.parameter_views(old, l).items()} for l in range(net.n_layers)]

    # 1. bias corrections: what the removed neurons fed, on average, into the layer after them
    extra = [None] * net.n_layers
    for l in range(net.n_layers):
        feeder = "inputs" if l == 0 else by_layer.get(l - 1) if net.specs[l - 1].kind == "dense" else None
        if feeder in means and len(removed[feeder]):
            W = src[l]["W"] if "W" in src[l] else src[l]["W1"]
            extra[l] = means[feeder][removed[feeder]] @ W[removed[feeder]]
        name = by_layer.get(l)
        if net.specs[l].kind == "residual2" and name in means and len(removed[name]):
            shift = means[name][removed[name]] @ src[l]["W2"][removed[name]]  # constant on the block's output
            if l + 1 < net.n_layers and net.specs[l + 1].kind == "dense":
                add = shift @ src[l + 1]["W"]
                extra[l + 1] = add if extra[l + 1] is None else extra[l + 1] + add
            elif np.any(shift):
                notes.append(f"{name}: the mean of its removed inner neurons was not folded (the block is "
                             "followed by a residual block or is the last layer)")

    # 2. the smaller network: rows of removed inputs / neurons below, columns of this layer's removed neurons
    layers = []
    for l, layer in enumerate(net.layers):
        if l in by_layer and isinstance(layer, Dense):
            layer = Dense(len(kept[by_layer[l]]), layer.activation, layer.alpha, layer.l2)
        elif l in by_layer:
            layer = Residual(layer.width, layer.activation, hidden=len(kept[by_layer[l]]), weights=2,
                             alpha=layer.alpha, l2=layer.l2)
        layers.append(layer)
    new = Network(len(kept["inputs"]) if -1 in by_layer else net.n_inputs, layers, loss=net.loss, dtype=net.dtype,
                  precision=net.precision)
    theta = np.zeros(new.n_params, dtype=np.float64)
    for l in range(net.n_layers):
        dst = new.parameter_views(theta, l)
        feeder = "inputs" if l == 0 else by_layer.get(l - 1) if net.specs[l - 1].kind == "dense" else None
        rows = kept[feeder] if feeder in kept else slice(None)
        cols = kept[by_layer[l]] if l in by_layer else slice(None)
        if "W" in src[l]:
            b = src[l]["b"] + (0 if extra[l] is None else extra[l])
            dst["W"][...] = src[l]["W"][rows][:, cols]
            dst["b"][...] = b[cols]
        else:
            b1 = src[l]["b1"] + (0 if extra[l] is None else extra[l])
            dst["W1"][...] = src[l]["W1"][rows][:, cols]
            dst["b1"][...] = b1[cols]
            dst["W2"][...] = src[l]["W2"][cols]
    new.parameters = theta
    for attr in ("metadata", "classes_"):
        if hasattr(net, attr):
            setattr(new, attr, getattr(net, attr))
    return new.to(net.device)


# ---------------------------------------------------------------------------------------------- curves
@dataclass
class PruningCurve:
    """Loss (and accuracy for classifiers) against parameters kept, per criterion: one row per
    (criterion, fraction), fraction 0 being the unpruned network."""

    rows: list
    schedule: str
    fine_tune_epochs: int

    def __repr__(self) -> str:
        return brief("PruningCurve", schedule=self.schedule, fine_tune_epochs=self.fine_tune_epochs,
                     criteria=list(dict.fromkeys(r["criterion"] for r in self.rows)),
                     fractions=sorted({r["fraction"] for r in self.rows}))

    def to_frame(self) -> Any:
        """The curve's rows as a pandas DataFrame."""
        return frame(self.rows)

    def plot(self, path: Optional[str] = None, ax: Any = None, metric: str = "loss") -> Any:
        """``metric`` (loss or accuracy) against parameters kept, one line per criterion. Draws on ``ax`` or
        on a new figure (no pyplot, the backend is left alone); saves to ``path``; returns the axes."""
        check_choice(metric, "metric", ("loss", "accuracy"))
        fig, ax = axes(ax, (6, 4))
        for crit in dict.fromkeys(r["criterion"] for r in self.rows):
            pts = sorted((r["n_params"], r[metric]) for r in self.rows if r["criterion"] == crit)
            ax.plot([p for p, _ in pts], [m for _, m in pts], "o-", label=crit)
        ax.set_xlabel("parameters kept")
        ax.set_ylabel(metric + ("" if self.fine_tune_epochs == 0 else
                                f" after {self.fine_tune_epochs} fine-tuning epochs"))
        ax.set_title(f"pruning ({self.schedule})")
        ax.legend(title="criterion")
        save(fig, path, dpi=120)
        return ax


def pruning_curve(net: Network, X: Any, y: Any, fractions: Any = (0.25, 0.5, 0.75, 0.9), criteria: Any = CRITERIA,
                  scope: str = "layer", schedule: str = "one_shot", fine_tune_epochs: int = 0,
                  optimizer: str = "adam", lr: Optional[float] = None, batch_size: int = 32,
                  validation_data: Optional[tuple] = None, seed: int = 0,
                  n_threads: Optional[int] = None) -> PruningCurve:
    """Prune ``net`` to each fraction with each criterion (fine-tuning after each step when asked) and
    measure the loss (and accuracy) on ``validation_data`` (default: X, y).

    ``schedule="one_shot"`` prunes the original network to every fraction; ``"iterative"`` prunes step by
    step (each step from the previous, fine-tuned network) to the same widths.
    """
    net = as_network(net)
    check_choice(schedule, "schedule", ("one_shot", "iterative"))
    crits = [criteria] if isinstance(criteria, str) else list(criteria)
    if not crits:
        raise ValueError(f"criteria: expected at least one of {CRITERIA}, got none")
    for c in crits:
        check_choice(c, "criteria", CRITERIA)
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__iter__"):
        raise ValueError(f"fractions: expected a sequence of fractions in [0, 1), got {fractions!r}")
    fr = []
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) or not 0.0 <= f < 1.0:
            raise ValueError(f"fractions: expected values in [0, 1), got {list(fractions)!r}")
        fr.append(float(f))
    fr = sorted(fr)
    if not fr:
        raise ValueError("fractions: expected at least one fraction in [0, 1), got none")
    check_choice(optimizer, "optimizer", ("adam", "sgd", "lbfgs"))
    check_count(batch_size, "batch_size", 1)
    _check_seed(seed, none_ok=False)
    if validation_data is not None and (not isinstance(validation_data, tuple) or len(validation_data) != 2):
        raise ValueError("validation_data: expected a tuple (X_val, y_val)")
    if isinstance(fine_tune_epochs, bool) or not isinstance(fine_tune_epochs, (int, np.integer)) or \
            fine_tune_epochs < 0:
        raise ValueError(f"fine_tune_epochs: expected an int >= 0, got {fine_tune_epochs!r}")
    data = net.prepare(X, y)
    net.matrices(data, None)
    Xv, yv = (data.X, data.y) if validation_data is None else validation_data
    widths0 = {g.name: g.width for g in prunable_groups(net)}

    def measure(m: Network, crit: str, f: float, t: float) -> dict:
        row = {"criterion": crit, "fraction": f, "n_params": m.n_params, "loss": m.objective(Xv, yv),
               "seconds": t}
        row["accuracy"] = 1.0 - error(m.loss, m.forward(Xv), yv) if m.loss in CLASSIFICATION_LOSSES else float("nan")
        return row

    def tune(m: Network, step: int) -> None:
        if fine_tune_epochs:
            m.fit(data, optimizer=optimizer, lr=lr, epochs=int(fine_tune_epochs), batch_size=batch_size,
                  seed=seed + step, n_threads=n_threads)

    rows = [measure(net, c, 0.0, 0.0) for c in crits]
    for crit in crits:
        cur = net
        for step, f in enumerate(f for f in fr if f > 0):
            t0 = time.perf_counter()
            base = net if schedule == "one_shot" else cur
            # remove, from each group of `base`, what leaves w0 - floor(f * w0) of its original width w0
            kept = {g.name: g.width for g in prunable_groups(base)}
            want = {k: max(kept[k] - (widths0[k] - int(np.floor(f * widths0[k]))), 0) for k in kept}
            amount = want if scope == "layer" else int(sum(want.values()))
            cur, _ = prune(base, data, amount=amount, criterion=crit, scope=scope, seed=seed + step,
                           n_threads=n_threads) if sum(want.values()) else (base.copy(), None)
            tune(cur, step)
            rows.append(measure(cur, crit, f, time.perf_counter() - t0))
    return PruningCurve(rows=rows, schedule=schedule, fine_tune_epochs=int(fine_tune_epochs))
