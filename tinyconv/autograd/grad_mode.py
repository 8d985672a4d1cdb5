"""Grad mode: whether ops record a graph. ``no_grad`` and ``enable_grad`` switch it.

As in PyTorch, the mode belongs to a thread: a thread that evaluates under ``no_grad``
leaves another thread's training recording, and every new thread starts with
recording on.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["enable_grad", "is_grad_enabled", "keep_inputs", "no_grad", "set_grad_enabled"]


class _ThreadState(threading.local):
    # each thread sees its own copy, starting from these values
    enabled = True
    keeping_inputs = False


_state = _ThreadState()


class keep_inputs:
    """Inside, each new node keeps its input tensors, so that its gradient can itself be
    differentiated (``create_graph=True``). Off by default: an op that needs only its
    output for backward (relu, exp) would otherwise keep its input alive as well."""

    def __enter__(self) -> None:
        self.previous = _state.keeping_inputs
        _state.keeping_inputs = True

    def __exit__(self, *exc_info: Any) -> None:
        _state.keeping_inputs = self.previous


def is_grad_enabled() -> bool:
    return _state.enabled


def is_keeping_inputs() -> bool:
    return _state.keeping_inputs


class set_grad_enabled:
    """Turn recording on or off: a context manager, a decorator, or a plain call."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.previous = _state.enabled
        _state.enabled = self.mode  # like PyTorch, the plain call takes effect at once

    def __enter__(self) -> None:
        _state.enabled = self.mode

    def __exit__(self, *exc_info: Any) -> None:
        _state.enabled = self.previous

    def __call__(self, func: Callable) -> Callable:
        mode = self.mode

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return func(*args, **kwargs)

        return wrapper


class _GradModeContext:
    """Base of ``no_grad``/``enable_grad``: a context manager and a decorator."""

    mode = True

    def __enter__(self) -> None:
        self.previous = _state.enabled
        _state.enabled = self.mode

    def __exit__(self, *exc_info: Any) -> None:
        _state.enabled = self.previous

    def __call__(self, func: Callable) -> Callable:
        context_type = type(self)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with context_type():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """Record nothing inside: ``with tc.no_grad(): ...`` or ``@tc.no_grad()``."""

    mode = False


class enable_grad(_GradModeContext):
    """Record again inside a ``no_grad`` block."""

    mode = True
