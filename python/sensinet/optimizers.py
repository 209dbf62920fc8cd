"""Optimizer configurations. SGD and Adam take their hyperparameters positionally in the documented order
(``SGD(lr, momentum, nesterov)``, ``Adam(lr, beta1, beta2, eps)``) and keep their state (momentum,
moments, step count) on the object, so passing the same object to successive ``fit`` calls continues
where the last one stopped."""
from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
from numpy.typing import NDArray

from ._validation import check_count, check_positive


_state_keys = itertools.count(1)


class _Stateful:
    """Optimizer state (momentum / Adam moments and the step count) that continues across ``fit`` calls.

    The state lives where the network trained last: in host arrays, or on a GPU, where it stays between
    calls. Reading ``state_m`` / ``state_v`` brings it to the host."""

    _m: Optional[NDArray] = None
    _v: Optional[NDArray] = None
    _home: Any = None  # weak reference to the engine that holds the newest state (None: the host arrays)
    t: int = 0

    @property
    def _state_key(self) -> int:
        key = self.__dict__.get("_key")
        if key is None:
            key = self.__dict__["_key"] = next(_state_keys)
        return key

    def _state_home(self) -> Any:
        return None if self._home is None else self._home()

    def _state_on(self, engine: Any) -> None:
        self._home = weakref.ref(engine)

    def _sync_state_to_host(self) -> None:
        engine = self._state_home()
        self._home = None
        if engine is not None and self._m is not None:
            engine.download_state(self._state_key, self._m, self._v)

    def _host_state(self, n_params: int, dtype: Any, engine: Any = None) -> tuple:
        """State arrays for n_params in dtype (zeros and t = 0 when they do not fit), brought to the host
        unless ``engine`` is where the state lives (then it uses the device copy and the arrays are stale)."""
        home = self._state_home()
        if home is None or home is not engine:
            self._sync_state_to_host()
        if self._m is None or self._m.shape != (n_params,) or self._m.dtype != dtype:
            self._home = None
            self._m = np.zeros(n_params, dtype=dtype)
            self._v = np.zeros(n_params, dtype=dtype)
            self.t = 0
            self.__dict__.pop("_key", None)  # a new state: a new key
        return self._m, self._v

    @property
    def state_m(self) -> Optional[NDArray]:
        """First state vector (momentum buffer / Adam's first moment), or None before the first step."""
        self._sync_state_to_host()
        return self._m

    @state_m.setter
    def state_m(self, value: Optional[NDArray]) -> None:
        self._sync_state_to_host()
        self._m = None if value is None else np.array(value)
        self.__dict__.pop("_key", None)

    @property
    def state_v(self) -> Optional[NDArray]:
        """Second state vector (Adam's second moment; unused by SGD), or None before the first step."""
        self._sync_state_to_host()
        return self._v

    @state_v.setter
    def state_v(self, value: Optional[NDArray]) -> None:
        self._sync_state_to_host()
        self._v = None if value is None else np.array(value)
        self.__dict__.pop("_key", None)

    def reset(self) -> "_Stateful":
        """Forget the accumulated state (moments and step count)."""
        self._home = None
        self._m = self._v = None
        self.t = 0
        self.__dict__.pop("_key", None)
        return self

    def __getstate__(self) -> dict:
        self._sync_state_to_host()
        return {k: v for k, v in self.__dict__.items() if k not in ("_home", "_key")}

    def __setstate__(self, state: dict) -> None:
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
            if isinstance(b, bool) or not isinstance(b, (int, float, np.integer, np.floating)) or not (0.0 <= b < 1.0):
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
        check_count(self.max_iter, "LBFGS.max_iter")
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
