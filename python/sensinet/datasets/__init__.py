"""Datasets for sensinet: bundled real data, seeded synthetic problems, and
the helpers for the repeated 90/10 standardized-split protocol.

Real data (bundled with the package; provenance in ``data/PROVENANCE.md``)
    load_concrete, load_energy, load_yacht, load_power_plant, load_uci
        UCI regression benchmarks.
    load_titanic
        Titanic survival, seven integer-coded features.

The user's own data
    load_table, from_arrays
        A CSV / Parquet / .npz file or arrays, checked column by column.

Synthetic data
    make_spirals
        Two-spirals binary classification.
    make_regression_function
        Known regression functions (see REGRESSION_FUNCTIONS).

Protocol helpers
    train_test_split
        Seeded random split into training and test sets.
    Standardizer
        Per-column standardization, with an inverse for reporting errors on
        the original scale.

Only numpy is required. pandas is used only by :meth:`Dataset.to_frame`.
"""

from ._loaders import (
    TITANIC_FEATURES,
    UCI_DATASETS,
    Dataset,
    Standardizer,
    load_concrete,
    load_energy,
    load_power_plant,
    load_titanic,
    load_uci,
    load_yacht,
    train_test_split,
)
from ._synthetic import REGRESSION_FUNCTIONS, make_regression_function, make_spirals
from ._tables import data_digest, from_arrays, load_table

__all__ = [
    "Dataset",
    "load_table",
    "from_arrays",
    "data_digest",
    "load_concrete",
    "load_energy",
    "load_yacht",
    "load_power_plant",
    "load_uci",
    "UCI_DATASETS",
    "load_titanic",
    "TITANIC_FEATURES",
    "make_spirals",
    "make_regression_function",
    "REGRESSION_FUNCTIONS",
    "train_test_split",
    "Standardizer",
]
