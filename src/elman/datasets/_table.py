"""The table type the loaders return: :class:`Dataset`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas

__all__ = ["Dataset"]


class _UnknownColumnError(KeyError, ValueError):
    """A column name that is not there: a KeyError for ``dataset[name]``, a ValueError too."""

    def __str__(self):
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0])


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A table of float64 columns, with optional dates: what the loaders return.

    Parameters
    ----------
    data : ndarray of float64, shape (n_rows, n_columns)
        The values, one column per name in `columns`, rows in file order (for the
        loaders: oldest first). After ``fill="ffill"`` it holds no NaN.
    columns : tuple of str, length n_columns
        The column names, in the order of ``data``'s columns.
    dates : ndarray of datetime64, shape (n_rows,), or None
        The date of each row (``datetime64[D]`` for plain dates), or None when the
        source had no date column.
    missing : ndarray of bool, shape (n_rows, n_columns)
        True where the source had no value (before any filling).
    skipped : tuple of str, default ()
        Columns of the source left out because they hold text
        (``load_csv(..., skip_text=True)``).

    Notes
    -----
    The fields cannot be rebound (the dataclass is frozen), but the arrays are
    ordinary writable arrays owned by this object; each loader call makes new ones.

    ``dataset[name]`` returns one column, shape (n_rows,), as a view of ``data``;
    ``dataset[[name, ...]]`` returns a new array of shape (n_rows, k) with the
    columns in the order asked for. ``name in dataset`` tests for a column and
    ``len(dataset)`` is the number of rows.

    Examples
    --------
    >>> ds = Dataset(np.array([[1.0, 10.0], [2.0, 20.0]]), ("a", "b"))
    >>> ds["b"]
    array([10., 20.])
    >>> ds[["b", "a"]].shape
    (2, 2)
    """

    data: np.ndarray
    columns: tuple[str, ...]
    dates: np.ndarray | None = None
    missing: np.ndarray | None = None
    skipped: tuple[str, ...] = ()

    def __post_init__(self):
        data = self.data
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.dtype != np.float64:
            raise TypeError(
                "Dataset data must be a 2-D float64 ndarray (n_rows, n_columns); got "
                f"{_describe(data)}"
            )
        columns = tuple(self.columns)
        if not all(isinstance(name, str) for name in columns):
            raise TypeError(f"Dataset columns must be strings; got {columns!r}")
        if len(columns) != data.shape[1]:
            raise ValueError(
                f"Dataset has {len(columns)} column names {columns!r} but data has "
                f"{data.shape[1]} columns (shape {data.shape})"
            )
        if len(set(columns)) != len(columns):
            raise ValueError(f"Dataset column names must be unique; got {columns!r}")
        object.__setattr__(self, "columns", columns)
        if self.dates is not None:
            dates = self.dates
            if not isinstance(dates, np.ndarray) or dates.dtype.kind != "M" or dates.ndim != 1:
                raise TypeError(
                    "Dataset dates must be a 1-D datetime64 ndarray or None; got "
                    f"{_describe(dates)}"
                )
            if len(dates) != len(data):
                raise ValueError(
                    f"Dataset dates has {len(dates)} entries but data has {len(data)} rows"
                )
        missing = self.missing
        if missing is None:
            missing = np.isnan(data)
        elif (
            not isinstance(missing, np.ndarray)
            or missing.dtype != bool
            or missing.shape != data.shape
        ):
            raise TypeError(
                f"Dataset missing must be a bool ndarray of shape {data.shape}; got "
                f"{_describe(missing)}"
            )
        object.__setattr__(self, "missing", missing)
        skipped = tuple(self.skipped)
        if not all(isinstance(name, str) for name in skipped):
            raise TypeError(f"Dataset skipped must be column names (str); got {skipped!r}")
        object.__setattr__(self, "skipped", skipped)

    def __len__(self):
        return self.data.shape[0]

    def __contains__(self, name):
        return name in self.columns

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.data[:, self._index(key)]
        if isinstance(key, (list, tuple)) and all(isinstance(k, str) for k in key):
            return self.data[:, [self._index(k) for k in key]]
        raise TypeError(
            "Dataset columns are selected by name (a str) or by a list of names; got "
            f"{key!r}. For rows or positions, index dataset.data instead."
        )

    def _index(self, name):
        try:
            return self.columns.index(name)
        except ValueError:
            raise _UnknownColumnError(
                f"unknown column {name!r}; the columns are: {', '.join(self.columns)}"
            ) from None

    def frame(self) -> pandas.DataFrame:
        """Return the data as a pandas DataFrame (needs pandas, which elman does not).

        Returns
        -------
        pandas.DataFrame, shape (n_rows, n_columns)
            A copy of ``data`` with ``columns`` as column labels, indexed by a
            ``DatetimeIndex`` named ``"date"`` when there are dates, else by row number.

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Dataset.frame() needs pandas, which is not installed (pip install pandas); "
                "without it use .data, .columns and .dates"
            ) from None
        index = None if self.dates is None else pd.DatetimeIndex(self.dates, name="date")
        return pd.DataFrame(self.data.copy(), columns=list(self.columns), index=index)

    def __repr__(self):
        parts = [f"{len(self)} rows", f"columns={self.columns!r}"]
        if self.dates is not None and len(self.dates):
            parts.append(f"dates {self.dates[0]} to {self.dates[-1]}")
        n_missing = int(self.missing.sum())
        if n_missing:
            still = int(np.isnan(self.data).sum())
            parts.append(f"{n_missing} missing values ({n_missing - still} filled)")
        return f"Dataset({', '.join(parts)})"


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"ndarray of {value.dtype} with shape {value.shape}"
    return type(value).__name__
