"""The saved form of a fitted estimator: what :func:`sensinet.save` writes beside its network, and how
:func:`sensinet.load` rebuilds the estimator from it, without pickle.

An estimator becomes three things:

* ``record``: a JSON object ``{"class", "params", "attributes", "optimizer", "arrays"}``. ``params`` are
  ``get_params()``; ``attributes`` the fitted attributes named in :data:`FITTED` (those the estimator has);
  ``optimizer`` the solver's hyperparameters and step count (Adam, SGD, L-BFGS), so a warm start after
  loading continues exactly where the saved estimator would have. Values that JSON cannot hold exactly are
  tagged: ``{"tuple": [...]}``, ``{"array": "aN"}`` (a member of the archive), ``{"fit_result": {...}}``.
  ``arrays`` lists each array member with its dtype and shape, so the loader checks them before use.
* ``arrays``: numeric, bool or unicode arrays (``classes_``, ``feature_names_in_``, the target scale, the
  optimizer's moments), stored as plain ``.npy`` members; object arrays of str become unicode arrays and
  come back as object arrays.
* the network itself, stored as any network is.

Floats go through JSON in Python's shortest round-trip form, so every value comes back bitwise.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np

CLASSES = ("SensiNetRegressor", "SensiNetClassifier")
# Fitted attributes an estimator may carry (the network and the optimizer are stored on their own).
FITTED = ("n_features_in_", "feature_names_in_", "n_iter_", "t_", "loss_curve_", "loss_", "validation_loss_curve_",
          "validation_scores_", "best_validation_score_", "best_loss_", "classes_", "history_", "_y_mean",
          "_y_scale", "_y_1d", "_multilabel")
_ARRAY_KINDS = "fiubU"  # float, int, unsigned, bool, unicode: what numpy stores without pickle
_OPTIMIZER_FIELDS = {"Adam": ("lr", "beta1", "beta2", "eps"), "SGD": ("lr", "momentum", "nesterov"),
                     "LBFGS": ("max_iter", "history", "gtol", "ftol", "max_evals")}


class _Encoder:
    """Turns values into JSON with tags, collecting arrays as archive members ``a0``, ``a1``, ..."""

    def __init__(self) -> None:
        self.arrays: dict = {}

    def array(self, value: np.ndarray, where: str) -> dict:
        arr = np.asarray(value)
        as_object = arr.dtype == object
        if as_object:
            if not all(isinstance(v, str) for v in arr.ravel()):
                raise TypeError(f"{where}: an object array can be saved only when it holds str values, got "
                                f"{sorted({type(v).__name__ for v in arr.ravel()})}")
            arr = arr.astype(str)
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"{where}: arrays of dtype {arr.dtype} cannot be saved without pickle")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{where}: expected finite values, got NaN or infinity")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        out: dict = {"array": name}
        if as_object:
            out["object"] = True
        return out

    def value(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            if not math.isfinite(float(value)):
                raise ValueError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        if isinstance(value, np.ndarray):
            return self.array(value, where)
        if isinstance(value, tuple):
            return {"tuple": [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, type) and issubclass(value, np.generic):  # dtype=np.float32
            return {"dtype": np.dtype(value).name}
        if isinstance(value, np.dtype):
            return {"dtype": value.name}
        if type(value).__name__ == "FitResult" and dataclasses.is_dataclass(value):
            return {"fit_result": {f.name: self.value(getattr(value, f.name), f"{where}.{f.name}")
                                   for f in dataclasses.fields(value)}}
        raise TypeError(f"{where}: a value of type {type(value).__name__} cannot be saved in a model file")


def _optimizer_record(opt: Any, enc: _Encoder) -> Any:
    name = type(opt).__name__
    if name not in _OPTIMIZER_FIELDS:
        return None  # the hierarchical solver starts afresh after loading (its state is its inner optimizer's)
    rec: dict = {"class": name, "fields": {f: enc.value(getattr(opt, f), f"optimizer.{f}")
                                           for f in _OPTIMIZER_FIELDS[name]}}
    if name != "LBFGS":
        rec["t"] = int(opt.t)
        for key in ("m", "v"):
            arr = getattr(opt, f"state_{key}")
            rec[key] = None if arr is None else enc.array(arr, f"optimizer.state_{key}")
    return rec


def to_record(est: Any) -> tuple:
    """``(network, record, arrays)`` for a fitted estimator."""
    name = type(est).__name__
    if name not in CLASSES:
        raise TypeError(f"estimator: expected a SensiNetRegressor or SensiNetClassifier, got {name}")
    net = getattr(est, "network_", None)
    if net is None:
        raise ValueError(f"estimator: this {name} is not fitted yet; call fit before saving it")
    enc = _Encoder()
    params = est.get_params(deep=False)
    rs = params.get("random_state")
    if rs is not None and not isinstance(rs, (int, np.integer)):
        warnings.warn(f"{name}: random_state={type(rs).__name__} instance is not saved (only None or an int is); "
                      "the loaded estimator has random_state=None", UserWarning, stacklevel=3)
        params["random_state"] = None
    record = {
        "class": name,
        "params": {k: enc.value(v, f"params.{k}") for k, v in params.items()},
        "attributes": {k: enc.value(est.__dict__[k], k) for k in FITTED if k in est.__dict__},
        "optimizer": _optimizer_record(getattr(est, "_solver_state", None), enc),
    }
    record["arrays"] = {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in enc.arrays.items()}
    return net, record, enc.arrays


# ---------------------------------------------------------------------------------------------- loading
class _Decoder:
    def __init__(self, arrays: dict, where: str) -> None:
        self.arrays, self.where, self.used = arrays, where, set()

    def fail(self, field: str, msg: str) -> ValueError:
        return ValueError(f"header.estimator.{field}: {msg}{self.where}")

    def value(self, value: Any, field: str) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            return [self.value(v, f"{field}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, dict) or len(value) not in (1, 2):
            raise self.fail(field, f"expected a number, str, list or tagged object, got {value!r}")
        if "array" in value:
            name = value["array"]
            if name not in self.arrays or set(value) - {"array", "object"}:
                raise self.fail(field, f"expected a reference to an array member, got {value!r}")
            self.used.add(name)
            arr = self.arrays[name]
            return arr.astype(object) if value.get("object") is True else arr
        if len(value) != 1:
            raise self.fail(field, f"expected one tag, got {sorted(value)}")
        (tag, inner), = value.items()
        if tag == "tuple" and isinstance(inner, list):
            return tuple(self.value(v, f"{field}[{i}]") for i, v in enumerate(inner))
        if tag == "dtype" and inner in ("float64", "float32"):
            return np.dtype(inner).type
        if tag == "fit_result" and isinstance(inner, dict):
            from .fit_result import FitResult

            names = {f.name for f in dataclasses.fields(FitResult)}
            if set(inner) != names:
                raise self.fail(field, f"expected the fields {sorted(names)}, got {sorted(inner)}")
            kw = {k: self.value(v, f"{field}.{k}") for k, v in inner.items()}
            kw["block"] = tuple(kw["block"])
            return FitResult(**kw)
        raise self.fail(field, f"unknown tag {tag!r} with value {inner!r}")


def check_arrays(record: dict, members: dict, where: str) -> dict:
    """The array members the record lists, each checked against its declared dtype and shape."""
    listed = record.get("arrays")
    if not isinstance(listed, dict):
        raise ValueError(f"header.estimator.arrays: expected an object naming the array members, got {listed!r}"
                         f"{where}")
    extra = sorted(set(members) - set(listed))
    missing = sorted(set(listed) - set(members))
    if extra or missing:
        raise ValueError(f"archive: expected the estimator's array members {sorted(listed)}, missing {missing}, "
                         f"unexpected {extra}{where}")
    out = {}
    for name, spec in listed.items():
        arr = members[name]
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape"}:
            raise ValueError(f"header.estimator.arrays.{name}: expected {{dtype, shape}}, got {spec!r}{where}")
        if arr.dtype.str != spec["dtype"] or list(arr.shape) != spec["shape"]:
            raise ValueError(f"{name}: expected dtype {spec['dtype']} and shape {spec['shape']} (header), got "
                             f"{arr.dtype.str} and {list(arr.shape)}{where}")
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise ValueError(f"{name}: expected a numeric, bool or unicode array, got dtype {arr.dtype}{where}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{name}: expected finite values, got NaN or infinity{where}")
        out[name] = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    return out


def _restore_optimizer(rec: Any, dec: _Decoder) -> Any:
    if rec is None:
        return None
    from . import optimizers

    if not isinstance(rec, dict) or rec.get("class") not in _OPTIMIZER_FIELDS:
        raise dec.fail("optimizer", f"expected null or an object with class in {sorted(_OPTIMIZER_FIELDS)}, got "
                                    f"{rec!r}")
    name = rec["class"]
    fields = rec.get("fields")
    if not isinstance(fields, dict) or set(fields) != set(_OPTIMIZER_FIELDS[name]):
        raise dec.fail("optimizer.fields", f"expected {list(_OPTIMIZER_FIELDS[name])}, got {fields!r}")
    try:
        opt = getattr(optimizers, name)(**{k: dec.value(v, f"optimizer.{k}") for k, v in fields.items()})
    except (TypeError, ValueError) as exc:
        raise dec.fail("optimizer", f"invalid {name} settings ({exc})") from None
    if name != "LBFGS":
        t = rec.get("t")
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise dec.fail("optimizer.t", f"expected an int >= 0, got {t!r}")
        opt.t = t
        for key in ("m", "v"):
            arr = dec.value(rec.get(key), f"optimizer.{key}")
            if arr is not None:
                setattr(opt, f"state_{key}", np.array(arr))
    return opt


def from_record(record: Any, members: dict, net: Any, where: str) -> Any:
    """The estimator the record describes, with ``net`` as its ``network_``; every field checked."""
    if not isinstance(record, dict):
        raise ValueError(f"header.estimator: expected a JSON object, got {record!r}{where}")
    keys = {"class", "params", "attributes", "optimizer", "arrays"}
    if set(record) != keys:
        raise ValueError(f"header.estimator: expected the fields {sorted(keys)}, got {sorted(record)}{where}")
    name = record["class"]
    if name not in CLASSES:
        raise ValueError(f"header.estimator.class: expected one of {CLASSES}, got {name!r}{where}")
    try:
        from . import estimators
    except ImportError as exc:
        raise ImportError(f"this file holds a {name}, which needs scikit-learn (pip install 'scikit-learn>=1.6'): "
                          f"{exc}") from None
    cls = getattr(estimators, name)
    dec = _Decoder(check_arrays(record, members, where), where)
    params, attrs = record["params"], record["attributes"]
    if not isinstance(params, dict):
        raise dec.fail("params", f"expected a JSON object, got {params!r}")
    known = set(cls().get_params(deep=False))
    unknown = sorted(set(params) - known)
    if unknown:
        raise dec.fail("params", f"unknown parameter(s) {unknown} of {name} (written by a newer sensinet?)")
    est = cls(**{k: dec.value(v, f"params.{k}") for k, v in params.items()})
    if not isinstance(attrs, dict):
        raise dec.fail("attributes", f"expected a JSON object, got {attrs!r}")
    unknown = sorted(set(attrs) - set(FITTED))
    if unknown:
        raise dec.fail("attributes", f"unknown attribute(s) {unknown}; expected names from {list(FITTED)}")
    for key, value in attrs.items():
        setattr(est, key, dec.value(value, f"attributes.{key}"))
    if name == "SensiNetClassifier" and "_multilabel" not in attrs:
        est._multilabel = False  # written before multilabel y existed
    est.network_ = net
    est._solver_state = _restore_optimizer(record["optimizer"], dec)
    unused = sorted(set(dec.arrays) - dec.used)
    if unused:
        raise ValueError(f"archive: array member(s) {unused} are listed but not used by the estimator{where}")
    _check_restored(est, where)
    return est


def _check_restored(est: Any, where: str) -> None:
    """The loaded attributes agree with the loaded network and with the architecture the parameters build,
    or a ValueError names what does not."""
    net, name = est.network_, type(est).__name__

    def need(ok: bool, field: str, msg: str) -> None:
        if not ok:
            raise ValueError(f"header.estimator.attributes.{field}: {msg}{where}")

    for key in ("n_features_in_", "n_iter_", "loss_curve_"):
        need(key in est.__dict__, key, f"a fitted {name} has it, the file does not")
    need(est.n_features_in_ == net.n_inputs, "n_features_in_",
         f"expected {net.n_inputs} (the network's inputs), got {est.n_features_in_!r}")
    names = getattr(est, "feature_names_in_", None)
    need(names is None or (isinstance(names, np.ndarray) and names.shape == (net.n_inputs,)), "feature_names_in_",
         f"expected {net.n_inputs} names, got {names!r}")
    try:
        builds = est.__sensinet_builds__(net)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"header.estimator.params: invalid value ({exc}){where}") from None
    need(builds, "network", f"the saved network {net!r} is not the architecture the saved parameters build")
    k = net.n_outputs
    if name == "SensiNetRegressor":
        need(net.loss == "mse", "network", f"a regressor's network has loss 'mse', got {net.loss!r}")
        for key in ("_y_mean", "_y_scale"):
            v = getattr(est, key, None)
            need(isinstance(v, np.ndarray) and v.dtype == np.float64 and v.shape == (k,), key,
                 f"expected a float64 array of shape ({k},), got {v!r}")
        need(bool(np.all(est._y_scale > 0)), "_y_scale", "expected positive scales")
        need(isinstance(getattr(est, "_y_1d", None), bool) and (k == 1 or not est._y_1d), "_y_1d",
             f"expected a bool (False for {k} outputs)")
        return
    classes = getattr(est, "classes_", None)
    need(isinstance(classes, np.ndarray) and classes.ndim == 1 and classes.shape[0] >= 2, "classes_",
         f"expected a 1-D array of at least 2 labels, got {classes!r}")
    need(isinstance(getattr(est, "_multilabel", None), bool), "_multilabel", "expected a bool")
    n = classes.shape[0]
    loss, n_out = ("binary_cross_entropy", 1) if n == 2 else ("cross_entropy", n)
    if est._multilabel:
        loss, n_out = "binary_cross_entropy", n
    need(net.loss == loss and k == n_out, "network",
         f"{n} classes need a {loss!r} network with {n_out} output(s), got {net.loss!r} with {k}")
