"""Automatic configuration on the validation part: transform, linear lags, RNN grid,
ensemble and the weight of the RNN residual.

Everything here sees only the rows it is given; the split into a training part
(rows < ``train_end``) and a validation part (rows >= ``train_end``) is made by the
caller from the data passed to ``Forecaster.fit``.
"""

import math
import time

import numpy as np

from elman.parallel import fit_many
from elman.rnn import RNN
from elman.training import TrainingDivergedError
from elman._forecasting.pipeline import Pipeline, lagged_rows, ridge, windows_before
from elman._forecasting.transforms import TRANSFORMS

BATCH_SIZE = 32
# Penalties of the linear part, on standardised inputs, relative to the row count.
PENALTIES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
# RNN weights tried for the residual ensemble; 0 keeps the linear part alone.
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def candidate_transforms(y, season):
    """Transforms that apply to ``y``: logs only for a positive target, seasonal
    ones only with a season."""
    names = []
    for name, (takes_log, kind) in TRANSFORMS.items():
        if takes_log and np.min(y) <= 0:
            continue
        if kind == "season" and not season:
            continue
        names.append(name)
    return names


def lag_candidates(season, max_lags):
    values = {1, 2, 3, 4, 6, 8, 12, 16, 24}
    if season:
        values |= {season, season + 1, 2 * season}
    chosen = sorted(v for v in values if v <= max_lags)
    return chosen or [1]


def scaled_linear(y, features, transform, end, lags, penalty):
    """A Pipeline with its scaling and linear part fitted on rows < ``end``."""
    lag = transform.lag
    z = transform.forward(y[:end])[lag:]
    z_mean, z_scale = float(z.mean()), float(z.std()) or 1.0
    if features is not None and features.shape[1]:
        f_mean = features[:end].mean(axis=0)
        f_scale = features[:end].std(axis=0)
        f_scale[f_scale == 0] = 1.0
    else:
        f_mean = f_scale = np.zeros(0)
    pipeline = Pipeline(transform, z_mean, z_scale, f_mean, f_scale, lags,
                        np.zeros(lags * (1 + len(f_mean))), 0.0)
    x = pipeline.inputs(y, features)
    rows = np.arange(lag + lags, end)
    coef, intercept = ridge(lagged_rows(x, rows, lags), x[rows, 0], penalty * len(rows))
    pipeline.coef, pipeline.intercept = coef, intercept
    return pipeline, x


def one_step_original(pipeline, y, z_scaled, rows):
    """Scaled z predictions at ``rows`` mapped to original units (observed history)."""
    u = z_scaled * pipeline.z_scale + pipeline.z_mean
    lag = pipeline.transform.lag
    if lag:
        u = u + pipeline.transform.base(y[rows - lag])
    return pipeline.transform.unbase(u)


def mse(a, b):
    diff = np.asarray(a) - np.asarray(b)
    return float(np.mean(diff * diff)) if diff.size else math.inf


def choose_linear(y, features, transform, train_end, season, lags=None):
    """Lags and penalty of the linear part with the smallest validation MSE."""
    n = len(y)
    val_rows = np.arange(train_end, n)
    max_lags = max(1, (train_end - transform.lag) // 3)
    best = None
    for p in ([lags] if lags else lag_candidates(season, max_lags)):
        for penalty in PENALTIES:
            pipeline, x = scaled_linear(y, features, transform, train_end, p, penalty)
            predicted = one_step_original(pipeline, y, pipeline.linear(x, val_rows), val_rows)
            score = mse(predicted, y[val_rows])
            if not np.isfinite(score):
                continue
            if best is None or score < best[0]:
                best = (score, p, penalty)
    return best


def residual_windows(pipeline, x, rows, window):
    """(X, Y) windows of inputs and linear residuals whose last step predicts ``rows``."""
    first = pipeline.transform.lag + pipeline.lags
    r = np.full(len(x), np.nan)
    valid = np.arange(first, len(x))
    r[valid] = x[valid, 0] - pipeline.linear(x, valid)
    X = windows_before(x, rows, window)
    offsets = rows[:, None] - window + 1 + np.arange(window)[None, :]
    Y = r[offsets][:, :, None]
    return X, Y


def epochs_for(n_windows, updates):
    """Epochs that give about ``updates`` optimizer steps, within [5, 1000]."""
    per_epoch = max(1, math.ceil(n_windows / BATCH_SIZE))
    return int(min(1000, max(5, math.ceil(updates / per_epoch))))


def train_members(pipeline, x, y, train_end, grid, *, updates, epochs, seed, n_jobs,
                  validate, loss="mse"):
    """Train one RNN per grid entry on the linear part's residuals, on ``loss``.

    With ``validate``, rows >= train_end are the early-stopping set and each
    member's validation residual predictions are returned too.

    Returns
    -------
    list of dict
        One per grid entry: ``config``, ``model``, ``history``, ``epochs_run``,
        ``best_epoch``, ``val_residual`` (or None), ``seconds``.
    """
    n = len(y)
    first = pipeline.transform.lag + pipeline.lags
    tasks, params, used = [], [], []
    for config in grid:
        window = config["window"]
        start = first + window - 1
        train_rows = np.arange(max(start, first + 1), train_end)
        if len(train_rows) < 2:
            continue
        X, Y = residual_windows(pipeline, x, train_rows, window)
        entry = {"hidden_size": config["hidden_size"], "lr": config["lr"],
                 "epochs": config.get("epochs") or epochs or epochs_for(len(X), updates)}
        if validate:
            val_rows = np.arange(train_end, n)
            Xv, Yv = residual_windows(pipeline, x, val_rows, window)
            entry["validation_data"] = (Xv, Yv)
            entry["early_stopping"] = {"patience": max(5, entry["epochs"] // 8),
                                       "restore_best": True}
        tasks.append((X, Y))
        params.append(entry)
        used.append(config)
    if not tasks:
        return []
    started = time.perf_counter()
    result = fit_many(tasks, params, batch_size=BATCH_SIZE, clip_norm=1.0, n_jobs=n_jobs,
                      seed=seed, loss=loss)
    seconds = time.perf_counter() - started
    members = []
    for config, entry, (X, _), task in zip(used, params, tasks, result):
        if not task.ok:
            continue
        history = task.history
        losses = history.val_loss if validate else history.loss
        finite = [v for v in losses if v is not None and np.isfinite(v)]
        if not finite:
            continue
        best_epoch = int(np.nanargmin(np.asarray(finite, dtype=float))) + 1
        member = {"config": dict(config, epochs=entry["epochs"]), "model": task.model,
                  "seeds": task.seeds, "history": history, "epochs_run": len(losses),
                  "updates_per_epoch": math.ceil(len(X) / BATCH_SIZE),
                  "best_epoch": best_epoch,
                  "val_residual": None, "seconds": seconds / len(tasks)}
        if validate:
            val_rows = np.arange(train_end, n)
            window = config["window"]
            # predict gives the means of a Gaussian head.
            outputs = task.model.predict(windows_before(x, val_rows, window))
            member["val_residual"] = outputs[:, -1, 0]
        members.append(member)
    return members


def default_grid(season, n_train, window=None, hidden_size=None, lr=None, fast=False):
    """The RNN grid: season-aware windows, two sizes, two learning rates."""
    if window:
        windows = [window]
    else:
        if season and season <= 60:
            windows = [season, 2 * season] if season <= 12 else [season, max(6, season // 4)]
        else:
            windows = [14, 7]
        cap = max(2, n_train // 6)
        windows = sorted({min(w, cap) for w in windows})
        if fast:
            windows = windows[:1]
    hiddens = [hidden_size] if hidden_size else ([16] if fast else [8, 16])
    rates = [lr] if lr else ([0.01] if fast else [0.01, 0.003])
    return [{"window": w, "hidden_size": h, "lr": r}
            for w in windows for h in hiddens for r in rates]


def refit_member(pipeline, x, end, member):
    """Train a member's RNN again on rows < ``end`` (all the data), from the same
    initial weights and shuffling seed as in the search, for its best epoch count."""
    config = member["config"]
    window = config["window"]
    first = pipeline.transform.lag + pipeline.lags
    rows = np.arange(first + window - 1, end)
    X, Y = residual_windows(pipeline, x, rows, window)
    model_seed, fit_seed = member["seeds"]
    searched = member["model"]
    model = RNN(x.shape[1], config["hidden_size"], searched.output_size, seed=model_seed,
                loss=searched.loss)
    try:
        history = model.fit(X, Y, epochs=member["best_epoch"], batch_size=BATCH_SIZE,
                            lr=config["lr"], clip_norm=1.0, seed=fit_seed)
    except TrainingDivergedError:
        # Keep the member as the search trained it (on the rows before validation).
        return member["model"], member["history"]
    return model, history


def significantly_better(errors, reference):
    """Whether squared errors ``errors`` beat ``reference`` (same rows) by more than
    one standard error of their paired difference."""
    difference = reference - errors
    m = len(difference)
    if m < 2:
        return False
    return difference.mean() > difference.std(ddof=1) / np.sqrt(m)
