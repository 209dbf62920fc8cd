"""Argument checks shared by the public API: clear errors naming the argument, conversion done once."""
from __future__ import annotations

import math
import os
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

LOSSES = ("mse", "cross_entropy", "binary_cross_entropy")


def numeric_array(value: Any, name: str) -> NDArray:
    """``value`` (an array, a list, a pandas object) as a numeric numpy array, without copying when possible."""
    if hasattr(value, "to_numpy") and not isinstance(value, np.ndarray):  # pandas
        value = value.to_numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: could not be converted to an array ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr


def check_samples(arr: NDArray, name: str, n_cols: Optional[int] = None) -> None:
    """A 2-D (n_samples >= 1, n_cols) array, or ValueError naming ``name`` and the shape."""
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features), got shape {arr.shape}. "
                         "Reshape a single feature with X.reshape(-1, 1) or a single sample with X.reshape(1, -1).")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one sample, got shape {arr.shape}")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise ValueError(f"{name}: expected {n_cols} features (columns), got shape {arr.shape}")


def as_matrix(X: Any, name: str, dtype: type, n_cols: Optional[int] = None, allow_1d: bool = False) -> NDArray:
    """Return X as a C-contiguous 2-D array of ``dtype`` (one conversion at most), or raise."""
    arr = numeric_array(X, name)
    if arr.ndim == 1 and allow_1d:
        arr = arr.reshape(-1, 1)
    check_samples(arr, name, n_cols)
    src = arr
    with np.errstate(over="ignore", invalid="ignore"):  # overflow of the cast is reported below, by name
        arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        if src.dtype.kind == "f" and np.isfinite(src).all():
            raise ValueError(f"{name}: values up to {np.max(np.abs(src)):.3g} overflow {np.dtype(dtype).name} "
                             f"(largest finite {np.finfo(dtype).max:.3g}); rescale the data")
        raise ValueError(f"{name}: contains NaN or infinity")
    return arr


def targets(y: Any, loss: str, n_outputs: int, n_samples: int, dtype: type, name: str = "y") -> NDArray:
    """Targets as the (n, n_outputs) matrix the engine's head expects.

    mse: values; cross_entropy: integer class labels in [0, n_outputs) (one-hot encoded here) or rows of
    class probabilities; binary_cross_entropy: 0/1 labels (or probabilities) per output.
    """
    arr = numeric_array(y, name)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name}: expected a 1-D or 2-D array, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name}: expected {n_samples} rows (one per sample of X), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    if loss == "cross_entropy" and arr.ndim == 1:
        if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: expected integer class labels for cross_entropy, got non-integer values")
        labels = arr.astype(np.int64)
        if labels.min() < 0 or labels.max() >= n_outputs:
            raise ValueError(f"{name}: expected class labels in [0, {n_outputs}) for a {n_outputs}-logit head, "
                             f"got values in [{labels.min()}, {labels.max()}]")
        out = np.zeros((n_samples, n_outputs), dtype=dtype)
        out[np.arange(n_samples), labels] = 1
        return out
    mat = arr.reshape(n_samples, -1) if arr.ndim == 1 else arr
    if mat.shape[1] != n_outputs:
        raise ValueError(f"{name}: expected {n_outputs} target column(s) for a {n_outputs}-output network, "
                         f"got shape {arr.shape}")
    if loss != "mse" and (mat.min() < 0 or mat.max() > 1):
        raise ValueError(f"{name}: expected labels or probabilities in [0, 1] for {loss}, got values in "
                         f"[{mat.min()}, {mat.max()}]")
    if loss == "cross_entropy":  # rows of class probabilities: each sums to 1
        sums = mat.sum(axis=1, dtype=np.float64)
        bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6 * max(1, n_outputs))
        if bad.size:
            raise ValueError(f"{name}: expected rows of class probabilities summing to 1 for cross_entropy (or "
                             f"integer labels), got row {bad[0]} summing to {sums[bad[0]]:.6g} ({bad.size} such rows)")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(mat, dtype=dtype)
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: values up to {float(np.max(np.abs(mat))):.3g} overflow {np.dtype(dtype).name} "
                         f"(largest finite {np.finfo(dtype).max:.3g}); rescale the targets")
    return out


def check_choice(value: Any, name: str, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return value


def check_positive(value: Any, name: str, integer: bool = False, allow_zero: bool = False) -> Any:
    kind = "an int" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer) if integer else (int, float, np.number)):
        raise TypeError(f"{name}: expected {kind}, got {type(value).__name__}")
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not np.isfinite(value):
        raise ValueError(f"{name}: expected {kind} {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return int(value) if integer else float(value)


def check_number(value: Any, name: str, lo: float = 0.0, hi: float = np.inf, open_lo: bool = False,
                 none_ok: bool = False, open_hi: bool = False) -> Any:
    """A finite real in [lo, hi] (open at either end on request), or None when ``none_ok``; ValueError naming
    ``name`` otherwise."""
    if value is None and none_ok:
        return None
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
          and np.isfinite(float(value)))
    if ok:
        v = float(value)
        ok = (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
    if not ok:
        interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{']' if np.isfinite(hi) and not open_hi else ')'}"
        raise ValueError(f"{name}: expected a finite number in {interval}{' or None' if none_ok else ''}, got {value!r}")
    return float(value)


class InvalidArgument(ValueError, TypeError):
    """A bad argument: both a ValueError and a TypeError (as scikit-learn's InvalidParameterError), so either
    handler catches it."""


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgument(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


MAX_COUNT = 2**62  # counts (epochs, steps, sizes) beyond this cannot be meant and would overflow the engine


def check_count(value: Any, name: str, low: int = 0, none_ok: bool = False) -> Any:
    """An int in [low, 2**62] (or None when ``none_ok``); ValueError naming ``name`` otherwise."""
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= MAX_COUNT:
        extra = " or None" if none_ok else ""
        raise ValueError(f"{name}: expected an int in [{low}, 2**62]{extra}, got {value!r}")
    return int(value)


def check_size(n_params: int, itemsize: int, what: str) -> None:
    """MemoryError naming the size when ``n_params`` values cannot fit this machine's memory."""
    need = n_params * itemsize
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: let the allocation decide
        total = None
    if n_params > MAX_COUNT or (total is not None and need > total):
        have = "" if total is None else f", more than this machine's {total / 2**30:.1f} GiB"
        raise MemoryError(f"{what}: {n_params:,} parameters need {need / 2**30:,.1f} GiB{have}")


def resolve_dtype(dtype: Any) -> type:
    """float64 or float32 from a dtype, its name or type; TypeError naming ``dtype`` otherwise (None too, which
    numpy would read as float64)."""
    if dtype is None:
        raise TypeError("dtype: expected float64 or float32, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected float64 or float32, got {dtype!r}") from None
    if dt == np.float64:
        return np.float64
    if dt == np.float32:
        return np.float32
    raise TypeError(f"dtype: expected float64 or float32, got {dt}")


def sample_weights(w: Any, n: int, dtype: Any) -> NDArray:
    """Sample weights as a contiguous (n,) array in ``dtype``: finite, >= 0, with a positive sum."""
    a = numeric_array(w, "sample_weight")
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"sample_weight: expected shape ({n},) (one weight per sample), got {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        bad = int(np.flatnonzero(~np.isfinite(a) | (a < 0))[0])
        raise ValueError(f"sample_weight: expected finite weights >= 0, got {a[bad]!r} at index {bad}")
    a = np.asarray(a, dtype=np.float64)
    top = float(np.max(a)) if a.size else 0.0
    if not top > 0:
        raise ValueError("sample_weight: expected a positive sum of weights, got all zeros")
    # Only ratios of weights matter (each loss is their weighted mean), so weights whose sums could overflow the
    # network's dtype are scaled by a power of two, which is exact: every sum the engine forms stays finite.
    limit = math.floor(math.log2(float(np.finfo(dtype).max))) - 2
    excess = math.ceil(math.log2(n) + math.log2(top)) - limit
    if excess > 0:
        a = np.ldexp(a, -excess)
    return np.ascontiguousarray(a, dtype=dtype)


def trainable_mask(mask: Any, n_params: int, block: slice, dtype: Any) -> NDArray:
    """``fit``'s trainable mask checked (bool, one entry per parameter, some True in the trained ``block``) and
    given to the engine as 0/1 in ``dtype``."""
    a = np.asarray(mask)
    if a.dtype != np.bool_:
        raise TypeError(f"trainable: expected a bool array, got dtype {a.dtype}")
    if a.shape != (n_params,):
        raise ValueError(f"trainable: expected shape ({n_params},), one entry per parameter, got {a.shape}")
    if not a[block].any():
        raise ValueError(f"trainable: no parameter of the trained layers (entries {block.start}..{block.stop - 1}) "
                         "is True")
    return np.ascontiguousarray(a, dtype=dtype)


def check_callback(callback: Any) -> None:
    """A callable that takes one argument (the progress dict), or TypeError saying what it is."""
    import inspect

    if not callable(callback):
        raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
    try:
        inspect.signature(callback).bind({})
    except TypeError:
        raise TypeError("callback: expected a callable taking one argument (a dict of the progress), got one "
                        "that cannot be called with one") from None
    except ValueError:  # builtins without a signature: called as they are
        pass
