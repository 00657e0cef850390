"""Whole-step computations as BLAS products around the sequential recurrence.

Everything that is not recurrent is hoisted out of the time loop into one matrix
product over all steps and the whole batch: the input projection of each layer, the
output head, and the weight-gradient sums. Only ``recurrence_forward`` and
``recurrence_backward`` walk through time; they come from a kernel module (the
NumPy twin's, or the compiled one's for large shapes), passed in as
``recurrences``. See ``_kernels_numpy`` for the contract of every argument.
"""

from collections import namedtuple

import numpy as np

from elman.optimizers import apply_update, clip_flat

Recurrences = namedtuple("Recurrences", ["forward", "backward"])


def parameter_count(I, H, O, L):
    """Length of the flat parameter vector for these sizes."""
    return (H * I + H * H + H) + (L - 1) * (2 * H * H + H) + O * H + O


def weight_shapes(I, H, O, L):
    """Name and shape of every weight, in the order of the flat vector."""
    shapes = {}
    for layer in range(L):
        shapes[f"layers.{layer}.Wxh"] = (H, I if layer == 0 else H)
        shapes[f"layers.{layer}.Whh"] = (H, H)
        shapes[f"layers.{layer}.bh"] = (H,)
    shapes["Why"] = (O, H)
    shapes["by"] = (O,)
    return shapes


def parameter_views(theta, I, H, O, L):
    """Views into the flat vector: ([(Wxh, Whh, bh) per layer], Why, by)."""
    layers = []
    offset = 0
    for layer in range(L):
        fan_in = I if layer == 0 else H
        Wxh = theta[offset:offset + H * fan_in].reshape(H, fan_in)
        offset += H * fan_in
        Whh = theta[offset:offset + H * H].reshape(H, H)
        offset += H * H
        bh = theta[offset:offset + H]
        offset += H
        layers.append((Wxh, Whh, bh))
    Why = theta[offset:offset + O * H].reshape(O, H)
    offset += O * H
    by = theta[offset:offset + O]
    return layers, Why, by


def _run_layers(recurrences, layers, X, h0, lengths):
    """Hidden sequences (B, T, H) of every layer, bottom first."""
    batch, steps, _ = X.shape
    states = []
    layer_input = X
    for layer, (Wxh, Whh, bh) in enumerate(layers):
        # The input projection is computed into the buffer that then holds the
        # states: the recurrence runs in place, one sequence-sized buffer fewer.
        Hs = layer_input @ Wxh.T
        Hs += bh
        recurrences.forward(Hs, Whh, h0[layer], lengths, Hs)
        states.append(Hs)
        layer_input = Hs
    return states


def _top_states(Hs_top, lengths, many_to_many):
    """The top-layer states the head reads: (B, T, H), or (B, 1, H) at each last step."""
    if many_to_many:
        return Hs_top
    batch = Hs_top.shape[0]
    return Hs_top[np.arange(batch), lengths - 1][:, None, :]


def _valid_steps(lengths, steps):
    """(B, T, 1) boolean mask of valid steps, or None when no sequence is padded."""
    if np.all(lengths == steps):
        return None
    return (np.arange(steps)[None, :] < lengths[:, None])[:, :, None]


def forward(recurrences, theta, I, H, O, L, many_to_many, X, h0, lengths, Y_out, h_last):
    layers, Why, by = parameter_views(theta, I, H, O, L)
    states = _run_layers(recurrences, layers, X, h0, lengths)
    batch = X.shape[0]
    last = lengths - 1
    for layer, Hs in enumerate(states):
        h_last[layer] = Hs[np.arange(batch), last]
    read = _top_states(states[-1], lengths, many_to_many)
    np.matmul(read, Why.T, out=Y_out)
    Y_out += by
    if many_to_many:
        valid = _valid_steps(lengths, X.shape[1])
        if valid is not None:
            np.copyto(Y_out, 0.0, where=~valid)


def loss_and_grad(recurrences, theta, I, H, O, L, many_to_many, X, Y, h0, lengths, grad):
    layers, Why, by = parameter_views(theta, I, H, O, L)
    grad_layers, gWhy, gby = parameter_views(grad, I, H, O, L)
    batch, steps, _ = X.shape
    states = _run_layers(recurrences, layers, X, h0, lengths)

    read = _top_states(states[-1], lengths, many_to_many)
    diff = read @ Why.T
    diff += by
    diff -= Y
    if many_to_many:
        valid = _valid_steps(lengths, steps)
        count = O * int(lengths.sum())
        if valid is not None:
            # where, not multiply: targets at padded steps may hold anything, NaN too.
            diff = np.where(valid, diff, 0.0).astype(diff.dtype, copy=False)
    else:
        count = O * batch
    loss = float(np.vdot(diff, diff)) / count

    # dL/dy_hat = 2 (y_hat - y) / count, zero at padded steps.
    dY = diff
    dY *= 2.0 / count
    flat_dY = dY.reshape(-1, O)
    np.matmul(flat_dY.T, read.reshape(-1, H), out=gWhy)
    np.sum(flat_dY, axis=0, out=gby)

    dH = np.zeros_like(states[-1])
    if many_to_many:
        np.matmul(dY, Why, out=dH)
    else:
        dH[np.arange(batch), lengths - 1] = dY[:, 0] @ Why

    for layer in range(L - 1, -1, -1):
        Wxh, Whh, _ = layers[layer]
        gWxh, gWhh, gbh = grad_layers[layer]
        Hs = states[layer]
        layer_input = X if layer == 0 else states[layer - 1]
        # dA overwrites dH (in place): dH is not needed once dA is known.
        dA = dH
        recurrences.backward(dH, Hs, Whh, lengths, dA)
        flat_dA = dA.reshape(-1, H)
        np.matmul(flat_dA.T, layer_input.reshape(batch * steps, -1), out=gWxh)
        np.sum(flat_dA, axis=0, out=gbh)
        # h_{t-1} for every step: h0 first, then the states shifted by one.
        previous = np.empty_like(Hs)
        previous[:, 0] = h0[layer]
        previous[:, 1:] = Hs[:, :-1]
        np.matmul(flat_dA.T, previous.reshape(-1, H), out=gWhh)
        del previous
        if layer > 0:
            dH = dA @ Wxh
    return loss


def train_steps(recurrences, theta, I, H, O, L, many_to_many, X, Y, lengths, order,
                batch_size, optimizer, hyper, state, step_count, clip_value, clip_norm,
                losses):
    grad = np.empty_like(theta)
    done = 0
    # A diverging run overflows on its way to NaN; the caller detects that from the
    # non-finite loss or gradient and reports it, as the compiled loop does, so
    # NumPy's overflow warnings would only be noise.
    with np.errstate(over="ignore", invalid="ignore"):
        return _train_steps(recurrences, theta, I, H, O, L, many_to_many, X, Y, lengths,
                            order, batch_size, optimizer, hyper, state, step_count,
                            clip_value, clip_norm, losses, grad)


def _train_steps(recurrences, theta, I, H, O, L, many_to_many, X, Y, lengths, order,
                 batch_size, optimizer, hyper, state, step_count, clip_value, clip_norm,
                 losses, grad):
    done = 0
    for start in range(0, order.shape[0], batch_size):
        rows = order[start:start + batch_size]
        h0 = np.zeros((L, rows.shape[0], H), dtype=theta.dtype)
        loss = loss_and_grad(recurrences, theta, I, H, O, L, many_to_many, X[rows], Y[rows],
                             h0, lengths[rows], grad)
        losses[done] = loss
        if not (np.isfinite(loss) and np.isfinite(grad).all()):
            return done
        clip_flat(grad, clip_value, clip_norm)
        apply_update(optimizer, theta, grad, hyper, state, step_count)
        done += 1
    return done


def forecast(recurrences, theta, I, H, O, L, X, h0, feedback, future, Y_out, h_last):
    layers, Why, by = parameter_views(theta, I, H, O, L)
    batch, steps, _ = X.shape
    lengths = np.full(batch, steps, dtype=np.intp)
    states = _run_layers(recurrences, layers, X, h0, lengths)
    h = [Hs[:, -1].copy() for Hs in states]
    y = h[-1] @ Why.T + by
    Y_out[:, 0] = y
    fed = np.flatnonzero(feedback >= 0)
    for s in range(1, Y_out.shape[1]):
        x = future[:, s - 1].copy()
        x[:, feedback[fed]] = y[:, fed]
        for layer, (Wxh, Whh, bh) in enumerate(layers):
            h[layer] = np.tanh(x @ Wxh.T + h[layer] @ Whh.T + bh)
            x = h[layer]
        y = h[-1] @ Why.T + by
        Y_out[:, s] = y
    for layer in range(L):
        h_last[layer] = h[layer]
