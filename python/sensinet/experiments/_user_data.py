"""The user's data sets in the studies: the command-line options (``--data PATH ... --target NAME --task``)
and the names under which the data sets enter a study's tables."""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Optional

from ..datasets import Dataset, from_arrays, load_table


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--target``, ``--task``: the same in every study."""
    parser.add_argument("--data", nargs="+", type=Path, default=None, metavar="PATH",
                        help="run on your own data: .csv, .parquet or .npz files (X and y arrays)")
    parser.add_argument("--target", default=None, metavar="NAME", help="the target column of the --data tables")
    parser.add_argument("--task", choices=("regression", "classification"), default=None,
                        help="the kind of target (inferred when unambiguous)")


def data_from_arguments(args: argparse.Namespace) -> Optional[list]:
    """The data sets named by ``--data`` (None without it); a bad file is a ValueError naming it and the column."""
    if getattr(args, "data", None) is None:
        if getattr(args, "target", None) is not None:
            raise ValueError("--target: names the target column of --data files, but no --data was given")
        return None
    return [load_table(p, args.target, args.task) for p in args.data]


def _safe(name: str) -> str:
    """A name usable in file names and tables."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "data"


def user_datasets(data: Any, task: Optional[str] = None, why: str = "") -> dict:
    """{name: Dataset} of the user's data: a Dataset, an ``(X, y)`` pair, or a list of them (None: {}).
    Names come from the file names (``data0``, ``data1``, ... for arrays) and are made unique. ``task``: the
    kind of target the study needs (a ValueError says ``why`` otherwise)."""
    if data is None:
        return {}
    items = [data] if isinstance(data, (Dataset, tuple)) else list(data)
    out: dict = {}
    for i, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2:
            item = from_arrays(item[0], item[1], name=f"data{i}")
        if not isinstance(item, Dataset):
            raise TypeError(f"data: expected a sensinet.datasets.Dataset or an (X, y) pair, got {type(item).__name__}")
        if task is not None and item.task != task:
            raise ValueError(f"data: {why}; {item.description} is a {item.task} data set")
        name = _safe(item.description.split(":", 1)[0])
        base, k = name, 2
        while name in out:
            name, k = f"{base}_{k}", k + 1
        out[name] = item
    return out


def standardized_split(d: Dataset, test_size: float, seed: int) -> tuple:
    """(X_train, X_test, y_train, y_test) of a user data set: a seeded split, the inputs standardized on the
    training part, and a regression target too (classification targets stay class codes)."""
    from ..datasets import Standardizer, train_test_split

    X_tr, X_te, y_tr, y_te = train_test_split(d.X, d.y, test_size=test_size, seed=seed)
    xs = Standardizer().fit(X_tr)  # (a column constant on the training part keeps scale 1)
    if d.task == "regression":
        ys = Standardizer().fit(y_tr)
        y_tr, y_te = ys.transform(y_tr), ys.transform(y_te)
    return xs.transform(X_tr), xs.transform(X_te), y_tr, y_te
