"""Fitted estimators in model files: ``sn.save(estimator)`` / ``sn.load`` give back the whole estimator
(bitwise predictions, target scale, classes, feature names, fitted attributes, optimizer state), checked on
load; plain network files are unchanged (version 1) and old files still load."""
from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

import sensinet as sn

pytest.importorskip("sklearn")
from sklearn.datasets import load_diabetes, load_iris  # noqa: E402


def _diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, y


def _rewrite(path, edit):
    """Apply edit(header_dict, members_dict) to a saved file and write it back (as an attacker would)."""
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    header = json.loads(members["header"].tobytes().decode())
    edit(header, members)
    members["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **members)


@pytest.fixture(scope="module")
def regressor():
    X, y = _diabetes()
    reg = sn.SensiNetRegressor(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    return reg, X, y


@pytest.fixture(scope="module")
def classifier():
    X, y = load_iris(return_X_y=True)
    labels = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]  # object labels, as pandas gives
    clf = sn.SensiNetClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, labels)
    return clf, X, labels


def test_regressor_round_trip_bitwise(tmp_path, regressor):
    reg, X, y = regressor
    path = tmp_path / "reg.npz"
    sn.save(reg, path)
    back = sn.load(path)
    assert type(back) is sn.SensiNetRegressor
    # the regressor's outputs in y's units (208.8, not the standardized 0.736 a bare network gives)
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    assert back.score(X, y) == reg.score(X, y)
    assert back.get_params() == reg.get_params()
    for key in ("n_features_in_", "n_iter_", "loss_curve_", "loss_", "best_loss_", "n_outputs_"):
        assert getattr(back, key) == getattr(reg, key), key
    np.testing.assert_array_equal(back._y_mean, reg._y_mean)
    np.testing.assert_array_equal(back._y_scale, reg._y_scale)
    assert back.history_ == reg.history_
    assert abs(float(back.predict(X[:1])[0])) > 10  # in the target's units


def test_classifier_round_trip_with_object_labels(tmp_path, classifier):
    clf, X, labels = classifier
    path = tmp_path / "clf.npz"
    sn.save(clf, path)
    back = sn.load(path)
    assert type(back) is sn.SensiNetClassifier
    assert back.classes_.dtype == object and list(back.classes_) == list(clf.classes_)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    assert back.score(X, labels) == clf.score(X, labels)


def test_feature_names_kept(tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = _diabetes()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    reg = sn.SensiNetRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(frame, y)
    sn.save(reg, tmp_path / "r.npz")
    back = sn.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(back.feature_names_in_, reg.feature_names_in_)
    np.testing.assert_array_equal(back.predict(frame), reg.predict(frame))
    with pytest.warns(UserWarning, match="feature names"):  # scikit-learn's own check still applies
        back.predict(X)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_warm_start_continues_as_the_original_would(tmp_path, solver):
    """The optimizer state travels: a loaded estimator's next warm-started fit equals the original's."""
    X, y = _diabetes()
    kw = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=3, warm_start=True, random_state=1, tol=0.0)
    a = sn.SensiNetRegressor(**kw).fit(X, y)
    sn.save(a, tmp_path / "a.npz")
    b = sn.load(tmp_path / "a.npz")
    if solver != "lbfgs":
        np.testing.assert_array_equal(b._solver_state.state_m, a._solver_state.state_m)
        assert b._solver_state.t == a._solver_state.t > 0
    with pytest.warns(Warning):  # max_iter reached: ConvergenceWarning, on both alike
        a.fit(X, y)
    with pytest.warns(Warning):
        b.fit(X, y)
    np.testing.assert_array_equal(b.network_.parameters, a.network_.parameters)
    assert b.n_iter_ == a.n_iter_


def test_float32_and_residual(tmp_path):
    X, y = _diabetes()
    reg = sn.SensiNetRegressor(hidden_layer_sizes=(8, 8), residual=True, max_iter=2, random_state=0)
    reg.fit(X.astype(np.float32), y)
    sn.save(reg, tmp_path / "r.npz")
    back = sn.load(tmp_path / "r.npz")
    assert back.network_.dtype == np.float32
    np.testing.assert_array_equal(back.predict(X.astype(np.float32)), reg.predict(X.astype(np.float32)))


def test_estimator_file_is_version_2_and_network_files_stay_version_1(tmp_path, regressor):
    reg = regressor[0]
    sn.save(reg, tmp_path / "e.npz")
    sn.save(reg.network_, tmp_path / "n.npz")
    for name, version in (("e.npz", 2), ("n.npz", 1)):
        with np.load(tmp_path / name, allow_pickle=False) as z:
            assert json.loads(z["header"].tobytes())["version"] == version
    assert type(sn.load(tmp_path / "n.npz")) is sn.Network


def test_no_pickle_in_estimator_file(tmp_path, classifier):
    sn.save(classifier[0], tmp_path / "c.npz")
    with zipfile.ZipFile(tmp_path / "c.npz") as zf:
        for name in zf.namelist():
            assert b"pickle" not in zf.read(name)[:200]
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:  # loads without pickle
        assert all(z[k].dtype != object for k in z.files)


def test_file_object_round_trip(regressor):
    reg, X, _ = regressor
    buf = io.BytesIO()
    sn.save(reg, buf)
    buf.seek(0)
    np.testing.assert_array_equal(sn.load(buf).predict(X), reg.predict(X))


def test_unfitted_estimator_refused(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        sn.save(sn.SensiNetRegressor(), tmp_path / "x.npz")


def test_random_state_instance_warns_and_is_dropped(tmp_path):
    X, y = _diabetes()
    reg = sn.SensiNetRegressor(hidden_layer_sizes=(4,), max_iter=1, random_state=np.random.RandomState(0))
    with pytest.warns(Warning):
        reg.fit(X, y)
    with pytest.warns(UserWarning, match="random_state"):
        sn.save(reg, tmp_path / "x.npz")
    assert sn.load(tmp_path / "x.npz").random_state is None


def test_pickle_of_a_loaded_estimator(tmp_path, classifier):
    clf, X, _ = classifier
    sn.save(clf, tmp_path / "c.npz")
    back = pickle.loads(pickle.dumps(sn.load(tmp_path / "c.npz")))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("edit, match", [
    (lambda h, m: h["estimator"].update({"class": "MLPRegressor"}), r"header.estimator.class: expected one of"),
    (lambda h, m: h["estimator"]["params"].update({"bogus": 1}), r"unknown parameter\(s\) \['bogus'\]"),
    (lambda h, m: h["estimator"]["params"].update({"max_iter": -1}), r"header.estimator.params: invalid value"),
    (lambda h, m: h["estimator"]["attributes"].update({"n_features_in_": 3}),
     r"attributes.n_features_in_: expected 10"),
    (lambda h, m: h["estimator"]["attributes"].update({"evil_": 3}), r"unknown attribute\(s\) \['evil_'\]"),
    (lambda h, m: h["estimator"]["attributes"].pop("n_iter_"), r"attributes.n_iter_: a fitted"),
    (lambda h, m: h["estimator"]["params"].update({"hidden_layer_sizes": {"tuple": [5]}}),
     r"attributes.network: the saved network"),
    (lambda h, m: h["estimator"].pop("optimizer"), r"header.estimator: expected the fields"),
    (lambda h, m: h["estimator"]["attributes"].update({"loss_": {"os.system": "x"}}), r"unknown tag 'os.system'"),
    (lambda h, m: m.pop(sorted(k for k in m if k.startswith("a"))[0]), r"archive: expected the estimator's array"),
    (lambda h, m: m.update(a0=np.zeros(3)), r"a0: expected dtype"),
    (lambda h, m: m.update(a0=np.full_like(m["a0"], np.nan)), r"a0: expected finite values"),
    (lambda h, m: h.update(version=1), r"unknown field\(s\) \['estimator'\]"),
])
def test_tampered_estimator_files_rejected(tmp_path, regressor, edit, match):
    path = tmp_path / "r.npz"
    sn.save(regressor[0], path)
    _rewrite(path, edit)
    with pytest.raises(ValueError, match=match):
        sn.load(path)


def test_extra_member_in_a_network_file_rejected(tmp_path, regressor):
    path = tmp_path / "n.npz"
    sn.save(regressor[0].network_, path)
    _rewrite(path, lambda h, m: m.update(a0=np.zeros(2)))
    with pytest.raises(ValueError, match=r"unexpected extra member\(s\) \['a0'\]"):
        sn.load(path)


def test_version_1_file_written_by_the_previous_release_loads():
    """A network file exactly as sensinet 0.2 wrote it (committed bytes) still loads."""
    from pathlib import Path

    path = Path(__file__).parent / "data" / "network_v1.npz"
    net = sn.load(path)
    assert type(net) is sn.Network and net.n_inputs == 3 and net.metadata == {"written_by": "sensinet 0.2"}
    np.testing.assert_array_equal(net.parameters, np.arange(net.n_params, dtype=np.float64) / 8)
