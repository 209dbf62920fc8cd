"""How the default estimators generalize, beside scikit-learn's MLP defaults in the same run.

5-fold cross-validated score (R² for diabetes, accuracy for breast cancer) of ``SensiNetRegressor()`` /
``SensiNetClassifier()`` and ``MLPRegressor()`` / ``MLPClassifier()`` at their defaults, on the raw features
and behind a ``StandardScaler``, over seeds (each seed: its own folds and ``random_state``). Writes
``docs/results/estimator_defaults/<label>.json`` (per-fold scores, machine, versions) and prints a table.

    python bench/estimator_defaults.py --label after [--seeds 10]
    python bench/estimator_defaults.py --compare before after     # the README's table, from two records
"""
from __future__ import annotations

import argparse
import json
import platform
import warnings
from pathlib import Path

import numpy as np
import sklearn
from scipy.stats import wilcoxon
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sensinet as sn

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "estimator_defaults"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--label", help="record name, e.g. before / after")
    ap.add_argument("--seeds", type=int, default=10, help="number of seeds (folds and random_state)")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="print the table of two records")
    args = ap.parse_args()
    if args.compare:
        print(compare(*(json.loads((OUT / f"{name}.json").read_text()) for name in args.compare)))
        return
    if not args.label:
        ap.error("--label is required to run the benchmark")
    tasks = {"diabetes": (load_diabetes, KFold, MLPRegressor, sn.SensiNetRegressor),
             "breast_cancer": (load_breast_cancer, StratifiedKFold, MLPClassifier, sn.SensiNetClassifier)}
    rows: list = []
    for name, (loader, folds, mlp, ours) in tasks.items():
        X, y = loader(return_X_y=True)
        for scaled in (False, True):
            for seed in range(args.seeds):
                cv = folds(5, shuffle=True, random_state=seed)
                for impl, cls in (("sensinet", ours), ("sklearn", mlp)):
                    est = cls(random_state=seed)
                    model = make_pipeline(StandardScaler(), est) if scaled else est
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        scores = cross_val_score(model, X, y, cv=cv)
                    rows.append(dict(data=name, scaled=scaled, seed=seed, impl=impl, scores=scores.tolist(),
                                     mean=float(scores.mean())))
    record = dict(label=args.label, rows=rows, sensinet=sn.__version__, sklearn=sklearn.__version__,
                  build=sn.build_info(), cpu=platform.processor() or platform.machine(), python=platform.python_version())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.label}.json").write_text(json.dumps(record, indent=1))
    print(table(record))


def table(record: dict) -> str:
    """Markdown: mean (sample SD over seeds) of the 5-fold score, and the paired Wilcoxon p over seeds."""
    lines = ["| data | features | sensinet default | MLP default | sensinet wins | p (paired Wilcoxon) |",
             "|---|---|---|---|---|---|"]
    for data, scaled in sorted({(r["data"], r["scaled"]) for r in record["rows"]}):
        a, b = _means(record, data, scaled, "sensinet"), _means(record, data, scaled, "sklearn")
        p = wilcoxon(a, b).pvalue if np.any(a != b) else 1.0
        lines.append(f"| {data} | {'standardized' if scaled else 'raw'} | {a.mean():.3f} ({a.std(ddof=1):.3f}) | "
                     f"{b.mean():.3f} ({b.std(ddof=1):.3f}) | {int(np.sum(a > b))}/{len(a)} | {p:.2g} |")
    return "\n".join(lines)



def _means(record: dict, data: str, scaled: bool, impl: str) -> np.ndarray:
    return np.array([r["mean"] for r in record["rows"] if (r["data"], r["scaled"], r["impl"]) == (data, scaled, impl)])


def compare(before: dict, after: dict) -> str:
    """Markdown: sensinet's defaults before and after, MLP's in the same runs (mean and sample SD over seeds of
    the 5-fold score), and after against MLP paired by seed."""
    lines = ["| data | features | sensinet before | sensinet after | MLP default | after wins | p (paired Wilcoxon) |",
             "|---|---|---|---|---|---|---|"]
    for data, scaled in sorted({(r["data"], r["scaled"]) for r in after["rows"]}):
        b, a, m = (_means(before, data, scaled, "sensinet"), _means(after, data, scaled, "sensinet"),
                   _means(after, data, scaled, "sklearn"))
        p = wilcoxon(a, m).pvalue if np.any(a != m) else 1.0
        lines.append(f"| {data} | {'standardized' if scaled else 'raw'} | {b.mean():.3f} ({b.std(ddof=1):.3f}) | "
                     f"{a.mean():.3f} ({a.std(ddof=1):.3f}) | {m.mean():.3f} ({m.std(ddof=1):.3f}) | "
                     f"{int(np.sum(a > m))}/{len(a)} | {p:.2g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
