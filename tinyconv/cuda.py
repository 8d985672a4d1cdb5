"""``tc.cuda``: is a GPU usable here?"""

from tinyconv.backend import cuda_is_available

__all__ = ["is_available", "device_count"]


def is_available() -> bool:
    """True when CuPy imports and sees a GPU."""
    return cuda_is_available()


def device_count() -> int:
    if not cuda_is_available():
        return 0
    from tinyconv.backend import cupy_module

    return cupy_module().cuda.runtime.getDeviceCount()
