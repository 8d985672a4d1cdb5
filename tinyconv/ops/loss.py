"""Losses. Cross-entropy is one fused node: its gradient, softmax minus the target
distribution, is simpler and more accurate than the chain through log_softmax."""

from __future__ import annotations

from tinyconv.autograd.function import Function
from tinyconv.backend import get_array_module, put_along_axis
from tinyconv.ops.activation import log_softmax
from tinyconv.ops.broadcast import unbroadcast

__all__ = ["CrossEntropy", "MSELoss", "NLLLoss"]


def _reduce(losses, reduction):
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _spread(grad_out, shape, reduction, dtype):
    """The upstream gradient of each per-sample loss, for the given reduction."""
    xp = get_array_module(grad_out)
    if reduction == "none":
        return grad_out
    count = 1
    for size in shape:
        count *= size
    scale = grad_out / count if reduction == "mean" else grad_out
    return xp.broadcast_to(scale.astype(dtype, copy=False), shape)


def _pick(array, target):
    """array[n, target[n], ...] along the class axis 1."""
    xp = get_array_module(array)
    return xp.take_along_axis(array, xp.expand_dims(target, 1), axis=1).squeeze(1)


class CrossEntropy(Function):
    """Class logits (N, C, ...) and integer targets (N, ...)."""

    def forward(self, logits, target, *, reduction, label_smoothing):
        log_probs = log_softmax(logits, 1)
        losses = -_pick(log_probs, target)  # (N, ...)
        if label_smoothing:
            # the smoothed target puts label_smoothing / C on every class
            smooth = -log_probs.mean(axis=1)
            losses = (1 - label_smoothing) * losses + label_smoothing * smooth
        self.save_for_backward(log_probs, target)
        self.context = (reduction, label_smoothing, losses.shape)
        return _reduce(losses, reduction)

    def backward(self, grad_out, grad_target=None):
        log_probs, target = self.saved_arrays
        reduction, label_smoothing, loss_shape = self.context
        xp = get_array_module(log_probs)
        per_sample = _spread(grad_out, loss_shape, reduction, log_probs.dtype)
        # dL/dlogits = softmax - target distribution, per sample
        grad = xp.exp(log_probs)
        if label_smoothing:
            grad -= label_smoothing / log_probs.shape[1]
        onehot_share = xp.asarray(1 - label_smoothing, dtype=log_probs.dtype)
        hit = xp.expand_dims(target, 1)
        put_along_axis(grad, hit, xp.take_along_axis(grad, hit, axis=1) - onehot_share, axis=1)
        return grad * xp.expand_dims(per_sample, 1), None


class NLLLoss(Function):
    """Log-probabilities (N, C, ...) and integer targets (N, ...)."""

    def forward(self, log_probs, target, *, reduction):
        losses = -_pick(log_probs, target)
        self.context = (log_probs.shape, log_probs.dtype, target, reduction, losses.shape)
        return _reduce(losses, reduction)

    def backward(self, grad_out, grad_target=None):
        shape, dtype, target, reduction, loss_shape = self.context
        xp = get_array_module(grad_out)
        per_sample = _spread(grad_out, loss_shape, reduction, dtype)
        grad = xp.zeros(shape, dtype=dtype)
        put_along_axis(grad, xp.expand_dims(target, 1), -xp.expand_dims(per_sample, 1), axis=1)
        return grad, None


class MSELoss(Function):
    def forward(self, prediction, target, *, reduction):
        difference = prediction - target
        self.save_for_backward(difference)
        self.context = (getattr(prediction, "shape", ()), getattr(target, "shape", ()), reduction)
        return _reduce(difference * difference, reduction)

    def backward(self, grad_out):
        (difference,) = self.saved_arrays
        prediction_shape, target_shape, reduction = self.context
        need_prediction, need_target = self.needs_input_grad
        grad = 2 * difference * _spread(grad_out, difference.shape, reduction, difference.dtype)
        return (
            unbroadcast(grad, prediction_shape) if need_prediction else None,
            unbroadcast(-grad, target_shape) if need_target else None,
        )
