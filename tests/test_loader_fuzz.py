"""Loader fuzzing: random byte mutations of valid model files, for a bounded time.

Every mutant either loads as exactly the original (model, weights, optimizer
state, metadata: the mutation hit bytes that carry no information, such as a
timestamp) or is refused with ``ModelFileError`` (a ValueError) or ``OSError``;
never another exception type, never a crash, never a hang (a watchdog ends the
process with a traceback), and never a large allocation: the tracemalloc peak of
each load stays below a fixed multiple of the file size.

Faults injected, from a fixed seed (so a failure names a mutant that can be
rebuilt exactly): bit flips, random byte values, truncation, insertion of random
bytes, zeroed ranges, deleted ranges, duplicated ranges, swapped ranges, and
"0xFF" ranges (sizes and offsets turned into huge numbers), one to three per
mutant. Half of them aim at the bytes where parsing happens (zip local headers,
the central directory and its end record, ``.npy`` headers, the JSON header);
the rest land anywhere. A second family rewrites a member's content and
recomputes the zip checksums, so the change gets past the CRC and reaches the
``.npy`` header and JSON parsers. ``tests/test_model_file.py`` tests the crafted
cases one by one; this module throws volume at the same code.
"""

import contextlib
import faulthandler
import io
import json
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np

import elman
from elman.model_file import ModelFileError, load_with_metadata, save
from elman.optimizers import SGD, Adam

# Mutants per base file, from a fixed seed. Two base files, two families: about
# 1,400 loads, a few seconds in all.
RAW_MUTANTS = 400
MEMBER_MUTANTS = 150
SEED = 20240611
# Each load may allocate at most this multiple of the file's size, plus a constant
# for the interpreter's own bookkeeping (zipfile's directory, the parsed JSON).
PEAK_FACTOR = 8
PEAK_CONSTANT = 1 << 20
HANG_SECONDS = 60
TIME_LIMIT = 30.0  # seconds per test: a guard; the run takes a few


def _base_files(directory):
    """Two valid files exercising every kind of member, and what they hold."""
    rng = np.random.default_rng(0)
    files = {}

    # float64, 2 layers, Adam moments, JSON metadata and extra arrays.
    model = elman.RNN(3, 5, 2, num_layers=2, seed=1, init="orthogonal")
    optimizer = Adam(lr=0.01)
    X = rng.normal(size=(4, 6, 3))
    Y = rng.normal(size=(4, 6, 2))
    for _ in range(3):
        _, grads = model.loss_and_grad(X, Y)
        optimizer.step(model, grads)
    path = directory / "adam64.npz"
    save(model, path, optimizer=optimizer,
         extra={"columns": ["a", "b", "c"], "window": 6, "note": "fuzz base ✓"},
         extra_arrays={"scaler.mean": np.array([1.0, 2.0, 3.0]),
                       "scaler.scale": np.array([0.5, 1.5, 2.5]),
                       "mask": np.array([True, False, True])})
    files["adam64"] = path

    # float32, many-to-one, SGD before its first step (no moments), no metadata.
    model = elman.RNN(2, 4, 1, return_sequences=False, dtype="float32", seed=2)
    path = directory / "sgd32.npz"
    save(model, path, optimizer=SGD(lr=0.1, momentum=0.9))
    files["sgd32"] = path
    return files


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def _assert_identical(loaded, original):
    """A load that succeeded must be the original, bit for bit."""
    assert loaded.model.get_config() == original.model.get_config()
    assert _same(loaded.model.parameters, original.model.parameters)
    if original.optimizer is None:
        assert loaded.optimizer is None
    else:
        assert type(loaded.optimizer) is type(original.optimizer)
        assert loaded.optimizer.get_config() == original.optimizer.get_config()
        assert loaded.optimizer.step_count[0] == original.optimizer.step_count[0]
        if original.optimizer.state is None:
            assert loaded.optimizer.state is None
        else:
            assert _same(loaded.optimizer.state, original.optimizer.state)
    assert loaded.extra == original.extra
    assert set(loaded.extra_arrays) == set(original.extra_arrays)
    for name, array in original.extra_arrays.items():
        assert _same(loaded.extra_arrays[name], array)


def _assert_what_the_file_says(loaded, path):
    """A rewritten member with valid CRCs may be a different, valid model file; then
    the model must be exactly what the file holds (NumPy's own reader, no pickle)."""
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(bytes(archive["__format__"]).decode("utf-8"))
        assert loaded.model.get_config() == header["model"]["config"]
        for name, weight in loaded.model.get_weights().items():
            assert _same(weight, archive[name]), name
        if loaded.optimizer is not None and loaded.optimizer.state is not None:
            assert _same(loaded.optimizer.state, archive["optimizer.state"])
        for name, array in loaded.extra_arrays.items():
            assert _same(array, archive["extra." + name]), name
    assert loaded.extra == header["extra"]
    assert np.isfinite(loaded.model.parameters).all()
    X = np.zeros((1, 2, loaded.model.input_size))
    assert np.isfinite(loaded.model.forward(X)).all()


def _structural_ranges(data):
    """Byte ranges where parsing happens: zip headers, directory, .npy headers, JSON."""
    ranges = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        for info in infos:
            start = info.header_offset
            name_length = len(info.filename.encode())
            local_end = start + 30 + name_length + len(info.extra)
            ranges.append((start, local_end))               # local file header
            npy_end = data.index(b"\n", local_end) + 1       # .npy magic + header
            ranges.append((local_end, npy_end))
            if info.filename == "__format__.npy":
                ranges.append((npy_end, local_end + info.file_size))  # the JSON
    # The end-of-central-directory record says where the directory starts.
    end_record = data.rindex(b"PK\x05\x06")
    directory_start = struct.unpack_from("<I", data, end_record + 16)[0]
    ranges.append((directory_start, len(data)))              # central directory + EOCD
    return ranges


def _mutate(data, rng, ranges):
    """One to three random faults; returns (mutant bytes, description)."""
    mutant = bytearray(data)
    done = []
    for _ in range(int(rng.integers(1, 4))):
        if not mutant:
            break
        if rng.random() < 0.5:
            start, stop = ranges[int(rng.integers(len(ranges)))]
            stop = min(stop, len(mutant))
            start = min(start, max(0, stop - 1))
        else:
            start, stop = 0, len(mutant)
        position = int(rng.integers(start, max(start + 1, stop)))
        length = int(rng.integers(1, 65))
        kind = ["flip", "byte", "truncate", "insert", "zero", "delete", "duplicate",
                "swap", "ones"][int(rng.integers(9))]
        if kind == "flip":
            mutant[position] ^= 1 << int(rng.integers(8))
        elif kind == "byte":
            mutant[position] = int(rng.integers(256))
        elif kind == "truncate":
            del mutant[position:]
        elif kind == "insert":
            mutant[position:position] = rng.integers(0, 256, size=length, dtype=np.uint8).tobytes()
        elif kind == "zero":
            mutant[position:position + length] = bytes(len(mutant[position:position + length]))
        elif kind == "ones":
            mutant[position:position + length] = b"\xff" * len(mutant[position:position + length])
        elif kind == "delete":
            del mutant[position:position + length]
        elif kind == "duplicate":
            mutant[position:position] = mutant[position:position + length]
        else:  # swap two ranges of the same length
            other = int(rng.integers(len(mutant)))
            a = bytes(mutant[position:position + length])
            b = bytes(mutant[other:other + length])
            n = min(len(a), len(b))
            mutant[position:position + n], mutant[other:other + n] = b[:n], a[:n]
        done.append(f"{kind}@{position}+{length}")
    return bytes(mutant), " ".join(done)


def _member_mutant(data, rng):
    """Rewrite one member's content (in its first bytes mostly) with valid CRCs."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [(info.filename, bytearray(archive.read(info))) for info in archive.infolist()]
    index = 0 if rng.random() < 0.4 else int(rng.integers(len(members)))
    name, content = members[index]
    head = min(len(content), 128)
    done = []
    for _ in range(int(rng.integers(1, 4))):
        kind = ["printable", "digit", "byte", "truncate", "extend", "json-number"][
            int(rng.integers(6))]
        if not content:
            break
        position = int(rng.integers(head)) if rng.random() < 0.7 else int(
            rng.integers(len(content)))
        position = min(position, len(content) - 1)
        if kind == "printable":
            content[position] = int(rng.integers(32, 127))
        elif kind == "digit":
            content[position] = ord("0123456789"[int(rng.integers(10))])
        elif kind == "byte":
            content[position] = int(rng.integers(256))
        elif kind == "truncate":
            del content[position:]
        elif kind == "extend":
            content.extend(rng.integers(0, 256, size=int(rng.integers(1, 32)),
                                        dtype=np.uint8).tobytes())
        else:
            # A number in the text (a shape, a size, a step count) made enormous.
            text = bytes(content)
            digits = [i for i in range(len(text)) if chr(text[i]).isdigit()]
            if digits:
                at = digits[int(rng.integers(len(digits)))]
                content[at:at + 1] = b"9999999999999"
        done.append(f"{kind}@{position}")
    members[index] = (name, content)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for member, payload in members:
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, bytes(payload))
    return buffer.getvalue(), f"member {name}: " + " ".join(done)


@contextlib.contextmanager
def _watchdog(seconds):
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _fuzz(tmp_path, make_mutant, count, label, check_loaded):
    files = _base_files(tmp_path)
    rng = np.random.default_rng([SEED, zlib.crc32(label.encode())])
    target = tmp_path / "mutant.npz"
    outcomes = {"refused": 0, "identical": 0, "loaded-as-written": 0}
    causes = {}
    largest_peak = 0
    started = time.perf_counter()
    tracemalloc.start()
    try:
        for base_name, path in files.items():
            data = path.read_bytes()
            original = load_with_metadata(path)
            ranges = _structural_ranges(data)
            for index in range(count):
                mutant, how = make_mutant(data, rng, ranges)
                where = f"{label} {base_name} mutant {index}: {how}"
                target.write_bytes(mutant)
                tracemalloc.reset_peak()
                baseline = tracemalloc.get_traced_memory()[0]
                with _watchdog(HANG_SECONDS), warnings.catch_warnings():
                    # numpy may warn while parsing a garbled .npy header; the load
                    # must still end in one of the allowed ways.
                    warnings.simplefilter("ignore")
                    try:
                        loaded = load_with_metadata(target)
                    except (ModelFileError, ValueError, OSError) as exc:
                        outcomes["refused"] += 1
                        cause = type(exc.__cause__).__name__ if exc.__cause__ else "-"
                        causes[(type(exc).__name__, cause)] = causes.get(
                            (type(exc).__name__, cause), 0) + 1
                        loaded = None
                    except BaseException as exc:  # noqa: BLE001 - reported with the mutant
                        raise AssertionError(
                            f"{where}: {type(exc).__name__}: {exc}") from exc
                peak = tracemalloc.get_traced_memory()[1] - baseline
                largest_peak = max(largest_peak, peak)
                assert peak <= PEAK_FACTOR * max(len(mutant), len(data)) + PEAK_CONSTANT, (
                    f"{where}: loading allocated {peak} bytes for a {len(mutant)}-byte file")
                if loaded is not None:
                    try:
                        identical = check_loaded(loaded, original, target)
                    except AssertionError as exc:
                        raise AssertionError(f"{where}: loaded a wrong model") from exc
                    outcomes["identical" if identical else "loaded-as-written"] += 1
                assert time.perf_counter() - started < TIME_LIMIT, f"{label}: too slow"
    finally:
        tracemalloc.stop()
    return outcomes, causes, largest_peak


def test_raw_byte_mutations(tmp_path, request):
    def identical(loaded, original, path):
        # The CRCs protect every member: what loads must be the original.
        _assert_identical(loaded, original)
        return True

    outcomes, causes, peak = _fuzz(tmp_path, _mutate, RAW_MUTANTS, "raw", identical)
    _report(request, "raw byte mutations", outcomes, causes, peak)
    assert outcomes["refused"] + outcomes["identical"] == 2 * RAW_MUTANTS
    # Most mutants are broken; a generator that produced only harmless ones would
    # test nothing.
    assert outcomes["refused"] >= 0.8 * 2 * RAW_MUTANTS, outcomes


def test_member_content_mutations_with_valid_checksums(tmp_path, request):
    def make(data, rng, ranges):
        return _member_mutant(data, rng)

    def as_written(loaded, original, path):
        try:
            _assert_identical(loaded, original)
            return True
        except AssertionError:
            _assert_what_the_file_says(loaded, path)
            return False

    outcomes, causes, peak = _fuzz(tmp_path, make, MEMBER_MUTANTS, "member", as_written)
    _report(request, "member rewrites (valid CRCs)", outcomes, causes, peak)
    assert sum(outcomes.values()) == 2 * MEMBER_MUTANTS
    assert outcomes["refused"] >= 0.5 * 2 * MEMBER_MUTANTS, outcomes


def _report(request, what, outcomes, causes, peak):
    config = request.config
    if config.getoption("verbose", 0) <= 0:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    top = ", ".join(f"{e}<-{c} {n}" for (e, c), n in
                    sorted(causes.items(), key=lambda item: -item[1])[:6])
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(f"[loader fuzz] {what}: {outcomes}; largest tracemalloc peak "
                            f"of a load {peak / 1024:.0f} KiB; most common errors: {top}")


def test_structural_ranges_cover_the_parsed_bytes(tmp_path):
    """The targeted half of the mutations really aims at headers and the JSON."""
    files = _base_files(tmp_path)
    for path in files.values():
        data = path.read_bytes()
        ranges = _structural_ranges(data)
        covered = sum(stop - start for start, stop in ranges)
        assert 0 < covered < len(data)
        json_start = data.index(b'{"format"')
        assert any(start <= json_start < stop for start, stop in ranges)
        assert any(data[start:start + 4] == b"PK\x01\x02" for start, _ in ranges)
        assert any(data[start:start + 4] == b"PK\x03\x04" for start, _ in ranges)
