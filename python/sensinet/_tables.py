"""Result tables, one way: rows are dicts; CSV keeps every column at full precision, Markdown shows chosen
columns formatted for reading. Keys starting with ``_`` are helpers of a report and never written."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np


def cell(v: Any, floatfmt: str = ".4g") -> str:
    """A value as Markdown shows it: floats to ``floatfmt`` (NaN as "-"), booleans as yes / blank."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else ""
    if isinstance(v, (float, np.floating)):
        return "-" if math.isnan(v) else format(float(v), floatfmt)
    return str(v)


def columns_of(rows: Sequence[dict]) -> list:
    """Every public key of the rows, in first-seen order."""
    return [k for k in dict.fromkeys(k for r in rows for k in r) if not str(k).startswith("_")]


def write_csv(path: Any, rows: Sequence[dict], columns: Optional[Sequence[str]] = None,
              floatfmt: Optional[str] = None) -> None:
    """``rows`` as CSV: every public column (or ``columns``); floats at full precision unless ``floatfmt``."""
    cols = list(columns) if columns is not None else columns_of(rows)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (format(v, floatfmt) if floatfmt and isinstance(v, float) else
                            int(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in r.items() if k in cols})


def markdown(rows: Sequence[dict], columns: Optional[Sequence[Any]] = None, title: str = "",
             floatfmt: str = ".4g") -> str:
    """A Markdown table. ``columns``: keys, or ``(header, key or callable(row) -> str)`` pairs."""
    cols = [c if isinstance(c, tuple) else (c, c) for c in (columns if columns is not None else columns_of(rows))]
    lines = ([f"### {title}", ""] if title else []) + ["| " + " | ".join(str(h) for h, _ in cols) + " |",
                                                          "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(c(r) if callable(c) else cell(r.get(c, ""), floatfmt) for _, c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[dict], path_csv: Optional[Path], path_md: Optional[Path] = None,
                columns: Optional[Sequence[Any]] = None, title: str = "", floatfmt: Optional[str] = None) -> str:
    """CSV (every column) and Markdown (``columns``) of the same rows; returns the Markdown."""
    if not rows:
        return ""
    if path_csv is not None:
        write_csv(path_csv, rows, floatfmt=floatfmt)
    md = markdown(rows, columns, title)
    if path_md is not None:
        Path(path_md).write_text(md)
    return md


def frame(rows: Any, columns: Optional[Sequence[str]] = None) -> Any:
    """A pandas DataFrame of ``rows`` (dicts, or sequences with ``columns``), for every ``to_frame()``."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_frame() needs pandas: pip install pandas (or sensinet[frames])") from None
    return pd.DataFrame(rows, columns=None if columns is None else list(columns))


def brief(name: str, **fields: Any) -> str:
    """A one-line repr: arrays and long lists as their shape or length, floats to 4 digits."""
    def short(v: Any) -> str:
        if isinstance(v, np.ndarray):
            return f"array{v.shape}"
        if isinstance(v, (list, tuple)) and len(v) > 4:
            return f"[{len(v)} items]"
        if isinstance(v, (float, np.floating)):
            return format(float(v), ".4g")
        return repr(v)

    return f"{name}(" + ", ".join(f"{k}={short(v)}" for k, v in fields.items()) + ")"
