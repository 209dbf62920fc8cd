"""scikit-learn's MLP names and behaviour: every MLPRegressor / MLPClassifier parameter with its default,
alpha's scaling, the learning-rate schedules, MLP's stopping count, n_iter_ / t_ / n_layers_ /
out_activation_ / n_outputs_, multilabel y, and predict_log_proba = log(predict_proba)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402

import sensinet as sn  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, np.sin(X[:, 0]) + 0.5 * X[:, 1]


@pytest.mark.parametrize("ours, theirs", [(sn.SensiNetRegressor, MLPRegressor), (sn.SensiNetClassifier, MLPClassifier)])
def test_every_mlp_parameter_with_its_default(ours, theirs):
    mine, mlp = ours().get_params(), theirs().get_params()
    missing = sorted(set(mlp) - set(mine) - {"loss"})  # MLPRegressor's loss: only "squared_error" is sensinet's
    assert missing == []
    for name in mlp:
        if name in mine:
            assert mine[name] == mlp[name], name


def test_mlp_code_runs_unchanged():
    X, y = _data()
    kw = dict(hidden_layer_sizes=(20,), activation="logistic", solver="sgd", alpha=1e-3, batch_size=16,
              learning_rate="adaptive", learning_rate_init=0.05, power_t=0.5, max_iter=30, shuffle=False,
              random_state=0, tol=1e-4, momentum=0.8, nesterovs_momentum=False, early_stopping=True,
              validation_fraction=0.2, beta_1=0.8, beta_2=0.99, epsilon=1e-7, n_iter_no_change=5, max_fun=100)
    reg = sn.SensiNetRegressor(**kw).fit(X, y)
    assert reg.network_.specs[0].activation == "sigmoid" and reg.out_activation_ == "identity"
    assert reg.n_layers_ == 3 and reg.n_outputs_ == 1
    assert reg.score(X, y) > 0.5


@pytest.mark.parametrize("solver, cls, factor", [("adam", sn.SensiNetRegressor, 2.0), ("lbfgs", sn.SensiNetRegressor, 2.0),
                                                  ("sgd", sn.SensiNetClassifier, 1.0)])
def test_alpha_is_scaled_as_mlp_scales_it(solver, cls, factor):
    """MLP adds alpha / (2 B) ||W||^2 to each step's mean loss (B samples; n for L-BFGS); its regression loss is
    half the squared error, sensinet's the squared error, hence twice the decay for the regressor."""
    X, y = _data(150)
    y = y if cls is sn.SensiNetRegressor else (y > 0).astype(int)
    est = cls(hidden_layer_sizes=(5,), solver=solver, alpha=0.3, l2=0.01, batch_size=50, max_iter=2).fit(X, y)
    B = 150 if solver == "lbfgs" else 50
    assert all(s.l2 == pytest.approx(0.01 + factor * 0.3 / B, rel=1e-15) for s in est.network_.specs)
    # a warm start on data of another size moves the decay with it, keeping weights and optimizer state
    if solver == "adam":
        est.set_params(warm_start=True, batch_size=30)
        w = est.network_.parameters.copy()
        est.set_params(max_iter=1, learning_rate_init=1e-12).fit(X, y)
        assert est.network_.specs[0].l2 == pytest.approx(0.01 + factor * 0.3 / 30)
        np.testing.assert_allclose(est.network_.parameters, w, atol=1e-9)


def test_number_as_learning_rate_is_the_deprecated_step_size():
    X, y = _data()
    a = sn.SensiNetRegressor(hidden_layer_sizes=(6,), learning_rate_init=0.02, max_iter=5, random_state=0).fit(X, y)
    with pytest.warns(FutureWarning, match="learning_rate_init"):
        b = sn.SensiNetRegressor(hidden_layer_sizes=(6,), learning_rate=0.02, max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    with pytest.raises(ValueError, match="give the step size once"):
        sn.SensiNetRegressor(learning_rate=0.02, learning_rate_init=0.05).fit(X, y)
    with pytest.raises(ValueError, match="learning_rate: expected one of"):
        sn.SensiNetRegressor(learning_rate="optimal").fit(X, y)


def test_invscaling_schedule():
    X, y = _data()
    reg = sn.SensiNetRegressor(hidden_layer_sizes=(6,), solver="sgd", learning_rate="invscaling",
                               learning_rate_init=0.05, power_t=0.3, max_iter=7, tol=0.0, random_state=0).fit(X, y)
    assert reg.n_iter_ == 7 and reg.t_ == 7 * len(y)
    assert reg._solver_state.lr == pytest.approx(0.05 / (reg.t_ + 1) ** 0.3, rel=1e-15)
    # the first epoch runs at learning_rate_init (bitwise the constant schedule's), the later ones slower
    const = sn.SensiNetRegressor(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05, max_iter=7, tol=0.0,
                                 random_state=0).fit(X, y)
    # (one step per epoch here, whose loss is measured before the step: the rate shows from the third on)
    assert reg.loss_curve_[:2] == const.loss_curve_[:2] and reg.loss_curve_[2] != const.loss_curve_[2]


def test_adaptive_schedule_divides_by_five_until_1e_6():
    """With a tol no loss can beat, every epoch after the first counts as no improvement: the rate is divided by
    5 each time the count exceeds n_iter_no_change, and training stops once the rate is at most 1e-6."""
    X, y = _data()
    reg = sn.SensiNetRegressor(hidden_layer_sizes=(6,), solver="sgd", learning_rate="adaptive",
                               learning_rate_init=1e-2, n_iter_no_change=2, tol=1e9, max_iter=500,
                               random_state=0).fit(X, y)
    divisions = int(np.ceil(np.log(1e-2 / 1e-6) / np.log(5)))  # 1e-2 / 5**6 = 6.4e-7 <= 1e-6
    assert reg._solver_state.lr == pytest.approx(1e-2 / 5 ** divisions)
    assert reg.n_iter_ == 1 + 3 * (divisions + 1)  # one best epoch, then 3 failed epochs per trigger
    assert reg.history_.status == "ftol"


@pytest.mark.parametrize("early_stopping", [False, True])
def test_stops_on_the_epoch_mlp_stops(early_stopping):
    X, y = _data()
    kw = dict(hidden_layer_sizes=(6,), tol=1e9, n_iter_no_change=4, max_iter=100, early_stopping=early_stopping,
              random_state=0)
    ours = sn.SensiNetRegressor(**kw).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPRegressor(**kw).fit(X, y)
    assert ours.n_iter_ == mlp.n_iter_ == 6


def test_n_iter_and_t_under_warm_start_and_partial_fit():
    X, y = _data()
    reg = sn.SensiNetRegressor(hidden_layer_sizes=(6,), max_iter=4, tol=0.0, warm_start=True, random_state=0)
    reg.fit(X, y).fit(X, y)
    mlp = MLPRegressor(hidden_layer_sizes=(6,), max_iter=4, tol=0.0, warm_start=True, random_state=0)
    mlp.fit(X, y).fit(X, y)
    assert (reg.n_iter_, reg.t_, len(reg.loss_curve_)) == (mlp.n_iter_, mlp.t_, len(mlp.loss_curve_)) == (4, 960, 8)
    lb = sn.SensiNetRegressor(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=5).fit(X, y)
    assert lb.t_ == 0  # as MLP's L-BFGS


def test_multilabel_classification():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 5))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5]).astype(int)
    clf = sn.SensiNetClassifier(hidden_layer_sizes=(16,), batch_size=32, max_iter=300, random_state=0).fit(X, Y)
    assert clf.n_outputs_ == 3 and clf.out_activation_ == "logistic" and list(clf.classes_) == [0, 1, 2]
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 3) and clf.predict(X).shape == (200, 3)
    np.testing.assert_array_equal(clf.predict(X), (proba > 0.5).astype(int))
    mlp = MLPClassifier(hidden_layer_sizes=(16,), batch_size=32, max_iter=300, random_state=0).fit(X, Y)
    assert mlp.predict(X).shape == clf.predict(X).shape and mlp.out_activation_ == clf.out_activation_
    assert clf.score(X, Y) > 0.9 and clf.score(X, Y) >= mlp.score(X, Y) - 0.05  # subset accuracy, as sklearn
    with pytest.raises(ValueError, match="multilabel indicator"):
        sn.SensiNetClassifier().fit(X, np.column_stack([Y[:, 0], Y[:, 1] * 3]))


def test_out_activation_and_outputs():
    X, y = _data()
    two = sn.SensiNetClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, y > 0)
    three = sn.SensiNetClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X, np.digitize(y, [-0.5, 0.5]))
    assert (two.out_activation_, two.n_outputs_) == ("logistic", 1)
    assert (three.out_activation_, three.n_outputs_) == ("softmax", 3)
    assert sn.SensiNetRegressor(hidden_layer_sizes=(4, 4), max_iter=2).fit(X, np.c_[y, y]).n_outputs_ == 2


def test_predict_log_proba_is_log_of_predict_proba_where_it_underflows():
    X, y = _data()
    clf = sn.SensiNetClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=50, random_state=0).fit(X, y > 0)
    clf.network_.parameters = clf.network_.parameters * 300  # logits far beyond exp's range
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(clf.predict_log_proba(X), np.log(clf.predict_proba(X)))
    assert np.isneginf(clf.predict_log_proba(X)).any()


@pytest.mark.parametrize("name, value, match", [
    ("batch_size", "big", "batch_size"), ("power_t", -1.0, "power_t"), ("beta_1", 1.0, "beta_1"),
    ("epsilon", 0.0, "epsilon"), ("max_fun", 0, "max_fun"), ("nesterovs_momentum", "yes", "nesterovs_momentum"),
    ("shuffle", 2, "shuffle"), ("alpha", -1.0, "alpha"), ("activation", "gelu", "activation"),
    ("learning_rate_init", 0.0, "learning_rate_init"),
])
def test_bad_mlp_parameters_named(name, value, match):
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        sn.SensiNetRegressor(**{name: value}).fit(X, y)
