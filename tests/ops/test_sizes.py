"""Output-size rules of convolution and pooling: PyTorch's, exactly."""

from __future__ import annotations

import itertools

import pytest

from tinyconv.ops.sizes import (
    adaptive_pool_windows,
    conv2d_output_shape,
    conv_output_size,
    conv_transpose2d_output_shape,
    conv_transpose_output_size,
    normalize_padding,
    pair,
    pool2d_output_shape,
    pool_output_size,
    same_padding,
)


def windows_that_fit(size, kernel, stride, padding, dilation):
    """Count, one start at a time, the windows that lie inside the padded input."""
    count, start = 0, 0
    while start + dilation * (kernel - 1) < size + 2 * padding:
        count, start = count + 1, start + stride
    return count


def test_conv_output_size_counts_the_windows_that_fit():
    for size, kernel, stride, padding, dilation in itertools.product(
        range(1, 9), range(1, 5), range(1, 4), range(0, 3), range(1, 3)
    ):
        expected = windows_that_fit(size, kernel, stride, padding, dilation)
        ours = conv_output_size(size, kernel, stride, padding, dilation)
        assert max(ours, 0) == expected, (size, kernel, stride, padding, dilation)


def test_conv_output_size_takes_uneven_padding():
    assert conv_output_size(8, 4, padding=(1, 2)) == 8
    assert conv_output_size(8, 4, padding=(0, 0)) == 5


def test_conv_transpose_output_size_inverts_the_convolution_size():
    for size, kernel, stride, padding, dilation in itertools.product(
        range(2, 9), range(1, 5), range(1, 4), range(0, 2), range(1, 3)
    ):
        out = conv_output_size(size, kernel, stride, padding, dilation)
        if out < 1:
            continue
        back = conv_transpose_output_size(out, kernel, stride, padding, 0, dilation)
        # the stride may drop up to stride - 1 trailing rows; output_padding gives them back
        assert size - stride < back <= size
        assert (
            conv_transpose_output_size(out, kernel, stride, padding, size - back, dilation) == size
        )


def test_pool_output_size_floor_and_ceil():
    assert pool_output_size(28, 2) == 14
    assert pool_output_size(7, 2, 2) == 3
    assert pool_output_size(7, 2, 2, ceil_mode=True) == 4
    assert pool_output_size(32, 3, 1, 1) == 32


def test_ceil_mode_drops_a_window_that_would_start_in_the_right_padding():
    # 5 + 2·1 padding, kernel 2, stride 2: rounding up gives 4 windows, but the 4th
    # would start at padded position 6, which is the right padding: PyTorch drops it
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert pool_output_size(5, 2, 2, 1, ceil_mode=False) == 3
    assert pool_output_size(6, 2, 2, 1, ceil_mode=True) == 4


def test_pool_sizes_match_pytorch(torch):
    functional = torch.nn.functional
    for size, kernel, stride, dilation, ceil_mode in itertools.product(
        range(1, 10), range(1, 5), range(1, 4), range(1, 3), (False, True)
    ):
        for padding in range(kernel // 2 + 1):
            ours = pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
            try:
                x = torch.zeros(1, 1, size, 1)
                theirs = functional.max_pool2d(
                    x, (kernel, 1), (stride, 1), (padding, 0), (dilation, 1), ceil_mode
                ).shape[2]
            except RuntimeError:  # PyTorch refuses an empty output
                assert ours < 1
                continue
            assert ours == theirs, (size, kernel, stride, padding, dilation, ceil_mode)


def test_same_padding_puts_the_odd_one_after():
    assert same_padding(3) == (1, 1)
    assert same_padding(4) == (1, 2)
    assert same_padding(4, dilation=2) == (3, 3)
    assert same_padding(1) == (0, 0)
    assert conv_output_size(7, 4, 1, same_padding(4)) == 7


def test_normalize_padding_accepts_int_pair_valid_and_same():
    assert normalize_padding(1, 3) == ((1, 1), (1, 1))
    assert normalize_padding((2, 0), 3) == ((2, 2), (0, 0))
    assert normalize_padding("valid", 5) == ((0, 0), (0, 0))
    assert normalize_padding("same", (5, 2), (1, 3)) == ((2, 2), (1, 2))
    with pytest.raises(ValueError, match="padding='full'"):
        normalize_padding("full", 3)


@pytest.mark.parametrize("bad", [True, 1.5, (1, 2, 3), (1, "2"), None, "3"])
def test_pair_rejects_what_is_not_an_int_or_a_pair_of_ints(bad):
    with pytest.raises(TypeError, match="stride="):
        pair(bad, "stride")


def test_adaptive_windows_follow_floor_and_ceil():
    assert adaptive_pool_windows(5, 3) == ([0, 1, 3], [2, 4, 5])
    assert adaptive_pool_windows(4, 4) == ([0, 1, 2, 3], [1, 2, 3, 4])
    assert adaptive_pool_windows(3, 5) == ([0, 0, 1, 1, 2], [1, 2, 2, 3, 3])


def test_two_dimensional_shapes():
    assert conv2d_output_shape((8, 8), (3, 5), (4, 1), (2, 1)) == (3, 6)
    assert conv2d_output_shape((8, 7), 4, padding="same") == (8, 7)
    assert conv_transpose2d_output_shape((2, 2), 2, stride=2) == (4, 4)
    assert conv_transpose2d_output_shape((3, 3), 3, 2, 1, 1) == (6, 6)
    assert pool2d_output_shape((28, 28), 2) == (14, 14)
    assert pool2d_output_shape((7, 6), 3, 2, 1, ceil_mode=True) == (4, 4)
