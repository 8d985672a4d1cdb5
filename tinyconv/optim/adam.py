"""Adam and AdamW (Kingma & Ba; Loshchilov & Hutter), by PyTorch's rule.

With g the gradient, p the parameter and t the step count (from 1)::

    g = g + weight_decay * p                 (Adam: L2 penalty in the gradient)
    p = p * (1 - lr * weight_decay)          (AdamW: decay decoupled from the gradient)
    m = m + (1 - beta1) * (g - m)            the running mean of g
    v = beta2 * v + (1 - beta2) * g * g      the running mean of g^2
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The divisions by 1 - beta^t undo the bias of m and v towards their zero start.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinyconv.backend import get_array_module
from tinyconv.optim.optimizer import Optimizer
from tinyconv.tensor import Tensor

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam: per-parameter step sizes from running moments of the gradient.

    Args:
        params: the tensors to train, or dicts defining parameter groups.
        lr: the learning rate.
        betas: decay rates of the running mean of g and of g^2.
        eps: added to the denominator for numerical stability.
        weight_decay: an L2 penalty added to the gradient (see ``AdamW`` for decoupled).
        amsgrad: normalize by the largest v seen so far (Reddi et al.).
        maximize: ascend instead of descend.
        decoupled_weight_decay: shrink the parameters directly, as AdamW does.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        # written `not 0 <= x` so that NaN is refused too
        if not 0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Invalid betas: {betas!r}, expected a pair (beta1, beta2)")
        for position, beta in enumerate(betas):
            if not 0 <= beta < 1:
                raise ValueError(f"Invalid beta parameter at index {position}: {beta}")
        if not 0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _new_state(self, param: Tensor, amsgrad: bool) -> dict[str, Any]:
        xp = get_array_module(param.data)
        state = {
            "step": 0,
            "exp_avg": Tensor._wrap(xp.zeros_like(param.data), param.device),
            "exp_avg_sq": Tensor._wrap(xp.zeros_like(param.data), param.device),
        }
        if amsgrad:
            state["max_exp_avg_sq"] = Tensor._wrap(xp.zeros_like(param.data), param.device)
        return state

    def _update(self, param: Tensor, group: dict[str, Any]) -> None:
        value = param.data
        xp = get_array_module(value)
        grad = param.grad.data
        if group["maximize"]:
            grad = -grad
        state = self.state.get(param)
        if state is None:
            state = self.state[param] = self._new_state(param, group["amsgrad"])
        state["step"] += 1
        step = state["step"]
        lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        if weight_decay:
            if group["decoupled_weight_decay"]:
                value *= 1 - lr * weight_decay
            else:
                decayed = xp.multiply(value, weight_decay)
                decayed += grad
                grad = decayed
        exp_avg, exp_avg_sq = state["exp_avg"].data, state["exp_avg_sq"].data
        # one scratch array serves every intermediate below (an array even for a 0-d
        # parameter, where NumPy's subtract alone would return a scalar)
        scratch = xp.subtract(grad, exp_avg, out=xp.empty_like(exp_avg))
        scratch *= 1 - beta1
        exp_avg += scratch
        exp_avg_sq *= beta2
        xp.multiply(grad, grad, out=scratch)
        scratch *= 1 - beta2
        exp_avg_sq += scratch

        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        second_moment = exp_avg_sq
        if group["amsgrad"]:
            second_moment = state["max_exp_avg_sq"].data
            xp.maximum(second_moment, exp_avg_sq, out=second_moment)
        denominator = xp.sqrt(second_moment, out=scratch)
        denominator /= bias_correction2_sqrt
        denominator += eps
        update = xp.divide(exp_avg, denominator, out=scratch)
        update *= lr / bias_correction1
        value -= update
        param._version.value += 1


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before each step.

    Args: as ``Adam``, with ``weight_decay`` defaulting to 0.01.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )
