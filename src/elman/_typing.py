"""Names for the types in the public signatures (annotations only; no run-time role).

Shapes are in each function's numpydoc docstring; an annotation says only what kind
of value goes in or comes out.
"""

from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas

#: Anything ``numpy.asarray`` turns into an array: nested lists, tuples, ndarrays.
ArrayLike = npt.ArrayLike
#: A dtype, its name or its type: "float64", numpy.float32, ...
DTypeLike = npt.DTypeLike
#: An ndarray of float32 or float64 values.
FloatArray = npt.NDArray[np.floating[Any]]
#: An array_like, or a pandas Series or DataFrame (pandas is never imported for it).
SeriesLike = Union[npt.ArrayLike, "pandas.Series", "pandas.DataFrame"]
#: An ndarray of any dtype.
Array = npt.NDArray[Any]

__all__ = ["Array", "ArrayLike", "DTypeLike", "FloatArray", "SeriesLike"]
