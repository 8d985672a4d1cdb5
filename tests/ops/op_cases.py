"""The grid of op cases that both the gradcheck and the PyTorch-parity tests run.

A case is a function ``fn(m, *inputs)`` written once for tinyconv and PyTorch alike
(``m.lib`` is ``tinyconv`` or ``torch``, ``m.F`` their ``functional``), and its inputs
as NumPy arrays: float arrays become leaves that require grad, integer and bool
arrays (targets, index arrays, masks) plain tensors. Values are chosen away from the
points where an op is not differentiable (abs and relu at 0, ties of max, clamp at
its bounds); ``test_ops_torch_parity`` checks those points separately.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy
import pytest

_rng = numpy.random.default_rng(20240601)


@dataclass(frozen=True)
class OpCase:
    fn: Callable[..., Any]
    inputs: tuple[numpy.ndarray, ...]


def normal(*shape: int) -> numpy.ndarray:
    return _rng.standard_normal(shape)


def positive(*shape: int) -> numpy.ndarray:
    return _rng.uniform(0.5, 2.0, shape)


def nonzero(*shape: int) -> numpy.ndarray:
    """Magnitudes in [0.4, 1.5], either sign: safe for division, abs and relu."""
    return _rng.choice([-1.0, 1.0], shape) * _rng.uniform(0.4, 1.5, shape)


def distinct(*shape: int) -> numpy.ndarray:
    """Values at least 0.37 apart and at least 0.05 from 0: no ties, no kinks."""
    count = int(numpy.prod(shape, dtype=int))
    steps = _rng.permutation(count) - count // 2
    return (steps * 0.37 + 0.05).reshape(shape)


def transposed(*shape: int) -> numpy.ndarray:
    """A non-contiguous array of ``shape``: the transpose of a contiguous one."""
    return normal(*reversed(shape)).T


def targets(classes: int, *shape: int) -> numpy.ndarray:
    return _rng.integers(0, classes, shape).astype(numpy.int64)


def case(name: str, fn: Callable[..., Any], *inputs: numpy.ndarray) -> Any:
    return pytest.param(OpCase(fn, inputs), id=name)


BROADCAST_PAIRS = [
    ((), ()),
    ((3,), ()),
    ((), (3,)),
    ((2, 3), (3,)),
    ((2, 1), (1, 3)),
    ((2, 3), (2, 3)),
    ((3, 1, 2), (4, 1)),
]


def _shape_id(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "0d"


def _arithmetic_cases() -> list:
    cases = []
    binary = {
        "add": (lambda m, a, b: a + b, normal, normal),
        "sub": (lambda m, a, b: a - b, normal, normal),
        "mul": (lambda m, a, b: a * b, normal, normal),
        "div": (lambda m, a, b: a / b, normal, nonzero),
        "pow": (lambda m, a, b: a**b, positive, normal),
    }
    for name, (fn, left, right) in binary.items():
        for a_shape, b_shape in BROADCAST_PAIRS:
            label = f"{name}-{_shape_id(a_shape)}-{_shape_id(b_shape)}"
            cases.append(case(label, fn, left(*a_shape), right(*b_shape)))
        # non-contiguous operands: a transposed leaf, a transposed and a strided view
        cases.append(case(f"{name}-transposed-leaf", fn, transposed(2, 3), right(2, 3)))
        cases.append(
            case(
                f"{name}-transposed-view",
                lambda m, a, b, fn=fn: fn(m, a.transpose(0, 1), b),
                left(3, 2),
                right(2, 3),
            )
        )
        cases.append(
            case(
                f"{name}-strided-view",
                lambda m, a, b, fn=fn: fn(m, a[:, ::2], b[::2]),
                left(2, 6),
                right(4, 3),
            )
        )
    scalar_forms = {
        "add-int": (lambda m, x: x + 2, normal),
        "radd-int": (lambda m, x: 2 + x, normal),
        "sub-float": (lambda m, x: x - 2.5, normal),
        "rsub-float": (lambda m, x: 2.5 - x, normal),
        "mul-int": (lambda m, x: x * 3, normal),
        "rmul-float": (lambda m, x: 1.5 * x, normal),
        "div-float": (lambda m, x: x / 4.0, normal),
        "rdiv-int": (lambda m, x: 4 / x, nonzero),
        "pow-2": (lambda m, x: x**2, normal),
        "pow-3": (lambda m, x: x**3, normal),
        "pow-0": (lambda m, x: x**0, normal),
        "pow-half": (lambda m, x: x**0.5, positive),
        "pow-negative": (lambda m, x: x**-1.5, positive),
        "rpow-float": (lambda m, x: 2.0**x, normal),
        "rpow-int": (lambda m, x: 3**x, normal),
    }
    for name, (fn, make) in scalar_forms.items():
        for shape in [(), (2, 3)]:
            cases.append(case(f"{name}-{_shape_id(shape)}", fn, make(*shape)))
    return cases


def _unary_cases() -> list:
    unary = {
        "neg": (lambda m, x: -x, normal),
        "abs": (lambda m, x: x.abs(), nonzero),
        "abs-builtin": (lambda m, x: abs(x), nonzero),
        "exp": (lambda m, x: x.exp(), normal),
        "log": (lambda m, x: x.log(), positive),
        "sqrt": (lambda m, x: x.sqrt(), positive),
        "clamp-min": (lambda m, x: x.clamp(min=-0.5), distinct),
        "clamp-max": (lambda m, x: x.clamp(max=0.6), distinct),
        "clamp-both": (lambda m, x: x.clamp(-0.5, 0.6), distinct),
        "relu": (lambda m, x: x.relu(), distinct),
        "sigmoid": (lambda m, x: x.sigmoid(), normal),
        "tanh": (lambda m, x: x.tanh(), normal),
        "F.relu": (lambda m, x: m.F.relu(x), distinct),
        "F.sigmoid": (lambda m, x: m.F.sigmoid(x), normal),
        "F.tanh": (lambda m, x: m.F.tanh(x), normal),
    }
    cases = []
    for name, (fn, make) in unary.items():
        for shape in [(), (2, 3)]:
            cases.append(case(f"{name}-{_shape_id(shape)}", fn, make(*shape)))
        # through a transposed view of the leaf, values from the same generator
        cases.append(case(f"{name}-transposed", lambda m, x, fn=fn: fn(m, x.T), make(3, 2)))
    cases.append(case("sigmoid-large", lambda m, x: x.sigmoid(), normal(5) * 30))
    return cases


def _reduction_cases() -> list:
    cases = []
    for name in ("sum", "mean"):
        cases.append(case(f"{name}-all", lambda m, x, n=name: getattr(x, n)(), normal(2, 3, 4)))
        cases.append(case(f"{name}-all-0d", lambda m, x, n=name: getattr(x, n)(), normal()))
        cases.append(case(f"{name}-dim0-0d", lambda m, x, n=name: getattr(x, n)(dim=0), normal()))
        cases.append(
            case(f"{name}-transposed", lambda m, x, n=name: getattr(x, n)(dim=0), transposed(3, 4))
        )
        for dim in (0, 1, -1, (0, 2), (-1, 0)):
            for keepdim in (False, True):
                cases.append(
                    case(
                        f"{name}-dim{dim}-keepdim{keepdim}".replace(" ", ""),
                        lambda m, x, n=name, d=dim, k=keepdim: getattr(x, n)(dim=d, keepdim=k),
                        normal(2, 3, 4),
                    )
                )
    for name in ("max", "min"):
        cases.append(case(f"{name}-all", lambda m, x, n=name: getattr(x, n)(), distinct(3, 4)))
        cases.append(case(f"{name}-all-0d", lambda m, x, n=name: getattr(x, n)(), normal()))
        cases.append(case(f"{name}-dim0-0d", lambda m, x, n=name: getattr(x, n)(dim=0), normal()))
        cases.append(case(f"{name}-1d", lambda m, x, n=name: getattr(x, n)(dim=0), distinct(5)))
        cases.append(
            case(
                f"{name}-transposed",
                lambda m, x, n=name: getattr(x, n)(dim=1),
                distinct(4, 3).T,
            )
        )
        for dim in (0, 1, -1):
            for keepdim in (False, True):
                cases.append(
                    case(
                        f"{name}-dim{dim}-keepdim{keepdim}",
                        lambda m, x, n=name, d=dim, k=keepdim: getattr(x, n)(dim=d, keepdim=k),
                        distinct(2, 3, 4),
                    )
                )
    return cases


def _shape_cases() -> list:
    x3 = normal(2, 3, 4)
    return [
        case("reshape", lambda m, x: x.reshape(4, 6), x3),
        case("reshape-tuple", lambda m, x: x.reshape((6, -1)), x3),
        case("reshape-minus-one", lambda m, x: x.reshape(-1), x3),
        case("reshape-0d", lambda m, x: x.reshape(1, 1), normal()),
        case("reshape-transposed", lambda m, x: x.reshape(12), transposed(3, 4)),
        case("view", lambda m, x: x.view(2, 12), x3),
        case("flatten", lambda m, x: x.flatten(), x3),
        case("flatten-from-1", lambda m, x: x.flatten(1), x3),
        case("flatten-0-1", lambda m, x: x.flatten(0, 1), x3),
        case("flatten-negative", lambda m, x: x.flatten(-2, -1), x3),
        # torch.nn.functional has no flatten: PyTorch's twin is torch.flatten
        case("F.flatten", lambda m, x: (getattr(m.F, "flatten", None) or m.lib.flatten)(x, 1), x3),
        case("transpose", lambda m, x: x.transpose(0, 2), x3),
        case("transpose-negative", lambda m, x: x.transpose(-1, 0), x3),
        case("T", lambda m, x: x.T, normal(3, 4)),
        case("permute", lambda m, x: x.permute(2, 0, 1), x3),
        case("permute-tuple", lambda m, x: x.permute((1, 2, 0)), x3),
        case("permute-negative", lambda m, x: x.permute(-1, 0, 1), x3),
        case("squeeze", lambda m, x: x.squeeze(), normal(1, 3, 1, 2)),
        case("squeeze-dim", lambda m, x: x.squeeze(0), normal(1, 3, 1, 2)),
        case("squeeze-negative", lambda m, x: x.squeeze(-2), normal(1, 3, 1, 2)),
        case("squeeze-not-one", lambda m, x: x.squeeze(1), normal(1, 3, 1, 2)),
        case("unsqueeze", lambda m, x: x.unsqueeze(0), normal(2, 3)),
        case("unsqueeze-middle", lambda m, x: x.unsqueeze(1), normal(2, 3)),
        case("unsqueeze-negative", lambda m, x: x.unsqueeze(-1), normal(2, 3)),
        case("unsqueeze-0d", lambda m, x: x.unsqueeze(0), normal()),
        case("expand", lambda m, x: x.expand(2, 3, 4), normal(3, 1)),
        case("expand-minus-one", lambda m, x: x.expand(-1, 4), normal(3, 1)),
        case("expand-0d", lambda m, x: x.expand(2, 3), normal()),
    ]


def _indexing_cases() -> list:
    x = normal(4, 3)
    return [
        case("int", lambda m, x: x[1], x),
        case("int-negative", lambda m, x: x[-1], x),
        case("two-ints", lambda m, x: x[1, 2], x),
        case("slice", lambda m, x: x[1:3], x),
        case("slice-step", lambda m, x: x[::2], x),
        case("column", lambda m, x: x[:, 1], x),
        case("slice-tail", lambda m, x: x[:, -2:], x),
        case("slice-both", lambda m, x: x[1:, ::2], x),
        case("ellipsis", lambda m, x: x[..., 0], normal(2, 3, 2)),
        case("none", lambda m, x: x[None], x),
        case("list-repeated", lambda m, x: x[[0, 0, 3]], x),
        case("array-repeated", lambda m, x, i: x[i], x, numpy.array([0, 2, 0, 2])),
        case(
            "arrays-pairs-repeated",
            lambda m, x, i, j: x[i, j],
            x,
            numpy.array([0, 1, 0, 3]),
            numpy.array([2, 1, 2, 0]),
        ),
        case("array-columns", lambda m, x, i: x[:, i], x, numpy.array([2, 2, 0])),
        case("array-2d", lambda m, x, i: x[i], x, numpy.array([[0, 1], [1, 3]])),
        case("mask", lambda m, x, mask: x[mask], x, x > 0.3),
        case("mask-rows", lambda m, x, mask: x[mask], x, numpy.array([True, False, True, True])),
        case("index-transposed", lambda m, x, i: x[i], transposed(4, 3), numpy.array([3, 3, 1])),
    ]


def _joining_cases() -> list:
    return [
        case("cat-dim0", lambda m, a, b: m.lib.cat([a, b], dim=0), normal(2, 3), normal(1, 3)),
        case("cat-dim1", lambda m, a, b: m.lib.cat([a, b], dim=1), normal(2, 3), normal(2, 2)),
        case("cat-negative", lambda m, a, b: m.lib.cat([a, b], -1), normal(2, 3), normal(2, 1)),
        case(
            "cat-three",
            lambda m, a, b, c: m.lib.cat((a, b, c)),
            normal(1, 2),
            transposed(2, 2),
            normal(3, 2),
        ),
        case("stack-dim0", lambda m, a, b: m.lib.stack([a, b]), normal(2, 3), normal(2, 3)),
        case("stack-dim1", lambda m, a, b: m.lib.stack([a, b], dim=1), normal(2, 3), normal(2, 3)),
        case(
            "stack-negative",
            lambda m, a, b: m.lib.stack([a, b], dim=-1),
            normal(2, 3),
            transposed(2, 3),
        ),
        case(
            "where",
            lambda m, c, a, b: m.lib.where(c, a, b),
            normal(2, 3) > 0,
            normal(2, 3),
            normal(2, 3),
        ),
        case(
            "where-broadcast",
            lambda m, c, a, b: m.lib.where(c, a, b),
            normal(2, 3) > 0,
            normal(2, 1),
            normal(3),
        ),
        case(
            "where-scalar-other", lambda m, c, a: m.lib.where(c, a, 0.0), normal(3) > 0, normal(3)
        ),
        case(
            "where-scalar-input", lambda m, c, b: m.lib.where(c, 1.5, b), normal(3) > 0, normal(3)
        ),
    ]


def _softmax_cases() -> list:
    cases = []
    for name in ("softmax", "log_softmax"):
        for dim in (0, 1, -1):
            cases.append(
                case(
                    f"{name}-dim{dim}",
                    lambda m, x, n=name, d=dim: getattr(x, n)(d),
                    normal(3, 4),
                )
            )
        shaped = [
            ("3d", 1, normal(2, 3, 4)),
            ("1d", 0, normal(5)),
            ("transposed", 1, transposed(3, 4)),
            ("empty-dim", 1, normal(2, 0)),
            ("0d", 0, normal()),
        ]
        for label, dim, array in shaped:
            cases.append(
                case(f"{name}-{label}", lambda m, x, n=name, d=dim: getattr(x, n)(d), array)
            )
        cases.append(
            case(
                f"F.{name}",
                lambda m, x, n=name: getattr(m.F, n)(x, dim=-1),
                normal(3, 4),
            )
        )
    return cases


def _matmul_cases() -> list:
    pairs = [
        ((3,), (3,)),
        ((3,), (3, 4)),
        ((2, 3), (3,)),
        ((2, 3), (3, 4)),
        ((2, 2, 3), (2, 3, 2)),
        ((2, 1, 2, 3), (3, 3, 2)),
        ((3,), (2, 3, 4)),
        ((2, 2, 3), (3,)),
        ((2, 2, 3), (3, 2)),
    ]
    cases = [
        case(f"matmul-{_shape_id(a)}-{_shape_id(b)}", lambda m, a, b: a @ b, normal(*a), normal(*b))
        for a, b in pairs
    ]
    cases.append(case("matmul-method", lambda m, a, b: a.matmul(b), normal(2, 3), normal(3, 2)))
    cases.append(case("matmul-transposed", lambda m, a, b: a @ b, transposed(2, 3), normal(3, 4)))
    cases.append(
        case("matmul-transposed-view", lambda m, a, b: a @ b.T, normal(2, 3), normal(4, 3))
    )
    linear = [
        ("linear", normal(4, 3), normal(2, 3), normal(2)),
        ("linear-batched", normal(2, 3, 3), normal(2, 3), normal(2)),
        ("linear-1d", normal(3), normal(2, 3), normal(2)),
        ("linear-transposed-weight", normal(4, 3), transposed(2, 3), normal(2)),
    ]
    for name, x, w, b in linear:
        cases.append(case(f"F.{name}", lambda m, x, w, b: m.F.linear(x, w, b), x, w, b))
    cases.append(
        case("F.linear-no-bias", lambda m, x, w: m.F.linear(x, w), normal(4, 3), normal(2, 3))
    )
    return cases


def _loss_cases() -> list:
    cases = []
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.1):
            cases.append(
                case(
                    f"cross_entropy-{reduction}-smoothing{smoothing}",
                    lambda m, x, t, r=reduction, s=smoothing: m.F.cross_entropy(
                        x, t, reduction=r, label_smoothing=s
                    ),
                    normal(4, 3),
                    targets(3, 4),
                )
            )
        cases.append(
            case(
                f"cross_entropy-spatial-{reduction}",
                lambda m, x, t, r=reduction: m.F.cross_entropy(
                    x, t, reduction=r, label_smoothing=0.2
                ),
                normal(2, 3, 2),
                targets(3, 2, 2),
            )
        )
        cases.append(
            case(
                f"nll_loss-{reduction}",
                lambda m, x, t, r=reduction: m.F.nll_loss(x, t, reduction=r),
                normal(4, 3),
                targets(3, 4),
            )
        )
        cases.append(
            case(
                f"nll_loss-spatial-{reduction}",
                lambda m, x, t, r=reduction: m.F.nll_loss(x, t, reduction=r),
                normal(2, 3, 2),
                targets(3, 2, 2),
            )
        )
        cases.append(
            case(
                f"mse_loss-{reduction}",
                lambda m, x, y, r=reduction: m.F.mse_loss(x, y, reduction=r),
                normal(2, 3),
                normal(2, 3),
            )
        )
    cases += [
        case(
            "cross_entropy-one-sample",
            lambda m, x, t: m.F.cross_entropy(x, t),
            normal(3),
            numpy.array(2),
        ),
        case(
            "cross_entropy-one-sample-none",
            lambda m, x, t: m.F.cross_entropy(x, t, reduction="none", label_smoothing=0.3),
            normal(3),
            numpy.array(1),
        ),
        case("nll_loss-one-sample", lambda m, x, t: m.F.nll_loss(x, t), normal(3), numpy.array(0)),
        case(
            "cross_entropy-transposed",
            lambda m, x, t: m.F.cross_entropy(x, t),
            transposed(4, 3),
            targets(3, 4),
        ),
        case("mse_loss-0d", lambda m, x, y: m.F.mse_loss(x, y), normal(), normal()),
    ]
    return cases


def _pad_cases() -> list:
    return [
        case("pad-last", lambda m, x: m.F.pad(x, (1, 2)), normal(2, 3)),
        case("pad-two-dims", lambda m, x: m.F.pad(x, (1, 1, 2, 0)), normal(2, 3)),
        case("pad-crop", lambda m, x: m.F.pad(x, (-1, 1)), normal(2, 3)),
        case("pad-crop-both", lambda m, x: m.F.pad(x, (0, -1, -1, 2)), normal(2, 3)),
        case("pad-value", lambda m, x: m.F.pad(x, (0, 0, 1, 1), value=0.5), normal(2, 3)),
        case("pad-three-dims", lambda m, x: m.F.pad(x, (1, 0, 0, 1, 1, 1)), normal(2, 3, 2)),
        case("pad-transposed", lambda m, x: m.F.pad(x, (1, 1)), transposed(2, 3)),
    ]


ARITHMETIC = _arithmetic_cases()
UNARY = _unary_cases()
REDUCTIONS = _reduction_cases()
SHAPES = _shape_cases()
INDEXING = _indexing_cases()
JOINING = _joining_cases()
SOFTMAX = _softmax_cases()
MATMUL = _matmul_cases()
LOSSES = _loss_cases()
PADDING = _pad_cases()

ALL_CASES = (
    ARITHMETIC + UNARY + REDUCTIONS + SHAPES + INDEXING + JOINING + SOFTMAX + MATMUL + LOSSES
) + PADDING
