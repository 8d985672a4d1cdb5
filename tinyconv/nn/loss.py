"""Loss layers: ``CrossEntropyLoss`` and ``MSELoss``, thin wrappers over ``functional``."""

from __future__ import annotations

from tinyconv.nn import functional as F
from tinyconv.nn.module import Module
from tinyconv.tensor import Tensor

__all__ = ["CrossEntropyLoss", "MSELoss"]


class CrossEntropyLoss(Module):
    """Cross-entropy between class logits and integer class targets.

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.
        label_smoothing: the share of the target spread evenly over all classes.

    Shape:
        input (N, C) or (N, C, d1, ...); target (N,) or (N, d1, ...), int64 in [0, C).
    """

    def __init__(self, *, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.cross_entropy(
            input, target, reduction=self.reduction, label_smoothing=self.label_smoothing
        )


class MSELoss(Module):
    """Mean squared error between input and target.

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.

    Shape:
        input and target of the same shape.
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.mse_loss(input, target, reduction=self.reduction)
