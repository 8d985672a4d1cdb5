"""The main job end to end, on a tiny generated MNIST: checkpoints, resume, plot, weights."""

import sys
from pathlib import Path

import numpy
import pytest

import tinyconv as tc
from tinyconv.datasets import write_idx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import lenet_mnist  # noqa: E402


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    """IDX files of digits drawn as class-dependent stripes, so training can learn them."""
    root = tmp_path_factory.mktemp("mnist")
    rng = numpy.random.default_rng(0)
    for prefix, count in (("train", 192), ("t10k", 64)):
        labels = rng.integers(0, 10, count).astype(numpy.uint8)
        images = rng.integers(0, 40, (count, 28, 28)).astype(numpy.uint8)
        for index, label in enumerate(labels):
            images[index, 2 * label + 4 : 2 * label + 7, 4:24] = 255
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


def run(tiny_mnist, out, *extra):
    argv = ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "2"]
    argv += ["--batch-size", "32", "--no-progress", "--seed", "3", *extra]
    return lenet_mnist.main(argv)


def test_training_writes_checkpoint_weights_and_plot(tiny_mnist, tmp_path, capsys):
    result = run(tiny_mnist, tmp_path)
    assert not result["interrupted"]
    assert len(result["history"]["test_accuracy"]) == 2
    assert (tmp_path / lenet_mnist.CHECKPOINT_NAME).exists()
    assert (tmp_path / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    weights = tc.load(tmp_path / lenet_mnist.WEIGHTS_NAME)
    assert weights["0.weight"].shape == (6, 1, 5, 5)
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line.startswith("test accuracy") and "after 2 epochs" in last_line


def test_resume_continues_exactly_where_training_stopped(tiny_mnist, tmp_path):
    straight = run(tiny_mnist, tmp_path / "straight")
    stopped = run(tiny_mnist, tmp_path / "resumed", "--stop-after", "4")
    assert stopped["interrupted"]
    state = tc.load(stopped["checkpoint"])
    assert state["loader"]["batches_done"] == 4 and state["epoch"] == 0
    resumed = run(tiny_mnist, tmp_path / "resumed", "--resume")
    assert resumed["history"]["train_loss"] == pytest.approx(
        straight["history"]["train_loss"], rel=1e-6
    )
    ours = tc.load(resumed["weights"])
    theirs = tc.load(straight["weights"])
    for name, value in theirs.items():
        numpy.testing.assert_allclose(ours[name].numpy(), value.numpy(), rtol=1e-6, atol=1e-7)


def test_stopping_on_the_last_batch_of_an_epoch_still_finishes_that_epoch(tiny_mnist, tmp_path):
    batches_per_epoch = 192 // 32
    run(tiny_mnist, tmp_path, "--stop-after", str(batches_per_epoch))
    state = tc.load(tmp_path / lenet_mnist.CHECKPOINT_NAME)
    assert state["epoch"] == 1 and len(state["history"]["test_accuracy"]) == 1
    resumed = run(tiny_mnist, tmp_path, "--resume")
    assert len(resumed["history"]["test_accuracy"]) == 2


def test_resume_without_a_checkpoint_says_so(tiny_mnist, tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint"):
        run(tiny_mnist, tmp_path, "--resume")


def test_missing_data_gives_a_message_not_a_traceback(tmp_path, monkeypatch):
    # no files and no reachable mirror: the loader's error becomes the exit message
    monkeypatch.setattr(
        "tinyconv.datasets.mnist.MNIST.mirrors", ["http://127.0.0.1:9/"], raising=False
    )
    with pytest.raises(SystemExit) as raised:
        lenet_mnist.main(["--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path)])
    assert "train-images-idx3-ubyte" in str(raised.value)


def test_pytorch_lenet_loads_the_saved_weights(tiny_mnist, tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    result = run(tiny_mnist, tmp_path, "--epochs", "1")
    from torch import nn

    theirs = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip
    theirs.load_state_dict(safetensors_torch.load_file(str(result["weights"])))
    model = lenet_mnist.build_lenet5()
    model.load_state_dict(tc.load(result["weights"]))
    images = numpy.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(numpy.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(images)).numpy()
    with tc.no_grad():
        numpy.testing.assert_allclose(
            model(tc.tensor(images)).numpy(), expected, rtol=1e-4, atol=1e-5
        )
