"""tinyconv: a small deep-learning framework whose every gradient is written by hand.

import tinyconv as tc
import tinyconv.nn as nn
import tinyconv.nn.functional as F
"""

from tinyconv import autograd, backend, cuda
from tinyconv.autograd.engine import grad
from tinyconv.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from tinyconv.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from tinyconv.backend import manual_seed, set_default_device
from tinyconv.creation import (
    arange,
    cat,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    stack,
    tensor,
    where,
    zeros,
    zeros_like,
)
from tinyconv.dtypes import bool_ as bool  # noqa: A001  (tc.bool, as in PyTorch)
from tinyconv.dtypes import float16, float32, float64, int8, int32, int64, uint8
from tinyconv.tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    "GradcheckError",
    "Tensor",
    "arange",
    "autograd",
    "backend",
    "bool",
    "cat",
    "cuda",
    "empty",
    "empty_like",
    "enable_grad",
    "eye",
    "float16",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "full_like",
    "get_default_device",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "int8",
    "int32",
    "int64",
    "is_grad_enabled",
    "linspace",
    "load",
    "manual_seed",
    "no_grad",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "save",
    "randint",
    "randn",
    "randn_like",
    "set_default_device",
    "set_grad_enabled",
    "stack",
    "tensor",
    "uint8",
    "where",
    "zeros",
    "zeros_like",
]

get_default_device = backend.default_device

_SUBMODULES = ("nn", "optim", "data", "datasets", "utils", "viz")


def __getattr__(name: str):
    # Subpackages load on first use, so ``import tinyconv`` stays light.
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"tinyconv.{name}")
    if name in ("save", "load"):
        from tinyconv import serialization

        return getattr(serialization, name)
    raise AttributeError(f"module 'tinyconv' has no attribute {name!r}")
