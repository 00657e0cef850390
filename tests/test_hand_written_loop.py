"""The gradients dict of loss_and_grad, in a hand-written training loop.

``loss_and_grad`` returns its gradients as views into one flat vector, and
``clip_gradients`` / ``Optimizer.step`` work on that vector directly while the dict
is unchanged. These tests check that the shortcut gives what a plain dict gives,
and that it is dropped as soon as the dict is edited.
"""

import pickle

import numpy as np
import pytest

import elman
from elman.optimizers import SGD, Adam


def _setup(dtype="float64"):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 6, 2))
    Y = 3.0 * rng.normal(size=(4, 6, 1))
    return elman.RNN(2, 5, 1, num_layers=2, seed=1, dtype=dtype), X, Y


@pytest.mark.parametrize("clip", [{"value": 0.01}, {"norm": 0.05}, {"value": 0.02, "norm": 0.03}])
def test_clip_on_the_returned_dict_equals_clip_on_a_plain_dict(backend, clip):
    model, X, Y = _setup()
    _, grads = model.loss_and_grad(X, Y)
    plain = {name: array.copy() for name, array in grads.items()}
    norm_fast = elman.clip_gradients(grads, **clip)
    norm_plain = elman.clip_gradients(plain, **clip)
    assert norm_fast == pytest.approx(norm_plain, rel=1e-14)
    for name in plain:
        np.testing.assert_allclose(grads[name], plain[name], rtol=1e-14, atol=0)
    # And the clip really happened (the test data make gradients exceed the bounds).
    if "value" in clip:
        assert max(np.abs(g).max() for g in grads.values()) <= clip["value"]


@pytest.mark.parametrize("make_optimizer", [lambda: SGD(lr=0.1, momentum=0.9),
                                            lambda: Adam(lr=0.01, weight_decay=0.1)])
def test_step_with_the_returned_dict_equals_step_with_a_plain_dict(backend, make_optimizer):
    fast_model, X, Y = _setup()
    plain_model, _, _ = _setup()
    fast_opt, plain_opt = make_optimizer(), make_optimizer()
    for _ in range(3):
        _, grads = fast_model.loss_and_grad(X, Y)
        fast_opt.step(fast_model, grads)
        _, grads = plain_model.loss_and_grad(X, Y)
        plain_opt.step(plain_model, {name: array.copy() for name, array in grads.items()})
    np.testing.assert_array_equal(fast_model.parameters, plain_model.parameters)


def test_an_edited_dict_is_used_as_edited(backend):
    model, X, Y = _setup()
    _, grads = model.loss_and_grad(X, Y)
    assert grads.intact()
    grads["by"] = np.array([1e6])           # replaced: the flat vector is stale now
    assert not grads.intact()
    elman.clip_gradients(grads, value=1.0)
    assert grads["by"][0] == 1.0
    before = model.get_weights()
    SGD(lr=1.0).step(model, grads)
    assert model.get_weights()["by"][0] == pytest.approx(before["by"][0] - 1.0)


def test_in_place_edits_keep_the_shortcut_and_are_seen(backend):
    model, X, Y = _setup()
    _, grads = model.loss_and_grad(X, Y)
    grads["by"][...] = 2.0                   # in place: still a view of the flat vector
    assert grads.intact()
    before = model.get_weights()["by"][0]
    SGD(lr=0.5).step(model, grads)
    assert model.get_weights()["by"][0] == pytest.approx(before - 1.0)


def test_float32_gradients_agree_with_a_plain_dict():
    model, X, Y = _setup("float32")
    _, grads = model.loss_and_grad(X, Y)
    plain = {name: array.copy() for name, array in grads.items()}
    elman.clip_gradients(grads, norm=0.05)
    elman.clip_gradients(plain, norm=0.05)
    for name in plain:
        np.testing.assert_allclose(grads[name], plain[name], rtol=1e-6, atol=1e-9)


def test_the_dict_pickles_as_a_plain_dict():
    model, X, Y = _setup()
    _, grads = model.loss_and_grad(X, Y)
    copy = pickle.loads(pickle.dumps(grads))
    assert type(copy) is dict and set(copy) == set(grads)
    for name in grads:
        np.testing.assert_array_equal(copy[name], grads[name])
