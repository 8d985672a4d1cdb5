"""Convolution and pooling with PyTorch's signatures, each argument checked at the door.

Past these functions the ops in ``tinyconv.ops.conv`` and ``tinyconv.ops.pool``
assume valid input: every mistake is caught here, with a message that names the
argument, its value and what was expected. A 3-D input (C, H, W) is one sample: it
is run as a batch of one and the batch axis is removed again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinyconv.dtypes import is_int
from tinyconv.ops import conv as conv_ops
from tinyconv.ops import pool as pool_ops
from tinyconv.ops.sizes import (
    adaptive_pool_windows,
    conv2d_output_shape,
    conv_output_size,
    conv_transpose2d_output_shape,
    conv_transpose_output_size,
    normalize_padding,
    pair,
    pool2d_output_shape,
    pool_output_size,
    same_padding,
)
from tinyconv.tensor import Tensor

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "adaptive_pool_windows",
    "avg_pool2d",
    "conv2d",
    "conv2d_output_shape",
    "conv_output_size",
    "conv_transpose2d",
    "conv_transpose2d_output_shape",
    "conv_transpose_output_size",
    "max_pool2d",
    "pool2d_output_shape",
    "pool_output_size",
    "same_padding",
]

IntOrPair = int | tuple[int, int]


# -- checks shared by every function ---------------------------------------------------


def _check_input(name: str, input: Any) -> bool:  # noqa: A002
    """Check a (C, H, W) or (N, C, H, W) floating tensor; True when it is batched."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim not in (3, 4):
        raise ValueError(
            f"{name}: input must be 3-D (C, H, W) or 4-D (N, C, H, W), "
            f"got {input.ndim}-D input of shape {input.shape}"
        )
    if input.data.dtype.kind != "f":
        raise TypeError(
            f"{name}: input must be floating point, got dtype {input.data.dtype.name}; "
            "convert it with .float()"
        )
    return input.ndim == 4


def _check_like(name: str, argument: str, value: Any, input: Tensor) -> None:  # noqa: A002
    # a weight or bias must be a Tensor on the input's device with the input's dtype
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: {argument} must be a Tensor, got {type(value).__name__}")
    if value.device != input.device:
        raise RuntimeError(
            f"{name}: input is on {input.device!r} but {argument} is on {value.device!r}; "
            "move both to one device"
        )
    if value.data.dtype != input.data.dtype:
        raise RuntimeError(
            f"{name}: input is {input.data.dtype.name} but {argument} is "
            f"{value.data.dtype.name}; convert one with .to(dtype)"
        )


def _check_weight(name: str, weight: Any, input: Tensor, layout: str) -> None:  # noqa: A002
    """A 4-D weight with no empty dimension, on input's device and of its dtype."""
    _check_like(name, "weight", weight, input)
    if weight.ndim != 4:
        raise ValueError(f"{name}: weight must be 4-D {layout}, got shape {weight.shape}")
    if min(weight.shape) < 1:
        raise ValueError(f"{name}: weight of shape {weight.shape} has an empty dimension")


def _positive_pair(name: str, argument: str, value: Any) -> tuple[int, int]:
    pair_value = pair(value, f"{name}: {argument}")
    if min(pair_value) < 1:
        raise ValueError(f"{name}: {argument}={value!r} must be >= 1")
    return pair_value


def _non_negative_pair(name: str, argument: str, value: Any) -> tuple[int, int]:
    pair_value = pair(value, f"{name}: {argument}")
    if min(pair_value) < 0:
        raise ValueError(f"{name}: {argument}={value!r} must be >= 0")
    return pair_value


def _check_groups(name: str, groups: Any) -> int:
    if not is_int(groups) or groups < 1:
        raise ValueError(f"{name}: groups={groups!r} must be an int >= 1")
    return int(groups)


def _check_output(name: str, input_size: tuple[int, int], out_size: tuple[int, int], why: str):
    if min(out_size) < 1:
        raise ValueError(
            f"{name}: the output would be empty ({out_size[0]}×{out_size[1]}) for an input of "
            f"{input_size[0]}×{input_size[1]}; {why}"
        )


def _batched(function: Callable[[Tensor], Any], input: Tensor, batched: bool) -> Any:  # noqa: A002
    """Run ``function`` on a 4-D input; a 3-D input runs as a batch of one."""
    if batched:
        return function(input)
    result = function(input.unsqueeze(0))
    if isinstance(result, tuple):
        return tuple(part.squeeze(0) for part in result)
    return result.squeeze(0)


def _check_bias(name: str, bias: Any, channels: int, input: Tensor) -> None:  # noqa: A002
    if bias is None:
        return
    _check_like(name, "bias", bias, input)
    if bias.shape != (channels,):
        raise ValueError(f"{name}: bias has shape {bias.shape}, expected ({channels},)")


# -- convolution -----------------------------------------------------------------------


def conv2d(
    input: Tensor,  # noqa: A002
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation of ``input`` with ``weight``, plus ``bias``.

    Args:
        input: (N, C_in, H, W) or (C_in, H, W).
        weight: (C_out, C_in / groups, KH, KW).
        bias: (C_out,) or None.
        stride, dilation: an int or a pair, >= 1.
        padding: an int or a pair >= 0, ``'valid'`` (none) or ``'same'`` (output size
            equals input size; stride 1 only; an odd total puts the extra on the
            bottom/right).
        groups: split the channels into this many independent convolutions.

    Shape:
        OH = floor((H + 2·padding - dilation·(KH - 1) - 1) / stride) + 1, likewise OW.
    """
    name = "conv2d"
    batched = _check_input(name, input)
    _check_weight(name, weight, input, "(C_out, C_in / groups, KH, KW)")
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    groups = _check_groups(name, groups)
    stride = _positive_pair(name, "stride", stride)
    dilation = _positive_pair(name, "dilation", dilation)
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(
                f"{name}: padding={padding!r} must be an int, a pair, 'valid' or 'same'"
            )
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"{name}: padding='same' needs stride=1, got stride={stride}")
    else:
        _non_negative_pair(name, "padding", padding)
    channels = input.shape[-3]
    if channels % groups:
        raise ValueError(f"{name}: groups={groups} must divide the input channels ({channels})")
    if out_channels % groups:
        raise ValueError(
            f"{name}: groups={groups} must divide the output channels of weight "
            f"(weight.shape[0]={out_channels})"
        )
    if channels != group_channels * groups:
        raise ValueError(
            f"{name}: input has {channels} channels, but weight of shape {weight.shape} with "
            f"groups={groups} expects {group_channels * groups} (weight.shape[1] * groups)"
        )
    _check_bias(name, bias, out_channels, input)
    paddings = normalize_padding(padding, (kernel_h, kernel_w), dilation)
    out_size = conv2d_output_shape(
        input.shape[-2:], (kernel_h, kernel_w), stride, padding, dilation
    )
    _check_output(
        name,
        input.shape[-2:],
        out_size,
        f"the padded input must cover the dilated kernel {kernel_h}×{kernel_w} "
        f"(dilation={dilation}, padding={padding!r})",
    )

    def run(batch: Tensor) -> Tensor:
        return conv_ops.Conv2d.apply(
            batch, weight, bias, stride=stride, padding=paddings, dilation=dilation, groups=groups
        )

    return _batched(run, input, batched)


def conv_transpose2d(
    input: Tensor,  # noqa: A002
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> Tensor:
    """2-D transposed convolution: the gradient of ``conv2d`` with respect to its input.

    Args:
        input: (N, C_in, H, W) or (C_in, H, W).
        weight: (C_in, C_out / groups, KH, KW).
        bias: (C_out,) or None.
        stride, dilation: an int or a pair, >= 1.
        padding: an int or a pair >= 0, removed from each side of the output.
        output_padding: added to the bottom/right of the output; below stride or dilation.
        groups: split the channels into this many independent convolutions.

    Shape:
        OH = (H - 1)·stride - 2·padding + dilation·(KH - 1) + output_padding + 1, likewise OW.
    """
    name = "conv_transpose2d"
    batched = _check_input(name, input)
    _check_weight(name, weight, input, "(C_in, C_out / groups, KH, KW)")
    in_channels, group_out_channels, kernel_h, kernel_w = weight.shape
    groups = _check_groups(name, groups)
    stride = _positive_pair(name, "stride", stride)
    dilation = _positive_pair(name, "dilation", dilation)
    if isinstance(padding, str):
        raise ValueError(f"{name}: padding={padding!r} must be an int or a pair of ints")
    padding = _non_negative_pair(name, "padding", padding)
    output_padding = _non_negative_pair(name, "output_padding", output_padding)
    for axis in range(2):
        if output_padding[axis] >= max(stride[axis], dilation[axis]):
            raise ValueError(
                f"{name}: output_padding={output_padding} must be smaller than either "
                f"stride={stride} or dilation={dilation} in each dimension"
            )
    channels = input.shape[-3]
    if channels != in_channels:
        raise ValueError(
            f"{name}: input has {channels} channels, but weight of shape {weight.shape} "
            f"expects {in_channels} (weight.shape[0])"
        )
    if in_channels % groups:
        raise ValueError(f"{name}: groups={groups} must divide the input channels ({in_channels})")
    out_channels = group_out_channels * groups
    _check_bias(name, bias, out_channels, input)
    out_size = conv_transpose2d_output_shape(
        input.shape[-2:], (kernel_h, kernel_w), stride, padding, output_padding, dilation
    )
    _check_output(
        name,
        input.shape[-2:],
        out_size,
        f"padding={padding} removes more than the {kernel_h}×{kernel_w} kernel "
        f"(stride={stride}, dilation={dilation}) adds",
    )
    paddings = ((padding[0], padding[0]), (padding[1], padding[1]))

    def run(batch: Tensor) -> Tensor:
        return conv_ops.ConvTranspose2d.apply(
            batch,
            weight,
            bias,
            stride=stride,
            padding=paddings,
            dilation=dilation,
            groups=groups,
            out_size=out_size,
        )

    return _batched(run, input, batched)


# -- pooling ---------------------------------------------------------------------------


def _pool_arguments(
    name: str,
    input: Tensor,  # noqa: A002
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: Any,
) -> tuple[tuple[int, int], ...]:
    """Check a window pool's arguments; returns kernel, stride, padding, dilation, out size."""
    kernel = _positive_pair(name, "kernel_size", kernel_size)
    strides = kernel if stride is None or stride == () or stride == [] else None
    if strides is None:
        strides = _positive_pair(name, "stride", stride)
    paddings = _non_negative_pair(name, "padding", padding)
    dilations = _positive_pair(name, "dilation", dilation)
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"{name}: ceil_mode={ceil_mode!r} must be a bool")
    if 2 * paddings[0] > kernel[0] or 2 * paddings[1] > kernel[1]:
        raise ValueError(
            f"{name}: padding={padding!r} must be at most half of kernel_size={kernel_size!r}"
        )
    out_size = pool2d_output_shape(
        input.shape[-2:], kernel, strides, paddings, dilations, ceil_mode
    )
    _check_output(
        name,
        input.shape[-2:],
        out_size,
        f"the padded input must cover kernel_size={kernel_size!r} (padding={padding!r})",
    )
    return kernel, strides, paddings, dilations, out_size


def max_pool2d(
    input: Tensor,  # noqa: A002
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """The maximum of each window (padding counts as -inf).

    Args:
        kernel_size: an int or a pair, >= 1.
        stride: defaults to ``kernel_size``.
        padding: at most half the (dilated) kernel.
        ceil_mode: round the output size up (a window that would start in the right
            padding is dropped).
        return_indices: also return each maximum's flat index h·W + w in its plane.

    Shape:
        OH = floor((H + 2·padding - dilation·(KH - 1) - 1) / stride) + 1 (ceil with
        ``ceil_mode``), likewise OW.
    """
    name = "max_pool2d"
    batched = _check_input(name, input)
    kernel, strides, paddings, dilations, out_size = _pool_arguments(
        name, input, kernel_size, stride, padding, dilation, ceil_mode
    )
    if not isinstance(return_indices, bool):
        raise TypeError(f"{name}: return_indices={return_indices!r} must be a bool")

    def run(batch: Tensor) -> Any:
        return pool_ops.MaxPool2d.apply(
            batch,
            kernel_size=kernel,
            stride=strides,
            padding=paddings,
            dilation=dilations,
            out_size=out_size,
            return_indices=return_indices,
        )

    return _batched(run, input, batched)


def avg_pool2d(
    input: Tensor,  # noqa: A002
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """The mean of each window.

    Args:
        kernel_size: an int or a pair, >= 1.
        stride: defaults to ``kernel_size``.
        padding: zeros, at most half the kernel.
        ceil_mode: round the output size up (a window that would start in the right
            padding is dropped).
        count_include_pad: whether padded zeros count in the divisor.
        divisor_override: divide every window's sum by this instead.

    Shape:
        OH = floor((H + 2·padding - KH) / stride) + 1 (ceil with ``ceil_mode``), likewise OW.
    """
    name = "avg_pool2d"
    batched = _check_input(name, input)
    kernel, strides, paddings, _, out_size = _pool_arguments(
        name, input, kernel_size, stride, padding, 1, ceil_mode
    )
    if not isinstance(count_include_pad, bool):
        raise TypeError(f"{name}: count_include_pad={count_include_pad!r} must be a bool")
    if divisor_override is not None and (not is_int(divisor_override) or divisor_override == 0):
        raise ValueError(
            f"{name}: divisor_override={divisor_override!r} must be None or a nonzero int"
        )

    def run(batch: Tensor) -> Tensor:
        return pool_ops.AvgPool2d.apply(
            batch,
            kernel_size=kernel,
            stride=strides,
            padding=paddings,
            out_size=out_size,
            count_include_pad=count_include_pad,
            divisor_override=divisor_override,
        )

    return _batched(run, input, batched)


def _adaptive_size(name: str, input: Tensor, output_size: Any) -> tuple[int, int]:  # noqa: A002
    # an int, or a pair whose None entries keep the input's size, as in PyTorch
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(
            input.shape[-2 + axis] if size is None else size
            for axis, size in enumerate(output_size)
        )
    size = _positive_pair(name, "output_size", output_size)
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"{name}: input of shape {input.shape} has an empty spatial dimension")
    return size


def adaptive_avg_pool2d(input: Tensor, output_size: IntOrPair) -> Tensor:  # noqa: A002
    """Average pooling to a fixed output size: window o covers
    [floor(o·H/OH), ceil((o+1)·H/OH)), likewise along W.

    Shape:
        (N, C, H, W) -> (N, C, *output_size); an entry None keeps that input size.
    """
    name = "adaptive_avg_pool2d"
    batched = _check_input(name, input)
    out_size = _adaptive_size(name, input, output_size)

    def run(batch: Tensor) -> Tensor:
        return pool_ops.AdaptiveAvgPool2d.apply(batch, out_size=out_size)

    return _batched(run, input, batched)


def adaptive_max_pool2d(
    input: Tensor,  # noqa: A002
    output_size: IntOrPair,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Max pooling to a fixed output size (windows as ``adaptive_avg_pool2d``).

    Shape:
        (N, C, H, W) -> (N, C, *output_size); an entry None keeps that input size.
    """
    name = "adaptive_max_pool2d"
    batched = _check_input(name, input)
    out_size = _adaptive_size(name, input, output_size)
    if not isinstance(return_indices, bool):
        raise TypeError(f"{name}: return_indices={return_indices!r} must be a bool")

    def run(batch: Tensor) -> Any:
        values, indices = pool_ops.AdaptiveMaxPool2d.apply(batch, out_size=out_size)
        return (values, indices) if return_indices else values

    return _batched(run, input, batched)
