"""A dependency-free progress bar on stderr (redrawn at most 10 times a second)."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class ProgressBar:
    def __init__(self, total: int, desc: str = "", stream: Optional[TextIO] = None, width: int = 28) -> None:
        self.total = max(int(total), 1)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.start = time.perf_counter()
        self._last = 0.0
        self.n = 0

    def update(self, n: int, postfix: str = "", force: bool = False) -> None:
        self.n = min(int(n), self.total)
        now = time.perf_counter()
        if not force and now - self._last < 0.1 and self.n < self.total:
            return
        self._last = now
        frac = self.n / self.total
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = now - self.start
        self.stream.write(f"\r{self.desc} [{bar}] {self.n}/{self.total} {elapsed:6.1f}s {postfix}   ")
        self.stream.flush()

    def close(self, postfix: str = "") -> None:
        self.update(self.n, postfix, force=True)
        self.stream.write("\n")
        self.stream.flush()
