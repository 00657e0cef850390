"""Every Python block of README.md runs on its own and prints what the README shows.

Each ```python block is run as a script, in a fresh interpreter (the one running the
tests, so the installed elman) and in an empty scratch directory: it must carry its
own imports and data. What it prints to stdout is compared with the ```text block
that follows it (only blank lines may stand between them); a block with no such
block must print nothing. The comparison is line by line and tolerant of noise:

* a number written with a decimal point or an exponent matches a printed number
  that differs by at most one unit in its last written digit (``0.247`` matches
  0.246 to 0.248), because the two backends round differently in the last bits;
* a time (a number followed by ``s``, ``ms`` or ``µs``) matches any time within a
  factor of three of it: it depends on the machine;
* ``...`` inside a line matches any text, and a line that is only ``...`` matches
  any number of lines (progress output, for example);
* everything else, integers included, must be equal; trailing spaces are ignored.

Printed output must not depend on the backend (no ``elman.BACKEND`` in it): the
suite runs on both. A block that imports an optional dependency which is not
installed (scikit-learn, PyTorch, matplotlib, joblib, Dask) is skipped, naming it.

    python tests/test_readme.py --update

runs every block and rewrites each output block of README.md with what it printed,
for a change that alters the output on purpose (review the diff before committing).
"""

import ast
import importlib.util
import math
import pathlib
import re
import subprocess
import sys
import tempfile

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
# Optional dependencies a block may import, and how to get them.
EXTRAS = {
    "sklearn": 'pip install "elman[sklearn]"',
    "matplotlib": 'pip install "elman[plot]"',
    "joblib": 'pip install "elman[distributed]"',
    "dask": 'pip install "elman[distributed]"',
    "distributed": 'pip install "elman[distributed]"',
    "torch": "pip install torch",
    "pandas": "pip install pandas",
}
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
TIME_UNIT = re.compile(r"\s?(?:s|ms|µs|us)\b")
BLOCK_TIMEOUT = 600


def readme_blocks(text):
    """[(line, heading, code, expected_or_None, (start, end) of the output block)]."""
    lines = text.splitlines()
    fenced, i, heading = [], 0, ""
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match:
            end = i + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            fenced.append((i, end, match.group(1), "\n".join(lines[i + 1:end]), heading))
            i = end + 1
            continue
        if lines[i].startswith("#"):       # a heading (code blocks are skipped whole)
            heading = lines[i].lstrip("#").strip()
        i += 1
    blocks = []
    for n, (start, end, language, body, heading) in enumerate(fenced):
        if language != "python":
            continue
        expected, span = None, None
        if n + 1 < len(fenced):
            nxt = fenced[n + 1]
            between = lines[end + 1:nxt[0]]
            if nxt[2] == "text" and all(not line.strip() for line in between):
                expected, span = nxt[3], (nxt[0], nxt[1])
        blocks.append((start + 1, heading, body, expected, span))
    return blocks


def missing_dependencies(code):
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return sorted(n for n in names if n in EXTRAS and importlib.util.find_spec(n) is None)


def _decimals_unit(token):
    """One unit in the last written digit of a decimal or scientific number."""
    mantissa, _, exponent = token.lower().partition("e")
    digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (-digits + (int(exponent) if exponent else 0))


def _tokens(line):
    """The line split into text and numbers: [(text, number_token_or_None), ...]."""
    parts, position = [], 0
    for match in NUMBER.finditer(line):
        parts.append((line[position:match.start()], None))
        parts.append((match.group(), match))
        position = match.end()
    parts.append((line[position:], None))
    return parts


def line_matches(expected, actual):
    expected, actual = expected.rstrip(), actual.rstrip()
    if expected == actual:
        return True
    if "..." in expected:
        pattern = ".*".join(_pattern(piece) for piece in expected.split("..."))
        return re.fullmatch(pattern, actual) is not None and _numbers_close(expected, actual)
    return re.fullmatch(_pattern(expected), actual) is not None and _numbers_close(expected,
                                                                                    actual)


def _pattern(text):
    """A regex for a piece of an expected line, with every number free."""
    out = []
    for piece, number in _tokens(text):
        out.append(re.escape(piece) if number is None else NUMBER.pattern)
    return "".join(out)


def _numbers_close(expected, actual):
    if "..." in expected:
        return True  # numbers in a line with an ellipsis: only their places are checked
    wanted = [(m.group(), TIME_UNIT.match(expected, m.end()) is not None)
              for m in NUMBER.finditer(expected)]
    got = [m.group() for m in NUMBER.finditer(actual)]
    if len(wanted) != len(got):
        return False
    for (want, is_time), have in zip(wanted, got):
        a, b = float(want), float(have)
        if is_time:
            if not (a > 0 and b > 0 and 1 / 3 <= b / a <= 3) and not (a == b == 0):
                return False
        elif re.fullmatch(r"[-+]?\d+", want):
            if want.lstrip("+") != have.lstrip("+"):
                return False
        elif not math.isclose(a, b, rel_tol=1e-9, abs_tol=_decimals_unit(want) * 1.0001):
            return False
    return True


def output_matches(expected, actual):
    """Line-by-line comparison with `...` lines matching any run of lines."""
    want = expected.splitlines()
    have = actual.splitlines()
    while want and not want[-1].strip():
        want.pop()
    while have and not have[-1].strip():
        have.pop()

    def match(i, j):
        if i == len(want):
            return j == len(have)
        if want[i].strip() == "...":
            return any(match(i + 1, k) for k in range(j, len(have) + 1))
        return j < len(have) and line_matches(want[i], have[j]) and match(i + 1, j + 1)

    return match(0, 0)


def run_block(code, directory):
    script = pathlib.Path(directory) / "readme_block.py"
    script.write_text(code + "\n", encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], cwd=directory,
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT)


BLOCKS = readme_blocks(README.read_text(encoding="utf-8")) if README.is_file() else []


@pytest.mark.skipif(not README.is_file(), reason="not a checkout: README.md is absent")
def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("line, heading, code, expected, span", BLOCKS,
                         ids=[f"README.md:{b[0]} {b[1]}" for b in BLOCKS])
def test_readme_block_prints_what_the_readme_shows(line, heading, code, expected, span,
                                                    tmp_path):
    missing = missing_dependencies(code)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} ({'; '.join(EXTRAS[m] for m in missing)})")
    result = run_block(code, tmp_path)
    assert result.returncode == 0, (
        f"README.md line {line} ({heading}) failed when run on its own:\n{result.stderr}")
    if expected is None:
        assert result.stdout == "", (
            f"README.md line {line} ({heading}) prints output the README does not show; "
            f"add a ```text block after it:\n{result.stdout}")
    else:
        assert output_matches(expected, result.stdout), (
            f"README.md line {line} ({heading}) printed\n{result.stdout}\nbut the README "
            f"shows\n{expected}")


# ------------------------------------------------------------- the comparison itself
@pytest.mark.parametrize("expected, actual", [
    ("test MSE 0.247", "test MSE 0.248"),
    ("test MSE 0.247", "test MSE 0.246"),
    ("loss 1.5e-07", "loss 1.4e-07"),
    ("training 1.30 s (14 epochs)", "training 0.61 s (14 epochs)"),
    ("took 120 ms", "took 300 ms"),
    ("(2, 7, 1)", "(2, 7, 1)"),
    ("epoch 1 ... done", "epoch 1 loss 0.3 val 0.2 done"),
    ("start\n...\nend", "start\nline a\nline b\nend"),
    ("start\n...\nend", "start\nend"),
    ("a  \nb", "a\nb\n\n"),
])
def test_tolerant_comparison_accepts_noise(expected, actual):
    assert output_matches(expected, actual)


@pytest.mark.parametrize("expected, actual", [
    ("test MSE 0.247", "test MSE 0.249"),          # two units in the last digit
    ("test MSE 0.247", "test MSE 0.25"),
    ("99 tasks", "98 tasks"),                      # integers are exact
    ("(2, 7, 1)", "(2, 7, 2)"),
    ("training 1.30 s", "training 5.0 s"),         # beyond a factor of three
    ("took 120 ms", "took 30 ms"),
    ("test MSE 0.247", "train MSE 0.247"),          # the words count
    ("a\nb", "a"),                                 # a missing line
    ("a", "a\nb"),                                 # an extra line
    ("start\n...\nend", "start\nline a"),
    ("0.5 0.5", "0.5"),
])
def test_tolerant_comparison_rejects_real_differences(expected, actual):
    assert not output_matches(expected, actual)


def test_blocks_and_their_output_are_paired():
    text = "\n".join([
        "# Title", "", "```python", "print(1)", "```", "", "```text", "1", "```",
        "## Other", "```python", "x = 1", "```", "Some prose.", "```text", "not its output",
        "```", "```bash", "echo", "```",
    ])
    blocks = readme_blocks(text)
    assert [(b[0], b[1], b[2], b[3]) for b in blocks] == [
        (3, "Title", "print(1)", "1"),
        (11, "Other", "x = 1", None),               # prose between: not its output
    ]


def test_optional_imports_are_detected():
    code = "import numpy as np\nfrom sklearn.pipeline import make_pipeline\nimport elman\n"
    missing = missing_dependencies(code)
    assert missing == ([] if importlib.util.find_spec("sklearn") else ["sklearn"])
    assert missing_dependencies("import not_an_extra_module_name\n") == []


def _update():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    replacements = []
    for line, heading, code, expected, span in readme_blocks(text):
        with tempfile.TemporaryDirectory() as directory:
            result = run_block(code, directory)
        if result.returncode != 0:
            sys.exit(f"README.md line {line} ({heading}) failed:\n{result.stderr}")
        output = result.stdout.rstrip("\n")
        print(f"README.md:{line} {heading}\n{output}\n")
        if span is not None:
            replacements.append((span, output))
        elif output:
            print("  (no ```text block after it: add one by hand)")
    for (start, end), output in reversed(replacements):
        lines[start + 1:end] = output.splitlines()
    README.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(__doc__)
    _update()
