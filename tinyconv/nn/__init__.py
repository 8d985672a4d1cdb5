"""``tinyconv.nn``: modules, layers, losses, initialisation, and ``functional``."""

from tinyconv.nn import functional, init
from tinyconv.nn.activation import Dropout, Flatten, ReLU, Sigmoid, Tanh
from tinyconv.nn.container import ModuleList, Sequential
from tinyconv.nn.conv import Conv2d, ConvTranspose2d
from tinyconv.nn.linear import Identity, Linear
from tinyconv.nn.loss import CrossEntropyLoss, MSELoss
from tinyconv.nn.module import Module
from tinyconv.nn.normalization import BatchNorm1d, BatchNorm2d
from tinyconv.nn.parameter import Parameter
from tinyconv.nn.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d

__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Identity",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "functional",
    "init",
]
