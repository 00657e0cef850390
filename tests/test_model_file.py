"""Model files: exact round trips, atomic writes, and loading hostile files safely.

Most tests run once: the file format does not depend on the backend. The round
trips that compare predictions and continued training take the ``backend`` fixture,
since both sides of each comparison run on the same kernels.
"""

import copy
import io
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import numpy.lib.format as npy_format
import pytest

import elman
from elman import model_file
from elman._layout import weight_shapes
from elman.model_file import ModelFileError, load, load_with_metadata, read_metadata, save
from elman.optimizers import SGD, Adam


# ----------------------------------------------------------------------------- helpers
def make_model(dtype="float64", num_layers=1, return_sequences=True, seed=0, **kwargs):
    return elman.RNN(3, 5, 2, num_layers=num_layers, return_sequences=return_sequences,
                     dtype=dtype, seed=seed, **kwargs)


def make_data(model, batch=4, steps=6, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, steps, model.input_size))
    if model.return_sequences:
        Y = rng.normal(size=(batch, steps, model.output_size))
    else:
        Y = rng.normal(size=(batch, model.output_size))
    return X, Y


def train(model, optimizer, X, Y, steps):
    """A hand-written training loop (what fit does, minus the conveniences)."""
    for _ in range(steps):
        _, grads = model.loss_and_grad(X, Y)
        optimizer.step(model, grads)


def assert_same_model(loaded, original):
    assert type(loaded) is elman.RNN
    assert loaded.get_config() == original.get_config()
    assert loaded.dtype == original.dtype
    weights, expected = loaded.get_weights(), original.get_weights()
    assert list(weights) == list(expected)
    for name in expected:
        assert weights[name].dtype == expected[name].dtype, name
        assert np.array_equal(weights[name], expected[name]), name


def read_members(path):
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def write_members(path, members, compression=zipfile.ZIP_STORED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicated names
        with zipfile.ZipFile(path, "w", compression=compression) as archive:
            for name, data in members:
                archive.writestr(name, data)


def npy_bytes(array, allow_pickle=False):
    buffer = io.BytesIO()
    npy_format.write_array(buffer, np.asarray(array), allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_header(descr, shape, data=b"", fortran_order=False):
    """A .npy member with any header we like and whatever data follows it."""
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": fortran_order, "shape": shape})
    return buffer.getvalue() + data


def header_of(path):
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(npz["__format__"].tobytes())


def json_member(header):
    return npy_bytes(np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8))


def replace_member(members, name, data):
    assert any(n == name for n, _ in members), name
    return [(n, data if n == name else d) for n, d in members]


def with_header(source, target, edit):
    """Copy ``source`` to ``target`` with its JSON header passed through ``edit``."""
    header = header_of(source)
    edit(header)  # edits in place; its return value is ignored
    members = replace_member(read_members(source), "__format__.npy", json_member(header))
    write_members(target, members)
    return target


@pytest.fixture
def saved(tmp_path):
    """A valid two-layer file with an Adam state, metadata and an extra array."""
    model = make_model(num_layers=2, seed=3)
    optimizer = Adam(lr=0.01)
    X, Y = make_data(model)
    train(model, optimizer, X, Y, 2)
    path = tmp_path / "model.npz"
    save(model, path, optimizer=optimizer, extra={"columns": ["a", "b", "c"]},
         extra_arrays={"mean": np.arange(3.0)})
    return path, model, optimizer


def assert_rejected(path, *fragments):
    """load raises ModelFileError (a ValueError) whose message has every fragment."""
    with pytest.raises(ModelFileError) as info:
        load(path, with_optimizer=True)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return info.value


# ------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_round_trip_predictions_bit_identical(backend, tmp_path, dtype, num_layers,
                                              return_sequences):
    model = make_model(dtype, num_layers, return_sequences, seed=7)
    X, _ = make_data(model, batch=5, steps=9)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = elman.load(path)
    assert_same_model(loaded, model)
    expected, loaded_out = model.forward(X), loaded.forward(X)
    assert loaded_out.dtype == np.dtype(dtype)
    assert np.array_equal(loaded_out, expected)
    assert np.array_equal(loaded.predict(X, batch_size=2), model.predict(X, batch_size=2))
    if return_sequences:
        history = X[0, :, :]
        feedback = [0, 1]
        future = np.zeros((3, 3))
        assert np.array_equal(loaded.forecast(history, 4, feedback=feedback, future=future),
                              model.forecast(history, 4, feedback=feedback, future=future))


@pytest.mark.parametrize("init, kwargs", [
    ("uniform", {}),
    ("normal", {"init_scale": 0.05}),
    ("orthogonal", {"spectral_radius": 0.9}),
    ("identity", {"init_scale": 0.5}),
])
def test_initialisation_settings_are_kept_and_weights_are_the_saved_ones(tmp_path, init,
                                                                         kwargs):
    model = make_model(num_layers=2, seed=11, init=init, **kwargs)
    # Change the weights so that re-running the initialisation could not give them.
    model.set_weights({k: v + 0.25 for k, v in model.get_weights().items()})
    save(model, tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    assert_same_model(loaded, model)
    assert loaded.init == init and loaded.seed == 11


def test_seed_none_round_trips(tmp_path):
    model = elman.RNN(2, 3, 1)
    save(model, tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    assert loaded.seed is None
    assert_same_model(loaded, model)


def test_path_types_and_exact_path(tmp_path):
    model = make_model()
    no_suffix = tmp_path / "model"
    save(model, str(no_suffix))          # str path, no suffix
    assert sorted(os.listdir(tmp_path)) == ["model"]   # nothing appended, unlike np.savez
    assert_same_model(load(str(no_suffix)), model)
    other = tmp_path / "other.weights"
    model.save(other)                    # pathlib.Path, through the method
    assert_same_model(elman.load(other), model)
    with pytest.raises(TypeError, match="path"):
        save(model, str(no_suffix).encode())
    with pytest.raises(TypeError, match="path"):
        load(123)
    with pytest.raises(TypeError, match="model"):
        save("not a model", tmp_path / "x.npz")


def test_missing_file_and_directory_are_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")
    with pytest.raises(OSError):
        load(tmp_path)
    with pytest.raises(FileNotFoundError):
        save(make_model(), tmp_path / "no" / "such" / "dir.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_new_file_has_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        save(make_model(), tmp_path / "m.npz")
    finally:
        os.umask(mask)
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o644


def test_same_model_gives_same_bytes(tmp_path):
    model = make_model(num_layers=2)
    save(model, tmp_path / "a.npz", extra={"k": 1})
    save(model, tmp_path / "b.npz", extra={"k": 1})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:  # no clock in the file
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_file_is_a_plain_npz_readable_without_pickle(saved):
    path, model, optimizer = saved
    with np.load(path, allow_pickle=False) as npz:
        assert npz.files == ["__format__", "layers.0.Wxh", "layers.0.Whh", "layers.0.bh",
                             "layers.1.Wxh", "layers.1.Whh", "layers.1.bh", "Why", "by",
                             "optimizer.state", "extra.mean"]
        for name, value in model.get_weights().items():
            assert np.array_equal(npz[name], value)
        assert np.array_equal(npz["optimizer.state"], optimizer.state)
    with zipfile.ZipFile(path) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())


def test_format_header_documents_the_file(saved):
    path, model, optimizer = saved
    header = read_metadata(path)
    assert list(header) == ["format", "format_version", "elman_version", "model", "arrays",
                            "optimizer", "extra"]
    assert header["format"] == "elman-model" and header["format_version"] == 1
    assert header["elman_version"] == elman.__version__
    assert header["model"] == {"class": "RNN", "config": model.get_config()}
    assert header["optimizer"] == {"class": "Adam", "config": optimizer.get_config(),
                                   "step_count": 2, "has_state": True}
    assert header["extra"] == {"columns": ["a", "b", "c"]}
    assert header["arrays"][0] == {"name": "layers.0.Wxh", "dtype": "<f8", "shape": [5, 3]}
    assert header["arrays"][-2] == {"name": "optimizer.state", "dtype": "<f8",
                                    "shape": [2, model.n_params]}
    assert header["arrays"][-1] == {"name": "extra.mean", "dtype": "<f8", "shape": [3]}


# --------------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("make_optimizer", [
    lambda: SGD(lr=0.05),
    lambda: SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
    lambda: Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-7),
], ids=["sgd", "sgd-momentum", "adam"])
def test_training_continues_from_a_file_exactly_as_in_memory(backend, tmp_path, dtype,
                                                              make_optimizer):
    model = make_model(dtype, num_layers=2, seed=5)
    optimizer = make_optimizer()
    X, Y = make_data(model, seed=2)
    train(model, optimizer, X, Y, 3)
    save(model, tmp_path / "checkpoint.npz", optimizer=optimizer)

    loaded, loaded_optimizer = load(tmp_path / "checkpoint.npz", with_optimizer=True)
    assert type(loaded_optimizer) is type(optimizer)
    assert loaded_optimizer.get_config() == optimizer.get_config()
    assert loaded_optimizer.step_count[0] == optimizer.step_count[0] == 3
    assert loaded_optimizer.state.dtype == optimizer.state.dtype == np.dtype(dtype)
    assert np.array_equal(loaded_optimizer.state, optimizer.state)

    train(model, optimizer, X, Y, 4)
    train(loaded, loaded_optimizer, X, Y, 4)
    assert np.array_equal(loaded.parameters, model.parameters)
    assert np.array_equal(loaded_optimizer.state, optimizer.state)
    assert loaded_optimizer.step_count[0] == optimizer.step_count[0] == 7


def test_optimizer_before_its_first_step(tmp_path):
    model = make_model()
    save(model, tmp_path / "m.npz", optimizer=Adam(lr=0.002))
    assert read_metadata(tmp_path / "m.npz")["optimizer"]["has_state"] is False
    _, optimizer = load(tmp_path / "m.npz", with_optimizer=True)
    assert isinstance(optimizer, Adam) and optimizer.lr == 0.002
    assert optimizer.state is None and optimizer.step_count[0] == 0


def test_with_optimizer_selects_the_return_value(tmp_path):
    model = make_model()
    save(model, tmp_path / "m.npz")
    assert isinstance(load(tmp_path / "m.npz"), elman.RNN)
    loaded, optimizer = load(tmp_path / "m.npz", with_optimizer=True)
    assert optimizer is None
    with pytest.raises(TypeError, match="with_optimizer"):
        load(tmp_path / "m.npz", with_optimizer="yes")


def test_optimizer_of_another_model_is_refused(tmp_path):
    other = elman.RNN(2, 7, 1, seed=0)
    optimizer = SGD(momentum=0.5)
    train(other, optimizer, *make_data(other), 1)
    with pytest.raises(ValueError, match="another model"):
        save(make_model(), tmp_path / "m.npz", optimizer=optimizer)
    assert os.listdir(tmp_path) == []


def test_unknown_optimizer_class_is_refused_when_saving(tmp_path):
    class MySGD(SGD):
        pass

    with pytest.raises(ValueError, match="MySGD"):
        save(make_model(), tmp_path / "m.npz", optimizer=MySGD())
    with pytest.raises(TypeError, match="optimizer"):
        save(make_model(), tmp_path / "m.npz", optimizer="adam")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- metadata
def test_metadata_round_trip(tmp_path):
    model = make_model(dtype="float32", return_sequences=False)
    extra = {
        "columns": ["température", "débit", "☃"],
        "scaler": {"mean": [1.5, -2.0], "scale": (0.5, 3.0), "fitted": True},
        "window": np.int64(7),
        "ratio": np.float32(0.25),
        "note": None,
        "nested": [[1, [2, [3]]]],
    }
    arrays = {
        "mean": np.array([1.5, -2.0]),
        "scale32": np.array([[0.5], [3.0]], dtype=np.float32),
        "mask": np.array([True, False, True]),
        "counts": np.array([1, 2, 3], dtype=np.uint16),
        "big_endian": np.array([1.0, 2.0], dtype=">f8"),
        "scalar": np.array(4, dtype=np.int8),
        "empty": np.zeros((0, 3), dtype=np.int64),
        "cube": np.arange(24, dtype=np.float64).reshape(2, 3, 4)[:, ::2, :],  # strided
    }
    save(model, tmp_path / "m.npz", extra=extra, extra_arrays=arrays)
    loaded = load_with_metadata(tmp_path / "m.npz")
    assert isinstance(loaded, model_file.LoadedModel)
    assert_same_model(loaded.model, model)
    assert loaded.optimizer is None
    assert loaded.elman_version == elman.__version__ and loaded.format_version == 1
    assert loaded.extra == {
        "columns": ["température", "débit", "☃"],
        "scaler": {"mean": [1.5, -2.0], "scale": [0.5, 3.0], "fitted": True},
        "window": 7, "ratio": 0.25, "note": None, "nested": [[1, [2, [3]]]],
    }
    assert type(loaded.extra["window"]) is int
    assert sorted(loaded.extra_arrays) == sorted(arrays)
    for name, value in arrays.items():
        got = loaded.extra_arrays[name]
        assert got.shape == value.shape and np.array_equal(got, value), name
        assert got.dtype == value.dtype.newbyteorder("<"), name


def test_no_metadata_means_none_and_empty(tmp_path):
    save(make_model(), tmp_path / "m.npz")
    loaded = load_with_metadata(tmp_path / "m.npz")
    assert loaded.extra is None and loaded.extra_arrays == {}
    save(make_model(), tmp_path / "m.npz", extra={})
    assert load_with_metadata(tmp_path / "m.npz").extra == {}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"extra": ["not", "a", "dict"]}, TypeError, "extra must be a dict"),
    ({"extra": {"x": float("nan")}}, ValueError, r"extra\['x'\]"),
    ({"extra": {"x": [1, float("inf")]}}, ValueError, r"extra\['x'\]\[1\]"),
    ({"extra": {1: "int key"}}, TypeError, "keys must be strings"),
    ({"extra": {"x": np.arange(3)}}, TypeError, "extra_arrays"),
    ({"extra": {"x": {1, 2}}}, TypeError, "set"),
    ({"extra": {"x": b"bytes"}}, TypeError, "bytes"),
    ({"extra": {"big": "x" * (1 << 20)}}, ValueError, "over the limit"),
    ({"extra_arrays": [1, 2]}, TypeError, "extra_arrays must be a dict"),
    ({"extra_arrays": {"x": np.array([object()])}}, TypeError, "object"),
    ({"extra_arrays": {"x": np.array(["text"])}}, TypeError, "dtype"),
    ({"extra_arrays": {"x": np.array([1j])}}, TypeError, "complex"),
    ({"extra_arrays": {"../x": [1]}}, ValueError, "not a valid name"),
    ({"extra_arrays": {"": [1]}}, ValueError, "not a valid name"),
    ({"extra_arrays": {3: [1]}}, ValueError, "not a valid name"),
])
def test_metadata_that_cannot_be_stored_exactly_is_refused(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        save(make_model(), tmp_path / "m.npz", **kwargs)
    assert os.listdir(tmp_path) == []


def test_too_deeply_nested_extra_is_refused(tmp_path):
    nested = []
    for _ in range(model_file.MAX_EXTRA_DEPTH + 2):
        nested = [nested]
    with pytest.raises(ValueError, match="nested"):
        save(make_model(), tmp_path / "m.npz", extra={"deep": nested})


def test_non_finite_weights_are_refused_when_saving(tmp_path):
    model = make_model()
    path = tmp_path / "m.npz"
    save(model, path)
    before = path.read_bytes()
    model._theta[3] = np.nan  # as a diverged run outside fit could leave it
    with pytest.raises(ValueError, match="NaN or inf"):
        save(model, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


# ------------------------------------------------------------------------------- pickle
def test_pickle_round_trip(tmp_path):
    model = make_model(num_layers=2, return_sequences=False, dtype="float32")
    X, _ = make_data(model)
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        clone = pickle.loads(pickle.dumps(model, protocol=protocol))
        assert_same_model(clone, model)
        assert np.array_equal(clone.forward(X), model.forward(X))
        # The lock is recreated, so the clone can train.
        train(clone, SGD(), X, make_data(model)[1], 1)
    save(model, tmp_path / "m.npz")
    from_file = pickle.loads(pickle.dumps(load(tmp_path / "m.npz")))
    assert_same_model(from_file, model)
    assert_same_model(copy.deepcopy(model), model)


# ----------------------------------------------------------------------------- atomicity
class Injected(Exception):
    pass


def fail_on_member(number):
    """A replacement _write_member that writes ``number`` members, then fails."""
    real = model_file._write_member
    calls = []

    def write_member(archive, name, array):
        calls.append(name)
        if len(calls) > number:
            raise Injected(f"failure while writing member {name}")
        real(archive, name, array)

    return write_member


def fail_halfway_through_a_member(archive, name, array):
    if name == "layers.0.Whh":
        with archive.open(zipfile.ZipInfo(name + ".npy"), "w") as member:
            member.write(npy_bytes(array)[:40])
            raise Injected("disk full")
    fail_halfway_through_a_member.real(archive, name, array)


fail_halfway_through_a_member.real = model_file._write_member


def raise_injected(*args, **kwargs):
    raise Injected("injected")


def raise_interrupt(*args, **kwargs):
    raise KeyboardInterrupt


FAULTS = {
    "first-member": ("elman.model_file._write_member", lambda: fail_on_member(0), Injected),
    "json-written-then-weights": ("elman.model_file._write_member", lambda: fail_on_member(1),
                                  Injected),
    "last-member": ("elman.model_file._write_member", lambda: fail_on_member(10), Injected),
    "inside-a-member": ("elman.model_file._write_member",
                        lambda: fail_halfway_through_a_member, Injected),
    "array-writer": ("numpy.lib.format.write_array", lambda: raise_injected, Injected),
    "ctrl-c": ("elman.model_file._write_member", lambda: raise_interrupt, KeyboardInterrupt),
    "fsync": ("os.fsync", lambda: raise_injected, Injected),
    "replace": ("os.replace", lambda: raise_injected, Injected),
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("previous", [True, False], ids=["over-a-file", "new-file"])
def test_failure_at_any_write_step_leaves_the_previous_file(tmp_path, monkeypatch, fault,
                                                            previous):
    target, make_replacement, exception = FAULTS[fault]
    path = tmp_path / "model.npz"
    old = make_model(num_layers=2, seed=1)
    if previous:
        save(old, path, optimizer=Adam(), extra={"version": "old"})
        before = path.read_bytes()
    new = make_model(num_layers=2, seed=2)
    optimizer = Adam()
    train(new, optimizer, *make_data(new), 1)

    monkeypatch.setattr(target, make_replacement())
    with pytest.raises(exception):
        save(new, path, optimizer=optimizer, extra={"version": "new"},
             extra_arrays={"a": np.ones(3)})
    monkeypatch.undo()

    if previous:
        assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left
        assert path.read_bytes() == before
        loaded = load_with_metadata(path)
        assert_same_model(loaded.model, old)
        assert loaded.extra == {"version": "old"}
    else:
        assert os.listdir(tmp_path) == []


def test_saving_over_a_directory_fails_cleanly(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        save(make_model(), tmp_path / "taken")
    assert os.listdir(tmp_path) == ["taken"]
    assert os.listdir(tmp_path / "taken") == []


KILLED_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import elman
    from elman import model_file

    path, flag = sys.argv[1], sys.argv[2]
    model = elman.RNN(8, 700, 4, num_layers=2, seed=2)    # about 8 MB of weights
    real_write_array = model_file.npy_format.write_array

    class SlowFormat:
        # Writes half of the first large array, tells the parent, then stalls.
        def write_array(self, fp, array, allow_pickle):
            if array.nbytes > 1_000_000:
                data = array.tobytes()
                fp.write(data[: len(data) // 2])
                open(flag, "w").close()
                time.sleep(120)
            real_write_array(fp, array, allow_pickle=allow_pickle)

    model_file.npy_format = SlowFormat()
    model_file.save(model, path)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_process_killed_mid_save_leaves_the_previous_file(tmp_path):
    path = tmp_path / "model.npz"
    old = make_model(num_layers=2, seed=1)
    optimizer = SGD(momentum=0.9)
    train(old, optimizer, *make_data(old), 2)
    save(old, path, optimizer=optimizer)
    before = path.read_bytes()
    flag = tmp_path.parent / (tmp_path.name + ".writing")
    with subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(path), str(flag)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as child:
        try:
            deadline = time.monotonic() + 120
            while not flag.exists():
                assert child.poll() is None, child.communicate()[1].decode()
                assert time.monotonic() < deadline, "the child never started writing"
                time.sleep(0.02)
            temporaries = [p for p in tmp_path.iterdir() if p.name != "model.npz"]
            assert len(temporaries) == 1 and temporaries[0].name.startswith(".model.npz.")
            assert temporaries[0].stat().st_size > 1_000_000  # the save was well under way
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    loaded, loaded_optimizer = load(path, with_optimizer=True)
    assert_same_model(loaded, old)
    assert np.array_equal(loaded_optimizer.state, optimizer.state)
    # A killed process cannot clean up: its hidden temporary file stays, and is
    # itself rejected cleanly if someone tries to load it.
    (leftover,) = [p for p in tmp_path.iterdir() if p.name != "model.npz"]
    assert_rejected(leftover)


# ---------------------------------------------------------------------- crafted files
def test_not_a_zip_at_all(tmp_path):
    cases = {
        "empty": b"",
        "text": b"hello, this is not a model\n",
        "npy": npy_bytes(np.arange(3.0)),
        "random": np.random.default_rng(0).bytes(5000),
        "zip-signature": b"PK\x05\x06" + b"\x00" * 18,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        message = str(assert_rejected(path))
        assert "cannot read" in message or "not an elman model file" in message


def test_some_other_npz_is_not_a_model_file(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.arange(3), b=np.ones(2))
    assert_rejected(tmp_path / "other.npz", "not an elman model file", "__format__.npy")


def test_wrong_shape_in_a_member(saved, tmp_path):
    path = saved[0]
    members = replace_member(read_members(path), "layers.0.Whh.npy", npy_bytes(np.ones((5, 4))))
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "'layers.0.Whh.npy'", "shape (5, 4)",
                    "expected (5, 5)")


def test_wrong_dtype_in_a_member(saved, tmp_path):
    path = saved[0]
    members = replace_member(read_members(path), "Why.npy",
                             npy_bytes(np.ones((2, 5), dtype=np.float32)))
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "'Why.npy'", "'<f4'", "expected '<f8'")
    members = replace_member(read_members(path), "by.npy",
                             npy_bytes(np.ones(2, dtype=">f8")))
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "'by.npy'", "'>f8'")


def test_fortran_order_member(saved, tmp_path):
    data = np.asfortranarray(np.ones((5, 5)))
    members = replace_member(read_members(saved[0]), "layers.1.Whh.npy", npy_bytes(data))
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "'layers.1.Whh.npy'", "Fortran")


def test_header_listing_disagrees_with_configuration(saved, tmp_path):
    def edit(header):
        header["arrays"][1]["shape"] = [5, 6]
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit),
                    "'layers.0.Whh'", "(5, 6)", "implies '<f8' (5, 5)")

    def edit(header):
        header["model"]["config"]["hidden_size"] = 6
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), "'layers.0.Wxh'",
                    "implies '<f8' (6, 3)")

    def edit(header):
        del header["arrays"][2]
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit),
                    "does not list", "layers.0.bh")


def test_member_size_disagrees_with_its_npy_header(saved, tmp_path):
    good = npy_bytes(np.ones((2,)))
    for data in (good[:-8], good + b"\x00" * 8):
        members = replace_member(read_members(saved[0]), "by.npy", data)
        write_members(tmp_path / "bad.npz", members)
        assert_rejected(tmp_path / "bad.npz", "'by.npy'", "in the zip directory")


def measure_peak(function):
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


SMALL = 4 << 20  # 4 MiB: far below what any crafted size below would need


def test_absurd_shape_in_npy_header_allocates_nothing(saved, tmp_path):
    members = replace_member(read_members(saved[0]), "by.npy",
                             npy_header("<f8", (2 ** 40,), b"\x00" * 16))
    write_members(tmp_path / "bad.npz", members)
    errors = []
    peak = measure_peak(lambda: errors.append(pytest.raises(ModelFileError, load,
                                                            tmp_path / "bad.npz")))
    assert "(1099511627776,)" in str(errors[0].value)
    assert peak < SMALL, peak


def test_absurd_configuration_allocates_nothing(saved, tmp_path):
    """A config and headers that agree on 2**30 parameters, in a file of a few KB."""
    hidden = 2 ** 15
    config = dict(saved[1].get_config(), input_size=1, output_size=1, num_layers=1,
                  hidden_size=hidden)
    shapes = weight_shapes(1, hidden, 1, 1)
    header = {"format": "elman-model", "format_version": 1, "elman_version": "0.1.0",
              "model": {"class": "RNN", "config": config},
              "arrays": [{"name": n, "dtype": "<f8", "shape": list(s)}
                         for n, s in shapes.items()],
              "optimizer": None, "extra": None}
    members = [("__format__.npy", json_member(header))]
    members += [(n + ".npy", npy_header("<f8", s, b"\x00" * 64)) for n, s in shapes.items()]
    write_members(tmp_path / "bad.npz", members)
    errors = []
    peak = measure_peak(lambda: errors.append(pytest.raises(ModelFileError, load,
                                                            tmp_path / "bad.npz")))
    assert "in the zip directory" in str(errors[0].value)
    assert peak < SMALL, peak

    # Over the documented parameter limit: refused from the configuration alone.
    def edit(header):
        header["model"]["config"]["hidden_size"] = 2 ** 20
    assert_rejected(with_header(tmp_path / "bad.npz", tmp_path / "worse.npz", edit),
                    "at most 2147483648")


def central_directory(data):
    """(offset, name) of each central directory entry, found from the end record."""
    end = len(data) - 22
    assert data[end:end + 4] == b"PK\x05\x06"
    count = struct.unpack_from("<H", data, end + 10)[0]
    offset = struct.unpack_from("<I", data, end + 16)[0]
    for _ in range(count):
        assert data[offset:offset + 4] == b"PK\x01\x02"
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data,
                                                                        offset + 28)
        yield offset, bytes(data[offset + 46:offset + 46 + name_length]).decode()
        offset += 46 + name_length + extra_length + comment_length


def patch_central_directory_sizes(path, member, size):
    """Rewrite one member's sizes in the zip's central directory (not its local header)."""
    data = bytearray(path.read_bytes())
    (offset,) = [o for o, name in central_directory(data) if name == member]
    struct.pack_into("<II", data, offset + 20, size, size)
    path.write_bytes(bytes(data))


def test_zip_directory_claiming_huge_sizes_allocates_nothing(saved, tmp_path):
    target = tmp_path / "bad.npz"
    target.write_bytes(saved[0].read_bytes())
    patch_central_directory_sizes(target, "layers.0.Whh.npy", 0xFFFFFFF0)
    errors = []
    peak = measure_peak(lambda: errors.append(pytest.raises(ModelFileError, load, target)))
    assert "'layers.0.Whh.npy'" in str(errors[0].value)
    assert "beyond the file" in str(errors[0].value)
    assert peak < SMALL, peak


def test_absurd_npy_header_length_reads_nothing_large(saved, tmp_path):
    # Format 2.0 stores the header length in 4 bytes: claim 4 GiB.
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2 ** 32 - 1) + b"{" * 200
    members = replace_member(read_members(saved[0]), "Why.npy", data)
    write_members(tmp_path / "bad.npz", members)
    errors = []
    peak = measure_peak(lambda: errors.append(pytest.raises(ModelFileError, load,
                                                            tmp_path / "bad.npz")))
    assert "'Why.npy'" in str(errors[0].value)
    assert peak < SMALL, peak


def test_absurd_extra_array_allocates_nothing(saved, tmp_path):
    def edit(header):
        header["arrays"][-1]["shape"] = [2 ** 20, 2 ** 20]
    with_header(saved[0], tmp_path / "bad.npz", edit)
    members = replace_member(read_members(tmp_path / "bad.npz"), "extra.mean.npy",
                             npy_header("<f8", (2 ** 20, 2 ** 20), b"\x00" * 24))
    write_members(tmp_path / "bad.npz", members)
    errors = []
    peak = measure_peak(lambda: errors.append(pytest.raises(ModelFileError, load,
                                                            tmp_path / "bad.npz")))
    assert "'extra.mean.npy'" in str(errors[0].value)
    assert peak < SMALL, peak


def test_unknown_optimizer_class(saved, tmp_path):
    def edit(header):
        header["optimizer"]["class"] = "RMSprop"
    error = assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), "'RMSprop'")
    assert isinstance(error.__cause__, ValueError)

    def edit(header):
        header["optimizer"]["config"]["momentum"] = 0.9  # not an Adam argument
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), "optimizer 'Adam'")

    def edit(header):
        header["optimizer"]["config"]["lr"] = "0.1"
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), "lr")

    def edit(header):
        header["optimizer"]["class"] = "os.system"
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), "'os.system'")


def test_unknown_model_class(saved, tmp_path):
    def edit(header):
        header["model"]["class"] = "LSTM"
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), "'LSTM'")


@pytest.mark.parametrize("data, fragment", [
    (b"\xff\xfe{\x00}\x00", "not valid UTF-8"),
    (b'{"format": "elman-model"', "not valid JSON"),
    (b"[" * 200_000, "not valid JSON"),
    (b'{"format": "elman-model", "format": "elman-model"}', "duplicate key"),
    (b'{"format": "elman-model", "format_version": NaN}', "not valid JSON"),
    (b'{"format_version": 1}', "not an elman model file"),
    (b'"elman-model"', "must be an object"),
    (b"", "not valid JSON"),
])
def test_garbled_json(saved, tmp_path, data, fragment):
    members = replace_member(read_members(saved[0]), "__format__.npy",
                             npy_bytes(np.frombuffer(data, dtype=np.uint8)))
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", fragment)


def test_format_member_must_be_small_uint8(saved, tmp_path):
    members = read_members(saved[0])
    write_members(tmp_path / "bad.npz", replace_member(
        members, "__format__.npy", npy_bytes(np.zeros(3, dtype=np.float64))))
    assert_rejected(tmp_path / "bad.npz", "1-D uint8")
    write_members(tmp_path / "bad.npz", replace_member(
        members, "__format__.npy", npy_header("|u1", (2 ** 21,), b"{}")))
    assert_rejected(tmp_path / "bad.npz", "limit is 1048576")


@pytest.mark.parametrize("edit, fragments", [
    (lambda h: h.update(format="elman-modle"), ["not an elman model file", "'elman-modle'"]),
    (lambda h: h.update(format_version=2), ["format version 2", "upgrade elman"]),
    (lambda h: h.update(format_version="1"), ["format_version"]),
    (lambda h: h.update(format_version=0), ["format_version"]),
    (lambda h: h.update(format_version=True), ["format_version"]),
    (lambda h: h.pop("extra"), ["missing ['extra']"]),
    (lambda h: h.update(comment="hi"), ["unexpected ['comment']"]),
    (lambda h: h.update(elman_version=7), ["elman_version"]),
    (lambda h: h.update(extra=[1, 2]), ["extra must be a JSON object"]),
    (lambda h: h.update(arrays={}), ["arrays must be a list"]),
    (lambda h: h["arrays"].append(dict(h["arrays"][0])), ["listed twice"]),
    (lambda h: h["arrays"].append({"name": "evil", "dtype": "<f8", "shape": [1]}),
     ["unexpected array 'evil'"]),
    (lambda h: h["arrays"][-1].update(dtype="|O"), ["'extra.mean'", "'|O'"]),
    (lambda h: h["arrays"][-1].update(name="extra./etc/passwd"), ["not a valid extra"]),
    (lambda h: h["arrays"][-1].update(shape=[-3]), ["shape"]),
    (lambda h: h["arrays"][-1].update(shape="3"), ["shape"]),
    (lambda h: h["arrays"][-1].pop("dtype"), ["arrays[9]", "missing ['dtype']"]),
    (lambda h: h["optimizer"].update(step_count=-1), ["step_count"]),
    (lambda h: h["optimizer"].update(step_count=2 ** 64), ["step_count"]),
    (lambda h: h["optimizer"].update(step_count=2.0), ["step_count"]),
    (lambda h: h["optimizer"].update(has_state=False), ["unexpected array 'optimizer.state'"]),
    (lambda h: h["optimizer"].update(has_state="yes"), ["has_state"]),
    (lambda h: h["optimizer"].update(config=[0.1]), ["optimizer.config"]),
    (lambda h: h.update(optimizer="Adam"), ["optimizer must be a JSON object"]),
    (lambda h: h["model"].update(config=None), ["model.config"]),
    (lambda h: h.update(model=None), ["model must be a JSON object"]),
])
def test_tampered_header(saved, tmp_path, edit, fragments):
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), *fragments)


@pytest.mark.parametrize("key, value", [
    ("hidden_size", "5"),
    ("hidden_size", 5.0),
    ("hidden_size", True),
    ("hidden_size", 0),
    ("input_size", None),
    ("num_layers", -2),
    ("return_sequences", 1),
    ("return_sequences", "true"),
    ("dtype", "float16"),
    ("dtype", "object"),
    ("seed", -1),
    ("seed", "0"),
    ("init", "magic"),
    ("init", None),
    ("init_scale", "0.1"),
    ("init_scale", -1.0),
    ("spectral_radius", [1]),
])
def test_wrong_types_in_the_configuration(saved, tmp_path, key, value):
    def edit(header):
        header["model"]["config"][key] = value
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), repr(key))


def test_unknown_or_missing_configuration_key(saved, tmp_path):
    def edit(header):
        header["model"]["config"]["activation"] = "relu"
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), "activation")

    def edit(header):
        del header["model"]["config"]["init"]
    assert_rejected(with_header(saved[0], tmp_path / "bad.npz", edit), "round-trip")


def test_extra_member(saved, tmp_path):
    members = read_members(saved[0]) + [("evil.npy", npy_bytes(np.ones(3)))]
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "unexpected member", "'evil.npy'")
    members = read_members(saved[0]) + [("README.txt", b"hello")]
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "'README.txt'")


def test_duplicated_member(saved, tmp_path):
    members = read_members(saved[0])
    # The second copy holds other weights: which one would a reader take?
    forged = ("Why.npy", npy_bytes(np.full((2, 5), 9.0)))
    write_members(tmp_path / "bad.npz", members + [forged])
    assert_rejected(tmp_path / "bad.npz", "'Why.npy' appears twice")
    write_members(tmp_path / "bad.npz", [members[0]] + members)
    assert_rejected(tmp_path / "bad.npz", "'__format__.npy' appears twice")


def test_missing_member(saved, tmp_path):
    members = [(n, d) for n, d in read_members(saved[0]) if n != "layers.1.bh.npy"]
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "missing member", "'layers.1.bh.npy'")
    members = [(n, d) for n, d in read_members(saved[0]) if n != "__format__.npy"]
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "no __format__.npy member")


class RunsCode:
    """Unpickling this would create a directory: proof that pickle ran."""

    marker = None

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("member", ["Why.npy", "extra.mean.npy", "optimizer.state.npy"])
def test_object_array_member_is_never_unpickled(saved, tmp_path, member):
    RunsCode.marker = str(tmp_path / "pickle-ran")
    payload = np.empty(1, dtype=object)
    payload[0] = RunsCode()
    members = replace_member(read_members(saved[0]), member,
                             npy_bytes(payload, allow_pickle=True))
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", repr(member), "'|O'")

    # Even when the header admits the object dtype, it is refused, unread.
    def edit(header):
        for entry in header["arrays"]:
            if entry["name"] + ".npy" == member:
                entry["dtype"], entry["shape"] = "|O", [1]
    with_header(tmp_path / "bad.npz", tmp_path / "worse.npz", edit)
    with pytest.raises(ModelFileError):
        load(tmp_path / "worse.npz")
    with pytest.raises(ModelFileError):
        read_metadata(tmp_path / "worse.npz")
    assert not os.path.exists(RunsCode.marker)


def test_compressed_or_encrypted_members_are_refused(saved, tmp_path):
    write_members(tmp_path / "bad.npz", read_members(saved[0]), zipfile.ZIP_DEFLATED)
    assert_rejected(tmp_path / "bad.npz", "compressed")
    data = bytearray(saved[0].read_bytes())
    offset = [o for o, name in central_directory(data) if name == "Why.npy"][0]
    data[offset + 8] |= 0x1  # central directory: general purpose flag "encrypted"
    (tmp_path / "enc.npz").write_bytes(bytes(data))
    assert_rejected(tmp_path / "enc.npz", "encrypted")


def test_non_finite_weights_in_a_file(saved, tmp_path):
    weights = saved[1].get_weights()["by"].copy()
    weights[0] = np.inf
    members = replace_member(read_members(saved[0]), "by.npy", npy_bytes(weights))
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "invalid weights", "'by'", "NaN or inf")


def test_optimizer_state_of_wrong_shape(saved, tmp_path):
    path, model, _ = saved
    members = replace_member(read_members(path), "optimizer.state.npy",
                             npy_bytes(np.zeros((2, model.n_params - 1))))
    write_members(tmp_path / "bad.npz", members)
    assert_rejected(tmp_path / "bad.npz", "'optimizer.state.npy'",
                    f"expected (2, {model.n_params})")


def test_truncated_files(saved):
    path = saved[0]
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        boundaries = [info.header_offset for info in archive.infolist()]
    cuts = {0, 1, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 100,
            len(data) - 22, len(data) - 1}
    cuts |= {b + d for b in boundaries for d in (-1, 0, 1, 45)}
    for cut in sorted(c for c in cuts if 0 <= c < len(data)):
        path.write_bytes(data[:cut])
        assert_rejected(path)


def outcome(path, reference, X):
    """'error' for a clean ModelFileError, 'same' for an identical load; else fail."""
    try:
        loaded = load_with_metadata(path)
    except ModelFileError:
        return "error"
    model, optimizer = reference
    assert_same_model(loaded.model, model)
    assert np.array_equal(loaded.model.forward(X), model.forward(X))
    assert np.array_equal(loaded.optimizer.state, optimizer.state)
    assert loaded.optimizer.step_count[0] == optimizer.step_count[0]
    return "same"


def test_random_byte_changes_give_a_clean_error_or_the_same_model(saved, tmp_path):
    """Bounded fuzzing: each mutant is refused cleanly or, when the change hit bytes
    that carry no information (timestamps, attributes), loads identically."""
    path, model, optimizer = saved
    data = path.read_bytes()
    X, _ = make_data(model)
    rng = np.random.default_rng(20240607)
    target = tmp_path / "mutant.npz"
    results = {"error": 0, "same": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns about Python-2-style headers
        for _ in range(400):
            mutant = bytearray(data)
            for _ in range(rng.integers(1, 4)):
                position = rng.integers(len(mutant))
                if rng.random() < 0.5:
                    mutant[position] ^= 1 << rng.integers(8)
                else:
                    mutant[position] = rng.integers(256)
            target.write_bytes(bytes(mutant))
            results[outcome(target, (model, optimizer), X)] += 1
    assert results["error"] > 300, results


def test_random_changes_inside_members_with_valid_checksums(saved, tmp_path):
    """Mutate member contents and rebuild a valid zip (correct CRCs), so the changes
    reach the .npy headers and the JSON: refused cleanly, or a loadable model."""
    path, model, _ = saved
    members = read_members(path)
    rng = np.random.default_rng(7)
    target = tmp_path / "mutant.npz"
    refused = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(300):
            mutated = [(n, bytearray(d)) for n, d in members]
            index = 0 if rng.random() < 0.5 else rng.integers(len(mutated))
            content = mutated[index][1]
            head = min(len(content), 130)  # the .npy header, where parsing happens
            for _ in range(rng.integers(1, 3)):
                position = rng.integers(head) if rng.random() < 0.7 else rng.integers(
                    len(content))
                content[position] = rng.integers(32, 127)
            if rng.random() < 0.1:
                del content[rng.integers(len(content)):]
            write_members(target, [(n, bytes(d)) for n, d in mutated])
            try:
                loaded = load_with_metadata(target)
            except ModelFileError:
                refused += 1
                continue
            assert loaded.model.get_weights()["Why"].shape == (2, 5)
            with np.errstate(all="ignore"):
                assert loaded.model.forward(make_data(model)[0]).shape == (4, 6, 2)
    assert refused > 150


def test_random_values_in_the_json_header(saved, tmp_path):
    path = saved[0]
    header = header_of(path)
    members = read_members(path)
    values = [None, True, 0, -1, 1, 2, 5, 112, 2 ** 31, 2 ** 70, 1.5, -0.0, 1e308, "",
              "x", "float32", "RNN", "SGD", "<f8", "|O", [], [1], [5, 3], {}, {"a": 1},
              {"name": "extra.x", "dtype": "<f8", "shape": [1]}]

    def paths(node, prefix=()):
        yield prefix
        items = node.items() if isinstance(node, dict) else (
            enumerate(node) if isinstance(node, list) else ())
        for key, child in items:
            yield from paths(child, prefix + (key,))

    all_paths = list(paths(header))[1:]
    rng = np.random.default_rng(3)
    target = tmp_path / "mutant.npz"
    for _ in range(300):
        edited = copy.deepcopy(header)
        where = all_paths[rng.integers(len(all_paths))]
        node = edited
        for key in where[:-1]:
            node = node[key]
        if rng.random() < 0.85:
            node[where[-1]] = copy.deepcopy(values[rng.integers(len(values))])
        else:
            del node[where[-1]]
        write_members(target, replace_member(members, "__format__.npy",
                                             json_member(edited)))
        try:
            load_with_metadata(target)
        except ModelFileError:
            pass


def test_error_chains_the_low_level_cause(saved):
    path = saved[0]
    data = bytearray(path.read_bytes())
    offset = data.index(b"\x93NUMPY", data.index(b"layers.0.Whh.npy")) + 200
    data[offset] ^= 0xFF  # inside the weights: only the CRC can tell
    path.write_bytes(bytes(data))
    error = assert_rejected(path, "cannot read", "CRC")
    assert isinstance(error.__cause__, zipfile.BadZipFile)


def test_read_metadata_checks_structure_without_reading_weights(saved, tmp_path):
    path = saved[0]
    assert read_metadata(path)["model"]["class"] == "RNN"
    members = replace_member(read_members(path), "Why.npy", npy_bytes(np.ones((3, 5))))
    write_members(tmp_path / "bad.npz", members)
    with pytest.raises(ModelFileError, match="'Why.npy'"):
        read_metadata(tmp_path / "bad.npz")


def test_exported_from_the_package():
    # elman.load reads RNN files as this module's load does, and Forecaster files too.
    from elman.forecaster import load as dispatching_load

    assert elman.load is dispatching_load
    assert "load" in elman.__all__
    assert issubclass(ModelFileError, ValueError)
