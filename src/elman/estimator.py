"""``RNNRegressor``: an Elman RNN behind scikit-learn's estimator interface.

scikit-learn is not needed to use it: the module follows scikit-learn's conventions
on its own (constructor arguments stored as given, ``get_params`` / ``set_params``,
``fit(X, y)`` returning self, ``predict``, ``score`` as R², fitted attributes ending
in ``_``, ``random_state``). When scikit-learn is installed, the class also derives
from ``sklearn.base.RegressorMixin`` and ``BaseEstimator``, so ``clone``,
``Pipeline``, ``cross_val_score``, ``GridSearchCV`` (with ``n_jobs``) and the HTML
repr work as with any scikit-learn regressor.

The shape of X
--------------
An RNN reads sequences, ``(n_samples, window, n_features)``. scikit-learn's
transformers (``StandardScaler``, ...) and its input checks want 2-D tables. Both
are accepted:

* 3-D ``X`` of shape (n_samples, window, n_features) is used as it is. Model
  selection (``cross_val_score``, ``GridSearchCV``) indexes rows only, so it works
  with 3-D arrays too; ``Pipeline`` steps that need 2-D input do not.
* 2-D ``X`` of shape (n_samples, window * n_features) is each sample's window
  flattened time-major, ``X3d.reshape(n_samples, -1)``: the columns are
  ``x[t=0, f=0], x[t=0, f=1], ..., x[t=1, f=0], ...``. Pass ``window=`` to say how
  many time steps the columns hold; with ``window=None`` every column is one time
  step of a single feature (lagged values of one series, oldest first). This is
  the form to use inside a ``Pipeline`` with scikit-learn transformers.

Targets are one value (or one vector) per sample, predicted after the last step of
its window (many-to-one): ``y`` of shape (n_samples,) or (n_samples, n_outputs). For
a target at every step (many-to-many), use :class:`elman.RNN` directly.

Time series are not exchangeable: use ``sklearn.model_selection.TimeSeriesSplit``
rather than shuffled folds to cross-validate a forecaster, and note that the
validation set for ``early_stopping`` is the *last* ``validation_fraction`` of the
samples, in the order given, never a random draw.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any, Literal, Self, overload

import numpy as np

from elman._typing import ArrayLike, DTypeLike, FloatArray
from elman._validation import check_bool, check_dtype, check_float, check_int
from elman.preprocessing import NotFittedError as _ElmanNotFittedError
from elman.preprocessing import StandardScaler

try:  # scikit-learn is optional: with it, the estimator is a proper sklearn regressor.
    from sklearn.base import BaseEstimator as _SklearnBaseEstimator
    from sklearn.base import RegressorMixin as _SklearnRegressorMixin
    from sklearn.exceptions import NotFittedError as _SklearnNotFittedError
except ImportError:
    _SklearnBaseEstimator = _SklearnRegressorMixin = _SklearnNotFittedError = None

SKLEARN_AVAILABLE = _SklearnBaseEstimator is not None

if SKLEARN_AVAILABLE:
    class NotFittedError(_ElmanNotFittedError, _SklearnNotFittedError):
        """Used before fit: elman's NotFittedError and scikit-learn's, both at once."""
else:
    NotFittedError = _ElmanNotFittedError

__all__ = ["RNNRegressor", "SKLEARN_AVAILABLE"]

# The losses of elman.RNN that fit a real-valued target.
_REGRESSION_LOSSES = ("mse", "mae", "huber", "gaussian_nll")


class _EstimatorBase:
    """get_params / set_params / repr following scikit-learn, for when it is absent."""

    _estimator_type = "regressor"

    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(name for name, p in signature.parameters.items()
                      if name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments, by name (as scikit-learn's ``BaseEstimator``)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor arguments by name; returns self. Unknown names: ValueError."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}(). "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {name: p.default for name, p in
                    inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if not _same(value, defaults.get(name))]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return a is b


_BASES = ((_SklearnRegressorMixin, _SklearnBaseEstimator) if SKLEARN_AVAILABLE
          else (_EstimatorBase,))


def _seeds(random_state):
    """Two integer seeds (initial weights, shuffling) from a random_state."""
    top = 2**31 - 1
    if random_state is None:
        return [int(s) for s in np.random.default_rng().integers(0, top, size=2)]
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be None, an integer >= 0, a "
                             f"numpy.random.RandomState or Generator; got {random_state}")
        return [int(s) % top for s in
                np.random.SeedSequence(int(random_state)).generate_state(2)]
    if isinstance(random_state, np.random.RandomState):
        return [int(s) for s in random_state.randint(0, top, size=2)]
    if isinstance(random_state, np.random.Generator):
        return [int(s) for s in random_state.integers(0, top, size=2)]
    raise ValueError(f"random_state must be None, an integer >= 0, a numpy.random."
                     f"RandomState or Generator; got {random_state!r}")


def _as_float(name, value):
    """array_like -> float64 ndarray, with scikit-learn's messages for its checks."""
    if hasattr(value, "toarray") or type(value).__module__.startswith("scipy.sparse"):
        raise TypeError(f"RNNRegressor does not accept sparse {name}; pass a dense array "
                        f"(e.g. {name}.toarray())")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers with a regular shape ({exc})") \
            from None
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported; {name} has dtype {array.dtype}")
    if array.dtype.kind not in "biuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            # Keep NumPy's exception type: TypeError for objects float() does not take,
            # ValueError for strings that are not numbers (as scikit-learn's check_array).
            raise type(exc)(f"{name} must hold numbers; got dtype {array.dtype} ({exc})") \
                from None
    return array.astype(np.float64, copy=False)


class RNNRegressor(*_BASES):
    """An Elman RNN regressor with scikit-learn's interface (many-to-one).

    Each sample is a window of a sequence; the prediction is the network's output
    after the window's last step. See the module docstring for the shapes of ``X``.

    Parameters
    ----------
    hidden_size : int, default 16
        Units per recurrent layer.
    num_layers : int, default 1
        Stacked recurrent layers.
    window : int or None, default None
        Time steps per sample when ``X`` is 2-D: its columns are ``window`` steps of
        ``n_columns // window`` features, time-major. None: one feature, each column
        a step. Ignored for 3-D ``X``, whose second axis is the time axis.
    epochs : int, default 50
        Passes over the training data (fewer with early stopping).
    batch_size : int, default 32
        Samples per update.
    optimizer : {"adam", "sgd", "momentum"}, default "adam"
    lr : float, default 0.001
        Learning rate.
    clip_norm : float or None, default None
        Clip the gradient to this global L2 norm.
    early_stopping : bool, default False
        Hold out the last ``validation_fraction`` of the samples (in the order
        given: for a time series, the latest ones), stop when their loss has not
        improved for ``patience`` epochs, and keep the best epoch's weights.
    validation_fraction : float, default 0.1
        Share of the samples held out for early stopping.
    patience : int, default 5
        Epochs without improvement before early stopping ends training.
    scale_target : bool, default True
        Standardise ``y`` (with its training mean and standard deviation) for
        training and map predictions back, so targets far from zero (temperatures in
        °F, prices) train as well as scaled ones. ``X`` is never scaled here: put a
        ``StandardScaler`` in front in a ``Pipeline`` (2-D ``X``) or scale it first.
    init : {"uniform", "normal", "orthogonal", "identity"}, default "uniform"
        Weight initialisation, as :class:`elman.RNN`.
    loss : {"mse", "mae", "huber", "gaussian_nll"}, default "mse"
        The training loss, as :class:`elman.RNN` defines it (on the standardised
        target when ``scale_target``). ``gaussian_nll`` gives the network a mean and
        a log-variance per output; :meth:`predict` returns the means, and with
        ``return_std=True`` the standard deviations too. (``cross_entropy`` is for
        classes: use :class:`elman.RNN` with it.)
    dtype : {"float64", "float32"}, default "float64"
    random_state : int, numpy.random.RandomState, numpy.random.Generator or None
        Seeds the initial weights and the shuffling. An int gives the same model on
        every call (and on every machine, for a given backend).
    verbose : {0, 1, 2}, default 0
        Progress output of :meth:`elman.RNN.fit`.

    Attributes
    ----------
    model_ : elman.RNN
        The trained network (``return_sequences=False``).
    history_ : elman.training.History
        Losses per epoch (on the standardised target when ``scale_target``).
    loss_curve_ : list of float
        ``history_.loss``.
    validation_loss_curve_ : list of float
        ``history_.val_loss`` (empty without early stopping).
    n_iter_ : int
        Epochs run.
    n_features_in_ : int
        Columns of a 2-D ``X``, or features per step of a 3-D ``X``, seen in fit.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame with string column names.
    window_ : int
        Time steps per sample seen in fit.
    input_size_ : int
        Features per time step (the network's input size).
    n_outputs_ : int
        Outputs per sample.
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        The target's standardisation (zeros and ones without ``scale_target``).

    Examples
    --------
    >>> import numpy as np
    >>> from elman import RNNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5, 2))                 # 200 windows, 5 steps, 2 features
    >>> y = X[:, -3:, 0].sum(axis=1)                     # (200,)
    >>> reg = RNNRegressor(hidden_size=8, epochs=30, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    def __init__(self, *, hidden_size: int = 16, num_layers: int = 1, window: int | None = None,
                 epochs: int = 50, batch_size: int = 32, optimizer: str = "adam",
                 lr: float = 0.001, clip_norm: float | None = None,
                 early_stopping: bool = False, validation_fraction: float = 0.1,
                 patience: int = 5, scale_target: bool = True, init: str = "uniform",
                 loss: str = "mse", dtype: DTypeLike = "float64",
                 random_state: int | np.random.RandomState | np.random.Generator | None = None,
                 verbose: int = 0) -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.window = window
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.scale_target = scale_target
        self.init = init
        self.loss = loss
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        # scikit-learn >= 1.6. Only called by scikit-learn, whose base class is then ours.
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        # A small RNN with 50 epochs of Adam is not meant to reach R^2 > 0.5 on the
        # random regression problems of sklearn's check_regressors_train.
        tags.regressor_tags.poor_score = True
        tags.input_tags.allow_nan = False
        return tags

    def _more_tags(self):
        # scikit-learn < 1.6.
        return {"multioutput": True, "poor_score": True, "allow_nan": False}

    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    # ------------------------------------------------------------ validation
    def _sequences(self, X, *, fitting):
        """X as (n, window, input_size) float64, checking it against what fit saw."""
        names = None
        columns = getattr(X, "columns", None)
        if columns is not None and getattr(X, "ndim", 2) == 2:
            columns = list(columns)
            if columns and all(isinstance(c, str) for c in columns):
                names = np.asarray(columns, dtype=object)
        array = _as_float("X", X)
        if array.ndim not in (2, 3):
            if array.ndim == 1:
                raise ValueError(
                    "Expected a 2-D array (n_samples, window * n_features) or a 3-D array "
                    "(n_samples, window, n_features), got a 1-D array instead. Reshape your "
                    "data either using array.reshape(-1, 1) if your data has a single "
                    "feature or array.reshape(1, -1) if it contains a single sample."
                )
            raise ValueError(
                f"X must be 2-D (n_samples, window * n_features) or 3-D (n_samples, window, "
                f"n_features); got {array.ndim} dimensions, shape {array.shape}"
            )
        n = array.shape[0]
        if n == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape={array.shape}) while a "
                             f"minimum of 1 is required by RNNRegressor.")
        if 0 in array.shape[1:]:
            raise ValueError(f"Found array with 0 feature(s) (shape={array.shape}) while a "
                             f"minimum of 1 is required by RNNRegressor.")
        if not np.isfinite(array).all():
            raise ValueError("Input X contains NaN or infinity; RNNRegressor needs finite "
                             "values (impute or drop them first).")
        n_features = array.shape[1] if array.ndim == 2 else array.shape[2]
        if not fitting:
            self._check_names(names)
            if array.ndim != self._fitted_ndim:
                raise ValueError(
                    f"X has {array.ndim} dimensions, but RNNRegressor was fitted on "
                    f"{self._fitted_ndim}-D X; pass X of the same form"
                )
            if n_features != self.n_features_in_:
                raise ValueError(
                    f"X has {n_features} features, but RNNRegressor is expecting "
                    f"{self.n_features_in_} features as input."
                )
        fit_info = {"n_features_in_": n_features, "ndim": array.ndim, "names": names}
        if array.ndim == 3:
            return np.ascontiguousarray(array), fit_info
        if fitting:
            window = None if self.window is None else check_int("window", self.window, 1)
        else:
            window = self._fitted_window
        if window is None:
            window = array.shape[1]  # one feature, each column a time step
        elif array.shape[1] % window:
            raise ValueError(
                f"X has {array.shape[1]} columns, which window={window} does not divide: "
                f"a 2-D X holds window * n_features columns (time-major)"
            )
        fit_info["window"] = None if fitting and self.window is None else window
        return np.ascontiguousarray(array.reshape(n, window, -1)), fit_info

    def _check_names(self, names):
        import warnings

        fitted = getattr(self, "feature_names_in_", None)
        if fitted is None and names is None:
            return
        if fitted is None:
            warnings.warn("X has feature names, but RNNRegressor was fitted without "
                          "feature names", UserWarning, stacklevel=3)
            return
        if names is None:
            warnings.warn("X does not have valid feature names, but RNNRegressor was "
                          "fitted with feature names", UserWarning, stacklevel=3)
            return
        if len(names) != len(fitted) or np.any(names != fitted):
            raise ValueError(
                "The feature names should match those that were passed during fit. "
                f"Fitted with {list(fitted)}; got {list(names)}."
            )

    def _targets(self, y, n):
        if y is None:
            raise ValueError("RNNRegressor requires y to be passed, but the target y is None")
        array = _as_float("y", y)
        if array.ndim == 1:
            array = array[:, None]
            one_d = True
        elif array.ndim == 2:
            one_d = False
        else:
            raise ValueError(f"y must be 1-D (n_samples,) or 2-D (n_samples, n_outputs); got "
                             f"shape {array.shape}")
        if array.shape[0] != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{n}, {array.shape[0]}]")
        if array.shape[1] == 0:
            raise ValueError("y has 0 outputs (shape (n, 0)); at least one is required")
        if not np.isfinite(array).all():
            raise ValueError("Input y contains NaN or infinity.")
        return array, one_d

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                f"appropriate arguments before using this estimator."
            )

    # ------------------------------------------------------------------ API
    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Train a new network on windows ``X`` and targets ``y``.

        Parameters
        ----------
        X : array_like, shape (n_samples, window, n_features) or (n_samples, window *
            n_features)
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self
        """
        from elman.rnn import RNN

        Xs, fit_info = self._sequences(X, fitting=True)
        Y, one_d = self._targets(y, Xs.shape[0])
        n = Xs.shape[0]
        epochs = check_int("epochs", self.epochs, 0)
        batch_size = check_int("batch_size", self.batch_size, 1)
        lr = check_float("lr", self.lr, 0.0, strict=True)
        dtype = check_dtype(self.dtype)
        if not isinstance(self.loss, str) or self.loss not in _REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {_REGRESSION_LOSSES}; got {self.loss!r}"
                             + (" (for classes use elman.RNN(..., loss='cross_entropy'))"
                                if self.loss == "cross_entropy" else ""))
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise TypeError(f"early_stopping must be True or False; got "
                            f"{self.early_stopping!r}")
        if not isinstance(self.scale_target, (bool, np.bool_)):
            raise TypeError(f"scale_target must be True or False; got {self.scale_target!r}")
        model_seed, shuffle_seed = _seeds(self.random_state)

        if self.scale_target:
            # Y is finite and holds at least one sample: the scaler can only fail on
            # values whose mean or variance overflows.
            try:
                scaler = StandardScaler().fit(Y)
            except ValueError as exc:
                raise ValueError("y has values too large to standardise (their mean or "
                                 "standard deviation overflows float64)") from exc
            mean, scale = scaler.mean_, scaler.scale_
        else:
            mean = np.zeros(Y.shape[1])
            scale = np.ones(Y.shape[1])
        Yt = (Y - mean) / scale

        validation = None
        early = None
        Xt = Xs
        if self.early_stopping:
            fraction = check_float("validation_fraction", self.validation_fraction, 0.0,
                                   strict=True)
            if fraction >= 1.0:
                raise ValueError(f"validation_fraction must be in (0, 1); got {fraction}")
            n_val = max(1, int(round(n * fraction)))
            if n - n_val < 1:
                raise ValueError(f"{n} samples are too few for early stopping with "
                                 f"validation_fraction={fraction}: nothing is left to train on")
            patience = check_int("patience", self.patience, 1)
            Xt, Yt, Xv, Yv = Xs[:-n_val], Yt[:-n_val], Xs[-n_val:], Yt[-n_val:]
            validation = (Xv, Yv)
            early = {"patience": patience, "restore_best": True}

        outputs = 2 * Y.shape[1] if self.loss == "gaussian_nll" else Y.shape[1]
        model = RNN(Xs.shape[2], self.hidden_size, outputs, num_layers=self.num_layers,
                    return_sequences=False, dtype=dtype, seed=model_seed, init=self.init,
                    loss=self.loss)
        history = model.fit(Xt, Yt, epochs=epochs, batch_size=batch_size,
                            optimizer=self.optimizer, lr=lr, clip_norm=self.clip_norm,
                            seed=shuffle_seed, validation_data=validation,
                            early_stopping=early, verbose=self.verbose)

        self.model_ = model
        self.n_features_in_ = fit_info["n_features_in_"]
        if fit_info["names"] is not None:
            self.feature_names_in_ = fit_info["names"]
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._fitted_ndim = fit_info["ndim"]
        self._fitted_window = fit_info.get("window")
        self.history_ = history
        self.loss_curve_ = list(history.loss)
        self.validation_loss_curve_ = list(history.val_loss)
        self.n_iter_ = history.epochs
        self.window_ = Xs.shape[1]
        self.input_size_ = Xs.shape[2]
        self.n_outputs_ = Y.shape[1]
        self.y_mean_ = mean
        self.y_scale_ = scale
        self._y_one_d = one_d
        return self

    @overload
    def predict(self, X: ArrayLike, return_std: Literal[False] = False) -> FloatArray: ...

    @overload
    def predict(self, X: ArrayLike, return_std: Literal[True]
                ) -> tuple[FloatArray, FloatArray]: ...

    @overload
    def predict(self, X: ArrayLike, return_std: bool
                ) -> FloatArray | tuple[FloatArray, FloatArray]: ...

    def predict(self, X: ArrayLike,
                return_std: bool = False) -> FloatArray | tuple[FloatArray, FloatArray]:
        """Predicted targets for windows ``X`` (the means for ``loss="gaussian_nll"``).

        Parameters
        ----------
        X : array_like, of the form ``fit`` was given (2-D or 3-D)
        return_std : bool, default False
            Also return the predicted standard deviations, in the target's units
            (``loss="gaussian_nll"`` only).

        Returns
        -------
        ndarray of float64, shape (n_samples,) or (n_samples, n_outputs)
            1-D when ``y`` was 1-D in fit.
        std : ndarray of float64
            Only with ``return_std=True``: shaped as the predictions.
        """
        self._check_fitted()
        return_std = check_bool("return_std", return_std)
        Xs, _ = self._sequences(X, fitting=False)
        if return_std:
            means, stds = self.model_.predict(Xs, return_std=True)
            return (self._original_units(means),
                    self._one_d(stds.astype(np.float64) * self.y_scale_))
        return self._original_units(self.model_.predict(Xs))

    def _original_units(self, predicted: FloatArray) -> FloatArray:
        return self._one_d(predicted.astype(np.float64) * self.y_scale_ + self.y_mean_)

    def _one_d(self, out: FloatArray) -> FloatArray:
        result: FloatArray = out[:, 0] if self._y_one_d else out
        return result

    def score(self, X: ArrayLike, y: ArrayLike,
              sample_weight: ArrayLike | None = None) -> float:
        """Coefficient of determination R² of ``predict(X)`` against ``y``.

        As ``sklearn.metrics.r2_score``: 1 - SS_res / SS_tot per output, averaged
        uniformly over outputs; an output with constant ``y`` scores 1.0 when
        predicted exactly and 0.0 otherwise.

        Parameters
        ----------
        X : array_like
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array_like, shape (n_samples,), optional

        Returns
        -------
        float
        """
        predicted = np.asarray(self.predict(X), dtype=np.float64)
        truth = _as_float("y", y)
        if truth.shape[0] != predicted.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{predicted.shape[0]}, {truth.shape[0]}]")
        truth = truth.reshape(truth.shape[0], -1)
        predicted = predicted.reshape(predicted.shape[0], -1)
        if truth.shape != predicted.shape:
            raise ValueError(f"y has shape {truth.shape}; the predictions have "
                             f"{predicted.shape}")
        if sample_weight is None:
            weight = np.ones(truth.shape[0])
        else:
            weight = _as_float("sample_weight", sample_weight).reshape(-1)
            if weight.shape[0] != truth.shape[0]:
                raise ValueError(f"sample_weight has {weight.shape[0]} entries for "
                                 f"{truth.shape[0]} samples")
        weight = weight[:, None]
        residual = (weight * (truth - predicted) ** 2).sum(axis=0)
        mean = (weight * truth).sum(axis=0) / weight.sum()
        total = (weight * (truth - mean) ** 2).sum(axis=0)
        scores = np.ones(truth.shape[1])
        nonzero = total != 0
        scores[nonzero] = 1.0 - residual[nonzero] / total[nonzero]
        scores[~nonzero & (residual != 0)] = 0.0
        return float(scores.mean())
