"""``summary(model, input_size)``: a table of what each layer of a model does and costs.

The model runs once on a zero input (in eval mode, restored afterwards) with a
forward hook on each layer, which sees the layer's input and output. The counts
come from the layers' shape rules (``tinyconv.utils.costs``), not from timing.
The receptive field is followed through the layers in the order they ran, which
is exact for a chain of layers (a ``Sequential``, LeNet) and an estimate for a
network that branches; layers called as functions inside ``forward`` have no row.
"""

from __future__ import annotations

from typing import Any

from tinyconv import backend, creation, dtypes
from tinyconv.autograd.grad_mode import enable_grad
from tinyconv.tensor import Tensor
from tinyconv.utils.costs import LayerCost, ReceptiveField, layer_cost

__all__ = ["Summary", "summary"]

Pair = tuple[Any, Any]


def _first_tensor(value: Any) -> Tensor | None:
    """The output a row describes: the tensor itself, or the first of a tuple."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        return next((item for item in value if isinstance(item, Tensor)), None)
    return None


def _new_bytes(output: Tensor, input_: Tensor | None) -> int:
    """Bytes of the output's array; 0 when it is a view of the input's (Flatten)."""
    if input_ is not None:
        xp = backend.get_array_module(output.data)
        if xp.may_share_memory(output.data, input_.data):
            return 0
    return output.data.nbytes


class Summary:
    """The result of ``summary``: ``rows`` (one dict per layer call) and ``totals``.

    A row holds ``name``, ``layer`` (its class), ``output_shape``, ``params``,
    ``forward_macs``, ``grad_input_macs``, ``grad_weight_macs``, ``activation_bytes``,
    ``receptive_field`` and ``jump`` ((height, width) on the input; the jump is None
    once a layer sees the whole input, both are None where unknown).
    """

    def __init__(self, rows: list[dict[str, Any]], totals: dict[str, int]) -> None:
        self.rows = rows
        self.totals = totals

    def __getitem__(self, index: int | str) -> dict[str, Any]:
        """A row by position, or by the layer's name."""
        if isinstance(index, str):
            for row in self.rows:
                if row["name"] == index:
                    return row
            raise KeyError(index)
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return (
            f"Summary({len(self.rows)} layers, {self.totals['params']:,} parameters, "
            f"{self.totals['forward_macs']:,} forward MACs)"
        )

    def __str__(self) -> str:
        return self.table()

    def table(self) -> str:
        """The rows as a text table, then the totals."""
        header = (
            "layer",
            "output shape",
            "params",
            "forward",
            "backward dx",
            "backward dW",
            "activation B",
            "field",
            "jump",
        )
        lines = [header]
        for row in self.rows:
            lines.append(
                (
                    f"{row['name']} ({row['layer']})" if row["name"] else row["layer"],
                    str(list(row["output_shape"])),
                    f"{row['params']:,}",
                    f"{row['forward_macs']:,}",
                    f"{row['grad_input_macs']:,}",
                    f"{row['grad_weight_macs']:,}",
                    f"{row['activation_bytes']:,}",
                    _show_pair(row["receptive_field"]),
                    _show_pair(row["jump"], whole=row["receptive_field"] is not None),
                )
            )
        t = self.totals
        lines.append(
            (
                "total",
                "",
                f"{t['params']:,}",
                f"{t['forward_macs']:,}",
                f"{t['grad_input_macs']:,}",
                f"{t['grad_weight_macs']:,}",
                f"{t['activation_bytes']:,}",
                "",
                "",
            )
        )
        widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
        text = []
        for position, line in enumerate(lines):
            cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
            cells += [cell.rjust(width) for cell, width in zip(line[2:], widths[2:])]
            if position == len(lines) - 1:
                text.append("-" * len("  ".join(cells)))
            text.append("  ".join(cells).rstrip())
            if position == 0:
                text.append("-" * len("  ".join(cells)))
        text.append(
            f"multiply-adds: forward {t['forward_macs']:,}, backward {t['backward_macs']:,} "
            f"({t['grad_input_macs']:,} for input gradients, {t['grad_weight_macs']:,} for "
            "weight gradients)"
        )
        text.append(
            f"parameters: {t['params']:,} ({t['trainable_params']:,} trainable), "
            f"{t['param_bytes']:,} bytes; input {t['input_bytes']:,} bytes; "
            f"activations {t['activation_bytes']:,} bytes"
        )
        return "\n".join(text)


def _show_pair(pair: Pair | None, whole: bool = False) -> str:
    if pair is None:
        return "all" if whole else "-"
    first, second = (str(value) for value in pair)
    return first if first == second else f"{first}x{second}"


def summary(
    model: Any,
    input_size: tuple[int, ...],
    batch_size: int = 1,
    dtype: Any = dtypes.float32,
    device: str | None = None,
    verbose: bool = True,
) -> Summary:
    """Run ``model`` once on zeros and describe each layer; prints the table when verbose.

    Args:
        model: a ``tinyconv.nn.Module``.
        input_size: the shape of one sample, without the batch: ``(1, 28, 28)``.
        batch_size: the batch the counts are for (multiply-adds and memory scale with it).
        dtype, device: of the zero input (the model must already be on that device).
        verbose: print the table.

    Returns:
        A ``Summary``: ``.rows``, a list of dicts, one per layer call (see ``Summary``),
        and ``.totals``: the sums of the rows' counts, ``backward_macs`` (both
        gradients), and ``params``, ``trainable_params`` and ``param_bytes`` of the
        whole model, ``input_bytes`` of the input.
    """
    if (
        not isinstance(input_size, (tuple, list))
        or not input_size
        or not all(dtypes.is_int(size) and size > 0 for size in input_size)
    ):
        raise ValueError(
            f"summary: input_size={input_size!r} must be the shape of one sample, a tuple of "
            "positive ints without the batch, such as (1, 28, 28)"
        )
    input_size = tuple(int(size) for size in input_size)
    names = {id(module): name for name, module in model.named_modules()}
    calls: list[tuple[Any, Tensor | None, Tensor | None]] = []

    def record(module: Any, args: tuple, output: Any) -> None:
        calls.append((module, _first_tensor(args), _first_tensor(output)))

    # a row per layer: a module without children, or one that owns parameters itself
    handles = [
        module.register_forward_hook(record)
        for module in model.modules()
        if not list(module.children()) or list(module.parameters(recurse=False))
    ]
    modes = [(module, module.training) for module in model.modules()]
    x = creation.zeros((batch_size, *input_size), dtype=dtype, device=device)
    try:
        model.eval()  # dropout off, BatchNorm's running statistics untouched
        with enable_grad():  # requires_grad then shows which gradients backward computes
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training

    field = ReceptiveField(input_size)
    counted: set[int] = set()
    rows = []
    for module, input_, output in calls:
        in_shape = tuple(input_.shape) if input_ is not None else ()
        out_shape = tuple(output.shape) if output is not None else ()
        input_needs_grad = input_ is not None and input_.requires_grad
        cost = layer_cost(module, in_shape, out_shape, input_needs_grad)
        field.step(cost, in_shape, out_shape)
        receptive_field, jump = field.values()
        own = [p for p in module.parameters(recurse=False) if id(p) not in counted]
        counted.update(id(p) for p in own)  # a layer called twice counts its weights once
        cost = cost or LayerCost()
        rows.append(
            {
                "name": names.get(id(module), ""),
                "layer": type(module).__name__,
                "output_shape": out_shape,
                "params": sum(p.numel() for p in own),
                "forward_macs": cost.forward_macs,
                "grad_input_macs": cost.grad_input_macs,
                "grad_weight_macs": cost.grad_weight_macs,
                "activation_bytes": _new_bytes(output, input_) if output is not None else 0,
                "receptive_field": receptive_field,
                "jump": jump,
            }
        )

    keys = ("forward_macs", "grad_input_macs", "grad_weight_macs", "activation_bytes")
    totals = {key: sum(row[key] for row in rows) for key in keys}
    parameters = list(model.parameters())  # all of them, also those of layers not called
    totals["params"] = sum(p.numel() for p in parameters)
    totals["trainable_params"] = sum(p.numel() for p in parameters if p.requires_grad)
    totals["param_bytes"] = sum(p.data.nbytes for p in parameters)
    totals["backward_macs"] = totals["grad_input_macs"] + totals["grad_weight_macs"]
    totals["input_bytes"] = x.data.nbytes
    result = Summary(rows, totals)
    if verbose:
        print(result.table())
    return result
