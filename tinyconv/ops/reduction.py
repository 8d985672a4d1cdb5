"""Reductions: sum, mean, max and min over all elements or along dimensions."""

from __future__ import annotations

from tinyconv.autograd.function import Function
from tinyconv.backend import get_array_module, put_along_axis

__all__ = ["Max", "MaxAlong", "Mean", "Sum"]


def _expand_back(grad, input_shape, axes, keepdim):
    """Broadcast a reduced gradient back over the axes it was reduced along.

    ``grad`` is an array, or a Tensor when the gradient is being recorded."""
    if not keepdim:
        reduced = range(len(input_shape)) if axes is None else axes
        grad = grad.reshape(
            tuple(1 if axis in reduced else size for axis, size in enumerate(input_shape))
        )
    if hasattr(grad, "expand"):  # a Tensor
        return grad.expand(input_shape)
    return get_array_module(grad).broadcast_to(grad, input_shape)


class Sum(Function):
    differentiable_backward = True

    def forward(self, x, *, axes, keepdim):
        self.context = (x.shape, axes, keepdim)
        return x.sum(axis=axes, keepdims=keepdim)

    def backward(self, grad_out):
        # every summed element contributes with weight 1
        return _expand_back(grad_out, *self.context)


class Mean(Function):
    differentiable_backward = True

    def forward(self, x, *, axes, keepdim):
        self.context = (x.shape, axes, keepdim)
        out = x.mean(axis=axes, keepdims=keepdim)
        self.count = x.size // max(out.size, 1) if x.size else 0
        return out

    def backward(self, grad_out):
        return _expand_back(grad_out / self.count, *self.context)


class MaxAlong(Function):
    """max/min along one dim, returning (values, indices); the index's element takes
    the whole gradient (the first extreme, as PyTorch returns it)."""

    def forward(self, x, *, dim, keepdim, smallest):
        xp = get_array_module(x)
        indices = x.argmin(axis=dim) if smallest else x.argmax(axis=dim)
        indices = xp.expand_dims(indices, dim)
        values = xp.take_along_axis(x, indices, axis=dim)
        self.context = (x.shape, x.dtype, dim, indices)
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        return values, indices.astype(xp.int64, copy=False)

    def backward(self, grad_values, grad_indices=None):
        shape, dtype, dim, indices = self.context
        xp = get_array_module(grad_values)
        grad = xp.zeros(shape, dtype=dtype)
        if grad_values.ndim != len(shape):
            grad_values = xp.expand_dims(grad_values, dim)
        put_along_axis(grad, indices, grad_values, axis=dim)
        return grad


class Max(Function):
    """max/min of all elements; ties share the gradient evenly, as in PyTorch."""

    def forward(self, x, *, smallest):
        out = x.min() if smallest else x.max()
        self.save_for_backward(x, out)
        return out

    def backward(self, grad_out):
        x, out = self.saved_arrays
        # NaN == NaN is False: a NaN result takes the gradient at the NaNs
        hits = (x == out) | (get_array_module(x).isnan(x) & (out != out))
        return hits * (grad_out / int(hits.sum()))  # a Python int keeps the float dtype
