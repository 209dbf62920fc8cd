"""Grow-and-shrink training: a network that grows where layer insertion's score pays and sheds neurons
whose sensitivity has fallen low, in one run.

Training runs in chunks of ``prune_every`` epochs through :class:`sensinet.LayerInsertion`, whose rules
(schedule, plateau, score threshold) insert layers inside a chunk. After each chunk every prunable neuron
whose score (see :func:`sensinet.pruning.neuron_scores`) is below ``threshold`` times the highest score of
its layer is removed (keeping ``min_width``). Scaling-factor sensitivities are scale-free, so one relative
threshold means the same in every layer. The optimizer starts afresh after a pruning step (the parameter
layout changed); across insertions LayerInsertion carries its state over.

Work is counted as in the insertion study: the parameters trained in an epoch times the samples, summed.
:meth:`GrowShrinkResult.compare_fixed` trains the final architecture from scratch for the same work.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Sequence

import numpy as np

from ._tables import brief, frame
from ._validation import check_choice, check_positive
from .convert import as_network
from .insertion import LayerInsertion
from .network import Network
from .optimizers import make_optimizer
from .pruning import neuron_scores, prune

CRITERIA = ("sensitivity", "loss_sensitivity", "taylor", "magnitude")


@dataclass
class GrowShrinkResult:
    """The trained network, the loss and size per epoch, the insertions and pruning steps, and the work."""

    network: Network
    loss: list = field(default_factory=list)  # training objective per epoch
    n_params: list = field(default_factory=list)  # parameters trained in each epoch
    events: list = field(default_factory=list)  # {"epoch", "kind": "insert" | "prune", "detail", "n_params"}
    n_samples: int = 0
    settings: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return brief("GrowShrinkResult", network=self.network, epochs=len(self.loss),
                     final_loss=self.loss[-1] if self.loss else None, events=len(self.events), work=self.work)

    @property
    def work(self) -> float:
        """Parameters x samples summed over the epochs."""
        return float(np.sum(self.n_params)) * self.n_samples

    def to_frame(self) -> Any:
        """The events (insertions and pruning steps) as a pandas DataFrame."""
        return frame(self.events)

    def compare_fixed(self, X: Any, y: Any, seeds: Sequence[int] = (0, 1, 2),
                      validation_data: Optional[tuple] = None) -> dict:
        """Train the final architecture from scratch (one network per seed) for the same work with the same
        optimizer settings, and report its final losses beside this run's (and, with ``validation_data``,
        both networks' losses there)."""
        final = self.network
        data = final.prepare(X, y)
        epochs = max(int(round(self.work / (final.n_params * data.n_samples))), 1)
        s = self.settings
        losses, val_losses = [], []
        for seed in seeds:
            fixed = Network(final.n_inputs, list(final.layers), loss=final.loss, dtype=final.dtype, seed=int(seed))
            fixed.fit(data, optimizer=make_optimizer(s["optimizer"], s["lr"]), epochs=epochs,
                      batch_size=s["batch_size"] or data.n_samples, shuffle=s["batch_size"] is not None,
                      seed=int(seed))
            losses.append(fixed.objective(data))
            if validation_data is not None:
                val_losses.append(float(fixed.objective(*validation_data)))
        out = {"grow_shrink_loss": float(self.loss[-1]), "fixed_losses": losses,
               "fixed_mean": float(np.mean(losses)), "fixed_epochs": epochs, "n_params": final.n_params,
               "work": self.work}
        if validation_data is not None:
            out.update(grow_shrink_val_loss=float(final.objective(*validation_data)), fixed_val_losses=val_losses)
        return out


class GrowShrink:
    """Grow by layer insertion and shrink by neuron pruning during one training run (see module docstring).

    Parameters
    ----------
    insertion : LayerInsertion, optional
        Its rules decide when and where to grow (default: insert where the score is largest whenever it
        exceeds ``1e-3``, checked every 10 epochs, at most 2 insertions). Its ``at_epochs`` count within
        each chunk of ``prune_every`` epochs; ``max_insertions`` counts over the whole run.
    prune_every : int
        Epochs between pruning steps.
    threshold : float
        A neuron is removed when its score is below ``threshold`` times the highest in its layer.
    criterion : {"sensitivity", "loss_sensitivity", "taylor", "magnitude"}
    min_width : int
        Neurons every layer keeps.
    """

    def __init__(self, insertion: Optional[LayerInsertion] = None, prune_every: int = 50, threshold: float = 0.05,
                 criterion: str = "sensitivity", min_width: int = 2) -> None:
        if insertion is not None and not isinstance(insertion, LayerInsertion):
            raise TypeError(f"insertion: expected a LayerInsertion, got {type(insertion).__name__}")
        self.insertion = insertion if insertion is not None else LayerInsertion(score_threshold=1e-3,
                                                                                check_every=10, max_insertions=2)
        self.prune_every = int(check_positive(prune_every, "prune_every", integer=True))
        self.threshold = check_positive(threshold, "threshold")
        if not self.threshold < 1:
            raise ValueError(f"threshold: expected a fraction of the layer's highest score in (0, 1), got {threshold!r}")
        self.criterion = check_choice(criterion, "criterion", CRITERIA)
        self.min_width = int(check_positive(min_width, "min_width", integer=True))

    def fit(self, net: Network, X: Any, y: Any, *, epochs: int, optimizer: Any = "sgd", lr: Optional[float] = None,
            batch_size: Optional[int] = None, seed: int = 0, n_threads: Optional[int] = None) -> GrowShrinkResult:
        """Train ``net`` (a copy: ``net`` itself is left as it is) for ``epochs`` epochs; see the class."""
        check_positive(epochs, "epochs", integer=True)
        net = as_network(net)
        data = net.prepare(X, y)
        net.matrices(data, None)
        template = make_optimizer(optimizer, lr)
        res = GrowShrinkResult(network=net, n_samples=data.n_samples,
                               settings={"optimizer": optimizer if isinstance(optimizer, str) else template,
                                         "lr": lr, "batch_size": batch_size})
        cur, epoch = net.copy(), 0
        while epoch < epochs:
            chunk = min(self.prune_every, epochs - epoch)
            opt = _fresh(template)
            ins = copy.deepcopy(self.insertion)
            ins.max_insertions = max(self.insertion.max_insertions - sum(e["kind"] == "insert" for e in res.events), 0)
            ins.at_epochs = [e for e in ins.at_epochs if e < chunk]  # a schedule counts within each chunk
            cur, hist = ins.fit(cur, data, None, epochs=chunk, optimizer=opt, batch_size=batch_size, seed=seed + epoch,
                                n_threads=n_threads)
            for e in hist.insertions:
                res.events.append({"epoch": epoch + e.epoch, "kind": "insert", "detail": f"{e.kind} at {e.position}",
                                   "n_params": e.n_params_after})
            res.loss += list(hist.loss)
            res.n_params += list(hist.n_params)
            epoch += chunk
            if epoch >= epochs:
                break
            scores = neuron_scores(cur, data, None, self.criterion, n_threads=n_threads)
            amount = {g: int(np.sum(s < self.threshold * np.max(s))) for g, s in scores.items() if s.size}
            if sum(amount.values()):
                cur, rec = prune(cur, data, amount=amount, criterion=self.criterion, min_width=self.min_width,
                                 n_threads=n_threads)
                if rec.n_removed:
                    res.events.append({"epoch": epoch, "kind": "prune", "detail": repr(rec), "n_params": cur.n_params})
        res.network = cur
        return res


def _fresh(opt: Any) -> Any:
    """A new optimizer with the hyperparameters of ``opt`` and no state."""
    return type(opt)(**{f.name: getattr(opt, f.name) for f in fields(opt)})
