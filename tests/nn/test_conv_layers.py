"""The convolution and pooling layers: PyTorch's parameter names, shapes, default
initialisation and repr, and the same numbers as the functions they wrap."""

from __future__ import annotations

import math

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn as nn
from tinyconv.nn import conv_functional as F


def test_conv2d_parameters_have_pytorch_names_shapes_and_dtype():
    layer = nn.Conv2d(6, 16, 5, groups=2)
    shapes = {name: parameter.shape for name, parameter in layer.named_parameters()}
    assert shapes == {"weight": (16, 3, 5, 5), "bias": (16,)}
    assert layer.weight.dtype is tc.float32 and layer.weight.requires_grad
    assert nn.Conv2d(1, 2, 3, bias=False).bias is None
    assert [name for name, _ in nn.Conv2d(1, 2, 3, bias=False).named_parameters()] == ["weight"]


def test_conv_transpose2d_weight_is_in_channels_first():
    layer = nn.ConvTranspose2d(8, 6, (3, 2), groups=2)
    assert layer.weight.shape == (8, 3, 3, 2) and layer.bias.shape == (6,)


@pytest.mark.parametrize("layer", [nn.Conv2d(16, 32, 3), nn.ConvTranspose2d(32, 16, 3)])
def test_default_init_is_kaiming_uniform_with_a_sqrt5(layer):
    tc.manual_seed(0)
    layer.reset_parameters()
    fan_in = layer.weight.shape[1] * 9
    bound = 1 / math.sqrt(fan_in)  # gain sqrt(2 / (1 + 5)) · sqrt(3 / fan_in)
    weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    assert abs(weight).max() <= bound and abs(weight).max() > 0.95 * bound
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert abs(bias).max() <= bound


def test_seeded_init_is_repeatable():
    tc.manual_seed(3)
    first = nn.Conv2d(3, 4, 3).weight.detach().numpy()
    tc.manual_seed(3)
    numpy.testing.assert_array_equal(first, nn.Conv2d(3, 4, 3).weight.detach().numpy())


def test_layers_compute_what_their_functions_compute():
    rng = numpy.random.default_rng(0)
    x = tc.tensor(rng.standard_normal((2, 4, 9, 9)).astype(numpy.float32))
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    expected = F.conv2d(x, conv.weight, conv.bias, 2, 1, 1, 2)
    numpy.testing.assert_array_equal(conv(x).detach().numpy(), expected.detach().numpy())
    transposed = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    assert transposed(x).shape == (2, 2, 18, 18)
    assert nn.MaxPool2d(3, 2, 1)(x).shape == (2, 4, 5, 5)
    values, indices = nn.MaxPool2d(2, return_indices=True)(x)
    assert values.shape == indices.shape == (2, 4, 4, 4)
    numpy.testing.assert_array_equal(
        nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x).numpy(),
        F.avg_pool2d(x, 3, 1, 1, count_include_pad=False).numpy(),
    )
    assert nn.AdaptiveAvgPool2d((1, 1))(x).shape == (2, 4, 1, 1)
    assert nn.AdaptiveMaxPool2d(5)(x).shape == (2, 4, 5, 5)


def test_conv_transpose2d_output_size_picks_the_output_padding():
    layer = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1)
    x = tc.ones(1, 2, 4, 4)
    assert layer(x).shape == (1, 2, 7, 7)
    assert layer(x, output_size=(8, 7)).shape == (1, 2, 8, 7)
    with pytest.raises(ValueError, match="output_size=\\(9, 7\\)"):
        layer(x, output_size=(9, 7))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: nn.Conv2d(0, 2, 3), "in_channels=0"),
        (lambda: nn.Conv2d(4, 6, 3, groups=4), "groups=4 must divide out_channels=6"),
        (lambda: nn.Conv2d(2, 2, 0), "kernel_size=(0, 0)"),
        (lambda: nn.Conv2d(2, 2, 3, stride=2, padding="same"), "padding='same'"),
        (lambda: nn.Conv2d(2, 2, 3, padding_mode="reflect"), "padding_mode='reflect'"),
        (lambda: nn.ConvTranspose2d(2, 2, 3, padding="same"), "padding='same'"),
    ],
)
def test_bad_layer_arguments_raise(make, words):
    with pytest.raises(ValueError, match=words.replace("(", "\\(").replace(")", "\\)")):
        make()


REPR_CASES = [
    ("Conv2d", (1, 6, 5), {"padding": 2}),
    ("Conv2d", (6, 16, (3, 5)), {"stride": 2, "dilation": 2, "groups": 2, "bias": False}),
    ("Conv2d", (4, 4, 3), {"padding": "same"}),
    ("ConvTranspose2d", (64, 32, 4), {"stride": 2, "padding": 1, "output_padding": 1}),
    ("MaxPool2d", (2,), {}),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}),
    ("AvgPool2d", (3, 1, 1), {}),
    ("AdaptiveAvgPool2d", ((1, 1),), {}),
    ("AdaptiveMaxPool2d", (7,), {}),
]


@pytest.mark.parametrize("name, args, kwargs", REPR_CASES)
def test_repr_reads_like_pytorch(torch, name, args, kwargs):
    assert repr(getattr(nn, name)(*args, **kwargs)) == repr(
        getattr(torch.nn, name)(*args, **kwargs)
    )


@pytest.mark.parametrize("transposed", [False, True])
def test_state_dict_moves_from_pytorch_and_gives_the_same_output(torch, transposed):
    if transposed:
        theirs = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2).double()
        ours = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=tc.float64)
    else:
        theirs = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2).double()
        ours = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=tc.float64)
    ours.load_state_dict(
        {key: tc.tensor(value.numpy()) for key, value in theirs.state_dict().items()}
    )
    x = numpy.random.default_rng(1).standard_normal((2, 4, 7, 7))
    numpy.testing.assert_allclose(
        ours(tc.tensor(x)).detach().numpy(),
        theirs(torch.tensor(x)).detach().numpy(),
        rtol=1e-10,
        atol=1e-10,
    )
