"""A dependency-free progress bar on stderr: a live bar on a terminal (redrawn at most 10 times a second),
and plain lines every ``every`` seconds when the output goes to a file or a pipe, so logs hold no ``\\r``
frames."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class ProgressBar:
    def __init__(self, total: int, desc: str = "", stream: Optional[TextIO] = None, width: int = 28,
                 every: float = 30.0) -> None:
        self.total = max(int(total), 1)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.every = float(every)
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty()) if callable(isatty) else False
        self.start = time.perf_counter()
        self._last = -float("inf") if not self.live else 0.0
        self.n = 0

    def update(self, n: int, postfix: str = "", force: bool = False) -> None:
        self.n = min(int(n), self.total)
        now = time.perf_counter()
        elapsed = now - self.start
        if self.live:
            if not force and now - self._last < 0.1 and self.n < self.total:
                return
            self._last = now
            filled = int(round(self.n / self.total * self.width))
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{self.desc} [{bar}] {self.n}/{self.total} {elapsed:6.1f}s {postfix}   ")
        else:
            if not force and now - self._last < self.every:
                return
            self._last = now
            self.stream.write(f"{self.desc}: {self.n}/{self.total} ({self.n / self.total:.0%}) after "
                              f"{elapsed:.1f} s {postfix}".rstrip() + "\n")
        self.stream.flush()

    def close(self, postfix: str = "") -> None:
        if self.live:
            self.update(self.n, postfix, force=True)
            self.stream.write("\n")
            self.stream.flush()
        else:
            self.update(self.n, postfix or "done", force=True)
