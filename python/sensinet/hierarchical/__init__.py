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
   inner iteration costs only the block and the layers above it). With ``min_neurons`` set, the tree has a
   neuron level: once the descent reaches a single layer it goes on over that layer's neurons (halves of
   contiguous index ranges, scored like layers: ``||g_G||^2`` or the second-order rule with the exact
   curvature of the group's shared factor; output groups use first order) down to groups of at most
   ``min_neurons`` neurons, and only that group's incoming and / or outgoing parameters are trained
   (``Network.fit(..., trainable=mask)``; the frozen parameters keep their values and their Adam moments).
   The engine still differentiates whole layers, so a group costs its layers' work;
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
the study is not charged either). Wall time is recorded too, without those monitoring evaluations (their
seconds are kept apart in ``monitor_seconds``): on small layers the per-step overheads make a
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

from .optimizer import BLOCKS, INNER, INNER_STATES, SCORES, HierarchicalOptimizer, fit_hierarchical
from .result import HierarchicalResult, OuterStep
from .tree import descend, neuron_mask, sites_to_layers, split_node
from .work import block_work, curvature_work, forward_share, layer_macs, sweep_work

__all__ = ["HierarchicalOptimizer", "HierarchicalResult", "OuterStep", "fit_hierarchical", "descend",
           "layer_macs", "block_work", "sweep_work", "curvature_work", "forward_share", "sites_to_layers",
           "split_node", "neuron_mask", "BLOCKS", "SCORES", "INNER", "INNER_STATES"]
