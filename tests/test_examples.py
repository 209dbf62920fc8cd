"""Every script in examples/ runs in its quick mode without an error or a warning."""
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted(p for p in (pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py")
                  if not p.name.startswith("_"))


def test_there_is_an_example_per_capability():
    names = {p.stem for p in EXAMPLES}
    assert {"train_network", "neuron_sensitivity", "layer_insertion", "pruning", "grow_and_shrink",
            "relu_clusters", "hierarchical", "estimators", "interop", "your_data"} <= names
    assert names <= set(EXPECTED)  # every example's output is checked


# What an example's output must say (beyond running quietly), where the example checks a claim.
EXPECTED = {
    "neuron_sensitivity": ["top inputs: [('"],  # the input site's three most important features, not []
    "train_network": ["test RMSE (standardized target)"],
    "estimators": ["activation patterns on the training set"],
    "grow_and_shrink": ["the same network from scratch for the same work"],
    "hierarchical": ["full-gradient equivalents", "neuron level: J"],
    "layer_insertion": ["inserted at 1"],
    "pruning": ["magnitude"],
    "relu_clusters": ["merged into 10 clusters: R^2"],
    "your_data": ["read diabetes.csv: 442 samples", "task regression", "the best criterion on diabetes is"],
    "interop": ["same weights True", "Linear+BatchNorm1d+ReLU+Dropout+Linear -> ['dense:32', 'dense:1']",
                "ONNX -> sensinet: same layers True", "SensiNetRegressor: predictions bitwise equal True"],
}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_quietly(script, tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    pytest.importorskip("pandas")
    env = dict(os.environ, MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-W", "error", str(script), "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=script.parent, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr == "", r.stderr[-3000:]
    assert r.stdout.strip()
    for line in EXPECTED.get(script.stem, []):
        if "torch" in line.lower() or "weights" in line:
            pytest.importorskip("torch")
        if "ONNX" in line:
            pytest.importorskip("onnxruntime")
        assert line in r.stdout, r.stdout
