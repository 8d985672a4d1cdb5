"""Ops that move elements around without changing them: reshape, permute, expand."""

from __future__ import annotations

from tinyconv.autograd.function import Function
from tinyconv.backend import get_array_module
from tinyconv.ops.broadcast import unbroadcast

__all__ = ["Expand", "Permute", "Reshape"]


class Reshape(Function):
    differentiable_backward = True

    def forward(self, x, *, shape):
        self.input_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad_out):
        return grad_out.reshape(self.input_shape)


class Permute(Function):
    def forward(self, x, *, dims):
        self.dims = dims
        return x.transpose(dims)

    def backward(self, grad_out):
        # the inverse permutation puts every axis back where it came from
        inverse = [0] * len(self.dims)
        for position, axis in enumerate(self.dims):
            inverse[axis] = position
        return grad_out.transpose(inverse)


class Expand(Function):
    def forward(self, x, *, shape):
        self.input_shape = x.shape
        return get_array_module(x).broadcast_to(x, shape)

    def backward(self, grad_out):
        return unbroadcast(grad_out, self.input_shape)
