"""Fixtures and helpers shared by the whole test suite.

- ``device``: every test that takes it runs on ``'cpu'`` and, where CuPy sees a GPU,
  on ``'cuda'`` (skipped otherwise).
- ``torch``: the PyTorch module, or a skip where it is not installed.

Plain helpers (``to_numpy``, ``leaf``) live in ``helpers.py``: ``from helpers import
to_numpy``. (Importing them from ``conftest`` breaks as soon as a subfolder has a
``conftest.py`` of its own, which then owns that module name.)
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import leaf, to_numpy  # noqa: F401  (re-exported for older imports)

import tinyconv as tc

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not tc.cuda.is_available(), reason="needs CuPy and a GPU"),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """'cpu', then 'cuda' where a GPU is usable."""
    return request.param


@pytest.fixture
def torch() -> Any:
    """PyTorch, the reference implementation; the test is skipped without it."""
    return pytest.importorskip("torch")
