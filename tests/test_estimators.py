"""Tests for the scikit-learn estimators SensiNetRegressor / SensiNetClassifier."""
from __future__ import annotations

import copy
import pickle
import sys
import types

import numpy as np
import pytest

pytest.importorskip("sklearn", minversion="1.6")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import sensinet  # noqa: E402
import sensinet as sn  # noqa: E402
from sensinet import Adam, Dense, DivergenceError, Residual, SensiNetClassifier, SensiNetRegressor  # noqa: E402
from sensinet.datasets import make_regression_function  # noqa: E402

# Short fits that stop at max_iter are the point of many tests here, not a problem.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Small networks keep the ~220 common checks to a few seconds; the variants cover every training path
# (minibatch with the training-loss stopping rule, L-BFGS, epoch-wise early stopping, residual blocks).
SMALL = dict(hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=1e-2)


# The hierarchical solver's sensitivities (the engine's reverse sweep) do not weight samples, so it refuses
# sample_weight with a ValueError: the checks that pass weights are expected to fail for it, and only for it.
_UNWEIGHTED = ("check_sample_weights_pandas_series", "check_sample_weights_not_an_array",
               "check_sample_weights_list", "check_sample_weights_shape", "check_sample_weights_not_overwritten",
               "check_all_zero_sample_weights_error", "check_classifiers_one_label_sample_weights")


def _expected_failures(est) -> dict:
    # Integer weights equal repeated samples for a full-batch step (tests/test_training.py checks that to
    # 1e-11), but shuffled minibatches and many L-BFGS iterations see repetition differently, as in
    # scikit-learn's own MLP.
    out = {"check_sample_weight_equivalence_on_dense_data": "stochastic minibatches / iterated line searches"}
    if est.solver == "hierarchical":
        out.update({name: "solver='hierarchical' does not weight samples (a ValueError says so)"
                    for name in _UNWEIGHTED})
    return out


@parametrize_with_checks(
    [
        SensiNetRegressor(**SMALL),
        SensiNetClassifier(**SMALL),
        SensiNetRegressor(hidden_layer_sizes=(8, 8), residual=True, solver="lbfgs", max_iter=50),
        SensiNetClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=50),
        SensiNetClassifier(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e-2, early_stopping=True,
                           max_iter=100),
        SensiNetClassifier(hidden_layer_sizes=(16,), solver="sgd", learning_rate="adaptive",
                           learning_rate_init=1e-2, max_iter=100),
        SensiNetRegressor(hidden_layer_sizes=(8, 8), solver="hierarchical", learning_rate_init=1e-2, max_iter=100),
        SensiNetClassifier(hidden_layer_sizes=(16,), solver="hierarchical", learning_rate_init=1e-2, max_iter=200),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def sin3():
    d = make_regression_function("sin3", 500, noise=0.05, seed=0)
    return train_test_split(d.X, d.y, test_size=0.25, random_state=0)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


# ------------------------------------------------------------------------------------------------ quality
@pytest.mark.parametrize("kwargs", [
    {},
    {"solver": "lbfgs"},
    {"solver": "sgd", "learning_rate_init": 1e-2},
    {"early_stopping": True},
    {"hidden_layer_sizes": (32, 32, 32), "residual": True},
    {"activation": "tanh", "dtype": "float32", "hidden_layer_sizes": (64, 64)},  # one tanh layer plateaus
])
def test_regressor_fits_smooth_function(sin3, kwargs):
    X_tr, X_te, y_tr, y_te = sin3
    reg = SensiNetRegressor(random_state=0, max_iter=300, batch_size=32, **kwargs).fit(X_tr, y_tr)  # 12 steps/epoch
    assert reg.score(X_te, y_te) > 0.9
    assert reg.predict(X_te).shape == y_te.shape
    # the network's precision is the answer's: float32 stays float32, like scikit-learn's MLP
    assert reg.predict(X_te).dtype == (np.float32 if kwargs.get("dtype") == "float32" else np.float64)
    assert reg.n_features_in_ == 3
    assert reg.n_iter_ == len(reg.loss_curve_) or kwargs.get("solver") == "lbfgs"


def test_regressor_target_standardization_is_scale_free(sin3):
    # y is standardized internally, so an affine change of y changes the predictions by the same map only.
    X_tr, X_te, y_tr, _ = sin3
    a = SensiNetRegressor(hidden_layer_sizes=(16,), max_iter=50, random_state=0).fit(X_tr, y_tr)
    b = SensiNetRegressor(hidden_layer_sizes=(16,), max_iter=50, random_state=0).fit(X_tr, 1000 * y_tr + 5)
    np.testing.assert_allclose(b.predict(X_te), 1000 * a.predict(X_te) + 5, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(b._y_mean, 1000 * a._y_mean + 5)
    np.testing.assert_allclose(b._y_scale, 1000 * a._y_scale)


def test_regressor_multi_output_and_column_y(sin3):
    X_tr, X_te, y_tr, _ = sin3
    Y = np.column_stack([y_tr, -2 * y_tr + 1])
    reg = SensiNetRegressor(hidden_layer_sizes=(32,), random_state=0).fit(X_tr, Y)
    assert reg.predict(X_te).shape == (X_te.shape[0], 2)
    assert reg.n_outputs_ == 2 and reg.network_.n_outputs == 2
    col = SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X_tr, y_tr[:, None])
    assert col.predict(X_te).shape == (X_te.shape[0], 1)


def test_classifier_breast_cancer(cancer):
    X_tr, X_te, y_tr, y_te = cancer
    clf = SensiNetClassifier(random_state=0).fit(X_tr, y_tr)
    assert clf.score(X_te, y_te) > 0.9
    # Two classes: one logit with binary cross-entropy.
    assert clf.network_.n_outputs == 1 and clf.network_.loss == "binary_cross_entropy"
    proba = clf.predict_proba(X_te)
    assert proba.shape == (X_te.shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X_te))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X_te)), proba, rtol=1e-12)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_classifier_three_classes(iris, solver):
    X_tr, X_te, y_tr, y_te = iris
    clf = SensiNetClassifier(solver=solver, learning_rate_init=1e-2 if solver == "sgd" else 1e-3, random_state=0)
    clf.fit(X_tr, y_tr)
    assert clf.score(X_te, y_te) > 0.9
    assert clf.network_.n_outputs == 3 and clf.network_.loss == "cross_entropy"
    proba = clf.predict_proba(X_te)
    assert proba.shape == (X_te.shape[0], 3)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_classifier_string_labels(iris):
    X_tr, _, y_tr, _ = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y_tr]
    clf = SensiNetClassifier(hidden_layer_sizes=(16,), random_state=0).fit(X_tr, names)
    np.testing.assert_array_equal(clf.classes_, ["setosa", "versicolor", "virginica"])
    assert set(clf.predict(X_tr)) <= set(names)
    assert clf.score(X_tr, names) > 0.9


def test_classifier_needs_two_classes():
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="at least 2 classes"):
        SensiNetClassifier().fit(X, np.zeros(10))


def test_classifier_rejects_continuous_targets():
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="Unknown label type"):
        SensiNetClassifier().fit(X, X[:, 0])


# ------------------------------------------------------------------------------------------------ seeds
@pytest.mark.parametrize("Estimator,kwargs", [
    (SensiNetRegressor, {}),
    (SensiNetRegressor, {"early_stopping": True}),
    (SensiNetRegressor, {"solver": "lbfgs"}),
    (SensiNetClassifier, {"solver": "sgd"}),
])
def test_same_random_state_gives_identical_predictions(sin3, iris, Estimator, kwargs):
    X_tr, X_te, y_tr, _ = sin3 if Estimator is SensiNetRegressor else iris
    fit = lambda seed: Estimator(hidden_layer_sizes=(16,), max_iter=30, random_state=seed, **kwargs).fit(X_tr, y_tr)
    a, b, c = fit(7), fit(7), fit(8)
    pa, pb, pc = (m.predict_proba(X_te) if Estimator is SensiNetClassifier else m.predict(X_te) for m in (a, b, c))
    np.testing.assert_array_equal(pa, pb)  # bitwise
    np.testing.assert_array_equal(a.network_.parameters, b.network_.parameters)
    assert not np.array_equal(a.network_.parameters, c.network_.parameters)


def test_random_state_instance_draws_new_seeds(sin3):
    X_tr, _, y_tr, _ = sin3
    reg = SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=np.random.RandomState(0))
    first = reg.fit(X_tr, y_tr).network_.parameters.copy()
    second = reg.fit(X_tr, y_tr).network_.parameters.copy()
    assert not np.array_equal(first, second)


# ------------------------------------------------------------------------------------------------ training control
def test_warm_start_continues_training(sin3):
    X_tr, _, y_tr, _ = sin3
    reg = SensiNetRegressor(hidden_layer_sizes=(32,), max_iter=20, tol=0.0, warm_start=True, random_state=0)
    reg.fit(X_tr, y_tr)
    net, opt, loss1 = reg.network_, reg._solver_state, reg.loss_
    steps_t = opt.t
    reg.fit(X_tr, y_tr)
    assert reg.network_ is net and reg._solver_state is opt  # same network, same Adam moments
    assert opt.t > steps_t  # Adam's step count went on instead of restarting at 0
    # scikit-learn's MLP: n_iter_ is this call's epochs, while t_ (samples seen) and loss_curve_ go on
    assert reg.n_iter_ == 20 and len(reg.loss_curve_) == 40 and reg.t_ == 40 * len(y_tr)
    assert reg.loss_ < loss1
    # Without warm_start a fit starts over.
    reg.set_params(warm_start=False).fit(X_tr, y_tr)
    assert reg.network_ is not net and reg.n_iter_ == 20


def test_warm_start_rebuilds_when_architecture_changes(sin3):
    X_tr, _, y_tr, _ = sin3
    reg = SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=3, warm_start=True, random_state=0).fit(X_tr, y_tr)
    net = reg.network_
    reg.set_params(hidden_layer_sizes=(4,)).fit(X_tr, y_tr)
    assert reg.network_ is not net and reg.n_iter_ == 3
    reg.fit(X_tr[:, :2], y_tr)  # other number of features: a new network, not an error
    assert reg.network_.n_inputs == 2 and reg.n_features_in_ == 2


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_early_stopping_stops_before_max_iter(solver):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=400)  # easy: linear
    reg = SensiNetRegressor(hidden_layer_sizes=(16,), solver=solver, learning_rate_init=1e-2, early_stopping=True,
                            n_iter_no_change=5, max_iter=1000, random_state=0)
    reg.fit(X, y)
    assert reg.n_iter_ < 1000
    assert reg.history_.status == "early_stopped"
    assert len(reg.validation_loss_curve_) == reg.n_iter_
    # scikit-learn's rule: stop once more than n_iter_no_change = 5 epochs in a row failed to improve on the
    # best so far by more than tol, i.e. 6 epochs after the last improvement (sklearn's `count > n`);
    # the best epoch is the exact minimum, and its weights are the ones restored.
    curve = reg.validation_loss_curve_
    running, last = np.inf, None
    for i, v in enumerate(curve):
        if v < running - reg.tol:
            last = i
        running = min(running, v)
    assert reg.n_iter_ - last - 1 == 6
    best = reg.history_.best_epoch
    assert best == int(np.argmin(curve))
    assert reg.score(X, y) > 0.95
    # The best weights are restored. Rebuild the held-out split the way fit draws it (two seeds, then the
    # permutation) and evaluate the final network on it.
    rs = np.random.RandomState(0)
    rs.randint(np.iinfo(np.int32).max, size=2)
    val = rs.permutation(400)[:40]
    T_val = ((y[val] - reg._y_mean[0]) / reg._y_scale[0]).reshape(-1, 1)
    assert reg.network_.objective(X[val], T_val) == pytest.approx(reg.validation_loss_curve_[best], rel=1e-12)


def test_verbose_shows_progress_and_threads(capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    for early in (False, True):
        SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=5, early_stopping=early, verbose=True, n_threads=2,
                          random_state=0).fit(X, X[:, 0])
        err = capsys.readouterr().err
        assert "fit" in err and "5/5" in err  # plain lines here: capsys is not a terminal
        if early:
            assert "val " in err


def test_training_loss_stopping_rule():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X[:, 0] - X[:, 1]
    reg = SensiNetRegressor(hidden_layer_sizes=(8,), learning_rate_init=1e-2, tol=1e-2, n_iter_no_change=3,
                            max_iter=1000, random_state=0).fit(X, y)
    assert reg.n_iter_ < 1000 and reg.history_.status == "stopped"


def test_convergence_warning_when_max_iter_reached(sin3):
    X_tr, _, y_tr, _ = sin3
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X_tr, y_tr)


def test_divergence_error_propagates():
    rng = np.random.default_rng(0)
    X = 1e3 * rng.normal(size=(100, 3))
    y = X.sum(axis=1)
    reg = SensiNetRegressor(solver="sgd", learning_rate_init=1e3, random_state=0)
    with pytest.raises(DivergenceError, match="learning_rate") as info:
        reg.fit(X, y)
    assert isinstance(info.value, FloatingPointError)
    assert not hasattr(reg, "network_")


def test_batch_size_is_clipped_to_n_samples():
    X = np.arange(10.0).reshape(5, 2)
    y = np.arange(5.0)
    reg = SensiNetRegressor(hidden_layer_sizes=(4,), batch_size=1000, max_iter=3, tol=0.0, random_state=0)
    reg.fit(X, y)
    assert reg.history_.steps == 3  # one full batch per epoch


def test_architecture_and_l2():
    X = np.random.default_rng(0).normal(size=(30, 4))
    y = X[:, 0]
    reg = SensiNetRegressor(hidden_layer_sizes=(6, 6, 6), residual=True, l2=1e-3, max_iter=1, tol=0.0,
                            random_state=0)
    reg.fit(X, y)
    layers = reg.network_.layers
    assert isinstance(layers[0], Dense) and all(isinstance(layer, Residual) for layer in layers[1:3])
    assert isinstance(layers[3], Dense) and layers[3].activation == "identity"
    # l2 is absolute; alpha (1e-4) is MLP's penalty per step of B samples: 2 alpha / B on the MSE objective
    assert all(layer.l2 == 1e-3 + 2 * 1e-4 / 30 for layer in layers)
    linear = SensiNetRegressor(hidden_layer_sizes=(), max_iter=1, random_state=0)
    linear.fit(X, y)
    assert len(linear.network_.layers) == 1


# ------------------------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize("param,value", [
    ("activation", "foo"),
    ("solver", "foo"),
    ("learning_rate_init", -1e-3),
    ("learning_rate_init", 0.0),
    ("hidden_layer_sizes", (8, 0)),
    ("hidden_layer_sizes", (8.0,)),
    ("hidden_layer_sizes", "wide"),
    ("l2", -1.0),
    ("momentum", 1.5),
    ("batch_size", 0),
    ("max_iter", 0),
    ("tol", -1.0),
    ("validation_fraction", 1.0),
    ("n_iter_no_change", 0),
    ("dtype", "int8"),
    ("n_threads", 0),
    ("early_stopping", "yes"),
])
@pytest.mark.parametrize("Estimator", [SensiNetRegressor, SensiNetClassifier])
def test_bad_parameters_raise_value_error_naming_them(Estimator, param, value):
    X = np.random.default_rng(0).normal(size=(20, 2))
    y = (X[:, 0] > 0).astype(int)
    est = Estimator(**{param: value})  # construction never validates (scikit-learn rule)
    assert est.get_params()[param] is value or est.get_params()[param] == value
    with pytest.raises(ValueError, match=param):
        est.fit(X, y)


def test_residual_needs_equal_widths():
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="hidden_layer_sizes.*same width"):
        SensiNetRegressor(hidden_layer_sizes=(8, 4), residual=True).fit(X, X[:, 0])


def test_early_stopping_needs_two_samples():
    with pytest.raises(ValueError, match="early_stopping"):
        SensiNetRegressor(early_stopping=True).fit([[1.0, 2.0]], [1.0])


def test_hierarchical_solver_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "sensinet.hierarchical", None)  # as if the module did not exist
    X = np.random.default_rng(0).normal(size=(20, 2))
    for est in (SensiNetRegressor(solver="hierarchical"), SensiNetClassifier(solver="hierarchical")):
        with pytest.raises(ValueError, match=r"hierarchical.*needs the module sensinet\.hierarchical"):
            est.fit(X, (X[:, 0] > 0).astype(int))


def test_hierarchical_solver_needs_the_class(monkeypatch):
    monkeypatch.setitem(sys.modules, "sensinet.hierarchical", types.ModuleType("sensinet.hierarchical"))
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="HierarchicalOptimizer"):
        SensiNetRegressor(solver="hierarchical").fit(X, X[:, 0])


def test_hierarchical_solver_uses_registry_hook(monkeypatch):
    calls = []

    class FakeHierarchicalOptimizer:
        def __init__(self, lr):
            self.lr = lr

        def fit(self, network, X, Y, **kwargs):
            calls.append(sorted(kwargs))
            network.fit(X, Y, optimizer=Adam(lr=self.lr), **kwargs)

    module = types.ModuleType("sensinet.hierarchical")
    module.HierarchicalOptimizer = FakeHierarchicalOptimizer
    monkeypatch.setitem(sys.modules, "sensinet.hierarchical", module)
    X = np.random.default_rng(0).normal(size=(50, 2))
    reg = SensiNetRegressor(solver="hierarchical", hidden_layer_sizes=(8,), max_iter=5, learning_rate_init=1e-2,
                            random_state=0).fit(X, X[:, 0])
    assert len(calls) == 1 and "epochs" in calls[0] and "batch_size" in calls[0]
    assert isinstance(reg._solver_state, FakeHierarchicalOptimizer) and reg._solver_state.lr == 1e-2
    assert reg.n_iter_ == 5


# ------------------------------------------------------------------------------------------------ API
def test_unfitted_raises_not_fitted():
    with pytest.raises(NotFittedError):
        SensiNetRegressor().predict([[1.0]])
    with pytest.raises(NotFittedError):
        SensiNetClassifier().predict_proba([[1.0]])


def test_wrong_number_of_features_at_predict(iris):
    X_tr, _, y_tr, _ = iris
    clf = SensiNetClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X_tr, y_tr)
    with pytest.raises(ValueError, match="X has 3 features, but SensiNetClassifier is expecting 4"):
        clf.predict(X_tr[:, :3])


def test_pickle_and_deepcopy_round_trip(iris):
    X_tr, X_te, y_tr, _ = iris
    clf = SensiNetClassifier(hidden_layer_sizes=(8,), max_iter=10, warm_start=True, random_state=0).fit(X_tr, y_tr)
    for other in (pickle.loads(pickle.dumps(clf)), copy.deepcopy(clf)):
        np.testing.assert_array_equal(other.predict_proba(X_te), clf.predict_proba(X_te))
        assert other.network_ is not clf.network_
        assert other.history_.epochs == clf.history_.epochs
        other.fit(X_tr, y_tr)  # warm start after unpickling continues with the restored Adam state
        assert other.n_iter_ == 10 and other.t_ == 20 * len(y_tr) and len(other.loss_curve_) == 20
    np.testing.assert_array_equal(clf.n_iter_, 10)


def test_clone_and_params_round_trip():
    est = SensiNetRegressor(hidden_layer_sizes=[5, 5], activation="tanh", solver="sgd", random_state=3)
    params = est.get_params()
    assert params["hidden_layer_sizes"] == [5, 5] and params["solver"] == "sgd"
    cloned = clone(est)
    assert cloned.get_params() == params and cloned is not est
    assert est.set_params(l2=0.1) is est and est.l2 == 0.1


def test_pipeline_and_cross_validation(cancer):
    X_tr, _, y_tr, _ = cancer
    pipe = make_pipeline(StandardScaler(), SensiNetClassifier(hidden_layer_sizes=(16,), random_state=0))
    scores = cross_val_score(pipe, X_tr, y_tr, cv=3)
    assert scores.mean() > 0.9


def test_lazy_exports():
    assert sensinet.SensiNetRegressor is SensiNetRegressor
    assert sensinet.SensiNetClassifier is SensiNetClassifier


def test_dtype_follows_the_input_by_default():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X[:, 0] - X[:, 1]
    lab = (y > 0).astype(int)
    for X_in, want in ((X.astype(np.float32), np.float32), (X, np.float64), (X.astype(np.int64), np.float64)):
        reg = SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X_in, y)
        assert reg.network_.dtype == want and reg.predict(X_in).dtype == want
        clf = SensiNetClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X_in, lab)
        assert clf.network_.dtype == want and clf.predict_proba(X_in).dtype == want
    # an explicit dtype wins over the input's
    reg = SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=3, dtype="float64").fit(X.astype(np.float32), y)
    assert reg.network_.dtype == np.float64


def _clf_data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0.3, "yes", "no")
    return X, y


def test_coefs_and_intercepts_are_views_like_sklearn():
    X, y = _clf_data()
    clf = SensiNetClassifier(hidden_layer_sizes=(8, 6), max_iter=5, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 8), (8, 6), (6, 1)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (6,), (1,)]
    before = clf.predict_proba(X[:5])
    clf.coefs_[-1][:] = 0.0
    clf.intercepts_[-1][:] = 0.0
    np.testing.assert_allclose(clf.predict_proba(X[:5]), 0.5)  # the views reached the network
    assert not np.allclose(before, 0.5)
    res = SensiNetRegressor(hidden_layer_sizes=(5, 5), residual=True, max_iter=2).fit(X, X[:, 0])
    assert len(res.coefs_) == len(res.intercepts_) == 4
    with pytest.raises(ValueError):
        res.intercepts_[2][0] = 1.0  # the residual block's second weight has no bias
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SensiNetRegressor().coefs_


def test_partial_fit_continues_epoch_by_epoch():
    X, y = _clf_data()
    clf = SensiNetClassifier(hidden_layer_sizes=(16,), learning_rate_init=1e-2, random_state=0)
    with pytest.raises(ValueError, match="classes: the first partial_fit needs"):
        clf.partial_fit(X, y)
    losses = []
    for i in range(6):
        clf.partial_fit(X[i::2], y[i::2], classes=["no", "yes"] if i == 0 else None)
        losses.append(clf.loss_)
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 6 and losses[-1] < losses[0]  # MLP's n_iter_: this call's
    assert clf.t_ == sum(len(y[i::2]) for i in range(6))
    with pytest.raises(ValueError, match="not among classes"):
        clf.partial_fit(X[:4], ["maybe", "no", "yes", "no"])
    with pytest.raises(ValueError, match="classes: expected the classes of the first call"):
        clf.partial_fit(X[:4], y[:4], classes=["a", "b"])
    reg = SensiNetRegressor(hidden_layer_sizes=(16,), learning_rate_init=1e-2, batch_size=32, random_state=0)
    for i in range(5):
        reg.partial_fit(X, 100 + 10 * X[:, 0])
    assert reg.n_iter_ == 1 and len(reg.loss_curve_) == 5 and reg.loss_curve_[-1] < reg.loss_curve_[0]
    assert reg.score(X, 100 + 10 * X[:, 0]) > 0.5
    with pytest.raises(ValueError, match="partial_fit needs the 1 target"):
        reg.partial_fit(X, np.c_[X[:, 0], X[:, 1]])


def test_early_stopping_split_is_stratified_and_scored():
    X, y = _clf_data(400)
    y = np.where(np.arange(400) < 40, "rare", y)  # 10 % of one class
    clf = SensiNetClassifier(hidden_layer_sizes=(16,), early_stopping=True, validation_fraction=0.2, max_iter=15,
                             random_state=1).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.validation_loss_curve_)
    assert all(0 <= s <= 1 for s in clf.validation_scores_)
    assert clf.best_validation_score_ == max(clf.validation_scores_) and clf.best_loss_ is None
    # the stratified split keeps the rare class's share in the held-out set: 8 of 80
    from sensinet._estimator_data import held_out

    labels = np.unique(y, return_inverse=True)[1]
    rare = np.searchsorted(np.unique(y), "rare")
    for seed in range(5):  # an unstratified draw hits exactly 8 about one time in seven
        val, tr = held_out(400, 80, np.random.RandomState(seed), labels)
        assert np.sum(labels[val] == rare) == 8
        assert len(np.intersect1d(val, tr)) == 0 and len(val) + len(tr) == 400
    reg = SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(X, X[:, 0])
    assert reg.best_loss_ == min(reg.loss_curve_) and reg.validation_scores_ is None
    reg = SensiNetRegressor(hidden_layer_sizes=(8,), max_iter=10, batch_size=32, early_stopping=True,
                            random_state=0).fit(X, X[:, 0])
    # R^2 of the held-out set in standardized units equals the score in the original ones
    assert -1 < reg.validation_scores_[-1] <= 1


def test_a_fitted_estimator_goes_wherever_a_network_goes(tmp_path):
    X, y = _clf_data()
    clf = SensiNetClassifier(hidden_layer_sizes=(8,), activation="relu", max_iter=5, random_state=0).fit(X, y)
    T = (y == "yes").astype(float)
    net = clf.network_
    np.testing.assert_array_equal(sn.sensitivity(clf, X).matrices[0], sn.sensitivity(net, X).matrices[0])
    assert sn.explain(clf, X).n_clusters_ == sn.explain(net, X).n_clusters_
    sn.save(clf, tmp_path / "c.npz")
    np.testing.assert_array_equal(sn.load(tmp_path / "c.npz").network_.parameters, net.parameters)  # the whole estimator
    assert sn.group_sensitivity(clf, X, T, [{1: None}]).shape == (1,)
    assert sn.prune(clf, X, amount=0.5)[0].n_params < net.n_params
    grown, _ = sn.LayerInsertion(at_epochs=[1]).fit(clf, X, T, epochs=3)
    assert grown.n_layers == net.n_layers + 1
    before = net.parameters.copy()
    sn.HierarchicalOptimizer(budget=2, random_state=0).run(clf, X, T)  # trains the estimator's own network
    assert not np.array_equal(before, clf.network_.parameters)
    with pytest.raises(ValueError, match="not fitted yet"):
        sn.sensitivity(SensiNetRegressor(), X)
    from sklearn.neural_network import MLPRegressor

    mlp = MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, X[:, 0])
    assert sn.sensitivity(mlp, X).matrices[0].shape == (1, 4)  # converted, no manual step
    with pytest.raises(TypeError, match="converted to a copy that is trained and then lost"):
        sn.HierarchicalOptimizer(budget=1).run(mlp, X, X[:, 0])
    torch = pytest.importorskip("torch")
    module = sn.to_torch(clf)
    with torch.no_grad():
        out = module(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(out, net.forward(X), rtol=1e-12)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_estimators_weight_samples(solver):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = np.where(X[:, 0] > 0, 1.0, -1.0) + 0.1 * rng.normal(size=200)
    w = np.where(X[:, 1] > 0, 1.0, 0.0)  # only the samples with x2 > 0 count
    kw = dict(hidden_layer_sizes=(8,), solver=solver, learning_rate_init=1e-2, max_iter=60, random_state=0)
    weighted = SensiNetRegressor(**kw).fit(X, y, sample_weight=w)
    garbage = np.where(w > 0, y, 1e3)  # what a sample of weight 0 says must not matter
    ignored = SensiNetRegressor(**kw).fit(X, garbage, sample_weight=w)
    np.testing.assert_allclose(weighted.predict(X), ignored.predict(X), rtol=1e-12, atol=1e-12)
    clf = SensiNetClassifier(**kw).fit(X, y > 0, sample_weight=np.where(y > 0, 10.0, 1.0))
    plain = SensiNetClassifier(**kw).fit(X, y > 0)
    # upweighting the positive class raises its predicted share
    assert clf.predict_proba(X)[:, 1].mean() > plain.predict_proba(X)[:, 1].mean()
    with pytest.raises(ValueError, match="sample_weight: expected finite weights >= 0"):
        SensiNetRegressor(**kw).fit(X, y, sample_weight=-w)
    with pytest.raises(ValueError, match="solver='hierarchical' does not weight samples"):
        SensiNetRegressor(hidden_layer_sizes=(4,), solver="hierarchical", max_iter=2).fit(X, y, sample_weight=w)
