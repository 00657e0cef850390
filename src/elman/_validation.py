"""Input checks shared by every public entry point.

Everything a user can get wrong is caught here, before a kernel is called, with a
ValueError or TypeError that names the argument, what was received and what was
expected. Kernels trust what passes.
"""

import math
from typing import Any
from numbers import Integral, Real

import numpy as np

from elman._typing import Array, FloatArray

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype):
    """np.dtype for 'float32' / 'float64' (or the NumPy types), else TypeError."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64; got {dtype!r}") from exc
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64; got {resolved}")
    return resolved


def check_int(name, value, minimum=None, maximum=None):
    """A Python int from an integral value within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}; got {value}")
    return value


def check_float(name, value, minimum=None, allow_none=False, strict=False):
    """A finite Python float (or None when allowed), optionally > or >= minimum."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if minimum is not None:
        if strict and value <= minimum:
            raise ValueError(f"{name} must be > {minimum}; got {value}")
        if not strict and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def as_numeric_array(name: str, value: Any) -> Array:
    """np.asarray(value), insisting on real numbers (bool, int, unsigned or float)."""
    if isinstance(value, np.ndarray):
        # A plain view of subclasses: np.matrix keeps no 2-D shape, and a masked
        # array's NaN (masked or not) is reported as NaN, not hidden by the mask.
        array = np.asarray(value)
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise TypeError(
                f"{name} must be an array of real numbers with a regular shape; got "
                f"{type(value).__name__} ({exc})"
            ) from exc
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got an array of dtype {array.dtype}")
    return array


def as_float_array(name: str, value: Any, dtype: Any, *, finite: bool = True) -> FloatArray:
    """C-contiguous float copy-or-view of ``value`` in ``dtype``; finite unless told."""
    array = as_numeric_array(name, value)
    # asarray, not ascontiguousarray, which turns a 0-d array into shape (1,). Overflow
    # in the cast is reported below as a ValueError, so NumPy's warning is silenced.
    with np.errstate(over="ignore"):
        converted: FloatArray = np.asarray(array, dtype=dtype, order="C")
    if finite and not np.isfinite(converted).all():
        if np.isfinite(array).all():
            raise ValueError(
                f"{name} has values too large for {np.dtype(dtype)} (they overflow to inf)"
            )
        raise ValueError(f"{name} contains NaN or inf; every value must be finite")
    return converted


def shape_text(shape):
    """A shape as NumPy prints it: (2, 3), and (5,) for one axis."""
    return str(tuple(int(s) for s in shape))


def check_lengths(lengths: Any, batch: int, steps: int) -> Array:
    """(B,) intp array of valid steps per sequence, each in [1, steps]."""
    array = as_numeric_array("lengths", lengths)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise TypeError("lengths must hold whole numbers of steps")
    elif array.dtype.kind == "b":
        raise TypeError("lengths must hold whole numbers of steps; got booleans")
    if array.shape != (batch,):
        raise ValueError(
            f"lengths must have shape ({batch},), one per sequence; got {shape_text(array.shape)}"
        )
    if batch and (array.min() < 1 or array.max() > steps):
        raise ValueError(
            f"lengths must lie in [1, {steps}] (the time axis of X); got values from "
            f"{array.min()} to {array.max()}"
        )
    return np.ascontiguousarray(array, dtype=np.intp)


def check_positive(name, value, allow_zero=False):
    """A finite Python float > 0 (>= 0 with allow_zero)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {expected}; got {value!r}")
    return value


def check_unit_interval(name, value):
    """A Python float in [0, 1)."""
    value = check_positive(name, value, allow_zero=True)
    if value >= 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {value!r}")
    return value


def check_updatable(name, value):
    """An array an optimizer step or a clip may write to: float ndarray, writeable."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        kind = f"an array of dtype {value.dtype}" if isinstance(value, np.ndarray) else \
            type(value).__name__
        raise TypeError(f"{name} must be a float ndarray (it is updated in place); got {kind}")
    if not value.flags.writeable:
        raise ValueError(f"{name} is read-only; it is updated in place")


def check_prefix(name, prefix):
    """A key prefix of a state dict: any str ('' for none)."""
    if not isinstance(prefix, str):
        raise TypeError(f"{name} must be a str such as 'rnn.' (or '' for none); got "
                        f"{type(prefix).__name__}")
    return prefix


def check_bool(name, value):
    """A Python bool from True / False (NumPy's too); anything else is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


# ---------------------------------------------------------------------------
# The arrays a model's methods and fit take. Each returns what the kernels need:
# C-contiguous, in the model's dtype, batched.
# ---------------------------------------------------------------------------

def check_sequences(X: Any, input_size: int, dtype: Any,
                    name: str = "X") -> tuple[FloatArray, bool]:
    """(B, T, I) contiguous array in ``dtype``, and whether X was unbatched (T, I).

    ``name`` is the argument's name in error messages (``history`` for forecast).
    """
    array = as_numeric_array(name, X)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{name} must have shape (batch, time, {input_size}) or (time, "
            f"{input_size}); got {array.ndim} dimensions, shape "
            f"{shape_text(array.shape)}"
        )
    unbatched = array.ndim == 2
    if unbatched:
        array = array[None]
    if array.shape[2] != input_size:
        raise ValueError(
            f"{name} must have {input_size} features on its last axis (input_size); "
            f"got shape {shape_text(array.shape[1:] if unbatched else array.shape)}"
        )
    if array.shape[1] == 0:
        raise ValueError(f"{name} is an empty sequence: its time axis has length 0")
    return as_float_array(name, array, dtype), unbatched


# Arrays the kernels only read, kept between calls up to this many elements each and
# this many shapes (then forgotten, all at once): a small call would otherwise spend a
# good share of its time allocating them.
CACHED_MAX_ELEMENTS = 1 << 14
CACHED_MAX_SHAPES = 64
_zero_states: dict[tuple[Any, ...], np.ndarray[Any, Any]] = {}
_full_lengths: dict[tuple[int, int], np.ndarray[Any, Any]] = {}


def _keep(cache: dict[Any, Any], key: Any, array: Array) -> None:
    if array.size <= CACHED_MAX_ELEMENTS:
        if len(cache) >= CACHED_MAX_SHAPES:
            cache.clear()
        cache[key] = array


def _read_only(array: FloatArray) -> FloatArray:
    array.flags.writeable = False
    return array


def zero_states(num_layers: int, batch: int, hidden_size: int, dtype: Any) -> FloatArray:
    """Read-only zeros (L, B, H) in ``dtype``: the initial state when h0 is None.

    Small ones are made once and shared between calls; the kernels only read h0.
    """
    key = (num_layers, batch, hidden_size, dtype)
    found = _zero_states.get(key)
    if found is None:
        found = _read_only(np.zeros((num_layers, batch, hidden_size), dtype=dtype))
        _keep(_zero_states, key, found)
    return found


def full_lengths(batch: int, steps: int) -> Array:
    """Read-only (B,) intp array of ``steps``: every sequence whole (shared, as
    zero_states)."""
    key = (batch, steps)
    found = _full_lengths.get(key)
    if found is None:
        found = _read_only(np.full(batch, steps, dtype=np.intp))
        _keep(_full_lengths, key, found)
    return found


def ready_array(value: Any, shape: tuple[int, ...], dtype: Any) -> FloatArray | None:
    """``value`` itself when the kernels can take it as it is (an ndarray, not a
    subclass, of exactly this shape and dtype, C-contiguous, every value finite);
    otherwise None, and the full checks decide.

    Where this returns the array, the full checks (``as_float_array``) would have
    returned that same array without a copy, so skipping them changes nothing.
    """
    if (type(value) is np.ndarray and value.shape == shape and value.dtype == dtype
            and value.flags.c_contiguous and all_finite(value)):
        return value
    return None


def all_finite(array: Array) -> bool:
    """True when every value of a float array is finite (no NaN, no inf).

    For a small array, first the dot product of the array with itself (one BLAS
    call, no temporary array): it is finite only when every value is. When it is
    not -- a NaN or an inf, or finite values so large that the squares overflow --
    isfinite and all decide. Never a plain sum, which would warn on overflow where
    the full checks accept the values silently (BLAS does not warn). A large array
    goes straight to isfinite (see _BLAS_THREADED_SIZE).
    """
    if array.size > _BLAS_THREADED_SIZE:
        return bool(np.isfinite(array).all())
    return math.isfinite(np.vdot(array, array)) or bool(np.isfinite(array).all())


# Above this many elements OpenBLAS runs a dot product on all its threads, which then
# spin for about 0.1 s (OpenBLAS's thread timeout) after it returns, competing for
# the cores with the kernels' own threads; isfinite is then cheap beside the call.
_BLAS_THREADED_SIZE = 8192


def stream_step_ready_python(theta: FloatArray, input_size: int, hidden_size: int,
                             num_layers: int, x: Any, h: Any) -> bool:
    """True when ``x`` is one unbatched step (1, input_size) and ``h`` the states
    (num_layers, hidden_size), both ndarrays (not subclasses) in theta's dtype,
    C-contiguous and finite: what the full checks would pass without a copy, and
    what the compiled ``step`` takes as it is. Never raises: anything else is
    False, and the full checks decide (and raise the errors)."""
    dtype = theta.dtype
    return (type(x) is np.ndarray and type(h) is np.ndarray
            and x.shape == (1, input_size) and h.shape == (num_layers, hidden_size)
            and x.dtype == dtype and h.dtype == dtype
            and x.flags.c_contiguous and h.flags.c_contiguous
            and all_finite(x) and all_finite(h))


def check_initial_state(h0: Any, num_layers: int, hidden_size: int, batch: int,
                        unbatched: bool, dtype: Any, name: str = "h0") -> FloatArray:
    """(L, B, H) initial states in ``dtype``; read-only zeros when h0 is None.
    ``name`` names the argument in errors (states of the same shape, such as the
    gradient reaching the final states, are checked here too)."""
    L, H = num_layers, hidden_size
    if h0 is None:
        return zero_states(L, batch, H, dtype)
    array = as_numeric_array(name, h0)
    expected = (L, H) if unbatched else (L, batch, H)
    if array.shape != expected:
        raise ValueError(
            f"{name} must have shape {shape_text(expected)} (num_layers, "
            f"{'' if unbatched else 'batch, '}hidden_size); got {shape_text(array.shape)}"
        )
    if unbatched:
        array = array[:, None, :]
    return as_float_array(name, array, dtype)


def check_sequence_lengths(lengths: Any, batch: int, steps: int, unbatched: bool) -> Array:
    """(B,) intp valid steps per sequence; every sequence whole (read-only) when
    lengths is None."""
    if lengths is None:
        return full_lengths(batch, steps)
    if unbatched:
        lengths = np.reshape(as_numeric_array("lengths", lengths), (-1,))
    return check_lengths(lengths, batch, steps)


def check_targets(Y: Any, target_size: int, classes: int | None, return_sequences: bool,
                  batch: int, steps: int, unbatched: bool, lengths: Array,
                  dtype: Any, about: str | None = None) -> FloatArray:
    """Targets as the kernels take them: (B, T, W), or (B, 1, W) for many-to-one,
    with W = ``target_size`` values per step.

    A many-to-one model with one target per step also takes (B,). With ``classes``
    (cross-entropy: W is 1), Y holds class indices in [0, classes), shaped like X
    without its feature axis ((B, T), (B,), (T,) or ()), or with a trailing axis of
    1; they are returned as floats of ``dtype``. Targets at padded steps may hold
    anything (NaN too); valid ones must be finite (and whole classes). ``about``
    describes the model in the shape error (default ``output_size=W``).
    """
    O = target_size
    array = as_numeric_array("Y", Y)
    expected: tuple[int, ...]
    if return_sequences:
        expected = (steps, O) if unbatched else (batch, steps, O)
    else:
        expected = (O,) if unbatched else (batch, O)
    # One target per sequence may come as a plain vector (n,), as scikit-learn and
    # Keras users pass it; class indices come without their axis of 1 anywhere.
    squeezed = expected[:-1] if O == 1 else None
    one_per_sequence = classes is not None or (not return_sequences and not unbatched
                                               and O == 1)
    if one_per_sequence and array.shape == squeezed:
        array = array[..., None]
    if array.shape != expected:
        mode = "return_sequences=True" if return_sequences else "return_sequences=False"
        if classes is not None:
            raise ValueError(
                f"Y must hold class indices of shape {shape_text(squeezed)} (or "
                f"{shape_text(expected)}) for this model ({mode}, loss='cross_entropy'); "
                f"got {shape_text(array.shape)}")
        also = f" or {shape_text((batch,))}" if one_per_sequence else ""
        raise ValueError(
            f"Y must have shape {shape_text(expected)}{also} for this model ({mode}, "
            f"{about or f'output_size={O}'}); got {shape_text(array.shape)}"
        )
    if unbatched:
        array = array[None]
    if not return_sequences:
        array = array[:, None, :]
    if classes is not None and array.dtype.kind == "b":
        raise TypeError("Y must hold integer class indices for loss='cross_entropy'; got "
                        "booleans")
    converted = as_float_array("Y", array, dtype, finite=False)
    valid_mask = None
    if return_sequences and np.any(lengths != steps):
        valid_mask = np.arange(steps)[None, :] < lengths[:, None]
    valid = converted if valid_mask is None else converted[valid_mask]
    if not np.isfinite(valid).all():
        if np.isfinite(as_numeric_array("Y", array)).all():
            raise ValueError(f"Y has values too large for {np.dtype(dtype)}")
        raise ValueError("Y contains NaN or inf at a valid step; every target must be finite")
    if classes is not None:
        _check_classes(array if valid_mask is None else array[valid_mask], classes)
    return converted


def _check_classes(values: Array, classes: int) -> None:
    """ValueError unless every value is a whole number in [0, classes)."""
    if values.dtype.kind == "f":
        whole = values == np.round(values)
        if not whole.all():
            raise ValueError(
                f"Y must hold integer class indices for loss='cross_entropy'; got "
                f"{values[~whole][0].item()!r}")
    bad = (values < 0) | (values >= classes)
    if bad.any():
        raise ValueError(
            f"Y must hold class indices in [0, {classes}) (output_size is the number of "
            f"classes) for loss='cross_entropy'; got {values[bad][0].item()!r}")


def check_output_gradient(dY: Any, output_size: int, return_sequences: bool, batch: int,
                          steps: int, unbatched: bool, lengths: Array,
                          dtype: Any) -> FloatArray:
    """The gradient reaching a forward pass's outputs, as the kernels take it: (B, T, O),
    or (B, 1, O) for many-to-one. It must have the shape ``forward`` returns; values
    at padded steps are ignored (NaN too), valid ones must be finite."""
    O = output_size
    array = as_numeric_array("dY", dY)
    expected: tuple[int, ...]
    if return_sequences:
        expected = (steps, O) if unbatched else (batch, steps, O)
    else:
        expected = (O,) if unbatched else (batch, O)
    if array.shape != expected:
        mode = "return_sequences=True" if return_sequences else "return_sequences=False"
        raise ValueError(
            f"dY must have the shape of forward's output, {shape_text(expected)} for this "
            f"model ({mode}, output_size={O}); got {shape_text(array.shape)}"
        )
    if unbatched:
        array = array[None]
    if not return_sequences:
        array = array[:, None, :]
    converted = as_float_array("dY", array, dtype, finite=False)
    valid = converted
    if return_sequences and np.any(lengths != steps):
        valid = converted[np.arange(steps)[None, :] < lengths[:, None]]
    if not np.isfinite(valid).all():
        raise ValueError("dY contains NaN or inf (or values too large for "
                         f"{np.dtype(dtype)}) at a valid step; every value must be finite")
    return converted


def check_sequence_batch(X: Any, Y: Any, lengths: Any, input_size: int, target_size: int,
                         classes: int | None, about: str | None, return_sequences: bool,
                         dtype: Any, unbatched_message: str
                         ) -> tuple[FloatArray, FloatArray, Array]:
    """X (n, T, I), Y and lengths of a batch of sequences (as fit takes them), checked
    (``target_size``, ``classes`` and ``about`` as in check_targets); an unbatched X is a
    ValueError with ``unbatched_message``."""
    X, unbatched = check_sequences(X, input_size, dtype)
    if unbatched:
        raise ValueError(unbatched_message)
    n, steps, _ = X.shape
    lengths = check_sequence_lengths(lengths, n, steps, False)
    Y = check_targets(Y, target_size, classes, return_sequences, n, steps, False, lengths,
                      dtype, about)
    return X, Y, lengths


def check_feedback(feedback: Any, input_size: int, output_size: int) -> Array:
    """(O,) intp: the input column each output feeds, or -1 (see RNN.forecast)."""
    I, O = input_size, output_size
    if feedback is None:
        if O != I:
            raise ValueError(
                f"feedback must be given when output_size ({O}) differs from input_size "
                f"({I}): feedback[o] is the input column output o feeds, or -1"
            )
        return np.arange(O, dtype=np.intp)
    try:
        values = [-1 if c is None else c for c in feedback]
    except TypeError:
        raise TypeError(
            f"feedback must be a sequence of {O} input columns (int, or -1 / None for "
            f"an output that is not fed back); got {type(feedback).__name__} {feedback!r}"
        ) from None
    if len(values) != O:
        raise ValueError(f"feedback must have one entry per output ({O}); got {len(values)}")
    checked = [check_int(f"feedback[{o}]", c, -1, I - 1) for o, c in enumerate(values)]
    used = [c for c in checked if c >= 0]
    if len(used) != len(set(used)):
        raise ValueError(f"feedback feeds one input column from two outputs: {checked}")
    return np.array(checked, dtype=np.intp)


def check_future(future: Any, feedback: Array, input_size: int, batch: int, steps: int,
                 unbatched: bool, dtype: Any) -> FloatArray:
    """(B, steps - 1, I) future inputs of a forecast, fed-back columns zeroed.

    Without ``future``, every input column must be fed back (or steps be 1).
    """
    I = input_size
    fed = sorted(set(int(c) for c in feedback if c >= 0))
    exogenous = [c for c in range(I) if c not in fed]
    if future is None:
        if exogenous and steps > 1:
            raise ValueError(
                f"input columns {exogenous} are not fed back from the outputs; pass "
                f"future= with their values for the {steps - 1} steps after the history"
            )
        return np.zeros((batch, steps - 1, I), dtype=dtype)
    array = as_numeric_array("future", future)
    expected = (steps - 1, I) if unbatched else (batch, steps - 1, I)
    if array.shape != expected:
        raise ValueError(
            f"future must have shape {shape_text(expected)} (steps - 1 rows of "
            f"input_size columns); got {shape_text(array.shape)}"
        )
    if unbatched:
        array = array[None]
    values = as_float_array("future", array, dtype, finite=False)
    if not np.isfinite(values[:, :, exogenous]).all():
        raise ValueError(f"future contains NaN or inf in exogenous columns {exogenous}")
    values = values.copy()
    values[:, :, fed] = 0.0
    return values
