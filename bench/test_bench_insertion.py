"""Layer-insertion benchmark (issue 5), sensinet beside PyTorch CPU in the same group, one thread.

(insertion) one run of the [5] study of Schiela et al.: two spirals (300 points per class, the 450-point
    training split), [5] relu -> 2 logits, cross-entropy, full-batch gradient descent lr 0.2 for 1850 epochs,
    the candidate sensitivity scored after epoch 450 and an identity ReLU layer inserted there ([5] -> [5,5]).
    sensinet: ``LayerInsertion(at_epochs=[450]).fit(net, X, y, epochs=1850, optimizer=SGD(lr=0.2))``.
    torch: the same loop written out: 450 steps of ``torch.optim.SGD`` on Linear-ReLU-Linear, an identity
    Linear(5, 5) + ReLU inserted and its gradient (the candidate's score) taken by one backward pass of the
    extended net, then 1400 more steps. Both record the loss of every epoch. float64 and float32.
    Before timing, both runs must reach the same final loss (float64: 1e-9 relative) from the same initial
    weights; the float64 scores must agree too.

The issue asks for one full run well under a second. ``python bench/report.py bench.json`` prints the ratios.
"""
from __future__ import annotations

import numpy as np
import pytest

import sensinet as sn
from conftest import needs_torch, torch
from sensinet.experiments.insertion import EPOCHS, INSERT_AT, _data, _ff
from sensinet.insertion import LayerInsertion

LR = 0.2


def _problem(dtype):
    X, _, y, _ = _data(0)
    net = _ff([5], 0)
    return net.astype(dtype), X.astype(dtype), np.asarray(y, dtype=np.int64)


def _run_sensinet(net0, X, y):
    def run():
        final, hist = LayerInsertion(at_epochs=[INSERT_AT]).fit(net0.copy(), X, y, epochs=EPOCHS,
                                                                optimizer=sn.SGD(lr=LR))
        return final, hist

    return run


def _run_torch(net0, X, y):
    tdt = torch.float64 if net0.dtype == np.float64 else torch.float32
    init = [{k: torch.from_numpy(v.copy()) for k, v in net0.layer_parameters(l).items()} for l in range(2)]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    ce = torch.nn.functional.cross_entropy

    def linear(W, b):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=tdt)
        with torch.no_grad():
            lin.weight.copy_(W.T)
            lin.bias.copy_(b)
        return lin

    def steps(model, n, losses):
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            loss = ce(model(Xt), yt)
            loss.backward()
            opt.step()
            losses.append(loss.item())

    def run():
        l1, l2 = linear(init[0]["W"], init[0]["b"]), linear(init[1]["W"], init[1]["b"])
        losses: list = []
        steps(torch.nn.Sequential(l1, torch.nn.ReLU(), l2), INSERT_AT, losses)
        mid = linear(torch.eye(5, dtype=tdt), torch.zeros(5, dtype=tdt))
        model = torch.nn.Sequential(l1, torch.nn.ReLU(), mid, torch.nn.ReLU(), l2)
        ce(model(Xt), yt).backward()  # the candidate's sensitivity: gradient of the neutral layer
        score = float(mid.weight.grad.pow(2).sum() + mid.bias.grad.pow(2).sum())
        steps(model, EPOCHS - INSERT_AT, losses)
        with torch.no_grad():
            final = ce(model(Xt), yt).item()
        return final, score, losses

    return run


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("impl", ["sensinet", "torch"])
def test_study_run_ff5(benchmark, threads, impl, dtype):
    threads(1)
    net0, X, y = _problem(dtype)
    run_s, run_t = _run_sensinet(net0, X, y), _run_torch(net0, X, y)
    if impl == "sensinet":  # both must reach the same final loss before either is timed
        final, hist = run_s()
        ours = final.objective(X, y)
        ref, score, losses = run_t()
        assert [(i.epoch, i.position) for i in hist.insertions] == [(INSERT_AT, 1)]
        assert len(hist.loss) == len(losses) == EPOCHS
        if dtype == np.float64:
            assert ours == pytest.approx(ref, rel=1e-9)
            assert hist.insertions[0].scores[1] == pytest.approx(score, rel=1e-9)
            np.testing.assert_allclose(hist.loss, losses, rtol=1e-9)
        else:  # float32 rounding over 1850 steps
            assert ours == pytest.approx(ref, rel=2e-3)
            assert hist.insertions[0].scores[1] == pytest.approx(score, rel=1e-3)
    benchmark.group = (f"(insertion) [5] study run: 1850 full-batch epochs, insertion at 450, "
                       f"{np.dtype(dtype).name} 1 thread")
    benchmark.extra_info["epochs"] = EPOCHS
    rounds = 10 if impl == "sensinet" else 5
    benchmark.pedantic(run_s if impl == "sensinet" else run_t, rounds=rounds, warmup_rounds=1)
