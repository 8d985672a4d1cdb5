"""Batch normalization, one node per call, its backward written out.

Notation: x is (N, C, *); every statistic is per channel c, over the m = N * prod(*)
values of that channel.

    mean = sum(x) / m            var = sum((x - mean)^2) / m   (biased: it normalizes)
    invstd = 1 / sqrt(var + eps)
    x_hat = (x - mean) * invstd
    y = weight * x_hat + bias = x * alpha + beta,  alpha = weight * invstd,
                                                   beta = bias - mean * alpha

With the batch's statistics (training), mean and var depend on every x of the
channel, which gives the backward (sums over the channel's m values, g = dL/dy):

    dL/dbias   = sum(g)
    dL/dweight = sum(g * x_hat)
    dL/dx      = weight * invstd * (g - dL/dbias / m - x_hat * dL/dweight / m)

With fixed running statistics (evaluation) y is affine in x: dL/dx = g * alpha.
"""

from __future__ import annotations

from tinyconv.autograd.function import Function
from tinyconv.backend import get_array_module

__all__ = ["BatchNorm", "BatchNormInference"]


def _axes(x) -> tuple[int, ...]:
    """Every axis but the channel axis 1."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(values, x):
    """A (C,) array shaped to broadcast against x: (1, C, 1, ...)."""
    return values.reshape((1, -1) + (1,) * (x.ndim - 2))


def _alpha_beta(weight, bias, mean, invstd):
    alpha = invstd if weight is None else weight * invstd
    beta = -mean * alpha if bias is None else bias - mean * alpha
    return alpha, beta


def _weight_and_bias_grads(grad_out, x_hat, axes, needs_weight, needs_bias):
    grad_weight = (grad_out * x_hat).sum(axis=axes) if needs_weight else None
    grad_bias = grad_out.sum(axis=axes) if needs_bias else None
    return grad_weight, grad_bias


class BatchNorm(Function):
    """Normalize with the batch's own statistics; update running ones in place if given."""

    def forward(self, x, weight, bias, *, eps, momentum=0.1, running_mean=None, running_var=None):
        xp = get_array_module(x)
        axes = _axes(x)
        count = x.size // x.shape[1]
        mean = x.mean(axis=axes)
        centered = x - _per_channel(mean, x)
        centered *= centered
        var = centered.mean(axis=axes)
        del centered
        invstd = 1 / xp.sqrt(var + eps)
        if running_mean is not None:
            # the running variance is unbiased (m / (m - 1)), as in PyTorch
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += (momentum * count / (count - 1)) * var
        alpha, beta = _alpha_beta(weight, bias, mean, invstd)
        out = x * _per_channel(alpha, x)
        out += _per_channel(beta, x)
        self.save_for_backward(x, weight, mean, invstd)
        return out

    def backward(self, grad_out):
        x, weight, mean, invstd = self.saved_arrays
        need_x, need_weight, need_bias = self.needs_input_grad
        axes = _axes(x)
        count = x.size // x.shape[1]
        x_hat = x - _per_channel(mean, x)
        x_hat *= _per_channel(invstd, x)
        # dL/dx needs both sums, even when weight and bias take no gradient
        grad_weight, grad_bias = _weight_and_bias_grads(
            grad_out, x_hat, axes, need_weight or need_x, need_bias or need_x
        )
        grad_x = None
        if need_x:
            scale = invstd if weight is None else weight * invstd
            x_hat *= _per_channel(grad_weight / count, x)
            grad_x = grad_out - _per_channel(grad_bias / count, x)
            grad_x -= x_hat
            grad_x *= _per_channel(scale, x)
        return (
            grad_x,
            grad_weight if need_weight else None,
            grad_bias if need_bias else None,
        )


class BatchNormInference(Function):
    """Normalize with fixed running statistics: an affine map per channel."""

    def forward(self, x, weight, bias, running_mean, running_var, *, eps):
        xp = get_array_module(x)
        invstd = 1 / xp.sqrt(running_var + eps)
        alpha, beta = _alpha_beta(weight, bias, running_mean, invstd)
        out = x * _per_channel(alpha, x)
        out += _per_channel(beta, x)
        self.save_for_backward(x, running_mean, invstd, alpha)
        return out

    def backward(self, grad_out):
        x, running_mean, invstd, alpha = self.saved_arrays
        need_x, need_weight, need_bias = self.needs_input_grad[:3]
        axes = _axes(x)
        grad_x = grad_out * _per_channel(alpha, x) if need_x else None
        x_hat = None
        if need_weight:
            x_hat = x - _per_channel(running_mean, x)
            x_hat *= _per_channel(invstd, x)
        grad_weight, grad_bias = _weight_and_bias_grads(
            grad_out, x_hat, axes, need_weight, need_bias
        )
        return grad_x, grad_weight, grad_bias, None, None
