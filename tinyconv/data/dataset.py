"""Datasets: ``len(dataset)`` samples, ``dataset[i]`` is one of them.

A dataset whose ``__getitem__`` also takes a 1-D array of indices and returns a
whole batch at once says so with ``supports_index_arrays = True``. ``DataLoader``
then fetches each batch with one fancy-indexing gather per array, not a Python
loop over samples: for MNIST at batch 128 that is one ``images[indices]`` instead
of 128 calls and a stack.
"""

from __future__ import annotations

from typing import Any

import numpy

from tinyconv.backend import to_device
from tinyconv.tensor import Tensor

__all__ = ["Dataset", "TensorDataset"]


class Dataset:
    """Base class of map-style datasets: subclasses write ``__getitem__`` and ``__len__``.

    Set ``supports_index_arrays = True`` in a subclass whose ``__getitem__`` takes an
    integer index array of shape ``(B,)`` and returns the batch of those ``B`` samples.
    """

    supports_index_arrays: bool = False

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not define __len__")


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension.

    Args:
        *tensors: tensors with the same size in dimension 0.

    Shape:
        ``dataset[i]`` is a tuple of ``tensor[i]``; ``dataset[indices]`` with an index
        array of shape ``(B,)`` is a tuple of ``tensor[indices]``, each ``(B, ...)``.
    """

    supports_index_arrays = True

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for position, tensor in enumerate(tensors):
            if not isinstance(tensor, Tensor):
                raise TypeError(
                    f"tensors[{position}] is a {type(tensor).__name__}; expected a Tensor "
                    "(wrap arrays with tc.from_numpy or tc.tensor)"
                )
            if tensor.ndim == 0:
                raise ValueError(
                    f"tensors[{position}] is zero-dimensional; every tensor needs a first "
                    "dimension to index samples along"
                )
            if tensor.shape[0] != tensors[0].shape[0]:
                raise ValueError(
                    f"tensors[{position}] has shape {tensor.shape}; every tensor needs the "
                    f"first dimension {tensors[0].shape[0]} of tensors[0]"
                )
        self.tensors = tensors

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(tensor[_on_device(index, tensor.device)] for tensor in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


def _on_device(index: Any, device: str) -> Any:
    """An index array on the tensor's device (CuPy gathers with CuPy indices)."""
    if isinstance(index, numpy.ndarray) and device != "cpu":
        return to_device(index, device)
    return index
