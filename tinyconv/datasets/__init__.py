"""Datasets from their official files: ``MNIST``, ``FashionMNIST``, and the IDX reader."""

from tinyconv.datasets.download import DownloadError, download_file
from tinyconv.datasets.idx import read_idx, write_idx
from tinyconv.datasets.mnist import MNIST, FashionMNIST, default_root

__all__ = [
    "MNIST",
    "DownloadError",
    "FashionMNIST",
    "default_root",
    "download_file",
    "read_idx",
    "write_idx",
]
