"""Batch normalization layers: ``BatchNorm2d`` (and ``BatchNorm1d``), after Ioffe & Szegedy.

In training, each channel is normalized with the batch's mean and (biased) variance,
and running estimates are updated: ``running = (1 - momentum) * running + momentum *
batch`` (the running variance unbiased). In evaluation the running estimates are
used, so a single sample gives the same answer whatever batch it comes in.
"""

from __future__ import annotations

from typing import Any

from tinyconv import creation, dtypes
from tinyconv.nn import init
from tinyconv.nn.module import Module
from tinyconv.nn.parameter import Parameter
from tinyconv.ops.batchnorm import BatchNorm, BatchNormInference
from tinyconv.tensor import Tensor

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share; they differ in the input ranks they accept."""

    ranks: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"num_features={num_features!r} must be a positive int")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(creation.empty(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = Parameter(creation.empty(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer(
                "running_mean", creation.zeros(num_features, device=device, dtype=dtype)
            )
            self.register_buffer(
                "running_var", creation.ones(num_features, device=device, dtype=dtype)
            )
            self.register_buffer(
                "num_batches_tracked", creation.tensor(0, dtype=dtypes.int64, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def _check_input(self, input: Tensor) -> None:  # noqa: A002
        if not isinstance(input, Tensor):
            raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
        name = type(self).__name__
        if input.ndim not in self.ranks:
            expected = " or ".join(f"{rank}D" for rank in self.ranks)
            raise ValueError(f"{name}: expected {expected} input (got {input.ndim}D input)")
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{name}: input has {input.shape[1]} channels (shape {input.shape}), "
                f"expected num_features={self.num_features}"
            )
        if input.data.dtype.kind != "f":
            raise TypeError(f"{name}: input must be floating point, got {input.data.dtype.name}")
        for other_name in ("weight", "running_mean"):
            other = getattr(self, other_name)
            if other is not None and other.data.dtype != input.data.dtype:
                raise RuntimeError(
                    f"{name}: input is {input.data.dtype.name} but {other_name} is "
                    f"{other.data.dtype.name}; convert one with .to(dtype)"
                )
            if other is not None and other.device != input.device:
                raise RuntimeError(
                    f"{name}: input is on {input.device!r} but {other_name} on {other.device!r}"
                )

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        self._check_input(input)
        use_batch_stats = self.training or self.running_mean is None
        if not use_batch_stats:
            return BatchNormInference.apply(
                input, self.weight, self.bias, self.running_mean, self.running_var, eps=self.eps
            )
        if input.numel() == input.shape[1]:  # one value per channel has no variance
            raise ValueError(
                f"{type(self).__name__}: expected more than 1 value per channel when "
                f"using batch statistics (training, or no running statistics), got input "
                f"size {input.shape}"
            )
        update = self.training and self.track_running_stats
        momentum = 0.0 if self.momentum is None else self.momentum
        if update:
            self.num_batches_tracked.data += 1
            self.num_batches_tracked._version.value += 1
            if self.momentum is None:  # a cumulative average over all batches so far
                momentum = 1.0 / float(self.num_batches_tracked.data)
        out = BatchNorm.apply(
            input,
            self.weight,
            self.bias,
            eps=self.eps,
            momentum=momentum,
            running_mean=self.running_mean.data if update else None,
            running_var=self.running_var.data if update else None,
        )
        if update:
            self.running_mean._version.value += 1
            self.running_var._version.value += 1
        return out

    def _load_own_state(
        self, state_dict: dict, prefix: str, used: set, missing: list, errors: list
    ) -> None:
        # files written before num_batches_tracked existed lack it; PyTorch loads them too
        key = prefix + "num_batches_tracked"
        if self.num_batches_tracked is not None and key not in state_dict:
            state_dict = {**state_dict, key: self.num_batches_tracked.detach()}
        super()._load_own_state(state_dict, prefix, used, missing, errors)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm2d(_BatchNorm):
    """Batch normalization over the channels of images.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance before its square root.
        momentum: the weight of each new batch in the running statistics (None: a
            cumulative average over all batches).
        affine: learn a per-channel scale (weight) and shift (bias).
        bias: with ``affine``, learn the shift too (False: a scale only).
        track_running_stats: keep running statistics for evaluation; without them the
            batch's statistics are used in evaluation too.

    Shape:
        (N, C, H, W) -> (N, C, H, W).
    """

    ranks = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch normalization over features (N, C) or channels of sequences (N, C, L).

    Args: as ``BatchNorm2d``.

    Shape:
        (N, C) or (N, C, L) -> the same shape.
    """

    ranks = (2, 3)
