"""The training loop: ``RNN.fit``.

Where the time goes at the tutorials' sizes (input 3, hidden 4, 7 steps, batch 1):
the arithmetic of a step is about a microsecond, while a Python loop that slices a
batch, calls a kernel, clips and updates costs 10 to 20 us of interpreter and NumPy
call overhead. So the compiled backend runs many whole steps (gather, forward,
BPTT, clipping, optimizer update) per call of ``kernels.train_steps``; Python only
shuffles, commits the results and reports between calls. Each call is sized to
roughly ``_CHUNK_SECONDS`` of work so that Ctrl-C, progress output and callbacks
stay responsive. Large shapes, where BLAS beats the fused loops, go through
``_gemm_path.train_steps``, whose per-step Python overhead is negligible there; the
route table (``elman._engine``) picks which, for full and truncated BPTT alike.

Training works on a copy of the parameters and of the optimizer state, and commits
them to the model and the optimizer after each completed call: an interrupt or an
error at any moment leaves both at the last completed step.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import numpy as np

from elman import _engine
from elman._update import apply_update, clip_flat
from elman._validation import check_float, check_int, check_sequence_batch
from elman.exceptions import TrainingDivergedError
from elman.optimizers import Optimizer, get_optimizer
from elman._typing import ArrayLike

if TYPE_CHECKING:
    from elman.rnn import RNN

__all__ = ["History", "TrainingDivergedError", "fit"]

_CHUNK_SECONDS = 0.05
# Rough sustained rate of the fused loops, to size a chunk before any timing exists.
_ASSUMED_FLOPS = 2e9


@dataclass
class History:
    """What ``fit`` recorded, one entry per completed epoch.

    Attributes
    ----------
    loss : list of float
        Mean training loss over each epoch's batches (weighted by batch size),
        measured while the weights were being updated, as Keras reports it.
    val_loss : list of float
        Loss on ``validation_data`` after each epoch (empty without it).
    epoch_time : list of float
        Seconds spent in each epoch, validation included.
    best_epoch : int or None
        Epoch (0-based) with the lowest validation loss, when early stopping ran.
    stopped_early : bool
        True when early stopping ended training.
    interrupted : bool
        True when Ctrl-C ended training; the model holds the last completed step.
    steps : int
        Optimizer updates applied in this call.
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    interrupted: bool = False
    steps: int = 0

    @property
    def epochs(self) -> int:
        """Completed epochs."""
        return len(self.loss)

    @property
    def total_time(self) -> float:
        return float(sum(self.epoch_time))

    def __repr__(self) -> str:
        # The per-epoch lists can be thousands long: show their size and last values.
        parts = [f"epochs={self.epochs}"]
        if self.loss:
            parts.append(f"loss={self.loss[-1]:.4g}")
        if self.val_loss:
            parts.append(f"val_loss={self.val_loss[-1]:.4g}")
        if self.best_epoch is not None:
            parts.append(f"best_epoch={self.best_epoch}")
        for flag in ("stopped_early", "interrupted"):
            if getattr(self, flag):
                parts.append(f"{flag}=True")
        parts.append(f"steps={self.steps}")
        parts.append(f"total_time={self.total_time:.3g}s")
        return f"History({', '.join(parts)})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "loss": list(self.loss),
            "val_loss": list(self.val_loss),
            "epoch_time": list(self.epoch_time),
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "interrupted": self.interrupted,
            "steps": self.steps,
        }


# Early-stopping settings when fit is given early_stopping=True (RNNRegressor's
# patience default is the same 5 epochs).
EARLY_STOPPING_DEFAULTS: dict[str, Any] = {"patience": 5, "min_delta": 0.0, "restore_best": True}


def _check_early_stopping(early_stopping, has_validation):
    if early_stopping is None or early_stopping is False:
        return None
    if early_stopping is True:
        settings = {}
    elif isinstance(early_stopping, int):
        settings = {"patience": early_stopping}
    elif isinstance(early_stopping, dict):
        settings = dict(early_stopping)
    else:
        raise TypeError(
            "early_stopping must be None, a patience (int) or a dict with 'patience', "
            f"'min_delta', 'restore_best'; got {type(early_stopping).__name__}"
        )
    unknown = set(settings) - {"patience", "min_delta", "restore_best"}
    if unknown:
        raise ValueError(f"early_stopping has unknown keys {sorted(unknown)}")
    if not has_validation:
        raise ValueError("early_stopping needs validation_data to watch")
    settings = {**EARLY_STOPPING_DEFAULTS, **settings}
    return {
        "patience": check_int("early_stopping['patience']", settings["patience"], 1),
        "min_delta": check_float("early_stopping['min_delta']", settings["min_delta"], 0.0),
        "restore_best": bool(settings["restore_best"]),
    }


def _sizes(model):
    return model.input_size, model.hidden_size, model.output_size, model.num_layers


def _mean_squared_error(model, X, Y, lengths, batch_size=4096):
    """Loss of the model on checked arrays (no gradients), as MSELoss computes it."""
    total = 0.0
    count = 0
    n, steps, _ = X.shape
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        h0 = np.zeros((model.num_layers, stop - start, model.hidden_size), dtype=model.dtype)
        predicted, _ = _engine.forward(model._theta, *_sizes(model), model._activation,
                                       model.return_sequences, X[start:stop], h0,
                                       lengths[start:stop])
        diff = predicted.astype(np.float64) - Y[start:stop]
        if model.return_sequences:
            valid = np.arange(steps)[None, :] < lengths[start:stop, None]
            diff = diff[valid]
            count += int(valid.sum()) * model.output_size
        else:
            count += (stop - start) * model.output_size
        total += float(np.vdot(diff, diff))
    return total / count


class _Progress:
    """A one-line progress bar on stderr (verbose=1) or a line per epoch (verbose=2)."""

    def __init__(self, verbose, epochs, stream=None):
        self.verbose = verbose
        self.epochs = epochs
        self.stream = sys.stderr if stream is None else stream
        self.width = len(str(epochs))
        isatty = getattr(self.stream, "isatty", None)
        self.interactive = bool(isatty and isatty())

    def update(self, epoch, fraction, loss, val_loss):
        # Redrawing with \r only makes sense on a terminal; in a log file or CI output
        # it would leave a copy of the bar per update, so there only epoch ends print.
        if self.verbose != 1 or not self.interactive:
            return
        filled = int(round(20 * fraction))
        bar = "=" * filled + (">" if filled < 20 else "") + " " * max(0, 19 - filled)
        text = f"\repoch {epoch + 1:>{self.width}}/{self.epochs} [{bar}] loss {loss:.6g}"
        if val_loss is not None:
            text += f"  val_loss {val_loss:.6g}"
        self.stream.write(text + "   ")
        self.stream.flush()

    def epoch_end(self, epoch, loss, val_loss, seconds):
        if self.verbose == 0:
            return
        if self.verbose == 1 and self.interactive:
            self.update(epoch, 1.0, loss, val_loss)
            self.stream.write(f"  {seconds:.2f}s\n")
        else:
            text = f"epoch {epoch + 1:>{self.width}}/{self.epochs}  loss {loss:.6g}"
            if val_loss is not None:
                text += f"  val_loss {val_loss:.6g}"
            self.stream.write(text + f"  {seconds:.2f}s\n")
        self.stream.flush()

    def message(self, text):
        if self.verbose:
            self.stream.write(text + "\n")
            self.stream.flush()


def fit(model: RNN, X: ArrayLike, Y: ArrayLike, *, epochs: int = 10, batch_size: int = 32,
        optimizer: str | Optimizer = "adam", lr: float | None = None,
        clip_value: float | None = None, clip_norm: float | None = None, shuffle: bool = True,
        seed: int | None = None, validation_data: tuple[ArrayLike, ...] | None = None,
        early_stopping: bool | int | Mapping[str, Any] | None = None,
        callbacks: Sequence[Callable[[int, dict[str, Any]], bool | None]] | None = None,
        verbose: Literal[0, 1, 2] = 0, lengths: ArrayLike | None = None,
        tbptt: int | None = None, checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 1, resume: bool = False) -> History:
    """Train ``model`` on sequences by mini-batch gradient descent with exact BPTT.

    Parameters
    ----------
    model : elman.RNN
    X : array_like, shape (n, time, input_size)
        Training sequences (windows).
    Y : array_like
        Targets: (n, time, output_size) for ``return_sequences=True``, else
        (n, output_size), or (n,) when output_size is 1.
    epochs : int, default 10
        Passes over the data.
    batch_size : int, default 32
        Sequences per update; the last batch of an epoch may be smaller. 1 is fast
        on the compiled backend (the whole epoch runs in compiled code).
    optimizer : {"adam", "sgd", "momentum"} or elman.optimizers.Optimizer
        An instance keeps its state (moments) across calls, so training can be
        continued, and can be saved with the model.
    lr : float, optional
        Learning rate for an optimizer given by name (Adam 0.001, SGD 0.01 by
        default).
    clip_value : float, optional
        Clip each gradient element to [-clip_value, clip_value] (the tutorials use 5).
    clip_norm : float, optional
        Then scale the gradient to a global L2 norm of at most ``clip_norm``, as
        ``torch.nn.utils.clip_grad_norm_``.
    shuffle : bool, default True
        Visit the sequences in a new random order each epoch.
    seed : int, optional
        Seed of the shuffling; the same seed, data and backend give bit-identical
        weights.
    validation_data : tuple (X_val, Y_val) or (X_val, Y_val, lengths_val), optional
        Loss measured after each epoch, in ``history.val_loss``.
    early_stopping : bool, int or dict, optional
        True (the defaults below), a patience in epochs, or a dict with any of
        ``{"patience": 5, "min_delta": 0.0, "restore_best": True}`` (the defaults):
        stop when the validation loss has not improved by more than ``min_delta``
        for ``patience`` epochs, and restore the weights of the best epoch.
    callbacks : list of callables, optional
        Each is called after every epoch as ``callback(epoch, logs)`` with ``logs``
        a dict of ``loss``, ``val_loss`` (or None), ``epoch_time`` and ``model``;
        returning True stops training. An exception raised by a callback propagates,
        with the model at the end of that epoch.
    verbose : {0, 1, 2}, default 0
        0 silent, 1 a progress bar with the running losses, 2 a line per epoch.
    lengths : array_like of int, shape (n,), optional
        Valid steps of each sequence when X is padded.
    tbptt : int, optional
        Truncated BPTT: split each sequence into chunks of ``tbptt`` steps, update
        after each chunk, and carry the hidden state (but not the gradient) into the
        next chunk. Memory is bounded by ``tbptt``, not the sequence length. Needs
        ``return_sequences=True``.
    checkpoint : str or os.PathLike, optional
        Save the model, the optimizer's state, the shuffling generator's state and
        the history to this model file every ``checkpoint_every`` epochs and when
        training ends (atomically: a kill at any moment leaves the previous
        checkpoint intact).
    checkpoint_every : int, default 1
        Epochs between checkpoints.
    resume : bool, default False
        With ``checkpoint``: if the file exists, continue from it (weights,
        optimizer moments, shuffling state, completed epochs, history) up to
        ``epochs`` in all, so that a run killed at any time and resumed ends with
        the same weights as one uninterrupted run with the same seed. The model's
        configuration and the optimizer's class and settings must match the
        checkpoint's. Without the file, training starts from the beginning.

    Returns
    -------
    History

    Raises
    ------
    TrainingDivergedError
        When the loss or a gradient becomes NaN or inf; the model keeps the last
        finite weights.
    RuntimeError
        When ``fit`` is already running on this model in another thread.
    """
    epochs = check_int("epochs", epochs, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    clip_value = check_float("clip_value", clip_value, 0.0, allow_none=True, strict=True)
    clip_norm = check_float("clip_norm", clip_norm, 0.0, allow_none=True, strict=True)
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2; got {verbose!r}")
    if seed is not None:
        seed = check_int("seed", seed, 0)
    if lr is not None:
        lr = check_float("lr", lr, 0.0, strict=True)
    optimizer = get_optimizer(optimizer, lr)
    if callbacks is None:
        callbacks = []
    elif callable(callbacks):
        callbacks = [callbacks]
    else:
        callbacks = list(callbacks)
        for cb in callbacks:
            if not callable(cb):
                raise TypeError(f"callbacks must be callables; got {type(cb).__name__}")

    X, Y, lengths = check_sequence_batch(
        X, Y, lengths, model.input_size, model.output_size, model.return_sequences,
        model.dtype, "fit needs a batch of sequences: X of shape (n, time, input_size)")
    n = X.shape[0]

    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("validation_data must be a tuple (X_val, Y_val[, lengths_val])")
        try:
            Xv, Yv, lv = check_sequence_batch(
                validation_data[0], validation_data[1],
                validation_data[2] if len(validation_data) == 3 else None,
                model.input_size, model.output_size, model.return_sequences, model.dtype,
                "X must have shape (n, time, input_size)")
        except (ValueError, TypeError) as exc:
            # The checks name X, Y or lengths: say they are the validation ones.
            raise type(exc)(f"validation_data: {exc}") from None
        if Xv.shape[0] == 0:
            raise ValueError("validation_data holds no sequences")
        validation = (Xv, Yv, lv)
    stopping = _check_early_stopping(early_stopping, validation is not None)
    if tbptt is not None:
        tbptt = check_int("tbptt", tbptt, 1)
        if not model.return_sequences:
            raise ValueError("tbptt needs return_sequences=True: a many-to-one model has a "
                             "target only at the last step")
    if n == 0:
        raise ValueError("X holds no sequences (n = 0)")
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False; got {resume!r}")
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
    elif resume:
        raise ValueError("resume=True needs checkpoint= (the file to resume from)")
    checkpointing = (checkpoint, checkpoint_every, resume)

    if not model._training_lock.acquire(blocking=False):
        raise RuntimeError("fit is already running on this model in another thread; a "
                           "model can be trained by one thread at a time")
    try:
        history: History = _train(model, X, Y, lengths, epochs, batch_size, optimizer,
                                  clip_value or 0.0, clip_norm or 0.0, shuffle, seed,
                                  validation, stopping, callbacks, verbose, tbptt,
                                  checkpointing)
        return history
    finally:
        model._training_lock.release()


def _train(model, X, Y, lengths, epochs, batch_size, optimizer, clip_value, clip_norm,
           shuffle, seed, validation, stopping, callbacks, verbose, tbptt, checkpointing):
    I, H, O, L = model.input_size, model.hidden_size, model.output_size, model.num_layers
    n, steps, _ = X.shape
    optimizer.prepare(model.n_params, model.dtype)
    hyper = optimizer.hyperparameters()
    rng = np.random.default_rng(seed)
    history = History()
    progress = _Progress(verbose, epochs)
    best = {"loss": math.inf, "theta": None, "epoch": None, "waited": 0}
    checkpoint, checkpoint_every, resume = checkpointing
    first_epoch = 0
    if resume and os.path.exists(checkpoint):
        first_epoch = _restore_checkpoint(checkpoint, model, optimizer, rng, history, best)

    effective_batch = min(batch_size, n)
    # Full BPTT runs whole steps by the route for the batch size; truncated BPTT asks
    # the route table for each chunk (see _run_epoch_truncated).
    run_steps = None if tbptt is not None else _engine.route(effective_batch, H).train_steps

    flops_per_sequence = 6.0 * steps * (H * I + (2 * L - 1) * H * H + H * O)
    chunk_batches = max(1, int(_CHUNK_SECONDS * _ASSUMED_FLOPS
                               // (flops_per_sequence * effective_batch)))

    commit = _Commit(model, optimizer, history)
    try:
        for epoch in range(first_epoch, epochs):
            started = time.perf_counter()
            order = rng.permutation(n) if shuffle else np.arange(n)
            order = order.astype(np.intp, copy=False)
            if tbptt is None:
                epoch_loss, chunk_batches = _run_epoch(
                    model, optimizer, run_steps, X, Y, lengths, order, effective_batch,
                    hyper, clip_value, clip_norm, chunk_batches, history, progress, epoch,
                    validation, commit)
            else:
                epoch_loss = _run_epoch_truncated(
                    model, optimizer, X, Y, lengths, order, effective_batch, tbptt,
                    clip_value, clip_norm, history, progress, epoch, commit)
            val_loss = None
            if validation is not None:
                val_loss = _mean_squared_error(model, *validation)
            seconds = time.perf_counter() - started
            history.loss.append(epoch_loss)
            if val_loss is not None:
                history.val_loss.append(val_loss)
            history.epoch_time.append(seconds)
            progress.epoch_end(epoch, epoch_loss, val_loss, seconds)

            stop = False
            if stopping is not None:
                if val_loss < best["loss"] - stopping["min_delta"]:
                    best.update(loss=val_loss, theta=model._theta.copy(), epoch=epoch, waited=0)
                else:
                    best["waited"] += 1
                    if best["waited"] >= stopping["patience"]:
                        stop = True
                        history.stopped_early = True
                history.best_epoch = best["epoch"]
            logs = {"loss": epoch_loss, "val_loss": val_loss, "epoch_time": seconds,
                    "model": model}
            for callback in callbacks:
                if callback(epoch, logs) is True:
                    stop = True
            if checkpoint is not None and not stop and (epoch + 1) % checkpoint_every == 0:
                _save_checkpoint(checkpoint, model, optimizer, rng, history, best, epoch + 1)
            if stop:
                break
    except KeyboardInterrupt:
        commit.finish()
        history.interrupted = True
        progress.message("\ninterrupted: the model keeps the weights of the last completed "
                         "step")
    if checkpoint is not None and not history.interrupted and history.epochs > 0:
        _save_checkpoint(checkpoint, model, optimizer, rng, history, best, history.epochs)
    # After Ctrl-C the model keeps the last completed step, matching the optimizer's
    # state and step count; the best weights are restored only when training ends.
    if (stopping is not None and stopping["restore_best"] and best["theta"] is not None
            and not history.interrupted):
        model._theta = best["theta"]
    return history


_CHECKPOINT_KEY = "elman_fit_checkpoint"


def _save_checkpoint(path, model, optimizer, rng, history, best, epochs_done):
    from elman.model_file import save

    extra = {_CHECKPOINT_KEY: {
        "epochs_done": epochs_done,
        "rng_state": rng.bit_generator.state,
        # JSON holds finite numbers only; a validation loss can overflow to inf.
        "history": {name: ([v if v is None or math.isfinite(v) else None for v in value]
                           if isinstance(value, list) else value)
                    for name, value in history.as_dict().items()},
        "best_loss": None if math.isinf(best["loss"]) else best["loss"],
        "best_epoch": best["epoch"],
        "waited": best["waited"],
    }}
    extra_arrays = {} if best["theta"] is None else {"best_theta": best["theta"]}
    save(model, path, optimizer=optimizer, extra=extra, extra_arrays=extra_arrays)


def _restore_checkpoint(path, model, optimizer, rng, history, best):
    """Load a checkpoint into model, optimizer, rng, history and best; epochs done."""
    from elman.model_file import load_with_metadata

    loaded = load_with_metadata(path)
    saved = (loaded.extra or {}).get(_CHECKPOINT_KEY)
    if saved is None:
        raise ValueError(f"{path} is a model file but not a fit checkpoint")
    # Only the architecture must match: seed and init decide the initial weights,
    # which the checkpoint's replace.
    architecture = ("input_size", "hidden_size", "output_size", "num_layers",
                    "return_sequences", "dtype", "nonlinearity")
    saved_arch = {k: loaded.model.get_config()[k] for k in architecture}
    this_arch = {k: model.get_config()[k] for k in architecture}
    if saved_arch != this_arch:
        raise ValueError(
            f"checkpoint {path} holds a model with configuration {saved_arch}, not this "
            f"model's {this_arch}"
        )
    if (loaded.optimizer is None or type(loaded.optimizer) is not type(optimizer)
            or loaded.optimizer.get_config() != optimizer.get_config()):
        raise ValueError(f"checkpoint {path} was written with optimizer "
                         f"{loaded.optimizer!r}, not {optimizer!r}")
    model._theta = loaded.model._theta
    optimizer.set_state(loaded.optimizer.get_state())
    optimizer.prepare(model.n_params, model.dtype)
    rng.bit_generator.state = saved["rng_state"]
    for name, value in saved["history"].items():
        setattr(history, name, value)
    history.steps = 0
    best.update(loss=math.inf if saved["best_loss"] is None else saved["best_loss"],
                epoch=saved["best_epoch"], waited=saved["waited"],
                theta=loaded.extra_arrays.get("best_theta"))
    return int(saved["epochs_done"])


class _Commit:
    """Makes the work of completed steps the model's, the optimizer's and the history's.

    Ctrl-C can land between any two bytecodes, so also between the assignments of a
    commit. Each commit is therefore first recorded in one store, and ``finish``
    (called when an interrupt ends training) completes the last one recorded: the
    weights, the optimizer's moments and step count and ``history.steps`` always
    describe the same completed step.
    """

    def __init__(self, model, optimizer, history):
        self.model, self.optimizer, self.history = model, optimizer, history
        self.pending = None

    def __call__(self, theta, state, step_count, done):
        self.pending = (theta, state, int(step_count[0]), self.history.steps + done)
        self.finish()

    def finish(self):
        """Complete the recorded commit, if one is under way (idempotent)."""
        if self.pending is not None:
            theta, state, count, steps = self.pending
            self.model._theta = theta
            self.optimizer.state = state
            self.optimizer.step_count[0] = count
            self.history.steps = steps
            self.pending = None


def _diverged(history, epoch, batch):
    return TrainingDivergedError(
        f"training diverged at epoch {epoch + 1}, batch {batch + 1}: the loss, a gradient "
        f"or the updated weights are NaN or infinite. The model keeps the last finite "
        f"weights. Lower the learning rate, or clip the gradients (clip_value=5.0 or "
        f"clip_norm=1.0).",
        history,
    )


def _run_epoch(model, optimizer, run_steps, X, Y, lengths, order, batch_size, hyper,
               clip_value, clip_norm, chunk_batches, history, progress, epoch, validation,
               commit):
    I, H, O, L = model.input_size, model.hidden_size, model.output_size, model.num_layers
    n = order.shape[0]
    n_batches = -(-n // batch_size)
    losses = np.empty(n_batches, dtype=np.float64)

    def run(first, count):
        """``count`` batches from batch ``first``, on copies of the committed state."""
        theta = model._theta.copy()
        state = optimizer.state.copy()
        step_count = optimizer.step_count.copy()
        rows = order[first * batch_size:(first + count) * batch_size]
        done = run_steps(theta, I, H, O, L, model._activation, model.return_sequences, X, Y,
                         lengths, rows, batch_size, optimizer.code, hyper, state, step_count,
                         clip_value, clip_norm, losses[first:first + count])
        return theta, state, step_count, done

    batch = 0
    while batch < n_batches:
        count = min(chunk_batches, n_batches - batch)
        started = time.perf_counter()
        theta, state, step_count, done = run(batch, count)
        elapsed = time.perf_counter() - started
        if not np.isfinite(theta).all():
            # Finite losses and gradients, but an update overflowed (a learning rate
            # near the float range): redo the chunk one step at a time from the
            # committed weights and stop at the last finite ones.
            done = 0
            while True:
                theta, state, step_count, one = run(batch + done, 1)
                if one == 0 or not np.isfinite(theta).all():
                    raise _diverged(history, epoch, batch + done)
                commit(theta, state, step_count, 1)
                done += 1
        commit(theta, state, step_count, done)
        if done < count:
            raise _diverged(history, epoch, batch + done)
        batch += count
        # Resize the chunk to about _CHUNK_SECONDS from what this one took.
        if elapsed > 0:
            chunk_batches = max(1, min(4 * chunk_batches,
                                       int(count * _CHUNK_SECONDS / elapsed)))
        if progress.verbose == 1:
            progress.update(epoch, batch / n_batches, _weighted_mean(losses[:batch], n,
                                                                     batch_size), None)
    return _weighted_mean(losses, n, batch_size), chunk_batches


def _weighted_mean(batch_losses, n, batch_size):
    """Mean of batch losses weighted by each batch's number of sequences."""
    sizes = np.full(batch_losses.shape[0], batch_size, dtype=np.float64)
    last_full = n - batch_size * (batch_losses.shape[0] - 1)
    if batch_losses.shape[0] == -(-n // batch_size):
        sizes[-1] = last_full
    return float(np.dot(batch_losses, sizes) / sizes.sum())


def _run_epoch_truncated(model, optimizer, X, Y, lengths, order, batch_size, k, clip_value,
                         clip_norm, history, progress, epoch, commit):
    """Truncated BPTT: per batch, chunks of k steps, state carried, gradient cut."""
    L, H = model.num_layers, model.hidden_size
    sizes = (*_sizes(model), model._activation)
    n, steps, _ = X.shape
    total = 0.0
    weight = 0.0
    for batch, start in enumerate(range(0, n, batch_size)):
        rows = order[start:start + batch_size]
        state_h = np.zeros((L, rows.shape[0], H), dtype=model.dtype)
        for c0 in range(0, steps, k):
            remaining = lengths[rows] - c0
            active = remaining > 0
            if not active.any():
                break
            sel = rows[active]
            chunk_len = np.minimum(remaining[active], k).astype(np.intp)
            c1 = min(c0 + k, steps)
            Xc = np.ascontiguousarray(X[sel, c0:c1])
            Yc = np.ascontiguousarray(Y[sel, c0:c1])
            h0 = np.ascontiguousarray(state_h[:, active])
            grad = np.empty_like(model._theta)
            loss = _engine.loss_and_grad(model._theta, *sizes, True, Xc, Yc, h0, chunk_len,
                                         grad)
            if not (np.isfinite(loss) and np.isfinite(grad).all()):
                raise _diverged(history, epoch, batch)
            # The state entering the next chunk, from the weights used for this one.
            _, h_next = _engine.forward(model._theta, *sizes, True, Xc, h0, chunk_len)
            theta = model._theta.copy()
            state = optimizer.state.copy()
            step_count = optimizer.step_count.copy()
            clip_flat(grad, clip_value, clip_norm)
            apply_update(optimizer.code, theta, grad, optimizer.hyperparameters(), state,
                         step_count)
            if not np.isfinite(theta).all():  # the update overflowed
                raise _diverged(history, epoch, batch)
            commit(theta, state, step_count, 1)
            state_h[:, active] = h_next
            n_valid = float(chunk_len.sum())
            total += loss * n_valid
            weight += n_valid
        if progress.verbose == 1:
            progress.update(epoch, min(1.0, (start + batch_size) / n), total / max(weight, 1),
                            None)
    return total / weight if weight else float("nan")
