"""Indexing and joining: ``x[index]``, cat, stack, where."""

from __future__ import annotations

from typing import Any

from tinyconv.autograd.function import Function
from tinyconv.backend import get_array_module, scatter_add
from tinyconv.ops.broadcast import unbroadcast

__all__ = ["Cat", "GetItem", "Stack", "Where", "is_advanced_index"]


def is_advanced_index(index: Any) -> bool:
    """True when ``index`` holds an integer or boolean array (NumPy's advanced indexing)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(part, "shape") or isinstance(part, list) for part in parts)


class GetItem(Function):
    def forward(self, x, *, index):
        self.context = (x.shape, x.dtype, index)
        taken = x[index]
        if not isinstance(taken, type(x)):
            # NumPy copies a single element out as a scalar; with an Ellipsis it is a
            # 0-d view, as PyTorch's x[i, j] is, so that writing into it writes into x
            taken = x[(*(index if isinstance(index, tuple) else (index,)), Ellipsis)]
        return taken

    def backward(self, grad_out):
        shape, dtype, index = self.context
        xp = get_array_module(grad_out)
        grad = xp.zeros(shape, dtype=dtype)
        if is_advanced_index(index):
            # an element picked twice gets both gradients: add, don't assign
            scatter_add(grad, index, grad_out)
        else:
            grad[index] = grad_out
        return grad


class Cat(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        self.sizes = [array.shape[dim] for array in arrays]
        return get_array_module(arrays[0]).concatenate(arrays, axis=dim)

    def backward(self, grad_out):
        grads = []
        start = 0
        for size, needed in zip(self.sizes, self.needs_input_grad):
            piece = [slice(None)] * grad_out.ndim
            piece[self.dim] = slice(start, start + size)
            grads.append(grad_out[tuple(piece)] if needed else None)
            start += size
        return tuple(grads)


class Stack(Function):
    def forward(self, *arrays, dim):
        self.dim = dim
        return get_array_module(arrays[0]).stack(arrays, axis=dim)

    def backward(self, grad_out):
        xp = get_array_module(grad_out)
        return tuple(
            xp.take(grad_out, position, axis=self.dim) if needed else None
            for position, needed in enumerate(self.needs_input_grad)
        )


class Where(Function):
    def forward(self, condition, a, b):
        xp = get_array_module(condition)
        self.context = (condition, getattr(a, "shape", ()), getattr(b, "shape", ()))
        return xp.where(condition, a, b)

    def backward(self, grad_out):
        condition, a_shape, b_shape = self.context
        _, need_a, need_b = self.needs_input_grad
        return (
            None,
            unbroadcast(grad_out * condition, a_shape) if need_a else None,
            unbroadcast(grad_out * ~condition, b_shape) if need_b else None,
        )
