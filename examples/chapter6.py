"""Dive into Deep Learning, chapter 6 (convolutional networks), run on tinyconv.

    python examples/chapter6.py                                  # every section, in order
    python examples/chapter6.py --checkpoint runs/lenet_mnist/lenet5.safetensors

Each section computes what the book computes and prints it beside the book's
printed result (or, where the book prints none, the value worked out by hand).
With --checkpoint (a LeNet-5 state dict written by tc.save, as
examples/lenet_mnist.py writes, possibly under a "model" key) it also draws the
learned kernels and the feature maps of one test digit to PNG files in --out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

# LeNet-5 as the main example trains it (this folder is on the path when a script in
# it runs)
from lenet_mnist import build_lenet5

import tinyconv as tc
import tinyconv.nn as nn
import tinyconv.nn.functional as F

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # as examples/lenet_mnist.py normalises


@dataclass
class Check:
    """One result: what tinyconv computed, and what the book printed (or ``source``)."""

    what: str
    ours: Any
    book: Any
    source: str = "book"

    @property
    def agrees(self) -> bool:
        if isinstance(self.book, (bool, str)):
            return self.ours == self.book
        ours, book = numpy.asarray(self.ours, dtype=float), numpy.asarray(self.book, dtype=float)
        return ours.shape == book.shape and numpy.allclose(ours, book, atol=1e-4)


def values(tensor: tc.Tensor) -> Any:
    """Nested lists of plain numbers, for printing."""
    return tensor.detach().cpu().tolist()


def all_true(comparison: tc.Tensor) -> bool:
    """Whether every element of a bool tensor is True."""
    return bool(numpy.all(comparison.cpu().numpy()))


# -- 6.2 convolutions for images ----------------------------------------------------------


def corr2d(X: tc.Tensor, K: tc.Tensor) -> tc.Tensor:
    """The book's two-dimensional cross-correlation, written with loops."""
    h, w = K.shape
    Y = numpy.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=numpy.float32)
    x, k = X.numpy(), K.numpy()
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (x[i : i + h, j : j + w] * k).sum()
    return tc.tensor(Y)


def convolutions() -> list[Check]:
    X = tc.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = tc.tensor([[0.0, 1.0], [2.0, 3.0]])
    edges = tc.ones(6, 8)
    edges[:, 2:6] = 0.0
    edge_kernel = tc.tensor([[1.0, -1.0]])
    conv = F.conv2d(X.reshape(1, 1, 3, 3), K.reshape(1, 1, 2, 2))
    return [
        Check("corr2d(X, K), loops", values(corr2d(X, K)), [[19, 25], [37, 43]]),
        Check("F.conv2d, the same", values(conv[0, 0]), [[19, 25], [37, 43]]),
        Check(
            "vertical edges of a 6x8 image, row 0",
            values(F.conv2d(edges.reshape(1, 1, 6, 8), edge_kernel.reshape(1, 1, 1, 2))[0, 0, 0]),
            [0, 1, 0, 0, 0, -1, 0],
        ),
    ]


def learn_edge_kernel(epochs: int = 10, lr: float = 3e-2) -> list[Check]:
    """6.2.4: learn the [1, -1] kernel back from the image and its edges."""
    tc.manual_seed(0)
    X = tc.ones(6, 8)
    X[:, 2:6] = 0.0
    Y = F.conv2d(X.reshape(1, 1, 6, 8), tc.tensor([[[[1.0, -1.0]]]]))
    conv = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False)
    for _ in range(epochs):
        loss = ((conv(X.reshape(1, 1, 6, 8)) - Y) ** 2).sum()
        conv.zero_grad()
        loss.backward()
        with tc.no_grad():
            conv.weight -= lr * conv.weight.grad
    learned = values(conv.weight.reshape(1, 2))
    # the book's run ends near [[1.0486, -0.9313]]; any run ends near [[1, -1]]
    close = numpy.allclose(learned, [[1.0, -1.0]], atol=0.2)
    return [Check(f"kernel learned in {epochs} steps is near [[1, -1]]", close, True)]


# -- 6.3 padding and stride ---------------------------------------------------------------

# (kernel, padding, stride) of the book's examples on an 8x8 input, and the output shape
PADDING_AND_STRIDE = [
    ((3, 3), (1, 1), (1, 1), (8, 8)),
    ((5, 3), (2, 1), (1, 1), (8, 8)),
    ((3, 3), (1, 1), (2, 2), (4, 4)),
    ((3, 5), (0, 1), (3, 4), (2, 2)),
    ((3, 5), (2, 1), (4, 1), (3, 6)),
]


def output_size_formula(n: int, k: int, p: int, s: int) -> int:
    """The book's floor((n - k + p + s) / s), with p the padding of both sides together."""
    return (n - k + p + s) // s


def padding_and_stride() -> list[Check]:
    checks = []
    X = tc.rand(1, 1, 8, 8)
    for kernel, padding, stride, book in PADDING_AND_STRIDE:
        conv = nn.Conv2d(1, 1, kernel_size=kernel, padding=padding, stride=stride)
        what = f"kernel {kernel}, padding {padding}, stride {stride}"
        checks.append(Check(what, tuple(conv(X).shape[2:]), book))
        formula = tuple(
            output_size_formula(8, k, 2 * p, s) for k, p, s in zip(kernel, padding, stride)
        )
        checks.append(Check("  floor((n - k + p + s) / s)", formula, book))
    return checks


# -- 6.4 multiple input and output channels -----------------------------------------------


def corr2d_multi_in(X: tc.Tensor, K: tc.Tensor) -> tc.Tensor:
    """Correlate each input channel with its kernel and add the results."""
    return sum(corr2d(x, k) for x, k in zip(X, K))


def corr2d_multi_in_out(X: tc.Tensor, K: tc.Tensor) -> tc.Tensor:
    """One multi-input correlation per output channel, stacked."""
    return tc.stack([corr2d_multi_in(X, k) for k in K], 0)


def corr2d_multi_in_out_1x1(X: tc.Tensor, K: tc.Tensor) -> tc.Tensor:
    """A 1x1 convolution is a matrix product over channels at every pixel."""
    c_in, h, w = X.shape
    c_out = K.shape[0]
    return (K.reshape(c_out, c_in) @ X.reshape(c_in, h * w)).reshape(c_out, h, w)


def channels() -> list[Check]:
    X = tc.tensor(
        [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
         [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]
    )  # fmt: skip
    K = tc.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    K3 = tc.stack((K, K + 1, K + 2), 0)
    stack_book = [
        [[56, 72], [104, 120]],
        [[76, 100], [148, 172]],
        [[96, 128], [192, 224]],
    ]
    tc.manual_seed(0)
    X1 = tc.randn(3, 3, 3)
    K1 = tc.randn(2, 3, 1, 1)
    by_loops = corr2d_multi_in_out(X1, K1)
    by_matmul = corr2d_multi_in_out_1x1(X1, K1)
    by_conv = F.conv2d(X1.reshape(1, 3, 3, 3), K1)[0]
    return [
        Check("two input channels", values(corr2d_multi_in(X, K)), [[56, 72], [104, 120]]),
        Check("K stacked with K+1, K+2: shape", tuple(K3.shape), (3, 2, 2, 2)),
        Check("three output channels", values(corr2d_multi_in_out(X, K3)), stack_book),
        Check("  the same with F.conv2d", values(F.conv2d(X[None], K3)[0]), stack_book),
        Check(
            "1x1 convolution as a matmul: |Y1 - Y2| < 1e-6",
            float((by_loops - by_matmul).abs().sum()) < 1e-6,
            True,
        ),
        Check("  and as F.conv2d", float((by_conv - by_matmul).abs().sum()) < 1e-5, True),
    ]


# -- 6.5 pooling --------------------------------------------------------------------------


def pooling() -> list[Check]:
    X = tc.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    X4 = tc.arange(16, dtype=tc.float32).reshape(1, 1, 4, 4)
    two = tc.cat((X4, X4 + 1), 1)
    return [
        Check(
            "max pool 2x2, stride 1",
            values(F.max_pool2d(X[None, None], 2, 1)[0, 0]),
            [[4, 5], [7, 8]],
        ),
        Check(
            "average pool 2x2, stride 1",
            values(F.avg_pool2d(X[None, None], 2, 1)[0, 0]),
            [[2, 3], [5, 6]],
        ),
        Check("MaxPool2d(3) on 4x4", values(nn.MaxPool2d(3)(X4)), [[[[10]]]]),
        Check(
            "MaxPool2d(3, padding=1, stride=2)",
            values(nn.MaxPool2d(3, padding=1, stride=2)(X4)),
            [[[[5, 7], [13, 15]]]],
        ),
        Check(
            "MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))",
            values(nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))(X4)),
            [[[[5, 7], [13, 15]]]],
        ),
        Check(
            "two channels, pooled separately",
            values(nn.MaxPool2d(3, padding=1, stride=2)(two)),
            [[[[5, 7], [13, 15]], [[6, 8], [14, 16]]]],
        ),
    ]


# -- transposed convolution ---------------------------------------------------------------


def trans_conv(X: tc.Tensor, K: tc.Tensor) -> tc.Tensor:
    """The book's transposed convolution: each input element scatters a scaled kernel."""
    h, w = K.shape
    Y = numpy.zeros((X.shape[0] + h - 1, X.shape[1] + w - 1), dtype=numpy.float32)
    x, k = X.numpy(), K.numpy()
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            Y[i : i + h, j : j + w] += x[i, j] * k
    return tc.tensor(Y)


def kernel2matrix(K: tc.Tensor) -> tc.Tensor:
    """The 4x9 matrix W with conv(X, K) = W @ vec(X), for a 2x2 K over a 3x3 X."""
    k = numpy.zeros(5, dtype=numpy.float32)
    W = numpy.zeros((4, 9), dtype=numpy.float32)
    kk = K.numpy()
    k[:2], k[3:5] = kk[0, :], kk[1, :]
    W[0, :5], W[1, 1:6], W[2, 3:8], W[3, 4:] = k, k, k, k
    return tc.tensor(W)


def transposed() -> list[Check]:
    X = tc.tensor([[0.0, 1.0], [2.0, 3.0]])
    K = tc.tensor([[0.0, 1.0], [2.0, 3.0]])
    X4, K4 = X.reshape(1, 1, 2, 2), K.reshape(1, 1, 2, 2)
    layer = nn.ConvTranspose2d(1, 1, kernel_size=2, bias=False)
    with tc.no_grad():
        layer.weight.copy_(K4)
    tc.manual_seed(0)
    X10 = tc.rand(1, 10, 16, 16)
    conv = nn.Conv2d(10, 20, kernel_size=5, padding=2, stride=3)
    tconv = nn.ConvTranspose2d(20, 10, kernel_size=5, padding=2, stride=3)
    book = [[0, 0, 1], [0, 4, 6], [4, 12, 9]]
    return [
        Check("trans_conv(X, K), loops", values(trans_conv(X, K)), book),
        Check("nn.ConvTranspose2d, the same", values(layer(X4)[0, 0]), book),
        Check(
            "padding=1 trims a row and a column each side",
            values(F.conv_transpose2d(X4, K4, padding=1)),
            [[[[4]]]],
        ),
        Check(
            "stride=2",
            values(F.conv_transpose2d(X4, K4, stride=2)),
            [[[[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3], [4, 6, 6, 9]]]],
        ),
        Check("tconv(conv(X)).shape == X.shape", tuple(tconv(conv(X10)).shape) == X10.shape, True),
    ]


def convolution_matrix() -> list[Check]:
    X = tc.arange(9.0).reshape(3, 3)
    K = tc.tensor([[1.0, 2.0], [3.0, 4.0]])
    W = kernel2matrix(K)
    Y = corr2d(X, K)
    Z = trans_conv(Y, K)
    return [
        Check("corr2d(X, K)", values(Y), [[27, 37], [57, 67]]),
        Check("W = kernel2matrix(K), row 0", values(W[0]), [1, 2, 0, 3, 4, 0, 0, 0, 0]),
        Check("Y == W @ vec(X)", all_true(Y == (W @ X.reshape(-1)).reshape(2, 2)), True),
        Check(
            "trans_conv(Y, K) == W^T @ vec(Y)",
            all_true(Z == (W.T @ Y.reshape(-1)).reshape(3, 3)),
            True,
        ),
        Check(
            "  and it is the gradient of the convolution",
            values(_input_gradient(X, K, Y)),
            values(Z),
            "trans_conv",
        ),
    ]


def _input_gradient(X: tc.Tensor, K: tc.Tensor, upstream: tc.Tensor) -> tc.Tensor:
    """d<conv(X, K), upstream>/dX: backward of a convolution is a transposed convolution."""
    x = X.reshape(1, 1, 3, 3).detach().requires_grad_()
    F.conv2d(x, K.reshape(1, 1, 2, 2)).backward(upstream.reshape(1, 1, 2, 2))
    return x.grad[0, 0]


# -- receptive field and cost, from summary -------------------------------------------------


def receptive_field() -> list[Check]:
    two = nn.Sequential(nn.Conv2d(1, 1, kernel_size=2), nn.Conv2d(1, 1, kernel_size=2))
    stack = tc.utils.summary(two, (1, 3, 3), verbose=False)
    lenet = tc.utils.summary(build_lenet5(), (1, 28, 28), verbose=False)
    return [
        Check("two 2x2 convolutions: one output sees", stack[-1]["receptive_field"], (3, 3)),
        Check(
            "LeNet-5 after the second pooling: field",
            lenet["5"]["receptive_field"],
            (16, 16),
            "by hand",  # 5, then +1 (pool), +4*2 (conv at jump 2), +1*2 (pool)
        ),
        Check("  and jump (stride on the input)", lenet["5"]["jump"], (4, 4), "by hand"),
    ]


def layer_costs(show: Callable[[str], None]) -> list[Check]:
    table = tc.utils.summary(build_lenet5(), (1, 28, 28), verbose=False)
    show(str(table))
    conv2 = table["3"]
    hand = 16 * 10 * 10 * 6 * 5 * 5  # output elements x (input channels x kernel area)
    conv1 = 6 * 28 * 28 * 1 * 5 * 5
    return [
        Check("conv1 forward", table["0"]["forward_macs"], conv1, "by hand"),
        Check("conv2 forward", conv2["forward_macs"], hand, "by hand"),
        Check("conv2 backward dx", conv2["grad_input_macs"], hand, "by hand"),
        Check("conv2 backward dW", conv2["grad_weight_macs"], hand, "by hand"),
        Check("conv1 backward dx (skipped)", table["0"]["grad_input_macs"], 0, "engine"),
        Check(
            "the linear layers forward",
            [table[n]["forward_macs"] for n in ("7", "9", "11")],
            [400 * 120, 120 * 84, 84 * 10],
            "by hand",
        ),
    ]


# -- autograd: detach and accumulation -----------------------------------------------------


def detach_and_accumulation() -> list[Check]:
    x = tc.arange(4.0, requires_grad=True)
    y = 2 * (x * x).sum()  # 2 x . x
    y.backward()
    first = values(x.grad)
    x.sum().backward()  # not zeroed: the new gradient is added
    accumulated = values(x.grad)
    x.grad.zero_()
    x.sum().backward()
    fresh = values(x.grad)

    x.grad.zero_()
    y = x * x
    u = y.detach()  # the same numbers, but a constant to autograd
    z = u * x
    z.sum().backward()
    detached = all_true(x.grad == u)
    x.grad.zero_()
    y.sum().backward()  # y itself still has its graph
    through_y = all_true(x.grad == 2 * x)
    return [
        Check("d(2 x.x)/dx", first, [0, 4, 8, 12]),
        Check("then d(sum x)/dx without zeroing: added", accumulated, [1, 5, 9, 13], "PyTorch"),
        Check("after x.grad.zero_()", fresh, [1, 1, 1, 1]),
        Check("z = y.detach() * x: x.grad == u", detached, True),
        Check("y.sum().backward(): x.grad == 2 * x", through_y, True),
    ]


# -- LeNet's kernels and feature maps --------------------------------------------------------


def load_lenet(path: str | Path) -> nn.Sequential:
    """LeNet-5 with the weights of a checkpoint (a state dict, or one under "model")."""
    state = tc.load(path, map_location="cpu")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    model = build_lenet5()
    model.load_state_dict(state)
    return model.eval()


def drawn_digit() -> numpy.ndarray:
    """A 28x28 seven drawn with two strokes, for when MNIST is not at hand."""
    image = numpy.zeros((28, 28), dtype=numpy.float32)
    image[6:9, 6:22] = 1.0
    for row in range(9, 24):
        column = 21 - (row - 9) * 8 // 15
        image[row, column - 1 : column + 2] = 1.0
    return image


def load_digit(data_dir: str | None, index: int, download: bool) -> tuple[numpy.ndarray, str]:
    """A test-set digit in [0, 1] and where it came from; a drawn one if MNIST fails."""
    try:
        from tinyconv.datasets import MNIST  # noqa: PLC0415

        dataset = MNIST(root=data_dir, train=False, download=download)
        image = dataset.data.data[index].astype(numpy.float32) / 255
        return image, f"MNIST test image {index} (a {int(dataset.targets.data[index])})"
    except Exception as error:  # offline, or no files: the picture still teaches
        return drawn_digit(), f"a drawn 7 (MNIST unavailable: {type(error).__name__})"


def feature_maps(model: nn.Sequential, image: numpy.ndarray) -> dict[str, numpy.ndarray]:
    """The activations after each convolution and its ReLU, for one image in [0, 1]."""
    x = tc.tensor(((image - MNIST_MEAN) / MNIST_STD)[None, None])
    maps = {}
    with tc.no_grad():
        for layer in model:
            x = layer(x)
            if isinstance(layer, nn.ReLU) and x.ndim == 4:
                channels, height, width = x.shape[1:]
                name = f"conv{len(maps) + 1} + ReLU: {channels} maps of {height}x{width}"
                maps[name] = x[0].numpy()
    return maps


def mosaic(tiles: numpy.ndarray, gap: int = 1) -> numpy.ndarray:
    """A (rows, columns, h, w) stack of images as one picture, NaN between tiles."""
    rows, columns, height, width = tiles.shape
    picture = numpy.full(
        (rows * (height + gap) - gap, columns * (width + gap) - gap), numpy.nan, numpy.float32
    )
    for row in range(rows):
        for column in range(columns):
            top, left = row * (height + gap), column * (width + gap)
            picture[top : top + height, left : left + width] = tiles[row, column]
    return picture


def plot_lenet(model: nn.Sequential, image: numpy.ndarray, source: str, out: Path) -> list[Path]:
    """Draw conv1's and conv2's kernels, and the feature maps of ``image``, to PNGs."""
    import matplotlib  # noqa: PLC0415  (only this part needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    conv1 = model[0].weight.detach().numpy()  # (6, 1, 5, 5)
    conv2 = model[3].weight.detach().numpy()  # (16, 6, 5, 5)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), gridspec_kw={"height_ratios": [1, 6]}
    )
    # red positive, blue negative, white zero: the same scale within each layer
    for ax, kernels, title in (
        (top, conv1.transpose(1, 0, 2, 3), "conv1: 6 kernels of 5x5 on the image"),
        (bottom, conv2.transpose(1, 0, 2, 3), "conv2: 16 kernels (columns) x 6 input channels"),
    ):
        limit = float(abs(kernels).max())
        ax.imshow(mosaic(kernels), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    kernels_path = out / "lenet_kernels.png"
    figure.savefig(kernels_path, dpi=100, bbox_inches="tight")
    plt.close(figure)

    maps = feature_maps(model, image)
    figure, axes = plt.subplots(1 + len(maps), 1, figsize=(10, 2.2 * (1 + len(maps))))
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title(f"input: {source}", fontsize=9)
    for ax, (title, stack) in zip(axes[1:], maps.items()):
        columns = 8 if len(stack) % 8 == 0 else len(stack)
        ax.imshow(mosaic(stack.reshape(-1, columns, *stack.shape[1:])), cmap="viridis")
        ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.axis("off")
    maps_path = out / "lenet_feature_maps.png"
    figure.savefig(maps_path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return [kernels_path, maps_path]


# -- running it -------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Whole floats as ints and others rounded, so tinyconv's and the book's numbers line up."""
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 4)
    return value


def report(title: str, checks: list[Check], show: Callable[[str], None]) -> int:
    """Print a section's checks, tinyconv's result beside the book's; returns how many
    disagree. A section whose results do not fit on one line each gets three lines each."""
    show(f"\n{title}")
    width = max(len(check.what) for check in checks)
    rows = [
        (check.what, plain(check.ours), check.source, plain(check.book),
         "ok" if check.agrees else "DIFFERS")
        for check in checks
    ]  # fmt: skip
    lines = [f"  {w.ljust(width)}  tinyconv {o}   {s} {b}   {m}" for w, o, s, b, m in rows]
    if all(len(line) <= 100 for line in lines):
        for line in lines:
            show(line)
    else:
        for what, ours, source, book, mark in rows:
            label = max(len(source), len("tinyconv"))
            show(f"  {what}")
            show(f"      {'tinyconv'.ljust(label)}  {ours}")
            show(f"      {source.ljust(label)}  {book}   {mark}")
    return sum(not check.agrees for check in checks)


SECTIONS: list[tuple[str, Callable[[], list[Check]]]] = [
    ("6.2 Convolutions for images", convolutions),
    ("6.2.4 Learning a kernel", learn_edge_kernel),
    ("6.3 Padding and stride (8x8 input)", padding_and_stride),
    ("6.4 Multiple input and output channels", channels),
    ("6.5 Pooling", pooling),
    ("Transposed convolution", transposed),
    ("Transposed convolution and the convolution matrix", convolution_matrix),
    ("Receptive field of a stack (tc.utils.summary)", receptive_field),
    ("Autograd: gradients accumulate; detach", detach_and_accumulation),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="LeNet-5 weights written by tc.save")
    parser.add_argument("--out", default="runs/chapter6", help="where the PNG files go")
    parser.add_argument("--data-dir", default=None, help="where the MNIST files are (or go)")
    parser.add_argument("--digit", type=int, default=0, help="which test image to show")
    parser.add_argument("--no-download", action="store_true", help="never fetch MNIST")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, show: Callable[[str], None] = print) -> int:
    """Run every section; returns the number of results that differ from the book."""
    args = parse_args(argv)
    differ = 0
    for title, section in SECTIONS:
        differ += report(title, section(), show)
    show("\nCost of a layer (tc.utils.summary of LeNet-5 on 1x28x28)")
    differ += report("  multiply-adds, checked by hand:", layer_costs(show), show)
    if args.checkpoint:
        model = load_lenet(args.checkpoint)
        image, source = load_digit(args.data_dir, args.digit, not args.no_download)
        for path in plot_lenet(model, image, source, Path(args.out)):
            show(f"wrote {path}")
    show(f"\n{'all results agree with the book' if not differ else f'{differ} results differ'}")
    return differ


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
