"""Values, gradients and dtypes against PyTorch, the reference tinyconv follows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy
import pytest
from helpers import to_numpy
from op_cases import ALL_CASES, OpCase

import tinyconv as tc
import tinyconv.nn.functional as F

torch = pytest.importorskip("torch")

TINYCONV = SimpleNamespace(lib=tc, F=F)
TORCH = SimpleNamespace(lib=torch, F=torch.nn.functional)

TOLERANCES = {"float64": {"rtol": 1e-9, "atol": 1e-12}, "float32": {"rtol": 2e-5, "atol": 2e-6}}


def _outputs(result):
    return tuple(result) if isinstance(result, tuple) else (result,)


def _torch_dtype_name(tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def run_both(case_fn, arrays, device, dtype, upstream_seed=0):
    """Run ``case_fn`` on tinyconv and on PyTorch with the same inputs, back-propagate
    the same random upstream gradient through the first output, and return
    ``(tinyconv outputs, torch outputs, tinyconv inputs, torch inputs)``."""
    ours, theirs = [], []
    for array in arrays:
        if array.dtype.kind == "f":
            array = array.astype(dtype)
            ours.append(tc.tensor(array, device=device, requires_grad=True))
            theirs.append(torch.tensor(array, requires_grad=True))
        else:
            ours.append(tc.tensor(array, device=device))
            theirs.append(torch.tensor(array))
    our_outputs = _outputs(case_fn(TINYCONV, *ours))
    their_outputs = _outputs(case_fn(TORCH, *theirs))
    if their_outputs[0].requires_grad:
        shape = tuple(their_outputs[0].shape)
        upstream = numpy.random.default_rng(upstream_seed).standard_normal(shape).astype(dtype)
        our_outputs[0].backward(tc.tensor(upstream, device=device))
        their_outputs[0].backward(torch.tensor(upstream))
    return our_outputs, their_outputs, ours, theirs


def assert_same(ours, theirs, dtype_name, what):
    assert ours.dtype.__name__ == _torch_dtype_name(theirs), f"{what}: dtype"
    assert ours.shape == tuple(theirs.shape), f"{what}: shape"
    expected = theirs.detach().numpy()
    if expected.dtype.kind == "f":
        numpy.testing.assert_allclose(
            to_numpy(ours), expected, **TOLERANCES[dtype_name], err_msg=what
        )
    else:
        numpy.testing.assert_array_equal(to_numpy(ours), expected, err_msg=what)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ALL_CASES)
def test_values_and_gradients_match_pytorch(case: OpCase, dtype, device):
    our_outputs, their_outputs, ours, theirs = run_both(case.fn, case.inputs, device, dtype)
    assert len(our_outputs) == len(their_outputs)
    for position, (mine, reference) in enumerate(zip(our_outputs, their_outputs)):
        assert_same(mine, reference, dtype, f"output {position}")
    for position, (mine, reference) in enumerate(zip(ours, theirs)):
        if reference.requires_grad:
            assert mine.grad is not None, f"input {position} got no gradient"
            assert_same(mine.grad, reference.grad, dtype, f"gradient of input {position}")


# -- numerically hard inputs ------------------------------------------------------------

LARGE_LOGITS = numpy.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4 - 1.0], [5e3, 5e3, -5e3]])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "fn",
    [
        lambda m, x: x.softmax(1),
        lambda m, x: x.log_softmax(1),
        lambda m, x: x.log_softmax(0),
        lambda m, x, t: m.F.cross_entropy(x, t),
        lambda m, x, t: m.F.cross_entropy(x, t, reduction="none", label_smoothing=0.1),
        lambda m, x: x.sigmoid(),
    ],
    ids=[
        "softmax",
        "log_softmax",
        "log_softmax-dim0",
        "cross_entropy",
        "cross_entropy-smooth",
        "sigmoid",
    ],
)
def test_large_logits_stay_finite_and_match_pytorch(fn, dtype, device):
    arrays = (LARGE_LOGITS, numpy.array([2, 0, 1]))[: fn.__code__.co_argcount - 1]
    our_outputs, their_outputs, ours, theirs = run_both(fn, arrays, device, dtype)
    assert numpy.isfinite(to_numpy(our_outputs[0])).all()
    assert numpy.isfinite(to_numpy(ours[0].grad)).all()
    assert_same(our_outputs[0], their_outputs[0], dtype, "value")
    assert_same(ours[0].grad, theirs[0].grad, dtype, "gradient")


# -- points where an op is not smooth: the gradient PyTorch chooses ---------------------

KINKS = {
    "relu-at-zero": (lambda m, x: x.relu(), numpy.array([-1.0, 0.0, 2.0])),
    "abs-at-zero": (lambda m, x: x.abs(), numpy.array([-1.0, 0.0, 2.0])),
    "clamp-at-bounds": (lambda m, x: x.clamp(-1.0, 1.0), numpy.array([-1.0, 0.0, 1.0, 2.0])),
    "max-all-ties": (lambda m, x: x.max(), numpy.array([[1.0, 3.0, 3.0], [2.0, 3.0, 1.0]])),
    "min-all-ties": (lambda m, x: x.min(), numpy.array([[1.0, 3.0], [1.0, 1.0]])),
    "max-dim-ties": (lambda m, x: x.max(dim=1), numpy.array([[1.0, 3.0, 3.0], [2.0, 2.0, 1.0]])),
    "min-dim-ties": (lambda m, x: x.min(dim=0), numpy.array([[1.0, 3.0, 0.0], [1.0, 2.0, 0.0]])),
    "pow-zero-base": (lambda m, x: x**2, numpy.array([0.0, 1.0])),
    "sqrt-at-zero": (lambda m, x: x.sqrt(), numpy.array([0.0, 4.0])),
}


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # sqrt'(0) is inf
@pytest.mark.parametrize("name", KINKS)
def test_gradient_at_a_kink_is_the_one_pytorch_picks(name, device):
    fn, array = KINKS[name]
    our_outputs, their_outputs, ours, theirs = run_both(fn, (array,), device, "float64")
    for mine, reference in zip(our_outputs, their_outputs):
        assert_same(mine, reference, "float64", "value")
    assert_same(ours[0].grad, theirs[0].grad, "float64", "gradient")


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # d(0^0.5)/db is inf
def test_pow_with_tensor_exponent_and_zero_base_matches_pytorch(device):
    fn = lambda m, base, exponent: base**exponent  # noqa: E731
    arrays = (numpy.array([0.0, 0.0, 2.0]), numpy.array([2.0, 0.5, 3.0]))
    our_outputs, their_outputs, ours, theirs = run_both(fn, arrays, device, "float64")
    assert_same(our_outputs[0], their_outputs[0], "float64", "value")
    for mine, reference in zip(ours, theirs):
        assert_same(mine.grad, reference.grad, "float64", "gradient")


# -- dtype promotion --------------------------------------------------------------------


def _operand(spec, library):
    """A Python number, or ("tensor", dtype, shape) built with ``library``."""
    if not isinstance(spec, tuple):
        return spec
    _, dtype, shape = spec
    values = numpy.arange(1, 1 + int(numpy.prod(shape, dtype=int))).reshape(shape).astype(dtype)
    if library is torch:
        return torch.tensor(values)
    return tc.tensor(values)


def T(dtype, shape=(2,)):  # noqa: N802  (reads as a type in the table below)
    return ("tensor", dtype, shape)


PROMOTIONS = [
    ("int64 + 2.5", lambda a, b: a + b, T("int64"), 2.5),
    ("2.5 + int64", lambda a, b: a + b, 2.5, T("int64")),
    ("int64 * 2", lambda a, b: a * b, T("int64"), 2),
    ("float32 + float64", lambda a, b: a + b, T("float32"), T("float64")),
    ("float64 - float32", lambda a, b: a - b, T("float64"), T("float32")),
    ("int64 / int64", lambda a, b: a / b, T("int64"), T("int64")),
    ("int64 / 2", lambda a, b: a / b, T("int64"), 2),
    ("7 / int64", lambda a, b: a / b, 7, T("int64")),
    ("int32 / int32", lambda a, b: a / b, T("int32"), T("int32")),
    ("float32 + 0-d float64", lambda a, b: a + b, T("float32"), T("float64", ())),
    ("0-d float64 * float32", lambda a, b: a * b, T("float64", ()), T("float32")),
    ("int64 + 0-d float64", lambda a, b: a + b, T("int64"), T("float64", ())),
    ("int32 + 0-d int64", lambda a, b: a + b, T("int32"), T("int64", ())),
    ("0-d float64 + 0-d int32", lambda a, b: a + b, T("float64", ()), T("int32", ())),
    ("0-d float32 + 0-d float64", lambda a, b: a + b, T("float32", ()), T("float64", ())),
    ("int32 + 5", lambda a, b: a + b, T("int32"), 5),
    ("uint8 + int8", lambda a, b: a + b, T("uint8"), T("int8")),
    ("int64 + float32", lambda a, b: a + b, T("int64"), T("float32")),
    ("float16 * 0-d float32", lambda a, b: a * b, T("float16"), T("float32", ())),
    ("float32 * 2.0", lambda a, b: a * b, T("float32"), 2.0),
    ("float64 + 1", lambda a, b: a + b, T("float64"), 1),
    ("bool + 1", lambda a, b: a + b, T("bool"), 1),
    ("bool + 1.5", lambda a, b: a + b, T("bool"), 1.5),
    ("int64 ** 2", lambda a, b: a**b, T("int64"), 2),
    ("int64 ** 0.5", lambda a, b: a**b, T("int64"), 0.5),
    ("2 ** int64", lambda a, b: a**b, 2, T("int64")),
    ("2.5 ** int64", lambda a, b: a**b, 2.5, T("int64")),
    ("float32 ** float64", lambda a, b: a**b, T("float32"), T("float64")),
    # a NumPy scalar counts as the Python number it holds, whatever its dtype
    ("float32 * numpy.float64", lambda a, b: a * b, T("float32"), numpy.float64(0.5)),
    ("numpy.float64 * float32", lambda a, b: a * b, numpy.float64(0.5), T("float32")),
    ("int64 + numpy.float64", lambda a, b: a + b, T("int64"), numpy.float64(2.5)),
    ("float64 / numpy.float32", lambda a, b: a / b, T("float64"), numpy.float32(4.0)),
    ("int32 - numpy.int64", lambda a, b: a - b, T("int32"), numpy.int64(3)),
    ("float16 * numpy.float32", lambda a, b: a * b, T("float16"), numpy.float32(2.0)),
]


@pytest.mark.parametrize(
    "fn, left, right", [pytest.param(*row[1:], id=row[0]) for row in PROMOTIONS]
)
def test_binary_result_dtype_matches_pytorch(fn, left, right):
    ours = fn(_operand(left, tc), _operand(right, tc))
    theirs = fn(_operand(left, torch), _operand(right, torch))
    assert ours.dtype.__name__ == _torch_dtype_name(theirs)
    numpy.testing.assert_allclose(to_numpy(ours), theirs.numpy(), rtol=1e-6)


UNARY_DTYPES = [
    ("exp of int64", lambda m, x: x.exp(), "int64"),
    ("sigmoid of int64", lambda m, x: x.sigmoid(), "int64"),
    ("sqrt of int32", lambda m, x: x.sqrt(), "int32"),
    ("neg of int64", lambda m, x: -x, "int64"),
    ("abs of int32", lambda m, x: x.abs(), "int32"),
    ("sum of int32", lambda m, x: x.sum(), "int32"),
    ("sum of bool", lambda m, x: x.sum(), "bool"),
    ("sum of float16", lambda m, x: x.sum(), "float16"),
    ("max of int64", lambda m, x: x.max(), "int64"),
    ("comparison", lambda m, x: x > 1, "float32"),
    ("cat float32 float64", lambda m, x: m.lib.cat([x, x.double()]), "float32"),
    ("cat int64 float32", lambda m, x: m.lib.cat([x, x.float()]), "int64"),
    ("stack int32 int64", lambda m, x: m.lib.stack([x, x.long()]), "int32"),
    ("where float32 float64", lambda m, x: m.lib.where(x > 1, x, x.double()), "float32"),
    ("where float32 scalar", lambda m, x: m.lib.where(x > 1, x, 0.0), "float32"),
    ("where int64 scalar", lambda m, x: m.lib.where(x > 1, x, 0.5), "int64"),
    ("where scalar int64", lambda m, x: m.lib.where(x > 1, 2, x), "int64"),
    # NumPy scalars count as the Python numbers they hold
    (
        "where float32 numpy.float64",
        lambda m, x: m.lib.where(x > 1, x, numpy.float64(0.5)),
        "float32",
    ),
    ("clamp float32 numpy.float64", lambda m, x: x.clamp(min=numpy.float64(1.5)), "float32"),
    ("add_ numpy.int32 to int64", lambda m, x: x.add_(numpy.int32(2)), "int64"),
    ("mul_ numpy.float64 to float32", lambda m, x: x.mul_(numpy.float64(0.5)), "float32"),
]


@pytest.mark.parametrize("fn, dtype", [pytest.param(*row[1:], id=row[0]) for row in UNARY_DTYPES])
def test_result_dtype_matches_pytorch(fn, dtype):
    values = numpy.array([1, 2, 3]).astype(dtype)
    ours = fn(TINYCONV, tc.tensor(values))
    theirs = fn(TORCH, torch.tensor(values))
    assert ours.dtype.__name__ == _torch_dtype_name(theirs)
    numpy.testing.assert_allclose(to_numpy(ours).astype(float), theirs.double().numpy(), rtol=1e-3)


def test_mean_of_an_integer_tensor_is_refused_as_in_pytorch():
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2]).mean()
    with pytest.raises(TypeError, match="floating point"):
        tc.tensor([1, 2]).mean()
