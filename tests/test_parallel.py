"""elman.fit_many: the same models on every joblib backend, per-task failures, order.

The joblib backends run here with 2 workers: threading, loky (processes) and, when
Dask is installed (the ``distributed`` extra), a Dask LocalCluster of 2 worker
processes on the loopback interface. Every comparison is exact: each task's seeds
come from the call's seed and its index, and its kernel backend from the caller,
so nothing depends on which worker ran it.
"""

import sys
import warnings

import numpy as np
import pytest

import elman
from elman.parallel import FitManyResult, fit_many
from elman.training import History

try:
    import joblib
except ImportError:  # the `distributed` extra is not installed: only n_jobs=1 runs
    joblib = None

needs_joblib = pytest.mark.skipif(joblib is None, reason="joblib is not installed "
                                  "(pip install \"elman[distributed]\")")

SETTINGS = dict(window=5, hidden_size=3, epochs=2, batch_size=8, seed=7)


def make_series(count=4, steps=40, seed=0):
    rng = np.random.default_rng(seed)
    return [np.sin(np.linspace(0, 6, steps) + i) + 0.1 * rng.normal(size=steps)
            for i in range(count)]


def assert_same_results(actual, expected):
    """Bit-identical models, histories and errors, task by task."""
    assert isinstance(actual, FitManyResult)
    assert len(actual) == len(expected)
    assert actual.errors == expected.errors
    assert actual.backend == expected.backend
    for a, e in zip(actual, expected):
        assert a.index == e.index
        assert a.seeds == e.seeds
        assert a.kernels == e.kernels and a.kernels.split("/")[0] == expected.backend
        if e.model is None:
            assert a.model is None
            continue
        np.testing.assert_array_equal(a.model.parameters, e.model.parameters)
        assert a.model.get_config() == e.model.get_config()
        assert a.history.loss == e.history.loss
        assert a.history.steps == e.history.steps


def test_result_holds_models_and_histories_in_input_order(backend):
    series = make_series(3)
    result = fit_many(series, [{"hidden_size": h} for h in (2, 3, 4)], n_jobs=1,
                      window=5, epochs=2, seed=0)
    assert result.ok and result.errors == {} and result.backend == backend
    assert [m.hidden_size for m in result.models] == [2, 3, 4]
    assert [r.index for r in result] == [0, 1, 2]
    assert [r.params for r in result] == [{"hidden_size": h} for h in (2, 3, 4)]
    for model, history, task in zip(result.models, result.histories, series):
        assert isinstance(model, elman.RNN) and isinstance(history, History)
        assert model.input_size == 1 and model.output_size == 1 and model.return_sequences
        assert history.epochs == 2 and np.isfinite(history.loss).all()


@needs_joblib
@pytest.mark.parametrize("joblib_backend", ["threading", "loky"])
def test_two_workers_give_the_serial_results(backend, joblib_backend):
    series = make_series(4)
    serial = fit_many(series, n_jobs=1, **SETTINGS)
    with joblib.parallel_backend(joblib_backend, n_jobs=2):
        parallel = fit_many(series, **SETTINGS)
    assert_same_results(parallel, serial)
    # n_jobs given in the call, not by the context: the same again.
    with joblib.parallel_backend(joblib_backend):
        assert_same_results(fit_many(series, n_jobs=2, **SETTINGS), serial)


@needs_joblib
def test_worker_processes_run_on_the_callers_backend(compiled_kernels):
    # A loky worker imports elman with its own ELMAN_BACKEND; fit_many passes the
    # caller's use_backend choice along, so the twin's results come back.
    series = make_series(2)
    serial = {}
    for name in ("cython", "numpy"):
        with elman.use_backend(name):
            serial[name] = fit_many(series, n_jobs=1, **SETTINGS)
    for name in ("cython", "numpy"):
        with elman.use_backend(name), joblib.parallel_backend("loky", n_jobs=2):
            assert_same_results(fit_many(series, **SETTINGS), serial[name])
    # Only meaningful if the backends differ at all in the last bits (they sum
    # in different orders); when they happen to agree there is nothing to tell.
    if not np.array_equal(serial["cython"].models[0].parameters,
                          serial["numpy"].models[0].parameters):
        with joblib.parallel_backend("loky", n_jobs=2), elman.use_backend("numpy"):
            twin = fit_many(series, **SETTINGS)
        assert not np.array_equal(twin.models[0].parameters,
                                  serial["cython"].models[0].parameters)


@needs_joblib
def test_order_is_kept_when_tasks_finish_out_of_order(backend):
    # The first task is much longer, so under threads the others finish first.
    series = make_series(5, steps=40)
    series[0] = np.sin(np.linspace(0, 60, 800))
    params = [{"hidden_size": h} for h in (8, 2, 3, 4, 5)]
    serial = fit_many(series, params, n_jobs=1, window=5, epochs=2, seed=1)
    with joblib.parallel_backend("threading", n_jobs=2):
        result = fit_many(series, params, window=5, epochs=2, seed=1)
    assert [m.hidden_size for m in result.models] == [8, 2, 3, 4, 5]
    assert_same_results(result, serial)


def series_with_bad_ones():
    series = make_series(5)
    series[1] = series[1][:4]                   # shorter than window + horizon
    series[3] = series[3].copy()
    series[3][10] = np.nan                      # NaN data
    return series


def test_a_failing_task_is_reported_and_the_others_kept(backend):
    alone = fit_many(series_with_bad_ones(), n_jobs=1, **SETTINGS)
    assert sorted(alone.errors) == [1, 3]
    assert alone.errors[1].startswith("ValueError: ") and "window" in alone.errors[1]
    assert alone.errors[3].startswith("ValueError: ") and "NaN" in alone.errors[3]
    assert not alone.ok
    for i in (1, 3):
        assert alone[i].model is None and alone[i].history is None
        assert "Traceback" in alone[i].traceback
    assert [m is not None for m in alone.models] == [True, False, True, False, True]
    assert alone.histories[0].epochs == 2
    with pytest.raises(RuntimeError, match=r"2 of 5 fit_many tasks failed: task 1: "):
        alone.raise_errors()


@needs_joblib
@pytest.mark.parametrize("joblib_backend", ["threading", "loky"])
def test_failures_are_the_same_on_two_workers(backend, joblib_backend):
    series = series_with_bad_ones()
    serial = fit_many(series, n_jobs=1, **SETTINGS)
    with joblib.parallel_backend(joblib_backend, n_jobs=2):
        assert_same_results(fit_many(series, **SETTINGS), serial)


def test_divergence_is_a_task_error(backend):
    # Finite data whose squared error overflows: fit raises TrainingDivergedError.
    series = [np.linspace(0, 1, 30), np.full(30, 1e160)]
    result = fit_many(series, n_jobs=1, window=5, hidden_size=2, epochs=1, seed=0)
    assert list(result.errors) == [1]
    assert result.errors[1].startswith("TrainingDivergedError: training diverged")
    assert result.models[0] is not None


def test_seeds_reproduce_a_task_on_its_own(backend):
    series = make_series(3)
    result = fit_many(series, n_jobs=1, **SETTINGS)
    from elman.preprocessing import sliding_windows

    model_seed, fit_seed = result[2].seeds
    X, Y = sliding_windows(series[2], 5)
    model = elman.RNN(1, 3, 1, seed=model_seed)
    history = model.fit(X, Y, epochs=2, batch_size=8, seed=fit_seed)
    np.testing.assert_array_equal(model.parameters, result.models[2].parameters)
    assert history.loss == result.histories[2].loss
    # Seeds depend on the index only: a longer call starts with the same tasks.
    longer = fit_many(series + make_series(1, seed=5), n_jobs=1, **SETTINGS)
    assert [r.seeds for r in longer][:3] == [r.seeds for r in result]
    # A different root seed gives different tasks; seed=None draws one and keeps it.
    assert fit_many(series, n_jobs=1, **{**SETTINGS, "seed": 8})[0].seeds != result[0].seeds
    fresh = fit_many(series, n_jobs=1, **{**SETTINGS, "seed": None})
    assert_same_results(fit_many(series, n_jobs=1, **{**SETTINGS, "seed": fresh.seed}),
                        fresh)


def test_grid_over_one_dataset_of_windows(backend):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(24, 6, 2))
    Y = X.sum(axis=2).cumsum(axis=1)[:, -1:]            # (24, 1): many-to-one
    grid = [{"hidden_size": h, "lr": lr} for h in (2, 4) for lr in (1e-3, 1e-2)]
    result = fit_many([(X, Y)], grid, n_jobs=1, epochs=3, batch_size=8, seed=0,
                      validation_data=(X[:6], Y[:6]))
    assert result.ok and len(result) == 4
    assert [(m.hidden_size, m.return_sequences) for m in result.models] == [
        (2, False), (2, False), (4, False), (4, False)]
    assert all(len(h.val_loss) == 3 for h in result.histories)
    assert [r.params for r in result] == grid


def test_series_with_targets_and_arrays_of_series(backend):
    rng = np.random.default_rng(4)
    features = rng.normal(size=(50, 3))
    target = features[:, 0].cumsum()
    result = fit_many([(features, target)] * 2, n_jobs=1, window=7, horizon=0,
                      many_to_many=False, hidden_size=4, epochs=1, seed=0)
    assert result.ok
    assert [(m.input_size, m.output_size, m.return_sequences)
            for m in result.models] == [(3, 1, False)] * 2
    # A 2-D array (n_series, n_steps) is a sequence of 1-D series.
    stacked = np.stack(make_series(3))
    assert_same_results(fit_many(stacked, n_jobs=1, **SETTINGS),
                        fit_many(list(stacked), n_jobs=1, **SETTINGS))


@needs_joblib
def test_warm_start_copies_the_model_and_the_optimizer(backend):
    template = elman.RNN(1, 3, 1, seed=0)
    start = template.parameters.copy()
    optimizer = elman.optimizers.Adam(lr=0.01)
    series = make_series(2)
    with joblib.parallel_backend("threading", n_jobs=2):
        result = fit_many(series, model=template, window=5, epochs=2, optimizer=optimizer,
                          seed=0)
    assert result.ok
    np.testing.assert_array_equal(template.parameters, start)  # untouched
    assert optimizer.step_count[0] == 0
    assert all(m is not template and m.hidden_size == 3 for m in result.models)
    serial = fit_many(series, model=template, window=5, epochs=2, optimizer=optimizer,
                      seed=0, n_jobs=1)
    assert_same_results(result, serial)
    with pytest.raises(TypeError, match="model= is given"):
        fit_many(series, model=template, window=5, hidden_size=4, n_jobs=1)


def test_mistakes_in_the_call_raise_at_once():
    series = make_series(2)
    with pytest.raises(TypeError, match="unknown setting 'epoch'"):
        fit_many(series, window=5, epoch=3, n_jobs=1)
    with pytest.raises(TypeError, match=r"params\[1\] may not set 'seed'"):
        fit_many(series, [{}, {"seed": 1}], window=5, n_jobs=1)
    with pytest.raises(TypeError, match="may not set 'input_size'"):
        fit_many(series, window=5, input_size=2, n_jobs=1)
    with pytest.raises(ValueError, match="data has 2 tasks and params 3 entries"):
        fit_many(series, [{}, {}, {}], window=5, n_jobs=1)
    with pytest.raises(ValueError, match="params is empty"):
        fit_many(series, [], window=5, n_jobs=1)
    with pytest.raises(TypeError, match=r"params\[0\] must be a dict"):
        fit_many(series, ["hidden_size"], window=5, n_jobs=1)
    with pytest.raises(ValueError, match="n_jobs"):
        fit_many(series, window=5, n_jobs=0)
    with pytest.raises(TypeError, match=r"one \(X, Y\) pair; pass a list"):
        fit_many((np.zeros((4, 3, 1)), np.zeros((4, 1))), n_jobs=1)
    with pytest.raises(TypeError, match="data must be a sequence"):
        fit_many(5, window=5, n_jobs=1)
    with pytest.raises(TypeError, match="model must be an elman.RNN"):
        fit_many(series, model="rnn", n_jobs=1)
    assert len(fit_many([], window=5)) == 0


def test_checkpoint_paths_take_the_task_index(tmp_path):
    series = make_series(3)
    path = str(tmp_path / "task-{index}.npz")
    first = fit_many(series, n_jobs=1, checkpoint=path, **SETTINGS)
    assert first.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"task-{i}.npz" for i in range(3)]
    # Resuming from finished checkpoints trains nothing more: the same models.
    again = fit_many(series, n_jobs=1, checkpoint=path, resume=True, **SETTINGS)
    for a, b in zip(again.models, first.models):
        np.testing.assert_array_equal(a.parameters, b.parameters)
    with pytest.raises(ValueError, match=r"tasks 0 and 1 would write the same checkpoint"):
        fit_many(series, n_jobs=1, checkpoint=tmp_path / "one.npz", **SETTINGS)
    assert fit_many(series[:1], n_jobs=1, checkpoint=tmp_path / "one.npz", **SETTINGS).ok


def test_tasks_without_window_must_be_pairs():
    result = fit_many([np.zeros(30)], n_jobs=1, epochs=1, seed=0)
    assert result.errors[0].startswith("TypeError: without window=, each task must be a "
                                       "pair (X, Y)")


def test_without_joblib_the_default_runs_serially_and_says_how_to_parallelise(
        monkeypatch, backend):
    series = make_series(3)
    serial = fit_many(series, n_jobs=1, **SETTINGS)
    monkeypatch.setitem(sys.modules, "joblib", None)    # import joblib -> ImportError
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # n_jobs=1 needs no joblib, no note
        assert_same_results(fit_many(series, n_jobs=1, **SETTINGS), serial)
    with pytest.warns(RuntimeWarning) as record:
        default = fit_many(series, **SETTINGS)          # n_jobs=-1, the default
    assert_same_results(default, serial)
    assert len(record) == 1
    message = str(record[0].message)
    assert "\n" not in message
    assert message.startswith("fit_many runs its 3 tasks one after another: joblib is not "
                              "installed")
    assert 'pip install "elman[distributed]"' in message
    assert record[0].filename == __file__               # points at the caller's line


def test_without_joblib_an_explicit_worker_count_is_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "joblib", None)
    series = make_series(2)
    for n_jobs in (2, -2, None):
        with pytest.raises(ImportError, match=r'pip install "elman\[distributed\]".*n_jobs=1'):
            fit_many(series, n_jobs=n_jobs, **SETTINGS)


# ----------------------------------------------------------------------------- Dask
@pytest.fixture(scope="module")
def dask_client():
    """A Dask cluster of 2 worker processes on 127.0.0.1, torn down after the module."""
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "30s",
                          "distributed.scheduler.work-stealing": False}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None,
                                      silence_logs=40) as cluster:
            with distributed.Client(cluster, timeout="30s") as client:
                client.wait_for_workers(2, timeout=60)
                yield client


@needs_joblib
def test_dask_cluster_gives_the_serial_results(backend, dask_client):
    series = make_series(4)
    series[2] = series[2][:3]                   # a failure travels back as text
    serial = fit_many(series, n_jobs=1, **SETTINGS)
    with joblib.parallel_backend("dask", wait_for_workers_timeout=60):
        on_cluster = fit_many(series, **SETTINGS)
    assert list(on_cluster.errors) == [2]
    assert_same_results(on_cluster, serial)
    # The work ran on the cluster's worker processes, not in this one.
    assert sum(dask_client.run(lambda: 1).values()) == 2


def test_fit_many_is_exported_from_elman():
    assert getattr(elman, "fit_many", None) is fit_many, (
        "add `from elman.parallel import fit_many` and \"fit_many\" in __all__ to "
        "src/elman/__init__.py (the README calls elman.fit_many)")
