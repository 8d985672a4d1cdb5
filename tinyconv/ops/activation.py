"""Activations and the softmax family."""

from __future__ import annotations

from tinyconv.autograd.function import Function
from tinyconv.backend import get_array_module

__all__ = ["LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Tanh"]


class ReLU(Function):
    differentiable_backward = True

    def forward(self, x):
        out = get_array_module(x).maximum(x, 0)
        self.save_for_backward(out)
        return out

    def backward(self, grad_out):
        (out,) = self.saved_arrays
        return grad_out * (out > 0)


class Sigmoid(Function):
    differentiable_backward = True

    def forward(self, x):
        xp = get_array_module(x)
        # exp(-|x|) never overflows; the two branches are the same function
        decay = xp.exp(-abs(x))
        out = xp.where(x >= 0, 1 / (1 + decay), decay / (1 + decay))
        self.save_for_backward(out)
        return out

    def backward(self, grad_out):
        (out,) = self.saved_arrays
        return grad_out * out * (1 - out)


class Tanh(Function):
    differentiable_backward = True

    def forward(self, x):
        out = get_array_module(x).tanh(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad_out):
        (out,) = self.saved_arrays
        return grad_out * (1 - out * out)


class Softmax(Function):
    differentiable_backward = True

    def forward(self, x, *, dim):
        xp = get_array_module(x)
        # shifting by the maximum leaves softmax unchanged and keeps exp from overflowing
        if x.shape[dim] == 0:  # nothing to normalise: empty, as in PyTorch
            out = x.copy()
        else:
            exps = xp.exp(x - x.max(axis=dim, keepdims=True))
            out = exps / exps.sum(axis=dim, keepdims=True)
        self.save_for_backward(out)
        self.dim = dim
        return out

    def backward(self, grad_out):
        (out,) = self.saved_arrays
        # dL/dx = y * (g - <g, y>): the Jacobian diag(y) - y y^T applied to g
        return out * (grad_out - (grad_out * out).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    def forward(self, x, *, dim):
        out = log_softmax(x, dim)
        self.save_for_backward(out)
        self.dim = dim
        return out

    def backward(self, grad_out):
        (out,) = self.saved_arrays
        xp = get_array_module(out)
        # d log_softmax: g - softmax * sum(g)
        return grad_out - xp.exp(out) * grad_out.sum(axis=self.dim, keepdims=True)


def log_softmax(x, dim):
    """log(softmax(x)) on an array, stable for any logits: x - max - log(sum(exp(x - max)))."""
    xp = get_array_module(x)
    if x.shape[dim] == 0:  # nothing to normalise: empty, as in PyTorch
        return x.copy()
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
