"""The state of a stateful optimizer (momentum / Adam moments and the step count) and where its newest copy
lives: in host arrays, or on the GPU engine that trained with it last, where it stays between ``fit`` calls.

This is the protocol between the optimizers (which own a ``ResidentState``) and the engines (which move it
to and from the device): the engine records that it holds the newest copy with :meth:`moved_to`, and
whoever reads the state on the host calls :meth:`to_host` first.
"""
from __future__ import annotations

import itertools
import weakref
from typing import Any, Callable, Optional

import numpy as np
from numpy.typing import NDArray

_keys = itertools.count(1)


class ResidentState:
    """Two state vectors ``m``, ``v``, the step count ``t``, a key naming this state on a device, and the
    engine holding the newest copy (None: the host arrays are current)."""

    def __init__(self) -> None:
        self.m: Optional[NDArray] = None
        self.v: Optional[NDArray] = None
        self.t = 0
        self._home: Any = None  # weak reference to the engine holding the newest copy
        self._key: Optional[int] = None

    @property
    def key(self) -> int:
        """A process-unique name of this state (a new one whenever the state is replaced)."""
        if self._key is None:
            self._key = next(_keys)
        return self._key

    def home(self) -> Any:
        """The engine holding the newest copy, or None when the host arrays are current."""
        return None if self._home is None else self._home()

    def moved_to(self, engine: Any) -> None:
        """``engine`` now holds the newest copy (it trained with it)."""
        self._home = weakref.ref(engine)

    def to_host(self) -> None:
        """Bring the newest copy into the host arrays (a download when an engine holds it)."""
        engine = self.home()
        self._home = None
        if engine is not None and self.m is not None:
            engine.download_state(self.key, self.m, self.v)

    def rescue(self, key: int, download: Callable[[int, NDArray, NDArray], None]) -> None:
        """Called for a dying engine: when the engine that held state ``key`` is gone and this is still that
        state, download it into the host arrays."""
        if self._home is None or self._home() is not None or self._key != key:
            return  # already on the host, or living elsewhere now
        download(key, self.m, self.v)
        self._home = None

    def resident_on(self, engine: Any, n: int, dtype: Any) -> bool:
        """Whether ``engine`` holds the newest copy, laid out for ``n`` parameters of ``dtype``."""
        return (self.home() is engine and self.m is not None and self.m.shape == (n,)
                and self.m.dtype == dtype)

    def arrays(self, n: int, dtype: Any, engine: Any = None) -> tuple:
        """(m, v) for ``n`` parameters of ``dtype`` (zeros and t = 0 when the state does not fit), brought to
        the host unless ``engine`` is where the state lives (then the device copy is used and the arrays
        are stale)."""
        if self.home() is None or self.home() is not engine:
            self.to_host()
        if self.m is None or self.m.shape != (n,) or self.m.dtype != dtype:
            self._home = None
            self.m, self.v, self.t = np.zeros(n, dtype=dtype), np.zeros(n, dtype=dtype), 0
            self._key = None  # a new state: a new key
        return self.m, self.v

    def replace(self, m: Optional[NDArray] = None, v: Optional[NDArray] = None, which: str = "both") -> None:
        """Set ``m`` and/or ``v`` from the host (the state gets a new key)."""
        self.to_host()
        if which in ("m", "both"):
            self.m = None if m is None else np.array(m)
        if which in ("v", "both"):
            self.v = None if v is None else np.array(v)
        self._key = None

    def reset(self) -> None:
        self._home = None
        self.m = self.v = None
        self.t = 0
        self._key = None

    def __getstate__(self) -> dict:
        self.to_host()
        return {"m": self.m, "v": self.v, "t": self.t}

    def __setstate__(self, state: dict) -> None:
        self.__init__()  # type: ignore[misc]
        self.m, self.v, self.t = state["m"], state["v"], state["t"]
