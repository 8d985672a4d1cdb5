"""The Tensor and its factories: dtypes, shapes, conversions, in-place methods, repr."""

from __future__ import annotations

import numpy
import pytest
from helpers import to_numpy

import tinyconv as tc

# -- tc.tensor ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, dtype",
    [
        (1.5, numpy.float32),
        ([1.0, 2.0], numpy.float32),
        ([[1, 2], [3, 4]], numpy.int64),
        (3, numpy.int64),
        (True, numpy.bool_),
        ([True, False], numpy.bool_),
        ([1, 2.5], numpy.float32),
        (numpy.zeros(2, dtype=numpy.float64), numpy.float64),
        (numpy.zeros(2, dtype=numpy.int32), numpy.int32),
        (numpy.zeros(2, dtype=numpy.uint8), numpy.uint8),
        (numpy.float64(2.0), numpy.float64),
    ],
)
def test_tensor_infers_the_dtype_as_pytorch_does(data, dtype):
    assert tc.tensor(data).dtype is dtype


def test_dtypes_are_numpy_types():
    assert tc.float32 is numpy.float32
    assert tc.float64 is numpy.float64
    assert tc.int64 is numpy.int64
    assert tc.bool is numpy.bool_


def test_tensor_copies_its_data(device):
    source = numpy.array([1.0, 2.0])
    x = tc.tensor(source, device=device)
    source[0] = 100.0
    assert to_numpy(x)[0] == 1.0
    assert x.device == device


def test_tensor_of_a_tensor_is_a_new_leaf(device):
    x = tc.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = tc.tensor(x * 2.0)
    assert y.grad_fn is None and not y.requires_grad
    numpy.testing.assert_array_equal(to_numpy(y), [2.0, 4.0])


def test_tensor_with_dtype_converts(device):
    x = tc.tensor([1, 2], dtype=tc.float64, device=device)
    assert x.dtype is tc.float64
    numpy.testing.assert_array_equal(to_numpy(x), [1.0, 2.0])


def test_tensor_of_nested_lists_has_their_shape():
    assert tc.tensor([[[1.0], [2.0]]]).shape == (1, 2, 1)
    assert tc.tensor(2.0).shape == ()
    assert tc.tensor([]).shape == (0,)


def test_tensor_of_a_list_of_tensors():
    x = tc.tensor([tc.tensor(1.0), tc.tensor(2.5)])
    numpy.testing.assert_array_equal(to_numpy(x), [1.0, 2.5])
    assert x.dtype is tc.float32


# -- factories ----------------------------------------------------------------------------


@pytest.mark.parametrize("factory", [tc.zeros, tc.ones, tc.empty, tc.rand, tc.randn])
def test_factory_takes_shape_as_ints_or_a_tuple(factory, device):
    assert factory(2, 3, device=device).shape == (2, 3)
    assert factory((2, 3), device=device).shape == (2, 3)
    assert factory([4], device=device).shape == (4,)
    assert factory((), device=device).shape == ()
    assert factory(2, 3, device=device).dtype is tc.float32
    assert factory(2, dtype=tc.float64, device=device).dtype is tc.float64


@pytest.mark.parametrize("factory", [tc.zeros, tc.ones, tc.rand, tc.randn])
def test_factory_makes_a_leaf_that_requires_grad(factory, device):
    x = factory(2, requires_grad=True, device=device)
    assert x.requires_grad and x.is_leaf and x.grad is None
    assert x.device == device


def test_zeros_ones_and_full_hold_their_values(device):
    numpy.testing.assert_array_equal(to_numpy(tc.zeros(2, 2, device=device)), numpy.zeros((2, 2)))
    numpy.testing.assert_array_equal(to_numpy(tc.ones(3, device=device)), numpy.ones(3))
    full = tc.full((2, 3), 7.0, device=device)
    numpy.testing.assert_array_equal(to_numpy(full), numpy.full((2, 3), 7.0))
    assert full.dtype is tc.float32
    assert tc.full((2,), 7).dtype is tc.int64
    assert tc.full((2,), True).dtype is tc.bool


def test_arange_gives_int64_unless_a_bound_is_a_float(device):
    numpy.testing.assert_array_equal(to_numpy(tc.arange(4, device=device)), [0, 1, 2, 3])
    assert tc.arange(4).dtype is tc.int64
    assert tc.arange(0, 1, 0.25).dtype is tc.float32
    numpy.testing.assert_allclose(to_numpy(tc.arange(1, 2, 0.25)), [1.0, 1.25, 1.5, 1.75])


def test_like_factories_copy_shape_dtype_and_device(device):
    x = tc.ones(2, 3, dtype=tc.float64, device=device)
    for factory in (tc.zeros_like, tc.ones_like, tc.randn_like, tc.rand_like, tc.empty_like):
        y = factory(x)
        assert (y.shape, y.dtype, y.device) == ((2, 3), tc.float64, device)
    numpy.testing.assert_array_equal(to_numpy(tc.zeros_like(x)), numpy.zeros((2, 3)))
    numpy.testing.assert_array_equal(to_numpy(tc.ones_like(x)), numpy.ones((2, 3)))


def test_rand_lies_in_the_unit_interval_and_randn_is_standard_normal():
    tc.manual_seed(0)
    uniform = to_numpy(tc.rand(10_000))
    normal = to_numpy(tc.randn(10_000))
    assert uniform.min() >= 0.0 and uniform.max() < 1.0
    assert abs(normal.mean()) < 0.05 and abs(normal.std() - 1.0) < 0.05


def test_from_numpy_shares_memory():
    array = numpy.array([1.0, 2.0], dtype=numpy.float64)
    x = tc.from_numpy(array)
    assert x.dtype is tc.float64
    array[0] = 10.0
    assert to_numpy(x)[0] == 10.0
    x.data[1] = 20.0
    assert array[1] == 20.0


def test_from_numpy_rejects_other_types():
    with pytest.raises(TypeError, match="numpy.ndarray"):
        tc.from_numpy([1.0, 2.0])


def test_manual_seed_makes_random_draws_repeatable(device):
    def draws():
        return [
            to_numpy(tc.randn(3, device=device)),
            to_numpy(tc.rand(2, 2, device=device)),
            to_numpy(tc.randn_like(tc.zeros(4, device=device))),
            to_numpy(tc.randint(0, 10, (5,), device=device)),
        ]

    tc.manual_seed(123)
    first = draws()
    tc.manual_seed(123)
    second = draws()
    tc.manual_seed(124)
    third = draws()
    for a, b in zip(first, second):
        numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(first[0], third[0])


# -- attributes and conversions -----------------------------------------------------------


def test_attributes_of_a_new_tensor(device):
    x = tc.zeros(2, 3, 4, device=device)
    assert x.shape == (2, 3, 4) and isinstance(x.shape, tuple)
    assert x.ndim == 3 and x.dim() == 3
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.numel() == 24 and tc.zeros(()).numel() == 1
    assert x.grad is None and x.grad_fn is None and x.is_leaf and not x.requires_grad
    assert len(x) == 2


def test_item_returns_a_python_number(device):
    assert tc.tensor(2.5, device=device).item() == 2.5
    assert isinstance(tc.tensor([3], device=device).item(), int)
    assert isinstance(tc.tensor([[1.5]], device=device).item(), float)
    with pytest.raises(RuntimeError, match="2 elements"):
        tc.tensor([1.0, 2.0], device=device).item()


def test_tolist_returns_nested_python_lists(device):
    assert tc.tensor([[1, 2], [3, 4]], device=device).tolist() == [[1, 2], [3, 4]]
    assert tc.tensor(1.5, device=device).tolist() == 1.5


def test_numpy_shares_memory_with_the_tensor():
    x = tc.tensor([1.0, 2.0])
    array = x.numpy()
    assert isinstance(array, numpy.ndarray)
    array[0] = 5.0
    assert x.tolist() == [5.0, 2.0]


def test_clone_copies_and_stays_in_the_graph(device):
    x = tc.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x.clone()
    assert y.grad_fn is not None
    y.detach()[0] = 10.0
    assert x.tolist() == [1.0, 2.0]
    (y * 3.0).sum().backward()
    numpy.testing.assert_array_equal(to_numpy(x.grad), [3.0, 3.0])


def test_to_float_double_convert_the_dtype(device):
    x = tc.tensor([1, 2], device=device)
    assert x.float().dtype is tc.float32
    assert x.double().dtype is tc.float64
    assert x.to(tc.float64).dtype is tc.float64
    assert x.to(device).dtype is tc.int64
    numpy.testing.assert_array_equal(to_numpy(x.double()), [1.0, 2.0])


def test_to_the_same_dtype_and_device_returns_self(device):
    x = tc.tensor([1.0], device=device)
    assert x.to(tc.float32) is x
    assert x.to(device) is x


def test_to_a_dtype_is_differentiable(device):
    x = tc.tensor([1.0, 2.0], dtype=tc.float64, device=device, requires_grad=True)
    (x.float() * 2.0).sum().backward()
    assert x.grad.dtype is tc.float64
    numpy.testing.assert_array_equal(to_numpy(x.grad), [2.0, 2.0])


def test_cpu_of_a_cpu_tensor_is_itself():
    x = tc.tensor([1.0])
    assert x.cpu() is x and x.device == "cpu"


def test_zero_and_fill_change_the_tensor_in_place(device):
    x = tc.ones(2, 2, device=device)
    assert x.zero_() is x
    numpy.testing.assert_array_equal(to_numpy(x), numpy.zeros((2, 2)))
    assert x.fill_(3.5) is x
    numpy.testing.assert_array_equal(to_numpy(x), numpy.full((2, 2), 3.5))


def test_inplace_arithmetic_keeps_the_dtype(device):
    x = tc.tensor([1.0, 2.0], device=device)
    x += 1
    x *= tc.tensor([2.0, 3.0], device=device)
    numpy.testing.assert_array_equal(to_numpy(x), [4.0, 9.0])
    assert x.dtype is tc.float32
    integers = tc.tensor([1, 2], device=device)
    with pytest.raises(RuntimeError, match="can't be cast"):
        integers += 0.5


def test_T_reverses_the_dimensions(device):
    data = numpy.arange(6.0).reshape(2, 3)
    x = tc.tensor(data, device=device)
    assert x.T.shape == (3, 2)
    numpy.testing.assert_array_equal(to_numpy(x.T), data.T)
    assert tc.zeros(2, 3, 4).T.shape == (4, 3, 2)


@pytest.mark.parametrize(
    "compare, expected",
    [
        (lambda a, b: a == b, [False, True, False]),
        (lambda a, b: a != b, [True, False, True]),
        (lambda a, b: a < b, [True, False, False]),
        (lambda a, b: a <= b, [True, True, False]),
        (lambda a, b: a > b, [False, False, True]),
        (lambda a, b: a >= b, [False, True, True]),
    ],
)
def test_comparisons_return_bool_tensors_with_no_graph(compare, expected, device):
    a = tc.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    b = tc.tensor([2.0, 2.0, 2.0], device=device)
    for result in (compare(a, b), compare(a, 2.0)):
        assert result.dtype is tc.bool
        assert not result.requires_grad and result.grad_fn is None
        assert result.tolist() == expected


def test_argmax_returns_int64_indices(device):
    x = tc.tensor([[1.0, 5.0, 3.0], [7.0, 2.0, 0.0]], device=device)
    assert x.argmax().item() == 3
    assert x.argmax(dim=1).tolist() == [1, 0]
    assert x.argmax(dim=0, keepdim=True).tolist() == [[1, 0, 0]]
    assert x.argmax().dtype is tc.int64


def test_repr_reads_like_pytorch():
    assert repr(tc.tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert repr(tc.tensor([1, 2])) == "tensor([1, 2])"
    assert "dtype=tinyconv.float64" in repr(tc.tensor([1.0], dtype=tc.float64))
    assert "requires_grad=True" in repr(tc.tensor([1.0], requires_grad=True))
    assert "grad_fn=<MulBackward>" in repr(tc.tensor([1.0], requires_grad=True) * 2.0)


def test_numpy_scalar_and_array_operands_take_part_as_tensors():
    x = tc.tensor([1.0, 2.0])
    numpy.testing.assert_array_equal(
        to_numpy(x + numpy.array([1.0, 1.0], dtype=numpy.float32)), [2.0, 3.0]
    )
    result = numpy.array([1.0, 1.0]) * x  # the tensor's reflected operator, not NumPy's
    assert isinstance(result, tc.Tensor)


def test_where_of_two_numbers_takes_their_dtype_as_in_pytorch(torch):
    condition = [True, False]
    for input, other in ((1.0, 0.0), (1, 0), (1, 0.5)):
        ours = tc.where(tc.tensor(condition), input, other)
        theirs = torch.where(torch.tensor(condition), input, other)
        assert ours.tolist() == theirs.tolist()
        assert str(ours.dtype.__name__) == str(theirs.dtype).removeprefix("torch.")
