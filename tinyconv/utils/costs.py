"""What one layer costs, from its shape rules: multiply-adds and its window on the input.

A multiply-add (MAC) is one ``a * b + c``. Every output element of a convolution is a
dot product of length ``C_in / groups * KH * KW``, so

    Conv2d           forward = output elements * (C_in / groups) * KH * KW
    ConvTranspose2d  forward = input elements * (C_out / groups) * KH * KW   (a scatter)
    Linear           forward = output elements * in_features

and backward repeats the forward's multiply-adds once per gradient it computes:
dL/dx pairs every (output, weight) term with the same weight (a transposed
convolution), dL/dW pairs it with the same input (a correlation of x with dL/dy).
A gradient the engine skips costs nothing: the input gradient of a layer whose
input needs none (the first layer), the weight gradient of a frozen weight.

Other layers: BatchNorm2d is one multiply-add per element (``y = a * x + b`` with
a, b per channel) in each direction; average pooling one per input in a window;
max pooling, activations, dropout and reshapes none (comparisons and element-wise
functions are not multiply-adds). Bias additions and sums are not counted.

The receptive field of a stack follows from each layer's window: a kernel covering
``k_eff = d(k - 1) + 1`` positions at stride ``s`` grows the field by
``(k_eff - 1) * jump`` and multiplies the jump (the distance on the input between
neighbouring outputs) by ``s``. A transposed convolution spreads its input ``s``
apart first, dividing the jump by ``s``. A Linear layer sees the whole input.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tinyconv.ops.sizes import adaptive_pool_windows, pair

__all__ = ["LayerCost", "ReceptiveField", "Window", "layer_cost"]

Pair = tuple[Any, Any]


@dataclass(frozen=True)
class Window:
    """How a layer maps positions: ``kind`` is 'window', 'transpose' or 'global'."""

    kind: str
    kernel: tuple[int, int] = (1, 1)  # positions covered, dilation included
    stride: tuple[Fraction, Fraction] = (Fraction(1), Fraction(1))


@dataclass(frozen=True)
class LayerCost:
    """Multiply-adds of one call of a layer, and its window (None: positions unchanged)."""

    forward_macs: int = 0
    grad_input_macs: int = 0
    grad_weight_macs: int = 0
    window: Window | None = None


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _extent(kernel: Any, dilation: Any = 1) -> tuple[int, int]:
    kernel_h, kernel_w = pair(kernel, "kernel_size")
    dilation_h, dilation_w = pair(dilation, "dilation")
    return dilation_h * (kernel_h - 1) + 1, dilation_w * (kernel_w - 1) + 1


def _strides(stride: Any, kernel: Any) -> tuple[Fraction, Fraction]:
    # pooling layers store stride=None (or ()) to mean "the kernel size"
    value = kernel if stride is None or stride == () else stride
    stride_h, stride_w = pair(value, "stride")
    return Fraction(stride_h), Fraction(stride_w)


def _wants_grad(tensor: Any) -> bool:
    return tensor is not None and bool(getattr(tensor, "requires_grad", False))


def _with_grads(macs: int, layer: Any, input_needs_grad: bool) -> tuple[int, int, int]:
    """Forward MACs, and the same again for each gradient the engine will compute."""
    weight_needs_grad = _wants_grad(getattr(layer, "weight", None))
    return macs, macs if input_needs_grad else 0, macs if weight_needs_grad else 0


def _conv(layer, in_shape, out_shape, input_needs_grad) -> LayerCost:
    per_output = _numel(tuple(layer.weight.shape[1:]))  # (C_in / groups) * KH * KW
    macs = _with_grads(_numel(out_shape) * per_output, layer, input_needs_grad)
    window = Window(
        "window",
        _extent(layer.kernel_size, layer.dilation),
        _strides(layer.stride, layer.kernel_size),
    )
    return LayerCost(*macs, window)


def _conv_transpose(layer, in_shape, out_shape, input_needs_grad) -> LayerCost:
    per_input = _numel(tuple(layer.weight.shape[1:]))  # (C_out / groups) * KH * KW
    macs = _with_grads(_numel(in_shape) * per_input, layer, input_needs_grad)
    window = Window(
        "transpose",
        _extent(layer.kernel_size, layer.dilation),
        _strides(layer.stride, layer.kernel_size),
    )
    return LayerCost(*macs, window)


def _linear(layer, in_shape, out_shape, input_needs_grad) -> LayerCost:
    macs = _with_grads(_numel(out_shape) * layer.weight.shape[1], layer, input_needs_grad)
    return LayerCost(*macs, Window("global"))


def _batch_norm(layer, in_shape, out_shape, input_needs_grad) -> LayerCost:
    macs = _with_grads(_numel(out_shape), layer, input_needs_grad)
    return LayerCost(*macs)


def _max_pool(layer, in_shape, out_shape, input_needs_grad) -> LayerCost:
    window = Window(
        "window",
        _extent(layer.kernel_size, getattr(layer, "dilation", 1)),
        _strides(layer.stride, layer.kernel_size),
    )
    return LayerCost(window=window)


def _avg_pool(layer, in_shape, out_shape, input_needs_grad) -> LayerCost:
    macs = _numel(out_shape) * _numel(pair(layer.kernel_size, "kernel_size"))
    window = Window("window", _extent(layer.kernel_size), _strides(layer.stride, layer.kernel_size))
    return LayerCost(macs, macs if input_needs_grad else 0, 0, window)


def _adaptive_window(in_shape, out_shape) -> tuple[Window, int]:
    """The widest window and the mean stride per axis, and how many inputs all windows
    cover in one channel (a window of an adaptive pool is ``len_h * len_w``)."""
    kernels, strides, covered = [], [], 1
    global_pool = tuple(out_shape[-2:]) == (1, 1)  # one window: the whole input plane
    for size, out in zip(in_shape[-2:], out_shape[-2:]):
        starts, ends = adaptive_pool_windows(size, out)
        lengths = [end - start for start, end in zip(starts, ends)]
        kernels.append(max(lengths))
        strides.append(Fraction(size, out))
        covered *= sum(lengths)
    kind = "global" if global_pool else "window"
    return Window(kind, tuple(kernels), tuple(strides)), covered


def _adaptive_avg_pool(layer, in_shape, out_shape, input_needs_grad) -> LayerCost:
    window, covered = _adaptive_window(in_shape, out_shape)
    macs = _numel(out_shape[:-2]) * covered
    return LayerCost(macs, macs if input_needs_grad else 0, 0, window)


def _adaptive_max_pool(layer, in_shape, out_shape, input_needs_grad) -> LayerCost:
    return LayerCost(window=_adaptive_window(in_shape, out_shape)[0])


def _free(layer, in_shape, out_shape, input_needs_grad) -> LayerCost:
    return LayerCost()


# Checked in order against the classes of tinyconv.nn (a subclass takes its parent's rule).
_RULES = (
    ("ConvTranspose2d", _conv_transpose),
    ("Conv2d", _conv),
    ("Linear", _linear),
    ("BatchNorm2d", _batch_norm),
    ("MaxPool2d", _max_pool),
    ("AvgPool2d", _avg_pool),
    ("AdaptiveAvgPool2d", _adaptive_avg_pool),
    ("AdaptiveMaxPool2d", _adaptive_max_pool),
    ("ReLU", _free),
    ("Sigmoid", _free),
    ("Tanh", _free),
    ("Dropout", _free),
    ("Flatten", _free),
    ("Identity", _free),
)


def layer_cost(
    layer: Any, in_shape: tuple[int, ...], out_shape: tuple[int, ...], input_needs_grad: bool
) -> LayerCost | None:
    """The cost of one call of ``layer`` (None for a layer without a rule).

    Args:
        layer: a module of ``tinyconv.nn``.
        in_shape, out_shape: the shapes of its input and output in this call.
        input_needs_grad: whether backward will compute the gradient of its input.
    """
    import tinyconv.nn as nn  # noqa: PLC0415  (utils sits above nn; load it on use)

    for name, rule in _RULES:
        cls = getattr(nn, name, None)
        if cls is not None and isinstance(layer, cls):
            return rule(layer, tuple(in_shape), tuple(out_shape), input_needs_grad)
    return None


def _plain(value: Fraction) -> int | Fraction:
    return int(value) if value.denominator == 1 else value


class ReceptiveField:
    """The receptive field and jump on the input of the latest layer's output, per axis,
    followed layer by layer with ``step``.

    ``size`` None means unknown (a layer without a rule changed the spatial shape, or
    the input has no height and width); ``jump`` None means the output sees the whole
    input.
    """

    def __init__(self, input_size: tuple[int, ...]) -> None:
        self.whole = tuple(input_size[-2:]) if len(input_size) == 3 else None
        self.size: tuple[Fraction, ...] | None = (Fraction(1), Fraction(1)) if self.whole else None
        self.jump: tuple[Fraction, ...] | None = (Fraction(1), Fraction(1)) if self.whole else None

    def step(self, cost: LayerCost | None, in_shape: tuple, out_shape: tuple) -> None:
        """Move past one layer, given its cost (None: a layer without a rule)."""
        if self.size is None or self.jump is None:
            return  # unknown, or already the whole input: stays so
        if cost is None:
            if tuple(in_shape[-2:]) != tuple(out_shape[-2:]) or len(in_shape) != len(out_shape):
                self.size = None
            return
        window = cost.window
        if window is None:
            return
        if window.kind == "global":
            self.size, self.jump = tuple(Fraction(s) for s in self.whole), None
            return
        if window.kind == "transpose":  # spread the input `stride` apart, then a window
            self.jump = tuple(j / s for j, s in zip(self.jump, window.stride))
            self.size = tuple(
                r + (k - 1) * j for r, k, j in zip(self.size, window.kernel, self.jump)
            )
            return
        self.size = tuple(r + (k - 1) * j for r, k, j in zip(self.size, window.kernel, self.jump))
        self.jump = tuple(j * s for j, s in zip(self.jump, window.stride))

    def values(self) -> tuple[Pair | None, Pair | None]:
        """(field, jump) as (height, width) pairs of ints, or Fractions where not whole."""
        size = None if self.size is None else tuple(_plain(r) for r in self.size)
        jump = (
            None if self.jump is None or self.size is None else tuple(_plain(j) for j in self.jump)
        )
        return size, jump
