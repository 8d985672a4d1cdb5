"""Bad calls to the convolution and pooling functions: each raises at the door, with a
message that names the argument, its value and what was expected."""

from __future__ import annotations

import numpy
import pytest

import tinyconv as tc
from tinyconv.nn import conv_functional as F


def x4(*shape, dtype=numpy.float32):
    return tc.tensor(numpy.ones(shape, dtype=dtype))


X = x4(2, 4, 8, 8)
W = x4(6, 4, 3, 3)
B = x4(6)

BAD_CALLS = [
    # (call, exception, words the message must contain)
    (lambda: F.conv2d(X.numpy(), W), TypeError, ["input", "Tensor"]),
    (lambda: F.conv2d(x4(8, 8), W), ValueError, ["input", "2-D", "(8, 8)"]),
    (lambda: F.conv2d(x4(1, 2, 4, 8, 8), W), ValueError, ["5-D"]),
    (
        lambda: F.conv2d(tc.tensor(numpy.ones((2, 4, 8, 8), dtype=numpy.int64)), W),
        TypeError,
        ["int64", "floating"],
    ),
    (lambda: F.conv2d(X, x4(6, 4, 3)), ValueError, ["weight", "4-D"]),
    (lambda: F.conv2d(X, x4(6, 3, 3, 3)), ValueError, ["4 channels", "expects 3"]),
    (lambda: F.conv2d(X, x4(6, 2, 3, 3), groups=3), ValueError, ["groups=3", "input channels (4)"]),
    (
        lambda: F.conv2d(x4(1, 6, 5, 5), x4(4, 2, 3, 3), groups=3),
        ValueError,
        ["groups=3", "weight.shape[0]=4"],
    ),
    (lambda: F.conv2d(X, x4(6, 4, 3, 3), groups=2), ValueError, ["expects 8", "groups=2"]),
    (lambda: F.conv2d(X, W, groups=0), ValueError, ["groups=0"]),
    (lambda: F.conv2d(X, W, stride=0), ValueError, ["stride=0", ">= 1"]),
    (lambda: F.conv2d(X, W, stride=(1, -2)), ValueError, ["stride=(1, -2)"]),
    (lambda: F.conv2d(X, W, dilation=0), ValueError, ["dilation=0"]),
    (lambda: F.conv2d(X, W, padding=-1), ValueError, ["padding=-1", ">= 0"]),
    (lambda: F.conv2d(X, W, padding="full"), ValueError, ["padding='full'", "'same'"]),
    (lambda: F.conv2d(X, W, padding="same", stride=2), ValueError, ["padding='same'", "stride"]),
    (lambda: F.conv2d(X, W, stride=1.5), TypeError, ["stride=1.5", "int"]),
    (lambda: F.conv2d(X, W, padding=(1, 2, 3)), TypeError, ["padding=(1, 2, 3)"]),
    (lambda: F.conv2d(X, x4(6, 4, 9, 3)), ValueError, ["empty", "8×8"]),
    (lambda: F.conv2d(X, x4(6, 4, 3, 3), dilation=4), ValueError, ["empty", "dilation"]),
    (
        lambda: F.conv2d(X, x4(6, 4, 3, 3, dtype=numpy.float64)),
        RuntimeError,
        ["float32", "float64", "weight"],
    ),
    (lambda: F.conv2d(X, W, x4(5)), ValueError, ["bias", "(5,)", "(6,)"]),
    (lambda: F.conv2d(X, W, x4(6, dtype=numpy.float64)), RuntimeError, ["bias", "float64"]),
    (lambda: F.conv2d(X, W, numpy.ones(6)), TypeError, ["bias", "Tensor"]),
    (lambda: F.conv2d(X, x4(0, 4, 3, 3)), ValueError, ["weight", "empty"]),
    # transposed convolution
    (
        lambda: F.conv_transpose2d(x4(1, 1, 2, 2), x4(1, 1, 2, 2), padding=2),
        ValueError,
        ["empty", "padding=(2, 2)"],
    ),
    (
        lambda: F.conv_transpose2d(X, x4(4, 3, 3, 3), stride=2, output_padding=2),
        ValueError,
        ["output_padding=(2, 2)", "stride=(2, 2)", "dilation"],
    ),
    (
        lambda: F.conv_transpose2d(X, x4(4, 3, 3, 3), output_padding=1),
        ValueError,
        ["output_padding=(1, 1)", "smaller"],
    ),
    (lambda: F.conv_transpose2d(X, x4(3, 3, 3, 3)), ValueError, ["4 channels", "expects 3"]),
    (lambda: F.conv_transpose2d(X, x4(4, 3, 3, 3), groups=3), ValueError, ["groups=3"]),
    (lambda: F.conv_transpose2d(X, x4(4, 3, 3, 3), padding="same"), ValueError, ["padding='same'"]),
    (lambda: F.conv_transpose2d(X, x4(4, 3, 3, 3), stride=0), ValueError, ["stride=0"]),
    (lambda: F.conv_transpose2d(X, x4(4, 3, 3, 3), x4(4)), ValueError, ["bias", "(3,)"]),
    (lambda: F.conv_transpose2d(X, x4(4, 3, 3), x4(4)), ValueError, ["weight", "4-D"]),
    # pooling
    (lambda: F.max_pool2d(X, 0), ValueError, ["kernel_size=0", ">= 1"]),
    (lambda: F.max_pool2d(X, 2, stride=0), ValueError, ["stride=0"]),
    (lambda: F.max_pool2d(X, 3, padding=2), ValueError, ["padding=2", "half", "kernel_size=3"]),
    (lambda: F.max_pool2d(X, 2, dilation=0), ValueError, ["dilation=0"]),
    (lambda: F.max_pool2d(X, 9), ValueError, ["empty", "kernel_size=9"]),
    (lambda: F.max_pool2d(x4(8, 8), 2), ValueError, ["2-D"]),
    (lambda: F.max_pool2d(X, 2, ceil_mode=1), TypeError, ["ceil_mode=1", "bool"]),
    (lambda: F.max_pool2d(X, 2, return_indices="yes"), TypeError, ["return_indices='yes'"]),
    (lambda: F.max_pool2d(X, (2, 2, 2)), TypeError, ["kernel_size=(2, 2, 2)"]),
    (lambda: F.avg_pool2d(X, 2, padding=(0, 2)), ValueError, ["padding=(0, 2)", "half"]),
    (lambda: F.avg_pool2d(X, 2, divisor_override=0), ValueError, ["divisor_override=0"]),
    (lambda: F.avg_pool2d(X, 2, count_include_pad=None), TypeError, ["count_include_pad=None"]),
    (lambda: F.avg_pool2d(X, -1), ValueError, ["kernel_size=-1"]),
    (lambda: F.adaptive_avg_pool2d(X, 0), ValueError, ["output_size=0", ">= 1"]),
    (lambda: F.adaptive_avg_pool2d(X, (2, 2, 2)), TypeError, ["output_size=(2, 2, 2)"]),
    (lambda: F.adaptive_max_pool2d(x4(2, 4, 0, 8), 2), ValueError, ["empty", "(2, 4, 0, 8)"]),
    (lambda: F.adaptive_max_pool2d(x4(4, 8), 2), ValueError, ["2-D"]),
    (lambda: F.adaptive_max_pool2d(X, 2, return_indices=1), TypeError, ["return_indices=1"]),
]


@pytest.mark.parametrize(
    "call, error, words", BAD_CALLS, ids=[f"bad-{index}" for index in range(len(BAD_CALLS))]
)
def test_bad_call_raises_a_clear_error(call, error, words):
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_error_names_the_function():
    with pytest.raises(ValueError, match="^conv2d: "):
        F.conv2d(X, W, stride=0)
    with pytest.raises(ValueError, match="^max_pool2d: "):
        F.max_pool2d(X, 0)


def test_mixed_devices_raise(device):
    if device == "cpu":
        pytest.skip("needs a second device")
    with pytest.raises(RuntimeError, match="cpu"):
        F.conv2d(X, W.to(device))


GOOD_SPELLINGS = [
    # (a call, the same call with its arguments spelled as plain ints), as PyTorch accepts
    (
        lambda: F.conv2d(X, x4(6, 2, 3, 3), groups=numpy.int64(2), stride=numpy.int64(2)),
        lambda: F.conv2d(X, x4(6, 2, 3, 3), groups=2, stride=2),
    ),
    (
        lambda: F.conv2d(X, W, stride=(2,), padding=(1,), dilation=[2]),
        lambda: F.conv2d(X, W, stride=2, padding=1, dilation=2),
    ),
    (
        lambda: F.conv_transpose2d(X, x4(4, 3, 3, 3), stride=(2,), output_padding=(1,)),
        lambda: F.conv_transpose2d(X, x4(4, 3, 3, 3), stride=2, output_padding=1),
    ),
    (lambda: F.max_pool2d(X, (3,), stride=[2]), lambda: F.max_pool2d(X, 3, stride=2)),
    (
        lambda: F.avg_pool2d(X, 2, divisor_override=numpy.int64(3)),
        lambda: F.avg_pool2d(X, 2, divisor_override=3),
    ),
]


@pytest.mark.parametrize("call, plain", GOOD_SPELLINGS)
def test_numpy_ints_and_one_element_sequences_are_accepted(call, plain):
    numpy.testing.assert_array_equal(call().numpy(), plain().numpy())
