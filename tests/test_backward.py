"""``RNN.backward`` is the exact vector-Jacobian product of ``forward``.

For a gradient dY reaching forward's outputs, backward returns the gradients of
the scalar f = sum(forward(X, h0) * dY) with respect to the weights, X and h0.
Checked by central finite differences of f (float64), on both backends and every
route of the route table (the fused loops, the gemm path around the compiled
per-sequence loops and around BLAS steps, the twin), for both nonlinearities, one
and two layers, many-to-many and many-to-one, padded and whole batches; float32
against float64; ``loss_and_grad`` against ``backward`` of the loss's dY; the
README's two-model chain against finite differences of the chained loss; and the
argument checks.

With ``dh_last``, the gradient reaching the final states, f gains
sum(h_last * dh_last): checked the same way, and by carrying the gradient backwards
across consecutive chunks of one sequence, which must give the whole sequence's
gradients.
"""

import numpy as np
import pytest

import elman
from elman import _gemm_path

FD_STEP = 1e-6
# Central differences of f, whose third derivatives are O(1): truncation ~1e-12,
# rounding ~1e-16 |f| / FD_STEP ~1e-10; against entries of order 1e-2 to 1.
FD_RTOL = 1e-6
FD_ATOL = 1e-8

def make_problem(seed, *, batch=3, steps=5, inputs=2, hidden=4, outputs=2, layers=1,
                 many_to_many=True, ragged=False, nonlinearity="tanh", dtype="float64"):
    """A model (weights scaled so that tanh is nonlinear and relu units are both on
    and off), inputs, a nonzero h0, lengths (None when not ragged) and a dY with
    NaN at the padded steps (which backward must ignore)."""
    rng = np.random.default_rng(seed)
    model = elman.RNN(inputs, hidden, outputs, num_layers=layers,
                      return_sequences=many_to_many, nonlinearity=nonlinearity, seed=seed,
                      dtype=dtype)
    model.set_weights({k: 1.5 * v for k, v in model.get_weights().items()})
    X = rng.normal(size=(batch, steps, inputs))
    h0 = rng.uniform(-0.8, 0.8, size=(layers, batch, hidden))
    lengths = None
    if ragged:
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[0], lengths[-1] = steps, max(1, steps // 2)
    if many_to_many:
        dY = rng.normal(size=(batch, steps, outputs))
        if ragged:
            dY[np.arange(steps)[None, :] >= lengths[:, None]] = np.nan
    else:
        dY = rng.normal(size=(batch, outputs))
    return model, X, h0, lengths, dY


def projected_output(model, X, h0, lengths, dY):
    """f = sum(forward(X, h0) * dY) over the valid outputs, in float64."""
    Y = model.forward(X, h0, lengths=lengths).astype(np.float64)
    return float(np.sum(np.where(np.isnan(dY), 0.0, Y * np.nan_to_num(dY))))


def central_difference(f, array, index):
    original = array[index]
    array[index] = original + FD_STEP
    f_plus = f()
    array[index] = original - FD_STEP
    f_minus = f()
    array[index] = original
    return (f_plus - f_minus) / (2 * FD_STEP)


def assert_matches_differences(name, analytic, numeric):
    error = np.max(np.abs(numeric - analytic))
    scale = np.max(np.abs(analytic))
    assert scale > 1e-4, f"{name}: gradient too small to test ({scale:.3g})"
    assert error <= FD_RTOL * scale + FD_ATOL, (
        f"{name}: max |finite difference - backward| = {error:.3g}, largest entry "
        f"{scale:.3g}")


def differences(f, array):
    """Central differences of f() for every entry of ``array`` (changed in place)."""
    return np.array([central_difference(f, array, i)
                     for i in np.ndindex(array.shape)]).reshape(array.shape)


def check_weight_gradients(model, grads, f):
    """Every entry of grads against central differences of f() in the weights."""
    weights = model.get_weights()

    def f_of_weights():
        model.set_weights(weights)
        return f()

    try:
        for name, W in weights.items():
            assert_matches_differences(name, grads[name], differences(f_of_weights, W))
    finally:
        model.set_weights(weights)


def check_backward_by_differences(model, X, h0, lengths, dY):
    """Every entry of grads, dX and dh0 against central differences of f."""
    grads, dX, dh0 = model.backward(X, dY, h0, lengths=lengths)
    assert dX.shape == X.shape and dh0.shape == h0.shape
    assert set(grads) == set(model.get_weights())

    def f():
        return projected_output(model, X, h0, lengths, dY)

    assert_matches_differences("dX", dX, differences(f, X))
    assert_matches_differences("dh0", dh0, differences(f, h0))
    check_weight_gradients(model, grads, f)
    if lengths is not None:
        # Padded steps: the inputs there do not reach any output.
        padded = np.arange(X.shape[1])[None, :] >= np.asarray(lengths)[:, None]
        assert padded.any() and not np.any(dX[padded])
    return grads, dX, dh0


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("many_to_many", [True, False], ids=["m2m", "m2o"])
@pytest.mark.parametrize("ragged", [False, True], ids=["whole", "padded"])
def test_backward_matches_finite_differences(nonlinearity, layers, many_to_many, ragged,
                                             forced_route, assert_route):
    model, X, h0, lengths, dY = make_problem(
        layers * 10 + 2 * many_to_many + ragged, layers=layers, many_to_many=many_to_many,
        ragged=ragged, nonlinearity=nonlinearity)
    assert_route(forced_route, X.shape[0], model.hidden_size)
    calls = []
    original = _gemm_path.backward
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_gemm_path, "backward",
                      lambda *a: (calls.append(a[0].name), original(*a))[1])
        check_backward_by_differences(model, X, h0, lengths, dY)
    # The gemm routes ran _gemm_path with the recurrences they say; fused did not.
    if forced_route == "fused":
        assert not calls
    else:
        assert calls and set(calls) == {"numpy" if forced_route == "twin" else forced_route}
    if nonlinearity == "relu":
        # Both sides of the kink are exercised: some units off, some on.
        states = model.forward(X, h0, lengths=lengths, return_state=True)[1]
        assert np.any(states == 0) and np.any(states > 0)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_unbatched_backward(nonlinearity, backend):
    """(time, input) X: dX (time, input) and dh0 (num_layers, hidden), equal to the
    batch-of-one results."""
    model, X, h0, _, dY = make_problem(5, batch=1, layers=2, nonlinearity=nonlinearity)
    grads, dX, dh0 = model.backward(X[0], dY[0], h0[:, 0])
    assert dX.shape == X[0].shape and dh0.shape == h0[:, 0].shape
    batched = model.backward(X, dY, h0)
    np.testing.assert_array_equal(dX, batched[1][0])
    np.testing.assert_array_equal(dh0, batched[2][:, 0])
    for name in grads:
        np.testing.assert_array_equal(grads[name], batched[0][name])
    many_to_one = elman.RNN(2, 4, 2, return_sequences=False, nonlinearity=nonlinearity,
                            seed=1)
    grads, dX, dh0 = many_to_one.backward(X[0], np.ones(2))
    assert dX.shape == (5, 2) and dh0.shape == (1, 4) and grads["Why"].shape == (2, 4)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("many_to_many", [True, False], ids=["m2m", "m2o"])
@pytest.mark.parametrize("with_dh_last", [False, True], ids=["plain", "dh_last"])
def test_float32_backward_matches_float64(nonlinearity, many_to_many, with_dh_last,
                                          forced_route, assert_close):
    model, X, h0, lengths, dY = make_problem(21, batch=4, layers=2, ragged=True,
                                             many_to_many=many_to_many,
                                             nonlinearity=nonlinearity)
    single = elman.RNN(2, 4, 2, num_layers=2, return_sequences=many_to_many,
                       nonlinearity=nonlinearity, dtype="float32")
    single.set_weights(model.get_weights())
    dh_last = np.random.default_rng(1).normal(size=h0.shape) if with_dh_last else None
    exact = model.backward(X, dY, h0, lengths=lengths, dh_last=dh_last)
    rounded = single.backward(X, dY, h0, lengths=lengths, dh_last=dh_last)
    assert rounded[1].dtype == rounded[2].dtype == np.float32
    for name in exact[0]:
        assert rounded[0][name].dtype == np.float32
        assert_close(rounded[0][name], exact[0][name], rtol=1e-4, what=name)
    assert_close(rounded[1], exact[1], rtol=1e-4, what="dX")
    assert_close(rounded[2], exact[2], rtol=1e-4, what="dh0")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("many_to_many", [True, False], ids=["m2m", "m2o"])
def test_loss_and_grad_is_backward_of_the_loss_gradient(nonlinearity, many_to_many,
                                                        forced_route, assert_close):
    """loss_and_grad(X, Y) == backward(X, 2 (Y_hat - Y) / count): one core, two uses."""
    model, X, h0, lengths, _ = make_problem(31, batch=4, layers=2, ragged=True,
                                            many_to_many=many_to_many,
                                            nonlinearity=nonlinearity)
    rng = np.random.default_rng(0)
    Y_hat = model.forward(X, h0, lengths=lengths)
    Y = rng.normal(size=Y_hat.shape)
    if many_to_many:
        valid = np.arange(X.shape[1])[None, :, None] < lengths[:, None, None]
        count = int(valid.sum()) * model.output_size
        dY = np.where(valid, 2.0 * (Y_hat - Y) / count, 0.0)
        Y[~np.broadcast_to(valid, Y.shape)] = np.nan
    else:
        dY = 2.0 * (Y_hat - Y) / Y.size
    _, grads = model.loss_and_grad(X, Y, h0, lengths=lengths)
    from_backward, _, _ = model.backward(X, dY, h0, lengths=lengths)
    for name in grads:
        assert_close(from_backward[name], grads[name], what=name)


def test_padded_dY_is_ignored(backend):
    model, X, h0, lengths, dY = make_problem(41, batch=4, layers=2, ragged=True)
    padded = np.isnan(dY)
    assert padded.any()
    first = model.backward(X, dY, h0, lengths=lengths)
    other = dY.copy()
    other[padded] = 1e6
    second = model.backward(X, other, h0, lengths=lengths)
    for name in first[0]:
        assert np.isfinite(first[0][name]).all()
        np.testing.assert_array_equal(first[0][name], second[0][name])
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[2], second[2])


def test_backward_is_linear_in_dY(backend, assert_close):
    """A check that cannot pass by returning a constant: twice dY, twice everything,
    and dY = 0 gives zeros."""
    model, X, h0, _, dY = make_problem(51, layers=2, nonlinearity="relu")
    once = model.backward(X, dY, h0)
    twice = model.backward(X, 2 * dY, h0)
    zero = model.backward(X, np.zeros_like(dY), h0)
    for name in once[0]:
        assert_close(twice[0][name], 2 * once[0][name], what=name)
        assert not np.any(zero[0][name])
    assert_close(twice[1], 2 * once[1], what="dX")
    assert np.any(once[1]) and not np.any(zero[1]) and not np.any(zero[2])


def test_two_model_chain_matches_finite_differences(backend):
    """The README's stack: b reads a's outputs. The chained backward gives the
    gradient of the loss of b(a(x)) for both models' weights and for x."""
    rng = np.random.default_rng(3)
    a = elman.RNN(2, 5, 3, nonlinearity="relu", seed=1)
    b = elman.RNN(3, 4, 1, seed=2)
    x = rng.normal(size=(2, 6, 2))
    y = rng.normal(size=(2, 6, 1))

    def loss():
        return float(np.mean((b.forward(a.forward(x)) - y) ** 2))

    y1 = a.forward(x)
    y2 = b.forward(y1)
    dY = 2 * (y2 - y) / y2.size
    gb, dX, _ = b.backward(y1, dY)
    ga, dx, _ = a.backward(x, dX)
    assert dX.shape == y1.shape and dx.shape == x.shape
    # b's gradient is loss_and_grad's on a's outputs.
    _, direct = b.loss_and_grad(y1, y)
    for name in gb:
        np.testing.assert_allclose(gb[name], direct[name], rtol=1e-12, atol=1e-15)
    check_weight_gradients(a, ga, loss)
    check_weight_gradients(b, gb, loss)
    assert_matches_differences("dx", dx, differences(loss, x))


def test_later_chunk_from_its_state_gives_the_whole_runs_late_gradients(backend,
                                                                       assert_close):
    """Started from the state the earlier steps hand on, backward over the later steps
    gives the whole run's dX for those steps (inputs reach only later outputs)."""
    model, X, h0, _, dY = make_problem(61, steps=8, layers=2, nonlinearity="relu")
    whole = model.backward(X, dY, h0)
    _, h_mid = model.forward(X[:, :4], h0, return_state=True)
    late = model.backward(X[:, 4:], dY[:, 4:], h_mid)
    assert_close(late[1], whole[1][:, 4:], what="dX of the later steps")
    assert np.any(whole[1][:, :4])


@pytest.mark.parametrize("bad, message", [
    (lambda dY: dY[:, :-1], r"dY must have the shape of forward's output, \(3, 5, 2\)"),
    (lambda dY: dY[..., None], r"got \(3, 5, 2, 1\)"),
    (lambda dY: dY.sum(axis=1), r"\(3, 5, 2\) for this model \(return_sequences=True"),
    (lambda dY: np.where(dY > 1, np.inf, dY), "dY contains NaN or inf"),
    (lambda dY: dY.astype(str), "dY"),
])
def test_bad_dY_is_a_clear_error(bad, message, backend):
    model, X, h0, _, dY = make_problem(71)
    with pytest.raises((ValueError, TypeError), match=message):
        model.backward(X, bad(dY), h0)


def test_bad_inputs_are_checked_as_forward_checks_them(backend):
    model, X, h0, _, dY = make_problem(72)
    with pytest.raises(ValueError, match="X must have 2 features"):
        model.backward(X[..., :1], dY)
    with pytest.raises(ValueError, match="h0 must have shape"):
        model.backward(X, dY, h0[:, :1])
    with pytest.raises(ValueError, match="lengths"):
        model.backward(X, dY, lengths=[9, 1, 1])
    many_to_one = elman.RNN(2, 4, 2, return_sequences=False)
    with pytest.raises(ValueError, match=r"\(3, 2\) for this model \(return_sequences=False"):
        many_to_one.backward(X, dY)


# ------------------------------------------------------------------- dh_last
def projected_output_and_state(model, X, h0, lengths, dY, dh_last):
    """f = sum(forward(X, h0) * dY) over the valid outputs + sum(h_last * dh_last)."""
    Y, h_last = model.forward(X, h0, lengths=lengths, return_state=True)
    Y, h_last = Y.astype(np.float64), h_last.astype(np.float64)
    return (float(np.sum(np.where(np.isnan(dY), 0.0, Y * np.nan_to_num(dY))))
            + float(np.sum(h_last * dh_last)))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("many_to_many", [True, False], ids=["m2m", "m2o"])
@pytest.mark.parametrize("ragged", [False, True], ids=["whole", "padded"])
def test_backward_with_dh_last_matches_finite_differences(nonlinearity, layers,
                                                         many_to_many, ragged,
                                                         forced_route, assert_route):
    model, X, h0, lengths, dY = make_problem(
        100 + layers * 10 + 2 * many_to_many + ragged, layers=layers,
        many_to_many=many_to_many, ragged=ragged, nonlinearity=nonlinearity)
    assert_route(forced_route, X.shape[0], model.hidden_size)
    dh_last = np.random.default_rng(layers).normal(size=h0.shape)
    grads, dX, dh0 = model.backward(X, dY, h0, lengths=lengths, dh_last=dh_last)
    assert dX.shape == X.shape and dh0.shape == h0.shape

    def f():
        return projected_output_and_state(model, X, h0, lengths, dY, dh_last)

    assert_matches_differences("dX", dX, differences(f, X))
    assert_matches_differences("dh0", dh0, differences(f, h0))
    check_weight_gradients(model, grads, f)
    # dh_last counts: without it the gradients differ.
    without = model.backward(X, dY, h0, lengths=lengths)
    assert np.max(np.abs(without[2] - dh0)) > 1e-3


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("many_to_many", [True, False], ids=["m2m", "m2o"])
def test_gradients_carried_across_chunks_equal_the_whole_sequences(
        nonlinearity, layers, many_to_many, forced_route, assert_route, assert_close):
    """Chunks of one sequence run one after another, each from the state the one
    before hands on; backward from the last chunk to the first, each passing its dh0
    on as the dh_last of the chunk before, gives the whole sequence's gradients."""
    model, X, h0, _, _ = make_problem(130 + layers, steps=8, layers=layers,
                                      many_to_many=many_to_many, nonlinearity=nonlinearity)
    assert_route(forced_route, X.shape[0], model.hidden_size)
    rng = np.random.default_rng(7)
    Y = model.forward(X, h0)
    dY = rng.normal(size=Y.shape)
    whole = model.backward(X, dY, h0)
    cuts = [(0, 3), (3, 5), (5, 8)]
    starts = [h0]
    for start, stop in cuts[:-1]:
        starts.append(model.forward(X[:, start:stop], starts[-1], return_state=True)[1])
    dh_last = None
    grads = {name: np.zeros_like(g) for name, g in whole[0].items()}
    dX = np.empty_like(X)
    for (start, stop), h_start in zip(cuts[::-1], starts[::-1]):
        if many_to_many:
            dY_chunk = dY[:, start:stop]
        else:  # only the last chunk's output is the model's output
            dY_chunk = dY if stop == X.shape[1] else np.zeros_like(dY)
        g, dX[:, start:stop], dh_last = model.backward(X[:, start:stop], dY_chunk, h_start,
                                                       dh_last=dh_last)
        for name in grads:
            grads[name] += g[name]
    for name in grads:
        assert_close(grads[name], whole[0][name], what=name)
    assert_close(dX, whole[1], what="dX")
    assert_close(dh_last, whole[2], what="dh0")
    assert np.any(whole[1][:, 0]) and np.any(whole[2])


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_dh_last_none_is_zeros_and_adds_linearly(nonlinearity, forced_route, assert_close):
    """dh_last=None equals zeros; and backward is linear in (dY, dh_last) together:
    backward(dY, dh_last) = backward(dY) + backward(0, dh_last)."""
    model, X, h0, lengths, dY = make_problem(151, layers=2, ragged=True,
                                             nonlinearity=nonlinearity)
    dh_last = np.random.default_rng(2).normal(size=h0.shape)
    none = model.backward(X, dY, h0, lengths=lengths)
    zeros = model.backward(X, dY, h0, lengths=lengths, dh_last=np.zeros_like(h0))
    both = model.backward(X, dY, h0, lengths=lengths, dh_last=dh_last)
    alone = model.backward(X, np.where(np.isnan(dY), np.nan, 0.0), h0, lengths=lengths,
                           dh_last=dh_last)
    for name in none[0]:
        np.testing.assert_array_equal(zeros[0][name], none[0][name])
        assert_close(both[0][name], none[0][name] + alone[0][name], what=name)
    for i, what in ((1, "dX"), (2, "dh0")):
        np.testing.assert_array_equal(zeros[i], none[i])
        assert_close(both[i], none[i] + alone[i], what=what)
    assert np.any(alone[2]) and np.any(alone[1])


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_unbatched_dh_last(nonlinearity, backend):
    """(num_layers, hidden) dh_last for unbatched X: the batch-of-one results."""
    model, X, h0, _, dY = make_problem(161, batch=1, layers=2, nonlinearity=nonlinearity)
    dh_last = np.random.default_rng(3).normal(size=h0.shape)
    grads, dX, dh0 = model.backward(X[0], dY[0], h0[:, 0], dh_last=dh_last[:, 0])
    batched = model.backward(X, dY, h0, dh_last=dh_last)
    np.testing.assert_array_equal(dX, batched[1][0])
    np.testing.assert_array_equal(dh0, batched[2][:, 0])
    for name in grads:
        np.testing.assert_array_equal(grads[name], batched[0][name])
    assert not np.array_equal(dh0, model.backward(X[0], dY[0], h0[:, 0])[2])


@pytest.mark.parametrize("bad, message", [
    (lambda d: d[:, :1], r"dh_last must have shape \(2, 3, 4\) \(num_layers, batch, "
                         r"hidden_size\); got \(2, 1, 4\)"),
    (lambda d: d[0], r"dh_last must have shape \(2, 3, 4\)"),
    (lambda d: d[..., None], r"dh_last must have shape .*got \(2, 3, 4, 1\)"),
    (lambda d: np.where(d > 1, np.nan, d), "dh_last contains NaN or inf"),
    (lambda d: np.where(d > 1, -np.inf, d), "dh_last contains NaN or inf"),
    (lambda d: np.full(d.shape, 1e300), "dh_last has values too large for float32"),
    (lambda d: d.astype(str), "dh_last"),
])
def test_bad_dh_last_is_a_clear_error(bad, message, backend):
    model, X, h0, _, dY = make_problem(171, layers=2, dtype="float32")
    dh_last = np.random.default_rng(4).normal(size=h0.shape)
    with pytest.raises((ValueError, TypeError), match=message):
        model.backward(X, dY, h0, dh_last=bad(dh_last))


def test_unbatched_dh_last_must_be_unbatched(backend):
    model, X, h0, _, dY = make_problem(172, batch=1, layers=2)
    with pytest.raises(ValueError, match=r"dh_last must have shape \(2, 4\) "
                                         r"\(num_layers, hidden_size\); got \(2, 1, 4\)"):
        model.backward(X[0], dY[0], h0[:, 0], dh_last=np.zeros((2, 1, 4)))
