"""What backend.py writes once for NumPy and CuPy, checked against NumPy's own."""

from __future__ import annotations

import numpy
import pytest

import tinyconv as tc
from tinyconv import backend

PUT_ALONG_AXIS = [
    # (target shape, indices shape, axis)
    ((5,), (3,), 0),
    ((4, 6), (4, 1), 1),
    ((4, 6), (2, 6), 0),
    ((3, 4, 5), (3, 2, 5), 1),
    ((3, 4, 5), (1, 4, 2), 2),  # indices broadcast along the first axis
    ((2, 3, 4, 5), (2, 3, 4, 1), -1),
]


@pytest.mark.parametrize("shape, index_shape, axis", PUT_ALONG_AXIS)
def test_put_along_axis_matches_numpy(device, shape, index_shape, axis):
    rng = numpy.random.default_rng(len(shape) * 10 + axis)
    target = rng.standard_normal(shape)
    # distinct positions within each slice: where two coincide, which write wins is
    # left open on the GPU
    draws_shape = list(index_shape)
    draws_shape[axis] = shape[axis]
    order = rng.random(draws_shape).argsort(axis=axis)
    indices = numpy.take(order, range(index_shape[axis]), axis=axis)
    values = rng.standard_normal(index_shape)
    expected = target.copy()
    numpy.put_along_axis(expected, indices, values, axis=axis)
    ours = tc.tensor(target, device=device).data
    backend.put_along_axis(
        ours,
        backend.to_device(indices, device),
        backend.to_device(values, device),
        axis % len(shape),
    )
    numpy.testing.assert_array_equal(backend.to_device(ours, "cpu"), expected)
