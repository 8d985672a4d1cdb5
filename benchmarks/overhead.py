"""Python overhead per op: ``a + b`` on 1-element tensors, and a backward pass through a
chain of 10,000 ops — tinyconv beside NumPy and PyTorch.

    python benchmarks/overhead.py [--rounds 5]

Each measurement runs in a subprocess of its own (so no library warms or slows another),
the rounds alternate between them (so drift in machine load touches all alike), and the
table shows the median over rounds of each subprocess's best ``timeit`` repeat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import timeit

CHAIN_LENGTH = 10_000

# name -> (setup, statement); the setup imports only the library it measures
ADD = {
    "NumPy": ("import numpy; a = numpy.ones(1, numpy.float32); b = numpy.ones(1, numpy.float32)"),
    "tinyconv, no grad": "import tinyconv as tc; a = tc.ones(1); b = tc.ones(1)",
    "tinyconv, with grad": (
        "import tinyconv as tc; a = tc.ones(1, requires_grad=True); "
        "b = tc.ones(1, requires_grad=True)"
    ),
    "PyTorch, no grad": "import torch; a = torch.ones(1); b = torch.ones(1)",
    "PyTorch, with grad": (
        "import torch; a = torch.ones(1, requires_grad=True); b = torch.ones(1, requires_grad=True)"
    ),
}

CHAIN = {
    "tinyconv": "import tinyconv as lib",
    "PyTorch": "import torch as lib",
}


def measure_add(name: str, clock) -> float:
    """Microseconds per ``a + b``: the best of 7 repeats of a loop of about 0.2 s."""
    timer = timeit.Timer("a + b", setup=ADD[name], timer=clock)
    number, _ = timer.autorange()
    number = max(number, 10_000)
    return min(timer.repeat(repeat=7, number=number)) / number * 1e6


def measure_chain(name: str, clock) -> dict[str, float]:
    """Milliseconds to build a chain of ``CHAIN_LENGTH`` multiplications and to
    backpropagate through it (best of 5 fresh chains)."""
    namespace: dict = {}
    exec(CHAIN[name], namespace)
    lib = namespace["lib"]
    forward, backward = [], []
    for _ in range(5):
        x = lib.ones(1, requires_grad=True)
        start = clock()
        y = x
        for _ in range(CHAIN_LENGTH):
            y = y * 1.0001
        loss = y.sum()
        built = clock()
        loss.backward()
        done = clock()
        forward.append((built - start) * 1e3)
        backward.append((done - built) * 1e3)
        del y, loss
    return {"forward": min(forward), "backward": min(backward)}


def run_worker(kind: str, name: str, wall: bool) -> object:
    """Run one measurement in a fresh interpreter; None when PyTorch is not installed."""
    command = [sys.executable, __file__, "--worker", kind, name] + (["--wall"] if wall else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        if "No module named 'torch'" in result.stderr:
            return None
        raise RuntimeError(f"{kind} {name!r} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wall", action="store_true", help="time wall-clock, not CPU")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, name = args.worker
        clock = time.perf_counter if args.wall else time.process_time
        measure = measure_add if kind == "add" else measure_chain
        print(json.dumps(measure(name, clock)))
        return

    add_times: dict[str, list] = {name: [] for name in ADD}
    chain_times: dict[str, list] = {name: [] for name in CHAIN}
    for round_number in range(args.rounds):
        print(f"round {round_number + 1}/{args.rounds}", file=sys.stderr)
        for name in ADD:
            add_times[name].append(run_worker("add", name, args.wall))
        for name in CHAIN:
            chain_times[name].append(run_worker("chain", name, args.wall))

    numpy_time = statistics.median(add_times["NumPy"])
    clock = "wall-clock" if args.wall else "CPU"
    rounds = f"{clock} time, median of {args.rounds} rounds"
    print(f"a + b on 1-element float32 tensors ({rounds})")
    print(f"{'':24}{'µs per op':>12}{'× NumPy':>10}")
    for name, times in add_times.items():
        if times[0] is None:
            print(f"{name:24}{'not installed':>12}")
            continue
        median = statistics.median(times)
        print(f"{name:24}{median:12.2f}{median / numpy_time:10.1f}")
    print()
    print(f"a chain of {CHAIN_LENGTH:,} multiplications ({rounds})")
    print(f"{'':24}{'forward ms':>12}{'backward ms':>13}")
    for name, times in chain_times.items():
        if times[0] is None:
            print(f"{name:24}{'not installed':>12}")
            continue
        forward = statistics.median(t["forward"] for t in times)
        backward = statistics.median(t["backward"] for t in times)
        print(f"{name:24}{forward:12.1f}{backward:13.1f}")


if __name__ == "__main__":
    main()
