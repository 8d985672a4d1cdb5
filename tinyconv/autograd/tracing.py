"""Watching the backward pass: ``trace()`` records each step, ``graph_size()`` counts nodes.

    with tc.autograd.trace() as t:
        loss.backward()
    print(t)            # one row per node, in the order the engine ran them
    t.steps[0].op       # 'CrossEntropy'

The engine calls ``record(node, grads, input_grads)`` on every object in
``engine.observers()`` right after a node's backward; a trace is such an observer
while its ``with`` block runs, in the thread that opened it, and costs nothing
outside it.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tinyconv import backend
from tinyconv.autograd.function import Function
from tinyconv.tensor import Tensor

__all__ = ["Step", "Trace", "graph_size", "trace"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Step:
    """One node's backward: the gradient it received and those it produced.

    ``grad_output_*`` has one entry per output of the op, ``grad_input_*`` one per
    positional input; an entry is None where there was no gradient (an integer
    output, or an input that does not require grad). ``targets`` says where each
    input gradient went: the name of the op that made that input, ``'leaf'``, or None.
    """

    index: int
    op: str
    grad_output_shapes: tuple[Shape | None, ...]
    grad_output_norms: tuple[float | None, ...]
    grad_input_shapes: tuple[Shape | None, ...]
    grad_input_norms: tuple[float | None, ...]
    targets: tuple[str | None, ...]


def _norm(array: Any) -> float:
    if isinstance(array, Tensor):  # create_graph=True: gradients are recorded tensors
        array = array.data
    # in float64, so a float16 gradient's norm does not overflow
    xp = backend.get_array_module(array)
    return float(xp.sqrt(xp.sum(xp.square(array.astype(xp.float64)))))


def _describe(arrays: Sequence[Any]) -> tuple[tuple[Shape | None, ...], tuple[float | None, ...]]:
    shapes = tuple(None if a is None else tuple(a.shape) for a in arrays)
    norms = tuple(None if a is None else _norm(a) for a in arrays)
    return shapes, norms


def _target_name(edge: Any) -> str | None:
    if edge is None:
        return None
    target = edge[0]
    return target.name if isinstance(target, Function) else "leaf"


class Trace:
    """The steps of every backward pass run while it is registered (see ``trace``)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def record(self, node: Function, grads: Sequence[Any], input_grads: Sequence[Any]) -> None:
        """Called by the engine after ``node.backward``."""
        out_shapes, out_norms = _describe(grads)
        in_shapes, in_norms = _describe(input_grads)
        targets = tuple(
            _target_name(edge) if grad is not None else None
            for edge, grad in zip(node.next_edges, input_grads)
        )
        self.steps.append(
            Step(len(self.steps), node.name, out_shapes, out_norms, in_shapes, in_norms, targets)
        )

    @property
    def ops(self) -> list[str]:
        """The op names in the order their backward ran."""
        return [step.op for step in self.steps]

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    def __getitem__(self, index: int) -> Step:
        return self.steps[index]

    def table(self) -> str:
        """The steps as a text table; a node with several gradients takes several lines."""
        rows = [("step", "op", "grad of output", "norm", "grads it produced", "norm", "to")]
        for step in self.steps:
            outputs = [
                (str(shape), f"{norm:.4g}")
                for shape, norm in zip(step.grad_output_shapes, step.grad_output_norms)
                if shape is not None
            ]
            inputs = [
                (str(shape), f"{norm:.4g}", target)
                for shape, norm, target in zip(
                    step.grad_input_shapes, step.grad_input_norms, step.targets
                )
                if shape is not None
            ]
            for line in range(max(len(outputs), len(inputs), 1)):
                first = line == 0
                out = outputs[line] if line < len(outputs) else ("", "")
                into = inputs[line] if line < len(inputs) else ("", "", "")
                rows.append(
                    (str(step.index) if first else "", step.op if first else "", *out, *into)
                )
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        right = {0, 3, 5}  # numbers align right
        lines = []
        for row in rows:
            cells = [
                cell.rjust(width) if column in right else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(row, widths))
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"Trace({len(self.steps)} steps: {', '.join(self.ops)})"

    # -- registration --------------------------------------------------------------------

    def __enter__(self) -> Trace:
        from tinyconv.autograd import engine  # noqa: PLC0415  (engine imports Tensor)

        if self in engine.observers():  # a second ``with`` would record every step twice
            raise RuntimeError("this trace is already recording; use a new tc.autograd.trace()")
        engine.observers().append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        from tinyconv.autograd import engine  # noqa: PLC0415

        engine.observers().remove(self)


def trace() -> Trace:
    """Record every backward step run inside the ``with`` block.

    Each step holds the op's name, the shape and L2 norm of the gradient of each
    of its outputs, and the shape, norm and destination of each gradient it
    produced, in the order the engine ran the nodes (``tc.grad`` calls included).
    """
    return Trace()


def graph_size(tensor: Any = None) -> int:
    """The number of graph nodes (``Function`` instances) alive now.

    Args:
        tensor: when given, count only the nodes reachable from ``tensor.grad_fn``
            (0 for a leaf). Otherwise count every node the garbage collector can
            see, a diagnostic scan of all objects: after the output of a step is
            dropped, this returns to what it was before the step, unless a
            reference cycle (or a tensor still held) keeps the graph alive.
    """
    if tensor is None:
        # type(), not isinstance(): the latter reads __class__, which some objects compute
        return sum(1 for obj in gc.get_objects() if issubclass(type(obj), Function))
    start = tensor.grad_fn
    if start is None:
        return 0
    seen = {start}
    stack = [start]
    while stack:  # iterative: a graph may be deeper than Python's recursion limit
        node = stack.pop()
        for edge in node.next_edges:
            if edge is not None and isinstance(edge[0], Function) and edge[0] not in seen:
                seen.add(edge[0])
                stack.append(edge[0])
    return len(seen)
