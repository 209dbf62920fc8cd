"""The trace of a hierarchical run: one record per outer iteration, the curve, and its figure."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .._plotting import axes, save
from .._tables import brief, frame


@dataclass
class OuterStep:
    """One outer iteration of the hierarchical optimizer."""

    iteration: int
    sites: tuple  # (lo, hi) sensitivity layers chosen
    block: tuple  # (first, last) network layers trained
    score: float
    rule: str  # first_order | second_order | root (no descent)
    random: bool
    max_abs_g: float
    J_before: float
    J: float
    work: float  # cumulative
    seconds: float  # cumulative wall time
    inner_status: str = ""
    accepted: bool = True
    neurons: Optional[tuple] = None  # (lo, hi) neurons of the chosen layer (neuron level), else None (all)


@dataclass
class HierarchicalResult:
    """Trace of one :meth:`HierarchicalOptimizer.run`.

    ``status``: ``budget`` (work budget spent), ``tol`` (``max |g| < tol``), ``stall`` (J stalled), ``max_outer``,
    ``early_stopped`` (validation patience), ``stopped`` (callback), ``diverged``.
    ``curve``: ``(work, J, seconds)`` at the start, after every outer iteration and after the polish.
    ``seconds`` (here and in the curve) leave out the evaluations of J for the trace, which take
    ``monitor_seconds`` in all (the work model does not count them either).
    """

    status: str
    J0: float
    J: float
    work: float
    seconds: float
    steps: list = field(default_factory=list)
    curve: list = field(default_factory=list)
    val_curve: list = field(default_factory=list)
    polish_work: float = 0.0
    monitor_seconds: float = 0.0
    config: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return brief("HierarchicalResult", status=self.status, n_outer=self.n_outer, J0=self.J0, J=self.J,
                     work=self.work, seconds=self.seconds)

    @property
    def n_outer(self) -> int:
        """Number of outer iterations (block choices) the run made."""
        return len(self.steps)

    def block_counts(self) -> dict:
        """How often each network block ``(first, last)`` was trained."""
        out: dict = {}
        for s in self.steps:
            out[s.block] = out.get(s.block, 0) + 1
        return dict(sorted(out.items()))

    def neuron_counts(self) -> dict:
        """How often each neuron group ``(site, lo, hi)`` was trained (neuron level; empty at the layer level)."""
        out: dict = {}
        for s in self.steps:
            if s.neurons is not None:
                k = (s.sites[0], *s.neurons)
                out[k] = out.get(k, 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict:
        """The result as a dict of plain Python values, ready for ``json.dumps``."""
        d = asdict(self)
        for s in d["steps"]:
            s["sites"], s["block"] = list(s["sites"]), list(s["block"])
            s["neurons"] = None if s["neurons"] is None else list(s["neurons"])
        return d

    def to_frame(self):
        """The trace as a pandas DataFrame, one row per outer iteration (pandas needed)."""
        rows = [asdict(s) for s in self.steps]
        for r in rows:
            r["first"], r["last"] = r.pop("block")
            r["site_lo"], r["site_hi"] = r.pop("sites")
            r["neuron_lo"], r["neuron_hi"] = r.pop("neurons") or (None, None)
        return frame(rows)

    def plot(self, path: Optional[str] = None, ax: Any = None, title: Optional[str] = None):
        """J against cumulative work (log scale), each outer iteration marked by the colour of its block. Draws on
        ``ax`` or a new figure (the backend is left alone), saves to ``path``, returns the axes."""
        from matplotlib import colormaps

        fig, ax = axes(ax, (7, 4))
        w = [c[0] for c in self.curve]
        J = [c[1] for c in self.curve]
        ax.plot(w, J, "-", color="0.6", lw=1, zorder=1)
        blocks = sorted({s.block for s in self.steps})
        cmap = colormaps["viridis"].resampled(max(len(blocks), 2))
        for k, b in enumerate(blocks):
            pts = [(s.work, s.J) for s in self.steps if s.block == b]
            rnd = [s.random for s in self.steps if s.block == b]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color=cmap(k), zorder=2,
                       label=f"layers {b[0]}-{b[1]}" if b[0] != b[1] else f"layer {b[0]}",
                       edgecolors=["k" if r else "none" for r in rnd])
        if self.polish_work > 0:
            ax.plot(w[-1], J[-1], "r*", ms=10, label="after polish", zorder=3)
        ax.set_xlabel("work (full-gradient equivalents)")
        ax.set_ylabel("training objective J")
        if min(J) > 0:
            ax.set_yscale("log")
        ax.set_title(title or f"hierarchical: {self.n_outer} outer iterations, status {self.status}")
        ax.legend(fontsize=7, ncol=2, title="trained block (black edge: random pick)", title_fontsize=7)
        save(fig, path)
        return ax
