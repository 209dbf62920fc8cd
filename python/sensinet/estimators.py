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
from ._validation import check_bool, check_count, check_number
from .cuda import parse_device
from .layers import ACTIVATIONS, Dense, Layer, Residual
from .losses import log_sigmoid, log_softmax
from .network import DivergenceError, Network, require_finite
from .optimizers import LBFGS, SGD, Adam

__all__ = ["SensiNetClassifier", "SensiNetRegressor"]

SOLVERS = ("adam", "sgd", "lbfgs", "hierarchical")
_HIERARCHICAL_MODULE = "sensinet.hierarchical"
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
                 warm_start: bool = False, dtype: Any = "float64", n_threads: Optional[int] = None,
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
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype: expected 'float64' or 'float32', got {self.dtype!r}")
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
            dtype=np.float64 if dtype == np.float64 else np.float32,
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

    def _reusable(self, p: dict, n_features: int, n_outputs: int, loss: str) -> bool:
        """warm_start applies only when the fitted network has exactly the architecture this fit would build."""
        net = getattr(self, "network_", None)
        return (p["warm_start"] and isinstance(net, Network) and net.n_inputs == n_features
                and net.loss == loss and net.dtype == p["dtype"] and net.device == p["device"]
                and tuple(net.layers) == tuple(self._layers(p, n_outputs)))

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
    def _train(self, p: dict, X: NDArray, T: NDArray, loss: str, reuse: bool) -> None:
        """Build (or reuse) the network, train it on engine-ready targets T and record the fitted attributes."""
        n = X.shape[0]
        rng = check_random_state(self.random_state)
        # Always draw the same number of seeds in the same order, so results depend on random_state only.
        init_seed, shuffle_seed = (int(s) for s in rng.randint(_SEED_BOUND, size=2))
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
        if p["early_stopping"]:
            n_val = int(np.ceil(p["validation_fraction"] * n))
            if n < 2 or n - n_val < 1:
                raise ValueError(f"early_stopping: needs at least 2 samples to split off a validation set "
                                 f"(validation_fraction={self.validation_fraction}), got n_samples={n}")
            perm = rng.permutation(n)
            val, tr = perm[:n_val], perm[n_val:]
            X_fit, T_fit = X[tr], T[tr]
            # the engine evaluates the validation objective at every epoch end (every outer iteration for
            # the hierarchical solver); the Patience rule stops and restores the best weights
            kwargs.update(validation_data=(X[val], T[val]), patience=p["n_iter_no_change"], tol=p["tol"])
        elif self.solver in ("adam", "sgd"):
            stopper = _NoImprovement(p["tol"], p["n_iter_no_change"])
            kwargs["callback"] = stopper
        kwargs["batch_size"] = min(p["batch_size"], X_fit.shape[0])

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

        converged = hist.status in ("early_stopped", "gtol", "ftol") or (stopper is not None and stopper.converged)
        if not converged and hist.status in ("completed", "max_iter") and hist.epochs >= p["max_iter"]:
            warnings.warn(f"{type(self).__name__}: max_iter={p['max_iter']} reached before the optimization "
                          "converged; increase max_iter or learning_rate.", ConvergenceWarning, stacklevel=3)

    def _outputs(self, X: Any) -> NDArray:
        """Raw network outputs (float64) for validated X."""
        check_is_fitted(self, "network_")
        net = self.network_
        X = validate_data(self, X, reset=False, dtype=net.dtype, order="C")
        return np.asarray(net.forward(X, n_threads=self.n_threads), dtype=np.float64)

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


_PARAMS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(64, 64)
        Width of each hidden layer; ``()`` gives a linear model.
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "softplus", "identity"}, default="relu"
        Activation of the hidden layers.
    residual : bool, default=False
        If True, hidden layers after the first are :class:`sensinet.Residual` blocks (all widths equal).
    l2 : float, default=0.0
        Weight decay of every layer: adds ``l2 / 2 * ||W||^2`` per weight matrix to the objective.
    solver : {"adam", "sgd", "lbfgs", "hierarchical"}, default="adam"
        ``"hierarchical"`` needs the module ``sensinet.hierarchical`` and is an error without it.
    learning_rate : float, default=1e-3
        Step size of Adam / SGD.
    momentum : float, default=0.9
        Momentum of SGD, in [0, 1].
    batch_size : int, default=32
        Minibatch size (clipped to the number of training samples).
    max_iter : int, default=200
        Epochs (Adam / SGD) or iterations (L-BFGS).
    tol : float, default=1e-4
        Convergence tolerance. Without early stopping, Adam / SGD stop when the training loss has not
        improved by ``tol`` for ``n_iter_no_change`` epochs; with early stopping the same applies to the
        validation loss (and the best weights are restored). L-BFGS uses it as its gradient tolerance.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when its loss stops improving.
    validation_fraction : float, default=0.1
        Fraction of samples held out when ``early_stopping`` is True.
    n_iter_no_change : int, default=10
        Patience, in epochs (iterations for L-BFGS), of the stopping rules.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the minibatch shuffling and the validation split.
    warm_start : bool, default=False
        If True and the fitted network has the architecture this fit would build, continue training it
        (and the optimizer state: SGD momentum, Adam moments) instead of starting over.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the network.
    n_threads : int or None, default=None
        Threads of the engine's kernels (None: :func:`sensinet.get_num_threads`).
    verbose : bool, default=False
        Show a progress bar on stderr.
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        Where the network trains and predicts (see :meth:`sensinet.Network.to`); its parameters, optimizer
        state and data stay there between calls.
"""

_ATTRS_DOC = """
    network_ : sensinet.Network
        The trained network.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of str
        Feature names seen during fit (only when X had string column names).
    n_iter_ : int
        Epochs (iterations for L-BFGS) run, summed over warm-started fits.
    loss_curve_ : list of float
        Training objective per epoch / iteration, concatenated over warm-started fits.
    loss_ : float
        The last value of ``loss_curve_``.
    validation_loss_curve_ : list of float or None
        Validation objective per epoch of the last fit when ``early_stopping`` is True.
    history_ : sensinet.FitResult
        What the last fit did (status, epochs, steps, curves, time).
"""


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

    def fit(self, X: Any, y: Any) -> "SensiNetRegressor":
        """Fit the network to data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self : SensiNetRegressor

        Raises
        ------
        sensinet.DivergenceError
            When the loss becomes non-finite (a FloatingPointError).
        """
        p = self._check_params()
        X, y = validate_data(self, X, y, dtype=p["dtype"], order="C", multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        one_d = y.ndim == 1
        Y = y.reshape(-1, 1) if one_d else y
        reuse = self._reusable(p, X.shape[1], Y.shape[1], "mse")
        if reuse:  # the network learned in the first fit's target units: keep them
            mean, scale = self._y_mean, self._y_scale
        else:
            mean, scale = _target_scale(Y)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, by name
            T = np.ascontiguousarray((Y - mean) / scale, dtype=p["dtype"])
        require_finite(T, "standardized targets", f"{type(self).__name__}.fit", Y)
        self._train(p, X, T, "mse", reuse)
        # Set only after training succeeded, so a failed fit leaves a previous fit's state consistent.
        self._y_mean, self._y_scale = mean, scale
        self.n_outputs_ = Y.shape[1]
        self._y_1d = one_d
        return self

    def predict(self, X: Any) -> NDArray[np.float64]:
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets) like the ``y`` given to fit.

        Raises NonFiniteError when a prediction overflows float64 in the targets' units."""
        with np.errstate(over="ignore", invalid="ignore"):
            out = self._outputs(X) * self._y_scale + self._y_mean
        require_finite(out, "prediction", f"{type(self).__name__}.predict", X)
        return out.ravel() if self._y_1d else out


def _target_scale(Y: NDArray) -> tuple:
    """Per-column mean and standard deviation of Y, computed in units of the column's largest ``|value|`` so
    that targets near the float64 limit (1e300) do not overflow the variance."""
    big = np.max(np.abs(Y), axis=0)
    big = np.where(big > 0, big, 1.0)
    Z = Y / big
    mean, scale = Z.mean(axis=0) * big, Z.std(axis=0) * big
    # Constant targets have no scale: keep them in place instead of dividing by ~0.
    scale = np.where(scale > 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0), scale, 1.0)
    return mean, scale


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

    def fit(self, X: Any, y: Any) -> "SensiNetClassifier":
        """Fit the network to data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (at least two distinct ones).

        Returns
        -------
        self : SensiNetClassifier

        Raises
        ------
        sensinet.DivergenceError
            When the loss becomes non-finite (a FloatingPointError).
        """
        p = self._check_params()
        X, y = validate_data(self, X, y, dtype=p["dtype"], order="C")
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(f"y: {type(self).__name__} needs samples of at least 2 classes, but the data "
                             f"contains only one class: {classes[0]!r}")
        k = classes.shape[0]
        loss, n_outputs = ("binary_cross_entropy", 1) if k == 2 else ("cross_entropy", k)
        reuse = (self._reusable(p, X.shape[1], n_outputs, loss)
                 and np.array_equal(getattr(self, "classes_", None), classes))
        if k == 2:
            T = labels.reshape(-1, 1).astype(p["dtype"])
        else:
            T = np.zeros((labels.shape[0], k), dtype=p["dtype"])
            T[np.arange(labels.shape[0]), labels] = 1
        self._train(p, X, T, loss, reuse)
        self.classes_ = classes
        return self

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


SensiNetRegressor.__doc__ = SensiNetRegressor.__doc__.format(params=_PARAMS_DOC, attrs=_ATTRS_DOC)  # type: ignore
SensiNetClassifier.__doc__ = SensiNetClassifier.__doc__.format(params=_PARAMS_DOC, attrs=_ATTRS_DOC)  # type: ignore
