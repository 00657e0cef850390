"""The flat parameter vector: its length, the shape of every weight, and views into it.

Every parameter lives in one flat vector, layer by layer, then the head::

    for l in range(L):  Wxh_l (H, I_l)   with I_0 = I and I_l = H above
                        Whh_l (H, H)
                        bh_l  (H,)
    Why (O, H), by (O,)

so that an optimizer step or a gradient clip is one operation on one array. The
kernels (``_kernels.pyx`` and its twin) walk the same layout with offsets.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

# The recurrence's nonlinearities; a kernel's ``activation`` argument is the index here.
ACTIVATIONS = ("tanh", "relu")


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


def named_views(flat, I, H, O, L):
    """Dict of views into a flat vector, by weight name (the keys of weight_shapes)."""
    layers, Why, by = parameter_views(flat, I, H, O, L)
    views = {}
    for layer, (Wxh, Whh, bh) in enumerate(layers):
        views[f"layers.{layer}.Wxh"] = Wxh
        views[f"layers.{layer}.Whh"] = Whh
        views[f"layers.{layer}.bh"] = bh
    views["Why"] = Why
    views["by"] = by
    return views


@functools.lru_cache(maxsize=64)
def view_spans(I, H, O, L):
    """(names, [(start, stop, shape or None for a vector)]) of every weight in the
    flat vector, in order; made once per set of sizes, so that views of a new vector
    cost a slice (and a reshape) each."""
    shapes = weight_shapes(I, H, O, L)
    spans = []
    offset = 0
    for shape in shapes.values():
        size = math.prod(shape)
        spans.append((offset, offset + size, shape if len(shape) > 1 else None))
        offset += size
    return tuple(shapes), tuple(spans)


class Gradients(dict[str, Any]):
    """The gradients ``RNN.loss_and_grad`` returns: a dict of arrays by weight name.

    Every array is a view into one flat vector laid out like the model's
    parameters (``flat``), so ``clip_gradients`` and ``Optimizer.step`` can work on
    that one vector instead of gathering the dict: at the tutorials' sizes that
    halves the cost of a hand-written training step. Edit the arrays in place
    freely; once an entry is replaced, added or removed the dict is treated as an
    ordinary dict again.

    The views are made when the dict is first read, not when it is returned: a
    training step that hands it straight to ``clip_gradients`` and
    ``Optimizer.step`` never pays for them (at hidden 4 making the views costs
    more than computing the gradient).
    """

    __slots__ = ("flat", "_views", "_spans")
    flat: Any
    _views: tuple[Any, ...] | None
    _spans: tuple[Sequence[str], Sequence[Any]] | None

    def __init__(self, views: Mapping[str, Any], flat: Any) -> None:
        super().__init__(views)
        self.flat = flat
        self._views = tuple(views.values())
        self._spans = None

    @classmethod
    def over(cls, flat: Any, spans: tuple[Sequence[str], Sequence[Any]]) -> Gradients:
        """Gradients whose entries are views into ``flat``, made when first read;
        ``spans`` is :func:`view_spans` of the sizes of the model it is laid out
        for."""
        grads = _UnreadGradients.__new__(_UnreadGradients)
        grads.flat = flat
        grads._views = None
        grads._spans = spans
        return grads

    def intact(self) -> bool:
        """True while every entry is still the original view into ``flat``."""
        views = self._views
        if views is None:  # not read yet, so not edited either
            return True
        return (len(self) == len(views)
                and all(a is b for a, b in zip(self.values(), views)))

    def __reduce__(self):
        return (dict, (dict(self),))


def _make_views(grads: Gradients) -> None:
    """Fill an unread Gradients with its views and make it an ordinary Gradients."""
    spans = grads._spans
    assert spans is not None  # only an unread Gradients has spans
    names, places = spans
    flat = grads.flat
    views = tuple([flat[start:stop] if shape is None else flat[start:stop].reshape(shape)
                   for start, stop, shape in places])
    dict.update(grads, zip(names, views))
    grads._views = views
    grads._spans = None
    grads.__class__ = Gradients


def _reading(name: str) -> Any:
    method = getattr(dict, name)

    def read(self: Gradients, *args: Any, **kwargs: Any) -> Any:
        _make_views(self)
        return method(self, *args, **kwargs)

    read.__name__ = name
    read.__doc__ = method.__doc__
    return read


class _UnreadGradients(Gradients):
    """A :class:`Gradients` whose views are not made yet. Any use of it as a dict
    makes them and turns it into a plain ``Gradients`` (``__class__`` is
    reassigned), so from then on every dict operation is the built-in one."""

    __slots__ = ()

    # Every dict method that reads or writes entries. __iter__ being overridden
    # also sends dict(grads), {**grads} and f(**grads) through keys() and
    # __getitem__ instead of reading the (still empty) table directly.
    for _name in ("__getitem__", "__iter__", "__len__", "__contains__", "__eq__",
                  "__ne__", "__repr__", "__reversed__", "__or__", "__ror__", "__ior__",
                  "__setitem__", "__delitem__", "keys", "values", "items", "get", "copy",
                  "pop", "popitem", "setdefault", "update", "clear"):
        locals()[_name] = _reading(_name)
    del _name

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        _make_views(self)
        return (dict, (dict(self),))
