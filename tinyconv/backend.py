"""The array backend: NumPy for ``'cpu'``, CuPy for ``'cuda'``.

Every other module asks this one for its array module (``xp``) and never imports
CuPy itself, so importing tinyconv never needs CuPy. Where NumPy and CuPy truly
differ (scatter-add, strided views, random numbers, host transfers), the
difference lives here, in one small function with both branches.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from types import ModuleType
from typing import Any

import numpy

from tinyconv.dtypes import is_int

__all__ = [
    "array_module",
    "as_strided",
    "copy_batch_innermost",
    "copy_phases_batch_innermost",
    "cuda_is_available",
    "default_device",
    "device_of",
    "get_array_module",
    "manual_seed",
    "normalize_device",
    "random_generator",
    "release_scratch",
    "scatter_add",
    "scratch",
    "set_default_device",
    "to_device",
]

_cupy: ModuleType | None = None
_cupy_import_error: BaseException | None = None


def _import_cupy() -> ModuleType | None:
    """Import CuPy once, remembering a failure instead of retrying it."""
    global _cupy, _cupy_import_error
    if _cupy is None and _cupy_import_error is None:
        try:
            import cupy  # noqa: PLC0415  (lazy: CuPy is optional)

            _cupy = cupy
        except Exception as error:  # ImportError, or a CUDA library that fails to load
            _cupy_import_error = error
    return _cupy


def cupy_module() -> ModuleType:
    """CuPy, or a RuntimeError that says what to install."""
    cupy = _import_cupy()
    if cupy is None:
        raise RuntimeError(
            "device 'cuda' needs CuPy, which could not be imported "
            f"({_cupy_import_error!r}); install it with `pip install 'tinyconv[gpu]'` "
            "or `pip install cupy-cuda12x` matching your CUDA version"
        )
    return cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    cupy = _import_cupy()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def normalize_device(device: Any) -> str:
    """'cpu', 'cuda' (GPU 0) or 'cuda:N'; raises ValueError for anything else."""
    text = str(device) if device is not None else default_device()
    if text == "cpu":
        return "cpu"
    if text in ("cuda", "cuda:0", "gpu"):
        return "cuda"
    if text.startswith("cuda:") and text[5:].isdigit():
        return text
    raise ValueError(f"device={device!r} is not a device; expected 'cpu', 'cuda' or 'cuda:N'")


def _cuda_index(device: str) -> int:
    return 0 if device == "cuda" else int(device[5:])


_default_device = "cpu"


def default_device() -> str:
    """The device factories use when none is given (TINYCONV_DEVICE, else 'cpu')."""
    return _default_device


def set_default_device(device: Any) -> None:
    """Make ``device`` the default for factories and ``tensor(...)``."""
    global _default_device
    device = normalize_device(device)
    if device != "cpu":
        cupy_module()  # fail now, with the install hint, rather than at the first tensor
    _default_device = device


def array_module(device: str) -> ModuleType:
    """The array module (``xp``) of a normalized device string."""
    if device == "cpu":
        return numpy
    return cupy_module()


def _is_cupy_array(array: Any) -> bool:
    # Looking at the type's module keeps NumPy-only machines from importing CuPy.
    return type(array).__module__.startswith("cupy")


def get_array_module(array: Any) -> ModuleType:
    """NumPy or CuPy, whichever owns ``array``."""
    return cupy_module() if _is_cupy_array(array) else numpy


def device_of(array: Any) -> str:
    """The device string of a NumPy or CuPy array."""
    if _is_cupy_array(array):
        index = array.device.id
        return "cuda" if index == 0 else f"cuda:{index}"
    return "cpu"


def to_device(array: Any, device: str) -> Any:
    """``array`` on ``device``; the same object when it is already there."""
    if device == "cpu":
        return array.get() if _is_cupy_array(array) else array
    cupy = cupy_module()
    with cupy.cuda.Device(_cuda_index(device)):
        return cupy.asarray(array)


def scatter_add(target: Any, indices: Any, values: Any) -> None:
    """``target[indices] += values`` where repeated indices add up, in place."""
    if _is_cupy_array(target):
        cupy = cupy_module()
        if hasattr(cupy, "add") and hasattr(cupy.add, "at"):
            cupy.add.at(target, indices, values)
        else:  # CuPy before 13 has only the cupyx spelling
            import cupyx  # noqa: PLC0415

            cupyx.scatter_add(target, indices, values)
    else:
        numpy.add.at(target, indices, values)


def put_along_axis(target: Any, indices: Any, values: Any, axis: int) -> None:
    """``numpy.put_along_axis(target, indices, values, axis)`` on NumPy or CuPy arrays.

    Written with plain integer-array indexing, which every CuPy version has (its own
    ``put_along_axis`` is recent). Along every other axis an ``arange`` picks each
    position, and ``indices`` (same number of dimensions as ``target``) broadcasts
    against them.
    """
    xp = get_array_module(target)
    index = []
    for position, size in enumerate(target.shape):
        if position == axis:
            index.append(indices)
        else:
            shape = [1] * target.ndim
            shape[position] = size
            index.append(xp.arange(size).reshape(shape))
    target[tuple(index)] = values


def as_strided(array: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A read-only-by-convention view of ``array`` with the given shape and byte strides."""
    if _is_cupy_array(array):
        return cupy_module().lib.stride_tricks.as_strided(array, shape=shape, strides=strides)
    return numpy.lib.stride_tricks.as_strided(array, shape=shape, strides=strides, writeable=False)


# Staging blocks for ``copy_batch_innermost``: about a processor's L2 cache.
_STAGE_BYTES = 2**20


def copy_batch_innermost(out: Any, src: Any) -> None:
    """``out[...] = src.transpose(1, 2, 3, 0)``: (N, C, H, W) values into a (C, H, W, N)
    array, which may be a strided view (a padded workspace's interior).

    Such a copy reads the N values of one output run an image apart. When an image is a
    multiple of 2 KiB (a 64-channel 16×16 map is 64 KiB), those N addresses all fall
    into the same few cache sets, and NumPy's copy runs 3-6× slower than memory allows.
    So on the CPU a block of channels is first copied, image by image, into a buffer
    whose images lie one cache line more than that apart, and transposed from there.
    """
    copy_phases_batch_innermost([(out, 0)], src, 1)


def copy_phases_batch_innermost(targets: list, src: Any, step: int) -> None:
    """For each (out, first) of ``targets``: ``out[...] = src[..., first::step]`` with the
    batch innermost, as ``copy_batch_innermost``: the columns of each phase of a stride
    ``step``, from one staged copy of src rather than a strided read per phase."""
    batch, channels, height, width = src.shape
    if _is_cupy_array(src) or batch < 2 or src.strides[0] % 2048 or src.strides[0] == 0:
        for out, first in targets:
            out[...] = src[..., first::step].transpose(1, 2, 3, 0)
        return
    plane = height * width
    block = max(1, min(channels, _STAGE_BYTES // max(batch * plane * src.itemsize, 1)))
    pitch = block * plane + 64 // src.itemsize  # elements from one staged image to the next
    flat = numpy.empty(batch * pitch, dtype=src.dtype)
    strides = tuple(count * src.itemsize for count in (pitch, plane, width, 1))
    for start in range(0, channels, block):
        stop = min(start + block, channels)
        stage = numpy.lib.stride_tricks.as_strided(
            flat, (batch, stop - start, height, width), strides
        )
        stage[...] = src[:, start:stop]
        for out, first in targets:
            out[start:stop] = stage[..., first::step].transpose(1, 2, 3, 0)


class _ScratchBuffers(threading.local):
    # one set per thread: two threads running convolutions at once must not share one
    def __init__(self) -> None:
        self.by_dtype: dict[Any, Any] = {}
        self.generation = _scratch_generation


_scratch_generation = 0  # bumped by release_scratch, so every thread drops its buffers
_scratch = _ScratchBuffers()


def scratch(shape: tuple[int, ...], dtype: Any, like: Any) -> Any:
    """An uninitialised array for a large temporary, valid until the same thread's
    next call.

    NumPy takes every large array from the operating system, which zeroes each fresh
    page on first touch: for an im2col buffer that costs about as much as filling it.
    So on the CPU one buffer per dtype (and thread) is kept and handed out again.
    CuPy's memory pool already reuses device memory, so there this is a plain ``empty``.
    """
    if _is_cupy_array(like):
        return cupy_module().empty(shape, dtype=dtype)
    buffers = _scratch.by_dtype
    if _scratch.generation != _scratch_generation:  # released since this thread's last call
        buffers.clear()
        _scratch.generation = _scratch_generation
    size = int(numpy.prod(shape))
    key = numpy.dtype(dtype)
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffers.pop(key, None)  # let the old one go before taking a bigger one
        buffer = buffers[key] = numpy.empty(size, dtype=key)
    return buffer[:size].reshape(shape)


def release_scratch() -> None:
    """Free the buffers ``scratch`` keeps (another thread's, at its next call)."""
    global _scratch_generation
    _scratch_generation += 1
    _scratch.by_dtype.clear()


_generators: dict[str, Any] = {}
_seed: int | None = None


def manual_seed(seed: int) -> None:
    """Seed every device's generator, so every random draw is repeatable.

    Args:
        seed: an int in ``[-2**63, 2**64)``, PyTorch's range; a negative seed is
            taken as its 64-bit two's complement (``-1`` is ``2**64 - 1``), as in PyTorch.
    """
    global _seed
    if not is_int(seed):
        raise TypeError(f"seed={seed!r} must be an int")
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed={seed} is out of range; expected an int in [-2**63, 2**64)")
    _seed = seed % 2**64  # NumPy's generators take only non-negative seeds
    _generators.clear()


def random_generator(device: str) -> Any:
    """The random generator of ``device`` (a NumPy or CuPy ``Generator``)."""
    generator = _generators.get(device)
    if generator is None:
        if device == "cpu":
            generator = numpy.random.default_rng(_seed)
        else:
            cupy = cupy_module()
            with cupy.cuda.Device(_cuda_index(device)):
                seed = None if _seed is None else (_seed + _cuda_index(device)) % 2**64
                generator = _CupyGenerator(cupy.random.RandomState(seed))
        _generators[device] = generator
    return generator


def draw_dtype(dtype: Any) -> numpy.dtype:
    """The dtype to draw random floats in for a result of ``dtype``: NumPy's and CuPy's
    generators draw float32 or float64 only, so anything else is drawn in float64 and
    cast by the caller."""
    dtype = numpy.dtype(dtype)
    return dtype if dtype in (numpy.float32, numpy.float64) else numpy.dtype(numpy.float64)


class _CupyGenerator:
    """CuPy's ``RandomState`` behind the NumPy ``Generator`` methods tinyconv calls."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def random(self, size: Any = None, dtype: Any = numpy.float64) -> Any:
        return self.state.random_sample(size=size, dtype=dtype)

    def standard_normal(self, size: Any = None, dtype: Any = numpy.float64) -> Any:
        return self.state.standard_normal(size=size, dtype=dtype)

    def integers(self, low: int, high: int | None = None, size: Any = None) -> Any:
        return self.state.randint(low, high, size=size, dtype=numpy.int64)

    def permutation(self, n: int) -> Any:
        return self.state.permutation(n)


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed large blocks for reuse instead of unmapping them.

    By default glibc gives every block over 128 KiB back to the operating system when
    it is freed, so each training step maps its activations and im2col columns afresh,
    and the kernel zeroes every page on first touch: for LeNet that is about a third
    of a step. Raising the mmap and trim thresholds lets the next step reuse the same
    memory; peak memory is unchanged. Set TINYCONV_MALLOC_TUNING=0 to leave glibc alone.
    """
    if os.environ.get("TINYCONV_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 64 * 2**20)
    mallopt(m_trim_threshold, 2**30)


def _device_from_environment() -> str:
    value = os.environ.get("TINYCONV_DEVICE")
    if not value:
        return "cpu"
    try:
        return normalize_device(value)
    except ValueError as error:
        raise ValueError(f"TINYCONV_DEVICE={value!r}: {error}") from None


_default_device = _device_from_environment()
_keep_freed_memory()
