"""The fitted forecasting pipeline: transform, scaling, a ridge autoregression and an
ensemble of RNNs trained on its residuals, with the one closed-loop rule.

Row ``t`` of the model input is ``x_t = [(z_t - z_mean) / z_scale, scaled features]``
where ``z`` is the transformed target. The prediction of the (scaled) ``z_{t+1}`` is

    linear(x_t, ..., x_{t-p+1}) + alpha * mean_k rnn_k(x_{t-w_k+1}, ..., x_t)

Each RNN is warmed up on its last ``w_k`` rows from a zero state (exactly as it was
trained, on windows of ``w_k`` rows) and its last output is the residual it
predicts. Over several steps each RNN carries its state forward and is fed the
combined prediction (in scaled transformed units) as its next input; the linear
part reads the same fed-back values in its lags.

RNNs trained on ``gaussian_nll`` also predict the log-variance of the residual at
every step of that loop. With ``spread`` set, :meth:`Pipeline.paths` turns them
into a spread for each forecast: the members' mean variance of the scaled ``z``,
rescaled to ``u`` (the transform before differencing: the target or its log) and
summed along the differencing chain (a forecast ``lag`` rows ahead inherits the
variance of the forecast it adds to). The errors the closed loop feeds back
through the autoregression's lags are left out; the conformal calibration of the
interval widths (``elman._forecasting.intervals``) absorbs them per horizon.
"""

import numpy as np

from elman.rnn import RNN
from elman._forecasting.transforms import Transform


def lagged_rows(x, rows, lags):
    """Design matrix for predicting rows ``rows`` from the ``lags`` rows before each.

    Parameters
    ----------
    x : ndarray, shape (n, inputs)
    rows : ndarray of int, shape (m,)
        Each row r needs r - lags >= 0.
    lags : int

    Returns
    -------
    ndarray, shape (m, lags * inputs)
        Row r holds x[r-1], x[r-2], ..., x[r-lags], most recent first.
    """
    offsets = rows[:, None] - 1 - np.arange(lags)[None, :]
    return x[offsets].reshape(len(rows), -1)


def ridge(A, b, penalty):
    """Coefficients and intercept of ridge regression (intercept not penalised)."""
    a_mean = A.mean(axis=0)
    b_mean = b.mean()
    Ac = A - a_mean
    gram = Ac.T @ Ac
    gram[np.diag_indices_from(gram)] += penalty
    coef = np.linalg.solve(gram, Ac.T @ (b - b_mean))
    return coef, float(b_mean - a_mean @ coef)


def windows_before(x, rows, window):
    """Input windows: for each predicted row r, x[r-window : r]. Shape (m, window, inputs)."""
    offsets = rows[:, None] - window + np.arange(window)[None, :]
    return x[offsets]


class Pipeline:
    """Everything needed to forecast, in plain arrays (see the module docstring).

    Attributes
    ----------
    transform : Transform
    z_mean, z_scale : float
        Scaling of the transformed target.
    feature_mean, feature_scale : ndarray, shape (k,)
        Scaling of the extra input columns (k may be 0).
    lags : int
        Rows the linear part reads.
    coef : ndarray, shape (lags * inputs,)
    intercept : float
    members : list of (RNN, int)
        The RNNs and their windows.
    alpha : float
        Weight of the RNN ensemble's mean residual (0: the linear part alone).
    spread : bool
        The RNNs have a Gaussian head whose variances :meth:`paths` reports; their
        windows then count in ``context`` even when ``alpha`` is 0.
    """

    def __init__(self, transform, z_mean, z_scale, feature_mean, feature_scale, lags, coef,
                 intercept, members=(), alpha=0.0, spread=False):
        self.transform = transform
        self.z_mean = float(z_mean)
        self.z_scale = float(z_scale)
        self.feature_mean = np.asarray(feature_mean, dtype=np.float64)
        self.feature_scale = np.asarray(feature_scale, dtype=np.float64)
        self.lags = int(lags)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self.members = list(members)
        self.alpha = float(alpha)
        self.spread = bool(spread)

    @property
    def n_inputs(self):
        return 1 + len(self.feature_mean)

    @property
    def context(self):
        """Rows of model input needed before a forecast origin."""
        windows = [w for _, w in self.members] if (self.alpha or self.spread) else []
        return max([self.lags] + windows)

    @property
    def history_needed(self):
        """Rows of data needed before the first forecast origin."""
        return self.context + self.transform.lag

    def inputs(self, y, features):
        """Scaled model inputs, shape (n, inputs); NaN in the first ``lag`` rows."""
        z = (self.transform.forward(y) - self.z_mean) / self.z_scale
        if features is None or features.shape[1] == 0:
            return z[:, None]
        return np.column_stack([z, (features - self.feature_mean) / self.feature_scale])

    def linear(self, x, rows):
        """The linear part's prediction of scaled z at ``rows``."""
        return lagged_rows(x, rows, self.lags) @ self.coef + self.intercept

    def paths(self, y, features, origins, steps, return_sd=False):
        """Closed-loop forecasts in original units from many origins at once.

        Parameters
        ----------
        y : ndarray, shape (n,)
        features : ndarray, shape (n, k) or None
        origins : ndarray of int, shape (B,)
            Origin o forecasts rows o, o+1, ..., o+steps-1 from rows < o. Each
            must satisfy ``history_needed <= o <= n``.
        steps : int
        return_sd : bool, default False
            Also return the spread of each forecast from the RNNs' Gaussian heads
            (requires ``spread``; see the module docstring).

        Returns
        -------
        paths : ndarray, shape (B, steps)
        sd : ndarray, shape (B, steps)
            Only with ``return_sd``: in units of ``u`` (log ratios for a transform
            that takes the log, else original units).
        """
        if return_sd and not self.spread:
            raise ValueError("this pipeline's RNNs have no Gaussian head to give a spread")
        origins = np.asarray(origins, dtype=np.intp)
        x = self.inputs(y, features)
        B = len(origins)
        out = np.empty((B, steps))
        variance = np.zeros((B, steps))
        if B == 0:
            return (out, variance) if return_sd else out
        L = self.context
        lag = self.transform.lag
        # Most recent last: the rows the linear part and the RNN warm-up read.
        recent = windows_before(x, origins, L)                     # (B, L, I)
        states = []
        residual = np.zeros(B)
        use_members = bool(self.alpha) or return_sd
        if use_members:
            for model, window in self.members:
                outputs, state = model.forward(recent[:, L - window:, :], return_state=True)
                residual += outputs[:, -1, 0]
                if return_sd:
                    variance[:, 0] += np.exp(outputs[:, -1, 1])
                states.append(state)
            residual /= len(self.members)
        if lag:
            y_before = y[origins[:, None] - lag + np.arange(lag)[None, :]]
            u_path = np.concatenate([self.transform.base(y_before), np.empty((B, steps))],
                                    axis=1)
        lag_window = recent[:, L - self.lags:, :][:, ::-1, :].reshape(B, -1).copy()
        for step in range(steps):
            z_scaled = lag_window @ self.coef + self.intercept + self.alpha * residual
            u = z_scaled * self.z_scale + self.z_mean
            if lag:
                u = u + u_path[:, step]
                u_path[:, lag + step] = u
            out[:, step] = self.transform.unbase(u)
            if step + 1 == steps:
                break
            # Feed the prediction back: the only input column when there are no features.
            lag_window = np.concatenate([z_scaled[:, None], lag_window[:, :-1]], axis=1)
            if use_members:
                fed = z_scaled[:, None, None]
                residual = np.zeros(B)
                for k, (model, _) in enumerate(self.members):
                    outputs, states[k] = model.forward(fed, states[k], return_state=True)
                    residual += outputs[:, -1, 0]
                    if return_sd:
                        variance[:, step + 1] += np.exp(outputs[:, -1, 1])
                residual /= len(self.members)
        if not return_sd:
            return out
        variance *= self.z_scale ** 2 / len(self.members)
        if lag:
            for step in range(lag, steps):
                variance[:, step] += variance[:, step - lag]
        return out, np.sqrt(variance)

    # ------------------------------------------------------------ persistence
    def state(self):
        """(extra, extra_arrays, first RNN) for a model file."""
        extra = {
            "transform": self.transform.name,
            "lag": self.transform.lag,
            "z_mean": self.z_mean,
            "z_scale": self.z_scale,
            "lags": self.lags,
            "intercept": self.intercept,
            "alpha": self.alpha,
            "spread": self.spread,
            "members": [dict(model.get_config(), window=window)
                        for model, window in self.members],
        }
        arrays = {
            "feature_mean": self.feature_mean,
            "feature_scale": self.feature_scale,
            "coef": self.coef,
        }
        for k, (model, _) in enumerate(self.members[1:], start=1):
            for name, value in model.get_weights().items():
                arrays[f"member{k}.{name}"] = value
        first = self.members[0][0] if self.members else None
        return extra, arrays, first

    @classmethod
    def from_state(cls, extra, arrays, first):
        season = extra["lag"] if "seasonal" in extra["transform"] else None
        transform = Transform(extra["transform"], season)
        members = []
        for k, config in enumerate(extra["members"]):
            config = dict(config)
            window = int(config.pop("window"))
            if k == 0 and first is not None:
                model = first
            else:
                model = RNN(**config)
                prefix = f"member{k}."
                model.set_weights({name[len(prefix):]: value for name, value in arrays.items()
                                   if name.startswith(prefix)})
            members.append((model, window))
        return cls(transform, extra["z_mean"], extra["z_scale"], arrays["feature_mean"],
                   arrays["feature_scale"], extra["lags"], arrays["coef"], extra["intercept"],
                   members, extra["alpha"], extra.get("spread", False))


class Combination:
    """The equal-weight mean of several pipelines' forecasts, in original units.

    Each pipeline runs its own closed loop (feeding back its own forecasts); the
    paths are averaged afterwards. Averaging the forecasts of a few transforms that
    all did well on the validation part is steadier on new data than betting on
    the single best one, whose lead on a short validation part is partly luck.
    """

    def __init__(self, pipelines):
        self.pipelines = list(pipelines)

    @property
    def history_needed(self):
        return max(p.history_needed for p in self.pipelines)

    @property
    def log(self):
        """Whether interval widths are log ratios (every transform takes the log)."""
        return all(p.transform.log for p in self.pipelines)

    @property
    def transform_names(self):
        return [p.transform.name for p in self.pipelines]

    def check(self, y):
        for pipeline in self.pipelines:
            pipeline.transform.check(y)

    @property
    def spread(self):
        """Whether every pipeline's RNNs give a spread (a Gaussian head)."""
        return all(p.spread for p in self.pipelines)

    def paths(self, y, features, origins, steps, return_sd=False):
        """Mean of the pipelines' :meth:`Pipeline.paths`, shape (origins, steps).

        With ``return_sd``, also their spreads combined as the root mean variance,
        in the units of the interval widths (log ratios when :attr:`log`, else
        original units, a log pipeline's spread times its forecast).
        """
        if not return_sd:
            return np.mean([p.paths(y, features, origins, steps) for p in self.pipelines],
                           axis=0)
        paths, variances = [], []
        for pipeline in self.pipelines:
            path, sd = pipeline.paths(y, features, origins, steps, return_sd=True)
            if pipeline.transform.log and not self.log:
                sd = sd * np.abs(path)
            paths.append(path)
            variances.append(sd ** 2)
        return np.mean(paths, axis=0), np.sqrt(np.mean(variances, axis=0))

    def state(self):
        """(list of extras, extra_arrays, first RNN) for a model file.

        The first pipeline's first RNN is the file's model; every other RNN is
        stored in the arrays, under ``pipeline{i}.member{k}.``.
        """
        extras, arrays, first = [], {}, None
        for i, pipeline in enumerate(self.pipelines):
            extra, own, head = pipeline.state()
            if i == 0:
                first = head
            elif head is not None:
                for name, value in head.get_weights().items():
                    own[f"member0.{name}"] = value
            extras.append(extra)
            arrays.update({f"pipeline{i}.{k}": v for k, v in own.items()})
        return extras, arrays, first

    @classmethod
    def from_state(cls, extras, arrays, first):
        pipelines = []
        for i, extra in enumerate(extras):
            prefix = f"pipeline{i}."
            own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            pipelines.append(Pipeline.from_state(extra, own, first if i == 0 else None))
        return cls(pipelines)
