"""Training parity: the same network in tinyconv and PyTorch, started from the same
weights (PyTorch's state dict loaded into ours through NumPy), trained five steps in
float64 with SGD (momentum, weight decay) and with Adam. Every loss and every final
weight must agree to 1e-8 relative: forward, backward, loss and update rule together.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn as nn
from tinyconv import optim

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from lenet_mnist import build_lenet5  # noqa: E402


def to_numpy(tensor: tc.Tensor) -> numpy.ndarray:
    """A tensor's values as a host NumPy array, whatever its device."""
    return numpy.asarray(tc.backend.to_device(tensor.data, "cpu"))


STEPS = 5
BATCH = 8
RTOL = 1e-8

OPTIMIZERS = {
    "sgd": ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}),
    "adam": ("Adam", {"lr": 1e-3}),
}


def mlp(layers):
    """A small multilayer perceptron on 1x8x8 images, with BatchNorm, in either library."""
    return layers.Sequential(
        layers.Flatten(),
        layers.Linear(64, 32),
        layers.BatchNorm1d(32),
        layers.ReLU(),
        layers.Linear(32, 16),
        layers.Tanh(),
        layers.Linear(16, 10),
    )


def batches(image_shape):
    generator = numpy.random.default_rng(0)
    for _ in range(STEPS):
        images = generator.standard_normal((BATCH,) + image_shape)
        labels = generator.integers(0, 10, BATCH)
        yield images, labels


def train_both(build, image_shape, optimizer_key):
    """Five steps in each library; returns (our losses, their losses, our model, theirs)."""
    torch.manual_seed(0)
    theirs = build(torch.nn).double()
    ours = build(nn).double()
    ours.load_state_dict({name: value.numpy() for name, value in theirs.state_dict().items()})
    name, options = OPTIMIZERS[optimizer_key]
    our_optimizer = getattr(optim, name)(ours.parameters(), **options)
    their_optimizer = getattr(torch.optim, name)(theirs.parameters(), **options)
    our_losses, their_losses = [], []
    for images, labels in batches(image_shape):
        our_optimizer.zero_grad()
        loss = nn.CrossEntropyLoss()(ours(tc.tensor(images)), tc.tensor(labels))
        loss.backward()
        our_optimizer.step()
        our_losses.append(loss.item())

        their_optimizer.zero_grad()
        their_loss = torch.nn.CrossEntropyLoss()(theirs(torch.tensor(images)), torch.tensor(labels))
        their_loss.backward()
        their_optimizer.step()
        their_losses.append(their_loss.item())
    return our_losses, their_losses, ours, theirs


def assert_same_training(our_losses, their_losses, ours, theirs):
    numpy.testing.assert_allclose(our_losses, their_losses, rtol=RTOL)
    assert len(set(their_losses)) == STEPS  # the weights did move between steps
    our_state = ours.state_dict()
    for name, expected in theirs.state_dict().items():
        expected = expected.numpy()
        got = to_numpy(our_state[name])
        # relative to the tensor's scale, so that entries near zero are held to it too
        scale = max(numpy.abs(expected).max(), 1e-300)
        assert numpy.abs(got - expected).max() <= RTOL * scale, name


@pytest.mark.parametrize("optimizer_key", sorted(OPTIMIZERS))
def test_mlp_trains_like_pytorch(optimizer_key):
    assert_same_training(*train_both(mlp, (1, 8, 8), optimizer_key))


@pytest.mark.parametrize("optimizer_key", sorted(OPTIMIZERS))
def test_lenet5_trains_like_pytorch(optimizer_key):
    # the network the example trains, built once from each library's layers
    assert_same_training(*train_both(build_lenet5, (1, 28, 28), optimizer_key))
