"""im2col and col2im: a convolution as one matrix product.

Notation: N images, C channels, H×W input, KH×KW kernel, OH×OW output, stride
(SH, SW), dilation (DH, DW), M = N·OH·OW output positions.

The input is first copied once into a padded *workspace* whose first axis is the
channel and whose other three axes are the batch and the two spatial axes, in one of
two orders:

- ``"nhw"``: (C, N, HP, WP), each image's rows together. Cheap to make from NCHW
  (whole H×W planes move), and the copies below run along rows of OW elements.
- ``"hwn"``: (C, HP, WP, N), the batch innermost. Making it transposes every
  element, but for a stride-1 kernel the copies then run along OW·N contiguous
  elements instead of OW, which wins when images are small. With a stride along W
  its columns are split by phase (``phase_workspace``), so that they still do.

``im2col`` reads the workspace through a strided view of shape
(KH, C, KW, ...M axes...) — element [i, c, j, n, oh, ow] is the input under kernel
tap (i, j) of output (oh, ow) — and copies it once into a (KH·C·KW, M) matrix, so a
convolution is ``weight (O, KH·C·KW) @ columns (KH·C·KW, M)``. ``col2im`` is its
adjoint: it adds each tap's slice back where it was read, a loop over the KH·KW
taps only. (With G groups, a group axis comes first and C is C/G.)

With stride 1 along H, output rows oh and oh + 1 read KH - 1 of the same input
rows, so im2col copies every input row KH times. ``row_columns`` copies each row once,
over the KW kernel columns only, with the rows outermost; the KH rows that one output
row reads are then already one matrix in memory, and ``conv_windows`` hands out those
matrices as views. That is KH times less to copy and to read back, which is most of
a convolution's time when the channels are few (LeNet's forwards: 1.5-2.4× faster).
"""

from __future__ import annotations

import math
from typing import Any

from tinyconv.backend import (
    as_strided,
    copy_batch_innermost,
    copy_phases_batch_innermost,
    get_array_module,
    scratch,
)

__all__ = [
    "batch_inner",
    "col2im",
    "conv_windows",
    "im2col",
    "layout_shape",
    "phase_workspace",
    "positions_from_layout",
    "positions_to_layout",
    "row_columns",
    "stored_batch_inner",
    "to_workspace",
    "window_order",
]

Pair = tuple[int, int]

# where the batch (n), row (h) and column (w) axes sit after the channel axis; "hnw"
# is only ever an order of output positions (see ``window_order``)
ORDERS = ("nhw", "hwn", "hnw")


def _check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order={order!r} must be one of {ORDERS}")
    return order


def layout_shape(order: str, batch: int, size: Pair) -> tuple[int, int, int]:
    """The batch and spatial extents of a workspace (or of M) in ``order``."""
    extent = {"n": batch, "h": size[0], "w": size[1]}
    return tuple(extent[axis] for axis in _check_order(order))


def to_workspace(x: Any, padding: tuple[Pair, Pair], order: str) -> Any:
    """(N, C, H, W) -> the zero-padded workspace (C, N, HP, WP) or (C, HP, WP, N).

    ``padding`` is ((top, bottom), (left, right)); a negative amount crops.
    """
    xp = get_array_module(x)
    (top, bottom), (left, right) = padding
    batch, channels, height, width = x.shape
    if (top, bottom, left, right) == (0, 0, 0, 0):
        # a view when the copies that read it run along memory: NCHW rows for "nhw",
        # an array laid out (C, H, W, N) already for "hwn"
        if order == "nhw" or stored_batch_inner(x):
            return _nchw_to(x, order)
    padded_size = (height + top + bottom, width + left + right)
    workspace = xp.zeros((channels, *layout_shape(order, batch, padded_size)), dtype=x.dtype)
    # negative padding crops the source instead of offsetting the destination
    source = x[
        :, :, max(-top, 0) : height - max(-bottom, 0), max(-left, 0) : width - max(-right, 0)
    ]
    rows = slice(max(top, 0), max(top, 0) + source.shape[2])
    cols = slice(max(left, 0), max(left, 0) + source.shape[3])
    where = {"n": slice(None), "h": rows, "w": cols}
    interior = workspace[(slice(None), *(where[axis] for axis in order))]
    if order == "hwn":
        copy_batch_innermost(interior, source)
    else:
        interior[...] = _nchw_to(source, order)
    return workspace


def phase_workspace(x: Any, padding: tuple[Pair, Pair], stride_w: int) -> Any:
    """(N, C, H, W) -> the "hwn" workspace with its columns split by phase:
    (C, HP, SW, ceil(WP / SW), N), element [c, h, φ, q, n] = the padded input at row h,
    column q·SW + φ (zero past its width). ``padding`` must not crop along W.

    A stride-SW kernel column reads every SW-th column, so in the plain workspace its
    runs are N elements long; in its phase they are OW·N.
    """
    xp = get_array_module(x)
    (top, bottom), (left, right) = padding
    batch, channels, height, width = x.shape
    padded_width = width + left + right
    workspace = xp.zeros(
        (channels, height + top + bottom, stride_w, -(-padded_width // stride_w), batch),
        dtype=x.dtype,
    )
    source = x[:, :, max(-top, 0) : height - max(-bottom, 0)]  # negative padding crops
    rows = slice(max(top, 0), max(top, 0) + source.shape[2])
    targets = []  # (where a phase's columns go, x's first column in that phase)
    for phase in range(stride_w):
        first = max(0, -(-(left - phase) // stride_w))  # the first q that holds x
        column = first * stride_w + phase - left  # ... and x's column there
        if column < width:
            count = len(range(column, width, stride_w))
            targets.append((workspace[:, rows, phase, first : first + count], column))
    copy_phases_batch_innermost(targets, source, stride_w)
    return workspace


_NCHW_AXIS = {"n": 0, "h": 2, "w": 3}


def _nchw_to(x: Any, order: str) -> Any:
    # (N, C, H, W) -> (C, *order)
    return x.transpose(1, *(_NCHW_AXIS[axis] for axis in order))


def _to_nchw(x: Any, order: str) -> Any:
    # (C, *order) -> (N, C, H, W)
    moved = (1, *(_NCHW_AXIS[axis] for axis in order))
    return x.transpose(*(moved.index(axis) for axis in range(4)))


def stored_batch_inner(x: Any) -> bool:
    """Whether (N, C, H, W) ``x`` is a view of values laid out (C, H, W, N), as results
    in the "hwn" order are."""
    return _nchw_to(x, "hwn").flags.c_contiguous


def batch_inner(x: Any) -> Any:
    """(N, C, H, W) values stored as (C, H, W, N), the "hwn" order's layout: ``x``
    itself when it is stored so already, else one transposing copy."""
    if stored_batch_inner(x):
        return x
    stored = get_array_module(x).empty(_nchw_to(x, "hwn").shape, dtype=x.dtype)
    copy_batch_innermost(stored, x)
    return stored.transpose(3, 0, 1, 2)


def positions_to_layout(grad_out: Any, order: str) -> Any:
    """(N, O, OH, OW) -> contiguous (O, M), the output positions in ``order`` (a
    workspace order, or ``"hnw"``: see ``window_order``)."""
    if order == "hwn":
        grad_out = batch_inner(grad_out)  # the staged transpose, when one is needed
    moved = _nchw_to(grad_out, order)
    return get_array_module(grad_out).ascontiguousarray(moved).reshape(moved.shape[0], -1)


def positions_from_layout(values: Any, order: str, out_size: Pair, batch: int) -> Any:
    """(O, M) in workspace order -> a (N, O, OH, OW) view (not copied)."""
    return _to_nchw(values.reshape(values.shape[0], *layout_shape(order, batch, out_size)), order)


def im2col(
    workspace: Any,
    order: str,
    groups: int,
    kernel_size: Pair,
    stride: Pair,
    dilation: Pair,
    out_size: Pair,
    reuse_buffer: bool = True,
) -> Any:
    """Workspace -> contiguous columns (G, KH, C/G, KW, ...M axes...): one copy, or one
    per kernel column from a workspace split by column phases (``phase_workspace``).

    Element [g, i, c, j, ...] is input channel g·C/G + c under kernel tap (i, j) of
    an output position. The columns live in the reused scratch buffer, valid until the
    next ``im2col`` or ``row_columns``, unless ``reuse_buffer`` is False.
    """
    if workspace.ndim == 5:  # split by column phases (``phase_workspace``)
        return _columns_of_phases(
            workspace, groups, kernel_size, stride, dilation, out_size, reuse_buffer
        )
    strides = dict(zip("c" + order, workspace.strides))
    sizes = dict(zip("c" + order, workspace.shape))
    step = {"n": strides["n"], "h": strides["h"] * stride[0], "w": strides["w"] * stride[1]}
    extent = {"n": sizes["n"], "h": out_size[0], "w": out_size[1]}
    channels = sizes["c"] // groups
    shape = (groups, kernel_size[0], channels, kernel_size[1], *(extent[a] for a in order))
    view_strides = (
        channels * strides["c"],
        strides["h"] * dilation[0],
        strides["c"],
        strides["w"] * dilation[1],
        *(step[axis] for axis in order),
    )
    return _copied(workspace, shape, view_strides, reuse_buffer)


def _columns_of_phases(
    workspace: Any,
    groups: int,
    kernel_size: Pair,
    stride: Pair,
    dilation: Pair,
    out_size: Pair,
    reuse: bool,
) -> Any:
    # ``im2col`` of a (C, HP, SW, WQ, N) workspace, in the "hwn" order: kernel column j
    # reads padded column ow·SW + j·DW, which is phase (j·DW) mod SW at q = ow + shift,
    # so each kernel column is one copy whose runs are OW·N elements long
    channels, _, _, _, batch = workspace.shape
    channels //= groups
    stride_c, stride_h, _, stride_q, stride_n = workspace.strides
    columns = _buffer(
        (groups, kernel_size[0], channels, kernel_size[1], *out_size, batch), workspace, reuse
    )
    view_shape = (groups, kernel_size[0], channels, *out_size, batch)
    view_strides = (
        channels * stride_c,
        stride_h * dilation[0],
        stride_c,
        stride_h * stride[0],
        stride_q,
        stride_n,
    )
    for j in range(kernel_size[1]):
        shift, phase = divmod(j * dilation[1], stride[1])
        origin = workspace[:, :, phase, shift:]
        columns[:, :, :, j] = as_strided(origin, view_shape, view_strides)
    return columns


def _copied(workspace: Any, shape: tuple[int, ...], strides: tuple[int, ...], reuse: bool) -> Any:
    # a contiguous copy of a strided view of the workspace
    columns = _buffer(shape, workspace, reuse)
    columns[...] = as_strided(workspace, shape, strides)
    return columns


def _buffer(shape: tuple[int, ...], like: Any, reuse: bool) -> Any:
    # the reused scratch buffer, or memory of its own for columns that are kept
    if reuse:
        return scratch(shape, like.dtype, like=like)
    return get_array_module(like).empty(shape, dtype=like.dtype)


def col2im(
    columns: Any,
    out: Any,
    order: str,
    kernel_size: Pair,
    stride: Pair,
    dilation: Pair,
    padding: tuple[Pair, Pair],
) -> None:
    """The adjoint of ``im2col``: columns (C, KH, KW, ...M axes...) -> ``out``, an
    (N, C, H, W) array in which every input position gets the sum of the columns that
    read it. What fell on the padding is dropped: each tap's slice is clipped to the
    input, a loop over the KH·KW taps only."""
    target = _nchw_to(out, order)  # (C, ...order...), a view
    taps = []
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            tap = _clipped_tap(
                columns.shape[3:], target.shape[1:], order, (i, j), stride, dilation, padding
            )
            if tap is not None:
                taps.append((columns[:, i, j][tap[0]], tap[1]))
    whole = (slice(None),) + tuple(slice(0, size, 1) for size in target.shape[1:])
    overlapping = any(
        step < extent * dil - dil + 1 for step, extent, dil in zip(stride, kernel_size, dilation)
    )
    # the first tap that covers every input position once is written, not added:
    # that saves filling ``out`` with zeros and one pass over it
    first = next((k for k, (_, where) in enumerate(taps) if where == whole), None)
    if first is None:
        target[...] = 0
    else:
        target[...] = taps.pop(first)[0]
    for values, where in taps:
        if overlapping or first is not None:
            target[where] += values
        else:  # windows that never overlap write each position once
            target[where] = values


def _clipped_tap(
    positions: tuple[int, ...],
    size: tuple[int, ...],
    order: str,
    tap: Pair,
    stride: Pair,
    dilation: Pair,
    padding: tuple[Pair, Pair],
) -> tuple[tuple, tuple] | None:
    # (the output positions of kernel tap (i, j) whose input lies inside the input,
    # the input positions they read), as index tuples; None if there are none
    source, destination = [slice(None)], [slice(None)]
    for axis, extent, limit in zip(order, positions, size):
        if axis == "n":
            source.append(slice(None))
            destination.append(slice(0, limit, 1))
            continue
        k = "hw".index(axis)
        step, offset = stride[k], tap[k] * dilation[k] - padding[k][0]
        inside = _inside(extent, limit, step, offset)
        if not inside:
            return None
        source.append(slice(inside.start, inside.stop))
        last = (inside.stop - 1) * step + offset
        destination.append(slice(inside.start * step + offset, last + 1, step))
    return tuple(source), tuple(destination)


def _inside(count: int, size: int, step: int, offset: int) -> range:
    # the outputs o < count whose input o·step + offset lies inside [0, size)
    first = max(0, -(offset // step))
    return range(first, max(first, min(count, (size - 1 - offset) // step + 1)))


# -- the columns of a convolution, one matrix per output row ---------------------------


def window_order(order: str, by_rows: bool) -> str:
    """The order of the output positions of ``conv_windows`` of a workspace in ``order``.

    From ``row_columns`` the output row is outermost, then its L positions, (OW, N) in
    "hwn" and (N, OW) in "nhw"; from ``im2col`` the positions keep the workspace's order.
    """
    if order == "hwn" or not by_rows:
        return order
    return "hnw"


def row_columns(
    workspace: Any,
    order: str,
    groups: int,
    padding: tuple[Pair, Pair],
    kernel_w: int,
    stride_w: int,
    dilation_w: int,
    out_w: int,
    reuse_buffer: bool = True,
) -> Any:
    """A workspace -> contiguous (G, HP, C/G, KW, ...L axes...): every padded input
    row's columns over the KW kernel columns only, KH times fewer than ``im2col``'s,
    with ``padding`` = ((top, bottom), (left, right)) still to add.

    Element [g, h, c, j, ...] is input channel g·C/G + c of padded row h under kernel
    column j for one of the L = OW·N output positions of a row, (OW, N) in "hwn" and
    (N, OW) in "nhw". What falls in the padding is zeroed where it lands, never copied,
    so the workspace needs no padding of its own: it may be x itself, seen in
    ``order``. In the scratch buffer unless ``reuse_buffer`` is False.
    """
    (top, bottom), (left, _) = padding
    strides = dict(zip("c" + order, workspace.strides))
    sizes = dict(zip("c" + order, workspace.shape))
    channels = sizes["c"] // groups
    along_row = [axis for axis in order if axis != "h"]  # the L axes: "wn" or "nw"
    extent = {"w": out_w, "n": sizes["n"]}
    shape = (groups, sizes["h"] + top + bottom, channels, kernel_w, *map(extent.get, along_row))
    rows = _buffer(shape, workspace, reuse_buffer)
    inside = range(max(-top, 0), sizes["h"] - max(-bottom, 0))  # negative padding crops
    first = max(top, 0)
    rows[:, :first] = 0
    rows[:, first + len(inside) :] = 0
    target = rows[:, first : first + len(inside)]  # (G, rows, C/G, KW, ...L axes...)
    w_axis = 4 + along_row.index("w")
    step = {"w": strides["w"] * stride_w, "n": strides["n"]}
    view_strides = (
        channels * strides["c"],
        strides["h"],
        strides["c"],
        strides["w"] * dilation_w,
        *map(step.get, along_row),
    )

    def copy(taps: range, columns: range) -> None:
        # the input under kernel columns ``taps`` at output columns ``columns``: output
        # column ow reads input column ow·SW + j·DW - left under kernel column j
        if not taps or not columns:
            return
        where = {"h": inside.start, "w": columns.start * stride_w + taps.start * dilation_w - left}
        origin = workspace[(slice(None), *(slice(where.get(axis, 0), None) for axis in order))]
        count = {"w": len(columns), "n": sizes["n"]}
        view_shape = (groups, len(inside), channels, len(taps), *map(count.get, along_row))
        part = (slice(taps.start, taps.stop), slice(columns.start, columns.stop))
        target[_index(w_axis, part)] = as_strided(origin, view_shape, view_strides)

    # the output columns where kernel column j reads inside the input are a range
    inner = [_inside(out_w, sizes["w"], stride_w, j * dilation_w - left) for j in range(kernel_w)]
    # one copy for the output columns where they all do, so that the KW copies of an
    # input row follow one another; then each kernel column's edges
    common = range(max(part.start for part in inner), min(part.stop for part in inner))
    copy(range(kernel_w), common)
    for j, part in enumerate(inner):
        done = common or range(part.stop, part.stop)
        copy(range(j, j + 1), range(part.start, done.start))
        copy(range(j, j + 1), range(done.stop, part.stop))
        if part.start > 0:
            target[_index(w_axis, (slice(j, j + 1), slice(None, part.start)))] = 0
        if part.stop < out_w:
            target[_index(w_axis, (slice(j, j + 1), slice(part.stop, None)))] = 0
    return rows


def _index(w_axis: int, part: tuple[slice, slice]) -> tuple:
    # rows[:, :, :, taps, ..., columns, ...]: kernel columns on axis 3, output columns
    # on ``w_axis``
    taps, columns = part
    index = [slice(None)] * (w_axis + 1)
    index[3], index[w_axis] = taps, columns
    return tuple(index)


def conv_windows(
    x: Any,
    order: str,
    groups: int,
    kernel_size: Pair,
    stride: Pair,
    dilation: Pair,
    padding: tuple[Pair, Pair],
    out_size: Pair,
    by_rows: bool,
    reuse_buffer: bool = True,
) -> Any:
    """The convolution's columns of x (N, C, H, W) as a (G, B, K, L) stack of matrices:
    K = KH·C/G·KW taps ordered (i, c, j) by L positions, for B blocks of positions.

    ``by_rows`` (only with stride and dilation 1 along H): each output row is a block
    (B = OH). Its columns are the KH input rows oh..oh+KH-1 of ``row_columns``, whose
    C/G·KW columns follow one another L apart, so together they are one (K, L) matrix
    with a row stride of L: a view. The views of consecutive output rows overlap, and
    nothing is copied KH times. Otherwise one block holds every position (B = 1) of
    the ``im2col`` columns of the padded workspace.
    """
    if not by_rows:
        # split by phase, so that a strided kernel column's copies run along OW·N; but
        # not an input that already is a view-only workspace (batch-inner, unpadded):
        # copying it into phases costs more than the shorter runs save
        in_place = stored_batch_inner(x) and padding == ((0, 0), (0, 0))
        if order == "hwn" and stride[1] > 1 and min(padding[1]) >= 0 and not in_place:
            workspace = phase_workspace(x, padding, stride[1])
        else:
            workspace = to_workspace(x, padding, order)
        columns = im2col(
            workspace, order, groups, kernel_size, stride, dilation, out_size, reuse_buffer
        )
        return columns.reshape(groups, 1, math.prod(columns.shape[1:4]), -1)
    vertical, horizontal = padding
    if order == "hwn" and stored_batch_inner(x):
        # x itself is the workspace, and nothing is copied: the row columns zero what
        # falls in the W padding, runs of N elements at the ends of each row
        workspace = _nchw_to(x, order)
    else:
        # copied into a workspace (to put the batch innermost, or because in the "nhw"
        # order a padded copy measured faster), x takes its W padding along
        workspace = to_workspace(x, ((0, 0), horizontal), order)
        horizontal = (0, 0)
    rows = row_columns(
        workspace,
        order,
        groups,
        (vertical, horizontal),
        kernel_size[1],
        stride[1],
        dilation[1],
        out_size[1],
        reuse_buffer,
    )
    taps = kernel_size[0] * math.prod(rows.shape[2:4])
    positions = math.prod(rows.shape[4:])
    shape = (groups, out_size[0], taps, positions)
    return as_strided(rows, shape, (*rows.strides[:2], positions * rows.itemsize, rows.itemsize))
