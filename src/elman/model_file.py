"""Model files: an RNN's configuration, weights and optimizer state in one ``.npz``.

A model file is a zip archive of ``.npy`` arrays, so ``numpy.load(path)`` can list
and read it, but elman reads it without pickle and checks everything before it
allocates or builds anything: loading a file from someone else cannot run code,
cannot make elman allocate more memory than the file's own size, and cannot give a
half-loaded model. Writes are atomic: a crash, an exception or a kill in the middle
of :func:`save` leaves the previous file at the path untouched.

File format, version 1
----------------------
Members (every one an uncompressed ``.npy``, little-endian, C order, format 1.0
or 2.0, no object arrays):

``__format__.npy``
    uint8, shape (n,), n <= :data:`MAX_FORMAT_BYTES`: UTF-8 JSON, an object with
    exactly these keys::

        format          "elman-model"
        format_version  1 (FORMAT_VERSION)
        elman_version   the version of elman that wrote the file
        model           {"class": "RNN", "config": RNN.get_config()}; a config
                        without "nonlinearity" (files written before it existed)
                        means "tanh"
        arrays          [{"name": ..., "dtype": ..., "shape": [...]}, ...]: every
                        other member, in file order, with its NumPy dtype string
                        ("<f8", "<f4", "|u1", ...) and shape
        optimizer       null or {"class": "SGD" | "Adam", "config":
                        Optimizer.get_config(), "step_count": int,
                        "has_state": bool}
        extra           null or a JSON object: the caller's metadata

``layers.{l}.Wxh.npy``, ``layers.{l}.Whh.npy``, ``layers.{l}.bh.npy``, ``Why.npy``, ``by.npy``
    The weights, named as :meth:`RNN.get_weights` names them, in the model's dtype
    (``<f8`` or ``<f4``) and the shapes its configuration implies.

``optimizer.state.npy``
    Only when ``optimizer.has_state``: the optimizer's moments, shape
    (2, n_params), the model's dtype.

``extra.{name}.npy``
    Only when ``extra_arrays`` were given: small numeric arrays (bool, integer or
    float) that belong with the model, e.g. a scaler's mean and scale.

Limits
------
:data:`MAX_FORMAT_BYTES` (1 MiB) of JSON; :data:`MAX_PARAMETERS` (2**31) model
parameters; :data:`MAX_MEMBERS` archive members; and every member's size in the
zip directory must equal what its ``.npy`` header implies, while all members
together must fit in the file, so the arrays elman allocates never add up to more
than the file's size on disk.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Literal, Mapping, overload

import numpy as np
import numpy.lib.format as npy_format

from elman import _layout
from elman._validation import check_float, shape_text
from elman._version import __version__
from elman.exceptions import ModelFileError
from elman.optimizers import Optimizer, optimizer_from_config
from elman.rnn import INIT_SCHEMES, NONLINEARITIES, RNN
from elman._typing import Array, ArrayLike

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LoadedModel",
    "MAX_FORMAT_BYTES",
    "MAX_MEMBERS",
    "MAX_PARAMETERS",
    "ModelFileError",
    "load",
    "load_with_metadata",
    "read_metadata",
    "save",
]

FORMAT_NAME = "elman-model"
FORMAT_VERSION = 1

#: Largest ``__format__`` JSON accepted (and written), in bytes.
MAX_FORMAT_BYTES = 1 << 20
#: Largest model accepted (and written), in parameters.
MAX_PARAMETERS = 1 << 31
#: Most members an archive may have (weights, optimizer state and extra arrays).
MAX_MEMBERS = 4096
#: Deepest nesting of lists and objects accepted in ``extra`` when saving.
MAX_EXTRA_DEPTH = 64

FORMAT_MEMBER = "__format__"
OPTIMIZER_STATE = "optimizer.state"
EXTRA_PREFIX = "extra."
TOP_LEVEL_KEYS = ("format", "format_version", "elman_version", "model", "arrays",
                  "optimizer", "extra")
OPTIMIZER_KEYS = ("class", "config", "step_count", "has_state")
MODEL_KEYS = ("class", "config")
ARRAY_ENTRY_KEYS = ("name", "dtype", "shape")
SIZE_KEYS = ("input_size", "hidden_size", "output_size", "num_layers")

# dtypes an extra array may have: booleans, integers and IEEE floats, little-endian.
EXTRA_DTYPES = ("|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8",
                "<f2", "<f4", "<f8")
EXTRA_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
MAX_EXTRA_NDIM = 32

# Fixed timestamps make the same model give the same bytes.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# A .npy header is at most a few hundred bytes (numpy refuses > 10000 characters);
# no single read while parsing one may ask for more than this.
_MAX_NPY_HEADER_READ = 1 << 16
_READ_CHUNK = 1 << 20

# What a damaged or hostile archive can make zipfile, zlib, struct and numpy's
# header parser raise while elman reads it. Each is reported as a ModelFileError
# (chained), never on its own.
_CORRUPTION_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    OverflowError,
    NotImplementedError,
    RuntimeError,  # includes RecursionError
    SyntaxError,
)


@dataclass(frozen=True)
class LoadedModel:
    """Everything :func:`load_with_metadata` reads from a model file.

    Attributes
    ----------
    model : elman.RNN
        The model, with exactly the saved weights.
    optimizer : elman.optimizers.Optimizer or None
        The saved optimizer with its moments and step count, or None when the file
        holds none.
    extra : dict or None
        The ``extra`` metadata given to :func:`save` (as JSON gives it back:
        tuples become lists), or None.
    extra_arrays : dict of ndarray
        The ``extra_arrays`` given to :func:`save` (empty when none).
    elman_version : str
        The version of elman that wrote the file.
    format_version : int
        The file's format version.
    """

    model: RNN
    optimizer: Optimizer | None = None
    extra: dict[str, Any] | None = None
    extra_arrays: dict[str, Array] = field(default_factory=dict)
    elman_version: str = ""
    format_version: int = FORMAT_VERSION


# =============================================================================
# Saving
# =============================================================================
def save(model: RNN, path: str | os.PathLike[str], *, optimizer: Optimizer | None = None,
         extra: Mapping[str, Any] | None = None,
         extra_arrays: Mapping[str, ArrayLike] | None = None) -> None:
    """Write a model (and optionally its optimizer and metadata) to one file, atomically.

    The file is written to a temporary file in the same directory, flushed and
    fsynced, then renamed over ``path`` (``os.replace``). If anything fails (an
    exception, a full disk, Ctrl-C), the temporary file is removed and the file
    previously at ``path``, if any, is untouched. If the process is killed
    outright, the previous file is still untouched, and a hidden temporary file
    named ``.{name}.{random}.tmp`` may remain beside it.

    Parameters
    ----------
    model : elman.RNN
        The model; its weights must be finite.
    path : str or os.PathLike
        Where to write. The file is written at exactly this path: unlike
        ``numpy.savez``, no ``.npz`` suffix is appended (use one by convention).
        The directory must exist. A symbolic link at ``path`` is replaced by the
        file, not followed.
    optimizer : elman.optimizers.SGD or elman.optimizers.Adam, optional
        Saved with its hyperparameters, step count and moments (when it has taken
        a step), so that training can continue exactly where it stopped. Its
        moments must belong to ``model`` (length ``model.n_params``, the model's
        dtype).
    extra : dict, optional
        JSON metadata to keep with the model (column names, a scaler's settings,
        ...): keys are strings; values are None, bools, ints, finite floats,
        strings, lists, tuples and dicts of these (NumPy scalars are converted),
        nested at most :data:`MAX_EXTRA_DEPTH` deep. Read back by
        :func:`load_with_metadata`; tuples come back as lists.
    extra_arrays : dict of array_like, optional
        Numeric arrays (bool, integer or float) to keep with the model, by name
        (letters, digits, ``_``, ``.``, ``-``; at most 128 characters).

    Raises
    ------
    TypeError
        ``model``, ``optimizer``, ``path``, ``extra`` or ``extra_arrays`` of the
        wrong type.
    ValueError
        Non-finite weights, an optimizer whose state does not fit the model,
        metadata that JSON cannot hold exactly, or a header over
        :data:`MAX_FORMAT_BYTES`. Nothing is written.
    OSError
        The file could not be written (the previous one is untouched).
    """
    path = _check_path(path)
    members = _prepare_members(model, optimizer, extra, extra_arrays)
    _write_atomically(path, members)


def _check_path(path):
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}") from None
    if not isinstance(path, str):
        raise TypeError(f"path must be a str or os.PathLike[str]; got {type(path).__name__}")
    if path == "":
        raise ValueError("path must not be empty")
    return path


def _prepare_members(model, optimizer, extra, extra_arrays):
    """Every member as (name, array), __format__ first; validates before any writing."""
    if not isinstance(model, RNN):
        raise TypeError(f"model must be an elman.RNN; got {type(model).__name__}")
    arrays = []
    for name, value in model.get_weights().items():
        if not np.isfinite(value).all():
            raise ValueError(
                f"weights[{name!r}] contains NaN or inf; a model file holds finite weights "
                f"only (it could not be loaded back)"
            )
        arrays.append((name, _little_endian(value)))

    optimizer_entry = None
    if optimizer is not None:
        optimizer_entry, state = _optimizer_entry(model, optimizer)
        if state is not None:
            arrays.append((OPTIMIZER_STATE, _little_endian(state)))

    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"extra must be a dict (JSON object) or None; got "
                            f"{type(extra).__name__}")
        extra = _json_value(extra, "extra", 0)

    if extra_arrays is not None:
        if not isinstance(extra_arrays, dict):
            raise TypeError(f"extra_arrays must be a dict of arrays or None; got "
                            f"{type(extra_arrays).__name__}")
        for name, value in extra_arrays.items():
            arrays.append((EXTRA_PREFIX + _check_extra_name(name), _extra_array(name, value)))

    if len(arrays) + 1 > MAX_MEMBERS:
        raise ValueError(f"a model file holds at most {MAX_MEMBERS} arrays; this one would "
                         f"hold {len(arrays) + 1}")
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "elman_version": __version__,
        "model": {"class": "RNN", "config": model.get_config()},
        "arrays": [{"name": name, "dtype": array.dtype.str, "shape": list(array.shape)}
                   for name, array in arrays],
        "optimizer": optimizer_entry,
        "extra": extra,
    }
    text = json.dumps(header, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_FORMAT_BYTES:
        raise ValueError(
            f"the file's JSON header would be {len(encoded)} bytes, over the limit of "
            f"{MAX_FORMAT_BYTES}; keep large data in extra_arrays rather than extra"
        )
    return [(FORMAT_MEMBER, np.frombuffer(encoded, dtype=np.uint8))] + arrays


def _little_endian(array):
    array = np.asarray(array)
    # asarray, not ascontiguousarray, which would turn a 0-d array into shape (1,).
    return np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")


def _optimizer_entry(model, optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an elman.optimizers.Optimizer or None; got "
                        f"{type(optimizer).__name__}")
    name = type(optimizer).__name__
    config = optimizer.get_config()
    # Refuse now what load could not rebuild (a subclass, a config JSON cannot hold).
    try:
        rebuilt = optimizer_from_config(name, json.loads(json.dumps(config, allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save optimizer {optimizer!r}: {exc}") from exc
    if type(rebuilt) is not type(optimizer):
        raise ValueError(f"cannot save optimizer of class {type(optimizer).__qualname__}; "
                         f"model files hold elman.optimizers.SGD or Adam")
    saved = optimizer.get_state()
    state = saved["state"]
    if state is not None:
        expected = (2, model.n_params)
        if state.shape != expected or state.dtype != model.dtype:
            raise ValueError(
                f"optimizer holds state of shape {shape_text(state.shape)} and dtype "
                f"{state.dtype}, but this model needs {shape_text(expected)} of "
                f"{model.dtype}: it was used with another model"
            )
    entry = {"class": name, "config": config, "step_count": int(saved["step_count"]),
             "has_state": state is not None}
    return entry, state


def _json_value(value, where, depth):
    """A copy of ``value`` made of JSON types only, or TypeError/ValueError naming where."""
    if depth > MAX_EXTRA_DEPTH:
        raise ValueError(f"{where}: nested more than {MAX_EXTRA_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        value = value.item()
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}; JSON holds finite numbers only")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has key {key!r} of type {type(key).__name__}; "
                                f"JSON object keys must be strings")
            result[key] = _json_value(item, f"{where}[{key!r}]", depth + 1)
        return result
    if isinstance(value, np.ndarray):
        raise TypeError(f"{where} is an array; put arrays in extra_arrays, not extra")
    raise TypeError(f"{where} has type {type(value).__name__}, which JSON cannot hold")


def _check_extra_name(name):
    if not isinstance(name, str) or not EXTRA_NAME.fullmatch(name):
        raise ValueError(
            f"extra_arrays key {name!r} is not a valid name: use 1 to 128 letters, digits, "
            f"'_', '.' or '-', not starting with '.' or '-'"
        )
    return name


def _extra_array(name, value):
    array = np.asarray(value)
    if array.dtype.kind not in "biuf" or array.dtype.itemsize > 8:
        raise TypeError(f"extra_arrays[{name!r}] must hold booleans, integers or floats of "
                        f"at most 64 bits; got dtype {array.dtype}")
    if array.ndim > MAX_EXTRA_NDIM:
        raise ValueError(f"extra_arrays[{name!r}] has {array.ndim} dimensions; at most "
                         f"{MAX_EXTRA_NDIM}")
    array = _little_endian(array)
    if array.dtype.str not in EXTRA_DTYPES:
        raise TypeError(f"extra_arrays[{name!r}] has dtype {array.dtype}, which a model "
                        f"file cannot hold")
    return array


def _write_atomically(path, members):
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = _create_temporary(directory, os.path.basename(path))
    try:
        try:
            stream = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with stream:
            with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED,
                                 allowZip64=True) as archive:
                for name, array in members:
                    _write_member(archive, name, array)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _create_temporary(directory, basename):
    """A new file beside the target; os.open applies the umask, as open() would."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = os.path.join(directory,
                                 f".{basename[:100]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory!r}")


def _write_member(archive, name, array):
    """Write one array as ``name.npy``, uncompressed, with numpy's .npy writer."""
    info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    force_zip64 = array.nbytes + _MAX_NPY_HEADER_READ > zipfile.ZIP64_LIMIT // 2
    with archive.open(info, "w", force_zip64=force_zip64) as member:
        npy_format.write_array(member, array, allow_pickle=False)


def _fsync_directory(directory):
    """Make the rename durable; best effort (not every system can fsync a directory)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# =============================================================================
# Loading
# =============================================================================
@overload
def load(path: str | os.PathLike[str], *, with_optimizer: Literal[False] = False) -> RNN: ...


@overload
def load(path: str | os.PathLike[str], *,
         with_optimizer: Literal[True]) -> tuple[RNN, Optimizer | None]: ...


@overload
def load(path: str | os.PathLike[str], *,
         with_optimizer: bool) -> RNN | tuple[RNN, Optimizer | None]: ...


def load(path: str | os.PathLike[str], *,
         with_optimizer: bool = False) -> RNN | tuple[RNN, Optimizer | None]:
    """Read a model saved by :func:`save` (or ``RNN.save``), without pickle.

    Parameters
    ----------
    path : str or os.PathLike
    with_optimizer : bool, default False
        Also return the saved optimizer.

    Returns
    -------
    model : elman.RNN
        The model, whose predictions are bit-identical to the saved model's.
    optimizer : elman.optimizers.Optimizer or None
        Only with ``with_optimizer=True``: the saved optimizer with its moments and
        step count, or None when the file holds no optimizer.

    Raises
    ------
    ModelFileError
        (a ValueError) The file is truncated, corrupted, tampered with, written by
        a newer elman, or not an elman model file. Nothing is returned half-built.
    OSError
        The file cannot be opened (missing, a directory, no permission).

    See Also
    --------
    load_with_metadata : also returns ``extra`` and ``extra_arrays``.
    """
    if not isinstance(with_optimizer, bool):
        raise TypeError(f"with_optimizer must be True or False; got {with_optimizer!r}")
    loaded = load_with_metadata(path)
    if with_optimizer:
        return loaded.model, loaded.optimizer
    return loaded.model


def load_with_metadata(path: str | os.PathLike[str]) -> LoadedModel:
    """Read everything a model file holds: model, optimizer and metadata.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    LoadedModel
        ``.model``, ``.optimizer`` (or None), ``.extra`` (or None),
        ``.extra_arrays``, ``.elman_version``, ``.format_version``.

    Raises
    ------
    ModelFileError, OSError
        As :func:`load`.
    """
    loaded: LoadedModel = _read(path, read_arrays=True)
    return loaded


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated JSON header of a model file, without reading its arrays.

    The archive's structure and every member's ``.npy`` header are checked as
    :func:`load` checks them; weights are not read, so a corrupted weight is only
    detected by :func:`load`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        The ``__format__`` JSON object (see the module documentation): ``format``,
        ``format_version``, ``elman_version``, ``model``, ``arrays``,
        ``optimizer``, ``extra``.

    Raises
    ------
    ModelFileError, OSError
        As :func:`load`.
    """
    header: dict[str, Any] = _read(path, read_arrays=False)
    return header


def _read(path, read_arrays):
    path = _check_path(path)
    # Opening errors (missing file, a directory, permissions) stay OSErrors.
    with open(path, "rb") as stream:
        try:
            return _Reader(stream, path).run(read_arrays)
        except ModelFileError:
            raise
        except _CORRUPTION_ERRORS as exc:
            raise ModelFileError(
                f"{path}: cannot read this elman model file; it is truncated, corrupted or "
                f"not a model file ({type(exc).__name__}: {exc})"
            ) from exc


class _BoundedHeaderReader:
    """File-like view of a member for numpy's .npy header parser.

    Refuses any single read larger than ``limit`` (a crafted header length cannot
    make it read a huge block) and counts the bytes consumed.
    """

    def __init__(self, raw, limit, what):
        self._raw = raw
        self._limit = limit
        self._what = what
        self.consumed = 0

    def read(self, size=-1):
        if size is None or size < 0 or size > self._limit:
            raise ModelFileError(f"{self._what}: its .npy header claims to be longer than "
                                 f"{self._limit} bytes")
        data = self._raw.read(size)
        self.consumed += len(data)
        return data


class _Reader:
    """One pass over one open file: directory, header JSON, .npy headers, then data."""

    def __init__(self, stream, path):
        self.stream = stream
        self.path = path

    def fail(self, message):
        return ModelFileError(f"{self.path}: {message}")

    def run(self, read_arrays):
        file_size = os.fstat(self.stream.fileno()).st_size
        with zipfile.ZipFile(self.stream) as archive:
            self.archive = archive
            infos = self.check_directory(file_size)
            header = self.read_format(infos)
            expected = self.expected_arrays(header)
            self.check_members(infos, expected)
            # Every .npy header is checked before any array is allocated.
            offsets = {name: self.check_npy_header(infos[name + ".npy"], dtype, shape)
                       for name, (dtype, shape) in expected.items()}
            if not read_arrays:
                return header
            arrays = {name: self.read_data(infos[name + ".npy"], dtype, shape, offsets[name])
                      for name, (dtype, shape) in expected.items()}
        return self.build(header, arrays)

    # -- the archive ---------------------------------------------------------------
    def check_directory(self, file_size):
        infos = self.archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise self.fail(f"the archive has {len(infos)} members; a model file has at "
                            f"most {MAX_MEMBERS}")
        by_name = {}
        total = 0
        for info in infos:
            name = info.filename
            if name in by_name:
                raise self.fail(f"member {name!r} appears twice in the archive; a model "
                                f"file names each array once")
            by_name[name] = info
            if info.flag_bits & 0x1:
                raise self.fail(f"member {name!r} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED:
                raise self.fail(
                    f"member {name!r} is compressed (method {info.compress_type}); model "
                    f"files store their arrays uncompressed"
                )
            if info.compress_size != info.file_size:
                raise self.fail(
                    f"member {name!r}: the zip directory gives {info.file_size} bytes "
                    f"uncompressed but {info.compress_size} stored, for an uncompressed "
                    f"member"
                )
            total += info.file_size
            if info.header_offset < 0 or info.header_offset + info.file_size > file_size:
                raise self.fail(f"member {name!r} claims {info.file_size} bytes at offset "
                                f"{info.header_offset}, beyond the file's {file_size} bytes")
        if total > file_size:
            raise self.fail(f"the members claim {total} bytes in all, more than the file's "
                            f"{file_size}")
        if FORMAT_MEMBER + ".npy" not in by_name:
            names = sorted(by_name)[:10]
            raise self.fail(f"not an elman model file: no {FORMAT_MEMBER}.npy member "
                            f"(members: {names})")
        return by_name

    def check_members(self, infos, expected):
        wanted = {name + ".npy" for name in expected} | {FORMAT_MEMBER + ".npy"}
        unexpected = sorted(set(infos) - wanted)
        missing = sorted(wanted - set(infos))
        if unexpected:
            raise self.fail(f"unexpected member(s) {unexpected} in the archive")
        if missing:
            raise self.fail(f"missing member(s) {missing}; the header lists them")

    def check_npy_header(self, info, dtype, shape):
        """Check one member's .npy header; return the byte offset of its data."""
        what = f"member {info.filename!r}"
        with self.archive.open(info) as raw:
            reader = _BoundedHeaderReader(raw, _MAX_NPY_HEADER_READ, f"{self.path}: {what}")
            found_shape, fortran_order, found_dtype = self.read_npy_header(reader, what)
        if found_dtype.str != dtype or found_dtype.hasobject:
            raise self.fail(f"{what} has dtype {found_dtype.str!r} ({found_dtype}); expected "
                            f"{dtype!r} ({np.dtype(dtype)})")
        if tuple(found_shape) != tuple(shape):
            raise self.fail(f"{what} has shape {shape_text(found_shape)}; expected "
                            f"{shape_text(shape)}")
        if fortran_order:
            raise self.fail(f"{what} is stored in Fortran order; model files use C order")
        data_bytes = math.prod(shape) * np.dtype(dtype).itemsize
        if info.file_size != reader.consumed + data_bytes:
            raise self.fail(
                f"{what} is {info.file_size} bytes in the zip directory, but its .npy "
                f"header ({reader.consumed} bytes) and shape {shape_text(shape)} of "
                f"{dtype} imply {reader.consumed + data_bytes}"
            )
        return reader.consumed

    def read_npy_header(self, reader, what):
        """(shape, fortran_order, dtype) from numpy's own .npy header parser."""
        version = npy_format.read_magic(reader)
        if version == (1, 0):
            read_header = npy_format.read_array_header_1_0
        elif version == (2, 0):
            read_header = npy_format.read_array_header_2_0
        else:
            raise self.fail(f"{what} has .npy format version {version}; model files use "
                            f"1.0 or 2.0")
        try:
            return read_header(reader)
        except ModelFileError:
            raise
        except (ValueError, TypeError, SyntaxError, OverflowError, RecursionError,
                tokenize.TokenError) as exc:
            # numpy parses the header with ast.literal_eval, falling back to a
            # tokenize-based filter; a garbled header can fail in any of these ways.
            raise self.fail(f"{what} has an invalid .npy header ({type(exc).__name__}: "
                            f"{exc})") from exc

    def read_data(self, info, dtype, shape, offset):
        """The member's array; its size is already known to match the directory."""
        array = np.empty(shape, dtype=dtype)
        buffer = array.reshape(-1).view(np.uint8)
        with self.archive.open(info) as raw:
            if len(raw.read(offset)) != offset:
                raise self.fail(f"member {info.filename!r} ends inside its .npy header")
            filled = 0
            while filled < buffer.size:
                chunk = raw.read(min(_READ_CHUNK, buffer.size - filled))
                if not chunk:
                    raise self.fail(f"member {info.filename!r} ends after {filled} of "
                                    f"{buffer.size} data bytes")
                buffer[filled:filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                filled += len(chunk)
            # Reaching the end is what makes zipfile compare the CRC.
            if raw.read(1):
                raise self.fail(f"member {info.filename!r} has data after its array")
        if array.dtype.kind == "b":
            array = buffer.reshape(array.shape) != 0  # canonical 0/1 booleans
        return array

    # -- the JSON header -------------------------------------------------------------
    def read_format(self, infos):
        info = infos[FORMAT_MEMBER + ".npy"]
        what = f"member {info.filename!r}"
        with self.archive.open(info) as raw:
            reader = _BoundedHeaderReader(raw, _MAX_NPY_HEADER_READ, f"{self.path}: {what}")
            shape, fortran_order, dtype = self.read_npy_header(reader, what)
            if dtype.str != "|u1" or len(shape) != 1:
                raise self.fail(f"{what} must be a 1-D uint8 array of UTF-8 JSON; got dtype "
                                f"{dtype.str!r}, shape {shape_text(shape)}")
            if shape[0] > MAX_FORMAT_BYTES:
                raise self.fail(f"{what} holds {shape[0]} bytes of JSON; the limit is "
                                f"{MAX_FORMAT_BYTES}")
            if info.file_size != reader.consumed + shape[0]:
                raise self.fail(f"{what} is {info.file_size} bytes in the zip directory; its "
                                f".npy header implies {reader.consumed + shape[0]}")
            data = raw.read(shape[0])
            if len(data) != shape[0] or raw.read(1):
                raise self.fail(f"{what} does not hold the {shape[0]} bytes it declares")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not valid UTF-8 ({exc})") from exc
        try:
            header = json.loads(text, object_pairs_hook=_no_duplicate_keys,
                                parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise self.fail(f"{what} is not valid JSON ({exc})") from exc
        return self.check_format(header)

    def check_format(self, header):
        if not isinstance(header, dict):
            raise self.fail(f"the {FORMAT_MEMBER} JSON must be an object; got "
                            f"{type(header).__name__}")
        if header.get("format") != FORMAT_NAME:
            raise self.fail(f"not an elman model file: format is {header.get('format')!r}, "
                            f"expected {FORMAT_NAME!r}")
        version = header.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise self.fail(f"format_version must be a positive integer; got {version!r}")
        if version > FORMAT_VERSION:
            writer = header.get("elman_version")
            writer = f" by elman {writer}" if isinstance(writer, str) and len(writer) < 40 else ""
            raise self.fail(
                f"written with format version {version}{writer}; this elman "
                f"({__version__}) reads version {FORMAT_VERSION} and older: upgrade elman "
                f"to load it"
            )
        self.check_keys(header, TOP_LEVEL_KEYS, FORMAT_MEMBER)
        if not isinstance(header["elman_version"], str) or len(header["elman_version"]) > 100:
            raise self.fail(f"elman_version must be a short string; got "
                            f"{header['elman_version']!r}")
        model = header["model"]
        self.check_keys(model, MODEL_KEYS, "model")
        if model["class"] != "RNN":
            raise self.fail(f"model.class is {model['class']!r}; this elman reads 'RNN'")
        self.check_config(model["config"])
        if header["optimizer"] is not None:
            self.check_optimizer(header["optimizer"])
        if header["extra"] is not None and not isinstance(header["extra"], dict):
            raise self.fail(f"extra must be a JSON object or null; got "
                            f"{type(header['extra']).__name__}")
        if not isinstance(header["arrays"], list):
            raise self.fail(f"arrays must be a list; got {type(header['arrays']).__name__}")
        return header

    def check_keys(self, mapping, keys, where):
        if not isinstance(mapping, dict):
            raise self.fail(f"{where} must be a JSON object; got {type(mapping).__name__}")
        missing = [k for k in keys if k not in mapping]
        unexpected = sorted(set(mapping) - set(keys))
        if missing or unexpected:
            raise self.fail(f"{where} must have exactly the keys {list(keys)}; missing "
                            f"{missing}, unexpected {unexpected}")

    def check_config(self, config):
        if not isinstance(config, dict):
            raise self.fail(f"model.config must be a JSON object; got {type(config).__name__}")
        for key in SIZE_KEYS:
            value = config.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise self.fail(f"model.config[{key!r}] must be an integer >= 1; got "
                                f"{value!r}")
        if not isinstance(config.get("return_sequences"), bool):
            raise self.fail(f"model.config['return_sequences'] must be true or false; got "
                            f"{config.get('return_sequences')!r}")
        if config.get("dtype") not in ("float32", "float64"):
            raise self.fail(f"model.config['dtype'] must be 'float32' or 'float64'; got "
                            f"{config.get('dtype')!r}")
        seed = config.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or seed < 0):
            raise self.fail(f"model.config['seed'] must be null or an integer >= 0; got "
                            f"{seed!r}")
        if config.get("nonlinearity", "tanh") not in NONLINEARITIES:
            raise self.fail(f"model.config['nonlinearity'] must be one of "
                            f"{list(NONLINEARITIES)}; got {config.get('nonlinearity')!r}")
        if config.get("init", "uniform") not in INIT_SCHEMES:
            raise self.fail(f"model.config['init'] must be one of {list(INIT_SCHEMES)}; got "
                            f"{config.get('init')!r}")
        for key in ("init_scale", "spectral_radius"):
            try:
                check_float(key, config.get(key), 0.0, allow_none=True, strict=True)
            except (TypeError, ValueError) as exc:
                raise self.fail(f"model.config[{key!r}]: {exc}") from exc
        n_params = _layout.parameter_count(*(config[k] for k in SIZE_KEYS))
        if n_params > MAX_PARAMETERS:
            raise self.fail(f"model.config describes {n_params} parameters; model files hold "
                            f"at most {MAX_PARAMETERS}")

    def check_optimizer(self, entry):
        self.check_keys(entry, OPTIMIZER_KEYS, "optimizer")
        if not isinstance(entry["class"], str):
            raise self.fail(f"optimizer.class must be a string; got {entry['class']!r}")
        if not isinstance(entry["config"], dict):
            raise self.fail(f"optimizer.config must be a JSON object; got "
                            f"{type(entry['config']).__name__}")
        step = entry["step_count"]
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 2**63:
            raise self.fail(f"optimizer.step_count must be an integer in [0, 2**63); got "
                            f"{step!r}")
        if not isinstance(entry["has_state"], bool):
            raise self.fail(f"optimizer.has_state must be true or false; got "
                            f"{entry['has_state']!r}")

    def expected_arrays(self, header):
        """name -> (dtype string, shape) for every array member, in file order.

        Weights and the optimizer state are what the configuration implies; the
        header's list must agree with it exactly. Extra arrays are as listed.
        """
        config = header["model"]["config"]
        I, H, O, L = (config[k] for k in SIZE_KEYS)
        float_dtype = np.dtype(config["dtype"]).newbyteorder("<").str
        implied = {name: (float_dtype, shape)
                   for name, shape in _layout.weight_shapes(I, H, O, L).items()}
        optimizer = header["optimizer"]
        if optimizer is not None and optimizer["has_state"]:
            implied[OPTIMIZER_STATE] = (float_dtype,
                                        (2, _layout.parameter_count(I, H, O, L)))
        expected = {}
        for index, entry in enumerate(header["arrays"]):
            where = f"arrays[{index}]"
            self.check_keys(entry, ARRAY_ENTRY_KEYS, where)
            name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
            if not isinstance(name, str):
                raise self.fail(f"{where}.name must be a string; got {name!r}")
            if name in expected:
                raise self.fail(f"array {name!r} is listed twice in the header")
            if (not isinstance(shape, list) or len(shape) > MAX_EXTRA_NDIM
                    or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                               for s in shape)):
                raise self.fail(f"{where}.shape must be a list of at most {MAX_EXTRA_NDIM} "
                                f"integers >= 0; got {shape!r}")
            shape = tuple(shape)
            if name in implied:
                if (dtype, shape) != implied[name]:
                    want_dtype, want_shape = implied[name]
                    raise self.fail(
                        f"the header lists array {name!r} as {dtype!r} {shape_text(shape)}; "
                        f"the model configuration implies {want_dtype!r} "
                        f"{shape_text(want_shape)}"
                    )
            elif name.startswith(EXTRA_PREFIX):
                if not EXTRA_NAME.fullmatch(name[len(EXTRA_PREFIX):]):
                    raise self.fail(f"{where}.name {name!r} is not a valid extra array name")
                if dtype not in EXTRA_DTYPES:
                    raise self.fail(f"extra array {name!r} has dtype {dtype!r}; allowed: "
                                    f"{list(EXTRA_DTYPES)}")
            else:
                raise self.fail(f"the header lists an unexpected array {name!r}")
            expected[name] = (dtype, shape)
        missing = [name for name in implied if name not in expected]
        if missing:
            raise self.fail(f"the header does not list array(s) {missing}, which the model "
                            f"configuration implies")
        return expected

    # -- the objects ---------------------------------------------------------------
    def build(self, header, arrays):
        # Files written before the nonlinearity was configurable hold tanh models.
        config = {"nonlinearity": "tanh", **header["model"]["config"]}
        weights = {name: arrays[name] for name in _layout.weight_shapes(
            *(config[k] for k in SIZE_KEYS))}
        # The saved weights are the model's: no initial weights are drawn.
        try:
            model = RNN._from_parameters(config, weights)
        except TypeError as exc:  # a configuration key RNN does not take
            raise self.fail(f"model.config is not valid for elman.RNN: {exc}") from exc
        except ValueError as exc:  # check_config accepted the configuration
            raise self.fail(f"invalid weights: {exc}") from exc
        if model.get_config() != config:
            raise self.fail(f"model.config {config} does not round-trip through elman.RNN "
                            f"(got {model.get_config()})")

        optimizer = None
        entry = header["optimizer"]
        if entry is not None:
            try:
                optimizer = optimizer_from_config(entry["class"], entry["config"])
            except (TypeError, ValueError) as exc:
                raise self.fail(f"optimizer {entry['class']!r} with config "
                                f"{entry['config']}: {exc}") from exc
            optimizer.set_state({"state": arrays.get(OPTIMIZER_STATE),
                                 "step_count": entry["step_count"]})

        extra_arrays = {name[len(EXTRA_PREFIX):]: array for name, array in arrays.items()
                        if name.startswith(EXTRA_PREFIX)}
        return LoadedModel(model=model, optimizer=optimizer, extra=header["extra"],
                           extra_arrays=extra_arrays, elman_version=header["elman_version"],
                           format_version=header["format_version"])


def _no_duplicate_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name):
    raise ValueError(f"{name} is not a JSON number")
