"""The estimators' training beyond one engine call: scikit-learn's learning-rate schedules for SGD, and the
weight decay that follows the data (``alpha`` is scaled by the batch size, as MLP scales it)."""
from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

from ._early_stopping import Patience
from ._estimator_data import held_out_score
from .fit_result import FitResult
from .network import Network

MIN_ADAPTIVE_LR = 1e-6  # MLP's "adaptive" schedule stops once the rate is this small
_SEED_BOUND = np.iinfo(np.int32).max


def fit_scheduled(net: Network, opt: Any, X: NDArray, T: NDArray, val: Optional[tuple], p: dict, kwargs: dict,
                  seen: int) -> tuple:
    """SGD with MLP's ``"invscaling"`` or ``"adaptive"`` learning rate; returns ``(FitResult, scores)``.

    One engine call per epoch, since the rate changes between epochs (the epoch itself runs in C++). The rules
    are MLP's: ``invscaling`` sets ``lr = learning_rate_init / (t + 1) ** power_t`` after each epoch, ``t``
    the samples seen by every fit so far; ``adaptive`` keeps the rate while the monitored value (the validation
    objective with early stopping, else the training loss) improves by ``tol`` at least once in
    ``n_iter_no_change + 1`` epochs, then divides it by 5 and counts again, and stops once the rate is at most
    1e-6. With early
    stopping the best weights are restored, as ``Network.fit`` does.
    """
    lr0, threads = p["learning_rate"], kwargs["n_threads"]
    call = {k: v for k, v in kwargs.items() if k not in ("epochs", "seed", "progress")}
    watch = Patience(p["n_iter_no_change"] + 1, p["tol"])  # MLP acts once more than n_iter_no_change epochs failed
    curve: list = []
    val_curve: list = []
    scores: list = []
    steps, status, t = 0, "completed", int(seen)
    start = time.perf_counter()
    for epoch in range(p["max_iter"]):
        net.fit(X, T, optimizer=opt, epochs=1, seed=(kwargs["seed"] + epoch) % _SEED_BOUND, **call)
        curve.append(float(net.history_.loss_curve[-1]))
        steps += int(net.history_.steps)
        t += X.shape[0]
        monitored = curve[-1]
        if val is not None:
            monitored = float(net.objective(val[0], val[1], n_threads=threads))
            val_curve.append(monitored)
            scores.append(held_out_score(net.loss, net.forward(val[0], n_threads=threads), val[1]))
        if p["schedule"] == "invscaling":
            opt.lr = lr0 / (t + 1) ** p["power_t"]
        if watch.update(monitored, (lambda: net.parameters) if val is not None else None):
            if p["schedule"] == "adaptive" and opt.lr > MIN_ADAPTIVE_LR:
                opt.lr /= 5.0
                watch.wait, watch.stopped = 0, False
                continue
            status = "early_stopped" if val is not None else "ftol"
            break
    if val is not None and watch.best_weights is not None:
        net.parameters = watch.best_weights
    hist = FitResult(status=status, optimizer="sgd", epochs=len(curve), steps=steps, loss_curve=curve,
                     val_curve=val_curve, best_epoch=watch.best_index if val is not None else None,
                     seconds=time.perf_counter() - start, block=(0, net.n_layers - 1))
    return hist, scores


def with_weight_decay(net: Network, l2: float) -> Network:
    """``net`` when every layer already has weight decay ``l2``; else a network with the same parameters (and
    device) and that decay (a warm start on data of another size changes alpha's scaled decay)."""
    if all(s.l2 == l2 for s in net.specs):
        return net
    new = Network.from_specs([s._replace(l2=l2) for s in net.specs], net.loss, net.dtype)
    new.parameters = net.parameters
    if net.device != "cpu":
        new.to(net.device)
    return new
