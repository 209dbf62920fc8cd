"""Shared helpers of the engine's correctness tests: finite differences, random networks, a NumPy reference."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sensinet as sn

ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus")
KINKED = ("relu", "leaky_relu")
HEADS = {  # name -> (loss, n_outputs)
    "mse1": ("mse", 1),
    "mse3": ("mse", 3),
    "ce3": ("cross_entropy", 3),
    "bce1": ("binary_cross_entropy", 1),
    "bce2": ("binary_cross_entropy", 2),
}


# ---------------------------------------------------------------------------------------------- numerics
def fd_gradient(f, theta, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of a scalar function f(theta), in float64."""
    theta = np.array(theta, dtype=np.float64)
    g = np.empty_like(theta)
    for i in range(theta.size):
        t = theta.copy()
        t[i] = theta[i] + h
        fp = f(t)
        t[i] = theta[i] - h
        fm = f(t)
        g[i] = (fp - fm) / (2 * h)
    return g


def rel_err(a, b) -> float:
    """max |a - b| / max(max |b|, tiny): the error of a relative to the reference b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---------------------------------------------------------------------------------------------- networks
def make_net(n_inputs, layers, loss="mse", seed=0, dtype=np.float64, bias_scale=0.3) -> sn.Network:
    """A network with its default initialisation plus random (nonzero) biases."""
    net = sn.Network(n_inputs, layers, loss=loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    for l in range(net.n_layers):
        for name, v in net.layer_parameters(l).items():
            if v.ndim == 1:
                v[:] = rng.normal(0.0, bias_scale, v.shape)
    return net


def random_data(net: sn.Network, n: int = 12, seed: int = 0, soft: bool = False):
    """Inputs X ~ N(0, 1) and targets of the network's head (labels or, with soft, probabilities)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, net.n_inputs))
    k = net.n_outputs
    if net.loss == "mse":
        y = rng.normal(size=(n, k)) if k > 1 else rng.normal(size=n)
    elif net.loss == "cross_entropy":
        y = rng.dirichlet(np.ones(k), size=n) if soft else rng.integers(0, k, size=n)
    else:
        y = rng.uniform(size=(n, k)) if soft else rng.integers(0, 2, size=(n, k)).astype(np.float64)
    return X, y


def mixed_layers(width: int, act: str, n_out: int = 1, head_act: str = "identity") -> list:
    """Dense -> Residual(weights=2, hidden != width) -> Residual(weights=1) -> Dense head."""
    return [sn.Dense(width, act), sn.Residual(width, act, hidden=width + 2, weights=2),
            sn.Residual(width, act, weights=1), sn.Dense(n_out, head_act)]


# ---------------------------------------------------------------------------------------------- NumPy reference
def draw_hidden_layers(draw, n_layers: int, width, *, l2=(0.0,), alphas=(0.01,)) -> list:
    """Hypothesis: n_layers hidden layers, each a Dense layer of a new width (1-6) or a residual block (two
    weights with a hidden width 1-6, or one) of the current width; width None makes the first one Dense.
    l2 and alphas are the choices of weight decay and of the leaky_relu slope."""
    from hypothesis import strategies as st  # optional for the rest of the suite

    layers = []
    for _ in range(n_layers):
        act = draw(st.sampled_from(ACTIVATIONS))
        decay = draw(st.sampled_from(l2))
        alpha = draw(st.sampled_from(alphas)) if act == "leaky_relu" else 0.01
        kind = draw(st.sampled_from(["dense", "residual2", "residual1"])) if width is not None else "dense"
        if kind == "dense":
            width = draw(st.integers(1, 6))
            layers.append(sn.Dense(width, act, alpha=alpha, l2=decay))
        elif kind == "residual2":
            layers.append(sn.Residual(width, act, hidden=draw(st.integers(1, 6)), weights=2, alpha=alpha, l2=decay))
        else:
            layers.append(sn.Residual(width, act, weights=1, alpha=alpha, l2=decay))
    return layers


def np_act(name: str, z: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    if name == "identity":
        return z.copy()
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if name == "softplus":
        with np.errstate(invalid="ignore"):
            return np.logaddexp(0.0, z)
    raise ValueError(name)


def np_forward(net: sn.Network, X) -> tuple:
    """NumPy forward pass: (output, inputs of every layer, pre-activations of every layer)."""
    x = np.asarray(X, dtype=np.float64)
    inputs, zs = [], []
    for l, (kind, n_in, n_out, hidden, act, alpha, l2) in enumerate(net.specs):
        p = {k: np.asarray(v, np.float64) for k, v in net.layer_parameters(l).items()}
        inputs.append(x)
        if kind == "dense":
            z = x @ p["W"] + p["b"]
            x = np_act(act, z, alpha)
        elif kind == "residual2":
            z = x @ p["W1"] + p["b1"]
            x = x + np_act(act, z, alpha) @ p["W2"]
        else:
            z = x @ p["W"] + p["b"]
            x = x + np_act(act, z, alpha)
        zs.append(z)
    return x, inputs, zs


def kink_margin(net: sn.Network, X) -> float:
    """Smallest |z| over the neurons of relu / leaky_relu layers (inf when there are none)."""
    _, _, zs = np_forward(net, X)
    m = [np.min(np.abs(z)) for z, spec in zip(zs, net.specs) if spec[4] in KINKED]
    return float(min(m)) if m else float("inf")


def data_away_from_kinks(net: sn.Network, n: int = 12, seed: int = 0, margin: float = 1e-3, soft: bool = False):
    """random_data with the first seed >= seed whose relu pre-activations all satisfy |z| > margin."""
    for s in range(seed, seed + 200):
        X, y = random_data(net, n, s, soft)
        if kink_margin(net, X) > margin:
            return X, y
    raise RuntimeError("no data set away from the relu kinks")  # pragma: no cover


# ---------------------------------------------------------------------------------------------- processes
def run_python(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter (for behaviour that may hang or crash the process)."""
    env = dict(os.environ)
    # the child imports the same sensinet as this process (installed, or the dev tree on PYTHONPATH)
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(sn.__file__)))
    env["PYTHONPATH"] = pkg + os.pathsep + env.get("PYTHONPATH", "")
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child process did not finish within {timeout} s (deadlock?)", pytrace=False)


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def torch():
    """torch with float64 defaults on 1 thread; the test is skipped when torch is missing."""
    t = pytest.importorskip("torch")
    t.set_num_threads(1)
    return t


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test runs the engine on one thread (bitwise reproducible); restores the setting after."""
    before = sn.get_num_threads()
    sn.set_num_threads(1)
    yield
    sn.set_num_threads(before)
