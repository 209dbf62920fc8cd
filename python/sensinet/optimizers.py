"""Optimizer configurations. SGD and Adam keep their state (momentum, moments, step count) on the object,
so passing the same object to successive ``fit`` calls continues where the last one stopped."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
from numpy.typing import NDArray

from ._validation import check_positive


@dataclass
class _Stateful:
    state_m: Optional[NDArray] = field(default=None, repr=False, compare=False)
    state_v: Optional[NDArray] = field(default=None, repr=False, compare=False)
    t: int = field(default=0, repr=False, compare=False)

    def reset(self) -> "_Stateful":
        """Forget the accumulated state (moments and step count)."""
        self.state_m = self.state_v = None
        self.t = 0
        return self

    def _state_for(self, n_params: int, dtype: type) -> tuple[NDArray, NDArray]:
        if self.state_m is None or self.state_m.shape != (n_params,) or self.state_m.dtype != dtype:
            self.state_m = np.zeros(n_params, dtype=dtype)
            self.state_v = np.zeros(n_params, dtype=dtype)
            self.t = 0
        assert self.state_v is not None
        return self.state_m, self.state_v


@dataclass
class SGD(_Stateful):
    """Minibatch gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``."""

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        check_positive(self.lr, "SGD.lr")
        check_positive(self.momentum, "SGD.momentum", allow_zero=True)
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD.nesterov: Nesterov momentum needs momentum > 0")

    def _engine_args(self) -> dict:
        return dict(optimizer="sgd", lr=self.lr, momentum=self.momentum, nesterov=self.nesterov)


@dataclass
class Adam(_Stateful):
    """Adam with bias corrections, as ``torch.optim.Adam`` (weight decay belongs to the layers' ``l2``)."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        check_positive(self.lr, "Adam.lr")
        for name in ("beta1", "beta2"):
            b = getattr(self, name)
            if not (0.0 <= b < 1.0):
                raise ValueError(f"Adam.{name}: expected a value in [0, 1), got {b!r}")
        check_positive(self.eps, "Adam.eps")

    def _engine_args(self) -> dict:
        return dict(optimizer="adam", lr=self.lr, beta1=self.beta1, beta2=self.beta2, eps=self.eps)


@dataclass
class LBFGS:
    """Full-batch L-BFGS with a strong-Wolfe line search.

    ``max_iter`` iterations at most; stops when ``max |grad| <= gtol`` or when one iteration decreases the
    objective by less than ``ftol`` relative to its size.
    """

    max_iter: int = 100
    history: int = 10
    gtol: float = 1e-6
    ftol: float = 1e-12

    def __post_init__(self) -> None:
        check_positive(self.max_iter, "LBFGS.max_iter", integer=True, allow_zero=True)
        check_positive(self.history, "LBFGS.history", integer=True)
        check_positive(self.gtol, "LBFGS.gtol", allow_zero=True)
        check_positive(self.ftol, "LBFGS.ftol", allow_zero=True)


Optimizer = Union[SGD, Adam, LBFGS]
OPTIMIZERS = ("sgd", "adam", "lbfgs")


def make_optimizer(optimizer: Union[str, Optimizer], lr: Optional[float] = None) -> Optimizer:
    """An optimizer object from a name (with an optional learning rate) or the object itself."""
    if isinstance(optimizer, (SGD, Adam, LBFGS)):
        return optimizer
    if optimizer == "sgd":
        return SGD(lr=0.01 if lr is None else lr)
    if optimizer == "adam":
        return Adam(lr=1e-3 if lr is None else lr)
    if optimizer == "lbfgs":
        return LBFGS()
    raise ValueError(f"optimizer: expected one of {OPTIMIZERS} or an SGD/Adam/LBFGS object, got {optimizer!r}")
