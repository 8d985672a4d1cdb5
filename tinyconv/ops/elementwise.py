"""Element-wise arithmetic and math: each op's backward beside its forward.

Binary ops broadcast as NumPy does; ``unbroadcast`` sums each gradient back to its
input's shape. An operand may be a Python number (it gets no gradient). The
Tensor layer has already brought both operands to one dtype.
"""

from __future__ import annotations

from typing import Any

from tinyconv.autograd.function import Function
from tinyconv.backend import device_of, get_array_module, to_device
from tinyconv.ops.broadcast import unbroadcast

__all__ = [
    "Abs",
    "Add",
    "Cast",
    "Clamp",
    "Clone",
    "Div",
    "Exp",
    "Log",
    "Mul",
    "Neg",
    "Pow",
    "Sqrt",
    "Sub",
    "ToDevice",
]


def _shape(value: Any) -> tuple[int, ...]:
    return getattr(value, "shape", ())


class Add(Function):
    differentiable_backward = True

    def forward(self, a, b):
        # getattr inline, not _shape(): Add runs more often than any other op
        self.shapes = (getattr(a, "shape", ()), getattr(b, "shape", ()))
        return a + b

    def backward(self, grad_out):
        a_shape, b_shape = self.shapes
        need_a, need_b = self.needs_input_grad
        return (
            unbroadcast(grad_out, a_shape) if need_a else None,
            unbroadcast(grad_out, b_shape) if need_b else None,
        )


class Sub(Function):
    differentiable_backward = True

    def forward(self, a, b):
        self.shapes = (getattr(a, "shape", ()), getattr(b, "shape", ()))
        return a - b

    def backward(self, grad_out):
        a_shape, b_shape = self.shapes
        need_a, need_b = self.needs_input_grad
        return (
            unbroadcast(grad_out, a_shape) if need_a else None,
            unbroadcast(-grad_out, b_shape) if need_b else None,
        )


class Mul(Function):
    differentiable_backward = True

    def forward(self, a, b):
        # each operand's gradient reads only the other one: keep no more than that
        # (x * mask keeps the mask, not x), as PyTorch does
        need_a, need_b = self.needs_input_grad or (False, False)
        self.shapes = (getattr(a, "shape", ()), getattr(b, "shape", ()))
        self.save_for_backward(a if need_b else None, b if need_a else None)
        return a * b

    def backward(self, grad_out):
        a, b = self.saved_arrays
        a_shape, b_shape = self.shapes
        need_a, need_b = self.needs_input_grad
        return (
            unbroadcast(grad_out * b, a_shape) if need_a else None,
            unbroadcast(grad_out * a, b_shape) if need_b else None,
        )


class Div(Function):
    differentiable_backward = True

    def forward(self, a, b):
        # both gradients read b; only b's reads a
        _, need_b = self.needs_input_grad or (False, False)
        self.a_shape = _shape(a)
        self.save_for_backward(a if need_b else None, b)
        return a / b

    def backward(self, grad_out):
        a, b = self.saved_arrays
        need_a, need_b = self.needs_input_grad
        grad_a = grad_out / b
        # d(a/b)/db = -a/b^2 = -(grad/b) * a/b
        return (
            unbroadcast(grad_a, self.a_shape) if need_a else None,
            unbroadcast(-grad_a * a / b, _shape(b)) if need_b else None,
        )


class Pow(Function):
    def forward(self, base, exponent):
        out = base**exponent
        self.save_for_backward(base, exponent, out)
        return out

    def backward(self, grad_out):
        base, exponent, out = self.saved_arrays
        need_base, need_exponent = self.needs_input_grad
        grad_base = grad_exponent = None
        if need_base:
            # d(b^e)/db = e * b^(e-1); written without dividing by b, which may be 0
            grad_base = unbroadcast(grad_out * exponent * base ** (exponent - 1), _shape(base))
        if need_exponent:
            xp = get_array_module(out)
            # d(b^e)/de = b^e * log(b), taken as 0 where b^e is 0 (as PyTorch does)
            # a Python-number base comes back from xp.where as float64: cast to out's dtype
            log_base = xp.log(xp.where(base == 0, 1, base)).astype(out.dtype, copy=False)
            with_log = xp.where(out == 0, 0, out * log_base)
            grad_exponent = unbroadcast(grad_out * with_log, _shape(exponent))
        return grad_base, grad_exponent


class Neg(Function):
    differentiable_backward = True

    def forward(self, x):
        return -x

    def backward(self, grad_out):
        return -grad_out


class Exp(Function):
    differentiable_backward = True

    def forward(self, x):
        out = get_array_module(x).exp(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad_out):
        (out,) = self.saved_arrays
        return grad_out * out


class Log(Function):
    differentiable_backward = True

    def forward(self, x):
        self.save_for_backward(x)
        return get_array_module(x).log(x)

    def backward(self, grad_out):
        (x,) = self.saved_arrays
        return grad_out / x


class Sqrt(Function):
    differentiable_backward = True

    def forward(self, x):
        out = get_array_module(x).sqrt(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad_out):
        (out,) = self.saved_arrays
        return grad_out / (2 * out)


class Abs(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return abs(x)

    def backward(self, grad_out):
        (x,) = self.saved_arrays
        return grad_out * get_array_module(x).sign(x)


class Clamp(Function):
    def forward(self, x, *, min=None, max=None):  # noqa: A002  (PyTorch's names)
        xp = get_array_module(x)
        self.save_for_backward(x)
        self.bounds = (min, max)
        return xp.clip(x, min, max)

    def backward(self, grad_out):
        (x,) = self.saved_arrays
        low, high = self.bounds
        # the gradient passes where x is inside [min, max], bounds included
        inside = True
        if low is not None:
            inside = x >= low
        if high is not None:
            inside = inside & (x <= high)
        return grad_out * inside


class Cast(Function):
    def forward(self, x, *, dtype):
        self.input_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad_out):
        return grad_out.astype(self.input_dtype)


class Clone(Function):
    differentiable_backward = True

    def forward(self, x):
        return x.copy()

    def backward(self, grad_out):
        return grad_out


class ToDevice(Function):
    """A copy on another device; the gradient travels back to the source device."""

    changes_device = True

    def forward(self, x, *, device):
        self.source = device_of(x)
        return to_device(x, device)

    def backward(self, grad_out):
        return to_device(grad_out, self.source)
