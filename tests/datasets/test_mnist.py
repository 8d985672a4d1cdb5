"""MNIST and FashionMNIST on small generated IDX files and a fake mirror on 127.0.0.1."""

import gzip
import hashlib
import warnings

import numpy
import pytest

import tinyconv as tc
from tinyconv.data import DataLoader
from tinyconv.datasets import MNIST, FashionMNIST
from tinyconv.datasets.idx import write_idx

NAMES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def make_split(count, seed=0):
    rng = numpy.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 28, 28), dtype=numpy.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, count, dtype=numpy.uint8)
    return images, labels


def write_split(folder, images, labels, train=True, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    image_name, label_name = NAMES[train]
    write_idx(folder / f"{image_name}{suffix}", images, compress=compress)
    write_idx(folder / f"{label_name}{suffix}", labels, compress=compress)


def gzip_bytes(array):
    """The bytes of an IDX .gz file holding a uint8 ``array``, built by hand."""
    raw = bytes([0, 0, 0x08, array.ndim]) + numpy.asarray(array.shape, ">u4").tobytes()
    return gzip.compress(raw + array.tobytes(), mtime=0)


@pytest.fixture
def offline(monkeypatch, closed_port_url):
    """No network: every mirror refuses the connection."""
    monkeypatch.setattr(MNIST, "mirrors", [f"{closed_port_url}/"])
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"{closed_port_url}/"])


@pytest.fixture
def published(monkeypatch, mirror):
    """The fake mirror holds a train split whose MD5s are the 'published' ones."""
    images, labels = make_split(12, seed=3)
    files = {
        "train-images-idx3-ubyte.gz": gzip_bytes(images),
        "train-labels-idx1-ubyte.gz": gzip_bytes(labels),
    }
    for name, content in files.items():
        mirror.files[f"/good/{name}"] = content
        mirror.files[f"/bad/{name}"] = content[:-5] + b"xxxxx"
    resources = dict(MNIST.resources)
    resources.update({name: hashlib.md5(content).hexdigest() for name, content in files.items()})
    monkeypatch.setattr(MNIST, "resources", resources)
    monkeypatch.setattr(MNIST, "mirrors", [f"{mirror.url}/good/"])
    return images, labels, files


def test_structurally_valid_local_files_are_used_without_checksum(tmp_path, offline):
    images, labels = make_split(7)
    write_split(tmp_path, images, labels)  # flat, like a folder TINYCONV_DATA points at
    dataset = MNIST(root=tmp_path)
    assert len(dataset) == 7
    assert dataset.data.dtype == tc.uint8 and dataset.data.shape == (7, 28, 28)
    assert dataset.targets.dtype == tc.int64 and dataset.targets.shape == (7,)
    numpy.testing.assert_array_equal(dataset.data.numpy(), images)
    numpy.testing.assert_array_equal(dataset.targets.numpy(), labels)


def test_uncompressed_files_in_the_download_folder(tmp_path, offline):
    images, labels = make_split(5)
    write_split(tmp_path / "MNIST", images, labels, train=False, compress=False)
    dataset = MNIST(root=tmp_path, train=False)
    numpy.testing.assert_array_equal(dataset.data.numpy(), images)


def test_torchvision_raw_folder_is_found(tmp_path, offline):
    images, labels = make_split(4)
    write_split(tmp_path / "MNIST" / "raw", images, labels, compress=False)
    assert len(MNIST(root=tmp_path)) == 4


def test_root_defaults_to_tinyconv_data(tmp_path, offline, monkeypatch):
    images, labels = make_split(3)
    write_split(tmp_path / "cache", images, labels)
    monkeypatch.setenv("TINYCONV_DATA", str(tmp_path / "cache"))
    assert MNIST().root == tmp_path / "cache"
    assert len(MNIST()) == 3


def test_root_defaults_to_home_cache_without_the_variable(tmp_path, offline, monkeypatch):
    monkeypatch.delenv("TINYCONV_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    images, labels = make_split(2)
    write_split(tmp_path / ".cache" / "tinyconv" / "MNIST", images, labels)
    assert len(MNIST()) == 2


def test_one_sample_is_a_scaled_float_image_and_an_int64_label(tmp_path, offline):
    images, labels = make_split(6)
    write_split(tmp_path, images, labels)
    image, label = MNIST(root=tmp_path)[0]
    assert image.shape == (1, 28, 28) and image.dtype == tc.float32
    assert image.data[0, 0, 0] == 0.0 and image.data[0, 0, 1] == 1.0
    numpy.testing.assert_array_equal(image.numpy()[0], images[0].astype(numpy.float32) / 255)
    assert label.dtype == tc.int64 and label.shape == () and label.item() == labels[0]


def test_an_index_array_gives_a_batch(tmp_path, offline):
    images, labels = make_split(6)
    write_split(tmp_path, images, labels)
    dataset = MNIST(root=tmp_path)
    batch, targets = dataset[numpy.array([4, 1, 4])]
    assert batch.shape == (3, 1, 28, 28) and batch.dtype == tc.float32
    numpy.testing.assert_array_equal(targets.numpy(), labels[[4, 1, 4]])
    same, _ = dataset[tc.tensor([4, 1, 4])]
    numpy.testing.assert_array_equal(same.numpy(), batch.numpy())
    listed, _ = dataset[[4, 1, 4]]
    numpy.testing.assert_array_equal(listed.numpy(), batch.numpy())


def test_data_loader_batches_mnist_with_one_gather_per_batch(tmp_path, offline):
    images, labels = make_split(10)
    write_split(tmp_path, images, labels)
    loader = DataLoader(MNIST(root=tmp_path), batch_size=4, shuffle=True, seed=0)
    shapes = [(x.shape, y.shape) for x, y in loader]
    assert shapes == [((4, 1, 28, 28), (4,)), ((4, 1, 28, 28), (4,)), ((2, 1, 28, 28), (2,))]


def test_missing_files_are_downloaded_into_the_mnist_folder(tmp_path, published):
    images, labels, files = published
    dataset = MNIST(root=tmp_path)
    numpy.testing.assert_array_equal(dataset.data.numpy(), images)
    for name, content in files.items():
        assert (tmp_path / "MNIST" / name).read_bytes() == content


def test_checksum_failure_retries_the_next_mirror(tmp_path, published, mirror, monkeypatch):
    images, _, _ = published
    monkeypatch.setattr(MNIST, "mirrors", [f"{mirror.url}/bad/", f"{mirror.url}/good/"])
    dataset = MNIST(root=tmp_path)
    numpy.testing.assert_array_equal(dataset.data.numpy(), images)
    assert mirror.requests == [
        "/bad/train-images-idx3-ubyte.gz",
        "/good/train-images-idx3-ubyte.gz",
        "/bad/train-labels-idx1-ubyte.gz",
        "/good/train-labels-idx1-ubyte.gz",
    ]


def test_a_corrupt_cached_download_is_fetched_again(tmp_path, published, mirror):
    images, _, files = published
    cached = tmp_path / "MNIST" / "train-images-idx3-ubyte.gz"
    cached.parent.mkdir()
    content = files["train-images-idx3-ubyte.gz"]
    cached.write_bytes(content[: len(content) // 2])  # an interrupted copy
    (tmp_path / "MNIST" / "train-labels-idx1-ubyte.gz").write_bytes(
        files["train-labels-idx1-ubyte.gz"]
    )
    with pytest.warns(UserWarning, match="train-images-idx3-ubyte.gz"):
        dataset = MNIST(root=tmp_path)
    numpy.testing.assert_array_equal(dataset.data.numpy(), images)
    assert cached.read_bytes() == content
    # the labels had the published checksum, so only the images were fetched
    assert mirror.requests == ["/good/train-images-idx3-ubyte.gz"]


def test_a_cached_download_is_not_fetched_again(tmp_path, published, mirror):
    MNIST(root=tmp_path)
    requests = len(mirror.requests)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MNIST(root=tmp_path)
    assert len(mirror.requests) == requests


def test_no_data_and_no_network_says_which_files_to_put_where(tmp_path, offline):
    with pytest.raises(RuntimeError) as info:
        MNIST(root=tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "MNIST") in message and "TINYCONV_DATA" in message
    assert "Connection refused" in message or "refused" in message.lower()
    # the message stands alone: no urllib exception chained behind it
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_download_false_without_files_raises(tmp_path, published, mirror):
    with pytest.raises(RuntimeError, match="download=False"):
        MNIST(root=tmp_path, train=True, download=False)
    assert mirror.requests == []


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (numpy.zeros((3, 28, 28), numpy.uint8), numpy.zeros(4, numpy.uint8), "4 labels for the 3"),
        (numpy.zeros((3, 28, 27), numpy.uint8), numpy.zeros(3, numpy.uint8), r"\(N, 28, 28\)"),
        (numpy.zeros((3, 28, 28), numpy.int32), numpy.zeros(3, numpy.uint8), "expected uint8"),
        (numpy.zeros((3, 28, 28), numpy.uint8), numpy.full(3, 10, numpy.uint8), "label 10"),
    ],
)
def test_structurally_wrong_local_files_are_rejected(tmp_path, offline, images, labels, message):
    write_split(tmp_path, images, labels)
    with pytest.raises(RuntimeError, match=message):
        MNIST(root=tmp_path, download=False)


def test_fashion_mnist_reads_its_own_folder_not_flat_mnist_files(tmp_path, offline):
    digits, digit_labels = make_split(5, seed=1)
    clothes, clothes_labels = make_split(8, seed=2)
    write_split(tmp_path, digits, digit_labels)
    with pytest.raises(RuntimeError, match="FashionMNIST"):
        FashionMNIST(root=tmp_path)
    write_split(tmp_path / "FashionMNIST", clothes, clothes_labels)
    dataset = FashionMNIST(root=tmp_path)
    numpy.testing.assert_array_equal(dataset.data.numpy(), clothes)
    assert len(MNIST(root=tmp_path)) == 5


def test_published_resources_name_every_file():
    for dataset in (MNIST, FashionMNIST):
        assert set(dataset.resources) == {f"{name}.gz" for pair in NAMES.values() for name in pair}
        assert all(len(md5) == 32 for md5 in dataset.resources.values())


def write_huge_claim(path):
    """A raw image file whose header claims 2**31 images: 1.5 TiB it does not hold."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, 3]) + numpy.asarray([2**31, 28, 28], ">u4").tobytes()
    path.write_bytes(header + bytes(104))


def test_a_header_claiming_terabytes_is_an_unusable_file_not_a_memory_error(tmp_path, offline):
    images, labels = make_split(3)
    write_split(tmp_path, images, labels)
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    write_huge_claim(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(RuntimeError) as info:
        MNIST(root=tmp_path, download=False)
    message = str(info.value)
    assert "download=False" in message and "unusable" in message
    assert "train-images-idx3-ubyte" in message and "(2147483648, 28, 28)" in message


def test_a_header_claiming_terabytes_is_replaced_by_a_download(tmp_path, published, mirror):
    images, _, files = published
    write_huge_claim(tmp_path / "MNIST" / "train-images-idx3-ubyte")
    (tmp_path / "MNIST" / "train-labels-idx1-ubyte.gz").write_bytes(
        files["train-labels-idx1-ubyte.gz"]
    )
    with pytest.warns(UserWarning, match="2147483648"):
        dataset = MNIST(root=tmp_path)
    numpy.testing.assert_array_equal(dataset.data.numpy(), images)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"root": 123}, "root=123 must be a folder"),
        ({"root": ["data"]}, r"root=\['data'\] must be a folder"),
        ({"download": "no"}, "download='no' must be True or False"),
        ({"download": None}, "download=None must be True or False"),
        ({"train": 1}, "train=1 must be True or False"),
    ],
)
def test_arguments_are_checked(tmp_path, offline, arguments, message):
    arguments.setdefault("root", tmp_path)
    with pytest.raises(TypeError, match=message):
        MNIST(**arguments)
    assert list(tmp_path.iterdir()) == []
