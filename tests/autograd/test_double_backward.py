"""Second derivatives: create_graph=True and gradgradcheck."""

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn.functional as F
from tinyconv.ops.elementwise import Exp


def leaf(*shape, seed=0):
    tc.manual_seed(seed)
    return tc.randn(*shape, dtype=tc.float64, requires_grad=True)


SUPPORTED = {
    "add_mul": lambda x: (x * x * 3 + x).sum(),
    "sub_neg": lambda x: -(x * x - x * 2),
    "div": lambda x: 1 / (x * x + 1),
    "exp_log_sqrt": lambda x: (x * x + 1).log() + (x * 0.1).exp() + (x * x + 2).sqrt(),
    "tanh_sigmoid": lambda x: x.tanh() * x.sigmoid(),
    "relu": lambda x: (x * x).relu() * x,
    "softmax": lambda x: x.softmax(1),
    "sum_mean": lambda x: (x * x).mean(0) + (x * x * x).sum(1, keepdim=True).sum(),
    "reshape": lambda x: (x * x).reshape(2, 6) * x.reshape(2, 6),
}


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_gradgradcheck_passes_for_ops_with_a_differentiable_backward(name):
    assert tc.gradgradcheck(SUPPORTED[name], (leaf(3, 4),))


def test_gradgradcheck_passes_through_linear():
    x, weight, bias = leaf(3, 4), leaf(5, 4, seed=1), leaf(5, seed=2)
    assert tc.gradgradcheck(lambda x, w, b: F.linear(x * x, w, b).tanh(), (x, weight, bias))


def test_second_derivative_matches_the_hand_computed_formula():
    # f = sum(x^3): df/dx = 3 x^2, d/dx <df/dx, 1> = 6 x
    x = leaf(5)
    with tc.autograd.keep_inputs():
        y = (x * x * x).sum()
    (first,) = tc.grad(y, [x], create_graph=True)
    numpy.testing.assert_allclose(first.detach().numpy(), 3 * x.detach().numpy() ** 2)
    (second,) = tc.grad(first.sum(), [x])
    numpy.testing.assert_allclose(second.numpy(), 6 * x.detach().numpy())


def test_backward_with_create_graph_leaves_a_differentiable_grad():
    x = leaf(4)
    with tc.autograd.keep_inputs():
        y = (x.tanh() * x).sum()
    y.backward(create_graph=True)
    assert x.grad.grad_fn is not None
    first = x.grad
    x.grad = None
    first.sum().backward()
    t = numpy.tanh(x.detach().numpy())
    # d/dx (tanh(x) + x (1 - tanh^2 x)) = 2 (1 - t^2) - 2 x t (1 - t^2)
    expected = 2 * (1 - t**2) - 2 * x.detach().numpy() * t * (1 - t**2)
    numpy.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-10)


def test_second_derivatives_match_pytorch():
    torch = pytest.importorskip("torch")
    x = leaf(3, 4)
    with tc.autograd.keep_inputs():
        y = (x.sigmoid() * x.softmax(1) / (x * x + 1)).sum()
    (first,) = tc.grad(y, [x], create_graph=True)
    (second,) = tc.grad((first * first).sum(), [x])

    theirs = torch.tensor(x.detach().numpy(), requires_grad=True)
    y_t = (theirs.sigmoid() * theirs.softmax(1) / (theirs * theirs + 1)).sum()
    (first_t,) = torch.autograd.grad(y_t, [theirs], create_graph=True)
    (second_t,) = torch.autograd.grad((first_t * first_t).sum(), [theirs])
    numpy.testing.assert_allclose(second.numpy(), second_t.numpy(), rtol=1e-10, atol=1e-12)


class ExpWithConstantSecondDerivative(Exp):
    """A correct first derivative whose own derivative is lost (the output is detached)."""

    def backward(self, grad_out):
        (out,) = self.saved_arrays
        return grad_out * (out.detach() if isinstance(out, tc.Tensor) else out)


def test_gradgradcheck_catches_a_wrong_second_derivative():
    x = leaf(3)
    assert tc.gradcheck(lambda x: ExpWithConstantSecondDerivative.apply(x), (x,))
    with pytest.raises(
        tc.GradcheckError,
        match=r"^gradgradcheck, checking the gradient of the first derivative: .*input 0 .* "
        r"element \(0,\): analytic 0",
    ):
        tc.gradgradcheck(lambda x: ExpWithConstantSecondDerivative.apply(x), (x,))


def test_create_graph_through_an_op_without_differentiable_backward_names_it():
    x = leaf(1, 1, 4, 4)
    weight = tc.ones(1, 1, 2, 2, dtype=tc.float64)
    with tc.autograd.keep_inputs():
        y = F.conv2d(x, weight).sum()
    with pytest.raises(RuntimeError, match="Conv2d's backward is not differentiable"):
        tc.grad(y, [x], create_graph=True)


def test_create_graph_without_keep_inputs_says_how_to_fix_it():
    x = leaf(3)
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match="keep_inputs"):
        tc.grad(y, [x], create_graph=True)


def test_keep_inputs_is_off_by_default_so_nodes_do_not_hold_their_inputs():
    x = leaf(3)
    y = (x * 2).exp()
    assert not hasattr(y.grad_fn, "inputs")
    with tc.autograd.keep_inputs():
        z = (x * 2).exp()
    assert z.grad_fn.inputs[0] is not None


def test_an_operand_and_its_detached_copy_stay_two_operands():
    # f = sum(c / x) with c = x held constant: f' = -c / x^2, f'' = 2 c / x^3 = 2 / x^2
    values = numpy.array([0.5, -1.5, 2.0])
    with tc.autograd.keep_inputs():
        x = tc.tensor(values, requires_grad=True)
        (first,) = tc.grad((x.detach() / x).sum(), x, create_graph=True)
    (second,) = tc.grad(first.sum(), x)
    numpy.testing.assert_allclose(first.detach().numpy(), -1 / values, rtol=1e-12)
    numpy.testing.assert_allclose(second.numpy(), 2 / values**2, rtol=1e-12)


def test_second_derivative_through_a_zero_dimensional_exp():
    # NumPy returns exp of a 0-d array as a scalar; f = exp(x^3), f'' = (6x + 9x^4) exp(x^3)
    with tc.autograd.keep_inputs():
        x = tc.tensor(numpy.array(0.7), requires_grad=True)
        (first,) = tc.grad((x * x * x).exp(), x, create_graph=True)
    (second,) = tc.grad(first, x)
    expected = (6 * 0.7 + 9 * 0.7**4) * numpy.exp(0.7**3)
    numpy.testing.assert_allclose(second.item(), expected, rtol=1e-12)
    assert tc.gradgradcheck(lambda a: a.exp(), [tc.tensor(numpy.array(0.7), requires_grad=True)])


def test_create_graph_under_no_grad_records_the_sum_of_two_branches():
    with tc.autograd.keep_inputs():
        x = tc.tensor(numpy.array([1.0, 2.0]), requires_grad=True)
        y = (x * x).sum()  # x reaches Mul twice: its gradient is a sum of two branches
    with tc.no_grad():
        (first,) = tc.grad(y, x, create_graph=True)
    assert first.requires_grad
    (second,) = tc.grad(first.sum(), x)
    numpy.testing.assert_allclose(second.numpy(), [2.0, 2.0])


def test_grad_runs_the_hooks_of_a_leaf_input_as_backward_does():
    x = tc.tensor(numpy.array([1.0, 2.0]), requires_grad=True)
    x.register_hook(lambda grad: grad * 10)
    (value,) = tc.grad((x * x).sum(), x)
    numpy.testing.assert_allclose(value.numpy(), [20.0, 40.0])  # PyTorch's answer
    assert x.grad is None


def test_create_graph_under_no_grad_records_hooks_and_the_sum_into_grad():
    with tc.autograd.keep_inputs():
        x = tc.tensor(numpy.array([1.0, 2.0]), requires_grad=True)
        x.register_hook(lambda grad: grad * x)  # a hook whose result has a graph
        y = (x * x).sum()
    with tc.no_grad():
        (hooked,) = tc.grad(y, x, create_graph=True)
        y.backward(create_graph=True, retain_graph=True)
        y.backward(create_graph=True)  # the second adds into .grad
    # the hooked gradient is 2x · x = 2x^2, and .grad holds it twice (PyTorch's numbers);
    # d/dx of 2x^2 is 4x, which the hook multiplies by x again
    assert hooked.requires_grad and x.grad.requires_grad
    numpy.testing.assert_allclose(hooked.detach().numpy(), [2.0, 8.0])
    numpy.testing.assert_allclose(x.grad.detach().numpy(), [4.0, 16.0])
    numpy.testing.assert_allclose(tc.grad(hooked.sum(), x)[0].numpy(), [4.0, 16.0])


def test_grad_runs_the_hooks_of_an_input_listed_twice_once():
    x = tc.tensor(numpy.array([1.0, 2.0]), requires_grad=True)
    calls = []
    x.register_hook(lambda grad: calls.append(1))
    tc.grad((x * x).sum(), [x, x])
    assert calls == [1]


def test_a_parameter_made_from_a_tensor_stays_a_second_operand():
    # Parameter(t) shares t's memory and version counter, as in PyTorch, but is an
    # operand of its own: f = sum(t / p) at p = t has f'' = 2 / t^2 along p
    values = numpy.array([0.5, -1.5, 2.0])
    t = tc.tensor(values)
    with tc.autograd.keep_inputs():
        p = tc.nn.Parameter(t)
        (first,) = tc.grad((t / p).sum(), p, create_graph=True)
    numpy.testing.assert_allclose(tc.grad(first.sum(), p)[0].numpy(), 2 / values**2)
    loss = (t * p).sum()  # Mul saves t, whose memory p shares
    t.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
