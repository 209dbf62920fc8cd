"""Hierarchical multi-scale optimization (Zhang, Vassiliadis, Dorneanu, Arellano-Garcia, "Hierarchical
multi-scale parametric optimization of deep neural networks", Applied Intelligence 53, 2023).

Instead of updating every parameter at every step, each *outer iteration*

1. computes the objective sensitivity ``g_j = dJ/ds_j`` of every neuron (one reverse sweep, see
   :func:`sensinet.sensitivity`);
2. descends a binary tree over the sensitivity layers: the root is every layer of the tree, its children
   the lower and the upper half, then quarters, ... down to ``min_block`` layers. At each node it takes the
   child with the larger score, or with probability ``p_rand`` a random child (the randomized variant, which
   keeps the method from cycling on the same block);
3. optimizes only the parameters that belong to the chosen block for ``inner_iters`` iterations
   (``Network.fit(..., layers=(first, last))``: the frozen layers below the block are evaluated once, so one
   inner iteration costs only the block and the layers above it);
4. stops when ``max |g| < tol``, when J stalls (relative improvement below ``stall_tol`` over
   ``stall_window`` outer iterations) or when the work budget is spent; optionally ``polish_iters``
   full-network epochs follow.

Scores
------
``"first_order"``: ``||g_G||^2``, the squared norm of the neuron sensitivities of the block.
``"second_order"``: ``g_G^2 / (2 H_G)`` with ``g_G = sum_j g_j`` the sensitivity of one scaling factor shared
by the whole block and ``H_G = d2J/ds_G^2`` its curvature (an exact Hessian-vector product,
:func:`sensinet.group_curvature` ``method="exact"``): the decrease of J that a Newton step on the shared factor
predicts. When a child's curvature is not positive the comparison at that node falls back to the first-order
score for *both* children (the two rules are not on the same scale, so they are never mixed in one comparison).

What a selected layer means (``block``)
---------------------------------------
Sensitivity layer ``i`` holds the neurons computed by network layer ``i - 1`` (0 are the inputs, ``L`` the
network outputs, ``L = n_layers``). For a chosen range ``i..j`` of sensitivity layers:

* ``"incoming"``: the weights and biases that compute those neurons, network layers ``i-1 .. j-1``;
* ``"outgoing"``: the weights that read them, network layers ``i .. j`` (the scaling factor of a neuron is
  exactly a common scale of its outgoing weights, so ``g_j`` is the directional derivative along them);
* ``"both"``: network layers ``i-1 .. j``.

With ``io_sites=True`` (default) the tree also holds the one extra site needed so that every network layer can
be chosen: the output neurons for ``"incoming"`` (sensitivity computed here from the outputs: ``g_k = sum_n
dJ/dz_nk z_nk``) and the inputs for ``"outgoing"``. ``"both"`` needs neither (tree = hidden layers only).

Work accounting
---------------
Work is counted in *full-gradient equivalents*: one unit is one gradient of the whole network over the whole
training set, i.e. one epoch of full backpropagation. With ``c_l`` the multiply-adds per sample of network
layer ``l`` (from the widths), a gradient of the block ``first..last`` costs ``sum_{l>=first} c_l`` (forward
from the block up) ``+ sum_{l>first} c_l`` (input gradients down to the block) ``+ sum_{l=first..last} c_l``
(weight gradients), relative to ``3 C - c_0`` for the full network (``C = sum c_l``). An inner epoch counts
that share; an L-BFGS function evaluation the same; caching the frozen input of the block adds one forward of
the layers below (``sum_{l<first} c_l``) per inner call; a sensitivity sweep counts ``C`` (forward) plus the
input gradients from the output down to the lowest site (the output site of ``"incoming"``: one more forward);
an exact curvature of a group counts ``C`` plus three passes from the group up (tangent forward, reverse,
second-order reverse); a curvature shared with the output site, five forwards (a finite difference).
Evaluations of J for the trace and the stopping rules are monitoring and are not counted (backprop's curve in
the study is not charged either). Wall time is recorded too: on small layers the per-step overheads make a
block epoch cost more wall time than its FLOP share says (the bench measures 1.5x backprop's time for equal
work on 8 x 32 tanh), so the study reports both.

Defaults (measured; ``docs/results/hierarchical/variants.md``, reproduced by ``sensinet experiment hierarchical``)
---------------------------------------------------------------------------------------------------------------
Chosen on two data sets (concrete and sin3), 8 x 32 tanh, 10 starts, Adam lr 1e-3, batch 32, budget 100
full-gradient equivalents; mean final training MSE on standardized targets, concrete / sin3 (full backprop with
the same budget: 0.052 / 0.022):

* ``block="both"`` (0.064 / 0.0185): the chosen neurons' incoming *and* outgoing weights. ``"incoming"``
  (0.080 / 0.020) and ``"outgoing"`` (0.084 / 0.020) were worse on both sets: each leaves a neuron only half
  adjustable.
* ``score="first_order"``: the second-order rule was worse on both (0.095 / 0.025): each curvature costs about
  two sweeps, so fewer outer iterations fit the budget, and the Newton-predicted decrease of one *shared* factor
  favours different, not better, blocks.
* ``p_rand=0.1``: better than the purely greedy descent (0.070 / 0.020), which keeps re-selecting the same block
  (the "loop" the paper mentions); 0.3 was similar (0.061 / 0.019). Note that ``p_rand=1`` (random
  block-coordinate descent, no sensitivities at all) was about as good (0.062 / 0.019).
* ``inner_iters=10`` epochs: 1 epoch lets the sweeps eat much of the budget (0.086 / 0.025); 20 was similar or
  slightly worse (0.068 / 0.0185).
* ``inner_state="shared"``: one Adam object for every block (a parameter's moments persist between the visits of
  the blocks that contain it) beat per-block objects (0.071 / 0.025), whose moments of a layer shared by two
  overlapping ``"both"`` blocks are duplicated.
* ``monotone=False``, ``polish_iters=0``: rejecting J increases (0.068 / 0.019) and a 10-epoch full-network
  polish out of the same budget (0.069 / 0.023) did not help.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Optional

import numpy as np
from numpy.typing import NDArray

from ._config import resolve_threads
from ._progress import ProgressBar
from .data import Dataset
from .network import DivergenceError, FitResult, Network
from .optimizers import LBFGS, SGD, Adam
from .sensitivity import group_curvature, output_group_curvature, output_sensitivity, sensitivity

__all__ = ["HierarchicalOptimizer", "HierarchicalResult", "OuterStep", "fit_hierarchical", "descend",
           "layer_macs", "block_work", "sweep_work", "curvature_work", "sites_to_layers",
           "BLOCKS", "SCORES", "INNER", "INNER_STATES"]

BLOCKS = ("incoming", "outgoing", "both")
SCORES = ("first_order", "second_order")
INNER = ("adam", "sgd", "lbfgs")
INNER_STATES = ("per_block", "shared", "reset")
_DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2}


# ================================================================================================ work model
def layer_macs(net: Network) -> NDArray:
    """Multiply-adds per sample of every network layer's forward pass (weights only; biases and activations
    are lower-order)."""
    out = []
    for s in net.specs:
        out.append(s.n_in * s.hidden + s.hidden * s.n_out if s.kind == "residual2" else s.n_in * s.n_out)
    return np.asarray(out, dtype=np.float64)


def _full_grad(c: NDArray) -> float:
    return float(3 * c.sum() - c[0])


def block_work(net: Network, first: int, last: int, c: Optional[NDArray] = None) -> float:
    """Share of a full-network gradient that a gradient of the block ``first..last`` costs (its frozen input
    given): forward from ``first`` up, input gradients of the layers above ``first``, weight gradients of the
    block."""
    c = layer_macs(net) if c is None else c
    cost = c[first:].sum() + c[first + 1:].sum() + c[first:last + 1].sum()
    return float(cost / _full_grad(c))


def _forward_share(c: NDArray, first: int, last: Optional[int] = None) -> float:
    last = len(c) - 1 if last is None else last
    return float(c[first:last + 1].sum() / _full_grad(c))


def sweep_work(net: Network, lowest_site: int, c: Optional[NDArray] = None) -> float:
    """Share of a full gradient that one sensitivity sweep costs: a full forward plus input gradients from the
    output down to sensitivity layer ``lowest_site`` (0 = the inputs, which needs the whole reverse pass)."""
    c = layer_macs(net) if c is None else c
    return float((c.sum() + c[max(lowest_site, 0):].sum()) / _full_grad(c))


def curvature_work(net: Network, lowest_site: int, c: Optional[NDArray] = None) -> float:
    """Share of a full gradient of one exact group curvature (Hessian-vector product): a full forward, then a
    tangent forward, a reverse and a second-order reverse pass from the group's lowest site up."""
    c = layer_macs(net) if c is None else c
    return float((c.sum() + 3 * c[max(lowest_site, 0):].sum()) / _full_grad(c))


def sites_to_layers(lo: int, hi: int, block: str, n_layers: int) -> tuple:
    """Network layers ``(first, last)`` trained when sensitivity layers ``lo..hi`` are chosen."""
    L = n_layers
    if block == "incoming":
        first, last = lo - 1, hi - 1
    elif block == "outgoing":
        first, last = lo, hi
    else:
        first, last = lo - 1, hi
    first, last = max(first, 0), min(last, L - 1)
    return first, max(first, last)


# ================================================================================================ tree descent
def _split(lo: int, hi: int) -> tuple:
    mid = (lo + hi) // 2
    return (lo, mid), (mid + 1, hi)


def descend(lo: int, hi: int, compare: Callable[[tuple, tuple], tuple], min_block: int = 1, p_rand: float = 0.0,
            rng: Optional[np.random.Generator] = None) -> tuple:
    """Descend the bisection tree over ``lo..hi`` to a node of at most ``min_block`` layers.

    ``compare(left, right)`` returns ``(score_left, score_right, rule)`` for two sibling nodes ``(lo, hi)``;
    the larger score wins (ties go to the upper child, the one closer to the output). With probability
    ``p_rand`` a child is drawn at random instead (one ``rng.random()`` per level, plus one ``rng.integers``
    when it fires).

    Returns ``(node, score, rule, random, path)``: the chosen node, its score under the rule of the last
    comparison, that rule, whether any step was random, and the list of ``(left, right, sl, sr, chosen,
    random)`` per level.
    """
    node, score, rule, any_random, path = (lo, hi), float("nan"), "root", False, []
    while node[1] - node[0] + 1 > min_block:
        left, right = _split(*node)
        sl, sr, rule = compare(left, right)
        rnd = False
        if p_rand > 0 and rng is not None and rng.random() < p_rand:
            pick = int(rng.integers(2))
            rnd = any_random = True
        else:
            pick = 0 if sl > sr else 1
        node = (left, right)[pick]
        score = (sl, sr)[pick]
        path.append((left, right, float(sl), float(sr), node, rnd))
    return node, float(score), rule, any_random, path


# ================================================================================================ results
@dataclass
class OuterStep:
    """One outer iteration of the hierarchical optimizer."""

    iteration: int
    sites: tuple  # (lo, hi) sensitivity layers chosen
    block: tuple  # (first, last) network layers trained
    score: float
    rule: str  # first_order | second_order | root (no descent)
    random: bool
    max_abs_g: float
    J_before: float
    J: float
    work: float  # cumulative
    seconds: float  # cumulative wall time
    inner_status: str = ""
    accepted: bool = True


@dataclass
class HierarchicalResult:
    """Trace of one :meth:`HierarchicalOptimizer.run`.

    ``status``: ``budget`` (work budget spent), ``tol`` (max |g| < tol), ``stall`` (J stalled), ``max_outer``,
    ``early_stopped`` (validation patience), ``stopped`` (callback), ``diverged``.
    ``curve``: ``(work, J, seconds)`` at the start, after every outer iteration and after the polish.
    """

    status: str
    J0: float
    J: float
    work: float
    seconds: float
    steps: list = field(default_factory=list)
    curve: list = field(default_factory=list)
    val_curve: list = field(default_factory=list)
    polish_work: float = 0.0
    config: dict = field(default_factory=dict)

    @property
    def n_outer(self) -> int:
        return len(self.steps)

    def block_counts(self) -> dict:
        """How often each network block ``(first, last)`` was trained."""
        out: dict = {}
        for s in self.steps:
            out[s.block] = out.get(s.block, 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict:
        d = asdict(self)
        for s in d["steps"]:
            s["sites"], s["block"] = list(s["sites"]), list(s["block"])
        return d

    def to_frame(self):
        """The trace as a pandas DataFrame, one row per outer iteration (pandas needed)."""
        import pandas as pd

        rows = [asdict(s) for s in self.steps]
        for r in rows:
            r["first"], r["last"] = r.pop("block")
            r["site_lo"], r["site_hi"] = r.pop("sites")
        return pd.DataFrame(rows)

    def plot(self, path: Optional[str] = None, ax: Any = None, title: Optional[str] = None):
        """J against cumulative work (log scale), each outer iteration marked by the colour of its block."""
        import matplotlib

        if path is not None and ax is None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 4))
        w = [c[0] for c in self.curve]
        J = [c[1] for c in self.curve]
        ax.plot(w, J, "-", color="0.6", lw=1, zorder=1)
        blocks = sorted({s.block for s in self.steps})
        cmap = plt.get_cmap("viridis", max(len(blocks), 2))
        for k, b in enumerate(blocks):
            pts = [(s.work, s.J) for s in self.steps if s.block == b]
            rnd = [s.random for s in self.steps if s.block == b]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color=cmap(k), zorder=2,
                       label=f"layers {b[0]}-{b[1]}" if b[0] != b[1] else f"layer {b[0]}",
                       edgecolors=["k" if r else "none" for r in rnd])
        if self.polish_work > 0:
            ax.plot(w[-1], J[-1], "r*", ms=10, label="after polish", zorder=3)
        ax.set_xlabel("work (full-gradient equivalents)")
        ax.set_ylabel("training objective J")
        if min(J) > 0:
            ax.set_yscale("log")
        ax.set_title(title or f"hierarchical: {self.n_outer} outer iterations, status {self.status}")
        ax.legend(fontsize=7, ncol=2, title="trained block (black edge: random pick)", title_fontsize=7)
        if path is not None and fig is not None:
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
        return fig if fig is not None else ax.figure


# ================================================================================================ optimizer
def _check_int(value: Any, name: str, lo: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name}: expected an int >= {lo}{' or None' if allow_none else ''}, got {value!r}")


def _check_float(value: Any, name: str, lo: float = 0.0, hi: float = math.inf, open_lo: bool = False,
                 allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
          and math.isfinite(float(value)))
    if ok:
        v = float(value)
        ok = (v > lo if open_lo else v >= lo) and v <= hi
    if not ok:
        rng = f"{'(' if open_lo else '['}{lo}, {hi}{']' if hi != math.inf else ')'}"
        raise ValueError(f"{name}: expected a number in {rng}{' or None' if allow_none else ''}, got {value!r}")


def _check_opt_choice(value: Any, name: str, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")


@dataclass
class HierarchicalOptimizer:
    """Hierarchical multi-scale optimizer (Zhang et al. 2023): train only the most sensitive block of layers,
    found by bisection over the layer stack. See the module docstring for the algorithm, the scores, the
    block definitions, the work accounting and how the defaults were chosen.

    Parameters
    ----------
    block : {"both", "incoming", "outgoing"}
        Which parameters a chosen layer of neurons means (default ``"both"``).
    score : {"first_order", "second_order"}
        ``||g_G||^2`` or ``g_G^2 / (2 H_G)`` (curvature of a shared group factor; falls back to first order
        where it is not positive).
    p_rand : float in [0, 1]
        Probability of taking a random child at each node of the descent.
    inner : {"adam", "sgd", "lbfgs"}
        Optimizer of the chosen block.
    inner_iters : int
        T_inner: epochs of Adam / SGD (minibatches of ``batch_size``) or L-BFGS iterations per outer iteration.
    lr : float, optional
        Learning rate of Adam / SGD (default 1e-3 / 1e-2).
    momentum : float
        SGD momentum.
    batch_size : int
        Minibatch size of Adam / SGD.
    inner_state : {"shared", "per_block", "reset"}
        Adam / SGD state: one optimizer object for every block (default; a parameter's moments persist between
        the visits of its blocks), one per distinct block, or a fresh one at every outer iteration.
    min_block : int
        Smallest block of the descent, in sensitivity layers (1 = a single layer).
    io_sites : bool
        Add the output (``"incoming"``) or input (``"outgoing"``) site to the tree so that every network layer
        can be trained.
    budget : float
        Work budget in full-gradient equivalents (one epoch of full backprop = 1), polish included.
    max_outer : int, optional
        Cap on the number of outer iterations.
    tol : float
        Stop when ``max |g_j| < tol`` over the tree's neurons.
    stall_window, stall_tol
        Stop when J improved by less than ``stall_tol`` (relative) over the last ``stall_window`` outer
        iterations (``stall_tol=0`` disables it).
    polish_iters : int
        Full-network epochs (L-BFGS iterations) after the hierarchical phase; their work is reserved from the
        budget.
    monotone : bool
        Reject (undo) an outer iteration that increased J, so J never increases across outer iterations.
    random_state : int, optional
        Seeds the random picks and the minibatch shuffling.
    n_threads : int, optional
        Engine threads (default: :func:`sensinet.get_num_threads`).

    Examples
    --------
    >>> opt = HierarchicalOptimizer(budget=50, random_state=0)
    >>> result = opt.run(net, X, y)          # doctest: +SKIP
    >>> result.block_counts(), result.J       # doctest: +SKIP
    """

    block: str = "both"
    score: str = "first_order"
    p_rand: float = 0.1
    inner: str = "adam"
    inner_iters: int = 10
    lr: Optional[float] = None
    momentum: float = 0.0
    batch_size: int = 32
    inner_state: str = "shared"
    min_block: int = 1
    io_sites: bool = True
    budget: float = 100.0
    max_outer: Optional[int] = None
    tol: float = 1e-6
    stall_window: int = 10
    stall_tol: float = 1e-4
    polish_iters: int = 0
    monotone: bool = False
    random_state: Optional[int] = None
    n_threads: Optional[int] = None
    _states: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    result_: Optional[HierarchicalResult] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_opt_choice(self.block, "block", BLOCKS)
        _check_opt_choice(self.score, "score", SCORES)
        _check_opt_choice(self.inner, "inner", INNER)
        _check_opt_choice(self.inner_state, "inner_state", INNER_STATES)
        _check_float(self.p_rand, "p_rand", 0.0, 1.0)
        _check_int(self.inner_iters, "inner_iters", 1)
        _check_float(self.lr, "lr", 0.0, open_lo=True, allow_none=True)
        _check_float(self.momentum, "momentum", 0.0, 1.0)
        _check_int(self.batch_size, "batch_size", 1)
        _check_int(self.min_block, "min_block", 1)
        if not isinstance(self.io_sites, (bool, np.bool_)):
            raise ValueError(f"io_sites: expected a bool, got {self.io_sites!r}")
        _check_float(self.budget, "budget", 0.0, open_lo=True)
        _check_int(self.max_outer, "max_outer", 1, allow_none=True)
        _check_float(self.tol, "tol", 0.0)
        _check_int(self.stall_window, "stall_window", 1)
        _check_float(self.stall_tol, "stall_tol", 0.0)
        _check_int(self.polish_iters, "polish_iters", 0)
        if not isinstance(self.monotone, (bool, np.bool_)):
            raise ValueError(f"monotone: expected a bool, got {self.monotone!r}")
        if self.random_state is not None:
            _check_int(self.random_state, "random_state", 0)
        if self.n_threads is not None:
            _check_int(self.n_threads, "n_threads", 1)

    # -------------------------------------------------------------------------------------------- helpers
    def config(self) -> dict:
        """The options as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def reset(self) -> "HierarchicalOptimizer":
        """Forget the inner optimizers' state (Adam moments, momentum)."""
        self._states = {}
        return self

    def tree_range(self, net: Network) -> tuple:
        """Sensitivity layers ``(lo, hi)`` at the root of the tree for ``net``."""
        L = net.n_layers
        if self.block == "incoming":
            return 1, L if (self.io_sites or L == 1) else L - 1
        if self.block == "outgoing":
            return (0 if (self.io_sites or L == 1) else 1), L - 1
        return 1, max(L - 1, 1)

    def _inner_optimizer(self, key: tuple) -> Any:
        if self.inner == "lbfgs":
            return LBFGS(max_iter=self.inner_iters)
        lr = self.lr if self.lr is not None else _DEFAULT_LR[self.inner]
        make = (lambda: Adam(lr=lr)) if self.inner == "adam" else (lambda: SGD(lr=lr, momentum=self.momentum))
        if self.inner_state == "reset":
            return make()
        k = key if self.inner_state == "per_block" else "shared"
        if k not in self._states:
            self._states[k] = make()
        return self._states[k]

    # -------------------------------------------------------------------------------------------- run
    def run(self, net: Network, X: Any, y: Any, *, budget: Optional[float] = None, batch_size: Optional[int] = None,
            random_state: Optional[int] = None, shuffle: bool = True, validation_data: Optional[tuple] = None,
            patience: Optional[int] = None, val_tol: float = 0.0, callback: Optional[Callable[[dict], Any]] = None,
            progress: bool = False, keep_state: bool = False, n_threads: Optional[int] = None) -> HierarchicalResult:
        """Optimize ``net`` in place; returns the trace (also kept as ``self.result_``).

        Keyword arguments override the configured ``budget``, ``batch_size``, ``random_state`` and
        ``n_threads`` for this call. ``validation_data`` with ``patience`` stops after that many outer
        iterations without a validation improvement larger than ``val_tol`` and restores the best weights.
        ``callback(info)`` is called after every outer iteration with a dict (epoch = outer iteration, step,
        loss = J, work, block, epoch_end=True); returning True stops. ``keep_state`` keeps the Adam / SGD
        state of an earlier call (warm start).

        Raises
        ------
        DivergenceError
            When an inner optimization produced a non-finite loss. The network keeps the last finite weights;
            the partial trace (status ``"diverged"``) is attached as ``exc.result`` and ``self.result_``.
        """
        if not isinstance(net, Network):
            raise TypeError(f"net: expected a sensinet Network, got {type(net).__name__}")
        budget = self.budget if budget is None else budget
        _check_float(budget, "budget", 0.0, open_lo=True)
        bs = self.batch_size if batch_size is None else batch_size
        _check_int(bs, "batch_size", 1)
        seed = self.random_state if random_state is None else random_state
        if patience is not None:
            _check_int(patience, "patience", 1)
            if validation_data is None:
                raise ValueError("patience: early stopping needs validation_data=(X_val, y_val)")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
        threads = resolve_threads(self.n_threads if n_threads is None else n_threads)
        # validated (and, on a GPU, uploaded) once: every inner call below reuses the prepared data
        data = net.prepare(X, y)
        net.matrices(data, None)
        vdata = None
        if validation_data is not None:
            net.validation_matrices(validation_data)
            vdata = (validation_data if not isinstance(validation_data, (tuple, list)) else
                     net.prepare(validation_data[0], validation_data[1], ("validation_data[0]", "validation_data[1]")))
        n_samples = data.n_samples
        if not keep_state:
            self.reset()
        ss = np.random.SeedSequence(seed)
        pick_rng, shuffle_rng = (np.random.default_rng(s) for s in ss.spawn(2))

        L = net.n_layers
        c = layer_macs(net)
        lo_t, hi_t = self.tree_range(net)
        hidden_sites = [i for i in range(lo_t, hi_t + 1) if i < L]
        want_output = hi_t >= L
        epoch_work = lambda first, last: block_work(net, first, last, c)  # noqa: E731
        polish_work = float(self.polish_iters) if self.polish_iters else 0.0
        main_budget = budget - polish_work
        if main_budget <= 0:
            raise ValueError(f"polish_iters: the polish ({self.polish_iters} full-network epochs) must leave part of "
                             f"the budget ({budget:g}) to the hierarchical phase")

        t0 = time.perf_counter()
        J0 = net.objective(data, n_threads=threads)
        res = HierarchicalResult(status="running", J0=J0, J=J0, work=0.0, seconds=0.0, curve=[(0.0, J0, 0.0)],
                                 config={**self.config(), "budget": budget, "batch_size": bs, "random_state": seed})
        self.result_ = res
        bar = ProgressBar(100, desc="hierarchical") if progress else None
        best_val = {"val": math.inf, "theta": None, "wait": 0}
        work, J = 0.0, J0
        Js = [J0]

        def finish(status: str) -> HierarchicalResult:
            res.status = status
            res.J = float(J)
            res.work = float(work)
            res.seconds = time.perf_counter() - t0
            if bar is not None:
                bar.update(100, f"J {J:.4g}", force=True)
                bar.close()
            return res

        # the least an outer iteration costs: a sweep, the curvatures of a descent, the cheapest leaf's epoch
        leaves = [sites_to_layers(i, i, self.block, L) for i in range(lo_t, hi_t + 1)]
        min_cost = (sweep_work(net, min(hidden_sites), c) if hidden_sites else 0.0) + (
            _forward_share(c, 0) if want_output else 0.0) + min(
            epoch_work(f, l) + (_forward_share(c, 0, f - 1) if f > 0 else 0.0) for f, l in leaves)
        if self.score == "second_order":
            levels = max(int(math.ceil(math.log2(max(hi_t - lo_t + 1, 1)))), 0)
            min_cost += 2 * levels * curvature_work(net, lo_t, c)
        it = 0
        try:
            while True:
                if self.max_outer is not None and it >= self.max_outer:
                    status = "max_outer"
                    break
                if main_budget - work < min_cost:
                    status = "budget"
                    break
                # ---- 1. sensitivities (one reverse sweep)
                gs = self._site_sensitivities(net, data, hidden_sites, want_output, threads)
                if hidden_sites:
                    work += sweep_work(net, min(hidden_sites), c)
                if want_output:  # g of the output site needs the outputs: one more forward pass
                    work += _forward_share(c, 0)
                max_g = max((float(np.max(np.abs(g))) for g in gs.values() if g.size), default=0.0)
                if max_g < self.tol:
                    status = "tol"
                    break
                # ---- 2. descent
                curv_cache: dict = {}

                def first_order(node: tuple) -> float:
                    return float(sum(np.sum(gs[i] ** 2) for i in range(node[0], node[1] + 1)))

                def compare(left: tuple, right: tuple) -> tuple:
                    nonlocal work
                    if self.score == "first_order":
                        return first_order(left), first_order(right), "first_order"
                    H = []
                    for node in (left, right):
                        if node not in curv_cache:
                            curv_cache[node], w = self._curvature(net, data, node, threads, c)
                            work += w
                        H.append(curv_cache[node])
                    if H[0] > 0 and H[1] > 0:
                        gG = [float(sum(np.sum(gs[i]) for i in range(n[0], n[1] + 1))) for n in (left, right)]
                        return gG[0] ** 2 / (2 * H[0]), gG[1] ** 2 / (2 * H[1]), "second_order"
                    return first_order(left), first_order(right), "first_order"

                node, score, rule, rnd, _ = descend(lo_t, hi_t, compare, self.min_block, self.p_rand, pick_rng)
                first, last = sites_to_layers(node[0], node[1], self.block, L)
                # ---- 3. inner optimization of the block
                bw = epoch_work(first, last)
                remaining = main_budget - work
                cache_w = _forward_share(c, 0, first - 1) if first > 0 else 0.0
                # an epoch costs bw; an L-BFGS iteration at least one evaluation (bw), so a trimmed last call can
                # overshoot the budget only by L-BFGS's extra line-search evaluations
                n_inner = min(self.inner_iters, int(math.floor((remaining - cache_w) / bw + 1e-9)))
                if n_inner < 1:
                    status = "budget"
                    break
                opt = self._inner_optimizer((first, last))
                if isinstance(opt, LBFGS):
                    opt.max_iter = n_inner
                saved = net.parameters.copy() if self.monotone else None
                saved_state = _snapshot(opt) if self.monotone else None
                J_before = J
                inner_status = ""
                try:
                    net.fit(data, optimizer=opt, epochs=n_inner, batch_size=min(bs, n_samples), shuffle=shuffle,
                            seed=int(shuffle_rng.integers(2**31 - 1)), layers=range(first, last + 1),
                            n_threads=threads)
                    h = net.history_
                    inner_status = h.status
                finally:
                    h = getattr(net, "history_", None) or FitResult("failed", "", 0, 0)
                    evals = h.steps if isinstance(opt, LBFGS) else None
                    if isinstance(opt, LBFGS):
                        work += cache_w + bw * max(int(evals), 1)
                    else:
                        n_samples_seen = _samples_seen(h, n_samples, min(bs, n_samples))
                        work += cache_w + bw * n_samples_seen / n_samples
                J = net.objective(data, n_threads=threads)
                accepted = True
                if self.monotone and not (J <= J_before):
                    net.parameters = saved
                    _restore(opt, saved_state)
                    J, accepted = J_before, False
                it += 1
                Js.append(J)
                elapsed = time.perf_counter() - t0
                res.steps.append(OuterStep(it, node, (first, last), score, rule, rnd, max_g, J_before, J, work, elapsed,
                                           inner_status, accepted))
                res.curve.append((work, J, elapsed))
                if bar is not None:
                    bar.update(int(100 * min(work / budget, 1.0)), f"J {J:.4g} block {first}-{last}")
                stop = None
                if vdata is not None:
                    val = net.objective(vdata, n_threads=threads)
                    res.val_curve.append(float(val))
                    if val < best_val["val"] - val_tol:
                        best_val.update(val=float(val), wait=0,
                                        theta=net.parameters.copy() if patience is not None else None)
                    else:
                        best_val["wait"] += 1
                        if patience is not None and best_val["wait"] >= patience:
                            stop = "early_stopped"
                if callback is not None and callback({"epoch": it - 1, "step": it, "loss": J, "work": work,
                                                      "block": (first, last), "epoch_end": True}):
                    stop = stop or "stopped"
                if stop is None and self.stall_tol > 0 and len(Js) > self.stall_window:
                    ref = Js[-self.stall_window - 1]
                    if (ref - J) <= self.stall_tol * max(abs(ref), 1e-300):
                        stop = "stall"
                if stop is not None:
                    status = stop
                    break
            if status == "early_stopped" and best_val["theta"] is not None:
                net.parameters = best_val["theta"]
                J = net.objective(data, n_threads=threads)
            # ---- 4. polish
            if self.polish_iters and status not in ("early_stopped", "stopped"):
                popt = (LBFGS(max_iter=self.polish_iters) if self.inner == "lbfgs" else
                        (Adam(lr=self.lr or 1e-3) if self.inner == "adam" else SGD(lr=self.lr or 1e-2,
                                                                                   momentum=self.momentum)))
                try:
                    net.fit(data, optimizer=popt, epochs=self.polish_iters, batch_size=min(bs, n_samples),
                            shuffle=shuffle, seed=int(shuffle_rng.integers(2**31 - 1)), n_threads=threads)
                finally:
                    h = getattr(net, "history_", None) or FitResult("failed", "", 0, 0)
                    pw = (h.steps if isinstance(popt, LBFGS) else
                          _samples_seen(h, n_samples, min(bs, n_samples)) / n_samples)
                    work += pw
                    res.polish_work = float(pw)
                J = net.objective(data, n_threads=threads)
                res.curve.append((work, J, time.perf_counter() - t0))
        except DivergenceError as exc:
            J = net.objective(data, n_threads=threads)
            res.curve.append((work, J, time.perf_counter() - t0))
            finish("diverged")
            exc.result = res  # type: ignore[attr-defined]
            raise
        return finish(status)

    # -------------------------------------------------------------------------------------------- estimator protocol
    def fit(self, net: Network, X: Any, y: Any, *, epochs: Optional[int] = None, batch_size: Optional[int] = None,
            shuffle: bool = True, seed: Optional[int] = None, validation_data: Optional[tuple] = None,
            patience: Optional[int] = None, tol: float = 0.0, callback: Optional[Callable[[dict], Any]] = None,
            progress: bool = False, n_threads: Optional[int] = None, **_ignored: Any) -> "HierarchicalOptimizer":
        """The protocol of the scikit-learn estimators' ``solver="hierarchical"``: ``Network.fit``'s keywords.

        ``epochs`` is the work budget in full-gradient equivalents (an epoch of full backprop each);
        ``tol`` / ``patience`` are the validation early-stopping rule, counted in outer iterations. Sets
        ``net.history_`` (a :class:`FitResult` whose ``loss_curve`` is J per outer iteration and whose
        ``epochs`` is the work spent, rounded up) and keeps the optimizer state for a warm start.
        """
        res = None
        try:
            res = self.run(net, X, y, budget=float(epochs) if epochs is not None else None, batch_size=batch_size,
                           random_state=seed, shuffle=shuffle, validation_data=validation_data, patience=patience,
                           val_tol=tol, callback=callback, progress=progress, keep_state=True, n_threads=n_threads)
        finally:
            r = res if res is not None else self.result_
            if r is not None:
                status = {"budget": "max_iter", "max_outer": "max_iter", "tol": "gtol", "stall": "ftol"}.get(
                    r.status, r.status)
                best = int(np.argmin(r.val_curve)) if r.val_curve else None
                net.history_ = FitResult(status=status, optimizer="hierarchical", epochs=int(math.ceil(r.work - 1e-9)),
                                         steps=r.n_outer, loss_curve=[s.J for s in r.steps],
                                         val_curve=list(r.val_curve),
                                         best_epoch=best, seconds=r.seconds, block=(0, net.n_layers - 1))
        return self

    # -------------------------------------------------------------------------------------------- internals
    def _site_sensitivities(self, net: Network, data: Dataset, hidden_sites: list, want_output: bool,
                            threads: int) -> dict:
        """{sensitivity layer: concatenated g_j of its sites} for the tree's layers."""
        gs: dict = {}
        if hidden_sites:
            r = sensitivity(net, data, layers=hidden_sites, wrt="loss", reduce="mean", n_threads=threads)
            for site, M in zip(r.sites, r.matrices):
                gs.setdefault(site.layer, []).append(np.asarray(M[0], dtype=np.float64))
            gs = {k: np.concatenate(v) for k, v in gs.items()}
        if want_output:
            gs[net.n_layers] = output_sensitivity(net, data, n_threads=threads)
        return gs

    def _curvature(self, net: Network, data: Dataset, node: tuple, threads: int, c: NDArray) -> tuple:
        """(d2J/ds_G^2 of one factor shared by the sites lo..hi, its work)."""
        L = net.n_layers
        hidden = [i for i in range(node[0], node[1] + 1) if i < L]
        if node[1] < L:
            H = float(group_curvature(net, data, None, [{i: None for i in hidden}], method="exact",
                                      n_threads=threads)[0])
            return H, curvature_work(net, node[0], c)
        return output_group_curvature(net, data, None, hidden, threads), (5 if hidden else 1) * _forward_share(c, 0)


# ================================================================================================ utilities
def _samples_seen(h: FitResult, n: int, bs: int) -> float:
    """Samples processed by a minibatch fit: full epochs plus the steps of a partial one."""
    per_epoch = int(math.ceil(n / bs))
    full, rest = divmod(int(h.steps), per_epoch)
    return float(full * n + min(rest * bs, n))


def _snapshot(opt: Any) -> Optional[tuple]:
    if isinstance(opt, (Adam, SGD)):
        return (None if opt.state_m is None else opt.state_m.copy(),
                None if opt.state_v is None else opt.state_v.copy(), opt.t)
    return None


def _restore(opt: Any, snap: Optional[tuple]) -> None:
    if snap is not None and isinstance(opt, (Adam, SGD)):
        m, v, t = snap
        if m is None:
            opt.reset()
        else:
            opt.state_m[:] = m
            opt.state_v[:] = v
            opt.t = t


def fit_hierarchical(net: Network, X: Any, y: Any, max_iter: float = 100, random_state: Optional[int] = None,
                     **options: Any) -> HierarchicalResult:
    """Train ``net`` in place with :class:`HierarchicalOptimizer` and return its trace.

    ``max_iter`` is the work budget in full-gradient equivalents (epochs of full backprop); ``options`` are
    :class:`HierarchicalOptimizer` fields (``block``, ``score``, ``p_rand``, ``inner``, ``inner_iters``, ``lr``,
    ...) or :meth:`HierarchicalOptimizer.run` keywords (``validation_data``, ``patience``, ``callback``,
    ``progress``, ``batch_size``).
    """
    run_keys = {"validation_data", "patience", "val_tol", "callback", "progress", "shuffle", "keep_state"}
    run_kw = {k: options.pop(k) for k in list(options) if k in run_keys}
    unknown = set(options) - set(HierarchicalOptimizer.__dataclass_fields__) - {"budget"}
    unknown |= {k for k in options if k.startswith("_") or k == "result_"}
    if unknown:
        raise ValueError(f"options: unknown hierarchical option(s) {sorted(unknown)}; expected fields of "
                         "HierarchicalOptimizer or run() keywords")
    options.pop("budget", None)
    opt = HierarchicalOptimizer(budget=float(max_iter), random_state=random_state, **options)
    return opt.run(net, X, y, **run_kw)
