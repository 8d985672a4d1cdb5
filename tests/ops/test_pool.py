"""max_pool2d, avg_pool2d and the adaptive pools: against loops written from the
definition, finite differences, and PyTorch on hundreds of random configurations."""

from __future__ import annotations

import math
import warnings

import numpy
import pytest

import tinyconv as tc
from tinyconv.nn import conv_functional as F
from tinyconv.ops.sizes import pool_output_size


def to_numpy(tensor):
    """A tensor's values on the host, graph or not."""
    return numpy.asarray(tc.backend.to_device(tensor.data, "cpu"))


# -- references, one window at a time --------------------------------------------------


def _windows(size, kernel, stride, padding, dilation, ceil_mode):
    """For each output position along one axis: the input positions its window covers,
    padding positions included (as indices that may fall outside [0, size))."""
    out = pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
    return [[o * stride - padding + t * dilation for t in range(kernel)] for o in range(out)]


def naive_max_pool2d(x, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
    """Scan each window from its first position inside the input, starting at -inf and
    keeping a value that is larger or NaN (PyTorch's rule); returns values, flat indices."""
    batch, channels, height, width = x.shape
    rows = _windows(height, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    cols = _windows(width, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    values = numpy.empty((batch, channels, len(rows), len(cols)))
    indices = numpy.empty(values.shape, dtype=numpy.int64)
    for n in range(batch):
        for c in range(channels):
            for oh, window_rows in enumerate(rows):
                for ow, window_cols in enumerate(cols):
                    best, where = -math.inf, None
                    for h in window_rows:
                        for w in window_cols:
                            if 0 <= h < height and 0 <= w < width:
                                where = h * width + w if where is None else where
                                value = x[n, c, h, w]
                                if value > best or math.isnan(value):
                                    best, where = value, h * width + w
                    values[n, c, oh, ow], indices[n, c, oh, ow] = best, where
    return values, indices


def naive_avg_pool2d(
    x, kernel, stride, padding, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    """Sum of the window's input values over PyTorch's divisor."""
    batch, channels, height, width = x.shape
    rows = _windows(height, kernel[0], stride[0], padding[0], 1, ceil_mode)
    cols = _windows(width, kernel[1], stride[1], padding[1], 1, ceil_mode)
    y = numpy.empty((batch, channels, len(rows), len(cols)))
    for oh, window_rows in enumerate(rows):
        for ow, window_cols in enumerate(cols):
            inside_rows = [h for h in window_rows if 0 <= h < height]
            inside_cols = [w for w in window_cols if 0 <= w < width]
            total = x[:, :, inside_rows][:, :, :, inside_cols].sum(axis=(2, 3))
            if divisor_override:
                divisor = divisor_override
            elif count_include_pad:  # the window, clipped to the padded input
                divisor = sum(h < height + padding[0] for h in window_rows) * sum(
                    w < width + padding[1] for w in window_cols
                )
            else:
                divisor = len(inside_rows) * len(inside_cols)
            y[:, :, oh, ow] = total / divisor
    return y


def naive_adaptive(x, out_size, reduce):
    """Window o along an axis of length L covers [floor(o·L/out), ceil((o+1)·L/out))."""
    batch, channels, height, width = x.shape
    y = numpy.empty((batch, channels, *out_size))
    for oh in range(out_size[0]):
        top, bottom = oh * height // out_size[0], -(-(oh + 1) * height // out_size[0])
        for ow in range(out_size[1]):
            left, right = ow * width // out_size[1], -(-(ow + 1) * width // out_size[1])
            y[:, :, oh, ow] = reduce(x[:, :, top:bottom, left:right], axis=(2, 3))
    return y


def _leaf(array, device="cpu"):
    return tc.tensor(array, device=device, requires_grad=True)


LAYOUTS = ["nchw", "batch-inner"]


def _laid_out(array, layout):
    """The same (N, C, H, W) values, stored as NCHW or with the batch innermost, as
    (C, H, W, N): the layout of a convolution's output when it works batch-inner."""
    if layout == "nchw":
        return array
    stored = numpy.ascontiguousarray(array.transpose(1, 2, 3, 0))
    assert stored.transpose(3, 0, 1, 2).strides[0] == array.itemsize
    return stored.transpose(3, 0, 1, 2)


# -- forward against the loops ---------------------------------------------------------

MAX_CASES = [
    # kernel, stride, padding, dilation, ceil_mode, input (H, W)
    ((2, 2), (2, 2), (0, 0), (1, 1), False, (6, 6)),
    ((3, 3), (2, 2), (1, 1), (1, 1), False, (7, 6)),
    ((3, 2), (1, 2), (1, 0), (1, 1), True, (5, 7)),
    ((3, 3), (2, 2), (1, 1), (2, 2), True, (9, 8)),
    ((2, 2), (3, 3), (1, 1), (1, 1), True, (7, 7)),  # ceil_mode drops a window in the padding
    ((1, 4), (1, 4), (0, 2), (1, 1), False, (3, 9)),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel, stride, padding, dilation, ceil_mode, size", MAX_CASES)
def test_max_pool2d_matches_the_definition(
    kernel, stride, padding, dilation, ceil_mode, size, layout, device
):
    rng = numpy.random.default_rng(0)
    x = numpy.round(rng.standard_normal((2, 3, *size)) * 2)  # rounding makes ties
    values, indices = F.max_pool2d(
        tc.tensor(_laid_out(x, layout), device=device),
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
        return_indices=True,
    )
    expected_values, expected_indices = naive_max_pool2d(
        x, kernel, stride, padding, dilation, ceil_mode
    )
    numpy.testing.assert_array_equal(to_numpy(values), expected_values)
    numpy.testing.assert_array_equal(to_numpy(indices), expected_indices)
    assert indices.dtype is tc.int64


def test_max_pool2d_first_maximum_takes_the_whole_gradient():
    x = _leaf(numpy.array([[[[1.0, 3.0], [3.0, 2.0]]]]))
    F.max_pool2d(x, 2).sum().backward()
    numpy.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_max_pool2d_overlapping_windows_add_their_gradients():
    x = _leaf(numpy.array([[[[0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]]]]))
    F.max_pool2d(x, 2, stride=1).sum().backward()  # the centre wins all four windows
    assert x.grad.numpy()[0, 0, 1, 1] == 4.0 and x.grad.numpy().sum() == 4.0


def test_max_pool2d_propagates_nan_and_routes_its_gradient_to_the_last_nan():
    x = numpy.array([[[[1.0, numpy.nan], [numpy.nan, 5.0]]]])
    values, indices = F.max_pool2d(tc.tensor(x), 2, return_indices=True)
    assert numpy.isnan(values.numpy()).all() and indices.numpy().item() == 2
    leaf = _leaf(x)
    F.max_pool2d(leaf, 2).sum().backward()
    numpy.testing.assert_array_equal(leaf.grad.numpy(), [[[[0.0, 0.0], [1.0, 0.0]]]])


def test_max_pool2d_pads_with_minus_infinity():
    x = -numpy.ones((1, 1, 2, 2))
    y = F.max_pool2d(tc.tensor(x), 2, stride=1, padding=1)
    numpy.testing.assert_array_equal(y.numpy(), -numpy.ones((1, 1, 3, 3)))


AVG_CASES = [
    # kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, (H, W)
    ((2, 2), (2, 2), (0, 0), False, True, None, (6, 6)),
    ((3, 3), (1, 1), (1, 1), False, True, None, (5, 6)),
    ((3, 3), (1, 1), (1, 1), False, False, None, (5, 6)),
    ((3, 2), (2, 2), (1, 1), True, True, None, (6, 5)),
    ((3, 2), (2, 2), (1, 1), True, False, None, (6, 5)),
    ((2, 3), (2, 1), (1, 0), True, True, 5, (5, 5)),
    ((4, 4), (3, 3), (2, 2), True, True, None, (8, 8)),
]


@pytest.mark.parametrize(
    "kernel, stride, padding, ceil_mode, include_pad, divisor, size", AVG_CASES
)
def test_avg_pool2d_matches_the_definition(
    kernel, stride, padding, ceil_mode, include_pad, divisor, size, device
):
    x = numpy.random.default_rng(1).standard_normal((2, 3, *size))
    y = F.avg_pool2d(
        tc.tensor(x, device=device), kernel, stride, padding, ceil_mode, include_pad, divisor
    )
    expected = naive_avg_pool2d(x, kernel, stride, padding, ceil_mode, include_pad, divisor)
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "size, out_size",
    [((6, 6), (3, 2)), ((7, 5), (3, 4)), ((5, 9), (5, 1)), ((3, 4), (7, 6)), ((8, 8), (1, 1))],
)
def test_adaptive_pools_match_the_definition(size, out_size, device):
    x = numpy.round(numpy.random.default_rng(2).standard_normal((2, 3, *size)) * 2)
    average = F.adaptive_avg_pool2d(tc.tensor(x, device=device), out_size)
    maximum = F.adaptive_max_pool2d(tc.tensor(x, device=device), out_size)
    numpy.testing.assert_allclose(
        to_numpy(average), naive_adaptive(x, out_size, numpy.mean), rtol=1e-12, atol=1e-12
    )
    numpy.testing.assert_array_equal(to_numpy(maximum), naive_adaptive(x, out_size, numpy.max))


def test_adaptive_avg_pool2d_keeps_infinities_and_nans_in_their_own_windows(device):
    # windows (rows, then columns) of 5 over 3 and of 4 over 2: [0, 2), [1, 4), [3, 5)
    # and [0, 2), [2, 4); an inf or a NaN reaches only the outputs whose windows hold it
    x = numpy.arange(20.0).reshape(1, 1, 5, 4)
    x[0, 0, 0, 1], x[0, 0, 4, 3], x[0, 0, 2, 0] = numpy.inf, -numpy.inf, numpy.nan
    leaf = _leaf(x, device)
    upstream = numpy.array([[[[numpy.inf, 1.0], [2.0, 3.0], [4.0, 5.0]]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning about the NaN it mended
        y = F.adaptive_avg_pool2d(leaf, (3, 2))
        y.backward(tc.tensor(upstream, device=device))
    numpy.testing.assert_array_equal(to_numpy(y), naive_adaptive(x, (3, 2), numpy.mean))
    # each window's gradient spread evenly over it, window by window
    expected = numpy.zeros_like(x)
    for oh, (top, bottom) in enumerate([(0, 2), (1, 4), (3, 5)]):
        for ow, (left, right) in enumerate([(0, 2), (2, 4)]):
            size = (bottom - top) * (right - left)
            expected[0, 0, top:bottom, left:right] += upstream[0, 0, oh, ow] / size
    numpy.testing.assert_array_equal(to_numpy(leaf.grad), expected)


def test_adaptive_max_pool2d_indices_pick_the_row_major_first_maximum():
    x = numpy.array([[[[1.0, 7.0, 7.0], [7.0, 2.0, 0.0], [3.0, 7.0, 1.0]]]])
    _, indices = F.adaptive_max_pool2d(tc.tensor(x), 1, return_indices=True)
    assert indices.numpy().item() == 1


def test_output_size_none_keeps_the_input_size():
    x = tc.tensor(numpy.ones((1, 2, 5, 7)))
    assert F.adaptive_avg_pool2d(x, (None, 3)).shape == (1, 2, 5, 3)
    assert F.adaptive_max_pool2d(x[0], (2, None)).shape == (2, 2, 7)


def test_pools_keep_float32():
    x = tc.tensor(numpy.ones((1, 2, 4, 4), dtype=numpy.float32), requires_grad=True)
    outputs = [
        F.max_pool2d(x, 2),
        F.avg_pool2d(x, 3, 1, 1),
        F.adaptive_avg_pool2d(x, 3),
        F.adaptive_max_pool2d(x, 3),
    ]
    sum(output.sum() for output in outputs).backward()
    assert all(output.dtype is tc.float32 for output in outputs) and x.grad.dtype is tc.float32


# -- gradients against finite differences ----------------------------------------------


MAX_GRID = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": (3, 2), "stride": 1},
    {"kernel_size": 3, "stride": 2, "dilation": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True},
    {"kernel_size": (1, 3), "stride": (1, 2), "padding": (0, 1)},
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("options", MAX_GRID)
def test_max_pool2d_gradient_matches_finite_differences(options, layout, device):
    # distinct values keep every maximum a clear winner under the finite-difference step
    values = numpy.random.default_rng(3).permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 10.0
    # the upstream gradient is NCHW: a batch-inner input tests a layout mismatch
    x = _leaf(_laid_out(values, layout), device)
    assert tc.gradcheck(lambda x: F.max_pool2d(x, **options), [x])


def test_max_pool2d_backward_copies_a_gradient_of_2_kib_images_into_the_batch_inner_layout():
    # an NCHW upstream gradient whose images are 2 KiB (4 channels of 8×8 float64) is
    # copied into the batch-inner layout of the saved winners through a staging buffer
    values = numpy.random.default_rng(5).permutation(4 * 4 * 16 * 16).reshape(4, 4, 16, 16)
    x = _leaf(_laid_out(values / 10.0, "batch-inner"))
    grad_out = numpy.random.default_rng(6).standard_normal((4, 4, 8, 8))
    assert grad_out.strides[0] % 2048 == 0
    F.max_pool2d(x, 2).backward(tc.tensor(grad_out))
    # each window's gradient goes to its maximum (the values are distinct)
    windows = values.reshape(4, 4, 8, 2, 8, 2).transpose(0, 1, 2, 4, 3, 5).reshape(4, 4, 8, 8, 4)
    expected = numpy.zeros((4, 4, 8, 8, 4))
    numpy.put_along_axis(expected, windows.argmax(-1)[..., None], grad_out[..., None], axis=-1)
    expected = expected.reshape(4, 4, 8, 8, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(4, 4, 16, 16)
    numpy.testing.assert_array_equal(to_numpy(x.grad), expected)


AVG_GRID = [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 1, "padding": 1},
    {"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False},
    {"kernel_size": (3, 2), "stride": 2, "padding": 1, "ceil_mode": True},
    {
        "kernel_size": (3, 2),
        "stride": 2,
        "padding": 1,
        "ceil_mode": True,
        "count_include_pad": False,
    },
    {"kernel_size": 2, "stride": (1, 2), "divisor_override": 3},
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("options", AVG_GRID)
def test_avg_pool2d_gradient_matches_finite_differences(options, layout, device):
    x = _leaf(_laid_out(numpy.random.default_rng(4).standard_normal((2, 2, 7, 6)), layout), device)
    assert tc.gradcheck(lambda x: F.avg_pool2d(x, **options), [x])


@pytest.mark.parametrize("out_size", [(3, 2), (4, 5), (1, 1), (9, 7)])
def test_adaptive_pool_gradients_match_finite_differences(out_size, device):
    values = numpy.random.default_rng(5).permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 10.0
    assert tc.gradcheck(lambda x: F.adaptive_avg_pool2d(x, out_size), [_leaf(values, device)])
    assert tc.gradcheck(lambda x: F.adaptive_max_pool2d(x, out_size), [_leaf(values, device)])


# -- PyTorch parity on random configurations -------------------------------------------

PARITY_SEEDS = range(200)


def _random_input(rng, height, width, special):
    x = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 4)), height, width))
    if special and rng.random() < 0.3:
        x = numpy.round(x)  # ties
    if special and rng.random() < 0.15:
        x[rng.random(x.shape) < 0.2] = numpy.nan
    return x


def _random_window_pool(rng, dilated):
    """A valid random (input, options) for max_pool2d (dilated) or avg_pool2d."""
    while True:
        kernel = tuple(int(v) for v in rng.integers(1, 5, size=2))
        stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
        dilation = tuple(int(v) for v in rng.integers(1, 3, size=2)) if dilated else (1, 1)
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        ceil_mode = bool(rng.integers(2))
        height, width = (int(v) for v in rng.integers(1, 10, size=2))
        sizes = [
            pool_output_size(size, k, s, p, d, ceil_mode)
            for size, k, s, p, d in zip((height, width), kernel, stride, padding, dilation)
        ]
        if min(sizes) < 1:
            continue
        # a window wholly in the padding (possible with dilation) has no maximum to route
        # a gradient to; PyTorch sends it to an arbitrary element, so such cases are left out
        empty = any(
            not any(0 <= o * s - p + t * d < size for t in range(k))
            for size, k, s, p, d, out in zip(
                (height, width), kernel, stride, padding, dilation, sizes
            )
            for o in range(out)
        )
        if empty:
            continue
        options = {
            "kernel_size": kernel,
            "stride": stride,
            "padding": padding,
            "ceil_mode": ceil_mode,
        }
        if dilated:
            options["dilation"] = dilation
        return _random_input(rng, height, width, special=dilated), options


def _compare(torch, ours_fn, theirs_fn, x, options, seed, outputs=1):
    mine, reference = _leaf(x), torch.tensor(x, requires_grad=True)
    ours, theirs = ours_fn(mine, **options), theirs_fn(reference, **options)
    ours, theirs = (ours, theirs) if outputs > 1 else ((ours,), (theirs,))
    what = f"seed {seed}: x {x.shape}, {options}"
    numpy.testing.assert_allclose(
        to_numpy(ours[0]), theirs[0].detach().numpy(), rtol=1e-6, atol=1e-6, err_msg=what
    )
    if outputs > 1:
        numpy.testing.assert_array_equal(to_numpy(ours[1]), theirs[1].numpy(), err_msg=what)
    upstream = numpy.random.default_rng(seed).standard_normal(theirs[0].shape)
    ours[0].backward(tc.tensor(upstream))
    theirs[0].backward(torch.tensor(upstream))
    numpy.testing.assert_allclose(
        to_numpy(mine.grad),
        reference.grad.numpy(),
        rtol=1e-6,
        atol=1e-6,
        err_msg=f"gradient, {what}",
    )


@pytest.mark.parametrize("seed", PARITY_SEEDS)
def test_max_pool2d_matches_pytorch(torch, seed):
    x, options = _random_window_pool(numpy.random.default_rng(seed), dilated=True)
    _compare(
        torch,
        lambda x, **o: F.max_pool2d(x, **o, return_indices=True),
        lambda x, **o: torch.nn.functional.max_pool2d(x, **o, return_indices=True),
        x,
        options,
        seed,
        outputs=2,
    )


@pytest.mark.parametrize("seed", PARITY_SEEDS)
def test_avg_pool2d_matches_pytorch(torch, seed):
    rng = numpy.random.default_rng(2000 + seed)
    x, options = _random_window_pool(rng, dilated=False)
    options["count_include_pad"] = bool(rng.integers(2))
    options["divisor_override"] = [None, None, 3, -2][int(rng.integers(4))]
    _compare(torch, F.avg_pool2d, torch.nn.functional.avg_pool2d, x, options, seed)


@pytest.mark.parametrize("seed", PARITY_SEEDS)
def test_adaptive_pools_match_pytorch(torch, seed):
    rng = numpy.random.default_rng(4000 + seed)
    height, width = (int(v) for v in rng.integers(1, 12, size=2))
    x = _random_input(rng, height, width, special=True)
    options = {"output_size": tuple(int(v) for v in rng.integers(1, 8, size=2))}
    _compare(
        torch,
        lambda x, **o: F.adaptive_max_pool2d(x, **o, return_indices=True),
        lambda x, **o: torch.nn.functional.adaptive_max_pool2d(x, **o, return_indices=True),
        x,
        options,
        seed,
        outputs=2,
    )
    if rng.random() < 0.15:  # infinities, which must stay in their own windows
        x[rng.random(x.shape) < 0.1] = rng.choice([numpy.inf, -numpy.inf])
    _compare(
        torch, F.adaptive_avg_pool2d, torch.nn.functional.adaptive_avg_pool2d, x, options, seed
    )
