"""The engine: deep graphs, shared subgraphs, multi-output nodes, ``tc.grad`` and the
checks it makes on what each op's backward returns."""

from __future__ import annotations

import numpy
import pytest
from helpers import leaf, to_numpy

import tinyconv as tc
from tinyconv.autograd import Function


def test_chain_of_ten_thousand_ops_backpropagates_without_recursion_error(device):
    x = leaf([1.0], device)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    numpy.testing.assert_allclose(to_numpy(x.grad), [1.0001**10_000], rtol=1e-10)


def test_chain_of_ten_thousand_ops_is_freed_without_recursion_error(device):
    x = leaf([1.0], device)
    y = x
    for _ in range(10_000):
        y = y + 1.0
    del y  # dropping the last node frees the chain node by node


def test_diamond_graph_sums_the_gradients_of_both_paths(device):
    x = leaf([1.0, 2.0], device)
    y = x * 2.0
    z = y * 3.0 + y * 4.0  # dz/dx = 2 * (3 + 4)
    z.sum().backward()
    numpy.testing.assert_allclose(to_numpy(x.grad), [14.0, 14.0])


def test_tensor_used_twice_in_one_op_gets_both_gradients(device):
    x = leaf([1.0, -3.0], device)
    (x * x).sum().backward()
    numpy.testing.assert_allclose(to_numpy(x.grad), [2.0, -6.0])


def test_node_runs_once_all_its_consumers_have_run(device):
    # a long and a short path from x to the output meet at the end: the engine must
    # sum both before running the node beneath them
    x = leaf([2.0], device)
    base = x * 1.0
    long_path = base
    for _ in range(5):
        long_path = long_path * 2.0
    (long_path + base).sum().backward()
    numpy.testing.assert_allclose(to_numpy(x.grad), [33.0])


def test_max_along_a_dim_gives_the_whole_gradient_to_the_maximum(device):
    data = numpy.array([[1.0, 5.0, 3.0], [7.0, 2.0, 0.0]])
    x = leaf(data, device)
    values, indices = x.max(dim=1)
    upstream = numpy.array([10.0, 20.0])
    values.backward(tc.tensor(upstream, device=device))
    expected = numpy.zeros_like(data)
    for row in range(data.shape[0]):
        expected[row, numpy.argmax(data[row])] = upstream[row]
    numpy.testing.assert_array_equal(to_numpy(x.grad), expected)
    numpy.testing.assert_array_equal(to_numpy(indices), [1, 0])
    assert indices.requires_grad is False


def test_multi_output_node_with_both_outputs_used(device):
    x = leaf([[1.0, 5.0, 3.0]], device)
    values, indices = x.min(dim=1, keepdim=True)
    (values * 2.0 + values * 3.0).sum().backward()
    numpy.testing.assert_array_equal(to_numpy(x.grad), [[5.0, 0.0, 0.0]])
    numpy.testing.assert_array_equal(to_numpy(indices), [[0]])


def test_grad_returns_gradients_without_touching_dot_grad(device):
    x = leaf([1.0, 2.0], device)
    w = leaf([3.0, 4.0], device)
    hidden = x * w
    (grad_x, grad_hidden) = tc.grad((hidden * hidden).sum(), [x, hidden])
    numpy.testing.assert_allclose(to_numpy(grad_x), 2 * numpy.array([3.0, 8.0]) * [3.0, 4.0])
    numpy.testing.assert_allclose(to_numpy(grad_hidden), 2 * numpy.array([3.0, 8.0]))
    assert x.grad is None and w.grad is None


def test_grad_with_an_unused_input_raises_unless_allowed(device):
    x = leaf([1.0], device)
    unused = leaf([1.0], device)
    with pytest.raises(RuntimeError, match="allow_unused"):
        tc.grad((x * 2.0).sum(), [x, unused], retain_graph=True)
    grad_x, grad_unused = tc.grad((x * 2.0).sum(), [x, unused], allow_unused=True)
    numpy.testing.assert_allclose(to_numpy(grad_x), [2.0])
    assert grad_unused is None


def test_grad_with_grad_outputs_weights_the_outputs(device):
    x = leaf([1.0, 2.0], device)
    (grad_x,) = tc.grad(x * x, [x], grad_outputs=[tc.tensor([1.0, -1.0], device=device)])
    numpy.testing.assert_allclose(to_numpy(grad_x), [2.0, -4.0])


def test_backward_on_a_leaf_accumulates_the_seed(device):
    x = leaf([3.0], device)
    x.backward()
    numpy.testing.assert_allclose(to_numpy(x.grad), [1.0])


def test_backward_with_a_gradient_of_the_wrong_shape_raises(device):
    y = leaf([1.0, 2.0], device) * 2.0
    with pytest.raises(RuntimeError, match=r"shape \(3,\)"):
        y.backward(tc.tensor([1.0, 2.0, 3.0], device=device))


class _WrongShapeBackward(Function):
    """Returns a gradient with one element too many."""

    def forward(self, x):
        return x * 2

    def backward(self, grad_out):
        xp = tc.backend.get_array_module(grad_out)
        return xp.zeros(grad_out.shape[0] + 1, dtype=grad_out.dtype)


class _WrongDtypeBackward(Function):
    def forward(self, x):
        return x * 2

    def backward(self, grad_out):
        return (grad_out * 2).astype("float32")


class _TooManyGradients(Function):
    def forward(self, x):
        return x * 2

    def backward(self, grad_out):
        return grad_out, grad_out


def test_engine_fails_loudly_on_a_gradient_of_the_wrong_shape(device):
    x = leaf([1.0, 2.0], device)
    with pytest.raises(RuntimeError, match=r"_WrongShapeBackward.*shape \(3,\).*shape \(2,\)"):
        _WrongShapeBackward.apply(x).sum().backward()


def test_engine_fails_loudly_on_a_gradient_of_the_wrong_dtype(device):
    x = leaf(numpy.array([1.0, 2.0]), device)
    with pytest.raises(RuntimeError, match=r"_WrongDtypeBackward.*float32.*float64"):
        _WrongDtypeBackward.apply(x).sum().backward()


def test_engine_fails_loudly_on_the_wrong_number_of_gradients(device):
    x = leaf([1.0, 2.0], device)
    with pytest.raises(RuntimeError, match=r"_TooManyGradients.*2 gradients for 1 input"):
        _TooManyGradients.apply(x).sum().backward()


def test_function_with_no_tensor_argument_raises():
    with pytest.raises(TypeError, match="at least one Tensor"):
        _TooManyGradients.apply(numpy.ones(2))
