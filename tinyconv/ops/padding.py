"""Constant padding (negative widths crop), the op behind ``F.pad``."""

from __future__ import annotations

from tinyconv.autograd.function import Function
from tinyconv.backend import get_array_module

__all__ = ["Pad"]


class Pad(Function):
    def forward(self, x, *, widths, value):
        xp = get_array_module(x)
        self.input_shape = x.shape
        # crop first (negative widths), then pad what is left
        crop = tuple(
            slice(max(-before, 0), size - max(-after, 0))
            for size, (before, after) in zip(x.shape, widths)
        )
        grow = tuple((max(before, 0), max(after, 0)) for before, after in widths)
        self.context = (crop, grow)
        return xp.pad(x[crop], grow, mode="constant", constant_values=value)

    def backward(self, grad_out):
        crop, grow = self.context
        xp = get_array_module(grad_out)
        inner = tuple(
            slice(before, size - after) for size, (before, after) in zip(grad_out.shape, grow)
        )
        grad = xp.zeros(self.input_shape, dtype=grad_out.dtype)
        grad[crop] = grad_out[inner]
        return grad
