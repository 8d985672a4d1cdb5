"""``tinyconv.nn.init``: PyTorch's fan and gain rules, the bounds and statistics of each
initialiser (worked out by hand), and repeatability under ``tc.manual_seed``."""

from __future__ import annotations

import math

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn as nn
from tinyconv.nn import init


def to_numpy(tensor: tc.Tensor) -> numpy.ndarray:
    """A tensor's values as a host NumPy array, whatever its device."""
    return numpy.asarray(tc.backend.to_device(tensor.data, "cpu"))


SHAPES = [(30, 20), (16, 6, 5, 5), (6, 1, 5, 5), (8, 4, 3), (5, 2, 3, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_pytorch(torch, shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.fan_in_and_fan_out(tc.empty(shape)) == expected


def test_fans_by_hand_for_a_conv_weight():
    # (out=16, in=6, 5, 5): each output sees 6 * 25 inputs; each input feeds 16 * 25
    assert init.fan_in_and_fan_out(tc.empty(16, 6, 5, 5)) == (150, 400)


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.fan_in_and_fan_out(tc.empty(5))


@pytest.mark.parametrize(
    "nonlinearity, param",
    [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", math.sqrt(5)),
        ("selu", None),
    ],
)
def test_gains_match_pytorch(torch, nonlinearity, param):
    expected = torch.nn.init.calculate_gain(nonlinearity, param)
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(expected, rel=1e-15)


def test_unknown_nonlinearity_raises():
    with pytest.raises(ValueError, match="swish"):
        init.calculate_gain("swish")


def sample(shape=(400, 500), device="cpu", dtype=tc.float32):
    return tc.empty(shape, device=device, dtype=dtype)


def test_uniform_fills_the_interval_with_the_right_moments(device):
    values = to_numpy(init.uniform_(sample(device=device), -2.0, 3.0))
    assert values.min() >= -2.0 and values.max() < 3.0
    # U(a, b): mean (a + b) / 2 = 0.5, std (b - a) / sqrt(12); 200,000 draws
    assert values.mean() == pytest.approx(0.5, abs=0.02)
    assert values.std() == pytest.approx(5 / math.sqrt(12), rel=0.01)


def test_normal_has_the_right_moments(device):
    values = to_numpy(init.normal_(sample(device=device, dtype=tc.float64), 1.5, 0.5))
    assert values.dtype == numpy.float64
    assert values.mean() == pytest.approx(1.5, abs=0.01)
    assert values.std() == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_uniform_bound_and_std(mode):
    tensor = sample((200, 50, 3, 3))  # fan_in 450, fan_out 1800
    init.kaiming_uniform_(tensor, mode=mode, nonlinearity="relu")
    fan = 450 if mode == "fan_in" else 1800
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan)
    assert numpy.abs(tensor.data).max() <= bound
    assert numpy.abs(tensor.data).max() > 0.99 * bound
    assert tensor.data.std() == pytest.approx(math.sqrt(2.0 / fan), rel=0.01)


def test_kaiming_normal_std():
    tensor = init.kaiming_normal_(sample((300, 100, 2, 2)), nonlinearity="relu")
    assert tensor.data.std() == pytest.approx(math.sqrt(2.0 / 400), rel=0.01)
    assert tensor.data.mean() == pytest.approx(0.0, abs=0.002)


def test_kaiming_default_leaky_relu_slope_zero_is_relu_gain():
    tensor = init.kaiming_uniform_(sample((500, 400)))  # a=0: gain sqrt(2 / (1 + 0))
    assert tensor.data.std() == pytest.approx(math.sqrt(2.0 / 400), rel=0.01)


def test_xavier_uniform_bound_and_xavier_normal_std():
    tensor = init.xavier_uniform_(sample((300, 200)), gain=2.0)
    bound = 2.0 * math.sqrt(6.0 / 500)
    assert numpy.abs(tensor.data).max() <= bound
    assert numpy.abs(tensor.data).max() > 0.99 * bound
    tensor = init.xavier_normal_(sample((300, 200)))
    assert tensor.data.std() == pytest.approx(math.sqrt(2.0 / 500), rel=0.01)


def test_constant_zeros_ones():
    tensor = sample((2, 3))
    numpy.testing.assert_array_equal(init.constant_(tensor, 0.25).data, numpy.full((2, 3), 0.25))
    numpy.testing.assert_array_equal(init.zeros_(tensor).data, numpy.zeros((2, 3)))
    numpy.testing.assert_array_equal(init.ones_(tensor).data, numpy.ones((2, 3)))


def test_initialisers_work_in_place_and_bump_the_version():
    tensor = sample((4, 4))
    array, version = tensor.data, tensor._version.value
    assert init.kaiming_uniform_(tensor) is tensor
    assert tensor.data is array
    assert tensor._version.value > version


def test_manual_seed_repeats_every_initialiser():
    draws = []
    for _ in range(2):
        tc.manual_seed(123)
        layer = nn.Linear(20, 10)
        extra = init.normal_(sample((3, 3)))
        draws.append((layer.weight.data.copy(), layer.bias.data.copy(), extra.data.copy()))
    for first, second in zip(*draws):
        numpy.testing.assert_array_equal(first, second)


def test_linear_default_init_is_pytorchs():
    # kaiming_uniform_(a=sqrt(5)): gain sqrt(2 / 6) * sqrt(3 / fan_in) = 1 / sqrt(fan_in),
    # and the bias is U(+-1/sqrt(fan_in)) too
    layer = nn.Linear(256, 300)
    bound = 1 / math.sqrt(256)
    for values in (layer.weight.data, layer.bias.data):
        assert numpy.abs(values).max() <= bound
        assert numpy.abs(values).max() > 0.95 * bound
    assert layer.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)


def test_linear_default_init_statistics_match_pytorch(torch):
    ours = nn.Linear(120, 84).weight.data
    theirs = torch.nn.Linear(120, 84).weight.detach().numpy()
    assert numpy.abs(ours).max() == pytest.approx(numpy.abs(theirs).max(), rel=0.01)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.05)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: init.normal_(tc.zeros(3), std=-1.0), ValueError, "std"),
        (lambda: init.uniform_(tc.zeros(3), 1.0, 0.0), ValueError, "a <= b"),
        (lambda: init.uniform_(tc.zeros(3, dtype=tc.int64)), TypeError, "floating"),
        (lambda: init.kaiming_uniform_(tc.zeros(3, 4, dtype=tc.int64)), TypeError, "floating"),
        (lambda: init.constant_(tc.zeros(3), None), TypeError, "None"),
        (lambda: init.zeros_(numpy.zeros(3)), TypeError, "Tensor"),
    ],
)
def test_fills_pytorch_refuses_raise(call, error, words):
    with pytest.raises(error, match=words):
        call()
