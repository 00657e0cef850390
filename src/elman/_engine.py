"""The route table: which code serves a call.

Every RNN method and ``fit`` (truncated BPTT included) asks :func:`route` for the
functions of a call; no other module chooses between the compiled fused loops,
BLAS products around compiled recurrences, and the NumPy twin. ``elman._backend``
says which kernel module is active (compiled or twin, and which build); this
table says which of its paths serves a given shape.

Routes, for the compiled backend:

``fused``
    One compiled call does everything (projection, recurrence, head, loss,
    gradient sums, and in ``train_steps`` many whole steps) in loops over each
    sequence. Wins where a step is small: the loops save the ~2 us of Python per
    NumPy call that small steps cannot afford. Batch 1 always takes it; in ``fit``
    a whole chunk of batch-1 steps is then one compiled call.
``gemm``
    ``_gemm_path``: BLAS products for everything that is not recurrent, around one
    of two recurrences: the compiled per-sequence loops (``compiled loops``), or,
    from ``BLAS_STEPS_MIN_BATCH`` sequences of ``BLAS_STEPS_MIN_HIDDEN`` units up,
    one BLAS product per step for the whole batch with the compiled elementwise
    step kernels (``blas steps``). A GEMM gains by reusing each weight across the
    batch, which the per-sequence loops cannot. With ``blas steps`` a large batch
    is cut into chunks run on elman's threads (``_gemm_path.batch_chunks``).

The NumPy twin has one route, ``twin``: its functions are ``_gemm_path`` around
BLAS-step recurrences with NumPy's elementwise steps.

One threshold serves every call: forward passes, loss and gradient, training steps
and closed-loop forecasts (whose gemm route steps the same recurrences one step at
a time). The thresholds are measured, not guessed: ``bench/bench_dispatch.py``
times the routes side by side (``--call forecast`` for forecasts) and prints which
one this table picks; its last results are in ``bench/RESULTS.md``. Re-run it when
a kernel changes.
"""

from functools import partial
from types import ModuleType

import numpy as np

from elman import _backend, _gemm_path
from elman._typing import Array, FloatArray

# fused when batch == 1 or batch * hidden**2 <= this (bench/bench_dispatch.py).
FUSED_MAX_BATCH_HIDDEN2 = 2 ** 19
# On the gemm route, BLAS-step recurrences from this batch and hidden size up; the
# compiled per-sequence loops below (bench/bench_dispatch.py --recurrences).
BLAS_STEPS_MIN_BATCH = 16
BLAS_STEPS_MIN_HIDDEN = 32

TWIN_MODULE = "elman._kernels_numpy"

class Route:
    """The code that serves one call.

    ``name`` is 'fused', 'gemm' or 'twin'; ``recurrences`` is the
    ``_gemm_path.Recurrences`` the gemm and twin routes run (None for fused).
    ``forward``, ``loss_and_grad``, ``backward``, ``train_steps`` and ``forecast`` are the
    functions, each with the signature of the kernel contract (``_kernels_numpy``).
    They are looked up when used, not when the route is made, so that one route per
    kind of shape can be kept (and a test's spy on a kernel is still seen); the
    kernels of ``recurrences`` are bound when the route is first made.
    """

    __slots__ = ("name", "recurrences", "_kernels", "_gemm")

    def __init__(self, name, recurrences, kernels):
        self.name, self.recurrences, self._kernels = name, recurrences, kernels
        self._gemm = name == "gemm"

    # Properties written out (not one getattr helper): forward is looked up on every
    # model.forward call, where a few hundred nanoseconds show.
    @property
    def forward(self):
        if self._gemm:
            return partial(_gemm_path.forward, self.recurrences)
        return self._kernels.forward

    @property
    def loss_and_grad(self):
        if self._gemm:
            return partial(_gemm_path.loss_and_grad, self.recurrences)
        return self._kernels.loss_and_grad

    @property
    def backward(self):
        if self._gemm:
            return partial(_gemm_path.backward, self.recurrences)
        return self._kernels.backward

    @property
    def train_steps(self):
        if self._gemm:
            return partial(_gemm_path.train_steps, self.recurrences)
        return self._kernels.train_steps

    @property
    def forecast(self):
        if self._gemm:
            return partial(_gemm_path.forecast, self.recurrences)
        return self._kernels.forecast

    def __repr__(self):
        where = "" if self.recurrences is None else f", {self.recurrences.name}"
        return f"Route({self.name!r}{where}, {self._kernels.__name__})"


# Routes already made, by (kernel module, kind of shape).
_ROUTES: dict[tuple[object, str], object] = {}


def is_twin(kernels):
    """True for the NumPy twin's module."""
    return kernels.__name__ == TWIN_MODULE


def uses_fused_loops(batch, hidden):
    """True when the compiled fused loops serve a batch of this size."""
    return batch == 1 or batch * hidden * hidden <= FUSED_MAX_BATCH_HIDDEN2


def uses_blas_steps(batch, hidden):
    """True when the compiled backend's gemm route steps the recurrence with BLAS."""
    return batch >= BLAS_STEPS_MIN_BATCH and hidden >= BLAS_STEPS_MIN_HIDDEN


def recurrences(batch, hidden, kernels=None):
    """The ``_gemm_path.Recurrences`` for a batch of this size on this backend."""
    if kernels is None:
        kernels = _backend.get_kernels()
    if is_twin(kernels):
        return _gemm_path.Recurrences("numpy", kernels.recurrence_forward,
                                      kernels.recurrence_backward)
    if uses_blas_steps(batch, hidden):
        return _gemm_path.Recurrences(
            "blas steps",
            partial(_gemm_path.blas_recurrence_forward,
                    (kernels.tanh_step_forward, kernels.relu_step_forward)),
            partial(_gemm_path.blas_recurrence_backward,
                    (kernels.tanh_step_backward, kernels.relu_step_backward)),
            getattr(kernels, "max_threads", None))
    return _gemm_path.Recurrences("compiled loops", kernels.recurrence_forward,
                                  kernels.recurrence_backward)


def route(batch, hidden, kernels=None):
    """The :class:`Route` for a call on ``batch`` sequences of a model with ``hidden``
    units per layer, on ``kernels`` (the active backend's module when None)."""
    if kernels is None:
        kernels = _backend.get_kernels()
    # The tests of is_twin and uses_fused_loops, written out: a small forward pass
    # takes a few microseconds, and this runs on every call.
    if kernels.__name__ == TWIN_MODULE:
        kind = "twin"
    elif batch == 1 or batch * hidden * hidden <= FUSED_MAX_BATCH_HIDDEN2:
        kind = "fused"
    else:
        kind = "blas steps" if uses_blas_steps(batch, hidden) else "compiled loops"
    found = _ROUTES.get((kernels, kind))
    if found is None:
        if kind == "fused":
            found = Route("fused", None, kernels)
        else:
            found = Route("twin" if kind == "twin" else "gemm",
                          recurrences(batch, hidden, kernels), kernels)
        if isinstance(kernels, ModuleType):  # not a test's wrapper of one
            _ROUTES[(kernels, kind)] = found
    return found


def forward(theta: FloatArray, I: int, H: int, O: int, L: int, activation: int,
            many_to_many: bool, X: FloatArray, h0: FloatArray,
            lengths: Array) -> tuple[FloatArray, FloatArray]:
    """Outputs (B, T or 1, O) and last states (L, B, H) of checked inputs, by the
    route for their batch size."""
    batch, steps, _ = X.shape
    Y = np.empty((batch, steps if many_to_many else 1, O), dtype=theta.dtype)
    h_last = np.empty((L, batch, H), dtype=theta.dtype)
    if batch:
        route(batch, H).forward(theta, I, H, O, L, activation, many_to_many, X, h0, lengths,
                                Y, h_last)
    return Y, h_last


def loss_and_grad(theta: FloatArray, I: int, H: int, O: int, L: int, activation: int,
                  many_to_many: bool, loss_code: int, X: FloatArray, Y: FloatArray,
                  h0: FloatArray, lengths: Array, grad: FloatArray) -> float:
    """Loss (``loss_code``, see ``elman._losses``) of checked inputs, and its gradient
    written into grad, by the route for their batch size."""
    loss: float = route(X.shape[0], H).loss_and_grad(theta, I, H, O, L, activation,
                                                     many_to_many, loss_code, X, Y, h0,
                                                     lengths, grad)
    return loss


def backward(theta: FloatArray, I: int, H: int, O: int, L: int, activation: int,
             many_to_many: bool, X: FloatArray, h0: FloatArray, lengths: Array,
             dY: FloatArray, grad: FloatArray, dh_last: FloatArray | None = None
             ) -> tuple[FloatArray, FloatArray]:
    """The gradients reaching the weights (written into grad), the inputs (B, T, I)
    and the initial states (L, B, H) from dY, the gradient reaching the outputs of
    ``forward``, and dh_last (L, B, H) or None, the gradient reaching its last
    states, for checked inputs, by the route for their batch size."""
    batch = X.shape[0]
    dX = np.empty(X.shape, dtype=theta.dtype)
    dh0 = np.empty((L, batch, H), dtype=theta.dtype)
    if batch:
        route(batch, H).backward(theta, I, H, O, L, activation, many_to_many, X, h0,
                                 lengths, dY, grad, dX, dh0, dh_last)
    else:
        grad.fill(0.0)
    return dX, dh0


def step(theta: FloatArray, I: int, H: int, O: int, L: int, activation: int, x: object,
         h: object, y: FloatArray, h_next: FloatArray) -> None:
    """One streaming step of checked inputs (the kernel contract's ``step``). A step
    is a batch of one: the fused loops' route, whatever the hidden size."""
    _backend.get_kernels().step(theta, I, H, O, L, activation, x, h, y, h_next)


def forecast(theta: FloatArray, I: int, H: int, O: int, L: int, activation: int,
             X: FloatArray, h0: FloatArray, feedback: Array, future: FloatArray,
             steps: int) -> tuple[FloatArray, FloatArray]:
    """Closed-loop forecasts (B, steps, O) and last states (L, B, H) of checked
    inputs, by the route for their batch size."""
    batch = X.shape[0]
    Y = np.empty((batch, steps, O), dtype=theta.dtype)
    h_last = np.empty((L, batch, H), dtype=theta.dtype)
    route(batch, H).forecast(theta, I, H, O, L, activation, X, h0, feedback, future, Y,
                             h_last)
    return Y, h_last
