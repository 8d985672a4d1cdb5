"""Matrix products: ``matmul`` (batched, NumPy's rules) and the fused ``linear``."""

from __future__ import annotations

from tinyconv.autograd.function import Function
from tinyconv.backend import get_array_module
from tinyconv.ops.broadcast import unbroadcast

__all__ = ["Linear", "MatMul"]


class MatMul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, grad_out):
        a, b = self.saved_arrays
        xp = get_array_module(grad_out)
        need_a, need_b = self.needs_input_grad
        # A 1-D operand is a row (left) or a column (right) whose extra axis the
        # product dropped; put it back so both gradients are plain matrix products.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        grad2 = grad_out
        if b.ndim == 1:
            grad2 = xp.expand_dims(grad2, -1)
        if a.ndim == 1:
            grad2 = xp.expand_dims(grad2, -2)
        grad_a = grad_b = None
        if need_a:
            # dL/dA = dL/dY @ B^T, summed over any batch axes A was broadcast along
            grad_a = unbroadcast(grad2 @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if need_b:
            grad_b = unbroadcast(xp.swapaxes(a2, -1, -2) @ grad2, b2.shape).reshape(b.shape)
        return grad_a, grad_b


class Linear(Function):
    """y = x W^T + b in one node (as nn.Linear computes it)."""

    differentiable_backward = True

    def forward(self, x, weight, bias):  # (..., in) (out, in) (out,) -> (..., out)
        self.save_for_backward(x, weight)
        out = x @ weight.T
        if bias is not None:
            out += bias
        return out

    def backward(self, grad_out):
        x, weight = self.saved_arrays
        need_x, need_weight, need_bias = self.needs_input_grad
        grad_x = grad_weight = grad_bias = None
        if need_x:
            grad_x = grad_out @ weight  # (..., out) @ (out, in) -> (..., in)
        if need_weight or need_bias:
            flat_grad = grad_out.reshape(-1, grad_out.shape[-1])  # (rows, out)
            if need_weight:
                grad_weight = flat_grad.T @ x.reshape(-1, x.shape[-1])  # (out, in)
            if need_bias:
                grad_bias = flat_grad.sum(axis=0)
        return grad_x, grad_weight, grad_bias
