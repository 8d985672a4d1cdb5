"""Automatic differentiation: ``Function``, the engine, grad mode and gradient checks."""

from tinyconv.autograd.function import Function
from tinyconv.autograd.grad_mode import (
    enable_grad,
    is_grad_enabled,
    keep_inputs,
    no_grad,
    set_grad_enabled,
)

__all__ = [
    "Function",
    "backward",
    "enable_grad",
    "grad",
    "graph_size",
    "gradcheck",
    "gradgradcheck",
    "GradcheckError",
    "is_grad_enabled",
    "keep_inputs",
    "no_grad",
    "set_grad_enabled",
    "trace",
]


def __getattr__(name: str):
    # the engine and gradcheck import Tensor, which imports this package: load them late
    if name in ("backward", "grad"):
        from tinyconv.autograd import engine

        return getattr(engine, name)
    if name in ("gradcheck", "gradgradcheck", "GradcheckError"):
        from tinyconv.autograd import gradcheck

        return getattr(gradcheck, name)
    if name in ("trace", "graph_size"):
        from tinyconv.autograd import tracing

        return getattr(tracing, name)
    raise AttributeError(f"module 'tinyconv.autograd' has no attribute {name!r}")
