"""Tests for sensinet.datasets (pure Python + numpy; the C++ engine is not needed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sensinet.datasets import (
    REGRESSION_FUNCTIONS,
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
    make_regression_function,
    make_spirals,
    train_test_split,
)

# --------------------------------------------------------------------------
# UCI regression sets
# --------------------------------------------------------------------------

UCI_EXPECTED = {
    "concrete": (load_concrete, 1030, 8, "compressive_strength_mpa"),
    "energy": (load_energy, 768, 8, "heating_load"),
    "yacht": (load_yacht, 308, 6, "residuary_resistance"),
    "power_plant": (load_power_plant, 9568, 4, "net_energy_output_mw"),
}


def test_uci_names():
    assert set(UCI_DATASETS) == set(UCI_EXPECTED)


@pytest.mark.parametrize("name", sorted(UCI_EXPECTED))
def test_uci_shapes_and_metadata(name):
    loader, n, d, target = UCI_EXPECTED[name]
    ds = loader()
    assert isinstance(ds, Dataset)
    assert ds.X.shape == (n, d) and ds.y.shape == (n,)
    assert ds.X.dtype == np.float64 and ds.y.dtype == np.float64
    assert len(ds) == ds.n_samples == n and ds.n_features == d
    assert len(ds.feature_names) == d and ds.target_name == target
    assert ds.task == "regression" and ds.description
    assert np.isfinite(ds.X).all() and np.isfinite(ds.y).all()
    via_name = load_uci(name)
    np.testing.assert_array_equal(via_name.X, ds.X)
    np.testing.assert_array_equal(via_name.y, ds.y)


def test_uci_first_row_matches_file():
    ds = load_concrete()
    np.testing.assert_array_equal(ds.X[0], [540.0, 0.0, 0.0, 162.0, 2.5, 1040.0, 676.0, 28])
    assert ds.y[0] == 79.99


def test_loaders_return_copies():
    ds = load_yacht()
    assert ds.X.flags.writeable and ds.y.flags.writeable
    ds.X[:] = -1.0
    ds.y[:] = -1.0
    fresh = load_yacht()
    assert fresh.X[0, 0] == -2.3 and fresh.y[0] == 0.11
    t = load_titanic()
    t.X[:] = 99
    assert load_titanic().X.max() < 99
    raw = load_titanic(raw=True)
    raw["age"][:] = 0.0
    assert np.isnan(load_titanic(raw=True)["age"]).sum() == 177


def test_load_uci_unknown_name():
    with pytest.raises(ValueError, match=r"name.*'concrete'.*'power_plant'.*'boston'"):
        load_uci("boston")


# --------------------------------------------------------------------------
# Titanic
# --------------------------------------------------------------------------

def _col(ds, name):
    return ds.X[:, ds.feature_names.index(name)]


def test_titanic_shape_and_balance():
    ds = load_titanic()
    assert ds.X.shape == (891, 7) and ds.y.shape == (891,)
    assert ds.X.dtype == np.float64 and ds.y.dtype == np.int64
    assert ds.task == "classification" and ds.target_name == "survived"
    assert ds.feature_names == TITANIC_FEATURES == (
        "pclass", "sex", "age_band", "fare_band", "embarked", "title", "is_alone",
    )
    assert int(ds.y.sum()) == 342 and set(np.unique(ds.y)) == {0, 1}
    assert int((_col(ds, "sex") == 1).sum()) == 314
    assert not np.isnan(ds.X).any()
    assert "Southampton" in ds.description and "Master" in ds.description


def test_titanic_encoding_ranges():
    ds = load_titanic()
    expected = {
        "pclass": {1, 2, 3},
        "sex": {0, 1},
        "age_band": {0, 1, 2, 3, 4},
        "fare_band": {0, 1, 2, 3},
        "embarked": {0, 1, 2},
        "title": {0, 1, 2, 3, 4},
        "is_alone": {0, 1},
    }
    for name, values in expected.items():
        assert set(np.unique(_col(ds, name)).astype(int)) == values, name
    # Quartile bands hold about a quarter of the passengers each.
    counts = np.bincount(_col(ds, "fare_band").astype(int))
    assert counts.min() > 891 * 0.2 and counts.max() < 891 * 0.3


def test_titanic_encodings_match_raw():
    ds, raw = load_titanic(), load_titanic(raw=True)
    np.testing.assert_array_equal(_col(ds, "pclass"), raw["pclass"])
    np.testing.assert_array_equal(_col(ds, "sex"), raw["sex"] == "female")
    np.testing.assert_array_equal(_col(ds, "is_alone"), raw["sibsp"] + raw["parch"] == 0)
    np.testing.assert_array_equal(ds.y, raw["survived"])
    # Known ages are banded directly at the edges 16, 32, 48, 64.
    known = ~np.isnan(raw["age"])
    np.testing.assert_array_equal(
        _col(ds, "age_band")[known], np.digitize(raw["age"][known], [16, 32, 48, 64])
    )
    # Ports: the two unknown ones become Southampton (0).
    embarked = _col(ds, "embarked")
    ports = {"Southampton": 0, "Cherbourg": 1, "Queenstown": 2, "": 0}
    np.testing.assert_array_equal(embarked, [ports[p] for p in raw["embarked"]])
    assert np.bincount(embarked.astype(int)).tolist() == [646, 168, 77]
    # Fare bands are monotone in the fare.
    order = np.argsort(raw["fare"], kind="stable")
    assert (np.diff(_col(ds, "fare_band")[order]) >= 0).all()


def test_titanic_titles():
    ds, raw = load_titanic(), load_titanic(raw=True)
    title = _col(ds, "title").astype(int)
    # Mr 517; Miss 182 + Mlle 2 + Ms 1; Mrs 125 + Mme 1; Master 40; Rare 23.
    assert np.bincount(title).tolist() == [517, 185, 126, 40, 23]
    by_name = dict(zip(raw["name"], title))
    assert by_name["Braund, Mr. Owen Harris"] == 0
    assert by_name["Heikkinen, Miss. Laina"] == 1
    countess = [n for n in raw["name"] if "Countess" in n]
    assert len(countess) == 1 and by_name[countess[0]] == 4


def test_titanic_age_imputation_by_title():
    ds, raw = load_titanic(), load_titanic(raw=True)
    title, age_band = _col(ds, "title"), _col(ds, "age_band")
    unknown = np.isnan(raw["age"])
    for t in range(5):
        group = title == t
        if not (unknown & group).any():
            continue
        median = np.median(raw["age"][group & ~unknown])
        expected = np.digitize(median, [16, 32, 48, 64])
        assert (age_band[unknown & group] == expected).all(), t
    # Boys (Master) with unknown age are children, not the adult median.
    assert (age_band[unknown & (title == 3)] == 0).all()
    assert (unknown & (title == 3)).any()


def test_titanic_raw():
    raw = load_titanic(raw=True)
    assert list(raw) == [
        "name", "survived", "pclass", "sex", "age", "sibsp", "parch", "fare", "deck", "embarked",
    ]
    assert all(len(v) == 891 for v in raw.values())
    assert raw["name"][0] == "Braund, Mr. Owen Harris"  # quoted comma parsed correctly
    assert raw["age"].dtype == np.float64 and int(np.isnan(raw["age"]).sum()) == 177
    assert raw["fare"].dtype == np.float64 and not np.isnan(raw["fare"]).any()
    assert raw["survived"].dtype == np.int64 and int(raw["survived"].sum()) == 342
    assert int((raw["sex"] == "female").sum()) == 314 and int((raw["sex"] == "male").sum()) == 577
    assert int((raw["embarked"] == "").sum()) == 2


# --------------------------------------------------------------------------
# Dataset container
# --------------------------------------------------------------------------

def test_dataset_validation():
    X, y = np.zeros((3, 2)), np.zeros(3)
    with pytest.raises(ValueError, match="y"):
        Dataset(X, np.zeros(4), ("a", "b"), "t", "", "regression")
    with pytest.raises(ValueError, match="feature_names"):
        Dataset(X, y, ("a",), "t", "", "regression")
    with pytest.raises(ValueError, match="task"):
        Dataset(X, y, ("a", "b"), "t", "", "clustering")


def test_to_frame_without_pandas(monkeypatch):
    # A None entry in sys.modules makes `import pandas` raise ImportError.
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pandas"):
        load_yacht().to_frame()


def test_to_frame_with_pandas():
    pytest.importorskip("pandas")
    ds = load_titanic()
    frame = ds.to_frame()
    assert list(frame.columns) == [*ds.feature_names, "survived"]
    assert frame.shape == (891, 8)
    np.testing.assert_array_equal(frame["survived"].to_numpy(), ds.y)


# --------------------------------------------------------------------------
# Spirals
# --------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 7])
def test_spirals_match_definition(n):
    ds = make_spirals(n_per_class=n)
    assert ds.X.shape == (2 * n, 2) and ds.y.dtype == np.int64
    assert ds.feature_names == ("x1", "x2") and ds.task == "classification"
    for i in range(n):
        phi = 2 * np.pi * i / n
        r = 0.5 + i / n
        point = r * np.array([np.cos(phi), np.sin(phi)])
        rows = [k for k in range(2 * n) if np.allclose(ds.X[k], point, atol=1e-12, rtol=0)]
        mirror = [k for k in range(2 * n) if np.allclose(ds.X[k], -point, atol=1e-12, rtol=0)]
        assert [ds.y[k] for k in rows] == [1]
        assert [ds.y[k] for k in mirror] == [0]
    assert np.bincount(ds.y).tolist() == [n, n]


def test_spirals_noise_and_seed():
    clean = make_spirals(50)
    a, b = make_spirals(50, noise=0.1, seed=3), make_spirals(50, noise=0.1, seed=3)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, make_spirals(50, noise=0.1, seed=4).X)
    np.testing.assert_array_equal(a.y, clean.y)
    residual = a.X - clean.X
    assert 0.05 < residual.std() < 0.15
    np.testing.assert_array_equal(make_spirals(50, noise=0.0, seed=1).X, clean.X)


# --------------------------------------------------------------------------
# Simulated regression functions
# --------------------------------------------------------------------------

FORMULAS = {
    "sin3": (3, -1, 1, lambda x: np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2 - 0.5 * x[:, 2]),
    "friedman10": (
        10, 0, 1,
        lambda x: 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2
        + 10 * x[:, 3] + 5 * x[:, 4],
    ),
    "tanh2": (2, -2, 2, lambda x: np.tanh(x[:, 0]) * x[:, 1]),
}


def test_regression_function_names():
    assert set(REGRESSION_FUNCTIONS) == set(FORMULAS)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_regression_function_noiseless_values(name):
    d, lo, hi, f = FORMULAS[name]
    ds = make_regression_function(name, n_samples=500, noise=0.0, seed=0)
    assert ds.X.shape == (500, d) and ds.y.shape == (500,) and ds.y.dtype == np.float64
    assert ds.task == "regression"
    assert ds.feature_names == tuple(f"x{j}" for j in range(1, d + 1))
    assert ds.X.min() >= lo and ds.X.max() <= hi
    np.testing.assert_allclose(ds.y, f(ds.X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_regression_function_seed_and_noise(name):
    f = FORMULAS[name][3]
    a = make_regression_function(name, n_samples=4000, noise=0.5, seed=7)
    b = make_regression_function(name, n_samples=4000, noise=0.5, seed=7)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, make_regression_function(name, 4000, 0.5, seed=8).X)
    # X does not depend on the noise level for a fixed seed.
    np.testing.assert_array_equal(a.X, make_regression_function(name, 4000, 0.0, seed=7).X)
    residual = a.y - f(a.X)
    assert abs(residual.mean()) < 0.05 and 0.45 < residual.std() < 0.55


def test_friedman_irrelevant_features_are_uniform():
    X = make_regression_function("friedman10", n_samples=5000, noise=0.0, seed=1).X
    assert X.shape[1] == 10
    np.testing.assert_allclose(X.mean(axis=0), 0.5, atol=0.03)


# --------------------------------------------------------------------------
# train_test_split and Standardizer
# --------------------------------------------------------------------------

def test_train_test_split_partition():
    n = 103
    X = np.arange(n * 2, dtype=float).reshape(n, 2)
    y = np.arange(n)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.1, seed=0)
    assert len(X_te) == len(y_te) == 11 and len(X_tr) == len(y_tr) == 92  # ceil(10.3)
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(n))
    assert not set(y_tr.tolist()) & set(y_te.tolist())
    # Rows stay paired with their targets.
    np.testing.assert_array_equal(X_tr[:, 0], 2 * y_tr)
    np.testing.assert_array_equal(X_te[:, 0], 2 * y_te)
    # A random subset, not a contiguous slice of 11 rows.
    assert np.ptp(y_te) > 10


def test_train_test_split_seeding():
    X, y = np.random.default_rng(0).normal(size=(50, 3)), np.arange(50)
    a = train_test_split(X, y, test_size=0.2, seed=5)
    b = train_test_split(X, y, test_size=0.2, seed=5)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = train_test_split(X, y, test_size=0.2, seed=6)
    assert not np.array_equal(a[3], c[3])
    assert len(a[1]) == 10


def test_standardizer_round_trip():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[1.0, -5.0, 100.0], scale=[0.1, 3.0, 50.0], size=(200, 3))
    X[:, 1] = 7.0  # constant column
    s = Standardizer().fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), [1.0, 0.0, 1.0], atol=1e-12)
    assert s.scale_[1] == 1.0 and s.mean_[1] == 7.0
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Standardizer().fit_transform(X), Z)


def test_standardizer_1d_target():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    s = Standardizer().fit(y)
    z = s.transform(y)
    assert z.shape == (4,)
    np.testing.assert_allclose(s.inverse_transform(z), y)


def test_standardizer_errors():
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().transform(np.zeros((2, 2)))
    s = Standardizer().fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="X"):
        s.transform(np.zeros((3, 4)))


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------

def _split(n, **kwargs):
    return train_test_split(np.zeros((n, 2)), np.zeros(n), **kwargs)


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: make_spirals(n_per_class=0), r"n_per_class.*> 0.*got 0"),
        (lambda: make_spirals(n_per_class=-3), r"n_per_class.*got -3"),
        (lambda: make_spirals(noise=-0.1), r"noise.*>= 0.*got -0\.1"),
        (lambda: make_regression_function("sin3", n_samples=0), r"n_samples.*> 0.*got 0"),
        (lambda: make_regression_function("sin3", noise=-1.0), r"noise.*>= 0.*got -1\.0"),
        (
            lambda: make_regression_function("cubic"),
            r"name.*'sin3'.*'friedman10'.*'tanh2'.*'cubic'",
        ),
        (lambda: _split(10, test_size=0.0), r"test_size.*\(0, 1\).*0\.0"),
        (lambda: _split(10, test_size=1.0), r"test_size.*\(0, 1\).*1\.0"),
        (lambda: _split(10, test_size=1.5), r"test_size.*1\.5"),
        (lambda: train_test_split(np.zeros((10, 2)), np.zeros(9)), r"y.*length 9.*expected 10"),
        (lambda: _split(1, test_size=0.5), r"test_size"),
    ],
)
def test_bad_input_raises_value_error(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_non_integer_counts_raise_type_error():
    with pytest.raises(TypeError, match="n_per_class"):
        make_spirals(n_per_class=2.5)
    with pytest.raises(TypeError, match="n_samples"):
        make_regression_function("tanh2", n_samples=True)


def test_titanic_paper_features_follow_the_authors_steps():
    pd = pytest.importorskip("pandas")
    raw = load_titanic(raw=True)
    df = pd.DataFrame({k: raw[k] for k in ("name", "pclass", "sex", "age", "sibsp", "parch", "fare", "embarked")})
    # the reference pipeline, step by step, in pandas
    title = df["name"].str.extract(r" ([A-Za-z]+)\.", expand=False)
    title = title.replace(["Lady", "Countess", "Capt", "Col", "Don", "Dr", "Major", "Rev", "Sir", "Jonkheer",
                           "Dona"], "Rare").replace({"Mlle": "Miss", "Ms": "Miss", "Mme": "Mrs"})
    title = title.map({"Mr": 1, "Miss": 2, "Mrs": 3, "Master": 4, "Rare": 5}).fillna(0)
    sex = df["sex"].map({"female": 1, "male": 0})
    age = df["age"].copy()
    for i in (0, 1):
        for j in (1, 2, 3):
            guess = age[(sex == i) & (df["pclass"] == j)].dropna().median()
            age[age.isnull() & (sex == i) & (df["pclass"] == j)] = int(guess / 0.5 + 0.5) * 0.5
    age = age.astype(int)
    age_band = pd.cut(age, [-np.inf, 16, 32, 48, 64, np.inf], labels=False)
    fare_band = pd.cut(df["fare"], [-np.inf, 7.91, 14.454, 31, np.inf], labels=False)
    ref = np.column_stack([df["pclass"], sex, age_band, fare_band, title]).astype(float)
    paper = load_titanic(features="paper")
    np.testing.assert_array_equal(paper.X[:, [0, 1, 2, 3, 5]], ref)
    default = load_titanic()
    assert paper.feature_names == default.feature_names
    np.testing.assert_array_equal(paper.X[:, [4, 6]], default.X[:, [4, 6]])  # embarked, is_alone agree
    assert np.sum(paper.X[:, 2] != default.X[:, 2]) == 83 and np.sum(paper.X[:, 3] != default.X[:, 3]) == 7
    np.testing.assert_array_equal(paper.X[:, 5], default.X[:, 5] + 1)
    with pytest.raises(ValueError, match="features: expected 'sensinet' or 'paper'"):
        load_titanic(features="kaggle")
