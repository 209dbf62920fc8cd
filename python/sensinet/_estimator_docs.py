"""The parameter and attribute sections shared by the docstrings of SensiNetRegressor and SensiNetClassifier."""

PARAMS_DOC = """
    Parameters
    ----------
    The names, values and defaults are scikit-learn's ``MLPRegressor`` / ``MLPClassifier``'s, so code written
    for them runs unchanged; sensinet's own parameters follow (``residual``, ``l2``, ``dtype``, ``n_threads``,
    ``device``, and the solver ``"hierarchical"``). Everything after ``activation`` is keyword-only.

    hidden_layer_sizes : int or sequence of int, default=(100,)
        Width of each hidden layer; ``()`` gives a linear model.
    activation : {"relu", "logistic", "tanh", "identity", "sigmoid", "leaky_relu", "softplus"}, default="relu"
        Activation of the hidden layers (``"logistic"`` is scikit-learn's name for ``"sigmoid"``).
    solver : {"adam", "sgd", "lbfgs", "hierarchical"}, default="adam"
        ``"hierarchical"`` is the hierarchical multi-scale optimizer (:class:`sensinet.HierarchicalOptimizer`);
        it does not weight samples.
    alpha : float, default=1e-4
        L2 penalty, scaled as scikit-learn's MLP scales it: ``alpha / (2 B) * ||W||^2`` on every weight matrix
        per step of B samples (B = n_samples for L-BFGS), relative to half the squared error of the
        standardized targets (regressor) or to the log loss (classifier).
    batch_size : int or "auto", default="auto"
        Minibatch size (``"auto"``: ``min(200, n_samples)``; clipped to the number of training samples).
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        scikit-learn's step-size schedule for ``solver="sgd"`` (``invscaling``: ``learning_rate_init / (t +
        1) ** power_t`` after each epoch, t the samples seen; ``adaptive``: divided by 5 whenever the
        stopping rule would stop, until it is 1e-6). A number is
        sensinet 0.1's spelling of ``learning_rate_init`` (deprecated: a FutureWarning says so).
    learning_rate_init : float, default=1e-3
        Step size of Adam / SGD (and the hierarchical solver's inner optimizer).
    power_t : float, default=0.5
        Exponent of the ``"invscaling"`` schedule.
    max_iter : int, default=200
        Epochs (Adam / SGD; the work budget in full-gradient epochs for the hierarchical solver) or iterations
        (L-BFGS).
    shuffle : bool, default=True
        Shuffle the samples every epoch (seeded by ``random_state``).
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the minibatch shuffling and the validation split.
    tol : float, default=1e-4
        Convergence tolerance. Without early stopping, Adam / SGD stop when the training loss has not
        improved by ``tol`` for more than ``n_iter_no_change`` epochs (scikit-learn's count); with early
        stopping the same applies to the
        validation loss (and the best weights are restored). L-BFGS uses it as its gradient tolerance.
    verbose : bool or int, default=False
        Show a progress bar on stderr.
    warm_start : bool, default=False
        If True and the fitted network has the architecture this fit would build, continue training it
        (and the optimizer state: SGD momentum, Adam moments) instead of starting over.
    momentum : float, default=0.9
        Momentum of SGD, in [0, 1].
    nesterovs_momentum : bool, default=True
        Nesterov momentum for SGD (when ``momentum > 0``).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when its loss stops improving.
    validation_fraction : float, default=0.1
        Fraction of samples held out when ``early_stopping`` is True.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decays, in [0, 1).
    epsilon : float, default=1e-8
        Adam's denominator offset.
    n_iter_no_change : int, default=10
        Patience, in epochs (iterations for L-BFGS), of the stopping rules.
    max_fun : int, default=15000
        L-BFGS's limit on evaluations of the objective (line-search trials included).
    residual : bool, default=False
        If True, hidden layers after the first are :class:`sensinet.Residual` blocks (all widths equal).
    l2 : float, default=0.0
        An absolute weight decay added to alpha's: ``l2 / 2 * ||W||^2`` per weight matrix on the objective.
    dtype : {None, "float64", "float32"}, default=None
        Precision of the network; None follows the input (float32 X trains and predicts in float32, any other
        in float64).
    n_threads : int or None, default=None
        Threads of the engine's kernels (None: :func:`sensinet.get_num_threads`).
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
        Epochs (iterations for L-BFGS) the last ``fit`` or ``partial_fit`` ran, as in scikit-learn.
    t_ : int
        Training samples seen by the solver over all fits (Adam / SGD / hierarchical; 0 for L-BFGS, as in
        scikit-learn).
    n_layers_ : int
        Layers as scikit-learn counts them: input, hidden layers, output.
    n_outputs_ : int
        Outputs of the network.
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
