"""Dataset, TensorDataset and DataLoader: batching, shuffling by seed, resuming."""

import numpy
import pytest

import tinyconv as tc
from tinyconv.data import DataLoader, Dataset, TensorDataset, default_collate


def numbered(count):
    """A TensorDataset whose sample i is (i, 10 * i), so batches show their indices."""
    x = tc.tensor(numpy.arange(count, dtype=numpy.float32).reshape(count, 1))
    y = tc.tensor(numpy.arange(count, dtype=numpy.int64) * 10)
    return TensorDataset(x, y)


def indices_of(loader):
    return [x.numpy()[:, 0].astype(int).tolist() for x, _ in loader]


class CountingDataset(Dataset):
    """Records each __getitem__ call; batched or not depending on the class flag."""

    def __init__(self, count):
        self.values = numpy.arange(count)
        self.calls = 0

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        self.calls += 1
        if isinstance(index, numpy.ndarray):
            return tc.tensor(self.values[index]), tc.tensor(self.values[index] * 2)
        return int(self.values[index]), float(self.values[index] * 2)


class BatchedCountingDataset(CountingDataset):
    supports_index_arrays = True


def test_tensor_dataset_gives_rows_and_batches():
    dataset = numbered(5)
    assert len(dataset) == 5
    x, y = dataset[3]
    assert x.shape == (1,) and y.item() == 30
    x, y = dataset[numpy.array([4, 0])]
    assert x.shape == (2, 1) and y.tolist() == [40, 0]


def test_tensor_dataset_checks_its_tensors():
    with pytest.raises(ValueError, match="first dimension 3"):
        TensorDataset(tc.zeros(3, 2), tc.zeros(4))
    with pytest.raises(TypeError, match="expected a Tensor"):
        TensorDataset(tc.zeros(3), numpy.zeros(3))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="zero-dimensional"):
        TensorDataset(tc.tensor(1.0))


def test_batches_in_order_keep_the_last_partial_batch():
    loader = DataLoader(numbered(10), batch_size=4)
    assert len(loader) == 3
    assert indices_of(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    x, y = next(iter(loader))
    assert x.shape == (4, 1) and x.dtype == tc.float32
    assert y.tolist() == [0, 10, 20, 30] and y.dtype == tc.int64


def test_drop_last_drops_the_partial_batch():
    loader = DataLoader(numbered(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert indices_of(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(numbered(8), batch_size=4, drop_last=True)) == 2


def test_default_batch_size_is_one():
    assert indices_of(DataLoader(numbered(3))) == [[0], [1], [2]]


def test_shuffle_is_repeatable_by_seed():
    first = indices_of(DataLoader(numbered(50), batch_size=8, shuffle=True, seed=7))
    again = indices_of(DataLoader(numbered(50), batch_size=8, shuffle=True, seed=7))
    other = indices_of(DataLoader(numbered(50), batch_size=8, shuffle=True, seed=8))
    assert first == again
    assert first != other
    assert sorted(sum(first, [])) == list(range(50))
    assert [len(batch) for batch in first] == [8] * 6 + [2]


def test_each_epoch_is_a_new_permutation_of_every_sample():
    loader = DataLoader(numbered(40), batch_size=40, shuffle=True, seed=0)
    epochs = [indices_of(loader)[0] for _ in range(3)]
    assert all(sorted(order) == list(range(40)) for order in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_shuffle_without_seed_follows_manual_seed():
    tc.manual_seed(123)
    first = [indices_of(loader) for loader in [DataLoader(numbered(30), 5, shuffle=True)] * 2]
    tc.manual_seed(123)
    again = [indices_of(loader) for loader in [DataLoader(numbered(30), 5, shuffle=True)] * 2]
    assert first == again


def test_resuming_mid_epoch_continues_exactly():
    reference = DataLoader(numbered(23), batch_size=4, shuffle=True, seed=5)
    expected = indices_of(reference) + indices_of(reference)  # epochs 0 and 1

    loader = DataLoader(numbered(23), batch_size=4, shuffle=True, seed=5)
    indices_of(loader)  # epoch 0
    seen = []
    for x, _ in loader:  # epoch 1, interrupted after 2 batches
        seen.append(x.numpy()[:, 0].astype(int).tolist())
        if len(seen) == 2:
            break
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 2

    resumed = DataLoader(numbered(23), batch_size=4, shuffle=True, seed=999)
    resumed.load_state_dict(state)
    rest = indices_of(resumed)
    assert seen + rest == expected[6:]
    # the epoch after that is the one the uninterrupted loader would have had next
    assert indices_of(resumed) == indices_of(reference)


def test_state_saved_at_an_epoch_end_starts_the_next_epoch():
    loader = DataLoader(numbered(9), batch_size=3, shuffle=True, seed=1)
    indices_of(loader)
    state = loader.state_dict()
    following = indices_of(loader)
    resumed = DataLoader(numbered(9), batch_size=3, shuffle=True)
    resumed.load_state_dict(state)
    assert indices_of(resumed) == following


def test_state_round_trips_through_save_and_load(tmp_path):
    loader = DataLoader(numbered(9), batch_size=2, shuffle=True)
    iterator = iter(loader)
    next(iterator)
    tc.save({"loader": loader.state_dict()}, tmp_path / "state.safetensors")
    resumed = DataLoader(numbered(9), batch_size=2, shuffle=True)
    resumed.load_state_dict(tc.load(tmp_path / "state.safetensors")["loader"])
    assert indices_of(resumed) == [x.numpy()[:, 0].astype(int).tolist() for x, _ in iterator]


def test_set_epoch_selects_that_epochs_order():
    loader = DataLoader(numbered(12), batch_size=12, shuffle=True, seed=3)
    orders = [indices_of(loader) for _ in range(3)]
    loader.set_epoch(1)
    assert indices_of(loader) == orders[1]
    assert loader.order(2).tolist() == orders[2][0]


def test_load_state_dict_checks_the_dataset_length():
    state = DataLoader(numbered(9), batch_size=2, shuffle=True, seed=0).state_dict()
    with pytest.raises(ValueError, match="9 samples"):
        DataLoader(numbered(10), batch_size=2, shuffle=True).load_state_dict(state)
    with pytest.raises(ValueError, match="expected"):
        DataLoader(numbered(9)).load_state_dict({"seed": 0})


def test_datasets_with_index_arrays_are_fetched_once_per_batch():
    dataset = BatchedCountingDataset(10)
    batches = list(DataLoader(dataset, batch_size=4))
    assert dataset.calls == 3
    assert batches[-1][0].tolist() == [8, 9]


def test_other_datasets_are_fetched_per_sample_and_collated():
    dataset = CountingDataset(10)
    batches = list(DataLoader(dataset, batch_size=4))
    assert dataset.calls == 10
    numbers, doubles = batches[0]
    assert numbers.tolist() == [0, 1, 2, 3] and numbers.dtype == tc.int64
    assert doubles.tolist() == [0.0, 2.0, 4.0, 6.0] and doubles.dtype == tc.float64


def test_default_collate_stacks_fields():
    samples = [(tc.ones(2, 3), {"id": i, "name": f"n{i}"}, numpy.zeros(2)) for i in range(4)]
    images, info, arrays = default_collate(samples)
    assert images.shape == (4, 2, 3)
    assert info["id"].tolist() == [0, 1, 2, 3] and info["name"] == ["n0", "n1", "n2", "n3"]
    assert arrays.shape == (4, 2) and arrays.dtype == tc.float64
    with pytest.raises(TypeError, match="cannot batch"):
        default_collate([object()])


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"batch_size": 0}, ValueError, "batch_size=0"),
        ({"batch_size": 2.5}, TypeError, "batch_size=2.5"),
        ({"shuffle": "yes"}, TypeError, "shuffle='yes'"),
        ({"drop_last": 1}, TypeError, "drop_last=1"),
        ({"seed": 1.5}, TypeError, "seed=1.5"),
    ],
)
def test_arguments_are_checked(arguments, error, message):
    with pytest.raises(error, match=message):
        DataLoader(numbered(3), **arguments)
    with pytest.raises(TypeError, match="dataset"):
        DataLoader(5)


def saved_state(**changes):
    """The state of a shuffling loader over 9 samples in batches of 2 (5 batches), changed."""
    state = {"seed": 4, "epoch": 1, "batches_done": 2, "dataset_length": 9}
    state.update(changes)
    return state


@pytest.mark.parametrize(
    "state, error, message",
    [
        (
            saved_state(batches_done=-5),
            ValueError,
            r"batches_done'\]=-5 is out of range; .* 0 to 5",
        ),
        (saved_state(batches_done=6), ValueError, r"batches_done'\]=6 is out of range"),
        (saved_state(batches_done="2"), TypeError, r"batches_done'\]='2' must be an int"),
        (saved_state(batches_done=2.0), TypeError, r"batches_done'\]=2.0 must be an int"),
        (saved_state(seed="abc"), TypeError, r"seed'\]='abc' must be an int or None"),
        (saved_state(seed=1.5), TypeError, r"seed'\]=1.5"),
        (saved_state(seed=None), ValueError, r"seed'\]=None .* expected an int seed"),
        (saved_state(epoch=-2), ValueError, r"epoch'\]=-2 must be -1"),
        (saved_state(epoch=True), TypeError, r"epoch'\]=True must be an int"),
        (saved_state(epoch=-1, batches_done=2), ValueError, r"epoch'\]=-1: .* expected 0"),
        (saved_state(dataset_length="9"), TypeError, r"dataset_length'\]='9' must be an int"),
        ([("seed", 4)], TypeError, "state is a list; expected the dict"),
    ],
)
def test_load_state_dict_checks_each_value(state, error, message):
    loader = DataLoader(numbered(9), batch_size=2, shuffle=True, seed=7)
    expected = indices_of(DataLoader(numbered(9), batch_size=2, shuffle=True, seed=7))
    with pytest.raises(error, match=message):
        loader.load_state_dict(state)
    # a refused state changes nothing
    assert loader.seed == 7 and indices_of(loader) == expected


def test_load_state_dict_accepts_numpy_integers_and_the_ends_of_the_range():
    loader = DataLoader(numbered(9), batch_size=2, shuffle=True)
    loader.load_state_dict(saved_state(seed=numpy.int64(-3), batches_done=numpy.int64(0)))
    reference = DataLoader(numbered(9), batch_size=2, shuffle=True, seed=-3)
    reference.set_epoch(1)
    assert indices_of(loader) == indices_of(reference)  # epoch 1 from its first batch
    loader.load_state_dict(saved_state(batches_done=5))  # epoch 1 done: epoch 2 is next
    assert loader.state_dict()["epoch"] == 1 and len(indices_of(loader)) == 5
    assert loader.state_dict()["epoch"] == 2
    loader.load_state_dict(saved_state(epoch=-1, batches_done=0))  # never iterated
    assert indices_of(loader) == indices_of(DataLoader(numbered(9), 2, shuffle=True, seed=4))


def test_a_state_without_a_seed_loads_into_a_loader_that_does_not_shuffle():
    state = DataLoader(numbered(9), batch_size=2).state_dict()
    assert state["seed"] is None
    loader = DataLoader(numbered(9), batch_size=2)
    loader.load_state_dict(state)
    assert indices_of(loader) == [[0, 1], [2, 3], [4, 5], [6, 7], [8]]


@pytest.mark.parametrize(
    "epoch, error, message",
    [(-1, ValueError, "epoch=-1 must be 0 or more"), ("1", TypeError, "epoch='1' must be an int")],
)
def test_set_epoch_checks_its_argument(epoch, error, message):
    with pytest.raises(error, match=message):
        DataLoader(numbered(3), shuffle=True, seed=0).set_epoch(epoch)
