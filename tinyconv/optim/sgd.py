"""Stochastic gradient descent, with momentum, dampening, weight decay and Nesterov.

PyTorch's rule, with g the gradient, p the parameter, b the momentum buffer::

    g = g + weight_decay * p
    b = g                              on the first step
    b = momentum * b + (1 - dampening) * g   afterwards
    g = g + momentum * b   (nesterov)   or   g = b
    p = p - lr * g
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinyconv.backend import get_array_module
from tinyconv.optim.optimizer import Optimizer
from tinyconv.tensor import Tensor

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum).

    Args:
        params: the tensors to train, or dicts defining parameter groups.
        lr: the learning rate.
        momentum: the momentum factor (0: plain SGD).
        dampening: how much of each new gradient the momentum buffer leaves out.
        weight_decay: an L2 penalty, added to the gradient as ``weight_decay * p``.
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening = 0).
        maximize: ascend instead of descend.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update(self, param: Tensor, group: dict[str, Any]) -> None:
        value = param.data
        xp = get_array_module(value)
        direction = param.grad.data
        owned = False  # whether `direction` is a temporary this step may overwrite
        if group["maximize"]:
            direction, owned = -direction, True
        weight_decay = group["weight_decay"]
        if weight_decay:
            decayed = xp.multiply(value, weight_decay)
            decayed += direction
            direction, owned = decayed, True
        momentum = group["momentum"]
        if momentum:
            state = self.state.setdefault(param, {})
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = Tensor._wrap(xp.array(direction, copy=True), param.device)
                state["momentum_buffer"] = buffer
            else:
                buffer.data *= momentum
                dampening = group["dampening"]
                buffer.data += direction if dampening == 0 else (1 - dampening) * direction
            if group["nesterov"]:
                direction = direction + momentum * buffer.data
                owned = True
            else:
                direction, owned = buffer.data, False
        lr = group["lr"]
        if owned:
            direction *= lr
        else:
            direction = direction * lr
        value -= direction
        param._version.value += 1
