"""Datasets and batching: ``Dataset``, ``TensorDataset``, ``DataLoader``."""

from tinyconv.data.dataloader import DataLoader, default_collate
from tinyconv.data.dataset import Dataset, TensorDataset

__all__ = ["DataLoader", "Dataset", "TensorDataset", "default_collate"]
