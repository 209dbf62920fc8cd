"""Prepared data sets: arrays validated once, converted once, and kept on the device between calls.

A :class:`Dataset` holds its own read-only copy of ``X`` (and ``y``), checked once for shape, dtype and
non-finite values. The arrays a network needs (``X`` in its dtype, ``y`` in its head's target format) are
made on first use and cached on the data set; on a CUDA network their device copies stay in GPU memory
until the data set is garbage-collected. Passing the same ``Dataset`` to ``fit``, ``predict``,
``sensitivity``, the hierarchical optimizer or layer insertion therefore neither re-validates nor
re-uploads anything.

Plain arrays work too: every network remembers the last few arrays it was given (:class:`DataCache`).
A repeated call with the same array objects reuses their prepared form after one fast fingerprint of
their bytes, so an array changed in place (``X[:] = ...``, a row swap) is prepared again, never served
stale. Arrays that cannot be referenced weakly (lists) are prepared on every call.
"""
from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

from ._validation import as_matrix, check_bool, check_samples, numeric_array, targets

_keys = itertools.count(1)


@dataclass(frozen=True, eq=False)
class Matrix:
    """A validated, C-contiguous, read-only array in an engine's dtype, with a key unique to its contents.

    Engines use the key to keep a device copy; no two matrices with different contents share a key."""

    array: NDArray
    key: int

    @classmethod
    def of(cls, array: NDArray) -> "Matrix":
        """A read-only C-ordered view of ``array`` (a copy only when it is not C-contiguous) with a new identity key."""
        a = np.ascontiguousarray(array)
        if a.flags.writeable:
            a = a.view()
            a.flags.writeable = False
        return cls(a, next(_keys))

    @property
    def shape(self) -> tuple:
        """(rows, columns) of the matrix."""
        return self.array.shape


class Dataset:
    """Inputs (and targets) validated once and shared by every call that uses them.

    Parameters
    ----------
    X : array-like (n_samples, n_features)
        Finite numeric values.
    y : array-like (n_samples,) or (n_samples, n_outputs), optional
        Targets: values, class labels or probabilities, as the network's head expects.
    n_features : int, optional
        The number of columns X must have.
    copy : bool
        Keep a private copy (default). With ``copy=False`` the data set refers to the given arrays, which
        must then not be changed while it is in use (a changed array gives stale results).

    Examples
    --------
    >>> import numpy as np, sensinet as sn
    >>> X = np.random.default_rng(0).normal(size=(256, 4)); y = X.sum(1)
    >>> data = sn.Dataset(X, y)
    >>> net = sn.Network(4, [sn.Dense(8, "tanh"), sn.Dense(1)], seed=0)
    >>> _ = net.fit(data, epochs=2).fit(data, epochs=2)   # validated and uploaded once
    """

    def __init__(self, X: Any, y: Any = None, *, copy: bool = True, n_features: Optional[int] = None) -> None:
        copy = check_bool(copy, "copy")
        x = numeric_array(X, "X")
        check_samples(x, "X", n_features)
        if x.shape[1] == 0:
            raise ValueError(f"X: expected at least one feature (column), got shape {x.shape}")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError("X: contains NaN or infinity")
        self._X = np.array(x, copy=True) if copy else x
        self._y: Optional[NDArray] = None
        if y is not None:
            t = numeric_array(y, "y")
            if t.ndim not in (1, 2):
                raise ValueError(f"y: expected a 1-D or 2-D array, got shape {t.shape}")
            if t.shape[0] != x.shape[0]:
                raise ValueError(f"y: expected {x.shape[0]} rows (one per sample of X), got shape {t.shape}")
            if t.dtype.kind == "f" and not np.isfinite(t).all():
                raise ValueError("y: contains NaN or infinity")
            self._y = np.array(t, copy=True) if copy else t
        for a in (self._X, self._y):
            if a is not None and copy:
                a.flags.writeable = False
        self._copy = copy
        self._prepared: dict = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        """The arrays only: the prepared forms and device copies are remade where the data set is unpickled
        (joblib and Dask workers get it so)."""
        return {"X": self._X, "y": self._y, "copy": self._copy}

    def __setstate__(self, state: dict) -> None:
        self._X, self._y, self._copy = state["X"], state["y"], state["copy"]
        for a in (self._X, self._y):
            if a is not None and self._copy:
                a.flags.writeable = False
        self._prepared = {}
        self._lock = threading.Lock()

    @property
    def X(self) -> NDArray:
        """The inputs (read-only when the data set holds a copy)."""
        return self._X

    @property
    def y(self) -> Optional[NDArray]:
        """The targets as given, or None."""
        return self._y

    @property
    def n_samples(self) -> int:
        """Number of samples (rows of X)."""
        return int(self._X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of input features (columns of X)."""
        return int(self._X.shape[1])

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        y = "" if self._y is None else f", y: {self._y.shape}"
        return f"Dataset(X: {self._X.shape} {self._X.dtype}{y})"

    # ------------------------------------------------------------------ what engines consume
    def inputs(self, dtype: Any, n_cols: int, name: str = "X") -> Matrix:
        """X as a Matrix of ``dtype`` with ``n_cols`` columns (made once per dtype)."""
        key = ("X", np.dtype(dtype).str)
        m = self._prepared.get(key)
        if m is None:
            with self._lock:
                m = self._prepared.get(key)
                if m is None:
                    arr = as_matrix(self._X, name, dtype, None)
                    m = self._prepared[key] = Matrix.of(arr)
        if m.shape[1] != n_cols:
            raise ValueError(f"{name}: expected {n_cols} features (columns), got shape {self._X.shape}")
        return m

    def targets(self, loss: str, n_outputs: int, dtype: Any, name: str = "y") -> Matrix:
        """y as the (n, n_outputs) target Matrix of a head (made once per head and dtype)."""
        if self._y is None:
            raise ValueError(f"{name}: this data set has no targets; build it as Dataset(X, y)")
        key = ("y", loss, int(n_outputs), np.dtype(dtype).str)
        m = self._prepared.get(key)
        if m is None:
            with self._lock:
                m = self._prepared.get(key)
                if m is None:
                    m = self._prepared[key] = Matrix.of(targets(self._y, loss, n_outputs, self.n_samples, dtype, name))
        return m


# ---------------------------------------------------------------------------------------------- cache
_stats = {"prepared": 0, "reused": 0}


def cache_stats() -> dict:
    """How many plain-array arguments were prepared (validated and converted) and how many reused from a
    network's cache, since the process started. Tests use it to prove that repeated calls re-validate
    nothing."""
    return dict(_stats)


def _fingerprint(a: NDArray) -> int:
    from ._engine import fingerprint

    return fingerprint(a)


class DataCache:
    """The last few plain arrays a network was given, with their prepared :class:`Dataset`.

    An entry is found by the identity of the array objects (held weakly) and is valid only while their
    shape, dtype, strides, memory and byte fingerprint are unchanged."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _signature(a: Any) -> Optional[tuple]:
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
            return None
        if not (a.flags.c_contiguous or a.flags.f_contiguous):
            return None  # a strided view: converting it is as cheap as checking it
        buf = a if a.flags.c_contiguous else a.T
        return (a.shape, a.dtype.str, a.strides, a.__array_interface__["data"][0], _fingerprint(buf))

    def get(self, X: Any, y: Any = None, n_features: Optional[int] = None) -> Dataset:
        """The prepared data set of (X, y): from the cache when the same unchanged arrays were seen."""
        sx = self._signature(X)
        sy = None if y is None else self._signature(y)
        cacheable = sx is not None and (y is None or sy is not None)
        key = (id(X), id(y))
        if cacheable:
            with self._lock:
                e = self._entries.get(key)
                if e is not None:
                    rx, ry, ex, ey, data = e
                    if rx() is X and (y is None or (ry is not None and ry() is y)) and ex == sx and ey == sy:
                        self._entries.move_to_end(key)
                        _stats["reused"] += 1
                        return data
        data = Dataset(X, y, copy=False, n_features=n_features)
        _stats["prepared"] += 1
        if cacheable:
            with self._lock:
                self._entries[key] = (weakref.ref(X), None if y is None else weakref.ref(y), sx, sy, data)
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return data

    def clear(self) -> None:
        """Forget every remembered array (their prepared forms and device copies)."""
        with self._lock:
            self._entries.clear()


def as_dataset(X: Any, y: Any = None, cache: Optional[DataCache] = None, names: tuple = ("X", "y"),
               n_features: Optional[int] = None) -> Dataset:
    """A Dataset from a Dataset or from arrays (through ``cache`` when given); errors name ``names``."""
    if isinstance(X, Dataset):
        if y is not None:
            raise ValueError(f"{names[1]}: give the targets inside the Dataset (Dataset(X, y)), not separately")
        return X
    try:
        return (cache.get(X, y, n_features) if cache is not None else
                Dataset(X, y, copy=False, n_features=n_features))
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        for old, new in zip(("X", "y"), names):
            if old != new and msg.startswith(old + ":"):
                raise type(exc)(new + msg[len(old):]) from None
        raise
