"""PyTorch autograd (float64) as a second reference: outputs, gradients and optimizer steps."""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn
from conftest import ACTIVATIONS, HEADS, data_away_from_kinks, make_net, mixed_layers, random_data, rel_err

pytest.importorskip("torch")


def torch_act(torch, name, z, alpha):
    F = torch.nn.functional
    if name == "identity":
        return z
    if name == "relu":
        return F.relu(z)
    if name == "leaky_relu":
        return F.leaky_relu(z, alpha)
    if name == "tanh":
        return torch.tanh(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "softplus":  # F.softplus switches to the identity above its threshold; this is exact
        return torch.clamp(z, min=0) + torch.log1p(torch.exp(-torch.abs(z)))
    raise ValueError(name)


def to_torch(torch, net):
    """An nn.Sequential with the network's weights: nn.Linear for Dense, hand-written residual blocks."""
    nn = torch.nn

    class Act(nn.Module):
        def __init__(self, name, alpha):
            super().__init__()
            self.name, self.alpha = name, alpha

        def forward(self, z):
            return torch_act(torch, self.name, z, self.alpha)

    class Residual2(nn.Module):
        def __init__(self, W1, b1, W2, act):
            super().__init__()
            self.W1, self.b1, self.W2 = (nn.Parameter(torch.tensor(a)) for a in (W1, b1, W2))
            self.act = act

        def forward(self, x):
            return x + self.act(x @ self.W1 + self.b1) @ self.W2

    class Residual1(nn.Module):
        def __init__(self, W, b, act):
            super().__init__()
            self.W, self.b = nn.Parameter(torch.tensor(W)), nn.Parameter(torch.tensor(b))
            self.act = act

        def forward(self, x):
            return x + self.act(x @ self.W + self.b)

    mods = []
    for l, (kind, n_in, n_out, hidden, act, alpha, l2) in enumerate(net.specs):
        p = {k: np.array(v, dtype=np.float64) for k, v in net.layer_parameters(l).items()}
        if kind == "dense":
            lin = nn.Linear(n_in, n_out, dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(p["W"].T))
                lin.bias.copy_(torch.tensor(p["b"]))
            mods.append(nn.Sequential(lin, Act(act, alpha)))
        elif kind == "residual2":
            mods.append(Residual2(p["W1"], p["b1"], p["W2"], Act(act, alpha)))
        else:
            mods.append(Residual1(p["W"], p["b"], Act(act, alpha)))
    return nn.Sequential(*mods)


def weight_matrices(model):
    """Per layer: the weight matrices (decayed by l2) of the torch model."""
    out = []
    for m in model:
        if m.__class__.__name__ == "Sequential":
            out.append([m[0].weight])
        elif hasattr(m, "W1"):
            out.append([m.W1, m.W2])
        else:
            out.append([m.W])
    return out


def flat_grad(model):
    """Gradient in sensinet's layout: W (n_in, n_out) row-major then b; residual2: W1, b1, W2."""
    parts = []
    for m in model:
        if m.__class__.__name__ == "Sequential":
            parts += [m[0].weight.grad.T.reshape(-1), m[0].bias.grad]
        elif hasattr(m, "W1"):
            parts += [m.W1.grad.reshape(-1), m.b1.grad, m.W2.grad.reshape(-1)]
        else:
            parts += [m.W.grad.reshape(-1), m.b.grad]
    return np.concatenate([p.detach().numpy() for p in parts])


def flat_params(model):
    parts = []
    for m in model:
        if m.__class__.__name__ == "Sequential":
            parts += [m[0].weight.T.reshape(-1), m[0].bias]
        elif hasattr(m, "W1"):
            parts += [m.W1.reshape(-1), m.b1, m.W2.reshape(-1)]
        else:
            parts += [m.W.reshape(-1), m.b]
    return np.concatenate([p.detach().numpy() for p in parts])


def torch_objective(torch, net, model, X, y):
    """The engine's J written with torch: mean loss of the head + l2/2 ||W||^2 per weight matrix."""
    F = torch.nn.functional
    out = model(torch.tensor(X))
    if net.loss == "mse":
        Y = torch.tensor(np.asarray(y, np.float64).reshape(out.shape))
        J = torch.mean((out - Y) ** 2)
    elif net.loss == "cross_entropy":
        y = np.asarray(y)
        J = F.cross_entropy(out, torch.tensor(y if y.ndim == 2 else y.astype(np.int64)))
    else:
        Y = torch.tensor(np.asarray(y, np.float64).reshape(out.shape))
        J = F.binary_cross_entropy_with_logits(out, Y, reduction="sum") / out.shape[0]
    for spec, Ws in zip(net.specs, weight_matrices(model)):
        for W in Ws:
            J = J + 0.5 * spec[6] * torch.sum(W ** 2)
    return J


def compare(torch, net, X, y):
    model = to_torch(torch, net)
    np.testing.assert_array_equal(flat_params(model), net.parameters)
    J = torch_objective(torch, net, model, X, y)
    J.backward()
    out_t = model(torch.tensor(X)).detach().numpy()
    np.testing.assert_allclose(net.forward(X), out_t, rtol=1e-12, atol=1e-12)
    loss, g = net.loss_and_grad(X, y)
    assert loss == pytest.approx(J.item(), rel=1e-12)
    assert rel_err(g, flat_grad(model)) < 1e-10


# ---------------------------------------------------------------------------------------------- outputs + gradients
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_activation_and_head(torch, act, head):
    loss, k = HEADS[head]
    layers = mixed_layers(5, act, n_out=k)
    layers[0] = sn.Dense(5, act, l2=0.1)
    layers[1] = sn.Residual(5, act, hidden=3, l2=0.2)
    net = make_net(4, layers, loss=loss, seed=ACTIVATIONS.index(act))
    X, y = data_away_from_kinks(net, n=13, seed=1)
    compare(torch, net, X, y)


@pytest.mark.parametrize("head", ["ce3", "bce2"])
def test_soft_targets(torch, head):
    loss, k = HEADS[head]
    net = make_net(3, [sn.Dense(4, "tanh"), sn.Residual(4, "sigmoid", weights=1), sn.Dense(k)], loss=loss, seed=3)
    X, y = random_data(net, n=11, seed=3, soft=True)
    compare(torch, net, X, y)


@pytest.mark.parametrize("seed", range(6))
def test_random_deep_nets(torch, seed):
    rng = np.random.default_rng(seed)
    width = int(rng.integers(2, 7))
    layers = [sn.Dense(width, str(rng.choice(ACTIVATIONS)), l2=float(rng.choice([0.0, 0.3])))]
    for _ in range(int(rng.integers(1, 4))):
        act = str(rng.choice(ACTIVATIONS))
        if rng.random() < 0.5:
            layers.append(sn.Residual(width, act, hidden=int(rng.integers(1, 7)), weights=2))
        else:
            layers.append(sn.Residual(width, act, weights=1, l2=0.05))
    loss, k = HEADS[sorted(HEADS)[seed % len(HEADS)]]
    layers.append(sn.Dense(k))
    net = make_net(int(rng.integers(1, 6)), layers, loss=loss, seed=seed)
    X, y = data_away_from_kinks(net, n=20, seed=seed)
    compare(torch, net, X, y)


# ---------------------------------------------------------------------------------------------- optimizers
def _torch_steps(torch, net, X, y, make_opt, steps):
    model = to_torch(torch, net)
    opt = make_opt(model.parameters())
    for _ in range(steps):
        opt.zero_grad()
        torch_objective(torch, net, model, X, y).backward()
        opt.step()
    return flat_params(model)


OPTIMIZERS = {
    "sgd": (lambda: sn.SGD(lr=0.1), lambda t, p: t.optim.SGD(p, lr=0.1)),
    "momentum": (lambda: sn.SGD(lr=0.05, momentum=0.9), lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9)),
    "nesterov": (lambda: sn.SGD(lr=0.05, momentum=0.8, nesterov=True),
                 lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True)),
    "adam": (lambda: sn.Adam(lr=0.01), lambda t, p: t.optim.Adam(p, lr=0.01)),
    "adam_betas": (lambda: sn.Adam(lr=0.03, beta1=0.5, beta2=0.9, eps=1e-6),
                   lambda t, p: t.optim.Adam(p, lr=0.03, betas=(0.5, 0.9), eps=1e-6)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("head", ["mse1", "ce3"])
def test_optimizer_matches_torch(torch, name, head):
    loss, k = HEADS[head]
    ours, theirs = OPTIMIZERS[name]
    net = make_net(3, [sn.Dense(5, "tanh", l2=0.01), sn.Residual(5, "softplus", hidden=2), sn.Dense(k)],
                   loss=loss, seed=4)
    X, y = random_data(net, n=16, seed=4)
    expected = _torch_steps(torch, net, X, y, lambda p: theirs(torch, p), 3)
    net.fit(X, y, optimizer=ours(), batch_size=len(X), shuffle=False, epochs=3)
    assert net.history_.steps == 3
    np.testing.assert_allclose(net.parameters, expected, rtol=1e-12, atol=1e-12)


def test_two_fits_continue_like_one_torch_run(torch):
    net = make_net(3, [sn.Dense(4, "tanh"), sn.Dense(1)], seed=5)
    X, y = random_data(net, n=10, seed=5)
    expected = _torch_steps(torch, net, X, y, lambda p: torch.optim.Adam(p, lr=0.02), 4)
    opt = sn.Adam(lr=0.02)
    net.fit(X, y, optimizer=opt, batch_size=10, shuffle=False, epochs=1)
    net.fit(X, y, optimizer=opt, batch_size=10, shuffle=False, epochs=3)
    assert opt.t == 4
    np.testing.assert_allclose(net.parameters, expected, rtol=1e-12, atol=1e-12)
