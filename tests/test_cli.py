"""The command line: `elman fit`, `elman predict`, `elman info`.

Most tests call ``elman.cli.main([...])`` in-process on small CSV files with a few
epochs, so the file stays fast on both backends; one test runs the full default
`elman fit` on the bundled data (a few seconds) and one runs ``python -m elman`` in
a subprocess.
"""

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import elman
from elman import cli

FAST = ["--fast", "-q"]
# Options of the single-RNN path (--batch-size selects it), small and quick.
SINGLE = ["--epochs", "2", "--hidden", "4", "--window", "5", "--batch-size", "32", "-q"]


def run(capsys, *argv):
    """main(argv) in-process: (exit status, stdout, stderr)."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def series_csv(tmp_path):
    """200 daily rows: date, y (a noisy sine), x (an exogenous input), one gap in x."""
    rng = np.random.default_rng(0)
    t = np.arange(200)
    y = 10 + 3 * np.sin(2 * np.pi * t / 25) + rng.normal(0, 0.3, size=200)
    x = np.cos(2 * np.pi * t / 25) + rng.normal(0, 0.1, size=200)
    dates = np.datetime64("2021-01-01") + t
    rows = [[str(d), f"{a:.6f}", f"{b:.6f}"] for d, a, b in zip(dates, y, x)]
    rows[10][2] = ""  # a missing value, forward-filled
    return write_csv(tmp_path / "series.csv", ["date", "y", "x"], rows)


def one_line_error(err, code, expected_code=2):
    assert code == expected_code
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def table_rows(out):
    """{label: (mse, mae)} from the results table of `elman fit`."""
    rows = {}
    for line in out.splitlines():
        match = re.match(r"\s{2}(\S.*?)\s{2,}([0-9.]+)\s+([0-9.]+)\s*$", line)
        if match:
            rows[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    return rows


# ---------------------------------------------------------------------------- fit
def test_weather_fit_beats_every_baseline(capsys):
    code, out, err = run(capsys, "fit", "--fast", "-q")
    assert code == 0, err
    rows = table_rows(out)
    elman_mse = rows["elman Forecaster"][0]
    persistence = rows["persistence (tomorrow's tmax = today's)"][0]
    linear = rows["linear regression on today's tmax, tmin, rain"][0]
    ridge = next(v[0] for k, v in rows.items() if k.startswith("ridge autoregression"))
    # Persistence is a fixed number on these test days; the fitted baselines depend
    # only on the rows before them.
    assert persistence == pytest.approx(24.76, abs=0.01)
    assert elman_mse < min(linear, ridge, persistence)
    assert "test, one step ahead: 2027 days, 2017-05-10 to 2022-11-26" in out
    assert "split: fit on the first 11482 rows" in out and "test on the last 2027" in out
    assert re.search(r"chosen: (transform \w+|the mean of [23] transforms), season", out)
    assert re.search(r"time: fit [0-9.]+ m?s .* on the (cython|numpy) backend; whole run", out)
    # With extra inputs there is no closed-loop table: their future is unknown.
    assert "closed loop" not in out


def test_persistence_is_todays_tmax():
    # The generic rule (the aligned target's value on the row before) is today's tmax.
    from elman.datasets import load_weather

    weather = load_weather()
    assert np.array_equal(weather["tmax_tomorrow"][:-1], weather["tmax"][1:])


def test_fit_csv_reports_task_split_baselines_and_closed_loop(capsys, series_csv):
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", *FAST)
    assert code == 0, err
    assert err == ""  # -q: no progress
    # The default input is the target alone, so x (and its gap) is not read.
    assert "task: predict y on the next row from the rows up to now (y)\n" in out
    assert "filled" not in out
    rows = table_rows(out)
    assert "elman Forecaster" in rows and "persistence (last known y)" in rows
    assert any(label.startswith("ridge autoregression on the last ") for label in rows)
    assert any(label.startswith("seasonal naive (the value ") for label in rows)
    assert not any(label.startswith("linear regression") for label in rows)
    # 200 rows: fit on the first 170, test on the last 30.
    assert "split: fit on the first 170 rows" in out and "test on the last 30 (15%)" in out
    assert "test, one step ahead: 30 rows, 2021-06-20 to 2021-07-19" in out
    assert "closed loop from every test origin" in out
    assert re.search(r"elman beats seasonal naive at \d+ of \d+ horizons", out)


def test_fit_features_all_takes_every_numeric_column(capsys, tmp_path):
    rng = np.random.default_rng(1)
    rows = [[f"{1950 + i}", f"{v:.4f}", f"{w:.4f}", "note"]
            for i, (v, w) in enumerate(zip(rng.normal(size=80).cumsum(), rng.normal(size=80)))]
    rows[5][2] = ""
    path = write_csv(tmp_path / "t.csv", ["Year", "y", "x", "comment"], rows)
    code, out, err = run(capsys, "fit", path, "--target", "y", "--features", "all", *FAST)
    assert code == 0, err
    # Year became the dates (never an input); the text column is skipped with a note.
    assert "80 rows, 1950 to 2029" in out
    assert "skipped text column comment (not numbers)" in out
    assert "1 missing values filled" in out
    assert "linear regression on the last row's y, x" in table_rows(out)


def test_fit_target_not_an_input_is_aligned(capsys, series_csv):
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", "--features", "x", *FAST)
    assert code == 0, err
    assert "aligned target: horizon 0" in out
    assert "linear regression on the last row's y, x" in table_rows(out)


def test_fit_horizon_zero_with_target_as_input_is_refused(capsys, series_csv):
    code, _, err = run(capsys, "fit", series_csv, "--target", "y", "--horizon", "0", *FAST)
    line = one_line_error(err, code)
    assert "--horizon 0" in line


def test_fit_horizon_two_is_closed_loop(capsys, series_csv):
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", "--horizon", "2", *FAST)
    assert code == 0, err
    assert "test, 2 steps ahead: 30 rows" in out
    code, _, err = run(capsys, "fit", series_csv, "--target", "y", "--features", "y,x",
                       "--horizon", "2", *FAST)
    assert "--horizon 2 with other inputs (x)" in one_line_error(err, code)


def test_fit_interval_reports_coverage(capsys, series_csv):
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", "--interval", "0.9",
                         *FAST)
    assert code == 0, err
    match = re.search(r"90% interval: covers ([0-9.]+)% of the test rows one step ahead", out)
    assert match and 0 <= float(match.group(1)) <= 100
    assert re.search(r"\n  90% coverage +[0-9.]+%", out)


def test_explicit_options_reach_the_forecaster(capsys, series_csv):
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", "--window", "6",
                         "--hidden", "5", "--lr", "0.005", "--epochs", "3",
                         "--transform", "diff", "-q")
    assert code == 0, err
    assert "given: window 6, hidden 5, lr 0.005, epochs 3, transform diff" in out
    assert re.search(r"chosen: transform diff, season .*\n  diff: .*\(window 6, hidden 5, "
                     r"lr 0.005\)", out)


def test_single_rnn_options_select_the_single_rnn(capsys, series_csv):
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", *SINGLE)
    assert code == 0, err
    assert "model: RNN(1, 4, 1), many-to-many; Adam lr 0.002, batch 32" in out
    assert "elman RNN" in table_rows(out)
    code, _, err = run(capsys, "fit", series_csv, "--target", "y", *SINGLE, "--fast")
    assert "--fast belongs to the forecaster" in one_line_error(err, code)


def test_trend_advice_names_differencing():
    from types import SimpleNamespace

    from elman.cli._report import likely_cause

    methods = {"elman Forecaster": {"mse": 3.0}, "ridge autoregression": {"mse": 1.0},
               "persistence": {"mse": 2.0}}
    results = {"actual": np.linspace(11, 14, 30), "train_low": 0.0, "train_high": 10.0,
               "train_windows": 200, "methods": methods, "labels": tuple(methods),
               "persistence_label": "persistence"}
    forecaster = SimpleNamespace(config_={"transform": "none"}, fast=False)
    advice = likely_cause(results, forecaster)
    assert "100% of the test values lie above the fitted range" in advice
    assert "--transform diff" in advice
    forecaster.config_["transform"] = "diff"
    assert "--transform diff" not in likely_cause(results, forecaster)
    # When no linear model beats persistence either, the series looks like a random walk.
    methods["ridge autoregression"]["mse"] = 2.5
    assert "random walk" in likely_cause(results, forecaster)


@pytest.mark.parametrize("case", ["unknown_feature", "unknown_target", "non_numeric",
                                  "ragged", "empty", "missing", "header_only", "too_short"])
def test_bad_csv_one_line_error_exit_2(capsys, tmp_path, case):
    good_rows = [[f"2020-01-{d:02d}", d, 2 * d] for d in range(1, 21)]
    args = ["--target", "a"]
    if case == "unknown_feature":
        path = write_csv(tmp_path / "d.csv", ["date", "a", "b"], good_rows)
        args += ["--features", "a,nope"]
        expect = ["'nope'", "line 1", "date, a, b"]
    elif case == "unknown_target":
        path = write_csv(tmp_path / "d.csv", ["date", "a", "b"], good_rows)
        args = ["--target", "zz"]
        expect = ["'zz'"]
    elif case == "non_numeric":
        rows = [list(r) for r in good_rows]
        rows[6][2] = "n/a?"
        path = write_csv(tmp_path / "d.csv", ["date", "a", "b"], rows)
        args += ["--features", "a,b"]
        expect = ["line 8", "column 'b'", "not numeric"]
    elif case == "ragged":
        path = tmp_path / "d.csv"
        path.write_text("date,a,b\n2020-01-01,1,2\n2020-01-02,3\n", encoding="utf-8")
        path = str(path)
        expect = ["line 3", "2 fields, expected 3"]
    elif case == "empty":
        path = tmp_path / "d.csv"
        path.write_text("", encoding="utf-8")
        path = str(path)
        expect = ["empty"]
    elif case == "missing":
        path = str(tmp_path / "absent.csv")
        expect = ["absent.csv", "no such file"]
    elif case == "header_only":
        path = tmp_path / "d.csv"
        path.write_text("date,a,b\n", encoding="utf-8")
        path = str(path)
        expect = ["no data rows"]
    else:
        path = write_csv(tmp_path / "d.csv", ["date", "a", "b"], good_rows[:7])
        expect = ["7 rows"]
    code, out, err = run(capsys, "fit", path, *args, *FAST)
    line = one_line_error(err, code)
    assert line.startswith("elman fit: error: ")
    for text in expect:
        assert text in line, line
    assert out == ""  # nothing trained, nothing reported


def test_fit_csv_needs_target(capsys, series_csv):
    code, _, err = run(capsys, "fit", series_csv, *FAST)
    assert "--target is required" in one_line_error(err, code)


def test_usage_errors_and_help(capsys):
    code, _, err = run(capsys, "fit", "--window", "0")
    assert code == 2 and "--window: must be >= 1" in err
    code, _, err = run(capsys, "fit", "--lr", "nan")
    assert code == 2 and "--lr" in err
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "fit" in out and "predict" in out
    code, _, err = run(capsys)
    assert code == 2 and "usage: elman" in err


# ------------------------------------------------------------------------ predict
def test_predict_forecaster_round_trip(capsys, tmp_path, series_csv):
    model_path = str(tmp_path / "model.npz")
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", *FAST, "--out",
                         model_path)
    assert code == 0, err
    assert f"saved the model to {model_path}" in out

    code, out, err = run(capsys, "predict", model_path, series_csv)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "date,y,y_predicted"
    body = list(csv.reader(lines[1:]))
    assert body[-1][0] == "2021-07-19"

    # The same numbers from the Python API: elman.load gives the Forecaster back.
    from elman.datasets import load_csv

    forecaster = elman.load(model_path)
    assert isinstance(forecaster, elman.Forecaster)
    assert forecaster.metadata_["elman_cli"]["target"] == "y"  # what predict reads
    series = load_csv(series_csv)["y"]
    expected = forecaster.predict_one_step(series)
    first = int(np.flatnonzero(np.isfinite(expected))[0])
    assert len(body) == 200 - first
    predicted = np.array([float(row[2]) for row in body])
    np.testing.assert_allclose(predicted, expected[first:], rtol=1e-9)  # written with 10 significant digits
    assert [float(row[1]) for row in body] == pytest.approx(series[first:], rel=1e-9)

    # --steps with --interval: the bounds go just before the prediction, which stays last;
    # the forecasts are Forecaster.predict's, dated by the data's daily step.
    out_path = tmp_path / "pred.csv"
    code, out, err = run(capsys, "predict", model_path, series_csv, "--steps", "3",
                         "--interval", "0.8", "--output", str(out_path))
    assert code == 0 and out == "", err
    rows = list(csv.reader(out_path.read_text(encoding="utf-8").splitlines()))
    assert rows[0] == ["date", "y", "y_lower", "y_upper", "y_predicted"]
    assert [r[0] for r in rows[-3:]] == ["2021-07-20", "2021-07-21", "2021-07-22"]
    point, lower, upper = forecaster.predict(3, data=series, interval=0.8)
    np.testing.assert_allclose([float(r[4]) for r in rows[-3:]], point, rtol=1e-9)  # written with 10 significant digits
    np.testing.assert_allclose([float(r[2]) for r in rows[-3:]], lower, rtol=1e-9)  # written with 10 significant digits
    for row in rows[1:]:
        assert float(row[2]) <= float(row[4]) <= float(row[3])


def test_predict_round_trip_single_rnn_file(capsys, tmp_path, series_csv):
    # A file of the single-RNN path (the format `elman fit --out` wrote before the
    # forecaster) still predicts.
    model_path = str(tmp_path / "model.npz")
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", "--features", "y",
                         *SINGLE, "--out", model_path)
    assert code == 0, err
    assert f"saved the model to {model_path}" in out

    code, out, err = run(capsys, "predict", model_path, series_csv)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "date,y,y_predicted"
    # window 5, horizon 1: windows ending on rows 4 .. 198 predict rows 5 .. 199.
    body = list(csv.reader(lines[1:]))
    assert len(body) == 195
    assert body[0][0] == "2021-01-06" and body[-1][0] == "2021-07-19"

    # The same numbers from the Python API: the model, its scalers and one window.
    from elman.datasets import load_csv
    from elman.model_file import load_with_metadata
    from elman.preprocessing import StandardScaler

    loaded = load_with_metadata(model_path)
    assert loaded.extra["features"] == ["y"] and loaded.extra["window"] == 5
    state = {k.split(".", 1)[1]: v for k, v in loaded.extra_arrays.items()
             if k.startswith("x_scaler.")}
    x_scaler = StandardScaler.from_state(state)
    y_state = {k.split(".", 1)[1]: v for k, v in loaded.extra_arrays.items()
               if k.startswith("y_scaler.")}
    y_scaler = StandardScaler.from_state(y_state)
    series = load_csv(series_csv)["y"]
    window = x_scaler.transform(series[:5, None])[None]          # (1, 5, 1)
    expected = y_scaler.inverse_transform(loaded.model.predict(window)[:, -1, :])[0, 0]
    assert float(body[0][2]) == pytest.approx(expected, rel=1e-9)
    assert float(body[0][1]) == pytest.approx(series[5], rel=1e-9)

    # --steps: closed-loop rows after the end, dated by the data's daily step.
    out_path = tmp_path / "pred.csv"
    code, out, err = run(capsys, "predict", model_path, series_csv, "--steps", "3",
                         "--output", str(out_path))
    assert code == 0 and out == "", err
    rows = list(csv.reader(out_path.read_text(encoding="utf-8").splitlines()))
    assert rows[1:-3] == body  # --output writes what stdout gets
    assert [r[0] for r in rows[-3:]] == ["2021-07-20", "2021-07-21", "2021-07-22"]
    assert all(r[1] == "" and np.isfinite(float(r[2])) for r in rows[-3:])
    # The first forecast uses only real rows: the model's output on the last window.
    last_window = x_scaler.transform(series[-5:, None])[None]
    first = y_scaler.inverse_transform(loaded.model.predict(last_window)[:, -1, :])[0, 0]
    assert float(rows[-3][2]) == pytest.approx(first, rel=1e-9)
    # All of them follow RNN.forecast's closed-loop rule (the one Forecaster.predict uses).
    closed_loop = y_scaler.inverse_transform(loaded.model.forecast(last_window[0], 3))[:, 0]
    assert [float(r[2]) for r in rows[-3:]] == pytest.approx(closed_loop, rel=1e-9)


@pytest.mark.parametrize("path", ["forecaster", "single"])
def test_predict_steps_refused_with_exogenous_inputs(capsys, tmp_path, series_csv, path):
    model_path = str(tmp_path / "model.npz")
    options = FAST if path == "forecaster" else SINGLE
    assert run(capsys, "fit", series_csv, "--target", "y", "--features", "y,x", *options,
               "--out", model_path)[0] == 0
    code, _, err = run(capsys, "predict", model_path, series_csv, "--steps", "2")
    line = one_line_error(err, code)
    assert "also reads x" in line and "future values are unknown" in line
    # Without --steps the same model predicts fine.
    code, out, _ = run(capsys, "predict", model_path, series_csv)
    assert code == 0 and out.startswith("date,y,y_predicted\n")


def test_predict_errors(capsys, tmp_path, series_csv):
    code, _, err = run(capsys, "predict", str(tmp_path / "none.npz"), series_csv)
    assert "no such file" in one_line_error(err, code)
    code, _, err = run(capsys, "predict", series_csv, series_csv)  # a CSV is not a model
    assert "series.csv" in one_line_error(err, code)
    plain = tmp_path / "plain.npz"
    elman.RNN(1, 2, 1, seed=0).save(plain)  # a model without the CLI's metadata
    code, _, err = run(capsys, "predict", str(plain), series_csv)
    assert "elman fit --out" in one_line_error(err, code)


# --------------------------------------------------------------------------- plot
def test_plot_writes_png(capsys, tmp_path, series_csv):
    pytest.importorskip("matplotlib")
    png = tmp_path / "out.png"
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", *FAST, "--plot", str(png))
    assert code == 0, err
    assert f"saved the plot to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["out.pnx", "out"])
def test_plot_with_unknown_extension_fails_before_training(capsys, tmp_path, series_csv,
                                                           name):
    pytest.importorskip("matplotlib")
    path = tmp_path / name
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", *FAST, "--plot",
                         str(path))
    line = one_line_error(err, code)
    assert f"--plot {path}:" in line and ".png" in line
    assert out == "" and not path.exists()


def test_plot_without_matplotlib_fails_fast(capsys, monkeypatch, tmp_path, series_csv):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "out.png"
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", *FAST, "--plot", str(png))
    line = one_line_error(err, code)
    # The hint works today (a source checkout) and says when the PyPI form will.
    assert 'pip install matplotlib' in line and 'pip install ".[plot]"' in line
    assert 'pip install "elman[plot]" once elman is published on PyPI' in line
    assert out == "" and not png.exists()  # refused before any training


# --------------------------------------------------------------------------- info
def test_info(capsys, monkeypatch):
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert out.startswith(f"elman {elman.__version__}\n")
    assert f"backend in use: {elman.BACKEND}" in out
    if elman.compiled_available():
        assert "compiled module: present" in out
        kernels = elman._backend.get_kernels("cython")
        level = getattr(kernels, "INSTRUCTION_SET", None) or "baseline"
        assert f"instruction set: {level}" in out
        monkeypatch.setattr(kernels, "INSTRUCTION_SET", "x86-64-v3 (AVX2, FMA)", raising=False)
        code, out, _ = run(capsys, "info")
        assert "instruction set: x86-64-v3 (AVX2, FMA)" in out
    else:
        assert "compiled module: not installed" in out


def test_info_without_compiled_module_is_worded_plainly(capsys, monkeypatch):
    def missing():
        raise ImportError("No module named 'elman._kernels'")

    monkeypatch.setattr(elman._backend, "_import_compiled", missing)
    monkeypatch.delenv("ELMAN_BACKEND", raising=False)
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert "ELMAN_BACKEND=unset" in out
    assert "ELMAN_BACKEND=cython" not in out  # the user set nothing
    line = next(line for line in out.splitlines() if line.startswith("compiled module:"))
    assert line.startswith("compiled module: not installed (No module named 'elman._kernels')")
    assert "the NumPy twin gives the same results" in line
    assert "instruction set: n/a" in out


def test_info_install_hints_do_not_promise_pypi(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code, out, _ = run(capsys, "info")
    assert code == 0 and "matplotlib not installed" in out
    hint = next(line for line in out.splitlines() if line.startswith("to add them:"))
    assert 'pip install ".[' in hint and "once elman is published on PyPI" in hint


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out == f"elman {elman.__version__}\n"


def test_python_dash_m_subprocess(tmp_path):
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "elman", "info"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"elman {elman.__version__}")
    assert "instruction set:" in result.stdout



# -------------------------------------------------------------- pipes and timing
def _elman(*args):
    return [sys.executable, "-m", "elman", *args]


def _run_into_head(argv, lines, cwd):
    """Run argv with its stdout read for ``lines`` lines, then closed, as `| head` does."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=cwd)
    head = [process.stdout.readline() for _ in range(lines)]
    process.stdout.close()
    try:
        _, err = process.communicate(timeout=300)
    finally:
        process.kill()
    return process.returncode, head, err.decode()


def test_closed_pipe_ends_quietly(tmp_path):
    rng = np.random.default_rng(3)
    n = 30000  # a prediction file far larger than a pipe's buffer
    path = write_csv(tmp_path / "long.csv", ["y"],
                     [[f"{v:.5f}"] for v in np.sin(np.arange(n) / 9) + rng.normal(0, .1, n)])
    model = str(tmp_path / "m.npz")
    code, head, err = _run_into_head(_elman("fit", path, "--target", "y", "--fast", "-q",
                                            "--out", model), 1, tmp_path)
    assert code in (0, 141) and "Traceback" not in err and "Error" not in err, err
    assert head[0].startswith(b"data: ")
    assert os.path.exists(model)  # the job went on and saved its model
    code, head, err = _run_into_head(_elman("predict", model, path), 3, tmp_path)
    assert code in (0, 141) and err == "", err
    assert head[0] == b"row,y,y_predicted\n"


def test_whole_run_time_counts_from_the_process_start(tmp_path, series_csv):
    import time

    started = time.perf_counter()
    result = subprocess.run(_elman("fit", series_csv, "--target", "y", "--fast", "-q"),
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    match = re.search(r"time: fit ([0-9.]+) (m?s) .* whole run ([0-9.]+) (m?s)\n",
                      result.stdout)
    fit, whole = (float(match.group(i)) / (1000 if match.group(i + 1) == "ms" else 1)
                  for i in (1, 3))
    # The whole run includes the fit and Python's start-up, and fits inside the wall
    # time measured from outside the process.
    assert fit < whole <= wall


def test_plot_draws_without_matplotlib_warnings(tmp_path):
    pytest.importorskip("matplotlib")
    # A short monthly series: a few dates per axis, where date locators used to warn.
    t = np.arange(48)
    months = np.datetime64("2019-01", "M") + t
    rows = [[str(m), f"{50 + 5 * np.sin(2 * np.pi * i / 12) + 0.3 * i:.3f}"]
            for i, m in zip(t, months)]
    path = write_csv(tmp_path / "monthly.csv", ["month", "sales"], rows)
    png = tmp_path / "out.png"
    result = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-m", "elman", "fit", path, "--target",
         "sales", "--fast", "-q", "--interval", "0.9", "--plot", str(png)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------- damaged CSV files
def _damaged_files():
    """(name, bytes) of damaged variants of a small good CSV."""
    good = "date,a,b\n" + "".join(f"2020-01-{d:02d},{d}.5,{2 * d}\n" for d in range(1, 29))
    raw = good.encode()
    rng = np.random.default_rng(12)
    cases = [("nul bytes", raw[:40] + b"\x00\x00" + raw[40:]),
             ("latin-1", raw.replace(b"a,b", "ä,b".encode("latin-1"))),
             ("binary", bytes(rng.integers(0, 256, 600, dtype=np.uint8))),
             ("gzip magic", b"\x1f\x8b\x08" + raw),
             ("only newlines", b"\n\n\n"), ("only header comma", b",\n"),
             ("bom only", b"\xef\xbb\xbf"),
             ("open quote", raw.replace(b"2020-01-05", b'"2020-01-05')),
             ("huge field", raw + b"2020-01-29," + b"9" * 200000 + b",1\n"),
             ("inf", raw.replace(b"3.5", b"1e999")), ("nan column", raw.replace(b"5.5", b"nan")),
             ("bad month", raw.replace(b"2020-01-07", b"2020-13-07")),
             ("date overflow", raw.replace(b"2020-01-07", b"99999999999-01-07")),
             ("reversed dates", b"date,a,b\n" + b"".join(reversed(raw.split(b"\n")[1:-1]))
              .replace(b"5\n", b"5\n")),
             ("duplicate header", raw.replace(b"date,a,b", b"date,a,a")),
             ("extra field", raw.replace(b"2020-01-09,9.5,18", b"2020-01-09,9.5,18,7")),
             ("tabs and commas", raw.replace(b",", b"\t", 30)),
             ("crlf mix", raw.replace(b"\n", b"\r\n", 10)),
             ("lone cr", raw.replace(b"\n", b"\r")),
             ("quarter junk", raw.replace(b"2020-01-03", b"2020Q7")),
             ("unicode digits", raw.replace(b"4.5", "\u0664.5".encode())),
             ("empty target", raw.replace(b"8.5", b""))]
    for k in range(12):  # truncated at random points
        cut = int(rng.integers(1, len(raw)))
        cases.append((f"truncated {cut}", raw[:cut]))
    for k in range(12):  # random bytes overwritten
        damaged = bytearray(raw)
        for position in rng.integers(0, len(raw), 4):
            damaged[position] = int(rng.integers(0, 256))
        cases.append((f"flipped {k}", bytes(damaged)))
    return cases


@pytest.mark.parametrize("name,content", _damaged_files(), ids=[c[0] for c in _damaged_files()])
def test_damaged_csv_never_ends_in_a_traceback(capsys, tmp_path, name, content):
    path = tmp_path / "damaged.csv"
    path.write_bytes(content)
    code, out, err = run(capsys, "fit", str(path), "--target", "a", "--features", "a,b",
                         "--fast", "-q", "--epochs", "1")
    assert "Traceback" not in err
    if code == 0:  # some damage leaves a readable file
        assert err == ""
    else:
        line = one_line_error(err, code)
        assert line.startswith("elman fit: error: ")
