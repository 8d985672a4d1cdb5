"""``tinyconv.nn``: layers with parameters, and ``functional``."""

from tinyconv.nn import functional

__all__ = ["functional"]
