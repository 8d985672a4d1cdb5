"""``Function``: one differentiable op, whose instance is also its node in the graph.

An op subclasses ``Function`` and writes two methods side by side::

    class Exp(Function):
        def forward(self, x):             # arrays in, arrays out
            y = array_module(x).exp(x)
            self.save_for_backward(y)
            return y

        def backward(self, grad_out):     # one gradient per positional input
            (y,) = self.saved_arrays
            return grad_out * y

``Exp.apply(tensor)`` runs ``forward`` on the tensor's array and, when grad mode is
on and an input requires grad, links the output to this node. Positional arguments
that are Tensors are the graph's inputs; any other positional value (a Python
number, None for an absent bias) is handed to ``forward`` as it is and gets no
gradient; keyword arguments are options. ``backward`` returns one gradient (or
None) per positional argument, never changes ``grad_out`` or a saved array in
place, and may skip the inputs whose ``needs_input_grad`` entry is False.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy

from tinyconv.autograd import grad_mode

__all__ = ["Function"]


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    # Filled in by ``apply``; plain attributes keep ``apply`` fast.
    next_edges: tuple[tuple[Any, int] | None, ...] = ()
    needs_input_grad: tuple[bool, ...] = ()
    changes_device = False  # True for the op that copies between devices
    # True when ``backward`` uses only operators and Tensor-compatible calls on its
    # inputs, outputs and gradients, so that run on tensors it records a graph
    # (``create_graph=True``, ``gradgradcheck``)
    differentiable_backward = False

    def forward(self, *args: Any, **options: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def backward(self, *grad_outputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    # -- what forward keeps for backward ---------------------------------------------

    def save_for_backward(self, *arrays: Any, computed_from: tuple[Any, ...] = ()) -> None:
        """Keep arrays for ``backward``; an input or output array saved here is guarded
        by its tensor's version counter, so changing it in place makes backward raise.

        ``computed_from`` names input arrays that a saved array was made from (a copy in
        another layout, say): they are guarded the same way, without being kept.
        """
        self._saved = arrays
        self._computed_from = computed_from

    @property
    def saved_arrays(self) -> tuple[Any, ...]:
        saved = self.__dict__.get("_saved", ())
        if saved is None:
            self.raise_released()
        return saved

    def raise_released(self) -> None:
        raise RuntimeError(
            f"Trying to backward through the graph a second time (through {self.name}): "
            "its saved arrays were freed after the first backward. Pass "
            "retain_graph=True to the first backward() to keep them."
        )

    @property
    def name(self) -> str:
        return type(self).__name__

    def release(self) -> None:
        """Free the saved arrays (the engine calls this after backward)."""
        self._saved = None

    @property
    def released(self) -> bool:
        return self.__dict__.get("_saved", ()) is None

    # -- what the engine does at this node's outputs ----------------------------------

    def output_hooks(self, index: int) -> list:
        """The hooks registered on output ``index`` (created on first use)."""
        hooks = self.__dict__.setdefault("_output_hooks", {})
        return hooks.setdefault(index, [])

    def retain_output(self, index: int, tensor: Tensor) -> None:
        """Store output ``index``'s gradient on ``tensor`` (held weakly: no cycle)."""
        self.__dict__.setdefault("_retained", {})[index] = weakref.ref(tensor)

    # -- building the graph -----------------------------------------------------------

    @classmethod
    def apply(cls, *args: Any, **options: Any) -> Any:
        """Run the op on tensors; returns a Tensor, or a tuple of them."""
        function = cls.__new__(cls)
        arrays = []
        device = None
        requires_grad = False
        for arg in args:
            if isinstance(arg, Tensor):
                if device is None:
                    device = arg._device
                elif arg._device != device:
                    raise RuntimeError(
                        f"{function.name}: expected all tensors on the same device, "
                        f"but found {device!r} and {arg._device!r}"
                    )
                arrays.append(arg.data)
                if arg._requires_grad:
                    requires_grad = True
            else:
                arrays.append(arg)
        if device is None:
            raise TypeError(f"{function.name}: expected at least one Tensor argument")
        recording = requires_grad and grad_mode.is_grad_enabled()
        if recording:
            function.needs_input_grad = tuple(
                isinstance(arg, Tensor) and arg._requires_grad for arg in args
            )
        raw = function.forward(*arrays, **options)
        if recording:  # what forward saved must be the outputs' own arrays
            if type(raw) is tuple:
                raw = tuple(_as_array(function, value) for value in raw)
            else:
                raw = _as_array(function, raw)

        if cls.changes_device:
            device = options["device"]
        if type(raw) is tuple:
            outputs = tuple(Tensor._wrap(array, device) for array in raw)
            _share_versions_of_views(args, outputs)
        else:
            output = Tensor._wrap(raw, device)
            if output.data.base is not None:  # a view, perhaps of an input's memory
                _share_versions_of_views(args, (output,))
            if not recording:
                return output  # the common no-grad path: nothing to link
            outputs = (output,)
        if recording:
            function._link(args, outputs)
        return outputs if type(raw) is tuple else outputs[0]

    def _link(self, args: tuple[Any, ...], outputs: tuple[Tensor, ...]) -> None:
        edges = []
        for arg in args:
            if isinstance(arg, Tensor) and arg._requires_grad:
                # a leaf is its own edge (gradients accumulate into it); otherwise the
                # edge points at the node that made the tensor, and which of its outputs
                edges.append((arg, 0) if arg.grad_fn is None else (arg.grad_fn, arg._output_index))
            else:
                edges.append(None)
        self.next_edges = tuple(edges)
        if grad_mode.is_keeping_inputs():
            # for create_graph: the tensors behind the saved arrays (outputs too, which
            # makes a reference cycle: only in this mode, and the collector frees it)
            self.inputs = args
            self.outputs = outputs
        self.output_meta = tuple((out.shape, out.data.dtype) for out in outputs)
        for index, out in enumerate(outputs):
            if out.data.dtype.kind in "fc":  # only floating outputs carry gradients
                out._requires_grad = True
                out.grad_fn = self
                out._output_index = index
        guarded = (*(self.__dict__.get("_saved") or ()), *self.__dict__.pop("_computed_from", ()))
        if guarded:
            inputs = [arg for arg in args if isinstance(arg, Tensor)]
            self._saved_versions = _versions_of(guarded, inputs, outputs)

    def check_versions(self) -> None:
        """Raise if a tensor whose array this node saved was changed in place since."""
        for counter, expected, role in self.__dict__.get("_saved_versions", ()):
            if counter.value != expected:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: {role} of {self.name} is at version "
                    f"{counter.value}; expected version {expected}. Use an out-of-place "
                    "operation (or .clone()) before changing it."
                )


def _as_array(function: Function, value: Any) -> Any:
    # NumPy returns a 0-d result as a scalar (numpy.generic), which is no array that a
    # tensor and a saved copy could share: make it one, and let whatever ``forward``
    # saved of it be that array, so that it is known as the output
    if not isinstance(value, numpy.generic):
        return value
    array = numpy.asarray(value)
    saved = function.__dict__.get("_saved")
    if saved:
        function._saved = tuple(array if item is value else item for item in saved)
    return array


def _share_versions_of_views(args: tuple[Any, ...], outputs: tuple[Tensor, ...]) -> None:
    # An output that is a view of an input's memory (a slice, a reshape, a transpose)
    # counts in-place changes together with it, as PyTorch's views do: a change made
    # through either must make a backward that saved the other raise. Views are
    # recognised by ``.base``: CuPy points a view of a view at the array that owns the
    # memory, NumPy too, except that it stops at an array over a foreign buffer
    # (``frombuffer``, a memmap), which is then the base of its views. (An op returns
    # a new array or a view, never an input's array itself.)
    for out in outputs:
        owner = out.data.base
        if owner is None:
            owner = out.data
        for arg in args:
            if isinstance(arg, Tensor) and (arg.data is owner or arg.data.base is owner):
                out._version = arg._version
                break


def _versions_of(saved, inputs, outputs) -> tuple:
    """(version counter, version now, description) for each saved array that is the
    array of an input or an output; other saved arrays belong to this node alone."""
    found = []
    for array in saved:
        for position, tensor in enumerate(inputs):
            if tensor.data is array:
                found.append((tensor._version, tensor._version.value, f"input {position}"))
                break
        else:
            for position, tensor in enumerate(outputs):
                if tensor.data is array:
                    found.append((tensor._version, tensor._version.value, f"output {position}"))
                    break
    return tuple(found)


# Imported last: tensor.py imports the ops, which import Function from this module.
from tinyconv.tensor import Tensor  # noqa: E402
