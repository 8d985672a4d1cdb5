"""``Optimizer``: the base of SGD and Adam. It holds parameter groups and per-parameter
state, and saves both in PyTorch's layout.

A parameter group is a dict: ``{'params': [...], 'lr': ..., ...}``; options missing
from a group come from the optimizer's defaults, so ``SGD([{'params': a}, {'params':
b, 'lr': 0.1}], lr=0.01)`` trains ``b`` ten times faster. ``state[param]`` holds what
the update rule carries between steps (a momentum buffer, Adam's moments).

``state_dict()`` refers to parameters by their position over all groups (0, 1, ...),
so it can be loaded into a fresh optimizer built over the same parameters in the
same order::

    {'state': {0: {'momentum_buffer': tensor}, ...},
     'param_groups': [{'lr': 0.1, ..., 'params': [0, 1, 2]}]}
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy

from tinyconv import backend, creation, dtypes
from tinyconv.autograd.grad_mode import enable_grad, no_grad
from tinyconv.tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """The default of an option each group must give (SGD's ``lr`` in old PyTorch)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class: subclasses set defaults and write ``step``.

    Args:
        params: an iterable of tensors, or of dicts defining parameter groups.
        defaults: the options a group gets unless it names its own.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors "
                f"or dicts, but got {type(params).__name__}"
            )
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (e.g. a layer to fine-tune)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs; use a list instead"
            )
        params = list(params)
        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(param).__name__}")
            if not param.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        if len({id(param) for param in params}) != len(params):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "in future, this will cause an error",
                stacklevel=3,
            )
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    f"parameter group didn't specify a value of required option {name}"
                )
            group.setdefault(name, default)
        seen = {id(param) for other in self.param_groups for param in other["params"]}
        if any(id(param) in seen for param in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of every parameter: to None, or to zeros in place."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.data[...] = 0
                    param.grad._version.value += 1

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        loss = self._closure_loss(closure)
        with no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    if param.grad is not None:
                        self._update(param, group)
        return loss

    def _update(self, param: Tensor, group: dict[str, Any]) -> None:
        """Apply one step of the update rule to ``param``, in place (each optimizer's own)."""
        raise NotImplementedError

    def _closure_loss(self, closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # -- saving and loading ------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout, parameters referred to by position.

        The state's tensors are the optimizer's own (not copies); ``step`` counts are
        0-d float32 tensors, as in PyTorch.
        """
        positions: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {name: value for name, value in group.items() if name != "params"}
            packed["params"] = [
                positions.setdefault(id(param), len(positions)) for param in group["params"]
            ]
            groups.append(packed)
        state = {}
        for param, param_state in self.state.items():
            state[positions[id(param)]] = {
                name: creation.tensor(float(value), dtype=dtypes.float32, device="cpu")
                if name == "step"
                else value
                for name, value in param_state.items()
            }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what ``state_dict()`` returned (here or from PyTorch, through NumPy).

        State tensors are copied onto each parameter's device, floating ones cast to its
        dtype. The saved groups' options (learning rates...) replace the current ones.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, but the "
                f"optimizer has {len(self.param_groups)}"
            )
        for position, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded state dict's parameter group {position} has "
                    f"{len(saved['params'])} parameters, but the optimizer's has "
                    f"{len(group['params'])}"
                )
        by_position = {}
        for saved, group in zip(saved_groups, self.param_groups):
            for index, param in zip(saved["params"], group["params"]):
                by_position[int(index)] = param
        self.state = {}
        for index, saved_state in state_dict["state"].items():
            param = by_position.get(int(index))
            if param is None:
                continue
            self.state[param] = {
                name: _restore(name, value, param, int(index))
                for name, value in saved_state.items()
            }
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            # options the saved group lacks (saved by an older version) take the defaults
            restored = dict(self.defaults)
            restored.update(
                (name, copy.deepcopy(value)) for name, value in saved.items() if name != "params"
            )
            if isinstance(restored.get("betas"), list):  # a file may store tuples as lists
                restored["betas"] = tuple(restored["betas"])
            restored["params"] = group["params"]
            new_groups.append(restored)
        self.param_groups = new_groups

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for position, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {position}")
            for name in sorted(group):
                if name != "params":
                    lines.append(f"    {name}: {group[name]}")
        lines.append(")")
        return "\n".join(lines)


def _restore(name: str, value: Any, param: Tensor, index: int) -> Any:
    """A loaded state value as the optimizer keeps it: an int step count, or a tensor of
    its own (a copy) on the parameter's device, floating values in its dtype."""
    if name == "step":
        return int(round(float(value)))  # a Tensor, a NumPy or PyTorch scalar, a number
    if value is None:
        return None
    if isinstance(value, Tensor):
        array = value.data
    elif backend.device_of(value) != "cpu":
        array = value
    elif hasattr(value, "shape") or isinstance(value, (list, tuple)):
        array = numpy.asarray(value)
    else:
        return copy.deepcopy(value)
    if array.dtype.kind == "f" and array.shape != param.shape:
        # a moment estimate of another shape would fail (or broadcast) in step()
        raise ValueError(
            f"loaded state {name!r} of parameter {index} has shape {array.shape}, but the "
            f"parameter has shape {param.shape}"
        )
    array = backend.to_device(array, param.device)
    xp = backend.get_array_module(array)
    dtype = param.data.dtype if array.dtype.kind == "f" else array.dtype
    return Tensor._wrap(xp.array(array, dtype=dtype, copy=True), param.device)
