"""Gradient checking: the analytic gradient against central finite differences.

The check contracts the output with a random direction ``v`` first: comparing
d<v, f(x)>/dx checks every entry of the Jacobian at once, where an all-ones ``v``
would let a transposed or mis-summed gradient pass unnoticed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy

from tinyconv import backend
from tinyconv.autograd import engine
from tinyconv.autograd.grad_mode import enable_grad, keep_inputs, no_grad
from tinyconv.tensor import Tensor

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]


class GradcheckError(RuntimeError):
    """The analytic and numerical gradients disagree."""


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _differentiable_outputs(outputs: tuple) -> list[Tensor]:
    return [out for out in outputs if isinstance(out, Tensor) and out.data.dtype.kind == "f"]


def _directions(outputs: list[Tensor], generator: numpy.random.Generator) -> list[Any]:
    directions = []
    for out in outputs:
        xp = backend.get_array_module(out.data)
        values = generator.standard_normal(out.shape).astype(out.data.dtype)
        directions.append(xp.asarray(values))
    return directions


def _contract(outputs: list[Tensor], directions: list[Any]) -> float:
    return float(sum(float((out.data * v).sum()) for out, v in zip(outputs, directions)))


def gradcheck(
    func: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    seed: int = 0,
) -> bool:
    """Check ``func``'s gradients with respect to every input that requires grad.

    Args:
        func: takes the inputs, returns a Tensor or a tuple of Tensors.
        inputs: a Tensor or a sequence of them (other values are passed through).
        eps: the finite-difference step.
        atol, rtol: |analytic - numerical| <= atol + rtol * |numerical| must hold.
        raise_exception: raise ``GradcheckError`` on failure (else return False).
        seed: seeds the random upstream direction.
    """
    inputs = _as_tuple(inputs)
    checked = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    for position, tensor in checked:
        if tensor.data.dtype != numpy.float64:
            warnings.warn(
                f"gradcheck: input {position} is {tensor.data.dtype}, not float64; finite "
                "differences in low precision give false failures",
                stacklevel=2,
            )
    generator = numpy.random.default_rng(seed)
    outputs = _differentiable_outputs(_as_tuple(func(*inputs)))
    if not outputs:
        raise ValueError("gradcheck: func returned no floating-point Tensor")
    directions = _directions(outputs, generator)

    # an output that does not require grad is constant: its analytic gradient is zero
    graded = [(out, v) for out, v in zip(outputs, directions) if out.requires_grad]
    analytic: tuple = (None,) * len(checked)
    if graded:
        analytic = engine.grad(
            [out for out, _ in graded],
            [tensor for _, tensor in checked],
            grad_outputs=[Tensor._wrap(v, out.device) for out, v in graded],
            allow_unused=True,
        )
    for (position, tensor), computed in zip(checked, analytic):
        computed_array = (
            numpy.zeros(tensor.shape)
            if computed is None
            else backend.to_device(computed.data, "cpu").astype(numpy.float64)
        )
        numerical = _numerical_gradient(func, inputs, tensor, directions, eps)
        problem = _first_mismatch(computed_array, numerical, atol, rtol)
        if problem is not None:
            element, got, expected = problem
            message = (
                f"gradcheck: the gradient of input {position} (shape {tensor.shape}) is wrong at "
                f"element {element}: analytic {got:.10g}, numerical {expected:.10g}, difference "
                f"{got - expected:.3g} (allowed {atol + rtol * abs(expected):.3g})"
            )
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True


def _numerical_gradient(func, inputs, tensor: Tensor, directions, eps: float) -> numpy.ndarray:
    """d<v, f(x)>/dx by central differences, one element at a time."""
    data = tensor.data
    gradient = numpy.zeros(data.shape)
    flat = data.reshape(-1)  # a view when contiguous; otherwise written back below
    is_view = flat.base is data or flat.base is data.base or data.size <= 1
    with no_grad():
        for element in range(data.size):
            original = flat[element].item()
            values = []
            for step in (eps, -eps):
                flat[element] = original + step
                if not is_view:
                    data[...] = flat.reshape(data.shape)
                outputs = _differentiable_outputs(_as_tuple(func(*inputs)))
                values.append(_contract(outputs, directions))
            flat[element] = original
            if not is_view:
                data[...] = flat.reshape(data.shape)
            gradient.reshape(-1)[element] = (values[0] - values[1]) / (2 * eps)
    return gradient


def _first_mismatch(analytic, numerical, atol: float, rtol: float):
    bad = ~(abs(analytic - numerical) <= atol + rtol * abs(numerical))
    if not bad.any():
        return None
    element = tuple(int(i) for i in numpy.argwhere(bad)[0])
    return element, float(analytic[element]), float(numerical[element])


def gradgradcheck(
    func: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    seed: int = 0,
) -> bool:
    """Check second derivatives: gradcheck applied to the gradient <v, df/dx>.

    The first gradient is computed with ``create_graph=True``, so every op on the
    path needs a differentiable backward (``backward_graph``); others raise.
    """
    inputs = _as_tuple(inputs)
    generator = numpy.random.default_rng(seed + 1)
    with no_grad():
        outputs = _differentiable_outputs(_as_tuple(func(*inputs)))
    directions = [
        Tensor._wrap(v, out.device) for out, v in zip(outputs, _directions(outputs, generator))
    ]

    def first_derivative(*args: Any) -> tuple:
        # the gradient <v, df/dx>, recorded so gradcheck can differentiate it again
        # (grad mode on even when gradcheck evaluates it for finite differences)
        with enable_grad(), keep_inputs():
            outs = _differentiable_outputs(_as_tuple(func(*args)))
            wrt = [a for a in args if isinstance(a, Tensor) and a.requires_grad]
            grads = engine.grad(
                outs, wrt, grad_outputs=directions, create_graph=True, allow_unused=True
            )
        return tuple(g for g in grads if g is not None)

    try:
        return gradcheck(first_derivative, inputs, eps, atol, rtol, raise_exception, seed)
    except GradcheckError as error:  # say which derivative: the message is gradcheck's
        raise GradcheckError(
            f"gradgradcheck, checking the gradient of the first derivative: {error}"
        ) from None
