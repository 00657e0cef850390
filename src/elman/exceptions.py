"""Every exception elman defines, in one place.

Each is also importable from the module that raises it (``elman.training``,
``elman.model_file``), where it has always lived.
"""

from __future__ import annotations

from typing import Any


class TrainingDivergedError(FloatingPointError):
    """The loss, a gradient or the updated weights became NaN or infinite in ``fit``.

    The model keeps the last finite weights (those before the failing step), and
    ``history`` holds what was recorded up to then.
    """

    # history is an elman.training.History; typed as Any because this module sits
    # below the training loop and imports nothing from it.
    def __init__(self, message: str, history: Any) -> None:
        super().__init__(message)
        self.history = history


class ModelFileError(ValueError):
    """A file is not a valid elman model file: truncated, corrupted, tampered with,
    written by a newer elman, or not a model file at all.

    The message names the file and what is wrong; when zipfile, zlib or NumPy
    detected the problem, their exception is chained as ``__cause__``.
    """
