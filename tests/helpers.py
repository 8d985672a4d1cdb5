"""Helpers for tests: ``from helpers import to_numpy, leaf``.

A module of its own rather than ``conftest``: every ``conftest.py`` is imported under
that one name, so a second one in a subfolder would shadow these.
"""

from __future__ import annotations

from typing import Any

import numpy

import tinyconv as tc

__all__ = ["leaf", "to_numpy"]


def to_numpy(tensor: Any) -> numpy.ndarray:
    """The values of a tinyconv tensor (any device, graph or not) as a host NumPy array."""
    return numpy.asarray(tc.backend.to_device(tensor.data, "cpu"))


def leaf(array: Any, device: str, requires_grad: bool = True) -> tc.Tensor:
    """A tensor holding a copy of ``array`` on ``device`` (requires_grad needs floats)."""
    return tc.tensor(numpy.asarray(array), device=device, requires_grad=requires_grad)
