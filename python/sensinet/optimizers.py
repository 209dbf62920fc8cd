"""Optimizer configurations. SGD and Adam take their hyperparameters positionally in the documented order
(``SGD(lr, momentum, nesterov)``, ``Adam(lr, beta1, beta2, eps)``) and keep their state (momentum,
moments, step count) on the object, so passing the same object to successive ``fit`` calls continues
where the last one stopped."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from numpy.typing import NDArray

from ._optimizer_state import ResidentState
from ._validation import check_count, check_positive


class _Stateful:
    """Optimizer state (momentum / Adam moments and the step count) that continues across ``fit`` calls.

    The state lives where the network trained last: in host arrays, or on a GPU, where it stays between
    calls (:class:`sensinet._optimizer_state.ResidentState`). Reading ``state_m`` / ``state_v`` brings it to
    the host."""

    @property
    def state(self) -> ResidentState:
        """The state and where it lives (the engines move it; users read ``state_m``, ``state_v``, ``t``)."""
        st = self.__dict__.get("_state")
        if st is None:
            st = self.__dict__["_state"] = ResidentState()
        return st

    @property
    def t(self) -> int:
        """Steps taken (Adam's bias-correction step count)."""
        return self.state.t

    @t.setter
    def t(self, value: int) -> None:
        self.state.t = int(check_count(value, "t"))

    @property
    def state_m(self) -> Optional[NDArray]:
        """First state vector (momentum buffer / Adam's first moment), or None before the first step."""
        self.state.to_host()
        return self.state.m

    @state_m.setter
    def state_m(self, value: Optional[NDArray]) -> None:
        self.state.replace(m=value, which="m")

    @property
    def state_v(self) -> Optional[NDArray]:
        """Second state vector (Adam's second moment; unused by SGD), or None before the first step."""
        self.state.to_host()
        return self.state.v

    @state_v.setter
    def state_v(self, value: Optional[NDArray]) -> None:
        self.state.replace(v=value, which="v")

    def reset(self) -> "_Stateful":
        """Forget the accumulated state (moments and step count)."""
        self.state.reset()
        return self

    def __setstate__(self, state: dict) -> None:
        """Unpickle, including objects pickled by sensinet 0.1, whose state lay in ``_m``, ``_v``, ``t``."""
        state = dict(state)
        if "_m" in state or "t" in state:
            st = ResidentState()
            st.m, st.v, st.t = state.pop("_m", None), state.pop("_v", None), int(state.pop("t", 0))
            state["_state"] = st
        for stale in ("_home", "_key"):
            state.pop(stale, None)
        self.__dict__.update(state)


@dataclass
class SGD(_Stateful):
    """Minibatch gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``."""

    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        check_positive(self.lr, "SGD.lr")
        check_positive(self.momentum, "SGD.momentum", allow_zero=True)
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD.nesterov: expected True or False, got {type(self.nesterov).__name__} "
                            f"{self.nesterov!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD.nesterov: Nesterov momentum needs momentum > 0")

    def engine_args(self) -> dict:
        """The hyperparameters as the engine's training call takes them."""
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
            if isinstance(b, bool) or not isinstance(b, (int, float, np.integer, np.floating)) or not (0.0 <= b < 1.0):
                raise ValueError(f"Adam.{name}: expected a value in [0, 1), got {b!r}")
        check_positive(self.eps, "Adam.eps")

    def engine_args(self) -> dict:
        """The hyperparameters as the engine's training call takes them."""
        return dict(optimizer="adam", lr=self.lr, beta1=self.beta1, beta2=self.beta2, eps=self.eps)


@dataclass
class LBFGS:
    """Full-batch L-BFGS with a strong-Wolfe line search.

    ``max_iter`` iterations and ``max_evals`` evaluations of the objective (line-search trials included;
    None: 20 per iteration) at most; stops when ``max |grad| <= gtol`` or when one iteration decreases the
    objective by less than ``ftol`` relative to its size.
    """

    max_iter: int = 100
    history: int = 10
    gtol: float = 1e-6
    ftol: float = 1e-12
    max_evals: Optional[int] = None

    def __post_init__(self) -> None:
        check_count(self.max_iter, "LBFGS.max_iter")
        check_count(self.max_evals, "LBFGS.max_evals", 1, none_ok=True)
        check_count(self.history, "LBFGS.history", 1)
        check_positive(self.gtol, "LBFGS.gtol", allow_zero=True)
        check_positive(self.ftol, "LBFGS.ftol", allow_zero=True)


Optimizer = Union[SGD, Adam, LBFGS]
OPTIMIZERS = ("sgd", "adam", "lbfgs")


def make_optimizer(optimizer: Union[str, Optimizer], lr: Optional[float] = None) -> Optimizer:
    """An optimizer object from a name (with an optional learning rate) or the object itself.

    ``lr`` belongs to a name: with an optimizer object (which carries its own) or with "lbfgs" (which has a
    line search instead) it is an error rather than silently ignored."""
    if isinstance(optimizer, (SGD, Adam, LBFGS)):
        if lr is not None:
            raise ValueError(f"lr: the optimizer object {type(optimizer).__name__} carries its own learning rate; "
                             f"set it there (e.g. {type(optimizer).__name__}(lr=...)) instead of lr={lr!r}")
        return optimizer
    if optimizer == "sgd":
        return SGD(lr=0.01 if lr is None else lr)
    if optimizer == "adam":
        return Adam(lr=1e-3 if lr is None else lr)
    if optimizer == "lbfgs":
        if lr is not None:
            raise ValueError(f"lr: L-BFGS takes no learning rate (it uses a line search), got lr={lr!r}")
        return LBFGS()
    raise ValueError(f"optimizer: expected one of {OPTIMIZERS} or an SGD/Adam/LBFGS object, got {optimizer!r}")
