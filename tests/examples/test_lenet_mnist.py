"""The main job end to end, on a tiny generated MNIST: checkpoints, resume, plot, weights."""

import shutil
import sys
from pathlib import Path

import numpy
import pytest

import tinyconv as tc
from tinyconv.datasets import write_idx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import lenet_mnist  # noqa: E402


def write_tiny_mnist(root, train_count):
    """IDX files of digits drawn as class-dependent stripes, so training can learn them."""
    root.mkdir(parents=True, exist_ok=True)
    rng = numpy.random.default_rng(0)
    for prefix, count in (("train", train_count), ("t10k", 64)):
        labels = rng.integers(0, 10, count).astype(numpy.uint8)
        images = rng.integers(0, 40, (count, 28, 28)).astype(numpy.uint8)
        for index, label in enumerate(labels):
            images[index, 2 * label + 4 : 2 * label + 7, 4:24] = 255
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"), 192)


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


# -- resuming: only the run that was stopped, and only from a checkpoint of this script --


@pytest.fixture(scope="module")
def stopped_run(tiny_mnist, tmp_path_factory):
    """An out folder whose checkpoint stopped after 4 of the first epoch's 6 batches."""
    out = tmp_path_factory.mktemp("stopped")
    run(tiny_mnist, out, "--stop-after", "4")
    return out


def copy_of(stopped_run, tmp_path):
    return shutil.copytree(stopped_run, tmp_path / "run")


@pytest.mark.parametrize(
    "option, saved, new",
    [
        ("--batch-size", "32", "64"),
        ("--limit", None, "96"),
        ("--seed", "3", "4"),
        ("--optimizer", "sgd", "adam"),  # else Adam would load SGD's state and fail in step()
        ("--lr", "0.03", "0.1"),
        ("--momentum", "0.9", "0.5"),
        ("--weight-decay", "0.0005", "0"),
    ],
)
def test_resume_refuses_an_option_that_changes_the_run(
    tiny_mnist, stopped_run, tmp_path, option, saved, new
):
    out = copy_of(stopped_run, tmp_path)
    with pytest.raises(SystemExit) as raised:
        run(tiny_mnist, out, "--resume", option, new)
    message = str(raised.value)
    was = f"no {option}" if saved is None else f"{option} {saved}"
    assert f"saved with {was}" in message and f"asks for {option} {new}" in message
    assert tc.load(out / lenet_mnist.CHECKPOINT_NAME)["loader"]["batches_done"] == 4


def test_resume_may_train_for_more_epochs(tiny_mnist, stopped_run, tmp_path):
    resumed = run(tiny_mnist, copy_of(stopped_run, tmp_path), "--resume", "--epochs", "3")
    assert len(resumed["history"]["test_accuracy"]) == 3


def test_more_epochs_after_a_finished_run_stretch_the_schedule_to_the_new_end(tiny_mnist, tmp_path):
    # a cosine over 1 epoch ends at lr 0; stretched to 2 epochs, the second trains at
    # half the base rate, as a 2-epoch run does, and not at 0 (weights left unchanged)
    straight = run(tiny_mnist, tmp_path / "straight")
    run(tiny_mnist, tmp_path / "extended", "--epochs", "1")
    extended = run(tiny_mnist, tmp_path / "extended", "--resume")
    assert extended["history"]["train_loss"] == pytest.approx(
        straight["history"]["train_loss"], rel=1e-6
    )
    ours, theirs = tc.load(extended["weights"]), tc.load(straight["weights"])
    for name, value in theirs.items():
        numpy.testing.assert_allclose(ours[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-6)


def test_resume_refuses_fewer_epochs_than_the_checkpoint_has_trained(tiny_mnist, tmp_path):
    run(tiny_mnist, tmp_path)
    with pytest.raises(SystemExit, match="already trained 2 epochs.*--epochs 1"):
        run(tiny_mnist, tmp_path, "--resume", "--epochs", "1")


def truncate(path):
    path.write_bytes(path.read_bytes()[:500])


def replace_with_weights(path):
    shutil.copy(path.with_name(lenet_mnist.WEIGHTS_NAME), path)


def replace_with_other_state(path):
    state = tc.load(path)
    state["optimizer"] = {"state": {}, "param_groups": "not groups"}
    tc.save(state, path)


@pytest.mark.parametrize("damage", [truncate, replace_with_weights, replace_with_other_state])
def test_a_damaged_or_foreign_checkpoint_is_named_in_a_message(tiny_mnist, tmp_path, damage):
    run(tiny_mnist, tmp_path, "--epochs", "1")  # writes both the checkpoint and the weights
    checkpoint = tmp_path / lenet_mnist.CHECKPOINT_NAME
    damage(checkpoint)
    with pytest.raises(SystemExit) as raised:
        run(tiny_mnist, tmp_path, "--resume")
    assert str(raised.value).startswith("--resume:") and str(checkpoint) in str(raised.value)


def test_resume_on_different_training_data_is_refused(stopped_run, tmp_path):
    # --data-dir may move, but the checkpoint's data order fits 192 images, not 160
    other_mnist = write_tiny_mnist(tmp_path / "other", 160)
    with pytest.raises(SystemExit, match="192 samples"):
        run(other_mnist, copy_of(stopped_run, tmp_path), "--resume")


class RecordedProgress:
    """Stands in for the progress bar, keeping what it was told."""

    bars: list = []

    def __init__(self, total, initial, description, enabled):
        self.total, self.initial, self.updates = total, initial, 0
        RecordedProgress.bars.append(self)

    def update(self, **values):
        self.updates += 1

    def close(self):
        pass


@pytest.mark.parametrize(
    "stop_after, resumed_at",
    [(4, "epoch 1, batch 4"), (6, "epoch 2, batch 0")],  # mid-epoch, and an epoch's end
)
def test_a_resumed_epoch_starts_its_progress_where_training_stopped(
    tiny_mnist, tmp_path, capsys, monkeypatch, stop_after, resumed_at
):
    run(tiny_mnist, tmp_path, "--stop-after", str(stop_after))
    monkeypatch.setattr(lenet_mnist, "Progress", RecordedProgress)
    monkeypatch.setattr(RecordedProgress, "bars", [])
    capsys.readouterr()
    run(tiny_mnist, tmp_path, "--resume")
    assert f"resuming at {resumed_at}\n" in capsys.readouterr().out
    first = RecordedProgress.bars[0]
    assert (first.total, first.initial + first.updates) == (6, 6)
    assert first.initial == stop_after % 6


def test_an_unwritable_out_is_refused_before_training(tiny_mnist, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the data was loaded before --out was checked")

    monkeypatch.setattr(lenet_mnist, "load_split", no_training)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SystemExit, match="--out .*a_file/run: cannot write"):
        run(tiny_mnist, tmp_path / "a_file" / "run")


@pytest.mark.parametrize(
    "option, value",
    [
        ("--lr", "-1"),
        ("--lr", "0"),
        ("--lr", "nan"),
        ("--momentum", "-1"),
        ("--momentum", "1.5"),
        ("--weight-decay", "-1"),
        ("--weight-decay", "inf"),
        ("--seed", str(2**64)),  # what tc.manual_seed refuses; negative seeds it takes
        ("--epochs", "0"),
        ("--batch-size", "0"),
        ("--limit", "0"),
        ("--device", "tpu"),
    ],
)
def test_a_nonsensical_option_is_a_usage_error(capsys, option, value):
    with pytest.raises(SystemExit) as raised:
        lenet_mnist.parse_args([option, value])
    assert raised.value.code == 2
    assert f"argument {option}: {value}" in capsys.readouterr().err
