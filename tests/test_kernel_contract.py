"""Both backends export the whole kernel contract, and nothing else.

The contract is written once, in the docstring of ``elman._kernels_numpy``;
``KERNEL_FUNCTIONS`` there names its functions. Each kernel module must export every
one of them with the same parameters, and no other public function: what only tests
or benchmarks need does not live in a kernel module. The compiled training loop
reads the optimizer codes and constants from ``elman._update``, and the loss codes and
constants from ``elman._losses``, at import; the values it computes with must be those.
"""

import inspect
import re

import pytest

from elman import _kernels_numpy, _losses, _update

CONTRACT = _kernels_numpy.KERNEL_FUNCTIONS
# Module-level values a kernel module may export beside the functions.
DATA = {"INSTRUCTION_SET", "UPDATE_CONSTANTS", "LOSS_CONSTANTS", "KERNEL_FUNCTIONS",
        "ACTIVATION_CODES", "STEPS_FORWARD", "STEPS_BACKWARD", "OPENMP", "CHUNKING"}


def public_functions(module):
    return {name for name in dir(module)
            if not name.startswith("_") and callable(getattr(module, name))}


def parameters(function):
    return list(inspect.signature(function).parameters)


def test_the_contract_names_every_function_its_docstring_documents():
    documented = set(re.findall(r"^(\w+)\(", _kernels_numpy.__doc__, re.M))
    assert documented == set(CONTRACT)


@pytest.fixture(params=["compiled_kernels", "twin_kernels"])
def kernel_module(request):
    return request.getfixturevalue(request.param)


def test_each_backend_exports_the_whole_contract(kernel_module):
    missing = [name for name in CONTRACT if not callable(getattr(kernel_module, name, None))]
    assert not missing, f"{kernel_module.__name__} lacks {missing}"
    extra = public_functions(kernel_module) - set(CONTRACT)
    assert not extra, f"{kernel_module.__name__} exports {sorted(extra)} beyond the contract"
    values = {name for name in dir(kernel_module)
              if not name.startswith("_") and not callable(getattr(kernel_module, name))
              and not inspect.ismodule(getattr(kernel_module, name))}
    assert values <= DATA, f"{kernel_module.__name__} exports {sorted(values - DATA)}"


def test_both_backends_take_the_same_parameters(compiled_kernels, twin_kernels):
    for name in CONTRACT:
        assert parameters(getattr(compiled_kernels, name)) == \
            parameters(getattr(twin_kernels, name)), name


def test_compiled_constants_equal_the_python_ones(compiled_kernels):
    expected = {name: getattr(_update, name) for name in (
        "SGD_CODE", "ADAM_CODE", "HYPER_LR", "HYPER_BETA1", "HYPER_BETA2", "HYPER_EPS",
        "HYPER_WEIGHT_DECAY", "NORM_CLIP_EPS")}
    assert compiled_kernels.UPDATE_CONSTANTS == expected
    assert len(set(expected[k] for k in ("SGD_CODE", "ADAM_CODE"))) == 2
    hyper = [expected[k] for k in expected if k.startswith("HYPER_")]
    assert sorted(hyper) == list(range(_update.HYPER_SIZE))


def test_compiled_loss_constants_equal_the_python_ones(compiled_kernels):
    expected = {name: getattr(_losses, name) for name in (
        "MSE", "MAE", "HUBER", "CROSS_ENTROPY", "GAUSSIAN_NLL", "HUBER_DELTA",
        "GAUSSIAN_NLL_EPS")}
    assert compiled_kernels.LOSS_CONSTANTS == expected
    assert [expected[name.upper()] for name in _losses.LOSSES] == list(range(5))


def test_optimizers_use_the_same_codes():
    from elman import optimizers

    assert optimizers.SGD.code == _update.SGD_CODE
    assert optimizers.Adam.code == _update.ADAM_CODE
    sgd = optimizers.SGD(lr=0.5, momentum=0.25, weight_decay=0.125).hyperparameters()
    assert sgd[_update.HYPER_LR] == 0.5 and sgd[_update.HYPER_BETA1] == 0.25
    assert sgd[_update.HYPER_WEIGHT_DECAY] == 0.125 and sgd.shape == (_update.HYPER_SIZE,)
    adam = optimizers.Adam(lr=0.5, betas=(0.25, 0.75), eps=0.375).hyperparameters()
    assert adam[_update.HYPER_BETA2] == 0.75 and adam[_update.HYPER_EPS] == 0.375


def test_compiled_activation_codes_are_the_layout_indices(compiled_kernels, twin_kernels):
    from elman._layout import ACTIVATIONS

    assert compiled_kernels.ACTIVATION_CODES == {name: code
                                                 for code, name in enumerate(ACTIVATIONS)}
    # The twin's elementwise steps are listed in the same order.
    assert [f.__name__ for f in twin_kernels.STEPS_FORWARD] == [
        f"{name}_step_forward" for name in ACTIVATIONS]
    assert [f.__name__ for f in twin_kernels.STEPS_BACKWARD] == [
        f"{name}_step_backward" for name in ACTIVATIONS]
