"""The graph behind a tensor as a picture: Graphviz DOT text, and ``render`` to SVG/PNG.

    print(tc.viz.to_dot(loss))                  # paste into any Graphviz viewer
    tc.viz.render(loss, "graph.svg")            # needs the `dot` program

Arrows point the way the forward pass went: from a leaf or an op to the op that
used its result. An op node shows the op's name and the shape and dtype of its
output; a leaf (a tensor that requires grad and was made by the user, not by an
op) is a filled box with its name when it is a module's parameter.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy

from tinyconv.autograd.function import Function
from tinyconv.tensor import Tensor

__all__ = ["render", "to_dot"]

_INSTALL_HINT = (
    "install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` "
    "(macOS), `conda install graphviz` or your package manager; or paste the text of "
    "tc.viz.to_dot(tensor) into an online Graphviz viewer"
)


def _quote(text: str) -> str:
    """A DOT string literal; ``\\n`` inside stays a line break of the label."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _meta(shape: tuple[int, ...], dtype: Any) -> str:
    return f"{tuple(shape)} {numpy.dtype(dtype).name}"


def _module_parameter_names() -> dict[int, str]:
    """id(parameter) -> name, from the modules alive now that no other module contains."""
    try:
        from tinyconv.nn import Module  # noqa: PLC0415  (viz works without nn)
    except ImportError:
        return {}
    # type(), not isinstance(): the latter reads __class__, which some objects compute
    modules = [obj for obj in gc.get_objects() if issubclass(type(obj), Module)]
    children = {id(child) for module in modules for child in module.children()}
    names: dict[int, str] = {}
    for module in modules:
        if id(module) not in children:
            for name, parameter in module.named_parameters():
                names.setdefault(id(parameter), name)
    return names


def _parameter_names(params: Any) -> dict[int, str]:
    if params is None:
        return _module_parameter_names()
    if hasattr(params, "named_parameters"):  # a Module
        params = dict(params.named_parameters())
    return {id(tensor): name for name, tensor in dict(params).items()}


def to_dot(tensor: Tensor, params: Any = None, name: str = "output") -> str:
    """The graph that computed ``tensor``, as Graphviz DOT text.

    Args:
        tensor: the result to draw the graph of (usually a loss).
        params: names for leaves: ``dict(model.named_parameters())`` or a module.
            When None, the parameters of the modules alive now are named.
        name: the label of the output node.
    """
    names = _parameter_names(params)
    ids: dict[int, str] = {}  # id(node or leaf) -> DOT name, in the order first met

    def dot_id(obj: Any) -> str:
        return ids.setdefault(id(obj), f"n{len(ids)}")

    output_label = name + "\n" + _meta(tensor.shape, tensor.data.dtype)
    node_lines = [f"  out [label={_quote(output_label)}, style=filled, fillcolor=darkolivegreen1];"]
    edge_lines = []
    root = tensor.grad_fn
    if root is None:  # a leaf: the graph is the tensor itself
        node_lines.append(_leaf_line(dot_id(tensor), tensor, names))
        edge_lines.append(f"  {dot_id(tensor)} -> out;")
    else:
        edge_lines.append(f"  {dot_id(root)} -> out{_index_label(root, tensor._output_index)};")
        seen = {id(root)}
        stack = [root]
        while stack:  # iterative: a graph may be deeper than Python's recursion limit
            node = stack.pop()
            node_lines.append(_node_line(dot_id(node), node))
            for edge in node.next_edges:
                if edge is None:  # an input that needs no gradient is not part of the graph
                    continue
                source, index = edge
                if id(source) not in seen:
                    seen.add(id(source))
                    if isinstance(source, Function):
                        stack.append(source)
                    else:
                        node_lines.append(_leaf_line(dot_id(source), source, names))
                label = _index_label(source, index) if isinstance(source, Function) else ""
                edge_lines.append(f"  {dot_id(source)} -> {dot_id(node)}{label};")
    header = [
        "digraph tinyconv {",
        "  graph [rankdir=BT];",
        "  node [shape=box, style=rounded, fontname=Helvetica, fontsize=10];",
        "  edge [fontname=Helvetica, fontsize=9];",
    ]
    return "\n".join(header + node_lines + edge_lines + ["}"]) + "\n"


def _node_line(dot_name: str, node: Function) -> str:
    outputs = ", ".join(_meta(shape, dtype) for shape, dtype in node.output_meta)
    label = node.name + "\n" + outputs
    if node.released:
        label += "\n(saved arrays freed)"
    return f"  {dot_name} [label={_quote(label)}];"


def _leaf_line(dot_name: str, leaf: Tensor, names: dict[int, str]) -> str:
    label = names.get(id(leaf), "leaf") + "\n" + _meta(leaf.shape, leaf.data.dtype)
    if leaf.requires_grad:
        label += "\nrequires_grad"
        return f"  {dot_name} [label={_quote(label)}, style=filled, fillcolor=lightblue];"
    return f"  {dot_name} [label={_quote(label)}];"


def _index_label(node: Function, index: int) -> str:
    """Which output an edge carries, shown only for ops with several outputs."""
    return f" [label={_quote(f'output {index}')}]" if len(node.output_meta) > 1 else ""


def render(tensor: Tensor, path: str | Path, format: str | None = None, **options: Any) -> Path:
    """Draw the graph behind ``tensor`` to a file with Graphviz's ``dot`` program.

    Args:
        tensor: the result to draw the graph of.
        path: the file to write.
        format: ``'svg'``, ``'png'``, ``'pdf'``...; taken from the path's suffix when
            None (``'svg'`` when there is none).
        options: passed to ``to_dot`` (``params``, ``name``).
    """
    path = Path(path)
    if format is None:
        format = path.suffix.lstrip(".").lower() or "svg"
    program = shutil.which("dot")
    if program is None:
        raise RuntimeError(
            f"render needs the Graphviz `dot` program, which is not on PATH; {_INSTALL_HINT}"
        )
    text = to_dot(tensor, **options)
    result = subprocess.run(
        [program, f"-T{format}", "-o", str(path)], input=text.encode(), capture_output=True
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"dot failed (exit {result.returncode}) writing {path} as {format}: "
            f"{result.stderr.decode(errors='replace').strip()}"
        )
    return path
