"""Weight initialisation, in place, by PyTorch's rules (``torch.nn.init``).

A weight of shape ``(out, in, *kernel)`` has ``fan_in = in * prod(kernel)`` inputs
feeding each output and ``fan_out = out * prod(kernel)``. Kaiming (He) initialisation
keeps the variance of activations (``fan_in``) or of gradients (``fan_out``) from
layer to layer through a ReLU: ``std = gain / sqrt(fan)``; Xavier (Glorot) balances
both: ``std = gain * sqrt(2 / (fan_in + fan_out))``. A uniform draw on ``[-b, b]``
has ``std = b / sqrt(3)``.

Every draw comes from the device's generator, so ``tc.manual_seed`` repeats it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from tinyconv import backend
from tinyconv.tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "fan_in_and_fan_out",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_LINEAR_GAINS = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' scale through ``nonlinearity``.

    Args:
        nonlinearity: 'linear', 'conv2d', 'sigmoid', 'tanh', 'relu', 'leaky_relu', 'selu'.
        param: the negative slope of 'leaky_relu' (default 0.01).
    """
    if nonlinearity in _LINEAR_GAINS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """``(in * receptive field, out * receptive field)`` of a weight shaped
    ``(out, in, *kernel)``; at least 2-D."""
    if tensor.ndim < 2:
        raise ValueError(
            "fan in and fan out can not be computed for a tensor with fewer than 2 "
            f"dimensions (got shape {tensor.shape})"
        )
    receptive_field = 1
    for size in tensor.shape[2:]:
        receptive_field *= size
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


# PyTorch's private spelling, which layer code copied from PyTorch calls
_calculate_fan_in_and_fan_out = fan_in_and_fan_out


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode={mode!r} is not supported; expected 'fan_in' or 'fan_out'")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor: Tensor, array: Any, name: str) -> Tensor:
    """Write ``array`` into the tensor's own array (identity and memory kept)."""
    _check_target(tensor, name)
    if array is None:  # NumPy would write NaN
        raise TypeError(f"{name}: the value to fill with is None, not a number")
    tensor.data[...] = array
    tensor._version.value += 1
    return tensor


def _check_target(tensor: Any, name: str) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a Tensor to fill, got {type(tensor).__name__}")


def _random_target(tensor: Tensor, name: str) -> None:
    # a continuous distribution's draws would be truncated in an integer tensor
    _check_target(tensor, name)
    if tensor.data.dtype.kind != "f":
        raise TypeError(f"{name}: the tensor's dtype {tensor.dtype.__name__} is not floating")


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with draws from U(a, b)."""
    _random_target(tensor, "uniform_")
    if not a <= b:
        raise ValueError(f"uniform_: expects a <= b, but found a={a} > b={b}")
    if tensor.data.size:
        draws = backend.random_generator(tensor.device).random(
            tensor.shape, dtype=backend.draw_dtype(tensor.data.dtype)
        )
        draws *= b - a
        draws += a
        _fill(tensor, draws, "uniform_")
    return tensor


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with draws from N(mean, std^2)."""
    _random_target(tensor, "normal_")
    if not std >= 0:
        raise ValueError(f"normal_: expects std >= 0, but found std={std}")
    if tensor.data.size:
        draws = backend.random_generator(tensor.device).standard_normal(
            tensor.shape, dtype=backend.draw_dtype(tensor.data.dtype)
        )
        draws *= std
        draws += mean
        _fill(tensor, draws, "normal_")
    return tensor


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    return _fill(tensor, val, "constant_")


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0, "zeros_")


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1, "ones_")


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str, name: str) -> float | None:
    _random_target(tensor, name)
    if 0 in tensor.shape:
        warnings.warn("initializing a zero-element tensor is a no-op", stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """He uniform: U(-b, b), b = gain * sqrt(3 / fan).

    Args:
        a: the negative slope of the leaky ReLU that follows (0 for ReLU).
        mode: 'fan_in' keeps forward activations' scale, 'fan_out' gradients'.
        nonlinearity: 'relu' or 'leaky_relu' (the default, with slope ``a``).
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """He normal: N(0, std^2), std = gain / sqrt(fan). Arguments as ``kaiming_uniform_``."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std)
