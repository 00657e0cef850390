"""Every public function and method carries annotations on each parameter and its
return, so that ``help()``, editors and type checkers see real signatures."""

import importlib
import inspect

import pytest

import elman

# The public modules; within each, ``__all__`` (or, without it, every name not
# starting with an underscore that is defined there) is the public API.
PUBLIC_MODULES = [
    "elman",
    "elman.rnn",
    "elman.training",
    "elman.forecaster",
    "elman.preprocessing",
    "elman.datasets",
    "elman.optimizers",
    "elman.parallel",
    "elman.interop",
    "elman.model_file",
    "elman.estimator",
    "elman.exceptions",
]
# The command line's Python entry points (the rest of elman.cli is private).
CLI_NAMES = ["main", "build_parser"]


def _public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name, value in vars(module).items()
                 if not name.startswith("_")
                 and getattr(value, "__module__", None) == module.__name__]
    return names


def _methods(cls):
    """(qualified name, function) of the public methods and properties a class
    defines itself (inherited ones are checked where they are defined)."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("elman"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(value, property):
                value = value.fget
            elif isinstance(value, (classmethod, staticmethod)):
                value = value.__func__
            if inspect.isfunction(value):
                yield f"{klass.__qualname__}.{name}", value


def _callables():
    """(qualified name, function) of every public function and method."""
    seen = set()
    targets = [(name, importlib.import_module(name)) for name in PUBLIC_MODULES]
    found = []
    for module_name, module in targets:
        for name in _public_names(module):
            value = getattr(module, name)
            if inspect.ismodule(value):
                continue
            if inspect.isclass(value):
                if not value.__module__.startswith("elman"):
                    continue
                for qualified, function in _methods(value):
                    found.append((f"{value.__module__}.{qualified}", function))
            elif inspect.isfunction(value):
                found.append((f"{value.__module__}.{value.__qualname__}", value))
    cli = importlib.import_module("elman.cli")
    for name in CLI_NAMES:
        found.append((f"elman.cli.{name}", getattr(cli, name)))
    unique = []
    for qualified, function in found:
        if function not in seen:
            seen.add(function)
            unique.append((qualified, function))
    return unique


def missing_annotations(qualified, function):
    """What ``function`` lacks: one line per unannotated parameter or return."""
    signature = inspect.signature(function)
    missing = []
    for index, (name, parameter) in enumerate(signature.parameters.items()):
        if index == 0 and name in ("self", "cls"):
            continue
        if parameter.annotation is inspect.Parameter.empty:
            missing.append(f"{qualified}: parameter {name!r} has no annotation")
    if signature.return_annotation is inspect.Signature.empty:
        missing.append(f"{qualified}: no return annotation")
    return missing


CALLABLES = _callables()


def test_the_walk_finds_the_public_api():
    names = {qualified for qualified, _ in CALLABLES}
    for expected in ("elman.training.fit", "elman.rnn.RNN.forward", "elman.rnn.RNN.parameters",
                     "elman.parallel.fit_many", "elman.forecaster.Forecaster.fit",
                     "elman.estimator.RNNRegressor.fit", "elman.cli.main"):
        assert expected in names, expected


@pytest.mark.parametrize("qualified, function", CALLABLES, ids=[q for q, _ in CALLABLES])
def test_public_callable_is_annotated(qualified, function):
    missing = missing_annotations(qualified, function)
    assert not missing, "\n".join(missing)


def test_an_unannotated_function_is_reported_by_name():
    def made_up(self, window, *, horizon: int = 1):
        return window

    def annotated(self, window: int) -> int:
        return window

    assert missing_annotations("made_up", made_up) == [
        "made_up: parameter 'window' has no annotation",
        "made_up: no return annotation",
    ]
    assert missing_annotations("annotated", annotated) == []


def test_fit_is_the_method_with_its_own_signature():
    model = elman.RNN(2, 3, 1)
    signature = inspect.signature(model.fit)
    assert list(signature.parameters)[:3] == ["X", "Y", "epochs"]
    assert signature.return_annotation == "History"
    assert model.fit.__func__ is elman.training.fit
