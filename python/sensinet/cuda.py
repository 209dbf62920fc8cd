"""Optional CUDA backend: availability, device information and device names.

The extension ``sensinet._cuda`` is built only on request (``pip install . -Ccmake.define.SENSINET_CUDA=ON``,
nvcc and cuBLAS needed) and imported lazily, so ``import sensinet`` never loads CUDA libraries. A network
moves to a GPU with ``Network(..., device="cuda")`` or ``net.to("cuda")``; see :class:`sensinet.Network`.
"""
from __future__ import annotations

import importlib.util
import re
from typing import Any, Optional

_module: Any = None
_import_error: Optional[str] = None
_built = False
_tried = False

_DEVICE = re.compile(r"^cuda(?::(\d+))?$")


def _load() -> Any:
    """The extension module, or None (the reason is kept for :func:`cuda_info`)."""
    global _module, _import_error, _built, _tried
    if not _tried:
        _tried = True
        _built = importlib.util.find_spec(f"{__package__}._cuda") is not None
        if not _built:
            return None
        try:
            import atexit

            from . import _cuda  # type: ignore[attr-defined]

            _module = _cuda
            atexit.register(_cuda.begin_shutdown, 2.0)  # threads inside the CUDA engine park at exit
        except ImportError as exc:  # not built, or a shared library (cuBLAS) missing
            _import_error = f"{type(exc).__name__}: {exc}"
        except OSError as exc:  # pragma: no cover - a broken library file
            _import_error = f"{type(exc).__name__}: {exc}"
    return _module


def _unavailable_reason() -> Optional[str]:
    """Why CUDA cannot be used, or None when it can."""
    mod = _load()
    if mod is None:
        if not _built:
            return ("sensinet was built without its CUDA extension (sensinet._cuda); rebuild with "
                    "pip install . -Ccmake.define.SENSINET_CUDA=ON (needs nvcc and cuBLAS)")
        return f"the CUDA extension sensinet._cuda cannot be imported ({_import_error})"
    try:
        count, why = mod.probe()
    except Exception as exc:  # pragma: no cover - probe never raises by design
        return f"the CUDA runtime failed ({exc})"
    if count < 1:
        return f"no CUDA device: {why}" if why else "no CUDA device"
    return None


def cuda_available() -> bool:
    """True when the CUDA extension is built and a CUDA device can be used. Never raises."""
    try:
        mod = _load()
        return bool(mod is not None and mod.available())
    except Exception:  # noqa: BLE001 - availability checks must not raise
        return False


def cuda_info() -> dict:
    """What the CUDA backend can do here: ``available``, ``built``, ``reason`` (when not available),
    ``devices`` (name, memory, compute capability), ``build`` (CUDA runtime, cuBLAS, architectures)
    and the driver version."""
    mod = _load()
    info: dict = {"available": False, "built": _built, "reason": None, "devices": [], "build": None,
                  "driver_version": 0}
    try:
        info["reason"] = _unavailable_reason()
        info["available"] = info["reason"] is None
        if mod is not None:
            info["build"] = dict(mod.build_info)
            info["driver_version"] = int(mod.driver_version())
            if info["available"]:
                info["devices"] = list(mod.devices())
    except Exception as exc:  # noqa: BLE001
        info["available"] = False
        info["reason"] = f"the CUDA runtime failed ({exc})"
    return info


def parse_device(device: Any) -> tuple:
    """(canonical name, CUDA device index or None) of ``device``: ``"cpu"``, ``"cuda"`` (= ``"cuda:0"``) or
    ``"cuda:N"``. Raises ValueError for anything else."""
    if isinstance(device, str):
        name = device.strip().lower()
        if name == "cpu":
            return "cpu", None
        m = _DEVICE.match(name)
        if m:
            index = int(m.group(1) or 0)
            return ("cuda" if index == 0 else f"cuda:{index}"), index
    raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def require(index: int = 0) -> Any:
    """The extension module when device ``index`` can be used; RuntimeError naming why not otherwise."""
    reason = _unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"CUDA is not available: {reason}")
    mod = _module
    count = int(mod.probe()[0])
    if not 0 <= index < count:
        raise RuntimeError(f"CUDA is not available: device cuda:{index} does not exist ({count} CUDA device(s))")
    return mod


def model_class(dtype: Any, index: int = 0) -> Any:
    """CudaModel64 / CudaModel32 for a numpy dtype (raises RuntimeError when CUDA cannot be used)."""
    import numpy as np

    mod = require(index)
    return mod.CudaModel64 if np.dtype(dtype) == np.float64 else mod.CudaModel32


__all__ = ["cuda_available", "cuda_info", "parse_device"]
