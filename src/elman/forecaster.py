"""``elman.Forecaster``: the whole forecasting job on a series, in original units.

Fit a series (or one column of a table), get forecasts, one-step predictions,
prediction intervals and rolling-origin backtests back in the units of the data;
save it to the same safe model file as an ``RNN``.

    >>> import numpy as np, elman
    >>> t = np.arange(240)
    >>> y = 10 + 0.05 * t + np.sin(2 * np.pi * t / 12)
    >>> f = elman.Forecaster(fast=True).fit(y)
    >>> f.predict(12).shape
    (12,)
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING, Any, Mapping, Self, Sequence

import numpy as np

from elman import model_file
from elman._forecasting import intervals as _intervals
from elman._forecasting.pipeline import Combination
from elman._forecasting.search import (ALPHAS, candidate_transforms, choose_linear,
                                       default_grid, mse, one_step_original, refit_member,
                                       scaled_linear, significantly_better, train_members)
from elman._forecasting.transforms import TRANSFORMS, Transform, detect_season
from elman._typing import FloatArray, SeriesLike
from elman._validation import as_float_array, check_float, check_int, shape_text

if TYPE_CHECKING:
    from elman.optimizers import Optimizer
    from elman.rnn import RNN

__all__ = ["Forecaster", "BacktestResult", "load"]

# Key of a Forecaster's metadata in a model file's ``extra``.
FILE_KEY = "elman_forecaster"
FILE_VERSION = 2
# Share of the rows given to fit that form its validation part.
VALIDATION_FRACTION = 0.2
# Optimizer steps per RNN when epochs is not given (early stopping may end sooner).
UPDATES = 3000
# The losses of elman.RNN that fit a real-valued series.
FORECAST_LOSSES = ("mse", "mae", "huber", "gaussian_nll")
# How prediction intervals are made (see the ``intervals`` parameter).
INTERVAL_METHODS = ("residuals", "gaussian", "auto")
# The level "auto" compares the interval methods at when no interval= is set.
AUTO_LEVEL = 0.9
DEFAULT_ENSEMBLE = 5
# The transforms with the best linear validation errors, this many, are each
# modelled (linear part plus RNNs) and their forecasts averaged.
TRANSFORMS_COMBINED = 3


def _validation_rows(n):
    return max(5, int(round(VALIDATION_FRACTION * n)))


def _joblib_available():
    try:
        import joblib  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class BacktestResult:
    """Rolling-origin closed-loop errors, per horizon, with two baselines.

    Attributes
    ----------
    horizons : ndarray of int, shape (H,)
        1..H.
    mse, mae : ndarray, shape (H,)
        The forecaster's errors at each horizon, over the origins whose target row
        lies in the data.
    persistence_mse, persistence_mae : ndarray, shape (H,)
        The last observed value carried forward.
    seasonal_naive_mse, seasonal_naive_mae : ndarray, shape (H,)
        The value one season before (``season`` rows); persistence without a season.
    coverage : ndarray, shape (H,) or None
        Share of actual values inside the interval, when an interval was asked for.
    width : ndarray, shape (H,) or None
        Mean width of the interval (upper minus lower, original units).
    interval_score : ndarray, shape (H,) or None
        Mean interval score (Gneiting and Raftery, 2007): the width plus
        ``2 / (1 - interval)`` times the distance by which the actual value
        falls outside; lower is better, rewarding narrow intervals that cover.
    count : ndarray of int, shape (H,)
        Forecasts scored at each horizon.
    season : int
        The season the seasonal naive forecast used.
    interval : float or None
    """

    horizons: np.ndarray
    mse: np.ndarray
    mae: np.ndarray
    persistence_mse: np.ndarray
    persistence_mae: np.ndarray
    seasonal_naive_mse: np.ndarray
    seasonal_naive_mae: np.ndarray
    count: np.ndarray
    season: int
    interval: float | None = None
    coverage: np.ndarray | None = None
    width: np.ndarray | None = None
    interval_score: np.ndarray | None = None

    def as_table(self) -> str:
        """The results as text: one line per horizon."""
        header = f"{'h':>3} {'n':>6} {'mse':>12} {'mae':>10} {'persist mse':>12} " \
                 f"{'snaive mse':>12}"
        if self.coverage is not None:
            header += f" {'coverage':>9}"
        lines = [header]
        for i, h in enumerate(self.horizons):
            line = (f"{h:>3} {self.count[i]:>6} {self.mse[i]:>12.6g} {self.mae[i]:>10.4g} "
                    f"{self.persistence_mse[i]:>12.6g} {self.seasonal_naive_mse[i]:>12.6g}")
            if self.coverage is not None:
                line += f" {self.coverage[i]:>9.3f}"
            lines.append(line)
        return "\n".join(lines)


class Forecaster:
    """Forecast one series with a linear autoregression plus an ensemble of Elman RNNs.

    The forecaster owns the whole job: it picks the target (and optional extra
    input columns) from the data, removes trends with a transform, scales,
    cuts windows, trains, and maps every output back to the original units.

    **The model.** With ``z`` the transformed target (see ``transform``), scaled
    to mean 0 and variance 1 on the rows it is fitted on, the forecast of the next
    ``z`` is a ridge autoregression on the last ``p`` rows plus ``alpha`` times
    the mean of an ensemble of RNNs trained on that autoregression's residuals.
    ``alpha`` is chosen on the validation part among 0, 0.25, ..., 1, and a
    nonzero ``alpha`` is kept only when it beats the best linear candidate there
    by more than one standard error of the paired difference of squared errors.
    So the RNNs are only used where they measurably improve on the linear model:
    the result is never worse than the linear autoregression on the validation
    rows, by construction.

    **A combination of transforms.** Unless ``transform`` is given (or ``fast``),
    the three transforms whose autoregressions forecast the validation part best
    are each modelled as above, and the forecast is the mean of the three, in
    original units. The best transform on a short validation part often wins
    partly by luck; the mean of a few good ones is steadier on the rows that
    follow.

    **The closed-loop rule** (shared with ``RNN.forecast(history[-window:],
    steps)`` and ``elman predict --steps``). Each RNN is warmed up on the last
    ``window`` rows from a zero state, exactly as it was trained on windows; its last output is the first
    forecast. Then the state is carried forward: each prediction, in the
    transformed and scaled units, is fed back as the next input (and into the
    autoregression's lags), and the next output is read, one step at a time.
    Forecasts are inverted to original units step by step: a differenced
    transform adds each forecast difference to the (observed or forecast) value
    ``lag`` rows before it.

    **Automatic configuration.** Every choice left as None is made on the
    validation part: the last 20% of the rows given to :meth:`fit`. The models
    compared there are trained on the rows before it, so the validation rows
    score them honestly; then the chosen configuration is refitted on all rows
    given to :meth:`fit`. Nothing after the data's end is ever seen.

    Parameters
    ----------
    window : int, optional
        Rows each RNN is warmed up on. None: searched among season-aware windows
        (the season and twice it for a short season, 14 and 7 rows without one).
    hidden_size : int, optional
        Units of each RNN. None: searched among 8 and 16.
    transform : {"none", "diff", "seasonal_diff", "log", "log_diff", "log_seasonal_diff"}, optional
        How the target is made stationary before modelling: first differences,
        differences ``season`` rows apart, or either of these on the logarithm
        (positive targets only, for multiplicative trends and seasons). None:
        the mean of the three transforms whose autoregressions forecast the
        validation part best (fewer where fewer apply).
    season : int, optional
        Season length in rows (12 for monthly data with a yearly cycle). None:
        detected from the autocorrelation of the first differences (a clear peak
        at a lag of 2 to 400 rows), or none.
    lr : float, optional
        Adam learning rate. None: searched among 0.01 and 0.003.
    epochs : int, optional
        Epochs per RNN. None: about 3000 optimizer steps (batches of 32) scaled
        to the number of windows, at least 5 and at most 1000 epochs, with early
        stopping on the validation part; the refit uses the best epoch count.
    ensemble : int, optional
        RNNs averaged in the final model: the best ``ensemble`` of the grid on the
        validation part. None: 5 (1 with ``fast``).
    interval : float in (0, 1), optional
        Default level of prediction intervals for :meth:`predict`,
        :meth:`predict_one_step` and :meth:`backtest` (for example 0.9). None: no
        interval unless one is asked for there.
    fast : bool, default False
        Skip the grid: one window, 16 units, learning rate 0.01, one RNN. The
        transform and ``alpha`` are still chosen on the validation part, which
        costs little.
    loss : {"mse", "mae", "huber", "gaussian_nll"}, optional
        The loss each RNN trains on (as :class:`elman.RNN` defines it), on the
        scaled residuals of the linear part. ``mae`` and ``huber`` weigh outliers
        less. With ``gaussian_nll`` each RNN also predicts a variance; the
        forecasts use its means. None: ``"mse"``, or ``"gaussian_nll"`` when
        ``intervals`` needs the variances.
    intervals : {"residuals", "gaussian", "auto"}, default "residuals"
        How prediction intervals are made. All three are calibrated on the
        closed-loop errors of the validation part, per horizon (split conformal):

        - ``"residuals"``: the forecast plus or minus the conformal quantile of
          the absolute errors at each horizon; the same width from every origin.
        - ``"gaussian"``: the RNNs train on ``gaussian_nll`` and predict the
          variance of each step along the closed loop; the half-width is that
          spread (carried through the scaling and summed along the differencing,
          in the units of the residual intervals) times the conformal quantile of
          the errors divided by their predicted spreads. Intervals widen where
          the model expects more noise; the quantile corrects what the spread
          leaves out (errors fed back through the loop, an over- or
          under-confident head). Past the horizons calibrated on the
          validation part the last quantile is kept; the spread carries the growth.
        - ``"auto"``: train as for ``"gaussian"``, then keep whichever of the two
          has the lower interval score (Gneiting and Raftery, 2007) at
          ``interval`` (0.9 when None), each calibrated on one half of the
          validation origins and scored on the other. The test rows are never
          read: only the validation part of the rows given to :meth:`fit`.
          ``intervals_`` says which was kept.
    seed : int, default 0
        Seed of every RNN's initial weights and shuffling; the same seed and data
        give the same forecasts.
    n_jobs : int, optional
        Workers for training the grid (``elman.fit_many``). None: all cores when
        joblib is installed, else 1 (a serial loop).
    verbose : {0, 1}, default 0
        1 prints each stage of the search and its time.

    Attributes
    ----------
    config_ : dict
        What was chosen: ``transforms`` (the names combined, best first) and
        ``combination`` (for each of them: ``transform``, ``lags`` and
        ``penalty`` of the linear part, ``alpha``, ``members`` with the window,
        hidden_size, lr and epochs of each RNN, ``validation_mse`` and
        ``linear_validation_mse``); the first transform's entries also at the top
        level; ``season``; ``window`` and ``hidden_size`` of its best RNN;
        ``validation_rows``, and ``validation_mse`` of the combined forecast.
    search_ : list of dict
        Every candidate tried: ``stage``, its settings, ``validation_mse`` (one
        step, original units) and ``seconds``.
    history_ : list of elman.History
        Training histories of the final RNNs (empty after :meth:`load`: model
        files keep weights, not histories).
    target_ : str or int
        The target column (0 for a 1-D series).
    features_ : list
        Extra input columns (empty by default).
    n_rows_ : int
        Rows given to fit.
    intervals_ : str
        ``"residuals"`` or ``"gaussian"``: how this forecaster's intervals are
        made (the choice of ``intervals="auto"``; its validation scores are in
        ``config_["interval_scores"]``).
    fit_seconds_ : float
        Wall time of fit.
    metadata_ : dict or None
        Only on a loaded forecaster: the ``metadata`` given to :meth:`save`.

    Notes
    -----
    Extra input columns (``features``) are used for one-step predictions; they
    are not forecast, so :meth:`predict` refuses ``steps > 1`` for a forecaster
    with features instead of inventing their future values.
    """

    def __init__(self, *, window: int | None = None, hidden_size: int | None = None,
                 transform: str | None = None, season: int | None = None,
                 lr: float | None = None, epochs: int | None = None,
                 ensemble: int | None = None, interval: float | None = None, fast: bool = False,
                 loss: str | None = None, intervals: str = "residuals", seed: int = 0,
                 n_jobs: int | None = None, verbose: int = 0) -> None:
        self.window = window
        self.hidden_size = hidden_size
        self.transform = transform
        self.season = season
        self.lr = lr
        self.epochs = epochs
        self.ensemble = ensemble
        self.interval = interval
        self.fast = fast
        self.loss = loss
        self.intervals = intervals
        self.seed = seed
        self.n_jobs = n_jobs
        self.verbose = verbose
        self._check_settings()

    def __repr__(self):
        changed = []
        for name in ("window", "hidden_size", "transform", "season", "lr", "epochs",
                     "ensemble", "interval", "n_jobs"):
            if getattr(self, name) is not None:
                changed.append(f"{name}={getattr(self, name)!r}")
        if self.fast:
            changed.append("fast=True")
        if self.loss is not None:
            changed.append(f"loss={self.loss!r}")
        if self.intervals != "residuals":
            changed.append(f"intervals={self.intervals!r}")
        if self.seed != 0:
            changed.append(f"seed={self.seed!r}")
        return f"Forecaster({', '.join(changed)})"

    # ---------------------------------------------------------------- checks
    def _check_settings(self):
        for name in ("window", "hidden_size", "epochs", "ensemble"):
            value = getattr(self, name)
            if value is not None:
                check_int(name, value, 1)
        if self.season is not None:
            check_int("season", self.season, 2)
        if self.transform is not None:
            if self.transform not in TRANSFORMS:
                raise ValueError(f"transform must be one of {sorted(TRANSFORMS)} or None; got "
                                 f"{self.transform!r}")
            if "seasonal" in self.transform and self.season is None:
                raise ValueError(f"transform={self.transform!r} needs season= (the season "
                                 f"length in rows)")
        if self.lr is not None:
            check_float("lr", self.lr, 0.0, strict=True)
        _check_level("interval", self.interval)
        if not isinstance(self.fast, (bool, np.bool_)):
            raise TypeError(f"fast must be True or False; got {self.fast!r}")
        if self.loss is not None and (not isinstance(self.loss, str)
                                      or self.loss not in FORECAST_LOSSES):
            raise ValueError(f"loss must be one of {FORECAST_LOSSES}; got {self.loss!r}")
        if not isinstance(self.intervals, str) or self.intervals not in INTERVAL_METHODS:
            raise ValueError(f"intervals must be one of {INTERVAL_METHODS}; got "
                             f"{self.intervals!r}")
        if self.intervals != "residuals" and self.loss not in (None, "gaussian_nll"):
            raise ValueError(f"intervals={self.intervals!r} needs RNNs that predict a "
                             f"variance: loss='gaussian_nll' or None; got loss={self.loss!r}")
        check_int("seed", self.seed, 0)
        if self.n_jobs is not None:
            check_int("n_jobs", self.n_jobs)
            if self.n_jobs == 0:
                raise ValueError("n_jobs must be a positive count, -1 (all cores) or None; "
                                 "got 0")
        if self.verbose not in (0, 1, 2) or isinstance(self.verbose, bool):
            raise ValueError(f"verbose must be 0, 1 or 2; got {self.verbose!r}")

    def _rnn_loss(self):
        if self.loss is not None:
            return self.loss
        return "mse" if self.intervals == "residuals" else "gaussian_nll"

    def _say(self, text):
        if self.verbose:
            print(text, flush=True)

    def _check_fitted(self, method):
        if not hasattr(self, "_pipeline"):
            raise ValueError(f"this Forecaster is not fitted yet; call fit(data) before "
                             f"{method}()")

    # ---------------------------------------------------------------- fitting
    def fit(self, data: SeriesLike, *, target: str | int | None = None,
            features: Sequence[str | int] | None = None) -> Self:
        """Choose a configuration on the last part of ``data``, then fit on all of it.

        Parameters
        ----------
        data : array_like, shape (n,) or (n, k); or a pandas Series / DataFrame
            The series, or a table whose columns include the target. Every value
            of the columns used must be finite.
        target : str or int, optional
            The target column: a name (DataFrame) or an index (array). Required
            for a table with more than one column.
        features : sequence of str or int, optional
            Extra input columns, read at each step beside the target. Default:
            none, the target alone.

        Returns
        -------
        self
        """
        started = time.perf_counter()
        self._check_settings()
        y, feats, self.target_, self.features_, self._columns = _columns_of(
            data, target, features)
        self._n_columns = _column_count(data)
        n = len(y)
        self.n_rows_ = n
        season = self.season or detect_season(y)
        self.search_ = []
        val_len = _validation_rows(n)
        train_end = n - val_len

        # Transforms, scored by their linear autoregression alone (cheap).
        if self.transform is not None:
            names = [self.transform]
            Transform(self.transform, season).check(y)
        else:
            names = candidate_transforms(y, season)
        linear = {}
        for name in names:
            tick = time.perf_counter()
            transform = Transform(name, season)
            minimum = transform.lag + 8
            if train_end < minimum:
                if self.transform is not None or name == "none":
                    required = next(m for m in range(minimum, 10 * minimum + 10)
                                    if m - _validation_rows(m) >= minimum)
                    raise ValueError(
                        f"data has {n} rows; transform {name!r} needs at least {required} "
                        f"rows (its lag, a few rows to learn from, and a validation part)")
                continue
            best = choose_linear(y, feats, transform, train_end, season)
            if best is None:
                continue
            linear[name] = best
            self.search_.append({"stage": "linear", "transform": name, "lags": best[1],
                                 "penalty": best[2], "validation_mse": best[0],
                                 "seconds": time.perf_counter() - tick})
        if not linear:
            raise ValueError(f"data has {n} rows, too few to fit and validate any transform")
        ranked = sorted(linear, key=lambda name: linear[name][0])
        searched = ranked[:1] if (self.fast or self.transform) else ranked[:TRANSFORMS_COMBINED]
        self._say(f"season {season or 'none'}; linear validation MSE: "
                  + ", ".join(f"{k} {linear[k][0]:.4g}" for k in ranked))

        n_jobs = self.n_jobs if self.n_jobs is not None else (-1 if _joblib_available() else 1)
        ensemble = self.ensemble or (1 if self.fast else DEFAULT_ENSEMBLE)
        parts = []   # one per searched transform: its pipeline, RNNs and weight
        y_val = y[train_end:]
        val_rows = np.arange(train_end, n)
        for name in searched:
            transform = Transform(name, season)
            _, lags, penalty = linear[name]
            pipeline, x = scaled_linear(y, feats, transform, train_end, lags, penalty)
            base = pipeline.linear(x, val_rows)
            grid = default_grid(season, train_end - transform.lag, self.window,
                                self.hidden_size, self.lr, self.fast)
            if len(grid) < ensemble:
                # Too few settings for the ensemble: repeat them; each task of
                # fit_many draws its own seeds, so repeats are different RNNs.
                grid = grid * math.ceil(ensemble / len(grid))
            grid = [c for c in grid if train_end - transform.lag - lags - c["window"] >= 4]
            tick = time.perf_counter()
            members = train_members(pipeline, x, y, train_end, grid, updates=UPDATES,
                                    epochs=self.epochs, seed=self.seed, n_jobs=n_jobs,
                                    validate=True, loss=self._rnn_loss())
            for member in members:
                z_hat = base + member["val_residual"]
                member["validation_mse"] = mse(
                    one_step_original(pipeline, y, z_hat, val_rows), y_val)
                self.search_.append({"stage": "rnn", "transform": name,
                                     **{k: member["config"][k] for k in
                                        ("window", "hidden_size", "lr", "epochs")},
                                     "best_epoch": member["best_epoch"],
                                     "validation_mse": member["validation_mse"],
                                     "seconds": member["seconds"]})
            self._say(f"{name}: {len(members)} RNNs trained in "
                      f"{time.perf_counter() - tick:.2f} s")
            members.sort(key=lambda m: m["validation_mse"])
            chosen = members[:ensemble]
            if not chosen:
                continue
            mean_residual = np.mean([m["val_residual"] for m in chosen], axis=0)
            options = []   # (score, alpha, predictions)
            for alpha in ALPHAS:
                predicted = one_step_original(pipeline, y, base + alpha * mean_residual,
                                              val_rows)
                score = mse(predicted, y_val)
                options.append((score, alpha, predicted))
                self.search_.append({"stage": "ensemble", "transform": name,
                                     "members": len(chosen), "alpha": alpha,
                                     "validation_mse": score, "seconds": 0.0})
            # The RNNs must earn their place: a weight above 0 is kept only when it
            # beats the linear part alone by more than the noise of the validation
            # rows (one standard error of the paired difference); a small gain on a
            # short validation part is as likely to be luck as skill.
            best = min(options, key=lambda o: (o[0], o[1]))
            linear_only = next(o for o in options if o[1] == 0)
            if best[1] > 0 and not significantly_better((best[2] - y_val) ** 2,
                                                        (linear_only[2] - y_val) ** 2):
                best = linear_only
            pipeline.members = [(m["model"], m["config"]["window"]) for m in chosen]
            pipeline.alpha = best[1]
            pipeline.spread = self.intervals != "residuals"
            parts.append({"name": name, "pipeline": pipeline, "chosen": chosen,
                          "alpha": best[1], "score": best[0], "predicted": best[2],
                          "lags": lags, "penalty": penalty})
        if not parts:
            raise ValueError("no RNN could be trained on this data (every one diverged or "
                             "the series is too short for the window)")
        combined = Combination([part["pipeline"] for part in parts])
        score = mse(np.mean([part["predicted"] for part in parts], axis=0), y_val)

        # Calibration of intervals: closed-loop errors on the validation part of the
        # pipelines trained before it.
        self._horizon = (1 if feats is not None else
                         (season if season and season <= 60 else 12))
        origins = np.arange(max(train_end, combined.history_needed), n)
        paths = combined.paths(y, feats, origins, self._horizon if feats is None else 1,
                               return_sd=combined.spread)
        if combined.spread:
            paths, spread = paths
        targets = origins[:, None] + np.arange(paths.shape[1])[None, :]
        inside = targets < n
        actual = np.where(inside, y[np.minimum(targets, n - 1)], np.nan)
        if combined.log:
            with np.errstate(invalid="ignore", divide="ignore"):
                errors = np.log(actual) - np.log(paths)
        else:
            errors = actual - paths
        self._calibration = np.where(inside, errors, np.nan)
        self._calibration_scaled = None
        self.intervals_ = "residuals"
        scores: dict[str, float | None] = {}
        if self.intervals != "residuals":
            with np.errstate(invalid="ignore", divide="ignore"):
                self._calibration_scaled = self._calibration / spread
            self.intervals_ = "gaussian"
            if self.intervals == "auto":
                level = self.interval if self.interval is not None else AUTO_LEVEL
                self.intervals_, scores = _intervals.choose(self._calibration, spread, level)
            self._say(f"intervals: {self.intervals_}"
                      + (f" (validation interval scores: residuals {scores['residuals']:.4g}, "
                         f"gaussian {scores['gaussian']:.4g})"
                         if scores.get("residuals") is not None else ""))

        # Refit on every row given.
        tick = time.perf_counter()
        finals, self.history_ = [], []
        for part in parts:
            pipeline, chosen, alpha = part["pipeline"], part["chosen"], part["alpha"]
            final, _ = scaled_linear(y, feats, pipeline.transform, n, part["lags"],
                                     part["penalty"])
            if alpha > 0:
                x_all = final.inputs(y, feats)
                refitted = [refit_member(final, x_all, n, m) for m in chosen]
                final.members = [(model, m["config"]["window"])
                                 for (model, _), m in zip(refitted, chosen)]
                self.history_ += [history for _, history in refitted]
            else:
                # The RNNs do not improve on the linear part: kept (trained on the
                # rows before the validation part) with weight 0, so the file still
                # holds them.
                final.members = pipeline.members
                self.history_ += [m["history"] for m in chosen]
            final.alpha = alpha
            final.spread = pipeline.spread
            finals.append(final)
        self._pipeline = Combination(finals)
        self._say(f"refit in {time.perf_counter() - tick:.2f} s")

        keep = self._pipeline.history_needed + max(season or 1, 1)
        self._tail_y = y[-keep:].copy()
        self._tail_features = None if feats is None else feats[-keep:].copy()

        def described(part):
            alpha, chosen = part["alpha"], part["chosen"]
            return {
                "transform": part["name"],
                "lags": part["lags"],
                "penalty": part["penalty"],
                "alpha": alpha,
                "members": [{k: m["config"][k] for k in ("window", "hidden_size", "lr")}
                            | {"epochs": m["best_epoch"] if alpha > 0 else m["epochs_run"],
                               "updates": (m["best_epoch"] if alpha > 0 else m["epochs_run"])
                               * m["updates_per_epoch"]}
                            for m in chosen],
                "validation_mse": float(part["score"]),
                "linear_validation_mse": float(linear[part["name"]][0]),
            }

        first = described(parts[0])
        best = parts[0]["chosen"][0]["config"]
        self.config_ = {
            **first,
            "transforms": [part["name"] for part in parts],
            "combination": [described(part) for part in parts],
            "season": season,
            "window": best["window"],
            "hidden_size": best["hidden_size"],
            "lr": best["lr"],
            "validation_rows": int(val_len),
            "validation_mse": float(score),
            "horizon_calibrated": int(self._horizon),
            "intervals": self.intervals_,
            "interval_scores": scores,
        }
        self.fit_seconds_ = time.perf_counter() - started
        return self

    # ------------------------------------------------------------- predicting
    def _observed(self, data):
        if data is None:
            return self._tail_y, self._tail_features
        if self._columns is None and _column_count(data) != self._n_columns:
            raise ValueError(f"data must have the {self._n_columns} columns given to fit; "
                             f"got {_column_count(data)}")
        y, feats, _, _, _ = _columns_of(data, self.target_, self.features_,
                                        columns=self._columns, name="data")
        self._pipeline.check(y)
        return y, feats

    def _forecast(self, y, feats, origins, steps, level):
        """Closed-loop paths (origins, steps), and their (lower, upper) at ``level``."""
        gaussian = level is not None and self.intervals_ == "gaussian"
        point = self._pipeline.paths(y, feats, origins, steps, return_sd=gaussian)
        if level is None:
            return point, None
        if gaussian:
            point, spread = point
            widths = _intervals.half_widths(self._calibration_scaled, level, steps,
                                            grow=False) * spread
        else:
            widths = _intervals.half_widths(self._calibration, level, steps)[None, :]
        return point, _intervals.bounds(point, widths, self._pipeline.log)

    def _level(self, interval):
        level = self.interval if interval is None else interval
        _check_level("interval", level)
        return level

    def predict(self, steps: int = 1, *, interval: float | None = None,
                data: SeriesLike | None = None
                ) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]:
        """Forecast the next ``steps`` rows after the data's end, in original units.

        Parameters
        ----------
        steps : int, default 1
        interval : float in (0, 1), optional
            Also return a prediction interval at this level (default: the
            constructor's ``interval``).
        data : array_like or pandas object, optional
            Observations with the columns given to fit, ending at the forecast
            origin. Default: the data given to fit.

        Returns
        -------
        point : ndarray, shape (steps,)
            Or, with an interval, the tuple ``(point, lower, upper)``.
        """
        self._check_fitted("predict")
        steps = check_int("steps", steps, 1)
        level = self._level(interval)
        if steps > 1 and self.features_:
            raise ValueError(
                f"steps={steps}: this forecaster reads extra input columns "
                f"{list(self.features_)}, whose future values it does not forecast; "
                f"predict one step at a time with new data, or fit on the target alone")
        y, feats = self._observed(data)
        needed = self._pipeline.history_needed
        if len(y) < needed:
            raise ValueError(f"data must have at least {needed} rows (the model's history); "
                             f"got {len(y)}")
        paths, bounds = self._forecast(y, feats, np.array([len(y)]), steps, level)
        point: FloatArray = paths[0]
        if bounds is None:
            return point
        return point, bounds[0][0], bounds[1][0]

    def predict_one_step(self, data: SeriesLike, *, interval: float | None = None
                         ) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]:
        """One-step predictions for every row of ``data`` from the rows before it.

        Parameters
        ----------
        data : array_like or pandas object
            With the columns given to fit.
        interval : float in (0, 1), optional

        Returns
        -------
        point : ndarray, shape (n,)
            Row i is predicted from the actual rows < i; NaN for the first rows,
            which lack the history the model needs. With an interval, the tuple
            ``(point, lower, upper)``.
        """
        self._check_fitted("predict_one_step")
        level = self._level(interval)
        y, feats = self._observed(data)
        n = len(y)
        point = np.full(n, np.nan)
        origins = np.arange(self._pipeline.history_needed, n)
        paths, bounds = self._forecast(y, feats, origins, 1, level)
        point[origins] = paths[:, 0]
        if bounds is None:
            return point
        lower, upper = np.full(n, np.nan), np.full(n, np.nan)
        lower[origins], upper[origins] = bounds[0][:, 0], bounds[1][:, 0]
        return point, lower, upper

    def backtest(self, data: SeriesLike, *, start: int, horizon: int | None = None,
                 interval: float | None = None) -> BacktestResult:
        """Rolling-origin closed-loop evaluation on the rows >= ``start`` of ``data``.

        From every origin ``o`` in ``start .. n-1`` the model forecasts rows ``o ..
        o+horizon-1`` from rows < o (never refitted); the forecast for horizon
        ``h`` is scored where its row exists. The same is done for persistence and
        seasonal naive.

        Parameters
        ----------
        data : array_like or pandas object
            With the columns given to fit; usually the whole series, of which fit
            saw only the rows before ``start``.
        start : int
            First origin (first test row).
        horizon : int, optional
            Default: the season (up to 60) or 12; 1 with extra input columns.
        interval : float in (0, 1), optional
            Also measure the coverage of intervals at this level.

        Returns
        -------
        BacktestResult
        """
        self._check_fitted("backtest")
        level = self._level(interval)
        y, feats = self._observed(data)
        n = len(y)
        season = self.config_["season"] or 1
        if horizon is None:
            horizon = 1 if self.features_ else self._horizon
        horizon = check_int("horizon", horizon, 1)
        if horizon > 1 and self.features_:
            raise ValueError(f"horizon={horizon}: a forecaster with extra input columns "
                             f"predicts one step at a time; use horizon=1")
        earliest = max(self._pipeline.history_needed, season)
        start = check_int("start", start, earliest, n - 1)
        origins = np.arange(start, n)
        paths, bounds = self._forecast(y, feats, origins, horizon, level)
        h = np.arange(horizon)
        targets = origins[:, None] + h[None, :]
        inside = targets < n
        rows = np.minimum(targets, n - 1)
        actual = y[rows]
        persistence = np.broadcast_to(y[origins - 1][:, None], paths.shape)
        back = season * np.ceil((h + 1) / season).astype(int)
        seasonal = y[targets - back[None, :]]

        def errors(forecast: FloatArray) -> tuple[FloatArray, FloatArray]:
            diff = np.where(inside, forecast - actual, np.nan)
            return np.nanmean(diff ** 2, axis=0), np.nanmean(np.abs(diff), axis=0)

        result = BacktestResult(h + 1, *errors(paths), *errors(persistence),
                                *errors(seasonal), inside.sum(axis=0), season)
        if bounds is not None:
            lower, upper = bounds
            hit = np.where(inside, (actual >= lower) & (actual <= upper), np.nan)
            result.interval = level
            result.coverage = np.nanmean(hit, axis=0)
            result.width = np.nanmean(np.where(inside, upper - lower, np.nan), axis=0)
            score = _intervals.interval_scores(actual, lower, upper, level)
            result.interval_score = np.nanmean(np.where(inside, score, np.nan), axis=0)
        return result

    # ------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *,
             metadata: Mapping[str, Any] | None = None) -> None:
        """Write the fitted forecaster to one model file (no pickle), atomically.

        ``Forecaster.load(path)`` and ``elman.load(path)`` read it back; the
        forecasts are identical.

        Parameters
        ----------
        path : str or os.PathLike
        metadata : dict, optional
            JSON values to keep with the forecaster (a source file name, a date
            column, the last date...), as ``extra`` of
            :func:`elman.model_file.save`; read back as ``metadata_``.
        """
        self._check_fitted("save")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict of JSON values or None; got "
                            f"{type(metadata).__name__}")
        extra, arrays, first = self._pipeline.state()
        arrays["calibration"] = np.nan_to_num(self._calibration, nan=np.inf)
        if self._calibration_scaled is not None:
            arrays["calibration_scaled"] = np.nan_to_num(self._calibration_scaled, nan=np.inf)
        arrays["tail_y"] = self._tail_y
        if self._tail_features is not None:
            arrays["tail_features"] = self._tail_features
        settings = {name: getattr(self, name) for name in
                    ("window", "hidden_size", "transform", "season", "lr", "epochs",
                     "ensemble", "interval", "fast", "loss", "intervals", "seed", "n_jobs",
                     "verbose")}
        meta = {
            "version": FILE_VERSION,
            "settings": settings,
            "pipelines": extra,
            "config": self.config_,
            "search": self.search_,
            "target": self.target_,
            "features": list(self.features_),
            "columns": self._columns,
            "n_rows": self.n_rows_,
            "fit_seconds": self.fit_seconds_,
            "horizon": self._horizon,
            "n_columns": self._n_columns,
            "metadata": metadata,
        }
        model_file.save(first, path, extra={FILE_KEY: meta}, extra_arrays=arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Forecaster:
        """Read a forecaster written by :meth:`save`.

        Raises
        ------
        ValueError
            The file is a model file but not a forecaster's (load it with
            ``elman.load``), or is damaged (``elman.model_file.ModelFileError``).
        """
        loaded = model_file.load_with_metadata(path)
        if not loaded.extra or FILE_KEY not in loaded.extra:
            raise ValueError(f"{path}: this model file holds a bare elman.RNN, not a "
                             f"Forecaster; read it with elman.load(path)")
        forecaster: Forecaster = cls._from_loaded(loaded, path)
        return forecaster

    @classmethod
    def _from_loaded(cls, loaded, path):
        meta = loaded.extra[FILE_KEY]
        if meta.get("version") != FILE_VERSION:
            raise ValueError(f"{path}: Forecaster file version {meta.get('version')!r} is not "
                             f"supported by this elman (expected {FILE_VERSION})")
        forecaster = cls(**meta["settings"])
        arrays = loaded.extra_arrays
        forecaster._pipeline = Combination.from_state(meta["pipelines"], arrays, loaded.model)
        calibration = np.array(arrays["calibration"], dtype=np.float64)
        calibration[np.isinf(calibration)] = np.nan
        forecaster._calibration = calibration
        forecaster._calibration_scaled = None
        if "calibration_scaled" in arrays:
            scaled = np.array(arrays["calibration_scaled"], dtype=np.float64)
            scaled[np.isinf(scaled)] = np.nan
            forecaster._calibration_scaled = scaled
        forecaster._tail_y = np.array(arrays["tail_y"], dtype=np.float64)
        forecaster._tail_features = (np.array(arrays["tail_features"], dtype=np.float64)
                                     if "tail_features" in arrays else None)
        forecaster.config_ = meta["config"]
        forecaster.search_ = meta["search"]
        forecaster.target_ = meta["target"]
        forecaster.features_ = list(meta["features"])
        forecaster._columns = meta["columns"]
        forecaster.n_rows_ = meta["n_rows"]
        forecaster.fit_seconds_ = meta["fit_seconds"]
        forecaster._horizon = meta["horizon"]
        forecaster._n_columns = meta["n_columns"]
        forecaster.metadata_ = meta.get("metadata")
        forecaster.intervals_ = meta["config"].get("intervals", "residuals")
        forecaster.history_ = []
        return forecaster


def load(path: str | os.PathLike[str], *, with_optimizer: bool = False
         ) -> Forecaster | RNN | tuple[Forecaster | RNN, Optimizer | None]:
    """Read a model file: a :class:`Forecaster` if one wrote it, else an ``elman.RNN``.

    Parameters
    ----------
    path : str or os.PathLike
    with_optimizer : bool, default False
        Also return the saved optimizer (None for a forecaster's file), as
        :func:`elman.model_file.load`.

    Returns
    -------
    Forecaster or elman.RNN
        (and the optimizer or None, with ``with_optimizer=True``)

    Raises
    ------
    elman.model_file.ModelFileError, OSError
        As :func:`elman.model_file.load`.
    """
    if not isinstance(with_optimizer, bool):
        raise TypeError(f"with_optimizer must be True or False; got {with_optimizer!r}")
    loaded = model_file.load_with_metadata(path)
    if loaded.extra and FILE_KEY in loaded.extra:
        result = Forecaster._from_loaded(loaded, path)
        return (result, None) if with_optimizer else result
    return (loaded.model, loaded.optimizer) if with_optimizer else loaded.model


# =============================================================================
# Input handling
# =============================================================================
def _check_level(name, level):
    if level is None:
        return
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)):
        raise TypeError(f"{name} must be a coverage level in (0, 1) such as 0.9, or None; "
                        f"got {type(level).__name__} {level!r}")
    if not 0 < float(level) < 1:
        raise ValueError(f"{name} must be a coverage level in (0, 1) such as 0.9; got {level!r}")


def _column_index(spec, columns, what, n_columns):
    """Index of a column given by name or position."""
    if isinstance(spec, str):
        if columns is None:
            raise TypeError(f"{what}={spec!r} is a column name, but the data is an array "
                            f"without names; give a column index from 0 to {n_columns - 1}")
        if spec not in columns:
            raise ValueError(f"{what}={spec!r} is not a column of the data; columns are "
                             f"{list(columns)}")
        return columns.index(spec)
    if isinstance(spec, Integral) and not isinstance(spec, bool):
        if columns is not None and spec in columns:
            return columns.index(spec)
        if not 0 <= spec < n_columns:
            raise ValueError(f"{what}={spec!r} is out of range for data with {n_columns} "
                             f"columns (0 to {n_columns - 1})")
        return int(spec)
    raise TypeError(f"{what} must be a column name (str) or index (int); got "
                    f"{type(spec).__name__} {spec!r}")


def _column_count(data):
    shape = np.shape(data)
    return 1 if len(shape) < 2 else shape[1]


def _columns_of(data, target, features, columns=None, name="data"):
    """(y, features or None, target label, feature labels, column names)."""
    names = None
    if type(data).__module__.startswith("pandas"):
        kind = type(data).__name__
        if kind == "Series":
            names = [data.name if isinstance(data.name, str) else 0]
            values = data.to_numpy()
        elif kind == "DataFrame":
            names = [c if isinstance(c, str) else i for i, c in enumerate(data.columns)]
            values = data.to_numpy()
        else:
            raise TypeError(f"{name} must be an array, a pandas Series or DataFrame; got "
                            f"pandas {kind}")
    else:
        values = data
    if isinstance(values, (str, bytes, dict)) or values is None:
        raise TypeError(f"{name} must be a 1-D series or a 2-D table of numbers; got "
                        f"{type(data).__name__}")
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 1-D series or a 2-D table of numbers; got "
                        f"{type(data).__name__} ({exc})") from None
    if array.dtype == object:
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must hold numbers; it has non-numeric values") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, columns); got "
                         f"{shape_text(array.shape)}")
    n_columns = array.shape[1]
    if columns is not None:
        if names is None and n_columns != len(columns):
            raise ValueError(f"{name} must have the {len(columns)} columns given to fit; got "
                             f"{n_columns}")
        if names is not None:
            missing = [c for c in columns if isinstance(c, str) and c not in names]
            if missing:
                raise ValueError(f"{name} lacks columns {missing} that were given to fit")
        else:
            names = columns
    if target is None:
        if n_columns != 1:
            raise ValueError(f"target is required for a table with {n_columns} columns: give "
                             f"the target column's name or index")
        target_index = 0
    else:
        target_index = _column_index(target, names, "target", n_columns)
    if features is None:
        feature_indexes = []
    else:
        if isinstance(features, (str, Integral)):
            features = [features]
        feature_indexes = [_column_index(f, names, "features", n_columns) for f in features]
        if target_index in feature_indexes:
            raise ValueError("features must not include the target column (its past values "
                             "are always an input)")
    y = as_float_array(name if n_columns == 1 else f"{name}[target]", array[:, target_index],
                       np.float64)
    if len(y) < 2:
        raise ValueError(f"{name} must have at least 2 rows; got {len(y)}")
    feats = None
    if feature_indexes:
        feats = as_float_array(f"{name}[features]", array[:, feature_indexes], np.float64)
    label = names[target_index] if names is not None else target_index
    feature_labels = [names[i] if names is not None else i for i in feature_indexes]
    return y, feats, label, feature_labels, names
