"""``Linear``: a fully connected layer, ``y = x W^T + b``."""

from __future__ import annotations

import math
from typing import Any

from tinyconv import creation
from tinyconv.nn import functional as F
from tinyconv.nn import init
from tinyconv.nn.module import Module
from tinyconv.nn.parameter import Parameter
from tinyconv.tensor import Tensor

__all__ = ["Identity", "Linear"]


class Linear(Module):
    """A fully connected layer: ``y = x W^T + b``.

    Args:
        in_features: the size of each input sample.
        out_features: the size of each output sample.
        bias: whether to learn an additive bias.
        device, dtype: where the parameters live and their dtype (default float32).

    Shape:
        input (*, in_features) -> output (*, out_features).
        weight (out_features, in_features), bias (out_features,).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Linear: {name}={value!r} must be a non-negative int")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(
            creation.empty(out_features, in_features, device=device, dtype=dtype)
        )
        if bias:
            self.bias = Parameter(creation.empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: W ~ U(+-1/sqrt(in_features)) (Kaiming uniform with
        a=sqrt(5)), b ~ U(+-1/sqrt(in_features))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for a removed layer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return input
