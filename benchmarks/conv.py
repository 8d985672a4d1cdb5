"""Convolution and pooling speed: tinyconv beside PyTorch on the CPU, in one table.

    python benchmarks/conv.py [--threads N] [--rounds R] [--repeats K]

Each side runs in its own process with the same number of threads (BLAS and OpenMP),
the two alternating for R rounds so that drifts in machine load hit both alike; every
row reports the median over all rounds. Forward runs under no_grad; forward+backward
computes the gradients of input, weight and bias. The float32 GEMM rate of NumPy's BLAS
is measured in the same run, and row (c) is put against it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# name: (kind, input shape, weight shape, options, what)
ROWS = {
    "a": ("conv", (128, 1, 28, 28), (6, 1, 5, 5), {"padding": 2}, "conv 1->6, 28x28, k5 p2"),
    "b": ("conv", (128, 6, 14, 14), (16, 6, 5, 5), {}, "conv 6->16, 14x14, k5"),
    "c": ("conv", (32, 64, 32, 32), (64, 64, 3, 3), {"padding": 1}, "conv 64->64, 32x32, k3 p1"),
    "d": (
        "conv",
        (32, 64, 32, 32),
        (128, 64, 3, 3),
        {"stride": 2, "padding": 1},
        "conv 64->128, 32x32, k3 s2 p1",
    ),
    "e": (
        "conv_transpose",
        (32, 64, 16, 16),
        (64, 32, 4, 4),
        {"stride": 2, "padding": 1},
        "conv_transpose 64->32, 16x16, k4 s2 p1",
    ),
    "f": (
        "max_pool",
        (128, 6, 28, 28),
        None,
        {"kernel_size": 2, "stride": 2},
        "max_pool 2x2 s2, 6x28x28",
    ),
    "g": (
        "avg_pool",
        (32, 64, 32, 32),
        None,
        {"kernel_size": 3, "stride": 1, "padding": 1},
        "avg_pool 3x3 s1 p1, 64x32x32",
    ),
}
GEMM_SIZE = 2048


def conv_flops(row: str) -> float:
    """Multiply-adds ·2 of one forward; a transposed convolution counted on its input side."""
    kind, x_shape, w_shape, options, _ = ROWS[row]
    batch, channels, height, width = x_shape
    kernel = w_shape[2] * w_shape[3]
    if kind == "conv_transpose":
        return 2.0 * batch * channels * height * width * w_shape[1] * kernel
    stride, padding = options.get("stride", 1), options.get("padding", 0)
    out_h = (height + 2 * padding - w_shape[2]) // stride + 1
    out_w = (width + 2 * padding - w_shape[3]) // stride + 1
    return 2.0 * batch * w_shape[0] * out_h * out_w * channels * kernel


# -- the worker: one side, every row, timings printed as JSON ------------------------


def _timings(step, repeats: int) -> list[float]:
    step()  # warm up: first calls allocate and fill caches
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def _side(name: str):
    """(lib, functional, tensor factory, no_grad) of tinyconv or PyTorch."""
    if name == "torch":
        import torch  # noqa: PLC0415

        return torch, torch.nn.functional, lambda a, grad: torch.tensor(a, requires_grad=grad)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import tinyconv as tc  # noqa: PLC0415
    from tinyconv.nn import conv_functional as F  # noqa: PLC0415

    return tc, F, lambda a, grad: tc.tensor(a, requires_grad=grad)


def _row_steps(side: str, row: str):
    import numpy  # noqa: PLC0415

    lib, functional, make = _side(side)
    kind, x_shape, w_shape, options, _ = ROWS[row]
    rng = numpy.random.default_rng(0)
    x = make(rng.standard_normal(x_shape, dtype=numpy.float32), True)
    leaves = [x]
    if kind in ("conv", "conv_transpose"):
        out_channels = w_shape[0] if kind == "conv" else w_shape[1]
        weight = make(rng.standard_normal(w_shape, dtype=numpy.float32) * 0.1, True)
        bias = make(rng.standard_normal(out_channels, dtype=numpy.float32), True)
        leaves += [weight, bias]
        function = functional.conv2d if kind == "conv" else functional.conv_transpose2d

        def run():
            return function(x, weight, bias, **options)

    else:
        function = functional.max_pool2d if kind == "max_pool" else functional.avg_pool2d

        def run():
            return function(x, **options)

    with lib.no_grad():
        shape = tuple(run().shape)
    upstream = make(rng.standard_normal(shape, dtype=numpy.float32), False)

    def forward():
        with lib.no_grad():
            run()

    def forward_backward():
        for leaf in leaves:
            leaf.grad = None
        run().backward(upstream)

    return forward, forward_backward


def _gemm_rate(repeats: int) -> float:
    import numpy  # noqa: PLC0415

    rng = numpy.random.default_rng(0)
    a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=numpy.float32)
    b = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=numpy.float32)
    best = statistics.median(_timings(lambda: a @ b, repeats))
    return 2.0 * GEMM_SIZE**3 / best / 1e9


def worker(side: str, threads: int, repeats: int) -> None:
    if side == "torch":
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
    result = {}
    for row in ROWS:
        forward, forward_backward = _row_steps(side, row)
        result[row] = {
            "forward": _timings(forward, repeats),
            "forward_backward": _timings(forward_backward, repeats),
        }
    if side == "tinyconv":
        result["gemm"] = _gemm_rate(max(3, repeats // 2))
    print(json.dumps(result))


# -- the driver: alternate the sides, print the table --------------------------------


def _run_worker(side: str, threads: int, repeats: int) -> dict:
    environment = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        environment[variable] = str(threads)
    command = [
        sys.executable,
        __file__,
        "--worker",
        side,
        "--threads",
        str(threads),
        "--repeats",
        str(repeats),
    ]
    output = subprocess.run(command, env=environment, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--worker", choices=("tinyconv", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.repeats)
        return

    load_before = os.getloadavg()[0]
    samples = {
        side: {row: {"forward": [], "forward_backward": []} for row in ROWS}
        for side in ("tinyconv", "torch")
    }
    gemm_rates = []
    for round_index in range(args.rounds):
        sides = ("tinyconv", "torch") if round_index % 2 == 0 else ("torch", "tinyconv")
        for side in sides:
            result = _run_worker(side, args.threads, args.repeats)
            for row in ROWS:
                for phase in ("forward", "forward_backward"):
                    samples[side][row][phase] += result[row][phase]
            if "gemm" in result:
                gemm_rates.append(result["gemm"])

    def median_ms(side: str, row: str, phase: str) -> float:
        return 1e3 * statistics.median(samples[side][row][phase])

    print(
        f"tinyconv vs PyTorch (CPU, {args.threads} threads, medians of {args.rounds} rounds "
        f"x {args.repeats} runs, float32)"
    )
    header = (
        f"{'':3}{'what':40}{'fwd ms':>9}{'torch':>9}{'ratio':>7}"
        f"{'fwd+bwd ms':>12}{'torch':>9}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for row, (_, _, _, _, what) in ROWS.items():
        ours_f, theirs_f = median_ms("tinyconv", row, "forward"), median_ms("torch", row, "forward")
        ours_b = median_ms("tinyconv", row, "forward_backward")
        theirs_b = median_ms("torch", row, "forward_backward")
        print(
            f"({row}) {what:40}{ours_f:9.2f}{theirs_f:9.2f}{ours_f / theirs_f:7.2f}"
            f"{ours_b:12.2f}{theirs_b:9.2f}{ours_b / theirs_b:7.2f}"
        )
    gemm = statistics.median(gemm_rates)
    flops = conv_flops("c")
    forward_rate = flops / median_ms("tinyconv", "c", "forward") * 1e-6
    # forward + input gradient + weight gradient: three products of the same size
    training_rate = 3 * flops / median_ms("tinyconv", "c", "forward_backward") * 1e-6
    print("-" * len(header))
    print(f"float32 GEMM ({GEMM_SIZE}x{GEMM_SIZE}, NumPy's BLAS): {gemm:.0f} GFLOP/s")
    # other processes on the same cores slow both sides, threaded BLAS most: say so
    print(f"load average (1 min) before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    print(
        f"(c) tinyconv: forward {forward_rate:.0f} GFLOP/s ({forward_rate / gemm:.0%} of GEMM), "
        f"forward+backward {training_rate:.0f} GFLOP/s ({training_rate / gemm:.0%} of GEMM)"
    )


if __name__ == "__main__":
    main()
