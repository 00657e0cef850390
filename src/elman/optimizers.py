"""Optimizers and gradient clipping, on one flat parameter vector.

The update formulas are PyTorch's (``torch.optim.SGD`` with ``dampening=0`` and
``nesterov=False``; ``torch.optim.Adam`` with L2 ``weight_decay``), so a step here
matches a step there. The formulas, the optimizer codes and the clipping constant
live in ``elman._update``, which the compiled training loop reads too.

Optimizers can be used on their own, in a hand-written loop::

    opt = elman.optimizers.SGD(lr=0.01, momentum=0.9)
    for epoch in range(100):
        loss, grads = model.loss_and_grad(X, Y)
        elman.optimizers.clip_gradients(grads, value=5.0)
        opt.step(model, grads)
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from elman._layout import Gradients
from elman._typing import Array, ArrayLike, DTypeLike, FloatArray
from elman._update import (  # noqa: F401  (re-exported: elman.optimizers has always had them)
    ADAM_CODE,
    HYPER_BETA1,
    HYPER_BETA2,
    HYPER_EPS,
    HYPER_LR,
    HYPER_WEIGHT_DECAY,
    NORM_CLIP_EPS,
    SGD_CODE,
    apply_update,
    clip_flat,
)
from elman._validation import (
    as_numeric_array,
    check_positive,
    check_unit_interval,
    check_updatable,
)


class _Model(Protocol):
    """What ``Optimizer.step`` takes a model by (an ``elman.RNN``; this module sits
    below it): a model applies an update to its own flat parameters."""

    def _apply_update(self, optimizer: Any, grads: Any) -> None: ...


class Optimizer:
    """Base class: hyperparameters, state (moments) and the step count.

    State is allocated on the first step (or by :meth:`prepare`) for the length and
    dtype of the parameter vector it is used with, and is checked on every step:
    one optimizer serves one model.
    """

    code: int | None = None

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        self.lr = check_positive("lr", lr)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.state: FloatArray | None = None
        self.step_count = np.zeros(1, dtype=np.int64)

    # -- what the kernels read -------------------------------------------------
    def hyperparameters(self) -> FloatArray:
        """float64 vector [lr, beta1 or momentum, beta2, eps, weight_decay]."""
        raise NotImplementedError

    def prepare(self, n_params: int, dtype: DTypeLike) -> FloatArray:
        """Allocate (or check) the state for ``n_params`` parameters of ``dtype``."""
        dtype = np.dtype(dtype)
        if self.state is None:
            self.state = np.zeros((2, n_params), dtype=dtype)
        elif self.state.shape != (2, n_params) or self.state.dtype != dtype:
            raise ValueError(
                f"this optimizer holds state for {self.state.shape[1]} parameters of "
                f"{self.state.dtype}; got {n_params} of {dtype}. Use one optimizer per "
                f"model, or call reset()."
            )
        return self.state

    def reset(self) -> None:
        """Forget the moments and the step count."""
        self.state = None
        self.step_count[0] = 0

    # -- use on its own --------------------------------------------------------
    def step(self, params: _Model | dict[str, Array] | Array,
             grads: Mapping[str, ArrayLike] | ArrayLike) -> None:
        """Apply one update in place.

        Parameters
        ----------
        params : elman.RNN, dict of ndarray, or ndarray
            What to update: a model, a dict of arrays (for example
            ``model.get_weights()`` style) or one flat float array.
        grads : dict of ndarray or ndarray
            Gradients with the same keys and shapes (a dict), or a flat array with
            the same length as the flat parameters.
        """
        apply_to_model = getattr(params, "_apply_update", None)
        if apply_to_model is not None:
            # An elman.RNN: it checks grads against its own weights, then calls
            # _step_flat on its flat parameters.
            apply_to_model(self, grads)
            return
        if isinstance(params, dict):
            if not params:
                raise ValueError("params is an empty dict; there is nothing to update")
            for key, value in params.items():
                check_updatable(f"params[{key!r}]", value)
            if not isinstance(grads, dict) or set(grads) != set(params):
                raise ValueError("grads must be a dict with the same keys as params")
            keys = sorted(params)
            flat_grads = []
            for key in keys:
                grad = as_numeric_array(f"grads[{key!r}]", grads[key])
                if grad.shape != params[key].shape:
                    raise ValueError(
                        f"grads[{key!r}] has shape {grad.shape}, expected {params[key].shape}"
                    )
                flat_grads.append(grad.ravel())
            flat = np.concatenate([params[k].ravel() for k in keys])
            with np.errstate(over="ignore"):
                flat_grad = np.concatenate(flat_grads).astype(flat.dtype)
            self._step_flat(flat, flat_grad)
            offset = 0
            for key in keys:
                size = params[key].size
                params[key][...] = flat[offset:offset + size].reshape(params[key].shape)
                offset += size
            return
        if not isinstance(params, np.ndarray) or params.ndim != 1:
            raise TypeError("params must be an elman.RNN, a dict of arrays or a 1-D array")
        check_updatable("params", params)
        grad_array = as_numeric_array("grads", grads)
        if grad_array.shape != params.shape:
            raise ValueError(
                f"grads has shape {grad_array.shape}, expected {params.shape}"
            )
        with np.errstate(over="ignore"):
            grad_array = grad_array.astype(params.dtype)
        self._step_flat(params, grad_array)

    def _step_flat(self, theta: FloatArray, grad: FloatArray) -> None:
        self.prepare(theta.shape[0], theta.dtype)
        apply_update(self.code, theta, grad, self.hyperparameters(), self.state,
                     self.step_count)

    # -- saving ----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, as plain Python values."""
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        """Moments and step count (copies), for saving beside the model."""
        return {
            "state": None if self.state is None else self.state.copy(),
            "step_count": int(self.step_count[0]),
        }

    def set_state(self, saved: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        state = saved.get("state")
        self.state = None if state is None else np.array(state, copy=True)
        if self.state is not None and (self.state.ndim != 2 or self.state.shape[0] != 2):
            raise ValueError(f"optimizer state must have shape (2, n); got {self.state.shape}")
        step = int(saved.get("step_count", 0))
        if step < 0:
            raise ValueError(f"step_count must be >= 0; got {step}")
        self.step_count[0] = step

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional classical momentum.

    ``v <- momentum * v + (g + weight_decay * p)``, ``p <- p - lr * v``
    (``v`` is the gradient itself when ``momentum == 0``), as ``torch.optim.SGD``.
    """

    code = SGD_CODE

    def __init__(self, lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        self.momentum = check_unit_interval("momentum", momentum)

    def hyperparameters(self) -> FloatArray:
        return np.array([self.lr, self.momentum, 0.0, 0.0, self.weight_decay])

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction, as ``torch.optim.Adam``.

    ``weight_decay`` is added to the gradient (L2), as PyTorch's Adam does.
    """

    code = ADAM_CODE

    def __init__(self, lr: float = 0.001, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats; got {betas!r}")
        self.betas = (check_unit_interval("betas[0]", betas[0]),
                      check_unit_interval("betas[1]", betas[1]))
        self.eps = check_positive("eps", eps)

    def hyperparameters(self) -> FloatArray:
        return np.array([self.lr, self.betas[0], self.betas[1], self.eps, self.weight_decay])

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam}


def get_optimizer(optimizer: str | Optimizer, lr: float | None = None) -> Optimizer:
    """An Optimizer from a name ('sgd', 'momentum', 'adam') or an instance."""
    if isinstance(optimizer, Optimizer):
        if lr is not None:
            raise ValueError("pass lr to the optimizer's constructor, not beside an instance")
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(
            f"optimizer must be 'sgd', 'momentum', 'adam' or an elman.optimizers.Optimizer; "
            f"got {type(optimizer).__name__}"
        )
    name = optimizer.lower()
    kwargs: dict[str, float] = {} if lr is None else {"lr": lr}
    if name == "momentum":
        return SGD(momentum=0.9, **kwargs)
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be 'sgd', 'momentum' or 'adam'; got {optimizer!r}")
    return OPTIMIZERS[name](**kwargs)


def optimizer_from_config(name: str, config: Mapping[str, Any]) -> Optimizer:
    """Rebuild an optimizer saved with its class name and :meth:`get_config`."""
    classes = {cls.__name__: cls for cls in (SGD, Adam)}
    if name not in classes:
        raise ValueError(f"unknown optimizer class {name!r}; expected one of {sorted(classes)}")
    config = dict(config)
    if "betas" in config:
        config["betas"] = tuple(config["betas"])
    return classes[name](**config)


def clip_gradients(grads: Mapping[str, Array] | Array, value: float | None = None,
                   norm: float | None = None) -> float:
    """Clip gradients in place: elementwise to [-value, value], then by global norm.

    Parameters
    ----------
    grads : dict of ndarray or ndarray
        Gradients, as ``RNN.loss_and_grad`` returns them, or one flat array.
    value : float, optional
        Clip each element to ``[-value, value]`` (the tutorials use 5).
    norm : float, optional
        Scale all gradients together so that their global L2 norm is at most
        ``norm``, as ``torch.nn.utils.clip_grad_norm_`` does.

    Returns
    -------
    float
        The global L2 norm of the gradients after value clipping and before norm
        clipping (what ``clip_grad_norm_`` returns).
    """
    clip_value = 0.0 if value is None else check_positive("value", value)
    clip_norm = 0.0 if norm is None else check_positive("norm", norm)
    if isinstance(grads, Gradients) and grads.intact():
        # The arrays tile one flat vector: clip it directly (same result, no gather).
        return clip_flat(grads.flat, clip_value, clip_norm)
    if isinstance(grads, np.ndarray):
        if grads.ndim != 1 or grads.dtype.kind != "f":
            raise TypeError("grads must be a dict of float arrays or one flat float array")
        check_updatable("grads", grads)
        return clip_flat(grads, clip_value, clip_norm)
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict or an ndarray; got {type(grads).__name__}")
    for key, array in grads.items():
        check_updatable(f"grads[{key!r}]", array)
    keys = sorted(grads)
    flat = np.concatenate([grads[k].ravel() for k in keys] + [np.zeros(0)]).astype(np.float64)
    total = clip_flat(flat, clip_value, clip_norm)
    offset = 0
    for key in keys:
        size = grads[key].size
        grads[key][...] = flat[offset:offset + size].reshape(grads[key].shape)
        offset += size
    return total
