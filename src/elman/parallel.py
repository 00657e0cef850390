"""Many models at once: ``fit_many`` trains one RNN per series or per setting, in parallel.

A common job is not one model but thousands: one small RNN per sensor, store or
station, or one per point of a hyperparameter grid. ``fit_many`` runs those fits as
independent tasks through joblib, so the same call runs serially, on local threads
or processes, or on a Dask or Ray cluster, chosen by the caller with
``joblib.parallel_backend(...)``; elman has no scheduling code of its own.

Reproducibility: task ``i`` draws its two seeds (initial weights, shuffling) from
``numpy.random.SeedSequence(seed).spawn(n_tasks)[i]``, never from the worker that
runs it, and runs on the kernel backend that was active in the calling thread. So
the models and histories are the same bit for bit whatever the joblib backend and
the number of workers, and the same as with ``n_jobs=1``.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence, cast

import numpy as np

from elman import _backend, _threading
from elman._losses import LOSSES
from elman._validation import check_int
from elman.rnn import RNN
from elman.training import History

__all__ = ["FitManyResult", "TaskResult", "fit_many"]

# Default joblib backend when the caller has not chosen one (a soft hint: inside
# ``joblib.parallel_backend(...)`` the caller's choice wins), by kernel backend: the
# compiled train_steps releases the GIL for a whole epoch, so threads share the
# cores without the start-up and pickling of processes; the NumPy twin holds the GIL
# in its per-step loop, so only processes run in parallel. Measured by
# bench/bench_fit_many.py; the figures are in bench/RESULTS.md.
DEFAULT_PREFER = {"cython": "threads", "numpy": "processes"}

# Keywords of RNN() and of fit() that a task may set; everything else is an error.
_MODEL_KEYS = frozenset({"hidden_size", "num_layers", "nonlinearity", "dtype", "init",
                         "init_scale", "spectral_radius", "loss"})
_WINDOW_KEYS = frozenset({"window", "horizon", "many_to_many"})
# Set by fit_many itself, from the data or from the call's seed.
_RESERVED_KEYS = {
    "seed": "each task's seeds come from fit_many's own seed= (see TaskResult.seeds)",
    "input_size": "it is read from the data",
    "output_size": "it is read from the data",
    "return_sequences": "it is read from the targets: 3-D Y is many-to-many, 2-D Y "
                        "many-to-one",
}


def _check_loss(where: str, settings: dict[str, Any]) -> None:
    """A loss a new model per task can be made with (a call's mistake, raised)."""
    if "loss" not in settings:
        return
    loss = settings["loss"]
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"{where}: loss must be one of {LOSSES}; got {loss!r}")
    if loss == "cross_entropy":
        raise ValueError(
            f"{where}: loss='cross_entropy' needs the number of classes, which the class "
            f"indices do not tell reliably; pass model=elman.RNN(..., output_size=n_classes, "
            f"loss='cross_entropy') to train a copy of it per task")


def _fit_keys():
    from elman.training import fit

    names = set(inspect.signature(fit).parameters) - {"model", "X", "Y", "seed"}
    return frozenset(names)


@dataclass
class TaskResult:
    """The outcome of one task of :func:`fit_many`.

    Attributes
    ----------
    index : int
        Position of the task in the input (data and params broadcast together).
    model : elman.RNN or None
        The trained model; None when the task failed.
    history : elman.training.History or None
        What ``fit`` recorded; None when the task failed.
    error : str or None
        ``"ExceptionType: message"`` when the task failed, else None.
    traceback : str or None
        The failing task's formatted traceback (text, so that it crosses process
        and machine boundaries).
    seeds : tuple of int
        ``(model_seed, fit_seed)``: ``RNN(..., seed=model_seed)`` and
        ``fit(..., seed=fit_seed)`` reproduce this task on its own.
    params : dict
        This task's entry of ``params`` (empty without params).
    kernels : str
        The kernels the task ran on where it ran: "numpy", or "cython" and the
        compiled build's instruction set ("cython/avx2+fma", "cython/baseline").
        Builds for different instruction sets round differently in the last bits,
        so on a cluster of mixed CPUs compare this across tasks (or set
        ``ELMAN_ISA=baseline`` for every worker) before expecting identical results.
    """

    index: int
    model: RNN | None = None
    history: History | None = None
    error: str | None = None
    traceback: str | None = None
    seeds: tuple[int, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    kernels: str = ""

    @property
    def ok(self) -> bool:
        """True when the task trained its model."""
        return self.error is None


class FitManyResult:
    """The results of :func:`fit_many`, one :class:`TaskResult` per task, in input order.

    Indexing, ``len`` and iteration give the :class:`TaskResult` objects.

    Attributes
    ----------
    models : list
        The trained models in input order; None where a task failed.
    histories : list
        Their histories; None where a task failed.
    errors : dict of int to str
        Index of every failed task to ``"ExceptionType: message"``; empty when all
        succeeded.
    seed : int
        The root seed (the call's ``seed``, or the fresh entropy drawn when it was
        None): ``fit_many(..., seed=result.seed)`` repeats the call exactly.
    backend : str
        The kernel backend every task ran on ("cython" or "numpy").
    """

    def __init__(self, results: Iterable[TaskResult], seed: int, backend: str) -> None:
        self.results = list(results)
        self.seed = seed
        self.backend = backend

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> TaskResult:
        return self.results[index]

    def __iter__(self) -> Iterator[TaskResult]:
        return iter(self.results)

    @property
    def models(self) -> list[RNN | None]:
        return [r.model for r in self.results]

    @property
    def histories(self) -> list[History | None]:
        return [r.history for r in self.results]

    @property
    def errors(self) -> dict[int, str]:
        return {r.index: r.error for r in self.results if r.error is not None}

    @property
    def ok(self) -> bool:
        """True when every task succeeded."""
        return all(r.error is None for r in self.results)

    def raise_errors(self) -> FitManyResult:
        """Raise RuntimeError listing the failed tasks, if any; else return self.

        For callers that want all-or-nothing: ``models = fit_many(...).raise_errors().models``.
        """
        errors = self.errors
        if errors:
            shown = "; ".join(f"task {i}: {text}" for i, text in list(errors.items())[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise RuntimeError(f"{len(errors)} of {len(self.results)} fit_many tasks "
                               f"failed: {shown}{more}")
        return self

    def __repr__(self) -> str:
        return (f"FitManyResult({len(self.results)} tasks, {len(self.errors)} failed, "
                f"backend={self.backend!r})")


def _check_settings(where, settings, allowed, has_template):
    for key in settings:
        if key in _RESERVED_KEYS:
            raise TypeError(f"{where} may not set {key!r}: {_RESERVED_KEYS[key]}")
        if key not in allowed:
            raise TypeError(
                f"{where} has an unknown setting {key!r}; settings are the window "
                f"keywords {sorted(_WINDOW_KEYS)}, RNN keywords {sorted(_MODEL_KEYS)} and "
                f"fit keywords {sorted(allowed - _WINDOW_KEYS - _MODEL_KEYS)}"
            )
        if has_template and key in _MODEL_KEYS:
            raise TypeError(f"{where} sets {key!r}, but model= is given: the tasks train "
                            f"copies of that model, whose architecture is fixed")


def _task_seeds(root, n_tasks):
    """(model_seed, fit_seed) per task, from SeedSequence(root).spawn: by index only."""
    seeds = []
    for child in np.random.SeedSequence(root).spawn(n_tasks):
        model_seed, fit_seed = child.generate_state(2, dtype=np.uint64)
        seeds.append((int(model_seed), int(fit_seed)))
    return seeds


def _task_checkpoint(index, settings):
    """The task's settings, with ``{index}`` in a checkpoint path replaced by its index."""
    path = settings.get("checkpoint")
    if path is not None:
        settings["checkpoint"] = os.fspath(path).replace("{index}", str(index))
    return settings


def _check_distinct_checkpoints(settings):
    seen = {}
    for index, task_settings in enumerate(settings):
        path = task_settings.get("checkpoint")
        if path is None:
            continue
        if path in seen:
            raise ValueError(
                f"tasks {seen[path]} and {index} would write the same checkpoint file "
                f"{path!r}; put {{index}} in the path (checkpoint=\"ckpt/task-{{index}}.npz\") "
                f"or give each task its own in params"
            )
        seen[path] = index


def _windows(task, settings):
    """(X, Y) for one task: its windows, or the series windowed per its settings."""
    window = settings.get("window")
    if window is None:
        if not isinstance(task, (tuple, list)) or len(task) != 2:
            raise TypeError(
                "without window=, each task must be a pair (X, Y) of windows, X of shape "
                f"(n, time, input_size); got {type(task).__name__}. Pass window= to "
                "train on raw series instead"
            )
        return task
    from elman.preprocessing import sliding_windows

    if isinstance(task, tuple):
        if len(task) != 2:
            raise TypeError(f"a task given as a tuple must be (series, targets); got a "
                            f"tuple of length {len(task)}")
        series, targets = task
    else:
        series, targets = task, None
    return sliding_windows(series, window, targets=targets,
                           horizon=settings.get("horizon", 1),
                           many_to_many=settings.get("many_to_many", True))


def _fit_task(index, task, settings, seeds, backend, template):
    """Train one model; runs in a worker. Never raises an Exception: failures are data."""
    model_seed, fit_seed = seeds
    kernels = backend
    # A task on a worker thread trains its model on that thread alone: the workers
    # already share the cores, and each model's own threads would oversubscribe them.
    on_worker_thread = threading.current_thread() is not threading.main_thread()
    threads = (_threading.single_threaded_here() if on_worker_thread
               else contextlib.nullcontext())
    try:
        with _backend.use_backend(backend), threads:
            isa = getattr(_backend.get_kernels(), "INSTRUCTION_SET", None)
            kernels = backend if isa is None else f"{backend}/{isa}"
            X, Y = _windows(task, settings)
            fit_kwargs = {k: v for k, v in settings.items()
                          if k not in _MODEL_KEYS and k not in _WINDOW_KEYS}
            if "optimizer" in fit_kwargs and not isinstance(fit_kwargs["optimizer"], str):
                # An Optimizer instance carries state: each task needs its own, and
                # under threads the caller's instance is shared by every task.
                fit_kwargs["optimizer"] = copy.deepcopy(fit_kwargs["optimizer"])
            if template is not None:
                model = copy.deepcopy(template)
            else:
                X_shape, Y_shape = np.shape(X), np.shape(Y)
                if len(X_shape) != 3 or len(Y_shape) not in (2, 3):
                    raise ValueError(
                        f"X must have shape (n, time, input_size) and Y (n, time, "
                        f"output_size) or (n, output_size); got X {X_shape}, Y {Y_shape}"
                    )
                outputs = Y_shape[-1]
                if settings.get("loss") == "gaussian_nll":
                    outputs *= 2  # a mean and a log-variance per target
                model = RNN(X_shape[2], settings.get("hidden_size", 16), outputs,
                            return_sequences=len(Y_shape) == 3, seed=model_seed,
                            **{k: v for k, v in settings.items()
                               if k in _MODEL_KEYS and k != "hidden_size"})
            history = model.fit(X, Y, seed=fit_seed, **fit_kwargs)
    except Exception as exc:  # noqa: BLE001 - reported for this task, others go on
        return TaskResult(index, error=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc(), seeds=seeds, kernels=kernels)
    return TaskResult(index, model=model, history=history, seeds=seeds, kernels=kernels)


def fit_many(data: Iterable[Any],
             params: dict[str, Any] | Sequence[dict[str, Any]] | None = None, *,
             window: int | None = None, horizon: int = 1, many_to_many: bool | None = None,
             hidden_size: int | None = None, model: RNN | None = None, n_jobs: int | None = -1,
             seed: int | None = None, **kwargs: Any) -> FitManyResult:
    """Train one model per series, per (X, Y) pair or per setting, in parallel.

    Parameters
    ----------
    data : sequence of tasks
        With ``window``: each task is a series, array_like of shape (n_steps,) or
        (n_steps, n_features), or a tuple ``(series, targets)`` with targets of
        shape (n_steps,) or (n_steps, n_targets); each is cut into windows by
        :func:`elman.preprocessing.sliding_windows`. A 2-D array (n_series,
        n_steps) is a sequence of 1-D series. Without ``window``: each task is a
        pair ``(X, Y)`` of windows, X (n, time, input_size) and Y (n, time,
        output_size) for a many-to-many model or (n, output_size) for many-to-one.
    params : dict or list of dict, optional
        Per-task settings that override the keyword arguments below, for example a
        hyperparameter grid ``[{"hidden_size": 4, "lr": 0.01}, ...]``. ``data`` and
        ``params`` broadcast: equal lengths pair task ``i`` with ``params[i]``; a
        single dataset is trained once per entry of ``params`` (a grid search);
        a single dict applies to every task.
    window, horizon, many_to_many
        As :func:`elman.preprocessing.sliding_windows`: ``many_to_many=False``
        gives one target per window and a many-to-one model. ``many_to_many``
        defaults to True, or to ``model.return_sequences`` when ``model`` is given.
    hidden_size : int, default 16
        Units per recurrent layer of each new model (not with ``model``).
    model : elman.RNN, optional
        Instead of new models, train a copy of this one per task (a warm start,
        for example from a model trained on all series). Its weights are the start;
        RNN keywords may not be given.
    n_jobs : int or None, default -1
        Parallel workers, as joblib counts them: -1 all cores (or all of a
        cluster's workers), 1 a plain serial loop in this process, which needs no
        joblib. None takes the number from an enclosing
        ``joblib.parallel_backend(..., n_jobs=...)``. Without joblib installed,
        -1 runs the serial loop and warns once, saying how to parallelise
        (``pip install "elman[distributed]"``); the results are the same.
    seed : int, optional
        Root of every task's seeds (see Notes). None draws fresh entropy, kept in
        ``result.seed``.
    **kwargs
        RNN keywords (``num_layers``, ``dtype``, ``init``, ``init_scale``,
        ``spectral_radius``, ``loss``) and :func:`elman.training.fit` keywords (``epochs``,
        ``batch_size``, ``optimizer``, ``lr``, ``clip_value``, ``clip_norm``,
        ``validation_data``, ``early_stopping``, ...), the same for every task
        unless ``params`` overrides them. An Optimizer instance is copied per
        task, so each starts from its state and the instance itself is untouched.
        ``{index}`` in a ``checkpoint`` path becomes the task's index
        (``checkpoint="ckpt/sensor-{index}.npz"``, with ``resume=True`` to pick
        up after an interruption); two tasks may not share a checkpoint file.

    Returns
    -------
    FitManyResult
        ``.models`` and ``.histories`` in input order (None for a failed task),
        ``.errors`` (index to error text) and one :class:`TaskResult` per task.

    Raises
    ------
    ImportError
        ``n_jobs`` other than 1 or -1 (an explicit number of workers, or None)
        without joblib installed (``pip install "elman[distributed]"``).
    TypeError, ValueError
        For mistakes in the call itself (an unknown setting, params of the wrong
        length). Mistakes in one task's data (a series shorter than the window,
        NaN values, training that diverges) are not raised: they are that task's
        ``error``, and the other tasks' results are kept.

    Notes
    -----
    **Where it runs.** joblib decides: by default threads when the compiled
    kernels are in use (they release the GIL while training) and processes for
    the NumPy twin (which holds it); measured on two cores in
    ``bench/bench_fit_many.py``. Choose another with
    ``with joblib.parallel_backend("loky" | "threading" | "dask" | "ray"):``.

    **Same results everywhere.** Task ``i`` gets its seeds from
    ``numpy.random.SeedSequence(seed).spawn(n_tasks)[i]``, which depends on the
    index only (adding tasks at the end does not change earlier ones), and runs on
    the kernel backend active in the calling thread (``elman.use_backend`` or
    ``ELMAN_BACKEND`` here), passed to the worker explicitly: a worker process
    would otherwise choose from its own ``ELMAN_BACKEND``, and a worker thread
    would not see ``use_backend``. So the results do not depend on the joblib
    backend or the number of workers. Across machines they also need the same
    compiled build: ``result[i].kernels`` says which one each task ran on.

    Callbacks and other objects in the settings are shared by all tasks under
    threads and copied under processes; make a callback safe to call from several
    threads, or keep state out of it.

    Examples
    --------
    One model per sensor, on all cores::

        result = elman.fit_many(sensors, window=7, hidden_size=8, epochs=20, seed=0)
        models = result.models                      # None where a sensor failed
        print(result.errors)                        # {17: 'ValueError: series ...'}

    A grid over one dataset::

        grid = [{"hidden_size": h, "lr": lr} for h in (4, 8, 16) for lr in (1e-3, 1e-2)]
        result = elman.fit_many([(X, Y)], grid, epochs=50,
                                validation_data=(X_val, Y_val), seed=0)
        best = min(result, key=lambda r: r.history.val_loss[-1] if r.ok else np.inf)

    On a Dask cluster::

        from dask.distributed import Client
        import joblib
        client = Client("scheduler-address:8786")
        with joblib.parallel_backend("dask"):
            result = elman.fit_many(sensors, window=7, seed=0)
    """
    if model is not None and not isinstance(model, RNN):
        raise TypeError(f"model must be an elman.RNN to copy per task, or None; got "
                        f"{type(model).__name__}")
    if n_jobs is not None:
        n_jobs = check_int("n_jobs", n_jobs)
        if n_jobs == 0:
            raise ValueError("n_jobs must be a positive count, -1 (all cores), -k or None; "
                             "got 0")
    if seed is not None:
        seed = check_int("seed", seed, 0)

    if (isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray)
            and data[0].ndim == 3):
        raise TypeError("data looks like one (X, Y) pair; pass a list of tasks: "
                        "fit_many([(X, Y)], ...)")
    if isinstance(data, (str, bytes, dict)):
        raise TypeError(f"data must be a sequence of tasks (series or (X, Y) pairs); got "
                        f"{type(data).__name__}")
    try:
        tasks = list(data)
    except TypeError:
        raise TypeError(f"data must be a sequence of tasks (series or (X, Y) pairs); got "
                        f"{type(data).__name__}") from None

    task_params: list[dict[str, Any]]
    if params is None:
        task_params = [{}]
    elif isinstance(params, dict):
        task_params = [params]
    else:
        try:
            task_params = list(params)
        except TypeError:
            raise TypeError(f"params must be a dict or a list of dicts; got "
                            f"{type(params).__name__}") from None
        if not task_params:
            raise ValueError("params is empty: give at least one dict, or None")
        for i, entry in enumerate(task_params):
            if not isinstance(entry, dict):
                raise TypeError(f"params[{i}] must be a dict of settings; got "
                                f"{type(entry).__name__}")

    if many_to_many is None:
        many_to_many = True if model is None else model.return_sequences
    if hidden_size is not None:
        kwargs["hidden_size"] = hidden_size
    allowed = _WINDOW_KEYS | _MODEL_KEYS | _fit_keys()
    _check_settings("fit_many", kwargs, allowed, model is not None)
    common = dict(window=window, horizon=horizon, many_to_many=many_to_many, **kwargs)
    for i, entry in enumerate(task_params):
        _check_settings(f"params[{i}]", entry, allowed, model is not None)
    for where, entry in [("fit_many", kwargs)] + [(f"params[{i}]", entry)
                                                  for i, entry in enumerate(task_params)]:
        _check_loss(where, entry)

    if len(tasks) == len(task_params) or len(task_params) == 1:
        pairs = [(task, task_params[i if len(task_params) > 1 else 0])
                 for i, task in enumerate(tasks)]
    elif len(tasks) == 1:
        pairs = [(tasks[0], entry) for entry in task_params]
    else:
        raise ValueError(
            f"data has {len(tasks)} tasks and params {len(task_params)} entries: give "
            f"equal lengths (task i with params[i]), one dataset (trained once per "
            f"entry) or one params dict (applied to every task)"
        )

    # Fresh entropy is one int (SeedSequence types it more widely).
    root = cast(int, np.random.SeedSequence().entropy) if seed is None else seed
    seeds = _task_seeds(root, len(pairs))
    backend = _backend.active_name()
    settings = [_task_checkpoint(i, {**common, **entry}) for i, (_, entry) in enumerate(pairs)]
    _check_distinct_checkpoints(settings)
    calls = [(i, task, settings[i], seeds[i], backend, model)
             for i, (task, _) in enumerate(pairs)]

    serial = n_jobs == 1 or not calls
    if not serial:
        try:
            import joblib
        except ImportError as exc:
            if n_jobs != -1:
                raise ImportError(
                    f"fit_many(n_jobs={n_jobs}) runs its tasks through joblib, which is "
                    "not installed: pip install \"elman[distributed]\" (joblib, and Dask "
                    "for clusters), or pass n_jobs=1 for a serial loop without it"
                ) from exc
            # The default "all cores" degrades to the one this process has.
            warnings.warn(
                f"fit_many runs its {len(calls)} tasks one after another: joblib is not "
                "installed; pip install \"elman[distributed]\" to run them on all cores "
                "(same results)", RuntimeWarning, stacklevel=2)
            serial = True
    if serial:
        results = [_fit_task(*call) for call in calls]
    else:
        parallel = joblib.Parallel(n_jobs=n_jobs, prefer=DEFAULT_PREFER[backend])
        results = parallel(joblib.delayed(_fit_task)(*call) for call in calls)

    for i, result in enumerate(results):
        result.params = dict(pairs[i][1])
    return FitManyResult(results, root, backend)
