"""The PyTorch MLPs people write: BatchNorm1d folded exactly (eval statistics), Dropout / Identity / Flatten
dropped, nested Sequential containers flattened; each checked against the module in eval mode in float64."""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn

torch = pytest.importorskip("torch")
nn = torch.nn


def _bn(n, seed, affine=True):
    """A BatchNorm1d with non-trivial running statistics and affine parameters (as after training)."""
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm1d(n, affine=affine, eps=1e-3).double()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=g, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 3 + 0.1)
        if affine:
            bn.weight.copy_(torch.randn(n, generator=g, dtype=torch.float64))  # negative scales included
            bn.bias.copy_(torch.randn(n, generator=g, dtype=torch.float64))
    return bn


def _lin(n_in, n_out, seed, bias=True):
    torch.manual_seed(seed)
    return nn.Linear(n_in, n_out, bias=bias).double()


def _check(module, n_in=4, loss="mse", dtype=np.float64, rtol=1e-12):
    X = np.random.default_rng(0).normal(size=(64, n_in))
    module.train()  # read with eval semantics whatever the flag; the flag is left as it was
    net = sn.from_torch(module, loss=loss, dtype=dtype)
    assert module.training
    module.eval()
    with torch.no_grad():
        ref = module(torch.from_numpy(X)).numpy()
    out = net.forward(X.astype(dtype))
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    return net


CASES = {
    "bn_before_activation": lambda: nn.Sequential(_lin(4, 6, 0), _bn(6, 1), nn.ReLU(), _lin(6, 2, 2)),
    "bn_after_activation": lambda: nn.Sequential(_lin(4, 6, 0), nn.Tanh(), _bn(6, 1), _lin(6, 2, 2)),
    "bn_on_inputs": lambda: nn.Sequential(_bn(4, 3), _lin(4, 6, 0), nn.ReLU(), _lin(6, 1, 2)),
    "bn_at_the_end": lambda: nn.Sequential(_lin(4, 6, 0), nn.ReLU(), _lin(6, 3, 2), _bn(3, 4)),
    "two_bns_in_a_row": lambda: nn.Sequential(_lin(4, 6, 0), nn.ReLU(), _bn(6, 1), _bn(6, 5), _lin(6, 2, 2)),
    "bn_without_affine": lambda: nn.Sequential(_lin(4, 6, 0, bias=False), _bn(6, 1, affine=False), nn.ReLU(),
                                               _lin(6, 2, 2)),
    "tabular_mlp": lambda: nn.Sequential(  # the block people write: Linear, BatchNorm, activation, Dropout
        nn.Flatten(), _lin(4, 8, 0), _bn(8, 1), nn.ReLU(), nn.Dropout(0.3),
        nn.Sequential(_lin(8, 8, 2), _bn(8, 3), nn.LeakyReLU(0.1), nn.AlphaDropout(0.1)),
        nn.Identity(), _lin(8, 3, 4)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_the_module_in_eval_mode(case):
    net = _check(CASES[case]())
    assert all(s.kind == "dense" for s in net.specs)


def test_layers_after_folding():
    net = _check(CASES["tabular_mlp"]())
    assert [(s.n_out, s.activation) for s in net.specs] == [(8, "relu"), (8, "leaky_relu"), (3, "identity")]
    assert net.specs[1].alpha == 0.1


def test_classifier_logits_and_float32():
    module = nn.Sequential(_lin(4, 6, 0), _bn(6, 1), nn.Sigmoid(), nn.Dropout(), _lin(6, 3, 2))
    net = _check(module, loss="cross_entropy")
    assert net.loss == "cross_entropy"
    _check(module, dtype=np.float32, rtol=2e-5)


def test_round_trip_through_to_torch():
    module = CASES["bn_after_activation"]()
    net = sn.from_torch(module)
    X = np.random.default_rng(1).normal(size=(16, 4))
    with torch.no_grad():
        back = sn.to_torch(net)(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(back, net.forward(X), rtol=1e-13, atol=1e-13)


def test_folded_network_has_autograds_gradient():
    """The folded net is the same function: its input gradient of the loss equals autograd's through the
    eval-mode module (checked through the input sensitivity dJ/ds_j = sum_n dJ/dx_nj x_nj)."""
    module = CASES["bn_before_activation"]()
    net = sn.from_torch(module)
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(32, 4)), rng.normal(size=(32, 2))
    module.eval()
    xt = torch.from_numpy(X).requires_grad_(True)
    loss = ((module(xt) - torch.from_numpy(y)) ** 2).mean()
    loss.backward()
    np.testing.assert_allclose(net.objective(X, y), loss.item(), rtol=1e-12)
    res = sn.sensitivity(net, X, y, wrt="loss", sites=[0], reduce="mean")
    np.testing.assert_allclose(np.ravel(res.matrix(0)), (xt.grad.numpy() * X).sum(axis=0), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("module, match", [
    (lambda: nn.Sequential(_lin(4, 6, 0), nn.ReLU(), _lin(6, 2, 1), nn.ReLU(), _bn(2, 1)),
     r"module\[4\] \(BatchNorm1d\).*after the network's last activation"),
    (lambda: nn.Sequential(_lin(4, 6, 0), nn.BatchNorm1d(6, track_running_stats=False), _lin(6, 1, 1)),
     r"module\[1\].*running statistics"),
    (lambda: nn.Sequential(_lin(4, 6, 0), nn.ReLU(), _bn(6, 1), nn.ReLU(), _lin(6, 1, 1)),
     r"module\[3\] \(ReLU\).*follows a per-feature scale/shift"),
    (lambda: nn.Sequential(nn.Flatten(0), _lin(4, 1, 0)), r"module\[0\].*Flatten\(start_dim=0"),
    (lambda: nn.Sequential(_lin(4, 6, 0), nn.GELU(), _lin(6, 1, 1)), r"module\[1\].*GELU.*not have this activation yet"),
    (lambda: nn.Sequential(_lin(4, 6, 0), nn.Sequential(nn.ReLU(), nn.Conv1d(1, 1, 1))),
     r"module\[1\]\[1\].*Conv1d"),
    (lambda: nn.Sequential(_lin(4, 6, 0), _bn(5, 1), _lin(6, 1, 1)), r"module\[1\] \(BatchNorm1d\): expected a scale of 6"),
])
def test_unsupported_patterns_named(module, match):
    with pytest.raises(ValueError, match=match):
        sn.from_torch(module())
