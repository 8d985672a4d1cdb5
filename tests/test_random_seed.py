"""tc.manual_seed: PyTorch's range of seeds, negative ones included; anything else refused."""

import numpy
import pytest
from helpers import to_numpy

import tinyconv as tc
from tinyconv.data import DataLoader, TensorDataset


def draws(seed, device="cpu"):
    tc.manual_seed(seed)
    return to_numpy(tc.rand(4, device=device))


def test_the_same_seed_repeats_the_draws(device):
    numpy.testing.assert_array_equal(draws(3, device), draws(3, device))
    assert not numpy.array_equal(draws(3, device), draws(4, device))


@pytest.mark.parametrize(
    "negative, unsigned", [(-1, 2**64 - 1), (-5, 2**64 - 5), (-(2**63), 2**63)]
)
def test_a_negative_seed_is_its_64_bit_twos_complement_as_in_pytorch(device, negative, unsigned):
    numpy.testing.assert_array_equal(draws(negative, device), draws(unsigned, device))


@pytest.mark.parametrize("seed", [0, 2**63, 2**64 - 1, -(2**63), numpy.int64(-1), numpy.uint64(7)])
def test_every_seed_in_range_draws(device, seed):
    tc.manual_seed(seed)
    assert tc.randn(3, device=device).shape == (3,)
    assert tc.rand(2, 2, device=device).shape == (2, 2)


def test_a_negative_seed_also_seeds_data_loader_shuffling():
    dataset = TensorDataset(tc.tensor(numpy.arange(10)))
    tc.manual_seed(-1)
    first = [batch.tolist() for (batch,) in DataLoader(dataset, batch_size=5, shuffle=True)]
    tc.manual_seed(-1)
    again = [batch.tolist() for (batch,) in DataLoader(dataset, batch_size=5, shuffle=True)]
    assert first == again


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1, 10**30, -(10**30)])
def test_a_seed_out_of_range_raises_value_error(seed):
    with pytest.raises(ValueError, match=rf"seed={seed} .*\[-2\*\*63, 2\*\*64\)"):
        tc.manual_seed(seed)


@pytest.mark.parametrize("seed", [1.5, "1", True, None, [1]])
def test_a_seed_that_is_not_an_int_raises_type_error(seed):
    with pytest.raises(TypeError, match="seed=.* must be an int"):
        tc.manual_seed(seed)


def test_a_refused_seed_leaves_the_generators_as_they_were():
    tc.manual_seed(11)
    expected = to_numpy(tc.rand(3))
    tc.manual_seed(11)
    with pytest.raises(ValueError):
        tc.manual_seed(2**64)
    numpy.testing.assert_array_equal(to_numpy(tc.rand(3)), expected)
