"""The worked examples of "Dive into Deep Learning", chapter 6 (convolutional neural
networks), as tests: the numbers a reader of the book sees, computed by tinyconv."""

from __future__ import annotations

import numpy
import pytest

import tinyconv as tc
from tinyconv.nn import conv_functional as F


def t(values):
    return tc.tensor(numpy.asarray(values, dtype=numpy.float64))


def as_image(values):
    # (H, W) -> (1, 1, H, W)
    return t(values).reshape(1, 1, *numpy.shape(values))


@pytest.mark.parametrize(
    "kernel, padding, stride, expected",
    [
        (3, 1, 1, (8, 8)),
        ((5, 3), (2, 1), 1, (8, 8)),
        (3, 1, 2, (4, 4)),
        ((3, 5), (0, 1), (3, 4), (2, 2)),
        ((3, 5), (2, 1), (4, 1), (3, 6)),
    ],
)
def test_padding_and_stride_output_shapes_on_an_8x8_input(kernel, padding, stride, expected):
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    x = tc.rand(1, 1, 8, 8, dtype=tc.float64)
    weight = tc.rand(1, 1, *kernel, dtype=tc.float64)
    assert F.conv2d(x, weight, padding=padding, stride=stride).shape[2:] == expected


X2 = [[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]]
K2 = [[[0, 1], [2, 3]], [[1, 2], [3, 4]]]


def test_cross_correlation_over_two_input_channels():
    y = F.conv2d(t(X2).reshape(1, 2, 3, 3), t(K2).reshape(1, 2, 2, 2))
    numpy.testing.assert_array_equal(y.numpy()[0, 0], [[56, 72], [104, 120]])


def test_three_output_channels_stack_kernels_k_k_plus_1_k_plus_2():
    kernels = numpy.stack([numpy.asarray(K2) + shift for shift in range(3)])  # (3, 2, 2, 2)
    y = F.conv2d(t(X2).reshape(1, 2, 3, 3), t(kernels))
    expected = [[[56, 72], [104, 120]], [[76, 100], [148, 172]], [[96, 128], [192, 224]]]
    numpy.testing.assert_array_equal(y.numpy()[0], expected)


def test_one_by_one_convolution_is_a_matrix_product_over_channels():
    rng = numpy.random.default_rng(0)
    x, kernel = rng.normal(size=(3, 3, 3)), rng.normal(size=(2, 3, 1, 1))
    y = F.conv2d(t(x), t(kernel))  # unbatched (C, H, W) input
    expected = (kernel.reshape(2, 3) @ x.reshape(3, 9)).reshape(2, 3, 3)
    numpy.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_two_by_two_kernel_on_a_three_by_three_input():
    y = F.conv2d(as_image([[1, 0, 1], [2, 1, 0], [0, 1, 1]]), as_image([[1, 0], [0, 1]]))
    numpy.testing.assert_array_equal(y.numpy()[0, 0], [[2, 0], [3, 2]])


def test_max_and_average_pooling_of_arange_9():
    x = as_image(numpy.arange(9.0).reshape(3, 3))
    numpy.testing.assert_array_equal(F.max_pool2d(x, 2, stride=1).numpy()[0, 0], [[4, 5], [7, 8]])
    numpy.testing.assert_array_equal(F.avg_pool2d(x, 2, stride=1).numpy()[0, 0], [[2, 3], [5, 6]])


def test_pooling_padding_stride_and_channels_on_arange_16():
    x = as_image(numpy.arange(16.0).reshape(4, 4))
    assert F.max_pool2d(x, 3).numpy().tolist() == [[[[10.0]]]]
    expected = [[[[5.0, 7.0], [13.0, 15.0]]]]
    assert F.max_pool2d(x, 3, padding=1, stride=2).numpy().tolist() == expected
    assert F.max_pool2d(x, (2, 3), stride=(2, 3), padding=(0, 1)).numpy().tolist() == expected
    two_channels = tc.cat([x, x + 1], 1)
    y = F.max_pool2d(two_channels, 3, padding=1, stride=2)
    assert y.numpy().tolist() == [[[[5, 7], [13, 15]], [[6, 8], [14, 16]]]]


def test_transposed_convolution_of_a_two_by_two_input():
    x, kernel = as_image([[0, 1], [2, 3]]), as_image([[0, 1], [2, 3]])
    y = F.conv_transpose2d(x, kernel)
    numpy.testing.assert_array_equal(y.numpy()[0, 0], [[0, 0, 1], [0, 4, 6], [4, 12, 9]])
    strided = F.conv_transpose2d(x, kernel, stride=2).numpy()[0, 0]
    numpy.testing.assert_array_equal(
        strided, [[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3], [4, 6, 6, 9]]
    )
    assert F.conv_transpose2d(x, kernel, padding=1).numpy().tolist() == [[[[4.0]]]]


def test_transposed_convolution_undoes_the_shape_of_a_convolution():
    x = tc.rand(1, 10, 16, 16, dtype=tc.float64)
    conv_weight = tc.rand(20, 10, 5, 5, dtype=tc.float64)
    transposed_weight = tc.rand(20, 10, 5, 5, dtype=tc.float64)
    y = F.conv2d(x, conv_weight, padding=2, stride=3)
    assert F.conv_transpose2d(y, transposed_weight, padding=2, stride=3).shape == x.shape


def kernel_matrix(kernel, size):
    """The convolution of a size×size input by ``kernel`` as a matrix on flat images."""
    out = size - kernel.shape[0] + 1
    matrix = numpy.zeros((out * out, size * size))
    for oh in range(out):
        for ow in range(out):
            window = numpy.zeros((size, size))
            window[oh : oh + kernel.shape[0], ow : ow + kernel.shape[1]] = kernel
            matrix[oh * out + ow] = window.ravel()
    return matrix


def test_convolution_is_a_matrix_and_its_transpose_is_the_transposed_convolution():
    x, kernel = numpy.arange(9.0).reshape(3, 3), numpy.array([[1.0, 2.0], [3.0, 4.0]])
    y = F.conv2d(as_image(x), as_image(kernel)).numpy()[0, 0]
    numpy.testing.assert_array_equal(y, [[27, 37], [57, 67]])
    matrix = kernel_matrix(kernel, 3)  # (4, 9)
    numpy.testing.assert_array_equal(matrix @ x.ravel(), y.ravel())
    z = F.conv_transpose2d(as_image(y), as_image(kernel)).numpy()[0, 0]
    numpy.testing.assert_array_equal(matrix.T @ y.ravel(), z.ravel())


def test_the_edge_kernel_finds_vertical_edges_only():
    x = numpy.ones((6, 8))
    x[:, 2:6] = 0
    y = F.conv2d(as_image(x), as_image([[1.0, -1.0]])).numpy()[0, 0]
    numpy.testing.assert_array_equal(y, numpy.tile([0, 1, 0, 0, 0, -1, 0], (6, 1)))
    assert not F.conv2d(as_image(x.T), as_image([[1.0, -1.0]])).numpy().any()


def test_learning_the_edge_kernel_from_data_by_gradient_descent():
    x = numpy.ones((6, 8))
    x[:, 2:6] = 0
    target = F.conv2d(as_image(x), as_image([[1.0, -1.0]]))
    rng = numpy.random.default_rng(0)
    weight = tc.tensor(rng.uniform(-1, 1, size=(1, 1, 1, 2)), requires_grad=True)
    for _ in range(20):
        loss = ((F.conv2d(as_image(x), weight) - target) ** 2).sum()
        weight.grad = None
        loss.backward()
        weight.data -= 3e-2 * weight.grad.numpy()
    numpy.testing.assert_allclose(weight.detach().numpy().ravel(), [1.0, -1.0], atol=0.05)
