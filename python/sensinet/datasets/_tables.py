"""The user's own data: a table (CSV, Parquet) or arrays, checked and turned into a :class:`Dataset`.

Every problem gets a ValueError that names the column: a missing target, missing values, non-numeric or
constant feature columns, a target that is neither clearly a regression nor a classification target.
"""
from __future__ import annotations

import csv
import hashlib
import os
from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from ._loaders import Dataset

TASKS = ("regression", "classification")
_MISSING = {"", "na", "nan", "n/a", "null", "none", "?"}
MAX_LISTED = 8  # columns named in one error message
MAX_INFERRED_CLASSES = 20  # an integer target with more distinct values is taken for a regression target


def _names(cols: Sequence[str]) -> str:
    shown = ", ".join(repr(c) for c in cols[:MAX_LISTED])
    return shown + (f" and {len(cols) - MAX_LISTED} more" if len(cols) > MAX_LISTED else "")


def _read_csv(path: str) -> dict:
    """{column: list of str} of a CSV file with a header row (the csv module: no pandas needed)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise ValueError(f"data: expected a CSV file with a header row and at least one data row, got {len(rows)} "
                         f"row(s) in {path}")
    header = [h.strip() for h in rows[0]]
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ValueError(f"data: column names must be unique, {_names(dup)} appear more than once in {path}")
    bad = [i + 2 for i, r in enumerate(rows[1:]) if len(r) != len(header)]
    if bad:
        raise ValueError(f"data: every row needs {len(header)} fields (the header's), line(s) {bad[:MAX_LISTED]} of "
                         f"{path} have another number")
    return {h: [r[j].strip() for r in rows[1:]] for j, h in enumerate(header)}


def _read_parquet(path: str) -> dict:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("data: reading Parquet needs pandas and pyarrow (pip install pandas pyarrow)") from None
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise ImportError(f"data: reading Parquet needs pyarrow (pip install pyarrow): {exc}") from None
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def _numeric(values: Any) -> tuple:
    """(float64 array with NaN for missing entries, mask of missing, whether every present value is a number)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        out = arr.astype(np.float64)
        return out, np.isnan(out), True
    out = np.empty(len(arr))
    missing = np.zeros(len(arr), bool)
    numeric = True
    for i, v in enumerate(arr):
        if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip().lower() in _MISSING:
            missing[i], out[i] = True, np.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            numeric, out[i] = False, np.nan
    return out, missing, numeric


def _target(name: str, values: Any, task: Optional[str], source: str) -> tuple:
    """(y, task, classes) of the target column."""
    y, missing, numeric = _numeric(values)
    if missing.any():
        raise ValueError(f"target {name!r}: {int(missing.sum())} missing value(s) in {source}; drop those rows first")
    if numeric and not np.isfinite(y).all():
        raise ValueError(f"target {name!r}: expected finite numbers, got infinity in {source}")
    if np.unique(np.asarray(values).astype(str) if not numeric else y).size < 2:
        raise ValueError(f"target {name!r}: every value is the same ({np.asarray(values)[0]!r}); there is nothing "
                         f"to learn (a classification target needs at least 2 classes)")
    if task is None:
        if not numeric or np.asarray(values).dtype.kind == "b":
            task = "classification"
        elif np.any(y != np.round(y)):
            task = "regression"
        elif np.unique(y).size == 2:
            task = "classification"
        elif np.unique(y).size > MAX_INFERRED_CLASSES:
            task = "regression"
        else:
            raise ValueError(f"target {name!r}: holds {np.unique(y).size} distinct integers, which may be a "
                             "regression or a classification target; say which (task='regression' or "
                             "'classification', --task on the command line)")
    if task == "regression":
        if not numeric:
            raise ValueError(f"target {name!r}: task='regression' needs numbers, got non-numeric labels in {source}")
        return y, task, ()
    labels = np.asarray(values).astype(str) if not numeric else (y.astype(np.int64) if np.all(y == np.round(y)) else y)
    classes, codes = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"target {name!r}: a classification target needs at least 2 classes, got only {classes[0]!r}")
    kept = tuple(c.item() if hasattr(c, "item") else c for c in classes)
    return codes.astype(np.int64), task, kept


def _features(columns: dict, source: str) -> tuple:
    """(X, names) of the feature columns; every problem named by column."""
    names = list(columns)
    if not names:
        raise ValueError(f"data: expected at least one feature column besides the target in {source}")
    parsed = {c: _numeric(columns[c]) for c in names}
    text = [c for c in names if not parsed[c][2]]
    if text:
        raise ValueError(f"data: feature column(s) {_names(text)} hold non-numeric values; encode them as numbers "
                         f"(for example one-hot) or drop them ({source})")
    gaps = [f"{c} ({int(parsed[c][1].sum())})" for c in names if parsed[c][1].any()]
    if gaps:
        raise ValueError(f"data: feature column(s) with missing values (count): {_names(gaps)}; impute or drop them "
                         f"({source})")
    X = np.column_stack([parsed[c][0] for c in names]) if names else np.empty((0, 0))
    bad = [c for j, c in enumerate(names) if not np.isfinite(X[:, j]).all()]
    if bad:
        raise ValueError(f"data: feature column(s) {_names(bad)} hold infinite values ({source})")
    const = [c for j, c in enumerate(names) if X.shape[0] > 0 and np.all(X[:, j] == X[0, j])]
    if const:
        raise ValueError(f"data: feature column(s) {_names(const)} are constant and cannot be standardized; drop "
                         f"them ({source})")
    return np.ascontiguousarray(X), tuple(names)


def load_table(path: Any, target: Optional[str] = None, task: Optional[str] = None) -> Dataset:
    """A data set from a file: CSV (with a header row), Parquet (with pandas and pyarrow), or ``.npz``.

    Parameters
    ----------
    path : str or os.PathLike
        ``.csv``, ``.parquet`` / ``.pq``, or ``.npz`` holding arrays ``X`` (n_samples, n_features) and ``y``
        (and optionally ``feature_names``).
    target : str
        The target column of a table (required there; for ``.npz``, ``y`` is the target).
    task : {"regression", "classification"}, optional
        Inferred when unambiguous: text or boolean labels and integer targets with two values are
        classification; non-integer numbers and integer targets with more than 20 distinct values are
        regression; integer targets with 3 to 20 values need it.

    Returns
    -------
    Dataset
        float64 ``X``; ``y`` float64 (regression) or int64 codes of ``classes`` (classification).

    Raises
    ------
    ValueError
        Naming the column: a missing target column, missing values, non-numeric, infinite or constant feature
        columns, an ambiguous task, fewer than 2 classes.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"data: expected a path to a .csv, .parquet or .npz file, got {type(path).__name__}")
    path = os.fspath(path)
    if task is not None and task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS} or None (inferred), got {task!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data: no such file {path!r}")
    ext = os.path.splitext(path)[1].lower()
    name = os.path.splitext(os.path.basename(path))[0]
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z.files or "y" not in z.files:
                raise ValueError(f"data: an .npz file needs arrays 'X' and 'y', {path} has {sorted(z.files)}")
            X, y = z["X"], z["y"]
            names = [str(n) for n in z["feature_names"]] if "feature_names" in z.files else None
        return from_arrays(X, y, name=name, task=task, feature_names=names, target_name=target or "y",
                           source=path)
    if ext == ".csv":
        columns = _read_csv(path)
    elif ext in (".parquet", ".pq"):
        columns = _read_parquet(path)
    else:
        raise ValueError(f"data: expected a .csv, .parquet or .npz file, got {os.path.basename(path)!r}")
    if target is None:
        raise ValueError(f"target: name the target column of {path} (--target), one of {_names(list(columns))}")
    if target not in columns:
        raise ValueError(f"target: no column {target!r} in {path}; the columns are {_names(list(columns))}")
    y, task, classes = _target(target, columns.pop(target), task, path)
    X, names = _features(columns, path)
    return _dataset(X, y, names, target, task, classes, name, path)


def from_arrays(X: Any, y: Any, name: str = "data", task: Optional[str] = None,
                feature_names: Optional[Sequence[str]] = None, target_name: str = "y", source: str = "arrays") -> Dataset:
    """A data set from arrays ``X`` (n_samples, n_features) and ``y`` (n_samples,), checked as :func:`load_table`
    checks a table (columns are named ``x0``, ``x1``, ... unless ``feature_names`` are given)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS} or None (inferred), got {task!r}")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] < 2:
        raise ValueError(f"data: expected X of shape (n_samples, n_features) and y of shape (n_samples,) with "
                         f"n_samples >= 2, got {X.shape} and {y.shape}")
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise ValueError(f"feature_names: expected {X.shape[1]} names, got {len(names)}")
    yv, task, classes = _target(target_name, y, task, source)
    Xv, names = _features({n: X[:, j] for j, n in enumerate(names)}, source)
    return _dataset(Xv, yv, names, target_name, task, classes, name, source)


def _dataset(X: NDArray, y: NDArray, names: tuple, target: str, task: str, classes: tuple, name: str,
             source: str) -> Dataset:
    return Dataset(X, y, names, target, f"{name}: {X.shape[0]} samples from {source}", task, classes)


def data_digest(data: Dataset) -> str:
    """A short digest of a data set's values (identifies it in study records and resumed runs)."""
    return hashlib.sha256(np.ascontiguousarray(data.X).tobytes() + np.ascontiguousarray(data.y).tobytes()
                          + data.task.encode()).hexdigest()[:16]
