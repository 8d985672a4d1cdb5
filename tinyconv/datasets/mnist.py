"""MNIST and Fashion-MNIST from their official IDX files, downloaded once and cached.

Where the files are looked for, in order (``root`` is the ``root`` argument, else
``$TINYCONV_DATA``, else ``~/.cache/tinyconv``)::

    root/MNIST/            where downloads go (FashionMNIST: root/FashionMNIST/)
    root/MNIST/raw/        torchvision's layout, so its downloads are reused
    root/                  files straight in root: MNIST only, since Fashion-MNIST
                           uses the same file names

Each split is two files, ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``
(``t10k-...`` for the test split), gzip-compressed (``.gz``) or not. Files found
locally are used when they are structurally valid IDX: the right magic numbers,
28x28 images, as many labels as images, labels 0 to 9. That lets a trimmed or
re-packed copy work offline. Checksums are checked on what is downloaded: a
download goes from the first mirror that works to a temporary file, is compared
with the published MD5 and only then renamed into place. A cached download that
is corrupt (a truncated gzip, a bad header) is detected when read and fetched again.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy

from tinyconv.data.dataset import Dataset
from tinyconv.datasets.download import DownloadError, download_file, md5_of_file
from tinyconv.datasets.idx import read_idx
from tinyconv.tensor import Tensor

__all__ = ["MNIST", "FashionMNIST", "default_root"]


def default_root() -> Path:
    """The data cache: ``$TINYCONV_DATA`` when set, else ``~/.cache/tinyconv``."""
    configured = os.environ.get("TINYCONV_DATA")
    return Path(configured or "~/.cache/tinyconv").expanduser()


class MNIST(Dataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images of 28x28.

    Args:
        root: the data folder (see the module docstring for the layout); by default
            ``$TINYCONV_DATA``, else ``~/.cache/tinyconv``.
        train: the training split, else the test split.
        download: fetch files that are missing or corrupt from the public mirrors.

    Attributes:
        data: uint8 tensor of shape ``(N, 28, 28)``, the pixels as stored.
        targets: int64 tensor of shape ``(N,)``, the class of each image.

    Shape:
        ``dataset[i]`` is ``(image, label)``: a float32 ``(1, 28, 28)`` tensor scaled
        to [0, 1] and a 0-d int64 tensor. ``dataset[indices]`` with an index array of
        shape ``(B,)`` is the batch: ``(B, 1, 28, 28)`` and ``(B,)``.
    """

    supports_index_arrays = True
    folder = "MNIST"
    # Files may also sit straight in root (for Fashion-MNIST they would be ambiguous).
    flat_layout = True
    # The public mirrors and MD5s torchvision uses; files are ``mirror + file name``.
    mirrors = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ]
    resources = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    classes = [
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ]

    def __init__(
        self, root: str | os.PathLike | None = None, train: bool = True, download: bool = True
    ) -> None:
        if root is not None and not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root={root!r} must be a folder (a str or os.PathLike) or None")
        for name, flag in (("train", train), ("download", download)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name}={flag!r} must be True or False")
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.train = train
        images, labels = self._load(download)
        self.data = Tensor(images)
        self.targets = Tensor(labels.astype(numpy.int64))

    # -- samples -----------------------------------------------------------------------

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: Any) -> tuple[Tensor, Tensor]:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, list):
            index = numpy.asarray(index, dtype=numpy.int64)
        # read .data at each call, so a subset assigned to it (ds.data = ds.data[:100]) is used
        pixels = self.data.data[index]
        images = pixels.astype(numpy.float32) / numpy.float32(255)  # ToTensor's scaling
        images = images.reshape(*images.shape[:-2], 1, *images.shape[-2:])  # add the channel
        return Tensor(images), Tensor(self.targets.data[index])

    def __repr__(self) -> str:
        split = "Train" if self.train else "Test"
        return (
            f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
            f"    Root location: {self.root}\n    Split: {split}"
        )

    # -- files -------------------------------------------------------------------------

    @property
    def file_names(self) -> tuple[str, str]:
        """The split's image and label files, without ``.gz``."""
        prefix = "train" if self.train else "t10k"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"

    @property
    def download_folder(self) -> Path:
        return self.root / self.folder

    def search_folders(self) -> list[Path]:
        """Where the files are looked for, in order."""
        folders = [self.download_folder, self.download_folder / "raw"]
        return [*folders, self.root] if self.flat_layout else folders

    def _load(self, download: bool) -> tuple[numpy.ndarray, numpy.ndarray]:
        problems = []
        for folder in self.search_folders():
            paths = [_existing(folder / name) for name in self.file_names]
            if None in paths:
                continue
            try:
                return self._read_split(*paths)
            except ValueError as error:
                problems.append(str(error))
        if not download:
            raise RuntimeError(self._missing_message(problems, None))
        if problems:
            warnings.warn(
                "found unusable files, downloading the published ones: " + "; ".join(problems),
                stacklevel=3,
            )
        downloaded = self._download(problems)
        return self._read_split(*downloaded)

    def _download(self, problems: list[str]) -> list[Path]:
        """Fetch the split's files into the download folder (kept when they check out)."""
        paths = []
        for name in self.file_names:
            target = self.download_folder / f"{name}.gz"
            md5 = self.resources[target.name]
            if not (target.is_file() and md5_of_file(target) == md5):
                try:
                    download_file([mirror + target.name for mirror in self.mirrors], target, md5)
                except (DownloadError, OSError) as error:
                    # `from None`: the message says all there is; urllib's traceback would not
                    raise RuntimeError(self._missing_message(problems, str(error))) from None
            paths.append(target)
        return paths

    def _read_split(self, images_path: Path, labels_path: Path) -> tuple[numpy.ndarray, ...]:
        """Read and check one split's two files; ValueError naming the file otherwise."""
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.dtype != numpy.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(
                f"{images_path}: expected uint8 images of shape (N, 28, 28), found "
                f"{images.dtype} of shape {images.shape}"
            )
        if labels.dtype != numpy.uint8 or labels.ndim != 1:
            raise ValueError(
                f"{labels_path}: expected uint8 labels of shape (N,), found {labels.dtype} "
                f"of shape {labels.shape}"
            )
        if len(labels) != len(images):
            raise ValueError(
                f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}"
            )
        if labels.size and labels.max() >= len(self.classes):
            raise ValueError(
                f"{labels_path}: label {labels.max()} found; expected 0 to {len(self.classes) - 1}"
            )
        return images, labels

    def _missing_message(self, problems: list[str], download_error: str | None) -> str:
        """Which files to put where; why they could not be downloaded, if that was tried."""
        split = "training" if self.train else "test"
        images, labels = self.file_names
        places = str(self.download_folder)
        if self.flat_layout:
            places += f" (or directly in {self.root})"
        outcome = "download=False" if download_error is None else "the download failed"
        lines = [
            f"{type(self).__name__}: no usable {split} files under {self.root} ({outcome}).",
            f"Put {images}.gz and {labels}.gz (gzip or uncompressed) in {places}, "
            "or set TINYCONV_DATA (or pass root=) to a folder that holds them.",
            f"They are published at {self.mirrors[0]}",
        ]
        if problems:
            lines.append("Files found but unusable: " + "; ".join(problems))
        if download_error is not None:
            lines.append(download_error)
        return "\n".join(lines)


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 28x28 images of clothes in 10 classes, MNIST's format.

    Takes the same arguments and gives the same shapes as ``MNIST``; its files live
    in ``root/FashionMNIST/`` (or torchvision's ``root/FashionMNIST/raw/``).
    """

    folder = "FashionMNIST"
    flat_layout = False
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    classes = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]


def _existing(path: Path) -> Path | None:
    """``path`` uncompressed if it exists, else ``path.gz`` if that exists, else None."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None
