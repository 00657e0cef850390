"""Tests for elman.datasets: the bundled weather data, load_csv and the synthetic series.

Everything is reached through the installed package (importlib.resources), never
through a path into the source tree, so the tests also run against an installed copy.
"""

import dataclasses
import gzip
import hashlib
import importlib.util
import io
import os
from importlib import resources

import numpy as np
import pytest

from elman import datasets
from elman.datasets import Dataset, ar2, load_csv, load_weather, sine_walk_seasonal

WEATHER_SHA256 = "70d75ac02ccf0c0f45aed0077919fee302c6428b9f3c3401aadf090b0f6dfc8c"
HAVE_PANDAS = importlib.util.find_spec("pandas") is not None


@pytest.fixture(scope="module")
def weather():
    return load_weather()


@pytest.fixture(scope="module")
def weather_raw():
    return load_weather(fill=None)


# --------------------------------------------------------------------------------------
# The bundled file
# --------------------------------------------------------------------------------------


def _bundled_bytes():
    return resources.files("elman.datasets").joinpath("clean_weather.csv.gz").read_bytes()


def test_bundled_file_decompresses_to_the_documented_csv():
    raw = gzip.decompress(_bundled_bytes())
    assert hashlib.sha256(raw).hexdigest() == WEATHER_SHA256
    assert datasets.WEATHER_SHA256 == WEATHER_SHA256
    assert WEATHER_SHA256 in load_weather.__doc__
    assert raw.startswith(b",tmax,tmin,rain,tmax_tomorrow\n1970-01-01,")


def test_bundled_file_is_reproducible_gzip():
    gz = _bundled_bytes()
    # gzip header: magic, method, flags, then a 4-byte mtime that must be 0.
    assert gz[:3] == b"\x1f\x8b\x08"
    assert gz[4:8] == b"\x00\x00\x00\x00"
    assert gz[3] & 0x08 == 0, "no file name stored in the header"


# --------------------------------------------------------------------------------------
# load_weather
# --------------------------------------------------------------------------------------


def test_weather_shape_columns_and_dtypes(weather):
    assert isinstance(weather, Dataset)
    assert len(weather) == 13509
    assert weather.data.shape == (13509, 4)
    assert weather.data.dtype == np.float64
    assert weather.columns == ("tmax", "tmin", "rain", "tmax_tomorrow")
    assert weather.dates.dtype == np.dtype("datetime64[D]")
    assert weather.dates.shape == (13509,)
    assert weather.missing.shape == (13509, 4) and weather.missing.dtype == bool


def test_weather_date_range_and_order(weather):
    assert weather.dates[0] == np.datetime64("1970-01-01")
    assert weather.dates[-1] == np.datetime64("2022-11-26")
    steps = np.diff(weather.dates).astype(int)
    assert (steps >= 1).all()
    # Consecutive days apart from four documented gaps.
    gaps = weather.dates[1:][steps > 1]
    assert [str(d) for d in gaps] == ["1983-07-01", "2000-01-01", "2000-08-03", "2012-02-29"]


def test_weather_first_and_last_rows(weather):
    np.testing.assert_array_equal(weather.data[0], [60.0, 35.0, 0.0, 52.0])
    np.testing.assert_array_equal(weather.data[-1], [62.0, 41.0, 0.0, 64.0])


def test_weather_missing_values_before_fill(weather_raw):
    missing = np.isnan(weather_raw.data)
    np.testing.assert_array_equal(missing, weather_raw.missing)
    # Per column: tmax, tmin, rain, tmax_tomorrow.
    assert missing.sum(axis=0).tolist() == [11, 14, 281, 11]
    assert int(missing[:, 2].sum()) == 281
    # 298 days lack at least one of the three inputs.
    assert int(missing[:, :3].any(axis=1).sum()) == 298
    assert int(missing.any(axis=1).sum()) == 306


def test_weather_forward_fill(weather, weather_raw):
    assert not np.isnan(weather.data).any()
    np.testing.assert_array_equal(weather.missing, weather_raw.missing)
    present = ~weather_raw.missing
    np.testing.assert_array_equal(weather.data[present], weather_raw.data[present])
    # Each filled value is the value just above it (after filling), i.e. the last one seen.
    rows, cols = np.nonzero(weather.missing)
    assert rows.min() > 0, "the weather file has no leading gap"
    np.testing.assert_array_equal(weather.data[rows, cols], weather.data[rows - 1, cols])
    # A known gap: rain is missing on 1983-10-29 .. 1983-10-31 and 1983-10-28 had a value.
    i = int(np.nonzero(weather.dates == np.datetime64("1983-10-29"))[0][0])
    assert weather_raw.missing[i : i + 3, 2].all() and not weather_raw.missing[i - 1, 2]
    assert (weather["rain"][i : i + 3] == weather["rain"][i - 1]).all()


def test_weather_target_is_next_rows_tmax_after_fill(weather):
    np.testing.assert_array_equal(weather["tmax_tomorrow"][:-1], weather["tmax"][1:])


def test_weather_fill_argument_is_checked():
    with pytest.raises(ValueError, match="fill must be"):
        load_weather(fill="zero")


def test_weather_each_call_returns_new_arrays():
    a, b = load_weather(), load_weather()
    assert not np.shares_memory(a.data, b.data)


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------


def test_dataset_column_access(weather):
    tmax = weather["tmax"]
    assert tmax.shape == (13509,)
    assert np.shares_memory(tmax, weather.data)
    np.testing.assert_array_equal(tmax, weather.data[:, 0])
    both = weather[["rain", "tmax"]]
    assert both.shape == (13509, 2)
    np.testing.assert_array_equal(both, weather.data[:, [2, 0]])
    assert "rain" in weather and "snow" not in weather


def test_dataset_unknown_column_names_the_columns(weather):
    with pytest.raises(KeyError) as info:
        weather["snow"]
    assert isinstance(info.value, ValueError)
    assert (
        str(info.value) == "unknown column 'snow'; the columns are: tmax, tmin, rain, tmax_tomorrow"
    )
    with pytest.raises(KeyError, match="snow"):
        weather[["tmax", "snow"]]


def test_dataset_rejects_positional_keys(weather):
    with pytest.raises(TypeError, match="by name"):
        weather[0]
    with pytest.raises(TypeError):
        weather[0:10]


def test_dataset_is_frozen(weather):
    with pytest.raises(dataclasses.FrozenInstanceError):
        weather.data = np.zeros((1, 4))


def test_dataset_repr(weather, weather_raw):
    text = repr(weather)
    assert "13509 rows" in text and "1970-01-01 to 2022-11-26" in text
    assert "317 missing values (317 filled)" in text
    assert "317 missing values (0 filled)" in repr(weather_raw)


def test_dataset_construction_is_validated():
    data = np.zeros((3, 2))
    ds = Dataset(data, ["a", "b"])
    assert ds.columns == ("a", "b") and ds.dates is None
    assert ds.missing.shape == (3, 2) and not ds.missing.any()
    with pytest.raises(ValueError, match="2 columns"):
        Dataset(data, ("a",))
    with pytest.raises(ValueError, match="unique"):
        Dataset(data, ("a", "a"))
    with pytest.raises(TypeError, match="float64"):
        Dataset(np.zeros((3, 2), dtype=np.float32), ("a", "b"))
    with pytest.raises(ValueError, match="dates has 2 entries"):
        Dataset(data, ("a", "b"), np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"))


@pytest.mark.skipif(HAVE_PANDAS, reason="pandas is installed")
def test_frame_without_pandas_says_how_to_get_it(weather):
    with pytest.raises(ImportError, match="pip install pandas"):
        weather.frame()


@pytest.mark.skipif(not HAVE_PANDAS, reason="pandas is not installed")
def test_frame_with_pandas(weather):
    frame = weather.frame()
    assert list(frame.columns) == list(weather.columns)
    assert frame.shape == (13509, 4)
    assert frame.index.name == "date"
    assert str(frame.index[0].date()) == "1970-01-01"
    np.testing.assert_array_equal(frame.to_numpy(), weather.data)
    assert not np.shares_memory(frame.to_numpy(), weather.data)


def test_datasets_module_does_not_import_pandas():
    # Run in a fresh interpreter so other tests' imports do not count.
    import subprocess
    import sys

    import elman

    # Wherever this elman comes from (installed, or a source tree on sys.path).
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(elman.__file__)))
    env = {**os.environ, "PYTHONPATH": package_parent}
    code = "import sys, elman.datasets, elman.preprocessing; print('pandas' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------
# load_csv
# --------------------------------------------------------------------------------------


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv_detects_an_unnamed_iso_date_column(tmp_path):
    path = write(tmp_path, ",a,b\n2020-01-01,1,10\n2020-01-02,2,20\n2020-01-04,3,30\n")
    ds = load_csv(path)
    assert ds.columns == ("a", "b")
    assert ds.dates.dtype == np.dtype("datetime64[D]")
    assert [str(d) for d in ds.dates] == ["2020-01-01", "2020-01-02", "2020-01-04"]
    np.testing.assert_array_equal(ds.data, [[1, 10], [2, 20], [3, 30]])
    assert ds.data.dtype == np.float64


def test_load_csv_detects_a_date_column_by_name_anywhere(tmp_path):
    path = write(tmp_path, "a,Date,b\n1,2020-01-01,2\n3,2020-01-02,4\n")
    ds = load_csv(path)
    assert ds.columns == ("a", "b")
    assert (
        ds.dates.tolist() == np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]").tolist()
    )


def test_load_csv_date_named_column_with_bad_dates_names_the_line(tmp_path):
    path = write(tmp_path, "date,y\n01/31/2020,1\n")
    with pytest.raises(ValueError) as info:
        load_csv(path)
    message = str(info.value)
    assert "data.csv, line 2" in message and "'date'" in message and "01/31/2020" in message
    assert "ISO 8601" in message and "date_column=None" in message and "\n" not in message


def test_load_csv_detects_a_date_column_whose_first_value_is_missing(tmp_path):
    path = write(tmp_path, ",a\nNA,1\n2020-01-02,2\n")
    with pytest.raises(ValueError, match=r"line 2: date column 'unnamed_0' .*found 'NA'"):
        load_csv(path)


def test_load_csv_without_a_date_column(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n3,4\n")
    ds = load_csv(path)
    assert ds.dates is None
    assert ds.columns == ("x", "y")


def test_load_csv_numeric_time_column_is_a_feature_not_a_date(tmp_path):
    path = write(tmp_path, "time,y\n0.0,1\n0.5,2\n")
    ds = load_csv(path)
    assert ds.dates is None and ds.columns == ("time", "y")


def test_load_csv_dates_with_times(tmp_path):
    path = write(tmp_path, "when,y\n2020-01-01 00:00,1\n2020-01-01 06:30,2\n")
    ds = load_csv(path)
    assert ds.dates[1] - ds.dates[0] == np.timedelta64(390, "m")


def test_load_csv_explicit_and_disabled_date_column(tmp_path):
    path = write(tmp_path, "stamp,y\n2020-01-01,1\n2020-01-02,2\n")
    assert load_csv(path, date_column="stamp").columns == ("y",)
    with pytest.raises(
        ValueError, match=r"line 2: column 'stamp' is not numeric \(found '2020-01-01'\)"
    ):
        load_csv(path, date_column=None)
    with pytest.raises(ValueError, match="unknown date column 'day'"):
        load_csv(path, date_column="day")
    with pytest.raises(ValueError, match="is the date column"):
        load_csv(path, columns=["stamp"])


def test_load_csv_selects_columns_in_order_and_ignores_the_rest(tmp_path):
    path = write(tmp_path, "date,city,a,b,c\n2020-01-01,Paris,1,2,3\n2020-01-02,Oslo,4,5,6\n")
    ds = load_csv(path, columns=["c", "a"])
    assert ds.columns == ("c", "a")
    np.testing.assert_array_equal(ds.data, [[3, 1], [6, 4]])
    assert load_csv(path, columns="b").columns == ("b",)


def test_load_csv_non_numeric_column_names_column_and_line(tmp_path):
    path = write(tmp_path, "date,city,a\n2020-01-01,1,1\n2020-01-02,2,2\n2020-01-03,Paris,3\n")
    with pytest.raises(ValueError) as info:
        load_csv(path)
    assert str(info.value) == "data.csv, line 4: column 'city' is not numeric (found 'Paris')"


def test_load_csv_unknown_column_lists_the_header(tmp_path):
    path = write(tmp_path, "date,a,b\n2020-01-01,1,2\n")
    with pytest.raises(ValueError) as info:
        load_csv(path, columns=["a", "z"])
    assert str(info.value) == "data.csv: unknown column 'z'; the header on line 1 has: date, a, b"


def test_load_csv_ragged_row_names_the_line(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(ValueError) as info:
        load_csv(path)
    assert str(info.value) == "data.csv, line 3: 2 fields, expected 3 as in the header on line 1"


def test_load_csv_line_numbers_count_blank_lines_and_multiline_fields(tmp_path):
    text = '\nnote,a\n"one",1\n\n"two\nlines",2\n"three",x\n'
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=r"line 7: column 'a' is not numeric \(found 'x'\)"):
        load_csv(path, columns=["a"])
    ok = write(tmp_path, '\nnote,a\n"one",1\n\n"two\nlines",2\n', name="ok.csv")
    np.testing.assert_array_equal(load_csv(ok, columns=["a"]).data[:, 0], [1, 2])


def test_load_csv_empty_files(tmp_path):
    with pytest.raises(ValueError, match=r"^empty.csv is empty: expected a header line"):
        load_csv(write(tmp_path, "", "empty.csv"))
    with pytest.raises(ValueError, match="is empty"):
        load_csv(write(tmp_path, "\n\n", "blank.csv"))
    with pytest.raises(ValueError, match=r"has a header \(line 1\) but no data rows"):
        load_csv(write(tmp_path, "a,b\n", "header.csv"))


def test_load_csv_repeated_header_name(tmp_path):
    with pytest.raises(ValueError, match="line 1: the header repeats column name 'a'"):
        load_csv(write(tmp_path, "a,b,a\n1,2,3\n"))


def test_load_csv_missing_values_and_fill(tmp_path):
    text = "a,b,c\nNA,1,\n2,,null\n,3,n/a\n4,NaN,5\n"
    path = write(tmp_path, text)
    raw = load_csv(path, fill=None)
    expected_missing = [[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 1, 0]]
    np.testing.assert_array_equal(raw.missing, np.array(expected_missing, dtype=bool))
    np.testing.assert_array_equal(np.isnan(raw.data), raw.missing)
    filled = load_csv(path)
    # Forward fill; the leading gaps are back-filled from each column's first value.
    np.testing.assert_array_equal(filled.data, [[2, 1, 5], [2, 1, 5], [2, 3, 5], [4, 3, 5]])
    np.testing.assert_array_equal(filled.missing, raw.missing)


def test_load_csv_all_missing_column(tmp_path):
    path = write(tmp_path, "a,b\n1,\n2,\n")
    with pytest.raises(ValueError, match="column 'b' has no values"):
        load_csv(path)
    assert np.isnan(load_csv(path, fill=None)["b"]).all()


def test_load_csv_rejects_infinite_values(tmp_path):
    path = write(tmp_path, "a\n1\n-inf\n")
    with pytest.raises(ValueError, match=r"line 3: column 'a' has an infinite value \('-inf'\)"):
        load_csv(path)


def test_load_csv_never_evaluates_cells(tmp_path):
    path = write(tmp_path, "a\n1\n2+3\n")
    with pytest.raises(ValueError, match=r"line 3: column 'a' is not numeric \(found '2\+3'\)"):
        load_csv(path)
    path = write(tmp_path, "a\n__import__('os').getcwd()\n", name="evil.csv")
    with pytest.raises(ValueError, match="evil.csv, line 2"):
        load_csv(path)


def test_load_csv_dates_must_be_in_order(tmp_path):
    path = write(tmp_path, "date,a\n2020-01-02,1\n2020-01-03,2\n2020-01-01,3\n")
    with pytest.raises(ValueError) as info:
        load_csv(path)
    message = str(info.value)
    assert message.startswith("data.csv, line 4: date 2020-01-01")
    assert "line 3" in message and "oldest first" in message


def test_load_csv_empty_date_names_the_line(tmp_path):
    path = write(tmp_path, "date,a\n2020-01-01,1\n,2\n")
    with pytest.raises(ValueError, match=r"line 3: date column 'date' .*it is empty"):
        load_csv(path)


def test_load_csv_unnamed_columns(tmp_path):
    # DataFrame.to_csv writes its row numbers as an unnamed first column.
    path = write(tmp_path, ",a\n0,1.5\n1,2.5\n")
    ds = load_csv(path)
    assert ds.columns == ("a",)
    assert load_csv(path, columns=["unnamed_0", "a"]).columns == ("unnamed_0", "a")


def test_load_csv_gzip_file_object_bom_and_delimiter(tmp_path):
    # With ";" as the delimiter a decimal comma stays inside its field: not a number.
    text = "date;a\n2020-01-01;1,5\n"
    path = tmp_path / "semi.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\ufeffdate;a\n2020-01-01;1\n2020-01-02;2\n")
    ds = load_csv(path, delimiter=";")
    assert ds.columns == ("a",) and len(ds.dates) == 2
    ds = load_csv(io.StringIO("\ufeffa,b\n1,2\n"))
    assert ds.columns == ("a", "b")
    assert load_csv(io.BytesIO(b"\xef\xbb\xbfa,b\n1,2\n")).columns == ("a", "b")
    with pytest.raises(ValueError, match="lists 'a' more than once"):
        load_csv(io.StringIO("a,b\n1,2\n"), columns=["a", "b", "a"])
    with pytest.raises(ValueError, match="column 'a' is not numeric"):
        load_csv(io.StringIO(text), delimiter=";")
    path = write(tmp_path, "\ufeffa,b\n1,2\n", name="bom.csv")
    assert load_csv(path).columns == ("a", "b")


def test_load_csv_rejects_non_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("ville,a\nMontr\xe9al,1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"^latin1.csv is not UTF-8 text .* at byte 13"):
        load_csv(path, columns=["a"])


def test_load_csv_argument_types(tmp_path):
    path = write(tmp_path, "a\n1\n")
    with pytest.raises(ValueError, match="fill must be"):
        load_csv(path, fill="mean")
    with pytest.raises(TypeError, match="columns must be names"):
        load_csv(path, columns=[0])
    with pytest.raises(ValueError, match="at least one column"):
        load_csv(path, columns=[])
    with pytest.raises(TypeError, match="delimiter"):
        load_csv(path, delimiter=",,")
    with pytest.raises(TypeError, match="path must be"):
        load_csv(42)
    with pytest.raises(TypeError, match="date_column"):
        load_csv(path, date_column=0)


def test_load_csv_reads_the_weather_file_the_same_way(tmp_path, weather):
    path = tmp_path / "weather.csv"
    path.write_bytes(gzip.decompress(_bundled_bytes()))
    ds = load_csv(path)
    assert ds.columns == weather.columns
    np.testing.assert_array_equal(ds.data, weather.data)
    np.testing.assert_array_equal(ds.dates, weather.dates)


# --------------------------------------------------------------------------------------
# Synthetic series
# --------------------------------------------------------------------------------------


def test_ar2_follows_its_recurrence_given_the_noise():
    n, seed = 500, 7
    x = ar2(n, seed=seed)
    assert x.shape == (n,) and x.dtype == np.float64
    assert x[0] == 20.0 and x[1] == 21.0
    noise = np.random.default_rng(seed).normal(0.0, 0.5, size=n - 2)
    residual = x[2:] - 0.7 * x[1:-1] - 0.2 * x[:-2]
    np.testing.assert_allclose(residual, noise, rtol=0, atol=1e-12)


def test_ar2_noise_scale_and_decay():
    x = ar2(20000, seed=1)
    residual = x[2:] - 0.7 * x[1:-1] - 0.2 * x[:-2]
    assert abs(residual.std() - 0.5) < 0.01
    # Stationary with mean 0: the start at 20 is forgotten.
    assert abs(x[1000:].mean()) < 0.2


def test_ar2_parameters():
    x = ar2(50, seed=0, coefficients=(0.5, -0.3), noise_sd=0.0, start=(1.0, 2.0))
    expected = [1.0, 2.0]
    for _ in range(48):
        expected.append(0.5 * expected[-1] - 0.3 * expected[-2])
    np.testing.assert_allclose(x, expected, rtol=1e-13)


def test_ar2_seeds():
    np.testing.assert_array_equal(ar2(100, seed=3), ar2(100, seed=3))
    assert not np.array_equal(ar2(100, seed=3), ar2(100, seed=4))
    np.testing.assert_array_equal(ar2(100, seed=np.random.default_rng(3)), ar2(100, seed=3))
    assert ar2(0).shape == (0,)
    np.testing.assert_array_equal(ar2(1), [20.0])
    np.testing.assert_array_equal(ar2(2), [20.0, 21.0])


def test_ar2_arguments_are_checked():
    with pytest.raises(ValueError, match="n must be >= 0; got -1"):
        ar2(-1)
    with pytest.raises(TypeError, match="n must be an integer"):
        ar2(10.0)
    with pytest.raises(ValueError, match="noise_sd must be >= 0"):
        ar2(10, noise_sd=-1)
    with pytest.raises(ValueError, match="coefficients must be a pair"):
        ar2(10, coefficients=(0.5,))


def test_sine_walk_seasonal_decomposes_into_its_parts():
    n, seed = 2000, 11
    x = sine_walk_seasonal(n, seed=seed)
    assert x.shape == (n,) and x.dtype == np.float64
    t = np.arange(n)
    sines = 1.0 * np.sin(2 * np.pi * t / 25.0) + 2.0 * np.sin(2 * np.pi * t / 365.0)
    walk = x - sines
    assert abs(walk[0]) < 1e-12
    steps = np.random.default_rng(seed).normal(0.0, 0.05, size=n - 1)
    np.testing.assert_allclose(np.diff(walk), steps, rtol=0, atol=1e-9)


def test_sine_walk_seasonal_parameters_and_seeds():
    x = sine_walk_seasonal(
        100, period=10, amplitude=3, walk_sd=0, seasonal_period=50, seasonal_amplitude=0.5
    )
    t = np.arange(100)
    np.testing.assert_allclose(
        x, 3 * np.sin(2 * np.pi * t / 10) + 0.5 * np.sin(2 * np.pi * t / 50), atol=1e-12
    )
    np.testing.assert_array_equal(sine_walk_seasonal(300, seed=5), sine_walk_seasonal(300, seed=5))
    assert not np.array_equal(sine_walk_seasonal(300, seed=5), sine_walk_seasonal(300, seed=6))
    assert sine_walk_seasonal(0).shape == (0,)
    np.testing.assert_array_equal(sine_walk_seasonal(1, seed=0), [0.0])
    with pytest.raises(ValueError, match="period must be > 0"):
        sine_walk_seasonal(10, period=0)
    with pytest.raises(TypeError, match="walk_sd must be a real number"):
        sine_walk_seasonal(10, walk_sd="0.1")
