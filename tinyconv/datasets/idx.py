"""The IDX file format of MNIST, read and written with NumPy.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the
values, big-endian, in C order::

    bytes 0-1   zero
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions
    then        dimension sizes (uint32, big-endian), then the data

Files may be gzip-compressed; the reader looks at the first bytes, not the file
name, to tell. Every check names the file and what is wrong with it, so a bad
download or a truncated copy says so instead of producing garbage arrays.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import IO, Any

import numpy

from tinyconv.files import write_atomically

__all__ = ["read_idx", "write_idx"]

# type code -> big-endian dtype of the stored values
_CODE_TO_DTYPE = {
    0x08: numpy.dtype("u1"),
    0x09: numpy.dtype("i1"),
    0x0B: numpy.dtype(">i2"),
    0x0C: numpy.dtype(">i4"),
    0x0D: numpy.dtype(">f4"),
    0x0E: numpy.dtype(">f8"),
}
_KIND_TO_CODE = {(dtype.kind, dtype.itemsize): code for code, dtype in _CODE_TO_DTYPE.items()}
_GZIP_MAGIC = b"\x1f\x8b"
# A gzip stream's data part is read in pieces of this many bytes, so the memory a read
# takes grows with what the stream holds, not with what its header claims (a raw file
# is read in one piece of at most its size on disk).
_CHUNK = 1 << 24
_MAX_SIZE = 2**32 - 1  # a dimension size is a uint32


def read_idx(path: str | os.PathLike) -> numpy.ndarray:
    """Read an IDX file (raw or gzip) into a NumPy array in native byte order.

    Args:
        path: the file; gzip compression is detected from its first two bytes.

    Raises:
        ValueError: naming the file, when the magic number, type code, dimensions or
            length are wrong, or the gzip stream is corrupt or truncated.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path={path!r} must be a str or os.PathLike")
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as file:
            return _read_stream(file, path, sized=not compressed)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        # EOFError: the gzip stream stops early; the others: bad compressed bytes or CRC
        raise ValueError(f"{path}: corrupt gzip data ({error})") from None


def _read_stream(file: IO[bytes], path: Path, sized: bool) -> numpy.ndarray:
    magic = file.read(4)
    if len(magic) < 4:
        raise ValueError(f"{path}: truncated IDX file: {len(magic)} bytes, no 4-byte magic")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file: magic number starts with {magic[:2].hex()}, expected 0000"
        )
    code, ndim = magic[2], magic[3]
    if code not in _CODE_TO_DTYPE:
        known = ", ".join(f"0x{known:02X}" for known in _CODE_TO_DTYPE)
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X}; expected one of {known}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    header = file.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise ValueError(
            f"{path}: truncated IDX header: {ndim} dimensions need {4 * ndim} bytes of "
            f"sizes, found {len(header)}"
        )
    shape = tuple(int(size) for size in numpy.frombuffer(header, dtype=">u4"))

    stored = _CODE_TO_DTYPE[code]
    expected = math.prod(shape) * stored.itemsize  # Python ints: no overflow
    # A corrupt header may claim terabytes: read what is there, then compare.
    data = _read_at_most(file, expected, sized)
    if len(data) < expected:
        raise ValueError(
            f"{path}: truncated IDX file: shape {shape} needs {expected} bytes of data, "
            f"found {len(data)}"
        )
    # Reading one byte past the data also makes gzip check its CRC and length.
    if file.read(1):
        raise ValueError(f"{path}: IDX file has extra bytes after the {expected} bytes of data")
    values = numpy.frombuffer(data, dtype=stored)  # writable: it shares the bytearray
    return values.astype(stored.newbyteorder("="), copy=False).reshape(shape)


def _read_at_most(file: IO[bytes], limit: int, sized: bool) -> bytearray:
    """The next ``limit`` bytes of ``file``, or all that are left when fewer.

    A raw file (``sized``) holds what its size on disk says: one buffer of that much
    is filled in place. A gzip stream's length is not known in advance, so there the
    buffer grows piece by piece as bytes arrive; either way it never exceeds what the
    file actually holds.
    """
    if sized:
        data = bytearray(min(limit, os.fstat(file.fileno()).st_size - file.tell()))
        del data[file.readinto(data) :]  # a file that shrank meanwhile gives fewer
        return data
    data = bytearray()
    while len(data) < limit:
        piece = file.read(min(_CHUNK, limit - len(data)))
        if not piece:
            break
        data += piece
    return data


def write_idx(path: str | os.PathLike, array: Any, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file.

    Args:
        path: where to write.
        array: anything ``numpy.asarray`` takes, of dtype uint8, int8, int16, int32,
            float32 or float64, with 1 to 255 dimensions.
        compress: gzip the file; by default, when the name ends in ``.gz``.

    The file is replaced atomically: a failure part way leaves the old file as it was.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path={path!r} must be a str or os.PathLike")
    if compress is not None and not isinstance(compress, bool):
        raise TypeError(f"compress={compress!r} must be True, False or None")
    path = Path(path)
    array = numpy.asarray(array)
    code = _KIND_TO_CODE.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.dtype.kind == "b":
        raise ValueError(
            f"array of dtype {array.dtype} cannot be stored in IDX; expected uint8, int8, "
            "int16, int32, float32 or float64"
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(
            f"array with {array.ndim} dimensions cannot be stored in IDX; expected 1 to 255"
        )
    if max(array.shape) > _MAX_SIZE:
        raise ValueError(
            f"array of shape {array.shape} cannot be stored in IDX; each size must be at "
            f"most {_MAX_SIZE}"
        )
    if compress is None:
        compress = path.suffix == ".gz"
    values = numpy.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code])

    def write(file: IO[bytes]) -> None:
        if not compress:
            _write_stream(file, code, values)
            return
        # filename= puts the destination's name (less .gz) in the gzip header, as
        # gzip.open(path) would, rather than the temporary file's
        with gzip.GzipFile(filename=path.name, mode="wb", fileobj=file) as packed:
            _write_stream(packed, code, values)

    # a failure mid-write (a full disk) leaves the old file, not a truncated one
    write_atomically(path, write)


def _write_stream(file: IO[bytes], code: int, values: numpy.ndarray) -> None:
    file.write(bytes([0, 0, code, values.ndim]))
    file.write(numpy.asarray(values.shape, dtype=">u4").tobytes())
    file.write(memoryview(values.reshape(-1).view(numpy.uint8)))
