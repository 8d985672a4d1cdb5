"""conv2d and conv_transpose2d: against loops written straight from the definition,
against finite differences over a grid of every argument, and against PyTorch on
hundreds of random configurations."""

from __future__ import annotations

import inspect
import threading

import numpy
import pytest

import tinyconv as tc
from tinyconv import backend
from tinyconv.nn import conv_functional as F
from tinyconv.ops import conv as conv_ops
from tinyconv.ops import im2col as im2col_ops
from tinyconv.ops.sizes import normalize_padding, pair


def to_numpy(tensor):
    """A tensor's values on the host, graph or not."""
    return numpy.asarray(tc.backend.to_device(tensor.data, "cpu"))


# -- references written from the definition, one output element at a time ----------


def naive_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, oh, ow] = b[o] + sum_{c, i, j} W[o, c, i, j] x[n, g·C/G + c, oh·s + i·d, ow·s + j·d]
    on the zero-padded input (float64 NumPy arrays)."""
    (stride_h, stride_w) = (stride, stride) if isinstance(stride, int) else stride
    (dilation_h, dilation_w) = (dilation, dilation) if isinstance(dilation, int) else dilation
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    (top, bottom), (left, right) = normalize_padding(
        padding, (kernel_h, kernel_w), (dilation_h, dilation_w)
    )
    padded = numpy.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    batch, _, height, width = padded.shape
    out_h = (height - dilation_h * (kernel_h - 1) - 1) // stride_h + 1
    out_w = (width - dilation_w * (kernel_w - 1) - 1) // stride_w + 1
    group_out = out_channels // groups
    y = numpy.zeros((batch, out_channels, out_h, out_w))
    for o in range(out_channels):
        first = (o // group_out) * group_channels
        for oh in range(out_h):
            for ow in range(out_w):
                total = numpy.zeros(batch)
                for c in range(group_channels):
                    for i in range(kernel_h):
                        for j in range(kernel_w):
                            row, col = (
                                oh * stride_h + i * dilation_h,
                                ow * stride_w + j * dilation_w,
                            )
                            total += weight[o, c, i, j] * padded[:, first + c, row, col]
                y[:, o, oh, ow] = total + (0.0 if bias is None else bias[o])
    return y


def naive_conv_transpose2d(
    x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """Every input element x[n, c, h, w] adds x·W[c, o, i, j] at output
    (h·s - p + i·d, w·s - p + j·d): the scatter that defines a transposed convolution."""
    pairs = [
        (v, v) if isinstance(v, int) else v for v in (stride, padding, output_padding, dilation)
    ]
    (stride_h, stride_w), (pad_h, pad_w), (extra_h, extra_w), (dilation_h, dilation_w) = pairs
    batch, in_channels, height, width = x.shape
    _, group_out, kernel_h, kernel_w = weight.shape
    out_h = (height - 1) * stride_h - 2 * pad_h + dilation_h * (kernel_h - 1) + extra_h + 1
    out_w = (width - 1) * stride_w - 2 * pad_w + dilation_w * (kernel_w - 1) + extra_w + 1
    group_in = in_channels // groups
    y = numpy.zeros((batch, group_out * groups, out_h, out_w))
    for c in range(in_channels):
        outs = slice((c // group_in) * group_out, (c // group_in + 1) * group_out)
        for h in range(height):
            for w in range(width):
                for i in range(kernel_h):
                    for j in range(kernel_w):
                        row = h * stride_h - pad_h + i * dilation_h
                        col = w * stride_w - pad_w + j * dilation_w
                        if 0 <= row < out_h and 0 <= col < out_w:
                            y[:, outs, row, col] += x[:, c, h, w, None] * weight[c, :, i, j]
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def naive_weight_grad(x, grad_out, kernel_size, padding):
    """dL/dW[o, c, i, j] = sum over n, oh, ow of dL/dy · the padded input under tap
    (i, j) of output (oh, ow), for stride 1, dilation 1 and one group."""
    padded = numpy.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h, out_w = grad_out.shape[2:]
    expected = numpy.zeros((grad_out.shape[1], x.shape[1], *kernel_size))
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            window = padded[:, :, i : i + out_h, j : j + out_w]
            expected[:, :, i, j] = numpy.einsum("nohw,nchw->oc", grad_out, window)
    return expected


def _leaf(array, device="cpu"):
    return tc.tensor(array, device=device, requires_grad=True)


# -- forward against the loops ---------------------------------------------------------

CONV_CASES = [
    # (N, C, H, W), (O, C/G, KH, KW), options
    ((2, 3, 7, 6), (4, 3, 3, 3), {}),
    ((2, 3, 7, 6), (4, 3, 3, 2), {"stride": 2, "padding": 1}),
    ((1, 2, 8, 9), (3, 2, 2, 3), {"stride": (2, 3), "padding": (1, 0), "dilation": (2, 1)}),
    ((2, 4, 6, 6), (6, 2, 3, 3), {"groups": 2, "padding": "same"}),
    ((2, 2, 6, 5), (2, 2, 4, 2), {"padding": "same", "dilation": (1, 2)}),  # even kernel
    ((2, 6, 5, 5), (6, 1, 3, 3), {"groups": 6, "padding": 1}),  # depthwise
    ((1, 3, 4, 4), (2, 3, 1, 1), {"stride": 3}),
    ((2, 2, 5, 5), (3, 2, 5, 5), {"padding": "valid"}),
    ((20, 2, 6, 6), (3, 2, 3, 3), {"padding": 1}),  # a batch large enough for the batch-inner order
]


@pytest.mark.parametrize("x_shape, w_shape, options", CONV_CASES)
def test_conv2d_forward_matches_the_definition(x_shape, w_shape, options, device):
    rng = numpy.random.default_rng(0)
    x, weight = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[0])
    expected = naive_conv2d(x, weight, bias, **options)
    y = F.conv2d(
        tc.tensor(x, device=device),
        tc.tensor(weight, device=device),
        tc.tensor(bias, device=device),
        **options,
    )
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10, atol=1e-10)


CONV_TRANSPOSE_CASES = [
    # (N, C_in, H, W), (C_in, C_out/G, KH, KW), options
    ((2, 3, 4, 5), (3, 2, 3, 3), {}),
    ((2, 3, 4, 5), (3, 2, 3, 2), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((1, 4, 3, 3), (4, 1, 2, 3), {"stride": (3, 2), "groups": 2, "dilation": (1, 2)}),
    ((2, 2, 3, 4), (2, 3, 3, 3), {"dilation": 2, "output_padding": 1}),  # output_padding < dilation
    ((1, 2, 4, 4), (2, 2, 2, 2), {"stride": 2}),  # windows that do not overlap
    ((1, 2, 5, 5), (2, 2, 3, 3), {"padding": 2}),  # stride 1: computed as a convolution
]


@pytest.mark.parametrize("x_shape, w_shape, options", CONV_TRANSPOSE_CASES)
def test_conv_transpose2d_forward_matches_the_definition(x_shape, w_shape, options, device):
    rng = numpy.random.default_rng(1)
    x, weight = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[1] * options.get("groups", 1))
    expected = naive_conv_transpose2d(x, weight, bias, **options)
    y = F.conv_transpose2d(
        tc.tensor(x, device=device),
        tc.tensor(weight, device=device),
        tc.tensor(bias, device=device),
        **options,
    )
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10, atol=1e-10)


def test_conv_transpose2d_is_the_adjoint_of_conv2d():
    # <conv(x), y> = <x, conv_transpose(y)> for any x, y: the identity the backward uses
    rng = numpy.random.default_rng(2)
    weight = tc.tensor(rng.standard_normal((4, 3, 3, 2)))
    x = tc.tensor(rng.standard_normal((2, 3, 9, 8)))
    options = {"stride": (2, 3), "padding": (1, 2), "dilation": (2, 1)}
    conv_x = F.conv2d(x, weight, **options)
    y = tc.tensor(rng.standard_normal(conv_x.shape))
    # 9×8 -> 4×4 loses a column to the stride; output_padding puts it back
    transposed = F.conv_transpose2d(y, weight, output_padding=(0, 1), **options)
    assert transposed.shape == x.shape
    left = float((conv_x.numpy() * y.numpy()).sum())
    right = float((x.numpy() * transposed.numpy()).sum())
    assert abs(left - right) < 1e-9 * max(1.0, abs(left))


def test_conv_transpose2d_that_saves_x_transposed_still_guards_x():
    # with 8 images, the weight gradient reads x batch-inner, so the forward saves a
    # transposed copy of x; changing x in place must still make backward raise, as
    # when x itself is saved, and the gradients must match the plain layout's
    rng = numpy.random.default_rng(4)
    weight = tc.tensor(rng.standard_normal((4, 3, 4, 4)), requires_grad=True)
    start = tc.tensor(rng.standard_normal((8, 4, 6, 6)), requires_grad=True)
    x = start * 1.0
    y = F.conv_transpose2d(x, weight, stride=2, padding=1)
    saved = y.grad_fn.saved_arrays[0]
    assert saved is not x.data and im2col_ops.stored_batch_inner(saved)
    upstream = tc.tensor(rng.standard_normal(y.shape))
    y.backward(upstream, retain_graph=True)
    expected = conv_ops.conv2d_weight_grad(
        upstream.numpy(), x.detach().numpy(), (4, 4), (2, 2), ((1, 1), (1, 1)), (1, 1), 1
    )
    numpy.testing.assert_allclose(weight.grad.numpy(), expected, rtol=1e-12)
    with tc.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward(upstream)


@pytest.mark.parametrize("stride", [(2, 1), (1, 2)])  # im2col's columns, row columns
def test_both_workspace_orders_and_chunked_batches_match_the_definition(monkeypatch, stride):
    rng = numpy.random.default_rng(3)
    x, weight = rng.standard_normal((5, 4, 7, 6)), rng.standard_normal((6, 2, 3, 3))
    grad_out = rng.standard_normal((5, 6, 4, 6) if stride == (2, 1) else (5, 6, 7, 3))
    options = (stride, ((1, 1), (1, 1)), (1, 1), 2)
    # the references: the loops, and for dL/dW its definition as the adjoint in W,
    # <dL/dW, V> = <dL/dy, conv2d(x, V)> for any V
    probe = rng.standard_normal(weight.shape)
    convolved = naive_conv2d(x, probe, stride=stride, padding=1, groups=2)
    expected = (
        naive_conv2d(x, weight, stride=stride, padding=1, groups=2),
        naive_conv_transpose2d(
            grad_out,
            weight,
            stride=stride,
            padding=1,
            groups=2,
            output_padding=(0, 0) if stride == (2, 1) else (0, 1),
        ),
    )
    for order, limit in [("nhw", 2**28), ("hwn", 2**28), ("nhw", 1), ("hwn", 1000)]:
        monkeypatch.setattr(conv_ops, "_order", lambda *shape, order=order, **_: order)
        monkeypatch.setattr(conv_ops, "_workspace_limit", limit)
        y = conv_ops.conv2d_forward(x, weight, None, *options)
        grad_x = conv_ops.conv2d_input_grad(grad_out, weight, (7, 6), *options)
        grad_weight = conv_ops.conv2d_weight_grad(x, grad_out, (3, 3), *options)
        numpy.testing.assert_allclose(y, expected[0], rtol=1e-12, atol=1e-12)
        numpy.testing.assert_allclose(grad_x, expected[1], rtol=1e-12, atol=1e-12)
        inner = (grad_out * convolved).sum()
        assert numpy.isclose((grad_weight * probe).sum(), inner, rtol=1e-12)


@pytest.mark.parametrize("padding", [0, 1])
def test_staged_batch_inner_copies_match_a_plain_transpose(monkeypatch, padding):
    # images of 2 KiB (4 channels of 8×8 float64) take the staged copy; a stage of three
    # channels leaves a remainder block of one
    monkeypatch.setattr(backend, "_STAGE_BYTES", 3 * 6 * 8 * 8 * 8)
    rng = numpy.random.default_rng(12)
    src = rng.standard_normal((6, 4, 8, 8))
    assert src.strides[0] % 2048 == 0
    for source in (src, src[:, :, ::-1]):  # and a source that is not contiguous
        out = numpy.zeros((4, 8 + 2 * padding, 8 + 2 * padding, 6))
        interior = out[:, padding : padding + 8, padding : padding + 8]
        backend.copy_batch_innermost(interior, source)
        expected = numpy.zeros_like(out)
        expected[:, padding : padding + 8, padding : padding + 8] = numpy.moveaxis(source, 0, -1)
        numpy.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("stride_w", [2, 3])
@pytest.mark.parametrize("padding", [((0, 0), (0, 0)), ((1, 2), (1, 2)), ((2, 0), (4, 0))])
def test_phase_workspace_holds_every_phase_of_the_padded_input(monkeypatch, stride_w, padding):
    # element [c, h, φ, q, n] is the padded input at column q·SW + φ, zero past its width;
    # images of 2 KiB take the staged copy, a stage of three channels leaves one over
    monkeypatch.setattr(backend, "_STAGE_BYTES", 3 * 6 * 8 * 8 * 8)
    rng = numpy.random.default_rng(14)
    x = rng.standard_normal((6, 4, 8, 8))
    padded = numpy.pad(x, ((0, 0), (0, 0), *padding))
    width = padded.shape[3]
    phases = -(-width // stride_w)
    expected = numpy.zeros((4, padded.shape[2], stride_w, phases, 6))
    for phase in range(stride_w):
        for q in range(phases):
            if q * stride_w + phase < width:
                expected[:, :, phase, q] = padded[..., q * stride_w + phase].transpose(1, 2, 0)
    numpy.testing.assert_array_equal(im2col_ops.phase_workspace(x, padding, stride_w), expected)


def test_batch_inner_order_with_images_of_a_power_of_two_bytes(monkeypatch):
    # the staged transposes into and out of the batch-inner order, against the loops
    monkeypatch.setattr(conv_ops, "_order", lambda *shape, **_: "hwn")
    monkeypatch.setattr(backend, "_STAGE_BYTES", 3 * 8 * 8 * 8 * 8)
    rng = numpy.random.default_rng(13)
    x, weight = rng.standard_normal((8, 4, 8, 8)), rng.standard_normal((4, 4, 3, 3))
    grad_out = rng.standard_normal((8, 4, 8, 8))
    padding = ((1, 1), (1, 1))
    y = conv_ops.conv2d_forward(x, weight, None, (1, 1), padding, (1, 1), 1)
    numpy.testing.assert_allclose(y, naive_conv2d(x, weight, padding=1), atol=1e-12)
    grad_x = conv_ops.conv2d_input_grad(grad_out, weight, (8, 8), (1, 1), padding, (1, 1), 1)
    expected = naive_conv_transpose2d(grad_out, weight, padding=1)  # its adjoint
    numpy.testing.assert_allclose(grad_x, expected, atol=1e-12)
    grad_weight = conv_ops.conv2d_weight_grad(x, grad_out, (3, 3), (1, 1), padding, (1, 1), 1)
    expected = naive_weight_grad(x, grad_out, (3, 3), padding=1)
    numpy.testing.assert_allclose(grad_weight, expected, atol=1e-12)


def test_batch_inner_outputs_flow_through_relu_pooling_and_the_next_convolution(monkeypatch):
    # In the batch-inner order a convolution returns (N, O, OH, OW) values stored as
    # (O, OH, OW, N); the pool keeps that layout, the next convolution reads it as its
    # workspace without a copy, and the gradients come back in it.
    monkeypatch.setattr(conv_ops, "_order", lambda *shape, **_: "hwn")
    rng = numpy.random.default_rng(11)
    x = _leaf(rng.standard_normal((3, 2, 8, 8)))
    first, first_bias = _leaf(rng.standard_normal((4, 2, 3, 3))), _leaf(rng.standard_normal(4))
    second, second_bias = _leaf(rng.standard_normal((5, 4, 2, 2))), _leaf(rng.standard_normal(5))

    def network(x, first, first_bias, second, second_bias):
        hidden = F.conv2d(x, first, first_bias, padding=1)
        assert hidden.data.strides[0] == hidden.data.itemsize  # the batch is innermost
        pooled = F.max_pool2d(hidden.relu(), 2)
        assert pooled.data.strides[0] == pooled.data.itemsize
        return F.conv2d(pooled, second, second_bias)

    hidden = numpy.maximum(naive_conv2d(*map(to_numpy, (x, first, first_bias)), padding=1), 0)
    pooled = hidden.reshape(3, 4, 4, 2, 4, 2).max(axis=(3, 5))
    expected = naive_conv2d(pooled, to_numpy(second), to_numpy(second_bias))
    inputs = [x, first, first_bias, second, second_bias]
    numpy.testing.assert_allclose(to_numpy(network(*inputs)), expected, rtol=1e-12, atol=1e-12)
    assert tc.gradcheck(network, inputs)


@pytest.mark.parametrize("order", ["nhw", "hwn"])
@pytest.mark.parametrize("stride_h, dilation_h", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize(
    "padding", [((1, 2), (2, 1)), ((-1, 0), (0, -2)), ((0, 3), (6, 5))], ids=str
)
@pytest.mark.parametrize("stored", ["nchw", "batch_inner"])
@pytest.mark.parametrize("width", [13, 4])
def test_conv_windows_hold_the_input_under_every_tap(
    order, stride_h, dilation_h, padding, stored, width
):
    # the column matrices (views of the row columns, or im2col's) against the padded
    # input read pixel by pixel; a negative padding crops, and with the widest one
    # some kernel columns read nothing but padding at some outputs. 4 columns are
    # narrower than the kernel's reach, so no output has every tap inside. Stored
    # batch-inner, x itself is the row columns' workspace in the "hwn" order.
    rng = numpy.random.default_rng(15)
    groups, channels, kernel, dilation_w = 2, 4, (2, 3), 2
    stride, dilation = (stride_h, 3), (dilation_h, dilation_w)
    x = rng.standard_normal((3, channels, 9, width))
    if stored == "batch_inner":
        x = im2col_ops.batch_inner(x)
        assert im2col_ops.stored_batch_inner(x)
    (top, bottom), (left, right) = padding
    cropped = x[:, :, max(-top, 0) : 9 - max(-bottom, 0), max(-left, 0) : width - max(-right, 0)]
    widths = ((0, 0), (0, 0), (max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0)))
    padded = numpy.pad(cropped, widths)
    out_h = (padded.shape[2] - dilation_h * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (padded.shape[3] - dilation_w * (kernel[1] - 1) - 1) // stride[1] + 1
    if out_w < 1:
        pytest.skip("the kernel does not fit the padded input")
    by_rows = stride_h == 1 and dilation_h == 1
    # what the windows do not write stays NaN: the scratch buffer they are built in
    backend.scratch((2**16,), x.dtype, x)[...] = numpy.nan
    windows = im2col_ops.conv_windows(
        x, order, groups, kernel, stride, dilation, padding, (out_h, out_w), by_rows
    )
    blocks = out_h if by_rows else 1
    per_group = channels // groups
    # expected[g, k, n, oh, ow], the taps k ordered (i, c, j)
    expected = numpy.empty((groups, kernel[0] * per_group * kernel[1], 3, out_h, out_w))
    taps = [(i, c, j) for i in range(kernel[0]) for c in range(per_group) for j in range(kernel[1])]
    for g in range(groups):
        for k, (i, c, j) in enumerate(taps):
            for oh in range(out_h):
                for ow in range(out_w):
                    row, col = oh * stride[0] + i * dilation_h, ow * stride[1] + j * dilation_w
                    expected[g, k, :, oh, ow] = padded[:, g * per_group + c, row, col]
    positions = im2col_ops.window_order(order, by_rows)
    expected = expected.transpose(0, 1, *(2 + "nhw".index(axis) for axis in positions))
    expected = expected.reshape(groups, len(taps), blocks, -1).transpose(0, 2, 1, 3)
    assert windows.shape == expected.shape
    numpy.testing.assert_array_equal(windows, expected)


@pytest.mark.parametrize("order", ["nhw", "hwn"])
@pytest.mark.parametrize(
    "kernel, stride, dilation, padding",
    [
        ((3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),  # overlapping, a tap covers the input
        ((3, 2), (2, 1), (1, 2), ((2, 0), (0, 3))),  # overlapping, uneven padding
        ((2, 2), (3, 3), (1, 1), ((0, 1), (1, 0))),  # windows with gaps between them
        ((1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),  # one tap, assigned
    ],
)
def test_col2im_is_the_adjoint_of_im2col(order, kernel, stride, dilation, padding):
    # <im2col(x), c> = <x, col2im(c)> for every x and c, padding dropped
    rng = numpy.random.default_rng(16)
    x = rng.standard_normal((2, 3, 7, 8))
    out_size = tuple(
        (size + sum(pads) - d * (k - 1) - 1) // s + 1
        for size, pads, k, s, d in zip(x.shape[2:], padding, kernel, stride, dilation)
    )
    workspace = im2col_ops.to_workspace(x, padding, order)
    columns = im2col_ops.im2col(workspace, order, 1, kernel, stride, dilation, out_size)[0]
    columns = columns.transpose(1, 0, 2, *range(3, columns.ndim))  # (C, KH, KW, ...)
    upstream = rng.standard_normal(columns.shape)
    back = numpy.full(x.shape, numpy.nan)
    im2col_ops.col2im(upstream, back, order, kernel, stride, dilation, padding)
    assert numpy.isclose((columns * upstream).sum(), (x * back).sum(), rtol=1e-12)


@pytest.mark.parametrize("as_convolution", [True, False], ids=["convolution", "rows-or-width"])
@pytest.mark.parametrize(
    "kernel, padding, dilation, groups, extra",
    [
        ((3, 3), 1, 1, 1, 0),
        ((2, 3), 0, (2, 1), 2, 0),
        ((3, 2), 2, 1, 1, 1),  # padding beyond the kernel's reach; one more row and column
        ((1, 1), 0, 1, 3, 0),
        ((2, 2), 0, 1, 1, 2),  # the last input row's window holds no dL/dy at all
    ],
)
def test_stride_one_input_gradient_both_ways(
    monkeypatch, as_convolution, kernel, padding, dilation, groups, extra
):
    # with many channels per group, as a convolution of dL/dy; with few, by row windows
    # (or, with a dilation along H, by width columns)
    monkeypatch.setattr(conv_ops, "_CHANNELS_FOR_A_CONVOLUTION", 1 if as_convolution else 10**9)
    rng = numpy.random.default_rng(17)
    grad_out = rng.standard_normal((2, 3 * groups, 5, 6))
    weight = rng.standard_normal((3 * groups, 2, *kernel))
    expected = naive_conv_transpose2d(
        grad_out, weight, padding=padding, output_padding=extra, groups=groups, dilation=dilation
    )
    pads = normalize_padding(padding, kernel, dilation)
    dilation = pair(dilation, "dilation")
    ours = conv_ops.conv2d_input_grad(
        grad_out, weight, expected.shape[2:], (1, 1), pads, dilation, groups
    )
    numpy.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)
    if as_convolution:
        way = conv_ops._input_grad_as_convolution
    elif dilation[0] == 1:
        way = conv_ops._input_grad_by_row_windows
    else:
        way = conv_ops._input_grad_by_width_columns
    assert conv_ops._input_grad_way(grad_out, weight, (1, 1), dilation) is way


@pytest.mark.parametrize("batch", [2, 33], ids=["nhw", "hwn"])
@pytest.mark.parametrize(
    "kernel, stride, padding, extra, groups",
    [
        ((4, 4), (2, 2), 1, 0, 1),
        ((2, 2), (2, 2), 0, 1, 1),  # one tap per phase
        ((6, 3), (3, 3), (2, 0), (2, 1), 2),
        ((4, 2), (2, 2), (3, 1), (1, 0), 1),  # padding past a stride: the first p > 0
        ((3, 4), (3, 2), (0, 2), 0, 3),
    ],
)
def test_input_gradient_by_sub_pixels(monkeypatch, batch, kernel, stride, padding, extra, groups):
    # a kernel that is a multiple of the stride: one stride-1 convolution for all phases
    calls = []
    sub_pixels = conv_ops._input_grad_by_sub_pixels
    monkeypatch.setattr(
        conv_ops,
        "_input_grad_by_sub_pixels",
        lambda *args: calls.append(args) or sub_pixels(*args),
    )
    rng = numpy.random.default_rng(23)
    grad_out = rng.standard_normal((batch, 2 * groups, 4, 5))
    weight = rng.standard_normal((2 * groups, 3, *kernel))
    expected = naive_conv_transpose2d(
        grad_out, weight, stride=stride, padding=padding, output_padding=extra, groups=groups
    )
    pads = normalize_padding(padding, kernel, (1, 1))
    ours = conv_ops.conv2d_input_grad(
        grad_out, weight, expected.shape[2:], stride, pads, (1, 1), groups
    )
    assert len(calls) == 1
    numpy.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def test_convolutions_in_two_threads_at_once_give_their_own_results():
    # im2col reuses a scratch buffer; each thread must have its own
    rng = numpy.random.default_rng(14)
    weight = rng.standard_normal((8, 4, 3, 3)).astype(numpy.float32)
    inputs = [rng.standard_normal((4, 4, 24, 24)).astype(numpy.float32) for _ in range(2)]
    options = ((1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    expected = [conv_ops.conv2d_forward(x, weight, None, *options) for x in inputs]
    mismatches = []

    def convolve(x, reference):
        for _ in range(300):
            if not numpy.array_equal(conv_ops.conv2d_forward(x, weight, None, *options), reference):
                mismatches.append(1)

    workers = [threading.Thread(target=convolve, args=pair) for pair in zip(inputs, expected)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not mismatches


def test_releasing_the_scratch_buffers_reaches_other_threads():
    # set_workspace_limit releases them: a thread's next call must not hand out a buffer
    # kept under the old limit
    like = numpy.zeros(1)
    buffers = []
    taken, released = threading.Event(), threading.Event()

    def worker():
        buffers.append(backend.scratch((1000,), numpy.float64, like))
        taken.set()
        released.wait(timeout=10)
        buffers.append(backend.scratch((1000,), numpy.float64, like))

    thread = threading.Thread(target=worker)
    thread.start()
    taken.wait(timeout=10)
    backend.release_scratch()
    released.set()
    thread.join()
    assert len(buffers) == 2 and not numpy.shares_memory(*buffers)


def test_workspace_limit_is_settable_and_checked():
    before = conv_ops.get_workspace_limit()
    try:
        conv_ops.set_workspace_limit(1024)
        assert conv_ops.get_workspace_limit() == 1024
        with pytest.raises(ValueError, match="nbytes"):
            conv_ops.set_workspace_limit(0)
    finally:
        conv_ops.set_workspace_limit(before)


def test_float32_stays_float32_through_forward_and_backward():
    rng = numpy.random.default_rng(4)
    x = _leaf(rng.standard_normal((2, 3, 6, 6)).astype(numpy.float32))
    weight = _leaf(rng.standard_normal((4, 3, 3, 3)).astype(numpy.float32))
    bias = _leaf(rng.standard_normal(4).astype(numpy.float32))
    y = F.conv2d(x, weight, bias, padding=1)
    z = F.conv_transpose2d(y, weight, stride=2)
    assert y.dtype is tc.float32 and z.dtype is tc.float32
    z.sum().backward()
    for tensor in (x, weight, bias):
        assert tensor.grad.dtype is tc.float32


def test_unbatched_input_is_one_sample():
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((3, 6, 5))
    weight, bias = tc.tensor(rng.standard_normal((2, 3, 3, 3))), tc.tensor(rng.standard_normal(2))
    y = F.conv2d(tc.tensor(x), weight, bias, padding=1)
    assert y.shape == (2, 6, 5)
    batched = F.conv2d(tc.tensor(x[None]), weight, bias, padding=1)
    numpy.testing.assert_array_equal(y.numpy(), batched.numpy()[0])
    z = F.conv_transpose2d(tc.tensor(x), tc.tensor(rng.standard_normal((3, 2, 2, 2))), stride=2)
    assert z.shape == (2, 12, 10)


def test_an_empty_batch_gives_empty_outputs_and_zero_weight_gradients():
    x = _leaf(numpy.ones((0, 2, 5, 5)))
    weight, bias = _leaf(numpy.ones((3, 2, 3, 3))), _leaf(numpy.ones(3))
    y = F.conv2d(x, weight, bias, padding=1)
    z = F.max_pool2d(F.conv_transpose2d(y, weight.detach().requires_grad_(), stride=2), 2)
    assert y.shape == (0, 3, 5, 5) and z.shape == (0, 2, 5, 5)
    (y.sum() + z.sum()).backward()
    assert x.grad.shape == (0, 2, 5, 5) and not weight.grad.numpy().any()
    assert not bias.grad.numpy().any()


def test_gradient_of_an_unused_input_is_not_computed():
    rng = numpy.random.default_rng(6)
    x = tc.tensor(rng.standard_normal((1, 2, 5, 5)))  # does not require grad
    weight = _leaf(rng.standard_normal((3, 2, 3, 3)))
    F.conv2d(x, weight).sum().backward()
    assert x.grad is None and weight.grad.shape == (3, 2, 3, 3)


# -- gradients against finite differences, over a grid of every argument --------------

BASE = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
CONV_GRID = [
    {**BASE, **change}
    for change in [
        {},
        {"stride": 2},
        {"stride": (1, 3)},
        {"padding": 1},
        {"padding": (2, 0)},
        {"padding": "same"},
        {"padding": "valid"},
        {"dilation": 2},
        {"dilation": (2, 1), "padding": "same"},
        {"groups": 2},
        {"stride": 2, "padding": 1, "dilation": 2, "groups": 2},
    ]
]


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("options", CONV_GRID)
def test_conv2d_gradients_match_finite_differences(options, with_bias, device):
    rng = numpy.random.default_rng(7)
    x = _leaf(rng.standard_normal((2, 4, 6, 5)), device)
    weight = _leaf(rng.standard_normal((4, 4 // options["groups"], 3, 2)), device)
    inputs = [x, weight] + ([_leaf(rng.standard_normal(4), device)] if with_bias else [])
    assert tc.gradcheck(lambda *args: F.conv2d(*args, **options), inputs)


@pytest.mark.parametrize("stride", [(2, 1), (1, 2)], ids=["im2col", "row-columns"])
@pytest.mark.parametrize(
    ("keep_bytes", "workspace_limit"),
    [(0, 2**28), (2**28, 2**28), (2**28, 1)],
    ids=["columns-built-again", "columns-kept", "columns-kept-per-chunk"],
)
def test_weight_gradient_from_kept_or_rebuilt_columns_matches_finite_differences(
    monkeypatch, keep_bytes, workspace_limit, stride
):
    # the forward keeps its columns for the weight gradient when they are small enough,
    # one array per batch chunk; otherwise the backward builds them again
    monkeypatch.setattr(conv_ops, "_KEEP_COLUMNS_BYTES", keep_bytes)
    monkeypatch.setattr(conv_ops, "_workspace_limit", workspace_limit)
    rng = numpy.random.default_rng(8)
    x = _leaf(rng.standard_normal((3, 2, 5, 6)))
    weight = _leaf(rng.standard_normal((3, 2, 3, 3)))
    options = {"stride": stride, "padding": 1}
    assert tc.gradcheck(lambda *args: F.conv2d(*args, **options), [x, weight])


@pytest.mark.parametrize("limits", [(2**28, 30000), (30000, 2**28)], ids=["lowered", "raised"])
def test_weight_gradient_when_the_workspace_limit_changes_between_forward_and_backward(
    monkeypatch, limits
):
    # the forward's kept columns are laid out in the order its limit chose; the backward
    # must read them so even when the limit in force now would choose the other order
    # (30000 bytes: chunks of 4 images, so that the orders differ within a chunk)
    rng = numpy.random.default_rng(9)
    x_values, w_values = rng.standard_normal((12, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3))
    grad_values = rng.standard_normal((12, 4, 9, 9))
    orders = []
    for limit in limits:
        monkeypatch.setattr(conv_ops, "_workspace_limit", limit)
        orders.append(conv_ops._columns_order(x_values, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)))
    assert orders[0][2] != orders[1][2]  # the two limits lay the columns out differently
    x, weight = _leaf(x_values), _leaf(w_values)
    monkeypatch.setattr(conv_ops, "_workspace_limit", limits[0])
    y = F.conv2d(x, weight, padding=1)
    monkeypatch.setattr(conv_ops, "_workspace_limit", limits[1])
    y.backward(tc.tensor(grad_values))
    expected = naive_weight_grad(x_values, grad_values, (3, 3), padding=1)
    numpy.testing.assert_allclose(weight.grad.numpy(), expected, rtol=1e-10, atol=1e-10)


CONV_TRANSPOSE_GRID = [
    {**BASE, "output_padding": 0, **change}
    for change in [
        {},
        {"stride": 2},
        {"stride": (3, 1), "output_padding": (2, 0)},
        {"padding": 1},
        {"padding": (0, 2), "stride": 2},
        {"dilation": 2, "output_padding": 1},
        {"groups": 2},
        {"stride": 2, "padding": 1, "dilation": (1, 2), "groups": 2, "output_padding": 1},
    ]
]


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("options", CONV_TRANSPOSE_GRID)
def test_conv_transpose2d_gradients_match_finite_differences(options, with_bias, device):
    rng = numpy.random.default_rng(8)
    x = _leaf(rng.standard_normal((2, 4, 4, 3)), device)
    weight = _leaf(rng.standard_normal((4, 2, 3, 2)), device)
    inputs = [x, weight] + (
        [_leaf(rng.standard_normal(2 * options["groups"]), device)] if with_bias else []
    )
    assert tc.gradcheck(lambda *args: F.conv_transpose2d(*args, **options), inputs)


# -- PyTorch parity on random configurations -------------------------------------------

PARITY_SEEDS = range(200)


def _random_pair(rng, low, high):
    return (int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1)))


def _random_geometry(rng):
    """groups, in and out channels (multiples of groups), kernel, stride and dilation."""
    groups = int(rng.choice([1, 1, 2, 3]))
    in_channels, out_channels = (
        groups * int(rng.integers(1, 4)),
        groups * int(rng.integers(1, 4)),
    )
    kernel, stride, dilation = (
        _random_pair(rng, 1, 4),
        _random_pair(rng, 1, 3),
        _random_pair(rng, 1, 2),
    )
    return groups, in_channels, out_channels, kernel, stride, dilation


def _random_batch(rng, groups):
    # a batch of 33 small images takes the batch-inner workspace order (PyTorch's
    # grouped float64 kernels are slow, so only ungrouped)
    return int(rng.choice([1, 2, 3, 33] if groups == 1 else [1, 2, 3]))


def _random_conv(rng):
    """A random valid conv2d call: arrays and keyword arguments."""
    while True:
        groups, in_channels, out_channels, kernel, stride, dilation = _random_geometry(rng)
        padding = _random_pair(rng, 0, 2) if rng.random() < 0.8 else "same"
        if padding == "same":
            stride = 1
        batch = _random_batch(rng, groups)
        height, width = _random_pair(rng, 1, 10)
        options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        (top, bottom), (left, right) = normalize_padding(padding, kernel, dilation)
        if (
            height + top + bottom < dilation[0] * (kernel[0] - 1) + 1
            or width + left + right < dilation[1] * (kernel[1] - 1) + 1
        ):
            continue
        x = rng.standard_normal((batch, in_channels, height, width))
        weight = rng.standard_normal((out_channels, in_channels // groups, *kernel))
        bias = rng.standard_normal(out_channels) if rng.random() < 0.7 else None
        return x, weight, bias, options


def _random_conv_transpose(rng):
    while True:
        groups, in_channels, out_channels, kernel, stride, dilation = _random_geometry(rng)
        padding = _random_pair(rng, 0, 2)
        output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        batch = _random_batch(rng, groups)
        height, width = _random_pair(rng, 1, 6)
        sizes = [
            (size - 1) * s - 2 * p + d * (k - 1) + extra + 1
            for size, s, p, d, k, extra in zip(
                (height, width), stride, padding, dilation, kernel, output_padding
            )
        ]
        if min(sizes) < 1:
            continue
        options = {
            "stride": stride,
            "padding": padding,
            "output_padding": output_padding,
            "groups": groups,
            "dilation": dilation,
        }
        x = rng.standard_normal((batch, in_channels, height, width))
        weight = rng.standard_normal((in_channels, out_channels // groups, *kernel))
        bias = rng.standard_normal(out_channels) if rng.random() < 0.7 else None
        return x, weight, bias, options


def _check_parity(torch, ours_fn, theirs_fn, x, weight, bias, options, seed):
    arrays = [x, weight] + ([] if bias is None else [bias])
    ours = [_leaf(array) for array in arrays]
    theirs = [torch.tensor(array, requires_grad=True) for array in arrays]
    y = ours_fn(*ours[:2], ours[2] if bias is not None else None, **options)
    expected = theirs_fn(*theirs[:2], theirs[2] if bias is not None else None, **options)
    what = f"seed {seed}: x {x.shape}, weight {weight.shape}, bias {bias is not None}, {options}"
    numpy.testing.assert_allclose(
        to_numpy(y), expected.detach().numpy(), rtol=1e-6, atol=1e-6, err_msg=what
    )
    upstream = numpy.random.default_rng(seed).standard_normal(expected.shape)
    y.backward(tc.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    for name, mine, reference in zip(("input", "weight", "bias"), ours, theirs):
        numpy.testing.assert_allclose(
            to_numpy(mine.grad),
            reference.grad.numpy(),
            rtol=1e-6,
            atol=1e-6,
            err_msg=f"grad of {name}, {what}",
        )


@pytest.mark.parametrize("seed", PARITY_SEEDS)
def test_conv2d_matches_pytorch(torch, seed):
    x, weight, bias, options = _random_conv(numpy.random.default_rng(seed))
    _check_parity(torch, F.conv2d, torch.nn.functional.conv2d, x, weight, bias, options, seed)


@pytest.mark.parametrize("seed", PARITY_SEEDS)
def test_conv_transpose2d_matches_pytorch(torch, seed):
    x, weight, bias, options = _random_conv_transpose(numpy.random.default_rng(1000 + seed))
    _check_parity(
        torch,
        F.conv_transpose2d,
        torch.nn.functional.conv_transpose2d,
        x,
        weight,
        bias,
        options,
        seed,
    )


@pytest.mark.parametrize("seed", PARITY_SEEDS[:50])
def test_input_gradient_as_a_convolution_matches_pytorch(torch, seed, monkeypatch):
    # the random layers are too thin for that way: here every one of stride 1 takes it
    monkeypatch.setattr(conv_ops, "_CHANNELS_FOR_A_CONVOLUTION", 1)
    rng = numpy.random.default_rng(seed)
    x, weight, bias, options = _random_conv(rng)
    _check_parity(torch, F.conv2d, torch.nn.functional.conv2d, x, weight, bias, options, seed)
    x, weight, bias, options = _random_conv_transpose(rng)
    functional = torch.nn.functional.conv_transpose2d
    _check_parity(torch, F.conv_transpose2d, functional, x, weight, bias, options, seed)


def test_float32_matches_pytorch_to_float32_tolerance(torch):
    rng = numpy.random.default_rng(9)
    x = rng.standard_normal((8, 6, 12, 12)).astype(numpy.float32)
    weight = rng.standard_normal((16, 6, 5, 5)).astype(numpy.float32)
    ours = F.conv2d(tc.tensor(x), tc.tensor(weight), padding=2).numpy()
    theirs = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(weight), padding=2).numpy()
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


_INPUT_GRAD_WAYS = (
    "_input_grad_as_convolution",
    "_input_grad_by_row_windows",
    "_input_grad_by_width_columns",
    "_input_grad_by_sub_pixels",
    "_input_grad_by_column_phases",
    "_input_grad_by_columns",
)


def test_parity_configurations_cover_every_argument(monkeypatch):
    # the random configurations above really exercise each option; spies on the calls
    # record which column method and order each layer's forward takes, and which way
    # conv2d_input_grad takes in their backward (or a transposed convolution's forward)
    configs = [_random_conv(numpy.random.default_rng(seed))[3] for seed in PARITY_SEEDS]
    assert {c["groups"] for c in configs} >= {1, 2, 3}
    assert any(c["padding"] == "same" for c in configs)
    assert any(c["stride"] not in (1, (1, 1)) for c in configs)
    assert any(c["dilation"] != (1, 1) for c in configs)

    ways, windows, recording_windows = [], set(), [False]

    def spy(name, function, record):
        def spied(*args, **kwargs):
            record(args, kwargs)
            return function(*args, **kwargs)

        monkeypatch.setattr(conv_ops, name, spied)

    for name in _INPUT_GRAD_WAYS:
        spy(name, getattr(conv_ops, name), lambda *_, name=name: ways.append(name))
    parameters = inspect.signature(conv_ops.conv_windows).parameters

    def windows_taken(args, kwargs):
        if recording_windows[0]:
            given = {**dict(zip(parameters, args)), **kwargs}
            windows.add((given["order"], given["by_rows"]))

    spy("conv_windows", conv_ops.conv_windows, windows_taken)
    for seed in PARITY_SEEDS:
        x, weight, _, options = _random_conv(numpy.random.default_rng(seed))
        recording_windows[0] = True
        with tc.no_grad():  # the layer's own columns only
            F.conv2d(tc.tensor(x), tc.tensor(weight), **options)
        recording_windows[0] = False
        y = F.conv2d(_leaf(x), _leaf(weight), **options)
        y.backward(tc.tensor(numpy.ones(y.shape)))
        x, weight, _, options = _random_conv_transpose(numpy.random.default_rng(1000 + seed))
        F.conv_transpose2d(tc.tensor(x), tc.tensor(weight), **options)
    # the layers are too thin for the first way, which
    # test_input_gradient_as_a_convolution_matches_pytorch forces
    assert set(ways) == set(_INPUT_GRAD_WAYS[1:])
    assert {order for order, _ in windows} == {"nhw", "hwn"}
    assert {by_rows for _, by_rows in windows} == {True, False}  # row columns and im2col
