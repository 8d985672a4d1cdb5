"""The backward pass: an iterative walk of the graph in topological order.

From the output, a depth-first search (with an explicit stack, so a chain of any
length fits) counts how many edges reach each node. A node runs once every node
that feeds it a gradient has run; its gradients are summed first. Leaves receive
their gradient at the end, added to ``.grad``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from tinyconv import backend
from tinyconv.autograd.function import Function
from tinyconv.autograd.grad_mode import set_grad_enabled
from tinyconv.tensor import Tensor

__all__ = ["backward", "grad"]


class _Observers(threading.local):
    def __init__(self) -> None:
        self.active: list = []


_observers = _Observers()


def observers() -> list:
    """This thread's observers of the walk (``tinyconv.autograd.trace``): a trace records
    the backward passes of the thread that opened it. Empty in ordinary runs."""
    return _observers.active


def backward(
    tensors: Sequence[Tensor],
    grad_tensors: Sequence[Any] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate the gradients of ``tensors`` into the leaves that require grad.

    With ``create_graph=True`` the gradients are themselves recorded (see
    ``grad_mode.keep_inputs``), so they can be differentiated again.
    """
    roots = _roots(tensors, grad_tensors, create_graph)
    retain = create_graph if retain_graph is None else retain_graph
    leaf_grads = _run(roots, retain, capture=None, create_graph=create_graph)
    with _recording(create_graph):  # a hook's result and the sum into .grad too
        for leaf, grad_value in leaf_grads.values():
            _accumulate(leaf, grad_value)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs), returned rather than added to ``.grad``."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is not None and not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    for position, tensor in enumerate(inputs):
        if not tensor.requires_grad:
            raise RuntimeError(f"grad: inputs[{position}] does not require grad")
    roots = _roots(outputs, grad_outputs, create_graph)
    retain = create_graph if retain_graph is None else retain_graph
    captured = _run(roots, retain, capture=inputs, create_graph=create_graph)
    results = []
    hooked: dict[int, Any] = {}  # a leaf listed twice runs its hooks once
    for position, tensor in enumerate(inputs):
        found = captured.get(id(tensor))
        if found is None:
            if not allow_unused:
                raise RuntimeError(
                    f"grad: inputs[{position}] was not used to compute the outputs; "
                    "pass allow_unused=True to get None for it"
                )
            results.append(None)
        else:
            value = found[1]
            if tensor.grad_fn is None:  # a leaf's hooks run as before accumulating into it
                if id(tensor) not in hooked:
                    with _recording(create_graph):
                        hooked[id(tensor)] = _hooked(tensor, value)
                value = hooked[id(tensor)]
            results.append(value if create_graph else Tensor._wrap(value, tensor.device))
    return tuple(results)


def _roots(
    tensors: Sequence[Tensor], grad_tensors: Sequence[Any] | None, create_graph: bool = False
) -> list:
    """(tensor, seed gradient) for each output to start from: an array, or a Tensor
    when the gradients are to be recorded."""
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    if len(grad_tensors) != len(tensors):
        raise ValueError(f"got {len(grad_tensors)} gradients for {len(tensors)} tensors")
    roots = []
    for tensor, seed in zip(tensors, grad_tensors):
        if not tensor.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn: "
                "backward() needs a tensor computed from a tensor with requires_grad=True"
            )
        xp = backend.get_array_module(tensor.data)
        if create_graph and isinstance(seed, Tensor):
            roots.append((tensor, seed))  # may itself carry a graph
            continue
        if seed is None:
            if tensor.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; this output has "
                    f"shape {tensor.shape}: pass gradient= (dL/d(output), of that shape)"
                )
            seed = xp.ones(tensor.shape, dtype=tensor.data.dtype)
        else:
            if isinstance(seed, Tensor):
                seed = seed.data
            elif backend.device_of(seed) == "cpu":  # numbers, lists, NumPy arrays
                seed = xp.asarray(seed, dtype=tensor.data.dtype)
            if seed.shape != tensor.shape:
                raise RuntimeError(
                    f"gradient has shape {seed.shape}, but the output has shape {tensor.shape}"
                )
            if backend.device_of(seed) != tensor.device:
                raise RuntimeError(
                    f"gradient is on {backend.device_of(seed)!r}, the output on {tensor.device!r}"
                )
            seed = seed.astype(tensor.data.dtype, copy=False)
        roots.append((tensor, Tensor._wrap(seed, tensor.device) if create_graph else seed))
    return roots


def _count_dependencies(start: list[Function]) -> dict[Function, int]:
    """How many edges from nodes of the graph reach each node."""
    dependencies: dict[Function, int] = {}
    seen = set(start)
    stack = list(start)
    while stack:
        node = stack.pop()
        for edge in node.next_edges:
            if edge is None or not isinstance(edge[0], Function):
                continue
            child = edge[0]
            dependencies[child] = dependencies.get(child, 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return dependencies


def _run(
    roots: list, retain_graph: bool, capture: list[Tensor] | None, create_graph: bool = False
) -> dict:
    """Walk the graph. Returns {id(leaf): (leaf, gradient)}; with ``capture`` given,
    the gradients of those tensors instead, leaves left untouched. Gradients are
    arrays, or Tensors recorded in a new graph when ``create_graph``."""
    with _recording(create_graph):
        return _walk(roots, retain_graph, capture, create_graph)


def _recording(create_graph: bool) -> Any:
    # with create_graph, everything the engine computes is recorded, even under
    # no_grad: the backward functions, the sums of the gradients that several
    # branches bring to one tensor, hooks, and the sums into .grad
    return set_grad_enabled(True) if create_graph else contextlib.nullcontext()


def _walk(
    roots: list, retain_graph: bool, capture: list[Tensor] | None, create_graph: bool
) -> dict:
    leaf_grads: dict[int, tuple[Tensor, Any]] = {}
    captured_outputs = {}  # (node, output index) -> tensor, for non-leaf inputs of grad()
    if capture is not None:
        for tensor in capture:
            if tensor.grad_fn is not None:
                captured_outputs[(tensor.grad_fn, tensor._output_index)] = tensor

    pending: dict[Function, list] = {}  # node -> gradient per output, summed so far
    start = []
    for tensor, seed in roots:
        if tensor.grad_fn is None:  # backward on a leaf: its gradient is the seed
            _add_to_leaf(leaf_grads, tensor, seed)
            continue
        node = tensor.grad_fn
        if node not in pending:
            pending[node] = [None] * len(node.output_meta)
            start.append(node)
        _add_into(pending[node], tensor._output_index, seed)

    dependencies = _count_dependencies(start)
    ready = [node for node in start if dependencies.get(node, 0) == 0]
    while ready:
        node = ready.pop()
        grads = pending.pop(node)
        grads = _fill_missing(node, grads, create_graph)
        grads = _at_outputs(node, grads, captured_outputs, leaf_grads)
        if node.released:
            node.raise_released()
        node.check_versions()
        if create_graph:
            input_grads = _backward_graph(node, grads)
        else:
            input_grads = node.backward(*grads)
        if type(input_grads) is not tuple:
            input_grads = (input_grads,)
        if len(input_grads) != len(node.next_edges):
            raise RuntimeError(
                f"{node.name}.backward returned {len(input_grads)} gradients for "
                f"{len(node.next_edges)} inputs"
            )
        for observer in _observers.active:
            observer.record(node, grads, input_grads)
        if not retain_graph:
            node.release()
        for edge, input_grad in zip(node.next_edges, input_grads):
            if edge is None:
                continue
            target, index = edge
            if input_grad is not None:
                _check_grad(node, target, index, input_grad)
            if isinstance(target, Function):
                slots = pending.get(target)
                if slots is None:
                    slots = pending[target] = [None] * len(target.output_meta)
                if input_grad is not None:
                    _add_into(slots, index, input_grad)
                dependencies[target] -= 1
                if dependencies[target] == 0:
                    ready.append(target)
            elif input_grad is not None:
                _add_to_leaf(leaf_grads, target, input_grad)

    if capture is not None:
        wanted = {id(tensor) for tensor in capture}
        return {key: value for key, value in leaf_grads.items() if key in wanted}
    return leaf_grads


def _add_into(slots: list, index: int, grad_array: Any) -> None:
    # out of place: a gradient array may be shared with another branch
    slots[index] = grad_array if slots[index] is None else slots[index] + grad_array


def _add_to_leaf(leaf_grads: dict, leaf: Tensor, grad_array: Any) -> None:
    key = id(leaf)
    if key in leaf_grads:
        grad_array = leaf_grads[key][1] + grad_array
    leaf_grads[key] = (leaf, grad_array)


def _backward_graph(node: Function, grads: list) -> Any:
    """The node's gradients as Tensors recorded in a new graph (``create_graph=True``).

    An op whose backward is written with operators only (``differentiable_backward``)
    runs its ordinary ``backward`` on tensors: the arrays it saved are swapped for the
    input and output tensors they belong to, so every product it forms is recorded.
    """
    if not type(node).differentiable_backward:
        raise RuntimeError(
            f"create_graph=True: {node.name}'s backward is not differentiable, so its "
            "gradient cannot be differentiated again"
        )
    if not hasattr(node, "inputs"):
        raise RuntimeError(
            f"create_graph=True: {node.name} did not keep its inputs; run the forward pass "
            "inside `with tc.autograd.keep_inputs():` (gradgradcheck does this itself)"
        )
    tensors = [t for t in (*node.inputs, *node.outputs) if isinstance(t, Tensor)]
    by_array = {id(t.data): t for t in tensors}
    saved = node.__dict__.get("_saved")
    if not saved:  # nothing saved: the backward uses only the gradient and shapes
        with set_grad_enabled(True):
            return node.backward(*grads)
    node._saved = tuple(by_array.get(id(array), array) for array in saved)
    try:
        with set_grad_enabled(True):
            return node.backward(*grads)
    finally:
        node._saved = saved


def _fill_missing(node: Function, grads: list, create_graph: bool = False) -> list:
    """Outputs that received no gradient (an unused output) get zeros."""
    if all(grad_array is not None for grad_array in grads):
        return grads
    xp = None
    filled = []
    for grad_array, (shape, dtype) in zip(grads, node.output_meta):
        if grad_array is None and dtype.kind in "fc":
            if xp is None:
                present = next((_array(g) for g in grads if g is not None), None)
                xp = backend.get_array_module(present) if present is not None else None
            if xp is None:
                import numpy as xp  # noqa: PLC0415  (every output unused: cannot happen from a root)
            grad_array = xp.zeros(shape, dtype=dtype)
            if create_graph:
                grad_array = Tensor._wrap(grad_array, backend.device_of(grad_array))
        filled.append(grad_array)
    return filled


def _at_outputs(node: Function, grads: list, captured: dict, leaf_grads: dict) -> list:
    """Run the hooks on the node's outputs, keep retained and captured gradients."""
    hooks = node.__dict__.get("_output_hooks")
    if hooks:
        for index, output_hooks in hooks.items():
            for hook in list(output_hooks):
                graded = isinstance(grads[index], Tensor)
                replaced = hook(grads[index] if graded else _wrap(grads[index]))
                if replaced is not None:
                    grads[index] = replaced if graded else _array(replaced)
    retained = node.__dict__.get("_retained")
    if retained:
        for index, reference in retained.items():
            tensor = reference()
            if tensor is not None and grads[index] is not None:
                _accumulate(tensor, grads[index])
    if captured:
        for index, grad_array in enumerate(grads):
            tensor = captured.get((node, index))
            if tensor is not None:
                leaf_grads[id(tensor)] = (tensor, grad_array)
    return grads


def _check_grad(node: Function, target: Any, index: int, grad_array: Any) -> None:
    """A gradient must match its tensor's shape and dtype: fail loudly, naming the op."""
    if isinstance(target, Function):
        shape, dtype = target.output_meta[index]
    else:
        shape, dtype = target.shape, target.data.dtype
    grad_array = _array(grad_array)
    if grad_array.shape != shape or grad_array.dtype != dtype:
        raise RuntimeError(
            f"{node.name}.backward returned a gradient of shape {grad_array.shape} and dtype "
            f"{grad_array.dtype} for an input of shape {shape} and dtype {dtype}"
        )


def _array(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


def _wrap(array: Any) -> Tensor:
    return Tensor._wrap(array, backend.device_of(array))


def _hooked(tensor: Tensor, grad_array: Any) -> Any:
    """The gradient of a leaf after the hooks registered on it, in order."""
    recorded = isinstance(grad_array, Tensor)
    for hook in list(tensor._hooks or ()):
        replaced = hook(grad_array if recorded else Tensor._wrap(grad_array, tensor.device))
        if replaced is not None:
            grad_array = replaced if recorded else _array(replaced)
    return grad_array


def _accumulate(tensor: Tensor, grad_array: Any) -> None:
    """Add into ``tensor.grad`` after the tensor's own hooks; never alias the array."""
    grad_array = _hooked(tensor, grad_array)
    recorded = isinstance(grad_array, Tensor)
    if recorded:  # create_graph: the gradient keeps its graph
        tensor.grad = grad_array if tensor.grad is None else tensor.grad + grad_array
        return
    if tensor.grad is None:
        # a copy: the engine may hand the same array to several tensors, and it may be
        # a read-only broadcast view
        xp = backend.get_array_module(grad_array)
        tensor.grad = Tensor._wrap(xp.array(grad_array, copy=True), tensor.device)
    else:
        tensor.grad.data += grad_array
        tensor.grad._version.value += 1
