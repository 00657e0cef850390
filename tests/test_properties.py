"""Property-based tests (Hypothesis): bad input never reaches a kernel unchecked.

For every public entry point, Hypothesis generates the arguments: shapes (with
empty batches and zero-size axes), dtypes (float16/32/64, long double, int, uint8,
bool, and the wrong ones: complex, object, str, datetime), layouts (C and Fortran
order, step slices, negative strides, transposed views, zero strides from
broadcasting, offset and read-only views, lists, ``np.matrix`` and masked arrays),
magnitudes (1e6, 1e30, 1e300, 1e-300, subnormals, a mix), NaN and inf, wrong
dimension counts and mismatched shapes. Each generated argument is either valid or
corrupted in one known way, so each case has an exact expected outcome:

* every argument valid: the call returns, on every backend, a result of exactly the
  documented shape and dtype; the two backends agree (``assert_close`` tolerances,
  NaN/inf at the same places; with 1e6 or larger inputs, at the scale of the terms
  of the sums rather than of the result, see ``gradient_term_scale``); the layout
  variant gives bit-for-bit the result of the same values passed as a C-contiguous
  array in the model's dtype; and every kernel call on the way meets the kernels'
  contract (``_CheckedKernels``: contiguity, dtype, every shape, lengths and
  feedback in range, no output sharing memory with the caller's arrays);
* some argument corrupted: the call raises ValueError or TypeError (exactly those
  types for the RNN methods) whose message names a corrupted argument, the same
  message on both backends, before any kernel module was even looked up;
* in both cases the caller's arrays are unchanged (``np.array_equal`` with
  ``equal_nan=True``, and dtype, shape, strides and flags), no warning was raised
  on the way (a ComplexWarning or a cast overflow would be a silent conversion),
  and a watchdog ends the process with a traceback if a call hangs.

A crash (segfault) kills pytest, which fails the run. The number of examples is
fixed by the ``ci`` profile (see ``_hypothesis_profiles``); ``-v`` prints how many
cases each test ran, split into valid and rejected.
"""

import contextlib
import copy
import faulthandler
import math
import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import event, note
from hypothesis import strategies as st
from hypothesis import given

import elman
from elman import _backend, _losses, optimizers
from elman.model_file import ModelFileError
from elman.preprocessing import StandardScaler, sliding_windows, train_val_test_split
from elman.rnn import INIT_SCHEMES
from elman.training import TrainingDivergedError

from _hypothesis_profiles import count, examples, print_report


# ----------------------------------------------------------------------------- backends
def _backends():
    """Backends this run tests, as conftest's ``backend`` fixture decides."""
    requested = os.environ.get("ELMAN_BACKEND", "").strip().lower()
    if requested == "numpy" or not elman.compiled_available():
        return ("numpy",)
    return ("cython", "numpy")


BACKENDS = _backends()

# Cross-backend tolerance after fit: a few optimizer steps amplify the kernels'
# last-bit differences (Adam divides by sqrt(v), which is small for small
# gradients). Measured on this suite's cases: 1e-16 (float64), 1.3e-5 (float32).
FIT_RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-3}

# A call that takes longer than this has hung: the watchdog ends the process with
# a traceback of every thread (a failing run, as a crash is).
HANG_SECONDS = 120


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request):
    yield
    print_report(request, "test_properties::")


@contextlib.contextmanager
def hang_guard(seconds=HANG_SECONDS):
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _arrays_in(values):
    """Every ndarray among ``values`` (looking into dicts, lists and tuples)."""
    found = []
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, np.ndarray):
            found.append(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(v for v in value if isinstance(v, (np.ndarray, dict, list, tuple)))
    return found


class KernelContractError(AssertionError):
    """A kernel was called with arguments outside its contract (_kernels_numpy)."""


def _expect(condition, message):
    if not condition:
        raise KernelContractError(message)


class _CheckedKernels:
    """A kernel module whose functions check the contract before running.

    The contract is the one documented in ``elman._kernels_numpy``: C-contiguous
    float arrays of one dtype and of the shapes the sizes imply, intp lengths in
    [1, T], feedback columns in [-1, I - 1], rows of ``order`` in [0, n); and, so
    that no kernel can write into the caller's data, outputs that share no memory
    with any array the caller passed in.
    """

    def __init__(self, module, protected):
        self.__name__ = module.__name__
        self._module = module
        self._protected = protected

    def __getattr__(self, name):
        function = getattr(self._module, name)
        check = getattr(self, "_check_" + name, None)
        if check is None:
            return function

        def checked(*args):
            check(*args)
            return function(*args)

        return checked

    # -- helpers -------------------------------------------------------------------
    def _floats(self, dtype, **arrays):
        for name, (array, shape) in arrays.items():
            _expect(isinstance(array, np.ndarray), f"{name} is {type(array).__name__}")
            _expect(array.dtype == dtype, f"{name} has dtype {array.dtype}, not {dtype}")
            _expect(array.flags.c_contiguous, f"{name} is not C-contiguous")
            _expect(array.shape == shape, f"{name} has shape {array.shape}, not {shape}")

    def _outputs(self, **arrays):
        for name, array in arrays.items():
            _expect(array.flags.writeable, f"output {name} is read-only")
            for caller in self._protected:
                _expect(not np.shares_memory(array, caller),
                        f"output {name} shares memory with an array of the caller")

    def _lengths(self, lengths, batch, steps, name="lengths"):
        _expect(lengths.dtype == np.intp and lengths.flags.c_contiguous,
                f"{name} is {lengths.dtype}, not contiguous intp")
        _expect(lengths.shape == (batch,), f"{name} has shape {lengths.shape}")
        _expect(batch == 0 or (lengths.min() >= 1 and lengths.max() <= steps),
                f"{name} outside [1, {steps}]")

    def _sizes(self, theta, I, H, O, L, activation=0):
        from elman._layout import ACTIVATIONS, parameter_count

        _expect(all(isinstance(v, int) and v >= 1 for v in (I, H, O, L)), "bad sizes")
        _expect(isinstance(activation, int) and 0 <= activation < len(ACTIVATIONS),
                f"activation {activation!r}")
        _expect(theta.dtype in (np.float32, np.float64), f"theta is {theta.dtype}")
        self._floats(theta.dtype, theta=(theta, (parameter_count(I, H, O, L),)))
        return theta.dtype

    # -- the kernels -----------------------------------------------------------------
    def _check_forward(self, theta, I, H, O, L, activation, many_to_many, X, h0, lengths,
                       Y_out, h_last):
        dtype = self._sizes(theta, I, H, O, L, activation)
        _expect(X.ndim == 3, "X is not 3-D")
        B, T = X.shape[:2]
        _expect(T >= 1, "empty time axis")
        self._floats(dtype, X=(X, (B, T, I)), h0=(h0, (L, B, H)),
                     Y_out=(Y_out, (B, T if many_to_many else 1, O)), h_last=(h_last, (L, B, H)))
        self._lengths(lengths, B, T)
        self._outputs(Y_out=Y_out, h_last=h_last)

    def _check_loss_and_grad(self, theta, I, H, O, L, activation, many_to_many, loss, X, Y,
                             h0, lengths, grad):
        dtype = self._sizes(theta, I, H, O, L, activation)
        _expect(X.ndim == 3 and X.shape[0] >= 1, "X is not a non-empty batch")
        B, T = X.shape[:2]
        W = self._targets(loss, O)
        self._floats(dtype, X=(X, (B, T, I)), Y=(Y, (B, T if many_to_many else 1, W)),
                     h0=(h0, (L, B, H)), grad=(grad, theta.shape))
        self._lengths(lengths, B, T)
        self._outputs(grad=grad)

    def _check_backward(self, theta, I, H, O, L, activation, many_to_many, X, h0, lengths,
                        dY, grad, dX, dh0, dh_last):
        dtype = self._sizes(theta, I, H, O, L, activation)
        _expect(X.ndim == 3 and X.shape[0] >= 1, "X is not a non-empty batch")
        B, T = X.shape[:2]
        self._floats(dtype, X=(X, (B, T, I)), dY=(dY, (B, T if many_to_many else 1, O)),
                     h0=(h0, (L, B, H)), grad=(grad, theta.shape), dX=(dX, (B, T, I)),
                     dh0=(dh0, (L, B, H)))
        if dh_last is not None:
            self._floats(dtype, dh_last=(dh_last, (L, B, H)))
            _expect(np.isfinite(dh_last).all(), "dh_last is not finite")
        self._lengths(lengths, B, T)
        self._outputs(grad=grad, dX=dX, dh0=dh0)

    def _check_step(self, theta, I, H, O, L, activation, x, h, y, h_next):
        dtype = self._sizes(theta, I, H, O, L, activation)
        self._floats(dtype, x=(x, (1, I)), h=(h, (L, H)), h_next=(h_next, (L, H)))
        _expect(y.shape in ((O,), (1, O)), f"y has shape {y.shape}")
        self._floats(dtype, y=(y, y.shape))
        _expect(np.isfinite(x).all() and np.isfinite(h).all(), "x or h is not finite")
        self._outputs(y=y, h_next=h_next)

    def _check_train_steps(self, theta, I, H, O, L, activation, many_to_many, loss, X, Y,
                           lengths, order, batch_size, optimizer, hyper, state, step_count,
                           clip_value, clip_norm, losses):
        dtype = self._sizes(theta, I, H, O, L, activation)
        n, T = X.shape[:2]
        W = self._targets(loss, O)
        self._floats(dtype, X=(X, (n, T, I)), Y=(Y, (n, T if many_to_many else 1, W)),
                     state=(state, (2, theta.shape[0])))
        self._lengths(lengths, n, T)
        _expect(order.dtype == np.intp and order.ndim == 1, "order is not 1-D intp")
        _expect(order.size == 0 or (order.min() >= 0 and order.max() < n), "order out of range")
        _expect(isinstance(batch_size, int) and batch_size >= 1, "batch_size < 1")
        _expect(hyper.dtype == np.float64 and hyper.shape == (5,), "hyper")
        _expect(step_count.dtype == np.int64 and step_count.shape == (1,), "step_count")
        _expect(losses.dtype == np.float64 and losses.ndim == 1
                and losses.shape[0] >= -(-order.size // batch_size), "losses too short")
        _expect(clip_value >= 0 and clip_norm >= 0, "negative clip")
        self._outputs(theta=theta, state=state, step_count=step_count, losses=losses)

    @staticmethod
    def _targets(loss, O):
        """The target width of a valid loss code for O outputs."""
        _expect(isinstance(loss, int) and 0 <= loss < len(_losses.LOSSES), f"loss {loss!r}")
        _expect(_losses.target_width(loss, O) >= 1, "no targets for this output size")
        return _losses.target_width(loss, O)

    def _check_forecast(self, theta, I, H, O, L, activation, X, h0, feedback, future, Y_out,
                        h_last):
        dtype = self._sizes(theta, I, H, O, L, activation)
        B, T = X.shape[:2]
        _expect(T >= 1, "empty history")
        S = Y_out.shape[1]
        self._floats(dtype, X=(X, (B, T, I)), h0=(h0, (L, B, H)),
                     future=(future, (B, S - 1, I)), Y_out=(Y_out, (B, S, O)),
                     h_last=(h_last, (L, B, H)))
        _expect(feedback.dtype == np.intp and feedback.shape == (O,), "feedback")
        _expect(O == 0 or (feedback.min() >= -1 and feedback.max() <= I - 1),
                "feedback column out of range")
        self._outputs(Y_out=Y_out, h_last=h_last)

    def _check_recurrence_forward(self, activation, P, Whh, h0, lengths, Hs):
        T, B, H = P.shape
        self._floats(P.dtype, P=(P, (T, B, H)), Whh=(Whh, (H, H)), h0=(h0, (B, H)),
                     Hs=(Hs, (T, B, H)))
        self._lengths(lengths, B, T)
        self._outputs(Hs=Hs)

    def _check_recurrence_backward(self, activation, dH, Hs, Whh, lengths, start, carry, dA):
        K, B, H = dH.shape
        self._floats(dH.dtype, dH=(dH, (K, B, H)), Hs=(Hs, (K, B, H)), Whh=(Whh, (H, H)),
                     carry=(carry, (B, H)), dA=(dA, (K, B, H)))
        _expect(isinstance(start, int) and start >= 0, f"start {start!r}")
        # The block does not know the sequence's full time, only that lengths >= 1.
        self._lengths(lengths, B, np.iinfo(np.intp).max)
        self._outputs(carry=carry, dA=dA)


class KernelSpy:
    """Counts look-ups of a kernel module (every kernel call starts with one) and
    hands out modules whose functions check their contract (``_CheckedKernels``)."""

    def __init__(self, protected=()):
        self.calls = 0
        self.protected = _arrays_in(protected)

    @contextlib.contextmanager
    def watching(self):
        original = _backend.get_kernels

        def spy(name=None):
            self.calls += 1
            return _CheckedKernels(original(name), self.protected)

        _backend.get_kernels = spy
        try:
            yield self
        finally:
            _backend.get_kernels = original


# --------------------------------------------------------------------- arguments
class Arg:
    """One generated argument: what is passed, and what it means.

    ``canonical`` is what the callee should compute with (the same values as a
    C-contiguous array of its dtype), or None for corrupted and non-array
    arguments; ``bad`` says how it was corrupted (None: valid).
    """

    magnitude = "normal"

    def __init__(self, name, value, canonical=None, bad=None, info=""):
        self.name = name
        self.value = value
        self.canonical = canonical
        self.bad = bad
        self.info = info

    def __repr__(self):
        kind = f"bad={self.bad}" if self.bad else "valid"
        return f"<{self.name} {kind} {self.info}>"


def snapshot(value):
    """A deep copy to compare with afterwards (arrays keep type, dtype and flags)."""
    if isinstance(value, np.ndarray):
        return (type(value), value.dtype, value.shape, value.strides,
                value.flags.writeable, np.array(value, copy=True, subok=False))
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    return ("py", copy.deepcopy(value), repr(value))


def unchanged(value, saved):
    if isinstance(value, np.ndarray):
        kind, dtype, shape, strides, writeable, data = saved
        if (type(value), value.dtype, value.shape, value.strides,
                value.flags.writeable) != (kind, dtype, shape, strides, writeable):
            return False
        current = np.array(value, copy=True, subok=False)
        if dtype.kind in "fc":
            return np.array_equal(current, data, equal_nan=True)
        if dtype.kind in "biuM":
            return np.array_equal(current, data)
        return repr(current.tolist()) == repr(data.tolist())
    if isinstance(value, dict):
        return (isinstance(saved, dict) and set(value) == set(saved)
                and all(unchanged(value[k], saved[k]) for k in value))
    return repr(value) == saved[2]


def assert_unchanged(args):
    for arg in args:
        saved = arg._snapshot
        assert unchanged(arg.value, saved), f"{arg.name} was modified by the call"


def take_snapshots(args):
    for arg in args:
        arg._snapshot = snapshot(arg.value)


# The message must name the argument: word-boundary patterns per argument name.
def names_argument(message, names):
    for name in names:
        pattern = re.escape(name)
        if name == "X":
            pattern = r"(?<![A-Za-z_])(X|history)(?![A-Za-z_])"
        if re.search(rf"(?<![A-Za-z0-9_]){pattern}(?![A-Za-z0-9_])", message):
            return True
    return False


# ------------------------------------------------------------------ value strategies
MAGNITUDES = ["normal", "normal", "normal", "int", "large", "huge", "tiny", "subnormal",
              "mixed", "zeros"]


def draw_values(draw, shape, *, model_dtype=np.float64, magnitudes=MAGNITUDES):
    """float64 (or integral) values of ``shape`` and a label for their magnitude."""
    seed = draw(st.integers(0, 2**32 - 1))
    magnitude = draw(st.sampled_from(magnitudes))
    rng = np.random.default_rng(seed)
    huge = 1e300 if np.dtype(model_dtype) == np.float64 else 1e30
    if magnitude == "int":
        values = rng.integers(-2, 3, size=shape).astype(np.float64)
    elif magnitude == "zeros":
        values = np.zeros(shape)
    else:
        values = rng.normal(size=shape)
        scale = {"normal": 1.0, "large": 1e6, "huge": huge, "tiny": 1e-300,
                 "subnormal": 1e-310, "mixed": 1.0}[magnitude]
        values = values * scale
        if magnitude == "mixed" and values.size:
            specials = np.array([huge, -huge, 1e6, 1e-300, -5e-324, 0.0, -0.0])
            picks = rng.random(shape) < 0.3
            values[picks] = rng.choice(specials, size=int(picks.sum()))
    return np.asarray(values, dtype=np.float64), magnitude


INT_DTYPES = [np.int64, np.int32, np.int8, np.uint8, np.int16, np.uint64]


def draw_dtype(draw, values):
    """A real dtype that represents ``values`` exactly enough to be accepted."""
    choices = [np.float64, np.float64]
    finite = values[np.isfinite(values)]
    biggest = float(np.max(np.abs(finite))) if finite.size else 0.0
    integral = bool(np.all(finite == np.round(finite)))
    if biggest < 3e38:
        choices.append(np.float32)
    if biggest < 6e4:
        choices.append(np.float16)
    choices.append(np.longdouble)
    if integral and finite.size == values.size:
        for dtype in INT_DTYPES:
            info = np.iinfo(dtype)
            if finite.size == 0 or (finite.min() >= info.min and biggest <= info.max):
                choices.append(dtype)
        if finite.size == 0 or set(np.unique(finite)) <= {0.0, 1.0}:
            choices.append(np.bool_)
    return np.dtype(draw(st.sampled_from(choices)))


LAYOUTS = ["C", "C", "F", "step", "negative", "transposed", "offset", "readonly",
           "list", "tuple", "broadcast", "masked", "matrix"]


def draw_layout(draw, typed):
    """``typed`` (an array) in some memory layout or container; returns (value, label)."""
    layout = draw(st.sampled_from(LAYOUTS))
    shape = typed.shape
    if layout == "F":
        return np.asarray(typed, order="F"), layout  # (asfortranarray makes 0-d 1-d)
    if layout == "step" and typed.ndim:
        axis = draw(st.integers(0, typed.ndim - 1))
        step = draw(st.integers(2, 3))
        big_shape = list(shape)
        big_shape[axis] = shape[axis] * step
        big = np.zeros(big_shape, dtype=typed.dtype)
        index = [slice(None)] * typed.ndim
        index[axis] = slice(None, None, step)
        big[tuple(index)] = typed
        return big[tuple(index)], layout
    if layout == "negative" and typed.ndim:
        axis = draw(st.integers(0, typed.ndim - 1))
        flipped = np.ascontiguousarray(np.flip(typed, axis))
        return np.flip(flipped, axis), layout
    if layout == "transposed" and typed.ndim >= 2:
        order = tuple(draw(st.permutations(range(typed.ndim))))
        stored = np.ascontiguousarray(np.transpose(typed, order))
        return np.transpose(stored, np.argsort(order)), layout
    if layout == "offset":
        flat = np.zeros(typed.size + 1, dtype=typed.dtype)
        flat[1:] = typed.reshape(-1)
        return flat[1:].reshape(shape), layout
    if layout == "readonly":
        value = typed.copy()
        value.flags.writeable = False
        return value, layout
    if layout == "list" and (typed.size or typed.ndim <= 1):
        # (An empty nested list would lose the inner axes: [] for shape (0, 3).)
        return typed.tolist(), layout
    if layout == "tuple" and typed.ndim == 1:
        return tuple(typed.tolist()), layout
    if layout == "broadcast" and typed.ndim and shape[0] > 0:
        # Zero stride on axis 0: the values become those of the first row repeated.
        return np.broadcast_to(typed[:1], shape), layout
    if layout == "masked":
        return np.ma.masked_array(typed, mask=False), layout
    if layout == "matrix" and typed.ndim == 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return np.asmatrix(typed), layout
    return np.asarray(typed, order="C"), "C"  # not ascontiguousarray: 0-d stays 0-d


def real_arg(draw, name, shape, model_dtype, *, magnitudes=MAGNITUDES, canonical_dtype=None,
             values=None):
    """A valid real-number array argument of ``shape`` (dtypes and layouts vary)."""
    if values is None:
        values, magnitude = draw_values(draw, shape, model_dtype=model_dtype,
                                        magnitudes=magnitudes)
    else:
        magnitude = "given"
    dtype = draw_dtype(draw, values)
    with np.errstate(all="ignore"):
        typed = values.astype(dtype)
    value, layout = draw_layout(draw, typed)
    as_array = np.array(np.asarray(value), subok=False)
    canonical_dtype = model_dtype if canonical_dtype is None else canonical_dtype
    with np.errstate(all="ignore"):
        canonical = np.asarray(as_array.astype(canonical_dtype), order="C")
    arg = Arg(name, value, canonical, None, f"{dtype.name} {layout} {magnitude} {shape}")
    arg.magnitude = magnitude
    return arg


CORRUPTIONS = ["complex", "object", "str", "datetime", "ragged", "ndim", "axis", "nonfinite",
               "overflow", "none", "scalar"]


def corrupt_arg(draw, name, shape, model_dtype, *, kinds=CORRUPTIONS, free_axes=(),
                bad_ndims=None):
    """An invalid version of an array argument that should be ``shape``.

    ``free_axes``: axes whose length may vary without being wrong (X's batch and
    time); ``bad_ndims``: dimension counts that are wrong for this argument.
    Returns None when no corruption of the drawn kind applies.
    """
    kind = draw(st.sampled_from(kinds))
    values, _ = draw_values(draw, shape, model_dtype=model_dtype,
                            magnitudes=["normal", "int"])
    size = int(np.prod(shape))
    if kind == "complex":
        return Arg(name, values + 1j, bad=kind)
    if kind == "object":
        return Arg(name, values.astype(object), bad=kind)
    if kind == "str":
        return Arg(name, values.astype(str), bad=kind)
    if kind == "datetime":
        return Arg(name, values.astype(np.int64).astype("datetime64[s]"), bad=kind)
    if kind == "ragged" and len(shape) >= 2 and shape[0] >= 2 and shape[1] >= 1:
        nested = values.tolist()
        nested[0] = nested[0] + [nested[0][0]]
        return Arg(name, nested, bad=kind)
    if kind == "ndim":
        ndims = bad_ndims if bad_ndims is not None else [n for n in range(5)
                                                          if n != len(shape)]
        ndim = draw(st.sampled_from(ndims))
        new_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
        return Arg(name, np.zeros(new_shape), bad=kind, info=str(new_shape))
    if kind == "axis" and len(shape) > len(free_axes):
        axis = draw(st.sampled_from([a for a in range(len(shape)) if a not in free_axes]))
        new_length = draw(st.sampled_from([0, shape[axis] + 1, shape[axis] + 2,
                                           max(0, shape[axis] - 1)]))
        if new_length == shape[axis]:
            new_length = shape[axis] + 1
        new_shape = list(shape)
        new_shape[axis] = new_length
        return Arg(name, np.zeros(new_shape), bad=kind, info=str(tuple(new_shape)))
    if kind == "nonfinite" and size:
        position = draw(st.integers(0, size - 1))
        special = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        values = values.reshape(-1).copy()
        values[position] = special
        return Arg(name, values.reshape(shape), bad=kind, info=f"flat {position}")
    if kind == "overflow" and size and np.dtype(model_dtype) == np.float32:
        position = draw(st.integers(0, size - 1))
        values = values.reshape(-1).copy()
        values[position] = draw(st.sampled_from([1e39, -1e300, 3.5e38]))
        return Arg(name, values.reshape(shape), bad=kind)
    if kind == "none":
        return Arg(name, None, bad=kind)
    if kind == "scalar" and len(shape) != 0:
        return Arg(name, 1.5, bad=kind)
    return None


def chance(draw, percent):
    """True with about ``percent``% probability; False is the simplest draw, so that
    Hypothesis's many minimal examples (and its shrinking) lean towards valid input."""
    return draw(st.integers(0, 99)) >= 100 - percent


def maybe_corrupt(draw, name, shape, model_dtype, valid_factory, *, rate=10, **kwargs):
    """A corrupted argument with probability ``rate`` percent, else ``valid_factory()``."""
    if chance(draw, rate):
        arg = corrupt_arg(draw, name, shape, model_dtype, **kwargs)
        if arg is not None:
            return arg
    return valid_factory()


# --------------------------------------------------------------------- models
@st.composite
def model_configs(draw):
    return dict(
        input_size=draw(st.integers(1, 4)),
        # 70 hidden units with 14+ sequences take the compiled backend's GEMM path.
        hidden_size=draw(st.sampled_from([1, 2, 3, 5, 8, 70])),
        output_size=draw(st.integers(1, 3)),
        num_layers=draw(st.integers(1, 3)),
        return_sequences=draw(st.booleans()),
        dtype=draw(st.sampled_from(["float64", "float32"])),
        init=draw(st.sampled_from(INIT_SCHEMES)),
        seed=draw(st.integers(0, 2**16)),
    )


def make_model(config):
    return elman.RNN(config["input_size"], config["hidden_size"], config["output_size"],
                     num_layers=config["num_layers"],
                     return_sequences=config["return_sequences"], dtype=config["dtype"],
                     init=config["init"], seed=config["seed"])


def draw_batch_time(draw, hidden):
    # (sampled_from shrinks towards its first element: a typical shape, not an edge.)
    batch = draw(st.sampled_from([3, 1, 2, 0, 4, 5, 14, 1] if hidden >= 64
                                 else [3, 1, 2, 0, 4, 5, 9, 1]))
    steps = draw(st.sampled_from([4, 1, 2, 3, 5, 7, 12, 1]))
    return batch, steps


# ---- the arguments of forward / loss_and_grad / predict / forecast / fit -----------------
def draw_X(draw, config, batch, steps, unbatched, *, rate=10):
    I, dtype = config["input_size"], config["dtype"]
    shape = (steps, I) if unbatched else (batch, steps, I)
    free = (0,) if unbatched else (0, 1)
    # Wrong dimension counts: anything but 2 and 3.
    arg = maybe_corrupt(draw, "X", shape, dtype, lambda: real_arg(draw, "X", shape, dtype),
                        rate=rate, free_axes=free, bad_ndims=[0, 1, 4])
    if arg.bad is None and chance(draw, 3):
        # An empty time axis is wrong too.
        empty = (0, I) if unbatched else (batch, 0, I)
        arg = Arg("X", np.zeros(empty), bad="empty-time")
    return arg


def draw_h0(draw, config, batch, unbatched):
    L, H, dtype = config["num_layers"], config["hidden_size"], config["dtype"]
    if chance(draw, 40):
        return Arg("h0", None, np.zeros((L, 1 if unbatched else batch, H), dtype=dtype))
    shape = (L, H) if unbatched else (L, batch, H)
    kinds = [k for k in CORRUPTIONS if k != "none"]
    arg = maybe_corrupt(draw, "h0", shape, dtype, lambda: real_arg(draw, "h0", shape, dtype),
                        kinds=kinds)
    if arg.bad is None and unbatched:
        arg.canonical = arg.canonical[:, None, :]
    return arg


def draw_lengths(draw, batch, steps, unbatched):
    """Valid steps per sequence, or a corrupted version; canonical is (batch,) intp."""
    n = 1 if unbatched else batch
    if chance(draw, 45):
        return Arg("lengths", None, np.full(n, steps, dtype=np.intp))
    if chance(draw, 10):
        kind = draw(st.sampled_from(["zero", "long", "negative", "fraction", "nan", "bool",
                                     "str", "shape", "complex", "object"]))
        if kind in ("zero", "long", "negative", "fraction", "nan", "bool") and n == 0:
            kind = "shape"
        base = np.full(n, steps, dtype=np.float64)
        if kind == "shape":
            if unbatched:
                value = np.full(draw(st.sampled_from([0, 2, 3])), steps)
            else:
                value = np.full(draw(st.sampled_from([(n + 1,), (n, 1), (1, n), ()])), steps)
            return Arg("lengths", value, bad=kind)
        special = {"zero": 0, "long": steps + 1, "negative": -1, "fraction": 1.5,
                   "nan": np.nan}.get(kind)
        if special is not None:
            base[draw(st.integers(0, n - 1))] = special
            value = base if kind in ("fraction", "nan") else base.astype(np.int64)
        elif kind == "bool":
            value = np.ones(n, dtype=bool)
        elif kind == "str":
            value = base.astype(int).astype(str)
        elif kind == "complex":
            value = base + 0j
        else:
            value = base.astype(object)
        return Arg("lengths", value, bad=kind)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.integers(1, steps + 1, size=n)
    if n:
        values[draw(st.integers(0, n - 1))] = steps if draw(st.booleans()) else values[0]
    canonical = values.astype(np.intp)
    form = draw(st.sampled_from(["intp", "int32", "int8", "uint8", "uint64", "float",
                                 "float32", "list", "strided", "scalar"]))
    if form == "scalar" and unbatched:
        value = int(values[0])
    elif form == "list":
        value = values.tolist()
    elif form == "strided":
        value = np.repeat(values, 2)[::2]
    elif form in ("int8", "uint8") and steps > 120:
        value = values.astype(np.int64)
    else:
        value = values.astype({"intp": np.intp, "int32": np.int32, "int8": np.int8,
                               "uint8": np.uint8, "uint64": np.uint64, "float": np.float64,
                               "float32": np.float32, "scalar": np.int64}[form])
    return Arg("lengths", value, canonical, info=form)


def draw_Y(draw, config, batch, steps, unbatched, lengths):
    O, dtype, rs = config["output_size"], config["dtype"], config["return_sequences"]
    if rs:
        shape = (steps, O) if unbatched else (batch, steps, O)
    else:
        shape = (O,) if unbatched else (batch, O)
    arg = maybe_corrupt(draw, "Y", shape, dtype, lambda: real_arg(draw, "Y", shape, dtype),
                        kinds=[k for k in CORRUPTIONS if k != "nonfinite"])
    if arg.bad is None and lengths.canonical is not None and rs and batch > 0:
        # NaN or inf at a step: valid when the step is padding, wrong otherwise.
        if chance(draw, 10):
            values = np.array(np.asarray(arg.value), dtype=np.float64, subok=False)
            full = values if not unbatched else values[None]
            b = draw(st.integers(0, full.shape[0] - 1))
            t = draw(st.integers(0, steps - 1))
            o = draw(st.integers(0, O - 1))
            full = full.copy()
            full[b, t, o] = draw(st.sampled_from([np.nan, np.inf]))
            value = full[0] if unbatched else full
            if t >= lengths.canonical[b]:
                canonical = np.asarray(value.astype(dtype), order="C")
                return Arg("Y", value, canonical, info="non-finite at a padded step")
            return Arg("Y", value, bad="nonfinite-valid-step")
    elif arg.bad is None and chance(draw, 4) and int(np.prod(shape)):
        values = np.array(np.asarray(arg.value), dtype=np.float64, subok=False).copy()
        values.reshape(-1)[0] = np.nan
        if rs:
            return Arg("Y", values, bad="nonfinite-valid-step")
        return Arg("Y", values, bad="nonfinite")
    if arg.bad is None and unbatched:
        arg.canonical = arg.canonical[None]
    if arg.bad is None and not rs:
        arg.canonical = arg.canonical[:, None, :]
    return arg


def call_outcome(call, protected=()):
    """('ok', result) or ('error', exception), for one backend.

    ``protected``: the caller's arguments; no kernel output may share their memory.
    """
    spy = KernelSpy(protected)
    with spy.watching(), hang_guard(), warnings.catch_warnings():
        # A warning on the way (ComplexWarning, a cast that overflows) would mean a
        # silent conversion of the caller's data. Overflow inside the arithmetic of
        # valid extreme inputs (a 1e300 target times a 1e300 state) is not about the
        # input: NumPy reports it where compiled code cannot, so it is let through.
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning,
                                message="(overflow|invalid value) encountered in "
                                        "(matmul|multiply|add|subtract|square|dot|"
                                        "reduce|tanh)")
        try:
            return "ok", call(), spy.calls
        except KernelContractError:
            raise  # never an acceptable outcome
        except Exception as exc:  # classified by the caller
            return "error", exc, spy.calls


def check_rejected(outcomes, bad_args, *, exact_types=True, kernels_may_run=False):
    """Every backend raised ValueError/TypeError naming one of ``bad_args``, alike."""
    names = [a.name for a in bad_args]
    event("rejected: " + ", ".join(sorted({f"{a.name} {a.bad}" for a in bad_args})))
    messages = set()
    for backend, (status, result, kernel_calls) in outcomes.items():
        assert status == "error", (
            f"[{backend}] accepted corrupted {bad_args}; returned {type(result).__name__}")
        if exact_types:
            assert type(result) in (ValueError, TypeError), (
                f"[{backend}] {bad_args}: {type(result).__name__}: {result}")
        else:
            assert isinstance(result, (ValueError, TypeError)), (
                f"[{backend}] {bad_args}: {type(result).__name__}: {result}")
        assert names_argument(str(result), names), (
            f"[{backend}] the message does not name {names}: {result!r}")
        if not kernels_may_run:
            assert kernel_calls == 0, f"[{backend}] a kernel was reached with {bad_args}"
        messages.add((type(result), str(result)))
    assert len(messages) == 1, f"backends disagree on the error: {messages}"


def check_accepted(outcomes, args):
    for backend, (status, result, _) in outcomes.items():
        if status == "error":
            raise AssertionError(
                f"[{backend}] valid arguments {args} were rejected: "
                f"{type(result).__name__}: {result}") from result


def assert_agree(actual, expected, dtype, assert_close, what, rtol=None, scale=0.0):
    """Same shape and dtype, NaN/inf at the same places, finite values close.

    Close means ``max|actual - expected| <= rtol * max(1, max|expected|, scale)``:
    ``scale`` is for sums whose terms are far larger than the result (see
    ``gradient_term_scale``).
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    finite_a, finite_e = np.isfinite(actual), np.isfinite(expected)
    assert np.array_equal(finite_a, finite_e), f"{what}: non-finite values at other places"
    assert np.array_equal(actual[~finite_a], expected[~finite_e], equal_nan=True), (
        f"{what}: different non-finite values")
    if not np.isfinite(scale):
        return  # terms overflow: no digit of a finite result is determined
    a, e = actual[finite_a].astype(np.float64), expected[finite_e].astype(np.float64)
    if scale > max(1.0, float(np.max(np.abs(e), initial=0.0))):
        rtol = RTOL[np.dtype(dtype)] if rtol is None else rtol
        error = float(np.max(np.abs(a - e), initial=0.0))
        assert error <= rtol * scale, (
            f"{what}: max |difference| {error:.3g} > {rtol:g} * term scale {scale:.3g}")
        return
    assert_close(actual[finite_a], expected[finite_e], dtype, rtol=rtol, what=what)


RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}  # as conftest's
EXTREME = ("large", "huge", "mixed")


def gradient_term_scale(model, X, Y, h0, lengths):
    """How large the terms of the gradient sums can be, for extreme inputs.

    Each gradient entry is a sum over sequences and steps of products such as
    dL/da * x. With inputs of 1e6 or 1e300 those terms are huge while the sum may
    cancel to something small, and tanh near saturation (1 - h**2 at h = 1 - 1e-16)
    makes dL/da differ by an ulp of 1 between the backends' tanh. The backends'
    results then differ by eps times the terms, not eps times the result:
    max|dL/dy| * max|layer input| * (valid steps), with max|dL/dy| bounded by
    2 * (max|Y| + max|y_hat|) / count and |y_hat| <= sum_j |Why[o, j]| + |by[o]|.
    """
    weights = model.get_weights()
    y_hat = float(np.max(np.abs(weights["Why"]).sum(axis=1) + np.abs(weights["by"])))
    Y = np.asarray(Y, dtype=np.float64)
    if model.return_sequences:
        valid = np.arange(Y.shape[1])[None, :] < lengths[:, None]
        Y = Y[valid]
    count = max(1, Y.size)
    with np.errstate(over="ignore"):
        d_y = 2.0 * (float(np.max(np.abs(Y), initial=0.0)) + y_hat) / count
        inputs = max(1.0, float(np.max(np.abs(X), initial=0.0)),
                     float(np.max(np.abs(h0), initial=0.0)))
        return d_y * inputs * float(lengths.sum()) * model.output_size


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def forward_term_scale(model, *inputs):
    """How far rounding can move outputs when inputs are extreme (1e6, 1e300).

    A pre-activation sum_k W[j, k] x[k] with terms of 1e6 that cancels into tanh's
    linear range carries a rounding error of eps times its terms, which tanh passes
    on (slope <= 1) and each layer and the head multiply by their row sums. A
    first-order bound: max|input| * (row-sum gain of a layer)**L * (head's row sum).
    Rare (the cancellation must land within a few units of zero), but real.
    """
    weights = model.get_weights()
    gain = 1.0
    for layer in range(model.num_layers):
        rows = (np.abs(weights[f"layers.{layer}.Wxh"]).sum(axis=1)
                + np.abs(weights[f"layers.{layer}.Whh"]).sum(axis=1))
        gain *= max(1.0, float(rows.max()))
    head = float(np.max(np.abs(weights["Why"]).sum(axis=1))) + 1.0
    largest = max([1.0] + [float(np.max(np.abs(np.asarray(x, dtype=np.float64)), initial=0.0))
                           for x in inputs if x is not None])
    with np.errstate(over="ignore"):
        return largest * gain * head


def extreme_scale(model, args):
    """forward_term_scale when some argument has extreme magnitudes, else 0."""
    if not {arg.magnitude for arg in args} & set(EXTREME):
        return 0.0
    event("compared at the terms' scale (extreme inputs)")
    return forward_term_scale(model, *[arg.canonical for arg in args])


def bad(args):
    return [a for a in args if a.bad is not None]


# =============================================================================
# forward
# =============================================================================
@examples(200)
@given(data=st.data())
def test_forward(data, assert_close):
    draw = data.draw
    config = draw(model_configs())
    batch, steps = draw_batch_time(draw, config["hidden_size"])
    unbatched = chance(draw, 20)
    X = draw_X(draw, config, batch, steps, unbatched)
    h0 = draw_h0(draw, config, batch, unbatched)
    lengths = draw_lengths(draw, batch, steps, unbatched)
    return_state = draw(st.booleans())
    args = [X, h0, lengths]
    note(f"config={config} batch={batch} steps={steps} unbatched={unbatched} args={args}")
    take_snapshots(args)
    model = make_model(config)

    def call(x=X.value, h=h0.value, n=lengths.value):
        return model.forward(x, h, return_state=return_state, lengths=n)

    outcomes = {b: _on(b, call, [a.value for a in args]) for b in BACKENDS}
    assert_unchanged(args)
    if bad(args):
        check_rejected(outcomes, bad(args))
        count("test_properties::test_forward", "rejected")
        return
    check_accepted(outcomes, args)
    count("test_properties::test_forward", "valid")
    event(f"forward valid: magnitude {X.info.split()[2]}")
    L, H, O = config["num_layers"], config["hidden_size"], config["output_size"]
    rs, dtype = config["return_sequences"], np.dtype(config["dtype"])
    b = 1 if unbatched else X.canonical.shape[0]
    y_shape = (b, steps, O) if rs else (b, O)
    h_shape = (L, b, H)
    if unbatched:
        y_shape, h_shape = y_shape[1:], (L, H)
    canonical_lengths = lengths.canonical
    results = {}
    for backend, (_, result, _) in outcomes.items():
        y, h = result if return_state else (result, None)
        assert isinstance(y, np.ndarray) and type(y) is np.ndarray
        assert y.shape == y_shape and y.dtype == dtype, (backend, y.shape, y.dtype)
        if return_state:
            assert h.shape == h_shape and h.dtype == dtype, (backend, h.shape)
        # The same values as a plain C-contiguous array give the same bits.
        x_c = X.canonical
        h_c = None if h0.value is None else (h0.canonical[:, 0] if unbatched else h0.canonical)
        n_c = None if lengths.value is None else (canonical_lengths if not unbatched
                                                  else canonical_lengths[:1])
        _, reference, _ = _on(backend, lambda: model.forward(
            x_c, h_c, return_state=True, lengths=n_c))
        ref_y, ref_h = reference
        assert same_bits(y, ref_y), f"[{backend}] layout {X.info} changed the result"
        if return_state:
            assert same_bits(h, ref_h), f"[{backend}] layout changed the final state"
        if rs and b:
            padded = np.arange(steps)[None, :] >= canonical_lengths[:, None]
            full = ref_y if not unbatched else ref_y[None]
            assert np.all(full[padded] == 0), "outputs at padded steps must be zero"
        results[backend] = (ref_y, ref_h)
    if len(results) == 2:
        (yc, hc), (yn, hn) = results["cython"], results["numpy"]
        scale = extreme_scale(model, [X, h0])
        assert_agree(yc, yn, dtype, assert_close, "forward Y", scale=scale)
        assert_agree(hc, hn, dtype, assert_close, "forward h_last", scale=scale)


def _on(backend, call, protected=()):
    with elman.use_backend(backend):
        return call_outcome(call, protected)


# =============================================================================
# loss_and_grad
# =============================================================================
@examples(200)
@given(data=st.data())
def test_loss_and_grad(data, assert_close):
    draw = data.draw
    config = draw(model_configs())
    batch, steps = draw_batch_time(draw, config["hidden_size"])
    unbatched = chance(draw, 20)
    X = draw_X(draw, config, batch, steps, unbatched)
    if X.bad is None and not unbatched and batch == 0:
        X.bad = "empty-batch"  # the loss of no sequences is undefined
    lengths = draw_lengths(draw, batch, steps, unbatched)
    Y = draw_Y(draw, config, batch, steps, unbatched, lengths)
    h0 = draw_h0(draw, config, batch, unbatched)
    args = [X, Y, h0, lengths]
    note(f"config={config} batch={batch} steps={steps} unbatched={unbatched} args={args}")
    take_snapshots(args)
    model = make_model(config)
    outcomes = {b: _on(b, lambda: model.loss_and_grad(X.value, Y.value, h0.value,
                                                       lengths=lengths.value),
                       [a.value for a in args])
                for b in BACKENDS}
    assert_unchanged(args)
    if bad(args):
        check_rejected(outcomes, bad(args))
        count("test_properties::test_loss_and_grad", "rejected")
        return
    check_accepted(outcomes, args)
    count("test_properties::test_loss_and_grad", "valid")
    dtype = np.dtype(config["dtype"])
    shapes = {k: v.shape for k, v in model.get_weights().items()}
    x_c = X.canonical
    y_c = Y.canonical.reshape(np.shape(Y.value)) if Y.value is not None else None
    h_c = None if h0.value is None else (h0.canonical[:, 0] if unbatched else h0.canonical)
    n_c = None if lengths.value is None else (lengths.canonical[:1] if unbatched
                                              else lengths.canonical)
    results = {}
    for backend, (_, (loss, grads), _) in outcomes.items():
        assert isinstance(loss, float), type(loss)
        assert set(grads) == set(shapes)
        for name, grad in grads.items():
            assert grad.shape == shapes[name] and grad.dtype == dtype, (backend, name)
        _, (ref_loss, ref_grads), _ = _on(backend, lambda: model.loss_and_grad(
            x_c, y_c, h_c, lengths=n_c))
        assert same_bits(loss, ref_loss), f"[{backend}] layout changed the loss"
        for name in shapes:
            assert same_bits(grads[name], ref_grads[name]), f"[{backend}] layout: {name}"
        results[backend] = (loss, grads)
    if len(results) == 2:
        (lc, gc), (ln, gn) = results["cython"], results["numpy"]
        assert_agree(np.float64(lc), np.float64(ln), dtype, assert_close, "loss")
        scale = 0.0
        if {X.magnitude, Y.magnitude, h0.magnitude} & set(EXTREME):
            event("loss_and_grad: compared at the gradient terms' scale")
            b = 1 if unbatched else batch
            scale = gradient_term_scale(
                model, X.canonical, np.reshape(Y.canonical, (b, -1, config["output_size"])),
                h0.canonical, lengths.canonical)
        for name in shapes:
            assert_agree(gc[name], gn[name], dtype, assert_close, f"grad {name}", scale=scale)


# =============================================================================
# predict
# =============================================================================
@examples(120)
@given(data=st.data())
def test_predict(data, assert_close):
    draw = data.draw
    config = draw(model_configs())
    batch, steps = draw_batch_time(draw, config["hidden_size"])
    unbatched = chance(draw, 15)
    X = draw_X(draw, config, batch, steps, unbatched)
    lengths = draw_lengths(draw, batch, steps, unbatched)
    if chance(draw, 12):
        value = draw(st.sampled_from([0, -1, 2.0, "3", True, None, np.float64(2)]))
        batch_size = Arg("batch_size", value, bad="scalar")
    else:
        batch_size = Arg("batch_size", draw(st.sampled_from([1, 2, 3, 4096, np.int32(2)])))
    args = [X, lengths, batch_size]
    note(f"config={config} batch={batch} steps={steps} unbatched={unbatched} args={args}")
    take_snapshots(args)
    model = make_model(config)
    outcomes = {b: _on(b, lambda: model.predict(X.value, batch_size=batch_size.value,
                                                 lengths=lengths.value),
                       [a.value for a in args])
                for b in BACKENDS}
    assert_unchanged(args)
    if bad(args):
        check_rejected(outcomes, bad(args))
        count("test_properties::test_predict", "rejected")
        return
    check_accepted(outcomes, args)
    count("test_properties::test_predict", "valid")
    dtype = np.dtype(config["dtype"])
    O, rs = config["output_size"], config["return_sequences"]
    b = 1 if unbatched else X.canonical.shape[0]
    shape = (b, steps, O) if rs else (b, O)
    shape = shape[1:] if unbatched else shape
    results = {}
    for backend, (_, result, _) in outcomes.items():
        assert type(result) is np.ndarray and result.shape == shape and result.dtype == dtype
        # predict is forward in batches: the same values up to summation order.
        _, expected, _ = _on(backend, lambda: model.forward(X.value, lengths=lengths.value))
        scale = extreme_scale(model, [X])
        assert_agree(result, expected, dtype, assert_close, f"[{backend}] predict vs forward",
                     scale=scale)
        results[backend] = result
    if len(results) == 2:
        assert_agree(results["cython"], results["numpy"], dtype, assert_close, "predict",
                     scale=scale)


# =============================================================================
# forecast
# =============================================================================
def draw_feedback(draw, I, O):
    """(Arg, fed columns) for forecast's feedback."""
    if chance(draw, 8):
        kind = draw(st.sampled_from(["length", "range", "duplicate", "float", "int-scalar",
                                     "string", "none-required"]))
        if kind == "none-required" and O != I:
            return Arg("feedback", None, bad=kind), set()
        if kind == "length":
            return Arg("feedback", list(range(min(O, I))) + [-1] * (O - min(O, I)) + [-1],
                       bad=kind), set()
        if kind == "range":
            value = [-1] * O
            value[draw(st.integers(0, O - 1))] = draw(st.sampled_from([I, -2, 10**6]))
            return Arg("feedback", value, bad=kind), set()
        if kind == "duplicate" and O >= 2:
            return Arg("feedback", [0, 0] + [-1] * (O - 2), bad=kind), set()
        if kind == "float":
            return Arg("feedback", [0.0] + [-1] * (O - 1), bad=kind), set()
        if kind == "int-scalar":
            return Arg("feedback", 0, bad=kind), set()
        if kind == "string":
            return Arg("feedback", "0" * O, bad=kind), set()
    if O == I and draw(st.booleans()):
        return Arg("feedback", None), set(range(I))
    columns = draw(st.permutations(list(range(I)) + [-1] * O))[:O]
    form = draw(st.sampled_from(["list", "tuple", "array", "none-entries"]))
    if form == "tuple":
        value = tuple(columns)
    elif form == "array":
        value = np.array(columns, dtype=draw(st.sampled_from([np.int64, np.int8, np.intp])))
    elif form == "none-entries":
        value = [None if c == -1 else c for c in columns]
    else:
        value = list(columns)
    return Arg("feedback", value), {c for c in columns if c >= 0}


@examples(200)
@given(data=st.data())
def test_forecast(data, assert_close):
    draw = data.draw
    config = draw(model_configs())
    I, O, dtype = config["input_size"], config["output_size"], config["dtype"]
    batch, steps = draw_batch_time(draw, config["hidden_size"])
    unbatched = chance(draw, 20)
    X = draw_X(draw, config, batch, steps, unbatched)
    h0 = draw_h0(draw, config, batch, unbatched)
    n_steps = draw(st.integers(1, 5))
    if chance(draw, 5):
        horizon = Arg("steps", draw(st.sampled_from([0, -1, 1.0, "2", True, None])),
                      bad="scalar")
    else:
        horizon = Arg("steps", n_steps if draw(st.booleans()) else np.int64(n_steps))
    feedback, fed = draw_feedback(draw, I, O)
    exogenous = [c for c in range(I) if c not in fed]
    future_shape = (n_steps - 1, I) if unbatched else (batch, n_steps - 1, I)
    if exogenous and n_steps > 1 and feedback.bad is None and horizon.bad is None \
            and chance(draw, 6):
        future = Arg("future", None, bad="required")
    elif not exogenous and draw(st.booleans()):
        future = Arg("future", None)
    else:
        future = maybe_corrupt(
            draw, "future", future_shape, dtype,
            lambda: real_arg(draw, "future", future_shape, dtype,
                             magnitudes=["normal", "int", "large", "tiny", "zeros"]),
            # Overflow to inf and NaN are only wrong in exogenous columns (below).
            kinds=[k for k in CORRUPTIONS if k not in ("none", "nonfinite", "overflow")])
        if future.bad is None and fed and int(np.prod(future_shape)) and \
                chance(draw, 25):
            # NaN in fed-back columns is ignored; in exogenous columns it is an error.
            values = np.array(np.asarray(future.value), dtype=np.float64, subok=False)
            column = draw(st.sampled_from(sorted(fed) + exogenous))
            values[..., column] = np.nan
            future = Arg("future", values, bad=None if column in fed else "nonfinite",
                         info=f"NaN in column {column}")
    if feedback.bad is not None or horizon.bad is not None:
        # The future's shape depends on steps; a wrong steps makes it meaningless.
        future = Arg("future", None) if future.bad is None else future
    args = [X, h0, horizon, feedback, future]
    note(f"config={config} batch={batch} steps={steps} unbatched={unbatched} args={args}")
    take_snapshots(args)
    model = make_model(config)
    outcomes = {b: _on(b, lambda: model.forecast(X.value, horizon.value, h0=h0.value,
                                                  feedback=feedback.value,
                                                  future=future.value, return_state=True),
                       [a.value for a in args])
                for b in BACKENDS}
    assert_unchanged(args)
    if bad(args):
        check_rejected(outcomes, bad(args))
        count("test_properties::test_forecast", "rejected")
        return
    check_accepted(outcomes, args)
    count("test_properties::test_forecast", "valid")
    L, H = config["num_layers"], config["hidden_size"]
    b = 1 if unbatched else X.canonical.shape[0]
    y_shape, h_shape = (b, n_steps, O), (L, b, H)
    if unbatched:
        y_shape, h_shape = y_shape[1:], (L, H)
    results = {}
    for backend, (_, (y, h), _) in outcomes.items():
        assert type(y) is np.ndarray and y.shape == y_shape and y.dtype == np.dtype(dtype)
        assert h.shape == h_shape and h.dtype == np.dtype(dtype)
        if n_steps == 1:
            # forecast(history, 1) is the model's output after the last history step.
            _, last, _ = _on(backend, lambda: model.forward(X.value, h0.value))
            if config["return_sequences"]:
                last = last[..., -1, :]
            assert_agree(y[..., 0, :], last, np.dtype(dtype), assert_close,
                         f"[{backend}] forecast(h, 1) vs forward",
                         scale=extreme_scale(model, [X, h0]))
        results[backend] = (y, h)
    if len(results) == 2:
        scale = extreme_scale(model, [X, h0, future])
        assert_agree(results["cython"][0], results["numpy"][0], np.dtype(dtype),
                     assert_close, "forecast", scale=scale)
        assert_agree(results["cython"][1], results["numpy"][1], np.dtype(dtype),
                     assert_close, "forecast state", scale=scale)


# =============================================================================
# set_weights
# =============================================================================
@examples(120)
@given(data=st.data())
def test_set_weights(data, assert_close):
    draw = data.draw
    config = draw(model_configs())
    dtype = config["dtype"]
    model = make_model(config)
    shapes = {k: v.shape for k, v in model.get_weights().items()}
    weights = {}
    entries = []
    for name, shape in shapes.items():
        label = f"weights[{name!r}]"
        kinds = [k for k in CORRUPTIONS if k not in ("scalar",)]
        if shape == (1,):
            kinds = [k for k in kinds if k != "axis"] + ["axis"]
        arg = maybe_corrupt(draw, label, shape, dtype,
                            lambda: real_arg(draw, label, shape, dtype,
                                             magnitudes=["normal", "int", "large", "tiny",
                                                         "subnormal", "zeros", "huge"]),
                            rate=4, kinds=kinds)
        weights[name] = arg.value
        entries.append(arg)
    container = Arg("weights", weights)
    structural = 99 - draw(st.integers(0, 99))  # (99, the simplest draw: valid)
    if structural < 4:
        container = Arg("weights", list(weights.items()), bad="not-a-dict")
    elif structural < 8:
        del weights[draw(st.sampled_from(sorted(weights)))]
        container = Arg("weights", weights, bad="missing-key")
    elif structural < 11:
        weights["layers.9.Whh"] = np.zeros((1, 1))
        container = Arg("weights", weights, bad="extra-key")
    args = entries + [container]
    note(f"config={config} args={args}")
    take_snapshots([container])
    before = model.get_weights()
    outcomes = {}
    models = {}
    for backend in BACKENDS:
        models[backend] = make_model(config)
        outcomes[backend] = _on(backend, lambda: models[backend].set_weights(container.value),
                                [container.value])
    assert_unchanged([container])
    corrupted = bad(args) if container.bad is None else [container]
    if corrupted:
        for bad_arg in corrupted:
            bad_arg.name = "weights"  # messages say weights[...] or weights must
        check_rejected(outcomes, corrupted)
        for backend in BACKENDS:
            after = models[backend].get_weights()
            assert all(np.array_equal(after[k], before[k]) for k in before), (
                "a rejected set_weights changed the model")
        count("test_properties::test_set_weights", "rejected")
        return
    check_accepted(outcomes, args)
    count("test_properties::test_set_weights", "valid")
    X = np.random.default_rng(0).normal(size=(2, 3, config["input_size"]))
    outputs = {}
    for backend in BACKENDS:
        got = models[backend].get_weights()
        for arg, name in zip(entries, shapes):
            assert same_bits(got[name], arg.canonical), f"weights[{name!r}] stored wrongly"
        outputs[backend] = _on(backend, lambda: models[backend].forward(X))
        assert outputs[backend][0] == "ok", outputs[backend][1]
        assert np.isfinite(outputs[backend][1]).all()
    extreme = {arg.magnitude for arg in entries} & set(EXTREME)
    if len(outputs) == 2 and not extreme:
        # (Weights of 1e6 or more make a second layer's pre-activations sums of huge
        # terms that may cancel into tanh's linear range: ill-conditioned, see
        # test_extremes. Those are checked for finiteness only.)
        assert_agree(outputs["cython"][1], outputs["numpy"][1], np.dtype(dtype), assert_close,
                     "forward after set_weights")


# =============================================================================
# fit
# =============================================================================
@examples(150)
@given(data=st.data())
def test_fit(data, assert_close):
    draw = data.draw
    config = draw(model_configs())
    if config["hidden_size"] == 70:
        config["num_layers"] = 1  # keep each example fast
    dtype = np.dtype(config["dtype"])
    batch, steps = draw_batch_time(draw, config["hidden_size"])
    X = draw_X(draw, config, batch, steps, False, rate=8)
    if X.bad is None and batch == 0:
        X.bad = "empty-batch"
    if X.bad is None:
        # Inputs of 1e6 or more saturate tanh, where the gradient is ill-conditioned
        # (see gradient_term_scale) and Adam's normalisation turns last-bit
        # differences into steps of size lr: extremes in fit are test_extremes'.
        X = real_arg(draw, "X", (batch, steps, config["input_size"]), config["dtype"],
                     magnitudes=["normal", "int", "tiny", "subnormal", "zeros"])
    lengths = draw_lengths(draw, batch, steps, False)
    Y = draw_Y(draw, config, batch, steps, False, lengths)
    if Y.bad is None and Y.canonical is not None:
        finite = np.isfinite(Y.canonical)
        if np.any(np.abs(Y.canonical[finite]) > 100):
            Y = real_arg(draw, "Y", np.shape(Y.value), config["dtype"],
                         magnitudes=["normal", "int", "tiny", "zeros"])
            Y.canonical = Y.canonical if config["return_sequences"] else Y.canonical[:, None]
    scalars = {
        "epochs": (draw(st.integers(0, 2)), [-1, 1.5, "1", True, None]),
        "batch_size": (draw(st.integers(1, max(1, batch + 1))), [0, -2, 2.0, "2", None]),
        "optimizer": (draw(st.sampled_from(["sgd", "adam", "momentum", "Adam"])),
                      ["rmsprop", 3, None]),
        "lr": (draw(st.sampled_from([None, 0.01, 0.1])), [0.0, -0.1, float("nan"), "0.1"]),
        "clip_value": (draw(st.sampled_from([None, 0.5, 5.0])), [0.0, -1.0, float("inf")]),
        "clip_norm": (draw(st.sampled_from([None, 1.0])), [0.0, float("nan"), "1"]),
        "shuffle": (draw(st.booleans()), []),
        "seed": (draw(st.integers(0, 2**31)), [-1, 1.5]),
        "tbptt": (draw(st.sampled_from([None, None, 1, 2, 5])) if config["return_sequences"]
                  else None, [0, -1, 2.5]),
    }
    kwargs = {}
    scalar_args = []
    for name, (valid, wrong) in scalars.items():
        if wrong and chance(draw, 2):
            arg = Arg(name, draw(st.sampled_from(wrong)), bad="scalar")
        else:
            arg = Arg(name, valid)
        kwargs[name] = arg.value
        scalar_args.append(arg)
    validation = []
    if chance(draw, 25):
        # validation_data: its own batch and length; errors in it name validation_data.
        v_batch, v_steps = 2 + draw(st.integers(-2, 2)), 3 + draw(st.integers(-2, 2))
        Xv = draw_X(draw, config, v_batch, v_steps, False, rate=8)
        if Xv.bad is None:
            Xv = real_arg(draw, "X", (v_batch, v_steps, config["input_size"]),
                          config["dtype"], magnitudes=["normal", "int", "zeros"])
            if v_batch == 0:
                Xv.bad = "empty-batch"
        v_lengths = draw_lengths(draw, v_batch, v_steps, False)
        Yv = draw_Y(draw, config, v_batch, v_steps, False, v_lengths)
        if Yv.bad is None:
            Yv = real_arg(draw, "Y", np.shape(Yv.value), config["dtype"],
                          magnitudes=["normal", "int", "zeros"])
        validation = [Xv, Yv] + ([v_lengths] if v_lengths.value is not None else [])
        for arg in validation:
            arg.name = "validation_data"
        kwargs["validation_data"] = tuple(arg.value for arg in validation)
        if chance(draw, 50) and not any(arg.bad for arg in validation):
            kwargs["early_stopping"] = {"patience": 1, "restore_best": draw(st.booleans())}
    args = [X, Y, lengths] + scalar_args + validation
    note(f"config={config} batch={batch} steps={steps} args={args}")
    take_snapshots([X, Y, lengths] + validation)
    outcomes = {}
    models = {}
    for backend in BACKENDS:
        models[backend] = make_model(config)
        model = models[backend]
        outcomes[backend] = _on(backend, lambda: model.fit(X.value, Y.value,
                                                            lengths=lengths.value, **kwargs),
                                [a.value for a in args])
    assert_unchanged([X, Y, lengths] + validation)
    if bad(args):
        check_rejected(outcomes, bad(args))
        count("test_properties::test_fit", "rejected")
        return
    statuses = {b: (o[0], type(o[1]).__name__) for b, o in outcomes.items()}
    if any(isinstance(o[1], TrainingDivergedError) for o in outcomes.values()):
        # A documented outcome (large lr, large targets): the same on both backends,
        # and the model keeps finite weights.
        assert len(set(statuses.values())) == 1, statuses
        for backend in BACKENDS:
            assert np.isfinite(models[backend].parameters).all()
        count("test_properties::test_fit", "diverged")
        return
    check_accepted(outcomes, args)
    count("test_properties::test_fit", "valid")
    for backend, (_, history, _) in outcomes.items():
        if history.stopped_early:
            assert history.epochs <= kwargs["epochs"]
        else:
            assert history.epochs == kwargs["epochs"]
        assert len(history.val_loss) == (history.epochs if validation else 0)
        assert np.isfinite(models[backend].parameters).all()
        assert models[backend].parameters.dtype == dtype
    if len(outcomes) == 2:
        assert_agree(models["cython"].parameters, models["numpy"].parameters, dtype,
                     assert_close, "weights after fit", rtol=FIT_RTOL[dtype])
        assert_agree(np.array(outcomes["cython"][1].loss), np.array(outcomes["numpy"][1].loss),
                     np.dtype(np.float64), assert_close, "history.loss", rtol=FIT_RTOL[dtype])
        assert_agree(np.array(outcomes["cython"][1].val_loss),
                     np.array(outcomes["numpy"][1].val_loss), np.dtype(np.float64),
                     assert_close, "history.val_loss", rtol=FIT_RTOL[dtype])


# =============================================================================
# optimizers and clip_gradients
# =============================================================================
def _reference_update(name, theta, grad, steps_before, moments):
    """One SGD-momentum or Adam step in float64 (the formulas of optimizers.py)."""
    theta = theta.astype(np.float64)
    grad = grad.astype(np.float64)
    if name == "sgd":
        velocity = moments[0] * 0.9 + grad
        return theta - 0.1 * velocity
    t = steps_before + 1
    m = 0.1 * grad
    v = 0.001 * grad * grad
    return theta - (0.1 / (1 - 0.9 ** t)) * m / (np.sqrt(v) / math.sqrt(1 - 0.999 ** t) + 1e-8)


def _make_optimizer(name):
    return optimizers.SGD(lr=0.1, momentum=0.9) if name == "sgd" else optimizers.Adam(lr=0.1)


@examples(150)
@given(data=st.data())
def test_optimizer_step(data):
    draw = data.draw
    form = draw(st.sampled_from(["model", "model-flat", "flat", "dict"]))
    opt_name = draw(st.sampled_from(["sgd", "adam"]))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    config = draw(model_configs())
    config["dtype"] = dtype
    model = make_model(config)
    shapes = {k: v.shape for k, v in model.get_weights().items()}
    grad_magnitudes = ["normal", "int", "large", "tiny", "zeros"]
    params = None
    if form in ("model", "model-flat"):
        params = Arg("params", model)
    elif form == "flat":
        n = draw(st.integers(0, 7))
        if chance(draw, 15):
            value = draw(st.sampled_from([
                np.zeros(n, dtype=np.int64), np.zeros((n, 2)), [0.0] * n, np.zeros(n) + 0j,
                "params", np.zeros(n)[::-1].copy()]))
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim == 1:
                value.flags.writeable = False
            params = Arg("params", value, bad="params")
        else:
            params = Arg("params", np.random.default_rng(n).normal(size=n).astype(dtype))
        shapes = {None: (n,)}
    else:
        keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3,
                             unique=True))
        shapes = {k: tuple(draw(st.lists(st.integers(0, 3), max_size=2))) for k in keys}
        value = {k: np.asarray(np.random.default_rng(i).normal(size=s), dtype=dtype)
                 for i, (k, s) in enumerate(shapes.items())}
        params = Arg("params", value)
        if chance(draw, 15):
            key = keys[0]
            params.value[key] = draw(st.sampled_from([
                params.value[key].astype(np.int64), params.value[key].tolist(),
                params.value[key].astype(np.complex128)]))
            params = Arg("params", params.value, bad="params")
    # Gradients.
    grads_bad = []
    if form in ("model", "dict"):
        grads = {}
        for key, shape in shapes.items():
            label = f"grads[{key!r}]"
            arg = maybe_corrupt(draw, label, shape, dtype,
                                lambda: real_arg(draw, label, shape, dtype,
                                                 magnitudes=grad_magnitudes),
                                rate=5, kinds=["complex", "object", "str", "ragged", "axis",
                                               "ndim", "none"])
            grads[key] = arg.value
            if arg.bad:
                grads_bad.append(arg)
        if chance(draw, 5):
            grads["zz"] = np.zeros(1)
            grads_bad.append(Arg("grads", grads, bad="extra-key"))
        grads_arg = Arg("grads", grads)
        flat_grad = None
        if not grads_bad:
            order = list(shapes)
            if form == "model":
                flat_grad = np.concatenate([np.asarray(grads[k], dtype=np.float64).reshape(-1)
                                            for k in order])
            else:
                flat_grad = {k: np.asarray(grads[k], dtype=np.float64) for k in order}
    else:
        n = sum(int(np.prod(s)) for s in shapes.values()) if form == "model-flat" else \
            shapes[None][0]
        grads_arg = maybe_corrupt(draw, "grads", (n,), dtype,
                                  lambda: real_arg(draw, "grads", (n,), dtype,
                                                   magnitudes=grad_magnitudes),
                                  rate=15, kinds=["complex", "object", "str", "axis", "ndim",
                                                  "none", "datetime"])
        if grads_arg.bad:
            grads_bad.append(grads_arg)
        flat_grad = None if grads_arg.bad else grads_arg.canonical.astype(np.float64)
    for arg in grads_bad:
        arg.name = "grads"
    watched = [grads_arg] + ([params] if form in ("flat", "dict") and params.bad else [])
    take_snapshots(watched)
    note(f"form={form} opt={opt_name} params={params} grads={grads_arg} bad={grads_bad}")
    optimizer = _make_optimizer(opt_name)
    theta_before = model.parameters.copy() if form.startswith("model") else None
    dict_before = ({k: np.array(v, copy=True) for k, v in params.value.items()}
                   if form == "dict" and not params.bad else None)
    flat_before = (params.value.copy() if form == "flat" and not params.bad else None)
    outcome = call_outcome(lambda: optimizer.step(params.value, grads_arg.value))
    assert_unchanged(watched)
    corrupted = grads_bad + ([params] if params.bad else [])
    if corrupted:
        check_rejected({"numpy": outcome}, corrupted, exact_types=False, kernels_may_run=True)
        if form.startswith("model"):
            assert np.array_equal(model.parameters, theta_before), "rejected step changed it"
        count("test_properties::test_optimizer_step", "rejected")
        return
    check_accepted({"numpy": outcome}, [params, grads_arg])
    count("test_properties::test_optimizer_step", "valid")
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    with np.errstate(all="ignore"):
        if form.startswith("model"):
            expected = _reference_update(opt_name, theta_before, flat_grad, 0,
                                         np.zeros((2, theta_before.size)))
            got = model.parameters
        elif form == "flat":
            expected = _reference_update(opt_name, flat_before, flat_grad, 0,
                                         np.zeros((2, flat_before.size)))
            got = params.value
        else:
            keys = sorted(shapes)
            expected = _reference_update(
                opt_name, np.concatenate([dict_before[k].reshape(-1) for k in keys]),
                np.concatenate([flat_grad[k].reshape(-1) for k in keys]), 0, np.zeros((2, 1)))
            got = np.concatenate([params.value[k].reshape(-1) for k in keys])
            for k in keys:
                assert params.value[k].shape == shapes[k]
    assert got.dtype == np.dtype(dtype)
    finite = np.isfinite(expected)
    assert np.array_equal(np.isfinite(got), finite)
    scale = max(1.0, float(np.max(np.abs(expected[finite]), initial=0.0)))
    assert np.max(np.abs(got[finite] - expected[finite]), initial=0.0) <= tolerance * scale


@examples(120)
@given(data=st.data())
def test_clip_gradients(data):
    draw = data.draw
    dtype = np.dtype(draw(st.sampled_from(["float64", "float32"])))
    as_dict = draw(st.booleans())
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=0 if as_dict else 1,
                         max_size=3, unique=True))
    shapes = {k: tuple(draw(st.lists(st.integers(0, 4), max_size=2))) for k in keys}
    if not as_dict:
        shapes = {"flat": (draw(st.integers(0, 9)),)}
    corrupted = []
    grads = {}
    for key, shape in shapes.items():
        values, _ = draw_values(draw, shape, model_dtype=dtype,
                                magnitudes=["normal", "large", "tiny", "zeros", "int"])
        grads[key] = values.astype(dtype)
        if chance(draw, 8):
            kind = draw(st.sampled_from(["int", "list", "complex", "readonly", "str"]))
            grads[key] = {"int": values.astype(np.int64), "list": values.tolist(),
                          "complex": values + 0j, "str": values.astype(str),
                          "readonly": np.broadcast_to(values.astype(dtype), shape)}[kind]
            name = f"grads[{key!r}]" if as_dict else "grads"
            corrupted.append(Arg("grads", grads[key], bad=kind, info=name))
    value = grads if as_dict else grads["flat"]
    if not as_dict and not corrupted and chance(draw, 10):
        value = value.reshape(1, -1)
        corrupted.append(Arg("grads", value, bad="2-d"))
    clip_value = draw(st.sampled_from([None, 0.5, 3.0, 1e-3]))
    clip_norm = draw(st.sampled_from([None, 1.0, 1e-2, 1e6]))
    if chance(draw, 8):
        clip_value = draw(st.sampled_from([0.0, -1.0, float("nan"), "1"]))
        corrupted.append(Arg("value", clip_value, bad="scalar"))
    if chance(draw, 8):
        clip_norm = draw(st.sampled_from([0.0, -1.0, float("inf"), [1.0]]))
        corrupted.append(Arg("norm", clip_norm, bad="scalar"))
    note(f"grads={value!r} value={clip_value} norm={clip_norm} bad={corrupted}")
    before = {k: np.array(v, copy=True) for k, v in grads.items()
              if isinstance(v, np.ndarray)}
    outcome = call_outcome(lambda: optimizers.clip_gradients(value, value=clip_value,
                                                             norm=clip_norm))
    if corrupted:
        check_rejected({"numpy": outcome}, corrupted, exact_types=False, kernels_may_run=True)
        for key, array in before.items():
            assert np.array_equal(np.asarray(grads[key]), array), "rejected clip changed grads"
        count("test_properties::test_clip_gradients", "rejected")
        return
    check_accepted({"numpy": outcome}, [Arg("grads", value)])
    count("test_properties::test_clip_gradients", "valid")
    total = outcome[1]
    flat = np.concatenate([before[k].reshape(-1).astype(np.float64) for k in sorted(before)]
                          + [np.zeros(0)])
    if clip_value is not None:
        flat = np.clip(flat, -clip_value, clip_value)
    expected_norm = math.sqrt(float(np.dot(flat, flat)))
    tolerance = 1e-12 if dtype == np.float64 else 1e-6
    assert isinstance(total, float)
    assert abs(total - expected_norm) <= tolerance * max(1.0, expected_norm)
    if clip_norm is not None and clip_norm / (expected_norm + 1e-6) < 1:
        flat = flat * (clip_norm / (expected_norm + 1e-6))
    got = np.concatenate([np.asarray(grads[k]).reshape(-1).astype(np.float64)
                          for k in sorted(before)] + [np.zeros(0)])
    for key in before:
        assert grads[key].shape == before[key].shape and grads[key].dtype == dtype
    scale = max(1.0, float(np.max(np.abs(flat), initial=0.0)))
    assert np.max(np.abs(got - flat), initial=0.0) <= 4 * tolerance * scale


# =============================================================================
# data helpers
# =============================================================================
@examples(150)
@given(data=st.data())
def test_sliding_windows(data):
    draw = data.draw
    n = 8 + draw(st.integers(-8, 6))  # shrinks towards 8 steps, which fit a window
    k = draw(st.integers(1, 3))
    one_d = draw(st.booleans())
    shape = (n,) if one_d else (n, k)
    series = maybe_corrupt(
        draw, "series", shape, np.float64,
        lambda: real_arg(draw, "series", shape, np.float64, canonical_dtype=np.float64,
                         magnitudes=MAGNITUDES),
        rate=10, kinds=["complex", "object", "str", "datetime", "ndim", "scalar"],
        bad_ndims=[0, 3])
    if series.bad is None and chance(draw, 10) and n:
        values = np.array(series.canonical)
        values.reshape(-1)[draw(st.integers(0, values.size - 1))] = np.nan
        series = Arg("series", values, values.copy(), info="with NaN")  # NaN is allowed
    use_targets = draw(st.booleans())
    targets = Arg("targets", None)
    if use_targets:
        t_shape = (n,) if draw(st.booleans()) else (n, draw(st.integers(1, 2)))
        if chance(draw, 10):
            t_shape = (n + draw(st.sampled_from([1, 2])),) + t_shape[1:]
            targets = Arg("targets", np.zeros(t_shape), bad="rows")
        else:
            targets = maybe_corrupt(
                draw, "targets", t_shape, np.float64,
                lambda: real_arg(draw, "targets", t_shape, np.float64,
                                 canonical_dtype=np.float64),
                rate=8, kinds=["complex", "object", "str", "ndim"], bad_ndims=[0, 3])
    window = draw(st.integers(1, 6))
    horizon = draw(st.integers(0 if use_targets else 1, 3))
    window_arg = Arg("window", window)
    horizon_arg = Arg("horizon", horizon)
    if chance(draw, 8):
        window_arg = Arg("window", draw(st.sampled_from([0, -1, 2.0, True, "3", None])),
                         bad="scalar")
    if chance(draw, 8):
        horizon_arg = Arg("horizon", draw(st.sampled_from([-1, 1.5, None, "1"] +
                                                          ([] if use_targets else [0]))),
                          bad="scalar")
    many = Arg("many_to_many", draw(st.booleans()))
    if chance(draw, 5):
        many = Arg("many_to_many", draw(st.sampled_from([1, "yes", None])), bad="scalar")
    args = [series, targets, window_arg, horizon_arg, many]
    note(f"args={args}")
    take_snapshots([series, targets])
    outcome = call_outcome(lambda: sliding_windows(series.value, window_arg.value,
                                                   targets=targets.value,
                                                   horizon=horizon_arg.value,
                                                   many_to_many=many.value))
    assert_unchanged([series, targets])
    corrupted = bad(args)
    if not corrupted and n - window - horizon + 1 < 1:
        series.bad = "too-short"  # the message names series (and window, horizon)
        corrupted = [series]
    if corrupted:
        check_rejected({"numpy": outcome}, corrupted, exact_types=False, kernels_may_run=True)
        count("test_properties::test_sliding_windows", "rejected")
        return
    check_accepted({"numpy": outcome}, args)
    count("test_properties::test_sliding_windows", "valid")
    X, Y = outcome[1]
    x = series.canonical.reshape(n, -1)
    y = x if targets.value is None else targets.canonical.reshape(n, -1)
    n_windows = n - window - horizon + 1
    expected_X = np.stack([x[i:i + window] for i in range(n_windows)])
    if many.value:
        expected_Y = np.stack([y[i + horizon:i + horizon + window] for i in range(n_windows)])
    else:
        expected_Y = np.stack([y[i + window - 1 + horizon] for i in range(n_windows)])
    assert X.shape == expected_X.shape and Y.shape == expected_Y.shape
    assert X.dtype.kind == "f" and Y.dtype.kind == "f"
    assert np.array_equal(X.astype(np.float64), expected_X, equal_nan=True)
    assert np.array_equal(Y.astype(np.float64), expected_Y, equal_nan=True)


@examples(100)
@given(data=st.data())
def test_train_val_test_split(data):
    draw = data.draw
    n = draw(st.integers(0, 40))
    count_arrays = 1 + draw(st.integers(-1, 2))  # no array at all is an error
    arrays = []
    corrupted = []
    for index in range(count_arrays):
        rows = n
        if index > 0 and chance(draw, 8):
            rows = n + 1
            corrupted.append(Arg("arrays", None, bad="rows"))
        shape = (rows,) + tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
        values = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
        form = draw(st.sampled_from(["array", "list", "F", "readonly", "scalar"]))
        if form == "scalar" and chance(draw, 30):
            arrays.append(np.float64(3.0))
            corrupted.append(Arg("array", None, bad="scalar"))
            continue
        arrays.append({"list": values.tolist(), "F": np.asfortranarray(values),
                       "readonly": np.broadcast_to(values, shape)}.get(form, values))
    fractions = draw(st.sampled_from([(0.7, 0.15, 0.15), (0.5, 0.5, 0.0), (1.0, 0.0, 0.0),
                                      (0.2, 0.3, 0.5), (0.6, 0.0, 0.4)]))
    if chance(draw, 10):
        fractions = draw(st.sampled_from([(0.5, 0.5), (0.0, 0.5, 0.5), (0.5, 0.5, 0.5),
                                          (-0.1, 0.6, 0.5), (float("nan"), 0.5, 0.5),
                                          ("a", 0.5, 0.5), 0.7, None]))
        corrupted.append(Arg("fractions", fractions, bad="fractions"))
    if not arrays:
        corrupted.append(Arg("array", None, bad="none"))
    note(f"n={n} arrays={[np.shape(a) for a in arrays]} fractions={fractions}")
    saved = [copy.deepcopy(a) for a in arrays]
    outcome = call_outcome(lambda: train_val_test_split(*arrays, fractions=fractions))
    for array, original in zip(arrays, saved):
        assert np.array_equal(np.asarray(array), np.asarray(original))
    if not corrupted:
        f_train, f_val, f_test = fractions
        train_end = math.floor(n * f_train + 1e-6)
        val_end = max(train_end, math.floor(n * (f_train + f_val) + 1e-6))
        if f_test == 0:
            val_end = n
            if f_val == 0:
                train_end = n
        sizes = (train_end, val_end - train_end, n - val_end)
        if any(share > 0 and size == 0 for share, size in zip(fractions, sizes)):
            corrupted.append(Arg("fractions", fractions, bad="too-few-rows"))
    if corrupted:
        check_rejected({"numpy": outcome}, corrupted, exact_types=False, kernels_may_run=True)
        count("test_properties::test_train_val_test_split", "rejected")
        return
    check_accepted({"numpy": outcome}, [])
    count("test_properties::test_train_val_test_split", "valid")
    parts = outcome[1]
    assert len(parts) == 3 * len(arrays)
    for index, array in enumerate(arrays):
        train, val, test = parts[3 * index:3 * index + 3]
        assert (len(train), len(val), len(test)) == sizes
        joined = np.concatenate([np.asarray(train), np.asarray(val), np.asarray(test)])
        assert np.array_equal(joined.reshape(np.shape(array)), np.asarray(array))


@examples(120)
@given(data=st.data())
def test_standard_scaler(data):
    draw = data.draw
    n = draw(st.integers(0, 9))
    k = draw(st.integers(1, 3))
    shape = draw(st.sampled_from([(n,), (n, k), (n, 2, k)]))
    X = maybe_corrupt(draw, "X", shape, np.float64,
                      lambda: real_arg(draw, "X", shape, np.float64,
                                       canonical_dtype=np.float64,
                                       magnitudes=MAGNITUDES + ["huge"]),
                      rate=12, kinds=["complex", "object", "str", "datetime", "scalar",
                                      "nonfinite"])
    if X.bad == "nonfinite" and np.isnan(X.value).any():
        X.bad = None  # NaN is ignored when fitting; inf is an error
        X.canonical = np.asarray(X.value, dtype=np.float64)
    if X.bad is None and X.canonical.size == 0:
        X.bad = "empty"
    if X.bad is None:
        samples = X.canonical.reshape(-1, X.canonical.shape[-1] if len(shape) > 1 else 1)
        if np.isnan(samples).all(axis=0).any():
            X.bad = "all-nan-feature"
    note(f"X={X}")
    take_snapshots([X])
    scaler = StandardScaler()
    outcome = call_outcome(lambda: scaler.fit(X.value))
    assert_unchanged([X])
    if X.bad:
        check_rejected({"numpy": outcome}, [X], exact_types=False, kernels_may_run=True)
        count("test_properties::test_standard_scaler", "rejected")
        return
    if outcome[0] == "error" and isinstance(outcome[1], ValueError) \
            and names_argument(str(outcome[1]), ["X"]) and "large" in str(outcome[1]):
        # Values whose variance overflows float64 (1e300) are refused by name.
        count("test_properties::test_standard_scaler", "refused-too-large")
        return
    check_accepted({"numpy": outcome}, [X])
    count("test_properties::test_standard_scaler", "valid")
    samples = X.canonical.reshape(-1, 1 if len(shape) == 1 else X.canonical.shape[-1])
    assert np.isfinite(scaler.mean_).all() and np.isfinite(scaler.scale_).all()
    assert (scaler.scale_ > 0).all()
    with np.errstate(all="ignore"):
        expected_mean = np.nanmean(samples, axis=0)
        magnitude = np.nanmax(np.abs(samples), axis=0)
    assert np.all(np.abs(scaler.mean_ - expected_mean) <= 1e-12 * magnitude)
    transformed = scaler.transform(X.value)
    assert transformed.shape == shape
    finite = np.isfinite(samples)
    out = transformed.reshape(samples.shape)
    assert np.array_equal(np.isfinite(out), finite), "transform made finite values non-finite"
    back = scaler.inverse_transform(transformed).reshape(samples.shape)
    rtol = 1e-9 if transformed.dtype == np.float64 else 1e-5
    bound = rtol * (np.abs(samples) + np.abs(scaler.mean_) + scaler.scale_)
    assert np.all((np.abs(back - samples) <= bound)[finite])


# =============================================================================
# the estimator
# =============================================================================
@examples(50)
@given(data=st.data())
def test_estimator(data, assert_close):
    from elman.estimator import RNNRegressor

    draw = data.draw
    n = draw(st.integers(0, 8))
    window = draw(st.integers(1, 4))
    features = draw(st.integers(1, 2))
    three_d = draw(st.booleans())
    shape = (n, window, features) if three_d else (n, window * features)
    X = maybe_corrupt(draw, "X", shape, np.float64,
                      lambda: real_arg(draw, "X", shape, np.float64,
                                       magnitudes=["normal", "int", "large", "tiny", "zeros"]),
                      # Not str or object: numeric strings and objects convert, as
                      # in scikit-learn.
                      rate=12, kinds=["complex", "ndim", "nonfinite", "scalar", "none"],
                      bad_ndims=[0, 1, 4])
    y_shape = (n,) if draw(st.booleans()) else (n, draw(st.integers(1, 2)))
    y = maybe_corrupt(draw, "y", y_shape, np.float64,
                      lambda: real_arg(draw, "y", y_shape, np.float64,
                                       magnitudes=["normal", "int", "large", "tiny", "zeros"]),
                      rate=10, kinds=["complex", "nonfinite", "ndim", "none"],
                      bad_ndims=[0, 3])
    if X.bad is None and n == 0:
        X.bad = "empty"
    if X.bad is None and y.bad is None and chance(draw, 8):
        y = Arg("y", np.zeros(n + 1), bad="rows")
    est_window = None if three_d or features == 1 else window
    params = dict(hidden_size=draw(st.sampled_from([1, 3])), epochs=draw(st.integers(0, 2)),
                  batch_size=draw(st.integers(1, 4)), random_state=draw(st.integers(0, 99)),
                  window=est_window, dtype=draw(st.sampled_from(["float64", "float32"])))
    args = [X, y]
    note(f"params={params} args={args}")
    take_snapshots(args)
    outcomes = {}
    for backend in BACKENDS:
        def run():
            regressor = RNNRegressor(**params).fit(X.value, y.value)
            return regressor.predict(X.value)
        outcomes[backend] = _on(backend, run, [X.value, y.value])
    assert_unchanged(args)
    if bad(args):
        # scikit-learn's conventions: ValueError or TypeError (some of its standard
        # messages, e.g. "Found input variables with inconsistent numbers of
        # samples", name no argument).
        for backend, (status, result, _) in outcomes.items():
            assert status == "error" and isinstance(result, (ValueError, TypeError)), (
                backend, result)
        count("test_properties::test_estimator", "rejected")
        return
    check_accepted(outcomes, args)
    count("test_properties::test_estimator", "valid")
    dtype = np.dtype(params["dtype"])
    for backend, (_, predicted, _) in outcomes.items():
        assert predicted.shape == y_shape and predicted.dtype == np.float64
        assert np.isfinite(predicted).all()
    if len(outcomes) == 2:
        scale = float(np.max(np.abs(y.canonical), initial=1.0))
        assert_agree(outcomes["cython"][1] / scale, outcomes["numpy"][1] / scale,
                     np.dtype(np.float64), assert_close, "estimator predictions",
                     rtol=FIT_RTOL[dtype])


# =============================================================================
# load: arbitrary bytes
# =============================================================================
@examples(150)
@given(content=st.one_of(
    st.binary(max_size=2048),
    # Bytes that begin like a zip archive (local header / end of directory).
    st.binary(max_size=512).map(lambda b: b"PK\x03\x04" + b),
    st.binary(max_size=512).map(lambda b: b"PK\x05\x06" + b),
    st.binary(max_size=512).map(lambda b: b"\x93NUMPY" + b),
))
def test_load_arbitrary_bytes(content, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "arbitrary.npz"
    path.write_bytes(content)
    with hang_guard(60):
        try:
            elman.load(path)
        except (ModelFileError, OSError):
            count("test_properties::test_load_arbitrary_bytes", "rejected")
        else:
            raise AssertionError("arbitrary bytes loaded as a model")


# =============================================================================
# the checks themselves are not blind
# =============================================================================
def test_kernel_contract_checks_catch_violations():
    """The contract wrapper used above rejects what the kernels must never get."""
    kernels = _backend.get_kernels("numpy")
    model = elman.RNN(2, 3, 1, seed=0)
    I, H, O, L = 2, 3, 1, 1
    X = np.zeros((2, 4, 2))
    caller = np.zeros((2, 4, 1))

    def forward(checked, **override):
        arguments = dict(theta=model._theta, activation=0, X=X, h0=np.zeros((1, 2, 3)),
                         lengths=np.full(2, 4, dtype=np.intp), Y_out=np.empty((2, 4, 1)),
                         h_last=np.empty((1, 2, 3)))
        arguments.update(override)
        checked.forward(arguments["theta"], I, H, O, L, arguments["activation"], True,
                        arguments["X"], arguments["h0"], arguments["lengths"],
                        arguments["Y_out"], arguments["h_last"])

    forward(_CheckedKernels(kernels, []))  # the valid call passes
    violations = {
        "strided X": dict(X=np.zeros((2, 4, 4))[:, :, ::2]),
        "float32 X": dict(X=X.astype(np.float32)),
        "h0 batch": dict(h0=np.zeros((1, 3, 3))),
        "lengths 0": dict(lengths=np.array([0, 4], dtype=np.intp)),
        "lengths int32": dict(lengths=np.full(2, 4, dtype=np.int32)),
        "lengths > T": dict(lengths=np.array([5, 4], dtype=np.intp)),
        "Y_out shape": dict(Y_out=np.empty((2, 1, 1))),
        "theta length": dict(theta=model._theta[:-1].copy()),
        "activation code": dict(activation=2),
        "output is the caller's": dict(Y_out=caller),
    }
    for what, override in violations.items():
        with pytest.raises(KernelContractError):
            forward(_CheckedKernels(kernels, [caller]), **override)
    with pytest.raises(KernelContractError, match="feedback"):
        _CheckedKernels(kernels, []).forecast(
            model._theta, I, H, O, L, 0, X, np.zeros((1, 2, 3)), np.array([2], dtype=np.intp),
            np.zeros((2, 1, 2)), np.empty((2, 2, 1)), np.empty((1, 2, 3)))


def test_kernel_spy_sees_valid_calls():
    spy = KernelSpy()
    model = elman.RNN(2, 3, 1, seed=0)
    with spy.watching():
        model.forward(np.zeros((2, 4, 2)))
    assert spy.calls == 1
