"""Shared by the examples: the command line (--quick, --out) and the standardized concrete data."""
import argparse
from pathlib import Path

from sensinet.datasets import Standardizer, load_concrete, train_test_split


def options(doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true", help="a few epochs only (CI runs every example so)")
    parser.add_argument("--out", type=Path, default=Path("sensinet_results/examples"), help="folder for figures")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.quick:  # a few epochs cannot converge, and saying so on every run is noise
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        warnings.filterwarnings("ignore", category=ConvergenceWarning)
    return args


def concrete(seed: int = 0) -> tuple:
    """Concrete compressive strength (1030 x 8), 90/10 split, inputs and target standardized."""
    d = load_concrete()
    X_tr, X_te, y_tr, y_te = train_test_split(d.X, d.y, test_size=0.1, seed=seed)
    xs, ys = Standardizer().fit(X_tr), Standardizer().fit(y_tr)
    return xs.transform(X_tr), xs.transform(X_te), ys.transform(y_tr), ys.transform(y_te), d.feature_names
