"""The Elman RNN model: weights, forward pass, exact gradients, prediction, forecasts.

    a_t = Wxh x_t + Whh h_{t-1} + bh,   h_t = tanh(a_t),   y_t = Why h_t + by

Layers stack (layer l+1 reads layer l's hidden sequence); the head reads the top
layer. All parameters live in one flat vector (see ``_kernels_numpy`` for the
layout), so an optimizer step or a gradient clip is one operation on one array.
"""

import threading

import numpy as np

from elman import _backend, _gemm_path
from elman._validation import (
    as_float_array,
    as_numeric_array,
    check_dtype,
    check_float,
    check_int,
    check_lengths,
    shape_text,
)

INIT_SCHEMES = ("uniform", "normal", "orthogonal", "identity")

# Where the compiled backend switches from its fused loops to BLAS products around
# the compiled recurrences (_gemm_path). Measured with bench/bench_dispatch.py
# (loss_and_grad, input 4, time 20, BLAS on one thread) on the 2-core AVX2 machine
# this project is built on, after the fused forward step became row dot products
# (_gemv) and the gradient sums register tiles (_gemm_tn): the fused loops win
# (gemm time / fused time, float64) at every batch up to 64 from hidden 8 to 64
# (1.27x at batch 64, hidden 64), up to batch 32 at hidden 128 (1.02x) and batch 8 at
# hidden 256 (1.02x); BLAS wins beyond (0.93x at batch 64 / hidden 128, 0.71x at 16
# / 256). batch * hidden**2 <= 2**19 draws that line in every measured cell of float64
# and all but one of float32 (0.96x at batch 32, hidden 128). A GEMM gains by
# reusing each weight across the batch, which the per-sequence loops cannot; the
# fused loops save the ~2 us of Python per NumPy call, which small steps cannot
# afford. Batch 1 stays on the fused loops at every size, where in fit a whole
# chunk of batch-1 steps is one compiled call.
FUSED_MAX_BATCH_HIDDEN2 = 2 ** 19


def _use_fused_loops(kernels, batch, hidden):
    """True when the compiled fused loops should serve this shape."""
    if kernels.__name__.endswith("_numpy"):
        return True  # the twin's "fused" functions are its GEMM path already
    return batch == 1 or batch * hidden * hidden <= FUSED_MAX_BATCH_HIDDEN2


def _recurrences(kernels):
    return _gemm_path.Recurrences(kernels.recurrence_forward, kernels.recurrence_backward)


class Gradients(dict):
    """The gradients ``RNN.loss_and_grad`` returns: a dict of arrays by weight name.

    Every array is a view into one flat vector laid out like the model's
    parameters (``flat``), so ``clip_gradients`` and ``Optimizer.step`` can work on
    that one vector instead of gathering the dict: at the tutorials' sizes that
    halves the cost of a hand-written training step. Edit the arrays in place
    freely; once an entry is replaced, added or removed the dict is treated as an
    ordinary dict again.
    """

    def __init__(self, views, flat):
        super().__init__(views)
        self.flat = flat
        self._views = tuple(views.values())

    def intact(self):
        """True while every entry is still the original view into ``flat``."""
        return (len(self) == len(self._views)
                and all(a is b for a, b in zip(self.values(), self._views)))

    def __reduce__(self):
        return (dict, (dict(self),))


class RNN:
    """A vanilla (Elman) recurrent network with a linear head, trained by exact BPTT.

    Parameters
    ----------
    input_size : int
        Features per time step, ``I``.
    hidden_size : int
        Units per recurrent layer, ``H``.
    output_size : int
        Outputs per time step, ``O``.
    num_layers : int, default 1
        Stacked recurrent layers, ``L``; layer l+1 reads layer l's hidden sequence.
    return_sequences : bool, default True
        True: an output at every step (many-to-many). False: only after the last
        step (many-to-one).
    dtype : {"float64", "float32"}, default "float64"
        Precision of the weights and of every computation.
    seed : int or None
        Seed for the initial weights (``numpy.random.default_rng``); the same seed
        gives the same weights on every backend and machine.
    init : {"uniform", "normal", "orthogonal", "identity"}, default "uniform"
        ``uniform``: every weight and bias from U(-1/sqrt(H), 1/sqrt(H)), as PyTorch.
        ``normal``: weights from N(0, init_scale**2) (default scale 0.01, as the
        classic tutorials), biases zero.
        ``orthogonal``: recurrent matrices orthogonal (scaled by init_scale,
        default 1), the rest uniform.
        ``identity``: recurrent matrices init_scale (default 1) times the identity
        (IRNN, Le et al. 2015), other weights N(0, 0.001**2), biases zero.
    init_scale : float, optional
        Scale for ``normal``, ``orthogonal`` and ``identity`` (see above).
    spectral_radius : float, optional
        After initialising, rescale each recurrent matrix to this spectral radius.

    Attributes
    ----------
    n_params : int
        Number of trainable parameters.

    Examples
    --------
    >>> import numpy as np, elman
    >>> model = elman.RNN(3, 16, 1, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(32, 7, 3))   # (batch, time, input)
    >>> model.forward(X).shape                                   # (batch, time, output)
    (32, 7, 1)
    """

    def __init__(self, input_size, hidden_size, output_size, *, num_layers=1,
                 return_sequences=True, dtype="float64", seed=None, init="uniform",
                 init_scale=None, spectral_radius=None):
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        if not isinstance(return_sequences, (bool, np.bool_)):
            raise TypeError(f"return_sequences must be True or False; got {return_sequences!r}")
        self.return_sequences = bool(return_sequences)
        self.dtype = check_dtype(dtype)
        if seed is not None:
            seed = check_int("seed", seed, 0)
        self.seed = seed
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}; got {init!r}")
        self.init = init
        self.init_scale = check_float("init_scale", init_scale, 0.0, allow_none=True,
                                      strict=True)
        self.spectral_radius = check_float("spectral_radius", spectral_radius, 0.0,
                                           allow_none=True, strict=True)
        self.n_params = _gemm_path.parameter_count(
            self.input_size, self.hidden_size, self.output_size, self.num_layers)
        self._theta = self._initial_parameters()
        self._training_lock = threading.Lock()

    # ------------------------------------------------------------------ weights
    def _initial_parameters(self):
        I, H, O, L = self.input_size, self.hidden_size, self.output_size, self.num_layers
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / np.sqrt(H)
        theta = np.empty(self.n_params, dtype=np.float64)
        layers, Why, by = _gemm_path.parameter_views(theta, I, H, O, L)
        if self.init == "uniform" or self.init == "orthogonal":
            theta[:] = rng.uniform(-bound, bound, size=self.n_params)
        elif self.init == "normal":
            scale = 0.01 if self.init_scale is None else self.init_scale
            theta[:] = rng.normal(0.0, scale, size=self.n_params)
        else:  # identity
            theta[:] = rng.normal(0.0, 0.001, size=self.n_params)
        if self.init in ("normal", "identity"):
            for _, _, bh in layers:
                bh[:] = 0.0
            by[:] = 0.0
        for _, Whh, _ in layers:
            if self.init == "orthogonal":
                scale = 1.0 if self.init_scale is None else self.init_scale
                q, r = np.linalg.qr(rng.normal(size=(H, H)))
                # Sign correction makes Q uniformly distributed (Mezzadri 2007).
                Whh[:] = scale * q * np.sign(np.diag(r))
            elif self.init == "identity":
                Whh[:] = (1.0 if self.init_scale is None else self.init_scale) * np.eye(H)
            if self.spectral_radius is not None:
                radius = np.max(np.abs(np.linalg.eigvals(Whh)))
                if radius > 0:
                    Whh *= self.spectral_radius / radius
        return theta.astype(self.dtype)

    def _weight_shapes(self):
        return _gemm_path.weight_shapes(self.input_size, self.hidden_size, self.output_size,
                                        self.num_layers)

    def _views(self, flat):
        """Dict of views into a flat vector laid out like the parameters."""
        layers, Why, by = _gemm_path.parameter_views(
            flat, self.input_size, self.hidden_size, self.output_size, self.num_layers)
        views = {}
        for layer, (Wxh, Whh, bh) in enumerate(layers):
            views[f"layers.{layer}.Wxh"] = Wxh
            views[f"layers.{layer}.Whh"] = Whh
            views[f"layers.{layer}.bh"] = bh
        views["Why"] = Why
        views["by"] = by
        return views

    def get_weights(self):
        """Copies of every weight, by name.

        Returns
        -------
        dict of ndarray
            ``layers.{l}.Wxh`` (H, I) for l = 0 and (H, H) above, ``layers.{l}.Whh``
            (H, H), ``layers.{l}.bh`` (H,), ``Why`` (O, H), ``by`` (O,).
        """
        return {name: view.copy() for name, view in self._views(self._theta).items()}

    def set_weights(self, weights):
        """Replace every weight; all shapes are checked before anything changes.

        Parameters
        ----------
        weights : dict of array_like
            Exactly the keys and shapes of :meth:`get_weights`; values are cast to
            the model's dtype and must be finite.
        """
        if not isinstance(weights, dict):
            raise TypeError(f"weights must be a dict of arrays; got {type(weights).__name__}")
        shapes = self._weight_shapes()
        missing = sorted(set(shapes) - set(weights))
        extra = sorted(set(weights) - set(shapes))
        if missing or extra:
            raise ValueError(
                f"weights must have exactly the keys {sorted(shapes)}; missing {missing}, "
                f"unexpected {extra}"
            )
        theta = np.empty_like(self._theta)
        views = self._views(theta)
        for name, shape in shapes.items():
            value = as_float_array(f"weights[{name!r}]", weights[name], self.dtype)
            if value.shape != shape:
                raise ValueError(
                    f"weights[{name!r}] must have shape {shape_text(shape)}; got "
                    f"{shape_text(value.shape)}"
                )
            views[name][...] = value
        self._theta = theta

    @property
    def parameters(self):
        """The flat parameter vector (a read-only view; use set_weights to change it)."""
        view = self._theta.view()
        view.flags.writeable = False
        return view

    def _apply_update(self, optimizer, grads):
        """One optimizer step on the flat parameters (for Optimizer.step(model, ...))."""
        if (isinstance(grads, Gradients) and grads.intact()
                and grads.flat.shape == self._theta.shape):
            flat = grads.flat.astype(self.dtype, copy=False)
        elif isinstance(grads, dict):
            shapes = self._weight_shapes()
            if set(grads) != set(shapes):
                raise ValueError(f"grads must have exactly the keys {sorted(shapes)}")
            flat = np.empty_like(self._theta)
            for name, view in self._views(flat).items():
                value = as_numeric_array(f"grads[{name!r}]", grads[name])
                if value.shape != shapes[name]:
                    raise ValueError(
                        f"grads[{name!r}] must have shape {shape_text(shapes[name])}; got "
                        f"{shape_text(value.shape)}"
                    )
                view[...] = value
        else:
            flat = as_float_array("grads", grads, self.dtype, finite=False)
            if flat.shape != self._theta.shape:
                raise ValueError(
                    f"grads must have shape ({self.n_params},); got {shape_text(flat.shape)}"
                )
        theta = self._theta.copy()
        optimizer._step_flat(theta, flat)
        self._theta = theta

    # ------------------------------------------------------------- validation
    def _check_X(self, X, name="X"):
        """(B, T, I) contiguous array in the model's dtype, and whether X was unbatched.

        ``name`` is the argument's name in error messages (``history`` for forecast).
        """
        array = as_numeric_array(name, X)
        if array.ndim not in (2, 3):
            raise ValueError(
                f"{name} must have shape (batch, time, {self.input_size}) or (time, "
                f"{self.input_size}); got {array.ndim} dimensions, shape "
                f"{shape_text(array.shape)}"
            )
        unbatched = array.ndim == 2
        if unbatched:
            array = array[None]
        if array.shape[2] != self.input_size:
            raise ValueError(
                f"{name} must have {self.input_size} features on its last axis (input_size); "
                f"got shape {shape_text(array.shape[1:] if unbatched else array.shape)}"
            )
        if array.shape[1] == 0:
            raise ValueError(f"{name} is an empty sequence: its time axis has length 0")
        return as_float_array(name, array, self.dtype), unbatched

    def _check_h0(self, h0, batch, unbatched):
        L, H = self.num_layers, self.hidden_size
        if h0 is None:
            return np.zeros((L, batch, H), dtype=self.dtype)
        array = as_numeric_array("h0", h0)
        expected = (L, H) if unbatched else (L, batch, H)
        if array.shape != expected:
            raise ValueError(
                f"h0 must have shape {shape_text(expected)} (num_layers, "
                f"{'' if unbatched else 'batch, '}hidden_size); got {shape_text(array.shape)}"
            )
        if unbatched:
            array = array[:, None, :]
        return as_float_array("h0", array, self.dtype)

    def _check_lengths(self, lengths, batch, steps, unbatched):
        if lengths is None:
            return np.full(batch, steps, dtype=np.intp)
        if unbatched:
            lengths = np.reshape(as_numeric_array("lengths", lengths), (-1,))
        return check_lengths(lengths, batch, steps)

    def _check_Y(self, Y, batch, steps, unbatched, lengths):
        """Targets as the kernels take them: (B, T, O), or (B, 1, O) for many-to-one."""
        O = self.output_size
        array = as_numeric_array("Y", Y)
        if self.return_sequences:
            expected = (steps, O) if unbatched else (batch, steps, O)
        else:
            expected = (O,) if unbatched else (batch, O)
        if array.shape != expected:
            mode = "return_sequences=True" if self.return_sequences else "return_sequences=False"
            raise ValueError(
                f"Y must have shape {shape_text(expected)} for this model ({mode}, "
                f"output_size={O}); got {shape_text(array.shape)}"
            )
        if unbatched:
            array = array[None]
        if not self.return_sequences:
            array = array[:, None, :]
        converted = as_float_array("Y", array, self.dtype, finite=False)
        valid = converted
        if self.return_sequences and np.any(lengths != steps):
            valid = converted[np.arange(steps)[None, :] < lengths[:, None]]
        if not np.isfinite(valid).all():
            if np.isfinite(as_numeric_array("Y", array)).all():
                raise ValueError(f"Y has values too large for {self.dtype}")
            raise ValueError("Y contains NaN or inf at a valid step; every target must be finite")
        return converted

    # ---------------------------------------------------------------- compute
    def forward(self, X, h0=None, *, return_state=False, lengths=None):
        """Run the network over whole sequences.

        Parameters
        ----------
        X : array_like, shape (batch, time, input_size) or (time, input_size)
            Input sequences; integer and non-contiguous arrays are converted.
        h0 : array_like, shape (num_layers, batch, hidden_size), optional
            Initial hidden state of every layer ((num_layers, hidden_size) for
            unbatched X). Zeros by default.
        return_state : bool, default False
            Also return each layer's state after the last (valid) step.
        lengths : array_like of int, shape (batch,), optional
            Valid steps of each sequence in a padded batch. Outputs at padded steps
            are zero; the returned state is the one after each sequence's last
            valid step.

        Returns
        -------
        Y : ndarray
            (batch, time, output_size) when ``return_sequences``, else
            (batch, output_size); without the batch axis for unbatched X.
        h_last : ndarray, shape (num_layers, batch, hidden_size)
            Only with ``return_state=True``; (num_layers, hidden_size) for
            unbatched X.
        """
        X, unbatched = self._check_X(X)
        batch, steps, _ = X.shape
        h0 = self._check_h0(h0, batch, unbatched)
        lengths = self._check_lengths(lengths, batch, steps, unbatched)
        Y, h_last = self._forward_checked(X, h0, lengths)
        if not self.return_sequences:
            Y = Y[:, 0, :]
        if unbatched:
            Y, h_last = Y[0], h_last[:, 0, :]
        return (Y, h_last) if return_state else Y

    def _forward_checked(self, X, h0, lengths):
        I, H, O, L = self.input_size, self.hidden_size, self.output_size, self.num_layers
        batch, steps, _ = X.shape
        Y = np.empty((batch, steps if self.return_sequences else 1, O), dtype=self.dtype)
        h_last = np.empty((L, batch, H), dtype=self.dtype)
        if batch == 0:
            return Y, h_last
        kernels = _backend.get_kernels()
        theta = self._theta
        if _use_fused_loops(kernels, batch, H):
            kernels.forward(theta, I, H, O, L, self.return_sequences, X, h0, lengths, Y, h_last)
        else:
            _gemm_path.forward(_recurrences(kernels), theta, I, H, O, L, self.return_sequences,
                               X, h0, lengths, Y, h_last)
        return Y, h_last

    def loss_and_grad(self, X, Y, h0=None, *, lengths=None):
        """Mean squared error and its exact gradient by backpropagation through time.

        Parameters
        ----------
        X : array_like, shape (batch, time, input_size) or (time, input_size)
        Y : array_like
            Targets: (batch, time, output_size) when ``return_sequences``, else
            (batch, output_size); without the batch axis for unbatched X.
        h0 : array_like, shape (num_layers, batch, hidden_size), optional
        lengths : array_like of int, shape (batch,), optional
            Valid steps per sequence; padded steps add nothing to the loss or the
            gradients, and their targets are ignored (they may be NaN).

        Returns
        -------
        loss : float
            mean((Y_hat - Y)**2) over every valid target element, as
            ``torch.nn.MSELoss()``.
        grads : dict of ndarray
            d loss / d weight, with the keys and shapes of :meth:`get_weights`.
        """
        X, unbatched = self._check_X(X)
        batch, steps, _ = X.shape
        if batch == 0:
            raise ValueError("X holds no sequences (batch size 0); the loss is undefined")
        h0 = self._check_h0(h0, batch, unbatched)
        lengths = self._check_lengths(lengths, batch, steps, unbatched)
        Y = self._check_Y(Y, batch, steps, unbatched, lengths)
        grad = np.empty_like(self._theta)
        loss = self._loss_and_grad_checked(X, Y, h0, lengths, grad)
        return loss, Gradients(self._views(grad), grad)

    def _loss_and_grad_checked(self, X, Y, h0, lengths, grad):
        I, H, O, L = self.input_size, self.hidden_size, self.output_size, self.num_layers
        kernels = _backend.get_kernels()
        if _use_fused_loops(kernels, X.shape[0], H):
            return kernels.loss_and_grad(self._theta, I, H, O, L, self.return_sequences,
                                         X, Y, h0, lengths, grad)
        return _gemm_path.loss_and_grad(_recurrences(kernels), self._theta, I, H, O, L,
                                        self.return_sequences, X, Y, h0, lengths, grad)

    def predict(self, X, *, batch_size=4096, lengths=None):
        """Outputs for many sequences, computed ``batch_size`` sequences at a time.

        Parameters
        ----------
        X : array_like, shape (n, time, input_size) or (time, input_size)
        batch_size : int, default 4096
            Sequences per forward call; bounds the memory of large inputs.
        lengths : array_like of int, shape (n,), optional

        Returns
        -------
        ndarray
            As :meth:`forward`: (n, time, output_size) or (n, output_size).
        """
        batch_size = check_int("batch_size", batch_size, 1)
        X, unbatched = self._check_X(X)
        n, steps, _ = X.shape
        lengths = self._check_lengths(lengths, n, steps, unbatched)
        outputs = np.empty((n, steps if self.return_sequences else 1, self.output_size),
                           dtype=self.dtype)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            h0 = np.zeros((self.num_layers, stop - start, self.hidden_size), dtype=self.dtype)
            outputs[start:stop] = self._forward_checked(X[start:stop], h0,
                                                        lengths[start:stop])[0]
        if not self.return_sequences:
            outputs = outputs[:, 0, :]
        return outputs[0] if unbatched else outputs

    def forecast(self, history, steps, *, h0=None, feedback=None, future=None,
                 return_state=False):
        """Closed-loop forecast: warm up on a history, then feed predictions back.

        After the history, each prediction becomes (part of) the next input: output
        ``o`` replaces input column ``feedback[o]``. Input columns not fed back are
        exogenous and must be given for the future steps in ``future``.

        Parameters
        ----------
        history : array_like, shape (batch, time, input_size) or (time, input_size)
            Observed inputs; the state is warmed up on all of them.
        steps : int
            How many future values to predict (>= 1). The first is the model's output
            after the last history step, so ``forecast(h, 1)`` equals the last step
            of ``forward(h)``.
        h0 : array_like, optional
            Initial state for the history, as in :meth:`forward`.
        feedback : sequence of int or None, length output_size, optional
            ``feedback[o]`` is the input column that output ``o`` feeds, or -1 / None
            for an output that is not fed back. By default output ``o`` feeds column
            ``o`` when output_size == input_size; otherwise it must be given.
        future : array_like, shape (batch, steps - 1, input_size), optional
            Inputs for the steps after the history ((steps - 1, input_size) for
            unbatched history). Required when some input column is not fed back;
            values in fed-back columns are ignored (they may be NaN).
        return_state : bool, default False
            Also return the state after the last forecast step.

        Returns
        -------
        ndarray, shape (batch, steps, output_size) or (steps, output_size)
            The forecasts; with ``return_state``, also (num_layers, batch,
            hidden_size) states.
        """
        I, H, O, L = self.input_size, self.hidden_size, self.output_size, self.num_layers
        X, unbatched = self._check_X(history, "history")
        steps = check_int("steps", steps, 1)
        batch = X.shape[0]
        h0 = self._check_h0(h0, batch, unbatched)
        feedback = self._check_feedback(feedback)
        fed = set(int(c) for c in feedback if c >= 0)
        exogenous = [c for c in range(I) if c not in fed]
        if future is None:
            if exogenous and steps > 1:
                raise ValueError(
                    f"input columns {exogenous} are not fed back from the outputs; pass "
                    f"future= with their values for the {steps - 1} steps after the history"
                )
            future = np.zeros((batch, steps - 1, I), dtype=self.dtype)
        else:
            array = as_numeric_array("future", future)
            expected = (steps - 1, I) if unbatched else (batch, steps - 1, I)
            if array.shape != expected:
                raise ValueError(
                    f"future must have shape {shape_text(expected)} (steps - 1 rows of "
                    f"input_size columns); got {shape_text(array.shape)}"
                )
            if unbatched:
                array = array[None]
            future = as_float_array("future", array, self.dtype, finite=False)
            if not np.isfinite(future[:, :, exogenous]).all():
                raise ValueError(
                    f"future contains NaN or inf in exogenous columns {exogenous}"
                )
            future = future.copy()
            future[:, :, sorted(fed)] = 0.0
        Y = np.empty((batch, steps, O), dtype=self.dtype)
        h_last = np.empty((L, batch, H), dtype=self.dtype)
        _backend.get_kernels().forecast(self._theta, I, H, O, L, X, h0, feedback, future,
                                        Y, h_last)
        if unbatched:
            Y, h_last = Y[0], h_last[:, 0, :]
        return (Y, h_last) if return_state else Y

    def _check_feedback(self, feedback):
        I, O = self.input_size, self.output_size
        if feedback is None:
            if O != I:
                raise ValueError(
                    f"feedback must be given when output_size ({O}) differs from input_size "
                    f"({I}): feedback[o] is the input column output o feeds, or -1"
                )
            return np.arange(O, dtype=np.intp)
        try:
            values = [-1 if c is None else c for c in feedback]
        except TypeError:
            raise TypeError(
                f"feedback must be a sequence of {O} input columns (int, or -1 / None for "
                f"an output that is not fed back); got {type(feedback).__name__} {feedback!r}"
            ) from None
        if len(values) != O:
            raise ValueError(f"feedback must have one entry per output ({O}); got {len(values)}")
        checked = [check_int(f"feedback[{o}]", c, -1, I - 1) for o, c in enumerate(values)]
        used = [c for c in checked if c >= 0]
        if len(used) != len(set(used)):
            raise ValueError(f"feedback feeds one input column from two outputs: {checked}")
        return np.array(checked, dtype=np.intp)

    # --------------------------------------------------------------- training
    def fit(self, X, Y, **kwargs):
        """Train on windows; see :func:`elman.training.fit` for every argument."""
        from elman.training import fit

        return fit(self, X, Y, **kwargs)

    # ------------------------------------------------------------ persistence
    def get_config(self):
        """Constructor arguments, as plain Python values."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "num_layers": self.num_layers,
            "return_sequences": self.return_sequences,
            "dtype": self.dtype.name,
            "seed": self.seed,
            "init": self.init,
            "init_scale": self.init_scale,
            "spectral_radius": self.spectral_radius,
        }

    def save(self, path, *, optimizer=None, extra=None, extra_arrays=None):
        """Write the model (and an optimizer's state) to one ``.npz`` file, atomically.

        Loading it back never runs code from the file. See
        :func:`elman.model_file.save` for every argument and :func:`elman.load`.
        """
        from elman.model_file import save

        save(self, path, optimizer=optimizer, extra=extra, extra_arrays=extra_arrays)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_training_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._training_lock = threading.Lock()

    def __repr__(self):
        extra = "" if self.num_layers == 1 else f", num_layers={self.num_layers}"
        if not self.return_sequences:
            extra += ", return_sequences=False"
        if self.dtype != np.float64:
            extra += f", dtype={self.dtype.name!r}"
        return (f"RNN({self.input_size}, {self.hidden_size}, {self.output_size}{extra})")

    # ----------------------------------------------------------- interoperability
    def to_torch_state_dict(self, *, rnn_prefix="rnn.", head_prefix="fc."):
        """The weights as a ``torch.nn.RNN`` + ``torch.nn.Linear`` state dict of NumPy arrays.

        ``bh`` becomes ``bias_ih_l{k}`` and ``bias_hh_l{k}`` is zero. See
        :func:`elman.interop.to_torch_state_dict`; torch is not imported.
        """
        from elman.interop import to_torch_state_dict

        return to_torch_state_dict(self, rnn_prefix=rnn_prefix, head_prefix=head_prefix)

    @classmethod
    def from_torch_state_dict(cls, state_dict, *, rnn_prefix="rnn.", head_prefix="fc.",
                              return_sequences=True, dtype=None):
        """A model from a ``torch.nn.RNN`` + ``torch.nn.Linear`` state dict (arrays or tensors).

        Sizes come from the shapes; ``bh = bias_ih + bias_hh``. See
        :func:`elman.interop.from_torch_state_dict`; torch is not imported.
        """
        from elman.interop import from_torch_state_dict

        return from_torch_state_dict(state_dict, rnn_prefix=rnn_prefix,
                                     head_prefix=head_prefix,
                                     return_sequences=return_sequences, dtype=dtype)
