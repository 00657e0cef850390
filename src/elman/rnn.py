"""The Elman RNN model: weights, forward pass, exact gradients, prediction, forecasts.

    a_t = Wxh x_t + Whh h_{t-1} + bh,   h_t = f(a_t),   y_t = Why h_t + by

with f = tanh (the default) or relu.
Layers stack (layer l+1 reads layer l's hidden sequence); the head reads the top
layer. All parameters live in one flat vector (see ``elman._layout``), so an
optimizer step or a gradient clip is one operation on one array. Which code computes
a call (compiled loops, BLAS products, or the NumPy twin) is the route table's
choice (``elman._engine``); arguments are checked once, by ``elman._validation``.
"""

from __future__ import annotations

import os
import threading
from types import MethodType
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, overload

import numpy as np

from elman import _backend, _engine, _losses
from elman._layout import (
    ACTIVATIONS,
    Gradients,
    named_views,
    parameter_count,
    parameter_views,
    view_spans,
    weight_shapes,
)
from elman._validation import (
    all_finite,
    as_float_array,
    as_numeric_array,
    check_bool,
    check_dtype,
    check_feedback,
    check_float,
    check_future,
    check_initial_state,
    check_int,
    check_output_gradient,
    check_sequence_lengths,
    check_sequences,
    check_targets,
    full_lengths,
    ready_array,
    shape_text,
    stream_step_ready_python,
    zero_states,
)
from elman._typing import Array, ArrayLike, DTypeLike, FloatArray

if TYPE_CHECKING:
    from elman.optimizers import Optimizer

__all__ = ["Gradients", "INIT_SCHEMES", "NONLINEARITIES", "RNN"]

INIT_SCHEMES = ("uniform", "normal", "orthogonal", "identity")
NONLINEARITIES = ACTIVATIONS


def _stream_step_check() -> Callable[..., bool]:
    """The compiled form of ``_validation.stream_step_ready_python`` (the same test,
    read from the arrays' headers in one call) when the compiled kernels are the
    process's backend; otherwise that Python function."""
    if _backend.active_name() == "cython":
        compiled = getattr(_backend.get_kernels(), "_stream_step_ready", None)
        if compiled is not None:
            return compiled  # type: ignore[no-any-return]
    return stream_step_ready_python


# stream_step_ready(theta, input_size, hidden_size, num_layers, x, h) -> bool, equal
# to _validation.stream_step_ready_python on every input. A test of two arrays, not a
# kernel: it computes nothing, so forward calls it before any kernel, whichever
# backend then computes.
stream_step_ready = _stream_step_check()


class _TrainingFit:
    """``RNN.fit`` is :func:`elman.training.fit` itself, bound to the model.

    One function, one signature and one docstring: ``help(elman.RNN.fit)`` and
    ``inspect.signature(model.fit)`` show fit's own arguments. The training loop
    sits above this module (it imports it), so it is imported when ``fit`` is
    looked up, not when this module is.
    """

    def __get__(self, model: RNN | None, owner: type | None = None) -> Callable[..., Any]:
        from elman.training import fit

        return fit if model is None else MethodType(fit, model)


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
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The recurrence's activation f, as ``torch.nn.RNN(nonlinearity=...)``:
        h_t = tanh(a_t), or h_t = max(0, a_t) (whose derivative is taken as 1 where
        h_t > 0 and 0 elsewhere, as torch does). relu pairs with ``init="identity"``
        (IRNN).
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
        (IRNN, Le et al. 2015, made for ``nonlinearity="relu"``), other weights
        N(0, 0.001**2), biases zero.
    init_scale : float, optional
        Scale for ``normal``, ``orthogonal`` and ``identity`` (see above).
    spectral_radius : float, optional
        After initialising, rescale each recurrent matrix to this spectral radius.
    loss : {"mse", "mae", "huber", "cross_entropy", "gaussian_nll"}, default "mse"
        What :meth:`loss_and_grad` and ``fit`` minimise, a mean over every valid
        target element, as PyTorch defines it: ``mse`` ``F.mse_loss``, ``mae``
        ``F.l1_loss``, ``huber`` ``F.huber_loss`` (delta 1.0), ``cross_entropy``
        ``F.cross_entropy`` (the O outputs are the logits of O classes, O >= 2, and
        the targets are class indices), ``gaussian_nll`` ``F.gaussian_nll_loss``
        with ``full=False`` (O = 2k outputs: k means, then k log-variances; the
        targets are the k values, and the variance is clamped at 1e-6 as PyTorch
        does). :meth:`forward` always returns the head's raw outputs; :meth:`predict`
        returns classes or means, and :meth:`predict_proba` and
        ``predict(return_std=True)`` the rest.

    Attributes
    ----------
    n_params : int
        Number of trainable parameters.

    Notes
    -----
    The flat parameter vector is ``_theta``. It is replaced as a whole, never
    written in place, by ``set_weights``, ``Optimizer.step`` and the training loop
    (``elman.training``), which also holds ``_training_lock`` while it trains.

    Examples
    --------
    >>> import numpy as np, elman
    >>> model = elman.RNN(3, 16, 1, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(32, 7, 3))   # (batch, time, input)
    >>> model.forward(X).shape                                   # (batch, time, output)
    (32, 7, 1)
    """

    _theta: FloatArray

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *,
                 num_layers: int = 1, return_sequences: bool = True,
                 nonlinearity: str = "tanh", dtype: DTypeLike = "float64",
                 seed: int | None = None, init: str = "uniform",
                 init_scale: float | None = None,
                 spectral_radius: float | None = None, loss: str = "mse") -> None:
        self._configure(input_size, hidden_size, output_size, num_layers=num_layers,
                        return_sequences=return_sequences, nonlinearity=nonlinearity,
                        dtype=dtype, seed=seed, init=init, init_scale=init_scale,
                        spectral_radius=spectral_radius, loss=loss)
        self._theta = self._initial_parameters()

    def _configure(self, input_size, hidden_size, output_size, *, num_layers=1,
                   return_sequences=True, nonlinearity="tanh", dtype="float64", seed=None,
                   init="uniform", init_scale=None, spectral_radius=None, loss="mse"):
        """Check and record the configuration (the constructor's arguments)."""
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.return_sequences = check_bool("return_sequences", return_sequences)
        if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}; got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity
        # The kernels' activation code.
        self._activation = NONLINEARITIES.index(nonlinearity)
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
        self._loss_code = _losses.loss_code(loss)
        _losses.check_output_size(loss, self.output_size)
        self.n_params = parameter_count(self.input_size, self.hidden_size, self.output_size,
                                        self.num_layers)
        self._training_lock = threading.Lock()

    @classmethod
    def _from_parameters(cls, config: Mapping[str, Any],
                         weights: Mapping[str, ArrayLike]) -> RNN:
        """A model with this configuration (as :meth:`get_config` returns it) and these
        weights (as :meth:`get_weights` returns them), without drawing initial weights.

        What model files, ``from_torch_state_dict`` and checkpoints build models with.
        A configuration key the constructor does not take is a TypeError; weights
        with missing keys, wrong shapes or non-finite values are a ValueError.
        """
        model = cls.__new__(cls)
        model._configure(**config)
        model._theta = model._checked_weights(weights)
        return model

    # ------------------------------------------------------------------ weights
    def _initial_parameters(self):
        I, H, O, L = self.input_size, self.hidden_size, self.output_size, self.num_layers
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / np.sqrt(H)
        theta = np.empty(self.n_params, dtype=np.float64)
        layers, Why, by = parameter_views(theta, I, H, O, L)
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

    @property
    def loss(self) -> str:
        """The loss the model trains on (a constructor argument; read-only)."""
        return _losses.LOSSES[self._loss_code]

    def _sizes(self) -> tuple[int, int, int, int]:
        return self.input_size, self.hidden_size, self.output_size, self.num_layers

    def _target_size(self) -> tuple[int, int | None, str | None]:
        """(target width, number of classes or None, how a shape error describes the
        model): how the loss reads targets (see _validation.check_targets)."""
        classes = self.output_size if self._loss_code == _losses.CROSS_ENTROPY else None
        width = _losses.target_width(self._loss_code, self.output_size)
        about = None
        if self._loss_code == _losses.GAUSSIAN_NLL:
            about = (f"loss='gaussian_nll', output_size={self.output_size}: {width} "
                     f"target{'s' if width > 1 else ''} per step")
        return width, classes, about

    def _weight_shapes(self):
        return weight_shapes(*self._sizes())

    def _views(self, flat):
        """Dict of views into a flat vector laid out like the parameters."""
        return named_views(flat, *self._sizes())

    def get_weights(self) -> dict[str, FloatArray]:
        """Copies of every weight, by name.

        Returns
        -------
        dict of ndarray
            ``layers.{l}.Wxh`` (H, I) for l = 0 and (H, H) above, ``layers.{l}.Whh``
            (H, H), ``layers.{l}.bh`` (H,), ``Why`` (O, H), ``by`` (O,).
        """
        return {name: view.copy() for name, view in self._views(self._theta).items()}

    def set_weights(self, weights: Mapping[str, ArrayLike]) -> None:
        """Replace every weight; all shapes are checked before anything changes.

        Parameters
        ----------
        weights : dict of array_like
            Exactly the keys and shapes of :meth:`get_weights`; values are cast to
            the model's dtype and must be finite.
        """
        self._theta = self._checked_weights(weights)

    def _checked_weights(self, weights):
        """A new flat parameter vector from a dict of weights, every one checked."""
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
        theta = np.empty(self.n_params, dtype=self.dtype)
        views = self._views(theta)
        for name, shape in shapes.items():
            value = as_float_array(f"weights[{name!r}]", weights[name], self.dtype)
            if value.shape != shape:
                raise ValueError(
                    f"weights[{name!r}] must have shape {shape_text(shape)}; got "
                    f"{shape_text(value.shape)}"
                )
            views[name][...] = value
        return theta

    @property
    def parameters(self) -> FloatArray:
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

    # ---------------------------------------------------------------- compute
    # The fast paths of the compute methods: inputs that are already what the kernels
    # take pass after a few attribute tests and one finiteness test each. Anything
    # else (lengths given, conversion needed, a bad value) goes through the full checks
    # of elman._validation, which alone raise errors; so the errors stay theirs.
    def _ready_inputs(self, X: object, h0: object, lengths: object
                      ) -> tuple[FloatArray, FloatArray, Array, bool] | None:
        """(X (B, T, I), h0 (L, B, H), lengths, unbatched) when X and h0 need neither a
        conversion nor a copy and lengths is None; otherwise None."""
        if lengths is not None or type(X) is not np.ndarray:
            return None
        shape = X.shape
        if len(shape) == 3:
            batch, steps, width = shape
        elif len(shape) == 2:
            batch = 1
            steps, width = shape
        else:
            return None
        if (width != self.input_size or steps == 0 or batch == 0 or X.dtype != self.dtype
                or not X.flags.c_contiguous or not all_finite(X)):
            return None
        L, H = self.num_layers, self.hidden_size
        unbatched = len(shape) == 2
        if h0 is None:
            h0 = zero_states(L, batch, H, self.dtype)
        else:
            h0 = ready_array(h0, (L, H) if unbatched else (L, batch, H), self.dtype)
            if h0 is None:
                return None
            if unbatched:
                h0 = h0.reshape(L, 1, H)
        if unbatched:
            X = X.reshape(1, steps, width)
        return X, h0, full_lengths(batch, steps), unbatched

    def _checked_inputs(self, X: object, h0: object, lengths: object
                        ) -> tuple[FloatArray, FloatArray, Array, bool]:
        """(X (B, T, I), h0 (L, B, H), lengths, unbatched) by the full checks of
        ``elman._validation``, which raise the errors."""
        X, unbatched = check_sequences(X, self.input_size, self.dtype)
        batch, steps, _ = X.shape
        h0 = check_initial_state(h0, self.num_layers, self.hidden_size, batch, unbatched,
                                 self.dtype)
        lengths = check_sequence_lengths(lengths, batch, steps, unbatched)
        return X, h0, lengths, unbatched

    def _ready_targets(self, Y: object, batch: int, steps: int,
                       unbatched: bool) -> FloatArray | None:
        """Targets (B, T or 1, W) when Y needs neither a conversion nor a copy; else
        None (whole sequences: every target must be finite). W is the loss's target
        width; class indices always take the full checks."""
        if self._loss_code == _losses.CROSS_ENTROPY:
            return None
        O = _losses.target_width(self._loss_code, self.output_size)
        shape: tuple[int, ...]
        if self.return_sequences:
            shape = (steps, O) if unbatched else (batch, steps, O)
        elif unbatched:
            shape = (O,)
        elif O == 1 and type(Y) is np.ndarray and Y.ndim == 1:
            shape = (batch,)
        else:
            shape = (batch, O)
        Y = ready_array(Y, shape, self.dtype)
        if Y is None or (self.return_sequences and not unbatched):
            return Y
        return Y.reshape(batch, steps if self.return_sequences else 1, O)

    # For type checkers: the outputs alone, or with return_state=True a pair.
    @overload
    def forward(self, X: ArrayLike, h0: ArrayLike | None = None, *,
                return_state: Literal[False] = False,
                lengths: ArrayLike | None = None) -> FloatArray: ...

    @overload
    def forward(self, X: ArrayLike, h0: ArrayLike | None = None, *, return_state: Literal[True],
                lengths: ArrayLike | None = None) -> tuple[FloatArray, FloatArray]: ...

    @overload
    def forward(self, X: ArrayLike, h0: ArrayLike | None = None, *, return_state: bool,
                lengths: ArrayLike | None = None
                ) -> FloatArray | tuple[FloatArray, FloatArray]: ...

    def forward(self, X: ArrayLike, h0: ArrayLike | None = None, *, return_state: bool = False,
                lengths: ArrayLike | None = None) -> FloatArray | tuple[FloatArray, FloatArray]:
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
            (batch, output_size); without the batch axis for unbatched X. The
            head's raw outputs whatever the loss: logits for ``cross_entropy``,
            means then log-variances for ``gaussian_nll`` (:meth:`predict` turns
            them into classes or means).
        h_last : ndarray, shape (num_layers, batch, hidden_size)
            Only with ``return_state=True``; (num_layers, hidden_size) for
            unbatched X.
        """
        if return_state and lengths is None and stream_step_ready(
                self._theta, self.input_size, self.hidden_size, self.num_layers, X, h0):
            # The streaming idiom, forward(x_t[None], h, return_state=True), when
            # x_t and h are ready as they are: one compiled step.
            Y = np.empty((1, self.output_size) if self.return_sequences
                         else (self.output_size,), dtype=self.dtype)
            h_last = np.empty((self.num_layers, self.hidden_size), dtype=self.dtype)
            _engine.step(self._theta, self.input_size, self.hidden_size, self.output_size,
                         self.num_layers, self._activation, X, h0, Y, h_last)
            return Y, h_last
        ready = self._ready_inputs(X, h0, lengths)
        if ready is None:
            ready = self._checked_inputs(X, h0, lengths)
        X, h0, lengths, unbatched = ready
        Y, h_last = _engine.forward(self._theta, self.input_size, self.hidden_size,
                                    self.output_size, self.num_layers, self._activation,
                                    self.return_sequences, X, h0, lengths)
        if not self.return_sequences:
            Y = Y[:, 0, :]
        if unbatched:
            Y, h_last = Y[0], h_last[:, 0, :]
        return (Y, h_last) if return_state else Y

    def loss_and_grad(self, X: ArrayLike, Y: ArrayLike, h0: ArrayLike | None = None, *,
                      lengths: ArrayLike | None = None) -> tuple[float, Gradients]:
        """The model's loss and its exact gradient by backpropagation through time.

        Parameters
        ----------
        X : array_like, shape (batch, time, input_size) or (time, input_size)
        Y : array_like
            Targets: (batch, time, W) when ``return_sequences``, else (batch, W), or
            (batch,) when W is 1; without the batch axis for unbatched X. W is
            output_size for ``mse``, ``mae`` and ``huber`` and output_size // 2 for
            ``gaussian_nll``. For ``cross_entropy`` Y holds integer class indices
            in [0, output_size): (batch, time), or (batch,) when not
            ``return_sequences`` (a trailing axis of 1 is accepted too).
        h0 : array_like, shape (num_layers, batch, hidden_size), optional
        lengths : array_like of int, shape (batch,), optional
            Valid steps per sequence; padded steps add nothing to the loss or the
            gradients, and their targets are ignored (they may be NaN).

        Returns
        -------
        loss : float
            The mean of the model's ``loss`` over every valid target element
            (``mse``: mean((Y_hat - Y)**2), as ``torch.nn.MSELoss()``).
        grads : dict of ndarray
            d loss / d weight, with the keys and shapes of :meth:`get_weights`.
        """
        ready = self._ready_inputs(X, h0, lengths)
        if ready is not None:
            batched_X, _, _, unbatched = ready
            targets = self._ready_targets(Y, batched_X.shape[0], batched_X.shape[1],
                                          unbatched)
            if targets is None:
                ready = None
        if ready is None:
            X, unbatched = check_sequences(X, self.input_size, self.dtype)
            batch, steps, _ = X.shape
            if batch == 0:
                raise ValueError("X holds no sequences (batch size 0); the loss is undefined")
            h0 = check_initial_state(h0, self.num_layers, self.hidden_size, batch,
                                     unbatched, self.dtype)
            lengths = check_sequence_lengths(lengths, batch, steps, unbatched)
            width, classes, about = self._target_size()
            Y = check_targets(Y, width, classes, self.return_sequences, batch, steps,
                              unbatched, lengths, self.dtype, about)
        else:
            X, h0, lengths, unbatched = ready
            assert targets is not None  # a None would have made `ready` None above
            Y = targets
        grad = np.empty_like(self._theta)
        loss = _engine.loss_and_grad(self._theta, *self._sizes(), self._activation,
                                     self.return_sequences, self._loss_code, X, Y, h0,
                                     lengths, grad)
        return loss, Gradients.over(grad, view_spans(*self._sizes()))

    def backward(self, X: ArrayLike, dY: ArrayLike, h0: ArrayLike | None = None, *,
                 lengths: ArrayLike | None = None, dh_last: ArrayLike | None = None
                 ) -> tuple[Gradients, FloatArray, FloatArray]:
        """The exact vector-Jacobian product of :meth:`forward`: the gradients of any
        scalar loss whose gradient with respect to forward's outputs is ``dY`` (and,
        with ``dh_last``, with respect to its final states).

        This is what stacks models or plugs in a loss of your own: run ``forward``,
        compute dL/dY, and pass it back here; ``dX`` then feeds the ``backward`` of the
        model below (see the README). The forward pass is recomputed from X and h0.

        Parameters
        ----------
        X : array_like, shape (batch, time, input_size) or (time, input_size)
            The inputs of the forward pass, as :meth:`forward` takes them.
        dY : array_like
            dL/dY, with the shape :meth:`forward` returns: (batch, time,
            output_size) when ``return_sequences``, else (batch, output_size);
            without the batch axis for unbatched X. Values at padded steps are
            ignored (forward returns zeros there); the others must be finite.
        h0 : array_like, shape (num_layers, batch, hidden_size), optional
            Initial state, as in :meth:`forward`. Zeros by default.
        lengths : array_like of int, shape (batch,), optional
            Valid steps per sequence, as in :meth:`forward`.
        dh_last : array_like, shape (num_layers, batch, hidden_size), optional
            dL/dh_last, the gradient reaching the final states that
            ``forward(..., return_state=True)`` returns; (num_layers, hidden_size)
            for unbatched X. With ``lengths``, a sequence's final state is its state
            after its last valid step, so its row enters there. Must be finite.
            None (the default) means zeros: the loss does not depend on the final
            states.

        Returns
        -------
        grads : Gradients
            dL/d weight, with the keys and shapes of :meth:`get_weights`.
        dX : ndarray
            dL/dX, the shape of X (zero at padded steps).
        dh0 : ndarray, shape (num_layers, batch, hidden_size)
            dL/dh0; (num_layers, hidden_size) for unbatched X.

        Notes
        -----
        ``loss_and_grad(X, Y)`` equals ``backward(X, dY)`` with dY the gradient of
        the mean squared error, 2 (Y_hat - Y) / count; both run the same compiled
        backward pass.

        ``dh_last`` carries gradients backwards across consecutive chunks of one
        long sequence (truncated backpropagation made exact): with h1 the final
        states of chunk 1, ``g2, dX2, dh1 = backward(x2, dY2, h1)`` then
        ``g1, dX1, dh0 = backward(x1, dY1, h0, dh_last=dh1)``; g1 + g2 is the
        gradient over the whole sequence.
        """
        ready = self._ready_inputs(X, h0, lengths)
        if ready is None:
            ready = self._checked_inputs(X, h0, lengths)
        X, h0, lengths, unbatched = ready
        batch, steps, _ = X.shape
        if dh_last is not None:
            dh_last = check_initial_state(dh_last, self.num_layers, self.hidden_size,
                                          batch, unbatched, self.dtype, name="dh_last")
        shape = ((batch, steps, self.output_size) if self.return_sequences
                 else (batch, self.output_size))
        ready_dY = None if unbatched else ready_array(dY, shape, self.dtype)
        if ready_dY is None:
            dY = check_output_gradient(dY, self.output_size, self.return_sequences, batch,
                                       steps, unbatched, lengths, self.dtype)
        else:
            dY = ready_dY if self.return_sequences else ready_dY.reshape(batch, 1,
                                                                        self.output_size)
        grad = np.empty_like(self._theta)
        dX, dh0 = _engine.backward(self._theta, *self._sizes(), self._activation,
                                   self.return_sequences, X, h0, lengths, dY, grad,
                                   dh_last)
        if unbatched:
            dX, dh0 = dX[0], dh0[:, 0, :]
        return Gradients.over(grad, view_spans(*self._sizes())), dX, dh0

    # For type checkers: predictions alone, or with return_std=True (means, stds).
    @overload
    def predict(self, X: ArrayLike, *, batch_size: int = 4096,
                lengths: ArrayLike | None = None,
                return_std: Literal[False] = False) -> Array: ...

    @overload
    def predict(self, X: ArrayLike, *, batch_size: int = 4096,
                lengths: ArrayLike | None = None,
                return_std: Literal[True]) -> tuple[FloatArray, FloatArray]: ...

    @overload
    def predict(self, X: ArrayLike, *, batch_size: int = 4096,
                lengths: ArrayLike | None = None,
                return_std: bool) -> Array | tuple[FloatArray, FloatArray]: ...

    def predict(self, X: ArrayLike, *, batch_size: int = 4096,
                lengths: ArrayLike | None = None,
                return_std: bool = False) -> Array | tuple[FloatArray, FloatArray]:
        """Predictions for many sequences, computed ``batch_size`` sequences at a time.

        What is predicted follows the model's ``loss``, as scikit-learn's estimators
        do: the outputs themselves for ``mse``, ``mae`` and ``huber``; the most
        likely class for ``cross_entropy`` (:meth:`predict_proba` gives the
        probabilities); the means for ``gaussian_nll`` (with ``return_std=True``
        the standard deviations too). :meth:`forward` gives the raw outputs of
        every model.

        Parameters
        ----------
        X : array_like, shape (n, time, input_size) or (time, input_size)
        batch_size : int, default 4096
            Sequences per forward call; bounds the memory of large inputs.
        lengths : array_like of int, shape (n,), optional
            Valid steps per sequence. Predictions at padded steps come from outputs
            of zero (class 0, mean 0, standard deviation 1): ignore them.
        return_std : bool, default False
            Also return the standard deviations (``loss="gaussian_nll"`` only).

        Returns
        -------
        ndarray
            ``mse``, ``mae``, ``huber``: as :meth:`forward`, (n, time, output_size)
            or (n, output_size). ``cross_entropy``: class indices (intp), (n, time)
            or (n,). ``gaussian_nll``: the means, (n, time, k) or (n, k) for
            output_size 2k. Without the batch axis for unbatched X.
        std : ndarray
            Only with ``return_std=True``: the standard deviations
            sqrt(max(exp(log-variance), 1e-6)), shaped as the means.
        """
        return_std = check_bool("return_std", return_std)
        if return_std and self._loss_code != _losses.GAUSSIAN_NLL:
            raise ValueError(
                f"return_std=True needs a model with loss='gaussian_nll' (a head that "
                f"predicts a variance); this model's loss is {self.loss!r}")
        outputs = self._predict_outputs(X, batch_size, lengths)
        if self._loss_code == _losses.CROSS_ENTROPY:
            classes: Array = np.argmax(outputs, axis=-1).astype(np.intp, copy=False)
            return classes
        if self._loss_code == _losses.GAUSSIAN_NLL:
            means, stds = _losses.gaussian_mean_std(outputs)
            return (means, stds) if return_std else means
        return outputs

    def predict_proba(self, X: ArrayLike, *, batch_size: int = 4096,
                      lengths: ArrayLike | None = None) -> FloatArray:
        """Class probabilities of a ``loss="cross_entropy"`` model: the softmax of the
        logits.

        Parameters
        ----------
        X : array_like, shape (n, time, input_size) or (time, input_size)
        batch_size : int, default 4096
            Sequences per forward call.
        lengths : array_like of int, shape (n,), optional
            Valid steps per sequence; padded steps get uniform probabilities.

        Returns
        -------
        ndarray, shape (n, time, output_size) or (n, output_size)
            Probabilities of the output_size classes, summing to 1 over the last
            axis; without the batch axis for unbatched X.
        """
        if self._loss_code != _losses.CROSS_ENTROPY:
            raise ValueError(
                f"predict_proba needs a model with loss='cross_entropy' (its outputs are "
                f"class logits); this model's loss is {self.loss!r}")
        probabilities: FloatArray = _losses.softmax(self._predict_outputs(X, batch_size,
                                                                          lengths))
        return probabilities

    def _predict_outputs(self, X: ArrayLike, batch_size: int,
                         lengths: ArrayLike | None) -> FloatArray:
        """The raw outputs of predict, ``batch_size`` sequences at a time."""
        batch_size = check_int("batch_size", batch_size, 1)
        ready = self._ready_inputs(X, None, lengths)
        if ready is not None and ready[0].shape[0] <= batch_size:
            # One batch: its outputs are the result, with no copy.
            X, h0, lengths, unbatched = ready
            outputs = _engine.forward(self._theta, *self._sizes(), self._activation,
                                      self.return_sequences, X, h0, lengths)[0]
            if not self.return_sequences:
                outputs = outputs[:, 0, :]
            one_batch: FloatArray = outputs[0] if unbatched else outputs
            return one_batch
        X, unbatched = check_sequences(X, self.input_size, self.dtype)
        n, steps, _ = X.shape
        lengths = check_sequence_lengths(lengths, n, steps, unbatched)
        outputs = np.empty((n, steps if self.return_sequences else 1, self.output_size),
                           dtype=self.dtype)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            h0 = zero_states(self.num_layers, stop - start, self.hidden_size, self.dtype)
            outputs[start:stop] = _engine.forward(self._theta, *self._sizes(),
                                                  self._activation, self.return_sequences,
                                                  X[start:stop], h0, lengths[start:stop])[0]
        if not self.return_sequences:
            outputs = outputs[:, 0, :]
        result: FloatArray = outputs[0] if unbatched else outputs
        return result

    @overload
    def forecast(self, history: ArrayLike, steps: int, *, h0: ArrayLike | None = None,
                 feedback: ArrayLike | None = None, future: ArrayLike | None = None,
                 return_state: Literal[False] = False) -> FloatArray: ...

    @overload
    def forecast(self, history: ArrayLike, steps: int, *, h0: ArrayLike | None = None,
                 feedback: ArrayLike | None = None, future: ArrayLike | None = None,
                 return_state: Literal[True]) -> tuple[FloatArray, FloatArray]: ...

    @overload
    def forecast(self, history: ArrayLike, steps: int, *, h0: ArrayLike | None = None,
                 feedback: ArrayLike | None = None, future: ArrayLike | None = None,
                 return_state: bool) -> FloatArray | tuple[FloatArray, FloatArray]: ...

    def forecast(self, history: ArrayLike, steps: int, *, h0: ArrayLike | None = None,
                 feedback: ArrayLike | None = None, future: ArrayLike | None = None,
                 return_state: bool = False) -> FloatArray | tuple[FloatArray, FloatArray]:
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
        X, unbatched = check_sequences(history, self.input_size, self.dtype, "history")
        steps = check_int("steps", steps, 1)
        batch = X.shape[0]
        h0 = check_initial_state(h0, self.num_layers, self.hidden_size, batch, unbatched,
                                 self.dtype)
        feedback = check_feedback(feedback, self.input_size, self.output_size)
        future = check_future(future, feedback, self.input_size, batch, steps, unbatched,
                              self.dtype)
        Y, h_last = _engine.forecast(self._theta, *self._sizes(), self._activation, X, h0,
                                     feedback, future, steps)
        if unbatched:
            Y, h_last = Y[0], h_last[:, 0, :]
        return (Y, h_last) if return_state else Y

    # --------------------------------------------------------------- training
    fit = _TrainingFit()

    # ------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, as plain Python values."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "output_size": self.output_size,
            "num_layers": self.num_layers,
            "return_sequences": self.return_sequences,
            "nonlinearity": self.nonlinearity,
            "dtype": self.dtype.name,
            "seed": self.seed,
            "init": self.init,
            "init_scale": self.init_scale,
            "spectral_radius": self.spectral_radius,
            "loss": self.loss,
        }

    def save(self, path: str | os.PathLike[str], *, optimizer: Optimizer | None = None,
             extra: Mapping[str, Any] | None = None,
             extra_arrays: Mapping[str, ArrayLike] | None = None) -> None:
        """Write the model (and an optimizer's state) to one ``.npz`` file, atomically.

        Loading it back never runs code from the file. See
        :func:`elman.model_file.save` for every argument and :func:`elman.load`.
        """
        from elman.model_file import save

        save(self, path, optimizer=optimizer, extra=extra, extra_arrays=extra_arrays)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_training_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickles made before the nonlinearity was configurable hold tanh models;
        # models pickled before models had a loss trained on mean squared error.
        state.setdefault("_loss_code", _losses.MSE)
        self.__dict__.update({"nonlinearity": "tanh", "_activation": 0}, **state)
        self._training_lock = threading.Lock()

    def __repr__(self) -> str:
        extra = "" if self.num_layers == 1 else f", num_layers={self.num_layers}"
        if not self.return_sequences:
            extra += ", return_sequences=False"
        if self.nonlinearity != "tanh":
            extra += f", nonlinearity={self.nonlinearity!r}"
        if self.dtype != np.float64:
            extra += f", dtype={self.dtype.name!r}"
        if self.loss != "mse":
            extra += f", loss={self.loss!r}"
        return (f"RNN({self.input_size}, {self.hidden_size}, {self.output_size}{extra})")

    # ----------------------------------------------------------- interoperability
    def to_torch_state_dict(self, *, rnn_prefix: str = "rnn.",
                            head_prefix: str = "fc.") -> dict[str, FloatArray]:
        """The weights as a ``torch.nn.RNN`` + ``torch.nn.Linear`` state dict of NumPy arrays.

        ``bh`` becomes ``bias_ih_l{k}`` and ``bias_hh_l{k}`` is zero. The dict does
        not carry the nonlinearity: build the ``nn.RNN`` with
        ``nonlinearity=model.nonlinearity``. See
        :func:`elman.interop.to_torch_state_dict`; torch is not imported.
        """
        from elman.interop import to_torch_state_dict

        return to_torch_state_dict(self, rnn_prefix=rnn_prefix, head_prefix=head_prefix)

    @classmethod
    def from_torch_state_dict(cls, state_dict: Mapping[Any, Any], *, rnn_prefix: str = "rnn.",
                              head_prefix: str = "fc.", return_sequences: bool = True,
                              nonlinearity: str = "tanh",
                              dtype: DTypeLike | None = None) -> RNN:
        """A model from a ``torch.nn.RNN`` + ``torch.nn.Linear`` state dict (arrays or tensors).

        Sizes come from the shapes; ``bh = bias_ih + bias_hh``. A state dict does not
        carry the nonlinearity: pass the one the ``nn.RNN`` was built with. See
        :func:`elman.interop.from_torch_state_dict`; torch is not imported.
        """
        from elman.interop import from_torch_state_dict

        return from_torch_state_dict(state_dict, rnn_prefix=rnn_prefix,
                                     head_prefix=head_prefix,
                                     return_sequences=return_sequences,
                                     nonlinearity=nonlinearity, dtype=dtype)
