"""Hypothesis profiles for elman's property tests, and a count of the cases they ran.

Imported by the property-test modules (not a conftest: it only touches Hypothesis).

Profiles
--------
``ci`` (the default)
    ``derandomize=True``: the examples are a fixed function of each test's code, so
    every run (CI, a laptop, the debug build) tries exactly the same cases and a
    failure reproduces by running the test again. Bounded: each test asks for
    :func:`examples` ``(n)``, which is ``n`` here. No example database is written
    (nothing to learn from between derandomized runs), no deadline (the shared
    2-core machines are noisy; hangs are caught by explicit timeouts instead), and
    the ``too_slow`` health check is off (generation includes arrays).
``thorough``
    Random (a new seed each run, printed on failure with ``print_blob``), 20 times
    the ``ci`` examples, database on so a failure found once is retried first.
    ``ELMAN_HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_properties.py``.
``quick``
    A tenth of ``ci``, derandomized, for editing the tests themselves.

``ELMAN_HYPOTHESIS_PROFILE`` picks one; Hypothesis's own ``--hypothesis-profile``
option wins when given.

Counting cases
--------------
Each property test calls :func:`count` once per generated case with a label
(``"valid"``, ``"rejected"``, ...). ``report()`` formats the totals; the modules
print them at the end of the module when pytest runs with ``-v`` or
``--hypothesis-show-statistics`` (Hypothesis's own per-test statistics).
"""

import collections
import contextlib
import os

from hypothesis import HealthCheck, settings

_SUPPRESSED = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    # The only function-scoped fixtures these tests take are stateless helpers
    # (assert_close, tmp_path used as a scratch directory overwritten per example).
    HealthCheck.function_scoped_fixture,
]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=_SUPPRESSED,
)
settings.register_profile(
    "thorough",
    derandomize=False,
    deadline=None,
    max_examples=2000,
    print_blob=True,
    suppress_health_check=_SUPPRESSED,
)
settings.register_profile(
    "quick",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=10,
    print_blob=True,
    suppress_health_check=_SUPPRESSED,
)

_FACTORS = {"ci": 1.0, "thorough": 20.0, "quick": 0.1}

PROFILE = os.environ.get("ELMAN_HYPOTHESIS_PROFILE", "").strip() or "ci"
if PROFILE not in _FACTORS:
    raise ValueError(f"ELMAN_HYPOTHESIS_PROFILE must be one of {sorted(_FACTORS)}; "
                     f"got {PROFILE!r}")
if settings.get_current_profile_name() == "default":
    # Not chosen with --hypothesis-profile: use ours.
    settings.load_profile(PROFILE)
else:
    PROFILE = settings.get_current_profile_name()
FACTOR = _FACTORS.get(PROFILE, 1.0)


def examples(n):
    """``settings`` for a test worth ``n`` examples under the ``ci`` profile."""
    return settings(max_examples=max(1, int(round(n * FACTOR))))


COUNTS = collections.defaultdict(collections.Counter)


def count(test, label):
    """Record one generated case of ``test`` with outcome ``label``."""
    COUNTS[test][label] += 1


def report(tests=None):
    """One line per test: total cases and the split by label."""
    lines = []
    for test in sorted(COUNTS if tests is None else tests):
        labels = COUNTS.get(test)
        if not labels:
            continue
        split = ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
        lines.append(f"{test}: {sum(labels.values())} cases ({split})")
    return lines


def print_report(request, prefix):
    """Write the counts of this module's tests to the terminal, when asked for."""
    config = request.config
    verbose = config.getoption("verbose", 0) > 0
    statistics = bool(config.getoption("hypothesis_show_statistics", False))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if not (verbose or statistics) or reporter is None:
        return
    tests = [t for t in COUNTS if t.startswith(prefix)]
    capture = config.pluginmanager.get_plugin("capturemanager")
    # Fixture teardown runs with output captured; the counts belong on the terminal.
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("")
        for line in report(tests):
            reporter.write_line(f"[hypothesis cases, profile {PROFILE}] {line}")
