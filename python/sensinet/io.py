"""Save and load networks: one versioned ``.npz`` holding the flat parameter vector and a JSON header.

File format (versions 1 and 2)
------------------------------
A zip archive written by :func:`numpy.savez` (uncompressed, no pickle) with two members (a network), or two
plus the estimator's arrays (a fitted estimator, version 2):

``parameters``
    The flat parameter vector, 1-D, little-endian ``float64`` or ``float32`` (the network's dtype).
``header``
    A 1-D ``uint8`` array holding UTF-8 JSON::

        {"format": "sensinet-network", "version": 1, "sensinet_version": "0.1.0",
         "dtype": "float64" | "float32", "loss": "mse" | "cross_entropy" | "binary_cross_entropy",
         "n_inputs": int,
         "layers": [{"kind": "dense" | "residual2" | "residual1", "n_in": int, "n_out": int,
                     "hidden": int, "activation": str, "alpha": float, "l2": float}, ...],
         "n_params": int, "sha256": "<hex digest of the parameter bytes>", "metadata": {...}}

Version 2 adds the optional fields ``"init"`` (the network's initialisation scheme when it is not
``"auto"``, so ``reinitialize`` draws as the saved network would) and ``"estimator"``: a fitted :class:`~sensinet.SensiNetRegressor` or
:class:`~sensinet.SensiNetClassifier` (its parameters, fitted attributes, target scale, classes, feature
names and optimizer state; see :mod:`sensinet._estimator_state`), whose arrays are further members
``a0``, ``a1``, ... listed with their dtype and shape in the header. A network alone is still written as
version 1 when it has neither, so older releases read it; every version-1 file loads.

``hidden`` is the inner width of a two-weight residual block and 0 for the other kinds. The digest covers
the little-endian bytes of ``parameters``, so any corruption of the weights is detected. Floats are
written with Python's shortest round-trip representation, so ``alpha`` and ``l2`` come back exactly.

:func:`load` checks every field before it builds anything and raises :class:`ValueError` naming the field,
what was expected and what it found. A round trip is bitwise exact.
"""
from __future__ import annotations

import hashlib
import io as _io
import json
import math
import os
import stat
import zipfile
from typing import Any, Optional

import numpy as np

from . import _estimator_state
from ._validation import LOSSES
from ._version import __version__
from .layers import ACTIVATIONS, LayerSpec
from .convert import as_network
from .network import INITS, Network

FORMAT_NAME = "sensinet-network"
FORMAT_VERSION = 2  # the newest version this release reads and writes
KINDS = ("dense", "residual2", "residual1")
DTYPES = {"float64": np.dtype("<f8"), "float32": np.dtype("<f4")}
MEMBERS = ("header", "parameters")
_HEADER_KEYS = ("format", "version", "sensinet_version", "dtype", "loss", "n_inputs", "layers", "n_params",
                "sha256")
_OPTIONAL_HEADER_KEYS = ("metadata", "estimator", "init")
_LAYER_KEYS = LayerSpec._fields

__all__ = ["save", "load", "FORMAT_NAME", "FORMAT_VERSION"]


# ---------------------------------------------------------------------------------------------- helpers
def _json_default(obj: Any) -> Any:
    """Let numpy scalars and arrays inside ``metadata`` through as plain Python values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"metadata: a value of type {type(obj).__name__} is not JSON serializable")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _unique_keys(pairs: list) -> dict:
    """A JSON object whose keys are unique (json keeps the last of a repeated key; a header must not be ambiguous)."""
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"repeated key(s) {dup} in one object")
    return dict(pairs)


def _str_keys(value: Any, where: str) -> None:
    """Every object key at any depth a str (JSON would turn an int key into a str silently)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: expected str keys (JSON objects), got key {k!r} of type {type(k).__name__}")
            _str_keys(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _str_keys(v, f"{where}[{i}]")


def _digest(params: np.ndarray) -> str:
    le = np.ascontiguousarray(params, dtype=params.dtype.newbyteorder("<"))
    return hashlib.sha256(le.tobytes()).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _where(path: Any) -> str:
    if isinstance(path, (str, os.PathLike)):
        return f" (file {os.fspath(path)!s})"
    return ""


# ---------------------------------------------------------------------------------------------- save
def save(net: Any, path: Any, metadata: Optional[dict] = None) -> None:
    """Save a network or a fitted estimator to a versioned ``.npz`` file (parameters + JSON header; no pickle).

    Parameters
    ----------
    net : Network, SensiNetRegressor or SensiNetClassifier
        The network to save, or a fitted estimator: then the file holds the whole estimator (parameters,
        network, target scale, ``classes_``, ``feature_names_in_``, the other fitted attributes and the
        optimizer state), and :func:`load` returns an estimator whose predictions are bitwise the same.
        Other models (a scikit-learn MLP, a torch module) are converted to a Network first.
    path : str, os.PathLike or a binary file object
        Where to write. The file written is exactly ``path``: no ``.npz`` suffix is appended. A path is
        written atomically (to a temporary file in the same folder, synced, then renamed, and the folder
        synced), so a failed save never leaves a half-written file in place of an existing one. An existing
        file keeps its permission bits; a symlink is followed and its target written (the link stays); a
        folder, device, FIFO or socket at the path is refused.
    metadata : dict, optional
        JSON-serializable information stored in the header (training settings, scores, ...). numpy scalars
        and arrays are stored as plain numbers and lists. Defaults to ``net.metadata`` when the network
        has one (a loaded network does), so a load/save cycle keeps it.

    Raises
    ------
    TypeError
        ``net`` is not a Network or estimator, or ``metadata`` is not a dict / not JSON serializable.
    ValueError
        ``metadata`` holds NaN or infinity, a layer has a non-finite ``alpha`` / ``l2``, or ``path`` names a
        folder, device, FIFO or socket (or holds a NUL character).

    See Also
    --------
    load
    """
    record, arrays = None, {}
    if type(net).__name__ in _estimator_state.CLASSES and type(net).__module__ == "sensinet.estimators":
        net, record, arrays = _estimator_state.to_record(net)
    net = as_network(net)
    if metadata is None:
        metadata = getattr(net, "metadata", None) or {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata: expected a dict (JSON-serializable), got {type(metadata).__name__}")
    _str_keys(metadata, "metadata")

    dtype_name = "float64" if net.dtype == np.float64 else "float32"
    params = np.array(net.parameters, dtype=DTYPES[dtype_name], order="C", copy=True)
    layers = []
    for i, (kind, n_in, n_out, hidden, act, alpha, l2) in enumerate(net.specs):
        if not (math.isfinite(alpha) and math.isfinite(l2)):
            raise ValueError(f"net.layers[{i}]: alpha and l2 must be finite to be saved, got alpha={alpha!r}, "
                             f"l2={l2!r}")
        layers.append({"kind": str(kind), "n_in": int(n_in), "n_out": int(n_out), "hidden": int(hidden),
                       "activation": str(act), "alpha": float(alpha), "l2": float(l2)})
    header = {
        "format": FORMAT_NAME,
        "version": 1 if record is None else 2,
        "sensinet_version": __version__,
        "dtype": dtype_name,
        "loss": str(net.loss),
        "n_inputs": int(net.n_inputs),
        "layers": layers,
        "n_params": int(params.size),
        "sha256": _digest(params),
        "metadata": metadata,
    }
    if record is not None:
        header["estimator"] = record
    if getattr(net, "init", "auto") != "auto":  # reinitialize() must draw as the saved network would
        header["init"] = net.init
        header["version"] = 2
    try:
        text = json.dumps(header, allow_nan=False, default=_json_default, sort_keys=False)
    except ValueError as exc:
        raise ValueError(f"metadata: expected JSON-serializable values without NaN or infinity ({exc})") from None
    except TypeError as exc:
        raise TypeError(str(exc)) from None
    header_arr = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    members = dict(header=header_arr, parameters=params, **arrays)

    if hasattr(path, "write"):
        if isinstance(path, _io.TextIOBase):
            raise TypeError("path: expected a binary file object (opened with 'wb'), got a text-mode file")
        np.savez(path, **members)
        return
    target, mode = _writable_target(path)
    folder = os.path.dirname(target)
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "xb") as fh:
            np.savez(fh, **members)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)  # the replaced file keeps its permissions (a 0600 model stays 0600)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "special file")


def _file_name(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str, os.PathLike or binary file object, got {type(path).__name__}")
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if "\0" in name:
        raise ValueError(f"path: expected a file name without NUL characters, got {name!r}")
    return name


def _writable_target(path: Any) -> tuple:
    """(the file to replace, its permission bits or None for a new file). A symlink is followed, so its target
    is written and the link stays; anything but a regular file or a new path is refused, so a device, a FIFO
    or a folder is never replaced."""
    name = _file_name(path)
    real = os.path.realpath(name)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real, None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"path: {name!r} is a {_kind(st.st_mode)}, not a regular file; sensinet.save writes "
                         "only to a regular file or a new path")
    return real, stat.S_IMODE(st.st_mode)


def _fsync_folder(folder: str) -> None:
    """Make the rename durable (POSIX; elsewhere folders cannot be opened and there is nothing to do)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- load
def _read_members(path: Any) -> dict:
    """The two arrays of the archive, or ValueError saying why the file is not a sensinet archive."""
    where = _where(path)
    if hasattr(path, "read"):
        data = path.read()
    elif isinstance(path, (str, os.PathLike)):
        name = _file_name(path)
        try:
            st = os.stat(name)
        except FileNotFoundError:
            raise FileNotFoundError(f"path: no such file {name!r}") from None
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):  # a FIFO would block; a device never ends
            raise ValueError(f"path: {name!r} is a {_kind(st.st_mode)}, not a regular file; sensinet.load reads "
                             "model files only")
        with open(name, "rb") as fh:  # IsADirectoryError passes through
            data = fh.read()
    else:
        raise TypeError(f"path: expected a str, os.PathLike or binary file object, got {type(path).__name__}")
    if not data:
        raise ValueError(f"file: expected a sensinet .npz archive, got an empty file{where}")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"path: expected a binary file object, its read() returned {type(data).__name__}")
    buf = _io.BytesIO(data)
    if not zipfile.is_zipfile(buf):
        raise ValueError(f"file: expected a sensinet .npz archive (a zip file), got {len(data)} bytes that are "
                         f"not a zip archive (truncated or not written by sensinet.save?){where}")
    buf.seek(0)
    try:
        with zipfile.ZipFile(buf) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"file: expected a readable .npz (zip) archive, got a damaged one ({exc}){where}") from None
    keys = [n[:-4] if n.endswith(".npy") else n for n in names]
    missing = [m for m in MEMBERS if m not in keys]
    if missing:
        raise ValueError(f"{missing[0]}: expected the archive to hold the arrays {list(MEMBERS)}, "
                         f"missing {missing}; found {sorted(keys)}{where}")
    if len(names) != len(set(keys)) or any(not n.endswith(".npy") for n in names):
        raise ValueError(f"archive: expected the members {[m + '.npy' for m in MEMBERS]} (and, for an "
                         f"estimator, the arrays its header lists) once each, got {names}{where}")
    out = {}
    buf.seek(0)
    try:
        npz = np.load(buf, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 -- anything numpy raises on a damaged archive
        raise ValueError(f"file: could not open the .npz archive ({type(exc).__name__}: {exc}){where}") from None
    with npz:
        for name in list(MEMBERS) + sorted(k for k in keys if k not in MEMBERS):
            try:
                out[name] = npz[name]
            except Exception as exc:  # noqa: BLE001 -- bad CRC, truncated member, pickled object array, ...
                raise ValueError(f"{name}: could not be read from the archive, it is corrupted or not a plain "
                                 f"numeric array ({type(exc).__name__}: {exc}){where}") from None
    return out


def _parse_header(arr: np.ndarray, where: str) -> dict:
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError(f"header: expected a 1-D uint8 array of UTF-8 JSON, got dtype {arr.dtype} with shape "
                         f"{arr.shape}{where}")
    try:
        text = arr.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"header: expected UTF-8 encoded JSON, got invalid UTF-8 ({exc}){where}") from None
    try:
        header = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise ValueError(f"header: expected valid JSON, got a parse error ({exc}){where}") from None
    except RecursionError:
        raise ValueError(f"header: expected a model header, got JSON nested too deeply to read{where}") from None
    if not isinstance(header, dict):
        raise ValueError(f"header: expected a JSON object, got a JSON {type(header).__name__}{where}")
    return header


def _check_header(h: dict, where: str) -> tuple:
    """Validate every field of a version-1 header; return (specs, loss, dtype_name, metadata)."""
    # format and version first: they say how to read the rest
    if "format" not in h:
        raise ValueError(f"header.format: expected {FORMAT_NAME!r}, the field is missing{where}")
    if h["format"] != FORMAT_NAME:
        raise ValueError(f"header.format: expected {FORMAT_NAME!r}, got {h['format']!r}{where}")
    if "version" not in h:
        raise ValueError(f"header.version: expected an int format version, the field is missing{where}")
    version = h["version"]
    if not _is_int(version) or version < 1:
        raise ValueError(f"header.version: expected an int format version >= 1, got {version!r}{where}")
    if version > FORMAT_VERSION:
        raise ValueError(f"header.version: this sensinet ({__version__}) reads format versions <= "
                         f"{FORMAT_VERSION}, got version {version} (written by sensinet "
                         f"{h.get('sensinet_version', '?')}); upgrade sensinet to load it{where}")
    for key in _HEADER_KEYS:
        if key not in h:
            raise ValueError(f"header.{key}: expected the field, it is missing{where}")
    optional = _OPTIONAL_HEADER_KEYS if version >= 2 else ("metadata",)
    unknown = sorted(k for k in h if k not in _HEADER_KEYS + optional)
    if unknown:
        raise ValueError(f"header: expected only the fields {list(_HEADER_KEYS + optional)} (format version "
                         f"{version}), got unknown field(s) {unknown}{where}")
    if not isinstance(h["sensinet_version"], str):
        raise ValueError(f"header.sensinet_version: expected a str, got {h['sensinet_version']!r}{where}")
    if h["dtype"] not in DTYPES:
        raise ValueError(f"header.dtype: expected one of {tuple(DTYPES)}, got {h['dtype']!r}{where}")
    if h["loss"] not in LOSSES:
        raise ValueError(f"header.loss: expected one of {LOSSES}, got {h['loss']!r}{where}")
    n_inputs = h["n_inputs"]
    if not _is_int(n_inputs) or n_inputs < 1:
        raise ValueError(f"header.n_inputs: expected an int >= 1, got {n_inputs!r}{where}")
    layers = h["layers"]
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"header.layers: expected a non-empty list of layer objects, got {layers!r}{where}")

    specs, width = [], n_inputs
    for i, layer in enumerate(layers):
        f = f"header.layers[{i}]"
        if not isinstance(layer, dict):
            raise ValueError(f"{f}: expected a JSON object, got {layer!r}{where}")
        for key in _LAYER_KEYS:
            if key not in layer:
                raise ValueError(f"{f}.{key}: expected the field, it is missing{where}")
        unknown = sorted(k for k in layer if k not in _LAYER_KEYS)
        if unknown:
            raise ValueError(f"{f}: expected only the fields {list(_LAYER_KEYS)}, got unknown field(s) "
                             f"{unknown}{where}")
        kind = layer["kind"]
        if kind not in KINDS:
            raise ValueError(f"{f}.kind: expected one of {KINDS}, got {kind!r}{where}")
        for key in ("n_in", "n_out"):
            v = layer[key]
            if not _is_int(v) or v < 1:
                raise ValueError(f"{f}.{key}: expected an int width >= 1, got {v!r}{where}")
        n_in, n_out, hidden = layer["n_in"], layer["n_out"], layer["hidden"]
        if n_in != width:
            what = "header.n_inputs" if i == 0 else f"header.layers[{i - 1}].n_out"
            raise ValueError(f"{f}.n_in: expected {width} (= {what}), got {n_in!r}{where}")
        if kind == "residual2":
            if not _is_int(hidden) or hidden < 1:
                raise ValueError(f"{f}.hidden: expected an int width >= 1 for a residual2 block, got "
                                 f"{hidden!r}{where}")
        elif not _is_int(hidden) or hidden != 0:
            raise ValueError(f"{f}.hidden: expected 0 for a {kind} layer, got {hidden!r}{where}")
        if kind != "dense" and n_out != n_in:
            raise ValueError(f"{f}.n_out: expected {n_in} (a residual block keeps its width), got {n_out!r}{where}")
        act = layer["activation"]
        if act not in ACTIVATIONS:
            raise ValueError(f"{f}.activation: expected one of {ACTIVATIONS}, got {act!r}{where}")
        for key in ("alpha", "l2"):
            v = layer[key]
            if not _is_number(v) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{f}.{key}: expected a finite number >= 0, got {v!r}{where}")
        specs.append(LayerSpec(kind, n_in, n_out, hidden, act, float(layer["alpha"]), float(layer["l2"])))
        width = n_out

    n_params = h["n_params"]
    if not _is_int(n_params) or n_params < 1:
        raise ValueError(f"header.n_params: expected an int >= 1, got {n_params!r}{where}")
    expected = sum(spec.n_params for spec in specs)
    if n_params != expected:
        raise ValueError(f"header.n_params: expected {expected} (the count the layer specs imply), got "
                         f"{n_params}{where}")
    sha = h["sha256"]
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"header.sha256: expected a 64-character lowercase hex digest, got {sha!r}{where}")
    metadata = h.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"header.metadata: expected a JSON object, got {type(metadata).__name__}{where}")
    if h.get("init", "auto") not in INITS:
        raise ValueError(f"header.init: expected one of {INITS}, got {h['init']!r}{where}")
    return specs, h["loss"], h["dtype"], metadata


def load(path: Any) -> Any:
    """Load a network saved by :func:`save`.

    Parameters
    ----------
    path : str, os.PathLike or a binary file object
        The file, exactly as named (no suffix is added).

    Returns
    -------
    Network, SensiNetRegressor or SensiNetClassifier
        A network with bitwise the saved parameters, dtype, loss and layers; its ``metadata`` attribute is
        the dict saved with it (``{}`` when none was). A file written from a fitted estimator gives that
        estimator back (scikit-learn must be installed), fitted, with its network as ``network_`` and the
        metadata on ``network_.metadata``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a sensinet archive or fails a check; the message names the field (``file``,
        ``archive``, ``header``, ``header.<field>``, ``header.layers[i].<field>``, ``parameters``), what
        was expected and what was found: not a zip / empty / truncated file, missing or extra arrays,
        header not UTF-8 JSON, another format, a newer format version, an unknown dtype, loss, layer kind or
        activation, bad widths, layers that do not chain, a parameter count that does not match the
        layers, parameters of the wrong dtype / shape, non-finite parameters, a checksum mismatch.
    """
    where = _where(path)
    members = _read_members(path)
    header = _parse_header(members["header"], where)
    specs, loss, dtype_name, metadata = _check_header(header, where)

    params = members["parameters"]
    want = DTYPES[dtype_name]
    if params.dtype.kind != "f" or params.dtype.itemsize != want.itemsize:
        raise ValueError(f"parameters: expected dtype {dtype_name} (header.dtype), got {params.dtype}{where}")
    if params.ndim != 1:
        raise ValueError(f"parameters: expected a 1-D array, got ndim {params.ndim} with shape "
                         f"{params.shape}{where}")
    if params.shape[0] != header["n_params"]:
        raise ValueError(f"parameters: expected shape ({header['n_params']},) (header.n_params), got "
                         f"{params.shape}{where}")
    digest = _digest(params)
    if digest != header["sha256"]:
        raise ValueError(f"parameters: checksum mismatch, header.sha256 is {header['sha256']} but the "
                         f"parameters hash to {digest}; the file is corrupted{where}")
    params = np.ascontiguousarray(params, dtype=want.newbyteorder("="))
    if not np.isfinite(params).all():
        bad = int(np.size(params) - np.count_nonzero(np.isfinite(params)))
        raise ValueError(f"parameters: expected finite values, got {bad} NaN or infinite value(s){where}")

    net = Network.from_specs(specs, loss, np.dtype(dtype_name).type)
    net.init = header.get("init", "auto")
    if net.n_params != params.shape[0]:  # the engine's own count; cannot differ from the header's
        raise ValueError(f"header.n_params: the engine built {net.n_params} parameters, the file has "
                         f"{params.shape[0]}{where}")
    net.parameters = params
    net.metadata = metadata
    extra = {k: v for k, v in members.items() if k not in MEMBERS}
    if "estimator" not in header:
        if extra:
            raise ValueError(f"archive: expected exactly the arrays {list(MEMBERS)}, got unexpected extra "
                             f"member(s) {sorted(extra)}{where}")
        return net
    return _estimator_state.from_record(header["estimator"], extra, net, where)
