"""Output sizes of convolution and pooling, shared by the ops, the layers and the docs.

Notation: a spatial size ``size`` (H or W), kernel ``k``, stride ``s``, padding ``p``
(``p_before + p_after`` when the two sides differ), dilation ``d``. A dilated kernel
covers ``d * (k - 1) + 1`` input positions, so

    conv:            out = floor((size + 2p - d(k - 1) - 1) / s) + 1
    conv_transpose:  out = (size - 1) s - 2p + d(k - 1) + output_padding + 1
    pool:            as conv, rounding up instead when ceil_mode=True, but a window
                     that would start in the right padding is dropped
    adaptive pool:   window o covers [floor(o * size / out), ceil((o + 1) * size / out))

These are PyTorch's rules, so shapes agree with it everywhere.
"""

from __future__ import annotations

from typing import Any

from tinyconv.dtypes import is_int

__all__ = [
    "adaptive_pool_windows",
    "conv2d_output_shape",
    "conv_output_size",
    "conv_transpose2d_output_shape",
    "conv_transpose_output_size",
    "normalize_padding",
    "pair",
    "pool2d_output_shape",
    "pool_output_size",
    "same_padding",
]

IntOrPair = int | tuple[int, int]


def pair(value: Any, name: str) -> tuple[int, int]:
    """``(value, value)`` for an int, the pair itself for a pair of ints; TypeError otherwise.

    A one-element tuple or list counts as its element, as in PyTorch's functional forms.
    """
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(item) for item in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name}={value!r} must be an int or a pair of ints")


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding that keeps a stride-1 convolution's output size.

    The kernel covers ``d(k - 1) + 1`` positions, so ``d(k - 1)`` must be added in all;
    when that is odd (an even kernel) the extra one goes after (right or bottom),
    as in PyTorch.
    """
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def normalize_padding(
    padding: Any, kernel_size: IntOrPair, dilation: IntOrPair = 1
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))`` from an int, a pair, ``'valid'`` or ``'same'``."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            kernel_h, kernel_w = pair(kernel_size, "kernel_size")
            dilation_h, dilation_w = pair(dilation, "dilation")
            return same_padding(kernel_h, dilation_h), same_padding(kernel_w, dilation_w)
        raise ValueError(f"padding={padding!r} must be an int, a pair, 'valid' or 'same'")
    padding_h, padding_w = pair(padding, "padding")
    return (padding_h, padding_h), (padding_w, padding_w)


def _total(padding: int | tuple[int, int]) -> int:
    return padding[0] + padding[1] if isinstance(padding, tuple) else 2 * padding


def conv_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int = 1,
) -> int:
    """Output length of a convolution along one axis (may be <= 0 when nothing fits).

    ``padding`` is the amount on each side, or ``(before, after)``.
    """
    extent = dilation * (kernel_size - 1) + 1
    return (size + _total(padding) - extent) // stride + 1


def conv_transpose_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a transposed convolution along one axis."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def pool_output_size(
    size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a max or average pool along one axis (``stride`` defaults to the kernel)."""
    stride = kernel_size if stride is None else stride
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1  # ceil division
        # the last window must start inside the input or the left padding
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


def adaptive_pool_windows(size: int, output_size: int) -> tuple[list[int], list[int]]:
    """Start and end (exclusive) of each of the ``output_size`` windows over ``size``."""
    starts = [(index * size) // output_size for index in range(output_size)]
    ends = [-(-((index + 1) * size) // output_size) for index in range(output_size)]
    return starts, ends


def conv2d_output_shape(
    input_size: tuple[int, int],
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: Any = 0,
    dilation: IntOrPair = 1,
) -> tuple[int, int]:
    """(OH, OW) of ``conv2d`` on an H×W input; ``padding`` may be ``'same'``/``'valid'``."""
    kernel = pair(kernel_size, "kernel_size")
    strides = pair(stride, "stride")
    dilations = pair(dilation, "dilation")
    paddings = normalize_padding(padding, kernel, dilations)
    return tuple(
        conv_output_size(size, k, s, p, d)
        for size, k, s, p, d in zip(input_size, kernel, strides, paddings, dilations)
    )


def conv_transpose2d_output_shape(
    input_size: tuple[int, int],
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> tuple[int, int]:
    """(OH, OW) of ``conv_transpose2d`` on an H×W input."""
    return tuple(
        conv_transpose_output_size(*args)
        for args in zip(
            input_size,
            pair(kernel_size, "kernel_size"),
            pair(stride, "stride"),
            pair(padding, "padding"),
            pair(output_padding, "output_padding"),
            pair(dilation, "dilation"),
        )
    )


def pool2d_output_shape(
    input_size: tuple[int, int],
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """(OH, OW) of ``max_pool2d``/``avg_pool2d`` on an H×W input."""
    kernel = pair(kernel_size, "kernel_size")
    strides = kernel if stride is None or stride == () else pair(stride, "stride")
    return tuple(
        pool_output_size(size, k, s, p, d, ceil_mode)
        for size, k, s, p, d in zip(
            input_size, kernel, strides, pair(padding, "padding"), pair(dilation, "dilation")
        )
    )
