"""Names for the types in the public signatures (annotations only; no run-time role).

Shapes are in each function's numpydoc docstring; an annotation says only what kind
of value goes in or comes out.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

#: Anything ``numpy.asarray`` turns into an array: nested lists, tuples, ndarrays.
ArrayLike = npt.ArrayLike
#: A dtype, its name or its type: "float64", numpy.float32, ...
DTypeLike = npt.DTypeLike
#: An ndarray of float32 or float64 values.
FloatArray = npt.NDArray[np.floating[Any]]
#: An ndarray of any dtype.
Array = npt.NDArray[Any]

__all__ = ["Array", "ArrayLike", "DTypeLike", "FloatArray"]
