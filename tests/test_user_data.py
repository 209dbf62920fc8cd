"""The user's own data: tables and arrays checked column by column (load_table, from_arrays), the task
inferred only when unambiguous, and a study run on them with the same records whoever executes it (serially,
joblib, Dask), resumable, keyed by the data's digest."""
from __future__ import annotations

import json

import numpy as np
import pytest

import sensinet as sn
from sensinet.datasets import data_digest, from_arrays, load_table
from sensinet.experiments import hierarchical as study

pytest.importorskip("sklearn")
from sklearn.datasets import load_diabetes  # noqa: E402


def _csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory):
    X, y = load_diabetes(return_X_y=True)
    names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    path = tmp_path_factory.mktemp("data") / "diabetes.csv"
    return _csv(path, names + ["progression"], np.column_stack([X, y]).tolist())


def test_csv_regression_table(diabetes_csv):
    d = load_table(diabetes_csv, "progression")
    X, y = load_diabetes(return_X_y=True)
    assert d.task == "regression" and d.feature_names[:3] == ("age", "sex", "bmi") and d.target_name == "progression"
    np.testing.assert_array_equal(d.X, X)  # repr round trip of every float
    np.testing.assert_array_equal(d.y, y)


def test_classification_labels_and_task_inference(tmp_path):
    rows = [[0.1 * i, i % 3, "yes" if i % 2 else "no", i % 2, i % 5] for i in range(20)]
    path = _csv(tmp_path / "t.csv", ["a", "b", "label", "flag", "grade"], rows)
    d = load_table(path, "label")
    assert d.task == "classification" and d.classes == ("no", "yes") and set(d.y) == {0, 1}
    numeric = _csv(tmp_path / "n.csv", ["a", "b", "flag", "grade"], [[r[0], r[1], r[3], r[4]] for r in rows])
    assert load_table(numeric, "flag").task == "classification"  # two integer values
    assert load_table(numeric, "a").task == "regression"  # non-integer numbers
    with pytest.raises(ValueError, match=r"target 'grade': holds 5 distinct integers.*--task"):
        load_table(numeric, "grade")
    graded = load_table(numeric, "grade", task="classification")
    assert graded.classes == (0, 1, 2, 3, 4) and isinstance(graded.classes[0], int)
    with pytest.raises(ValueError, match=r"target 'label': task='regression' needs numbers"):
        load_table(path, "label", task="regression")


@pytest.mark.parametrize("header, rows, target, match", [
    (["a", "b", "y"], [[1, "", 3.5], [2, 5, 4.5], [3, 6, 5.5]], "y", r"missing values \(count\): 'b \(1\)'"),
    (["a", "city", "y"], [[1, "x", 3.5], [2, "y", 4.5]], "y", r"'city' hold non-numeric values"),
    (["a", "c", "y"], [[1, 7, 3.5], [2, 7, 4.5]], "y", r"'c' are constant"),
    (["a", "b", "y"], [[1, 2, 3], [2, 5, "?"]], "y", r"target 'y': 1 missing value"),
    (["a", "b", "y"], [[1, 2, 3], [2, 5, 4]], "z", r"target: no column 'z'.*'a', 'b', 'y'"),
    (["a", "b", "y"], [[1, 2, 3], [2, 5, 4]], None, r"target: name the target column"),
    (["a", "a", "y"], [[1, 2, 3], [2, 5, 4]], "y", r"'a' appear more than once"),
    (["a", "b", "y"], [[1, 2, 3], [2, 5]], "y", r"line\(s\) \[3\]"),
    (["a", "b", "y"], [[1, "inf", 3.5], [2, 5, 4.5]], "y", r"'b' hold infinite values"),
    (["y"], [[1], [2]], "y", r"at least one feature column"),
    (["a", "y"], [[1, 1], [2, 1]], "y", r"target 'y': every value is the same"),
])
def test_bad_tables_name_the_column(tmp_path, header, rows, target, match):
    with pytest.raises(ValueError, match=match):
        load_table(_csv(tmp_path / "bad.csv", header, rows), target)


def test_npz_and_arrays_and_other_files(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    np.savez(tmp_path / "d.npz", X=X, y=y, feature_names=np.array([f"f{i}" for i in range(10)]))
    d = load_table(tmp_path / "d.npz")
    assert d.feature_names[0] == "f0" and d.task == "regression"
    assert data_digest(d) == data_digest(from_arrays(X, y, task="regression"))
    np.savez(tmp_path / "e.npz", X=X)
    with pytest.raises(ValueError, match=r"needs arrays 'X' and 'y'"):
        load_table(tmp_path / "e.npz")
    (tmp_path / "f.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"expected a .csv, .parquet or .npz file"):
        load_table(tmp_path / "f.xlsx", "y")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_table(tmp_path / "missing.csv", "y")
    with pytest.raises(ValueError, match=r"x1.*constant"):
        from_arrays(np.c_[X[:, 0], np.ones(len(y))], y)
    with pytest.raises(ValueError, match="task: expected one of"):
        from_arrays(X, y, task="ranking")


def test_parquet_when_pyarrow_is_there(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X, y = load_diabetes(return_X_y=True)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(10)]).assign(target=y)
    frame.to_parquet(tmp_path / "d.parquet")
    np.testing.assert_array_equal(load_table(tmp_path / "d.parquet", "target").X, X)


# ---------------------------------------------------------------------------------------------- a study on them
FAST = dict(quick=True, n_starts=2, budget=6, progress=False, figures=False)


def _strip(records):
    return [{k: v for k, v in r.items() if k not in ("time", "seconds", "monitor_seconds", "curve", "device")}
            for r in records]


def test_hierarchical_study_on_user_data(tmp_path, diabetes_csv):
    d = load_table(diabetes_csv, "progression")
    res = study.run(tmp_path / "s", data=[d], **FAST)
    recs = res["records"]
    assert {r["dataset"] for r in recs} == {"diabetes"} and all(r["data"] == data_digest(d) for r in recs)
    assert (tmp_path / "s" / "table_diabetes.md").exists() and (tmp_path / "s" / "records.jsonl").exists()
    # the same records from joblib workers, from (X, y) arrays, and resumed from the file without running again
    par = study.run(tmp_path / "p", data=[d], n_jobs=2, **FAST)["records"]
    assert _strip(par) == _strip(recs)
    again = study.run(tmp_path / "s", data=[(d.X, d.y)], **FAST)["records"]
    assert [r["dataset"] for r in again] == ["data0"] * len(recs)  # other name: other runs, same numbers
    assert [r["train_mse"] for r in again] == [r["train_mse"] for r in recs]
    # another file under the same name gets other keys: a resumed study never mixes data
    other = from_arrays(d.X[:-10], d.y[:-10], name="diabetes")
    keys = {r["key"] for r in study.run(tmp_path / "s", data=[other], **FAST)["records"]}
    assert not keys & {r["key"] for r in recs}


def test_user_data_on_a_dask_cluster_equals_serial(tmp_path, diabetes_csv):
    distributed = pytest.importorskip("dask.distributed")
    d = load_table(diabetes_csv, "progression")
    serial = study.run(tmp_path / "a", data=[d], **FAST)["records"]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  protocol="tcp://", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = study.run(tmp_path / "b", data=[d], scheduler=client, **FAST)["records"]
    assert _strip(remote) == _strip(serial)


def test_classification_data_refused_by_the_regression_study(tmp_path):
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match="compares training MSE on regression data; .* is a classification"):
        study.run(tmp_path / "c", data=[(X, (X[:, 0] > 0).astype(int))], **FAST)


def test_cli_runs_a_study_on_a_csv(tmp_path, diabetes_csv, capsys):
    from sensinet.cli import main

    out = tmp_path / "cli"
    assert main(["experiment", "hierarchical", "--quick", "--starts", "2", "--budget", "6", "--data",
                 str(diabetes_csv), "--target", "progression", "--out", str(out)]) == 0
    assert "### diabetes" in (out / "summary.md").read_text()
    build = json.loads((out / "build.json").read_text())
    assert build["arguments"]["target"] == "progression"
    assert main(["experiment", "hierarchical", "--quick", "--data", str(diabetes_csv), "--target", "nope",
                 "--out", str(tmp_path / "x")]) == 2
    assert "target: no column 'nope'" in capsys.readouterr().err


def test_pruning_study_on_user_data(tmp_path):
    from sensinet.experiments import pruning

    X, y = load_diabetes(return_X_y=True)
    reg = from_arrays(X, y, name="diabetes")
    clf = from_arrays(X, (y > np.median(y)).astype(int), name="diabetes_high")
    kw = dict(seeds=2, quick=True, progress=False)
    res = pruning.run(tmp_path / "a", data=[reg, clf], **kw)
    recs = [json.loads(line) for line in (tmp_path / "a" / "records.jsonl").read_text().splitlines()[1:]]
    assert {r["dataset"] for r in recs} == {"diabetes", "diabetes_high"}
    assert all("accuracy" in r for r in recs if r["dataset"] == "diabetes_high")  # classified: accuracy too
    par = pruning.run(tmp_path / "b", data=[reg, clf], n_jobs=2, **kw)
    assert par["primary"] == res["primary"] and par["grow_shrink"] == res["grow_shrink"]
    runs = (tmp_path / "a" / "runs.jsonl").read_text().splitlines()
    again = pruning.run(tmp_path / "a", data=[reg, clf], **kw)  # resumed: nothing runs again
    assert again["primary"] == res["primary"] and (tmp_path / "a" / "runs.jsonl").read_text().splitlines() == runs


def test_insertion_study_on_user_data(tmp_path):
    from sensinet.experiments import insertion

    X, y = load_diabetes(return_X_y=True)
    for target, loss in ((y, "mse"), ((y > np.median(y)).astype(int), "cross_entropy")):
        d = from_arrays(X, target, name="diabetes")
        res = insertion.run(tmp_path / loss, quick=True, runs=2, configs=["ff5"], progress=False, data=d)
        par = insertion.run(tmp_path / f"{loss}_jobs", quick=True, runs=2, configs=["ff5"], progress=False, data=d,
                            n_jobs=2)
        keep = ("variant", "train_loss_mean", "test_error_mean", "positions")
        assert [{k: r[k] for k in keep} for r in par["rows"]] == [{k: r[k] for k in keep} for r in res["rows"]]
        assert res["rows"][0]["positions"] == "1:2"  # an insertion happened in both runs
        run = json.loads((tmp_path / loss / "runs.jsonl").read_text().splitlines()[0])
        assert run["dataset"] == "diabetes" and len(run["loss"]) <= 200 and run["epochs"][-1] == 600
    with pytest.raises(ValueError, match="one data set at a time"):
        insertion.run(tmp_path / "two", quick=True, data=[d, d], progress=False)


def test_clusters_study_on_user_data(tmp_path):
    from sensinet.experiments import clusters

    X, y = load_diabetes(return_X_y=True)
    d = from_arrays(X, np.digitize(y, np.percentile(y, [33, 66])), name="diabetes3", task="classification")
    res = clusters.run(tmp_path / "a", quick=True, seeds=[0, 1], progress=False, data=[d])["user"]["diabetes3"]
    par = clusters.run(tmp_path / "b", quick=True, seeds=[0, 1], progress=False, data=[d], n_jobs=2)["user"]
    assert par["diabetes3"] == res and res["task"] == "classification" and res["seeds"] == [0, 1]
    recs = [json.loads(line) for line in (tmp_path / "a" / "runs.jsonl").read_text().splitlines()]
    for r in recs:
        assert r["loss"] == "cross_entropy" and r["n_clusters"] == r["n_clusters_grid"][-1]
        assert r["fidelity"]["hamming"]["r2"][-1] == pytest.approx(1.0)  # unmerged: the network itself, exactly
        assert 0 <= r["merged"]["agreement"] <= 1
    assert "| seed |" in (tmp_path / "a" / "clusters_diabetes3.md").read_text()
