"""FitResult: what one ``fit`` call did (status, epochs, steps, curves, time, the block trained)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ._tables import brief


@dataclass
class FitResult:
    """What one ``fit`` call did."""

    status: str  # completed | stopped | early_stopped | diverged | gtol | ftol | max_iter | line_search_failed
    optimizer: str
    epochs: int
    steps: int
    loss_curve: list = field(default_factory=list)  # mean training objective per epoch (per iteration: L-BFGS)
    val_curve: list = field(default_factory=list)
    best_epoch: Optional[int] = None
    seconds: float = 0.0
    block: tuple = (0, 0)

    def __repr__(self) -> str:
        return brief("FitResult", status=self.status, optimizer=self.optimizer, epochs=self.epochs, steps=self.steps,
                     final_loss=self.loss_curve[-1] if self.loss_curve else None, best_epoch=self.best_epoch,
                     seconds=self.seconds)
