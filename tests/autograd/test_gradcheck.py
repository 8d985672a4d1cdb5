"""``tc.gradcheck``: passes right gradients, catches wrong ones, and says where."""

from __future__ import annotations

import re

import numpy
import pytest
from helpers import leaf

import tinyconv as tc
from tinyconv.autograd import Function


def _random(shape, seed=0):
    return numpy.random.default_rng(seed).standard_normal(shape)


class _TransposeForgottenInBackward(Function):
    """y = x^T, but backward hands the gradient back untransposed.

    With an all-ones upstream gradient the result is all ones either way, so only a
    random upstream direction can catch it."""

    def forward(self, x):
        return x.T.copy()

    def backward(self, grad_out):
        return grad_out


class _OffByOneAtOneElement(Function):
    """y = a * b, with 1 added to dL/db at element (1, 2)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, grad_out):
        a, b = self.saved_arrays
        grad_b = grad_out * a
        grad_b[1, 2] += 1.0
        return grad_out * b, grad_b


def test_gradcheck_passes_a_correct_op(device):
    x = leaf(_random((3, 4)), device)
    w = leaf(_random((4, 2), seed=1), device)
    assert tc.gradcheck(lambda a, b: (a @ b).tanh(), (x, w)) is True


def test_gradcheck_passes_a_non_contiguous_input(device):
    x = leaf(_random((4, 3)).T, device)
    assert tc.gradcheck(lambda a: (a * a).exp(), (x,)) is True


def test_gradcheck_passes_an_op_with_several_outputs(device):
    x = leaf(_random((3, 4)), device)
    assert tc.gradcheck(lambda a: a.max(dim=1), (x,)) is True


def test_gradcheck_catches_a_transposed_gradient(device):
    x = leaf(_random((3, 3)), device)
    with pytest.raises(tc.GradcheckError):
        tc.gradcheck(_TransposeForgottenInBackward.apply, (x,))


def test_transposed_gradient_hides_from_an_all_ones_upstream_gradient(device):
    # the reason gradcheck needs a random direction: with ones, the bug is invisible
    x = leaf(_random((3, 3)), device)
    _TransposeForgottenInBackward.apply(x).sum().backward()
    numpy.testing.assert_array_equal(tc.backend.to_device(x.grad.data, "cpu"), numpy.ones((3, 3)))


def test_gradcheck_error_names_input_element_both_values_and_difference(device):
    a = leaf(_random((2, 3)), device)
    b = leaf(_random((2, 3), seed=1), device)
    with pytest.raises(tc.GradcheckError) as caught:
        tc.gradcheck(_OffByOneAtOneElement.apply, (a, b))
    message = str(caught.value)
    assert re.search(r"input 1\b", message), message
    assert "(1, 2)" in message, message
    number = r"(-?\d+(?:\.\d*)?(?:e[-+]?\d+)?)"
    analytic = float(re.search(r"analytic\D{0,3}" + number, message).group(1))
    numerical = float(re.search(r"numerical\D{0,3}" + number, message).group(1))
    difference = float(re.search(r"difference\D{0,3}" + number, message).group(1))
    # the backward adds exactly 1 at that element
    assert analytic - numerical == pytest.approx(1.0, abs=1e-4)
    assert difference == pytest.approx(1.0, abs=1e-2)


def test_gradcheck_returns_false_when_told_not_to_raise(device):
    x = leaf(_random((3, 3)), device)
    result = tc.gradcheck(_TransposeForgottenInBackward.apply, (x,), raise_exception=False)
    assert result is False


def test_gradcheck_warns_on_float32_inputs(device):
    x = tc.tensor(_random((3,)), dtype=tc.float32, device=device, requires_grad=True)
    with pytest.warns(UserWarning, match="float64"):
        # a step float32 can resolve: the check itself still passes
        assert tc.gradcheck(lambda a: a * 2.0, (x,), eps=1e-2, atol=1e-3)


def test_gradcheck_skips_inputs_that_do_not_require_grad(device):
    # the broken gradient is b's; b is not checked, so the check passes
    a = leaf(_random((2, 3)), device)
    b = leaf(_random((2, 3), seed=1), device, requires_grad=False)
    assert tc.gradcheck(_OffByOneAtOneElement.apply, (a, b)) is True


def test_gradcheck_without_an_input_requiring_grad_raises():
    x = tc.tensor([1.0, 2.0], dtype=tc.float64)
    with pytest.raises(ValueError, match="requires grad"):
        tc.gradcheck(lambda a: a * 2.0, (x,))


def test_gradcheck_leaves_the_inputs_unchanged(device):
    data = _random((4, 3)).T
    x = leaf(data, device)
    tc.gradcheck(lambda a: a.exp(), (x,))
    numpy.testing.assert_array_equal(tc.backend.to_device(x.data, "cpu"), data)
