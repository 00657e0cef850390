"""The NumPy twin of the compiled kernels (``_kernels.pyx``).

Both modules export the same functions with the same signatures and the same
results (to rounding). Nothing here validates: the model checks its arguments
(``elman._validation``), casts and allocates once, before either backend is
called, and these functions trust it.

The contract
------------
Sizes: ``I`` input, ``H`` hidden, ``O`` output, ``L`` layers; ``B`` batch, ``T`` time.
All float arrays share one dtype (float32 or float64) and are C-contiguous.

``theta`` is every parameter in one flat vector, layer by layer, then the head::

    for l in range(L):  Wxh_l (H, I_l)   with I_0 = I and I_l = H above
                        Whh_l (H, H)
                        bh_l  (H,)
    Why (O, H), by (O,)

``activation`` is the code of the recurrence's nonlinearity f, its index in
``elman._layout.ACTIVATIONS``: 0 tanh, 1 relu (f(a) = max(0, a), f' = 1 where
h > 0, else 0, as torch). The docstrings below write tanh for f.

``lengths`` (B,) intp gives each sequence's valid steps, 1 <= lengths[b] <= T.
Steps at or after ``lengths[b]`` are padding: the hidden state is held, their
outputs are zero and their targets are ignored.

Outputs are always 3-D, ``(B, T, O)`` when ``many_to_many`` and ``(B, 1, O)``
otherwise (the output at each sequence's last valid step). Targets are
``(B, T or 1, W)`` with W the loss's target width (``elman._losses.target_width``):
O for mse, mae and huber, 1 for cross_entropy (the class index as a float of the
model's dtype, a valid class at every valid step), O // 2 for gaussian_nll.

``loss`` is a loss code, the index of the loss in ``elman._losses.LOSSES``; the
loss is the mean over every valid target element as ``elman._losses`` defines it
(PyTorch's definitions).

Functions
---------
tanh_step_forward(A, P_t, out)
    The elementwise part of one forward step for the whole batch, all (B, H):
    out = tanh(A + P_t), where A holds h_{t-1} Whh^T. ``out`` may be P_t.
tanh_step_backward(dH_t, carry, h_t, out)
    The elementwise part of one backward step, all (B, H):
    out = (dH_t + carry) (1 - h_t^2). ``out`` may be dH_t.
relu_step_forward(A, P_t, out)
    The same for relu: out = max(0, A + P_t).
relu_step_backward(dH_t, carry, h_t, out)
    The same for relu: out = dH_t + carry where h_t > 0, else 0.
recurrence_forward(activation, P, Whh, h0, lengths, Hs)
    h_t = tanh(P_t + Whh h_{t-1}) for every t, time-major: P (T, B, H) already holds
    the input projection and bias, h0 (B, H). Writes Hs (T, B, H), which may be P
    itself (in place). At padded steps the state is held: Hs[t, b] = Hs[t - 1, b].
recurrence_backward(activation, dH, Hs, Whh, lengths, start, carry, dA)
    Backward through a block of k consecutive steps, start <= t < start + k, from
    the last: dh_t = dH_t + Whh^T da_{t+1}, da_t = dh_t (1 - h_t^2). dH (k, B, H) is
    the gradient reaching each h_t from outside the recurrence, Hs (k, B, H) the
    block's states. ``carry`` (B, H) holds Whh^T da at the step after the block
    (zeros for the last block) and is left holding Whh^T da_start for the block
    before (unless start is 0). Writes dA (k, B, H), zero at padded steps; dA may be
    dH itself (in place).
forward(theta, I, H, O, L, activation, many_to_many, X, h0, lengths, Y_out, h_last)
    X (B, T, I), h0 (L, B, H). Writes Y_out (B, T or 1, O) and h_last (L, B, H),
    each sequence's state after its last valid step.
loss_and_grad(theta, I, H, O, L, activation, many_to_many, loss, X, Y, h0, lengths,
              grad) -> float
    Writes the exact gradient of the loss into grad (P,), returns the loss.
backward(theta, I, H, O, L, activation, many_to_many, X, h0, lengths, dY, grad, dX,
         dh0, dh_last)
    The vector-Jacobian product of ``forward``'s outputs: dY (B, T or 1, O) is the
    gradient reaching Y_out (its rows at padded steps are ignored), and dh_last
    (L, B, H), or None for zeros, the gradient reaching h_last (so it enters at each
    sequence's last valid step). Writes the gradient reaching theta into grad (P,),
    X into dX (B, T, I) (zero at padded steps) and h0 into dh0 (L, B, H).
    ``loss_and_grad`` is the special case where dY is the loss's gradient and
    dh_last is None.
train_steps(theta, I, H, O, L, activation, many_to_many, loss, X, Y, lengths, order,
            batch_size,
            optimizer, hyper, state, step_count, clip_value, clip_norm, losses) -> int
    Consecutive mini-batches of the rows ``order`` (the last may be short), each
    from a zero initial state: loss_and_grad, clipping, one optimizer update of
    theta in place. ``optimizer``, ``hyper``, ``state`` and ``step_count`` follow
    ``elman.optimizers``; ``clip_value``/``clip_norm`` of 0 mean no clipping. Writes
    each batch's loss to ``losses`` and returns how many updates were applied. It
    stops before updating at the first batch whose loss or gradient is not finite,
    so theta always holds the last finite weights.
step(theta, I, H, O, L, activation, x, h, y, h_next)
    One step of a stream: from the states h (L, H) and one input x (1, I), writes
    the states after it to h_next (L, H) and the head's output to y ((O,) or
    (1, O)), as ``forward`` on one sequence of one step does.
forecast(theta, I, H, O, L, activation, X, h0, feedback, future, Y_out, h_last)
    Closed loop. Runs the history X (B, T, I) from h0; Y_out[:, 0] is the output
    after the last history step. For s >= 1 the input is future[:, s - 1] (B, S-1, I)
    with column feedback[o] replaced by Y_out[:, s - 1, o] wherever feedback[o] >= 0.
    Writes Y_out (B, S, O) and h_last (L, B, H), the state after the last step.
set_thread_request(process, this_thread)
    How many threads the loops may use: ``process`` for the whole process,
    ``this_thread`` for the calling thread only (which wins when set); 0 withdraws
    a request, -1 leaves it as it is. ``elman._threading`` calls it. Results never
    depend on it.
max_threads() -> int
    The number of threads the loops may use now, from the calling thread. The
    twin's elementwise work runs on the calling thread: 1 (its BLAS products use
    the BLAS library's threads).

``KERNEL_FUNCTIONS`` names them all; both modules must export every one
(tests/test_kernel_contract.py checks it).

This module computes with whole-batch BLAS products around a per-step loop
(``elman._gemm_path``); the compiled backend uses the same formulations, with its
own recurrences, where the route table (``elman._engine``) says BLAS wins.
"""

import numpy as np

from elman import _gemm_path

KERNEL_FUNCTIONS = ("tanh_step_forward", "tanh_step_backward", "relu_step_forward",
                    "relu_step_backward", "recurrence_forward", "recurrence_backward",
                    "forward", "loss_and_grad", "backward", "train_steps", "forecast",
                    "step", "set_thread_request", "max_threads")

# Whether the loops can run on several threads (the compiled module: when it was
# built with OpenMP).
OPENMP = False


def tanh_step_forward(A, P_t, out):
    np.add(A, P_t, out=out)
    np.tanh(out, out=out)


def tanh_step_backward(dH_t, carry, h_t, out):
    np.add(dH_t, carry, out=out)
    out *= 1.0 - h_t * h_t


def relu_step_forward(A, P_t, out):
    np.add(A, P_t, out=out)
    np.maximum(out, 0.0, out=out)


def relu_step_backward(dH_t, carry, h_t, out):
    np.add(dH_t, carry, out=out)
    # Assigned, not multiplied by the mask: an infinite dH_t still gives 0 where h_t is 0.
    out[~(h_t > 0.0)] = 0.0


# The elementwise steps by activation code.
STEPS_FORWARD = (tanh_step_forward, relu_step_forward)
STEPS_BACKWARD = (tanh_step_backward, relu_step_backward)


def recurrence_forward(activation, P, Whh, h0, lengths, Hs):
    _gemm_path.blas_recurrence_forward(STEPS_FORWARD, activation, P, Whh, h0, lengths, Hs)


def recurrence_backward(activation, dH, Hs, Whh, lengths, start, carry, dA):
    _gemm_path.blas_recurrence_backward(STEPS_BACKWARD, activation, dH, Hs, Whh, lengths,
                                        start, carry, dA)


_recurrences = _gemm_path.Recurrences("numpy", recurrence_forward, recurrence_backward)


# Valid but extreme inputs (targets of 1e300, say) overflow to inf on the way; the
# compiled kernels return the same inf silently, so the twin does not warn either.
_QUIET = dict(over="ignore", invalid="ignore")


def forward(theta, I, H, O, L, activation, many_to_many, X, h0, lengths, Y_out, h_last):
    with np.errstate(**_QUIET):
        _gemm_path.forward(_recurrences, theta, I, H, O, L, activation, many_to_many, X, h0,
                           lengths, Y_out, h_last)


def loss_and_grad(theta, I, H, O, L, activation, many_to_many, loss, X, Y, h0, lengths,
                  grad):
    with np.errstate(**_QUIET):
        return _gemm_path.loss_and_grad(_recurrences, theta, I, H, O, L, activation,
                                        many_to_many, loss, X, Y, h0, lengths, grad)


def backward(theta, I, H, O, L, activation, many_to_many, X, h0, lengths, dY, grad, dX,
             dh0, dh_last):
    with np.errstate(**_QUIET):
        _gemm_path.backward(_recurrences, theta, I, H, O, L, activation, many_to_many, X,
                            h0, lengths, dY, grad, dX, dh0, dh_last)


def step(theta, I, H, O, L, activation, x, h, y, h_next):
    Y = np.empty((1, 1, O), dtype=theta.dtype)
    forward(theta, I, H, O, L, activation, True, x.reshape(1, 1, I), h.reshape(L, 1, H),
            np.ones(1, dtype=np.intp), Y, h_next.reshape(L, 1, H))
    y.reshape(O)[:] = Y.reshape(O)


def train_steps(theta, I, H, O, L, activation, many_to_many, loss, X, Y, lengths, order,
                batch_size, optimizer, hyper, state, step_count, clip_value, clip_norm,
                losses):
    return _gemm_path.train_steps(_recurrences, theta, I, H, O, L, activation, many_to_many,
                                  loss, X, Y, lengths, order, batch_size, optimizer, hyper,
                                  state,
                                  step_count, clip_value, clip_norm, losses)


def forecast(theta, I, H, O, L, activation, X, h0, feedback, future, Y_out, h_last):
    _gemm_path.forecast(_recurrences, theta, I, H, O, L, activation, X, h0, feedback,
                        future, Y_out, h_last)


def set_thread_request(process, this_thread):
    """Accepted for the contract; the twin's own loops run on the calling thread."""


def max_threads():
    return 1
