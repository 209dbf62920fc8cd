"""Import networks from scikit-learn and PyTorch, and export dense networks to PyTorch.

Both libraries are optional: they are imported inside the functions that need them.

* :func:`from_sklearn` -- a fitted ``MLPRegressor`` / ``MLPClassifier``.
* :func:`from_torch` -- an ``nn.Sequential`` of ``nn.Linear`` layers and activation modules.
* :func:`to_torch` -- an equivalent float64 ``nn.Sequential`` for a network of Dense layers.

Weights are copied; the sensinet network computes the same function as the source model (to rounding:
the engine's GEMM and activation kernels sum in a different order).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._chain import Act, Affine, Linear, build
from ._validation import LOSSES, check_choice, resolve_dtype
from .layers import Dense
from .network import Network

__all__ = ["from_sklearn", "from_torch", "to_torch"]

# scikit-learn's hidden activations -> sensinet's
_SKLEARN_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


# ---------------------------------------------------------------------------------------------- scikit-learn
def from_sklearn(model: Any, dtype: Any = np.float64) -> Any:
    """A :class:`~sensinet.Network` with the weights of a fitted scikit-learn MLP.

    Parameters
    ----------
    model : sklearn.neural_network.MLPRegressor or MLPClassifier
        Fitted (it has ``coefs_``). ``coefs_[i]`` of shape (n_in, n_out) is sensinet's ``W`` layout and
        ``intercepts_[i]`` its ``b``.
    dtype : float64 (default) or float32

    Returns
    -------
    Network
        Hidden layers keep the model's activation (``logistic`` becomes ``sigmoid``); the output layer is
        identity and the loss carries the output link:

        - ``MLPRegressor`` (squared error) -> ``"mse"``; ``net.predict(X)`` equals ``model.predict(X)``
          (as a column). scikit-learn minimises *half* the MSE; the predictions are what is preserved.
        - binary ``MLPClassifier`` (one logistic output) -> ``"binary_cross_entropy"``; ``net.predict(X)``
          is the positive-class column of ``model.predict_proba(X)``.
        - multiclass (softmax) -> ``"cross_entropy"``; ``net.predict(X)`` equals ``model.predict_proba(X)``.
        - multilabel (several logistic outputs) -> ``"binary_cross_entropy"``.

        Classifiers get ``net.classes_`` (a copy of ``model.classes_``). Every layer's ``l2`` is 0:
        scikit-learn's ``alpha`` penalty is scaled by the number of training samples, which the fitted
        model does not keep; set ``l2 = alpha / n_samples`` yourself to continue training with it.

    Raises
    ------
    TypeError
        ``model`` is not an MLPRegressor / MLPClassifier.
    sklearn.exceptions.NotFittedError
        The model has not been fitted.
    ValueError
        An activation or output link sensinet does not have (e.g. ``MLPRegressor(loss="poisson")``).
    """
    try:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    except ImportError:  # without scikit-learn the object cannot be one of its models
        raise TypeError(f"model: expected a fitted scikit-learn MLPRegressor or MLPClassifier, got "
                        f"{type(model).__module__}.{type(model).__name__} (and scikit-learn is not installed)") from None
    if not isinstance(model, (MLPRegressor, MLPClassifier)):
        raise TypeError(f"model: expected a fitted scikit-learn MLPRegressor or MLPClassifier, got "
                        f"{type(model).__module__}.{type(model).__name__}")
    if not hasattr(model, "coefs_") or not hasattr(model, "intercepts_"):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"model: this {type(model).__name__} is not fitted yet; call fit before "
                             "converting it")
    dt = resolve_dtype(dtype)
    act = model.activation
    if act not in _SKLEARN_ACTIVATIONS:
        raise ValueError(f"model.activation: expected one of {tuple(_SKLEARN_ACTIVATIONS)}, got {act!r}")
    out = getattr(model, "out_activation_", None)
    if isinstance(model, MLPRegressor):
        if out != "identity":
            raise ValueError(f"model.out_activation_: sensinet converts regressors with an identity output "
                             f"(loss='squared_error'), got {out!r} (loss={getattr(model, 'loss', None)!r})")
        loss = "mse"
    elif out == "softmax":
        loss = "cross_entropy"
    elif out == "logistic":
        loss = "binary_cross_entropy"  # binary (one output) or multilabel (several)
    else:
        raise ValueError(f"model.out_activation_: expected 'softmax' or 'logistic' for a classifier, got {out!r}")

    coefs = [np.asarray(c, dtype=np.float64) for c in model.coefs_]
    intercepts = [np.asarray(b, dtype=np.float64).ravel() for b in model.intercepts_]
    if len(coefs) != len(intercepts) or not coefs:
        raise ValueError(f"model: expected as many coefs_ as intercepts_ (>= 1), got {len(coefs)} and "
                         f"{len(intercepts)}")
    width = coefs[0].shape[0]
    layers = []
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        if W.ndim != 2 or W.shape[0] != width or b.shape != (W.shape[1],):
            raise ValueError(f"model.coefs_[{i}]: expected shape ({width}, k) with intercepts_[{i}] of shape "
                             f"(k,), got {W.shape} and {b.shape}")
        last = i == len(coefs) - 1
        layers.append(Dense(int(W.shape[1]), "identity" if last else _SKLEARN_ACTIVATIONS[act]))
        width = W.shape[1]
    net = Network(int(coefs[0].shape[0]), layers, loss=loss, dtype=dt)
    _set_dense_weights(net, coefs, intercepts)
    if hasattr(model, "classes_"):
        net.classes_ = np.array(model.classes_, copy=True)
    return net


def _set_dense_weights(net: Any, weights: list, biases: list) -> None:
    """Copy (n_in, n_out) weight matrices and biases into a Dense-only network; all values must be finite."""
    for i, (W, b) in enumerate(zip(weights, biases)):
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ValueError(f"layer {i}: the source model's weights contain NaN or infinity")
        views = net.layer_parameters(i)
        views["W"][...] = W
        views["b"][...] = b


# ---------------------------------------------------------------------------------------------- PyTorch
def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError("PyTorch is needed for this function but could not be imported "
                          f"({exc}); install it with `pip install sensinet[torch]` or `pip install torch`") from None
    return torch


_TORCH_NO_OPS = ("Dropout", "AlphaDropout", "FeatureAlphaDropout", "Identity", "Flatten")
_TORCH_NOT_YET = ("GELU", "SiLU", "ELU", "Mish", "SELU", "CELU", "Hardswish", "PReLU")


def _torch_modules(module: Any, nn: Any, prefix: str = "module") -> list:
    """The leaf modules of (nested) ``nn.Sequential`` containers, in order, with their index paths."""
    out = []
    for idx, sub in enumerate(module):
        where = f"{prefix}[{idx}]"
        if isinstance(sub, nn.Sequential):
            out += _torch_modules(sub, nn, where)
        else:
            out.append((where, sub))
    return out


def _torch_op(where: str, sub: Any, nn: Any, torch: Any) -> Optional[Any]:
    """The chain operation of one torch module (None for a module that is the identity in eval mode)."""
    name = type(sub).__name__
    with torch.no_grad():
        if isinstance(sub, nn.Linear):
            W = sub.weight.detach().cpu().double().numpy().T  # torch stores (out, in)
            b = (sub.bias.detach().cpu().double().numpy() if sub.bias is not None
                 else np.zeros(sub.out_features, dtype=np.float64))
            return Linear(W, b, f"{where} (Linear)")
        if isinstance(sub, nn.BatchNorm1d):
            if sub.running_mean is None or sub.running_var is None:
                raise ValueError(f"{where}: BatchNorm1d without running statistics (track_running_stats=False) "
                                 "normalises with each batch's own statistics, which no fixed layer computes")
            mean = sub.running_mean.detach().cpu().double().numpy()
            var = sub.running_var.detach().cpu().double().numpy()
            gamma = sub.weight.detach().cpu().double().numpy() if sub.affine else np.ones_like(mean)
            beta = sub.bias.detach().cpu().double().numpy() if sub.affine else np.zeros_like(mean)
            scale = gamma / np.sqrt(var + float(sub.eps))
            return Affine(scale, beta - mean * scale, f"{where} (BatchNorm1d)")
    if isinstance(sub, nn.Flatten) and (sub.start_dim not in (1, -1) or sub.end_dim != -1):
        raise ValueError(f"{where}: Flatten(start_dim={sub.start_dim}, end_dim={sub.end_dim}) is not a no-op on "
                         "(batch, features) input; expected start_dim=1, end_dim=-1")
    if name in _TORCH_NO_OPS:
        return None
    act = f"{where} ({name})"
    if isinstance(sub, nn.ReLU):
        return Act("relu", act)
    if isinstance(sub, nn.LeakyReLU):
        slope = float(sub.negative_slope)
        if not slope >= 0.0:
            raise ValueError(f"{where}: LeakyReLU.negative_slope must be >= 0 for sensinet's leaky_relu, got {slope}")
        return Act("leaky_relu", act, slope)
    if isinstance(sub, nn.Tanh):
        return Act("tanh", act)
    if isinstance(sub, nn.Sigmoid):
        return Act("sigmoid", act)
    if isinstance(sub, nn.Softplus):
        if float(sub.beta) != 1.0:
            raise ValueError(f"{where}: Softplus.beta must be 1 (sensinet's softplus is log(1 + exp(z))), got "
                             f"{sub.beta}")
        return Act("softplus", act)
    hint = (" (sensinet's engine does not have this activation yet)" if name in _TORCH_NOT_YET else "")
    raise ValueError(f"{where}: unsupported module type {type(sub).__module__}.{name}{hint}; expected Linear, "
                     "BatchNorm1d, ReLU, LeakyReLU, Tanh, Sigmoid, Softplus, or Dropout / Identity / Flatten (no-ops "
                     "in eval mode), in nn.Sequential containers")


def from_torch(module: Any, n_inputs: Optional[int] = None, loss: str = "mse", dtype: Any = np.float64) -> Any:
    """A :class:`~sensinet.Network` computing what a PyTorch ``nn.Sequential`` MLP computes in eval mode.

    Parameters
    ----------
    module : torch.nn.Sequential
        ``nn.Linear`` layers, each optionally followed by one activation module: ``nn.ReLU``,
        ``nn.LeakyReLU`` (``negative_slope`` becomes ``alpha``; it must be >= 0), ``nn.Tanh``,
        ``nn.Sigmoid``, ``nn.Softplus`` (``beta`` must be 1; ``threshold`` is ignored: sensinet evaluates
        ``log1p(exp(z))`` exactly everywhere, while torch returns ``z`` above the threshold, which differs
        by at most ``log1p(exp(-threshold))``, about 2e-9 for the default 20). Nested ``nn.Sequential``
        containers are flattened. The module is read with **eval-mode semantics**, whatever its
        ``training`` flag:

        - ``nn.BatchNorm1d`` uses its running statistics and is folded exactly into the adjacent Linear:
          into the one before it when no activation lies between (``Linear, BatchNorm1d, ReLU``), else into
          the next one (``Linear, ReLU, BatchNorm1d, Linear``, or a BatchNorm1d on the inputs);
        - ``nn.Dropout`` (and its alpha variants), ``nn.Identity`` and ``nn.Flatten`` are dropped.

        Weights of any dtype and device are copied via ``.detach().cpu().double()``; a Linear without bias
        gets b = 0.
    n_inputs : int, optional
        Number of input features; inferred from the first Linear's ``in_features`` (if given it must agree).
    loss : {"mse", "cross_entropy", "binary_cross_entropy"}
        The network's loss. For the classification losses the module must end with a Linear (its raw
        outputs are the logits; ``net.predict`` applies the softmax / sigmoid).
    dtype : float64 (default) or float32

    Returns
    -------
    Network
        ``net.forward(X)`` equals ``module.eval()(X)`` (to rounding; folding a BatchNorm changes the order of
        the arithmetic, not the function).

    Raises
    ------
    ImportError
        PyTorch is not installed.
    TypeError
        ``module`` is not an ``nn.Sequential``.
    ValueError
        A module sensinet does not support (the message names its index path and type; GELU, SiLU, ELU and
        Mish are not in the engine yet), an activation first or two in a row, widths that do not chain, a
        BatchNorm1d without running statistics or after the last activation, an activation after the last
        Linear with a classification loss, a Softplus with beta != 1, a negative LeakyReLU slope, or
        non-finite weights.
    """
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"module: expected a torch.nn.Sequential of Linear layers and activations, got "
                        f"{type(module).__module__}.{type(module).__name__}")
    check_choice(loss, "loss", LOSSES)
    dt = resolve_dtype(dtype)
    ops = [op for where, sub in _torch_modules(module, nn) if (op := _torch_op(where, sub, nn, torch)) is not None]
    linears = [op for op in ops if isinstance(op, Linear)]
    if not linears:
        raise ValueError("module: expected at least one nn.Linear layer, got none")
    first_in = int(linears[0].W.shape[0])
    if n_inputs is not None:
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
            raise ValueError(f"n_inputs: expected an int >= 1 or None, got {n_inputs!r}")
        if int(n_inputs) != first_in:
            raise ValueError(f"n_inputs: expected {first_in} (the first Linear's in_features), got {n_inputs}")
    tail = ops[ops.index(linears[-1]) + 1:]
    acts = [op for op in tail if isinstance(op, Act)]
    if loss != "mse" and acts:
        raise ValueError(f"loss: {loss!r} needs logits, but the last Linear ({linears[-1].where}) is followed by "
                         f"{acts[0].name} ({acts[0].where}); drop the final activation (net.predict applies the "
                         "link) or use loss='mse'")
    return build(ops, first_in, loss, dt, source="module")


def to_torch(net: Any, dtype: Any = None) -> Any:
    """An equivalent ``torch.nn.Sequential`` (on the CPU) for a network of Dense layers.

    Each Dense layer becomes ``nn.Linear`` (weight = ``W.T``) followed by its activation (``nn.ReLU``,
    ``nn.LeakyReLU(alpha)``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.Softplus()``; none for identity). The module
    returns the raw outputs, like ``net.forward``: apply ``torch.softmax`` / ``torch.sigmoid`` for the
    probabilities of a classification head. Note that torch's Softplus returns ``z`` above its threshold
    (20), a difference of at most ~2e-9 from sensinet.

    Parameters
    ----------
    net : Network
        Dense layers only.
    dtype : torch.dtype, optional
        Parameter dtype of the module; default ``torch.float64``.

    Raises
    ------
    NotImplementedError
        The network has residual blocks (torch has no built-in equivalent module).
    """
    torch = _import_torch()
    net = as_network(net)
    residual = [i for i, s in enumerate(net.specs) if s.kind != "dense"]
    if residual:
        raise NotImplementedError(f"to_torch: only networks of Dense layers can be exported; layer(s) {residual} "
                                  "are residual blocks, which have no torch.nn.Sequential equivalent")
    tdtype = torch.float64 if dtype is None else dtype
    nn = torch.nn
    mods = []
    for l, (_, n_in, n_out, _, act, alpha, _) in enumerate(net.specs):
        p = net.layer_parameters(l)
        lin = nn.Linear(n_in, n_out, dtype=tdtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.array(p["W"], dtype=np.float64).T.copy()))
            lin.bias.copy_(torch.from_numpy(np.array(p["b"], dtype=np.float64)))
        mods.append(lin)
        if act == "relu":
            mods.append(nn.ReLU())
        elif act == "leaky_relu":
            mods.append(nn.LeakyReLU(negative_slope=float(alpha)))
        elif act == "tanh":
            mods.append(nn.Tanh())
        elif act == "sigmoid":
            mods.append(nn.Sigmoid())
        elif act == "softplus":
            mods.append(nn.Softplus())
        elif act != "identity":  # pragma: no cover -- the engine knows no other activation
            raise NotImplementedError(f"to_torch: activation {act!r} of layer {l} has no torch module")
    return nn.Sequential(*mods)


def as_network(model: Any, in_place: bool = False) -> Network:
    """The sensinet Network of ``model``: a Network itself; the ``network_`` of a fitted SensiNetRegressor or
    SensiNetClassifier (the same object, so training it trains the estimator's network; the regressor's
    network works in standardized target units); or a fitted scikit-learn MLP or torch ``nn.Sequential``,
    converted (a copy). ``in_place=True`` is for callers that train the network they get and hand nothing
    back: a converted copy would be trained unseen, so foreign models are refused there."""
    if isinstance(model, Network):
        return model
    module = type(model).__module__
    if module == "sensinet.estimators":  # SensiNetRegressor / SensiNetClassifier
        net = getattr(model, "network_", None)
        if not isinstance(net, Network):
            raise ValueError(f"net: this {type(model).__name__} is not fitted yet; call fit first")
        return net
    if module.startswith(("sklearn", "torch")):
        if in_place:
            raise TypeError(f"net: a {module}.{type(model).__name__} would be converted to a copy that is trained "
                            "and then lost; convert it first (net = sensinet.from_sklearn(model) or "
                            "sensinet.from_torch(module)) and train that network")
        return from_sklearn(model) if module.startswith("sklearn") else from_torch(model)
    raise TypeError(f"net: expected a sensinet Network, a fitted SensiNetRegressor / SensiNetClassifier, a fitted "
                    f"scikit-learn MLP or a torch nn.Sequential, got {module}.{type(model).__name__}")
