"""Max and average pooling, fixed-window and adaptive, forward and backward by hand.

Notation: N images, C channels, H×W input, KH×KW window, OH×OW output, stride
(SH, SW), padding (PH, PW) on each side, dilation (DH, DW).

A fixed-window pool reads its input through KH·KW strided slices of a padded copy,
one per window tap (i, j): slice (i, j) holds, for every output (oh, ow), the input at
(oh·SH + i·DH, ow·SW + j·DW). Reducing over taps is then a short loop of whole-array
operations, and the backward spreads the output gradient back through the same
slices (a loop over KH·KW only).

The adaptive pools have windows of varying size, [floor(o·H/OH), ceil((o+1)·H/OH)),
but the window of output (oh, ow) is always a rectangle (row window) × (column
window), so both pools are separable: an average is a matrix product on each side,
``A_h @ x @ A_w^T``, and a maximum is a maximum over columns, then over rows.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy

from tinyconv.autograd.function import Function
from tinyconv.backend import copy_batch_innermost, get_array_module, scatter_add
from tinyconv.ops.sizes import adaptive_pool_windows

__all__ = ["AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "MaxPool2d"]

Pair = tuple[int, int]


def _padded(x: Any, padding: Pair, size: Pair, fill: Any) -> Any:
    # (N, C, H, W) -> (N, C, HP, WP) filled with `fill` around x; HP×WP may exceed H + 2PH
    # when ceil_mode lets the last window run past the padding
    if padding == (0, 0) and size == x.shape[2:]:
        return x
    out = _full_in_layout_of(x, (*x.shape[:2], *size), fill, x.dtype)
    out[:, :, padding[0] : padding[0] + x.shape[2], padding[1] : padding[1] + x.shape[3]] = x
    return out


def _buffer_size(x_shape, kernel, stride, padding, dilation, out_size) -> Pair:
    # enough rows/columns for every window, and for the padded input
    return tuple(
        max(size + 2 * pad, (out - 1) * step + dil * (k - 1) + 1)
        for size, k, step, pad, dil, out in zip(
            x_shape[2:], kernel, stride, padding, dilation, out_size
        )
    )


def _memory_order(array: Any) -> list[int]:
    # the array's axes from the outermost in memory to the innermost
    return sorted(range(array.ndim), key=lambda axis: -array.strides[axis])


def _full_in_layout_of(like: Any, shape: tuple[int, ...], fill: Any, dtype: Any) -> Any:
    # a new array of ``shape`` whose axes lie in memory in the order of ``like``'s: a
    # conv output in the batch-inner layout keeps that layout through the pool
    xp = get_array_module(like)
    order = _memory_order(like)
    stored = xp.full([shape[axis] for axis in order], fill, dtype=dtype)
    return stored.transpose([order.index(axis) for axis in range(len(order))])


def _in_layout_of(array: Any, like: Any) -> Any:
    # ``array`` laid out in memory in the order of ``like`` (an array of the same shape):
    # NumPy's loops over two arrays whose axes lie in different memory orders are 3-8×
    # slower than over two of the same order, so a mismatch is copied away once, up front
    if _memory_order(array) == _memory_order(like):
        return array
    moved = _full_in_layout_of(like, array.shape, 0, array.dtype)
    if array.ndim == 4 and _memory_order(like) == [1, 2, 3, 0]:  # into the batch-inner layout
        copy_batch_innermost(moved.transpose(1, 2, 3, 0), array)
    else:
        moved[...] = array
    return moved


def _tap(offset: int, step: int, count: int) -> slice:
    # positions offset, offset + step, ..., count of them
    return slice(offset, offset + step * (count - 1) + 1, step)


def _first_inside(out: int, step: int, pad: int, dilation: int, xp: Any) -> Any:
    # per output position along one axis: the first tap at or after the input's start
    start = xp.arange(out) * step - pad
    return xp.where(start < 0, (-start + dilation - 1) // dilation, 0)


def _lowest(dtype: Any, xp: Any) -> Any:
    # the value a max pool pads with: -inf, or the smallest integer
    return -xp.inf if xp.dtype(dtype).kind == "f" else xp.iinfo(dtype).min


def _scan(taps, tap_type, x, kernel_size, stride, padding, dilation):
    # (the windows' maxima, which tap holds each) when padding takes part.
    # PyTorch scans a window from its first tap inside the input, starting at -inf,
    # so that tap is the winner of a window with nothing above -inf.
    xp = get_array_module(x)
    (out_h, out_w), kernel_w = taps[0].shape[2:], kernel_size[1]
    first_row = _first_inside(out_h, stride[0], padding[0], dilation[0], xp)
    first_col = _first_inside(out_w, stride[1], padding[1], dilation[1], xp)
    winner = _full_in_layout_of(taps[0], taps[0].shape, 0, tap_type)
    winner[...] = first_row.reshape(-1, 1) * kernel_w + first_col
    best = _full_in_layout_of(taps[0], taps[0].shape, _lowest(x.dtype, xp), x.dtype)
    for tap, window in enumerate(taps):
        # one strided copy, then only whole-array arithmetic: masked writes (copyto
        # with where=) are tens of times slower on a random mask
        window = window.copy(order="K")
        take = (window > best) | xp.isnan(window)
        xp.maximum(best, window, out=best)  # = window where take, else best
        # a window's winner only ever moves to a later tap, so max() updates it
        xp.maximum(winner, take * tap_type(tap), out=winner)
    return best, winner


def _tournament(taps, tap_type):
    # (the windows' maxima, which tap holds each) when every tap is inside the input.
    # PyTorch's scan keeps the later value v when ``v > best or isnan(v)``: the first
    # maximum, or the last NaN. That choice is associative, so it can be made in pairs
    # of neighbours, then pairs of pairs, ...: about half the passes of a scan.
    xp = get_array_module(taps[0])
    # strided reads are slow in NumPy's loops: each tap is copied once, up front
    entries = [(window.copy(order="K"), tap_type(tap)) for tap, window in enumerate(taps)]
    while len(entries) > 1:
        paired = []
        for (first, first_tap), (later, later_tap) in zip(entries[::2], entries[1::2]):
            take = (later > first) | xp.isnan(later)
            # where take: the later tap, else the first; as arithmetic (no masked writes)
            winner = take * (later_tap - first_tap) + first_tap
            paired.append((xp.maximum(first, later), winner.astype(tap_type, copy=False)))
        entries = paired + entries[len(paired) * 2 :]
    best, winner = entries[0]
    if not isinstance(winner, xp.ndarray):  # a 1×1 window: the only tap wins
        best = best.copy()  # never the input itself
        winner = xp.full(best.shape, winner, dtype=tap_type)
    return best, winner


class MaxPool2d(Function):
    """y = the maximum of each window; with ``return_indices``, also its flat index
    h·W + w in the input plane. Padding counts as -inf. Within a window the first
    maximum in row-major order wins, unless the window holds NaN: then the output is
    NaN and the last NaN wins, as in PyTorch (its update rule is ``v > best or isnan(v)``).
    The winner takes the whole gradient of its window."""

    def forward(self, x, *, kernel_size, stride, padding, dilation, out_size, return_indices):
        # (N, C, H, W) -> (N, C, OH, OW), and (N, C, OH, OW) int64 indices
        xp = get_array_module(x)
        (kernel_h, kernel_w), (out_h, out_w) = kernel_size, out_size
        size = _buffer_size(x.shape, kernel_size, stride, padding, dilation, out_size)
        padded = _padded(x, padding, size, _lowest(x.dtype, xp))
        taps = [
            padded[
                :,
                :,
                _tap(i * dilation[0], stride[0], out_h),
                _tap(j * dilation[1], stride[1], out_w),
            ]
            for i in range(kernel_h)
            for j in range(kernel_w)
        ]
        self.context = (x.shape, kernel_size, stride, padding, dilation, size)
        if not (return_indices or any(self.needs_input_grad)):
            best = taps[0].copy(order="K")
            for window in taps[1:]:
                xp.maximum(best, window, out=best)  # propagates NaN, as PyTorch's output does
            return best

        tap_type = xp.uint8 if len(taps) <= 256 else xp.int32
        if padded is x:
            best, winner = _tournament(taps, tap_type)
        else:
            best, winner = _scan(taps, tap_type, x, kernel_size, stride, padding, dilation)
        self.save_for_backward(winner)
        if not return_indices:
            return best
        # tap (i, j) of output (oh, ow) reads input row oh·SH - PH + i·DH, likewise columns
        tap_row, tap_col = xp.divmod(winner.astype(xp.int64), kernel_w)
        rows = xp.arange(out_h).reshape(-1, 1) * stride[0] - padding[0] + tap_row * dilation[0]
        cols = xp.arange(out_w) * stride[1] - padding[1] + tap_col * dilation[1]
        return best, rows * x.shape[3] + cols

    def backward(self, grad_out, *unused):
        (winner,) = self.saved_arrays
        shape, (kernel_h, kernel_w), stride, padding, dilation, size = self.context
        xp = get_array_module(grad_out)
        grad_out = _in_layout_of(grad_out, winner)
        out_h, out_w = grad_out.shape[2:]
        grad = _full_in_layout_of(winner, (*shape[:2], *size), 0, grad_out.dtype)
        # windows that never overlap receive from one output at most: assign, don't add
        overlapping = any(
            s < d * (k - 1) + 1 for s, d, k in zip(stride, dilation, (kernel_h, kernel_w))
        )
        # multiplying by the 0/1 mask is fast, but inf·0 is NaN: then select instead
        finite = bool(xp.isfinite(grad_out).all())
        zero = xp.zeros((), dtype=grad_out.dtype)
        for i in range(kernel_h):
            rows = _tap(i * dilation[0], stride[0], out_h)
            for j in range(kernel_w):
                cols = _tap(j * dilation[1], stride[1], out_w)
                won = winner == i * kernel_w + j
                window = grad[:, :, rows, cols]  # a view: writing to it writes to grad
                if not finite:
                    routed = xp.where(won, grad_out, zero)
                elif overlapping:
                    routed = grad_out * won
                else:  # one window per input position: multiply straight into it
                    xp.multiply(grad_out, won, out=window)
                    continue
                if overlapping:
                    window += routed
                else:
                    window[...] = routed
        return grad[:, :, padding[0] : padding[0] + shape[2], padding[1] : padding[1] + shape[3]]


def _avg_divisor(size, kernel, stride, padding, out, count_include_pad, xp, dtype) -> Any:
    # PyTorch's divisor along one axis: the window clipped to the padded input when
    # padding counts, or to the input itself when it does not
    start = xp.arange(out) * stride - padding
    end = xp.minimum(start + kernel, size + padding)
    if not count_include_pad:
        end = xp.minimum(end, size)
        start = xp.maximum(start, 0)
    # a window wholly in the padding sums to 0; any nonzero divisor keeps it 0
    return xp.maximum(end - start, 1).astype(dtype)


class AvgPool2d(Function):
    """y = the mean of each window: a sum over the KH·KW taps divided by PyTorch's
    divisor (``divisor_override``; else the window size, clipped at the padded input
    when ``count_include_pad``, at the input otherwise)."""

    def forward(
        self,
        x,
        *,
        kernel_size,
        stride,
        padding,
        out_size,
        count_include_pad,
        divisor_override,
    ):
        # (N, C, H, W) -> (N, C, OH, OW)
        xp = get_array_module(x)
        (kernel_h, kernel_w), (out_h, out_w) = kernel_size, out_size
        size = _buffer_size(x.shape, kernel_size, stride, padding, (1, 1), out_size)
        padded = _padded(x, padding, size, 0)
        if divisor_override:
            divisor = xp.asarray(divisor_override, dtype=x.dtype)
        else:
            divisor = _avg_divisor(
                x.shape[2], kernel_h, stride[0], padding[0], out_h, count_include_pad, xp, x.dtype
            ).reshape(-1, 1) * _avg_divisor(
                x.shape[3], kernel_w, stride[1], padding[1], out_w, count_include_pad, xp, x.dtype
            )
        # a box sum is separable: sum KH rows, then KW columns of that (KH + KW passes,
        # not KH·KW)
        rows = padded[:, :, _tap(0, stride[0], out_h)].copy(order="K")  # (N, C, OH, WP)
        for i in range(1, kernel_h):
            rows += padded[:, :, _tap(i, stride[0], out_h)]
        y = rows[..., _tap(0, stride[1], out_w)].copy(order="K")  # (N, C, OH, OW)
        for j in range(1, kernel_w):
            y += rows[..., _tap(j, stride[1], out_w)]
        y /= divisor
        self.context = (x.shape, kernel_size, stride, padding, size, divisor)
        return y

    def backward(self, grad_out):
        shape, (kernel_h, kernel_w), stride, padding, size, divisor = self.context
        out_h, out_w = grad_out.shape[2:]
        # the adjoint of each step in reverse: divide, spread over columns, then rows
        grad = grad_out / divisor
        # (N, C, OH, WP)
        rows = _full_in_layout_of(grad, (*grad.shape[:3], size[1]), 0, grad.dtype)
        for j in range(kernel_w):
            rows[..., _tap(j, stride[1], out_w)] += grad
        grad_padded = _full_in_layout_of(grad, (*shape[:2], *size), 0, grad.dtype)
        for i in range(kernel_h):
            grad_padded[:, :, _tap(i, stride[0], out_h)] += rows
        return grad_padded[
            :, :, padding[0] : padding[0] + shape[2], padding[1] : padding[1] + shape[3]
        ]


def _average_matrix(windows: tuple[list[int], list[int]], size: int, xp: Any, dtype: Any) -> Any:
    # (windows, size): row o averages window o of the input axis
    starts, ends = windows
    matrix = xp.zeros((len(starts), size), dtype=dtype)
    for row, (start, end) in enumerate(zip(starts, ends)):
        matrix[row, start:end] = 1.0 / (end - start)
    return matrix


def _both_sides(x: Any, left: Any, right: Any) -> Any:
    # left @ x @ right^T over the last two axes: (N, C, A, B) -> (N, C, P, Q), as two GEMMs
    xp = get_array_module(x)
    batch, channels, height, width = x.shape
    out_h, out_w = left.shape[0], right.shape[0]
    # an inf or NaN in x makes NaN through 0 · inf, which the caller sees and mends:
    # NumPy's warning about it would only alarm (CuPy gives none)
    with numpy.errstate(invalid="ignore"):
        columns = xp.ascontiguousarray(x).reshape(-1, width) @ right.T  # (N·C·A, Q)
        columns = columns.reshape(batch * channels, height, out_w).transpose(0, 2, 1)
        both = columns.reshape(-1, height) @ left.T  # (N·C·Q, P)
    return xp.ascontiguousarray(both.reshape(batch, channels, out_w, out_h).transpose(0, 1, 3, 2))


def _window_sums(x: Any, windows: tuple[list[int], list[int]], axis: int) -> Any:
    # the sum of x over each window [start, end) along ``axis`` (-1 or -2): one gather
    # per tap t, every window at once. A window shorter than the longest has no tap t;
    # there ``where`` puts a 0 (multiplying by a 0 would turn an inf into NaN)
    xp = get_array_module(x)
    starts, ends = windows
    by_window = (-1,) if axis == -1 else (-1, 1)  # broadcasts along the windows' axis
    total = None
    for tap, positions in enumerate(_window_taps(windows, xp)):
        values = xp.take(x, positions, axis=axis)
        inside = [start + tap < end for start, end in zip(starts, ends)]
        if not all(inside):
            values = xp.where(xp.asarray(inside).reshape(by_window), values, 0)
        if total is None:
            total = values
        else:
            total += values
    return total


def _window_sizes(rows: tuple, cols: tuple, like: Any) -> Any:
    # (OH, OW): how many inputs each window holds
    xp = get_array_module(like)
    heights, widths = (
        xp.asarray([end - start for start, end in zip(*windows)], dtype=like.dtype)
        for windows in (rows, cols)
    )
    return heights.reshape(-1, 1) * widths


def _windows_containing(windows: tuple[list[int], list[int]], size: int) -> tuple:
    # for each input position i, the windows o that hold it, as a range [first, last + 1):
    # starts and ends never decrease, so they are consecutive
    starts, ends = windows
    first = [bisect.bisect_right(ends, i) for i in range(size)]  # the first end past i
    stop = [bisect.bisect_right(starts, i) for i in range(size)]  # past the last start <= i
    return first, stop


class AdaptiveAvgPool2d(Function):
    """y = A_h @ x @ A_w^T, where row o of A averages adaptive window o; so
    dL/dx = A_h^T @ dL/dy @ A_w.

    Two GEMMs are fast, but they multiply every value, also the zeros of A by an inf
    or NaN, and 0 · inf is NaN: one inf would spoil every window. So when x (or
    dL/dy) is not all finite, the windows are summed directly (``_window_sums``), which
    is what the products compute for finite values.
    """

    def forward(self, x, *, out_size):
        # (N, C, H, W) -> (N, C, OH, OW)
        xp = get_array_module(x)
        size = x.shape[2:]
        rows, cols = (adaptive_pool_windows(size[k], out_size[k]) for k in (0, 1))
        matrices = tuple(_average_matrix(w, n, xp, x.dtype) for w, n in zip((rows, cols), size))
        self.context = (rows, cols, size, matrices)
        y = _both_sides(x, *matrices)
        if not xp.isfinite(y).all():  # x holds an inf or a NaN, which 0 · inf spreads
            y = _window_sums(_window_sums(x, cols, -1), rows, -2)  # (N, C, OH, OW)
            y /= _window_sizes(rows, cols, y)
        return y

    def backward(self, grad_out):
        rows, cols, (height, width), (by_row, by_column) = self.context
        xp = get_array_module(grad_out)
        if xp.isfinite(grad_out).all():
            return _both_sides(grad_out, by_row.T, by_column.T)
        # each window's gradient spread evenly over it, summed where windows overlap
        grad = grad_out / _window_sizes(rows, cols, grad_out)
        grad = _window_sums(grad, _windows_containing(rows, height), -2)  # (N, C, H, OW)
        return _window_sums(grad, _windows_containing(cols, width), -1)  # (N, C, H, W)


def _window_taps(windows: tuple[list[int], list[int]], xp: Any) -> Any:
    # (L, windows) positions: tap t of window o, repeating the window's last position in
    # shorter windows (a repeat never changes a maximum or its winner)
    starts, ends = windows
    longest = max(end - start for start, end in zip(starts, ends))
    taps = [[min(start + t, end - 1) for start, end in zip(starts, ends)] for t in range(longest)]
    return xp.asarray(taps, dtype=xp.int64)


class AdaptiveMaxPool2d(Function):
    """y = the maximum of each adaptive window, and its flat index h·W + w. Separable:
    the maximum over the window's columns, then over its rows of those; taking the
    first maximum (last NaN) at each stage gives the row-major first (last NaN) of the
    rectangle, as PyTorch picks."""

    def forward(self, x, *, out_size):
        # (N, C, H, W) -> (N, C, OH, OW) values and int64 indices
        xp = get_array_module(x)
        height, width = x.shape[2:]
        column_taps = _window_taps(adaptive_pool_windows(width, out_size[1]), xp)  # (LW, OW)
        row_taps = _window_taps(adaptive_pool_windows(height, out_size[0]), xp)  # (LH, OH)
        # stage 1, along W: (N, C, H, OW) maxima and their column
        best = x[..., column_taps[0]]
        best_col = xp.broadcast_to(column_taps[0], best.shape).copy()
        for taps in column_taps[1:]:
            window = x[..., taps]
            take = (window > best) | xp.isnan(window)
            xp.copyto(best, window, where=take)
            xp.copyto(best_col, xp.broadcast_to(taps, best.shape), where=take)
        # stage 2, along H: (N, C, OH, OW) maxima, their row and column
        values = best[:, :, row_taps[0]]
        row = xp.broadcast_to(row_taps[0].reshape(-1, 1), values.shape).copy()
        col = best_col[:, :, row_taps[0]]
        for taps in row_taps[1:]:
            window = best[:, :, taps]
            take = (window > values) | xp.isnan(window)
            xp.copyto(values, window, where=take)
            xp.copyto(row, xp.broadcast_to(taps.reshape(-1, 1), values.shape), where=take)
            xp.copyto(col, best_col[:, :, taps], where=take)
        indices = row * width + col
        self.save_for_backward(indices)
        self.input_shape = x.shape
        return values, indices

    def backward(self, grad_out, *unused):
        (indices,) = self.saved_arrays
        xp = get_array_module(grad_out)
        batch, channels, height, width = self.input_shape
        grad = xp.zeros((batch * channels, height * width), dtype=grad_out.dtype)
        planes = xp.arange(batch * channels).reshape(-1, 1)
        # adjacent adaptive windows can share an edge, so the same input may win twice
        scatter_add(
            grad,
            (planes, indices.reshape(batch * channels, -1)),
            grad_out.reshape(batch * channels, -1),
        )
        return grad.reshape(self.input_shape)
