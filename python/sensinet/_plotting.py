"""Figure set-up for every plot in sensinet.

New figures are ``matplotlib.figure.Figure`` objects made without pyplot: a plot never switches the user's
backend, never registers a figure with pyplot (so none leaks in long studies) and draws on the user's axes
when given ``ax``. Every ``plot()`` returns what it drew on; ``ax.figure`` displays it in a notebook.
"""
from __future__ import annotations

import os
from typing import Any, Optional


def have_matplotlib() -> bool:
    """Whether matplotlib is installed (studies then skip their figures and say so)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def figure(figsize: tuple, nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple:
    """(figure, axes) of a new figure with nrows x ncols axes."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib (or sensinet[plot])") from None
    fig = Figure(figsize=figsize, constrained_layout=kw.pop("constrained_layout", True))
    return fig, fig.subplots(nrows, ncols, **kw)


def axes(ax: Any, figsize: tuple) -> tuple:
    """(figure, axes): those of ``ax`` when given, else a new figure's single axes."""
    if ax is not None:
        return ax.figure, ax
    return figure(figsize)


def panels(ax: Any, n: int, figsize: tuple, what: str, stack: str = "row", **kw: Any) -> tuple:
    """(figure, list of n axes): a new figure with n panels; the user's ``ax`` as a sequence of n axes (on any
    figures they like); or one axes of a grid, divided into n panels in its place (as scikit-learn's display
    objects do; it stays as an invisible frame). ``stack``: "row" or "column" of panels; ``what`` names the
    panels for the error when the number is wrong."""
    if ax is None:
        rows, cols = (1, n) if stack == "row" else (n, 1)
        fig, axs = figure(figsize, rows, cols, squeeze=False, **kw)
        return fig, list(axs.ravel())
    try:
        axs = list(ax)
    except TypeError:
        axs = [ax]
    if len(axs) == 1 and n > 1:
        spec = axs[0].get_subplotspec() if hasattr(axs[0], "get_subplotspec") else None
        if spec is None:
            raise ValueError(f"ax: one axes can be divided into {n} panels ({what}) only when it is part of a grid "
                             f"(made by subplots); pass {n} axes instead")
        fig = axs[0].figure
        axs[0].set_axis_off()
        grid = spec.subgridspec(*((1, n) if stack == "row" else (n, 1)))
        return fig, [fig.add_subplot(grid[i]) for i in range(n)]
    if len(axs) != n:
        raise ValueError(f"ax: expected {n} axes ({what}) or one axes to divide, got {len(axs)}")
    return axs[0].figure, axs


def save(fig: Any, path: Optional[Any], dpi: int = 110) -> None:
    """Write ``fig`` to ``path`` (the format from its suffix) when a path is given."""
    if path is not None:
        if isinstance(path, (str, os.PathLike)):
            from ._outputs import check_file

            check_file(path, "path")  # a ValueError naming the path, before matplotlib's OSError
        fig.savefig(path, dpi=dpi)
