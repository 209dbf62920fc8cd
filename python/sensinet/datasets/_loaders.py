"""Dataset container, bundled real-data loaders and split/standardize helpers.

``_synthetic`` imports ``Dataset`` and the argument checks from this module,
so this module must not import from ``_synthetic``.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._tables import frame

__all__ = [
    "Dataset",
    "UCI_DATASETS",
    "load_uci",
    "load_concrete",
    "load_energy",
    "load_yacht",
    "load_power_plant",
    "load_titanic",
    "TITANIC_FEATURES",
    "train_test_split",
    "Standardizer",
]

_TASKS = ("regression", "classification")


# --------------------------------------------------------------------------
# Container
# --------------------------------------------------------------------------

# eq=False: the generated __eq__/__hash__ would compare numpy arrays
# element-wise and fail with "truth value of an array is ambiguous".
@dataclass(frozen=True, eq=False)
class Dataset:
    """A supervised dataset: a feature matrix plus a target vector.

    Parameters
    ----------
    X : ndarray of float64, shape (n_samples, n_features)
        Feature matrix.
    y : ndarray, shape (n_samples,)
        Target: float64 for ``task="regression"``, int64 class labels for
        ``task="classification"``.
    feature_names : tuple of str
        One name per column of `X`.
    target_name : str
        Name of the target variable.
    description : str
        Where the data comes from and how it was encoded.
    task : {"regression", "classification"}
        Kind of supervised problem.
    classes : tuple, optional
        For a classification target read from a table: the original label of each code of `y` (codes are
        positions in this tuple).

    Notes
    -----
    The dataclass is frozen, but `X` and `y` are ordinary writable arrays.
    Loaders give every call its own copy, so changing them in place does not
    affect later calls.
    """

    X: NDArray[np.float64] = field(repr=False)
    y: NDArray[Any] = field(repr=False)
    feature_names: tuple[str, ...]
    target_name: str
    description: str = field(repr=False)
    task: str
    classes: tuple = field(default=(), repr=False)  # the original labels of a classification target, by code

    def __post_init__(self) -> None:
        if self.task not in _TASKS:
            raise ValueError(f"task must be one of {_TASKS}, got {self.task!r}")
        if self.X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got ndim={self.X.ndim}")
        if self.y.ndim != 1:
            raise ValueError(f"y must be 1-D (n_samples,), got ndim={self.y.ndim}")
        _check_same_length(self.X, self.y)
        if len(self.feature_names) != self.X.shape[1]:
            raise ValueError(
                f"feature_names must have one name per column of X: expected "
                f"{self.X.shape[1]}, got {len(self.feature_names)}"
            )

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def n_samples(self) -> int:
        """Number of rows of `X`."""
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        """Number of columns of `X`."""
        return self.X.shape[1]

    def to_frame(self) -> Any:
        """Return the data as a pandas DataFrame (features, then the target).

        Returns
        -------
        pandas.DataFrame
            One column per feature name plus a final `target_name` column.

        Raises
        ------
        ImportError
            If pandas is not installed (it is an optional dependency).
        """
        out = frame(self.X.copy(), self.feature_names)
        out[self.target_name] = self.y.copy()
        return out


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------

def _check_same_length(X: NDArray[Any], y: NDArray[Any]) -> None:
    if len(X) != len(y):
        raise ValueError(
            f"X and y must have the same number of samples: y has length "
            f"{len(y)}, expected {len(X)} (the number of rows of X)"
        )


# --------------------------------------------------------------------------
# Bundled files
# --------------------------------------------------------------------------

def _data_file(filename: str) -> Any:
    return files("sensinet.datasets") / "data" / filename


def _freeze(a: NDArray[Any]) -> NDArray[Any]:
    # Cached arrays are read-only so that a missed copy fails loudly instead
    # of silently corrupting the data that later calls see.
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=None)
def _read_numeric_csv(filename: str) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    with _data_file(filename).open("r", encoding="utf-8", newline="") as fh:
        header = tuple(next(csv.reader(fh)))
        data = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    if data.shape[1] != len(header):
        raise RuntimeError(f"{filename}: header has {len(header)} columns, data {data.shape[1]}")
    return header, _freeze(data)


# name -> (file, expected rows, description). The row counts double as an
# integrity check of the bundled files.
_UCI: dict[str, tuple[str, int, str]] = {
    "concrete": (
        "concrete.csv",
        1030,
        "Concrete Compressive Strength (Yeh 1998), UCI Machine Learning "
        "Repository. 1030 concrete samples, 8 features: the amounts of the mix "
        "components (kg per m^3 of mixture) and the age in days. Target: "
        "compressive strength in MPa.",
    ),
    "energy": (
        "energy.csv",
        768,
        "Energy Efficiency (Tsanas & Xifara 2012), UCI Machine Learning "
        "Repository. 768 simulated building shapes, 8 features describing the "
        "geometry and glazing. Target: heating load.",
    ),
    "yacht": (
        "yacht.csv",
        308,
        "Yacht Hydrodynamics (Gerritsma et al.), UCI Machine Learning "
        "Repository. 308 towing-tank experiments, 6 features: hull-form "
        "coefficients and the Froude number. Target: residuary resistance "
        "per unit weight of displacement.",
    ),
    "power_plant": (
        "power_plant.csv",
        9568,
        "Combined Cycle Power Plant (Tüfekci 2014), UCI Machine Learning "
        "Repository. 9568 hourly averages of 4 ambient variables: temperature, "
        "exhaust vacuum, ambient pressure and relative humidity. Target: net "
        "hourly electrical energy output in MW.",
    ),
}

#: Names accepted by :func:`load_uci`.
UCI_DATASETS: tuple[str, ...] = tuple(_UCI)

_UCI_NOTE = (
    " Files as redistributed with the regression benchmark of Gal & "
    "Ghahramani (2016), BSD-style licence; the usual protocol reports RMSE on "
    "the original target scale averaged over repeated random 90/10 splits."
)


def load_uci(name: str) -> Dataset:
    """Load one of the four bundled UCI regression benchmarks.

    Parameters
    ----------
    name : {"concrete", "energy", "yacht", "power_plant"}
        Which dataset to load.

    Returns
    -------
    Dataset
        Regression dataset with float64 `X` (all columns of the file except
        the last) and float64 `y` (the last column). The feature names come
        from the file's header.

    Raises
    ------
    ValueError
        If `name` is not one of the valid names.

    Notes
    -----
    Each file is parsed once and then cached. Every call returns new copies,
    so changing the result does not affect later calls.
    """
    if name not in _UCI:
        raise ValueError(
            f"name must be one of {', '.join(map(repr, UCI_DATASETS))}; got {name!r}"
        )
    filename, n_rows, description = _UCI[name]
    header, data = _read_numeric_csv(filename)
    if data.shape[0] != n_rows:
        raise RuntimeError(f"{filename}: expected {n_rows} rows, found {data.shape[0]}")
    return Dataset(
        X=data[:, :-1].copy(),
        y=data[:, -1].copy(),
        feature_names=header[:-1],
        target_name=header[-1],
        description=description + _UCI_NOTE,
        task="regression",
    )


def load_concrete() -> Dataset:
    """Load the Concrete Compressive Strength data (1030 x 8, regression).

    Returns
    -------
    Dataset
        Target ``compressive_strength_mpa``. See :func:`load_uci`.
    """
    return load_uci("concrete")


def load_energy() -> Dataset:
    """Load the Energy Efficiency data (768 x 8, regression).

    Returns
    -------
    Dataset
        Target ``heating_load``. See :func:`load_uci`.
    """
    return load_uci("energy")


def load_yacht() -> Dataset:
    """Load the Yacht Hydrodynamics data (308 x 6, regression).

    Returns
    -------
    Dataset
        Target ``residuary_resistance``. See :func:`load_uci`.
    """
    return load_uci("yacht")


def load_power_plant() -> Dataset:
    """Load the Combined Cycle Power Plant data (9568 x 4, regression).

    Returns
    -------
    Dataset
        Target ``net_energy_output_mw``. See :func:`load_uci`.
    """
    return load_uci("power_plant")


# --------------------------------------------------------------------------
# Titanic
# --------------------------------------------------------------------------

_TITANIC_COLUMNS = (
    "name", "survived", "pclass", "sex", "age", "sibsp", "parch", "fare", "deck", "embarked",
)
_TITANIC_INT = ("survived", "pclass", "sibsp", "parch")
_TITANIC_FLOAT = ("age", "fare")

TITANIC_FEATURES: tuple[str, ...] = (
    "pclass", "sex", "age_band", "fare_band", "embarked", "title", "is_alone",
)
_SEX = {"male": 0, "female": 1}
_EMBARKED = {"Southampton": 0, "Cherbourg": 1, "Queenstown": 2}
_TITLE = {"Mr": 0, "Miss": 1, "Mlle": 1, "Ms": 1, "Mrs": 2, "Mme": 2, "Master": 3}
_RARE_TITLE = 4
_AGE_EDGES = (16.0, 32.0, 48.0, 64.0)
# The title is the text between the surname comma and the first period,
# e.g. "Braund, Mr. Owen Harris" -> "Mr", "Rothes, the Countess. of ..." ->
# "the Countess".
_TITLE_RE = re.compile(r",\s*([^.,]+?)\s*\.")

_TITANIC_DESCRIPTION = """\
Titanic passengers: the 891 passengers of the Kaggle "Titanic" training set,
taken from the explainerdashboard 0.5.8 wheel (MIT licence). One blank sex
value was filled from the passenger's title (Mrs.). 549 passengers died and
342 survived; 577 are male and 314 female.

Target `survived`: 0 died, 1 survived (int64).
Features (float64, in this order):
  pclass     ticket class 1, 2, 3
  sex        0 male, 1 female
  age_band   0: age < 16, 1: 16 <= age < 32, 2: 32 <= age < 48,
             3: 48 <= age < 64, 4: age >= 64. Unknown ages (177 rows) are
             first replaced by the median known age of passengers with the
             same title (the 5 title groups below)
  fare_band  fare quartile 0..3 computed from all 891 fares; band k covers
             (q_k, q_{k+1}], so a fare equal to a quartile goes to the lower band
  embarked   0 Southampton, 1 Cherbourg, 2 Queenstown; the 2 unknown ports
             are set to the most frequent port (Southampton)
  title      from the name: 0 Mr, 1 Miss (incl. Mlle, Ms), 2 Mrs (incl. Mme),
             3 Master, 4 Rare (all other titles)
  is_alone   1 if sibsp + parch == 0 else 0"""


@functools.lru_cache(maxsize=None)
def _titanic_columns() -> dict[str, NDArray[Any]]:
    # The csv module is needed because quoted names contain commas. The file
    # has CRLF line endings, which newline="" leaves for csv to handle.
    with _data_file("titanic.csv").open("r", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader))
        rows = [row for row in reader if row]
    if header != _TITANIC_COLUMNS:
        raise RuntimeError(f"titanic.csv: unexpected header {header}")
    cols: dict[str, NDArray[Any]] = {}
    for j, name in enumerate(header):
        values = [row[j] for row in rows]
        if name in _TITANIC_INT:
            cols[name] = np.array([int(v) for v in values], dtype=np.int64)
        elif name in _TITANIC_FLOAT:
            cols[name] = np.array([float(v) if v else np.nan for v in values], dtype=np.float64)
        else:
            cols[name] = np.array(values, dtype=str)
    return {k: _freeze(v) for k, v in cols.items()}


def _title_code(name: str) -> int:
    match = _TITLE_RE.search(name)
    return _TITLE.get(match.group(1), _RARE_TITLE) if match else _RARE_TITLE


def _titanic_features(cols: dict[str, NDArray[Any]]) -> NDArray[np.float64]:
    title = np.array([_title_code(n) for n in cols["name"]], dtype=np.int64)

    age = cols["age"].copy()
    known = ~np.isnan(age)
    overall_median = np.median(age[known])
    for t in np.unique(title):
        group_known = known & (title == t)
        # Fall back to the overall median when no one with this title has a known age.
        fill = np.median(age[group_known]) if group_known.any() else overall_median
        age[~known & (title == t)] = fill
    age_band = np.digitize(age, _AGE_EDGES, right=False)

    fare = cols["fare"]
    # side="left" puts a fare equal to a quartile in the lower band, like
    # pandas.qcut's right-closed intervals.
    fare_band = np.searchsorted(np.quantile(fare, [0.25, 0.5, 0.75]), fare, side="left")

    ports = [p for p in cols["embarked"] if p]
    most_frequent = max(set(ports), key=ports.count)
    embarked = np.array([_EMBARKED[p or most_frequent] for p in cols["embarked"]])

    sex = np.array([_SEX[s] for s in cols["sex"]])
    is_alone = (cols["sibsp"] + cols["parch"] == 0).astype(np.int64)

    return np.column_stack(
        [cols["pclass"], sex, age_band, fare_band, embarked, title, is_alone]
    ).astype(np.float64)


# The authors' preprocessing (Picchiotti & Gori's reference code): the first word followed by a period is
# the title, coded 1..5 (0 for a title outside the map, which the 891 passengers do not have).
_PAPER_TITLE_RE = re.compile(r" ([A-Za-z]+)\.")
_PAPER_RARE = ("Lady", "Countess", "Capt", "Col", "Don", "Dr", "Major", "Rev", "Sir", "Jonkheer", "Dona")
_PAPER_TITLE = {"Mr": 1, "Miss": 2, "Mrs": 3, "Master": 4, "Rare": 5}
_PAPER_FARE_EDGES = (7.91, 14.454, 31.0)


def _paper_title(name: str) -> int:
    match = _PAPER_TITLE_RE.search(name)
    t = match.group(1) if match else ""
    t = "Rare" if t in _PAPER_RARE else {"Mlle": "Miss", "Ms": "Miss", "Mme": "Mrs"}.get(t, t)
    return _PAPER_TITLE.get(t, 0)


def _titanic_paper_features(cols: dict[str, NDArray[Any]]) -> NDArray[np.float64]:
    """The seven features exactly as the authors' code derives them from the same 891 passengers."""
    title = np.array([_paper_title(n) for n in cols["name"]], dtype=np.int64)
    sex = np.array([_SEX[s] for s in cols["sex"]])
    pclass = cols["pclass"]
    age = cols["age"].copy()
    for i in (0, 1):  # unknown ages: the median of the same sex and class, rounded to a half year
        for j in (1, 2, 3):
            group = (sex == i) & (pclass == j)
            guess = int(np.median(age[group & ~np.isnan(age)]) / 0.5 + 0.5) * 0.5
            age[group & np.isnan(age)] = guess
    age = age.astype(np.int64)  # truncated to whole years, then bands closed on the right
    age_band = np.searchsorted(np.array(_AGE_EDGES), age, side="left")
    fare_band = np.searchsorted(np.array(_PAPER_FARE_EDGES), cols["fare"], side="left")
    ports = [p for p in cols["embarked"] if p]
    most_frequent = max(set(ports), key=ports.count)
    embarked = np.array([_EMBARKED[p or most_frequent] for p in cols["embarked"]])
    is_alone = (cols["sibsp"] + cols["parch"] == 0).astype(np.int64)
    return np.column_stack([pclass, sex, age_band, fare_band, embarked, title, is_alone]).astype(np.float64)


@functools.lru_cache(maxsize=None)
def _titanic_matrix(features: str = "sensinet") -> NDArray[np.float64]:
    make = _titanic_paper_features if features == "paper" else _titanic_features
    return _freeze(make(_titanic_columns()))


def load_titanic(raw: bool = False, features: str = "sensinet") -> Dataset | dict[str, NDArray[Any]]:
    """Load the Titanic passenger data (891 passengers, binary classification).

    Parameters
    ----------
    raw : bool, default False
        If True, return the parsed columns of the CSV file and do not encode
        any features.
    features : {"sensinet", "paper"}, default "sensinet"
        ``"paper"``: the feature engineering of Picchiotti & Gori's reference
        code, for reproducing their study. It differs from the default in four
        places. Title codes are 1-5 (Mr, Miss, Mrs, Master, Rare) instead of
        0-4. An unknown age is the median of the same sex and class, rounded
        to a half year, and ages are truncated to whole years before banding.
        Age bands are closed on the right (16 is band 0). Fare bands use the
        fixed edges 7.91, 14.454 and 31. On the 891 passengers this changes
        the age band of 83 passengers and the fare band of 7.

    Returns
    -------
    Dataset or dict
        If ``raw=False``, a classification :class:`Dataset` with int64 target
        ``survived`` (0 died, 1 survived) and a float64 matrix of these seven
        integer-coded features, in this order:

        ``pclass``
            Ticket class 1, 2 or 3.
        ``sex``
            0 male, 1 female.
        ``age_band``
            0: age < 16, 1: 16 <= age < 32, 2: 32 <= age < 48,
            3: 48 <= age < 64, 4: age >= 64. An unknown age is first replaced
            by the median known age of the passengers with the same `title`
            code.
        ``fare_band``
            Fare quartile 0-3, with the quartiles computed from all 891 fares.
            Band k covers (q_k, q_{k+1}], so a fare equal to a quartile goes
            to the lower band.
        ``embarked``
            0 Southampton, 1 Cherbourg, 2 Queenstown. An unknown port is set
            to the most frequent one (Southampton).
        ``title``
            From the name: 0 Mr, 1 Miss (incl. Mlle, Ms), 2 Mrs (incl. Mme),
            3 Master, 4 Rare (all other titles).
        ``is_alone``
            1 if ``sibsp + parch == 0``, else 0.

        If ``raw=True``, a dict that maps each column name (``name``,
        ``survived``, ``pclass``, ``sex``, ``age``, ``sibsp``, ``parch``,
        ``fare``, ``deck``, ``embarked``) to an array. Text columns are str
        arrays with ``""`` for unknown values. ``age`` and ``fare`` are float64,
        with NaN for unknown ages. The other columns are int64.

    Notes
    -----
    The `description` of the returned Dataset repeats these encodings and the
    data's provenance. Each call returns new copies of the cached arrays.
    """
    if not isinstance(raw, (bool, np.bool_)):
        raise TypeError(f"raw: expected True or False, got {raw!r}")
    if features not in ("sensinet", "paper"):
        raise ValueError(f"features: expected 'sensinet' or 'paper', got {features!r}")
    cols = _titanic_columns()
    if raw:
        return {k: v.copy() for k, v in cols.items()}
    return Dataset(
        X=_titanic_matrix(features).copy(),
        y=cols["survived"].copy(),
        feature_names=TITANIC_FEATURES,
        target_name="survived",
        description=_TITANIC_DESCRIPTION,
        task="classification",
    )


# --------------------------------------------------------------------------
# Splitting and standardization (the repeated 90/10 protocol)
# --------------------------------------------------------------------------

def train_test_split(
    X: ArrayLike,
    y: ArrayLike,
    test_size: float = 0.1,
    seed: int | np.random.Generator | None = None,
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Split `X` and `y` at random into a training set and a test set.

    Parameters
    ----------
    X : array_like, shape (n_samples, ...)
        Features. Rows are the samples.
    y : array_like, shape (n_samples, ...)
        Targets, aligned with the rows of `X`.
    test_size : float, default 0.1
        Fraction of the samples used for testing, in the open interval
        (0, 1). The test set has ``ceil(test_size * n_samples)`` rows.
    seed : int, numpy.random.Generator or None, default None
        Passed to :func:`numpy.random.default_rng`. Use an int to get the same
        split on every call.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        New arrays. The training and test rows partition the input rows.

    Raises
    ------
    ValueError
        If `test_size` is not in (0, 1), if `X` and `y` have different lengths,
        or if the split would leave the training set empty.
    """
    X_arr, y_arr = np.asarray(X), np.asarray(y)
    if X_arr.ndim == 0 or y_arr.ndim == 0:
        raise ValueError("X and y must be arrays with at least one dimension")
    _check_same_length(X_arr, y_arr)
    test_size = float(test_size)
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in the open interval (0, 1), got {test_size!r}")
    n = len(X_arr)
    n_test = math.ceil(test_size * n)
    if n_test >= n:
        raise ValueError(
            f"test_size={test_size!r} with {n} samples leaves no training samples; "
            f"expected at least 1, got {n - n_test}"
        )
    perm = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    return X_arr[train_idx], X_arr[test_idx], y_arr[train_idx], y_arr[test_idx]


class Standardizer:
    """Scale each column to zero mean and unit variance, and undo the scaling.

    Fit it on the training split only, so that no test information leaks
    into the scaling. Fit a second one on `y` to train on a standardized
    target, then use `inverse_transform` to report errors on the original
    scale.

    Attributes
    ----------
    mean_ : ndarray
        Column means of the data seen by :meth:`fit` (a 0-d array when the
        data is 1-D).
    scale_ : ndarray
        Column standard deviations (``ddof=0``). A constant column gets 1, so
        it is centred but not divided by zero.
    """

    def __init__(self) -> None:
        self.mean_: NDArray[np.float64] | None = None
        self.scale_: NDArray[np.float64] | None = None

    def fit(self, X: ArrayLike) -> "Standardizer":
        """Compute `mean_` and `scale_` from `X` (shape (n, d) or (n,)).

        Returns
        -------
        Standardizer
            ``self``, so calls can be chained.
        """
        X_arr = np.asarray(X, dtype=np.float64)
        if not np.isfinite(X_arr).all():
            raise ValueError("X: contains NaN or infinity; the mean and scale would be NaN")
        if X_arr.ndim not in (1, 2) or len(X_arr) < 1:
            raise ValueError(
                f"X must be a non-empty 1-D or 2-D array, got shape {X_arr.shape}"
            )
        mean = X_arr.mean(axis=0)
        scale = X_arr.std(axis=0)
        # Treat a std at round-off level as zero: a constant column can give
        # a std of ~1e-16, not exactly 0, and dividing by that would blow up.
        tiny = 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
        scale = np.where(scale <= tiny, 1.0, scale)
        self.mean_, self.scale_ = np.asarray(mean), np.asarray(scale)
        return self

    def _fitted(self, X: ArrayLike) -> NDArray[np.float64]:
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("this Standardizer is not fitted yet; call fit(X) first")
        X_arr = np.asarray(X, dtype=np.float64)
        if X_arr.shape[1:] != self.mean_.shape:
            raise ValueError(
                f"X must have trailing shape {self.mean_.shape} as in fit, got {X_arr.shape[1:]}"
            )
        return X_arr

    def transform(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return ``(X - mean_) / scale_``."""
        return (self._fitted(X) - self.mean_) / self.scale_

    def inverse_transform(self, Z: ArrayLike) -> NDArray[np.float64]:
        """Return ``Z * scale_ + mean_``, which undoes :meth:`transform`."""
        return self._fitted(Z) * self.scale_ + self.mean_

    def fit_transform(self, X: ArrayLike) -> NDArray[np.float64]:
        """Fit on `X`, then return ``transform(X)``."""
        return self.fit(X).transform(X)
