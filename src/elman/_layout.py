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
    """

    def __init__(self, views: Mapping[str, Any], flat: Any) -> None:
        super().__init__(views)
        self.flat = flat
        self._views = tuple(views.values())

    @classmethod
    def over(cls, flat: Any, spans: tuple[Sequence[str], Sequence[Any]]) -> Gradients:
        """Gradients whose entries are views into ``flat``; ``spans`` is
        :func:`view_spans` of the sizes of the model it is laid out for."""
        names, places = spans
        views = tuple([flat[start:stop] if shape is None else flat[start:stop].reshape(shape)
                       for start, stop, shape in places])
        grads = cls.__new__(cls)
        dict.update(grads, zip(names, views))
        grads.flat = flat
        grads._views = views
        return grads

    def intact(self) -> bool:
        """True while every entry is still the original view into ``flat``."""
        return (len(self) == len(self._views)
                and all(a is b for a, b in zip(self.values(), self._views)))

    def __reduce__(self):
        return (dict, (dict(self),))
