"""The gradients dict of loss_and_grad, in a hand-written training loop.

``loss_and_grad`` returns its gradients as views into one flat vector (made on
first use), and ``clip_gradients`` / ``Optimizer.step`` work on that vector directly
while the dict is unchanged. These tests check that the shortcut gives what a plain
dict gives, that a fresh dict shows every entry whatever its first use is, and that
the shortcut is dropped as soon as the dict is edited.
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


def _expected_views(model, grads):
    """The gradients as a plain dict built by hand from the flat vector."""
    return {name: view for name, view in model._views(grads.flat).items()}


# Each is a first use of a fresh gradients dict: whatever it is, it must see every
# entry (the views are made on first use).
FIRST_USES = {
    "dict()": lambda g: dict(g),
    "{**g}": lambda g: {**g},
    "keyword arguments": lambda g: (lambda **kw: kw)(**g),
    "items": lambda g: dict(g.items()),
    "keys and getitem": lambda g: {k: g[k] for k in list(g.keys())},
    "iteration": lambda g: {k: g[k] for k in g},
    "values": lambda g: dict(zip(list(g), list(g.values()))),
    "get": lambda g: {k: g.get(k) for k in ("Why", "by")} | {"n": len(g)},
    "copy": lambda g: g.copy(),
    "pickle": lambda g: pickle.loads(pickle.dumps(g)),
    "update another dict": lambda g: (lambda d: (d.update(g), d)[1])({}),
}


@pytest.mark.parametrize("use", FIRST_USES, ids=list(FIRST_USES))
def test_a_fresh_dict_shows_every_entry_on_first_use(backend, use):
    model, X, Y = _setup()
    _, grads = model.loss_and_grad(X, Y)
    seen = FIRST_USES[use](grads)
    full = _expected_views(model, grads)
    expected = full
    if use == "get":
        assert seen.pop("n") == len(full)
        expected = {k: full[k] for k in ("Why", "by")}
    assert list(seen) == list(expected)
    for name in expected:
        np.testing.assert_array_equal(seen[name], expected[name])
    assert len(grads) == len(full) and grads.intact()


def test_a_fresh_dict_compares_prints_and_tests_membership_as_a_full_one(backend):
    model, X, Y = _setup()
    for check in (lambda g: "layers.1.Whh" in g, lambda g: len(g) == 8, bool,
                  lambda g: "Why" in repr(g), lambda g: "by" in str(g),
                  lambda g: g != {}, lambda g: {} != g, lambda g: list(reversed(g))[0] == "by",
                  lambda g: sorted(g)[0] == "Why"):
        _, grads = model.loss_and_grad(X, Y)
        assert check(grads)
    _, grads = model.loss_and_grad(X, Y)
    assert grads.keys() == _expected_views(model, grads).keys()


def test_edits_to_a_fresh_dict_drop_the_shortcut(backend):
    model, X, Y = _setup()
    for edit in (lambda g: g.pop("by"), lambda g: g.__setitem__("by", np.zeros(1)),
                 lambda g: g.setdefault("extra", 1), lambda g: g.update(by=np.zeros(1)),
                 lambda g: g.popitem(), lambda g: g.clear(), lambda g: g.__delitem__("by")):
        _, grads = model.loss_and_grad(X, Y)
        assert grads.intact()
        edit(grads)
        assert not grads.intact()
