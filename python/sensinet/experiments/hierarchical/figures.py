"""The study's figures: J against work per start, and time to target against depth."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._plotting import figure, save


def _median_curve(curves: list, grid: np.ndarray) -> tuple:
    vals = []
    for c in curves:
        w = np.array([p[0] for p in c])
        J = np.array([p[1] for p in c])
        # log J interpolated linearly in the work between the recorded points (held after the last one)
        vals.append(np.exp(np.interp(grid, w, np.log(np.maximum(J, 1e-300)))))
    V = np.array(vals)
    return np.nanmedian(V, axis=0), np.nanmin(V, axis=0), np.nanmax(V, axis=0)


def plot_curves(pairs: list, path: Path, title: str) -> None:
    from matplotlib import colormaps

    fig, axes = figure((12, 4.2), 1, 2)
    budget = max(p["hier"]["budget"] for p in pairs)
    grid = np.linspace(0, budget, 200)
    ax = axes[0]
    for name, key, color in (("hierarchical", "hier", "C0"), ("backprop", "bp", "C1")):
        curves = [p[key]["curve"] for p in pairs if p[key] is not None and p[key]["curve"]]
        if not curves:
            continue
        med, lo, hi = _median_curve(curves, grid)
        ax.plot(grid, med, color=color, label=f"{name} (median of {len(curves)} starts)")
        ax.fill_between(grid, lo, hi, color=color, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("work (full-gradient equivalents)")
    ax.set_ylabel("training MSE J (standardized)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    # one start in detail, blocks marked
    ax = axes[1]
    p = pairs[0]
    if p["bp"] is not None:
        c = p["bp"]["curve"]
        ax.plot([q[0] for q in c], [q[1] for q in c], color="C1", label="backprop")
    c = p["hier"]["curve"]
    ax.plot([q[0] for q in c], [q[1] for q in c], color="0.6", lw=1)
    steps = p["hier"].get("steps", [])
    blocks = sorted({(s[2], s[3]) for s in steps})
    cmap = colormaps["viridis"].resampled(max(len(blocks), 2))
    for k, b in enumerate(blocks):
        pts = [s for s in steps if (s[2], s[3]) == b]
        ax.scatter([s[0] for s in pts], [s[1] for s in pts], s=16, color=cmap(k),
                   edgecolors=["k" if s[4] else "none" for s in pts],
                   label=f"layers {b[0]}-{b[1]}" if b[0] != b[1] else f"layer {b[0]}")
    ax.set_yscale("log")
    ax.set_xlabel("work (full-gradient equivalents)")
    ax.set_title(f"start {p['hier']['start']}: trained block per outer iteration (black edge: random)")
    ax.legend(fontsize=7, ncol=2)
    save(fig, path, dpi=100)


def plot_depth(rows: list, path: Path) -> None:
    fig, axes = figure((11, 4), 1, 2)
    for width, ls in zip(sorted({r["width"] for r in rows}), ("-", "--", ":")):
        rs = sorted([r for r in rows if r["width"] == width], key=lambda r: r["depth"])
        d = [r["depth"] for r in rs]
        for key, color, name in (("hier", "C0", "hierarchical"), ("bp", "C1", "backprop")):
            axes[0].plot(d, [r[f"{key}_time_to_target"] for r in rs], ls, color=color, marker="o",
                         label=f"{name}, width {width}")
            axes[1].plot(d, [r[f"{key}_work_to_target"] for r in rs], ls, color=color, marker="o",
                         label=f"{name}, width {width}")
    for ax, lab in zip(axes, ("median seconds to target J", "median work to target J")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden layers")
        ax.set_ylabel(lab)
        ax.legend(fontsize=7)
    axes[0].set_title("paired target: the larger of the two best J of a start")
    save(fig, path, dpi=100)
