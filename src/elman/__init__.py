"""elman: vanilla (Elman) recurrent neural networks, trained by exact BPTT, fast on a CPU.

    h_t = tanh(Wxh x_t + Whh h_{t-1} + bh),   y_t = Why h_t + by

``elman.RNN`` is the model; ``elman.BACKEND`` says whether the compiled kernels
("cython") or their NumPy twin ("numpy") are in use (see ``ELMAN_BACKEND``).
"""

from typing import Any as _Any  # a private name: no `elman.Any`

from elman import datasets, diagnostics, optimizers, preprocessing, text, training
from elman._backend import compiled_available, get_num_threads, use_backend
from elman._threading import num_threads, set_num_threads
from elman._version import __version__
from elman.optimizers import clip_gradients
from elman.parallel import FitManyResult, fit_many
from elman.rnn import RNN
from elman.training import History, TrainingDivergedError
from elman.forecaster import Forecaster, load

__all__ = [
    "BACKEND",
    "History",
    "RNN",
    "RNNRegressor",
    "__version__",
    "clip_gradients",
    "TrainingDivergedError",
    "FitManyResult",
    "Forecaster",
    "compiled_available",
    "fit_many",
    "get_num_threads",
    "datasets",
    "diagnostics",
    "load",
    "num_threads",
    "optimizers",
    "set_num_threads",
    "preprocessing",
    "text",
    "training",
    "use_backend",
]


def __getattr__(name: str) -> _Any:
    # BACKEND is looked up on each access so that use_backend() is reflected.
    if name == "BACKEND":
        from elman._backend import active_name

        return active_name()
    if name == "RNNRegressor":
        # Imported on first use: with scikit-learn installed, importing it costs about
        # a second, which `import elman` (and the command line) should not pay.
        from elman.estimator import RNNRegressor

        return RNNRegressor
    raise AttributeError(f"module 'elman' has no attribute {name!r}")
