"""Every op's backward against central finite differences, in float64, with a random
upstream gradient, over a grid of shapes (``op_cases``) on every device."""

from __future__ import annotations

from types import SimpleNamespace

import numpy
import pytest
from op_cases import ALL_CASES, OpCase

import tinyconv as tc
import tinyconv.nn.functional as F

TINYCONV = SimpleNamespace(lib=tc, F=F)


def make_inputs(case: OpCase, device: str) -> list[tc.Tensor]:
    """Float arrays become float64 leaves that require grad; the rest plain tensors."""
    inputs = []
    for array in case.inputs:
        if array.dtype.kind == "f":
            inputs.append(tc.tensor(array, dtype=tc.float64, device=device, requires_grad=True))
        else:
            inputs.append(tc.tensor(array, device=device))
    return inputs


@pytest.mark.parametrize("case", ALL_CASES)
def test_gradient_matches_finite_differences(case, device):
    inputs = make_inputs(case, device)
    assert tc.gradcheck(lambda *args: case.fn(TINYCONV, *args), inputs)


def test_grid_feeds_ops_non_contiguous_leaves():
    # the "transposed" cases must really hand ops arrays that are not C-contiguous
    layouts = [
        array.flags.c_contiguous
        for param in ALL_CASES
        for array in param.values[0].inputs
        if array.ndim >= 2
    ]
    assert not all(layouts)
    transposed = tc.tensor(numpy.ones((3, 2)).T, dtype=tc.float64)
    assert not transposed.data.flags.c_contiguous
