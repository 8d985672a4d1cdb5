"""``Parameter``: a tensor that a ``Module`` registers as one of its learnable weights."""

from __future__ import annotations

from typing import Any

import numpy

from tinyconv import backend
from tinyconv.tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf tensor that requires grad; assigning one to a Module attribute registers it.

    Args:
        data: a Tensor (its array is shared, not copied) or an array.
        requires_grad: whether the optimizer should train it.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = numpy.empty(0, dtype=numpy.float32)
        counter = None
        if isinstance(data, Tensor):
            # the same memory and version counter, as in PyTorch: what ``detach()`` gives
            detached = data.detach()
            array, device, counter = detached.data, detached.device, detached._version
        else:
            is_array = hasattr(data, "shape") and not isinstance(data, numpy.generic)
            array = data if is_array else numpy.asarray(data)
            device = backend.device_of(array)
        self._setup(array, device)
        if counter is not None:
            self._version = counter
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
