"""``tinyconv.nn.functional``: PyTorch-signature functions that check their arguments
at the door and call one op each. Convolution and pooling live in ``conv_functional``
and are re-exported here."""

from __future__ import annotations

from typing import Any

from tinyconv import backend, dtypes
from tinyconv.nn.conv_functional import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool2d,
    conv2d,
    conv2d_output_shape,
    conv_output_size,
    conv_transpose2d,
    conv_transpose2d_output_shape,
    conv_transpose_output_size,
    max_pool2d,
    pool2d_output_shape,
    pool_output_size,
)
from tinyconv.ops import elementwise, linalg, loss
from tinyconv.ops.padding import Pad
from tinyconv.tensor import Tensor

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "conv2d",
    "conv2d_output_shape",
    "conv_output_size",
    "conv_transpose2d",
    "conv_transpose2d_output_shape",
    "conv_transpose_output_size",
    "cross_entropy",
    "dropout",
    "flatten",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "pad",
    "pool2d_output_shape",
    "pool_output_size",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_tensor(value: Any, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    return value


def _check_probability(p: Any, name: str) -> None:
    """Raise unless ``p`` is a number in [0, 1] (``name`` says whose argument it is)."""
    if not _is_fraction(p):
        raise ValueError(f"{name}: p={p!r} must be a number between 0 and 1")


def _is_fraction(value: Any) -> bool:
    # a real number in [0, 1]; not a bool, a string or NaN
    return dtypes.is_real(value) and 0 <= value <= 1


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """y = x W^T + b.

    Shape:
        input (*, in_features), weight (out_features, in_features), bias (out_features,)
        -> (*, out_features)
    """
    _check_tensor(input, "input")
    _check_tensor(weight, "weight")
    if weight.ndim != 2:
        raise ValueError(
            f"linear: weight must be 2-D (out_features, in_features), got {weight.shape}"
        )
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has shape {input.shape}, whose last dimension must equal "
            f"weight's in_features={weight.shape[1]}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    for name, other in (("weight", weight), ("bias", bias)):
        if other is not None and other.data.dtype != input.data.dtype:
            raise RuntimeError(
                f"linear: input is {input.data.dtype.name} but {name} is "
                f"{other.data.dtype.name}; convert one with .to(dtype)"
            )
    return linalg.Linear.apply(input, weight, bias)


def relu(input: Tensor) -> Tensor:  # noqa: A002
    return _check_tensor(input, "input").relu()


def sigmoid(input: Tensor) -> Tensor:  # noqa: A002
    return _check_tensor(input, "input").sigmoid()


def tanh(input: Tensor) -> Tensor:  # noqa: A002
    return _check_tensor(input, "input").tanh()


def softmax(input: Tensor, dim: int) -> Tensor:  # noqa: A002
    return _check_tensor(input, "input").softmax(dim)


def log_softmax(input: Tensor, dim: int) -> Tensor:  # noqa: A002
    return _check_tensor(input, "input").log_softmax(dim)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:  # noqa: A002
    return _check_tensor(input, "input").flatten(start_dim, end_dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:  # noqa: A002
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (training only)."""
    _check_tensor(input, "input")
    _check_probability(p, "dropout")
    if not training or p == 0:
        return input
    if input.data.dtype.kind != "f":
        raise TypeError(f"dropout: input of dtype {input.dtype.__name__} must be floating")
    xp = backend.get_array_module(input.data)
    if p == 1:
        return input * xp.zeros((), dtype=input.data.dtype)
    generator = backend.random_generator(input.device)
    draws = generator.random(input.shape, dtype=backend.draw_dtype(input.data.dtype))
    # the mask carries the 1/(1-p) scale, so the expected activation is unchanged
    mask = (draws >= p).astype(input.data.dtype) / input.data.dtype.type(1 - p)
    return elementwise.Mul.apply(input, mask)


def pad(input: Tensor, pad: tuple[int, ...], value: float = 0.0) -> Tensor:  # noqa: A002
    """Pad the last dimensions: ``pad=(left, right, top, bottom, ...)``, last dimension first.

    Negative amounts crop, as in PyTorch.
    """
    _check_tensor(input, "input")
    if (
        not isinstance(pad, (tuple, list))
        or len(pad) % 2
        or not all(isinstance(amount, int) for amount in pad)
    ):
        raise ValueError(f"pad: pad={pad!r} must be a tuple of an even number of ints")
    if not dtypes.is_real(value):
        raise TypeError(f"pad: value={value!r} must be a number")
    if len(pad) // 2 > input.ndim:
        raise ValueError(
            f"pad: pad={tuple(pad)} pads {len(pad) // 2} dimensions of a {input.ndim}-D input"
        )
    widths = [(0, 0)] * input.ndim
    for position in range(len(pad) // 2):
        axis = input.ndim - 1 - position
        before, after = pad[2 * position], pad[2 * position + 1]
        if input.shape[axis] + before + after < 0:
            raise ValueError(f"pad: pad={tuple(pad)} crops dimension {axis} below zero")
        widths[axis] = (before, after)
    return Pad.apply(input, widths=tuple(widths), value=value)


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not valid; expected one of {_REDUCTIONS}")


def _check_class_targets(input: Tensor, target: Tensor, name: str) -> None:  # noqa: A002
    _check_tensor(input, "input")
    _check_tensor(target, "target")
    if input.data.dtype.kind != "f":
        raise TypeError(f"{name}: input must be floating point, got {input.data.dtype.name}")
    if target.data.dtype.kind not in "iu":
        raise TypeError(
            f"{name}: target must hold integer class indices (int64), got {target.data.dtype.name}"
        )
    if input.ndim == 0:
        raise ValueError(f"{name}: input must have a class dimension, got a 0-d tensor")
    expected = input.shape[:1] + input.shape[2:] if input.ndim >= 2 else ()
    if target.shape != expected:
        raise ValueError(
            f"{name}: target has shape {target.shape}, expected {expected} for input of "
            f"shape {input.shape} (classes along dimension {1 if input.ndim >= 2 else 0})"
        )
    if input.device != target.device:
        raise RuntimeError(f"{name}: input is on {input.device!r} but target on {target.device!r}")
    classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    if target.data.size:
        low, high = int(target.data.min()), int(target.data.max())
        if low < 0 or high >= classes:
            bad = low if low < 0 else high
            raise ValueError(f"{name}: target {bad} is out of bounds for {classes} classes")


def _batched(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor, bool]:  # noqa: A002
    """A single sample (C,) with a 0-d target becomes a batch of one."""
    if input.ndim == 1:
        return input.unsqueeze(0), target.reshape(1), True
    return input, target, False


def cross_entropy(
    input: Tensor,  # noqa: A002
    target: Tensor,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between class logits and integer targets, stable for any logits.

    Shape:
        input (N, C) or (N, C, d1, ...) or (C,); target (N,) or (N, d1, ...) or ().
    """
    _check_class_targets(input, target, "cross_entropy")
    _check_reduction(reduction)
    if not _is_fraction(label_smoothing):
        raise ValueError(f"cross_entropy: label_smoothing={label_smoothing!r} must be in [0, 1]")
    logits, target, single = _batched(input, target)
    out = loss.CrossEntropy.apply(
        logits, target.long(), reduction=reduction, label_smoothing=float(label_smoothing)
    )
    return out.reshape(()) if single and reduction == "none" else out


def nll_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Negative log-likelihood of log-probabilities at integer targets."""
    _check_class_targets(input, target, "nll_loss")
    _check_reduction(reduction)
    log_probs, target, single = _batched(input, target)
    out = loss.NLLLoss.apply(log_probs, target.long(), reduction=reduction)
    return out.reshape(()) if single and reduction == "none" else out


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error."""
    _check_tensor(input, "input")
    _check_tensor(target, "target")
    _check_reduction(reduction)
    if input.data.dtype != target.data.dtype:
        raise RuntimeError(
            f"mse_loss: input is {input.data.dtype.name} but target is {target.data.dtype.name}"
        )
    return loss.MSELoss.apply(input, target, reduction=reduction)
