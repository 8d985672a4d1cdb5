"""LeNet-5 training throughput: tinyconv beside PyTorch CPU, same machine, same run.

Each measurement runs in its own process (the two libraries' thread pools would fight
over the cores in one), the sides alternate, and the table gives medians.

    python benchmarks/lenet.py [--rounds 5] [--steps 40] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tinyconv_step(batch_size: int, device: str):
    sys.path.insert(0, str(ROOT / "examples"))
    sys.path.insert(0, str(ROOT))
    from lenet_mnist import build_lenet5

    import tinyconv as tc
    import tinyconv.nn.functional as F

    tc.manual_seed(0)
    model = build_lenet5().to(device)
    optimizer = tc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = tc.randn(batch_size, 1, 28, 28, device=device)
    labels = tc.randint(0, 10, (batch_size,), device=device)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # waits for the device, as a training loop that logs the loss does

    return step


def _torch_step(batch_size: int, device: str):
    import torch
    from torch import nn

    torch.manual_seed(0)
    # the example's build_lenet5(nn) builds this too, but importing it imports tinyconv,
    # which tunes this process's malloc: PyTorch's side is written out instead
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch_size, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)

    def step() -> None:
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()

    return step


def worker(side: str, batch_size: int, steps: int, device: str) -> None:
    """Time ``steps`` training steps after a warm-up; print one JSON line."""
    step = (_tinyconv_step if side == "tinyconv" else _torch_step)(batch_size, device)
    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    threads = None
    if side == "torch":
        import torch

        threads = torch.get_num_threads()
    print(
        json.dumps(
            {
                "images_per_s": batch_size * steps / seconds,
                "peak_rss_mb": peak_mb,
                "threads": threads,
            }
        )
    )


def measure(side: str, batch_size: int, steps: int, device: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        side,
        "--batch-size",
        str(batch_size),
        "--steps",
        str(steps),
        "--device",
        device,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="128,32")
    parser.add_argument("--worker", choices=("tinyconv", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=128, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.batch_size, args.steps, args.device)
        return

    print(
        f"LeNet-5 training step (forward + backward + SGD step), device {args.device}, "
        f"{os.cpu_count()} cores, {args.rounds} alternating rounds of {args.steps} steps; "
        "medians"
    )
    header = (
        f"{'batch':>5}  {'tinyconv img/s':>14}  {'PyTorch img/s':>13}  {'ratio':>5}  "
        f"{'tinyconv RSS MB':>15}  {'PyTorch RSS MB':>14}"
    )
    print(header)
    print("-" * len(header))
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        runs: dict[str, list[dict]] = {"tinyconv": [], "torch": []}
        for _ in range(args.rounds):
            for side in ("tinyconv", "torch"):
                runs[side].append(measure(side, batch_size, args.steps, args.device))
        ours = statistics.median(r["images_per_s"] for r in runs["tinyconv"])
        theirs = statistics.median(r["images_per_s"] for r in runs["torch"])
        our_rss = statistics.median(r["peak_rss_mb"] for r in runs["tinyconv"])
        their_rss = statistics.median(r["peak_rss_mb"] for r in runs["torch"])
        print(
            f"{batch_size:>5}  {ours:>14,.0f}  {theirs:>13,.0f}  {ours / theirs:>5.2f}  "
            f"{our_rss:>15,.0f}  {their_rss:>14,.0f}"
        )
    print(f"(PyTorch threads: {runs['torch'][0]['threads']}; ratio = tinyconv / PyTorch)")


if __name__ == "__main__":
    main()
