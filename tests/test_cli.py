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

FAST = ["--epochs", "2", "--hidden", "4", "--window", "5", "--batch-size", "32", "-q"]


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
def test_default_fit_beats_both_baselines(capsys):
    code, out, err = run(capsys, "fit")
    assert code == 0, err
    rows = table_rows(out)
    rnn = rows["elman RNN"][0]
    linear = rows["linear regression on today's tmax, tmin, rain"][0]
    persistence = rows["persistence (tomorrow's tmax = today's)"][0]
    # The baselines are fixed numbers on these test days (the 24.8 and 22.4).
    assert persistence == pytest.approx(24.76, abs=0.01)
    assert linear == pytest.approx(22.44, abs=0.01)
    assert rnn < linear < persistence
    assert "test: 2027 days, 2017-05-10 to 2022-11-26" in out
    assert re.search(r"time: training [0-9.]+ s .* on the (cython|numpy) backend; whole run",
                     out)
    # The progress bar (fit's verbose=1) with train and validation loss, on stderr.
    # Captured stderr is not a terminal: one line per epoch, no redrawn bar.
    assert "epoch  1/40  loss" in err and "val_loss" in err and "\r" not in err


def test_persistence_is_todays_tmax():
    # The generic rule (the aligned target's value on the row before) is today's tmax.
    from elman.datasets import load_weather

    weather = load_weather()
    assert np.array_equal(weather["tmax_tomorrow"][:-1], weather["tmax"][1:])


def test_fit_csv_reports_task_split_and_baselines(capsys, series_csv):
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", *FAST)
    assert code == 0, err
    assert err == ""  # -q: no progress bar
    # The default input is the target alone: horizon 1, and x's gap is not used.
    assert "task: predict y on 1 row after each window's last, from windows of 5 rows of y\n" \
        in out
    assert "forward-filled" not in out
    rows = table_rows(out)
    assert set(rows) == {"elman RNN", "ridge autoregression on the last 5 values of y",
                         "seasonal naive (the value 25 rows earlier)",
                         "persistence (last known y)"}
    # 200 rows, 70/15/15: the test part is the last 30 rows, each predicted once.
    assert "test: 30 rows, 2021-06-20 to 2021-07-19" in out


def test_fit_features_all_takes_every_numeric_column(capsys, series_csv):
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", "--features", "all",
                         *FAST)
    assert code == 0, err
    assert "1 missing values forward-filled" in out
    assert "from windows of 5 rows of y, x\n" in out
    assert "linear regression on the last row's y, x" in table_rows(out)


def test_fit_target_not_an_input_is_aligned(capsys, series_csv):
    code, out, _ = run(capsys, "fit", series_csv, "--target", "y", "--features", "x", *FAST,
                       "--many-to-one")
    assert code == 0
    assert "horizon 0" in out and "many-to-one" in out


def test_fit_horizon_zero_with_target_as_input_is_refused(capsys, series_csv):
    code, _, err = run(capsys, "fit", series_csv, "--target", "y", "--horizon", "0", *FAST)
    line = one_line_error(err, code)
    assert "--horizon 0" in line


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
def test_predict_round_trip(capsys, tmp_path, series_csv):
    model_path = str(tmp_path / "model.npz")
    code, out, err = run(capsys, "fit", series_csv, "--target", "y", "--features", "y",
                         *FAST, "--out", model_path)
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


def test_predict_steps_refused_with_exogenous_inputs(capsys, tmp_path, series_csv):
    model_path = str(tmp_path / "model.npz")
    assert run(capsys, "fit", series_csv, "--target", "y", "--features", "y,x", *FAST,
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
        assert "compiled module: not available" in out


def test_python_dash_m_subprocess(tmp_path):
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "elman", "info"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"elman {elman.__version__}")
    assert "instruction set:" in result.stdout

