"""Network: layer specs plus one flat parameter vector owned by the C++ engine (numpy sees it without a copy)."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from . import _core
from . import cuda as _cuda_backend
from ._config import resolve_threads
from ._progress import ProgressBar
from ._validation import LOSSES, as_matrix, check_choice, resolve_dtype, targets
from .layers import Dense, Layer, Residual, layer_from_spec
from .optimizers import LBFGS, Optimizer, make_optimizer

BlockSpec = Union[None, int, Sequence[int], range]


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss; the network keeps the last weights whose loss was finite."""


@dataclass
class FitResult:
    """What one ``fit`` call did."""

    status: str  # completed | stopped | early_stopped | diverged | gtol | ftol | max_iter | line_search_failed
    optimizer: str
    epochs: int
    steps: int
    loss_curve: list = field(default_factory=list)  # mean training objective per epoch (per iteration: L-BFGS)
    val_curve: list = field(default_factory=list)
    best_epoch: Optional[int] = None
    seconds: float = 0.0
    block: tuple = (0, 0)


class Network:
    """A dense feedforward / residual network with one flat parameter vector.

    Parameters
    ----------
    n_inputs : int
        Number of input features.
    layers : sequence of Dense / Residual
        The layers, in order. A classification head needs an identity last layer (logits).
    loss : {"mse", "cross_entropy", "binary_cross_entropy"}
        ``mse``: mean over samples and outputs of the squared error. ``cross_entropy``: softmax over the
        logits, mean over samples. ``binary_cross_entropy``: a sigmoid per logit, summed over outputs and
        averaged over samples. Every layer's ``l2`` adds ``l2/2 ||W||^2``.
    dtype : float64 (default) or float32
    seed : int, optional
        Seed of the initialisation (He-uniform for relu-like layers, Glorot-uniform otherwise; biases 0).
    device : {"cpu", "cuda", "cuda:N"}
        Where the parameters, caches and training run (default "cpu"). On a CUDA device forward, predict,
        loss_and_grad, fit (SGD / Adam) and :func:`sensinet.sensitivity` run on the GPU (needs the
        optional extension ``sensinet._cuda``; see :func:`sensinet.cuda_available`), and ``parameters``
        is a read-only host copy (assign ``net.parameters = values`` to change them). See :meth:`to`.

    Examples
    --------
    >>> net = Network(8, [Dense(64, "tanh"), Residual(64, "relu"), Dense(1)], seed=0)
    >>> net.n_params
    8961
    """

    _device = "cpu"  # class defaults: instances built without __init__ (copies, unpickling) start on the CPU
    _cuda = None
    _stale = False  # on a CUDA device: the host mirror is older than the device's parameters

    @property
    def _model(self) -> Any:
        """The CPU engine's model. On a CUDA device it holds the host mirror of the parameters, brought up to
        date here (one device-to-host copy) after the device changed them, so CPU-only code sees them."""
        if self._stale:
            self._pull()
        return self.__dict__["_host_model"]

    @_model.setter
    def _model(self, model: Any) -> None:
        self.__dict__["_host_model"] = model

    def __init__(self, n_inputs: int, layers: Sequence[Layer], loss: str = "mse", dtype: Any = np.float64,
                 seed: Optional[int] = None, device: str = "cpu") -> None:
        device, index = _cuda_backend.parse_device(device)
        if index is not None:
            _cuda_backend.require(index)  # fail before building anything
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
            raise ValueError(f"n_inputs: expected an int >= 1, got {n_inputs!r}")
        layers = list(layers)
        if not layers:
            raise ValueError("layers: expected at least one layer, got an empty list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (Dense, Residual)):
                raise TypeError(f"layers[{i}]: expected a Dense or Residual, got {type(layer).__name__}")
        check_choice(loss, "loss", LOSSES)
        self.dtype = resolve_dtype(dtype)
        specs, width = [], int(n_inputs)
        for layer in layers:
            specs.append(layer.spec(width))
            width = specs[-1][2]
        cls = _core.Model64 if self.dtype == np.float64 else _core.Model32
        self._model = cls(specs, loss)
        self._specs = specs
        self.layers = tuple(layers)
        self.loss = loss
        self._device = "cpu"
        self._cuda = None
        self.reinitialize(seed)
        if device != "cpu":
            self.to(device)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def _from_specs(cls, specs: Sequence[tuple], loss: str, dtype: Any) -> "Network":
        return cls(specs[0][1], [layer_from_spec(s) for s in specs], loss=loss, dtype=dtype)

    def reinitialize(self, seed: Optional[int] = None) -> "Network":
        """Draw new weights (He-uniform for relu / leaky_relu layers, Glorot-uniform otherwise), zero biases."""
        rng = np.random.default_rng(seed)
        self._stale = False  # every parameter is overwritten
        self._model.parameters[:] = 0
        for l, spec in enumerate(self._specs):
            views = self._views(self._model.parameters, l)
            relu_like = spec[4] in ("relu", "leaky_relu")
            for name, W in views.items():
                if W.ndim != 2:
                    continue
                fan_in, fan_out = W.shape
                bound = np.sqrt(6.0 / fan_in) if relu_like and name != "W2" else np.sqrt(6.0 / (fan_in + fan_out))
                W[...] = rng.uniform(-bound, bound, size=W.shape)
        self._push()
        return self

    def copy(self) -> "Network":
        """An independent copy (one memcpy of the parameter vector)."""
        new = object.__new__(Network)
        new.__dict__.update(copy.deepcopy({k: v for k, v in self.__dict__.items()
                                           if k not in ("_host_model", "_cuda", "_stale")}))
        new._model = self._model.copy()
        new._cuda = None
        if self._cuda is not None:
            new._device = "cpu"
            new.to(self._device)
        return new

    def astype(self, dtype: Any) -> "Network":
        """A copy with float64 or float32 parameters."""
        new = Network._from_specs(self._specs, self.loss, dtype)
        new.parameters[:] = self.parameters
        for attr in ("metadata", "classes_"):
            if hasattr(self, attr):
                setattr(new, attr, copy.deepcopy(getattr(self, attr)))
        if self._cuda is not None:
            new.to(self._device)
        return new

    # ------------------------------------------------------------------ device
    @property
    def device(self) -> str:
        """Where the network lives: "cpu", "cuda" (device 0) or "cuda:N"."""
        return self._device

    def to(self, device: str) -> "Network":
        """Move the network to ``device`` ("cpu", "cuda" or "cuda:N"); returns ``self``.

        On a CUDA device the flat parameter vector, the activation caches, the optimizer state during
        ``fit`` and the data of each call live in GPU memory; forward, predict, layer_input,
        loss_and_grad, objective, fit (SGD / Adam; L-BFGS raises NotImplementedError) and
        :func:`sensinet.sensitivity` (reverse mode) run there. ``parameters`` then returns a read-only host
        copy and ``layer_parameters`` views of such a copy: assign ``net.parameters = values`` to change
        the weights. A host mirror of the parameters is kept in step, so the CPU-only functions (finite
        differences, curvature, ReLU clusters, saving) keep working on the same weights.
        Raises RuntimeError ("CUDA is not available: ...") without a usable device or extension.
        """
        device, index = _cuda_backend.parse_device(device)
        if device == self._device:
            return self
        if device == "cpu":
            self._pull()
            self._cuda = None  # frees the device memory
            self._device = "cpu"
            return self
        cls = _cuda_backend.model_class(self.dtype, index)
        if self._cuda is not None:
            self._pull()
        model = cls(self._specs, self.loss, index)
        model.set_parameters(self._model.parameters)
        self._cuda = model
        self._device = device
        return self

    def _push(self) -> None:
        """Host mirror -> device (after a host-side change of the parameters)."""
        if self._cuda is not None:
            self._cuda.set_parameters(self._model.parameters)

    def _pull(self) -> None:
        """Device -> host mirror (after the device changed the parameters)."""
        if self._cuda is not None:
            self.__dict__["_host_model"].parameters[:] = self._cuda.get_parameters()
        self._stale = False

    # ------------------------------------------------------------------ structure
    @property
    def parameters(self) -> NDArray:
        """The flat parameter vector: a writable view of the engine's memory (no copy).

        On a CUDA device: a read-only host copy of the device's vector (assign ``net.parameters = v``)."""
        if self._cuda is not None:
            p = self._cuda.get_parameters()
            p.flags.writeable = False
            return p
        return self._model.parameters

    @parameters.setter
    def parameters(self, value: Any) -> None:
        v = np.asarray(value)
        if v.shape != (self.n_params,):
            raise ValueError(f"parameters: expected shape ({self.n_params},), got {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("parameters: contains NaN or infinity")
        self._stale = False  # every parameter is overwritten
        self._model.parameters[:] = v
        self._push()

    @property
    def n_params(self) -> int:
        return int(self._model.n_params)

    @property
    def n_layers(self) -> int:
        return len(self._specs)

    @property
    def n_inputs(self) -> int:
        return int(self._specs[0][1])

    @property
    def n_outputs(self) -> int:
        return int(self._specs[-1][2])

    @property
    def offsets(self) -> list:
        """offsets[l]: index of layer l's first parameter in the flat vector; offsets[-1] == n_params."""
        return list(self._model.offsets)

    @property
    def specs(self) -> list:
        """Engine specs per layer: (kind, n_in, n_out, hidden, activation, alpha, l2)."""
        return list(self._specs)

    def layer_parameters(self, layer: int) -> dict:
        """Views (no copies) of one layer's parameters: W, b (dense, one-weight residual) or W1, b1, W2."""
        layer = self._check_layer(layer, "layer")
        return self._views(self.parameters, layer)

    def _views(self, p: NDArray, layer: int) -> dict:
        kind, n_in, n_out, hidden, *_ = self._specs[layer]
        o = self.offsets[layer]
        if kind == "residual2":
            W1 = p[o:o + n_in * hidden].reshape(n_in, hidden)
            o += n_in * hidden
            b1 = p[o:o + hidden]
            o += hidden
            return {"W1": W1, "b1": b1, "W2": p[o:o + hidden * n_out].reshape(hidden, n_out)}
        return {"W": p[o:o + n_in * n_out].reshape(n_in, n_out), "b": p[o + n_in * n_out:o + n_in * n_out + n_out]}

    def block_slice(self, layers: BlockSpec) -> slice:
        """Slice of the flat vector holding the parameters of a block of layers."""
        first, last = self._block(layers)
        return slice(self.offsets[first], self.offsets[last + 1])

    def _check_layer(self, layer: Any, name: str, allow_end: bool = False) -> int:
        hi = self.n_layers + (1 if allow_end else 0)
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"{name}: expected an int layer index, got {type(layer).__name__}")
        layer = int(layer)
        if layer < 0:
            layer += self.n_layers
        if not 0 <= layer < hi:
            raise ValueError(f"{name}: expected a layer index in [0, {hi}), got {layer}")
        return layer

    def _block(self, layers: BlockSpec) -> tuple:
        """(first, last) of a block: an int (one layer), a tuple (first, last) inclusive, or a list / range
        of consecutive layer indices."""
        if layers is None:
            return 0, self.n_layers - 1
        if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
            l = self._check_layer(layers, "layers")
            return l, l
        if isinstance(layers, tuple) and len(layers) == 2:
            first, last = (self._check_layer(l, "layers") for l in layers)
            if first > last:
                raise ValueError(f"layers: expected (first, last) with first <= last, got {layers}")
            return first, last
        if not isinstance(layers, (list, tuple, range, np.ndarray)):
            raise TypeError(f"layers: expected an int, a (first, last) tuple or a list of consecutive layer "
                            f"indices, got {type(layers).__name__}")
        idx = [self._check_layer(l, "layers") for l in layers]
        if not idx:
            raise ValueError("layers: expected at least one layer index, got none")
        first, last = min(idx), max(idx)
        if sorted(idx) != list(range(first, last + 1)):
            raise ValueError(f"layers: expected consecutive layer indices, got {list(layers)}")
        return first, last

    # ------------------------------------------------------------------ evaluation
    def _X(self, X: Any, name: str = "X", layer: int = 0) -> NDArray:
        n_cols = self.n_inputs if layer == 0 else int(self._specs[layer][1])
        return as_matrix(X, name, self.dtype, n_cols)

    def _Y(self, y: Any, n: int) -> NDArray:
        return targets(y, self.loss, self.n_outputs, n, self.dtype)

    def forward(self, X: Any, n_threads: Optional[int] = None) -> NDArray:
        """Raw network outputs (logits for classification heads), shape (n_samples, n_outputs)."""
        if self._cuda is not None:
            return self._cuda.forward(self._X(X), False, 0)
        return self._model.forward(self._X(X), False, 0, resolve_threads(n_threads))

    def predict(self, X: Any, n_threads: Optional[int] = None) -> NDArray:
        """Outputs through the head's link: values (mse), softmax or sigmoid probabilities (classification)."""
        if self._cuda is not None:
            return self._cuda.forward(self._X(X), True, 0)
        return self._model.forward(self._X(X), True, 0, resolve_threads(n_threads))

    __call__ = forward

    def layer_input(self, X: Any, layer: int, n_threads: Optional[int] = None) -> NDArray:
        """Input of ``layer`` (the output of layer-1); ``layer == n_layers`` gives the network output."""
        layer = self._check_layer(layer, "layer", allow_end=True)
        if self._cuda is not None:
            return self._cuda.layer_input(self._X(X), layer)
        return self._model.layer_input(self._X(X), layer, resolve_threads(n_threads))

    def loss_and_grad(self, X: Any, y: Any, theta: Optional[Any] = None, layers: BlockSpec = None,
                      n_threads: Optional[int] = None) -> tuple:
        """Full-batch objective J (mean loss + L2 terms) and its gradient.

        Usable directly as ``scipy.optimize.minimize(lambda t: net.loss_and_grad(X, y, t), x0, jac=True)``.

        Parameters
        ----------
        theta : array, optional
            Full parameter vector to evaluate at (default: the network's own).
        layers : int or (first, last) or sequence of consecutive indices, optional
            Return only the gradient of that block of layers (a contiguous slice of the flat vector). The
            block's input is computed once from the layers below, so the cost covers the layers from the
            block up only.
        """
        first, last = self._block(layers)
        Xa = self._X(X)
        Y = self._Y(y, Xa.shape[0])
        th = None if theta is None else self._theta(theta)
        threads = resolve_threads(n_threads)
        if self._cuda is not None:  # the block input is computed on the device
            loss, grad = self._cuda.loss_and_grad(Xa, Y, first, last, True, th, 0)
            return float(loss), grad
        if first > 0:
            Xa = self._model.layer_input(Xa, first, threads) if th is None else self._layer_input_at(Xa, first, th)
        loss, grad = self._model.loss_and_grad(Xa, Y, th, first, last, True, threads)
        return float(loss), grad

    def _layer_input_at(self, X: NDArray, first: int, theta: NDArray) -> NDArray:
        saved = self.parameters.copy()
        try:
            self._model.parameters[:] = theta
            return self._model.layer_input(X, first, 1)
        finally:
            self._model.parameters[:] = saved

    def _theta(self, theta: Any) -> NDArray:
        t = np.asarray(theta)
        if t.ndim != 1 or t.shape[0] != self.n_params:
            raise ValueError(f"theta: expected shape ({self.n_params},), got {t.shape}")
        t = np.ascontiguousarray(t, dtype=self.dtype)
        if not t.flags.writeable:
            t = t.copy()
        return t

    def objective(self, X: Any, y: Any, n_threads: Optional[int] = None) -> float:
        """Full-batch objective J (mean loss + L2) without the gradient."""
        Xa = self._X(X)
        if self._cuda is not None:
            loss, _ = self._cuda.loss_and_grad(Xa, self._Y(y, Xa.shape[0]), 0, -1, False)
            return float(loss)
        loss, _ = self._model.loss_and_grad(Xa, self._Y(y, Xa.shape[0]), None, 0, -1, False,
                                            resolve_threads(n_threads))
        return float(loss)

    # ------------------------------------------------------------------ training
    def fit(self, X: Any, y: Any, *, optimizer: Union[str, Optimizer] = "adam", lr: Optional[float] = None,
            epochs: int = 100, batch_size: int = 32, shuffle: bool = True, seed: Optional[int] = 0,
            layers: BlockSpec = None, validation_data: Optional[tuple] = None, patience: Optional[int] = None,
            tol: float = 0.0, callback: Optional[Callable[[dict], Any]] = None, callback_every: int = 0,
            progress: bool = False, max_steps: Optional[int] = None,
            n_threads: Optional[int] = None) -> "Network":
        """Train in C++: minibatch epochs (SGD / Adam) or full-batch L-BFGS, on all layers or on a block.

        Parameters
        ----------
        optimizer : "adam", "sgd", "lbfgs" or an SGD / Adam / LBFGS object
            An object keeps its state (momentum, Adam moments) across calls: pass the same one to continue.
        lr : float, optional
            Learning rate when ``optimizer`` is a name.
        epochs, batch_size, shuffle, seed
            Minibatch schedule; shuffling uses a seeded Mersenne Twister inside the engine.
        layers : int, (first, last) or sequence, optional
            Train only this block of consecutive layers; the frozen layers below are evaluated once.
        validation_data : (X_val, y_val), optional
            Evaluated at every epoch end; with ``patience`` training stops after that many epochs without an
            improvement larger than ``tol`` and the best weights are restored.
        callback : callable, optional
            Called with a dict (epoch, step, loss, epoch_end[, val_loss]) every ``callback_every`` steps and
            at every epoch end; returning True stops training.
        progress : bool
            Show a progress bar on stderr.
        max_steps : int, optional
            Stop after this many optimizer steps.

        Raises
        ------
        DivergenceError
            When the loss becomes non-finite; the weights are those of the last step with a finite loss.
        KeyboardInterrupt
            Ctrl-C stops between two steps and leaves consistent weights.
        """
        opt = make_optimizer(optimizer, lr)
        if self._cuda is not None and isinstance(opt, LBFGS):
            raise NotImplementedError("fit: L-BFGS is not available on a CUDA device; use optimizer='sgd' or "
                                      "'adam', or move the network with net.to('cpu')")
        first, last = self._block(layers)
        threads = resolve_threads(n_threads)
        Xa = self._X(X)
        Y = self._Y(y, Xa.shape[0])
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs: expected an int >= 0, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        if patience is not None and (not isinstance(patience, (int, np.integer)) or patience < 1):
            raise ValueError(f"patience: expected an int >= 1 or None, got {patience!r}")
        if patience is not None and validation_data is None:
            raise ValueError("patience: early stopping needs validation_data=(X_val, y_val)")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))
                                      or max_steps < 0):
            raise ValueError(f"max_steps: expected an int >= 0 or None, got {max_steps!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
        Xv = Yv = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data: expected a pair (X_val, y_val)")
            Xv = self._X(validation_data[0], "validation_data[0]")
            Yv = targets(validation_data[1], self.loss, self.n_outputs, Xv.shape[0], self.dtype, "validation_data[1]")
        if first > 0 and self._cuda is None:  # on a device, the block input is computed there
            Xa = self._model.layer_input(Xa, first, threads)
        result = FitResult(status="completed", optimizer=type(opt).__name__.lower(), epochs=0, steps=0,
                           block=(first, last))
        bar = ProgressBar(epochs if not isinstance(opt, LBFGS) else opt.max_iter, desc="fit") if progress else None
        best = {"val": np.inf, "epoch": None, "theta": None, "wait": 0, "early": False}

        def poll(info: dict) -> bool:
            stop = False
            if info["epoch_end"]:
                if Xv is not None:
                    if "val_loss" in info:  # computed on the device, where the validation data lives
                        val = info["val_loss"]
                    else:
                        val, _ = self._model.loss_and_grad(Xv, Yv, None, 0, -1, False, threads)
                    info["val_loss"] = float(val)
                    result.val_curve.append(float(val))
                    if val < best["val"] - tol:
                        best.update(val=float(val), epoch=info["epoch"], wait=0)
                        if patience is not None:
                            best["theta"] = self.parameters.copy()
                    else:
                        best["wait"] += 1
                        if patience is not None and best["wait"] >= patience:
                            best["early"] = stop = True
                if bar is not None:
                    extra = f" val {info['val_loss']:.4g}" if "val_loss" in info else ""
                    bar.update(info["epoch"] + 1, f"loss {info['loss']:.4g}{extra}")
            if callback is not None and callback(info):
                stop = True
            return stop

        # Without a consumer the engine needs no Python at epoch ends (and no weight sync for it).
        needs_poll = bar is not None or Xv is not None or callback is not None
        t0 = time.perf_counter()
        result.status = "error"  # replaced below unless the engine raises (a callback's exception, Ctrl-C)
        try:
            if isinstance(opt, LBFGS):
                r = _core.lbfgs(self._model, Xa, Y, max_iter=opt.max_iter, history=opt.history, gtol=opt.gtol,
                                ftol=opt.ftol, first=first, last=last, callback=poll, n_threads=threads)
                result.status = r["status"]
                result.loss_curve = list(r["loss_history"])
                result.epochs = r["iterations"]
                result.steps = r["evaluations"]
            else:
                m, v = opt._state_for(self.n_params, self.dtype)
                kw = dict(**opt._engine_args(), state_m=m, state_v=v, t=opt.t, epochs=int(epochs),
                          batch_size=int(batch_size), shuffle=bool(shuffle),
                          seed=int(np.random.default_rng(seed).integers(2**63)) if seed is None else int(seed),
                          first=first, last=last, poll_every=int(callback_every),
                          max_steps=-1 if max_steps is None else int(max_steps),
                          callback=poll if needs_poll else None, n_threads=threads)
                if self._cuda is not None:
                    try:  # data, block input and validation data move to the device once per call
                        r = self._cuda.train(Xa, Y, **kw, input_layer=0, X_val=Xv, Y_val=Yv)
                    finally:
                        self._stale = True  # the host mirror is refreshed when CPU code next needs it
                else:
                    r = _core.train(self._model, Xa, Y, **kw)
                opt.t = r["t"]
                result.status = r["status"]
                result.loss_curve = list(r["epoch_loss"])
                result.epochs = r["epochs"]
                result.steps = r["steps"]
        finally:
            result.seconds = time.perf_counter() - t0
            if bar is not None:
                bar.close()
            self.history_ = result
        if best["early"]:
            result.status = "early_stopped"
        if best["theta"] is not None and best["epoch"] is not None and Xv is not None and patience is not None:
            self._stale = False  # every parameter is overwritten
            self._model.parameters[:] = best["theta"]
            self._push()
        result.best_epoch = best["epoch"]
        if result.status == "diverged":
            raise DivergenceError(
                f"fit: the loss became non-finite after {result.steps} steps; the network keeps the last weights "
                "with a finite loss. Lower the learning rate or standardize the inputs and targets.")
        return self

    # ------------------------------------------------------------------ persistence and import
    def save(self, path: Any, metadata: Optional[dict] = None) -> None:
        """Save to a versioned ``.npz`` (parameters + JSON header; no pickle). See :func:`sensinet.load`."""
        from .io import save

        save(self, path, metadata=metadata)

    @staticmethod
    def load(path: Any) -> "Network":
        from .io import load

        return load(path)

    @staticmethod
    def from_sklearn(model: Any, dtype: Any = np.float64) -> "Network":
        """Network with the weights of a fitted scikit-learn MLPRegressor / MLPClassifier."""
        from .convert import from_sklearn

        return from_sklearn(model, dtype=dtype)

    @staticmethod
    def from_torch(module: Any, n_inputs: Optional[int] = None, loss: str = "mse", dtype: Any = np.float64) -> "Network":
        """Network with the weights of a torch ``nn.Sequential`` of Linear layers and supported activations."""
        from .convert import from_torch

        return from_torch(module, n_inputs=n_inputs, loss=loss, dtype=dtype)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        """Architecture + parameters (the C++ object itself cannot be pickled)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("_host_model", "_cuda", "_stale")}
        state["_parameters"] = self.parameters.copy()
        return state

    def __setstate__(self, state: dict) -> None:
        params = state.pop("_parameters")
        device = state.pop("_device", "cpu")
        self.__dict__.update(state)
        cls = _core.Model64 if self.dtype == np.float64 else _core.Model32
        self._model = cls(self._specs, self.loss)
        self._model.parameters[:] = params
        self._device, self._cuda = "cpu", None
        if device != "cpu":
            try:
                self.to(device)
            except RuntimeError as exc:
                import warnings

                warnings.warn(f"Network: pickled on {device}, restored on cpu ({exc})", RuntimeWarning, stacklevel=2)

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        parts = []
        for layer in self.layers:
            if isinstance(layer, Dense):
                parts.append(f"Dense({layer.units}, {layer.activation!r})")
            else:
                parts.append(f"Residual({layer.width}, {layer.activation!r}, hidden={layer.inner}, "
                             f"weights={layer.weights})")
        dt = "float64" if self.dtype == np.float64 else "float32"
        dev = "" if self._device == "cpu" else f", device={self._device!r}"
        return (f"Network(n_inputs={self.n_inputs}, layers=[{', '.join(parts)}], loss={self.loss!r}, "
                f"dtype={dt}, n_params={self.n_params}{dev})")
