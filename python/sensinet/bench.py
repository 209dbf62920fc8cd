"""``sensinet bench``: time training and sensitivities of an architecture you name, on this machine.

It reports steps per second, TFLOP/s, and the fraction of the GEMM rate measured in the same run (a
linear layer of the widest hidden width on at least 2048 rows, through the same engine; a step whose
products have a larger inner dimension can exceed it), with PyTorch's eager SGD step and matmul beside it
when torch is installed, on the same number of threads. Data are synthetic (random inputs and labels); timings are medians over ``repeat`` calls
after a warm-up, and each call runs ``steps`` minibatch steps through the public ``Network.fit``.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from . import cuda as _cuda_backend
from ._outputs import check_file, write_text
from .data import Dataset
from .layers import ACTIVATIONS, Dense
from .network import Network
from .optimizers import SGD

_LAYERS = re.compile(r"^\s*(\d+)\s*(?:x\s*(\d+))?\s*$")


def parse_layers(text: str) -> list:
    """Hidden widths from ``"4096x4"`` (four layers of 4096) or ``"512,256"`` or ``"1024x2,256"``."""
    widths: list = []
    for part in str(text).split(","):
        m = _LAYERS.match(part)
        if m is None:
            raise ValueError(f"layers: expected widths such as '4096x4' or '512,256', got {text!r}")
        width, count = int(m.group(1)), int(m.group(2) or 1)
        if width < 1 or count < 1:
            raise ValueError(f"layers: widths and counts must be >= 1, got {part.strip()!r}")
        widths += [width] * count
    return widths


@dataclass
class BenchResult:
    """What ``sensinet bench`` measured (times in seconds, medians)."""

    architecture: str
    device: str
    dtype: str
    precision: str
    batch: int
    steps: int
    n_params: int
    gemm_tflops: float  # a gemm_width x gemm_width linear layer on gemm_rows rows, through the engine
    gemm_width: int
    gemm_rows: int
    step_seconds: float
    step_tflops: float
    sens_seconds: float
    sens_tflops: float
    torch_step_seconds: Optional[float] = None
    torch_gemm_tflops: Optional[float] = None
    notes: list = field(default_factory=list)

    @property
    def steps_per_second(self) -> float:
        """Training steps per second (1 / ``step_seconds``)."""
        return 1.0 / self.step_seconds

    def table(self) -> str:
        """The timings as a plain-text table."""
        rows = [
            f"sensinet bench: {self.architecture}, batch {self.batch}, {self.dtype}"
            + ("" if self.precision == "highest" else f" ({self.precision})") + f", {self.device}, "
            f"{self.n_params:,} parameters",
            f"  GEMM rate (engine: a {self.gemm_width}-wide linear layer on {self.gemm_rows} rows): "
            f"{self.gemm_tflops:.3g} TFLOP/s" + ("" if self.torch_gemm_tflops is None else
                                                  f"; PyTorch matmul {self.torch_gemm_tflops:.3g} TFLOP/s"),
            f"  training (SGD, {self.steps} steps a fit call): {self.steps_per_second:,.1f} steps/s, "
            f"{self.step_seconds * 1e3:.3g} ms a step, {self.step_tflops:.3g} TFLOP/s = "
            f"{self.step_tflops / self.gemm_tflops:.0%} of the GEMM rate",
        ]
        if self.torch_step_seconds is not None:
            rows.append(f"  PyTorch eager SGD step: {self.torch_step_seconds * 1e3:.3g} ms -> sensinet is "
                        f"{self.torch_step_seconds / self.step_seconds:.2f}x PyTorch")
        rows.append(f"  output sensitivities of every hidden layer on {self.batch} samples: "
                    f"{self.sens_seconds * 1e3:.3g} ms, {self.sens_tflops:.3g} TFLOP/s")
        rows += [f"  note: {n}" for n in self.notes]
        return "\n".join(rows)

    def to_json(self) -> str:
        """The timings and the derived step rate as JSON text."""
        return json.dumps({**asdict(self), "steps_per_second": self.steps_per_second}, indent=1)


def _median_time(fn: Callable[[], Any], repeat: int, sync: Callable[[], Any] = lambda: None) -> float:
    fn()  # warm-up: allocations, device copies, cuBLAS heuristics
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_bench(layers: str = "512x4", inputs: int = 784, outputs: int = 10, batch: int = 256, steps: int = 8,
              device: str = "cpu", dtype: str = "float32", precision: str = "highest", activation: str = "relu",
              repeat: int = 5, n_threads: Optional[int] = None, torch_peer: bool = True) -> BenchResult:
    """Time one architecture (see the module docstring); raises ValueError for bad arguments before
    anything runs."""
    widths = parse_layers(layers)
    for name, v, lo in (("inputs", inputs, 1), ("outputs", outputs, 1), ("batch", batch, 1), ("steps", steps, 1),
                        ("repeat", repeat, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {activation!r}")
    dev_name, index = _cuda_backend.parse_device(device)
    if index is not None:
        _cuda_backend.require(index)
    dt = np.dtype(dtype).type
    loss = "cross_entropy" if outputs > 1 else "mse"
    net = Network(inputs, [Dense(w, activation) for w in widths] + [Dense(outputs)], loss=loss, dtype=dt, seed=0,
                  device=dev_name, precision=precision)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch * steps, inputs)).astype(dt)
    y = rng.integers(0, outputs, batch * steps) if outputs > 1 else rng.normal(size=batch * steps).astype(dt)
    data = Dataset(X, y, copy=False)
    arch = "-".join([str(inputs), _compact(widths), str(outputs)])
    notes = []

    # MACs per sample: forward 2 FLOPs a MAC, a training step 6 (forward, input and weight gradients)
    macs = sum(a * b for a, b in zip([inputs] + widths, widths + [outputs]))
    # the GEMM rate: a w x w linear layer on >= 2048 rows, then a 1-wide layer so almost nothing is copied back
    w, rows = max(widths), max(batch, 2048)
    gemm = Network(w, [Dense(w), Dense(1)], dtype=dt, seed=1, device=dev_name, precision=precision)
    Xg = Dataset(rng.normal(size=(rows, w)).astype(dt), copy=False)
    t_gemm = _median_time(lambda: gemm.forward(Xg, n_threads=n_threads), repeat)
    gemm_tflops = 2.0 * rows * (w * w + w) / t_gemm / 1e12

    opt = SGD(0.01)
    t_fit = _median_time(lambda: net.fit(data, optimizer=opt, epochs=1, batch_size=batch, shuffle=False,
                                         n_threads=n_threads), repeat)
    step = t_fit / steps
    Xs = Dataset(X[:batch], copy=False)
    from .sensitivity import sensitivity

    t_sens = _median_time(lambda: sensitivity(net, Xs, n_threads=n_threads), repeat)
    sens_flops = 2.0 * macs * batch * (1 + outputs)  # one forward, a K-seed stacked reverse sweep
    res = BenchResult(architecture=arch, device=dev_name, dtype=dtype, precision=precision, batch=batch,
                      steps=steps, n_params=net.n_params, gemm_tflops=gemm_tflops, gemm_width=w, gemm_rows=rows,
                      step_seconds=step,
                      step_tflops=6.0 * macs * batch / step / 1e12, sens_seconds=t_sens,
                      sens_tflops=sens_flops / t_sens / 1e12, notes=notes)
    if torch_peer:
        try:
            _torch_peer(res, net, X, y, batch, steps, dev_name, dt, precision, repeat, n_threads)
        except ImportError:
            res.notes.append("PyTorch is not installed: no peer timing")
    return res


def _compact(widths: list) -> str:
    parts, i = [], 0
    while i < len(widths):
        j = i
        while j < len(widths) and widths[j] == widths[i]:
            j += 1
        parts.append(f"{widths[i]}x{j - i}" if j - i > 1 else str(widths[i]))
        i = j
    return ",".join(parts)


def _torch_peer(res: BenchResult, net: Network, X: Any, y: Any, batch: int, steps: int, device: str, dt: Any,
                precision: str, repeat: int, n_threads: Optional[int]) -> None:
    import torch

    from .convert import to_torch

    tdev = "cpu" if device == "cpu" else ("cuda:0" if device == "cuda" else device)
    if tdev != "cpu" and not torch.cuda.is_available():
        res.notes.append("PyTorch has no CUDA here: no peer timing")
        return
    from ._config import resolve_threads

    old_threads = torch.get_num_threads()
    torch.set_num_threads(resolve_threads(n_threads))  # the same thread count as sensinet's run
    old_tf32 = torch.backends.cuda.matmul.allow_tf32 if tdev != "cpu" else None
    try:
        if tdev != "cpu":
            torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        model = to_torch(net.copy().to("cpu"), dtype=torch.float32 if dt == np.float32 else torch.float64).to(tdev)
        Xt = torch.from_numpy(np.ascontiguousarray(X)).to(tdev)
        yt = torch.from_numpy(np.asarray(y)).to(tdev)
        lossf = torch.nn.functional.cross_entropy if net.loss == "cross_entropy" else (
            lambda o, t: torch.nn.functional.mse_loss(o[:, 0], t))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        sync = torch.cuda.synchronize if tdev != "cpu" else (lambda: None)

        def epoch() -> None:
            for s in range(steps):
                opt.zero_grad(set_to_none=True)
                lossf(model(Xt[s * batch:(s + 1) * batch]), yt[s * batch:(s + 1) * batch]).backward()
                opt.step()

        res.torch_step_seconds = _median_time(epoch, repeat, sync) / steps
        w = max(m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
        A = torch.randn(batch, w, dtype=model[0].weight.dtype, device=tdev)
        B = torch.randn(w, w, dtype=A.dtype, device=tdev)
        res.torch_gemm_tflops = 2.0 * batch * w * w / _median_time(lambda: A @ B, repeat, sync) / 1e12
    finally:
        torch.set_num_threads(old_threads)
        if old_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = old_tf32


def add_arguments(p: Any) -> None:
    """Options of ``sensinet bench``."""
    p.add_argument("--layers", default="512x4", help="hidden widths, e.g. 4096x4 or 512,256 (default 512x4)")
    p.add_argument("--inputs", type=int, default=784, help="input features (default 784)")
    p.add_argument("--outputs", type=int, default=10, help="outputs; > 1 means a softmax head (default 10)")
    p.add_argument("--batch", type=int, default=256, help="minibatch size (default 256)")
    p.add_argument("--steps", type=int, default=8, help="SGD steps per timed fit call (default 8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="precision (default float32)")
    p.add_argument("--precision", default="highest", choices=("highest", "tf32"),
                   help="tf32: TensorFloat-32 products for float32 on a GPU (default highest)")
    p.add_argument("--activation", default="relu", choices=ACTIVATIONS, help="hidden activation (default relu)")
    p.add_argument("--repeat", type=int, default=5, help="timed calls; the median is reported (default 5)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: sensinet's setting)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--json", default=None, help="also write the result to this JSON file")


def main(args: Any) -> int:
    """Entry point of ``sensinet bench``: run the timings and print (and optionally save) them."""
    target = None if args.json is None else check_file(args.json, "--json")  # before the timed run, not after
    res = run_bench(args.layers, args.inputs, args.outputs, args.batch, args.steps, args.device, args.dtype,
                    args.precision, args.activation, args.repeat, args.threads, not args.no_torch)
    print(res.table())
    if target is not None:
        write_text(target, res.to_json())
    return 0
