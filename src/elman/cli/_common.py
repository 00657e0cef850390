"""What every command shares: the one-line error, file checks, a pipe-safe stdout, timing."""

import contextlib
import os
import sys
import time

# When elman.cli was first imported: the start of a run where the process start is unknown.
_IMPORTED = time.perf_counter()

PLOT_HINT = (
    'pip install matplotlib, or the "plot" extra: pip install ".[plot]" in a source checkout '
    '(pip install "elman[plot]" once elman is published on PyPI)'
)


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit status ``code``."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def opening(path, what):
    """Turn the OSErrors of opening ``path`` into one-line CLIErrors."""
    try:
        yield
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CLIError(f"{path}: is a directory, not {what}") from None
    except OSError as exc:
        raise CLIError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def check_writable(option, path):
    """CLIError unless ``path`` can be created: its directory exists and it is no directory."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"{option} {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a directory")


class Output:
    """Standard output that goes quiet once its reader has gone (``elman fit | head -1``).

    A closed pipe is not an error of the job: the run carries on (the model file
    and the plot are still written) and the rest of the text is dropped, with no
    traceback.
    """

    def __init__(self, stream=None):
        self.stream = sys.stdout if stream is None else stream
        self.closed = False

    def write(self, text):
        if not self.closed:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()

    def flush(self):
        if not self.closed:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self):
        self.closed = True
        silence_stdout(self.stream)


def silence_stdout(stream=None):
    """Point stdout's descriptor at /dev/null, so the interpreter's last flush cannot fail."""
    stream = sys.stdout if stream is None else stream
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (captured in a test, say): nothing will flush it later


def process_started():
    """``time.perf_counter()``'s reading when this process started, where the system says.

    On Linux the start comes from /proc, so "whole run" includes Python's start-up and
    the imports; elsewhere it falls back to when elman.cli was imported.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            # Field 22 (after the parenthesised command name): start, in clock ticks after boot.
            fields = handle.read().rsplit(")", 1)[1].split()
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED
    return time.perf_counter() - max(0.0, uptime - started_after_boot)


def seconds(value):
    """A duration as people read it: 4.2 ms, 0.31 s, 12.4 s."""
    if value < 0.1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"
