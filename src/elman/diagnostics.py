"""Looking inside training: the gradient reaching each hidden state, and a gradient check.

:func:`gradient_flow` measures vanishing and exploding gradients: the norm of
dL/dh_t at every step and layer, for one batch. :func:`gradcheck` compares
``loss_and_grad`` with central finite differences, for people who write their own
variants of the model (a subclass with its own loss, say) and want to know that
their gradient is right.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from elman import _engine, _gemm_path
from elman._layout import parameter_views, weight_shapes
from elman._losses import value_and_gradient
from elman._typing import ArrayLike, FloatArray
from elman._validation import (
    check_float,
    check_initial_state,
    check_int,
    check_sequence_lengths,
    check_sequences,
    check_targets,
)
from elman.rnn import RNN

__all__ = ["GradcheckResult", "gradcheck", "gradient_flow"]


def _check_model(function: str, model: object) -> RNN:
    if not isinstance(model, RNN):
        raise TypeError(f"{function} needs an elman.RNN (or a subclass) as model; got "
                        f"{type(model).__name__}")
    return model


def _checked_batch(model, X, Y, h0, lengths):
    """X (B, T, I), Y as the kernels take it, h0 (L, B, H), lengths (B,), unbatched."""
    X, unbatched = check_sequences(X, model.input_size, model.dtype)
    batch, steps, _ = X.shape
    if batch == 0:
        raise ValueError("X holds no sequences (batch size 0); the loss is undefined")
    h0 = check_initial_state(h0, model.num_layers, model.hidden_size, batch, unbatched,
                             model.dtype)
    lengths = check_sequence_lengths(lengths, batch, steps, unbatched)
    width, classes, about = model._target_size()
    Y = check_targets(Y, width, classes, model.return_sequences, batch, steps, unbatched,
                      lengths, model.dtype, about)
    return X, Y, h0, lengths, unbatched


def _output_gradient(model, outputs, Y, lengths):
    """dL/d(head output) for the model's loss, shaped like ``outputs``: (T, B, O)
    time-major for many-to-many, or (B, O); zero at padded steps."""
    if model.return_sequences:
        steps = outputs.shape[0]
        valid = (np.arange(steps)[:, None] < lengths[None, :])[:, :, None]
        return value_and_gradient(model._loss_code, outputs, Y.transpose(1, 0, 2), valid)[1]
    return value_and_gradient(model._loss_code, outputs, Y[:, 0])[1]


def gradient_flow(model: RNN, X: ArrayLike, Y: ArrayLike, h0: ArrayLike | None = None, *,
                  lengths: ArrayLike | None = None, per_sequence: bool = False) -> FloatArray:
    """The norm of the gradient of the loss with respect to every hidden state.

    For each layer l and step t this is ``||dL/dh_t^l||``: the whole gradient that
    reaches the state, through the recurrence from every later step, through the
    head (top layer) or the layer above at the same step, as backpropagation through
    time accumulates it before the nonlinearity's derivative. A curve that falls
    towards the first steps shows a vanishing gradient (early inputs barely move the
    weights); one that grows shows an exploding gradient.

    Parameters
    ----------
    model : elman.RNN
    X : array_like, shape (batch, time, input_size) or (time, input_size)
    Y : array_like
        Targets, as :meth:`elman.RNN.loss_and_grad` takes them.
    h0 : array_like, shape (num_layers, batch, hidden_size), optional
        Initial states (zeros by default); (num_layers, hidden_size) for unbatched X.
    lengths : array_like of int, shape (batch,), optional
        Valid steps per sequence. Nothing flows to padded steps: their norms are 0.
    per_sequence : bool, default False
        False: at each step, the norm of the whole (batch, hidden_size) gradient,
        as ``h_t.grad.norm()`` gives it in PyTorch for the model's mean loss over the
        batch. True: one norm per sequence (the root of the sum of their squares is
        the batch's norm).

    Returns
    -------
    ndarray of float64
        (num_layers, time), bottom layer first; with ``per_sequence`` (batch,
        num_layers, time). Unbatched X gives (num_layers, time) either way.

    Notes
    -----
    The loss is the model's (``model.loss``), a mean over the batch as in
    ``loss_and_grad``, so
    the norms shrink as 1/batch for a larger batch of similar sequences; compare
    steps and layers within one call. The nonlinearity is the model's (tanh or relu,
    whose derivative at a state of exactly 0 is taken as 0). The computation runs in
    the model's dtype on the active backend's recurrences; the norms are summed in
    float64.

    Examples
    --------
    >>> import numpy as np, elman
    >>> from elman.diagnostics import gradient_flow
    >>> model = elman.RNN(1, 8, 1, num_layers=2, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(16, 30, 1))
    >>> gradient_flow(model, X, X).shape                      # (num_layers, time)
    (2, 30)
    """
    _check_model("gradient_flow", model)
    if not isinstance(per_sequence, bool):
        raise TypeError(f"per_sequence must be True or False; got {per_sequence!r}")
    checked = _checked_batch(model, X, Y, h0, lengths)
    norms: FloatArray = _gradient_flow(model, checked, per_sequence)
    return norms


def _gradient_flow(model, checked, per_sequence):
    """gradient_flow of the arrays _checked_batch returns (see there)."""
    X, Y, h0, lengths, unbatched = checked
    I, H, O, L = model.input_size, model.hidden_size, model.output_size, model.num_layers
    batch, steps, _ = X.shape
    layers, Why, by = parameter_views(model._theta, I, H, O, L)
    recurrences = _engine.recurrences(batch, H)
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2))
    states = _gemm_path._run_layers(recurrences, model._activation, layers, Xt, h0, lengths)
    top = states[-1]

    # The gradient reaching the top layer's states from the head, (T, B, H).
    if model.return_sequences:
        dY = _output_gradient(model, top @ Why.T + by, Y, lengths)
        dH = dY @ Why
    else:
        last = lengths - 1
        read = top[last, np.arange(batch)]
        dY = _output_gradient(model, read @ Why.T + by, Y, lengths)
        dH = np.zeros_like(top)
        dH[last, np.arange(batch)] = dY @ Why

    norms = np.empty((batch, L, steps), dtype=np.float64)
    for layer in range(L - 1, -1, -1):
        Wxh, Whh, _ = layers[layer]
        dA = np.empty_like(dH)
        carry = np.zeros((batch, H), dtype=dH.dtype)
        recurrences.backward(model._activation, dH, states[layer], Whh, lengths, 0, carry,
                             dA)
        # dh_t = (from outside the recurrence at t) + Whh^T da_{t+1}: the recurrence
        # gives da_t = dh_t * f'(a_t); the rest is one product.
        dh = dH.astype(np.float64)
        dh[:-1] += dA[1:].astype(np.float64) @ Whh.astype(np.float64)
        norms[:, layer, :] = np.sqrt(np.einsum("tbh,tbh->bt", dh, dh))
        if layer > 0:
            dH = dA @ Wxh
    if unbatched:
        return norms[0]
    if per_sequence:
        return norms
    return np.sqrt(np.sum(norms * norms, axis=0))


@dataclass
class GradcheckResult:
    """What :func:`gradcheck` found, weight group by weight group.

    Attributes
    ----------
    passed : bool
        True when every checked element satisfied
        ``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)``.
    max_rel_error : dict of str to float
        Per weight group (the keys of ``get_weights()``), the largest
        ``|analytic - numeric| / max(|analytic|, |numeric|)`` (0 where both are
        within ``atol`` of 0).
    max_abs_error : dict of str to float
        Per weight group, the largest ``|analytic - numeric|``.
    checked : dict of str to int
        Elements compared in each group (all of them, or a sample).
    failed : dict of str to int
        Elements outside the tolerance in each group.
    worst : tuple or None
        ``(name, index, analytic, numeric)`` of the element with the largest
        relative error among those that failed (None when all passed).
    loss : float
        The loss at the unperturbed weights, in float64.
    eps, rtol, atol : float
        The settings used.
    """

    passed: bool
    max_rel_error: dict[str, float]
    max_abs_error: dict[str, float]
    checked: dict[str, int]
    failed: dict[str, int]
    worst: tuple[str, tuple[int, ...], float, float] | None
    loss: float
    eps: float
    rtol: float
    atol: float
    _order: list[str] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        names = self._order or list(self.checked)
        width = max(len("weight"), *(len(name) for name in names))
        lines = [f"gradcheck {'passed' if self.passed else 'FAILED'} (eps {self.eps:g}, "
                 f"rtol {self.rtol:g}, atol {self.atol:g}, loss {self.loss:.6g})",
                 f"{'weight':<{width}}  checked  failed  max rel error  max abs error"]
        for name in names:
            lines.append(f"{name:<{width}}  {self.checked[name]:>7}  {self.failed[name]:>6}  "
                         f"{self.max_rel_error[name]:>13.3g}  {self.max_abs_error[name]:>13.3g}")
        if self.worst is not None:
            name, index, analytic, numeric = self.worst
            lines.append(f"worst: {name}{list(index)} analytic {analytic:.8g}, "
                         f"numeric {numeric:.8g}")
        return "\n".join(lines)


def _float64_copy(model):
    """A deep copy of ``model`` (its class kept) whose weights and computations are
    float64."""
    twin = copy.deepcopy(model)
    twin.dtype = np.dtype(np.float64)
    twin._theta = model._theta.astype(np.float64)
    return twin


def gradcheck(model: RNN, X: ArrayLike, Y: ArrayLike, h0: ArrayLike | None = None, *,
              lengths: ArrayLike | None = None, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-8, max_per_group: int | None = 256,
              seed: int = 0) -> GradcheckResult:
    """Check ``model.loss_and_grad`` against central finite differences.

    Each checked weight w is moved to w + eps and w - eps, and
    ``(loss(w + eps) - loss(w - eps)) / (2 eps)`` is compared with the gradient
    ``loss_and_grad`` returns. Everything runs on a float64 copy of the model (a
    deep copy, so a subclass keeps its own ``loss_and_grad``), whatever the model's
    dtype; the model itself is not changed.

    Parameters
    ----------
    model : elman.RNN
        The model, or a subclass whose ``loss_and_grad`` is under test.
    X, Y, h0, lengths
        As :meth:`elman.RNN.loss_and_grad` takes them.
    eps : float, default 1e-6
        Step of the central difference (in weight units).
    rtol, atol : float, defaults 1e-5 and 1e-8
        An element passes when ``|analytic - numeric| <= atol + rtol *
        max(|analytic|, |numeric|)``. The defaults suit float64 losses of order 1;
        the numeric derivative carries an absolute error of about
        ``1e-16 * |loss| / eps``.
    max_per_group : int or None, default 256
        Check at most this many elements of each weight group, drawn at random
        (without replacement); None checks every weight. Each check costs two
        evaluations of the loss.
    seed : int, default 0
        Seed of that draw.

    Returns
    -------
    GradcheckResult
        ``passed``, and per weight group the largest relative and absolute errors;
        ``print(result)`` shows them as a table.

    Notes
    -----
    Where the loss has a kink (relu at 0, the absolute error at 0) a difference that
    straddles it disagrees with the one-sided derivative; a smaller ``eps`` makes
    that unlikely.

    Examples
    --------
    >>> import numpy as np, elman
    >>> from elman.diagnostics import gradcheck
    >>> model = elman.RNN(2, 5, 1, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(4, 6, 2))
    >>> gradcheck(model, X, X[..., :1]).passed
    True
    """
    _check_model("gradcheck", model)
    eps = check_float("eps", eps, 0.0, strict=True)
    rtol = check_float("rtol", rtol, 0.0)
    atol = check_float("atol", atol, 0.0)
    if max_per_group is not None:
        max_per_group = check_int("max_per_group", max_per_group, 1)
    seed = check_int("seed", seed, 0)
    twin = _float64_copy(model)
    loss, grads = twin.loss_and_grad(X, Y, h0, lengths=lengths)
    theta = twin._theta
    rng = np.random.default_rng(seed)
    shapes = weight_shapes(model.input_size, model.hidden_size, model.output_size,
                           model.num_layers)
    result = GradcheckResult(passed=True, max_rel_error={}, max_abs_error={}, checked={},
                             failed={}, worst=None, loss=float(loss), eps=eps, rtol=rtol,
                             atol=atol, _order=list(shapes))
    worst_rel = -1.0
    offset = 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        analytic_all = np.asarray(grads[name], dtype=np.float64).reshape(-1)
        if max_per_group is None or size <= max_per_group:
            chosen = np.arange(size)
        else:
            chosen = np.sort(rng.choice(size, max_per_group, replace=False))
        analytic = analytic_all[chosen]
        numeric = np.empty(chosen.shape[0])
        for k, element in enumerate(chosen):
            position = offset + int(element)
            original = theta[position]
            try:
                theta[position] = original + eps
                plus = twin.loss_and_grad(X, Y, h0, lengths=lengths)[0]
                theta[position] = original - eps
                minus = twin.loss_and_grad(X, Y, h0, lengths=lengths)[0]
            finally:
                theta[position] = original
            numeric[k] = (plus - minus) / (2.0 * eps)
        error = np.abs(analytic - numeric)
        scale = np.maximum(np.abs(analytic), np.abs(numeric))
        # Elements that are zero to within atol on both sides (a bias whose gradient
        # cancels, say) have no meaningful relative error: 0.
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.where(scale > atol, error / scale, 0.0)
        bad = ~(error <= atol + rtol * scale)  # NaN counts as a failure
        result.checked[name] = int(chosen.shape[0])
        result.failed[name] = int(bad.sum())
        result.max_abs_error[name] = float(error.max()) if error.size else 0.0
        result.max_rel_error[name] = float(relative.max()) if relative.size else 0.0
        if bad.any():
            result.passed = False
            k = int(np.argmax(np.where(bad, np.nan_to_num(relative, nan=np.inf), -1.0)))
            if relative[k] > worst_rel or np.isnan(relative[k]):
                worst_rel = float(np.nan_to_num(relative[k], nan=np.inf))
                index = tuple(int(i) for i in np.unravel_index(int(chosen[k]), shape))
                result.worst = (name, index, float(analytic[k]), float(numeric[k]))
        offset += size
    return result
