"""Every plot leaves the user's matplotlib backend and pyplot state alone, draws on a given ``ax``, and saves
to a path."""
import numpy as np
import pytest

import sensinet as sn

matplotlib = pytest.importorskip("matplotlib")


def _problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    net = sn.Network(3, [sn.Dense(8, "relu"), sn.Dense(6, "relu"), sn.Dense(2)], loss="cross_entropy", seed=0)
    net.fit(X, y, epochs=5)
    return net, X, y


def _figures(net, X, y, tmp_path):
    """(name, call(path, ax)) for every plot; ax None means the plot makes its own figure."""
    rc = sn.ReluClusters(net).fit(X)
    merged = rc.merge(3)
    hist = sn.LayerInsertion(at_epochs=[2]).fit(net.copy(), X, y, epochs=4)[1]
    hres = sn.HierarchicalOptimizer(budget=3, random_state=0).run(net.copy(), X, y)
    curve = sn.pruning_curve(net, X, y, fractions=[0.5], criteria=["magnitude"])
    return [
        ("sensitivity", lambda p, ax: sn.sensitivity(net, X).plot(p)),
        ("insertion", lambda p, ax: hist.plot(p)),
        ("hierarchical", lambda p, ax: hres.plot(p, ax=ax)),
        ("pruning", lambda p, ax: curve.plot(p, ax=ax)),
        ("clusters", lambda p, ax: rc.plot(p)),
        ("explanation", lambda p, ax: rc.explain(X[0]).plot(ax=ax, path=p)),
        ("fidelity", lambda p, ax: merged.fidelity_curve([1, 2, 3]).plot(ax=ax, path=p)),
    ]


def test_plots_keep_the_backend_and_leak_no_figures(tmp_path):
    import matplotlib.pyplot as plt

    matplotlib.use("pdf", force=True)  # a backend no plot would pick for itself
    plt.close("all")
    net, X, y = _problem()
    for name, call in _figures(net, X, y, tmp_path):
        path = tmp_path / f"{name}.png"
        call(path, None)
        assert path.stat().st_size > 1000, name
        assert matplotlib.get_backend() == "pdf", name
        assert plt.get_fignums() == [], name


def test_multi_panel_plots_draw_on_given_axes(tmp_path):
    from matplotlib.figure import Figure

    net, X, y = _problem()
    fig = Figure()
    axs = fig.subplots(1, 3)
    assert sn.ReluClusters(net).fit(X).plot(ax=axs) is fig
    assert all(a.has_data() or a.images for a in axs)
    res = sn.sensitivity(net, X, sites=[0, 1])
    axs = Figure().subplots(1, 3)
    res.plot(ax=axs, feature_names=["a", "b", "c"])
    assert [t.get_text() for t in axs[0].get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="ax: expected 3 axes"):
        res.plot(ax=axs[:2])
    # one axes of a grid is divided into the panels in its place, as scikit-learn's displays do
    fig = Figure()
    one, other = fig.subplots(1, 2)
    assert res.plot(ax=one) is fig
    drawn = [a for a in fig.axes if a not in (one, other) and a.get_label() != "<colorbar>"]
    assert len(drawn) == 3 and all(a.images or a.has_data() for a in drawn) and not one.axison
    assert all(a.get_position().x1 <= other.get_position().x0 + 1e-9 for a in drawn)  # inside one's place
    assert sn.ReluClusters(net).fit(X).plot(ax=Figure().add_subplot()) is not None
    from matplotlib.axes import Axes

    with pytest.raises(ValueError, match="only when it is part of a grid"):
        res.plot(ax=Axes(Figure(), (0, 0, 1, 1)))
    with pytest.raises(ValueError, match="feature_names: expected 3 names"):
        res.plot(ax=Figure().subplots(1, 3), feature_names=["a"])
    hist = sn.LayerInsertion(at_epochs=[2]).fit(net.copy(), X, y, epochs=4, validation_data=(X, y))[1]
    base = sn.LayerInsertion(at_epochs=[]).fit(net.copy(), X, y, epochs=4, validation_data=(X, y))[1]
    axs = Figure().subplots(1, 3)
    hist.plot(ax=axs, baseline=base)
    assert axs[2].get_ylabel() == "validation error" and len(axs[0].get_lines()) >= 2


def test_plots_draw_on_the_given_axes(tmp_path):
    from matplotlib.figure import Figure

    net, X, y = _problem()
    for name, call in _figures(net, X, y, tmp_path):
        if name in ("sensitivity", "insertion", "clusters"):  # multi-panel figures
            continue
        ax = Figure().add_subplot()
        assert call(None, ax) is ax, name
        assert ax.has_data() and ax.get_xlabel(), name
