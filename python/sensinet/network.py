"""Network: layer specs plus one flat parameter vector owned by its engine (numpy sees it without a copy)."""
from __future__ import annotations

import copy
import time
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from . import cuda as _cuda_backend
from ._config import resolve_threads
from ._early_stopping import Patience
from .errors import DivergenceError, divergence_message, require_finite
from ._engine import CpuEngine, make_engine
from ._progress import ProgressBar
from ._tables import brief
from ._validation import (LOSSES, check_bool, check_callback, check_choice, check_count, check_number, check_size,
                          resolve_dtype, sample_weights, trainable_mask)
from .data import DataCache, Dataset, Matrix, as_dataset
from .fit_result import FitResult
from .layers import Dense, Layer, Residual, as_spec, layer_from_spec, layer_params
from .optimizers import LBFGS, Optimizer, make_optimizer

BlockSpec = Union[None, int, Sequence[int], range]

PRECISIONS = ("highest", "tf32")
INITS = ("auto", "he_uniform", "glorot", "torch")


def _check_precision(precision: Any, dtype: Any) -> str:
    check_choice(precision, "precision", PRECISIONS)
    if precision == "tf32" and np.dtype(dtype) != np.float32:
        raise ValueError("precision: 'tf32' applies to float32 networks; this one is float64 (use dtype=np.float32)")
    return precision


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
        Seed of the initialisation.
    init : {"auto", "he_uniform", "glorot", "torch"}
        The initialisation rule (see :meth:`reinitialize`): ``"auto"`` (default) draws He-uniform weights
        into relu-like layers and Glorot-uniform ones elsewhere, with zero biases; ``"torch"`` is PyTorch's
        ``nn.Linear`` default, the one the papers' reference code used.
    precision : {"highest", "tf32"}
        ``"tf32"``: float32 matrix products on a GPU use TF32 tensor cores (10-bit mantissa inputs, float32
        accumulation; several times faster on Ampere and later). The CPU engine always computes in full
        float32; float64 networks accept only "highest".
    device : {"cpu", "cuda", "cuda:N"}
        Where the parameters, caches and training run (default "cpu"). On a CUDA device forward, predict,
        loss_and_grad, fit (SGD / Adam) and :func:`sensinet.sensitivity` run on the GPU (needs the
        optional extension ``sensinet._cuda``; see :func:`sensinet.cuda_available`); parameters,
        optimizer state and prepared data stay there between calls. See :meth:`to`.

    Examples
    --------
    >>> net = Network(8, [Dense(64, "tanh"), Residual(64, "relu"), Dense(1)], seed=0)
    >>> net.n_params
    8961
    """

    def __init__(self, n_inputs: int, layers: Sequence[Layer], loss: str = "mse", dtype: Any = np.float64,
                 seed: Optional[int] = None, device: str = "cpu", precision: str = "highest",
                 init: str = "auto") -> None:
        device, index = _cuda_backend.parse_device(device)
        if index is not None:
            _cuda_backend.require(index)  # fail before building anything
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
            raise ValueError(f"n_inputs: expected an int >= 1, got {n_inputs!r}")
        if layers is None or isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers: expected a sequence of Dense / Residual layers, got {type(layers).__name__}")
        layers = list(layers)
        if not layers:
            raise ValueError("layers: expected at least one layer, got an empty list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (Dense, Residual)):
                raise TypeError(f"layers[{i}]: expected a Dense or Residual, got {type(layer).__name__}")
        check_choice(loss, "loss", LOSSES)
        self.dtype = resolve_dtype(dtype)
        self._precision = _check_precision(precision, self.dtype)
        specs, width = [], int(n_inputs)
        for layer in layers:
            specs.append(layer.spec(width))
            width = specs[-1].n_out
        self._specs = specs
        self.layers = tuple(layers)
        self.loss = loss
        n_params = sum(layer_params(s) for s in specs)
        check_size(n_params, np.dtype(self.dtype).itemsize, "Network")
        try:
            self._engine: Any = CpuEngine(specs, loss, self.dtype)
        except MemoryError:
            raise MemoryError(f"Network: {n_params:,} parameters ({n_params * np.dtype(self.dtype).itemsize / 2**30:,.2f}"
                              " GiB) could not be allocated") from None
        self._cache = DataCache()
        self.init = check_choice(init, "init", INITS)
        self.reinitialize(seed)
        if device != "cpu":
            self.to(device)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_specs(cls, specs: Sequence[tuple], loss: str = "mse", dtype: Any = np.float64) -> "Network":
        """A freshly initialised network with the layers of ``specs`` (:attr:`specs` of another network)."""
        specs = [as_spec(s) for s in specs]
        if not specs:
            raise ValueError("specs: expected at least one layer spec, got none")
        return cls(specs[0].n_in, [layer_from_spec(s) for s in specs], loss=loss, dtype=dtype)

    def reinitialize(self, seed: Optional[int] = None) -> "Network":
        """Draw new weights by the network's ``init`` rule, from ``numpy.random.default_rng(seed)``:

        * ``"auto"``: He-uniform (bound sqrt(6 / fan_in)) for the weights into relu / leaky_relu neurons,
          Glorot-uniform (sqrt(6 / (fan_in + fan_out))) for the others, zero biases;
        * ``"he_uniform"``: He-uniform for every weight matrix, zero biases;
        * ``"glorot"``: Glorot-uniform for every weight matrix, zero biases;
        * ``"torch"``: PyTorch's ``nn.Linear`` default, weights and biases uniform in
          ±1 / sqrt(fan_in) (``kaiming_uniform_(a=sqrt(5))``); a residual block's second weight has no bias.
        """
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed: expected an int >= 0 or None, got {seed!r}")
        rng = np.random.default_rng(seed)
        p = np.zeros(self.n_params, dtype=self.dtype)
        for l, spec in enumerate(self._specs):
            relu_like = spec.activation in ("relu", "leaky_relu")
            views = self.parameter_views(p, l)
            for name, W in views.items():
                if W.ndim != 2:
                    continue
                fan_in, fan_out = W.shape
                he, glorot = np.sqrt(6.0 / fan_in), np.sqrt(6.0 / (fan_in + fan_out))
                if self.init == "torch":
                    bound = 1.0 / np.sqrt(fan_in)
                    W[...] = rng.uniform(-bound, bound, size=W.shape)
                    bias = {"W": "b", "W1": "b1"}.get(name)
                    if bias is not None:
                        views[bias][...] = rng.uniform(-bound, bound, size=views[bias].shape)
                    continue
                if self.init == "he_uniform":
                    bound = he
                elif self.init == "glorot":
                    bound = glorot
                else:
                    bound = he if relu_like and name != "W2" else glorot
                W[...] = rng.uniform(-bound, bound, size=W.shape)
        self._engine.set_parameters(p)
        return self

    _PRIVATE = ("_engine", "_cache")  # per-instance machinery: never copied or pickled

    def copy(self) -> "Network":
        """An independent copy on the same device (one memcpy of the parameter vector)."""
        new = object.__new__(Network)
        new.__dict__.update(copy.deepcopy({k: v for k, v in self.__dict__.items() if k not in self._PRIVATE}))
        new._cache = DataCache()
        host = self._engine.host() if self._engine.device != "cpu" else self._engine
        new._engine = make_engine(self._specs, self.loss, self.dtype, self.device, host=host.copy())
        new._engine.set_precision(self.precision)
        return new

    def astype(self, dtype: Any) -> "Network":
        """A copy with float64 or float32 parameters (TF32 precision stays only on float32)."""
        new = Network.from_specs(self._specs, self.loss, dtype)
        if new.dtype == np.float32:
            new._precision = self.precision
        new.parameters = self._engine.read_parameters()
        for attr in ("metadata", "classes_", "init"):  # init: reinitialize() draws as the original would
            if hasattr(self, attr):
                setattr(new, attr, copy.deepcopy(getattr(self, attr)))
        return new.to(self.device)

    # ------------------------------------------------------------------ device
    @property
    def precision(self) -> str:
        """Matrix-product precision on a GPU: "highest" or "tf32" (float32 networks only)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        self._precision = _check_precision(value, self.dtype)
        self._engine.set_precision(self._precision)

    @property
    def engine(self) -> Any:
        """The compiled engine of this network (a ``sensinet._engine`` handle: the same methods on every
        backend). sensinet's own modules call it; its arguments are prepared Matrices (:meth:`matrices`)."""
        return self._engine

    @property
    def device(self) -> str:
        """Where the network lives: "cpu", "cuda" (device 0) or "cuda:N"."""
        return self._engine.device

    def to(self, device: str) -> "Network":
        """Move the network to ``device`` ("cpu", "cuda" or "cuda:N"); returns ``self``.

        On a CUDA device the flat parameter vector, the activation caches, the optimizer state and the
        prepared data (:class:`sensinet.Dataset`, or arrays seen before) stay in GPU memory between calls;
        forward, predict, layer_input, loss_and_grad, objective, fit (SGD / Adam) and reduced
        :func:`sensinet.sensitivity` run there. ``parameters`` is then a writable view of a host mirror
        that is refreshed from the device when read; writes through it (or through ``layer_parameters``)
        reach the device before its next call. L-BFGS, per-sample sensitivities, finite differences,
        curvature, insertion scores and ReLU patterns still run on the host mirror.
        Raises RuntimeError ("CUDA is not available: ...") without a usable device or extension.
        """
        name, index = _cuda_backend.parse_device(device)
        if name == self.device:
            return self
        host = self._engine.host() if self._engine.device != "cpu" else self._engine
        if index is None:
            self._engine = host  # frees the device memory
        else:
            _cuda_backend.require(index)
            self._engine = make_engine(self._specs, self.loss, self.dtype, name, host=host)
            self._engine.set_precision(self.precision)
        return self

    def transfer_stats(self) -> dict:
        """Host<->device copies made for this network since the last :meth:`reset_transfer_stats`: counts
        and bytes, and bytes by kind (data, parameters, optimizer state). All zero on the CPU."""
        return self._engine.transfer_stats()

    def reset_transfer_stats(self) -> None:
        """Zero the counters of :attr:`transfer_stats` (bytes and calls across the bus)."""
        self._engine.reset_transfer_stats()

    def clear_cache(self) -> "Network":
        """Forget the arrays this network prepared (and their device copies); see :mod:`sensinet.data`."""
        self._cache.clear()
        return self

    # ------------------------------------------------------------------ structure
    @property
    def parameters(self) -> NDArray:
        """The flat parameter vector: a writable view (no copy).

        On the CPU it views the engine's own memory. On a CUDA device it views a host mirror, refreshed
        from the device when read; writes through it reach the device before the device's next call."""
        return self._engine.parameters

    @parameters.setter
    def parameters(self, value: Any) -> None:
        v = np.asarray(value)
        if v.shape != (self.n_params,):
            raise ValueError(f"parameters: expected shape ({self.n_params},), got {v.shape}")
        if v.dtype.kind not in "biuf":
            raise TypeError(f"parameters: expected a numeric array, got dtype {v.dtype}")
        v = np.ascontiguousarray(v, dtype=self.dtype)
        if not np.isfinite(v).all():
            raise ValueError("parameters: contains NaN or infinity (after conversion to the network's dtype)")
        self._engine.set_parameters(v)

    @property
    def n_params(self) -> int:
        """Number of parameters (the length of :attr:`parameters`)."""
        return self._engine.n_params

    @property
    def n_layers(self) -> int:
        """Number of layers (Dense layers and residual blocks)."""
        return len(self._specs)

    @property
    def n_inputs(self) -> int:
        """Number of input features."""
        return int(self._specs[0].n_in)

    @property
    def n_outputs(self) -> int:
        """Number of outputs (values, or logits of a classification head)."""
        return int(self._specs[-1].n_out)

    @property
    def offsets(self) -> list:
        """offsets[l]: index of layer l's first parameter in the flat vector; offsets[-1] == n_params."""
        return list(self._layer_offsets())

    def _layer_offsets(self) -> tuple:
        # the architecture never changes, so the engine is asked once (per layer it would make building and
        # viewing a deep network quadratic in its depth)
        cached = self.__dict__.get("_offsets")
        if cached is None:
            cached = self.__dict__["_offsets"] = tuple(self._engine.offsets)
        return cached

    @property
    def specs(self) -> list:
        """The :class:`~sensinet.layers.LayerSpec` of every layer (kind, n_in, n_out, hidden, activation, alpha,
        l2), bottom-up."""
        return list(self._specs)

    def layer_parameters(self, layer: int) -> dict:
        """Views (no copies) of one layer's parameters: W, b (dense, one-weight residual) or W1, b1, W2."""
        layer = self.layer_index(layer, "layer")
        return self.parameter_views(self.parameters, layer)

    def parameter_views(self, p: NDArray, layer: int) -> dict:
        """Views of one layer's part of any flat vector ``p`` laid out like :attr:`parameters` (a gradient,
        a copy of the parameters): W, b or W1, b1, W2."""
        kind, n_in, n_out, hidden, *_ = self._specs[layer]
        o = self._layer_offsets()[layer]
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

    def layer_index(self, layer: Any, name: str = "layer", allow_end: bool = False) -> int:
        """``layer`` as an index in [0, n_layers) (negative ones count from the end; ``allow_end`` admits
        n_layers, the output), or a TypeError / ValueError that names the argument ``name``."""
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
            l = self.layer_index(layers, "layers")
            return l, l
        if isinstance(layers, tuple) and len(layers) == 2:
            first, last = (self.layer_index(l, "layers") for l in layers)
            if first > last:
                raise ValueError(f"layers: expected (first, last) with first <= last, got {layers}")
            return first, last
        if not isinstance(layers, (list, tuple, range, np.ndarray)):
            raise TypeError(f"layers: expected an int, a (first, last) tuple or a list of consecutive layer "
                            f"indices, got {type(layers).__name__}")
        idx = [self.layer_index(l, "layers") for l in layers]
        if not idx:
            raise ValueError("layers: expected at least one layer index, got none")
        first, last = min(idx), max(idx)
        if sorted(idx) != list(range(first, last + 1)):
            raise ValueError(f"layers: expected consecutive layer indices, got {list(layers)}")
        return first, last

    # ------------------------------------------------------------------ data
    def prepare(self, X: Any, y: Any = None, names: tuple = ("X", "y")) -> Dataset:
        """(X, y) validated and converted once, as a :class:`sensinet.Dataset`: a Dataset is returned as it is,
        arrays go through this network's cache (so repeated calls with the same arrays reuse one copy, and on
        a GPU one device copy). ``names`` are the argument names that errors quote."""
        return as_dataset(X, y, self._cache, names, self.n_inputs)

    def input_matrix(self, X: Any, name: str = "X") -> Matrix:
        """X (a Dataset, a prepared Matrix or an array) as the engine's input Matrix."""
        if isinstance(X, Matrix) and X.array.dtype == self.dtype and X.shape[1] == self.n_inputs:
            return X
        return self.prepare(X, None, (name, "y")).inputs(self.dtype, self.n_inputs, name)

    def input_array(self, X: Any, name: str = "X") -> NDArray:
        """X as a validated, C-contiguous array in the network's dtype (read-only)."""
        return self.input_matrix(X, name).array

    def matrices(self, X: Any, y: Any, names: tuple = ("X", "y")) -> tuple:
        """(X, Y) Matrices of a Dataset or of arrays; Y in the head's target format."""
        data = self.prepare(X, y, names)
        return (data.inputs(self.dtype, self.n_inputs, names[0]),
                data.targets(self.loss, self.n_outputs, self.dtype, names[1]))

    def validation_matrices(self, validation_data: Any) -> tuple:
        """(X_val, Y_val) Matrices of a Dataset or a pair (X_val, y_val)."""
        if isinstance(validation_data, Dataset):
            return self.matrices(validation_data, None, ("validation_data.X", "validation_data.y"))
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data: expected a pair (X_val, y_val) or a Dataset")
        return self.matrices(validation_data[0], validation_data[1], ("validation_data[0]", "validation_data[1]"))

    # ------------------------------------------------------------------ evaluation
    def forward(self, X: Any, n_threads: Optional[int] = None) -> NDArray:
        """Raw network outputs (logits for classification heads), shape (n_samples, n_outputs).

        Raises NonFiniteError when the outputs overflow."""
        Xm = self.input_matrix(X)
        return self._finite(self._engine.forward(Xm, False, 0, resolve_threads(n_threads)), "network output",
                            "forward", Xm)

    def predict(self, X: Any, n_threads: Optional[int] = None) -> NDArray:
        """Outputs through the head's link: values (mse), softmax or sigmoid probabilities (classification).

        Raises NonFiniteError when the outputs overflow."""
        Xm = self.input_matrix(X)
        return self._finite(self._engine.forward(Xm, True, 0, resolve_threads(n_threads)), "network output",
                            "predict", Xm)

    __call__ = forward

    def layer_input(self, X: Any, layer: int, n_threads: Optional[int] = None) -> NDArray:
        """Input of ``layer`` (the output of layer-1); ``layer == n_layers`` gives the network output."""
        layer = self.layer_index(layer, "layer", allow_end=True)
        Xm = self.input_matrix(X)
        return self._finite(self._engine.layer_input(Xm, layer, 0, None, resolve_threads(n_threads)),
                            f"input of layer {layer}", "layer_input", Xm)

    def loss_and_grad(self, X: Any, y: Any = None, theta: Optional[Any] = None, layers: BlockSpec = None,
                      n_threads: Optional[int] = None) -> tuple:
        """Full-batch objective J (mean loss + L2 terms) and its gradient.

        Usable directly as ``scipy.optimize.minimize(lambda t: net.loss_and_grad(X, y, t), x0, jac=True)``.

        Parameters
        ----------
        X, y : arrays, or a :class:`sensinet.Dataset` as X (then y is None)
        theta : array, optional
            Full parameter vector to evaluate at (default: the network's own).
        layers : int or (first, last) or sequence of consecutive indices, optional
            Return only the gradient of that block of layers (a contiguous slice of the flat vector). The
            block's input is computed once from the layers below, so the cost covers the layers from the
            block up only.
        """
        first, last = self._block(layers)
        Xm, Ym = self.matrices(X, y)
        th = None if theta is None else self._theta(theta)
        loss, grad = self._engine.loss_and_grad(Xm, Ym, first, last, True, th, 0, resolve_threads(n_threads))
        self._finite(loss, "objective", "loss_and_grad", Xm, Ym)
        return loss, self._finite(grad, "gradient", "loss_and_grad", Xm, Ym)

    def _theta(self, theta: Any) -> NDArray:
        t = np.asarray(theta)
        if t.ndim != 1 or t.shape[0] != self.n_params:
            raise ValueError(f"theta: expected shape ({self.n_params},), got {t.shape}")
        if t.dtype.kind not in "biuf":
            raise TypeError(f"theta: expected a numeric array, got dtype {t.dtype}")
        t = np.ascontiguousarray(t, dtype=self.dtype)
        if not t.flags.writeable:
            t = t.copy()
        return t

    def objective(self, X: Any, y: Any = None, n_threads: Optional[int] = None) -> float:
        """Full-batch objective J (mean loss + L2) without the gradient."""
        Xm, Ym = self.matrices(X, y)
        loss = self._engine.loss_and_grad(Xm, Ym, 0, -1, False, None, None, resolve_threads(n_threads))[0]
        return self._finite(loss, "objective", "objective", Xm, Ym)

    def _finite(self, values: Any, what: str, where: str, Xm: Matrix, Ym: Optional[Matrix] = None) -> Any:
        return require_finite(values, what, where, Xm, targets=Ym, weights=self._engine.read_parameters,
                              dtype=self.dtype)

    # ------------------------------------------------------------------ training
    def fit(self, X: Any, y: Any = None, *, optimizer: Union[str, Optimizer] = "adam", lr: Optional[float] = None,
            epochs: int = 100, batch_size: int = 32, shuffle: bool = True, seed: Optional[int] = 0,
            layers: BlockSpec = None, validation_data: Optional[tuple] = None, patience: Optional[int] = None,
            tol: float = 0.0, callback: Optional[Callable[[dict], Any]] = None, callback_every: int = 0,
            progress: bool = False, max_steps: Optional[int] = None, n_threads: Optional[int] = None,
            sample_weight: Any = None, trainable: Any = None) -> "Network":
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
        X, y : arrays, or a :class:`sensinet.Dataset` as X (then y is None)
            A Dataset, or the same unchanged arrays again, is neither re-validated nor re-uploaded.
        validation_data : (X_val, y_val) or Dataset, optional
            Evaluated at every epoch end; with ``patience`` training stops after that many epochs without an
            improvement larger than ``tol`` and the best weights are restored.
        callback : callable, optional
            Called with a dict (epoch, step, loss, epoch_end[, val_loss]) every ``callback_every`` steps and
            at every epoch end; returning True stops training.
        progress : bool
            Show a progress bar on stderr.
        max_steps : int, optional
            Stop after this many optimizer steps.
        sample_weight : array of shape (n_samples,), optional
            Weights of the training samples (finite, >= 0, not all 0): each minibatch's loss (L-BFGS: the full
            batch's) is the weighted mean of its samples' losses. The validation loss stays unweighted.
        trainable : bool array of shape (n_params,), optional
            Train only the parameters where it is True (laid out like :attr:`parameters`; build it with
            :meth:`parameter_views`, e.g. to train single neurons). The others keep their values *and* their
            optimizer state (Adam moments, momentum); L-BFGS works in the trainable subspace. Combine it with
            ``layers`` so that the frozen layers outside the mask are not even differentiated.

        Raises
        ------
        DivergenceError
            When the loss becomes non-finite; the weights are those of the last step with a finite loss.
        KeyboardInterrupt
            Ctrl-C stops between two steps and leaves consistent weights.
        """
        opt = make_optimizer(optimizer, lr)
        first, last = self._block(layers)
        threads = resolve_threads(n_threads)
        Xm, Ym = self.matrices(X, y)
        check_count(epochs, "epochs")
        check_count(batch_size, "batch_size", 1)
        check_count(patience, "patience", 1, none_ok=True)
        if patience is not None and validation_data is None:
            raise ValueError("patience: early stopping needs validation_data=(X_val, y_val)")
        check_count(max_steps, "max_steps", none_ok=True)
        if callback is not None:
            check_callback(callback)
        check_bool(shuffle, "shuffle")
        check_bool(progress, "progress")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
                                 or seed >= 2**64):  # the engine's generator takes any 64-bit seed
            raise ValueError(f"seed: expected an int in [0, 2**64) or None, got {seed!r}")
        check_number(tol, "tol", 0.0)
        check_count(callback_every, "callback_every")
        weights = None if sample_weight is None else sample_weights(sample_weight, Xm.shape[0], self.dtype)
        keep = None if trainable is None else trainable_mask(trainable, self.n_params,
                                                               self.block_slice((first, last)), self.dtype)
        Xv = Yv = None
        if validation_data is not None:
            Xv, Yv = self.validation_matrices(validation_data)
        result = FitResult(status="completed", optimizer=type(opt).__name__.lower(), epochs=0, steps=0,
                           block=(first, last))
        bar = ProgressBar(epochs if not isinstance(opt, LBFGS) else opt.max_iter, desc="fit") if progress else None
        watch = Patience(patience, tol)
        best_epochs: list = []  # the epoch of every validation record
        broken: list = []  # the iteration at which a callback left non-finite weights (L-BFGS)

        def poll(info: dict) -> bool:
            stop = False
            if info["epoch_end"]:
                if "val_loss" in info:  # the engine evaluated the validation objective
                    val = info["val_loss"] = float(info["val_loss"])
                    result.val_curve.append(val)
                    best_epochs.append(info["epoch"])
                    stop = watch.update(val, self._engine.read_parameters if patience is not None else None)
                if bar is not None:
                    extra = f" val {info['val_loss']:.4g}" if "val_loss" in info else ""
                    bar.update(info["epoch"] + 1, f"loss {info['loss']:.4g}{extra}")
            if callback is not None:
                # L-BFGS cannot step back from weights a callback made non-finite: keep the last finite ones
                before = self._engine.read_parameters().copy() if isinstance(opt, LBFGS) else None
                stop = bool(callback(info)) or stop
                if before is not None and not np.isfinite(self._engine.read_parameters()).all():
                    self._engine.set_parameters(before)
                    broken.append(info.get("epoch", 0))
                    stop = True
            return stop

        # Without a consumer the engine needs no Python at epoch ends (and no weight sync for it).
        needs_poll = bar is not None or Xv is not None or callback is not None
        common = dict(first=first, last=last, input_layer=0, callback=poll if needs_poll else None, X_val=Xv,
                      Y_val=Yv, threads=threads)
        t0 = time.perf_counter()
        result.status = "error"  # replaced below unless the engine raises (a callback's exception, Ctrl-C)
        try:
            if isinstance(opt, LBFGS):
                r = self._engine.lbfgs(Xm, Ym, opt, sample_weight=weights, trainable=keep, **common)
                result.status = r["status"]
                result.loss_curve = list(r["loss_history"])
                result.epochs = r["iterations"]
                result.steps = r["evaluations"]
            else:
                r = self._engine.train(
                    Xm, Ym, opt, sample_weight=weights, trainable=keep, epochs=int(epochs),
                    batch_size=int(batch_size), shuffle=bool(shuffle),
                    seed=int(np.random.default_rng(seed).integers(2**63)) if seed is None else int(seed),
                    poll_every=int(callback_every), max_steps=-1 if max_steps is None else int(max_steps), **common)
                result.status = r["status"]
                result.loss_curve = list(r["epoch_loss"])
                result.epochs = r["epochs"]
                result.steps = r["steps"]
        finally:
            result.seconds = time.perf_counter() - t0
            if bar is not None:
                bar.close()
            self.history_ = result
        if watch.stopped:
            result.status = "early_stopped"
        if watch.best_weights is not None:
            self._engine.set_parameters(watch.best_weights)
        result.best_epoch = None if watch.best_index is None else best_epochs[watch.best_index]
        if broken:
            result.status = "diverged"
            raise DivergenceError(f"fit: the callback left non-finite weights at L-BFGS iteration {broken[0]}; the "
                                  "network keeps the last finite weights (those before that call)")
        if result.status == "diverged":
            raise DivergenceError(divergence_message(result, self.loss, self.dtype, Xm.array, Ym.array))
        return self

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        """Architecture + parameters (the engine itself cannot be pickled)."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._PRIVATE}
        state["_parameters"] = self._engine.read_parameters().copy()
        state["_device"] = self.device
        return state

    def __setstate__(self, state: dict) -> None:
        params = state.pop("_parameters")
        device = state.pop("_device", "cpu")
        self.__dict__.update(state)
        self.__dict__.setdefault("_precision", "highest")  # files pickled before precision existed
        self.__dict__.setdefault("init", "auto")
        self._engine = CpuEngine(self._specs, self.loss, self.dtype)
        self._engine.set_parameters(params)
        self._cache = DataCache()
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
        dev = "" if self.device == "cpu" else f", device={self.device!r}"
        dev += "" if self.precision == "highest" else f", precision={self.precision!r}"
        return (f"Network(n_inputs={self.n_inputs}, layers=[{', '.join(parts)}], loss={self.loss!r}, "
                f"dtype={dt}, n_params={self.n_params}{dev})")
