"""The bisection tree over the sensitivity layers (and, below a layer, over its neurons), and which parameters a
chosen node trains."""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
from numpy.typing import NDArray


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


def split_node(lo: int, hi: int) -> tuple:
    """The lower and the upper half of the node ``lo..hi``."""
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
        left, right = split_node(*node)
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


def neuron_mask(net: Any, site: int, lo: int, hi: int, block: str) -> NDArray:
    """Trainable mask (bool, laid out like ``net.parameters``) of the neurons ``lo..hi`` of sensitivity layer
    ``site`` (Dense layers): their incoming weights and biases (``"incoming"``), the weights that read them
    (``"outgoing"``), or both."""
    mask = np.zeros(net.n_params, dtype=bool)
    if block in ("incoming", "both") and site >= 1:
        v = net.parameter_views(mask, site - 1)
        v["W"][:, lo:hi + 1] = True
        v["b"][lo:hi + 1] = True
    if block in ("outgoing", "both") and site <= net.n_layers - 1:
        net.parameter_views(mask, site)["W"][lo:hi + 1, :] = True
    return mask
