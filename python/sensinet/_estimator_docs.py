"""The parameter and attribute sections shared by the docstrings of SensiNetRegressor and SensiNetClassifier."""

PARAMS_DOC = """
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
    dtype : {None, "float64", "float32"}, default=None
        Precision of the network; None follows the input (float32 X trains and predicts in float32, any other
        in float64).
    n_threads : int or None, default=None
        Threads of the engine's kernels (None: :func:`sensinet.get_num_threads`).
    verbose : bool, default=False
        Show a progress bar on stderr.
    device : {"cpu", "cuda", "cuda:N"}, default="cpu"
        Where the network trains and predicts (see :meth:`sensinet.Network.to`); its parameters, optimizer
        state and data stay there between calls.
"""

ATTRS_DOC = """
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
    validation_scores_ : list of float or None
        Score (R^2, or accuracy) of the held-out set per epoch when ``early_stopping`` is True; the held-out set
        of a classifier is stratified by class.
    best_validation_score_ : float or None
        The best of ``validation_scores_``.
    best_loss_ : float or None
        The smallest training loss when ``early_stopping`` is False (None otherwise), as in scikit-learn.
    coefs_, intercepts_ : list of ndarray
        Weight matrices (n_in, n_out) and bias vectors per layer: views of the network's parameters.
    history_ : sensinet.FitResult
        What the last fit did (status, epochs, steps, curves, time).
"""
