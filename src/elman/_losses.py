"""The losses a model trains on: names, codes, and their NumPy definitions.

A model's ``loss`` is one of ``LOSSES``; the kernels receive its index (the loss
code). Each loss is a mean over the valid target elements of a batch (padded steps
excluded) and matches PyTorch's functional form with ``reduction="mean"``:

``mse``
    ``F.mse_loss``: (y_hat - y)**2. Targets (..., O).
``mae``
    ``F.l1_loss``: |y_hat - y|; its gradient at y_hat == y is 0, as ``sign``.
``huber``
    ``F.huber_loss`` with ``delta = HUBER_DELTA`` (1.0): 0.5 d**2 where |d| < delta,
    else delta (|d| - 0.5 delta), with d = y_hat - y. Targets (..., O).
``cross_entropy``
    ``F.cross_entropy`` on logits: logsumexp(z) - z[c] for the O outputs z (the
    logits of O classes) and the class index c. Targets (..., 1): the class index
    stored as a float of the model's dtype. One element per valid step.
``gaussian_nll``
    ``F.gaussian_nll_loss`` with ``full=False``: the O = 2k outputs are k means mu
    and k log-variances s; var = max(exp(s), GAUSSIAN_NLL_EPS) and the loss is
    0.5 (log var + (mu - y)**2 / var). Targets (..., k). As in PyTorch, the clamp
    at eps sets the value but the gradient passes it as if it were not there
    (PyTorch clamps a copy of the variance under ``no_grad``): d loss / d s =
    0.5 (1 / var - (mu - y)**2 / var**2) exp(s). Above the clamp (s > log eps,
    about -13.8) this is the exact derivative; below it the gradient keeps pushing
    s up rather than vanishing.

``value_and_gradient`` is what the NumPy twin (``elman._gemm_path``) computes with;
the compiled kernels (``_kernels.pyx``, ``_loss_row``) follow the same formulas row
by row. ``predict``'s transformations (class, probabilities, mean and standard
deviation) are here too, so that they use the same clamp.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LOSSES = ("mse", "mae", "huber", "cross_entropy", "gaussian_nll")
MSE, MAE, HUBER, CROSS_ENTROPY, GAUSSIAN_NLL = range(len(LOSSES))

HUBER_DELTA = 1.0
# PyTorch's default eps of F.gaussian_nll_loss: the smallest variance used.
GAUSSIAN_NLL_EPS = 1e-6


def loss_code(loss: Any) -> int:
    """The code (index in ``LOSSES``) of a loss name; ValueError for anything else."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}")
    return LOSSES.index(loss)


def check_output_size(loss: str, output_size: int) -> None:
    """ValueError when ``output_size`` does not suit ``loss``."""
    if loss == "cross_entropy" and output_size < 2:
        raise ValueError(
            f"loss='cross_entropy' needs output_size >= 2 (one logit per class); got "
            f"output_size={output_size}")
    if loss == "gaussian_nll" and output_size % 2:
        raise ValueError(
            f"loss='gaussian_nll' needs an even output_size (k means, then k "
            f"log-variances); got output_size={output_size}")


def target_width(code: int, output_size: int) -> int:
    """Width of the targets' last axis as the kernels take them: O, 1 or O // 2."""
    if code == CROSS_ENTROPY:
        return 1
    if code == GAUSSIAN_NLL:
        return output_size // 2
    return output_size


def elements_per_step(code: int, output_size: int) -> int:
    """Target elements one output step contributes to the mean."""
    return target_width(code, output_size)


def value_and_gradient(code: int, outputs: Any, targets: Any, valid: Any = None,
                       valid_rows: int | None = None) -> tuple[float, Any]:
    """Mean loss over the valid rows, and its gradient with respect to ``outputs``.

    Parameters
    ----------
    code : int
        The loss code.
    outputs : ndarray, shape (..., O)
        The head's raw outputs.
    targets : ndarray, shape (..., target_width)
        Targets of the same rows; values in invalid rows are ignored (NaN too).
    valid : ndarray of bool, shape (..., 1), optional
        Which rows count; every row when None.
    valid_rows : int, optional
        The number of valid rows the mean is over, when the rows given are one part
        of a larger batch (the parts' losses and gradients then add up to the
        batch's); the valid rows given when None.

    Returns
    -------
    loss : float
        The mean over the valid target elements (NaN when none is valid).
    gradient : ndarray, shape (..., O)
        d loss / d outputs, zero in invalid rows, in the dtype of ``outputs``.
    """
    O = outputs.shape[-1]
    rows = outputs.size // O if O else 0
    if valid_rows is not None:
        n_valid = valid_rows
    else:
        n_valid = rows if valid is None else int(np.count_nonzero(valid))
    count = n_valid * elements_per_step(code, O)
    if valid is not None:
        # where, not multiply: targets in padded rows may hold anything, NaN too.
        targets = np.where(valid, targets, 0.0).astype(outputs.dtype, copy=False)
    scale = 2.0 if code == MSE else 1.0
    if code == MSE:
        gradient = outputs - targets
        if valid is not None:
            gradient = np.where(valid, gradient, 0.0).astype(outputs.dtype, copy=False)
        loss_sum = float(np.vdot(gradient, gradient))
    else:
        if code == CROSS_ENTROPY:
            losses, gradient = _cross_entropy(outputs, targets)
        elif code == GAUSSIAN_NLL:
            losses, gradient = _gaussian_nll(outputs, targets)
        elif code == MAE:
            diff = outputs - targets
            losses, gradient = np.abs(diff), np.sign(diff)
        else:
            diff = outputs - targets
            magnitude = np.abs(diff)
            losses = np.where(magnitude < HUBER_DELTA, 0.5 * diff * diff,
                              HUBER_DELTA * (magnitude - 0.5 * HUBER_DELTA))
            gradient = np.clip(diff, -HUBER_DELTA, HUBER_DELTA)
        if valid is not None:
            losses = np.where(valid, losses, 0.0)
            gradient = np.where(valid, gradient, 0.0)
        loss_sum = float(losses.sum())
        gradient = gradient.astype(outputs.dtype, copy=False)
    if count == 0:
        return float("nan"), gradient
    gradient *= scale / count
    return loss_sum / count, gradient


def _cross_entropy(logits, targets):
    """Loss of every row (..., 1) and its unscaled gradient, softmax - one hot."""
    index = targets.astype(np.intp)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    total = exps.sum(axis=-1, keepdims=True)
    losses = np.log(total) - np.take_along_axis(shifted, index, axis=-1)
    gradient = exps
    gradient /= total
    np.put_along_axis(gradient, index, np.take_along_axis(gradient, index, axis=-1) - 1.0,
                      axis=-1)
    return losses, gradient


def _gaussian_nll(outputs, targets):
    """Loss of every target element (..., k) and the unscaled gradient (..., 2k) (see
    the module docstring)."""
    k = outputs.shape[-1] // 2
    mean, log_var = outputs[..., :k], outputs[..., k:]
    raw_var = np.exp(log_var)
    var = np.maximum(raw_var, GAUSSIAN_NLL_EPS)
    diff = mean - targets
    ratio = diff / var
    losses = 0.5 * (np.log(var) + diff * ratio)
    gradient = np.empty_like(outputs)
    gradient[..., :k] = ratio
    gradient[..., k:] = 0.5 * (1.0 - diff * ratio) / var * raw_var
    return losses, gradient


def softmax(logits: Any) -> Any:
    """Softmax over the last axis, in the dtype of ``logits``."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    exps /= exps.sum(axis=-1, keepdims=True)
    return exps


def gaussian_mean_std(outputs: Any) -> tuple[Any, Any]:
    """(means, standard deviations) of a Gaussian head's outputs (..., 2k): each (..., k),
    the variance clamped at ``GAUSSIAN_NLL_EPS`` as in the loss."""
    k = outputs.shape[-1] // 2
    var = np.maximum(np.exp(outputs[..., k:]), GAUSSIAN_NLL_EPS)
    return outputs[..., :k].copy(), np.sqrt(var).astype(outputs.dtype, copy=False)
