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
import warnings
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sensinet's scikit-learn estimators need scikit-learn >= 1.6 "
                      f"(pip install 'scikit-learn>=1.6'): {exc}") from exc

from ._config import resolve_threads
from ._early_stopping import Patience
from ._estimator_data import held_out, held_out_score, target_scale
from ._estimator_docs import ATTRS_DOC, PARAMS_DOC
from ._estimator_params import SOLVERS, batch_for, check_params, weight_decay
from ._estimator_training import fit_scheduled, with_weight_decay
from ._validation import sample_weights
from .layers import Dense, Layer, Residual
from .losses import log_sigmoid, log_softmax
from .errors import DivergenceError, require_finite
from .network import Network
from .optimizers import LBFGS, SGD, Adam

__all__ = ["SensiNetClassifier", "SensiNetRegressor"]

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


class _BaseSensiNet(BaseEstimator):
    """Parameters, validation, network construction and training shared by the two estimators."""

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *, solver: str = "adam",
                 alpha: float = 1e-4, batch_size: Any = "auto", learning_rate: Any = "constant",
                 learning_rate_init: float = 1e-3, power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: Any = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, max_fun: int = 15000, residual: bool = False,
                 l2: float = 0.0, dtype: Any = None, n_threads: Optional[int] = None, device: str = "cpu") -> None:
        # scikit-learn rule: store the parameters unchanged, validate them in fit.
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.residual = residual
        self.l2 = l2
        self.dtype = dtype
        self.n_threads = n_threads
        self.device = device

    # ------------------------------------------------------------------------------------------ validation
    def _check_params(self) -> dict:
        """All parameters checked and normalised; errors are ValueErrors that name the parameter."""
        return check_params(self, _hierarchical_optimizer_class() is not None)

    # ------------------------------------------------------------------------------------------ building
    def _layers(self, p: dict, n_outputs: int, l2: float = 0.0) -> list:
        act = p["activation"]
        layers: list[Layer] = []
        for i, width in enumerate(p["sizes"]):
            if p["residual"] and i > 0:
                layers.append(Residual(width, act, l2=l2))
            else:
                layers.append(Dense(width, act, l2=l2))
        layers.append(Dense(n_outputs, "identity", l2=l2))  # linear head: values or logits
        return layers

    def _builds(self, p: dict, net: Network) -> bool:
        """Whether ``net`` has the layers this estimator builds, whatever their weight decay (which follows the
        data through alpha). Compared as engine specs, so a network read from a model file compares equal."""
        width, specs = net.n_inputs, []
        for layer in self._layers(p, net.n_outputs):
            specs.append(tuple(layer.spec(width))[:6])
            width = layer.width
        return [tuple(s)[:6] for s in net.specs] == specs

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
            if not isinstance(prev, Adam):
                return Adam(p["learning_rate"], p["beta_1"], p["beta_2"], p["epsilon"])
            prev.lr, prev.beta1, prev.beta2, prev.eps = p["learning_rate"], p["beta_1"], p["beta_2"], p["epsilon"]
            return prev
        if self.solver == "sgd":
            nesterov = p["nesterov"] and p["momentum"] > 0
            if not isinstance(prev, SGD):
                return SGD(p["learning_rate"], p["momentum"], nesterov)
            prev.lr, prev.momentum, prev.nesterov = p["learning_rate"], p["momentum"], nesterov
            return prev
        if self.solver == "lbfgs":
            # Like scikit-learn's MLP: tol is L-BFGS's gradient tolerance, max_fun its evaluation limit; each fit
            # starts a fresh history.
            return LBFGS(max_iter=p["max_iter"], gtol=p["tol"], max_evals=p["max_fun"])
        cls = _hierarchical_optimizer_class()
        if prev is not None and cls is not None and isinstance(prev, cls):
            return prev
        return cls(lr=p["learning_rate"])  # type: ignore[misc]  # None excluded by _check_params

    @property
    def n_layers_(self) -> int:
        """Number of layers as scikit-learn's MLP counts them: input, hidden layers, output."""
        check_is_fitted(self, "network_")
        return len(self._check_params()["sizes"]) + 2

    @property
    def n_outputs_(self) -> int:
        """Number of outputs of the network (targets; 1 for two classes; classes or labels otherwise)."""
        check_is_fitted(self, "network_")
        return int(self.network_.n_outputs)

    # ------------------------------------------------------------------------------------------ training
    def _train(self, p: dict, X: NDArray, T: NDArray, loss: str, reuse: bool, strata: Optional[NDArray] = None,
               partial: bool = False, sample_weight: Any = None) -> None:
        """Build (or reuse) the network, train it on engine-ready targets T and record the fitted attributes.
        ``strata``: class labels, to split the early-stopping set stratified; ``partial``: one epoch, no
        stopping rule (partial_fit)."""
        n = X.shape[0]
        if partial:
            p = dict(p, max_iter=1, early_stopping=False, schedule="constant")
        w = None
        if sample_weight is not None:
            if self.solver == "hierarchical":
                raise ValueError("sample_weight: solver='hierarchical' does not weight samples; use 'adam', 'sgd' "
                                 "or 'lbfgs'")
            w = sample_weights(sample_weight, n, p["dtype"])
        rng = check_random_state(self.random_state)
        # Always draw the same number of seeds in the same order, so results depend on random_state only.
        init_seed, shuffle_seed = (int(s) for s in rng.randint(_SEED_BOUND, size=2))
        seen = getattr(self, "t_", 0) if reuse else 0  # estimators pickled by sensinet 0.1 have no t_
        if partial and reuse:  # each partial_fit epoch its own shuffle, still fixed by random_state
            shuffle_seed = (shuffle_seed + seen) % _SEED_BOUND
        threads = resolve_threads(self.n_threads)

        X_fit, T_fit, val = X, T, None
        if p["early_stopping"]:
            n_val = int(np.ceil(p["validation_fraction"] * n))
            if n < 2 or n - n_val < 1:
                raise ValueError(f"early_stopping: needs at least 2 samples to split off a validation set "
                                 f"(validation_fraction={self.validation_fraction}), got n_samples={n}")
            v, tr = held_out(n, n_val, rng, strata)
            X_fit, T_fit, val = X[tr], T[tr], (X[v], T[v])
            if w is not None:
                w = w[tr] if w[tr].sum() > 0 else None
                if w is None:
                    raise ValueError("sample_weight: every training sample left after the validation split has "
                                     "weight 0")
        n_fit = X_fit.shape[0]
        l2 = weight_decay(p, loss, n_fit, self.solver)
        if not reuse:
            net = Network(X.shape[1], self._layers(p, T.shape[1], l2), loss=loss, dtype=p["dtype"], seed=init_seed,
                          device=p["device"])
        else:
            net = with_weight_decay(self.network_, l2)
        opt = self._optimizer(p, reuse)
        kwargs: dict = dict(epochs=p["max_iter"], shuffle=p["shuffle"], seed=shuffle_seed,
                            progress=bool(self.verbose), n_threads=threads, batch_size=batch_for(p, n_fit))
        if w is not None:
            kwargs["sample_weight"] = w
        try:
            if self.solver == "sgd" and p["schedule"] != "constant":
                hist, scores = fit_scheduled(net, opt, X_fit, T_fit, val, p, kwargs, seen)
            else:
                hist, scores = self._fit_engine(net, opt, X_fit, T_fit, val, p, kwargs, loss, partial)
        except DivergenceError as exc:
            raise DivergenceError(
                f"{type(self).__name__}.fit: training diverged (non-finite loss) with solver={self.solver!r}, "
                f"learning_rate_init={p['learning_rate']!r}. Lower learning_rate_init, raise alpha, or standardize "
                f"X. ({exc})") from exc

        # scikit-learn's MLP: n_iter_ is this call's epochs; t_ (samples seen) and loss_curve_ go on with warm_start
        self.n_iter_ = int(hist.epochs)
        self.t_ = seen + (int(hist.epochs) * n_fit if self.solver != "lbfgs" else 0)
        self.loss_curve_ = (self.loss_curve_ if reuse else []) + list(hist.loss_curve)
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
        converged = hist.status in ("early_stopped", "gtol", "ftol", "stopped")
        if not converged and hist.status in ("completed", "max_iter") and hist.epochs >= p["max_iter"]:
            warnings.warn(f"{type(self).__name__}: max_iter={p['max_iter']} reached before the optimization "
                          "converged; increase max_iter or learning_rate_init.", ConvergenceWarning, stacklevel=3)

    def _fit_engine(self, net: Network, opt: Any, X: NDArray, T: NDArray, val: Optional[tuple], p: dict,
                    kwargs: dict, loss: str, partial: bool) -> tuple:
        """One engine call for all epochs: the engine evaluates the validation objective at every epoch end (every
        outer iteration for the hierarchical solver) and the Patience rule stops and restores the best weights;
        without early stopping, the same rule on the training loss stops Adam / SGD."""
        scores: list = []
        threads = kwargs["n_threads"]
        if val is not None:
            kwargs.update(validation_data=val, patience=p["n_iter_no_change"] + 1, tol=p["tol"])  # MLP's count

            def score_epoch(info: dict) -> bool:  # scikit-learn's validation_scores_: R^2 or accuracy per epoch
                if info.get("epoch_end"):
                    scores.append(held_out_score(loss, net.forward(val[0], n_threads=threads), val[1]))
                return False

            kwargs["callback"] = score_epoch
        elif self.solver in ("adam", "sgd") and not partial:
            stopper = Patience(p["n_iter_no_change"] + 1, p["tol"])  # MLP stops after more than n_iter_no_change
            kwargs["callback"] = lambda info: bool(info.get("epoch_end")) and stopper.update(info["loss"])
        if self.solver == "hierarchical":
            opt.fit(net, X, T, **kwargs)
        else:
            net.fit(X, T, optimizer=opt, **kwargs)
        return net.history_, scores

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
        if "classes_" in state:
            state.setdefault("_multilabel", False)  # pickled by sensinet 0.1, which had no multilabel y
        opt = state.get("_solver_state")
        for name in ("state_m", "state_v"):
            arr = getattr(opt, name, None)
            if isinstance(arr, np.ndarray):
                # A fresh writable copy with numpy's canonical dtype object: a memory-mapped load is read-only,
                # and the engine's binding compares dtype objects by identity, which an unpickled dtype fails.
                setattr(opt, name, arr.astype(arr.dtype.type))
        super().__setstate__(state)


class SensiNetRegressor(RegressorMixin, _BaseSensiNet):
    """Dense neural network regressor trained by the sensinet C++ engine (mean squared error).

    The targets are standardized internally (per output: subtract the mean, divide by the standard
    deviation) and predictions are mapped back. This makes the learning rate, ``tol`` and ``l2`` independent
    of the scale of ``y``; the features ``X`` are used as given (standardize them, e.g. with a
    ``StandardScaler`` in a pipeline). Multi-output ``y`` of shape (n_samples, n_targets) is supported.
    {params}
    Attributes
    ----------{attrs}
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
        self._y_1d = one_d
        return self

    @property
    def out_activation_(self) -> str:
        """The output activation as scikit-learn's MLP names it: ``"identity"``."""
        check_is_fitted(self, "network_")
        return "identity"

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
        tags.classifier_tags.multi_label = True
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
        shape = np.asarray(y).shape  # through __array__, as validate_data reads it
        multilabel = len(shape) == 2 and shape[1] > 1
        X, y = validate_data(self, X, y, dtype=p["dtype"] or _FLOATS, order="C", reset=first, multi_output=multilabel)
        p["dtype"] = X.dtype.type if first else self.network_.dtype
        if not first and multilabel != self._multilabel:
            raise ValueError(f"y: partial_fit needs the kind of y of the first call ("
                             f"{'a multilabel indicator matrix' if self._multilabel else 'one label per sample'})")
        if multilabel:
            T, labels, classes, loss = self._multilabel_targets(y, p, first)
        else:
            T, labels, classes, loss = self._class_targets(y, classes, p, first)
        reuse = not first or (self._reusable(p, X.shape[1], T.shape[1], loss)
                              and np.array_equal(getattr(self, "classes_", None), classes)
                              and getattr(self, "_multilabel", False) == multilabel)
        self._train(p, X, T, loss, reuse, strata=labels, partial=partial, sample_weight=sample_weight)
        self.classes_ = classes
        self._multilabel = multilabel
        return self

    def _class_targets(self, y: NDArray, classes: Any, p: dict, first: bool) -> tuple:
        """Engine targets of one label per sample: (T, label indices, classes, loss)."""
        check_classification_targets(y)
        if not first:
            known = self.classes_
            if classes is not None and not np.array_equal(np.unique(classes), known):
                raise ValueError(f"classes: expected the classes of the first call {list(known)}, got "
                                 f"{list(np.unique(classes))}")
            classes = known
        else:
            classes = np.unique(y if classes is None else classes)
        unseen = np.setdiff1d(np.unique(y), classes)
        if unseen.size:
            raise ValueError(f"y: labels {list(unseen)} are not among classes {list(classes)}")
        labels = np.searchsorted(classes, y)
        if classes.shape[0] < 2:
            raise ValueError(f"y: {type(self).__name__} needs samples of at least 2 classes, but the data "
                             f"contains only one class: {classes[0]!r}")
        k = classes.shape[0]
        if k == 2:
            return labels.reshape(-1, 1).astype(p["dtype"]), labels, classes, "binary_cross_entropy"
        T = np.zeros((labels.shape[0], k), dtype=p["dtype"])
        T[np.arange(labels.shape[0]), labels] = 1
        return T, labels, classes, "cross_entropy"

    def _multilabel_targets(self, y: NDArray, p: dict, first: bool) -> tuple:
        """Engine targets of a multilabel indicator matrix: one sigmoid output per label (as MLP)."""
        if type_of_target(y) != "multilabel-indicator":
            raise ValueError(f"y: a 2-D y must be a multilabel indicator matrix (0 or 1 per label), got "
                             f"{type_of_target(y)!r} targets of shape {np.shape(y)}")
        k = y.shape[1]
        if not first and k != self.classes_.shape[0]:
            raise ValueError(f"y: partial_fit needs the {self.classes_.shape[0]} labels of the first call, got {k}")
        return np.ascontiguousarray(y, dtype=p["dtype"]), None, np.arange(k), "binary_cross_entropy"

    @property
    def out_activation_(self) -> str:
        """The output activation as scikit-learn's MLP names it: ``"logistic"`` (two classes, or multilabel) or
        ``"softmax"``."""
        check_is_fitted(self, "network_")
        return "softmax" if self.network_.loss == "cross_entropy" else "logistic"

    def __sensinet_predict_map__(self) -> dict:
        """How ``predict_proba`` maps the network's outputs (for exporters such as :func:`sensinet.to_onnx`)."""
        check_is_fitted(self, "network_")
        return {"kind": "proba"}

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """Class probabilities, shape (n_samples, n_classes), columns in the order of ``classes_``; for
        multilabel ``y``, the probability of each label, shape (n_samples, n_labels). Computed stably from
        the logits (a probability below the smallest float underflows to 0)."""
        z = self._outputs(X)
        if self._multilabel:
            return np.exp(log_sigmoid(z))
        if z.shape[1] == 1:
            return np.exp(np.column_stack([log_sigmoid(-z[:, 0]), log_sigmoid(z[:, 0])]))
        return np.exp(log_softmax(z))

    def predict_log_proba(self, X: Any) -> NDArray[np.float64]:
        """``log(predict_proba(X))``, as scikit-learn's MLP defines it: ``-inf`` where a probability underflows
        to 0 (the network's logits, ``network_.forward``, keep the finite values)."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> NDArray:
        """Most probable class label per sample; for multilabel ``y``, the indicator matrix of the labels whose
        probability exceeds 1/2."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before classes_ is looked up
        if self._multilabel:
            return (proba > 0.5).astype(int)
        return self.classes_[np.argmax(proba, axis=1)]


SensiNetRegressor.__doc__ = SensiNetRegressor.__doc__.format(params=PARAMS_DOC, attrs=ATTRS_DOC)  # type: ignore
SensiNetClassifier.__doc__ = SensiNetClassifier.__doc__.format(params=PARAMS_DOC, attrs=ATTRS_DOC)  # type: ignore
