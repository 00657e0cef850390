"""Input checks shared by every public entry point.

Everything a user can get wrong is caught here, before a kernel is called, with a
ValueError or TypeError that names the argument, what was received and what was
expected. Kernels trust what passes.
"""

from numbers import Integral, Real

import numpy as np

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


def as_numeric_array(name, value):
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


def as_float_array(name, value, dtype, *, finite=True):
    """C-contiguous float copy-or-view of ``value`` in ``dtype``; finite unless told."""
    array = as_numeric_array(name, value)
    # asarray, not ascontiguousarray, which turns a 0-d array into shape (1,). Overflow
    # in the cast is reported below as a ValueError, so NumPy's warning is silenced.
    with np.errstate(over="ignore"):
        converted = np.asarray(array, dtype=dtype, order="C")
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


def check_lengths(lengths, batch, steps):
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
