"""Process-wide settings: the default number of threads of the engine's kernels."""
from __future__ import annotations

import os
from typing import Optional

_n_threads = max(1, int(os.environ.get("SENSINET_NUM_THREADS", "1") or 1))


def set_num_threads(n: int) -> None:
    """Default number of threads for the engine's kernels (GEMM through OpenMP); 1 unless set.

    One thread gives bitwise reproducible results; more threads pay off for wide layers and large batches.
    The environment variable ``SENSINET_NUM_THREADS`` sets the initial value.
    """
    global _n_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n_threads: expected an int >= 1, got {n!r}")
    _n_threads = n


def get_num_threads() -> int:
    return _n_threads


def resolve_threads(n: Optional[int]) -> int:
    if n is None:
        return _n_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n_threads: expected an int >= 1 or None, got {n!r}")
    return n
