"""Layers against PyTorch (outputs and gradients from the same weights), the fused
BatchNorm op against finite differences, and Dropout against its definition."""

from __future__ import annotations

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn as nn
from tinyconv.ops.batchnorm import BatchNorm, BatchNormInference


def to_numpy(tensor: tc.Tensor) -> numpy.ndarray:
    """A tensor's values as a host NumPy array, whatever its device."""
    return numpy.asarray(tc.backend.to_device(tensor.data, "cpu"))


def rng(seed: int = 0) -> numpy.random.Generator:
    return numpy.random.default_rng(seed)


def copy_weights(ours, theirs) -> None:
    """Load PyTorch's state into ours through NumPy."""
    ours.load_state_dict({name: value.numpy() for name, value in theirs.state_dict().items()})


def run_both(torch, ours, theirs, x, grad_out):
    """Forward and backward in both; returns (ours, theirs) pairs of output and input grad."""
    ours_in = tc.tensor(x, requires_grad=True, device=_device_of(ours))
    theirs_in = torch.tensor(x, requires_grad=True)
    ours_out, theirs_out = ours(ours_in), theirs(theirs_in)
    ours_out.backward(tc.tensor(grad_out, device=ours_out.device))
    theirs_out.backward(torch.tensor(grad_out))
    return (
        (to_numpy(ours_out), theirs_out.detach().numpy()),
        (to_numpy(ours_in.grad), theirs_in.grad.numpy()),
    )


def _device_of(module) -> str:
    params = list(module.parameters()) + list(module.buffers())
    return params[0].device if params else "cpu"


def assert_close(pair, rtol=1e-10, atol=1e-12):
    numpy.testing.assert_allclose(pair[0], pair[1], rtol=rtol, atol=atol)


# -- Linear ------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_shape", [(5,), (2, 3)])
def test_linear_matches_pytorch(torch, device, bias, batch_shape):
    theirs = torch.nn.Linear(4, 3, bias=bias).double()
    ours = nn.Linear(4, 3, bias=bias).double()
    copy_weights(ours, theirs)
    ours.to(device)
    x = rng().standard_normal(batch_shape + (4,))
    grad_out = rng(1).standard_normal(batch_shape + (3,))
    out, grad_in = run_both(torch, ours, theirs, x, grad_out)
    assert_close(out)
    assert_close(grad_in)
    for name, param in theirs.named_parameters():
        assert_close((to_numpy(getattr(ours, name).grad), param.grad.numpy()))


def test_linear_default_parameters_are_float32_with_pytorch_shapes(torch):
    layer = nn.Linear(7, 2)
    assert layer.weight.shape == (2, 7) and layer.bias.shape == (2,)
    assert layer.weight.dtype == tc.float32
    assert repr(layer) == repr(torch.nn.Linear(7, 2))


def test_linear_rejects_a_wrong_input_width():
    with pytest.raises(ValueError, match="in_features=3"):
        nn.Linear(3, 2)(tc.zeros(4, 5))


# -- activations, Flatten, losses --------------------------------------------------------


@pytest.mark.parametrize("name", ["ReLU", "Sigmoid", "Tanh", "Flatten"])
def test_parameterless_layers_match_pytorch(torch, device, name):
    ours, theirs = getattr(nn, name)(), getattr(torch.nn, name)()
    x = rng().standard_normal((2, 3, 4)) * 3
    expected_shape = tuple(theirs(torch.tensor(x)).shape)
    x_device = tc.tensor(x, requires_grad=True, device=device)
    out = ours(x_device)
    assert out.device == device and out.shape == expected_shape
    grad_out = rng(1).standard_normal(expected_shape)
    out.backward(tc.tensor(grad_out, device=device))
    theirs_in = torch.tensor(x, requires_grad=True)
    theirs_out = theirs(theirs_in)
    theirs_out.backward(torch.tensor(grad_out))
    assert_close((to_numpy(out), theirs_out.detach().numpy()))
    assert_close((to_numpy(x_device.grad), theirs_in.grad.numpy()))


def test_flatten_dims_match_pytorch(torch):
    x = numpy.zeros((2, 3, 4, 5))
    for start, end in [(0, -1), (1, 2), (2, -1)]:
        expected = tuple(torch.nn.Flatten(start, end)(torch.tensor(x)).shape)
        assert nn.Flatten(start, end)(tc.tensor(x)).shape == expected


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_loss_matches_pytorch(torch, device, reduction, label_smoothing):
    logits = rng().standard_normal((6, 5)) * 4
    target = rng(1).integers(0, 5, 6)
    ours = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)
    theirs = torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)
    ours_in = tc.tensor(logits, requires_grad=True, device=device)
    theirs_in = torch.tensor(logits, requires_grad=True)
    ours_loss = ours(ours_in, tc.tensor(target, device=device))
    theirs_loss = theirs(theirs_in, torch.tensor(target))
    ours_loss.sum().backward()
    theirs_loss.sum().backward()
    assert_close((to_numpy(ours_loss), theirs_loss.detach().numpy()))
    assert_close((to_numpy(ours_in.grad), theirs_in.grad.numpy()))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_pytorch(torch, reduction):
    prediction, target = rng().standard_normal((4, 3)), rng(1).standard_normal((4, 3))
    ours_in = tc.tensor(prediction, requires_grad=True)
    theirs_in = torch.tensor(prediction, requires_grad=True)
    ours_loss = nn.MSELoss(reduction=reduction)(ours_in, tc.tensor(target))
    theirs_loss = torch.nn.MSELoss(reduction=reduction)(theirs_in, torch.tensor(target))
    ours_loss.sum().backward()
    theirs_loss.sum().backward()
    assert_close((to_numpy(ours_loss), theirs_loss.detach().numpy()))
    assert_close((to_numpy(ours_in.grad), theirs_in.grad.numpy()))


# -- Dropout -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [tc.float16, tc.float32, tc.float64])
def test_dropout_zeroes_a_share_p_and_scales_the_rest(device, dtype):
    # float16 too, though the random generators draw float32 or float64 only
    tc.manual_seed(0)
    layer = nn.Dropout(0.3)
    out = layer(tc.ones(200_000, device=device, dtype=dtype))
    assert out.dtype == dtype
    out = to_numpy(out).astype(numpy.float64)
    kept = out != 0
    # each element is kept with probability 0.7: 200,000 draws put the share within 0.005
    assert abs(kept.mean() - 0.7) < 0.005
    numpy.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-3 if dtype == tc.float16 else 1e-6)


def test_dropout_gradient_flows_through_kept_elements_only():
    tc.manual_seed(1)
    x = tc.ones(1000, requires_grad=True)
    out = nn.Dropout(0.5)(x)
    out.sum().backward()
    numpy.testing.assert_array_equal(x.grad.data, out.data)  # d(x * mask)/dx = mask


def test_dropout_is_the_identity_in_eval_and_repeatable_by_seed():
    layer = nn.Dropout(0.5).eval()
    x = tc.randn(10)
    numpy.testing.assert_array_equal(layer(x).data, x.data)
    layer.train()
    tc.manual_seed(3)
    first = layer(tc.ones(50)).data.copy()
    tc.manual_seed(3)
    numpy.testing.assert_array_equal(layer(tc.ones(50)).data, first)


def test_dropout_rejects_p_outside_zero_one():
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


# -- BatchNorm ---------------------------------------------------------------------------


def make_batchnorm(torch, device, layer="BatchNorm2d", **options):
    theirs = getattr(torch.nn, layer)(3, **options).double()
    ours = getattr(nn, layer)(3, **options).double()
    if theirs.weight is not None:
        with torch.no_grad():  # non-trivial affine parameters
            theirs.weight.copy_(torch.tensor(rng(5).standard_normal(3)))
    if theirs.bias is not None:
        with torch.no_grad():
            theirs.bias.copy_(torch.tensor(rng(6).standard_normal(3)))
    copy_weights(ours, theirs)
    return ours.to(device), theirs


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"momentum": None},
        {"momentum": 0.3, "eps": 1e-3},
        {"affine": False},
        {"track_running_stats": False},
    ],
    ids=["default", "cumulative", "momentum-eps", "no-affine", "no-running-stats"],
)
def test_batchnorm2d_training_steps_then_eval_match_pytorch(torch, device, options):
    ours, theirs = make_batchnorm(torch, device, **options)
    for step in range(3):
        x = rng(step).standard_normal((4, 3, 5, 6)) * (step + 1) + step
        grad_out = rng(10 + step).standard_normal(x.shape)
        out, grad_in = run_both(torch, ours, theirs, x, grad_out)
        assert_close(out)
        assert_close(grad_in)
        for name, param in theirs.named_parameters():
            assert_close((to_numpy(getattr(ours, name).grad), param.grad.numpy()))
            getattr(ours, name).grad = None
            param.grad = None
    for name, buffer in theirs.named_buffers():
        assert_close((to_numpy(getattr(ours, name)), buffer.numpy()))
    ours.eval()
    theirs.eval()
    x = rng(20).standard_normal((2, 3, 4, 4))
    out, grad_in = run_both(torch, ours, theirs, x, rng(21).standard_normal(x.shape))
    assert_close(out)
    assert_close(grad_in)
    for name, param in theirs.named_parameters():
        assert_close((to_numpy(getattr(ours, name).grad), param.grad.numpy()))


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batchnorm1d_matches_pytorch(torch, shape):
    ours, theirs = make_batchnorm(torch, "cpu", layer="BatchNorm1d")
    x = rng().standard_normal(shape)
    out, grad_in = run_both(torch, ours, theirs, x, rng(1).standard_normal(shape))
    assert_close(out)
    assert_close(grad_in)
    assert_close((to_numpy(ours.running_var), theirs.running_var.numpy()))


def test_batchnorm2d_float32_matches_pytorch(torch):
    theirs, ours = torch.nn.BatchNorm2d(3), nn.BatchNorm2d(3)
    x = rng().standard_normal((8, 3, 4, 4)).astype(numpy.float32)
    grad_out = rng(1).standard_normal(x.shape).astype(numpy.float32)
    out, grad_in = run_both(torch, ours, theirs, x, grad_out)
    assert_close(out, rtol=1e-5, atol=1e-5)
    assert_close(grad_in, rtol=1e-4, atol=1e-5)
    assert_close((to_numpy(ours.running_var), theirs.running_var.numpy()), rtol=1e-6)


def test_batchnorm_running_variance_is_unbiased_by_hand():
    layer = nn.BatchNorm2d(1, momentum=1.0)  # the running values become the batch's
    x = numpy.array([1.0, 2.0, 3.0, 6.0], dtype=numpy.float32).reshape(2, 1, 1, 2)
    out = layer(tc.tensor(x))
    # mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5, unbiased 14 / 3
    numpy.testing.assert_allclose(layer.running_mean.data, [3.0])
    numpy.testing.assert_allclose(layer.running_var.data, [14 / 3], rtol=1e-6)
    expected = (x - 3.0) / numpy.sqrt(3.5 + 1e-5)
    numpy.testing.assert_allclose(out.data, expected, rtol=1e-5)
    assert layer.num_batches_tracked.item() == 1


def test_batchnorm_eval_does_not_touch_running_statistics():
    layer = nn.BatchNorm2d(2).eval()
    layer(tc.randn(4, 2, 3, 3) + 5.0)
    numpy.testing.assert_array_equal(layer.running_mean.data, [0.0, 0.0])
    assert layer.num_batches_tracked.item() == 0


def test_batchnorm_is_one_node_in_the_graph():
    layer = nn.BatchNorm2d(2)
    out = layer(tc.randn(2, 2, 3, 3, requires_grad=True))
    assert type(out.grad_fn) is BatchNorm
    assert all(
        edge is None or not isinstance(edge[0], tc.autograd.Function)
        for edge in out.grad_fn.next_edges
    )


def test_batchnorm2d_checks_its_input():
    layer = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match="expected 4D input"):
        layer(tc.zeros(2, 3))
    with pytest.raises(ValueError, match="num_features=3"):
        layer(tc.zeros(2, 4, 2, 2))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(tc.zeros(1, 3, 1, 1))
    with pytest.raises(RuntimeError, match="float64"):
        layer(tc.zeros(2, 3, 2, 2, dtype=tc.float64))


def test_batchnorm2d_without_running_statistics_needs_two_values_in_eval_too():
    # in eval it still normalises by the batch's own statistics, as in PyTorch
    layer = nn.BatchNorm2d(3, track_running_stats=False).eval()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(tc.zeros(1, 3, 1, 1))
    assert layer(tc.zeros(1, 3, 1, 2)).shape == (1, 3, 1, 2)
    # with running statistics, eval uses them: one value per channel is fine
    assert nn.BatchNorm2d(3).eval()(tc.zeros(1, 3, 1, 1)).shape == (1, 3, 1, 1)


# -- the fused BatchNorm op against finite differences ----------------------------------


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(3, 2, 2, 3), (4, 3), (2, 2, 5)])
def test_batchnorm_op_gradcheck(device, affine, shape):
    generator = rng(7)
    x = tc.tensor(generator.standard_normal(shape) * 2 + 1, device=device, requires_grad=True)
    channels = shape[1]
    weight = tc.tensor(generator.standard_normal(channels), device=device, requires_grad=True)
    bias = tc.tensor(generator.standard_normal(channels), device=device, requires_grad=True)
    if affine:
        assert tc.gradcheck(lambda a, w, b: BatchNorm.apply(a, w, b, eps=1e-5), (x, weight, bias))
    else:
        assert tc.gradcheck(lambda a: BatchNorm.apply(a, None, None, eps=1e-5), (x,))


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_inference_op_gradcheck(device, affine):
    generator = rng(8)
    x = tc.tensor(generator.standard_normal((3, 2, 2, 3)), device=device, requires_grad=True)
    weight = tc.tensor(generator.standard_normal(2), device=device, requires_grad=True)
    bias = tc.tensor(generator.standard_normal(2), device=device, requires_grad=True)
    mean = tc.tensor(generator.standard_normal(2), device=device)
    var = tc.tensor(generator.random(2) + 0.5, device=device)
    if affine:
        assert tc.gradcheck(
            lambda a, w, b: BatchNormInference.apply(a, w, b, mean, var, eps=1e-5),
            (x, weight, bias),
        )
    else:
        assert tc.gradcheck(
            lambda a: BatchNormInference.apply(a, None, None, mean, var, eps=1e-5), (x,)
        )


def test_batchnorm_op_gradcheck_catches_a_wrong_gradient():
    """The check above can fail: a backward that forgets the statistics' dependence on
    x (the plain affine gradient) is caught."""

    class Wrong(BatchNorm):
        def backward(self, grad_out):
            x, weight, mean, invstd = self.saved_arrays
            return grad_out * (weight * invstd).reshape(1, -1, 1, 1), None, None

    x = tc.tensor(rng().standard_normal((3, 2, 2, 2)), requires_grad=True)
    weight = tc.tensor([1.5, -0.5])
    with pytest.raises(tc.GradcheckError):
        tc.gradcheck(lambda a: Wrong.apply(a, weight, None, eps=1e-5), (x,))
