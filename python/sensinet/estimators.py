"""scikit-learn estimators built on :class:`sensinet.Network`.

:class:`SensiNetRegressor` and :class:`SensiNetClassifier` follow the scikit-learn estimator API (``fit`` /
``predict`` / ``score``, ``get_params`` / ``set_params``, ``clone``, pipelines, grid search, pickling) and
train a dense (optionally residual) network with the C++ engine.

Solvers are ``"adam"``, ``"sgd"`` and ``"lbfgs"``. The name ``"hierarchical"`` is reserved for the
hierarchical multi-scale optimizer: it is looked up at fit time in the module ``sensinet.hierarchical``
(class ``HierarchicalOptimizer``) and is an error while that module does not exist. The protocol the
estimator relies on is::

    opt = HierarchicalOptimizer(lr=learning_rate)
    opt.fit(network, X, Y, **fit_kwargs)   # fit_kwargs: the keywords of Network.fit (epochs, batch_size,
                                           # shuffle, seed, validation_data, patience, tol, callback,
                                           # progress, n_threads); sets network.history_ (a FitResult)
                                           # and raises DivergenceError like Network.fit
"""
from __future__ import annotations

import importlib
import numbers
import warnings
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sensinet's scikit-learn estimators need scikit-learn >= 1.6 "
                      f"(pip install 'scikit-learn>=1.6'): {exc}") from exc

from ._config import resolve_threads
from ._early_stopping import Patience
from ._estimator_data import held_out, held_out_score, target_scale
from ._estimator_docs import ATTRS_DOC, PARAMS_DOC
from ._validation import check_bool, check_count, check_number, sample_weights
from .cuda import parse_device
from .layers import ACTIVATIONS, Dense, Layer, Residual
from .losses import log_sigmoid, log_softmax
from .errors import DivergenceError, require_finite
from .network import Network
from .optimizers import LBFGS, SGD, Adam

__all__ = ["SensiNetClassifier", "SensiNetRegressor"]

SOLVERS = ("adam", "sgd", "lbfgs", "hierarchical")
_HIERARCHICAL_MODULE = "sensinet.hierarchical"
_FLOATS = [np.float64, np.float32]  # dtype=None: float32 input stays float32, anything else becomes float64
_SEED_BOUND = np.iinfo(np.int32).max  # seeds drawn from random_state (RandomState.randint's int32 range)


def _hierarchical_optimizer_class() -> Optional[type]:
    """The solver registry hook: ``sensinet.hierarchical.HierarchicalOptimizer`` if importable, else None."""
    try:
        module = importlib.import_module(_HIERARCHICAL_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != _HIERARCHICAL_MODULE:
            raise  # the module exists but one of its own imports is missing: that error is the useful one
        return None
    return getattr(module, "HierarchicalOptimizer", None)


# ---------------------------------------------------------------------------------------------- param checks
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class _BaseSensiNet(BaseEstimator):
    """Parameters, validation, network construction and training shared by the two estimators."""

    def __init__(self, hidden_layer_sizes: Any = (64, 64), activation: str = "relu", residual: bool = False,
                 l2: float = 0.0, solver: str = "adam", learning_rate: float = 1e-3, momentum: float = 0.9,
                 batch_size: int = 32, max_iter: int = 200, tol: float = 1e-4, early_stopping: bool = False,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10, random_state: Any = None,
                 warm_start: bool = False, dtype: Any = None, n_threads: Optional[int] = None,
                 verbose: bool = False, device: str = "cpu") -> None:
        # scikit-learn rule: store the parameters unchanged, validate them in fit.
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.residual = residual
        self.l2 = l2
        self.solver = solver
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.warm_start = warm_start
        self.dtype = dtype
        self.n_threads = n_threads
        self.verbose = verbose
        self.device = device

    # ------------------------------------------------------------------------------------------ validation
    def _check_params(self) -> dict:
        """All parameters checked and normalised; errors are ValueErrors that name the parameter."""
        sizes = self.hidden_layer_sizes
        if _is_int(sizes):
            sizes = (sizes,)
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes: expected a sequence of ints >= 1, got {self.hidden_layer_sizes!r}") \
                from None
        if not all(_is_int(s) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes: expected a sequence of ints >= 1, got {self.hidden_layer_sizes!r}")
        sizes = tuple(int(s) for s in sizes)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {self.activation!r}")
        residual = check_bool(self.residual, "residual")
        if residual and len(set(sizes)) > 1:
            raise ValueError("hidden_layer_sizes: residual=True keeps the width through the residual blocks, so "
                             f"all hidden layers need the same width, got {self.hidden_layer_sizes!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {SOLVERS}, got {self.solver!r}")
        if self.solver == "hierarchical" and _hierarchical_optimizer_class() is None:
            raise ValueError("solver='hierarchical' is not available yet: it needs the module sensinet.hierarchical "
                             "(with HierarchicalOptimizer), which this installation does not have. Use solver="
                             "'adam', 'sgd' or 'lbfgs'.")
        if self.n_threads is not None:
            check_count(self.n_threads, "n_threads", 1)
        if self.dtype is None:
            dtype = None  # follow the input: float32 X trains and predicts in float32, anything else in float64
        else:
            try:
                dtype = np.dtype(self.dtype)
            except TypeError:
                dtype = False
            if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
                raise ValueError(f"dtype: expected None, 'float64' or 'float32', got {self.dtype!r}")
        return dict(
            sizes=sizes,
            residual=residual,
            l2=check_number(self.l2, "l2", 0.0),
            learning_rate=check_number(self.learning_rate, "learning_rate", 0.0, open_lo=True),
            momentum=check_number(self.momentum, "momentum", 0.0, 1.0),
            batch_size=check_count(self.batch_size, "batch_size", 1),
            max_iter=check_count(self.max_iter, "max_iter", 1),
            tol=check_number(self.tol, "tol", 0.0),
            early_stopping=check_bool(self.early_stopping, "early_stopping"),
            validation_fraction=check_number(self.validation_fraction, "validation_fraction", 0.0, 1.0,
                                            open_lo=True, open_hi=True),
            n_iter_no_change=check_count(self.n_iter_no_change, "n_iter_no_change", 1),
            warm_start=check_bool(self.warm_start, "warm_start"),
            dtype=None if dtype is None else (np.float64 if dtype == np.float64 else np.float32),
            device=parse_device(self.device)[0],
        )

    # ------------------------------------------------------------------------------------------ building
    def _layers(self, p: dict, n_outputs: int) -> list:
        l2, act = p["l2"], self.activation
        layers: list[Layer] = []
        for i, width in enumerate(p["sizes"]):
            if p["residual"] and i > 0:
                layers.append(Residual(width, act, l2=l2))
            else:
                layers.append(Dense(width, act, l2=l2))
        layers.append(Dense(n_outputs, "identity", l2=l2))  # linear head: values or logits
        return layers

    def _builds(self, p: dict, net: Network) -> bool:
        """Whether ``net`` has exactly the layers this estimator builds (compared as engine specs, so a network
        read from a model file, whose layer objects spell every width out, compares equal)."""
        width, specs = net.n_inputs, []
        for layer in self._layers(p, net.n_outputs):
            specs.append(tuple(layer.spec(width)))
            width = layer.width
        return [tuple(s) for s in net.specs] == specs

    def _reusable(self, p: dict, n_features: int, n_outputs: int, loss: str) -> bool:
        """warm_start applies only when the fitted network has exactly the architecture this fit would build."""
        net = getattr(self, "network_", None)
        return (p["warm_start"] and isinstance(net, Network) and net.n_inputs == n_features
                and net.loss == loss and net.dtype == p["dtype"] and net.device == p["device"]
                and self._builds(p, net))

    def _optimizer(self, p: dict, reuse: bool) -> Any:
        """The optimizer object; on a warm start the previous one is kept so SGD momentum / Adam moments go on."""
        prev = getattr(self, "_solver_state", None) if reuse else None
        if self.solver == "adam":
            if isinstance(prev, Adam):
                prev.lr = p["learning_rate"]
                return prev
            return Adam(lr=p["learning_rate"])
        if self.solver == "sgd":
            if isinstance(prev, SGD):
                prev.lr, prev.momentum = p["learning_rate"], p["momentum"]
                return prev
            return SGD(lr=p["learning_rate"], momentum=p["momentum"])
        if self.solver == "lbfgs":
            # Like scikit-learn's MLP: tol is L-BFGS's gradient tolerance; each fit starts a fresh history.
            return LBFGS(max_iter=p["max_iter"], gtol=p["tol"])
        cls = _hierarchical_optimizer_class()
        if prev is not None and cls is not None and isinstance(prev, cls):
            return prev
        return cls(lr=p["learning_rate"])  # type: ignore[misc]  # None excluded by _check_params

    # ------------------------------------------------------------------------------------------ training
    def _train(self, p: dict, X: NDArray, T: NDArray, loss: str, reuse: bool, strata: Optional[NDArray] = None,
               partial: bool = False, sample_weight: Any = None) -> None:
        """Build (or reuse) the network, train it on engine-ready targets T and record the fitted attributes.
        ``strata``: class labels, to split the early-stopping set stratified; ``partial``: one epoch, no
        stopping rule (partial_fit)."""
        n = X.shape[0]
        if partial:
            p = dict(p, max_iter=1, early_stopping=False)
        w = None
        if sample_weight is not None:
            if self.solver == "hierarchical":
                raise ValueError("sample_weight: solver='hierarchical' does not weight samples; use 'adam', 'sgd' "
                                 "or 'lbfgs'")
            w = sample_weights(sample_weight, n, p["dtype"])
        rng = check_random_state(self.random_state)
        # Always draw the same number of seeds in the same order, so results depend on random_state only.
        init_seed, shuffle_seed = (int(s) for s in rng.randint(_SEED_BOUND, size=2))
        if partial and reuse:  # each partial_fit epoch its own shuffle, still fixed by random_state
            shuffle_seed = (shuffle_seed + self.n_iter_) % _SEED_BOUND
        if reuse:
            net = self.network_
        else:
            net = Network(X.shape[1], self._layers(p, T.shape[1]), loss=loss, dtype=p["dtype"], seed=init_seed,
                          device=p["device"])
        opt = self._optimizer(p, reuse)
        threads = resolve_threads(self.n_threads)

        X_fit, T_fit = X, T
        kwargs: dict = dict(epochs=p["max_iter"], shuffle=True, seed=shuffle_seed, progress=bool(self.verbose),
                            n_threads=threads)
        stopper = None
        scores: list = []
        if p["early_stopping"]:
            n_val = int(np.ceil(p["validation_fraction"] * n))
            if n < 2 or n - n_val < 1:
                raise ValueError(f"early_stopping: needs at least 2 samples to split off a validation set "
                                 f"(validation_fraction={self.validation_fraction}), got n_samples={n}")
            val, tr = held_out(n, n_val, rng, strata)
            X_fit, T_fit = X[tr], T[tr]
            if w is not None:
                w = w[tr] if w[tr].sum() > 0 else None
                if w is None:
                    raise ValueError("sample_weight: every training sample left after the validation split has "
                                     "weight 0")
            # the engine evaluates the validation objective at every epoch end (every outer iteration for
            # the hierarchical solver); the Patience rule stops and restores the best weights
            kwargs.update(validation_data=(X[val], T[val]), patience=p["n_iter_no_change"], tol=p["tol"])
            X_val, T_val = X[val], T[val]

            def score_epoch(info: dict) -> bool:  # scikit-learn's validation_scores_: R^2 or accuracy per epoch
                if info.get("epoch_end"):
                    scores.append(held_out_score(loss, net.forward(X_val, n_threads=threads), T_val))
                return False

            kwargs["callback"] = score_epoch
        elif self.solver in ("adam", "sgd") and not partial:
            stopper = _NoImprovement(p["tol"], p["n_iter_no_change"])
            kwargs["callback"] = stopper
        kwargs["batch_size"] = min(p["batch_size"], X_fit.shape[0])
        if w is not None:
            kwargs["sample_weight"] = w

        try:
            if self.solver == "hierarchical":
                opt.fit(net, X_fit, T_fit, **kwargs)
            else:
                net.fit(X_fit, T_fit, optimizer=opt, **kwargs)
        except DivergenceError as exc:
            raise DivergenceError(
                f"{type(self).__name__}.fit: training diverged (non-finite loss) with solver={self.solver!r}, "
                f"learning_rate={self.learning_rate!r}. Lower learning_rate, add l2, or standardize X. "
                f"({exc})") from exc

        hist = net.history_
        if reuse:
            self.n_iter_ += int(hist.epochs)
            self.loss_curve_ = self.loss_curve_ + list(hist.loss_curve)
        else:
            self.n_iter_ = int(hist.epochs)
            self.loss_curve_ = list(hist.loss_curve)
        self.network_ = net
        self._solver_state = opt
        self.history_ = hist
        self.loss_ = float(self.loss_curve_[-1]) if self.loss_curve_ else float(net.objective(X_fit, T_fit))
        self.validation_loss_curve_ = list(hist.val_curve) if p["early_stopping"] else None
        # scikit-learn's names: the best training loss without early stopping, the best validation score with it
        self.validation_scores_ = scores[:len(hist.val_curve)] if p["early_stopping"] else None
        self.best_validation_score_ = max(self.validation_scores_) if self.validation_scores_ else None
        self.best_loss_ = None if p["early_stopping"] else (min(self.loss_curve_) if self.loss_curve_ else self.loss_)
        if partial:
            return

        converged = hist.status in ("early_stopped", "gtol", "ftol") or (stopper is not None and stopper.converged)
        if not converged and hist.status in ("completed", "max_iter") and hist.epochs >= p["max_iter"]:
            warnings.warn(f"{type(self).__name__}: max_iter={p['max_iter']} reached before the optimization "
                          "converged; increase max_iter or learning_rate.", ConvergenceWarning, stacklevel=3)

    @property
    def coefs_(self) -> list:
        """Weight matrices, layer by layer, shape (n_in, n_out) as in scikit-learn's MLP: views of the
        network's parameters, so writing into them changes the network. A residual block gives W1 and W2."""
        check_is_fitted(self, "network_")
        net = self.network_
        out = []
        for l in range(net.n_layers):
            v = net.layer_parameters(l)
            out += [v["W"]] if "W" in v else [v["W1"], v["W2"]]
        return out

    @property
    def intercepts_(self) -> list:
        """Bias vectors matching ``coefs_`` (views); the second weight of a residual block has no bias, so its
        entry is a read-only array of zeros."""
        check_is_fitted(self, "network_")
        net = self.network_
        out = []
        for l in range(net.n_layers):
            v = net.layer_parameters(l)
            if "W" in v:
                out.append(v["b"])
            else:
                zeros = np.zeros(v["W2"].shape[1], dtype=net.dtype)
                zeros.flags.writeable = False
                out += [v["b1"], zeros]
        return out

    def _outputs(self, X: Any) -> NDArray:
        """Raw network outputs, in the network's dtype, for validated X."""
        check_is_fitted(self, "network_")
        net = self.network_
        X = validate_data(self, X, reset=False, dtype=net.dtype, order="C")
        return net.forward(X, n_threads=self.n_threads)

    # ------------------------------------------------------------------------------------------ model files
    def __sensinet_builds__(self, net: Network) -> bool:
        """Whether this estimator's parameters (checked: a ValueError names a bad one) build ``net``'s
        architecture; :func:`sensinet.load` asks it of a loaded estimator."""
        p = self._check_params()
        return net.dtype == (p["dtype"] or net.dtype) and self._builds(p, net)

    # ------------------------------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        # The engine's model is a C++ object without pickle support: store the architecture and the flat
        # parameter vector instead and rebuild the Network on load.
        state = dict(super().__getstate__())
        net = state.get("network_")
        if isinstance(net, Network):
            state["network_"] = {
                "__sensinet_network__": 1,
                "n_inputs": net.n_inputs,
                "layers": list(net.layers),
                "loss": net.loss,
                "dtype": np.dtype(net.dtype).name,
                "device": net.device,
                "parameters": np.array(net.parameters, copy=True),
                "history": getattr(net, "history_", None),
            }
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        saved = state.get("network_")
        if isinstance(saved, dict) and saved.get("__sensinet_network__") == 1:
            net = Network(saved["n_inputs"], saved["layers"], loss=saved["loss"], dtype=saved["dtype"])
            net.parameters = saved["parameters"]
            device = saved.get("device", "cpu")
            if device != "cpu":
                try:
                    net.to(device)
                except RuntimeError as exc:
                    warnings.warn(f"{type(self).__name__}: pickled on {device}, restored on cpu ({exc})",
                                  RuntimeWarning, stacklevel=2)
            if saved["history"] is not None:
                net.history_ = saved["history"]
            state["network_"] = net
        opt = state.get("_solver_state")
        for name in ("state_m", "state_v"):
            arr = getattr(opt, name, None)
            if isinstance(arr, np.ndarray):
                # A fresh writable copy with numpy's canonical dtype object: a memory-mapped load is read-only,
                # and the engine's binding compares dtype objects by identity, which an unpickled dtype fails.
                setattr(opt, name, arr.astype(arr.dtype.type))
        super().__setstate__(state)


class _NoImprovement:
    """Epoch-end callback: the :class:`Patience` rule on the training loss (scikit-learn's MLP criterion
    when early stopping is off)."""

    def __init__(self, tol: float, patience: int) -> None:
        self.watch = Patience(patience, tol)

    @property
    def converged(self) -> bool:
        return self.watch.stopped

    def __call__(self, info: dict) -> bool:
        return bool(info.get("epoch_end")) and self.watch.update(info["loss"])


class SensiNetRegressor(RegressorMixin, _BaseSensiNet):
    """Dense neural network regressor trained by the sensinet C++ engine (mean squared error).

    The targets are standardized internally (per output: subtract the mean, divide by the standard
    deviation) and predictions are mapped back. This makes the learning rate, ``tol`` and ``l2`` independent
    of the scale of ``y``; the features ``X`` are used as given (standardize them, e.g. with a
    ``StandardScaler`` in a pipeline). Multi-output ``y`` of shape (n_samples, n_targets) is supported.
    {params}
    Attributes
    ----------{attrs}    n_outputs_ : int
        Number of targets.

    Notes
    -----
    ``loss_curve_`` is in units of the standardized targets.

    Examples
    --------
    >>> import numpy as np
    >>> from sensinet import SensiNetRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = SensiNetRegressor(hidden_layer_sizes=(32,), random_state=0).fit(X, np.sin(3 * X).ravel())
    >>> reg.predict(X[:2]).shape
    (2,)
    """

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "SensiNetRegressor":
        """Fit the network to data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples in the loss (finite, >= 0): each minibatch's loss is their weighted mean.

        Returns
        -------
        self : SensiNetRegressor

        Raises
        ------
        sensinet.DivergenceError
            When the loss becomes non-finite (a FloatingPointError).
        """
        return self._fit(X, y, partial=False, sample_weight=sample_weight)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "SensiNetRegressor":
        """One epoch on (X, y), continuing from the current weights and optimizer state (the first call builds
        the network and fixes the targets' standardization). No stopping rule applies; ``n_iter_`` counts the
        epochs.

        Returns
        -------
        self : SensiNetRegressor
        """
        return self._fit(X, y, partial=True, sample_weight=sample_weight)

    def _fit(self, X: Any, y: Any, partial: bool, sample_weight: Any = None) -> "SensiNetRegressor":
        p = self._check_params()
        first = not (partial and hasattr(self, "network_"))
        X, y = validate_data(self, X, y, dtype=p["dtype"] or _FLOATS, order="C", multi_output=True, y_numeric=True,
                             reset=first)
        p["dtype"] = X.dtype.type if first else self.network_.dtype
        y = np.asarray(y, dtype=np.float64)
        one_d = y.ndim == 1
        Y = y.reshape(-1, 1) if one_d else y
        if not first and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y: partial_fit needs the {self.n_outputs_} target(s) of the first call, got {Y.shape[1]}")
        reuse = not first or self._reusable(p, X.shape[1], Y.shape[1], "mse")
        if reuse:  # the network learned in the first fit's target units: keep them
            mean, scale = self._y_mean, self._y_scale
        else:
            mean, scale = target_scale(Y, None if sample_weight is None else
                                        sample_weights(sample_weight, Y.shape[0], np.float64))
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, by name
            T = np.ascontiguousarray((Y - mean) / scale, dtype=p["dtype"])
        require_finite(T, "standardized targets", f"{type(self).__name__}.fit", Y)
        self._train(p, X, T, "mse", reuse, partial=partial, sample_weight=sample_weight)
        # Set only after training succeeded, so a failed fit leaves a previous fit's state consistent.
        self._y_mean, self._y_scale = mean, scale
        self.n_outputs_ = Y.shape[1]
        self._y_1d = one_d
        return self

    def __sensinet_predict_map__(self) -> dict:
        """How ``predict`` maps the network's outputs (for exporters such as :func:`sensinet.to_onnx`)."""
        check_is_fitted(self, "network_")
        return {"kind": "affine", "scale": self._y_scale, "shift": self._y_mean, "ravel": self._y_1d}

    def predict(self, X: Any) -> NDArray[np.float64]:
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets) like the ``y`` given to fit.

        Raises NonFiniteError when a prediction overflows float64 in the targets' units."""
        z = self._outputs(X)
        with np.errstate(over="ignore", invalid="ignore"):
            out = z.astype(np.float64) * self._y_scale + self._y_mean
        require_finite(out, "prediction", f"{type(self).__name__}.predict", X)
        out = out.astype(z.dtype)  # float32 networks answer in float32, like scikit-learn's MLP
        require_finite(out, "prediction", f"{type(self).__name__}.predict", X)
        return out.ravel() if self._y_1d else out


class SensiNetClassifier(ClassifierMixin, _BaseSensiNet):
    """Dense neural network classifier trained by the sensinet C++ engine.

    Two classes: one logit and binary cross-entropy (sigmoid); more: one logit per class and softmax
    cross-entropy. Labels may be of any type ``np.unique`` can sort (ints, strings, ...).
    {params}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted.{attrs}
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sensinet import SensiNetClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SensiNetClassifier(hidden_layer_sizes=(16,), random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    """

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "SensiNetClassifier":
        """Fit the network to data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (at least two distinct ones).
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples in the loss (finite, >= 0): each minibatch's loss is their weighted mean.

        Returns
        -------
        self : SensiNetClassifier

        Raises
        ------
        sensinet.DivergenceError
            When the loss becomes non-finite (a FloatingPointError).
        """
        return self._fit(X, y, None, partial=False, sample_weight=sample_weight)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> "SensiNetClassifier":
        """One epoch on (X, y), continuing from the current weights and optimizer state. The first call
        needs ``classes``, every label there will ever be (as in scikit-learn); later calls may omit it. No
        stopping rule applies; ``n_iter_`` counts the epochs.

        Returns
        -------
        self : SensiNetClassifier
        """
        return self._fit(X, y, classes, partial=True, sample_weight=sample_weight)

    def _fit(self, X: Any, y: Any, classes: Any, partial: bool, sample_weight: Any = None) -> "SensiNetClassifier":
        p = self._check_params()
        first = not (partial and hasattr(self, "network_"))
        if partial and first and classes is None:
            raise ValueError("classes: the first partial_fit needs every class label (classes=...)")
        X, y = validate_data(self, X, y, dtype=p["dtype"] or _FLOATS, order="C", reset=first)
        p["dtype"] = X.dtype.type if first else self.network_.dtype
        check_classification_targets(y)
        if not first:
            known = self.classes_
            if classes is not None and not np.array_equal(np.unique(classes), known):
                raise ValueError(f"classes: expected the classes of the first call {list(known)}, got "
                                 f"{list(np.unique(classes))}")
            classes = known
        elif classes is not None:
            classes = np.unique(classes)
        else:
            classes = np.unique(y)
        unseen = np.setdiff1d(np.unique(y), classes)
        if unseen.size:
            raise ValueError(f"y: labels {list(unseen)} are not among classes {list(classes)}")
        labels = np.searchsorted(classes, y)
        if classes.shape[0] < 2:
            raise ValueError(f"y: {type(self).__name__} needs samples of at least 2 classes, but the data "
                             f"contains only one class: {classes[0]!r}")
        k = classes.shape[0]
        loss, n_outputs = ("binary_cross_entropy", 1) if k == 2 else ("cross_entropy", k)
        reuse = not first or (self._reusable(p, X.shape[1], n_outputs, loss)
                              and np.array_equal(getattr(self, "classes_", None), classes))
        if k == 2:
            T = labels.reshape(-1, 1).astype(p["dtype"])
        else:
            T = np.zeros((labels.shape[0], k), dtype=p["dtype"])
            T[np.arange(labels.shape[0]), labels] = 1
        self._train(p, X, T, loss, reuse, strata=labels, partial=partial, sample_weight=sample_weight)
        self.classes_ = classes
        return self

    def __sensinet_predict_map__(self) -> dict:
        """How ``predict_proba`` maps the network's outputs (for exporters such as :func:`sensinet.to_onnx`)."""
        check_is_fitted(self, "network_")
        return {"kind": "proba"}

    def predict_log_proba(self, X: Any) -> NDArray[np.float64]:
        """Log of the class probabilities, shape (n_samples, n_classes), computed stably from the logits."""
        z = self._outputs(X)
        if z.shape[1] == 1:
            return np.column_stack([log_sigmoid(-z[:, 0]), log_sigmoid(z[:, 0])])
        return log_softmax(z)

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """Class probabilities, shape (n_samples, n_classes), columns in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> NDArray:
        """Most probable class label per sample."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before classes_ is looked up
        return self.classes_[np.argmax(proba, axis=1)]


SensiNetRegressor.__doc__ = SensiNetRegressor.__doc__.format(params=PARAMS_DOC, attrs=ATTRS_DOC)  # type: ignore
SensiNetClassifier.__doc__ = SensiNetClassifier.__doc__.format(params=PARAMS_DOC, attrs=ATTRS_DOC)  # type: ignore
