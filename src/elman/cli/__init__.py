"""The ``elman`` command line: ``elman fit``, ``elman predict``, ``elman info``.

``elman fit`` with no arguments trains on the bundled weather data: it predicts
tomorrow's maximum temperature (``tmax_tomorrow``) from windows of the last 7 days of
``tmax``, ``tmin`` and ``rain``, and compares the test error with baselines on the
same test days. ``elman fit data.csv --target COL`` does the same on a CSV file.

How a CSV becomes training data
-------------------------------
* Reading (:mod:`elman.cli._data`): the delimiter is sniffed (``--delimiter``); a
  date column is detected (``--date-column``): dates, date-times, months such as
  ``1949-01``, quarters such as ``1959Q1``, or whole numbers in a column headed like
  a year; it is never an input. Missing values are forward-filled (``--fill``).
* Inputs: ``--features``, by default the target alone; ``all`` takes every numeric
  column (text columns are skipped with a note, and so are columns named like a
  year).
* Alignment (``--horizon``): a window of the rows ``r - window + 1 .. r`` predicts the
  target on row ``r + horizon``. By default the horizon is 1 when the target is among
  the inputs and 0 when it is not: the target column is then taken to be aligned
  already, as ``tmax_tomorrow`` is in the weather data.
* Split: the rows are split chronologically 70/15/15 (train/validation/test) and each
  window belongs to the part of the row it predicts, so the test rows are the last
  15%. Scalers are fitted on the training rows only.
* Baselines (:mod:`elman.cli._baselines`), on the same test rows: persistence,
  seasonal naive, a ridge autoregression and, when there are other inputs, a linear
  regression on the window's last row.

Files: ``_parser`` (arguments), ``_data`` (reading and windows), ``_fit`` (the fit
command), ``_baselines``, ``_report`` (what fit prints), ``_plot``, ``_predict``,
``_writer`` (the CSV predict writes), ``_info``, ``_common`` (errors, stdout, timing).

Exit status: 0 on success (also when the reader of stdout goes away, as with
``| head``); 2 for a usage or data error (bad arguments, an unreadable or damaged
CSV, an unknown or non-numeric column, a missing model file, ``--plot`` without
matplotlib or with an unknown extension), with a one-line message on stderr; 1 if
training diverges.
"""

from __future__ import annotations

import sys
import time
from typing import Sequence

from elman.cli._common import CLIError, process_started, silence_stdout
from elman.cli._parser import build_parser

__all__ = ["main", "build_parser"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 1 or 2).

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``). With the default, "whole run"
        timings count from the start of the process; with a list (a call from
        Python), from this call.
    """
    started = process_started() if argv is None else time.perf_counter()
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version (0) or a usage error (2), printed
            return 0 if exc.code is None else int(exc.code)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        status: int = _dispatch(args, started)
        return status
    except BrokenPipeError:
        # Whatever was still to print has no reader (`elman ... | head`): not an error.
        silence_stdout()
        return 0


def _dispatch(args, started):
    try:
        if args.command == "fit":
            from elman.cli._fit import run_fit

            return run_fit(args, started)
        if args.command == "predict":
            from elman.cli._predict import run_predict

            return run_predict(args)
        from elman.cli._info import run_info

        return run_info()
    except CLIError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the source said
        sys.stderr.write(f"elman {args.command}: error: {message}\n")
        sys.stderr.flush()
        return exc.code
