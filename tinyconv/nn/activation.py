"""Layers without parameters: activations, ``Flatten`` and ``Dropout``."""

from __future__ import annotations

from tinyconv.nn import functional as F
from tinyconv.nn.module import Module
from tinyconv.tensor import Tensor

__all__ = ["Dropout", "Flatten", "ReLU", "Sigmoid", "Tanh"]


class ReLU(Module):
    """max(x, 0), element-wise.

    Args:
        inplace: accepted for PyTorch compatibility; the result is always a new tensor
            (the numbers are the same).
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    """1 / (1 + exp(-x)), element-wise."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.sigmoid(input)


class Tanh(Module):
    """tanh(x), element-wise."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.tanh(input)


class Flatten(Module):
    """Merge dimensions ``start_dim`` to ``end_dim`` into one.

    Shape:
        (N, C, H, W) -> (N, C * H * W) with the defaults.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the others by
    1 / (1 - p); in evaluation, pass the input through.

    Args:
        p: the probability of an element being zeroed.
        inplace: accepted for PyTorch compatibility; the result is always a new tensor.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        F._check_probability(p, "Dropout")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
