"""Dtypes are NumPy's (``tc.float32 is numpy.float32``), promoted by PyTorch's rules.

PyTorch and NumPy disagree on mixed kinds: ``int64 + float32`` is float32 in PyTorch
and float64 in NumPy, and ``int_tensor + 2.5`` is float32 in PyTorch. tinyconv
promotes as PyTorch does, so results match it.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy

__all__ = [
    "bool_",
    "float16",
    "float32",
    "float64",
    "int8",
    "int32",
    "int64",
    "uint8",
    "default_float",
    "is_floating",
    "promote_types",
    "result_type",
    "to_dtype",
]

float16 = numpy.float16
float32 = numpy.float32
float64 = numpy.float64
int8 = numpy.int8
int32 = numpy.int32
int64 = numpy.int64
uint8 = numpy.uint8
bool_ = numpy.bool_

default_float = float32

_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def to_dtype(dtype: Any) -> numpy.dtype:
    """A NumPy dtype from ``tc.float32``, ``'float32'``, ``numpy.dtype(...)`` or ``float``."""
    if dtype is float:
        return numpy.dtype(default_float)
    if dtype is int:
        return numpy.dtype(int64)
    if dtype is bool:
        return numpy.dtype(bool_)
    try:
        result = numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype={dtype!r} is not a dtype; expected e.g. tc.float32") from None
    if result.kind not in _KIND_RANK or result.kind == "c":
        raise TypeError(f"dtype={dtype!r} is not supported; expected a bool, int or float dtype")
    return result


def is_floating(dtype: Any) -> bool:
    return numpy.dtype(dtype).kind == "f"


# Argument checks. bool is an Integral too, but ``stride=True`` is a mistake, not 1.


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer: a Python or NumPy int, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_number(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds (anything else unchanged): beside a
    tensor it counts as a number, as in PyTorch, not by its own dtype as in NumPy."""
    if isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
        return value.item()
    return value


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number: a Python or NumPy int or float, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _rank(dtype: numpy.dtype) -> int:
    return _KIND_RANK[dtype.kind]


def promote_types(a: Any, b: Any) -> numpy.dtype:
    """The dtype of an op on two dimensioned tensors: the higher kind wins, and
    within one kind the wider type (PyTorch's ``torch.promote_types``)."""
    a, b = numpy.dtype(a), numpy.dtype(b)
    if a == b:
        return a
    rank_a, rank_b = _rank(a), _rank(b)
    if rank_a != rank_b:
        return a if rank_a > rank_b else b
    return numpy.promote_types(a, b)


def result_type(a: Any, b: Any) -> numpy.dtype:
    """The dtype of a binary op on operands that are tensors or Python numbers.

    A Python number (or a 0-d tensor beside a dimensioned one) only raises the
    kind: ``float32_tensor * 2.0`` stays float32, ``int64_tensor * 2.0`` becomes the
    default float, ``float32_tensor + float64_scalar_tensor`` stays float32.
    """
    a_dtype, a_dims = _operand_info(a)
    b_dtype, b_dims = _operand_info(b)
    if a_dims == b_dims:
        return promote_types(a_dtype, b_dtype)
    strong, weak = (a_dtype, b_dtype) if a_dims > b_dims else (b_dtype, a_dtype)
    # a weak operand of a higher kind raises the kind: to its own dtype, which for a
    # Python number is the default dtype of that kind
    return strong if _rank(weak) <= _rank(strong) else weak


def _operand_info(value: Any) -> tuple[numpy.dtype, int]:
    """(dtype, priority): 2 for a dimensioned tensor, 1 for a 0-d tensor, 0 for a number."""
    data = getattr(value, "data", None)
    if data is not None and hasattr(data, "dtype"):
        return data.dtype, 2 if data.ndim else 1
    if isinstance(value, bool):
        return numpy.dtype(bool_), 0
    if isinstance(value, int):
        return numpy.dtype(int64), 0
    if isinstance(value, float):
        return numpy.dtype(default_float), 0
    raise TypeError(f"unsupported operand {value!r} of type {type(value).__name__}")
