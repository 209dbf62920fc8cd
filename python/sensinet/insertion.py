"""Sensitivity-based layer insertion (Schiela, Herberg, Köhne, Kreis, Herzog, arXiv:2311.15995, "SensLI").

A layer that could be inserted is parameterised so that the network computes exactly the same function
("virtual parameters" at their neutral values); the gradient of the training loss with respect to those
virtual parameters (the Lagrange multiplier of the constraint that keeps them neutral) says where
inserting pays most. All candidates' gradients come from ONE reverse pass of the current network: at a
candidate position with neuron values v and adjoints G = dJ/dv,

* ``identity`` (feedforward ReLU): new layer relu(v V + c), V = I, c = 0, neutral because
  relu(relu(z)) = relu(z); dJ/dV = v^T (G * [v > 0]), dJ/dc = sum_n G * [v > 0];
* ``residual2``: new block v + act(v W1 + b1) W2 with W2 = 0, W1 = 0.8 I, b1 = 0; dJ/dW2 = act(0.8 v)^T G
  (dJ/dW1 = dJ/db1 = 0 while W2 = 0);
* ``residual1``: new block v + act(v W + b) with W = 0, b = 0 (needs act(0) = 0); dJ/dW = act'(0) v^T G,
  dJ/db = act'(0) sum_n G.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from ._config import resolve_threads
from ._engine import activation
from ._plotting import panels, save
from ._tables import brief
from ._validation import check_bool, check_choice, check_count, check_number, check_positive
from .convert import as_network
from .layers import Dense, Residual
from .losses import error
from .errors import require_finite
from .network import Network
from .optimizers import SGD, Adam, make_optimizer

KINDS = ("auto", "identity", "residual2", "residual1")
SCORES = ("frobenius", "normalized", "per_weight", "minibatch")
PRESETS = ("paper", "v2")
# The two published versions of the method (Schiela, Herberg, Köhne, Kreis, Herzog, arXiv:2311.15995): the
# paper (v1) scores ||dL/dV||^2 / numel(V) of the zero-initialised weight V alone and offers a residual net a
# new block before each existing one; the later code (SensLI, v2) scores ||dL/dV||^2 unnormalised and also
# offers the place after the last block. Neither adds the bias gradient.
_PRESET_OPTIONS = {"paper": {"score": "per_weight", "include_bias": False, "residual_positions": "before_blocks"},
                   "v2": {"score": "frobenius", "include_bias": False, "residual_positions": "all"}}
_ACT0 = {"identity": (0.0, 1.0), "relu": (0.0, 0.0), "tanh": (0.0, 1.0), "sigmoid": (0.5, 0.25),
         "softplus": (np.log(2.0), 0.5)}  # act(0), act'(0) (leaky_relu: 0, alpha)


@dataclass
class Candidate:
    """A position where a neutral layer could be inserted (it becomes network layer ``position``)."""

    position: int
    kind: str
    width: int
    score: float = 0.0
    n_params: int = 0
    grad_norm2: float = 0.0


@dataclass
class Insertion:
    epoch: int
    position: int
    kind: str
    scores: dict  # position -> score of every candidate
    loss: float
    n_params_after: int


@dataclass
class InsertionHistory:
    """Per-epoch training loss, wall time and (optionally) validation error, with the insertions."""

    loss: list = field(default_factory=list)
    seconds: list = field(default_factory=list)  # wall time at the end of each epoch, from the start
    val_error: list = field(default_factory=list)
    insertions: list = field(default_factory=list)
    n_params: list = field(default_factory=list)  # parameters trained in each epoch

    eval_every: int = 1  # epochs between validation errors

    def __repr__(self) -> str:
        return brief("InsertionHistory", epochs=len(self.loss), final_loss=self.loss[-1] if self.loss else None,
                     insertions=[(i.epoch, i.position) for i in self.insertions],
                     val_error=self.val_error[-1] if self.val_error else None)

    def plot(self, path: Optional[str] = None, title: str = "", ax: Any = None, baseline: Any = None):
        """Training loss against epochs and against wall time, the insertions dashed, and the validation error
        when one was recorded. ``baseline`` (another InsertionHistory, e.g. the network trained without
        insertion) is drawn in grey for comparison. ``ax``: two or three axes to draw on (default: a new
        figure, made without pyplot: the backend is left alone). Saves to ``path``; returns the figure."""
        n = 3 if self.val_error else 2
        fig, axes = panels(ax, n, (5 * n, 3.6), "loss per epoch, loss per second"
                           + (", validation error" if n == 3 else ""))
        runs = [(self, "C0", "with insertion" if self.insertions else "training")]
        if baseline is not None:
            runs.append((baseline, "0.5", "baseline"))
        for h, color, label in runs:
            it = np.arange(1, len(h.loss) + 1)
            axes[0].semilogy(it, h.loss, color=color, label=label)
            axes[1].semilogy(h.seconds, h.loss, color=color, label=label)
            if n == 3 and h.val_error:
                axes[2].plot(np.arange(1, len(h.val_error) + 1) * h.eval_every, h.val_error, color=color,
                             label=label)
        for ins in self.insertions:
            axes[0].axvline(ins.epoch, color="C3", ls="--", lw=1)
            axes[1].axvline(self.seconds[ins.epoch - 1], color="C3", ls="--", lw=1)
            if n == 3:
                axes[2].axvline(ins.epoch, color="C3", ls="--", lw=1)
        axes[0].set_xlabel("epoch")
        axes[1].set_xlabel("wall time [s]")
        axes[0].set_ylabel("training loss")
        axes[1].set_ylabel("training loss")
        if n == 3:
            axes[2].set_xlabel("epoch")
            axes[2].set_ylabel("validation error")
        for a in axes:
            a.legend(fontsize=8, title="red dashes: insertions" if self.insertions else None, title_fontsize=7)
        fig.suptitle(title or "layer insertion")
        save(fig, path)
        return fig


def _position_site(net: Network, position: int) -> tuple:
    """Engine site whose values feed network layer ``position`` (the insertion point)."""
    kind = net.specs[position - 1].kind
    return (position - 1, 0 if kind == "dense" else 1)


class LayerInsertion:
    """Grow a network during training where the virtual-parameter gradient is largest.

    Parameters
    ----------
    kind : {"auto", "identity", "residual2", "residual1"}
        ``auto``: identity insertion after ReLU layers of a feedforward net, a two-weight residual block
        in a net with residual blocks.
    choose : {"largest", "smallest"}
        Insert where the score is largest (the method) or smallest (the control).
    score : {"frobenius", "normalized", "per_weight", "minibatch"}
        Squared Frobenius norm of the full-batch mean gradient; the same divided by the number of virtual
        parameters; divided by the number of entries of the scored (zero-initialised) weight alone; or the
        mean over minibatches of the squared norm of the minibatch mean gradient.
    include_bias : bool
        Whether the bias gradient enters the score.
    residual_positions : {"all", "before_blocks"}
        Where a residual net may get a new block: after every layer (default), or only before an existing
        block (the paper's set, which has no place after the last block).
    preset : {None, "paper", "v2"}
        The published settings (see ``_PRESET_OPTIONS`` below): ``"paper"`` is ``score="per_weight"``,
        ``include_bias=False``, ``residual_positions="before_blocks"``; ``"v2"`` (the later code) is
        ``score="frobenius"``, ``include_bias=False``, ``residual_positions="all"``. A preset sets these three
        options; passing one of them as well is an error. The default (no preset) is sensinet's own:
        ``score="frobenius"``, ``include_bias=True``, every position. The reference code also lowered the
        learning rate after an insertion in some experiments (factor 0.7 or 0.8); that stays ``lr_factor``.
    at_epochs : sequence of int, optional
        Insert after these epochs (1-based counts of completed epochs).
    plateau : (window, threshold), optional
        Also insert when the relative loss decrease over the last ``window`` epochs falls below
        ``threshold``.
    score_threshold : float, optional
        Also insert when the best score exceeds this (checked every ``check_every`` epochs).
    max_insertions, max_layers : int
        Limits on the number of insertions and on the depth.
    lr_factor : float
        Learning rate multiplied by this after each insertion.
    reset_optimizer : bool
        Restart the optimizer state after an insertion. Otherwise the state of the old parameters is kept
        and the new layer's is zero; with Adam the step count is shared, so the new parameters' first steps
        get no bias correction (they start damped).
    residual_scale : float
        W1 = residual_scale * I in a two-weight block.
    """

    def __init__(self, kind: str = "auto", choose: str = "largest", score: Optional[str] = None,
                 include_bias: Optional[bool] = None, at_epochs: Optional[Sequence[int]] = None,
                 plateau: Optional[tuple] = None, score_threshold: Optional[float] = None, check_every: int = 10,
                 max_insertions: int = 1, max_layers: int = 64, lr_factor: float = 1.0,
                 reset_optimizer: bool = False, residual_scale: float = 0.8, minibatch_size: int = 64,
                 residual_positions: Optional[str] = None, preset: Optional[str] = None) -> None:
        self.kind = check_choice(kind, "kind", KINDS)
        self.choose = check_choice(choose, "choose", ("largest", "smallest"))
        given = {"score": score, "include_bias": include_bias, "residual_positions": residual_positions}
        if preset is not None:
            check_choice(preset, "preset", PRESETS)
            clash = sorted(k for k, v in given.items() if v is not None)
            if clash:
                raise ValueError(f"preset: {preset!r} sets {clash} itself; pass either the preset or the options")
            given = dict(_PRESET_OPTIONS[preset])
        self.preset = preset
        self.score = check_choice("frobenius" if given["score"] is None else given["score"], "score", SCORES)
        self.include_bias = True if given["include_bias"] is None else check_bool(given["include_bias"],
                                                                                   "include_bias")
        self.residual_positions = check_choice("all" if given["residual_positions"] is None
                                               else given["residual_positions"], "residual_positions",
                                               ("all", "before_blocks"))
        if at_epochs is not None and (isinstance(at_epochs, (str, bytes)) or not hasattr(at_epochs, "__iter__")):
            raise TypeError(f"at_epochs: expected a list of epochs, got {type(at_epochs).__name__} {at_epochs!r}")
        epochs = list(at_epochs) if at_epochs is not None else []
        if any(isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 1 for e in epochs):
            raise ValueError(f"at_epochs: expected ints >= 1, got {epochs!r}")
        self.at_epochs = sorted(int(e) for e in epochs)
        if plateau is not None:
            try:
                ok = len(plateau) == 2 and int(plateau[0]) == plateau[0] and int(plateau[0]) >= 1 \
                    and float(plateau[1]) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"plateau: expected (window >= 1, threshold > 0), got {plateau!r}")
        self.plateau = plateau
        self.score_threshold = check_number(score_threshold, "score_threshold", 0.0, none_ok=True)
        for name, v in (("check_every", check_every), ("max_insertions", max_insertions),
                        ("max_layers", max_layers), ("minibatch_size", minibatch_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "max_insertions" else 1):
                raise ValueError(f"{name}: expected a positive int, got {v!r}")
        self.check_every, self.max_insertions, self.max_layers = int(check_every), int(max_insertions), int(max_layers)
        self.minibatch_size = int(minibatch_size)
        self.lr_factor = check_positive(lr_factor, "lr_factor")
        self.residual_scale = check_positive(residual_scale, "residual_scale")
        if not isinstance(reset_optimizer, (bool, np.bool_)):
            raise TypeError(f"reset_optimizer: expected a bool, got {type(reset_optimizer).__name__}")
        self.reset_optimizer = bool(reset_optimizer)

    # ------------------------------------------------------------------ candidates
    def _kind_for(self, net: Network) -> str:
        if self.kind != "auto":
            return self.kind
        return "residual2" if any(s.kind != "dense" for s in net.specs) else "identity"

    def candidates(self, net: Network, X: Any = None, y: Any = None, positions: Optional[Sequence[int]] = None,
                   n_threads: Optional[int] = None) -> list:
        """Candidates with their scores (without X: positions only, scores 0)."""
        net = as_network(net)
        kind = self._kind_for(net)
        valid = self._valid_positions(net, kind)
        if positions is not None:
            bad = [p for p in positions if p not in valid]
            if bad:
                raise ValueError(f"positions: {bad} are not valid insertion positions for kind={kind!r}; "
                                 f"valid: {valid}")
            valid = list(positions)
        cands = [Candidate(p, kind, self._width(net, p)) for p in valid]
        for c in cands:
            c.n_params = self._n_virtual(c)
        if X is None:
            return cands
        self._score(net, X, y, cands, resolve_threads(n_threads))
        return cands

    def _valid_positions(self, net: Network, kind: str) -> list:
        """Positions where a ``kind`` insertion keeps the function exactly (ValueError when there are none)."""
        valid = []
        for p in range(1, net.n_layers):
            prev = net.specs[p - 1]
            if kind == "identity" and (prev[0] != "dense" or prev[4] != "relu"):
                continue
            if kind != "identity" and self.residual_positions == "before_blocks" and net.specs[p].kind == "dense":
                continue  # the paper's set: a new block only in front of an existing one
            if kind == "residual1" and _ACT0.get(self._act(net, Candidate(p, kind, 0)), (0.0, 0.0))[0] != 0.0:
                continue  # x + act(0) != x
            valid.append(p)
        if kind == "identity" and not valid:
            acts = sorted({s.activation for s in net.specs[:-1]})
            raise ValueError(f"kind: an identity insertion needs ReLU hidden layers (relu(relu(z)) = relu(z)); "
                             f"this network's hidden activations are {acts}. Use kind='residual2' instead.")
        if kind == "residual1" and not valid:
            acts = sorted({self._act(net, Candidate(p, kind, 0)) for p in range(1, net.n_layers)})
            raise ValueError(f"kind: a one-weight residual insertion needs act(0) = 0; the block activations "
                             f"would be {acts}. Use kind='residual2'.")
        if not valid:
            raise ValueError(f"kind: no insertion position in a network with {net.n_layers} layer(s)")
        return valid

    def _width(self, net: Network, p: int) -> int:
        return int(net.specs[p - 1].n_out)

    def _n_virtual(self, c: Candidate) -> int:
        w = c.width
        if c.kind == "residual2":
            return 2 * w * w + (w if self.include_bias else 0)
        return w * w + (w if self.include_bias else 0)

    def _act(self, net: Network, c: Candidate) -> str:
        """Activation of the layer to insert: ReLU for identity insertions, otherwise the activation of the
        residual blocks already in the net (or of the layer before the position)."""
        if c.kind == "identity":
            return "relu"
        res = [s.activation for s in net.specs if s.kind != "dense"]
        return res[0] if res else net.specs[c.position - 1].activation

    def _grads(self, net: Network, c: Candidate, v: NDArray, G: NDArray) -> tuple:
        """Gradients of J w.r.t. the candidate's weight matrix and bias (mean over the rows' 1/N)."""
        act = self._act(net, c)
        if c.kind == "identity":
            Gm = G * (v > 0)
            return v.T @ Gm, Gm.sum(axis=0)
        if c.kind == "residual2":
            a = activation(act, self.residual_scale * v)
            return a.T @ G, np.zeros(c.width)
        f0, d0 = _ACT0.get(act, (0.0, 0.01)) if act != "leaky_relu" else (0.0, 0.01)
        if f0 != 0.0:
            raise ValueError(f"kind: a one-weight residual insertion needs act(0) = 0; {act}(0) = {f0:.3g}. "
                             "Use kind='residual2'.")
        return d0 * (v.T @ G), d0 * G.sum(axis=0)

    def _score(self, net: Network, X: Any, y: Any, cands: list, threads: int) -> None:
        Xm, Ym = net.matrices(X, y)
        Xa, Y = Xm.array, Ym.array
        sites = [_position_site(net, c.position) for c in cands]
        n = Xa.shape[0]
        batches = [(0, n)] if self.score != "minibatch" else [(s, min(n, s + self.minibatch_size))
                                                               for s in range(0, n, self.minibatch_size)]
        acc = np.zeros(len(cands))
        for s, e in batches:
            part = (Xm, Ym) if (s, e) == (0, n) else (Xa[s:e], Y[s:e])
            vals, adjs = net.engine.site_adjoints(*part, sites, 1.0 / (e - s), threads)
            for i, c in enumerate(cands):
                require_finite(adjs[i], "loss adjoint", "LayerInsertion.candidates", Xm)
                # squared in float64 (float32 gradients above ~1e19 would overflow their own square); what
                # overflows even there is reported by require_finite below, not by a numpy warning
                with np.errstate(over="ignore", invalid="ignore"):
                    gW, gb = self._grads(net, c, vals[i], adjs[i])
                    acc[i] += float(np.sum(np.square(gW, dtype=np.float64))
                                    + (np.sum(np.square(gb, dtype=np.float64)) if self.include_bias else 0.0))
        acc /= len(batches)
        require_finite(acc, "insertion score", "LayerInsertion.candidates", Xm)
        for c, a in zip(cands, acc):
            c.grad_norm2 = float(a)
            c.score = (float(a / c.n_params) if self.score == "normalized" else
                       float(a / (c.width * c.width)) if self.score == "per_weight" else float(a))

    # ------------------------------------------------------------------ insertion
    def insert(self, net: Network, candidate: Candidate, optimizer: Any = None) -> tuple:
        """A new network with the neutral layer at ``candidate.position`` (same function), and the optimizer
        with its state carried over to the new parameter layout."""
        if not isinstance(candidate, Candidate):
            raise TypeError(f"candidate: expected a Candidate (from candidates()), got {type(candidate).__name__}")
        net = as_network(net)
        p, w = candidate.position, candidate.width
        if not 1 <= p < net.n_layers:
            raise ValueError(f"position: expected 1 <= position < {net.n_layers}, got {p}")
        check_choice(candidate.kind, "kind", KINDS[1:])
        valid = self._valid_positions(net, candidate.kind)
        if p not in valid:
            raise ValueError(f"position: {p} is not a valid insertion position for kind={candidate.kind!r}; "
                             f"valid: {valid}")
        if w != self._width(net, p):
            raise ValueError(f"width: expected {self._width(net, p)} at position {p}, got {w}")
        if net.n_layers + 1 > self.max_layers:
            raise ValueError(f"max_layers: inserting would exceed {self.max_layers} layers")
        act = self._act(net, candidate)
        if candidate.kind == "identity":
            new_layer = Dense(w, "relu")
        elif candidate.kind == "residual2":
            new_layer = Residual(w, act, hidden=w, weights=2)
        else:
            new_layer = Residual(w, act, weights=1)
        layers = list(net.layers[:p]) + [new_layer] + list(net.layers[p:])
        new = Network(net.n_inputs, layers, loss=net.loss, dtype=net.dtype)
        old_off, new_off = net.offsets, new.offsets
        mapping = []  # (old slice, new slice) of every old layer
        for l in range(net.n_layers):
            nl = l if l < p else l + 1
            mapping.append((slice(old_off[l], old_off[l + 1]), slice(new_off[nl], new_off[nl + 1])))
        theta, old = np.zeros(new.n_params, dtype=new.dtype), net.engine.read_parameters()
        for o, nsl in mapping:
            theta[nsl] = old[o]
        views = new.parameter_views(theta, p)
        if candidate.kind == "identity":
            views["W"][...] = np.eye(w)
        elif candidate.kind == "residual2":
            views["W1"][...] = self.residual_scale * np.eye(w)
        new.parameters = theta
        new.to(net.device)  # the grown network lives where the original does
        for attr in ("metadata", "classes_"):
            if hasattr(net, attr):
                setattr(new, attr, getattr(net, attr))
        opt = optimizer
        if isinstance(optimizer, (SGD, Adam)):
            opt = self._remap_optimizer(optimizer, mapping, new)
        return new, opt

    def _remap_optimizer(self, opt: Any, mapping: list, new: Network) -> Any:
        if isinstance(opt, SGD):
            new_opt = SGD(lr=opt.lr * self.lr_factor, momentum=opt.momentum, nesterov=opt.nesterov)
        else:
            new_opt = Adam(lr=opt.lr * self.lr_factor, beta1=opt.beta1, beta2=opt.beta2, eps=opt.eps)
        if self.reset_optimizer or opt.state_m is None:
            return new_opt
        m, v = new_opt.state.arrays(new.n_params, new.dtype)
        old_m, old_v = opt.state_m, opt.state_v
        for o, nsl in mapping:
            m[nsl] = old_m[o]
            v[nsl] = old_v[o]
        new_opt.t = opt.t
        return new_opt

    # ------------------------------------------------------------------ training
    def fit(self, net: Network, X: Any, y: Any, *, epochs: int, optimizer: Any = "sgd", lr: Optional[float] = None,
            batch_size: Optional[int] = None, seed: int = 0, validation_data: Optional[tuple] = None,
            eval_every: int = 1, callback: Optional[Callable[[dict], Any]] = None,
            n_threads: Optional[int] = None) -> tuple:
        """Train ``net`` for ``epochs`` epochs (full batch unless ``batch_size``), inserting layers by the
        schedule and rules. Returns ``(final_network, InsertionHistory)``; ``net`` itself is trained up to
        the first insertion."""
        net = as_network(net)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs: expected an int >= 1, got {epochs!r}")
        late = [e for e in self.at_epochs if e >= epochs]
        if late:
            raise ValueError(f"at_epochs: {late} are not before the end of training (epochs={epochs})")
        data = net.prepare(X, y)  # validated once: every round and every grown network reuses it
        net.matrices(data, None)
        n_samples = data.n_samples
        self.candidates(net)  # validates the kind early
        bs = n_samples if batch_size is None else check_count(batch_size, "batch_size", 1)
        opt = make_optimizer(optimizer, lr)
        hist = InsertionHistory(eval_every=check_count(eval_every, "eval_every", 1))
        Xv = Yv = None
        if validation_data is not None:
            Xv, _ = net.validation_matrices(validation_data)  # checks both halves against the head
            Yv = (validation_data.y if not isinstance(validation_data, (tuple, list)) else
                  np.asarray(validation_data[1]))
        t0 = time.perf_counter()
        epoch = 0
        schedule = list(self.at_epochs)
        rule_based = self.plateau is not None or self.score_threshold is not None

        def on_epoch(info: dict) -> bool:
            if not info["epoch_end"]:
                return False
            hist.loss.append(info["loss"])
            hist.seconds.append(time.perf_counter() - t0)
            hist.n_params.append(cur.n_params)
            if Xv is not None and (len(hist.loss) % eval_every == 0):
                hist.val_error.append(error(cur.loss, cur.forward(Xv), Yv))
            return bool(callback(info)) if callback is not None else False

        cur = net
        while epoch < epochs:
            if len(hist.insertions) < self.max_insertions and cur.n_layers < self.max_layers:
                nxt = [e for e in schedule if e > epoch]
                stop_at = min(nxt) if nxt else epochs
                if rule_based:
                    stop_at = min(stop_at, epoch + self.check_every)
            else:
                stop_at = epochs
            cur.fit(data, optimizer=opt, epochs=stop_at - epoch, batch_size=bs, shuffle=bs < n_samples,
                    seed=seed + epoch, callback=on_epoch, n_threads=n_threads)
            epoch = stop_at
            if epoch >= epochs or len(hist.insertions) >= self.max_insertions or cur.n_layers >= self.max_layers:
                continue
            due = epoch in schedule
            cands = None
            if not due and self.plateau is not None:
                win, thr = int(self.plateau[0]), float(self.plateau[1])
                since = hist.insertions[-1].epoch if hist.insertions else 0  # the window restarts after one
                if len(hist.loss) - since > win:
                    old, new_l = hist.loss[-win - 1], hist.loss[-1]
                    due = (old - new_l) / max(abs(old), 1e-300) < thr
            if not due and self.score_threshold is not None:
                cands = self.candidates(cur, data, n_threads=n_threads)
                due = max(c.score for c in cands) > self.score_threshold
            if not due:
                continue
            cands = cands or self.candidates(cur, data, n_threads=n_threads)
            pick = (max if self.choose == "largest" else min)(cands, key=lambda c: c.score)
            cur, opt = self.insert(cur, pick, opt)
            hist.insertions.append(Insertion(epoch=epoch, position=pick.position, kind=pick.kind,
                                             scores={c.position: c.score for c in cands}, loss=hist.loss[-1],
                                             n_params_after=cur.n_params))
        return cur, hist
