"""Type aliases of cnorm's annotations (numpy.typing).

Evaluated at import, so spelled with Optional/Union for Python 3.9.
"""
from collections.abc import Sequence
from typing import Any, Literal, Optional, SupportsIndex, Union

import numpy as np
from numpy.typing import NDArray

__all__ = ["Activation", "Array", "FloatArray", "ShapeLike"]

# activation= of every forward, layer and backward.
Activation = Optional[Literal["relu", "silu"]]

# An array shaped like x, of x's dtype: float32, float64, float16 or
# ml_dtypes.bfloat16 (which is not a numpy.floating subtype, hence Any).
Array = NDArray[Any]

# Statistics, parameters and parameter gradients: float32 or float64 (float32
# for float16/bfloat16 data).
FloatArray = NDArray[np.floating[Any]]

# normalized_shape: an int or a sequence of ints (anything operator.index takes).
ShapeLike = Union[SupportsIndex, Sequence[SupportsIndex]]
