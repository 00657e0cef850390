# cython: language_level=3
"""Compiled kernels: the tanh recurrence, backpropagation through time, and whole
training steps, as typed-memoryview loops that run without the GIL.

Same functions, signatures and results as the NumPy twin, ``_kernels_numpy``, whose
docstring is the contract. Inputs are trusted: the model validates, casts and
allocates before calling. Directives (bounds checks off, ...) are set in setup.py,
where ELMAN_CYTHON_DEBUG=1 turns the checks back on.

Why whole steps in one call: at the tutorials' sizes (hidden 4 to 50) a training
step is 1 to 20 us of arithmetic, and every separate NumPy call from Python costs
about 1 to 2 us, so ``forward``, ``loss_and_grad``, ``train_steps`` and
``forecast`` each do all of their work (projection, recurrence, head, loss and
gradient sums) inside one call, in loops over contiguous rows that the compiler
vectorises. Large shapes go through ``_gemm_path`` instead, which wraps BLAS
products around ``recurrence_forward`` / ``recurrence_backward`` or around the
elementwise step kernels ``tanh_step_forward`` / ``tanh_step_backward``; which
code serves a call is decided in one place, the route table ``elman._engine``.

The C helpers (tanh, tiled gradient sums, matrix-vector product) are in
``_kernels.h``; the optimizer codes and constants come from ``elman._update``.

This source is compiled twice: as ``_kernels`` for any x86-64 (or other) CPU, and,
on x86-64, as ``_kernels_avx2`` with AVX2 and FMA enabled (``_kernels_avx2.pyx``
includes this file). ``elman._backend`` imports the second when the CPU has both.
"""

cimport cython
from cython cimport floating
from libc.math cimport sqrt, sqrtf, isfinite, pow, exp, log
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

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


cdef inline void _tanh_inplace(floating* a, Py_ssize_t n) noexcept nogil:
    if floating is float:
        elman_tanh_inplace_f(a, n)
    else:
        elman_tanh_inplace_d(a, n)


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
                         const floating* h_init, floating* hs) noexcept nogil:
    """hs[t] = tanh(Wxh inputs[t] + Whh hs[t-1] + bh) for t < steps (row-major)."""
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
        _tanh_inplace(a, H)
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

cdef Py_ssize_t _loss_grad_work_size(Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
                                     Py_ssize_t L, Py_ssize_t B,
                                     Py_ssize_t T) noexcept nogil:
    cdef Py_ssize_t sequence = B * T * H
    cdef Py_ssize_t below = 2 * sequence if L > 1 else 0
    cdef Py_ssize_t widest = I if I > H else H
    # transposes, states, d_below/d_above, dh/carry/y, dA of one sequence (T, H),
    # gWxh^T of one layer (fan_in, H)
    return (_transposes_size(I, H, L) + L * sequence + below + 2 * H + O + T * H
            + widest * H)


cdef double _loss_and_grad(const floating* theta, Py_ssize_t I, Py_ssize_t H,
                           Py_ssize_t O, Py_ssize_t L, bint many_to_many, int loss_code,
                           Py_ssize_t B, Py_ssize_t T, const floating* X,
                           const floating* Y, const floating* h0,
                           const Py_ssize_t* lengths, floating* grad,
                           floating* work) noexcept nogil:
    """Loss (returned) and its gradient (written to grad); ``work`` has
    _loss_grad_work_size elements."""
    cdef Py_ssize_t P = _layer_offset(L, I, H) + O * H + O
    cdef Py_ssize_t sequence = B * T * H
    cdef floating* transposes = work
    cdef floating* states = transposes + _transposes_size(I, H, L)
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
    cdef Py_ssize_t W = _target_width(loss_code, O)
    cdef Py_ssize_t layer, fan_in, base, b, t, i, k, o, steps, count
    cdef floating scale, dy
    cdef double loss = 0.0

    memset(grad, 0, P * sizeof(floating))
    _make_transposes(theta, I, H, L, transposes)

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
                           h0 + (layer * B + b) * H,
                           states + layer * sequence + b * T * H)
        WxhT += H * fan_in

    if many_to_many:
        count = 0
        for b in range(B):
            count += lengths[b]
        count *= W
    else:
        count = B * W
    scale = <floating>((2.0 if loss_code == MSE else 1.0) / count)

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
            h_first = h0 + (layer * B + b) * H
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
                        _head(Why, by, O, H, h, y)
                        loss += _loss_row(loss_code, y, target, O, scale)
                        for o in range(O):
                            dy = y[o]
                            gby[o] += dy
                            _axpy(H, dy, h, gWhy + o * H)
                        _add_rows(O, H, y, 1, Why, H, dh)
                else:
                    _axpy(H, <floating>1, d_above + (b * T + t) * H, dh)
                for i in range(H):
                    da[i] = dh[i] * (1 - h[i] * h[i])
                if t > 0:
                    memset(carry, 0, H * sizeof(floating))
                    _add_rows(H, H, da, 1, Whh, H, carry)
                if layer > 0:
                    # dL/d(input at t) = Wxh^T da: the layer below's dh from above.
                    memset(d_below + (b * T + t) * H, 0, H * sizeof(floating))
                    _add_rows(H, H, da, 1, Wxh, H, d_below + (b * T + t) * H)
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
    return loss / count


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
# Public kernels (signatures of the contract in _kernels_numpy)
# ---------------------------------------------------------------------------

# Which build of this source this module is (``_kernels_avx2.pyx`` overrides it).
INSTRUCTION_SET = "baseline"


def tanh_step_forward(const floating[:, ::1] A, const floating[:, ::1] P_t,
                      floating[:, ::1] out):
    cdef Py_ssize_t n = A.shape[0] * A.shape[1], i
    cdef const floating* a
    cdef const floating* p
    cdef floating* o
    if n == 0:
        return
    a, p, o = &A[0, 0], &P_t[0, 0], &out[0, 0]
    with nogil:
        for i in range(n):
            o[i] = a[i] + p[i]
        _tanh_inplace(o, n)


def tanh_step_backward(const floating[:, ::1] dH_t, const floating[:, ::1] carry,
                       const floating[:, ::1] h_t, floating[:, ::1] out):
    cdef Py_ssize_t n = dH_t.shape[0] * dH_t.shape[1]
    if n == 0:
        return
    with nogil:  # the rows are contiguous: one row of n elements
        _tanh_backward_row(&dH_t[0, 0], &carry[0, 0], &h_t[0, 0], True, n, &out[0, 0])


def recurrence_forward(const floating[:, :, ::1] P, const floating[:, ::1] Whh,
                       const floating[:, ::1] h0, const Py_ssize_t[::1] lengths,
                       floating[:, :, ::1] Hs):
    cdef Py_ssize_t T = P.shape[0], B = P.shape[1], H = P.shape[2]
    cdef Py_ssize_t b, t
    cdef floating* a
    cdef const floating* h_prev
    if B == 0 or T == 0 or H == 0:
        return
    with nogil:
        for b in range(B):
            h_prev = &h0[b, 0]
            for t in range(T):
                a = &Hs[t, b, 0]
                if t >= lengths[b]:
                    memcpy(a, h_prev, H * sizeof(floating))
                    continue
                if a != &P[t, b, 0]:  # P and Hs may be one buffer (in place)
                    memcpy(a, &P[t, b, 0], H * sizeof(floating))
                _gemv(H, H, &Whh[0, 0], H, h_prev, a)
                _tanh_inplace(a, H)
                h_prev = a


def recurrence_backward(const floating[:, :, ::1] dH, const floating[:, :, ::1] Hs,
                        const floating[:, ::1] Whh, const Py_ssize_t[::1] lengths,
                        Py_ssize_t start, floating[:, ::1] carry,
                        floating[:, :, ::1] dA):
    cdef Py_ssize_t K = dH.shape[0], B = dH.shape[1], H = dH.shape[2]
    cdef Py_ssize_t b, i, t
    cdef floating* c
    if B == 0 or K == 0 or H == 0:
        return
    with nogil:
        for b in range(B):
            c = &carry[b, 0]
            for i in range(K - 1, -1, -1):
                t = start + i
                _tanh_backward_row(&dH[i, b, 0], c, &Hs[i, b, 0], t < lengths[b], H,
                                   &dA[i, b, 0])
                if t > 0:
                    memset(c, 0, H * sizeof(floating))
                    if t < lengths[b]:
                        _add_rows(H, H, &dA[i, b, 0], 1, &Whh[0, 0], H, c)


cdef inline void _tanh_backward_row(const floating* dh, const floating* carry,
                                    const floating* h, bint valid, Py_ssize_t H,
                                    floating* da) noexcept nogil:
    """da = (dh + carry) (1 - h^2) at a valid step, 0 at a padded one; da may be dh."""
    cdef Py_ssize_t i
    if not valid:
        memset(da, 0, H * sizeof(floating))
        return
    for i in range(H):
        da[i] = (dh[i] + carry[i]) * (1 - h[i] * h[i])


def forward(const floating[::1] theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
            Py_ssize_t L, bint many_to_many, const floating[:, :, ::1] X,
            const floating[:, :, ::1] h0, const Py_ssize_t[::1] lengths,
            floating[:, :, ::1] Y_out, floating[:, :, ::1] h_last):
    cdef Py_ssize_t B = X.shape[0], T = X.shape[1]
    cdef Py_ssize_t n_transposes = _transposes_size(I, H, L)
    cdef floating* work
    cdef floating* transposes
    cdef floating* current
    cdef floating* previous
    cdef floating* swap
    cdef const floating* WxhT
    cdef const floating* Whh
    cdef const floating* bh
    cdef const floating* Why
    cdef const floating* by
    cdef const floating* inputs
    cdef Py_ssize_t b, t, layer, fan_in, base, steps, in_stride
    if B == 0:
        return
    work = <floating*>malloc((n_transposes + 2 * T * H + 1) * sizeof(floating))
    if work == NULL:
        raise MemoryError()
    transposes = work
    current = work + n_transposes
    previous = current + T * H
    Why = &theta[0] + _layer_offset(L, I, H)
    by = Why + O * H
    with nogil:
        _make_transposes(&theta[0], I, H, L, transposes)
        for b in range(B):
            steps = lengths[b]
            inputs = &X[b, 0, 0]
            WxhT = transposes
            for layer in range(L):
                fan_in = _fan_in(layer, I, H)
                base = _layer_offset(layer, I, H)
                Whh = &theta[0] + base + H * fan_in
                bh = Whh + H * H
                _layer_forward(WxhT, Whh, bh, fan_in, H, steps, inputs,
                               &h0[layer, b, 0], current)
                memcpy(&h_last[layer, b, 0], current + (steps - 1) * H,
                       H * sizeof(floating))
                WxhT += H * fan_in
                inputs = current
                swap = previous
                previous = current
                current = swap
            # ``previous`` now holds the top layer's states.
            if many_to_many:
                for t in range(steps):
                    _head(Why, by, O, H, previous + t * H, &Y_out[b, t, 0])
                if steps < T:
                    memset(&Y_out[b, steps, 0], 0, (T - steps) * O * sizeof(floating))
            else:
                _head(Why, by, O, H, previous + (steps - 1) * H, &Y_out[b, 0, 0])
    free(work)


def loss_and_grad(const floating[::1] theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
                  Py_ssize_t L, bint many_to_many, int loss, const floating[:, :, ::1] X,
                  const floating[:, :, ::1] Y, const floating[:, :, ::1] h0,
                  const Py_ssize_t[::1] lengths, floating[::1] grad):
    cdef Py_ssize_t B = X.shape[0], T = X.shape[1]
    cdef floating* work = <floating*>malloc(
        (_loss_grad_work_size(I, H, O, L, B, T) + 1) * sizeof(floating))
    cdef double value
    if work == NULL:
        raise MemoryError()
    with nogil:
        value = _loss_and_grad(&theta[0], I, H, O, L, many_to_many, loss, B, T,
                               &X[0, 0, 0], &Y[0, 0, 0], &h0[0, 0, 0], &lengths[0],
                               &grad[0], work)
    free(work)
    return value


def train_steps(floating[::1] theta, Py_ssize_t I, Py_ssize_t H, Py_ssize_t O,
                Py_ssize_t L, bint many_to_many, int loss, const floating[:, :, ::1] X,
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
            value = _loss_and_grad(&theta[0], I, H, O, L, many_to_many, loss, n, T, Xb,
                                   Yb, h0, lb, grad, work)
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
             Py_ssize_t L, const floating[:, :, ::1] X, const floating[:, :, ::1] h0,
             const Py_ssize_t[::1] feedback, const floating[:, :, ::1] future,
             floating[:, :, ::1] Y_out, floating[:, :, ::1] h_last):
    cdef Py_ssize_t B = X.shape[0], T = X.shape[1], S = Y_out.shape[1]
    cdef Py_ssize_t n_transposes = _transposes_size(I, H, L)
    cdef floating* work
    cdef floating* transposes
    cdef floating* state
    cdef floating* x
    cdef floating* scratch
    cdef floating* h
    cdef const floating* Why = &theta[0] + _layer_offset(L, I, H)
    cdef const floating* by = Why + O * H
    cdef Py_ssize_t b, t, s, o, layer
    if B == 0 or S == 0:
        return
    # state: the L current hidden vectors; x: the next input.
    work = <floating*>malloc((n_transposes + L * H + I + H + 1) * sizeof(floating))
    if work == NULL:
        raise MemoryError()
    transposes = work
    state = transposes + n_transposes
    x = state + L * H
    scratch = x + I
    with nogil:
        _make_transposes(&theta[0], I, H, L, transposes)
        for b in range(B):
            for layer in range(L):
                memcpy(state + layer * H, &h0[layer, b, 0], H * sizeof(floating))
            for t in range(T):
                _step_all_layers(&theta[0], transposes, I, H, L, &X[b, t, 0], state, scratch)
            h = state + (L - 1) * H
            _head(Why, by, O, H, h, &Y_out[b, 0, 0])
            for s in range(1, S):
                memcpy(x, &future[b, s - 1, 0], I * sizeof(floating))
                for o in range(O):
                    if feedback[o] >= 0:
                        x[feedback[o]] = Y_out[b, s - 1, o]
                _step_all_layers(&theta[0], transposes, I, H, L, x, state, scratch)
                _head(Why, by, O, H, h, &Y_out[b, s, 0])
            for layer in range(L):
                memcpy(&h_last[layer, b, 0], state + layer * H, H * sizeof(floating))
    free(work)


cdef void _step_all_layers(const floating* theta, const floating* transposes,
                           Py_ssize_t I, Py_ssize_t H, Py_ssize_t L,
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
        _tanh_inplace(scratch, H)
        memcpy(h, scratch, H * sizeof(floating))
        inputs = h
        WxhT += H * fan_in
