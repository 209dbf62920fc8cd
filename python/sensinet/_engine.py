"""The compiled engine of one network: one handle class per backend, the same methods and argument order.

Only this module and ``network.py`` import the extensions (``_core``, ``_cuda``). The other modules
(sensitivity, hierarchical, insertion, clusters, io) call ``net.engine`` and never branch on the device.

Arguments named ``X``/``Y`` are :class:`sensinet.data.Matrix` objects (validated, C-contiguous, in the
network's dtype, with a key) or plain arrays already in that form. A CUDA engine keeps a device copy of
every Matrix it is given, keyed by the Matrix, so repeated calls with the same prepared data upload nothing.

The CUDA handle also owns the host mirror of the parameters:

* the device is authoritative; the mirror is refreshed from it (one download) when the host reads it;
* every host write reaches the device: writes through ``set_parameters`` at once, writes through a view
  handed out by ``parameters`` before the next device call (a fingerprint of the mirror tells whether it
  changed), and while such a view is alive the mirror is refreshed right after each device update, so
  the view never shows stale weights;
* computations the device does not have yet (per-sample sensitivities, finite differences, curvature,
  insertion adjoints, L-BFGS) run on the host mirror, and what they change is pushed back.
"""
from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from . import _core
from . import cuda as _cuda_backend

_REDUCE = {"mean_abs": 0, "rms": 1, "mean": 2}

# At exit, threads still inside the engine park instead of being ended by CPython (see common.hpp).
atexit.register(_core.begin_shutdown, 2.0)


def build_info() -> dict:
    """How the engine was built: Eigen version, SIMD instruction sets, OpenMP."""
    return {"eigen": _core.eigen_version, "simd": _core.simd, "openmp": bool(_core.openmp)}


# The fingerprint's secret key, drawn once per process: a change to an array cannot be crafted to keep its
# fingerprint without it (fingerprint.hpp).
_FINGERPRINT_KEY = int.from_bytes(os.urandom(8), "little")


def fingerprint(a: NDArray) -> int:
    """Position-sensitive 64-bit fingerprint of a C-contiguous array's bytes, keyed per process (fingerprint.hpp)."""
    return int(_core.fingerprint(a, _FINGERPRINT_KEY))


def activation(name: str, z: NDArray, alpha: float = 0.01, derivative: bool = False) -> NDArray:
    """The engine's activation function (or its derivative) applied elementwise to a C-contiguous array."""
    return _core.activation(name, np.ascontiguousarray(z), alpha, derivative)


def _arr(m: Any) -> Optional[NDArray]:
    return None if m is None else getattr(m, "array", m)


def _key(m: Any) -> int:
    return 0 if m is None else int(getattr(m, "key", 0))


def _bind_val(engine: Any, X_val: Any, Y_val: Any, callback: Optional[Callable], threads: int) -> Optional[Callable]:
    """Wrap a poll callback so epoch ends carry the validation objective (as the CUDA engine reports it)."""
    if X_val is None or callback is None:
        return callback

    def poll(info: dict) -> Any:
        if info["epoch_end"] and "val_loss" not in info:
            info["val_loss"] = float(engine.loss_and_grad(X_val, Y_val, want_grad=False, threads=threads)[0])
        return callback(info)

    return poll


class CpuEngine:
    """The C++/Eigen engine: the parameter vector lives in host memory and numpy views it without a copy."""

    device = "cpu"

    def __init__(self, specs: Sequence[tuple], loss: str, dtype: Any, model: Any = None) -> None:
        self.dtype = np.dtype(dtype)
        cls = _core.Model64 if self.dtype == np.float64 else _core.Model32
        self._model = model if model is not None else cls(list(specs), loss)

    # ------------------------------------------------------------------ parameters
    @property
    def n_params(self) -> int:
        return int(self._model.n_params)

    @property
    def offsets(self) -> list:
        return list(self._model.offsets)

    @property
    def parameters(self) -> NDArray:
        """A writable zero-copy view of the flat parameter vector."""
        return self._model.parameters

    def read_parameters(self) -> NDArray:
        """The current parameters for reading (a view here; do not write through it)."""
        return self._model.parameters

    def set_parameters(self, theta: NDArray) -> None:
        self._model.parameters[:] = theta

    def copy(self) -> "CpuEngine":
        return CpuEngine((), "", self.dtype, model=self._model.copy())

    def set_precision(self, precision: str) -> None:
        """The CPU engine always computes in full precision."""

    # ------------------------------------------------------------------ evaluation
    def forward(self, X: Any, link: bool = False, first: int = 0, threads: int = 1) -> NDArray:
        return self._model.forward(_arr(X), link, first, threads)

    def layer_input(self, X: Any, layer: int, from_layer: int = 0, theta: Optional[NDArray] = None,
                    threads: int = 1) -> NDArray:
        return self._model.layer_input(_arr(X), layer, from_layer, theta, threads)

    def loss_and_grad(self, X: Any, Y: Any, first: int = 0, last: int = -1, want_grad: bool = True,
                      theta: Optional[NDArray] = None, input_layer: Optional[int] = None, threads: int = 1) -> tuple:
        """J (mean loss + L2) and dJ/d(parameters of layers first..last); X is the input of ``input_layer``
        (default ``first``): the layers between are evaluated once, in this call."""
        x = _arr(X)
        if input_layer is not None and input_layer < first:
            x = self._model.layer_input(x, first, input_layer, theta, threads)
        loss, grad = self._model.loss_and_grad(x, _arr(Y), theta, first, last, want_grad, threads)
        return float(loss), grad

    # ------------------------------------------------------------------ training
    def train(self, X: Any, Y: Any, opt: Any, *, epochs: int, batch_size: int, shuffle: bool, seed: int,
              first: int = 0, last: int = -1, input_layer: Optional[int] = None, poll_every: int = 0,
              max_steps: int = -1, callback: Optional[Callable] = None, X_val: Any = None, Y_val: Any = None,
              threads: int = 1, sample_weight: Optional[NDArray] = None,
              trainable: Optional[NDArray] = None) -> dict:
        """Minibatch SGD / Adam epochs in C++ on layers first..last; ``opt`` keeps its state across calls.
        With validation data the callback's epoch-end dict carries ``val_loss``; with ``sample_weight`` each
        minibatch's loss is the weighted mean of its rows; ``trainable`` (0/1 per parameter) freezes the 0s."""
        x = _arr(X)
        if input_layer is not None and input_layer < first:
            x = self._model.layer_input(x, first, input_layer, None, threads)
        m, v = opt.state.arrays(self.n_params, self.dtype)
        r = _core.train(self._model, x, _arr(Y), **opt.engine_args(), state_m=m, state_v=v, t=opt.t, epochs=epochs,
                        batch_size=batch_size, shuffle=shuffle, seed=seed, first=first, last=last,
                        poll_every=poll_every, max_steps=max_steps,
                        callback=_bind_val(self, X_val, Y_val, callback, threads), n_threads=threads,
                        sample_weight=sample_weight, trainable=trainable)
        opt.t = r["t"]
        return r

    def lbfgs(self, X: Any, Y: Any, opt: Any, *, first: int = 0, last: int = -1, input_layer: Optional[int] = None,
              callback: Optional[Callable] = None, X_val: Any = None, Y_val: Any = None, threads: int = 1,
              sample_weight: Optional[NDArray] = None, trainable: Optional[NDArray] = None) -> dict:
        """Full-batch L-BFGS (strong-Wolfe line search) on layers first..last (the weighted mean loss with
        ``sample_weight``; only the parameters where ``trainable`` is 1)."""
        x = _arr(X)
        if input_layer is not None and input_layer < first:
            x = self._model.layer_input(x, first, input_layer, None, threads)
        return _core.lbfgs(self._model, x, _arr(Y), max_iter=opt.max_iter, history=opt.history, gtol=opt.gtol,
                           ftol=opt.ftol, first=first, last=last,
                           max_evals=-1 if opt.max_evals is None else int(opt.max_evals),
                           callback=_bind_val(self, X_val, Y_val, callback, threads), n_threads=threads,
                           sample_weight=sample_weight, trainable=trainable)

    # ------------------------------------------------------------------ sensitivities and interpretation
    def sensitivities(self, X: Any, Y: Any, wrt_loss: bool, sites: Sequence[tuple], reduce: str = "mean_abs",
                      per_sample: bool = False, threads: int = 1) -> tuple:
        """(reduced matrices, per-sample tensors or None) of the scaling-factor sensitivities at ``sites``."""
        mats, samples = _core.sensitivities(self._model, _arr(X), _arr(Y), wrt_loss, list(sites), _REDUCE[reduce],
                                            per_sample, threads)
        return list(mats), (list(samples) if per_sample else None)

    def site_adjoints(self, X: Any, Y: Any, sites: Sequence[tuple], inv_n: float, threads: int = 1) -> tuple:
        return _core.site_adjoints(self._model, _arr(X), _arr(Y), list(sites), inv_n, threads)

    def group_curvature(self, X: Any, Y: Any, groups: Sequence, threads: int = 1) -> NDArray:
        return np.array(_core.group_curvature(self._model, _arr(X), _arr(Y), list(groups), threads))

    def scaled_forward(self, X: Any, Y: Any, scales: Sequence, threads: int = 1) -> Any:
        """Outputs (Y None) or J (Y given) with neuron scaling factors ``scales`` [(layer, part, s)]."""
        return _core.scaled_forward(self._model, _arr(X), _arr(Y), list(scales), threads)

    def relu_patterns(self, X: Any, layers: Sequence[int], threads: int = 1) -> NDArray:
        return _core.relu_patterns(self._model, _arr(X), list(layers), threads)

    # ------------------------------------------------------------------ bookkeeping
    def transfer_stats(self) -> dict:
        """Host/device copies (none on the CPU)."""
        return {"h2d_calls": 0, "h2d_bytes": 0, "d2h_calls": 0, "d2h_bytes": 0, "h2d_data_bytes": 0,
                "h2d_param_bytes": 0, "h2d_state_bytes": 0, "d2h_param_bytes": 0, "d2h_state_bytes": 0}

    def reset_transfer_stats(self) -> None:
        pass


class _ViewOwner:
    """The base object of the parameter views a CUDA engine hands out. numpy collapses a chain of views to
    the memory's owner, so a weak reference to the handed-out array itself would die while a view derived
    from it (a layer's W) is still alive; every view derived from this object keeps it alive instead."""

    def __init__(self, mirror: NDArray) -> None:
        self._mirror = mirror
        self.__array_interface__ = mirror.__array_interface__


class CudaEngine:
    """The CUDA engine: parameters, optimizer state and prepared data stay in GPU memory between calls."""

    _MAX_STATES = 4  # optimizer states kept on the device (each holds two parameter-sized vectors)

    def __init__(self, specs: Sequence[tuple], loss: str, dtype: Any, device: str, index: int,
                 host: CpuEngine) -> None:
        self.dtype = np.dtype(dtype)
        self.device = device
        self._dev = _cuda_backend.model_class(self.dtype, index)(list(specs), loss, index)
        self._host = host            # the host mirror (a CPU engine over the same architecture)
        self._dev.set_parameters(host.read_parameters())
        self._stale = False          # the device holds newer parameters than the mirror
        self._views: list = []       # weak references to writable views handed out by `parameters`
        self._mirror_fp: Optional[int] = None  # fingerprint of the mirror when it last equalled the device
        self._states: OrderedDict = OrderedDict()  # optimizer-state key -> weakref to the optimizer
        self._data_keys: set = set()
        self._mirror_lock = threading.RLock()  # the mirror's bookkeeping, for threads sharing one network
        # when this engine goes (net.to("cpu"), garbage collection), the states it holds return to their
        # optimizers first: the finalizer holds the device model, not the engine
        weakref.finalize(self, _rescue_states, self._dev, self._states)

    # ------------------------------------------------------------------ parameters and the host mirror
    @property
    def n_params(self) -> int:
        return self._host.n_params

    @property
    def offsets(self) -> list:
        return self._host.offsets

    def _pull(self) -> None:
        """Device -> mirror when the device is newer."""
        with self._mirror_lock:
            if self._stale:
                self._stale = False  # before the download: a poll during it marks the mirror stale again
                self._dev.get_parameters(self._host.parameters)
                if self._live_views():
                    self._mirror_fp = fingerprint(self._host.parameters)

    def _live_views(self) -> bool:
        self._views = [r for r in self._views if r() is not None]
        return bool(self._views)

    def _push_writes(self) -> None:
        """Before a device call: host writes through handed-out views reach the device."""
        if not self._views:
            return
        with self._mirror_lock:
            fp = fingerprint(self._host.parameters)
            if fp != self._mirror_fp:
                self._dev.set_parameters(self._host.parameters)
                self._mirror_fp = fp
            if not self._live_views():
                self._mirror_fp = None

    def _device_changed(self) -> None:
        """After a device call that updated the parameters."""
        self._stale = True
        if self._live_views():
            self._pull()

    @property
    def parameters(self) -> NDArray:
        """A writable view of the host mirror, up to date; writes reach the device before its next call."""
        with self._mirror_lock:
            self._pull()
            owner = _ViewOwner(self._host.parameters)
            if not self._views:
                self._mirror_fp = fingerprint(self._host.parameters)
            self._views.append(weakref.ref(owner))
            return np.asarray(owner)

    def read_parameters(self) -> NDArray:
        """The up-to-date mirror for reading (do not write through it)."""
        self._pull()
        return self._host.read_parameters()

    def set_parameters(self, theta: NDArray) -> None:
        with self._mirror_lock:
            self._host.set_parameters(theta)
            self._dev.set_parameters(self._host.read_parameters())
            self._stale = False
            if self._views:
                self._mirror_fp = fingerprint(self._host.parameters)

    def set_precision(self, precision: str) -> None:
        self._dev.tf32 = precision == "tf32"

    def host(self) -> CpuEngine:
        """The host mirror, up to date, for computations the device does not have (see module docstring)."""
        self._push_writes()
        self._pull()
        return self._host

    def _host_changed(self) -> None:
        """A host-side computation changed the mirror: push it."""
        self._dev.set_parameters(self._host.read_parameters())
        if self._views:
            self._mirror_fp = fingerprint(self._host.parameters)

    # ------------------------------------------------------------------ evaluation on the device
    def _keys(self, *ms: Any) -> list:
        """The residency keys of prepared matrices; each device copy is freed when its Matrix goes away."""
        keys = []
        for m in ms:
            k = _key(m)
            if k and k not in self._data_keys:
                self._data_keys.add(k)
                weakref.finalize(m, _forget_data, weakref.ref(self), k)
            keys.append(k)
        return keys

    def forward(self, X: Any, link: bool = False, first: int = 0, threads: int = 1) -> NDArray:
        self._push_writes()
        (kx,) = self._keys(X)
        return self._dev.forward(_arr(X), link=link, first=first, x_key=kx)

    def layer_input(self, X: Any, layer: int, from_layer: int = 0, theta: Optional[NDArray] = None,
                    threads: int = 1) -> NDArray:
        if from_layer != 0 or theta is not None:
            return self.host().layer_input(X, layer, from_layer, theta, threads)
        self._push_writes()
        (kx,) = self._keys(X)
        return self._dev.layer_input(_arr(X), layer, x_key=kx)

    def loss_and_grad(self, X: Any, Y: Any, first: int = 0, last: int = -1, want_grad: bool = True,
                      theta: Optional[NDArray] = None, input_layer: Optional[int] = None, threads: int = 1) -> tuple:
        self._push_writes()
        kx, ky = self._keys(X, Y)
        loss, grad = self._dev.loss_and_grad(_arr(X), _arr(Y), first=first, last=last, want_grad=want_grad,
                                             theta=theta, input_layer=first if input_layer is None else input_layer,
                                             x_key=kx, y_key=ky)
        return float(loss), grad

    # ------------------------------------------------------------------ training on the device
    def _state_slot(self, opt: Any) -> tuple:
        """(key, upload) for the optimizer's state: kept on the device while the optimizer object lives and
        nothing else (the host, another engine) has taken it since."""
        st = opt.state
        if (st.resident_on(self, self.n_params, self.dtype) and st.key in self._states
                and self._dev.has_state(st.key)):
            self._states.move_to_end(st.key)
            return st.key, False
        st.arrays(self.n_params, self.dtype)  # up to date on the host (from another engine, if there)
        key = st.key
        if key not in self._states:
            while len(self._states) >= self._MAX_STATES:  # make room: the oldest state returns to its optimizer
                old_key, ref = self._states.popitem(last=False)
                old = ref()
                if old is not None and old.state.home() is self and old.state.key == old_key:
                    old.state.to_host()
                self._dev.drop_state(old_key)
            self._states[key] = weakref.ref(opt)
            weakref.finalize(opt, _drop_state, weakref.ref(self), key)
        self._states.move_to_end(key)
        return key, True

    def download_state(self, key: int, m: NDArray, v: NDArray) -> None:
        self._dev.download_state(key, m, v)

    def train(self, X: Any, Y: Any, opt: Any, *, epochs: int, batch_size: int, shuffle: bool, seed: int,
              first: int = 0, last: int = -1, input_layer: Optional[int] = None, poll_every: int = 0,
              max_steps: int = -1, callback: Optional[Callable] = None, X_val: Any = None, Y_val: Any = None,
              threads: int = 1, sample_weight: Optional[NDArray] = None,
              trainable: Optional[NDArray] = None) -> dict:
        if sample_weight is not None or trainable is not None:  # run on the host engine (as L-BFGS does) for now
            try:
                return self.host().train(X, Y, opt, epochs=epochs, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                         first=first, last=last, input_layer=input_layer, poll_every=poll_every,
                                         max_steps=max_steps, callback=callback, X_val=X_val, Y_val=Y_val,
                                         threads=threads, sample_weight=sample_weight, trainable=trainable)
            finally:
                self._host_changed()
        self._push_writes()
        key, upload = self._state_slot(opt)
        m, v = opt.state.arrays(self.n_params, self.dtype, self)
        kx, ky, kxv, kyv = self._keys(X, Y, X_val, Y_val)
        if callback is not None:  # the loop syncs the device weights before a poll: reads must pull them
            user_callback = callback

            def callback(info: dict) -> Any:
                self._stale = True
                return user_callback(info)
        self._stale = True
        try:
            r = self._dev.train(_arr(X), _arr(Y), **opt.engine_args(), state_m=m, state_v=v, t=opt.t, epochs=epochs,
                                batch_size=batch_size, shuffle=shuffle, seed=seed, first=first, last=last,
                                poll_every=poll_every, max_steps=max_steps, callback=callback,
                                input_layer=first if input_layer is None else input_layer, X_val=_arr(X_val),
                                Y_val=_arr(Y_val), state_key=key, state_upload=upload, x_key=kx, y_key=ky,
                                xv_key=kxv, yv_key=kyv)
        finally:
            self._device_changed()
        opt.state.moved_to(self)
        opt.t = r["t"]
        return r

    def lbfgs(self, X: Any, Y: Any, opt: Any, **kw: Any) -> dict:
        try:
            return self.host().lbfgs(X, Y, opt, **kw)
        finally:
            self._host_changed()

    # ------------------------------------------------------------------ sensitivities and interpretation
    def sensitivities(self, X: Any, Y: Any, wrt_loss: bool, sites: Sequence[tuple], reduce: str = "mean_abs",
                      per_sample: bool = False, threads: int = 1) -> tuple:
        if per_sample:
            return self.host().sensitivities(X, Y, wrt_loss, sites, reduce, per_sample, threads)
        self._push_writes()
        kx, ky = self._keys(X, Y)
        mats = self._dev.sensitivities(_arr(X), _arr(Y), wrt_loss, list(sites), _REDUCE[reduce], x_key=kx, y_key=ky)
        return list(mats), None

    def site_adjoints(self, X: Any, Y: Any, sites: Sequence[tuple], inv_n: float, threads: int = 1) -> tuple:
        return self.host().site_adjoints(X, Y, sites, inv_n, threads)

    def group_curvature(self, X: Any, Y: Any, groups: Sequence, threads: int = 1) -> NDArray:
        return self.host().group_curvature(X, Y, groups, threads)

    def scaled_forward(self, X: Any, Y: Any, scales: Sequence, threads: int = 1) -> Any:
        return self.host().scaled_forward(X, Y, scales, threads)

    def relu_patterns(self, X: Any, layers: Sequence[int], threads: int = 1) -> NDArray:
        self._push_writes()
        (kx,) = self._keys(X)
        return self._dev.relu_patterns(_arr(X), list(layers), x_key=kx)

    # ------------------------------------------------------------------ bookkeeping
    def transfer_stats(self) -> dict:
        """Host/device copies of this network since the last reset: calls and bytes, and bytes by kind
        (data, parameters, optimizer state)."""
        return dict(self._dev.transfer_stats())

    def reset_transfer_stats(self) -> None:
        self._dev.reset_transfer_stats()

    def free_workspace(self) -> None:
        self._dev.free_workspace()


def _rescue_states(dev: Any, states: dict) -> None:
    """Download the optimizer states a dying CUDA engine holds into their optimizers' host arrays."""
    for key, ref in list(states.items()):
        opt = ref()
        if opt is None:
            continue
        try:
            opt.state.rescue(key, dev.download_state)
        except Exception:  # noqa: BLE001 - at interpreter shutdown the device may be gone already
            continue


def _forget_data(engine_ref: Any, key: int) -> None:
    engine = engine_ref()
    if engine is not None:
        engine._data_keys.discard(key)
        try:
            engine._dev.forget_data(key)
        except Exception:  # noqa: BLE001 - a finalizer at shutdown must not raise
            pass


def _drop_state(engine_ref: Any, key: int) -> None:
    engine = engine_ref()
    if engine is not None and engine._states.pop(key, None) is not None:
        try:
            engine._dev.drop_state(key)
        except Exception:  # noqa: BLE001 - a finalizer at shutdown must not raise
            pass


def make_engine(specs: Sequence[tuple], loss: str, dtype: Any, device: str = "cpu",
                host: Optional[CpuEngine] = None) -> Any:
    """The engine for ``device`` ("cpu", "cuda", "cuda:N"); a CUDA engine mirrors ``host`` (made if None)."""
    name, index = _cuda_backend.parse_device(device)
    cpu = host if host is not None else CpuEngine(specs, loss, dtype)
    if index is None:
        return cpu
    return CudaEngine(specs, loss, dtype, name, index, cpu)
