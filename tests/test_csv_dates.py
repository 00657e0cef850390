"""What the CSV reader makes of dates, delimiters, gaps and text; calendar future dates."""

import numpy as np
import pytest

from elman.datasets import future_dates, geometric_random_walk, load_csv
from elman.datasets._dates import format_dates


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------- dates
@pytest.mark.parametrize("cells, unit, first", [
    (["1949-01", "1949-02", "1949-03"], "M", "1949-01"),
    (["1959Q1", "1959Q2", "1959Q3"], "M", "1959-01"),
    (["1959-Q3", "1959-Q4", "1960-Q1"], "M", "1959-07"),
    (["2020-01-31T12:00:00Z", "2020-01-31T13:00:00Z", "2020-01-31T14:00:00Z"], "s",
     "2020-01-31T12:00:00"),
    (["2020-01-31 12:00", "2020-01-31 13:00", "2020-01-31 14:00"], "m", "2020-01-31T12:00"),
    (["2020-01-30", "2020-01-31", "2020-02-01"], "D", "2020-01-30"),
])
def test_date_forms_are_detected_and_parsed(tmp_path, cells, unit, first):
    rows = "".join(f"{cell},{k}\n" for k, cell in enumerate(cells))
    data = load_csv(write(tmp_path, "when,value\n" + rows))
    assert data.columns == ("value",)
    assert np.datetime_data(data.dates.dtype)[0] == unit
    assert str(data.dates[0]) == first


@pytest.mark.parametrize("header", ["year", "YEAR", "Year", "yr", "yyyy"])
@pytest.mark.parametrize("years", [["1700", "1701", "1702"], ["1700.0", "1701.0", "1702.0"]])
def test_year_columns_become_dates_not_inputs(tmp_path, header, years):
    rows = "".join(f"{y},{k * 1.5}\n" for k, y in enumerate(years))
    data = load_csv(write(tmp_path, f"{header},SUNACTIVITY\n" + rows))
    assert data.columns == ("SUNACTIVITY",)
    assert data.dates.dtype == np.dtype("datetime64[Y]")
    assert [str(d) for d in data.dates] == ["1700", "1701", "1702"]


def test_a_year_column_that_repeats_or_is_asked_for_stays_numeric(tmp_path):
    # Repeated years (without a quarter or month column) are no dates; a year asked
    # for is read.
    data = load_csv(write(tmp_path, "year,day,v\n2000,1,5\n2000,2,6\n"))
    assert data.dates is None and data.columns == ("year", "day", "v")
    data = load_csv(write(tmp_path, "year,v\n2000,5\n2001,6\n"), columns=["year", "v"])
    assert data.dates is None and list(data["year"]) == [2000.0, 2001.0]


@pytest.mark.parametrize("header, periods, expected", [
    ("quarter", ["3.0", "4.0", "1.0"], ["1959Q3", "1959Q4", "1960Q1"]),
    ("month", ["11", "12", "1"], ["1959-11", "1959-12", "1960-01"]),
])
def test_year_and_quarter_or_month_columns_become_dates(tmp_path, header, periods, expected):
    text = f"year,{header},unemp\n" + "".join(
        f"{1959 + (k == 2)}.0,{p},{5 + k}\n" for k, p in enumerate(periods))
    data = load_csv(write(tmp_path, text))
    assert data.columns == ("unemp",)
    assert format_dates(data.dates) == expected
    # Out of order, they are ordinary numbers.
    data = load_csv(write(tmp_path, text.replace("1960.0", "1958.0")))
    assert data.dates is None and data.columns == ("year", header, "unemp")


def test_date_column_by_name_reads_whole_numbers_as_years(tmp_path):
    data = load_csv(write(tmp_path, "t,v\n1990,1\n1991,2\n"), date_column="t")
    assert [str(d) for d in data.dates] == ["1990", "1991"]


def test_unreadable_date_names_the_line_and_the_forms(tmp_path):
    with pytest.raises(ValueError, match=r"line 3: date column 'date' needs ISO 8601 dates "
                                         r".*quarters 2020Q1.*found '2020Q5'"):
        load_csv(write(tmp_path, "date,v\n2020Q1,1\n2020Q5,2\n"))


# -------------------------------------------------------------- delimiters
@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_delimiter_auto_sniffs(tmp_path, delimiter):
    text = "".join(delimiter.join(row) + "\n" for row in
                   [["date", "a", "b"], ["2020-01-01", "1.5", "2"], ["2020-01-02", "3", "4"]])
    data = load_csv(write(tmp_path, text), delimiter="auto")
    assert data.columns == ("a", "b") and list(data["a"]) == [1.5, 3.0]


def test_delimiter_auto_keeps_a_single_column_whole(tmp_path):
    data = load_csv(write(tmp_path, "value\n1\n2\n"), delimiter="auto")
    assert data.columns == ("value",)


def test_semicolon_file_with_decimal_commas_in_text_is_not_split_on_commas(tmp_path):
    text = "date;value;note\n2020-01-01;1;a,b\n2020-01-02;2;c,d\n"
    data = load_csv(write(tmp_path, text), delimiter="auto", columns=["value"])
    assert list(data["value"]) == [1.0, 2.0]


# ------------------------------------------------------------ fill and text
def test_linear_fill_draws_a_line_across_gaps(tmp_path):
    text = "v\n\n1\n\n\n4\n\n"
    data = load_csv(write(tmp_path, "v\nNA\n1\nNA\nNA\n4\nNA\n"), fill="linear")
    assert list(data["v"]) == [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]
    assert list(data.missing[:, 0]) == [True, False, True, True, False, True]
    assert text  # blank lines are skipped, so the gaps are spelled NA above
    with pytest.raises(ValueError, match="fill must be"):
        load_csv(write(tmp_path, "v\n1\n"), fill="spline")


def test_skip_text_leaves_out_text_columns(tmp_path):
    text = "date,a,label,b\n2020-01-01,1,x,2\n2020-01-02,3,y,4\n"
    data = load_csv(write(tmp_path, text), skip_text=True)
    assert data.columns == ("a", "b") and data.skipped == ("label",)
    with pytest.raises(ValueError, match="column 'label' is not numeric"):
        load_csv(write(tmp_path, text))
    with pytest.raises(TypeError, match="skip_text"):
        load_csv(write(tmp_path, text), skip_text="yes")


def test_nul_bytes_are_refused_in_one_line(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(b"a,b\n1,\x002\n")
    with pytest.raises(ValueError, match="NUL bytes"):
        load_csv(path)


# --------------------------------------------------------- future dates
def _dates(*texts):
    return np.array(texts, dtype="datetime64")


@pytest.mark.parametrize("dates, expected", [
    # Monthly on the 1st, and on the 15th: the day of the month is kept.
    (_dates("2010-11-01", "2010-12-01"), ["2011-01-01", "2011-02-01", "2011-03-01"]),
    (_dates("2010-11-15", "2010-12-15"), ["2011-01-15", "2011-02-15", "2011-03-15"]),
    # Month ends stay month ends.
    (_dates("2010-11-30", "2010-12-31"), ["2011-01-31", "2011-02-28", "2011-03-31"]),
    # Quarterly and yearly by calendar units; months read as 1949-01 stay months.
    (_dates("2010-04-01", "2010-07-01"), ["2010-10-01", "2011-01-01", "2011-04-01"]),
    (_dates("2008-02-29", "2009-02-28"), ["2010-02-28", "2011-02-28", "2012-02-29"]),
    (np.array(["1949-11", "1949-12"], dtype="datetime64[M]"), ["1950-01", "1950-02",
                                                                 "1950-03"]),
    (np.array(["1700", "1701"], dtype="datetime64[Y]"), ["1702", "1703", "1704"]),
    # Daily and weekly by the fixed median step, gaps ignored.
    (_dates("2021-01-01", "2021-01-02", "2021-01-05", "2021-01-06"),
     ["2021-01-07", "2021-01-08", "2021-01-09"]),
    (_dates("2021-01-04", "2021-01-11"), ["2021-01-18", "2021-01-25", "2021-02-01"]),
    (_dates("2021-01-31T10:00", "2021-01-31T11:00"),
     ["2021-01-31T12:00", "2021-01-31T13:00", "2021-01-31T14:00"]),
])
def test_future_dates_follow_the_calendar(dates, expected):
    future = future_dates(dates, 3)
    assert [str(d) for d in future] == expected
    assert future.dtype == dates.dtype


def test_future_dates_of_business_days_skip_weekends():
    days = np.busday_offset(np.datetime64("2024-01-01"), np.arange(12))  # Mon Jan 1 ..
    assert str(days[-1]) == "2024-01-16"
    assert [str(d) for d in future_dates(days, 4)] == ["2024-01-17", "2024-01-18",
                                                      "2024-01-19", "2024-01-22"]


def test_future_dates_cannot_tell_from_one_date():
    assert future_dates(_dates("2020-01-01"), 2) is None
    assert future_dates(_dates("2020-01-01", "2020-01-01"), 2) is None


def test_quarters_are_written_as_quarters():
    quarters = np.array(["1959-01", "1959-04", "1959-07"], dtype="datetime64[M]")
    assert format_dates(quarters) == ["1959Q1", "1959Q2", "1959Q3"]
    months = np.array(["1959-01", "1959-02"], dtype="datetime64[M]")
    assert format_dates(months) == ["1959-01", "1959-02"]


# ------------------------------------------------------ geometric random walk
def test_geometric_random_walk():
    prices = geometric_random_walk(2000, seed=5, start=50.0, drift=0.001, volatility=0.02)
    assert prices.shape == (2000,) and prices[0] == 50.0 and (prices > 0).all()
    np.testing.assert_array_equal(prices, geometric_random_walk(2000, seed=5, start=50.0,
                                                                drift=0.001, volatility=0.02))
    returns = np.diff(np.log(prices))
    # The documented recipe, exactly.
    np.testing.assert_allclose(returns,
                               np.random.default_rng(5).normal(0.001, 0.02, size=1999),
                               rtol=1e-9, atol=1e-12)
    smooth = geometric_random_walk(4, start=1.0, drift=np.log(2), volatility=0.0)
    np.testing.assert_allclose(smooth, [1.0, 2.0, 4.0, 8.0])
    assert geometric_random_walk(0).shape == (0,)
    with pytest.raises(ValueError, match="start must be > 0"):
        geometric_random_walk(5, start=0.0)
    with pytest.raises(ValueError, match="volatility must be >= 0"):
        geometric_random_walk(5, volatility=-1.0)
    with pytest.raises(TypeError, match="n must be an integer"):
        geometric_random_walk(2.5)
