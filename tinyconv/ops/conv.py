"""2-D convolution and transposed convolution, forward and backward by hand.

Notation: N images, C input channels, O output channels, G groups (each group maps
C/G input channels to O/G output channels), H×W input, KH×KW kernel, OH×OW output,
stride (SH, SW), dilation (DH, DW), padding ((top, bottom), (left, right)),
M = N·OH·OW output positions.

A convolution (a cross-correlation, as in every deep-learning library) is

    y[n, o, oh, ow] = b[o] + sum_{c, i, j} W[o, c, i, j] · x[n, c, h, w],
    h = oh·SH + i·DH - top,  w = ow·SW + j·DW - left

which is linear in x and in W, so each gradient is the adjoint of one of them:

- dL/dW[o, c, i, j] = sum_{n, oh, ow} dL/dy[n, o, oh, ow] · x[n, c, ...]: a matrix
  product of the output gradient with the same im2col columns the forward used;
- dL/dx = the adjoint of x -> y: every output gradient is spread back over the window
  it was computed from. That map is the *transposed convolution*, so one function,
  ``conv2d_input_grad``, is both the input gradient of ``Conv2d`` and the forward of
  ``ConvTranspose2d``; ``conv2d_forward`` is in turn the input gradient of
  ``ConvTranspose2d``.

The big temporary is the column matrix: (C·KH·KW, M) from im2col, or the KH times
smaller row columns with stride 1 along H (see im2col.py). Its size is bounded by a
workspace limit: a larger batch is processed in chunks of images
(``set_workspace_limit``). When the columns are small (LeNet's layers), the forward
keeps them for the weight gradient instead of building them twice.

Results are laid out in memory as the workspace order puts positions: in the
batch-inner order a (N, O, OH, OW) result is a strided view of an (O, OH, OW, N)
array. Pooling and elementwise ops keep that layout, so the next layer reads it as its
workspace without a transpose, and the gradients flow back in it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tinyconv.autograd.function import Function
from tinyconv.backend import get_array_module, release_scratch, scratch
from tinyconv.ops.im2col import (
    batch_inner,
    col2im,
    conv_windows,
    im2col,
    layout_shape,
    positions_from_layout,
    positions_to_layout,
    stored_batch_inner,
    to_workspace,
    window_order,
)
from tinyconv.ops.sizes import conv_output_size

__all__ = [
    "Conv2d",
    "ConvTranspose2d",
    "conv2d_forward",
    "conv2d_input_grad",
    "conv2d_weight_grad",
    "get_workspace_limit",
    "set_workspace_limit",
]

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]

_workspace_limit = 256 * 2**20


def set_workspace_limit(nbytes: int) -> None:
    """Cap the im2col column buffer at ``nbytes`` (default 256 MiB) by chunking the batch.

    One image's columns are always allowed, whatever the limit.
    """
    global _workspace_limit
    if not isinstance(nbytes, int) or nbytes < 1:
        raise ValueError(f"nbytes={nbytes!r} must be a positive int")
    _workspace_limit = nbytes
    release_scratch()  # a buffer kept under the old limit may be larger than the new one


def get_workspace_limit() -> int:
    """The column buffer's size cap in bytes."""
    return _workspace_limit


# Columns of about this size are built and consumed while they are still in the
# processor's cache: im2col's columns for (N=32, 64->64, 32x32, k3) were ~16% faster in
# 8 MiB chunks than in one 75 MiB buffer. The workspace limit stays the hard cap.
_CACHE_FRIENDLY_CHUNK = 8 * 2**20


# In the batch-inner order the whole batch's positions are one contiguous block of every
# output channel, which the GEMM can write in place; that is worth more than cache-sized
# chunks (LeNet's first layer: 0.8× the time), so a batch takes one chunk up to this size.
_BATCH_INNER_CHUNK = 32 * 2**20


def _batch_chunks(batch: int, bytes_per_image: int, order: str) -> list[tuple[int, int]]:
    if batch == 0:
        return []
    chunk = _BATCH_INNER_CHUNK if order == "hwn" else _CACHE_FRIENDLY_CHUNK
    budget = min(_workspace_limit, chunk)
    most = max(1, budget // max(bytes_per_image, 1))
    # chunks of equal size: 128 images as 64 + 64 rather than 107 + 21
    images = math.ceil(batch / math.ceil(batch / most))
    return [(start, min(start + images, batch)) for start in range(0, batch, images)]


# The weight gradient reads the same columns as the forward. Up to this size they are
# kept from the forward rather than built again; above it, memory matters more.
_KEEP_COLUMNS_BYTES = 32 * 2**20


def _by_rows(x: Any, stride: Pair, dilation: Pair) -> bool:
    """Whether ``conv_windows`` reads x's columns as views of its row columns.

    With stride 1 along H, output rows oh and oh + 1 read KH - 1 of the same input rows,
    so im2col copies every input row KH times; the row columns copy it once. On the
    GPU, CuPy's matmul copies strided views into contiguous memory, which would be
    im2col's columns again, so there im2col builds them directly.
    """
    on_cpu = get_array_module(x).__name__ == "numpy"
    return on_cpu and stride[0] == 1 and dilation[0] == 1


def _output_size(x: Any, kernel_size: Pair, stride: Pair, padding: Padding, dilation: Pair) -> Pair:
    return tuple(
        conv_output_size(*sizes)
        for sizes in zip(x.shape[2:], kernel_size, stride, padding, dilation)
    )


def _column_bytes(
    x: Any, kernel_size: Pair, padding: Padding, out_size: Pair, by_rows: bool
) -> int:
    """Bytes of one image's columns in ``conv_windows``: C·KW rows over the OW output
    columns of every padded input row (``row_columns``), or C·KH·KW rows over the
    OH·OW output positions (``im2col``)."""
    _, channels, height, _ = x.shape
    if by_rows:
        rows = channels * kernel_size[1] * (height + sum(padding[0])) * out_size[1]
        return rows * x.itemsize
    return channels * kernel_size[0] * kernel_size[1] * out_size[0] * out_size[1] * x.itemsize


def _keep_columns(x: Any, weight: Any, stride: Pair, padding: Padding, dilation: Pair) -> bool:
    column_bytes, _, _ = _columns_order(x, weight.shape[2:], stride, padding, dilation)
    return x.shape[0] * column_bytes <= _KEEP_COLUMNS_BYTES


# With fewer images, the batch-inner order's transposes copy runs too short to pay.
_FEWEST_IMAGES_INNERMOST = 8


def _order(
    batch: int, column_bytes: int, stride: Pair, by_rows: bool = False, out_w: int = 0
) -> str:
    """The workspace order (see im2col.py) for a batch whose columns take ``column_bytes``
    per image, ``out_w`` output columns wide.

    With the batch innermost, a stride-1 kernel's column copies run along OW·N elements
    rather than OW. For im2col's columns that pays for the transposes into that order
    when a cache-sized chunk holds many images (LeNet's layers: 25-40% faster), not
    when it holds a few large ones (a 64-channel 32×32 layer: 5-20% slower). The row
    columns are KH times fewer; when the whole batch's fit in one chunk, the products
    land in the output in place, and the order pays there too (that 32×32 layer:
    0.8× the time), unless the batch is so small that the transposes copy runs of a
    few elements (2 images of 16×128×128: 1.2× the time).

    A strided kernel's copies run along N contiguous elements batch-inner, along OW
    elements SW apart otherwise. With the whole batch in one chunk, the longer runs
    win: a 64->128 layer on 32 images of 32×32 with stride 2 took 0.95× the time
    batch-inner, a transposed 64->32 one with stride 2 (im2col of dL/dy) 0.82×, but
    16 images of 32×64×64 with stride 2 took 1.1×.
    """
    whole_batch = batch * column_bytes <= min(_BATCH_INNER_CHUNK, _workspace_limit)
    if stride != (1, 1):
        longer = batch >= max(out_w, _FEWEST_IMAGES_INNERMOST)
        return "hwn" if whole_batch and longer else "nhw"
    if by_rows and whole_batch and batch >= _FEWEST_IMAGES_INNERMOST:
        return "hwn"
    images = min(batch, _CACHE_FRIENDLY_CHUNK // max(column_bytes, 1))
    return "hwn" if images >= 32 else "nhw"


def _columns_order(
    x: Any,
    kernel_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    out_size: Pair | None = None,
) -> tuple[int, bool, str]:
    """How ``conv2d_forward`` and ``conv2d_weight_grad`` lay out the columns of x: (bytes
    of one image's columns, whether they are row columns, the workspace order)."""
    if out_size is None:
        out_size = _output_size(x, kernel_size, stride, padding, dilation)
    by_rows = _by_rows(x, stride, dilation)
    column_bytes = _column_bytes(x, kernel_size, padding, out_size, by_rows)
    return column_bytes, by_rows, _order(x.shape[0], column_bytes, stride, by_rows, out_size[1])


def _columns_and_order(
    batch: int, column_rows: int, positions: Pair, itemsize: int, stride: Pair
) -> tuple[int, str]:
    """(bytes of one image's columns, the workspace order) for a column matrix of
    ``column_rows`` rows over ``positions`` (rows, columns) per image."""
    column_bytes = column_rows * positions[0] * positions[1] * itemsize
    return column_bytes, _order(batch, column_bytes, stride, out_w=positions[1])


def _empty_output(xp: Any, order: str, shape: tuple[int, ...], dtype: Any) -> Any:
    # An (N, C, H, W) result laid out in memory as the workspace order puts its positions,
    # so that writing into it is no transpose. With "hwn" it is a strided (N, C, H, W)
    # view of a (C, H, W, N) array: the next layer's workspace in that order is then
    # a view too, and its gradient comes back in the same layout.
    if order == "nhw":
        return xp.empty(shape, dtype=dtype)
    batch, channels, height, width = shape
    return xp.empty((channels, height, width, batch), dtype=dtype).transpose(3, 0, 1, 2)


def _by_group(weight: Any, groups: int) -> Any:
    # (O, C/G, KH, KW) -> (G, O/G, C/G, KH, KW): each group's kernels on their own axis
    return weight.reshape(groups, weight.shape[0] // groups, *weight.shape[1:])


def _kernel_matrix(weight: Any, groups: int) -> Any:
    # (O, C/G, KH, KW) -> (G, 1, O/G, KH·C/G·KW): columns ordered (i, c, j) as
    # conv_windows' rows; the 1 broadcasts over its blocks of positions
    kernel = _by_group(weight, groups).transpose(0, 1, 3, 2, 4)
    return kernel.reshape(groups, 1, weight.shape[0] // groups, -1)


def _by_block(positions: Any, groups: int, blocks: int) -> Any:
    # (O, M) positions -> a (G, B, O/G, M/B) view, one matrix per block of positions
    channels = positions.shape[0]
    return positions.reshape(groups, channels // groups, blocks, -1).transpose(0, 2, 1, 3)


def conv2d_forward(
    x: Any,
    weight: Any,
    bias: Any,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
    out_size: Pair | None = None,
    kept_columns: list | None = None,
) -> Any:
    """y = conv2d(x, W) + b: (N, C, H, W), (O, C/G, KH, KW), (O,) or None -> (N, O, OH, OW).

    One ``matmul`` of the kernel matrix with every block of ``conv_windows``.
    ``out_size`` may ask for fewer rows/columns than fit (a transposed convolution's
    backward needs exactly its input's size back). Given a list ``kept_columns``, each
    batch chunk's columns are built in memory of their own and appended to it as
    (start, stop, order, windows), for ``conv2d_weight_grad`` to use again.
    """
    xp = get_array_module(x)
    batch = x.shape[0]
    out_channels, _, kernel_h, kernel_w = weight.shape
    if out_size is None:
        out_size = _output_size(x, (kernel_h, kernel_w), stride, padding, dilation)
    column_bytes, by_rows, order = _columns_order(
        x, (kernel_h, kernel_w), stride, padding, dilation, out_size
    )
    kernel_matrix = _kernel_matrix(weight, groups)  # (G, 1, O/G, K)
    y = _empty_output(xp, order, (batch, out_channels, *out_size), x.dtype)
    for start, stop in _batch_chunks(batch, column_bytes, order):
        windows = conv_windows(
            x[start:stop],
            order,
            groups,
            (kernel_h, kernel_w),
            stride,
            dilation,
            padding,
            out_size,
            by_rows,
            reuse_buffer=kept_columns is None,
        )  # (G, B, K, L)
        if kept_columns is not None:
            kept_columns.append((start, stop, order, windows))
        in_place = order == "hwn" and stop - start == batch
        if in_place:  # y is stored (O, OH, OW, N), as the positions come
            product = y.transpose(1, 2, 3, 0).reshape(out_channels, -1)
        else:
            blocks, positions = windows.shape[1], windows.shape[3]
            product = xp.empty((out_channels, blocks * positions), dtype=x.dtype)
        # (G, 1, O/G, K) @ (G, B, K, L) -> (G, B, O/G, L): every block in one call
        xp.matmul(kernel_matrix, windows, out=_by_block(product, groups, windows.shape[1]))
        if in_place:
            if bias is not None:
                y += bias.reshape(1, -1, 1, 1)
        else:
            positions_order = window_order(order, by_rows)
            product = positions_from_layout(product, positions_order, out_size, stop - start)
            if bias is None:
                y[start:stop] = product
            else:  # the bias rides along with the copy into y
                xp.add(product, bias.reshape(1, -1, 1, 1), out=y[start:stop])
    return y


def conv2d_weight_grad(
    x: Any,
    grad_out: Any,
    kernel_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
    kept_columns: list | None = None,
) -> Any:
    """dL/dW = sum over positions of dL/dy · columns(x): -> (O, C/G, KH, KW).

    ``kept_columns``, the list ``conv2d_forward`` filled for this x, saves building
    the columns again. They are read in the order they were laid out in, which the
    workspace limit in force now may no longer choose.
    """
    xp = get_array_module(x)
    batch, channels, _, _ = x.shape
    _, out_channels, out_h, out_w = grad_out.shape
    column_bytes, by_rows, order = _columns_order(
        x, kernel_size, stride, padding, dilation, (out_h, out_w)
    )
    grad_weight = None
    if kept_columns is None:
        chunks = _batch_chunks(batch, column_bytes, order)
        chunks = [(start, stop, order, None) for start, stop in chunks]
    else:
        chunks = kept_columns
    for start, stop, order, windows in chunks:
        if windows is None:
            windows = conv_windows(
                x[start:stop],
                order,
                groups,
                kernel_size,
                stride,
                dilation,
                padding,
                (out_h, out_w),
                by_rows,
            )
        grad = positions_to_layout(grad_out[start:stop], window_order(order, by_rows))  # (O, M)
        grad = _by_block(grad, groups, windows.shape[1]).transpose(0, 1, 3, 2)  # (G, B, L, O/G)
        # (G, B, K, L) @ (G, B, L, O/G) -> (G, B, K, O/G), summed over the blocks; this
        # operand order is the faster one for BLAS
        product = (windows @ grad).sum(axis=1)
        grad_weight = product if grad_weight is None else grad_weight + product
    if grad_weight is None:  # an empty batch
        return xp.zeros((out_channels, channels // groups, *kernel_size), dtype=x.dtype)
    # (G, KH·C/G·KW, O/G) -> (O, C/G, KH, KW)
    kernel_h, kernel_w = kernel_size
    grad_weight = grad_weight.reshape(groups, kernel_h, channels // groups, kernel_w, -1)
    return grad_weight.transpose(0, 4, 2, 1, 3).reshape(out_channels, -1, kernel_h, kernel_w)


def conv2d_input_grad(
    grad_out: Any,
    weight: Any,
    input_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
) -> Any:
    """dL/dx of ``conv2d_forward``, which is also the transposed convolution of
    ``grad_out``: (N, O, OH, OW), (O, C/G, KH, KW) -> (N, C, H, W).

    The first of these that applies:

    - stride 1 and C/G >= 16: a convolution of dL/dy (``_input_grad_as_convolution``);
    - stride and dilation 1 along H, on the CPU: along H first, then along W
      (``_input_grad_by_row_windows``);
    - stride 1 along W: along W first, then along H (``_input_grad_by_width_columns``);
    - each kernel size a multiple of its stride, no dilation: one stride-1 convolution
      for every phase of the input's pixels at once (``_input_grad_by_sub_pixels``);
    - no dilation along W: that once per phase of the input's columns
      (``_input_grad_by_column_phases``);
    - W^T @ dL/dy and a col2im over all KH·KW taps (``_input_grad_by_columns``).

    Each way takes the arguments of this function.
    """
    way = _input_grad_way(grad_out, weight, stride, dilation)
    return way(grad_out, weight, input_size, stride, padding, dilation, groups)


def _input_grad_way(grad_out: Any, weight: Any, stride: Pair, dilation: Pair) -> Callable:
    # the first way in ``conv2d_input_grad``'s list that applies
    kernel_h, kernel_w = weight.shape[2:]
    if stride == (1, 1) and weight.shape[1] >= _CHANNELS_FOR_A_CONVOLUTION:
        return _input_grad_as_convolution
    if _by_rows(grad_out, stride, dilation):
        return _input_grad_by_row_windows
    if stride[1] == 1:
        return _input_grad_by_width_columns
    if dilation == (1, 1) and kernel_h % stride[0] == 0 and kernel_w % stride[1] == 0:
        return _input_grad_by_sub_pixels
    if dilation[1] == 1:
        return _input_grad_by_column_phases
    return _input_grad_by_columns


def _input_grad_by_columns(
    grad_out: Any,
    weight: Any,
    input_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
) -> Any:
    """``conv2d_input_grad`` in general: dL/dcolumns = W^T @ dL/dy, then a col2im over
    all KH·KW taps."""
    xp = get_array_module(grad_out)
    batch, out_channels, out_h, out_w = grad_out.shape
    _, group_channels, kernel_h, kernel_w = weight.shape
    channels = group_channels * groups
    height, width = input_size
    column_bytes, order = _columns_and_order(
        batch, channels * kernel_h * kernel_w, (out_h, out_w), grad_out.itemsize, stride
    )
    kernel_matrix = weight.reshape(groups, out_channels // groups, -1)  # (G, O/G, C/G·KH·KW)
    grad_x = _empty_output(xp, order, (batch, channels, height, width), grad_out.dtype)
    for start, stop in _batch_chunks(batch, column_bytes, order):
        images = stop - start
        grad = positions_to_layout(grad_out[start:stop], order)
        grad = grad.reshape(groups, out_channels // groups, -1)  # (G, O/G, M)
        # dL/dcolumns = W^T @ dL/dy: (G, C/G·KH·KW, O/G) @ (G, O/G, M) -> (G, C/G·KH·KW, M)
        grad_columns = scratch((groups, kernel_matrix.shape[2], grad.shape[2]), grad.dtype, grad)
        xp.matmul(kernel_matrix.transpose(0, 2, 1), grad, out=grad_columns)
        grad_columns = grad_columns.reshape(
            channels, kernel_h, kernel_w, *layout_shape(order, images, (out_h, out_w))
        )
        col2im(
            grad_columns, grad_x[start:stop], order, (kernel_h, kernel_w), stride, dilation, padding
        )
    return grad_x


# With this many input channels per group, a stride-1 convolution's input gradient is
# computed as a convolution (one matrix product per row with C/G rows, no col2im); with
# fewer, those products are too thin to run fast and ``_input_grad_by_row_windows``,
# whose products have C/G·KW rows, wins (LeNet's second layer: 3× faster that way).
_CHANNELS_FOR_A_CONVOLUTION = 16


def _input_grad_as_convolution(
    grad_out: Any,
    weight: Any,
    input_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
) -> Any:
    """``conv2d_input_grad`` with stride 1 (``stride`` is (1, 1)): a convolution of dL/dy
    with the kernel flipped in H and W and its input and output channels swapped.

    dL/dx[c, h, w] = sum over o, i, j of W[o, c, i, j] · dL/dy[o, h + top - i·DH, ...]:
    with i' = KH-1-i that reads dL/dy at h + i'·DH - (DH·(KH-1) - top), a correlation
    with padding DH·(KH-1) - top on top (along W likewise); the padding at the bottom
    is whatever reaches row H - 1, which a transposed convolution's output_padding may
    put past the other side's.
    """
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h, out_w = grad_out.shape[2:]
    height, width = input_size
    (top, _), (left, _) = padding
    # (O, C/G, KH, KW) -> (C, O/G, KH, KW), flipped: group g's C/G rows see its O/G
    flipped = _by_group(weight[:, :, ::-1, ::-1], groups).transpose(0, 2, 1, 3, 4)
    flipped = flipped.reshape(-1, out_channels // groups, kernel_h, kernel_w)
    reach = (dilation[0] * (kernel_h - 1), dilation[1] * (kernel_w - 1))
    flipped_padding = (
        (reach[0] - top, height - out_h + top),
        (reach[1] - left, width - out_w + left),
    )
    return conv2d_forward(
        grad_out, flipped, None, (1, 1), flipped_padding, dilation, groups, input_size
    )


def _input_grad_by_row_windows(
    grad_out: Any,
    weight: Any,
    input_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
) -> Any:
    """``conv2d_input_grad`` with stride and dilation 1 along H: first along H, as a
    convolution of dL/dy, then along W, as a col2im.

    dL/dx[c, h, w] = sum over o, i, j of W[o, c, i, j] · dL/dy[o, h + top - i, ow],
    w = ow·SW + j·DW - left. With the kernel flipped along H (i' = KH-1-i) and dL/dy
    given KH-1-top zero rows on top, the sum over (i', o) for input row h reads rows
    h..h+KH-1: one matrix per input row, views of dL/dy's rows as in the forward
    (``conv_windows``), one matmul for all of them. That gives (C·KW, L) per input row,
    every kernel column's part at the L = OW·N output positions of the row; a col2im
    over the KW kernel columns adds each where it belongs along W. Nothing the size of
    the im2col columns is built.
    """
    xp = get_array_module(grad_out)
    batch, out_channels, out_h, out_w = grad_out.shape
    _, group_channels, kernel_h, kernel_w = weight.shape
    channels = group_channels * groups
    height, _ = input_size
    (top, _), horizontal = padding
    # (O, C/G, KH, KW) -> (G, 1, C/G·KW, KH·O/G): rows (c, j), columns (i', o)
    kernel_matrix = _by_group(weight[:, :, ::-1], groups).transpose(0, 2, 4, 3, 1)
    kernel_matrix = kernel_matrix.reshape(groups, 1, -1, kernel_h * (out_channels // groups))
    # per image: dL/dy's padded rows and the products
    row_bytes = (out_channels * (height + kernel_h) + channels * kernel_w * height) * out_w
    if batch > 1 and stored_batch_inner(grad_out):  # keep the layout it came in
        order = "hwn"
    else:
        order = _order(batch, row_bytes * grad_out.itemsize, (1, 1), by_rows=True)
    positions_order = window_order(order, by_rows=True)
    grad_x = _empty_output(xp, order, (batch, channels, *input_size), grad_out.dtype)
    vertical = (kernel_h - 1 - top, height - out_h + top)  # dL/dy's rows padded
    spans = _rows_by_span(height, kernel_h, out_h, vertical)
    per_tap = out_channels // groups  # the window's rows of one kernel row
    for start, stop in _batch_chunks(batch, row_bytes * grad_out.itemsize, order):
        windows = conv_windows(
            grad_out[start:stop],
            order,
            groups,
            (kernel_h, 1),
            (1, 1),
            (1, 1),
            (vertical, (0, 0)),
            (height, out_w),
            by_rows=True,
        )  # (G, H, KH·O/G, L)
        # stored (G, C/G·KW, H, L), the products are already the col2im's columns; in
        # memory of their own, as the windows they are made from are the scratch buffer
        parts = xp.empty(
            (groups, kernel_matrix.shape[2], height, windows.shape[3]), dtype=grad_x.dtype
        )
        by_row = parts.transpose(0, 2, 1, 3)  # (G, H, C/G·KW, L)
        for (first_tap, stop_tap), rows in spans:
            if first_tap >= stop_tap:  # a window of padding only
                by_row[:, rows] = 0
                continue
            taps = slice(first_tap * per_tap, stop_tap * per_tap)
            xp.matmul(kernel_matrix[..., taps], windows[:, rows, taps], out=by_row[:, rows])
        columns = parts.reshape(
            channels, 1, kernel_w, *layout_shape(positions_order, stop - start, (height, out_w))
        )
        col2im(
            columns,
            grad_x[start:stop],
            positions_order,
            (1, kernel_w),
            (1, stride[1]),
            (1, dilation[1]),
            ((0, 0), horizontal),
        )
    return grad_x


def _rows_by_span(
    height: int, kernel_h: int, out_h: int, vertical: Pair
) -> list[tuple[Pair, slice]]:
    """The input rows of ``_input_grad_by_row_windows`` grouped by the span of kernel
    rows whose part of the window holds dL/dy rather than padding: ((first, stop), rows).

    Input row h's window is padded rows h..h+KH-1, of which only those holding dL/dy's
    rows count; near the edges the rest are zeros, and their products are skipped (for
    a 5×5 kernel on 10 output rows, 20 of 70). Inner rows share one span, one product.
    """
    top, bottom = vertical
    first_real = max(top, 0)  # padded rows first_real..stop_real hold dL/dy
    stop_real = first_real + out_h - max(-top, 0) - max(-bottom, 0)
    spans: list[tuple[Pair, slice]] = []
    for row in range(height):
        span = (max(0, first_real - row), max(0, min(kernel_h, stop_real - row)))
        if spans and spans[-1][0] == span:
            spans[-1] = (span, slice(spans[-1][1].start, row + 1))
        else:
            spans.append((span, slice(row, row + 1)))
    return spans


def _input_grad_by_width_columns(
    grad_out: Any,
    weight: Any,
    input_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
    out: Any = None,
) -> Any:
    """``conv2d_input_grad`` when the stride along W is 1: half a convolution along W,
    half a col2im along H. Written into ``out`` when given (an (N, C, H, W) view).

    Input row h receives from output row oh through kernel row i when
    h = oh·SH + i·DH - top. Along W nothing is strided, so for each kernel row i the
    sum over output channels and kernel columns j is itself a correlation of dL/dy
    with the W-flipped kernel: columns over the KW taps only (O·KW rows, read from
    dL/dy padded along W), one GEMM for every i at once, then a col2im over the KH
    kernel rows. Its columns are KH times smaller than a full im2col's, and the
    col2im adds KW times fewer slices than one over all KH·KW taps.
    """
    xp = get_array_module(grad_out)
    batch, out_channels, out_h, out_w = grad_out.shape
    _, group_channels, kernel_h, kernel_w = weight.shape
    channels = group_channels * groups
    height, width = input_size
    (top, bottom), (left, _) = padding
    # dL/dy padded along W so that tap j' = KW-1-j of input column w reads output column
    # w - j·DW + left (the right side reaches the last input column, which a transposed
    # convolution's output_padding may put past the padding)
    w_padding = ((0, 0), (dilation[1] * (kernel_w - 1) - left, width - out_w + left))
    # (O, C/G, KH, KW) -> (G, C/G·KH, O/G·KW): rows (c, i), columns (o, j'), flipped in W
    kernel_matrix = _by_group(weight[..., ::-1], groups).transpose(0, 2, 3, 1, 4)
    kernel_matrix = kernel_matrix.reshape(groups, group_channels * kernel_h, -1)
    column_bytes, order = _columns_and_order(
        batch, out_channels * kernel_w, (out_h, width), grad_out.itemsize, (1, 1)
    )
    if out is None:
        out = _empty_output(xp, order, (batch, channels, height, width), grad_out.dtype)
    for start, stop in _batch_chunks(batch, column_bytes, order):
        images = stop - start
        workspace = to_workspace(grad_out[start:stop], w_padding, order)
        # (O, 1, KW, ...(OH, W) positions...) -> (G, O/G·KW, M)
        columns = im2col(
            workspace, order, groups, (1, kernel_w), (1, 1), (1, dilation[1]), (out_h, width)
        )
        columns = columns.reshape(groups, kernel_matrix.shape[2], -1)
        # (G, C/G·KH, O/G·KW) @ (G, O/G·KW, M) -> (G, C/G·KH, M): every kernel row's part
        rows = kernel_matrix @ columns
        rows = rows.reshape(channels, kernel_h, 1, *layout_shape(order, images, (out_h, width)))
        col2im(
            rows,
            out[start:stop],
            order,
            (kernel_h, 1),
            (stride[0], 1),
            (dilation[0], 1),
            ((top, bottom), (0, 0)),
        )
    return out


def _input_grad_by_sub_pixels(
    grad_out: Any,
    weight: Any,
    input_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
) -> Any:
    """``conv2d_input_grad`` when each kernel size is a multiple of its stride and the
    dilation is 1 (``dilation`` is (1, 1)): one stride-1 convolution of dL/dy that
    computes every phase of the input's pixels as channels of its own, then a copy that
    puts each in its place (the *sub-pixel* convolution).

    Input row h receives from output row oh through kernel row i when
    h + top = oh·SH + i. With i = φ + SH·a (φ = i mod SH, a < A = KH/SH), that is
    φ = (h + top) mod SH and oh = p - a, p = (h + top) div SH: the rows of phase φ are
    Z[φ, p] = sum over a of W[φ + SH·a] · dL/dy[p - a], a correlation of dL/dy with
    kernel rows φ, φ + SH, ... in reverse. Every phase reads the same A rows of dL/dy
    for a given p, so all SH·SW phases are one convolution with an A_h×A_w kernel and
    SH·SW·C output channels. It multiplies no zero taps; only the p at the input's
    edges that some phase has no pixel for, at most one row and column, go unused.
    """
    xp = get_array_module(grad_out)
    batch, out_channels, out_h, out_w = grad_out.shape
    _, group_channels, kernel_h, kernel_w = weight.shape
    taps = (kernel_h // stride[0], kernel_w // stride[1])  # A along H and W
    # the p that reach the input: from top div S to (size - 1 + top) div S
    first = tuple(padding[k][0] // stride[k] for k in (0, 1))
    count = tuple((input_size[k] - 1 + padding[k][0]) // stride[k] - first[k] + 1 for k in (0, 1))
    # Z[p] reads dL/dy[p - a] = dL/dy padded with A - 1 - first rows on top (negative
    # crops) at p - first + a', a' = A - 1 - a; the bottom padding makes ``count`` rows
    sub_padding = tuple(
        (taps[k] - 1 - first[k], first[k] + count[k] - (out_h, out_w)[k]) for k in (0, 1)
    )
    # (O, C/G, A_h·SH, A_w·SW) -> (G·SH·SW·C/G, O/G, A_h, A_w): output channels ordered
    # (g, φh, φw, c), the taps a reversed
    sub_weight = weight.reshape(
        groups, out_channels // groups, group_channels, taps[0], stride[0], taps[1], stride[1]
    )
    sub_weight = sub_weight[:, :, :, ::-1, :, ::-1].transpose(0, 4, 6, 2, 1, 3, 5)
    sub_weight = sub_weight.reshape(-1, out_channels // groups, *taps)
    phases = conv2d_forward(grad_out, sub_weight, None, (1, 1), sub_padding, (1, 1), groups, count)
    order = "hwn" if batch > 1 and stored_batch_inner(phases) else "nhw"  # as they came
    # (N, G·SH·SW·C/G, P_h, P_w) -> (N, G, SH, SW, C/G, P_h, P_w)
    phases = phases.reshape(batch, groups, *stride, group_channels, *count)
    grad_x = _empty_output(xp, order, (batch, groups * group_channels, *input_size), grad_out.dtype)
    # splitting an axis is always a view, so what is written into it lands in grad_x
    by_group = grad_x.reshape(batch, groups, group_channels, *input_size)
    rows, columns = (
        _phase_starts(input_size[k], stride[k], padding[k][0], first[k]) for k in (0, 1)
    )
    for phase_h, row, p_row in rows:
        height = len(range(row, input_size[0], stride[0]))
        for phase_w, column, p_column in columns:
            width = len(range(column, input_size[1], stride[1]))
            by_group[..., row :: stride[0], column :: stride[1]] = phases[
                :, :, phase_h, phase_w, :, p_row : p_row + height, p_column : p_column + width
            ]
    return grad_x


def _phase_starts(size: int, stride: int, before: int, first: int) -> list[tuple[int, int, int]]:
    # along one axis with ``before`` padding: (φ, the phase's first pixel, that pixel's p
    # counted from ``first``) for every phase φ that has pixels
    starts = []
    for phase in range(stride):
        pixel = (phase - before) % stride
        if pixel < size:
            starts.append((phase, pixel, (pixel + before) // stride - first))
    return starts


def _input_grad_by_column_phases(
    grad_out: Any,
    weight: Any,
    input_size: Pair,
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
) -> Any:
    """``conv2d_input_grad`` when the stride along W is SW > 1 and the dilation along W
    is 1: SW problems with stride 1 along W, one per phase of the input's columns.

    Input column w receives from output column ow through kernel column j when
    w + left = ow·SW + j. So the columns with (w + left) mod SW = φ receive only from
    the kernel columns j = φ, φ + SW, φ + 2·SW, ...; with u = (w + left - φ) / SW and
    j = φ + SW·j', that is w-phase index u = ow + j': a stride-1 input gradient with the
    kernel's columns φ::SW, which ``_input_grad_by_width_columns`` computes.
    """
    xp = get_array_module(grad_out)
    batch = grad_out.shape[0]
    channels = weight.shape[1] * groups
    height, width = input_size
    (top, bottom), (left, _) = padding
    # every phase reads all of dL/dy: if they work batch-inner, transpose it once, here
    _, out_channels, out_h, _ = grad_out.shape
    widest = (math.ceil(weight.shape[3] / stride[1]), math.ceil(width / stride[1]))  # KW', W'
    _, order = _columns_and_order(
        batch, out_channels * widest[0], (out_h, widest[1]), grad_out.itemsize, (1, 1)
    )
    if order == "hwn":
        grad_out = batch_inner(grad_out)
    grad_x = _empty_output(xp, order, (batch, channels, height, width), grad_out.dtype)
    for first in range(min(stride[1], width)):  # the first input column of each phase
        phase = (first + left) % stride[1]
        taps = weight[..., phase :: stride[1]]  # (O, C/G, KH, KW'): the columns it meets
        columns = grad_x[..., first :: stride[1]]  # written in place
        if taps.shape[3] == 0:  # no kernel column reaches these inputs
            columns[...] = 0
            continue
        # the phase's input column 0 is phase index u0 = (first + left - φ) / SW
        shift = (first + left - phase) // stride[1]
        _input_grad_by_width_columns(
            grad_out,
            taps,
            columns.shape[2:],
            (stride[0], 1),
            ((top, bottom), (shift, 0)),
            (dilation[0], 1),
            groups,
            out=columns,
        )
    return grad_x


def _shaped_like(x: Any, shape: tuple[int, ...]) -> Any:
    # an array of ``shape`` with x's dtype and device, without memory of its own: enough
    # to ask how the columns of an array not made yet would be laid out
    xp = get_array_module(x)
    return xp.broadcast_to(xp.zeros((), dtype=x.dtype), shape)


class Conv2d(Function):
    """y = conv2d(x, W) + b. Options: stride, padding ((top, bottom), (left, right)),
    dilation (pairs) and groups, already checked by ``F.conv2d``."""

    def forward(self, x, weight, bias, *, stride, padding, dilation, groups):
        # (N, C, H, W), (O, C/G, KH, KW), (O,) -> (N, O, OH, OW)
        self.options = (stride, padding, dilation, groups)
        needs_weight = bool(self.needs_input_grad) and self.needs_input_grad[1]
        keep = needs_weight and _keep_columns(x, weight, stride, padding, dilation)
        kept = [] if keep else None
        y = conv2d_forward(x, weight, bias, stride, padding, dilation, groups, kept_columns=kept)
        # the chunks' columns travel as saved arrays, freed with them after backward
        self.chunks = [chunk for *chunk, _ in kept or ()]  # (start, stop, order)
        self.save_for_backward(x, weight, *(columns for *_, columns in kept or ()))
        return y

    def backward(self, grad_out):
        x, weight, *columns = self.saved_arrays
        kept = [(*chunk, part) for chunk, part in zip(self.chunks, columns)] or None
        stride, padding, dilation, groups = self.options
        needs_x, needs_weight, needs_bias = self.needs_input_grad
        grad_x = grad_weight = grad_bias = None
        if kept:  # the columns' order, even if the workspace limit changed since
            order = kept[0][2]
        else:  # as the forward chose, or would have
            _, _, order = _columns_order(
                x, weight.shape[2:], stride, padding, dilation, grad_out.shape[2:]
            )
        if order == "hwn":
            # both gradients read dL/dy with the batch innermost: one transpose, shared
            grad_out = batch_inner(grad_out)
        if needs_x:
            # dL/dx = conv_transpose2d(dL/dy, W): the adjoint of a strided correlation
            grad_x = conv2d_input_grad(
                grad_out, weight, x.shape[2:], stride, padding, dilation, groups
            )
        if needs_weight:
            grad_weight = conv2d_weight_grad(
                x, grad_out, weight.shape[2:], stride, padding, dilation, groups, kept
            )
        if needs_bias:
            grad_bias = grad_out.sum(axis=(0, 2, 3))
        return grad_x, grad_weight, grad_bias


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, W) + b, the adjoint of ``Conv2d`` in x.

    W is (C_in, C_out/G, KH, KW): exactly the weight of the convolution it is the
    adjoint of, whose input has C_out channels and whose output has C_in. Options:
    stride, padding ((top, bottom), (left, right)), dilation, groups and ``out_size``
    (the output's H×W, which output_padding enlarges).
    """

    def forward(self, x, weight, bias, *, stride, padding, dilation, groups, out_size):
        # (N, C_in, H, W), (C_in, C_out/G, KH, KW), (C_out,) -> (N, C_out, OH, OW)
        given = x
        needs_weight = bool(self.needs_input_grad) and self.needs_input_grad[1]
        if needs_weight:
            # dL/dy, whose columns the weight gradient reads with x's values
            grad_like = _shaped_like(x, (x.shape[0], weight.shape[1] * groups, *out_size))
            kernel_size = weight.shape[2:]
            _, _, order = _columns_order(
                grad_like, kernel_size, stride, padding, dilation, x.shape[2:]
            )
            if order == "hwn":
                # that order reads x with the batch innermost: x is transposed once,
                # here, and the forward's columns read it so too
                x = batch_inner(x)
        self.save_for_backward(x, weight, computed_from=(given,))
        self.options = (stride, padding, dilation, groups)
        y = conv2d_input_grad(x, weight, out_size, stride, padding, dilation, groups)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        return y

    def backward(self, grad_out):
        x, weight = self.saved_arrays
        stride, padding, dilation, groups = self.options
        needs_x, needs_weight, needs_bias = self.needs_input_grad
        grad_x = grad_weight = grad_bias = None
        # both gradients read the columns of dL/dy: built once when they are small
        keep = needs_x and needs_weight
        keep = keep and _keep_columns(grad_out, weight, stride, padding, dilation)
        kept = [] if keep else None
        if needs_x:
            # the adjoint of the adjoint: an ordinary convolution of dL/dy
            grad_x = conv2d_forward(
                grad_out, weight, None, stride, padding, dilation, groups, x.shape[2:], kept
            )
        if needs_weight:
            # the same sum as Conv2d's, with the roles of input and output swapped
            grad_weight = conv2d_weight_grad(
                grad_out, x, weight.shape[2:], stride, padding, dilation, groups, kept
            )
        if needs_bias:
            grad_bias = grad_out.sum(axis=(0, 2, 3))
        return grad_x, grad_weight, grad_bias
