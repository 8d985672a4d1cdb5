"""Train LeNet-5 on MNIST: progress bars, a checkpoint every epoch, --resume, learning curves.

    python examples/lenet_mnist.py                      # 10 epochs, SGD with momentum
    python examples/lenet_mnist.py --optimizer adam --lr 1e-3
    python examples/lenet_mnist.py --limit 2000 --epochs 1   # a quick run
    python examples/lenet_mnist.py --resume             # continue where it stopped

MNIST is read from --data-dir (else $TINYCONV_DATA, else ~/.cache/tinyconv) and
downloaded there when missing. Ctrl-C saves a checkpoint before exiting; --resume
continues from it exactly: same parameters, optimizer state, data order and epoch.
A resumed run must repeat the options that define the run (--batch-size, --limit,
--seed, --optimizer, --lr, --momentum, --weight-decay); it may ask for more --epochs,
another --device or --data-dir (the same files elsewhere) and other output options.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy

import tinyconv as tc
import tinyconv.nn as nn
import tinyconv.nn.functional as F
from tinyconv.data import DataLoader, TensorDataset
from tinyconv.datasets import MNIST
from tinyconv.files import write_atomically

# The training set's mean and standard deviation of pixel values in [0, 1].
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CHECKPOINT_NAME = "checkpoint.safetensors"
WEIGHTS_NAME = "lenet5.safetensors"
# what checkpoint() in main() saves
CHECKPOINT_KEYS = "model optimizer scheduler loader rng history running epoch elapsed args".split()
# The options that define a run: its data, their batching and order, the starting
# weights and the optimizer. A resumed run that changed one would continue some other
# run from the middle (and load_state_dict would quietly put the saved learning rate
# back), so resuming refuses it. The other options may change: --epochs (the schedule
# stretches to the new end), --device, --data-dir (where the same files are) and the
# output options.
RUN_OPTIONS = ("batch_size", "limit", "seed", "optimizer", "lr", "momentum", "weight_decay")


def build_lenet5(layers: Any = nn) -> Any:
    """LeNet-5 with ReLU and max pooling: 1x28x28 digits to 10 class logits.

    ``layers`` is the module the layers come from: ``tinyconv.nn``, or ``torch.nn`` for
    the same network (the same parameter names) in PyTorch.
    """
    return layers.Sequential(
        layers.Conv2d(1, 6, kernel_size=5, padding=2),  # (N, 6, 28, 28)
        layers.ReLU(),
        layers.MaxPool2d(2),  # (N, 6, 14, 14)
        layers.Conv2d(6, 16, kernel_size=5),  # (N, 16, 10, 10)
        layers.ReLU(),
        layers.MaxPool2d(2),  # (N, 16, 5, 5)
        layers.Flatten(),  # (N, 400)
        layers.Linear(16 * 5 * 5, 120),
        layers.ReLU(),
        layers.Linear(120, 84),
        layers.ReLU(),
        layers.Linear(84, 10),
    )


def checked(
    convert: Callable[[str], Any], expected: str, accept: Callable[[Any], bool] = lambda _: True
) -> Callable[[str], Any]:
    """An argparse type: ``convert`` the text (ValueError: refused), then refuse what
    ``accept`` rejects, so a bad value is a usage error naming the option, not a
    traceback from deep inside the optimizer or the backend."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text} is not {expected}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{text} is not {expected}")
        return value

    return parse


# math.isfinite keeps out inf; nan fails every comparison, so the bounds refuse it already
positive_int = checked(int, "a whole number of at least 1", lambda n: n >= 1)
natural_int = checked(int, "a whole number of at least 0", lambda n: n >= 0)
positive_float = checked(float, "a positive number", lambda x: math.isfinite(x) and x > 0)
natural_float = checked(float, "a number of at least 0", lambda x: math.isfinite(x) and x >= 0)
momentum_float = checked(float, "a momentum: at least 0 and below 1", lambda x: 0 <= x < 1)
seed_int = checked(int, "a seed in [-2**63, 2**64)", lambda n: -(2**63) <= n < 2**64)
device_type = checked(tc.backend.normalize_device, "a device: cpu, cuda or cuda:N")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument(
        "--lr", type=positive_float, default=None, help="default: 0.03 (sgd), 1e-3 (adam)"
    )
    parser.add_argument("--momentum", type=momentum_float, default=0.9, help="sgd only")
    parser.add_argument("--weight-decay", type=natural_float, default=5e-4)
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--device", type=device_type, default="cpu", help="cpu or cuda")
    parser.add_argument("--data-dir", default=None, help="where the MNIST files are (or go)")
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="use only this many images"
    )
    parser.add_argument("--out", default="runs/lenet_mnist", help="checkpoints and plot")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --out (with the same batching, data and "
        "optimizer options)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--stop-after", type=positive_int, default=None, help=argparse.SUPPRESS
    )  # stop after this many batches, as Ctrl-C would (used by the tests)
    args = parser.parse_args(argv)
    if args.lr is None:
        args.lr = 0.03 if args.optimizer == "sgd" else 1e-3
    return args


def check_writable(folder: Path) -> None:
    """Exit now, not after an epoch of training, when checkpoints cannot go in ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        sys.exit(f"--out {folder}: cannot write checkpoints there ({error.strerror or error})")


def read_checkpoint(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The checkpoint at ``path``, checked to be this script's and to continue this run."""
    if not path.exists():
        sys.exit(f"--resume: no checkpoint at {path}")
    try:
        state = tc.load(path, map_location=args.device)
    except (OSError, RuntimeError) as error:  # tc.load names the file and what is wrong
        sys.exit(f"--resume: {error}")
    if not (
        isinstance(state, dict)
        and all(key in state for key in CHECKPOINT_KEYS)
        and isinstance(state["args"], dict)
    ):
        sys.exit(
            f"--resume: {path} is not a checkpoint of this script; start afresh without "
            "--resume, or choose another --out"
        )
    check_same_run(state["args"], args, path)
    if args.epochs < state["epoch"]:
        sys.exit(
            f"--resume: {path} has already trained {state['epoch']} epochs; "
            f"--epochs {args.epochs} asks for fewer"
        )
    return state


def check_same_run(saved: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    """Exit naming every option of ``RUN_OPTIONS`` whose value differs from the saved one."""

    def as_given(name: str, value: Any) -> str:
        option = "--" + name.replace("_", "-")
        return f"no {option}" if value is None else f"{option} {value}"

    # the checkpoint leaves out options that were not given (None)
    changed = [name for name in RUN_OPTIONS if saved.get(name) != getattr(args, name)]
    if changed:
        was = ", ".join(as_given(name, saved.get(name)) for name in changed)
        now = ", ".join(as_given(name, getattr(args, name)) for name in changed)
        sys.exit(
            f"--resume: {path} was saved with {was}, but this run asks for {now}. "
            "A resumed run must repeat the options that define it: resume with the saved "
            "values, or start afresh in another --out. (--epochs, --device, --data-dir "
            "and the output options may change.)"
        )


def load_split(root: str | None, train: bool, limit: int | None, device: str) -> TensorDataset:
    """MNIST images as normalised float32 (N, 1, 28, 28) and int64 labels, on ``device``."""
    dataset = MNIST(root=root, train=train, download=True)
    images = dataset.data.data[:limit]
    labels = dataset.targets.data[:limit]
    pixels = (images.astype(numpy.float32) / 255 - MNIST_MEAN) / MNIST_STD
    return TensorDataset(
        tc.tensor(pixels[:, None], device=device), tc.tensor(labels, device=device)
    )


def make_optimizer(args: argparse.Namespace, model: nn.Module) -> Any:
    if args.optimizer == "sgd":
        return tc.optim.SGD(
            model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
        )
    return tc.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)


@tc.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, float]:
    """(mean loss, accuracy) over a whole split."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        logits = model(images)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == labels).sum().item())
        seen += labels.shape[0]
    model.train()
    return total_loss / seen, correct / seen


class Progress:
    """A tqdm bar when tqdm is installed and wanted, else nothing."""

    def __init__(self, total: int, initial: int, description: str, enabled: bool) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                print("(install tqdm for a progress bar)", file=sys.stderr)
            else:
                self.bar = tqdm(total=total, initial=initial, desc=description, unit="batch")

    def update(self, **values: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def restore(
    state: dict[str, Any],
    path: Path,
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    loader: DataLoader,
) -> None:
    """Put back the weights, optimizer state, schedule, data order and random generator."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        loader.load_state_dict(state["loader"])
        tc.backend.random_generator("cpu").bit_generator.state = state["rng"]
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        # a damaged or foreign state, or other training data under --data-dir
        sys.exit(f"--resume: cannot continue from {path}: {type(error).__name__}: {error}")


def stretch_schedule(scheduler: Any, epochs: int) -> None:
    """Make the cosine schedule end at ``epochs``, going on from the rate the new curve
    gives the epochs already done. Changing only its period would not do: the saved rate
    of a finished run is 0, and each step only scales the rate before it."""
    scheduler.T_max = epochs
    scheduler.step(scheduler.last_epoch)  # given an epoch, step() uses the closed form


def first_batch_of_resumed_epoch(loader_state: dict[str, Any], batches_per_epoch: int) -> int:
    """Where training resumes in its epoch: inside the saved epoch, or at 0 of the next
    one when the checkpoint was saved at the end of an epoch (as DataLoader decides)."""
    batches_done = loader_state["batches_done"]
    return batches_done if batches_done < batches_per_epoch else 0


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tc.save(state, path)  # atomic: an interrupted save leaves the previous file intact


def plot_history(history: dict[str, list[float]], path: Path) -> bool:
    """Learning curves to PNG; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(install matplotlib for the learning-curve plot)", file=sys.stderr)
        return False
    epochs = range(1, len(history["train_loss"]) + 1)
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, history["train_loss"], "o-", label="train")
    loss_axes.plot(epochs, history["test_loss"], "o-", label="test")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    accuracy_axes.plot(epochs, [100 * a for a in history["train_accuracy"]], "o-", label="train")
    accuracy_axes.plot(epochs, [100 * a for a in history["test_accuracy"]], "o-", label="test")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    # a file object has no suffix to tell savefig the format
    write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=100))
    plt.close(figure)
    return True


class StopRequest:
    """The first Ctrl-C asks training to stop after the current step (so the checkpoint
    never holds a half-applied update); a second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = signal.getsignal(signal.SIGINT)

    def __enter__(self) -> StopRequest:
        signal.signal(signal.SIGINT, self.handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to stop now)", file=sys.stderr)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    checkpoint_path = out / CHECKPOINT_NAME
    device = args.device
    if device.startswith("cuda") and not tc.cuda.is_available():
        sys.exit("--device cuda: no GPU is usable here (tinyconv needs CuPy and a CUDA GPU)")
    # every check that can refuse the run comes before loading data and training
    state = read_checkpoint(checkpoint_path, args) if args.resume else None
    check_writable(out)
    tc.manual_seed(args.seed)

    try:
        train_set = load_split(args.data_dir, True, args.limit, device)
        test_set = load_split(args.data_dir, False, args.limit, device)
    except RuntimeError as error:  # no data and no network: say where to put the files
        sys.exit(str(error))
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    test_loader = DataLoader(test_set, 1000)

    model = build_lenet5().to(device)
    optimizer = make_optimizer(args, model)
    scheduler = tc.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    history: dict[str, list[float]] = {
        key: [] for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
    }
    epoch, running = 0, {"loss": 0.0, "correct": 0, "seen": 0}
    elapsed_before = 0.0
    first_batch = 0  # where the first epoch of this run starts

    if state is not None:
        restore(state, checkpoint_path, model, optimizer, scheduler, train_loader)
        if scheduler.T_max != args.epochs:  # a resumed run may ask for more epochs
            stretch_schedule(scheduler, args.epochs)
        history, running = state["history"], state["running"]
        epoch, elapsed_before = state["epoch"], state["elapsed"]
        first_batch = first_batch_of_resumed_epoch(state["loader"], len(train_loader))
        print(f"resuming at epoch {epoch + 1}, batch {first_batch}")

    def checkpoint() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "loader": train_loader.state_dict(),
            "rng": tc.backend.random_generator("cpu").bit_generator.state,
            "history": history,
            "running": running,
            "epoch": epoch,
            "elapsed": elapsed_before + time.perf_counter() - start,
            "args": {key: value for key, value in vars(args).items() if value is not None},
        }

    start = time.perf_counter()
    batches = 0
    with StopRequest() as stop:
        while epoch < args.epochs and not stop.requested:
            bar = Progress(
                len(train_loader),
                first_batch,
                f"epoch {epoch + 1}/{args.epochs}",
                not args.no_progress,
            )
            first_batch = 0  # only a resumed epoch starts part-way
            epoch_start, epoch_images = time.perf_counter(), 0
            for images, labels in train_loader:
                logits = model(images)
                loss = F.cross_entropy(logits, labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

                size = labels.shape[0]
                running["loss"] += loss.item() * size
                running["correct"] += int((logits.argmax(dim=1) == labels).sum().item())
                running["seen"] += size
                epoch_images += size
                rate = epoch_images / max(time.perf_counter() - epoch_start, 1e-9)
                bar.update(
                    loss=f"{running['loss'] / running['seen']:.4f}",
                    acc=f"{100 * running['correct'] / running['seen']:.2f}%",
                    img_s=f"{rate:,.0f}",
                )
                batches += 1
                if args.stop_after is not None and batches >= args.stop_after:
                    stop.requested = True
                if stop.requested:
                    break
            bar.close()
            if stop.requested and train_loader.state_dict()["batches_done"] < len(train_loader):
                break  # mid-epoch: the checkpoint below resumes inside this epoch

            test_loss, test_accuracy = evaluate(model, test_loader)
            history["train_loss"].append(running["loss"] / max(running["seen"], 1))
            history["train_accuracy"].append(running["correct"] / max(running["seen"], 1))
            history["test_loss"].append(test_loss)
            history["test_accuracy"].append(test_accuracy)
            running = {"loss": 0.0, "correct": 0, "seen": 0}
            scheduler.step()
            epoch += 1
            save_checkpoint(checkpoint_path, checkpoint())
            print(
                f"epoch {epoch}: train loss {history['train_loss'][-1]:.4f}, "
                f"test loss {test_loss:.4f}, test accuracy {100 * test_accuracy:.2f}%"
            )
    if stop.requested:
        save_checkpoint(checkpoint_path, checkpoint())
        print(f"stopped: checkpoint saved to {checkpoint_path}; continue with --resume")
        return {"interrupted": True, "checkpoint": checkpoint_path}

    weights_path = out / WEIGHTS_NAME
    save_checkpoint(weights_path, model.state_dict())  # PyTorch names: loads into torch
    plot_path = out / "learning_curves.png"
    plotted = plot_history(history, plot_path)
    wall = elapsed_before + time.perf_counter() - start
    final_accuracy = history["test_accuracy"][-1] if history["test_accuracy"] else math.nan
    print(f"weights: {weights_path}" + (f", learning curves: {plot_path}" if plotted else ""))
    print(
        f"test accuracy {100 * final_accuracy:.2f}% after {epoch} epochs "
        f"in {wall:.1f} s ({len(train_set)} training images, device {device})"
    )
    return {"interrupted": False, "history": history, "wall": wall, "weights": weights_path}


if __name__ == "__main__":
    main()
