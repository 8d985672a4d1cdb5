"""The ``Tensor``: an array, the flags autograd needs, and operators that call ``ops``.

A tensor made by an op remembers the op (``grad_fn``); ``backward()`` hands the
graph to the engine. Methods here are thin: they check arguments, bring operands
to one dtype by PyTorch's rules, and call one ``Function``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy

from tinyconv import backend, dtypes
from tinyconv.autograd import grad_mode
from tinyconv.ops import activation, elementwise, indexing, linalg, reduction
from tinyconv.ops import shape as shape_ops

__all__ = ["Tensor"]


class _Version:
    """How many times a tensor's array was changed in place (shared by ``detach``)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _dims_tuple(dims: tuple) -> tuple[int, ...]:
    """Accept ``f(1, 2)`` and ``f((1, 2))`` alike."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        return tuple(dims[0])
    return tuple(dims)


class Tensor:
    """An n-dimensional array that can record the operations applied to it."""

    __slots__ = (
        "data",
        "_grad",
        "grad_fn",
        "_requires_grad",
        "_output_index",
        "_version_counter",
        "_hooks",
        "_retains_grad",
        "_device",
        "__weakref__",
    )
    # Python operators on a NumPy array and a Tensor come here, not to NumPy
    __array_priority__ = 1000
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "shape") or isinstance(data, numpy.generic):
            data = numpy.asarray(data)
        self._setup(data, backend.device_of(data))
        if requires_grad:
            self.requires_grad = True

    def _setup(self, data: Any, device: str) -> None:
        self.data = data
        self._grad = None
        self.grad_fn = None
        self._requires_grad = False
        self._output_index = 0
        self._version_counter = None  # made on first use: most tensors never need one
        self._hooks = None
        self._retains_grad = False
        self._device = device

    @classmethod
    def _wrap(cls, array: Any, device: str) -> Tensor:
        """A new tensor around an op's output array (no checks: the hot path)."""
        if isinstance(array, numpy.generic):  # NumPy turns 0-d results into scalars
            array = numpy.asarray(array)
        tensor = cls.__new__(cls)
        tensor._setup(array, device)
        return tensor

    # -- attributes ----------------------------------------------------------------------

    @property
    def _version(self) -> _Version:
        """How many times this tensor's array was changed in place (shared by ``detach``)."""
        counter = self._version_counter
        if counter is None:
            counter = self._version_counter = _Version()
        return counter

    @_version.setter
    def _version(self, counter: _Version) -> None:
        self._version_counter = counter

    @property
    def grad(self) -> Tensor | None:
        """dL/d(this tensor), accumulated by ``backward`` (leaves, and ``retain_grad``)."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        # a gradient of another shape would broadcast silently in an optimizer's step
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(
                    f"assigned grad expected to be a Tensor or None but got grad of type "
                    f"{type(value).__name__}"
                )
            for what, theirs, ours in (
                ("shape", value.shape, self.shape),
                ("dtype", value.dtype, self.dtype),
                ("device", value.device, self.device),
            ):
                if theirs != ours:
                    raise RuntimeError(
                        f"attempting to assign a gradient of {what} {_named(theirs)} to a "
                        f"tensor of {what} {_named(ours)}: they must be the same"
                    )
        self._grad = value

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self.grad_fn is not None and not value:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf tensors; use "
                "detach() to get a tensor that does not require grad"
            )
        if value and self.data.dtype.kind not in "fc":
            raise RuntimeError(
                f"only tensors of floating point dtype can require gradients, got {self.dtype}"
            )
        self._requires_grad = bool(value)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> Any:
        return self.data.dtype.type

    @property
    def device(self) -> str:
        return self._device

    @property
    def T(self) -> Tensor:
        return self.permute(tuple(reversed(range(self.ndim))))

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[self._dim(dim)]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.ndim

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        body = numpy.array2string(
            backend.to_device(self.data, "cpu"), separator=", ", prefix="tensor("
        )
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (dtypes.float32, dtypes.int64, dtypes.bool_):
            extras.append(f"dtype=tinyconv.{self.data.dtype.name}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{', ' if extras else ''}{', '.join(extras)})"

    # -- autograd ------------------------------------------------------------------------

    def backward(
        self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False
    ) -> None:
        """Accumulate d(self)/d(leaf) into every leaf that requires grad.

        Args:
            gradient: dL/d(self); may be omitted only when self has one element.
            retain_graph: keep the saved arrays so backward can run again.
            create_graph: record the gradients too, to differentiate them again.
        """
        from tinyconv.autograd import engine  # noqa: PLC0415  (engine imports tensor)

        engine.backward(
            [self], None if gradient is None else [gradient], retain_graph, create_graph
        )

    def detach(self) -> Tensor:
        """The same memory (and version counter), without a graph."""
        # a view of its own, not the same array object: saved arrays are told apart
        # by identity (``x.detach() * x`` saves two operands that must stay two)
        out = Tensor._wrap(self.data.view(), self._device)
        out._version = self._version
        return out

    def detach_(self) -> Tensor:
        """Cut this tensor from its graph, making it a leaf that does not require grad."""
        self.grad_fn = None
        self._requires_grad = False
        self._output_index = 0
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on a tensor that does not require grad")
        if self.grad_fn is not None and not self._retains_grad:
            self.grad_fn.retain_output(self._output_index, self)
        self._retains_grad = True

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad and self.grad_fn is not None

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor
        replaces the gradient. Returns a handle whose ``remove()`` unregisters it."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        if self.grad_fn is not None:
            hooks = self.grad_fn.output_hooks(self._output_index)
        else:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    # -- conversion ----------------------------------------------------------------------

    def numpy(self) -> numpy.ndarray:
        """The NumPy array (shared memory) of a cpu tensor that does not require grad."""
        if self.device != "cpu":
            raise TypeError(
                f"can't convert a {self.device} tensor to NumPy; copy it to the host "
                "first with .cpu()"
            )
        if self._requires_grad:
            raise RuntimeError(
                "can't call numpy() on a tensor that requires grad; use tensor.detach().numpy()"
            )
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        if self.device != "cpu":
            raise TypeError(f"can't convert a {self.device} tensor to NumPy; use .cpu() first")
        return self.data if dtype is None else self.data.astype(dtype)

    def item(self) -> Any:
        if self.data.size != 1:
            raise RuntimeError(
                f"a tensor with {self.data.size} elements cannot be converted to a Python number"
            )
        return self.data.item()

    def tolist(self) -> Any:
        return backend.to_device(self.data, "cpu").tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous"
            )
        return bool(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only one-element integer tensors can be used as an index")
        return int(self.item())

    def clone(self) -> Tensor:
        """A copy of the array that stays in the graph."""
        return elementwise.Clone.apply(self)

    def to(self, target: Any = None, dtype: Any = None) -> Tensor:
        """A copy on another device or of another dtype (self when nothing changes).

        The copy stays in the graph: gradients flow back across devices and dtypes.
        """
        result = self
        if isinstance(target, str) or (target is not None and not _looks_like_dtype(target)):
            device = backend.normalize_device(target)
            if device != self.device:
                result = elementwise.ToDevice.apply(result, device=device)
        elif target is not None:
            dtype = target
        if dtype is not None:
            dtype = dtypes.to_dtype(dtype)
            if dtype != result.data.dtype:
                result = elementwise.Cast.apply(result, dtype=dtype)
        return result

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> Tensor:
        if device is None:
            return self.to("cuda")
        return self.to(device if isinstance(device, str) else f"cuda:{device}")

    def float(self) -> Tensor:
        return self.to(dtypes.float32)

    def double(self) -> Tensor:
        return self.to(dtypes.float64)

    def long(self) -> Tensor:
        return self.to(dtypes.int64)

    def bool(self) -> Tensor:
        return self.to(dtypes.bool_)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    # -- in place ------------------------------------------------------------------------

    def _check_inplace(self, name: str) -> None:
        if self._requires_grad and grad_mode.is_grad_enabled():
            kind = "a leaf tensor" if self.grad_fn is None else "a tensor"
            raise RuntimeError(
                f"{name}: {kind} that requires grad is being used in an in-place operation; "
                "do it inside `with tc.no_grad():` (as optimizers do) or use the "
                "out-of-place form"
            )

    def _changed_in_place(self) -> Tensor:
        self._version.value += 1
        return self

    def zero_(self) -> Tensor:
        self._check_inplace("zero_")
        self.data[...] = 0
        return self._changed_in_place()

    def fill_(self, value: Any) -> Tensor:
        self._check_inplace("fill_")
        _check_value("fill_", value)
        self.data[...] = self._on_own_device(value)
        return self._changed_in_place()

    def copy_(self, source: Tensor) -> Tensor:
        self._check_inplace("copy_")
        array = source.data if isinstance(source, Tensor) else source
        self.data[...] = backend.to_device(array, self.device)
        return self._changed_in_place()

    def _inplace(self, name: str, other: Any, operation: Callable) -> Tensor:
        self._check_inplace(name)
        other = dtypes.as_number(other)
        if isinstance(other, Tensor) and other.device != self.device and other.ndim:
            raise RuntimeError(
                f"{name}: expected all tensors on the same device, but found "
                f"{self.device!r} and {other.device!r}"
            )
        other_data = self._on_own_device(other)
        result_dtype = dtypes.result_type(self, other)
        if result_dtype != self.data.dtype:
            raise RuntimeError(
                f"{name}: result type {result_dtype.name} can't be cast to the desired "
                f"output type {self.data.dtype.name}"
            )
        operation(self.data, other_data, out=self.data)
        return self._changed_in_place()

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace("add_", other, self._xp().add)

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace("sub_", other, self._xp().subtract)

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace("mul_", other, self._xp().multiply)

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace("div_", other, self._xp().true_divide)

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        return self.__iadd__(other if alpha == 1 else other * alpha)

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        return self.__isub__(other if alpha == 1 else other * alpha)

    def mul_(self, other: Any) -> Tensor:
        return self.__imul__(other)

    def div_(self, other: Any) -> Tensor:
        return self.__itruediv__(other)

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace("__setitem__")
        _check_value("__setitem__", value)
        self.data[_array_index(index, self.shape, self._device)] = self._on_own_device(value)
        self._changed_in_place()

    def _on_own_device(self, value: Any) -> Any:
        # a value written into this tensor, as an array on its device: NumPy cannot read
        # a CuPy array, and CuPy takes no NumPy array (nor list) into a slice
        value = value.data if isinstance(value, Tensor) else value
        if isinstance(value, (bool, int, float)):
            return value
        return backend.to_device(value, self._device)

    def _xp(self):
        return backend.get_array_module(self.data)

    # -- arithmetic ----------------------------------------------------------------------

    def _binary(self, function: type, other: Any, reflected: bool = False) -> Tensor:
        # The common cases first, with nothing to promote: another tensor of this dtype,
        # or a Python number beside a float tensor (a number never changes its dtype).
        if (isinstance(other, Tensor) and other.data.dtype is self.data.dtype) or (
            (type(other) is float or type(other) is int) and self.data.dtype.kind == "f"
        ):
            return function.apply(other, self) if reflected else function.apply(self, other)
        other = dtypes.as_number(other)  # on the GPU a NumPy scalar would be a CPU tensor
        if not isinstance(other, (Tensor, int, float, bool)):
            if isinstance(other, numpy.generic) or (
                hasattr(other, "shape") and hasattr(other, "dtype")
            ):
                other = Tensor(other)  # NumPy arrays and scalars take part as tensors
            else:
                return NotImplemented
        result_dtype = dtypes.result_type(self, other)
        left = self if self.data.dtype == result_dtype else self.to(result_dtype)
        right = other
        if isinstance(other, Tensor) and other.data.dtype != result_dtype:
            right = other.to(result_dtype)
        if reflected:
            left, right = right, left
        return function.apply(left, right)

    def __add__(self, other: Any) -> Tensor:
        return self._binary(elementwise.Add, other)

    def __radd__(self, other: Any) -> Tensor:
        return self._binary(elementwise.Add, other, reflected=True)

    def __sub__(self, other: Any) -> Tensor:
        return self._binary(elementwise.Sub, other)

    def __rsub__(self, other: Any) -> Tensor:
        return self._binary(elementwise.Sub, other, reflected=True)

    def __mul__(self, other: Any) -> Tensor:
        return self._binary(elementwise.Mul, other)

    def __rmul__(self, other: Any) -> Tensor:
        return self._binary(elementwise.Mul, other, reflected=True)

    def __truediv__(self, other: Any) -> Tensor:
        # true division of integers gives the default float, as in PyTorch
        left = self if self.data.dtype.kind == "f" else self.to(dtypes.default_float)
        return left._binary(elementwise.Div, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        left = self if self.data.dtype.kind == "f" else self.to(dtypes.default_float)
        return left._binary(elementwise.Div, other, reflected=True)

    def __pow__(self, exponent: Any) -> Tensor:
        return self._binary(elementwise.Pow, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return self._binary(elementwise.Pow, base, reflected=True)

    def __matmul__(self, other: Any) -> Tensor:
        return self.matmul(other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return Tensor(other).matmul(self)

    def __neg__(self) -> Tensor:
        return elementwise.Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return self.abs()

    def matmul(self, other: Tensor) -> Tensor:
        """Matrix product with NumPy's rules for 1-D and batched operands."""
        if not isinstance(other, Tensor):
            other = Tensor(other)
        a_shape, b_shape = self.shape, other.shape
        if self.ndim == 0 or other.ndim == 0:
            raise RuntimeError(
                f"matmul: both arguments need at least 1 dimension, got shapes "
                f"{a_shape} and {b_shape}"
            )
        inner_a = a_shape[-1]
        inner_b = b_shape[0] if other.ndim == 1 else b_shape[-2]
        if inner_a != inner_b:
            raise RuntimeError(
                f"matmul: shapes {a_shape} and {b_shape} cannot be multiplied "
                f"({inner_a} columns vs {inner_b} rows)"
            )
        if self.data.dtype != other.data.dtype:
            raise RuntimeError(
                f"matmul: expected both operands to have the same dtype, got "
                f"{self.data.dtype.name} and {other.data.dtype.name}"
            )
        try:
            numpy.broadcast_shapes(a_shape[:-2], b_shape[:-2])
        except ValueError:
            raise RuntimeError(
                f"matmul: batch shapes of {a_shape} and {b_shape} do not broadcast"
            ) from None
        return linalg.MatMul.apply(self, other)

    # -- comparisons: bool tensors with no graph ----------------------------------------

    def _compare(self, other: Any, operation: Callable) -> Tensor:
        other_data = other.data if isinstance(other, Tensor) else other
        if isinstance(other, Tensor) and other.device != self.device:
            raise RuntimeError(
                f"expected all tensors on the same device, but found {self.device!r} "
                f"and {other.device!r}"
            )
        return Tensor._wrap(operation(self.data, other_data), self._device)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a >= b)

    def __invert__(self) -> Tensor:
        if self.data.dtype.kind not in "biu":
            raise TypeError(f"~ needs a bool or integer tensor, got {self.dtype.__name__}")
        return Tensor._wrap(~self.data, self._device)

    def __and__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a & b)

    def __or__(self, other: Any) -> Tensor:
        return self._compare(other, lambda a, b: a | b)

    # -- math ----------------------------------------------------------------------------

    def _float_only(self) -> Tensor:
        """Integer inputs of float-valued functions become the default float, as in PyTorch."""
        if self.data.dtype.kind == "f":
            return self
        return self.to(dtypes.default_float)

    def abs(self) -> Tensor:
        return elementwise.Abs.apply(self)

    def exp(self) -> Tensor:
        return elementwise.Exp.apply(self._float_only())

    def log(self) -> Tensor:
        return elementwise.Log.apply(self._float_only())

    def sqrt(self) -> Tensor:
        return elementwise.Sqrt.apply(self._float_only())

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        for name, bound in (("min", min), ("max", max)):
            if bound is not None and not dtypes.is_real(bound):
                raise TypeError(f"clamp: {name}={bound!r} must be a number or None")
        min, max = dtypes.as_number(min), dtypes.as_number(max)  # noqa: A001
        return elementwise.Clamp.apply(self, min=min, max=max)

    clip = clamp

    def relu(self) -> Tensor:
        return activation.ReLU.apply(self)

    def sigmoid(self) -> Tensor:
        return activation.Sigmoid.apply(self._float_only())

    def tanh(self) -> Tensor:
        return activation.Tanh.apply(self._float_only())

    def softmax(self, dim: int) -> Tensor:
        axis = self._dim(dim)
        if self.ndim == 0:  # one value along a dim of its own, as PyTorch treats it
            return self.reshape(1).softmax(0).reshape(())
        return activation.Softmax.apply(self._float_only(), dim=axis)

    def log_softmax(self, dim: int) -> Tensor:
        axis = self._dim(dim)
        if self.ndim == 0:
            return self.reshape(1).log_softmax(0).reshape(())
        return activation.LogSoftmax.apply(self._float_only(), dim=axis)

    # -- reductions ----------------------------------------------------------------------

    def _dim(self, dim: int, ndim: int | None = None) -> int:
        """A dimension index made non-negative, or an IndexError-free ValueError."""
        ndim = self.ndim if ndim is None else ndim
        if not isinstance(dim, (int, numpy.integer)) or isinstance(dim, bool):
            raise TypeError(f"dim={dim!r} must be an int")
        span = max(ndim, 1)  # a 0-d tensor accepts dim 0 and -1, as in PyTorch
        if not -span <= dim < span:
            raise ValueError(
                f"dim={dim} is out of range for a tensor of {ndim} dimensions "
                f"(expected {-span} to {span - 1})"
            )
        return int(dim) % span

    def _axes(self, dim: Any) -> tuple[int, ...] | None:
        if dim is None:
            return None
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        axes = [self._dim(d) for d in dims]
        if len(set(axes)) != len(axes):  # summing a dim twice is no sum PyTorch defines
            raise ValueError(f"dim={dim!r} names a dimension more than once")
        axes = tuple(sorted(axes))
        if self.ndim == 0:
            return None
        return axes

    def sum(
        self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
    ) -> Tensor:
        """Sum over ``dim`` (an int, a tuple, or all); ``axis``/``keepdims`` are NumPy's
        spellings, accepted as PyTorch does."""
        dim, keepdim = _numpy_aliases(dim, keepdim, axis, keepdims)
        source = self if self.data.dtype.kind in "fc" else self.to(dtypes.int64)
        return reduction.Sum.apply(source, axes=self._axes(dim), keepdim=keepdim)

    def mean(
        self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None
    ) -> Tensor:
        dim, keepdim = _numpy_aliases(dim, keepdim, axis, keepdims)
        if self.data.dtype.kind != "f":
            raise TypeError(
                f"mean: input dtype must be floating point, got {self.dtype.__name__}; "
                "call .float() first"
            )
        return reduction.Mean.apply(self, axes=self._axes(dim), keepdim=keepdim)

    def _extreme(self, dim: Any, keepdim: bool, smallest: bool) -> Any:
        name = "min" if smallest else "max"
        if self.data.size == 0:
            raise RuntimeError(f"{name}(): expected a non-empty tensor")
        if dim is None:
            return reduction.Max.apply(self, smallest=smallest)
        if isinstance(dim, Tensor):
            raise TypeError(f"{name}(dim) takes an int dim; for element-wise use tc.where")
        dim = self._dim(dim)
        if self.ndim == 0:
            return self.clone(), Tensor._wrap(self._xp().zeros((), self._xp().int64), self.device)
        return reduction.MaxAlong.apply(self, dim=dim, keepdim=keepdim, smallest=smallest)

    def max(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """The largest element, or ``(values, indices)`` along ``dim``."""
        return self._extreme(dim, keepdim, smallest=False)

    def min(self, dim: int | None = None, keepdim: bool = False) -> Any:
        """The smallest element, or ``(values, indices)`` along ``dim``."""
        return self._extreme(dim, keepdim, smallest=True)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return self._arg_extreme(dim, keepdim, "argmax")

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return self._arg_extreme(dim, keepdim, "argmin")

    def _arg_extreme(self, dim: Any, keepdim: bool, name: str) -> Tensor:
        xp = self._xp()
        if dim is None:
            index = getattr(self.data.reshape(-1), name)()
            result = xp.asarray(index, dtype=xp.int64)
            if keepdim:
                result = result.reshape((1,) * self.ndim)
        else:
            axis = self._dim(dim)
            data = self.data if self.ndim else self.data.reshape(1)
            result = getattr(data, name)(axis=axis, keepdims=keepdim).astype(xp.int64)
        return Tensor._wrap(result, self._device)

    # -- shape ---------------------------------------------------------------------------

    def reshape(self, *shape: Any) -> Tensor:
        shape = _dims_tuple(shape)
        target = _resolve_shape(shape, self.numel(), self.shape)
        if target == self.shape:
            return shape_op_identity(self)
        return shape_ops.Reshape.apply(self, shape=target)

    def view(self, *shape: Any) -> Tensor:
        """``reshape`` that never copies: the result shares this tensor's memory, as in
        PyTorch, so writing into one writes into the other."""
        out = self.reshape(*shape)
        # the ops share version counters exactly when the result views this memory
        if out.numel() and out._version is not self._version:  # (made on first use)
            raise RuntimeError(
                f"view: shape {tuple(out.shape)} is not compatible with the memory layout of "
                f"a tensor of shape {self.shape} (a transposed or sliced tensor's elements are "
                "not in row-major order); use .reshape(...) instead, which copies"
            )
        return out

    def view_as(self, other: Tensor) -> Tensor:
        return self.view(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = self._dim(start_dim), self._dim(end_dim)
        if start > end:
            raise ValueError(f"flatten: start_dim={start_dim} comes after end_dim={end_dim}")
        middle = 1
        for size in self.shape[start : end + 1]:
            middle *= size
        return self.reshape(self.shape[:start] + (middle,) + self.shape[end + 1 :])

    def permute(self, *dims: Any) -> Tensor:
        dims = _dims_tuple(dims)
        if len(dims) != self.ndim:
            raise ValueError(
                f"permute: dims={dims} has {len(dims)} entries for a tensor of "
                f"{self.ndim} dimensions"
            )
        axes = tuple(self._dim(d) for d in dims)
        if len(set(axes)) != len(axes):
            raise ValueError(f"permute: dims={dims} repeats a dimension")
        return shape_ops.Permute.apply(self, dims=axes)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        if self.ndim < 2:
            return shape_op_identity(self)
        axes = list(range(self.ndim))
        first, second = self._dim(dim0), self._dim(dim1)
        axes[first], axes[second] = axes[second], axes[first]
        return shape_ops.Permute.apply(self, dims=tuple(axes))

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor of at most 2 dimensions, got {self.ndim}")
        return self.transpose(0, 1)

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            target = tuple(size for size in self.shape if size != 1)
        else:
            axis = self._dim(dim)
            if self.ndim == 0 or self.shape[axis] != 1:
                return shape_op_identity(self)
            target = self.shape[:axis] + self.shape[axis + 1 :]
        return self.reshape(target)

    def unsqueeze(self, dim: int) -> Tensor:
        axis = self._dim(dim, self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def expand(self, *sizes: Any) -> Tensor:
        sizes = _dims_tuple(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(
                f"expand: sizes={sizes} has fewer dimensions than the tensor's shape {self.shape}"
            )
        offset = len(sizes) - self.ndim
        target = []
        for position, size in enumerate(sizes):
            own = self.shape[position - offset] if position >= offset else None
            if size == -1:
                if own is None:
                    raise ValueError("expand: -1 is not allowed for a new leading dimension")
                size = own
            elif own is not None and own != 1 and own != size:
                raise ValueError(
                    f"expand: the size {own} of dimension {position - offset} must match "
                    f"{size} or be 1 (shape {self.shape}, sizes {sizes})"
                )
            target.append(size)
        return shape_ops.Expand.apply(self, shape=tuple(target))

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(other.shape)

    def __getitem__(self, index: Any) -> Tensor:
        return indexing.GetItem.apply(self, index=_array_index(index, self.shape, self._device))


def _numpy_aliases(dim: Any, keepdim: bool, axis: Any, keepdims: Any) -> tuple[Any, bool]:
    if axis is not None:
        if dim is not None:
            raise TypeError("give dim or axis, not both")
        dim = axis
    return dim, bool(keepdim if keepdims is None else keepdims)


def shape_op_identity(tensor: Tensor) -> Tensor:
    """A new tensor node for a no-op reshape, so that it is never the input itself."""
    return shape_ops.Reshape.apply(tensor, shape=tensor.shape)


def _check_value(name: str, value: Any) -> None:
    # NumPy would write None as NaN into a float array
    if value is None:
        raise TypeError(f"{name}: value=None must be a number or a Tensor")


def _named(value: Any) -> str:
    # a shape as (3, 4), a dtype by its name, a device as 'cpu'
    return getattr(value, "__name__", None) or repr(value)


def _looks_like_dtype(value: Any) -> bool:
    try:
        dtypes.to_dtype(value)
        return True
    except TypeError:
        return False


def _resolve_shape(shape: Sequence[Any], numel: int, own: tuple[int, ...]) -> tuple[int, ...]:
    """A shape with its -1 filled in, or a ValueError naming the shapes."""
    sizes = []
    unknown = None
    known = 1
    for position, size in enumerate(shape):
        if not isinstance(size, (int, numpy.integer)) or isinstance(size, bool):
            raise TypeError(f"shape={tuple(shape)} must hold ints, got {size!r}")
        if size == -1:
            if unknown is not None:
                raise ValueError(f"shape={tuple(shape)}: only one dimension can be -1")
            unknown = position
        elif size < 0:
            raise ValueError(f"shape={tuple(shape)}: invalid size {size}")
        else:
            known *= int(size)
        sizes.append(int(size))
    if unknown is not None:
        if known == 0 or numel % known:
            raise ValueError(f"shape {tuple(shape)} is invalid for a tensor of shape {own}")
        sizes[unknown] = numel // known
    elif known != numel:
        raise ValueError(
            f"shape {tuple(shape)} is invalid for a tensor of shape {own} ({numel} elements)"
        )
    return tuple(sizes)


def _array_index(index: Any, shape: tuple[int, ...] | None = None, device: str = "cpu") -> Any:
    """An index with Tensors and lists turned into arrays on ``device``; checks integer
    bounds when the shape is known, so a bad index gives a clear error instead of
    NumPy's (or CuPy's, which wraps an out-of-range index around)."""
    parts = index if isinstance(index, tuple) else (index,)
    converted = []
    for part in parts:
        if isinstance(part, Tensor):
            if part.device != device:
                raise RuntimeError(
                    f"an index on {part.device!r} can't index a tensor on {device!r}"
                )
            part = part.data
        elif isinstance(part, list):
            part = numpy.asarray(part)
            if part.size == 0:
                part = part.astype(numpy.int64)  # [] reads as float64
        if getattr(part, "dtype", None) is not None and part.dtype.kind not in "biu":
            raise IndexError(
                f"tensors used as indices must be integer or bool, got {part.dtype.name}"
            )
        if device != "cpu" and isinstance(part, numpy.ndarray):
            part = backend.to_device(part, device)
        converted.append(part)
    if shape is not None:
        _check_index_bounds(converted, shape)
    return tuple(converted) if isinstance(index, tuple) else converted[0]


def _check_index_bounds(parts: list, shape: tuple[int, ...]) -> None:
    # CuPy wraps an out-of-range integer index around instead of raising: check here.
    def width(part: Any) -> int:  # how many dimensions an index part consumes
        if part is None:
            return 0
        if getattr(part, "dtype", None) is not None and part.dtype.kind == "b":
            return part.ndim
        return 1

    if any(part is Ellipsis for part in parts):
        position = next(i for i, part in enumerate(parts) if part is Ellipsis)
        rest = sum(width(part) for part in parts if part is not Ellipsis)
        parts = parts[:position] + [slice(None)] * (len(shape) - rest) + parts[position + 1 :]
    if sum(width(part) for part in parts) > len(shape):
        raise IndexError(f"too many indices for a tensor of shape {shape}")
    axis = 0
    for part in parts:
        if isinstance(part, (int, numpy.integer)) and not isinstance(part, bool):
            low = high = int(part)
        elif getattr(part, "dtype", None) is not None and part.dtype.kind in "iu" and part.size:
            low, high = int(part.min()), int(part.max())
        else:
            axis += width(part)
            continue
        size = shape[axis]
        if low < -size or high >= size:
            bad = high if high >= size else low
            raise IndexError(f"index {bad} is out of bounds for dimension {axis} with size {size}")
        axis += 1
