# cython: language_level=3
"""Compiled kernels: the tanh or relu recurrence, backpropagation through time (the
vector-Jacobian product ``backward``, and ``loss_and_grad``, the same core with dL/dy
from the loss), and whole training steps, as typed-memoryview loops that run without
the GIL.

Same functions, signatures and results as the NumPy twin, ``_kernels_numpy``, whose
docstring is the contract. Inputs are trusted: the model validates, casts and
allocates before calling. Directives (bounds checks off, ...) are set in setup.py,
where ELMAN_CYTHON_DEBUG=1 turns the checks back on.

Why whole steps in one call: at the tutorials' sizes (hidden 4 to 50) a training
step is 1 to 20 us of arithmetic, and every separate NumPy call from Python costs
about 1 to 2 us, so ``forward``, ``loss_and_grad``, ``backward``, ``train_steps`` and
``forecast`` each do all of their work (projection, recurrence, head, loss and
gradient sums) inside one call, in loops over contiguous rows that the compiler
vectorises. Large shapes go through ``_gemm_path`` instead, which wraps BLAS
products around ``recurrence_forward`` / ``recurrence_backward`` or around the
elementwise step kernels ``tanh_step_forward`` / ``tanh_step_backward`` (and the
relu pair); which code serves a call is decided in one place, the route table
``elman._engine``.

The C helpers (tanh, tiled gradient sums, matrix-vector product) are in
``_kernels.h``; the optimizer codes and constants come from ``elman._update``.

This source is compiled twice: as ``_kernels`` for any x86-64 (or other) CPU, and,
on x86-64, as ``_kernels_avx2`` with AVX2 and FMA enabled (``_kernels_avx2.pyx``
includes this file). ``elman._backend`` imports the second when the CPU has both.
"""

cimport cython
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport sqrt, sqrtf, isfinite, pow, exp, log
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from cpython.object cimport PyObject, PyTypeObject, PyObject_TypeCheck, Py_TYPE

import numpy as np

from elman import _losses, _update

# The optimizer codes, the hyperparameter layout and the clipping constant have one
# source, elman._update; the training loop reads these C copies, set at import.
cdef int SGD_CODE = _update.SGD_CODE
cdef int ADAM_CODE = _update.ADAM_CODE
cdef Py_ssize_t HYPER_LR = _update.HYPER_LR
cdef Py_ssize_t HYPER_BETA1 = _update.HYPER_BETA1
cdef Py_ssize_t HYPER_BETA2 = _update.HYPER_BETA2
cdef Py_ssize_t HYPER_EPS = _update.HYPER_EPS
cdef Py_ssize_t HYPER_WEIGHT_DECAY = _update.HYPER_WEIGHT_DECAY
cdef double NORM_CLIP_EPS = _update.NORM_CLIP_EPS

# The loss codes and constants have one source too, elman._losses.
cdef int MSE = _losses.MSE
cdef int MAE = _losses.MAE
cdef int HUBER = _losses.HUBER
cdef int CROSS_ENTROPY = _losses.CROSS_ENTROPY
cdef int GAUSSIAN_NLL = _losses.GAUSSIAN_NLL
cdef double HUBER_DELTA = _losses.HUBER_DELTA
cdef double GAUSSIAN_NLL_EPS = _losses.GAUSSIAN_NLL_EPS

# How the fused loss-and-gradient loop cuts a batch: one chunk below
# FUSED_SPLIT_MIN_BATCH sequences, two halves below 2 FUSED_CHUNK_SEQUENCES, chunks
# of FUSED_CHUNK_SEQUENCES from there on (bench/bench_threads.py --chunk-cost
# measures what chunking costs on one thread; bench/RESULTS.md has the figures). Loops split
# over threads only where each thread gets at least PARALLEL_MIN_ELEMENTS elements
# of elementwise work: below that, starting the threads costs more than it saves.
cdef Py_ssize_t FUSED_SPLIT_MIN_BATCH = 8
cdef Py_ssize_t FUSED_CHUNK_SEQUENCES = 8
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = 2048
# Threads for the BLAS-step route's elementwise steps: 1, see _step_forward.
cdef int STEP_THREADS = 1

# The values this module computes with, as Python sees them
# (tests/test_kernel_contract.py compares them with elman._update and elman._losses).
UPDATE_CONSTANTS = {
    "SGD_CODE": SGD_CODE, "ADAM_CODE": ADAM_CODE, "HYPER_LR": HYPER_LR,
    "HYPER_BETA1": HYPER_BETA1, "HYPER_BETA2": HYPER_BETA2, "HYPER_EPS": HYPER_EPS,
    "HYPER_WEIGHT_DECAY": HYPER_WEIGHT_DECAY, "NORM_CLIP_EPS": NORM_CLIP_EPS,
}
LOSS_CONSTANTS = {
    "MSE": MSE, "MAE": MAE, "HUBER": HUBER, "CROSS_ENTROPY": CROSS_ENTROPY,
    "GAUSSIAN_NLL": GAUSSIAN_NLL, "HUBER_DELTA": HUBER_DELTA,
    "GAUSSIAN_NLL_EPS": GAUSSIAN_NLL_EPS,
}


# ---------------------------------------------------------------------------
# C helpers (_kernels.h): tanh, gradient-sum tiles, row-dot matrix-vector product
# ---------------------------------------------------------------------------

cdef extern from "_kernels.h":
    double elman_tanh(double x) noexcept nogil
    void elman_gemm_tn_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A,
                         Py_ssize_t lda, const double* B, Py_ssize_t ldb, double* C,
                         Py_ssize_t ldc) noexcept nogil
    void elman_gemm_tn_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A,
                         Py_ssize_t lda, const float* B, Py_ssize_t ldb, float* C,
                         Py_ssize_t ldc) noexcept nogil
    void elman_gemv_d(Py_ssize_t m, Py_ssize_t n, const double* W, Py_ssize_t ldw,
                      const double* x, double* y) noexcept nogil
    void elman_gemv_f(Py_ssize_t m, Py_ssize_t n, const float* W, Py_ssize_t ldw,
                      const float* x, float* y) noexcept nogil
    void elman_tanh_inplace_d(double* a, Py_ssize_t n) noexcept nogil
    void elman_tanh_inplace_f(float* a, Py_ssize_t n) noexcept nogil
    int ELMAN_OPENMP
    int elman_max_threads() noexcept nogil
    void elman_set_process_request(int n) noexcept nogil
    void elman_set_thread_local_request(int n) noexcept nogil


cdef inline void _tanh_inplace(floating* a, Py_ssize_t n) noexcept nogil:
    if floating is float:
        elman_tanh_inplace_f(a, n)
    else:
        elman_tanh_inplace_d(a, n)


# Activation codes: the index in elman._layout.ACTIVATIONS (tests/test_kernel_contract.py
# compares ACTIVATION_CODES with it).
cdef enum:
    TANH = 0
    RELU = 1

ACTIVATION_CODES = {"tanh": TANH, "relu": RELU}


cdef inline void _relu_inplace(floating* a, Py_ssize_t n) noexcept nogil:
    """a = max(0, a); NaN stays NaN, as np.maximum."""
    cdef Py_ssize_t i
    for i in range(n):
        if a[i] < 0:
            a[i] = 0


cdef inline void _activate_inplace(floating* a, Py_ssize_t n,
                                   int activation) noexcept nogil:
    if activation == RELU:
        _relu_inplace(a, n)
    else:
        _tanh_inplace(a, n)


cdef inline void _activation_backward_row(const floating* dh, const floating* carry,
                                          const floating* h, int activation, Py_ssize_t H,
                                          floating* da) noexcept nogil:
    """da = (dh + carry) f'(a), with f' written from h = f(a): 1 - h^2 for tanh, and
    for relu 1 where h > 0, else 0 (as torch). ``carry`` may be NULL (zero); da
    may be dh."""
    cdef Py_ssize_t i
    if activation == RELU:
        if carry == NULL:
            for i in range(H):
                da[i] = dh[i] if h[i] > 0 else 0
        else:
            for i in range(H):
                da[i] = dh[i] + carry[i] if h[i] > 0 else 0
    elif carry == NULL:
        for i in range(H):
            da[i] = dh[i] * (1 - h[i] * h[i])
    else:
        for i in range(H):
            da[i] = (dh[i] + carry[i]) * (1 - h[i] * h[i])


cdef inline void _gemm_tn(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* A,
                          Py_ssize_t lda, const floating* B, Py_ssize_t ldb, floating* C,
                          Py_ssize_t ldc) noexcept nogil:
    """C (m x n) += A^T B for A (k x m), B (k x n); see elman_gemm_tn_d above."""
    if floating is float:
        elman_gemm_tn_f(m, n, k, A, lda, B, ldb, C, ldc)
    else:
        elman_gemm_tn_d(m, n, k, A, lda, B, ldb, C, ldc)


cdef inline void _gemv(Py_ssize_t m, Py_ssize_t n, const floating* W, Py_ssize_t ldw,
                       const floating* x, floating* y) noexcept nogil:
    """y[:m] += W (m x n, rows ldw apart) x; see elman_gemv_d above."""
    if floating is float:
        elman_gemv_f(m, n, W, ldw, x, y)
    else:
        elman_gemv_d(m, n, W, ldw, x, y)


# ---------------------------------------------------------------------------
# Small helpers on contiguous rows
# ---------------------------------------------------------------------------

cdef inline void _axpy(Py_ssize_t n, floating a, const floating* x,
                       floating* y) noexcept nogil:
    """y += a * x"""
    cdef Py_ssize_t i
    for i in range(n):
        y[i] += a * x[i]


cdef inline void _add_rows(Py_ssize_t rows, Py_ssize_t n, const floating* coef,
                           Py_ssize_t coef_stride, const floating* W, Py_ssize_t ldw,
                           floating* y) noexcept nogil:
    """y[:n] += sum over r < rows of coef[r * coef_stride] * W[r * ldw : r * ldw + n].

    A matrix-vector product as a sum of scaled rows (W^T c for a row-major W), four
    rows per pass over y: y is loaded and stored once for eight flops per element
    instead of once per two, which is what limited the plain axpy loop.
    """
    cdef Py_ssize_t r = 0, i
    cdef floating c0, c1, c2, c3
    cdef const floating* w0
    cdef const floating* w1
    cdef const floating* w2
    cdef const floating* w3
    while r + 4 <= rows:
        c0 = coef[r * coef_stride]
        c1 = coef[(r + 1) * coef_stride]
        c2 = coef[(r + 2) * coef_stride]
        c3 = coef[(r + 3) * coef_stride]
        w0 = W + r * ldw
        w1 = w0 + ldw
        w2 = w1 + ldw
        w3 = w2 + ldw
        for i in range(n):
            y[i] += (c0 * w0[i] + c1 * w1[i]) + (c2 * w2[i] + c3 * w3[i])
        r += 4
    while r < rows:
        _axpy(n, coef[r * coef_stride], W + r * ldw, y)
        r += 1


cdef inline void _transpose(const floating* a, Py_ssize_t rows, Py_ssize_t cols,
                            floating* out) noexcept nogil:
    """out (cols, rows) = a (rows, cols)^T"""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            out[j * rows + i] = a[i * cols + j]


# ---------------------------------------------------------------------------
# Parameter layout (see the contract in _kernels_numpy)
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t _layer_offset(Py_ssize_t layer, Py_ssize_t I,
                                     Py_ssize_t H) noexcept nogil:
    if layer == 0:
        return 0
    return H * I + H * H + H + (layer - 1) * (2 * H * H + H)


cdef inline Py_ssize_t _fan_in(Py_ssize_t layer, Py_ssize_t I,
                               Py_ssize_t H) noexcept nogil:
    return I if layer == 0 else H


cdef inline Py_ssize_t _transposes_size(Py_ssize_t I, Py_ssize_t H,
                                        Py_ssize_t L) noexcept nogil:
    return H * I + (L - 1) * H * H


cdef void _make_transposes(const floating* theta, Py_ssize_t I, Py_ssize_t H,
                           Py_ssize_t L, floating* out) noexcept nogil:
    """Wxh^T of every layer, so that the input's share of a step is a sum of rows H
    long (_add_rows) even when the input has one feature. (Whh is read as it is:
    row dot products, _gemv.)"""
    cdef Py_ssize_t layer, fan_in
    for layer in range(L):
        fan_in = _fan_in(layer, I, H)
        _transpose(theta + _layer_offset(layer, I, H), H, fan_in, out)
        out += H * fan_in


# ---------------------------------------------------------------------------
# One layer, one sequence
# ---------------------------------------------------------------------------

cdef void _layer_forward(const floating* WxhT, const floating* Whh,
                         const floating* bh, Py_ssize_t fan_in, Py_ssize_t H,
                         Py_ssize_t steps, const floating* inputs,
                         const floating* h_init, floating* hs,
                         int activation) noexcept nogil:
    """hs[t] = f(Wxh inputs[t] + Whh hs[t-1] + bh) for t < steps (row-major), f the
    activation."""
    cdef Py_ssize_t t
    cdef floating* a
    cdef const floating* x
    cdef const floating* h_prev = h_init
    for t in range(steps):
        a = hs + t * H
        memcpy(a, bh, H * sizeof(floating))
        x = inputs + t * fan_in
        _add_rows(fan_in, H, x, 1, WxhT, H, a)
        _gemv(H, H, Whh, H, h_prev, a)
        _activate_inplace(a, H, activation)
        h_prev = a


cdef inline void _head(const floating* Why, const floating* by, Py_ssize_t O,
                       Py_ssize_t H, const floating* h, floating* y) noexcept nogil:
    memcpy(y, by, O * sizeof(floating))
    _gemv(O, H, Why, H, h, y)


# ---------------------------------------------------------------------------
# The losses, one output row at a time (the formulas of elman._losses)
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t _target_width(int loss, Py_ssize_t O) noexcept nogil:
    """Targets per output row: O, 1 (a class index) or O // 2 (see _kernels_numpy)."""
    if loss == CROSS_ENTROPY:
        return 1
    if loss == GAUSSIAN_NLL:
        return O // 2
    return O


cdef inline double _loss_row(int loss, floating* y, const floating* target, Py_ssize_t O,
                             floating scale) noexcept nogil:
    """The loss of one output row y (O,) against its targets, summed over the row's
    target elements; y is overwritten with ``scale`` times the loss's gradient with
    respect to it (for mse, scale carries the 2 of d(d**2))."""
    cdef Py_ssize_t o, k, c
    cdef floating diff
    cdef double total = 0.0, top, norm, raw_var, var, d, ratio
    if loss == MSE:
        for o in range(O):
            diff = y[o] - target[o]
            total += diff * diff
            y[o] = scale * diff
    elif loss == MAE:
        for o in range(O):
            diff = y[o] - target[o]
            if diff > 0:
                total += diff
                y[o] = scale
            elif diff < 0:
                total -= diff
                y[o] = -scale
            else:
                y[o] = 0
    elif loss == HUBER:
        for o in range(O):
            diff = y[o] - target[o]
            if diff < HUBER_DELTA and diff > -HUBER_DELTA:
                total += 0.5 * diff * diff
                y[o] = scale * diff
            elif diff > 0:
                total += HUBER_DELTA * (diff - 0.5 * HUBER_DELTA)
                y[o] = scale * <floating>HUBER_DELTA
            else:
                total += HUBER_DELTA * (-diff - 0.5 * HUBER_DELTA)
                y[o] = -scale * <floating>HUBER_DELTA
    elif loss == CROSS_ENTROPY:
        # logsumexp(y) - y[c], shifted by the largest logit; gradient softmax - one hot.
        c = <Py_ssize_t>target[0]
        top = y[0]
        for o in range(1, O):
            if y[o] > top:
                top = y[o]
        norm = 0.0
        for o in range(O):
            norm += exp(y[o] - top)
        total = log(norm) - (y[c] - top)
        for o in range(O):
            y[o] = scale * <floating>(exp(y[o] - top) / norm)
        y[c] -= scale
    else:  # GAUSSIAN_NLL: k means, then k log-variances
        k = O // 2
        for o in range(k):
            raw_var = exp(<double>y[k + o])
            var = raw_var if raw_var > GAUSSIAN_NLL_EPS else GAUSSIAN_NLL_EPS
            d = <double>y[o] - <double>target[o]
            ratio = d / var
            total += 0.5 * (log(var) + d * ratio)
            y[o] = scale * <floating>ratio
            # The clamp passes the gradient as in PyTorch (see elman._losses).
            y[k + o] = scale * <floating>(0.5 * (1.0 - d * ratio) / var * raw_var)
    return total


# ---------------------------------------------------------------------------
# Whole-batch loss and gradient (the core of a training step)
# ---------------------------------------------------------------------------

cdef Py_ssize_t _chunk_work_size(Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
                                 Py_ssize_t L, Py_ssize_t B,
                                 Py_ssize_t T) noexcept nogil:
    """Work elements of _loss_grad_chunk for a chunk of B sequences."""
    cdef Py_ssize_t sequence = B * T * H
    cdef Py_ssize_t below = 2 * sequence if L > 1 else 0
    cdef Py_ssize_t widest = I if I > H else H
    # states, d_below/d_above, dh/carry/y, dA of one sequence (T, H),
    # gWxh^T of one layer (fan_in, H)
    return L * sequence + below + 2 * H + O + T * H + widest * H


cdef inline Py_ssize_t _chunk_sequences(Py_ssize_t B) noexcept nogil:
    """Sequences per chunk of a batch of B: a function of B alone, never of the
    thread count, so that every thread count sums the same partial gradients in the
    same order (bit-identical results)."""
    if B < FUSED_SPLIT_MIN_BATCH:
        return B
    if B < 2 * FUSED_CHUNK_SEQUENCES:
        return (B + 1) // 2
    return FUSED_CHUNK_SEQUENCES


cdef Py_ssize_t _loss_grad_work_size(Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
                                     Py_ssize_t L, Py_ssize_t B,
                                     Py_ssize_t T) noexcept nogil:
    """Work elements of _loss_and_grad for a batch of B (or fewer) sequences."""
    cdef Py_ssize_t P = _layer_offset(L, I, H) + O * H + O
    cdef Py_ssize_t per_chunk = _chunk_sequences(B)
    cdef Py_ssize_t chunks = (B + per_chunk - 1) // per_chunk if B > 0 else 1
    # each chunk's loss (doubles, first: aligned), transposes, each chunk's work,
    # the partial gradients of every chunk but the first
    return (2 * chunks + _transposes_size(I, H, L)
            + chunks * _chunk_work_size(I, H, O, L, per_chunk, T) + (chunks - 1) * P)


cdef double _loss_grad_chunk(const floating* theta, const floating* transposes,
                             Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
                             int activation, bint many_to_many, int loss_code, Py_ssize_t B,
                             Py_ssize_t T, const floating* X, const floating* Y,
                             const floating* h0, Py_ssize_t h0_layer_stride,
                             const Py_ssize_t* lengths, floating scale, floating* grad,
                             floating* work, bint y_is_gradient, floating* dX,
                             floating* dh0, const floating* dh_last) noexcept nogil:
    """The summed loss of B sequences (returned, before the mean's division) and its
    gradient scaled by ``scale`` (written to grad). h0 holds layer l's initial states at
    h0 + l * h0_layer_stride; ``transposes`` is _make_transposes of theta; ``work``
    has _chunk_work_size elements.

    One core for both gradients: dL/dy comes from the loss against the targets Y,
    or, with ``y_is_gradient``, Y is dL/dy itself (``backward``) and 0 is returned.
    ``dX`` (B, T, I) and ``dh0`` (laid out as h0), when not NULL, receive the
    gradients reaching the inputs and the initial states. ``dh_last`` (laid out as
    h0), when not NULL, is the gradient reaching each sequence's last states: it
    enters at the sequence's last valid step of each layer."""
    cdef Py_ssize_t P = _layer_offset(L, I, H) + O * H + O
    cdef Py_ssize_t sequence = B * T * H
    cdef floating* states = work
    cdef floating* d_below = states + L * sequence      # dL/dh of the layer below
    cdef floating* d_above = d_below + (sequence if L > 1 else 0)
    cdef floating* dh = d_above + (sequence if L > 1 else 0)
    cdef floating* carry = dh + H
    cdef floating* y = carry + H                       # head outputs, then dL/dy
    cdef floating* dA = y + O                          # da_t of one sequence, (T, H)
    cdef floating* gWxhT = dA + T * H                  # (fan_in, H), see below
    cdef floating* da
    cdef floating* swap
    cdef const floating* WxhT
    cdef const floating* Wxh
    cdef const floating* Whh
    cdef const floating* bh
    cdef const floating* Why = theta + _layer_offset(L, I, H)
    cdef const floating* by = Why + O * H
    cdef floating* gWxh
    cdef floating* gWhh
    cdef floating* gbh
    cdef floating* gWhy = grad + _layer_offset(L, I, H)
    cdef floating* gby = gWhy + O * H
    cdef const floating* inputs
    cdef const floating* x
    cdef const floating* h
    cdef const floating* h_first
    cdef const floating* target
    cdef floating* hs
    # Targets per row: the loss's width, or O when Y is dL/dy itself.
    cdef Py_ssize_t W = O if y_is_gradient else _target_width(loss_code, O)
    cdef Py_ssize_t layer, fan_in, base, b, t, i, k, o, steps
    cdef double loss = 0.0

    memset(grad, 0, P * sizeof(floating))
    if dX != NULL:
        memset(dX, 0, B * T * I * sizeof(floating))  # padded steps stay zero

    # Forward, layer by layer, each sequence over its valid steps only.
    WxhT = transposes
    for layer in range(L):
        fan_in = _fan_in(layer, I, H)
        base = _layer_offset(layer, I, H)
        Whh = theta + base + H * fan_in
        bh = Whh + H * H
        for b in range(B):
            if layer == 0:
                inputs = X + b * T * I
            else:
                inputs = states + (layer - 1) * sequence + b * T * H
            _layer_forward(WxhT, Whh, bh, fan_in, H, lengths[b], inputs,
                           h0 + layer * h0_layer_stride + b * H,
                           states + layer * sequence + b * T * H, activation)
        WxhT += H * fan_in

    # Backward through time, top layer first. The head reads the top layer only;
    # a lower layer's dh comes from the layer above (d_below of that layer).
    # Per step only the recurrence itself: da_t, carry = Whh^T da_t (and Wxh^T da_t
    # for the layer below). The weight gradients are sums over steps, done after
    # each sequence as register-tiled products over all its steps (_gemm_tn),
    # instead of a rank-one update of gWhh at every step. gWxh is summed
    # transposed, (fan_in, H), so that the rows are H long even when the input has
    # one feature, then added in at the layer's end.
    for layer in range(L - 1, -1, -1):
        fan_in = _fan_in(layer, I, H)
        base = _layer_offset(layer, I, H)
        Wxh = theta + base
        Whh = Wxh + H * fan_in
        gWxh = grad + base
        gWhh = gWxh + H * fan_in
        gbh = gWhh + H * H
        memset(gWxhT, 0, fan_in * H * sizeof(floating))
        for b in range(B):
            steps = lengths[b]
            hs = states + layer * sequence + b * T * H
            if layer == 0:
                inputs = X + b * T * I
            else:
                inputs = states + (layer - 1) * sequence + b * T * H
            h_first = h0 + layer * h0_layer_stride + b * H
            # dh at the last valid step starts from carry: dL/dh_last, else zero.
            if dh_last != NULL:
                memcpy(carry, dh_last + layer * h0_layer_stride + b * H,
                       H * sizeof(floating))
            else:
                memset(carry, 0, H * sizeof(floating))
            for t in range(steps - 1, -1, -1):
                h = hs + t * H
                da = dA + t * H
                memcpy(dh, carry, H * sizeof(floating))
                if layer == L - 1:
                    if many_to_many or t == steps - 1:
                        if many_to_many:
                            target = Y + (b * T + t) * W
                        else:
                            target = Y + b * W
                        if y_is_gradient:
                            memcpy(y, target, O * sizeof(floating))
                        else:
                            # y becomes dL/dy of this row.
                            _head(Why, by, O, H, h, y)
                            loss += _loss_row(loss_code, y, target, O, scale)
                        for o in range(O):
                            gby[o] += y[o]
                            _axpy(H, y[o], h, gWhy + o * H)
                        _add_rows(O, H, y, 1, Why, H, dh)
                else:
                    _axpy(H, <floating>1, d_above + (b * T + t) * H, dh)
                if activation == RELU:
                    _activation_backward_row(dh, <floating*>NULL, h, activation, H, da)
                else:
                    for i in range(H):
                        da[i] = dh[i] * (1 - h[i] * h[i])
                if t > 0 or dh0 != NULL:
                    memset(carry, 0, H * sizeof(floating))
                    _add_rows(H, H, da, 1, Whh, H, carry)
                if layer > 0:
                    # dL/d(input at t) = Wxh^T da: the layer below's dh from above.
                    memset(d_below + (b * T + t) * H, 0, H * sizeof(floating))
                    _add_rows(H, H, da, 1, Wxh, H, d_below + (b * T + t) * H)
                elif dX != NULL:
                    _add_rows(H, I, da, 1, Wxh, I, dX + (b * T + t) * I)
            if dh0 != NULL:  # carry is Whh^T da_0: dL/dh0
                memcpy(dh0 + layer * h0_layer_stride + b * H, carry, H * sizeof(floating))
            # This sequence's share of the weight gradients.
            for t in range(steps):
                _axpy(H, <floating>1, dA + t * H, gbh)
            _gemm_tn(fan_in, H, steps, inputs, fan_in, dA, H, gWxhT, H)
            # h_{t-1} is h0 at t = 0, then the states shifted by one.
            _gemm_tn(H, H, 1, dA, H, h_first, H, gWhh, H)
            _gemm_tn(H, H, steps - 1, dA + H, H, hs, H, gWhh, H)
        for i in range(H):
            for k in range(fan_in):
                gWxh[i * fan_in + k] += gWxhT[k * H + i]
        swap = d_above
        d_above = d_below
        d_below = swap
    return loss


cdef double _loss_and_grad(const floating* theta, Py_ssize_t I, Py_ssize_t H,
                           Py_ssize_t O, Py_ssize_t L, int activation,
                           bint many_to_many, int loss_code, Py_ssize_t B, Py_ssize_t T,
                           const floating* X, const floating* Y, const floating* h0,
                           const Py_ssize_t* lengths, floating* grad,
                           floating* work, bint y_is_gradient, floating* dX,
                           floating* dh0, const floating* dh_last) noexcept nogil:
    """Loss (returned) and its gradient (written to grad); ``work`` has
    _loss_grad_work_size elements. With ``y_is_gradient``, Y is dL/dy itself
    (``backward``) and 0 is returned; ``dX`` (B, T, I) and ``dh0`` (L, B, H), when
    not NULL, receive the gradients reaching the inputs and the initial states, and
    ``dh_last`` (L, B, H), when not NULL, is the gradient reaching the last states
    (see _loss_grad_chunk).

    The batch is cut into chunks of _chunk_sequences(B) sequences. Each chunk's
    gradient goes to a partial of its own (the first chunk's straight into grad),
    the chunks run on up to elman_max_threads() threads, and the partials are then
    added to grad in chunk order, and the chunks' losses summed in chunk order: the
    same sums in the same order on any number of threads."""
    cdef Py_ssize_t P = _layer_offset(L, I, H) + O * H + O
    cdef Py_ssize_t per_chunk = _chunk_sequences(B)
    cdef Py_ssize_t chunks = (B + per_chunk - 1) // per_chunk
    cdef Py_ssize_t chunk_work = _chunk_work_size(I, H, O, L, per_chunk, T)
    # Targets per row: the loss's width, or O when Y is dL/dy itself.
    cdef Py_ssize_t W = O if y_is_gradient else _target_width(loss_code, O)
    cdef Py_ssize_t y_row = T * W if many_to_many else W
    cdef double* chunk_loss = <double*>work
    cdef floating* transposes = work + 2 * chunks
    cdef floating* chunk_base = transposes + _transposes_size(I, H, L)
    cdef floating* partials = chunk_base + chunks * chunk_work
    cdef Py_ssize_t count = 0, b, c
    cdef int threads
    cdef double loss = 0.0
    cdef floating scale

    # The mean's denominator counts the whole batch's valid targets.
    if many_to_many:
        for b in range(B):
            count += lengths[b]
        count *= W
    else:
        count = B * W
    scale = <floating>((2.0 if loss_code == MSE else 1.0) / count)
    _make_transposes(theta, I, H, L, transposes)
    threads = elman_max_threads()
    if threads > chunks:
        threads = <int>chunks
    if threads > 1:
        _run_chunks_in_parallel(theta, transposes, I, H, O, L, activation, many_to_many,
                                loss_code, B, T, X, Y, h0, lengths, scale, chunks,
                                per_chunk, y_row, grad, partials, P, chunk_base,
                                chunk_work, chunk_loss, y_is_gradient, dX, dh0, dh_last,
                                threads)
    else:
        for c in range(chunks):
            _run_chunk(theta, transposes, I, H, O, L, activation, many_to_many, loss_code,
                       B, T, X, Y, h0, lengths, scale, c, per_chunk, y_row,
                       grad if c == 0 else partials + (c - 1) * P,
                       chunk_base + c * chunk_work, chunk_loss, y_is_gradient, dX, dh0,
                       dh_last)
    for c in range(chunks):
        loss += chunk_loss[c]
    if chunks > 1:
        _add_partials(grad, partials, chunks - 1, P, threads)
    return loss / count


# The parallel loops live in functions of their own (_run_chunks_in_parallel,
# _parallel_* below): in a function that also holds an OpenMP region, GCC compiled
# the serial loops beside it three times slower (the vectorised tanh among them).

cdef void _run_chunks_in_parallel(const floating* theta, const floating* transposes,
                                  Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
                                  int activation, bint many_to_many, int loss_code,
                                  Py_ssize_t B, Py_ssize_t T, const floating* X,
                                  const floating* Y, const floating* h0,
                                  const Py_ssize_t* lengths, floating scale,
                                  Py_ssize_t chunks, Py_ssize_t per_chunk, Py_ssize_t y_row,
                                  floating* grad, floating* partials, Py_ssize_t P,
                                  floating* chunk_base, Py_ssize_t chunk_work,
                                  double* chunk_loss, bint y_is_gradient, floating* dX,
                                  floating* dh0, const floating* dh_last,
                                  int threads) noexcept nogil:
    cdef Py_ssize_t c
    for c in prange(chunks, num_threads=threads, schedule="static"):
        _run_chunk(theta, transposes, I, H, O, L, activation, many_to_many, loss_code, B, T,
                   X, Y, h0, lengths, scale, c, per_chunk, y_row,
                   grad if c == 0 else partials + (c - 1) * P,
                   chunk_base + c * chunk_work, chunk_loss, y_is_gradient, dX, dh0,
                   dh_last)


cdef void _run_chunk(const floating* theta, const floating* transposes,
                     Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
                     int activation, bint many_to_many, int loss_code, Py_ssize_t B,
                     Py_ssize_t T, const floating* X, const floating* Y, const floating* h0,
                     const Py_ssize_t* lengths, floating scale, Py_ssize_t c,
                     Py_ssize_t per_chunk, Py_ssize_t y_row, floating* grad,
                     floating* work, double* chunk_loss, bint y_is_gradient,
                     floating* dX, floating* dh0, const floating* dh_last) noexcept nogil:
    """Chunk c of _loss_and_grad: its sequences' loss into chunk_loss[c], their
    gradient into grad, their dX and dh0 rows (when asked for) in place, from their
    dh_last rows (when given)."""
    cdef Py_ssize_t first = c * per_chunk
    cdef Py_ssize_t n = per_chunk if first + per_chunk <= B else B - first
    chunk_loss[c] = _loss_grad_chunk(
        theta, transposes, I, H, O, L, activation, many_to_many, loss_code, n, T,
        X + first * T * I,
        Y + first * y_row, h0 + first * H, B * H, lengths + first, scale, grad, work,
        y_is_gradient, NULL if dX == NULL else dX + first * T * I,
        NULL if dh0 == NULL else dh0 + first * H,
        NULL if dh_last == NULL else dh_last + first * H)


cdef void _add_partials(floating* grad, const floating* partials, Py_ssize_t count,
                        Py_ssize_t P, int threads) noexcept nogil:
    """grad += partials[0] + ... + partials[count - 1] (each P long), added in that
    order to every element; the elements are shared out among the threads in runs."""
    if threads > 1 and P >= 2 * PARALLEL_MIN_ELEMENTS:
        _parallel_add_partials(grad, partials, count, P, threads)
    else:
        _add_partials_range(grad, partials, count, P, 0, P)


cdef void _parallel_add_partials(floating* grad, const floating* partials,
                                 Py_ssize_t count, Py_ssize_t P,
                                 int threads) noexcept nogil:
    cdef Py_ssize_t r
    for r in prange(threads, num_threads=threads, schedule="static"):
        _add_partials_range(grad, partials, count, P, r * P // threads,
                            (r + 1) * P // threads)


cdef void _add_partials_range(floating* grad, const floating* partials,
                              Py_ssize_t count, Py_ssize_t P, Py_ssize_t start,
                              Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t c, i
    cdef const floating* partial
    for c in range(count):
        partial = partials + c * P
        for i in range(start, stop):
            grad[i] += partial[i]


# ---------------------------------------------------------------------------
# Optimizer updates and clipping (the formulas of elman._update)
# ---------------------------------------------------------------------------

cdef bint _clip(floating* grad, Py_ssize_t P, double clip_value,
                double clip_norm) noexcept nogil:
    """Clip in place; False when an element is not finite (nothing is clipped)."""
    cdef Py_ssize_t i
    cdef double total = 0.0, coef
    cdef floating c = <floating>clip_value
    for i in range(P):
        if not isfinite(grad[i]):
            return False
    if clip_value > 0:
        for i in range(P):
            if grad[i] > c:
                grad[i] = c
            elif grad[i] < -c:
                grad[i] = -c
    if clip_norm > 0:
        for i in range(P):
            total += <double>grad[i] * <double>grad[i]
        coef = clip_norm / (sqrt(total) + NORM_CLIP_EPS)
        if coef < 1.0:
            for i in range(P):
                grad[i] *= <floating>coef
    return True


cdef void _apply_update(int optimizer, floating* theta, const floating* grad,
                  Py_ssize_t P, const double* hyper, floating* state,
                  long long* step_count) noexcept nogil:
    cdef Py_ssize_t i
    cdef double lr_ = hyper[HYPER_LR], beta1_ = hyper[HYPER_BETA1]
    cdef double beta2_ = hyper[HYPER_BETA2], decay_ = hyper[HYPER_WEIGHT_DECAY]
    cdef floating lr = <floating>lr_
    cdef floating beta1 = <floating>beta1_
    cdef floating beta2 = <floating>beta2_
    cdef floating eps = <floating>hyper[HYPER_EPS]
    cdef floating weight_decay = <floating>decay_
    cdef floating one_minus_beta1 = <floating>(1.0 - beta1_)
    cdef floating one_minus_beta2 = <floating>(1.0 - beta2_)
    cdef floating step_size, correction2, g, denom
    cdef floating* m = state
    cdef floating* v = state + P
    cdef bint decay = decay_ != 0.0
    step_count[0] += 1
    if optimizer == SGD_CODE:
        if beta1_ != 0.0:
            for i in range(P):
                g = grad[i] + weight_decay * theta[i] if decay else grad[i]
                m[i] = m[i] * beta1 + g
                theta[i] -= lr * m[i]
        else:
            for i in range(P):
                g = grad[i] + weight_decay * theta[i] if decay else grad[i]
                theta[i] -= lr * g
        return
    step_size = <floating>(lr_ / (1.0 - pow(beta1_, <double>step_count[0])))
    correction2 = <floating>sqrt(1.0 - pow(beta2_, <double>step_count[0]))
    for i in range(P):
        g = grad[i] + weight_decay * theta[i] if decay else grad[i]
        m[i] = m[i] * beta1 + one_minus_beta1 * g
        v[i] = v[i] * beta2 + one_minus_beta2 * (g * g)
        if floating is float:
            denom = sqrtf(v[i]) / correction2 + eps
        else:
            denom = sqrt(v[i]) / correction2 + eps
        theta[i] -= step_size * m[i] / denom


# ---------------------------------------------------------------------------
# Arrays received as objects (forward, loss_and_grad, backward, step)
# ---------------------------------------------------------------------------

cdef extern from "_kernels.h":
    ctypedef struct elman_descr_head:
        char byteorder
        int type_num
    ctypedef struct elman_array_head:
        char* data
        int nd
        Py_ssize_t* dimensions
        elman_descr_head* descr
        int flags
    int ELMAN_ARRAY_C_CONTIGUOUS
    int ELMAN_ARRAY_WRITEABLE

cdef PyTypeObject* NDARRAY = <PyTypeObject*>np.ndarray
cdef int FLOAT64 = np.dtype(np.float64).num
cdef int FLOAT32 = np.dtype(np.float32).num
# Py_ssize_t arrays: intp, and the other C integer type of its size (int64 is
# ``long`` on Linux and ``long long`` on Windows; either may arrive).
cdef int INTP = np.dtype(np.intp).num
cdef int INTP_TWIN = INTP
for _code in "lq":
    if np.dtype(_code).itemsize == np.dtype(np.intp).itemsize:
        if np.dtype(_code).num != INTP:
            INTP_TWIN = np.dtype(_code).num


cdef int _float_kind(object theta) except -1:
    """The dtype number of theta (float64 or float32); every float array of a call
    must have it."""
    if PyObject_TypeCheck(theta, NDARRAY):
        kind = (<elman_array_head*><PyObject*>theta).descr.type_num
        if kind == FLOAT64 or kind == FLOAT32:
            return kind
    raise TypeError(f"theta must be a float64 or float32 NumPy array; got {theta!r:.80}")


cdef elman_array_head* _array(object a, str name, int type_num, int ndim,
                              bint writeable) except NULL:
    """``a``'s array header, once ``a`` is a C-contiguous NumPy array of this dtype
    number and rank (and writeable, for an output): what a typed memoryview of the
    contract's type would have checked, without making one."""
    cdef elman_array_head* head
    if not PyObject_TypeCheck(a, NDARRAY):
        raise TypeError(f"{name} must be a NumPy array; got {type(a).__name__}")
    head = <elman_array_head*><PyObject*>a
    if ((head.descr.type_num != type_num
            and not (type_num == INTP and head.descr.type_num == INTP_TWIN))
            or head.nd != ndim or not head.flags & ELMAN_ARRAY_C_CONTIGUOUS
            or (writeable and not head.flags & ELMAN_ARRAY_WRITEABLE)):
        expected = "intp" if type_num == INTP else ("float64" if type_num == FLOAT64
                                                    else "float32")
        raise ValueError(
            f"{name} must be a C-contiguous{' writeable' if writeable else ''} "
            f"{ndim}-d {expected} array; got a {a.ndim}-d {a.dtype} array, "
            f"C-contiguous {a.flags.c_contiguous}, writeable {a.flags.writeable}")
    return head


# ---------------------------------------------------------------------------
# Input check for the model's streaming step (not a kernel: it computes nothing)
# ---------------------------------------------------------------------------

cdef bint _ready_matrix(object a, int kind, Py_ssize_t rows, Py_ssize_t cols):
    """True when ``a`` is an ndarray (not a subclass) of shape (rows, cols), of dtype
    number ``kind`` in native byte order, C-contiguous, and every value is finite."""
    cdef elman_array_head* head
    cdef Py_ssize_t i, n = rows * cols
    cdef const double* values
    cdef const float* values32
    cdef bint bad = False
    if Py_TYPE(a) != NDARRAY:
        return False
    head = <elman_array_head*><PyObject*>a
    if (head.nd != 2 or head.dimensions[0] != rows or head.dimensions[1] != cols
            or head.descr.type_num != kind or head.descr.byteorder != b'='
            or not head.flags & ELMAN_ARRAY_C_CONTIGUOUS):
        return False
    # v * 0 is 0 for every finite v and NaN for NaN and inf (finite values never
    # overflow it); an OR of the comparisons, which the compiler vectorises.
    if kind == FLOAT64:
        values = <const double*>head.data
        for i in range(n):
            bad |= not (values[i] * 0.0 == 0.0)
    else:
        values32 = <const float*>head.data
        for i in range(n):
            bad |= not (values32[i] * 0.0 == 0.0)
    return not bad


def _stream_step_ready(theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t L, x, h):
    """True when ``x`` (1, I) and ``h`` (L, H) are what ``step`` takes as they are:
    ndarrays (not subclasses) in theta's dtype, native byte order, C-contiguous,
    every value finite -- what ``elman._validation``'s full checks would pass
    without a copy. False for any other x and h, never an exception: the model then
    takes the full checks, which alone raise the errors. ``elman._validation``'s
    ``stream_step_ready_python`` is the same test in Python."""
    cdef int kind = _float_kind(theta)
    return _ready_matrix(x, kind, 1, I) and _ready_matrix(h, kind, L, H)


# ---------------------------------------------------------------------------
# Public kernels (signatures of the contract in _kernels_numpy)
# ---------------------------------------------------------------------------

# Which build of this source this module is (``_kernels_avx2.pyx`` overrides it).
INSTRUCTION_SET = "baseline"

# True when this module was compiled with OpenMP, so that its loops can run on
# several threads; the chunking constants, for the tests of thread-count
# independence.
OPENMP = bool(ELMAN_OPENMP)
CHUNKING = {"FUSED_SPLIT_MIN_BATCH": FUSED_SPLIT_MIN_BATCH,
            "FUSED_CHUNK_SEQUENCES": FUSED_CHUNK_SEQUENCES,
            "PARALLEL_MIN_ELEMENTS": PARALLEL_MIN_ELEMENTS}


def _set_fused_chunking(Py_ssize_t split_min_batch, Py_ssize_t chunk_sequences):
    """Change how the fused loops cut a batch; returns the previous pair. For
    bench/bench_threads.py, which measures what chunking costs on one thread:
    results change with the chunking (summation order), so nothing else calls it."""
    global FUSED_SPLIT_MIN_BATCH, FUSED_CHUNK_SEQUENCES
    if split_min_batch < 1 or chunk_sequences < 1:
        raise ValueError("split_min_batch and chunk_sequences must be positive")
    previous = (FUSED_SPLIT_MIN_BATCH, FUSED_CHUNK_SEQUENCES)
    FUSED_SPLIT_MIN_BATCH, FUSED_CHUNK_SEQUENCES = split_min_batch, chunk_sequences
    return previous


def set_thread_request(int process, int this_thread):
    """Threads requested for this process and for the calling thread (0: no
    request, -1: unchanged). ``elman._threading`` sets these; see elman_max_threads
    in _kernels.h."""
    if process >= 0:
        elman_set_process_request(process)
    if this_thread >= 0:
        elman_set_thread_local_request(this_thread)


def max_threads():
    """The number of threads a loop of this module may use now, from this thread."""
    return elman_max_threads()


cdef inline int _threads_for(Py_ssize_t items, Py_ssize_t elements) noexcept nogil:
    """Threads for a loop over ``items`` independent items with ``elements``
    elements of work in all: at most one per item and per PARALLEL_MIN_ELEMENTS."""
    cdef int threads = elman_max_threads()
    if threads <= 1:
        return 1
    if threads > items:
        threads = <int>items
    if threads > elements // PARALLEL_MIN_ELEMENTS:
        threads = <int>(elements // PARALLEL_MIN_ELEMENTS)
    return threads if threads > 1 else 1


cdef inline void _step_forward_row(const floating* a, const floating* p, Py_ssize_t n,
                                   int activation, floating* out) noexcept nogil:
    """out = f(a + p), n elements; out may be p."""
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = a[i] + p[i]
    _activate_inplace(out, n, activation)


cdef void _step_forward(const floating* a, const floating* p, floating* o,
                        Py_ssize_t rows, Py_ssize_t cols, int activation) noexcept nogil:
    """The elementwise forward step of (rows, cols) blocks, split by rows over
    threads where it pays (elementwise: any split gives the same elements).

    Not split today (STEP_THREADS is 1): this step alternates with a BLAS product
    at every time step, and OpenMP's waiting threads and OpenBLAS's then fight for
    the cores (bench/bench_threads.py, bench/RESULTS.md)."""
    cdef int threads = _threads_for(rows, rows * cols) if STEP_THREADS > 1 else 1
    if threads > 1:
        _parallel_step_forward(a, p, o, rows, cols, activation, threads)
    else:
        _step_forward_row(a, p, rows * cols, activation, o)


cdef void _parallel_step_forward(const floating* a, const floating* p, floating* o,
                                 Py_ssize_t rows, Py_ssize_t cols, int activation,
                                 int threads) noexcept nogil:
    cdef Py_ssize_t r, start, stop
    for r in prange(threads, num_threads=threads, schedule="static"):
        start = r * rows // threads * cols
        stop = (r + 1) * rows // threads * cols
        _step_forward_row(a + start, p + start, stop - start, activation, o + start)


cdef void _step_backward(const floating* dh, const floating* c, const floating* h,
                         floating* o, Py_ssize_t rows, Py_ssize_t cols,
                         int activation) noexcept nogil:
    """The elementwise backward step of (rows, cols) blocks, split as _step_forward
    (the rows are contiguous: a run of whole rows is one row)."""
    cdef int threads = _threads_for(rows, rows * cols) if STEP_THREADS > 1 else 1
    if threads > 1:
        _parallel_step_backward(dh, c, h, o, rows, cols, activation, threads)
    else:
        _activation_backward_row(dh, c, h, activation, rows * cols, o)


cdef void _parallel_step_backward(const floating* dh, const floating* c,
                                  const floating* h, floating* o, Py_ssize_t rows,
                                  Py_ssize_t cols, int activation,
                                  int threads) noexcept nogil:
    cdef Py_ssize_t r, start, stop
    for r in prange(threads, num_threads=threads, schedule="static"):
        start = r * rows // threads * cols
        stop = (r + 1) * rows // threads * cols
        _activation_backward_row(dh + start, c + start, h + start, activation,
                                 stop - start, o + start)


def tanh_step_forward(const floating[:, ::1] A, const floating[:, ::1] P_t,
                      floating[:, ::1] out):
    if A.shape[0] * A.shape[1] == 0:
        return
    with nogil:
        _step_forward(&A[0, 0], &P_t[0, 0], &out[0, 0], A.shape[0], A.shape[1], TANH)


def tanh_step_backward(const floating[:, ::1] dH_t, const floating[:, ::1] carry,
                       const floating[:, ::1] h_t, floating[:, ::1] out):
    if dH_t.shape[0] * dH_t.shape[1] == 0:
        return
    with nogil:
        _step_backward(&dH_t[0, 0], &carry[0, 0], &h_t[0, 0], &out[0, 0],
                       dH_t.shape[0], dH_t.shape[1], TANH)


def relu_step_forward(const floating[:, ::1] A, const floating[:, ::1] P_t,
                      floating[:, ::1] out):
    if A.shape[0] * A.shape[1] == 0:
        return
    with nogil:
        _step_forward(&A[0, 0], &P_t[0, 0], &out[0, 0], A.shape[0], A.shape[1], RELU)


def relu_step_backward(const floating[:, ::1] dH_t, const floating[:, ::1] carry,
                       const floating[:, ::1] h_t, floating[:, ::1] out):
    if dH_t.shape[0] * dH_t.shape[1] == 0:
        return
    with nogil:
        _step_backward(&dH_t[0, 0], &carry[0, 0], &h_t[0, 0], &out[0, 0],
                       dH_t.shape[0], dH_t.shape[1], RELU)


def recurrence_forward(int activation, const floating[:, :, ::1] P,
                       const floating[:, ::1] Whh,
                       const floating[:, ::1] h0, const Py_ssize_t[::1] lengths,
                       floating[:, :, ::1] Hs):
    cdef Py_ssize_t T = P.shape[0], B = P.shape[1], H = P.shape[2]
    cdef Py_ssize_t b
    cdef int threads
    if B == 0 or T == 0 or H == 0:
        return
    threads = _threads_for(B, T * B * H * H)
    with nogil:  # the sequences are independent: any split gives the same states
        if threads > 1:
            _parallel_recurrence_forward(&P[0, 0, 0], &Whh[0, 0], &h0[0, 0], &lengths[0],
                                         T, B, H, &Hs[0, 0, 0], activation, threads)
        else:
            for b in range(B):
                _recurrence_forward_sequence(&P[0, 0, 0], &Whh[0, 0], &h0[0, 0],
                                             lengths[b], T, B, H, b, &Hs[0, 0, 0],
                                             activation)


cdef void _parallel_recurrence_forward(const floating* P, const floating* Whh,
                                       const floating* h0, const Py_ssize_t* lengths,
                                       Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                                       floating* Hs, int activation,
                                       int threads) noexcept nogil:
    cdef Py_ssize_t b
    for b in prange(B, num_threads=threads, schedule="static"):
        _recurrence_forward_sequence(P, Whh, h0, lengths[b], T, B, H, b, Hs, activation)


cdef void _recurrence_forward_sequence(const floating* P, const floating* Whh,
                                       const floating* h0, Py_ssize_t length,
                                       Py_ssize_t T, Py_ssize_t B, Py_ssize_t H,
                                       Py_ssize_t b, floating* Hs,
                                       int activation) noexcept nogil:
    """recurrence_forward of sequence b; P and Hs (T, B, H), h0 (B, H)."""
    cdef Py_ssize_t t
    cdef floating* a
    cdef const floating* h_prev = h0 + b * H
    for t in range(T):
        a = Hs + (t * B + b) * H
        if t >= length:
            memcpy(a, h_prev, H * sizeof(floating))
            continue
        if a != P + (t * B + b) * H:  # P and Hs may be one buffer (in place)
            memcpy(a, P + (t * B + b) * H, H * sizeof(floating))
        _gemv(H, H, Whh, H, h_prev, a)
        _activate_inplace(a, H, activation)
        h_prev = a


def recurrence_backward(int activation, const floating[:, :, ::1] dH,
                        const floating[:, :, ::1] Hs,
                        const floating[:, ::1] Whh, const Py_ssize_t[::1] lengths,
                        Py_ssize_t start, floating[:, ::1] carry,
                        floating[:, :, ::1] dA):
    cdef Py_ssize_t K = dH.shape[0], B = dH.shape[1], H = dH.shape[2]
    cdef Py_ssize_t b
    cdef int threads
    if B == 0 or K == 0 or H == 0:
        return
    threads = _threads_for(B, K * B * H * H)
    with nogil:  # the sequences are independent: any split gives the same result
        if threads > 1:
            _parallel_recurrence_backward(&dH[0, 0, 0], &Hs[0, 0, 0], &Whh[0, 0],
                                          &lengths[0], start, K, B, H, &carry[0, 0],
                                          &dA[0, 0, 0], activation, threads)
        else:
            for b in range(B):
                _recurrence_backward_sequence(&dH[0, 0, 0], &Hs[0, 0, 0], &Whh[0, 0],
                                              lengths[b], start, K, B, H, b,
                                              &carry[0, 0], &dA[0, 0, 0], activation)


cdef void _parallel_recurrence_backward(const floating* dH, const floating* Hs,
                                        const floating* Whh, const Py_ssize_t* lengths,
                                        Py_ssize_t start, Py_ssize_t K, Py_ssize_t B,
                                        Py_ssize_t H, floating* carry, floating* dA,
                                        int activation, int threads) noexcept nogil:
    cdef Py_ssize_t b
    for b in prange(B, num_threads=threads, schedule="static"):
        _recurrence_backward_sequence(dH, Hs, Whh, lengths[b], start, K, B, H, b, carry,
                                      dA, activation)


cdef void _recurrence_backward_sequence(const floating* dH, const floating* Hs,
                                        const floating* Whh, Py_ssize_t length,
                                        Py_ssize_t start, Py_ssize_t K, Py_ssize_t B,
                                        Py_ssize_t H, Py_ssize_t b, floating* carry,
                                        floating* dA, int activation) noexcept nogil:
    """recurrence_backward of sequence b; dH, Hs and dA (K, B, H), carry (B, H)."""
    cdef Py_ssize_t i, t, row
    cdef floating* c = carry + b * H
    for i in range(K - 1, -1, -1):
        t = start + i
        row = (i * B + b) * H
        if t < length:
            _activation_backward_row(dH + row, c, Hs + row, activation, H, dA + row)
        else:
            memset(dA + row, 0, H * sizeof(floating))
        if t > 0:
            memset(c, 0, H * sizeof(floating))
            if t < length:
                _add_rows(H, H, dA + row, 1, Whh, H, c)


def forward(theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
            int activation, bint many_to_many, X, h0, lengths, Y_out, h_last):
    cdef int kind = _float_kind(theta)
    cdef elman_array_head* x = _array(X, "X", kind, 3, False)
    cdef Py_ssize_t B = x.dimensions[0], T = x.dimensions[1]
    cdef void* p_theta = _array(theta, "theta", kind, 1, False).data
    cdef void* p_h0 = _array(h0, "h0", kind, 3, False).data
    cdef void* p_lengths = _array(lengths, "lengths", INTP, 1, False).data
    cdef void* p_y = _array(Y_out, "Y_out", kind, 3, True).data
    cdef void* p_h = _array(h_last, "h_last", kind, 3, True).data
    cdef int status
    if B == 0:
        return
    with nogil:
        if kind == FLOAT64:
            status = _forward[double](<const double*>p_theta, I, H, O, L, activation,
                                      many_to_many, B, T, <const double*>x.data,
                                      <const double*>p_h0,
                                      <const Py_ssize_t*>p_lengths, <double*>p_y,
                                      <double*>p_h)
        else:
            status = _forward[float](<const float*>p_theta, I, H, O, L, activation,
                                     many_to_many, B, T, <const float*>x.data, <const float*>p_h0,
                                     <const Py_ssize_t*>p_lengths, <float*>p_y,
                                     <float*>p_h)
    if status < 0:
        raise MemoryError()


cdef int _forward(const floating* theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
                  Py_ssize_t L, int activation, bint many_to_many, Py_ssize_t B,
                  Py_ssize_t T,
                  const floating* X, const floating* h0, const Py_ssize_t* lengths,
                  floating* Y_out, floating* h_last) noexcept nogil:
    """The body of ``forward``, on raw data; -1 when out of memory."""
    cdef Py_ssize_t n_transposes = _transposes_size(I, H, L)
    cdef Py_ssize_t y_row = T * O if many_to_many else O
    cdef floating* work
    cdef floating* transposes
    cdef floating* buffers
    cdef Py_ssize_t b
    # Each sequence is independent: any split over threads gives the same outputs.
    # Every thread has its own pair of (T, H) state buffers.
    cdef int threads = _threads_for(B, B * T * H * (H + I) * L)
    work = <floating*>malloc((n_transposes + threads * 2 * T * H + 1) * sizeof(floating))
    if work == NULL:
        return -1
    transposes = work
    buffers = transposes + n_transposes
    _make_transposes(theta, I, H, L, transposes)
    if threads > 1:
        _parallel_forward(theta, transposes, I, H, O, L, activation, many_to_many, B, T,
                          lengths, X, h0, Y_out, y_row, h_last, buffers, threads)
    else:
        for b in range(B):
            _forward_sequence(theta, transposes, I, H, O, L, activation, many_to_many, B,
                              T, lengths[b], X + b * T * I, h0 + b * H, Y_out + b * y_row,
                              h_last + b * H, buffers)
    free(work)
    return 0


cdef void _parallel_forward(const floating* theta, const floating* transposes,
                            Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
                            int activation, bint many_to_many, Py_ssize_t B, Py_ssize_t T,
                            const Py_ssize_t* lengths, const floating* X,
                            const floating* h0, floating* Y_out, Py_ssize_t y_row,
                            floating* h_last, floating* buffers,
                            int threads) noexcept nogil:
    """forward's loop over sequences on ``threads`` threads, each with its own
    2 T H elements of ``buffers``."""
    cdef Py_ssize_t b
    for b in prange(B, num_threads=threads, schedule="static"):
        _forward_sequence(theta, transposes, I, H, O, L, activation, many_to_many, B, T,
                          lengths[b],
                          X + b * T * I, h0 + b * H, Y_out + b * y_row, h_last + b * H,
                          buffers + threadid() * 2 * T * H)


cdef void _forward_sequence(const floating* theta, const floating* transposes,
                            Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
                            int activation, bint many_to_many, Py_ssize_t B, Py_ssize_t T,
                            Py_ssize_t steps, const floating* inputs,
                            const floating* h0, floating* y_out, floating* h_last,
                            floating* buffers) noexcept nogil:
    """forward of one sequence: inputs (T, I), its outputs y_out (T or 1, O); its
    initial and last states at h0 / h_last + layer * B * H; ``buffers`` holds
    2 T H elements."""
    cdef floating* current = buffers
    cdef floating* previous = buffers + T * H
    cdef floating* swap
    cdef const floating* WxhT = transposes
    cdef const floating* Whh
    cdef const floating* bh
    cdef const floating* Why = theta + _layer_offset(L, I, H)
    cdef const floating* by = Why + O * H
    cdef Py_ssize_t t, layer, fan_in, base
    for layer in range(L):
        fan_in = _fan_in(layer, I, H)
        base = _layer_offset(layer, I, H)
        Whh = theta + base + H * fan_in
        bh = Whh + H * H
        _layer_forward(WxhT, Whh, bh, fan_in, H, steps, inputs, h0 + layer * B * H,
                       current, activation)
        memcpy(h_last + layer * B * H, current + (steps - 1) * H, H * sizeof(floating))
        WxhT += H * fan_in
        inputs = current
        swap = previous
        previous = current
        current = swap
    # ``previous`` now holds the top layer's states.
    if many_to_many:
        for t in range(steps):
            _head(Why, by, O, H, previous + t * H, y_out + t * O)
        if steps < T:
            memset(y_out + steps * O, 0, (T - steps) * O * sizeof(floating))
    else:
        _head(Why, by, O, H, previous + (steps - 1) * H, y_out)


def loss_and_grad(theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
                  int activation, bint many_to_many, int loss, X, Y, h0, lengths, grad):
    cdef int kind = _float_kind(theta)
    cdef elman_array_head* x = _array(X, "X", kind, 3, False)
    cdef Py_ssize_t B = x.dimensions[0], T = x.dimensions[1]
    cdef void* p_theta = _array(theta, "theta", kind, 1, False).data
    cdef void* p_y = _array(Y, "Y", kind, 3, False).data
    cdef void* p_h0 = _array(h0, "h0", kind, 3, False).data
    cdef void* p_lengths = _array(lengths, "lengths", INTP, 1, False).data
    cdef void* p_grad = _array(grad, "grad", kind, 1, True).data
    cdef Py_ssize_t work_size = _loss_grad_work_size(I, H, O, L, B, T) + 1
    cdef void* work = malloc(work_size * (8 if kind == FLOAT64 else 4))
    cdef double value
    if work == NULL:
        raise MemoryError()
    with nogil:
        if kind == FLOAT64:
            value = _loss_and_grad[double](
                <const double*>p_theta, I, H, O, L, activation, many_to_many, loss, B, T,
                <const double*>x.data, <const double*>p_y, <const double*>p_h0,
                <const Py_ssize_t*>p_lengths, <double*>p_grad, <double*>work, False,
                NULL, NULL, NULL)
        else:
            value = _loss_and_grad[float](
                <const float*>p_theta, I, H, O, L, activation, many_to_many, loss, B, T,
                <const float*>x.data, <const float*>p_y, <const float*>p_h0,
                <const Py_ssize_t*>p_lengths, <float*>p_grad, <float*>work, False,
                NULL, NULL, NULL)
    free(work)
    return value


def step(theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
         int activation, x, h, y, h_next):
    cdef int kind = _float_kind(theta)
    cdef void* p_theta = _array(theta, "theta", kind, 1, False).data
    cdef void* p_x = _array(x, "x", kind, 2, False).data
    cdef void* p_h = _array(h, "h", kind, 2, False).data
    cdef void* p_h_next = _array(h_next, "h_next", kind, 2, True).data
    # y is (O,) or (1, O): the two shapes forward returns for one unbatched step.
    cdef void* p_y = _array(y, "y", kind, y.ndim, True).data
    cdef int status
    with nogil:
        if kind == FLOAT64:
            status = _step[double](<const double*>p_theta, I, H, O, L, activation,
                                   <const double*>p_x, <const double*>p_h,
                                   <double*>p_y, <double*>p_h_next)
        else:
            status = _step[float](<const float*>p_theta, I, H, O, L, activation,
                                  <const float*>p_x, <const float*>p_h,
                                  <float*>p_y, <float*>p_h_next)
    if status < 0:
        raise MemoryError()


cdef int _step(const floating* theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
               Py_ssize_t L, int activation, const floating* x, const floating* h,
               floating* y, floating* h_next) noexcept nogil:
    """One step of every layer and the head; -1 when out of memory. The same
    arithmetic, in the same order, as a step of ``_layer_forward``."""
    cdef Py_ssize_t n_transposes = _transposes_size(I, H, L)
    cdef floating* work
    cdef const floating* Why = theta + _layer_offset(L, I, H)
    work = <floating*>malloc((n_transposes + H + 1) * sizeof(floating))
    if work == NULL:
        return -1
    _make_transposes(theta, I, H, L, work)
    memcpy(h_next, h, L * H * sizeof(floating))
    _step_all_layers(theta, work, I, H, L, activation, x, h_next, work + n_transposes)
    _head(Why, Why + O * H, O, H, h_next + (L - 1) * H, y)
    free(work)
    return 0


def backward(theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
             int activation, bint many_to_many, X, h0, lengths, dY, grad, dX, dh0,
             dh_last):
    cdef int kind = _float_kind(theta)
    cdef elman_array_head* x = _array(X, "X", kind, 3, False)
    cdef Py_ssize_t B = x.dimensions[0], T = x.dimensions[1]
    cdef void* p_theta = _array(theta, "theta", kind, 1, False).data
    cdef void* p_h0 = _array(h0, "h0", kind, 3, False).data
    cdef void* p_lengths = _array(lengths, "lengths", INTP, 1, False).data
    cdef void* p_dy = _array(dY, "dY", kind, 3, False).data
    cdef elman_array_head* g = _array(grad, "grad", kind, 1, True)
    cdef void* p_dx = _array(dX, "dX", kind, 3, True).data
    cdef void* p_dh0 = _array(dh0, "dh0", kind, 3, True).data
    cdef void* p_dh_last = NULL
    cdef void* work
    if dh_last is not None:
        p_dh_last = _array(dh_last, "dh_last", kind, 3, False).data
    if B == 0:
        memset(g.data, 0, g.dimensions[0] * (8 if kind == FLOAT64 else 4))
        return
    work = malloc((_loss_grad_work_size(I, H, O, L, B, T) + 1)
                  * (8 if kind == FLOAT64 else 4))
    if work == NULL:
        raise MemoryError()
    with nogil:
        # dY is dL/dy itself: no loss is computed (MSE's code stands in).
        if kind == FLOAT64:
            _loss_and_grad[double](
                <const double*>p_theta, I, H, O, L, activation, many_to_many, MSE, B, T,
                <const double*>x.data, <const double*>p_dy, <const double*>p_h0,
                <const Py_ssize_t*>p_lengths, <double*>g.data, <double*>work, True,
                <double*>p_dx, <double*>p_dh0, <const double*>p_dh_last)
        else:
            _loss_and_grad[float](
                <const float*>p_theta, I, H, O, L, activation, many_to_many, MSE, B, T,
                <const float*>x.data, <const float*>p_dy, <const float*>p_h0,
                <const Py_ssize_t*>p_lengths, <float*>g.data, <float*>work, True,
                <float*>p_dx, <float*>p_dh0, <const float*>p_dh_last)
    free(work)


def train_steps(floating[::1] theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
                Py_ssize_t L, int activation, bint many_to_many, int loss,
                const floating[:, :, ::1] X,
                const floating[:, :, ::1] Y, const Py_ssize_t[::1] lengths,
                const Py_ssize_t[::1] order, Py_ssize_t batch_size, int optimizer,
                const double[::1] hyper, floating[:, ::1] state,
                long long[::1] step_count, double clip_value, double clip_norm,
                double[::1] losses):
    cdef Py_ssize_t N = order.shape[0], T = X.shape[1]
    cdef Py_ssize_t P = theta.shape[0]
    cdef Py_ssize_t x_row = T * I
    cdef Py_ssize_t y_row = Y.shape[1] * Y.shape[2]
    cdef Py_ssize_t bs = batch_size if batch_size < N else N
    cdef Py_ssize_t work_size = _loss_grad_work_size(I, H, O, L, bs, T)
    cdef Py_ssize_t total = P + bs * x_row + bs * y_row + L * bs * H + work_size
    cdef floating* buffer
    cdef floating* grad
    cdef floating* Xb
    cdef floating* Yb
    cdef floating* h0
    cdef floating* work
    cdef Py_ssize_t* lb
    cdef Py_ssize_t start, n, k, row, done = 0
    cdef double value
    if N == 0:
        return 0
    buffer = <floating*>malloc((total + 1) * sizeof(floating))
    lb = <Py_ssize_t*>malloc(bs * sizeof(Py_ssize_t))
    if buffer == NULL or lb == NULL:
        free(buffer)
        free(lb)
        raise MemoryError()
    grad = buffer
    Xb = grad + P
    Yb = Xb + bs * x_row
    h0 = Yb + bs * y_row
    work = h0 + L * bs * H
    memset(h0, 0, L * bs * H * sizeof(floating))
    with nogil:
        start = 0
        while start < N:
            n = bs if start + bs <= N else N - start
            # Gather the batch's rows into contiguous buffers.
            for k in range(n):
                row = order[start + k]
                memcpy(Xb + k * x_row, &X[row, 0, 0], x_row * sizeof(floating))
                memcpy(Yb + k * y_row, &Y[row, 0, 0], y_row * sizeof(floating))
                lb[k] = lengths[row]
            value = _loss_and_grad(&theta[0], I, H, O, L, activation, many_to_many, loss,
                                   n, T, Xb, Yb, h0, lb, grad, work, False, NULL, NULL,
                                   NULL)
            losses[done] = value
            if not isfinite(value):
                break
            if not _clip(grad, P, clip_value, clip_norm):
                break
            _apply_update(optimizer, &theta[0], grad, P, &hyper[0], &state[0, 0],
                          &step_count[0])
            done += 1
            start += n
    free(buffer)
    free(lb)
    return done


def forecast(const floating[::1] theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
             Py_ssize_t L, int activation, const floating[:, :, ::1] X,
             const floating[:, :, ::1] h0,
             const Py_ssize_t[::1] feedback, const floating[:, :, ::1] future,
             floating[:, :, ::1] Y_out, floating[:, :, ::1] h_last):
    cdef Py_ssize_t B = X.shape[0], T = X.shape[1], S = Y_out.shape[1]
    cdef Py_ssize_t n_transposes = _transposes_size(I, H, L)
    cdef Py_ssize_t per_thread = L * H + I + H
    cdef floating* work
    cdef floating* transposes
    cdef floating* buffers
    cdef const floating* history
    cdef const floating* inputs
    cdef Py_ssize_t b, F = future.shape[1]
    cdef int threads
    if B == 0 or S == 0:
        return
    # Addresses taken only of what exists (the debug build checks every index).
    history = &X[0, 0, 0] if T > 0 and I > 0 else NULL
    inputs = &future[0, 0, 0] if F > 0 and I > 0 else NULL
    # Each sequence is independent: any split over threads gives the same forecasts.
    # Every thread has its own state (L, H), next input (I,) and scratch (H,).
    threads = _threads_for(B, B * (T + S) * H * (H + I) * L)
    work = <floating*>malloc((n_transposes + threads * per_thread + 1) * sizeof(floating))
    if work == NULL:
        raise MemoryError()
    transposes = work
    buffers = transposes + n_transposes
    with nogil:
        _make_transposes(&theta[0], I, H, L, transposes)
        if threads > 1:
            _parallel_forecast(&theta[0], transposes, I, H, O, L, activation, B, T, S, F,
                               history,
                               &h0[0, 0, 0], &feedback[0], inputs, &Y_out[0, 0, 0],
                               &h_last[0, 0, 0], buffers, per_thread, threads)
        else:
            for b in range(B):
                _forecast_sequence(&theta[0], transposes, I, H, O, L, activation, B, T,
                                   S, history + b * T * I, &h0[0, 0, 0] + b * H,
                                   &feedback[0], inputs + b * F * I,
                                   &Y_out[0, 0, 0] + b * S * O, &h_last[0, 0, 0] + b * H,
                                   buffers)
    free(work)


cdef void _parallel_forecast(const floating* theta, const floating* transposes,
                             Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
                             int activation, Py_ssize_t B, Py_ssize_t T, Py_ssize_t S,
                             Py_ssize_t F,
                             const floating* history, const floating* h0,
                             const Py_ssize_t* feedback, const floating* inputs,
                             floating* Y_out, floating* h_last, floating* buffers,
                             Py_ssize_t per_thread, int threads) noexcept nogil:
    """forecast's loop over sequences on ``threads`` threads, each with its own
    ``per_thread`` elements of ``buffers``."""
    cdef Py_ssize_t b
    for b in prange(B, num_threads=threads, schedule="static"):
        _forecast_sequence(theta, transposes, I, H, O, L, activation, B, T, S,
                           history + b * T * I,
                           h0 + b * H, feedback, inputs + b * F * I, Y_out + b * S * O,
                           h_last + b * H, buffers + threadid() * per_thread)


cdef void _forecast_sequence(const floating* theta, const floating* transposes,
                             Py_ssize_t I, Py_ssize_t H, Py_ssize_t O, Py_ssize_t L,
                             int activation, Py_ssize_t B, Py_ssize_t T, Py_ssize_t S,
                             const floating* X, const floating* h0,
                             const Py_ssize_t* feedback, const floating* future,
                             floating* Y_out, floating* h_last,
                             floating* buffers) noexcept nogil:
    """forecast of one sequence: X (T, I), future (S - 1 or more, I), Y_out (S, O);
    its initial and last states at h0 / h_last + layer * B * H; ``buffers`` holds
    L H + I + H elements."""
    cdef floating* state = buffers            # the L current hidden vectors
    cdef floating* x = state + L * H          # the next input
    cdef floating* scratch = x + I
    cdef floating* h = state + (L - 1) * H
    cdef const floating* Why = theta + _layer_offset(L, I, H)
    cdef const floating* by = Why + O * H
    cdef Py_ssize_t t, s, o, layer
    for layer in range(L):
        memcpy(state + layer * H, h0 + layer * B * H, H * sizeof(floating))
    for t in range(T):
        _step_all_layers(theta, transposes, I, H, L, activation, X + t * I, state,
                         scratch)
    _head(Why, by, O, H, h, Y_out)
    for s in range(1, S):
        memcpy(x, future + (s - 1) * I, I * sizeof(floating))
        for o in range(O):
            if feedback[o] >= 0:
                x[feedback[o]] = Y_out[(s - 1) * O + o]
        _step_all_layers(theta, transposes, I, H, L, activation, x, state, scratch)
        _head(Why, by, O, H, h, Y_out + s * O)
    for layer in range(L):
        memcpy(h_last + layer * B * H, state + layer * H, H * sizeof(floating))


cdef void _step_all_layers(const floating* theta, const floating* transposes,
                           Py_ssize_t I, Py_ssize_t H, Py_ssize_t L, int activation,
                           const floating* x, floating* state,
                           floating* scratch) noexcept nogil:
    """Advance every layer's state (L, H) in place by one input x (I,);
    ``scratch`` holds H elements."""
    cdef Py_ssize_t layer, fan_in, base
    cdef const floating* WxhT = transposes
    cdef const floating* Whh
    cdef const floating* bh
    cdef const floating* inputs = x
    cdef floating* h
    for layer in range(L):
        fan_in = _fan_in(layer, I, H)
        base = _layer_offset(layer, I, H)
        Whh = theta + base + H * fan_in
        bh = Whh + H * H
        h = state + layer * H
        # a = bh + Wxh x + Whh h, written over h only after it is complete.
        memcpy(scratch, bh, H * sizeof(floating))
        _add_rows(fan_in, H, inputs, 1, WxhT, H, scratch)
        _gemv(H, H, Whh, H, h, scratch)
        _activate_inplace(scratch, H, activation)
        memcpy(h, scratch, H * sizeof(floating))
        inputs = h
        WxhT += H * fan_in
