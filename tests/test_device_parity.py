"""The same computation on 'cpu' (NumPy) and 'cuda' (CuPy) gives the same values and
gradients: every op of the grid, convolution and pooling, and a LeNet training step.
Skipped where CuPy or a GPU is missing."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent / "ops"))
from op_cases import ALL_CASES, OpCase  # noqa: E402

pytestmark = pytest.mark.skipif(not tc.cuda.is_available(), reason="needs CuPy and a CUDA GPU")
TINYCONV = SimpleNamespace(lib=tc, F=F)


def run_on(device: str, fn, arrays) -> tuple[list, list]:
    """Outputs and input gradients (as NumPy arrays) of ``fn`` on ``device``."""
    inputs = [
        tc.tensor(a, dtype=tc.float64, device=device, requires_grad=True)
        if a.dtype.kind == "f"
        else tc.tensor(a, device=device)
        for a in arrays
    ]
    outputs = fn(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    floating = [out for out in outputs if out.data.dtype.kind == "f"]
    rng = numpy.random.default_rng(0)
    directions = [tc.tensor(rng.standard_normal(out.shape), device=device) for out in floating]
    total = sum(((out * v).sum() for out, v in zip(floating, directions)), tc.zeros(()))
    if total.requires_grad:
        total.backward()
    values = [out.detach().cpu().numpy() for out in outputs]
    grads = [t.grad.cpu().numpy() if t.grad is not None else None for t in inputs]
    return values, grads


def assert_same(cpu_result, cuda_result) -> None:
    for ours, theirs in zip(cpu_result[0] + cpu_result[1], cuda_result[0] + cuda_result[1]):
        if ours is None or theirs is None:
            assert ours is None and theirs is None
        else:
            numpy.testing.assert_allclose(theirs, ours, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("case", ALL_CASES)
def test_op_gives_the_same_values_and_gradients_on_cpu_and_cuda(case: OpCase):
    fn = lambda *args: case.fn(TINYCONV, *args)  # noqa: E731
    assert_same(run_on("cpu", fn, case.inputs), run_on("cuda", fn, case.inputs))


CONV_CASES = {
    "conv2d": lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, dilation=1, groups=2),
    "conv2d_dilated_same": lambda x, w, b: F.conv2d(x, w, b, padding="same", dilation=2),
    "conv_transpose2d": lambda x, w, b: F.conv_transpose2d(
        x, w.transpose(0, 1), None, stride=2, padding=1, output_padding=1
    ),
    "max_pool2d": lambda x, w, b: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
    "avg_pool2d": lambda x, w, b: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
    "adaptive_avg": lambda x, w, b: F.adaptive_avg_pool2d(x, (3, 2)),
    "adaptive_max": lambda x, w, b: F.adaptive_max_pool2d(x, 3),
}


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_conv_and_pool_give_the_same_values_and_gradients_on_cpu_and_cuda(name):
    rng = numpy.random.default_rng(1)
    arrays = (
        rng.standard_normal((2, 4, 9, 9)),
        rng.standard_normal((6, 2, 3, 3)),
        rng.standard_normal(6),
    )
    if name == "conv2d_dilated_same":
        arrays = (arrays[0], rng.standard_normal((6, 4, 3, 3)), arrays[2])
    if name == "conv_transpose2d":
        arrays = (arrays[0], rng.standard_normal((6, 4, 3, 3)), arrays[2])
    fn = CONV_CASES[name]
    assert_same(run_on("cpu", fn, arrays), run_on("cuda", fn, arrays))


def test_a_lenet_training_step_matches_on_cpu_and_cuda():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from lenet_mnist import build_lenet5

    tc.manual_seed(0)
    reference = build_lenet5().double()
    state = {name: value.detach().numpy().copy() for name, value in reference.state_dict().items()}
    rng = numpy.random.default_rng(2)
    images, labels = rng.standard_normal((8, 1, 28, 28)), rng.integers(0, 10, 8)
    results = {}
    for device in ("cpu", "cuda"):
        model = build_lenet5().double()
        model.load_state_dict({name: tc.tensor(value) for name, value in state.items()})
        model.to(device)
        optimizer = tc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        for _ in range(3):
            loss = F.cross_entropy(
                model(tc.tensor(images, device=device)), tc.tensor(labels, device=device)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        results[device] = {n: p.detach().cpu().numpy() for n, p in model.named_parameters()}
    for name, value in results["cpu"].items():
        numpy.testing.assert_allclose(results["cuda"][name], value, rtol=1e-9, atol=1e-11)


# -- values that cross devices -------------------------------------------------------------


def test_host_values_written_into_a_cuda_tensor_land_there():
    # CuPy takes no NumPy array into a slice (it would try to fill with it)
    target = tc.zeros(4, 3, device="cuda")
    target[1:3] = numpy.ones((2, 3))
    target[0] = tc.full((3,), 2.0)  # a cpu tensor
    target[3].fill_(tc.tensor(5.0))
    numpy.testing.assert_array_equal(target.cpu().numpy(), [[2] * 3, [1] * 3, [1] * 3, [5] * 3])
    host = tc.zeros(2)
    host[0:2] = tc.ones(2, device="cuda")  # and back: NumPy cannot read a CuPy array
    numpy.testing.assert_array_equal(host.numpy(), [1.0, 1.0])


def test_an_inplace_op_with_a_tensor_on_another_device_raises_naming_both():
    target = tc.zeros(3, device="cuda")
    with pytest.raises(RuntimeError, match="'cuda' and 'cpu'"):
        target += tc.ones(3)


def test_a_numpy_scalar_beside_a_cuda_tensor_is_a_number():
    product = tc.ones(3, device="cuda") * numpy.float64(2.0)
    assert product.device == "cuda" and product.dtype == tc.float32
    numpy.testing.assert_array_equal(product.cpu().numpy(), [2.0, 2.0, 2.0])


def test_a_gradient_on_the_gpu_for_an_output_on_the_cpu_raises_naming_both():
    cupy = pytest.importorskip("cupy")
    x = tc.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="gradient is on 'cuda'"):
        (x * 2.0).backward(cupy.ones(3, dtype=cupy.float32))
