"""Process-wide settings: the default number of threads of the engine's kernels.

The default applies to calls that do not pass ``n_threads``; each call hands its count to the engine,
which keeps it per calling thread, so Python threads running sensinet with different counts do not
interfere (see the README's threading model)."""
from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

MAX_THREADS = 1024  # far above any machine's cores; larger counts are mistakes, not configurations


def _check(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"{name}: expected an int between 1 and {MAX_THREADS}, got {type(n).__name__} {n!r}")
    n = int(n)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"{name}: expected an int between 1 and {MAX_THREADS}, got {n}")
    return n


def _from_environment() -> int:
    text = os.environ.get("SENSINET_NUM_THREADS", "").strip()
    if not text:
        return 1
    try:
        return _check(int(text), "SENSINET_NUM_THREADS")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"SENSINET_NUM_THREADS: expected an int between 1 and {MAX_THREADS}, got {text!r}") from exc


_n_threads = _from_environment()


def set_num_threads(n: int) -> None:
    """Default number of threads for the engine's kernels (GEMM through OpenMP); 1 unless set.

    One thread gives bitwise reproducible results; more threads pay off for wide layers and large batches.
    The environment variable ``SENSINET_NUM_THREADS`` sets the initial value.
    """
    global _n_threads
    _n_threads = _check(n, "n_threads")


def get_num_threads() -> int:
    return _n_threads


def resolve_threads(n: Optional[int]) -> int:
    """The thread count of one call: ``n``, or the process default when None."""
    return _n_threads if n is None else _check(n, "n_threads")
