"""``DataLoader``: a dataset in batches, in order or shuffled repeatably.

Each batch is fetched with one index array. When the dataset supports index arrays
(``TensorDataset``, ``MNIST``) that is one gather per array; otherwise the samples
are fetched one by one and stacked by ``default_collate``.

Shuffling is repeatable and resumable. The order of epoch ``e`` is a permutation
drawn from a generator seeded with ``(seed, e)``, so it depends on nothing but the
seed and the epoch number: not on how many random numbers training drew in
between. ``state_dict()`` records the seed, the epoch and how many of its batches
were handed out; ``load_state_dict()`` makes the next iteration continue from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy

from tinyconv.backend import get_array_module, random_generator
from tinyconv.tensor import Tensor

__all__ = ["DataLoader", "default_collate"]


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples.

    Args:
        dataset: a ``Dataset`` (anything with ``__len__`` and ``__getitem__``).
        batch_size: samples per batch.
        shuffle: visit the samples in a new random order each epoch.
        drop_last: skip the last batch when it has fewer than ``batch_size`` samples.
        seed: seeds the shuffling; by default a seed is drawn from tinyconv's random
            generator, so ``tc.manual_seed`` makes the order repeatable too.

    Each ``iter(loader)`` (each ``for`` loop) is a new epoch, except the first one
    after ``load_state_dict`` of a state saved mid-epoch, which finishes that epoch.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
    ) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                f"dataset is a {type(dataset).__name__}; expected a Dataset with __len__ "
                "and __getitem__"
            )
        if not isinstance(batch_size, (int, numpy.integer)) or isinstance(batch_size, bool):
            raise TypeError(f"batch_size={batch_size!r} must be a positive int")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be a positive int")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, numpy.bool_)):
                raise TypeError(f"{name}={flag!r} must be True or False")
        if seed is not None and (
            not isinstance(seed, (int, numpy.integer)) or isinstance(seed, bool)
        ):
            raise TypeError(f"seed={seed!r} must be an int or None")

        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if seed is None and self.shuffle:
            seed = int(random_generator("cpu").integers(2**63))
        self.seed = None if seed is None else int(seed)
        self._epoch = -1  # the epoch being iterated, or the last one
        self._position = 0  # how many of its batches were handed out
        self._resume = False  # the next iteration finishes self._epoch

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        samples = len(self.dataset)
        if self.drop_last:
            return samples // self.batch_size
        return -(-samples // self.batch_size)  # ceiling division

    def order(self, epoch: int) -> numpy.ndarray:
        """The sample indices of ``epoch`` in the order they are visited (int64, on CPU)."""
        samples = len(self.dataset)
        if not self.shuffle:
            return numpy.arange(samples, dtype=numpy.int64)
        # SeedSequence mixes (seed, epoch) into independent streams; it needs
        # non-negative entropy, hence the wrap to 64 bits.
        generator = numpy.random.default_rng([self.seed % 2**64, epoch])
        return generator.permutation(samples).astype(numpy.int64, copy=False)

    def __iter__(self) -> Iterator[Any]:
        if self._resume:
            self._resume = False
        else:
            self._epoch += 1
            self._position = 0
        return self._batches(self._epoch, self._position)

    def _batches(self, epoch: int, start: int) -> Iterator[Any]:
        order = self.order(epoch)
        for batch in range(start, len(self)):
            indices = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            self._position = batch + 1  # counted when handed out: a checkpoint taken
            yield self._fetch(indices)  # after training on it does not repeat it

    def _fetch(self, indices: numpy.ndarray) -> Any:
        if getattr(self.dataset, "supports_index_arrays", False):
            return self.dataset[indices]
        return default_collate([self.dataset[int(index)] for index in indices])

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (from its first batch)."""
        self._epoch = int(epoch) - 1
        self._position = 0
        self._resume = False

    def state_dict(self) -> dict[str, Any]:
        """Where the shuffling stands: save it with a checkpoint to resume exactly."""
        return {
            "seed": self.seed,
            "epoch": self._epoch,
            "batches_done": self._position,
            "dataset_length": len(self.dataset),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: a mid-epoch state finishes that epoch next."""
        expected = {"seed", "epoch", "batches_done", "dataset_length"}
        if not isinstance(state, dict) or set(state) != expected:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state has keys {keys}; expected {sorted(expected)}")
        if state["dataset_length"] != len(self.dataset):
            raise ValueError(
                f"state was saved for a dataset of {state['dataset_length']} samples; this "
                f"loader's dataset has {len(self.dataset)}"
            )
        self.seed = state["seed"]
        self._epoch = int(state["epoch"])
        self._position = int(state["batches_done"])
        self._resume = self._epoch >= 0 and self._position < len(self)


def default_collate(samples: list[Any]) -> Any:
    """Stack a list of samples into a batch, field by field.

    Tensors and arrays are stacked along a new dimension 0; Python ints become an
    int64 tensor, floats float64 and bools bool (as in PyTorch); strings stay a list;
    tuples, lists and dicts are collated per field.
    """
    first = samples[0]
    if isinstance(first, Tensor):
        arrays = [sample.data for sample in samples]
        return Tensor(get_array_module(arrays[0]).stack(arrays))
    if isinstance(first, (numpy.ndarray, numpy.generic)):
        return Tensor(numpy.stack([numpy.asarray(sample) for sample in samples]))
    if isinstance(first, bool):
        return Tensor(numpy.array(samples, dtype=numpy.bool_))
    if isinstance(first, int):
        return Tensor(numpy.array(samples, dtype=numpy.int64))
    if isinstance(first, float):
        return Tensor(numpy.array(samples, dtype=numpy.float64))
    if isinstance(first, str):
        return list(samples)
    if isinstance(first, dict):
        return {key: default_collate([sample[key] for sample in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(sample) != len(first) for sample in samples):
            raise ValueError("every sample in a batch must have the same number of fields")
        fields = [default_collate(list(field)) for field in zip(*samples)]
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(
        f"default_collate cannot batch samples of type {type(first).__name__}; expected "
        "Tensors, NumPy arrays, numbers, strings, or tuples, lists and dicts of them"
    )
