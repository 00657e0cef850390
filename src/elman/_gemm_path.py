"""Whole-step computations as BLAS products around the sequential recurrence.

Everything that is not recurrent is hoisted out of the time loop into matrix
products over many steps and the whole batch: the input projection of each layer,
the output head, and the weight-gradient sums. Only the recurrences walk through
time; the route table (``elman._engine``) passes them in as ``recurrences``: the
compiled per-sequence loops (``recurrence_forward`` / ``recurrence_backward``), or
the BLAS-step recurrences below, which take one matrix product per step for the
whole batch and leave the elementwise part of the step to a kernel module's
``tanh_step_forward`` / ``tanh_step_backward`` (or the relu pair, by activation;
the NumPy twin's recurrences are these, with NumPy's elementwise steps). See
``_kernels_numpy`` for the contract of every argument.

Layout: the caller's arrays are batch-major, (B, T, ...); inside, every sequence of
states is time-major, (T, B, H). Then the states of one step, of a run of steps and
of the step before each of them are all contiguous blocks, so that

* every per-step product and elementwise pass works on one contiguous (B, H) block;
* the weight gradient  sum_t da_t h_{t-1}^T  is one product of two contiguous
  blocks (a run of dA against the same run of states shifted by one step), with no
  copy of the states.

Threads: a large batch is cut into fixed chunks of sequences (``batch_chunks``),
each computed whole -- projection, recurrence, head, loss and gradient -- on one of
elman's threads with one-thread BLAS products, and the chunks' gradients are added
in chunk order (see the constants below).

Memory: the backward pass runs over blocks of ``_block_steps`` steps (at least
about max(H, 256) sequence-steps each, so the weight-gradient products have a long
inner dimension), from the last block to the first, with every layer handled
within the block before moving on. The gradients reaching the states then never
exist for the whole sequence at once: the extra memory of a step is the states, two
blocks of about max(H, 256) x H, and a few weight-sized and (B, H) buffers (see
bench/bench_suite.py, which measures it).
"""

import contextlib
import os
from collections import namedtuple
from functools import partial

import numpy as np

from elman import _blas_threads
from elman._layout import parameter_views
from elman._losses import value_and_gradient
from elman._threading import run_in_threads
from elman._update import apply_update, clip_flat

# The two recurrences a route runs; ``name`` says which they are. ``threads``, when
# not None, is a function giving the threads a call may use now: the call then cuts
# a large batch into chunks run on those threads (see batch_chunks).
Recurrences = namedtuple("Recurrences", ["name", "forward", "backward", "threads"],
                         defaults=[None])

# A large batch is cut into chunks of sequences, each computed whole (projection,
# recurrence, head, loss and gradient) with its own BLAS products, several chunks at
# once on elman's threads while the BLAS library is held at one thread (see
# elman._blas_threads); the chunks' gradients are then added in chunk order. The
# chunks are a function of the shape only, never of the thread count, so every
# thread count runs the same products on the same rows and adds them in the same
# order: the bits do not depend on it.
_CHUNK_MIN_ROWS = 32          # sequences per chunk, at least
_CHUNK_MIN_STEP_WORK = 2 ** 21  # multiply-adds of a chunk's product per step, at least
_CHUNK_ROWS = 64              # more chunks (a power of two) only while they keep this
_CHUNK_MIN_WORK = 2 ** 22     # multiply-adds of a whole call's recurrence, at least


def batch_chunks(batch, hidden, steps):
    """Row ranges [(start, stop), ...] a call on ``batch`` sequences of ``steps``
    steps of a model with ``hidden`` units per layer is cut into; one range (the
    whole batch) where chunks would not pay.

    A chunk's thread runs its time loop in Python around the products, so each
    step's product must be large beside the interpreter's part of a step (which
    the threads take turns at): at least ``_CHUNK_MIN_STEP_WORK`` multiply-adds
    (32 sequences at 256 units, 128 at 128). The count is a power of two (so that
    2, 4 or 8 threads get equal shares), the ranges as even as whole blocks of 8
    rows (the BLAS kernels' blocks) allow, the last one taking what is left."""
    square = max(1, hidden * hidden)
    min_rows = max(_CHUNK_MIN_ROWS, -(-_CHUNK_MIN_STEP_WORK // square))
    min_rows = -(-min_rows // 8) * 8
    if batch < 2 * min_rows or steps * batch * square < _CHUNK_MIN_WORK:
        return [(0, batch)]
    count = 2
    while batch // (2 * count) >= max(min_rows, _CHUNK_ROWS):
        count *= 2
    bounds = [i * batch // count // 8 * 8 for i in range(count)] + [batch]
    return list(zip(bounds[:-1], bounds[1:]))


def _default_threads():
    """The threads this process would run by default: the CPUs it may use, or fewer
    where ``OMP_NUM_THREADS`` (its first value) says so."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit() and int(first) > 0:
        return min(cpus, int(first))
    return cpus


# On one thread chunks cost a little (each chunk's products pack the weights again;
# bench/bench_threads.py --chunk-cost), so a process that runs one thread by default
# (one CPU, or OMP_NUM_THREADS=1) does not cut batches. This is read once, at
# import: the chunks, and so the bits, never change within a process, whatever
# thread count it sets later.
_CHUNKING = _default_threads() > 1


def _chunks(recurrences, batch, hidden, steps):
    """The chunks a call runs in, or None to run it whole: on routes without
    ``threads`` (the NumPy twin, the compiled per-sequence loops, which share out
    their own loops), for small batches, on a one-CPU process, and on a BLAS elman
    cannot hold at one thread."""
    if recurrences.threads is None or not _CHUNKING:
        return None
    chunks = batch_chunks(batch, hidden, steps)
    if len(chunks) == 1 or not _blas_threads.available():
        return None
    return chunks


def _held_blas(recurrences, batch, hidden, steps):
    """A context holding the BLAS library at one thread when a call of this shape
    runs in chunks (so that the hold is taken once for many chunked calls)."""
    if _chunks(recurrences, batch, hidden, steps) is None:
        return contextlib.nullcontext()
    return _blas_threads.one_blas_thread()


def _run_chunks(chunks, threads, run):
    """run(index, start, stop) for every chunk, the chunks shared out in contiguous
    groups among up to threads() threads, the BLAS library held at one thread."""
    count = max(1, min(int(threads()), len(chunks)))
    bounds = [g * len(chunks) // count for g in range(count + 1)]

    def run_group(first, last):
        for index in range(first, last):
            run(index, *chunks[index])

    with _blas_threads.one_blas_thread():
        run_in_threads([partial(run_group, bounds[g], bounds[g + 1]) for g in range(count)])


def _in_chunks(recurrences, batch, hidden, steps, run):
    """run(recurrences, index, start, stop) over a batch: once for the whole batch
    (index 0, rows 0 to batch) where the route keeps it whole, else once per chunk
    (``batch_chunks``, indices 0, 1, ...) on elman's threads, each with the
    recurrences without ``threads``. Returns the number of calls."""
    chunks = _chunks(recurrences, batch, hidden, steps)
    if chunks is None:
        run(recurrences, 0, 0, batch)
        return 1
    whole = recurrences._replace(threads=None)
    _run_chunks(chunks, recurrences.threads, lambda index, a, b: run(whole, index, a, b))
    return len(chunks)


class _Partials:
    """The gradient buffer of each chunk: chunk 0 writes into ``grad`` itself, every
    other chunk into a buffer of its own, made when first asked for;
    :meth:`add_into_grad` then adds those into ``grad`` in chunk order."""

    def __init__(self, grad):
        self.grad, self._others = grad, {}

    def __getitem__(self, index):
        if index == 0:
            return self.grad
        return self._others.setdefault(index, np.empty_like(self.grad))

    def add_into_grad(self):
        for index in sorted(self._others):
            self.grad += self._others[index]

# Sequence-steps (batch x steps) per backward block, at least: long enough that
# the weight-gradient products (H x kB) (kB x H) run near the BLAS rate, short
# enough that the two block buffers stay a few weights in size.
_BLOCK_ROWS = 256


def blas_recurrence_forward(steps_forward, activation, P, Whh, h0, lengths, Hs):
    """``recurrence_forward`` (see the contract) as one BLAS product per step for the
    whole batch, then ``step(A, P_t, out)``: out = tanh(A + P_t), elementwise;
    ``step`` is ``steps_forward[activation]``."""
    step = steps_forward[activation]
    steps, batch, hidden = P.shape
    if batch == 0 or hidden == 0:
        return
    shortest = int(lengths.min())
    WhhT = Whh.T
    product = np.empty((batch, hidden), dtype=P.dtype)
    h = h0
    for t in range(steps):
        np.matmul(h, WhhT, out=product)
        out = Hs[t]
        step(product, P[t], out)
        if t >= shortest:  # padded sequences hold their state
            np.copyto(out, h, where=(t >= lengths)[:, None])
        h = out


def blas_recurrence_backward(steps_backward, activation, dH, Hs, Whh, lengths, start,
                             carry, dA):
    """``recurrence_backward`` (see the contract) as ``step(dH_t, carry, h_t, out)``:
    out = (dH_t + carry) (1 - h_t^2), elementwise, then one BLAS product per step;
    ``step`` is ``steps_backward[activation]``."""
    step = steps_backward[activation]
    steps, batch, hidden = dH.shape
    if batch == 0 or hidden == 0:
        return
    shortest = int(lengths.min())
    for i in range(steps - 1, -1, -1):
        t = start + i
        da = dA[i]
        step(dH[i], carry, Hs[i], da)
        if t >= shortest:  # nothing flows back through padded steps
            da[t >= lengths] = 0.0
        if t > 0:
            np.matmul(da, Whh, out=carry)


def _block_steps(batch, hidden, steps):
    """Steps per backward block (see the module docstring)."""
    rows = max(hidden, _BLOCK_ROWS)
    return max(1, min(steps, -(-rows // batch)))


def _time_major(A):
    """(B, T, n) -> a C-contiguous (T, B, n) copy."""
    return np.ascontiguousarray(A.transpose(1, 0, 2))


def _run_layers(recurrences, activation, layers, Xt, h0, lengths):
    """Hidden sequences (T, B, H) of every layer, bottom first, from Xt (T, B, I)."""
    steps, batch, _ = Xt.shape
    states = []
    layer_input = Xt
    for layer, (Wxh, Whh, bh) in enumerate(layers):
        hidden = Whh.shape[0]
        # The input projection is computed into the buffer that then holds the
        # states: the recurrence runs in place, one sequence-sized buffer fewer.
        Hs = np.empty((steps, batch, hidden), dtype=Whh.dtype)
        np.matmul(layer_input.reshape(steps * batch, Wxh.shape[1]), Wxh.T,
                  out=Hs.reshape(steps * batch, hidden))
        Hs += bh
        recurrences.forward(activation, Hs, Whh, h0[layer], lengths, Hs)
        states.append(Hs)
        layer_input = Hs
    return states


def _last_states(Hs, lengths):
    """(B, H): each sequence's state after its last valid step, from Hs (T, B, H)."""
    return Hs[lengths - 1, np.arange(Hs.shape[1])]


def _valid_steps(lengths, steps):
    """(T, B, 1) boolean mask of valid steps, or None when no sequence is padded."""
    if np.all(lengths == steps):
        return None
    return (np.arange(steps)[:, None] < lengths[None, :])[:, :, None]


def forward(recurrences, theta, I, H, O, L, activation, many_to_many, X, h0, lengths, Y_out,
            h_last):
    _in_chunks(recurrences, X.shape[0], H, X.shape[1], lambda rec, i, a, b: _forward(
        rec, theta, I, H, O, L, activation, many_to_many, X[a:b], h0[:, a:b], lengths[a:b],
        Y_out[a:b], h_last[:, a:b]))


def _forward(recurrences, theta, I, H, O, L, activation, many_to_many, X, h0, lengths, Y_out,
             h_last):
    layers, Why, by = parameter_views(theta, I, H, O, L)
    steps = X.shape[1]
    states = _run_layers(recurrences, activation, layers, _time_major(X), h0, lengths)
    for layer, Hs in enumerate(states):
        h_last[layer] = _last_states(Hs, lengths)
    if not many_to_many:
        np.matmul(h_last[L - 1], Why.T, out=Y_out[:, 0])
        Y_out += by
        return
    Yt = states[-1] @ Why.T
    Yt += by
    valid = _valid_steps(lengths, steps)
    if valid is not None:
        Yt[~np.broadcast_to(valid, Yt.shape)] = 0.0
    Y_out[...] = Yt.transpose(1, 0, 2)


def loss_and_grad(recurrences, theta, I, H, O, L, activation, many_to_many, loss_code, X, Y,
                  h0, lengths, grad):
    return _loss_and_grad_chunked(recurrences, theta, I, H, O, L, activation, many_to_many,
                                  loss_code, X, None, Y, h0, lengths, grad)


def _loss_and_grad_chunked(recurrences, theta, I, H, O, L, activation, many_to_many,
                           loss_code, X, rows, Y, h0, lengths, grad):
    """_loss_and_grad of the sequences X[rows] (X batch-major, (N, T, I); all of X
    when rows is None; Y, h0 and lengths already of those sequences), in chunks of
    the batch where the route says so."""
    batch = X.shape[0] if rows is None else rows.shape[0]
    # The mean is over the whole batch's valid rows: each chunk's loss and gradient
    # is its share of it, and the shares add up.
    valid_rows = int(lengths.sum()) if many_to_many else batch
    partials = _Partials(grad)
    losses = {}

    def run(rec, index, a, b):
        # Whole rows of X, then one transpose (a gather straight into time-major
        # order, along the strided axis, is several times slower).
        inputs = X[a:b] if rows is None else X[rows[a:b]]
        losses[index] = _loss_and_grad(
            rec, theta, I, H, O, L, activation, many_to_many, loss_code,
            _time_major(inputs), Y[a:b], h0[:, a:b], lengths[a:b], partials[index],
            valid_rows)

    count = _in_chunks(recurrences, batch, H, X.shape[1], run)
    partials.add_into_grad()
    loss = losses[0]
    for index in range(1, count):
        loss += losses[index]
    return loss


def backward(recurrences, theta, I, H, O, L, activation, many_to_many, X, h0, lengths, dY,
             grad, dX, dh0, dh_last):
    partials = _Partials(grad)
    _in_chunks(recurrences, X.shape[0], H, X.shape[1], lambda rec, i, a, b: _backward_call(
        rec, theta, I, H, O, L, activation, many_to_many, X[a:b], h0[:, a:b], lengths[a:b],
        dY[a:b], partials[i], dX[a:b], dh0[:, a:b],
        None if dh_last is None else dh_last[:, a:b]))
    partials.add_into_grad()


def _backward_call(recurrences, theta, I, H, O, L, activation, many_to_many, X, h0, lengths,
                   dY, grad, dX, dh0, dh_last):
    layers, Why, _ = parameter_views(theta, I, H, O, L)
    Xt = _time_major(X)
    steps = Xt.shape[0]
    states = _run_layers(recurrences, activation, layers, Xt, h0, lengths)
    if many_to_many:
        read = states[-1]
        dYt = _time_major(dY)
        valid = _valid_steps(lengths, steps)
        if valid is not None:
            # where, not multiply: what dY holds at padded steps is ignored, NaN too.
            dYt = np.where(valid, dYt, 0.0).astype(dYt.dtype, copy=False)
    else:
        read = _last_states(states[-1], lengths)
        dYt = dY[:, 0]
    dXt = np.empty(Xt.shape, dtype=theta.dtype)
    _backward(recurrences, layers, Why, I, H, O, L, activation, many_to_many, Xt, h0,
              lengths, states, read, dYt, grad, dXt, dh0, dh_last)
    dX[...] = dXt.transpose(1, 0, 2)


def _loss_and_grad(recurrences, theta, I, H, O, L, activation, many_to_many, loss_code, Xt,
                   Y, h0, lengths, grad, valid_rows=None):
    """loss_and_grad with the inputs already time-major, Xt (T, B, I); Y as the
    contract has it (B, T or 1, target width); ``valid_rows`` as for
    ``value_and_gradient`` when these sequences are one chunk of a batch."""
    layers, Why, by = parameter_views(theta, I, H, O, L)
    steps, batch, _ = Xt.shape
    states = _run_layers(recurrences, activation, layers, Xt, h0, lengths)
    top = states[-1]

    # Head and loss. outputs is (T, B, O) time-major, or (B, O) for many-to-one.
    read = top if many_to_many else _last_states(top, lengths)
    outputs = read @ Why.T
    outputs += by
    if many_to_many:
        loss, dY = value_and_gradient(loss_code, outputs, Y.transpose(1, 0, 2),
                                      _valid_steps(lengths, steps), valid_rows)
    else:
        loss, dY = value_and_gradient(loss_code, outputs, Y[:, 0], None, valid_rows)

    # dY is dL/dy_hat, zero at padded steps.
    _backward(recurrences, layers, Why, I, H, O, L, activation, many_to_many, Xt, h0,
              lengths, states, read, dY, grad, None, None, None)
    return loss


def _backward(recurrences, layers, Why, I, H, O, L, activation, many_to_many, Xt, h0,
              lengths, states, read, dY, grad, dXt, dh0, dh_last):
    """The backward pass from dL/dy: dY (T, B, O) time-major, zero at padded steps, or
    (B, O) for many-to-one, reaching ``read``, the states the head read (the top
    layer's (T, B, H), or its last states (B, H)). Writes grad, and, when not None,
    dXt (T, B, I), the gradient reaching the inputs, and dh0 (L, B, H). ``dh_last``
    (L, B, H), when not None, is the gradient reaching each sequence's last states:
    it joins each layer's dH at the sequence's last valid step. ``layers`` and
    ``Why`` are the weights' views (parameter_views)."""
    grad_layers, gWhy, gby = parameter_views(grad, I, H, O, L)
    steps, batch, _ = Xt.shape
    flat_dY = dY.reshape(-1, O)
    np.matmul(flat_dY.T, read.reshape(-1, H), out=gWhy)
    np.sum(flat_dY, axis=0, out=gby)

    # The layers' gradients are sums over blocks (the head's are complete already).
    grad[:grad.shape[0] - O * H - O] = 0.0
    block = _block_steps(batch, H, steps)
    buffers = [np.empty((block, batch, H), dtype=grad.dtype) for _ in range(2 if L > 1 else 1)]
    carries = [np.zeros((batch, H), dtype=grad.dtype) for _ in range(L)]
    product = np.empty(H * max(H, I), dtype=grad.dtype)  # scratch for _add_product
    last = lengths - 1
    for stop in range(steps, 0, -block):
        start = max(0, stop - block)
        n = stop - start
        # The gradient reaching the top layer's states in this block, from the head.
        current = 0
        dH = buffers[current][:n]
        ends = np.flatnonzero((last >= start) & (last < stop))
        if many_to_many:
            np.matmul(dY[start:stop], Why, out=dH)
        else:
            dH.fill(0.0)
            dH[last[ends] - start, ends] = dY[ends] @ Why
        for layer in range(L - 1, -1, -1):
            if dh_last is not None and ends.size:
                # Each sequence's last state is its state at its last valid step.
                dH[last[ends] - start, ends] += dh_last[layer, ends]
            Wxh, Whh, _ = layers[layer]
            gWxh, gWhh, gbh = grad_layers[layer]
            Hs = states[layer]
            layer_input = Xt if layer == 0 else states[layer - 1]
            # dA overwrites dH (in place): dH is not needed once dA is known.
            dA = dH
            recurrences.backward(activation, dH, Hs[start:stop], Whh, lengths, start,
                                 carries[layer], dA)
            flat_dA = dA.reshape(n * batch, H)
            _add_product(gWxh, flat_dA.T,
                         layer_input[start:stop].reshape(n * batch, Wxh.shape[1]), product)
            gbh += flat_dA.sum(axis=0)
            # sum over t of da_t h_{t-1}^T, h_{-1} being h0: the block's dA against
            # the states one step earlier, a contiguous run of Hs.
            if start > 0:
                _add_product(gWhh, flat_dA.T, Hs[start - 1:stop - 1].reshape(n * batch, H),
                             product)
            else:
                _add_product(gWhh, dA[0].T, h0[layer], product)
                if n > 1:
                    _add_product(gWhh, dA[1:].reshape(-1, H).T,
                                 Hs[:stop - 1].reshape(-1, H), product)
            if start == 0 and dh0 is not None:
                np.matmul(dA[0], Whh, out=dh0[layer])
            if layer > 0:
                # The gradient reaching the layer below: Wxh^T da at every step.
                current = 1 - current
                dH = buffers[current][:n]
                np.matmul(flat_dA, Wxh, out=dH.reshape(n * batch, H))
            elif dXt is not None:
                np.matmul(flat_dA, Wxh, out=dXt[start:stop].reshape(n * batch, I))


def _add_product(target, A, B, scratch):
    """target += A @ B, through a flat scratch buffer at least target.size long
    (matmul cannot accumulate)."""
    out = scratch[:target.size].reshape(target.shape)
    np.matmul(A, B, out=out)
    target += out


def train_steps(recurrences, theta, I, H, O, L, activation, many_to_many, loss_code, X, Y,
                lengths, order, batch_size, optimizer, hyper, state, step_count, clip_value,
                clip_norm, losses, gradient_hook=None):
    """``train_steps`` of the contract; ``gradient_hook(grad)``, when given, sees each
    step's gradient before clipping (the training loop records its norms)."""
    # A diverging run overflows on its way to NaN; the caller detects that from the
    # non-finite loss or gradient and reports it, as the compiled loop does, so
    # NumPy's overflow warnings would only be noise.
    with np.errstate(over="ignore", invalid="ignore"), \
            _held_blas(recurrences, min(batch_size, order.shape[0]), H, X.shape[1]):
        return _train_steps(recurrences, theta, I, H, O, L, activation, many_to_many,
                            loss_code, X, Y, lengths, order, batch_size, optimizer, hyper,
                            state, step_count, clip_value, clip_norm, losses, gradient_hook)


def _train_steps(recurrences, theta, I, H, O, L, activation, many_to_many, loss_code, X, Y,
                 lengths, order, batch_size, optimizer, hyper, state, step_count,
                 clip_value, clip_norm, losses, gradient_hook):
    grad = np.empty_like(theta)
    done = 0
    for start in range(0, order.shape[0], batch_size):
        rows = order[start:start + batch_size]
        h0 = np.zeros((L, rows.shape[0], H), dtype=theta.dtype)
        loss = _loss_and_grad_chunked(recurrences, theta, I, H, O, L, activation,
                                      many_to_many, loss_code, X, rows, Y[rows], h0,
                                      lengths[rows], grad)
        losses[done] = loss
        if not (np.isfinite(loss) and np.isfinite(grad).all()):
            return done
        if gradient_hook is not None:
            gradient_hook(grad)
        clip_flat(grad, clip_value, clip_norm)
        apply_update(optimizer, theta, grad, hyper, state, step_count)
        done += 1
    return done


def forecast(recurrences, theta, I, H, O, L, activation, X, h0, feedback, future, Y_out,
             h_last):
    _in_chunks(recurrences, X.shape[0], H, X.shape[1] + Y_out.shape[1],
               lambda rec, i, a, b: _forecast(
                   rec, theta, I, H, O, L, activation, X[a:b], h0[:, a:b], feedback,
                   future[a:b], Y_out[a:b], h_last[:, a:b]))


def _forecast(recurrences, theta, I, H, O, L, activation, X, h0, feedback, future, Y_out,
              h_last):
    layers, Why, by = parameter_views(theta, I, H, O, L)
    batch, steps, _ = X.shape
    lengths = np.full(batch, steps, dtype=np.intp)
    states = _run_layers(recurrences, activation, layers, _time_major(X), h0, lengths)
    h = [Hs[-1] for Hs in states]
    one_step = np.ones(batch, dtype=np.intp)
    y = Y_out[:, 0]
    np.matmul(h[-1], Why.T, out=y)
    y += by
    fed = np.flatnonzero(feedback >= 0)
    for s in range(1, Y_out.shape[1]):
        x = future[:, s - 1].copy()
        x[:, feedback[fed]] = y[:, fed]
        for layer, (Wxh, Whh, bh) in enumerate(layers):
            # One step of the layer's recurrence, with its input projection as P.
            P = (x @ Wxh.T)[None]
            P += bh
            recurrences.forward(activation, P, Whh, h[layer], one_step, P)
            h[layer] = x = P[0]
        y = Y_out[:, s]
        np.matmul(h[-1], Why.T, out=y)
        y += by
    for layer in range(L):
        h_last[layer] = h[layer]
