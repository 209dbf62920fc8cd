"""`sensinet demo`: each capability on embedded real data, in a few minutes."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from .datasets import Standardizer, load_uci, train_test_split
from .io import save
from .layers import Dense
from .network import Network


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.ravel(a) - np.ravel(b)) ** 2)))


def section_training(out: Path, dataset: str = "concrete", epochs: int = 400, seed: int = 0) -> dict:
    """Train a sensinet network and a scikit-learn MLPRegressor on the same standardized 90/10 split."""
    data = load_uci(dataset)
    X_tr, X_te, y_tr, y_te = train_test_split(data.X, data.y, test_size=0.1, seed=seed)
    xs, ys = Standardizer().fit(X_tr), Standardizer().fit(y_tr)
    Xtr, Xte, ytr = xs.transform(X_tr), xs.transform(X_te), ys.transform(y_tr)
    print(f"\n== Training: {dataset} ({data.n_samples} samples, {data.n_features} features), "
          f"90/10 split, RMSE in {data.target_name}")
    rows = []
    net = Network(data.n_features, [Dense(64, "relu"), Dense(64, "relu"), Dense(1)], seed=seed)
    t0 = time.perf_counter()
    net.fit(Xtr, ytr, optimizer="adam", lr=1e-3, epochs=epochs, batch_size=32, seed=seed, progress=True)
    t_sn = time.perf_counter() - t0
    pred = lambda X: ys.inverse_transform(net.predict(X).ravel())  # noqa: E731
    rows.append(("sensinet 64-64 relu, Adam", _rmse(pred(Xtr), y_tr), _rmse(pred(Xte), y_te), t_sn))
    try:
        from sklearn.neural_network import MLPRegressor
    except ImportError:
        print("(scikit-learn is not installed: pip install scikit-learn for the side-by-side comparison)")
    else:
        import warnings

        mlp = MLPRegressor(hidden_layer_sizes=(64, 64), learning_rate_init=1e-3, batch_size=32, max_iter=epochs,
                           alpha=0.0, random_state=seed, tol=0.0, n_iter_no_change=epochs)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlp.fit(Xtr, ytr)
        t_sk = time.perf_counter() - t0
        skp = lambda X: ys.inverse_transform(mlp.predict(X))  # noqa: E731
        rows.append(("scikit-learn MLPRegressor 64-64", _rmse(skp(Xtr), y_tr), _rmse(skp(Xte), y_te), t_sk))
    print(f"{'model':34s} {'train RMSE':>10s} {'test RMSE':>10s} {'seconds':>8s}")
    for name, tr, te, sec in rows:
        print(f"{name:34s} {tr:10.3f} {te:10.3f} {sec:8.2f}")
    if len(rows) == 2:  # time and error side by side: one split and seed compares initialisations, not methods
        (_, _, te_sn, t_sn), (_, _, te_sk, t_sk) = rows
        print(f"the same {epochs} epochs of Adam on batches of 32: sensinet took {t_sn:.2f} s, scikit-learn "
              f"{t_sk:.2f} s ({t_sk / t_sn:.1f}x the time); test RMSE {te_sn:.2f} against {te_sk:.2f}. One split "
              "and one seed: the two train the same model the same way, so the RMSE gap is the initialisation "
              "and shuffling, not the implementation")
    save(net, out / "demo_network.npz")
    print(f"saved the trained network to {out / 'demo_network.npz'}")
    return {"network": net, "rows": rows, "X": Xtr}


def section_sensitivity(out: Path, network=None, X=None, dataset: str = "concrete", seed: int = 0) -> dict:
    """Output sensitivities of the trained network's neurons (scaling factors, Zhang et al. 2023)."""
    from .sensitivity import sensitivity

    data = load_uci(dataset)
    if X is None:
        X = Standardizer().fit(data.X).transform(data.X)
    if network is None:
        network = Network(data.n_features, [Dense(64, "relu"), Dense(64, "relu"), Dense(1)], seed=seed)
        network.fit(X, Standardizer().fit(data.y).transform(data.y), epochs=100, seed=seed)
    t0 = time.perf_counter()
    res = sensitivity(network, X)
    secs = time.perf_counter() - t0
    print(f"\n== Neuron sensitivity (scaling factors, mean |d yhat / d s| over {len(X)} samples, "
          f"reverse mode, {secs * 1e3:.1f} ms)")
    imp = res.layer_importance()
    print("layer importance: " + ", ".join(f"{s.name}={v:.2f}" for s, v in zip(res.sites, imp))
          + "   (layer 0 = inputs)")
    ranked = res.ranked()
    for title, rows in (("top inputs", [r for r in ranked if r[0] == "0"][:4]),
                        ("top hidden neurons", [r for r in ranked if r[0] != "0"][:5])):
        print(f"{title}:")
        for name, j, score, rel in rows:
            label = data.feature_names[j] if name == "0" else f"neuron {j}"
            print(f"  layer {name:>3s} {label:28s} sensitivity {score:.4f}  importance {rel:.2f}")
    try:
        res.plot(str(out / "sensitivity.png"))
        print(f"figure: {out / 'sensitivity.png'}")
    except ImportError:
        print("(matplotlib is not installed: pip install matplotlib for the figure)")
    return {"result": res}


def section_insertion(out: Path) -> dict:
    """The layer-insertion section of the demo (one run on the spirals)."""
    from .experiments.insertion import demo_section

    return demo_section(out)


def section_hierarchical(out: Path) -> dict:
    """The hierarchical-optimization section of the demo (a few starts against backprop)."""
    from .experiments.hierarchical import demo_section

    return {"rows": demo_section(out)}


def section_clusters(out: Path) -> dict:
    """The ReLU-cluster section of the demo (the Titanic table and figure)."""
    from .experiments.clusters import demo_section

    return demo_section(out)


SECTIONS: dict = {"training": section_training, "sensitivity": section_sensitivity,
                  "hierarchical": section_hierarchical, "insertion": section_insertion,
                  "clusters": section_clusters}


def run_demo(out: Path, sections: list | None = None, quick: bool = False) -> None:
    """Run the demo's sections (all, or those named) and write figures and models into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    chosen = sections or list(SECTIONS)
    for name in chosen:
        if name not in SECTIONS:
            raise ValueError(f"section: expected one of {tuple(SECTIONS)}, got {name!r}")
    t0 = time.perf_counter()
    shared: dict = {}
    for name in chosen:
        fn: Callable = SECTIONS[name]
        kwargs = {"epochs": 60} if quick and name == "training" else {}
        if name == "sensitivity" and "network" in shared:
            kwargs.update(network=shared["network"], X=shared["X"])
        result = fn(out, **kwargs) or {}
        if name == "training":
            shared.update(network=result["network"], X=result["X"])
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s; outputs in {out}/")
