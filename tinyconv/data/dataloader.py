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
from tinyconv.dtypes import is_int
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
        if not is_int(batch_size):
            raise TypeError(f"batch_size={batch_size!r} must be a positive int")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be a positive int")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, numpy.bool_)):
                raise TypeError(f"{name}={flag!r} must be True or False")
        if seed is not None and not is_int(seed):
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
        if not is_int(epoch):
            raise TypeError(f"epoch={epoch!r} must be an int")
        if epoch < 0:
            raise ValueError(f"epoch={epoch} must be 0 or more")
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
        """Continue from ``state``: a mid-epoch state finishes that epoch next.

        Raises:
            TypeError, ValueError: naming the entry, when ``state`` is not what
                ``state_dict()`` gives for this loader's dataset and number of batches.
        """
        expected = {"seed", "epoch", "batches_done", "dataset_length"}
        if not isinstance(state, dict):
            raise TypeError(
                f"state is a {type(state).__name__}; expected the dict state_dict() returns"
            )
        if set(state) != expected:
            raise ValueError(f"state has keys {sorted(state)}; expected {sorted(expected)}")
        seed, epoch = state["seed"], state["epoch"]
        batches_done, dataset_length = state["batches_done"], state["dataset_length"]
        for name in ("epoch", "batches_done", "dataset_length"):
            if not is_int(state[name]):
                raise TypeError(f"state['{name}']={state[name]!r} must be an int")
        if seed is not None and not is_int(seed):
            raise TypeError(f"state['seed']={seed!r} must be an int or None")
        if seed is None and self.shuffle:
            raise ValueError(
                "state['seed']=None (saved by a loader that does not shuffle) cannot order "
                "this loader, which shuffles; expected an int seed"
            )
        if dataset_length != len(self.dataset):
            raise ValueError(
                f"state was saved for a dataset of {dataset_length} samples; this "
                f"loader's dataset has {len(self.dataset)}"
            )
        if epoch < -1:
            raise ValueError(f"state['epoch']={epoch} must be -1 (not started) or more")
        if epoch == -1 and batches_done != 0:
            raise ValueError(
                f"state['batches_done']={batches_done} with state['epoch']=-1: a loader that "
                "has not started an epoch has handed out no batches; expected 0"
            )
        if not 0 <= batches_done <= len(self):
            raise ValueError(
                f"state['batches_done']={batches_done} is out of range; expected 0 to "
                f"{len(self)}, the number of batches in one epoch of this loader"
            )
        self.seed = None if seed is None else int(seed)
        self._epoch = int(epoch)
        self._position = int(batches_done)
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
