"""The modules of ``elman`` import downward only.

Every module of ``src/elman`` sits in one layer of ``LAYERS`` (lowest first), and may
import only from lower layers, or from its own entry (the modules of one package,
such as ``elman.datasets``, import each other). Module-level and in-function imports
count alike, so no import cycle can exist. The only exceptions are RNN's facade
methods (``FACADES``): ``RNN.fit`` (``training.fit`` itself, looked up through a
descriptor), ``RNN.save`` and the PyTorch exchange methods call modules above
``elman.rnn``, importing them inside the method.

A new module must be added to ``LAYERS``; until it is, this test fails and says so.
The last tests feed the checker made-up sources, to show that it can fail.
"""

import ast
import fnmatch
import pathlib
import re

import pytest

import elman

PACKAGE_DIR = pathlib.Path(elman.__file__).resolve().parent

# Lowest first. An entry names a module, a package (its modules included) or a
# pattern (fnmatch). Entries in one layer must not import each other.
LAYERS = [
    ["elman._version", "elman.exceptions", "elman._typing", "elman._threading",
     "elman._blas_threads"],
    ["elman._validation", "elman._layout", "elman._update", "elman._losses"],
    ["elman._gemm_path"],
    ["elman._kernels_numpy", "elman._kernels", "elman._kernels_avx2"],
    ["elman._backend"],
    ["elman._engine"],
    ["elman.optimizers", "elman.preprocessing", "elman.datasets"],
    ["elman.rnn"],
    ["elman.interop", "elman.model_file"],
    ["elman.training"],
    ["elman.parallel", "elman.estimator", "elman.diagnostics",
     "elman.text"],
    ["elman._forecasting"],
    ["elman.forecaster*"],
    ["elman"],  # the package's own __init__: the public names, from everything below
    ["elman.cli"],
    ["elman.__main__"],
]

# (module, function qualname): may import from any layer, inside the function only.
FACADES = {
    ("elman.rnn", "_TrainingFit.__get__"),  # RNN.fit (see elman.rnn)
    ("elman.rnn", "RNN.save"),
    ("elman.rnn", "RNN.to_torch_state_dict"),
    ("elman.rnn", "RNN.from_torch_state_dict"),
}


def layer_entry(module, layers=LAYERS):
    """(layer index, entry) that holds ``module``, or None."""
    for index, entries in enumerate(layers):
        for entry in entries:
            if entry == "elman":
                if module == "elman":
                    return index, entry
            elif (module == entry or module.startswith(entry + ".")
                  or fnmatch.fnmatch(module, entry)):
                return index, entry
    return None


def module_name(path, root=PACKAGE_DIR):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_module(name, root=PACKAGE_DIR):
    """True when ``name`` (elman.x.y) is a module or package under ``root``."""
    relative = pathlib.Path(*name.split(".")[1:]) if "." in name else pathlib.Path()
    base = root / relative
    return (base.with_suffix(".py").exists() or base.with_suffix(".pyx").exists()
            or (base / "__init__.py").exists())


class _Imports(ast.NodeVisitor):
    """(imported module, enclosing function qualname or None, line) of every import."""

    def __init__(self, module, is_package, exists):
        self.module, self.is_package, self.exists = module, is_package, exists
        self.scope = []
        self.found = []

    def _enter(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter

    def _function(self):
        return ".".join(self.scope) or None

    def _add(self, name, node):
        if name == "elman" or name.startswith("elman."):
            self.found.append((name, self._function(), node.lineno))

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:
            package = self.module.split(".")
            if not self.is_package:
                package = package[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            self._add(candidate if self.exists(candidate) else base, node)


_PYX_IMPORT = re.compile(r"^\s*(?:from\s+(elman[\w.]*)\s+(?:c?import)\s+([\w, ]+)|"
                         r"c?import\s+(elman[\w.]*))", re.M)


def imports_of(module, source, *, is_package=False, pyx=False, exists=is_module):
    """Every import of elman modules in ``source``, as (module, function, line)."""
    if pyx:  # Cython is not Python: its import lines are found by pattern
        found = []
        for match in _PYX_IMPORT.finditer(source):
            line = source.count("\n", 0, match.start()) + 1
            if match.group(3):
                found.append((match.group(3), None, line))
            else:
                for name in match.group(2).split(","):
                    candidate = f"{match.group(1)}.{name.strip()}"
                    found.append((candidate if exists(candidate) else match.group(1),
                                  None, line))
        return found
    visitor = _Imports(module, is_package, exists)
    visitor.visit(ast.parse(source))
    return visitor.found


def violations(module, source, *, is_package=False, pyx=False, layers=LAYERS,
               facades=FACADES, exists=is_module):
    """Messages for every import of ``module`` that does not go downward."""
    own = layer_entry(module, layers)
    if own is None:
        return [f"{module} is in no layer: add it to LAYERS in tests/test_layers.py, "
                f"above every module it imports and below every module that imports it"]
    problems = []
    for imported, function, line in imports_of(module, source, is_package=is_package,
                                               pyx=pyx, exists=exists):
        target = layer_entry(imported, layers)
        if target is None:
            problems.append(f"{module} imports {imported} (line {line}), which is in no "
                            f"layer: add it to LAYERS in tests/test_layers.py")
            continue
        if target[1] == own[1] or target[0] < own[0]:
            continue
        if (module, function) in facades:
            continue
        where = f" in {function}" if function else ""
        problems.append(f"{module}{where} (line {line}) imports {imported}, which is not in "
                        f"a lower layer ({module}: layer {own[0]}, {imported}: layer "
                        f"{target[0]})")
    return problems


def package_sources():
    for path in sorted(PACKAGE_DIR.rglob("*.py")) + sorted(PACKAGE_DIR.rglob("*.pyx")):
        if "__pycache__" in path.parts:
            continue
        yield path


def test_every_module_imports_downward_only():
    problems = []
    checked = 0
    for path in package_sources():
        module = module_name(path)
        problems += violations(module, path.read_text(encoding="utf-8"),
                               is_package=path.name == "__init__.py",
                               pyx=path.suffix == ".pyx")
        checked += 1
    assert checked >= 20, f"only {checked} modules found under {PACKAGE_DIR}"
    assert not problems, "\n".join(problems)


def test_the_facades_are_the_only_upward_imports():
    """RNN's facade methods really import upward (so they need the exception),
    and nothing else in the package does."""
    upward = []
    for path in package_sources():
        if path.suffix != ".py":
            continue
        module = module_name(path)
        problems = violations(module, path.read_text(encoding="utf-8"),
                              is_package=path.name == "__init__.py", facades=set())
        upward += problems
    assert len(upward) == len(FACADES), "\n".join(upward)
    for _, function in FACADES:
        assert any(f"in {function} " in problem for problem in upward), function


# ------------------------------------------------------------- the checker can fail
def test_an_upward_import_fails():
    source = "import numpy as np\nfrom elman.rnn import RNN\n"
    problems = violations("elman._layout", source)
    assert len(problems) == 1
    assert "elman._layout (line 2) imports elman.rnn" in problems[0]


def test_an_upward_import_inside_a_function_fails():
    source = ("def helper():\n"
              "    from elman import training\n"
              "    return training.fit\n")
    problems = violations("elman.optimizers", source)
    assert len(problems) == 1 and "elman.optimizers in helper (line 2)" in problems[0]


def test_a_relative_upward_import_fails():
    problems = violations("elman._gemm_path", "from . import optimizers\n")
    assert len(problems) == 1 and "imports elman.optimizers" in problems[0]


def test_an_import_within_one_layer_fails():
    problems = violations("elman.interop", "from elman.model_file import save\n")
    assert len(problems) == 1 and "imports elman.model_file" in problems[0]


def test_an_upward_import_outside_the_facades_fails():
    source = ("class RNN:\n"
              "    def save(self):\n"
              "        from elman.model_file import save\n"
              "    def predict(self):\n"
              "        from elman.training import fit\n")
    problems = violations("elman.rnn", source)
    assert len(problems) == 1 and "elman.rnn in RNN.predict (line 5)" in problems[0]


def test_a_cython_upward_import_fails():
    source = "cimport cython\nfrom elman import _engine\nimport numpy as np\n"
    problems = violations("elman._kernels", source, pyx=True)
    assert len(problems) == 1 and "imports elman._engine" in problems[0]


def test_an_unknown_module_fails_and_says_what_to_do():
    problems = violations("elman.newthing", "import numpy\n")
    assert len(problems) == 1 and "add it to LAYERS" in problems[0]
    problems = violations("elman.training", "from elman import newthing\n",
                          exists=lambda name: True)
    assert len(problems) == 1 and "elman.newthing" in problems[0] \
        and "add it to LAYERS" in problems[0]


def test_the_job_sits_above_the_engine():
    """The command line sits on top, the forecaster below it and above its private
    pipeline, which builds on the training loop and fit_many; submodules of a package
    share their package's layer."""
    def layer(module):
        return layer_entry(module)[0]

    assert layer("elman.cli._fit") == layer("elman.cli") > layer("elman")
    assert layer("elman") > layer("elman.forecaster") > layer("elman._forecasting.search")
    assert layer("elman._forecasting.search") > layer("elman.parallel") > layer("elman.rnn")
    assert layer("elman.datasets._csv") == layer("elman.datasets") < layer("elman.rnn")
