"""Pooling layers: ``MaxPool2d``, ``AvgPool2d`` and the adaptive pools (no parameters)."""

from __future__ import annotations

from typing import Any

from tinyconv.nn import conv_functional as F
from tinyconv.nn.module import Module
from tinyconv.tensor import Tensor

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "MaxPool2d"]

IntOrPair = int | tuple[int, int]


class MaxPool2d(Module):
    """The maximum of each window (see ``F.max_pool2d``).

    Args:
        kernel_size: an int or a pair.
        stride: defaults to ``kernel_size``.
        padding: -inf on each side, at most half the kernel.
        dilation: spacing between window elements.
        return_indices: also return each maximum's flat index in its plane.
        ceil_mode: round the output size up.

    Shape:
        (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2·padding - dilation·(KH - 1) - 1)
        / stride) + 1 (ceil with ``ceil_mode``), likewise OW.
    """

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Any:  # noqa: A002
        return F.max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """The mean of each window (see ``F.avg_pool2d``).

    Args:
        kernel_size: an int or a pair.
        stride: defaults to ``kernel_size``.
        padding: zeros on each side, at most half the kernel.
        ceil_mode: round the output size up.
        count_include_pad: whether padded zeros count in the divisor.
        divisor_override: divide every window's sum by this instead.

    Shape:
        (N, C, H, W) -> (N, C, OH, OW), OH = floor((H + 2·padding - KH) / stride) + 1
        (ceil with ``ceil_mode``), likewise OW.
    """

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (see ``F.adaptive_avg_pool2d``).

    Shape:
        (N, C, H, W) -> (N, C, *output_size); an entry None keeps that input size.
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size (see ``F.adaptive_max_pool2d``).

    Shape:
        (N, C, H, W) -> (N, C, *output_size); an entry None keeps that input size.
    """

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Any:  # noqa: A002
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
