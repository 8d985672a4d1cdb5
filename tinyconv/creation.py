"""Making tensors: ``tensor``, ``from_numpy`` and the factories (zeros, randn, ...)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy

from tinyconv import backend, dtypes
from tinyconv.ops import indexing
from tinyconv.tensor import Tensor

__all__ = [
    "arange",
    "cat",
    "empty",
    "empty_like",
    "eye",
    "from_numpy",
    "full",
    "full_like",
    "linspace",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "stack",
    "tensor",
    "where",
    "zeros",
    "zeros_like",
]


def _inferred_dtype(array: numpy.ndarray) -> numpy.dtype:
    """Python numbers: floats become float32, ints int64, bools bool (PyTorch's rule)."""
    kind = array.dtype.kind
    if kind == "f":
        return numpy.dtype(dtypes.default_float)
    if kind in "iu":
        return numpy.dtype(dtypes.int64)
    if kind == "b":
        return numpy.dtype(dtypes.bool_)
    raise TypeError(f"can't make a tensor from data of dtype {array.dtype}")


def _finish(array: Any, device: str, requires_grad: bool) -> Tensor:
    out = Tensor._wrap(array, device)
    if requires_grad:
        out.requires_grad = True  # checks the dtype
    return out


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (a number, nested list, array or Tensor).

    Args:
        data: Python floats become float32, ints int64, bools bool; arrays keep their dtype.
        dtype: the dtype to convert to.
        device: 'cpu' or 'cuda' (default: the default device, or the array's own).
        requires_grad: make the new tensor a leaf that records operations.
    """
    if isinstance(data, Tensor):
        source_device = data.device
        array = data.data
    elif hasattr(data, "__array_namespace__") or (
        hasattr(data, "shape") and hasattr(data, "dtype") and not isinstance(data, numpy.generic)
    ):
        source_device = backend.device_of(data)
        array = data
    else:
        source_device = "cpu"
        array = _from_python(data)
    target = (
        backend.normalize_device(device)
        if device is not None
        else (source_device if source_device != "cpu" else backend.default_device())
    )
    xp = backend.array_module(target)
    array = backend.to_device(array, target)
    array = xp.array(array, dtype=None if dtype is None else dtypes.to_dtype(dtype), copy=True)
    return _finish(array, target, requires_grad)


def _from_python(data: Any) -> numpy.ndarray:
    if isinstance(data, (list, tuple)) and any(isinstance(item, Tensor) for item in _flat(data)):
        data = _nested_items(data)
    array = numpy.asarray(data)
    if isinstance(data, numpy.generic):
        return array
    if array.dtype == object:
        raise TypeError(f"can't make a tensor from {type(data).__name__} data: {data!r:.80}")
    return array.astype(_inferred_dtype(array), copy=False)


def _flat(data: Any):
    for item in data:
        if isinstance(item, (list, tuple)):
            yield from _flat(item)
        else:
            yield item


def _nested_items(data: Any) -> Any:
    if isinstance(data, (list, tuple)):
        return [_nested_items(item) for item in data]
    return data.item() if isinstance(data, Tensor) else data


def from_numpy(array: numpy.ndarray) -> Tensor:
    """A cpu tensor that shares memory with ``array``."""
    if not isinstance(array, numpy.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    dtypes.to_dtype(array.dtype)  # rejects object and complex arrays
    return Tensor._wrap(array, "cpu")


def _shape(size: tuple) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for value in size:
        if not isinstance(value, (int, numpy.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"size={size} must be non-negative ints")
    return tuple(int(value) for value in size)


def _device_and_xp(device: Any):
    device = backend.normalize_device(device) if device is not None else backend.default_device()
    return device, backend.array_module(device)


def _float_dtype(dtype: Any) -> numpy.dtype:
    return numpy.dtype(dtypes.default_float) if dtype is None else dtypes.to_dtype(dtype)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    device, xp = _device_and_xp(device)
    return _finish(xp.zeros(_shape(size), dtype=_float_dtype(dtype)), device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    device, xp = _device_and_xp(device)
    return _finish(xp.ones(_shape(size), dtype=_float_dtype(dtype)), device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    device, xp = _device_and_xp(device)
    return _finish(xp.empty(_shape(size), dtype=_float_dtype(dtype)), device, requires_grad)


def full(
    size: Sequence[int],
    fill_value: Any,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (whose type gives the default dtype)."""
    device, xp = _device_and_xp(device)
    if not isinstance(fill_value, (numbers.Number, numpy.bool_)):  # NumPy's bool is no Number
        raise TypeError(f"full: fill_value={fill_value!r} must be a number")
    if dtype is None:
        dtype = _inferred_dtype(numpy.asarray(fill_value))
    array = xp.full(_shape((size,)), fill_value, dtype=dtypes.to_dtype(dtype))
    return _finish(array, device, requires_grad)


def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Values from ``start`` to ``end`` (excluded) by ``step``; int64 unless one is a float."""
    if end is None:
        start, end = 0, start
    for name, value in (("start", start), ("end", end), ("step", step)):
        if not dtypes.is_real(value):
            raise TypeError(f"arange: {name}={value!r} must be a number")
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(
            f"arange: start={start!r} and end={end!r} are inconsistent with the sign of "
            f"step={step!r}"
        )
    device, xp = _device_and_xp(device)
    if dtype is None:
        all_ints = all(dtypes.is_int(v) for v in (start, end, step))
        dtype = dtypes.int64 if all_ints else dtypes.default_float
    array = xp.arange(start, end, step, dtype=dtypes.to_dtype(dtype))
    return _finish(array, device, requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: Any = None) -> Tensor:
    device, xp = _device_and_xp(device)
    return _finish(xp.linspace(start, end, steps, dtype=_float_dtype(dtype)), device, False)


def eye(n: int, m: int | None = None, dtype: Any = None, device: Any = None) -> Tensor:
    device, xp = _device_and_xp(device)
    return _finish(xp.eye(n, m, dtype=_float_dtype(dtype)), device, False)


def rand(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1), drawn from the generator ``tc.manual_seed`` seeds."""
    device, _ = _device_and_xp(device)
    dtype = _random_float_dtype(dtype, "rand")
    array = backend.random_generator(device).random(_shape(size), dtype=backend.draw_dtype(dtype))
    return _finish(array.astype(dtype, copy=False), device, requires_grad)


def randn(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal, drawn from the generator ``tc.manual_seed`` seeds."""
    device, _ = _device_and_xp(device)
    dtype = _random_float_dtype(dtype, "randn")
    array = backend.random_generator(device).standard_normal(
        _shape(size), dtype=backend.draw_dtype(dtype)
    )
    return _finish(array.astype(dtype, copy=False), device, requires_grad)


def _random_float_dtype(dtype: Any, name: str) -> numpy.dtype:
    # the distributions are continuous: truncating draws to integers is no draw of them
    dtype = _float_dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{name}: dtype={dtype.name} must be a floating dtype")
    return dtype


def randint(
    low: int,
    high: int | None = None,
    size: Sequence[int] = (),
    dtype: Any = None,
    device: Any = None,
) -> Tensor:
    if high is None:
        low, high = 0, low
    device, _ = _device_and_xp(device)
    array = backend.random_generator(device).integers(low, high, size=_shape((size,)))
    return _finish(array.astype(dtypes.to_dtype(dtype or dtypes.int64)), device, False)


def _like(other: Tensor, dtype: Any, name: str) -> tuple[tuple[int, ...], dict]:
    # the shape, and the dtype and device, that a ``*_like`` factory copies from ``other``
    if not isinstance(other, Tensor):
        raise TypeError(f"{name}: expected a Tensor to copy, got {type(other).__name__}")
    return other.shape, {"dtype": other.dtype if dtype is None else dtype, "device": other.device}


def zeros_like(other: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, options = _like(other, dtype, "zeros_like")
    return zeros(shape, **options, requires_grad=requires_grad)


def ones_like(other: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, options = _like(other, dtype, "ones_like")
    return ones(shape, **options, requires_grad=requires_grad)


def empty_like(other: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, options = _like(other, dtype, "empty_like")
    return empty(shape, **options, requires_grad=requires_grad)


def full_like(other: Tensor, fill_value: Any, dtype: Any = None) -> Tensor:
    shape, options = _like(other, dtype, "full_like")
    return full(shape, fill_value, **options)


def rand_like(other: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, options = _like(other, dtype, "rand_like")
    return rand(shape, **options, requires_grad=requires_grad)


def randn_like(other: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, options = _like(other, dtype, "randn_like")
    return randn(shape, **options, requires_grad=requires_grad)


def _same_dtype(tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    """Bring tensors to their promoted dtype, as PyTorch's cat and stack do."""
    if isinstance(tensors, Tensor):  # iterating it would join its rows
        raise TypeError(f"{name}: expected a sequence of Tensors, got a single Tensor")
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{name}: expected a non-empty sequence of tensors")
    for position, item in enumerate(tensors):
        if not isinstance(item, Tensor):
            raise TypeError(f"{name}: tensors[{position}] is a {type(item).__name__}, not a Tensor")
    target = tensors[0].data.dtype
    for item in tensors[1:]:
        target = dtypes.promote_types(target, item.data.dtype)
    return [item if item.data.dtype == target else item.to(target) for item in tensors]


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension."""
    tensors = _same_dtype(tensors, "cat")
    first = tensors[0]
    for position, item in enumerate(tensors):
        if item.ndim == 0:
            raise ValueError(f"cat: tensors[{position}] is zero-dimensional and has no dim to join")
    axis = first._dim(dim)
    for position, item in enumerate(tensors):
        if item.ndim != first.ndim or any(
            a != b for d, (a, b) in enumerate(zip(item.shape, first.shape)) if d != axis
        ):
            raise ValueError(
                f"cat: tensors[{position}] has shape {item.shape}, which does not match "
                f"{first.shape} outside dimension {axis}"
            )
    return indexing.Cat.apply(*tensors, dim=axis)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join same-shaped tensors along a new dimension."""
    tensors = _same_dtype(tensors, "stack")
    first = tensors[0]
    axis = first._dim(dim, first.ndim + 1)
    for position, item in enumerate(tensors):
        if item.shape != first.shape:
            raise ValueError(
                f"stack: tensors[{position}] has shape {item.shape}, expected {first.shape}"
            )
    return indexing.Stack.apply(*tensors, dim=axis)


def where(condition: Tensor, input: Any, other: Any) -> Tensor:  # noqa: A002
    """``input`` where ``condition`` holds, else ``other`` (either may be a number)."""
    if not isinstance(condition, Tensor) or condition.data.dtype.kind != "b":
        raise TypeError("where: condition must be a bool Tensor")
    input, other = dtypes.as_number(input), dtypes.as_number(other)  # noqa: A001
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        # two numbers: a float gives the default float dtype, ints int64, as in PyTorch
        input = tensor(input, device=condition.device)
    result_dtype = dtypes.result_type(input, other)
    input = input.to(result_dtype) if isinstance(input, Tensor) else input
    other = other.to(result_dtype) if isinstance(other, Tensor) else other
    return indexing.Where.apply(condition, input, other)
