"""Exchange weights with PyTorch: ``torch.nn.RNN`` plus a ``torch.nn.Linear`` head.

elman never imports torch. A state dict here is a plain ``dict`` of NumPy arrays
under PyTorch's key names, so it can be built, saved and checked without torch;
turning it into tensors is one line on the torch side::

    # elman -> torch
    import torch
    state = {k: torch.from_numpy(v) for k, v in model.to_torch_state_dict().items()}
    net.load_state_dict(state)          # net.rnn = nn.RNN(...), net.fc = nn.Linear(...)

    # torch -> elman (tensors are accepted as they are)
    model = elman.RNN.from_torch_state_dict(net.state_dict())

The mapping, for each layer ``k``::

    rnn.weight_ih_l{k}  (H, I) for k = 0, (H, H) above   <->  layers.{k}.Wxh
    rnn.weight_hh_l{k}  (H, H)                            <->  layers.{k}.Whh
    rnn.bias_ih_l{k}    (H,)                              <->  layers.{k}.bh
    rnn.bias_hh_l{k}    (H,)                              <->  (zeros on export)
    fc.weight           (O, H)                            <->  Why
    fc.bias             (O,)                              <->  by

PyTorch adds two bias vectors where elman has one (``h_t = tanh(W_ih x_t + b_ih +
W_hh h_{t-1} + b_hh)``): on export elman's ``bh`` becomes ``bias_ih`` and
``bias_hh`` is zero; on import the two are summed. The network computes the same
function either way.

What the torch side must be: ``nn.RNN(input_size, hidden_size, num_layers,
nonlinearity=...)`` with the model's nonlinearity (``"tanh"``, torch's default, or
``"relu"``; a state dict does not carry it, so it is the caller's to get right:
pass ``nonlinearity=`` on import, build the ``nn.RNN`` with
``nonlinearity=model.nonlinearity`` on export), unidirectional, without
``proj_size``, with or without ``batch_first`` (the layout of the data, not of the
weights; elman's data are batch-first), and ``nn.Linear(hidden_size, output_size)``
applied to the hidden state at every step (many-to-many) or at the last step
(many-to-one). GRU and LSTM state dicts (the same key names, with 3 or 4 gates'
rows stacked in each matrix) are recognised and refused. ``bias=False`` on either is
accepted on import (the missing biases are zero). Dropout between layers is a
training-time setting of torch and does not change the weights.

The prefixes ``"rnn."`` and ``"fc."`` are the attribute names of the usual module
(``self.rnn = nn.RNN(...)``, ``self.fc = nn.Linear(...)``); pass others to match
yours, e.g. ``rnn_prefix="encoder."``, ``head_prefix="head."``, or ``""`` for a bare
``nn.RNN``'s own state dict.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from elman._validation import check_dtype, check_prefix, shape_text
from elman.rnn import RNN
from elman._typing import DTypeLike, FloatArray

__all__ = ["from_torch_state_dict", "to_torch_state_dict"]

DEFAULT_RNN_PREFIX = "rnn."
DEFAULT_HEAD_PREFIX = "fc."

# Every parameter name nn.RNN can have: weight_ih_l0, bias_hh_l2_reverse, weight_hr_l0
# (proj_size, LSTM only in current PyTorch, rejected here all the same).
_TORCH_RNN_KEY = re.compile(r"(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?")


def to_torch_state_dict(model: RNN, *, rnn_prefix: str = DEFAULT_RNN_PREFIX,
                        head_prefix: str = DEFAULT_HEAD_PREFIX) -> dict[str, FloatArray]:
    """The model's weights under PyTorch's names, as NumPy arrays.

    Parameters
    ----------
    model : elman.RNN
    rnn_prefix : str, default "rnn."
        Prefix of the ``nn.RNN`` keys (the attribute name of the RNN in the torch
        module, plus a dot; ``""`` for a bare ``nn.RNN``).
    head_prefix : str, default "fc."
        Prefix of the ``nn.Linear`` head's ``weight`` and ``bias``.

    Returns
    -------
    dict of str to ndarray
        For each layer ``k``: ``{rnn_prefix}weight_ih_l{k}`` (H, I) for k = 0 and
        (H, H) above, ``{rnn_prefix}weight_hh_l{k}`` (H, H),
        ``{rnn_prefix}bias_ih_l{k}`` (H,) holding elman's ``bh``, and
        ``{rnn_prefix}bias_hh_l{k}`` (H,) of zeros; then ``{head_prefix}weight``
        (O, H) and ``{head_prefix}bias`` (O,). New arrays in the model's dtype, in
        the order ``nn.Module.state_dict()`` lists them.

    Notes
    -----
    The nonlinearity is not in the dict: build the ``nn.RNN`` with
    ``nonlinearity=model.nonlinearity``, or the network computes something else.
    """
    if not isinstance(model, RNN):
        raise TypeError(f"model must be an elman.RNN; got {type(model).__name__}")
    rnn_prefix = check_prefix("rnn_prefix", rnn_prefix)
    head_prefix = check_prefix("head_prefix", head_prefix)
    weights = model.get_weights()
    state = {}
    for layer in range(model.num_layers):
        bh = weights[f"layers.{layer}.bh"]
        state[f"{rnn_prefix}weight_ih_l{layer}"] = weights[f"layers.{layer}.Wxh"]
        state[f"{rnn_prefix}weight_hh_l{layer}"] = weights[f"layers.{layer}.Whh"]
        state[f"{rnn_prefix}bias_ih_l{layer}"] = bh
        state[f"{rnn_prefix}bias_hh_l{layer}"] = np.zeros_like(bh)
    state[f"{head_prefix}weight"] = weights["Why"]
    state[f"{head_prefix}bias"] = weights["by"]
    return state


def _as_array(key, value):
    """A NumPy array from an array or a torch tensor (duck-typed: torch is not imported)."""
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"state_dict[{key!r}] must be an array or a tensor; got "
                        f"{type(value).__name__}") from exc
    if array.dtype.kind not in "fiu":
        raise TypeError(f"state_dict[{key!r}] must hold real numbers; got dtype {array.dtype}")
    return array


def from_torch_state_dict(state_dict: Mapping[Any, Any], *,
                          rnn_prefix: str = DEFAULT_RNN_PREFIX,
                          head_prefix: str = DEFAULT_HEAD_PREFIX, return_sequences: bool = True,
                          nonlinearity: str = "tanh", dtype: DTypeLike | None = None) -> RNN:
    """Build an :class:`elman.RNN` from an ``nn.RNN`` + ``nn.Linear`` state dict.

    The sizes (input, hidden, output, layers) are read from the shapes.

    Parameters
    ----------
    state_dict : mapping of str to array_like or torch.Tensor
        For example ``net.state_dict()`` or :func:`to_torch_state_dict`'s result.
        Keys that start with neither prefix are ignored, so the state dict of a
        larger module can be passed whole.
    rnn_prefix, head_prefix : str, default "rnn." and "fc."
        As in :func:`to_torch_state_dict`.
    return_sequences : bool, default True
        The elman model's mode: True if the torch head is applied at every step,
        False if only at the last (many-to-one). The weights are the same.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The ``nonlinearity`` the ``nn.RNN`` was built with. A state dict does not
        record it, and a relu network imported as tanh computes something else.
    dtype : {"float32", "float64"}, optional
        Default: float32 when every tensor is float32 (PyTorch's default), else
        float64.

    Returns
    -------
    elman.RNN
        With ``bh = bias_ih + bias_hh`` for each layer.

    Raises
    ------
    ValueError
        A missing key, a key of a bidirectional RNN (``_reverse``) or of
        ``proj_size`` (``weight_hr``), a GRU or LSTM state dict, layers that are
        not numbered 0 .. L-1, inconsistent shapes, or non-finite values.
    TypeError
        A value that is not an array or a tensor of real numbers.
    """
    rnn_prefix = check_prefix("rnn_prefix", rnn_prefix)
    head_prefix = check_prefix("head_prefix", head_prefix)
    try:
        items = list(state_dict.items())
    except AttributeError:
        raise TypeError(f"state_dict must be a mapping of names to arrays; got "
                        f"{type(state_dict).__name__}") from None

    head_keys = {f"{head_prefix}weight": "weight", f"{head_prefix}bias": "bias"}
    rnn = {}
    head = {}
    for key, value in items:
        if not isinstance(key, str):
            continue
        if key in head_keys:
            head[head_keys[key]] = _as_array(key, value)
            continue
        if not key.startswith(rnn_prefix):
            continue
        match = _TORCH_RNN_KEY.fullmatch(key[len(rnn_prefix):])
        if match is None:
            continue
        kind, which, layer, reverse = match.groups()
        if reverse:
            raise ValueError(f"state_dict has {key!r}: a bidirectional nn.RNN has no elman "
                             f"equivalent (elman runs forward in time only)")
        if which == "hr":
            raise ValueError(f"state_dict has {key!r}: nn.RNN with proj_size has no elman "
                             f"equivalent")
        rnn[(kind, which, int(layer))] = (key, _as_array(key, value))

    if not rnn:
        raise ValueError(f"state_dict has no nn.RNN weights under the prefix {rnn_prefix!r} "
                         f"(expected keys such as {rnn_prefix}weight_ih_l0); pass rnn_prefix= "
                         f"to match your module")
    if "weight" not in head:
        raise ValueError(f"state_dict has no {head_prefix}weight for the linear head; pass "
                         f"head_prefix= to match your module")
    layers = sorted({layer for (_, _, layer) in rnn})
    num_layers = len(layers)
    if layers != list(range(num_layers)):
        raise ValueError(f"nn.RNN layers must be numbered 0 .. L-1; got {layers}")
    has_bias = {(k, l) for (kind, k, l) in rnn if kind == "bias"}
    if has_bias and len(has_bias) != 2 * num_layers:
        missing = [f"{rnn_prefix}bias_{k}_l{l}" for l in layers for k in ("ih", "hh")
                   if (k, l) not in has_bias]
        raise ValueError(f"state_dict has some nn.RNN biases but not {missing}")
    for layer in layers:
        for which in ("ih", "hh"):
            if ("weight", which, layer) not in rnn:
                raise ValueError(f"state_dict is missing {rnn_prefix}weight_{which}_l{layer}")

    w_ih0 = rnn[("weight", "ih", 0)][1]
    w_hh0 = rnn[("weight", "hh", 0)][1]
    if w_ih0.ndim != 2 or w_hh0.ndim != 2:
        raise ValueError(f"{rnn_prefix}weight_ih_l0 and weight_hh_l0 must be matrices; got "
                         f"shapes {shape_text(w_ih0.shape)} and {shape_text(w_hh0.shape)}")
    # nn.GRU and nn.LSTM use the same key names, with 3 or 4 gates' weights stacked:
    # weight_hh_l0 is (3H, H) or (4H, H) where nn.RNN's is square.
    rows, columns = w_hh0.shape
    for gates, name in ((3, "nn.GRU"), (4, "nn.LSTM")):
        if columns >= 1 and rows == gates * columns:
            raise ValueError(
                f"state_dict looks like the state dict of an {name} ({rnn_prefix}"
                f"weight_hh_l0 has shape {shape_text(w_hh0.shape)}: {gates} gates of "
                f"hidden size {columns}); elman imports nn.RNN weights only")
    hidden_size, input_size = w_ih0.shape
    weight = head["weight"]
    if weight.ndim != 2 or weight.shape[1] != hidden_size:
        raise ValueError(f"{head_prefix}weight must have shape (output_size, {hidden_size}); "
                         f"got {shape_text(weight.shape)}")
    output_size = weight.shape[0]

    arrays = [array for _, array in rnn.values()] + list(head.values())
    if dtype is None:
        dtype = "float32" if all(a.dtype == np.float32 for a in arrays) else "float64"
    dtype = check_dtype(dtype)
    if input_size < 1 or hidden_size < 1 or output_size < 1:
        raise ValueError(f"sizes must be >= 1; got input {input_size}, hidden {hidden_size}, "
                         f"output {output_size}")

    def expect(key, array, shape):
        if array.shape != shape:
            raise ValueError(f"state_dict[{key!r}] must have shape {shape_text(shape)}; got "
                             f"{shape_text(array.shape)}")
        # Sum the biases in float64 whatever the source precision, then cast once.
        return array.astype(np.float64)

    H = hidden_size
    weights = {}
    for layer in layers:
        in_size = input_size if layer == 0 else H
        key, array = rnn[("weight", "ih", layer)]
        weights[f"layers.{layer}.Wxh"] = expect(key, array, (H, in_size))
        key, array = rnn[("weight", "hh", layer)]
        weights[f"layers.{layer}.Whh"] = expect(key, array, (H, H))
        bh = np.zeros(H)
        if has_bias:
            for which in ("ih", "hh"):
                key, array = rnn[("bias", which, layer)]
                bh = bh + expect(key, array, (H,))
        weights[f"layers.{layer}.bh"] = bh
    weights["Why"] = expect(f"{head_prefix}weight", weight, (output_size, H))
    if "bias" in head:
        weights["by"] = expect(f"{head_prefix}bias", head["bias"], (output_size,))
    else:
        weights["by"] = np.zeros(output_size)
    for name, array in weights.items():
        if not np.isfinite(array).all():
            raise ValueError(f"the weights for {name} contain NaN or inf")

    config = dict(input_size=input_size, hidden_size=hidden_size, output_size=output_size,
                  num_layers=num_layers, return_sequences=return_sequences,
                  nonlinearity=nonlinearity, dtype=dtype)
    return RNN._from_parameters(config, weights)
