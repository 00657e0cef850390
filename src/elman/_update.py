"""Optimizer updates and gradient clipping on one flat vector: the formulas and the codes.

This module is the one source of the optimizer codes, the layout of the
hyperparameter vector and the clipping constant, for the Python side and for the
compiled training loop alike: ``_kernels.pyx`` reads them from here when it is
imported (tests/test_kernel_contract.py checks that the compiled module holds
the same values).

The update formulas are PyTorch's (``torch.optim.SGD`` with ``dampening=0`` and
``nesterov=False``; ``torch.optim.Adam`` with L2 ``weight_decay``).
:func:`apply_update` and :func:`clip_flat` are what the NumPy twin runs; the compiled
loop applies the same formulas in the same order of operations.
"""

import math

import numpy as np

from elman._typing import FloatArray

SGD_CODE = 0
ADAM_CODE = 1

# Layout of the float64 hyperparameter vector handed to the kernels.
HYPER_LR, HYPER_BETA1, HYPER_BETA2, HYPER_EPS, HYPER_WEIGHT_DECAY = range(5)
HYPER_SIZE = 5

# clip_grad_norm_ in PyTorch divides by (norm + 1e-6); so do we.
NORM_CLIP_EPS = 1e-6


def apply_update(code, theta, grad, hyper, state, step_count):
    """One optimizer update of the flat vector ``theta`` in place.

    ``code`` is SGD_CODE or ADAM_CODE, ``hyper`` the hyperparameter vector,
    ``state`` (2, P) the moments (SGD uses row 0 as its velocity) and
    ``step_count`` a one-element int64 array, incremented here.
    """
    lr = float(hyper[HYPER_LR])
    beta1 = float(hyper[HYPER_BETA1])
    weight_decay = float(hyper[HYPER_WEIGHT_DECAY])
    step_count[0] += 1
    g = grad + weight_decay * theta if weight_decay != 0.0 else grad
    if code == SGD_CODE:
        if beta1 != 0.0:
            velocity = state[0]
            velocity *= beta1
            velocity += g
            g = velocity
        theta -= lr * g
        return
    beta2 = float(hyper[HYPER_BETA2])
    eps = float(hyper[HYPER_EPS])
    t = int(step_count[0])
    m, v = state[0], state[1]
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * (g * g)
    step_size = lr / (1.0 - beta1 ** t)
    denom = np.sqrt(v)
    denom /= math.sqrt(1.0 - beta2 ** t)
    denom += eps
    theta -= step_size * m / denom


def clip_flat(grad: FloatArray, clip_value: float,
              clip_norm: float) -> float:
    """Clip a flat gradient in place; returns its norm before norm clipping.

    ``clip_value``/``clip_norm`` of 0 mean no clipping of that kind.
    """
    if clip_value > 0.0:
        np.clip(grad, -clip_value, clip_value, out=grad)
    norm = math.sqrt(float(np.dot(grad.astype(np.float64, copy=False),
                                  grad.astype(np.float64, copy=False))))
    if clip_norm > 0.0:
        coef = clip_norm / (norm + NORM_CLIP_EPS)
        if coef < 1.0:
            grad *= coef
    return norm
