"""``tinyconv.optim``: optimizers (SGD, Adam, AdamW) and ``lr_scheduler``."""

from tinyconv.optim import lr_scheduler
from tinyconv.optim.adam import Adam, AdamW
from tinyconv.optim.optimizer import Optimizer
from tinyconv.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]
