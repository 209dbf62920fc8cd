"""Shared pieces of the benchmarks: identical sensinet and PyTorch networks, one thread unless stated."""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn

try:
    import torch
except ImportError:  # the peer is optional; its benchmarks skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (pip install torch==2.13.0)")


def mlp(n_in: int, widths: list, n_out: int, act: str, loss: str, dtype, seed: int = 0) -> sn.Network:
    return sn.Network(n_in, [sn.Dense(w, act) for w in widths] + [sn.Dense(n_out)], loss=loss, dtype=dtype,
                      seed=seed)


def torch_twin(net: sn.Network):
    """The same network in torch (weights copied; torch's Linear weight is W transposed)."""
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    tdt = torch.float64 if net.dtype == np.float64 else torch.float32
    mods = []
    for l, spec in enumerate(net.specs):
        lin = torch.nn.Linear(spec[1], spec[2]).to(tdt)
        p = net.layer_parameters(l)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(p["W"].T.copy()))
            lin.bias.copy_(torch.from_numpy(p["b"].copy()))
        mods.append(lin)
        if spec[4] != "identity":
            mods.append(acts[spec[4]]())
    return torch.nn.Sequential(*mods)


def torch_flat(model) -> np.ndarray:
    """torch parameters in sensinet's flat layout (W as (n_in, n_out), then b, per layer)."""
    parts = []
    for m in model:
        if isinstance(m, torch.nn.Linear):
            parts += [m.weight.detach().numpy().T.ravel(), m.bias.detach().numpy()]
    return np.concatenate(parts)


@pytest.fixture
def threads():
    """Set sensinet's and torch's thread counts for one benchmark, restore afterwards."""
    saved_sn = sn.get_num_threads()
    saved_t = torch.get_num_threads() if torch is not None else None

    def set_threads(n: int) -> None:
        sn.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)

    yield set_threads
    sn.set_num_threads(saved_sn)
    if torch is not None:
        torch.set_num_threads(saved_t)
