"""Undoing broadcasting: the one place a gradient is summed back to its input's shape."""

from __future__ import annotations

from typing import Any

__all__ = ["unbroadcast"]


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``.

    If ``y = f(a, b)`` broadcast ``a`` along an axis, every element of ``a`` fed every
    position along it, so dL/da is the sum of dL/dy over that axis.
    """
    if grad.shape == shape:
        return grad
    leading = grad.ndim - len(shape)
    axes = tuple(range(leading)) + tuple(
        leading + axis
        for axis, size in enumerate(shape)
        if size == 1 and grad.shape[leading + axis] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
