"""A stand-in for sensinet._cuda's CudaModel that runs on the CPU engine, for testing the engine handle's
device protocol without a GPU: the "device" parameter vector is a separate CPU model, and residency (data
and optimizer states kept by key) and the transfer counters follow cuda_impl.cuh, so the tests can prove
what crosses the bus. The numerics are the CPU engine's, so results must equal a CPU network's exactly."""
from __future__ import annotations

import numpy as np

from sensinet import _core

_REDUCE = {0: "mean_abs", 1: "rms", 2: "mean"}


class FakeCudaModel:
    MAX_RESIDENT = 8

    def __init__(self, specs, loss, device=0):
        self.dtype = np.dtype(np.float64) if "64" in type(self).__name__ else np.dtype(np.float32)
        self._m = (_core.Model64 if self.dtype == np.float64 else _core.Model32)(list(specs), loss)
        self.device = device
        self.resident = {}  # key -> array (insertion order = least recently used first)
        self.states = {}  # key -> (m, v)
        self.tf32 = False
        self.reset_transfer_stats()

    # ---- counters
    def reset_transfer_stats(self):
        self.stats = dict(h2d_calls=0, h2d_bytes=0, d2h_calls=0, d2h_bytes=0, h2d_data_bytes=0, h2d_param_bytes=0,
                          h2d_state_bytes=0, d2h_param_bytes=0, d2h_state_bytes=0)

    def transfer_stats(self):
        return dict(self.stats)

    def _count(self, h2d, nbytes, kind=None):
        d = "h2d" if h2d else "d2h"
        self.stats[f"{d}_calls"] += 1
        self.stats[f"{d}_bytes"] += nbytes
        if kind is not None and f"{d}_{kind}_bytes" in self.stats:
            self.stats[f"{d}_{kind}_bytes"] += nbytes

    def _data(self, a, key):
        """The device copy of a host array: resident by key, or uploaded for this call (key 0)."""
        if a is None:
            return None
        if key and key in self.resident and self.resident[key].shape == a.shape:
            self.resident[key] = self.resident.pop(key)  # most recently used
            return self.resident[key]
        self._count(True, a.nbytes, "data")
        copy = np.array(a)
        if key:
            self.resident[key] = copy
            while len(self.resident) > self.MAX_RESIDENT:
                self.resident.pop(next(iter(self.resident)))
        return copy

    # ---- parameters
    @property
    def n_params(self):
        return self._m.n_params

    def set_parameters(self, theta):
        self._count(True, self._m.parameters.nbytes, "param")
        self._m.parameters[:] = theta

    def get_parameters(self, out=None):
        self._count(False, self._m.parameters.nbytes, "param")
        if out is None:
            return self._m.parameters.copy()
        out[:] = self._m.parameters
        return out

    # ---- evaluation
    def forward(self, X, link=False, first=0, x_key=0):
        return self._m.forward(self._data(X, x_key), link, first, 1)

    def layer_input(self, X, layer, x_key=0):
        return self._m.layer_input(self._data(X, x_key), layer, 0, None, 1)

    def loss_and_grad(self, X, Y, first=0, last=-1, want_grad=True, theta=None, input_layer=None, x_key=0, y_key=0):
        x, y = self._data(X, x_key), self._data(Y, y_key)
        if theta is not None:
            self._count(True, theta.nbytes, "param")
        if input_layer is not None and input_layer < first:
            x = self._m.layer_input(x, first, input_layer, theta, 1)
        return self._m.loss_and_grad(x, y, theta, first, last, want_grad, 1)

    def sensitivities(self, X, Y, wrt_loss, sites, reduce=0, x_key=0, y_key=0):
        mats, _ = _core.sensitivities(self._m, self._data(X, x_key), self._data(Y, y_key), wrt_loss, sites, reduce,
                                      False, 1)
        return list(mats)

    def relu_patterns(self, X, layers, x_key=0):
        return _core.relu_patterns(self._m, self._data(X, x_key), list(layers), 1)

    # ---- training
    def train(self, X, Y, *, optimizer, lr, momentum=0.0, nesterov=False, beta1=0.9, beta2=0.999, eps=1e-8,
              state_m, state_v, t=0, epochs=1, batch_size=32, shuffle=True, seed=0, first=0, last=-1,
              poll_every=0, max_steps=-1, callback=None, n_threads=0, input_layer=None, X_val=None, Y_val=None,
              cuda_graphs=True, state_key=0, state_upload=True, x_key=0, y_key=0, xv_key=0, yv_key=0):
        x, y = self._data(X, x_key), self._data(Y, y_key)
        xv, yv = self._data(X_val, xv_key), self._data(Y_val, yv_key)
        if input_layer is not None and input_layer < first:
            x = self._m.layer_input(x, first, input_layer, None, 1)
        if state_key:
            fresh = state_key not in self.states
            if fresh:
                self.states[state_key] = (np.zeros_like(state_m), np.zeros_like(state_v))
            m, v = self.states[state_key]
            if fresh or state_upload:
                self._count(True, state_m.nbytes, "state")
                self._count(True, state_v.nbytes, "state")
                m[:], v[:] = state_m, state_v
        else:
            self._count(True, state_m.nbytes, "state")
            self._count(True, state_v.nbytes, "state")
            m, v = state_m.copy(), state_v.copy()

        def poll(info):
            if info["epoch_end"] and xv is not None:
                info["val_loss"] = float(self._m.loss_and_grad(xv, yv, None, 0, -1, False, 1)[0])
            return callback(info)

        r = _core.train(self._m, x, y, optimizer=optimizer, lr=lr, momentum=momentum, nesterov=nesterov,
                        beta1=beta1, beta2=beta2, eps=eps, state_m=m, state_v=v, t=t, epochs=epochs,
                        batch_size=batch_size, shuffle=shuffle, seed=seed, first=first, last=last,
                        poll_every=poll_every, max_steps=max_steps, callback=None if callback is None else poll,
                        n_threads=1)
        if not state_key:
            self._count(False, state_m.nbytes, "state")
            self._count(False, state_v.nbytes, "state")
            state_m[:], state_v[:] = m, v
        r = dict(r)
        r["val_loss"], r["graphs"] = [], False
        return r

    # ---- residency
    def has_state(self, key):
        return key in self.states

    def download_state(self, key, state_m, state_v):
        if key not in self.states:
            raise ValueError(f"state: no optimizer state with key {key}")
        m, v = self.states[key]
        self._count(False, m.nbytes, "state")
        self._count(False, v.nbytes, "state")
        state_m[:], state_v[:] = m, v

    def drop_state(self, key):
        self.states.pop(key, None)

    def forget_data(self, key):
        self.resident.pop(key, None)

    def free_workspace(self):
        self.resident.clear()


class FakeCudaModel64(FakeCudaModel):
    pass


class FakeCudaModel32(FakeCudaModel):
    pass


def install(monkeypatch):
    """Make ``device="cuda"`` build networks on the fake device (for one test)."""
    import sensinet.cuda as cuda

    monkeypatch.setattr(cuda, "require", lambda index=0: None)
    monkeypatch.setattr(cuda, "model_class",
                        lambda dtype, index=0: FakeCudaModel64 if np.dtype(dtype) == np.float64 else FakeCudaModel32)
