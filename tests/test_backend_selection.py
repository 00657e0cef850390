"""Which backend elman picks: ELMAN_BACKEND at import (in fresh interpreters, with
and without the compiled module importable), use_backend() within a process, and
the conftest's own promise that a required-but-missing extension fails the suite."""

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import elman
from elman import _backend

COMPILED = elman.compiled_available()
needs_compiled = pytest.mark.skipif(not COMPILED, reason="compiled module not built here")

# Makes every compiled build (`elman._kernels`, `elman._kernels_avx2`) unimportable,
# as on an install made without a compiler.
BLOCK_COMPILED = textwrap.dedent("""
    import sys

    class _BlockCompiled:
        def find_spec(self, name, path=None, target=None):
            if name in ("elman._kernels", "elman._kernels_avx2"):
                raise ModuleNotFoundError(
                    f"No module named {name!r} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, _BlockCompiled())
""")

PRINT_BACKEND = "import elman; print(elman.BACKEND)"


def run_python(code, backend_env=None, block_compiled=False, cwd=None, extra_env=None,
               warnings_are_errors=True):
    """Run ``code`` in a fresh interpreter that imports this same elman.

    backend_env: None leaves ELMAN_BACKEND unset; a string sets it. Warnings are
    errors by default, so that "silently" below also means "without a warning".
    """
    env = os.environ.copy()
    env.pop("ELMAN_BACKEND", None)
    env.update(extra_env or {})
    if backend_env is not None:
        env["ELMAN_BACKEND"] = backend_env
    package_root = str(Path(elman.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    source = (BLOCK_COMPILED if block_compiled else "") + code
    return subprocess.run([sys.executable, *(["-W", "error"] if warnings_are_errors else []), "-c", source], env=env,
                          capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def fresh_compiled():
    """Whether a fresh interpreter can import the compiled module (normally == COMPILED)."""
    return run_python("import elman._kernels", "numpy").returncode == 0


@pytest.mark.parametrize("backend_env", [None, ""], ids=["unset", "empty"])
def test_unset_picks_compiled_when_it_imports(backend_env, fresh_compiled):
    result = run_python(PRINT_BACKEND, backend_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("cython" if fresh_compiled else "numpy")
    assert result.stderr == ""


def test_numpy_forces_the_twin():
    result = run_python(PRINT_BACKEND + "; import elman._backend as b; "
                        "print(b.get_kernels().__name__)", "numpy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["numpy", "elman._kernels_numpy"]


def test_cython_insists(fresh_compiled):
    result = run_python(PRINT_BACKEND, "cython")
    if fresh_compiled:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "cython"
    else:
        assert result.returncode != 0
        assert "ImportError: ELMAN_BACKEND=cython" in result.stderr


@pytest.mark.parametrize("value", ["fortran", "cpp", "python"])
def test_bogus_value_is_an_import_error_naming_the_variable(value):
    result = run_python(PRINT_BACKEND, value)
    assert result.returncode != 0
    assert result.stdout == ""
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: ELMAN_BACKEND must be")
    assert repr(value) in last_line and "'cython'" in last_line and "'numpy'" in last_line


def test_without_compiled_module_unset_falls_back_silently():
    code = textwrap.dedent("""
        import numpy as np
        import elman
        print(elman.BACKEND, elman.compiled_available())
        model = elman.RNN(2, 3, 1, seed=0)
        print(model.forward(np.ones((4, 2))).shape)
        try:
            with elman.use_backend("cython"):
                pass
        except ImportError as exc:
            print("use_backend:", exc)
    """)
    result = run_python(code, block_compiled=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # silent: no message, and no warning (run with -W error)
    lines = result.stdout.splitlines()
    assert lines[0] == "numpy False"
    assert lines[1] == "(4, 1)"
    assert lines[2].startswith("use_backend:") and "pip install" in lines[2]


def test_without_compiled_module_cython_says_how_to_build():
    result = run_python(PRINT_BACKEND, "cython", block_compiled=True)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: ELMAN_BACKEND=cython, but the compiled module "
                              "elman._kernels is not available")
    assert "blocked by the test" in message  # the underlying reason is passed on
    for hint in ("C compiler", "pip install", "ELMAN_REQUIRE_EXTENSION=1",
                 "ELMAN_BACKEND=numpy"):
        assert hint in message, hint


def test_without_compiled_module_numpy_is_unaffected():
    result = run_python(PRINT_BACKEND, "numpy", block_compiled=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"


# ------------------------------------------------------------ in-process
def test_default_backend_follows_environment():
    requested = os.environ.get("ELMAN_BACKEND", "").strip().lower()
    expected = requested or ("cython" if COMPILED else "numpy")
    assert elman.BACKEND == _backend.active_name() == expected


def test_use_backend_switches_nests_and_restores():
    default = elman.BACKEND
    with elman.use_backend("numpy"):
        assert elman.BACKEND == "numpy"
        assert _backend.get_kernels().__name__ == "elman._kernels_numpy"
        if COMPILED:
            with elman.use_backend("cython"):
                assert elman.BACKEND == "cython"
                assert _backend.get_kernels().__name__ in ("elman._kernels",
                                                           "elman._kernels_avx2")
            assert elman.BACKEND == "numpy"
    assert elman.BACKEND == default
    with pytest.raises(RuntimeError):
        with elman.use_backend("numpy"):
            raise RuntimeError
    assert elman.BACKEND == default


def test_use_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"backend must be one of \('cython', 'numpy'\); "
                                         r"got 'fortran'"):
        with elman.use_backend("fortran"):
            pass
    assert elman.BACKEND in ("cython", "numpy")


def test_use_backend_is_per_thread():
    seen = {}
    inside, release = threading.Event(), threading.Event()
    other = "numpy" if elman.BACKEND == "cython" else ("cython" if COMPILED else None)
    if other is None:
        pytest.skip("only one backend available")

    def worker():
        with elman.use_backend(other):
            seen["worker"] = elman.BACKEND
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(10)
    seen["main"] = elman.BACKEND
    release.set()
    thread.join(10)
    assert seen == {"worker": other, "main": _backend._DEFAULT_NAME}


@pytest.mark.parametrize("name", [
    pytest.param("cython", marks=needs_compiled), "numpy"])
def test_model_calls_go_to_the_chosen_module(name, monkeypatch):
    module = _backend.get_kernels(name)
    calls = []
    for function in ("forward", "loss_and_grad", "forecast"):
        original = getattr(module, function)
        monkeypatch.setattr(module, function,
                            lambda *a, _f=original, _n=function: (calls.append(_n), _f(*a))[1])
    model = elman.RNN(1, 3, 1, seed=0)
    X = np.ones((2, 4, 1))
    with elman.use_backend(name):
        model.forward(X)
        model.loss_and_grad(X, np.zeros((2, 4, 1)))
        model.forecast(X, 2)
    assert calls == ["forward", "loss_and_grad", "forecast"]


# --------------------------------------------- the conftest's own contract
TINY_TEST = textwrap.dedent("""
    import elman

    def test_runs(backend):
        assert elman.BACKEND == backend
""")


def _run_suite_copy(tmp_path, backend_env, block_compiled):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_tiny.py").write_text(TINY_TEST)
    code = ("import sys, pytest; sys.exit(pytest.main(['-q', '-rs', '-p', 'no:cacheprovider', "
            f"{str(tmp_path)!r}]))")
    # Plugin autoloading (hypothesis, ...) would double the start-up time.
    result = run_python(code, backend_env, block_compiled, cwd=tmp_path,
                        extra_env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
                        warnings_are_errors=False)
    return result.returncode, result.stdout + result.stderr


def test_conftest_skips_compiled_when_missing_and_unset(tmp_path):
    status, output = _run_suite_copy(tmp_path, None, block_compiled=True)
    assert status == 0, output
    assert "1 passed, 1 skipped" in output
    assert "not importable in this install" in output


def test_conftest_skips_compiled_under_numpy(tmp_path):
    status, output = _run_suite_copy(tmp_path, "numpy", block_compiled=False)
    assert status == 0, output
    assert "1 passed, 1 skipped" in output
    assert "ELMAN_BACKEND=numpy" in output


def test_conftest_fails_when_cython_is_required_but_missing(tmp_path):
    status, output = _run_suite_copy(tmp_path, "cython", block_compiled=True)
    assert status not in (0, 5), output  # 5 would be "no tests collected"
    assert "ELMAN_BACKEND=cython, but the compiled module" in output
    assert "passed" not in output and "skipped" not in output


@needs_compiled
def test_conftest_runs_both_when_cython_is_required_and_present(tmp_path):
    status, output = _run_suite_copy(tmp_path, "cython", block_compiled=False)
    assert status == 0, output
    assert "2 passed" in output and "skipped" not in output
