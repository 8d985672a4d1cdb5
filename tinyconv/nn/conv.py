"""``Conv2d`` and ``ConvTranspose2d``: convolution layers with a learned kernel and bias."""

from __future__ import annotations

import math
from typing import Any

from tinyconv import creation
from tinyconv.nn import conv_functional as F
from tinyconv.nn import init
from tinyconv.nn.module import Module
from tinyconv.nn.parameter import Parameter
from tinyconv.ops.sizes import conv_transpose2d_output_shape, pair
from tinyconv.tensor import Tensor

__all__ = ["Conv2d", "ConvTranspose2d"]

IntOrPair = int | tuple[int, int]


class _ConvNd(Module):
    """What both layers share: checked hyper-parameters, parameters, init and repr."""

    def __init__(
        self,
        name: str,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair,
        padding: IntOrPair | str,
        dilation: IntOrPair,
        groups: int,
        bias: bool,
        padding_mode: str,
        output_padding: IntOrPair,
        weight_shape: tuple[int, int],
        device: Any,
        dtype: Any,
    ) -> None:
        super().__init__()
        for argument, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("groups", groups),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {argument}={value!r} must be a positive int")
        for argument, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value % groups:
                raise ValueError(f"{name}: groups={groups} must divide {argument}={value}")
        if padding_mode != "zeros":
            raise ValueError(
                f"{name}: padding_mode={padding_mode!r} is not supported; expected 'zeros'"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair(kernel_size, f"{name}: kernel_size")
        self.stride = pair(stride, f"{name}: stride")
        self.dilation = pair(dilation, f"{name}: dilation")
        for argument, value in (
            ("kernel_size", self.kernel_size),
            ("stride", self.stride),
            ("dilation", self.dilation),
        ):
            if min(value) < 1:
                raise ValueError(f"{name}: {argument}={value} must be >= 1")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"{name}: padding={padding!r} must be an int, a pair, 'valid' or 'same'"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"{name}: padding='same' needs stride=1, got {self.stride}")
            self.padding = padding
        else:
            self.padding = pair(padding, f"{name}: padding")
        self.output_padding = pair(output_padding, f"{name}: output_padding")
        self.groups = groups
        self.padding_mode = padding_mode
        self.weight = Parameter(
            creation.empty(*weight_shape, *self.kernel_size, device=device, dtype=dtype)
        )
        if bias:
            self.bias = Parameter(creation.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: W Kaiming-uniform with a=sqrt(5), b ~ U(+-1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    """A 2-D convolution layer: ``y = conv2d(x, W) + b``.

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size: an int or a pair.
        stride, dilation: an int or a pair (default 1).
        padding: an int, a pair, ``'valid'`` or ``'same'`` (default 0).
        groups: independent channel groups; must divide both channel counts.
        bias: whether to learn an additive bias.
        padding_mode: only ``'zeros'``.
        device, dtype: where the parameters live and their dtype (default float32).

    Shape:
        input (N, C_in, H, W) or (C_in, H, W) -> output (N, C_out, OH, OW), with
        OH = floor((H + 2·padding - dilation·(KH - 1) - 1) / stride) + 1, likewise OW.
        weight (C_out, C_in / groups, KH, KW), bias (C_out,).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair | str = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        group_in = in_channels // groups if isinstance(groups, int) and groups > 0 else 0
        super().__init__(
            "Conv2d",
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            0,
            (out_channels, group_in),
            device,
            dtype,
        )

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.conv2d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class ConvTranspose2d(_ConvNd):
    """A 2-D transposed convolution layer (the gradient of a convolution with respect to
    its input, used to upsample): ``y = conv_transpose2d(x, W) + b``.

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size: an int or a pair.
        stride, dilation: an int or a pair (default 1).
        padding: an int or a pair, removed from each side of the output.
        output_padding: added to the bottom/right of the output; below stride or dilation.
        groups: independent channel groups; must divide both channel counts.
        bias: whether to learn an additive bias.
        padding_mode: only ``'zeros'``.
        device, dtype: where the parameters live and their dtype (default float32).

    Shape:
        input (N, C_in, H, W) or (C_in, H, W) -> output (N, C_out, OH, OW), with
        OH = (H - 1)·stride - 2·padding + dilation·(KH - 1) + output_padding + 1.
        weight (C_in, C_out / groups, KH, KW), bias (C_out,).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        output_padding: IntOrPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrPair = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding={padding!r} must be an int or a pair")
        group_out = out_channels // groups if isinstance(groups, int) and groups > 0 else 0
        super().__init__(
            "ConvTranspose2d",
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            output_padding,
            (in_channels, group_out),
            device,
            dtype,
        )

    def forward(self, input: Tensor, output_size: Any = None) -> Tensor:  # noqa: A002
        """``output_size`` (H, W), or a full shape, picks the output_padding that gives it."""
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding_for(input, tuple(output_size)[-2:])
        return F.conv_transpose2d(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )

    def _output_padding_for(self, input: Tensor, size: tuple[int, int]) -> tuple[int, int]:
        smallest = conv_transpose2d_output_shape(
            input.shape[-2:], self.kernel_size, self.stride, self.padding, 0, self.dilation
        )
        extra = tuple(wanted - low for wanted, low in zip(size, smallest))
        if any(not 0 <= amount < step for amount, step in zip(extra, self.stride)):
            largest = tuple(low + step - 1 for low, step in zip(smallest, self.stride))
            raise ValueError(
                f"ConvTranspose2d: output_size={size} is not reachable from an input of "
                f"{tuple(input.shape[-2:])}; expected between {smallest} and {largest}"
            )
        return extra
