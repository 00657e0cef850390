"""Checkpointing during fit: a run killed at any time resumes to the same result."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import elman
from elman.optimizers import SGD, Adam


def _data(seed=0, n=40, steps=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, steps, 2))
    Y = np.sin(X.cumsum(axis=1))[:, :, :1]
    return X, Y


FIT = dict(batch_size=4, seed=7, clip_norm=1.0)


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_resume_equals_uninterrupted(backend, tmp_path, optimizer):
    X, Y = _data()
    path = tmp_path / "run.npz"
    reference = elman.RNN(2, 6, 1, seed=0)
    full = reference.fit(X, Y, epochs=6, optimizer=optimizer, **FIT)

    first = elman.RNN(2, 6, 1, seed=0)
    first.fit(X, Y, epochs=4, optimizer=optimizer, checkpoint=path, checkpoint_every=2, **FIT)
    # A new process would start from a fresh model: its weights must come from the file.
    resumed = elman.RNN(2, 6, 1, seed=123)
    history = resumed.fit(X, Y, epochs=6, optimizer=optimizer, checkpoint=path, resume=True,
                          **FIT)
    np.testing.assert_array_equal(resumed.parameters, reference.parameters)
    assert history.loss == full.loss
    assert history.epochs == 6


def test_resume_with_early_stopping_state(backend, tmp_path):
    X, Y = _data()
    Xv, Yv = _data(seed=1, n=10)
    path = tmp_path / "run.npz"
    settings = dict(FIT, validation_data=(Xv, Yv), early_stopping={"patience": 50})
    reference = elman.RNN(2, 6, 1, seed=0)
    full = reference.fit(X, Y, epochs=5, **settings)
    first = elman.RNN(2, 6, 1, seed=0)
    first.fit(X, Y, epochs=3, checkpoint=path, **settings)
    resumed = elman.RNN(2, 6, 1, seed=0)
    history = resumed.fit(X, Y, epochs=5, checkpoint=path, resume=True, **settings)
    np.testing.assert_array_equal(resumed.parameters, reference.parameters)
    assert history.val_loss == full.val_loss
    assert history.best_epoch == full.best_epoch


def test_resume_without_file_starts_fresh(backend, tmp_path):
    X, Y = _data()
    path = tmp_path / "absent.npz"
    a = elman.RNN(2, 6, 1, seed=0)
    a.fit(X, Y, epochs=2, checkpoint=path, resume=True, **FIT)
    b = elman.RNN(2, 6, 1, seed=0)
    b.fit(X, Y, epochs=2, **FIT)
    np.testing.assert_array_equal(a.parameters, b.parameters)
    assert path.exists()


def test_checkpoint_holds_model_and_optimizer(tmp_path):
    X, Y = _data()
    path = tmp_path / "run.npz"
    model = elman.RNN(2, 6, 1, seed=0)
    optimizer = Adam(lr=0.01)
    history = model.fit(X, Y, epochs=3, optimizer=optimizer, checkpoint=path, **FIT)
    loaded, loaded_optimizer = elman.load(path, with_optimizer=True)
    np.testing.assert_array_equal(loaded.parameters, model.parameters)
    assert int(loaded_optimizer.step_count[0]) == int(optimizer.step_count[0]) == history.steps
    np.testing.assert_array_equal(loaded_optimizer.state, optimizer.state)


def test_resume_rejects_a_different_model_or_optimizer(tmp_path):
    X, Y = _data()
    path = tmp_path / "run.npz"
    elman.RNN(2, 6, 1, seed=0).fit(X, Y, epochs=1, checkpoint=path, **FIT)
    with pytest.raises(ValueError, match="configuration"):
        elman.RNN(2, 7, 1, seed=0).fit(X, Y, epochs=2, checkpoint=path, resume=True, **FIT)
    with pytest.raises(ValueError, match="optimizer"):
        elman.RNN(2, 6, 1, seed=0).fit(X, Y, epochs=2, checkpoint=path, resume=True,
                                       optimizer=SGD(lr=0.1), **FIT)


def test_resume_needs_a_checkpoint_path():
    X, Y = _data()
    with pytest.raises(ValueError, match="checkpoint"):
        elman.RNN(2, 6, 1).fit(X, Y, epochs=1, resume=True)
    with pytest.raises(ValueError, match="checkpoint_every"):
        elman.RNN(2, 6, 1).fit(X, Y, epochs=1, checkpoint="x.npz", checkpoint_every=0)


_TRAINER = textwrap.dedent("""
    import sys
    import numpy as np
    import elman

    path, epochs, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6, 2))
    Y = np.sin(X.cumsum(axis=1))[:, :, :1]

    def announce(epoch, logs):
        # Tell the parent that at least one checkpoint exists, then keep going.
        if epoch == 1:
            open(marker, "w").close()

    model = elman.RNN(2, 8, 1, seed=0)
    model.fit(X, Y, epochs=epochs, batch_size=2, seed=3, checkpoint=path, resume=True,
              callbacks=[announce])
    np.save(path + ".final.npy", model.parameters)
""")


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a training process after some checkpoints; resuming matches a full run."""
    script = tmp_path / "trainer.py"
    script.write_text(_TRAINER)
    epochs = 400
    killed = str(tmp_path / "killed.npz")
    marker = str(tmp_path / "checkpointed")
    process = subprocess.Popen([sys.executable, str(script), killed, str(epochs), marker])
    deadline = time.monotonic() + 120
    while not os.path.exists(marker):
        assert process.poll() is None, "the trainer ended before it was killed"
        assert time.monotonic() < deadline, "no checkpoint within two minutes"
        time.sleep(0.01)
    time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    done_before_kill = elman.model_file.read_metadata(killed)["extra"]["elman_fit_checkpoint"]
    assert 2 <= done_before_kill["epochs_done"] < epochs

    # Resume in a new process, and compare with an uninterrupted run.
    subprocess.run([sys.executable, str(script), killed, str(epochs), marker], check=True,
                   timeout=300)
    uninterrupted = str(tmp_path / "uninterrupted.npz")
    subprocess.run([sys.executable, str(script), uninterrupted, str(epochs), marker],
                   check=True, timeout=300)
    np.testing.assert_array_equal(np.load(killed + ".final.npy"),
                                  np.load(uninterrupted + ".final.npy"))
