"""HierarchicalOptimizer: each outer iteration measures the sensitivities, descends the tree to a block and
trains only that block (see the package docstring for the algorithm, the scores and the work model)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional

import numpy as np
from numpy.typing import NDArray

from .._config import resolve_threads
from .._early_stopping import Patience
from .._progress import ProgressBar
from .._validation import check_bool, check_choice, check_count, check_number
from ..convert import as_network
from ..data import Dataset
from ..errors import DivergenceError, NonFiniteError, require_finite
from ..fit_result import FitResult
from ..network import Network
from ..optimizers import LBFGS, SGD, Adam
from ..sensitivity import group_curvature, output_group_curvature, output_sensitivity, sensitivity
from .result import HierarchicalResult, OuterStep
from .tree import descend, neuron_mask, sites_to_layers
from .work import block_work, curvature_work, forward_share, layer_macs, sweep_work

BLOCKS = ("incoming", "outgoing", "both")
SCORES = ("first_order", "second_order")
INNER = ("adam", "sgd", "lbfgs")
INNER_STATES = ("per_block", "shared", "reset")
DEFAULT_LR = {"adam": 1e-3, "sgd": 1e-2}


@dataclass
class _Run:
    """The state of one :meth:`HierarchicalOptimizer.run`: data, tree, budget, trace and stopping rules."""

    net: Network
    data: Dataset
    vdata: Any
    threads: int
    batch_size: int
    shuffle: bool
    budget: float
    main_budget: float
    pick_rng: np.random.Generator
    shuffle_rng: np.random.Generator
    c: NDArray  # multiply-adds per sample of every network layer
    tree: tuple  # (lo, hi) sensitivity layers at the root
    hidden_sites: list
    want_output: bool
    res: HierarchicalResult
    watch: Patience
    keep_best: bool
    callback: Optional[Callable[[dict], Any]]
    bar: Optional[ProgressBar]
    t0: float
    work: float = 0.0
    monitor: float = 0.0  # seconds spent evaluating J / the validation objective for the trace
    J: float = 0.0
    Js: list = field(default_factory=list)


@dataclass
class HierarchicalOptimizer:
    """Hierarchical multi-scale optimizer (Zhang et al. 2023): train only the most sensitive block of layers,
    found by bisection over the layer stack. See the package docstring for the algorithm, the scores, the
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
    min_neurons : int, optional
        The neuron level of the tree: below a single layer the descent goes on over that layer's neurons (halves
        of contiguous index ranges, scored like layers) down to groups of at most ``min_neurons``, and only the
        chosen group's parameters are trained (``block`` decides which: incoming weights and biases, outgoing
        weights, or both). ``None`` (default) stops at layers. Needs ``min_block=1`` and Dense layers.
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
    min_neurons: Optional[int] = None
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
        check_choice(self.block, "block", BLOCKS)
        check_choice(self.score, "score", SCORES)
        check_choice(self.inner, "inner", INNER)
        check_choice(self.inner_state, "inner_state", INNER_STATES)
        check_number(self.p_rand, "p_rand", 0.0, 1.0)
        check_count(self.inner_iters, "inner_iters", 1)
        check_number(self.lr, "lr", 0.0, open_lo=True, none_ok=True)
        check_number(self.momentum, "momentum", 0.0, 1.0)
        check_count(self.batch_size, "batch_size", 1)
        check_count(self.min_block, "min_block", 1)
        check_count(self.min_neurons, "min_neurons", 1, none_ok=True)
        if self.min_neurons is not None and self.min_block != 1:
            raise ValueError(f"min_neurons: the neuron level starts below a single layer, so it needs min_block=1, "
                             f"got min_block={self.min_block}")
        check_bool(self.io_sites, "io_sites")
        check_number(self.budget, "budget", 0.0, open_lo=True)
        check_count(self.max_outer, "max_outer", 1, none_ok=True)
        check_number(self.tol, "tol", 0.0)
        check_count(self.stall_window, "stall_window", 1)
        check_number(self.stall_tol, "stall_tol", 0.0)
        check_count(self.polish_iters, "polish_iters", 0)
        check_bool(self.monotone, "monotone")
        check_count(self.random_state, "random_state", 0, none_ok=True)
        check_count(self.n_threads, "n_threads", 1, none_ok=True)

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

    def _make_inner(self, max_iter: Optional[int] = None) -> Any:
        if self.inner == "lbfgs":
            return LBFGS(max_iter=max_iter or self.inner_iters)
        lr = self.lr if self.lr is not None else DEFAULT_LR[self.inner]
        return Adam(lr=lr) if self.inner == "adam" else SGD(lr=lr, momentum=self.momentum)

    def _inner_optimizer(self, key: tuple) -> Any:
        if self.inner == "lbfgs" or self.inner_state == "reset":
            return self._make_inner()
        k = key if self.inner_state == "per_block" else "shared"
        if k not in self._states:
            self._states[k] = self._make_inner()
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
            When an inner optimization made a minibatch loss or the objective non-finite. The network keeps
            the weights of the last outer iteration whose objective was finite; the partial trace (status
            ``"diverged"``) is attached as ``exc.result`` and ``self.result_``.
        """
        net = as_network(net, in_place=True)
        r = self._start(net, X, y, budget, batch_size, random_state, shuffle, validation_data, patience, val_tol,
                        callback, progress, keep_state, n_threads)
        min_cost = self._least_outer_cost(r)
        status = None
        try:
            while status is None:
                if self.max_outer is not None and r.res.n_outer >= self.max_outer:
                    status = "max_outer"
                elif r.main_budget - r.work < min_cost:
                    status = "budget"
                else:
                    gs, max_g = self._sweep(r)
                    if max_g < self.tol:
                        status = "tol"
                    else:
                        node, neurons, score, rule, rnd = self._choose(r, gs)
                        status = self._train_block(r, node, neurons, score, rule, rnd, max_g) or self._stop_rule(r)
            if status == "early_stopped" and r.watch.best_weights is not None:
                net.parameters = r.watch.best_weights
                r.J = self._objective(r, r.data)
            if self.polish_iters and status not in ("early_stopped", "stopped"):
                self._polish(r)
        except DivergenceError as exc:
            r.J = self._objective(r, r.data)
            r.res.curve.append((r.work, r.J, self._clock(r)))
            self._finish(r, "diverged")
            exc.result = r.res  # type: ignore[attr-defined]
            raise
        return self._finish(r, status)

    # ---- the steps of a run
    def _start(self, net: Network, X: Any, y: Any, budget: Optional[float], batch_size: Optional[int],
               random_state: Optional[int], shuffle: bool, validation_data: Any, patience: Optional[int],
               val_tol: float, callback: Any, progress: bool, keep_state: bool, n_threads: Optional[int]) -> _Run:
        """Check the arguments, prepare the data once (every inner call reuses it) and the initial trace."""
        budget = check_number(self.budget if budget is None else budget, "budget", 0.0, open_lo=True)
        bs = check_count(self.batch_size if batch_size is None else batch_size, "batch_size", 1)
        seed = self.random_state if random_state is None else random_state
        check_count(patience, "patience", 1, none_ok=True)
        if patience is not None and validation_data is None:
            raise ValueError("patience: early stopping needs validation_data=(X_val, y_val)")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
        threads = resolve_threads(self.n_threads if n_threads is None else n_threads)
        if self.min_neurons is not None:
            bad = [i for i, sp in enumerate(net.specs) if sp.kind != "dense"]
            if bad:
                raise ValueError(f"min_neurons: the neuron level needs Dense layers, got a {net.specs[bad[0]].kind} "
                                 f"layer at index {bad[0]}")
        data = net.prepare(X, y)
        net.matrices(data, None)
        vdata = None
        if validation_data is not None:
            net.validation_matrices(validation_data)
            vdata = (validation_data if not isinstance(validation_data, (tuple, list)) else
                     net.prepare(validation_data[0], validation_data[1], ("validation_data[0]", "validation_data[1]")))
        polish = float(self.polish_iters) if self.polish_iters else 0.0
        if budget - polish <= 0:
            raise ValueError(f"polish_iters: the polish ({self.polish_iters} full-network epochs) must leave part of "
                             f"the budget ({budget:g}) to the hierarchical phase")
        if not keep_state:
            self.reset()
        pick_rng, shuffle_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        lo, hi = self.tree_range(net)
        J0 = net.objective(data, n_threads=threads)
        t0 = time.perf_counter()
        res = HierarchicalResult(status="running", J0=J0, J=J0, work=0.0, seconds=0.0, curve=[(0.0, J0, 0.0)],
                                 config={**self.config(), "budget": budget, "batch_size": bs, "random_state": seed})
        self.result_ = res
        return _Run(net=net, data=data, vdata=vdata, threads=threads, batch_size=min(bs, data.n_samples),
                    shuffle=shuffle, budget=budget, main_budget=budget - polish, pick_rng=pick_rng,
                    shuffle_rng=shuffle_rng, c=layer_macs(net), tree=(lo, hi),
                    hidden_sites=[i for i in range(lo, hi + 1) if i < net.n_layers], want_output=hi >= net.n_layers,
                    res=res, watch=Patience(patience, val_tol), keep_best=patience is not None, callback=callback,
                    bar=ProgressBar(100, desc="hierarchical") if progress else None, t0=t0, J=J0, Js=[J0])

    def _least_outer_cost(self, r: _Run) -> float:
        """The least an outer iteration costs: a sweep, the curvatures of a descent, the cheapest leaf's epoch."""
        lo, hi = r.tree
        leaves = [sites_to_layers(i, i, self.block, r.net.n_layers) for i in range(lo, hi + 1)]
        cost = (sweep_work(r.net, min(r.hidden_sites), r.c) if r.hidden_sites else 0.0) + (
            forward_share(r.c, 0) if r.want_output else 0.0) + min(
            block_work(r.net, f, l, r.c) + (forward_share(r.c, 0, f - 1) if f > 0 else 0.0) for f, l in leaves)
        if self.score == "second_order":
            levels = max(int(math.ceil(math.log2(max(hi - lo + 1, 1)))), 0)
            if self.min_neurons is not None:  # the neuron level's comparisons (output groups: first order)
                width = min(((r.net.specs[i - 1].n_out if i else r.net.n_inputs) for i in r.hidden_sites), default=1)
                levels += max(int(math.ceil(math.log2(max(width / self.min_neurons, 1)))), 0)
            cost += 2 * levels * curvature_work(r.net, lo, r.c)
        return cost

    def _sweep(self, r: _Run) -> tuple:
        """1. The sensitivities of the tree's layers (one reverse sweep; the output site needs one more
        forward pass) and the largest ``|g|``."""
        gs = self._site_sensitivities(r.net, r.data, r.hidden_sites, r.want_output, r.threads)
        if r.hidden_sites:
            r.work += sweep_work(r.net, min(r.hidden_sites), r.c)
        if r.want_output:
            r.work += forward_share(r.c, 0)
        return gs, max((float(np.max(np.abs(g))) for g in gs.values() if g.size), default=0.0)

    def _choose(self, r: _Run, gs: dict) -> tuple:
        """2. Descend the tree by the score: (node, neurons or None, score, rule, random pick). The layer level
        scores nodes of sensitivity layers, the neuron level (``min_neurons``) halves of one layer's neurons."""
        curv_cache: dict = {}

        def layer_curvature(node: tuple) -> float:
            if node not in curv_cache:
                curv_cache[node], w = self._curvature(r.net, r.data, node, r.threads, r.c)
                r.work += w
            return curv_cache[node]

        compare = self._comparer(lambda n: [gs[i] for i in range(n[0], n[1] + 1)], layer_curvature, "sites")
        node, score, rule, rnd, _ = descend(*r.tree, compare, self.min_block, self.p_rand, r.pick_rng)
        if self.min_neurons is None or node[0] != node[1] or gs[node[0]].size <= self.min_neurons:
            return node, None, score, rule, rnd
        site, g = node[0], gs[node[0]]

        def group_curv(n: tuple) -> Optional[float]:
            if site >= r.net.n_layers:  # no exact curvature of output groups: first order there
                return None
            r.work += curvature_work(r.net, site, r.c)
            return float(group_curvature(r.net, r.data, None, [{site: np.arange(n[0], n[1] + 1)}], method="exact",
                                         n_threads=r.threads)[0])

        compare = self._comparer(lambda n: [g[n[0]:n[1] + 1]], group_curv, f"neurons of site {site}:")
        neurons, score, rule, rnd_n, _ = descend(0, g.size - 1, compare, self.min_neurons, self.p_rand, r.pick_rng)
        return node, neurons, score, rule, rnd or rnd_n

    def _comparer(self, parts: Callable[[tuple], list], curvature: Callable[[tuple], Optional[float]],
                  what: str) -> Callable:
        """``compare(left, right)`` of :func:`descend` for nodes (``what``: their kind, for messages) whose
        sensitivities are ``parts(node)`` (a list of g vectors) and whose shared-factor curvature is
        ``curvature(node)`` (None: not available)."""
        def first_order(node: tuple) -> float:
            with np.errstate(over="ignore"):  # an overflowing score is reported as such, not as a warning
                v = float(sum(np.sum(np.square(p)) for p in parts(node)))
            return float(require_finite(np.array([v]), f"first-order score of {what} {node[0]}..{node[1]}",
                                        "HierarchicalOptimizer.run")[0])

        def compare(left: tuple, right: tuple) -> tuple:
            if self.score == "first_order":
                return first_order(left), first_order(right), "first_order"
            H = [curvature(left), curvature(right)]
            if H[0] is not None and H[1] is not None and H[0] > 0 and H[1] > 0:
                with np.errstate(over="ignore"):
                    gG = np.array([sum(np.sum(p) for p in parts(n)) for n in (left, right)])
                    pred = np.square(gG) / (2 * np.array(H))
                require_finite(pred, "second-order score", "HierarchicalOptimizer.run")
                return float(pred[0]), float(pred[1]), "second_order"
            return first_order(left), first_order(right), "first_order"

        return compare

    def _train_block(self, r: _Run, node: tuple, neurons: Optional[tuple], score: float, rule: str, rnd: bool,
                     max_g: float) -> Optional[str]:
        """3. Train the chosen block (only the chosen neurons' parameters at the neuron level) for at most
        ``inner_iters`` (fewer when the budget runs out) and record the outer iteration; "budget" when not even one
        inner iteration fits. A neuron group costs its layers' work: the engine differentiates whole layers."""
        net = r.net
        first, last = sites_to_layers(node[0], node[1], self.block, net.n_layers)
        bw = block_work(net, first, last, r.c)
        cache_w = forward_share(r.c, 0, first - 1) if first > 0 else 0.0
        # an epoch costs bw; an L-BFGS iteration at least one evaluation (bw), so a trimmed last call can
        # overshoot the budget only by L-BFGS's extra line-search evaluations
        n_inner = min(self.inner_iters, int(math.floor((r.main_budget - r.work - cache_w) / bw + 1e-9)))
        if n_inner < 1:
            return "budget"
        mask = None if neurons is None else neuron_mask(net, node[0], neurons[0], neurons[1], self.block)
        opt = self._inner_optimizer((first, last) if neurons is None else (first, last, node[0], *neurons))
        if isinstance(opt, LBFGS):
            opt.max_iter = n_inner
        # the last weights with a finite J; the optimizer state too when monotone steps may be taken back (a
        # divergence ends the run, so its state need not be kept: a GPU run would download it every iteration)
        saved = (net.parameters.copy(), _snapshot(opt) if self.monotone else None)
        J_before = r.J
        try:
            net.fit(r.data, optimizer=opt, epochs=n_inner, batch_size=r.batch_size, shuffle=r.shuffle,
                    seed=int(r.shuffle_rng.integers(2**31 - 1)), layers=range(first, last + 1), n_threads=r.threads,
                    trainable=mask)
            r.J = self._objective(r, r.data)
        except (DivergenceError, NonFiniteError):
            # a minibatch loss, or J of the weights the inner steps left, is not finite: back to the last weights
            # whose J was (the inner fit's "last finite minibatch" may still overflow J on all the data)
            net.parameters = saved[0]
            _restore(opt, saved[1])
            raise DivergenceError(f"HierarchicalOptimizer.run: training block {first}-{last} (outer iteration "
                                  f"{r.res.n_outer + 1}) made the objective non-finite; the network keeps the weights "
                                  f"before it (J = {J_before:.4g}). Lower lr.") from None
        finally:
            r.work += cache_w + self._inner_work(opt, r, bw)
        accepted = True
        if self.monotone and not (r.J <= J_before):
            net.parameters = saved[0]
            _restore(opt, saved[1])
            r.J, accepted = J_before, False
        r.Js.append(r.J)
        elapsed = self._clock(r)
        r.res.steps.append(OuterStep(r.res.n_outer + 1, node, (first, last), score, rule, rnd, max_g, J_before, r.J,
                                     r.work, elapsed, net.history_.status, accepted, neurons))
        r.res.curve.append((r.work, r.J, elapsed))
        if r.bar is not None:
            r.bar.update(int(100 * min(r.work / r.budget, 1.0)), f"J {r.J:.4g} block {first}-{last}")
        return None

    @staticmethod
    def _objective(r: _Run, data: Any) -> float:
        """J (or the validation objective) for the trace and the rules; its time is kept apart (monitoring)."""
        t = time.perf_counter()
        try:
            return r.net.objective(data, n_threads=r.threads)
        finally:
            r.monitor += time.perf_counter() - t

    @staticmethod
    def _clock(r: _Run) -> float:
        """Seconds since the start of the run without the monitoring evaluations of J (as the work model)."""
        return time.perf_counter() - r.t0 - r.monitor

    @staticmethod
    def _inner_work(opt: Any, r: _Run, unit: float, least_one: bool = True) -> float:
        """Work of the last fit, each epoch or L-BFGS evaluation costing ``unit``: a partial last epoch counts
        the samples it saw; an L-BFGS call at least one evaluation (``least_one``)."""
        h = getattr(r.net, "history_", None) or FitResult("failed", "", 0, 0)
        if isinstance(opt, LBFGS):
            return unit * (max(int(h.steps), 1) if least_one else int(h.steps))
        return unit * _samples_seen(h, r.data.n_samples, r.batch_size) / r.data.n_samples

    def _stop_rule(self, r: _Run) -> Optional[str]:
        """After an outer iteration: validation patience, the callback, or a stalled J."""
        stop = None
        if r.vdata is not None:
            val = self._objective(r, r.vdata)
            r.res.val_curve.append(float(val))
            if r.watch.update(val, r.net.parameters.copy if r.keep_best else None):
                stop = "early_stopped"
        step = r.res.steps[-1]
        if r.callback is not None and r.callback({"epoch": step.iteration - 1, "step": step.iteration, "loss": r.J,
                                                  "work": r.work, "block": step.block, "epoch_end": True}):
            stop = stop or "stopped"
        if stop is None and self.stall_tol > 0 and len(r.Js) > self.stall_window:
            ref = r.Js[-self.stall_window - 1]
            if (ref - r.J) <= self.stall_tol * max(abs(ref), 1e-300):
                stop = "stall"
        return stop

    def _polish(self, r: _Run) -> None:
        """4. Full-network epochs (L-BFGS iterations) out of the reserved part of the budget."""
        popt = self._make_inner(self.polish_iters)
        try:
            r.net.fit(r.data, optimizer=popt, epochs=self.polish_iters, batch_size=r.batch_size, shuffle=r.shuffle,
                      seed=int(r.shuffle_rng.integers(2**31 - 1)), n_threads=r.threads)
        finally:
            pw = self._inner_work(popt, r, 1.0, least_one=False)
            r.work += pw
            r.res.polish_work = float(pw)
        r.J = self._objective(r, r.data)
        r.res.curve.append((r.work, r.J, self._clock(r)))

    def _finish(self, r: _Run, status: str) -> HierarchicalResult:
        res = r.res
        res.status, res.J, res.work, res.seconds = status, float(r.J), float(r.work), self._clock(r)
        res.monitor_seconds = r.monitor
        if r.bar is not None:
            r.bar.update(100, f"J {r.J:.4g}", force=True)
            r.bar.close()
        return res

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
            r = sensitivity(net, data, sites=hidden_sites, wrt="loss", reduce="mean", n_threads=threads)
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
        return output_group_curvature(net, data, None, hidden, threads), (5 if hidden else 1) * forward_share(c, 0)


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
