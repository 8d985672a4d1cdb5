"""``save`` and ``load``: state in the safetensors format, without pickle.

A safetensors file is three parts::

    8 bytes    N, the header's length (unsigned, little-endian)
    N bytes    a JSON object: for each tensor {"dtype": "F32", "shape": [6, 1, 5, 5],
               "data_offsets": [begin, end]}, plus "__metadata__": {str: str}
    the rest   the tensors' bytes, little-endian, C order, back to back

Loading it runs no code, unlike pickle. A flat dict of tensors, such as
``model.state_dict()``, is stored under its own names (``conv1.weight``), so
``safetensors.torch.load_file`` opens it as PyTorch state. Anything else (a
checkpoint ``{"model": ..., "optimizer": ..., "epoch": 3}``) stores its tensors as
entries named by their path (``model.conv1.weight``) and the rest of its
structure as JSON in the metadata, where tensors appear as ``{"__tensor__": name}``.

Two more metadata entries let ``load`` check a file: the SHA-256 of everything
else in it (the rest of the header, then the tensor bytes), and the devices of
tensors that were not on the CPU. A file is written to
a temporary file beside the target and renamed over it only when complete, so a
crash mid-write leaves the old file as it was.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from typing import IO, Any

import numpy

from tinyconv.backend import cuda_is_available, normalize_device, to_device
from tinyconv.dtypes import is_int
from tinyconv.files import write_atomically
from tinyconv.tensor import Tensor

__all__ = ["load", "save"]

_CODE_OF_DTYPE = {
    numpy.dtype(numpy.bool_): "BOOL",
    numpy.dtype(numpy.uint8): "U8",
    numpy.dtype(numpy.int8): "I8",
    numpy.dtype(numpy.uint16): "U16",
    numpy.dtype(numpy.int16): "I16",
    numpy.dtype(numpy.uint32): "U32",
    numpy.dtype(numpy.int32): "I32",
    numpy.dtype(numpy.uint64): "U64",
    numpy.dtype(numpy.int64): "I64",
    numpy.dtype(numpy.float16): "F16",
    numpy.dtype(numpy.float32): "F32",
    numpy.dtype(numpy.float64): "F64",
}
# stored bytes are little-endian whatever the machine
_DTYPE_OF_CODE = {code: dtype.newbyteorder("<") for dtype, code in _CODE_OF_DTYPE.items()}

_STRUCTURE_KEY = "tinyconv.structure"
_DEVICES_KEY = "tinyconv.devices"
_DIGEST_KEY = "tinyconv.file_sha256"
# files written by tinyconv before the checksum covered the header: the tensor bytes only
_DATA_DIGEST_KEY = "tinyconv.sha256"
_METADATA = "__metadata__"
# NumPy's limit on dimensions (and an array's bytes must fit an int64)
_MAX_DIMS = 64
# the limit safetensors itself puts on a header: a larger one means a foreign file
_MAX_HEADER_BYTES = 100_000_000

PathOrFile = str | os.PathLike | IO[bytes]


def save(obj: Any, f: PathOrFile) -> None:
    """Save tensors, or nested state holding tensors, to a safetensors file.

    Args:
        obj: a flat ``{name: Tensor}`` dict (stored under those names), or any nesting
            of dicts (keys str, int, float, bool or None), lists, tuples, Tensors, NumPy
            arrays, str, int, float, bool and None. NumPy scalars are saved as the
            Python number they hold.
        f: a path, written atomically, or a binary file object open for writing.
    """
    _check_file_argument(f, "save", "write")  # before the tensors are copied to the host
    encoder = _Encoder()
    if _is_flat_state(obj):
        for name, tensor in obj.items():
            # every name gets its own entry, even for tied weights: readers expect them all
            encoder.add(name, tensor, shared=False)
        structure = None
    else:
        try:
            structure = encoder.encode(obj, path=())
        except RecursionError:  # a cycle recurses forever
            raise ValueError("save: obj contains itself, or is nested too deeply") from None
    header, data = _layout(encoder, structure)
    if isinstance(f, (str, os.PathLike)):
        write_atomically(f, lambda file: _write(file, header, data))
    else:
        _write(f, header, data)


def load(f: PathOrFile, map_location: str | None = None) -> Any:
    """Load what ``save`` wrote, or any safetensors file (as a ``{name: Tensor}`` dict).

    Args:
        f: a path, or a binary file object open for reading.
        map_location: the device every tensor goes to (``'cpu'``, ``'cuda'``); by
            default each tensor goes back to the device it was saved from.

    Raises:
        RuntimeError: naming the file, when it is truncated, corrupt or not a
            safetensors file.
    """
    _check_file_argument(f, "load", "read")
    device = None if map_location is None else normalize_device(map_location)
    if device is not None and device != "cpu" and not cuda_is_available():
        raise RuntimeError(f"load: map_location={map_location!r}, but CUDA is not available here")
    if isinstance(f, (str, os.PathLike)):
        source = str(f)
        with open(f, "rb") as file:
            blob = bytearray(os.fstat(file.fileno()).st_size)  # one buffer, no extra copy
            file.readinto(blob)
    else:
        source = getattr(f, "name", repr(f))
        blob = bytearray(f.read())
    try:
        return _decode_file(blob, device)
    except _FormatError as error:
        raise RuntimeError(f"cannot load {source}: {error}") from None


def _check_file_argument(f: Any, name: str, mode: str) -> None:
    if not isinstance(f, (str, os.PathLike)) and not hasattr(f, mode):
        raise TypeError(
            f"{name}: f={f!r} must be a path (str or os.PathLike) or a binary file object "
            f"open for {'writing' if mode == 'write' else 'reading'}"
        )


# -- saving ------------------------------------------------------------------------------


def _is_flat_state(obj: Any) -> bool:
    """A dict of str -> Tensor, stored under its own names (what PyTorch tools expect)."""
    return isinstance(obj, dict) and all(
        isinstance(key, str) and key != _METADATA and isinstance(value, Tensor)
        for key, value in obj.items()
    )


class _Encoder:
    """Turns nested state into JSON-ready structure, collecting the arrays it holds."""

    def __init__(self) -> None:
        self.arrays: dict[str, numpy.ndarray] = {}  # name -> little-endian C-order array
        self.devices: dict[str, str] = {}  # name -> device, for tensors not on the CPU
        self._names: dict[int, str] = {}  # id of a saved object -> its entry, so sharing survives
        self._keep: list[Any] = []  # keeps those objects alive, so their ids stay unique

    def add(self, name: str, value: Any, shared: bool = True) -> str:
        """Store a Tensor or array as an entry and return the entry's name; with ``shared``,
        an object seen before is not stored again but refers to its first entry."""
        known = self._names.get(id(value))
        if shared and known is not None:
            return known
        name = self._unique(name)
        if isinstance(value, Tensor):
            array = to_device(value.data, "cpu")
            if value.device != "cpu":
                self.devices[name] = value.device
        else:
            array = value
        if array.dtype.newbyteorder("=") not in _CODE_OF_DTYPE:
            raise TypeError(
                f"cannot save {name!r}: dtype {array.dtype} is not supported; expected one of "
                + ", ".join(str(dtype) for dtype in _CODE_OF_DTYPE)
            )
        self.arrays[name] = numpy.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
        self._names[id(value)] = name
        self._keep.append(value)
        return name

    def _unique(self, name: str) -> str:
        candidate, count = name, 1
        while candidate in self.arrays or candidate == _METADATA:
            count += 1
            candidate = f"{name}#{count}"
        return candidate

    def encode(self, value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, Tensor):
            return {"__tensor__": self.add(".".join(path) or "tensor", value)}
        if isinstance(value, numpy.ndarray):
            return {"__ndarray__": self.add(".".join(path) or "array", value)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
            return value.item()
        if isinstance(value, list):
            return [self.encode(item, (*path, str(i))) for i, item in enumerate(value)]
        if isinstance(value, tuple):
            return {
                "__tuple__": [self.encode(item, (*path, str(i))) for i, item in enumerate(value)]
            }
        if isinstance(value, dict):
            return self._encode_dict(value, path)
        where = ".".join(path) or "the object"
        raise TypeError(
            f"cannot save {where} of type {type(value).__name__}; save stores Tensors, NumPy "
            "arrays, dicts, lists, tuples, str, int, float, bool and None"
        )

    def _encode_dict(self, value: dict, path: tuple[str, ...]) -> Any:
        value = {_plain(key): item for key, item in value.items()}
        for key in value:
            if not (key is None or isinstance(key, (str, int, float))):
                where = ".".join(path) or "the object"
                raise TypeError(
                    f"cannot save the dict at {where}: key {key!r} is a {type(key).__name__}; "
                    "keys must be str, int, float, bool or None"
                )
        items = [(key, self.encode(item, (*path, str(key)))) for key, item in value.items()]
        if all(isinstance(key, str) and not key.startswith("__") for key in value):
            return dict(items)
        # JSON objects have only string keys: keep other keys (an optimizer's
        # integer parameter ids) as [key, value] pairs, which keep their type.
        return {"__dict__": [list(item) for item in items]}


def _plain(value: Any) -> Any:
    """A NumPy bool, int or float scalar as the Python number it holds."""
    if isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
        return value.item()
    return value


def _layout(encoder: _Encoder, structure: Any) -> tuple[bytes, list[numpy.ndarray]]:
    """The padded header bytes, and the arrays in the order their bytes follow it."""
    # Larger items first, as safetensors does: every tensor then starts at a multiple of
    # its item size, so a reader can map it without copying.
    order = sorted(encoder.arrays, key=lambda name: -encoder.arrays[name].dtype.itemsize)
    offsets, position = {}, 0
    for name in order:
        array = encoder.arrays[name]
        offsets[name] = [position, position + array.nbytes]
        position += array.nbytes

    metadata = {}
    if structure is not None:
        metadata[_STRUCTURE_KEY] = json.dumps(structure, separators=(",", ":"))
    if encoder.devices:
        metadata[_DEVICES_KEY] = json.dumps(encoder.devices, separators=(",", ":"))
    header: dict[str, Any] = {_METADATA: metadata}
    for name, array in encoder.arrays.items():  # the header keeps the caller's order
        header[name] = {
            "dtype": _CODE_OF_DTYPE[array.dtype.newbyteorder("=")],
            "shape": list(array.shape),
            "data_offsets": offsets[name],
        }
    digest = hashlib.sha256(_canonical(header))
    for name in order:
        digest.update(_bytes_of(encoder.arrays[name]))
    metadata[_DIGEST_KEY] = digest.hexdigest()  # added last: it covers everything else
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # spaces pad the header so the data starts 8-aligned
    return struct.pack("<Q", len(text)) + text, [encoder.arrays[name] for name in order]


def _canonical(header: dict[str, Any]) -> bytes:
    # the header as the checksum reads it: one spelling of the same JSON, whatever the
    # order or spacing its writer used
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _bytes_of(array: numpy.ndarray) -> memoryview:
    return memoryview(array.reshape(-1).view(numpy.uint8))


def _write(file: IO[bytes], header: bytes, arrays: list[numpy.ndarray]) -> None:
    file.write(header)
    for array in arrays:
        file.write(_bytes_of(array))


# -- loading -----------------------------------------------------------------------------


class _FormatError(Exception):
    """What is wrong with a file; ``load`` adds the file's name."""


def _decode_file(blob: bytearray, device: str | None) -> Any:
    entries, metadata, data_start, raw_entries = _read_header(blob)
    _check_digest(raw_entries, metadata, memoryview(blob)[data_start:])

    devices = _json_metadata(metadata, _DEVICES_KEY, default={})
    if not isinstance(devices, dict):
        raise _FormatError(f"corrupt metadata {_DEVICES_KEY!r}: not a JSON object")
    tensors = {}
    for name, (dtype, shape, begin, _) in entries.items():
        array = numpy.frombuffer(
            blob, dtype=dtype, count=math.prod(shape), offset=data_start + begin
        )
        if not array.flags.aligned:  # a file laid out by another writer
            array = array.copy()
        array = array.astype(dtype.newbyteorder("="), copy=False).reshape(shape)
        tensors[name] = array, device or devices.get(name, "cpu")

    if _STRUCTURE_KEY not in metadata:
        return {name: _to_tensor(array, where) for name, (array, where) in tensors.items()}
    try:
        structure = _json_metadata(metadata, _STRUCTURE_KEY, default=None)
        return _Decoder(tensors).decode(structure)
    except RecursionError:
        raise _FormatError("corrupt structure: nested too deeply") from None


def _check_digest(raw_entries: dict[str, Any], metadata: dict[str, str], data: memoryview) -> None:
    if _DIGEST_KEY in metadata:
        covered = {k: v for k, v in metadata.items() if k != _DIGEST_KEY}
        digest = hashlib.sha256(_canonical({**raw_entries, _METADATA: covered}))
        digest.update(data)
        expected = metadata[_DIGEST_KEY]
    elif _DATA_DIGEST_KEY in metadata:
        digest, expected = hashlib.sha256(data), metadata[_DATA_DIGEST_KEY]
    elif any(key.startswith("tinyconv.") for key in metadata):
        raise _FormatError("corrupt: it holds tinyconv's metadata but not its checksum")
    else:  # a safetensors file from another writer: nothing to check against
        return
    if digest.hexdigest() != expected:
        raise _FormatError("the file does not match its SHA-256 checksum (corrupt file)")


def _read_header(
    blob: bytearray,
) -> tuple[dict[str, tuple], dict[str, str], int, dict[str, Any]]:
    """Parse and check the header; (entries, metadata, where the data starts, the
    entries as they were read)."""
    if len(blob) < 8:
        raise _FormatError(
            f"truncated: {len(blob)} bytes, but a safetensors file starts with an 8-byte length"
        )
    (header_length,) = struct.unpack("<Q", blob[:8])
    if header_length > _MAX_HEADER_BYTES:
        raise _FormatError(
            f"not a safetensors file (its first 8 bytes give a header of {header_length} bytes)"
        )
    if 8 + header_length > len(blob):
        raise _FormatError(
            f"truncated: the header needs {header_length} bytes, the file has {len(blob) - 8}"
        )
    try:
        header = json.loads(bytes(blob[8 : 8 + header_length]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _FormatError(f"not a safetensors file (its header is not JSON: {error})") from None
    if not isinstance(header, dict):
        raise _FormatError("not a safetensors file (its header is not a JSON object)")

    metadata = header.pop(_METADATA, {})
    if not isinstance(metadata, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()
    ):
        raise _FormatError("corrupt header: __metadata__ must map strings to strings")
    entries = {name: _check_entry(name, entry) for name, entry in header.items()}

    # The tensors' bytes must tile the data exactly: no gaps, no overlaps, nothing missing.
    data_length = len(blob) - 8 - header_length
    position = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if begin != position:
            raise _FormatError(
                f"corrupt header: tensor {name!r} starts at byte {begin} of the data, "
                f"expected {position}"
            )
        position = end
    if position > data_length:
        raise _FormatError(
            f"truncated: the tensors need {position} bytes of data, the file has {data_length}"
        )
    if position < data_length:
        raise _FormatError(f"corrupt: {data_length - position} bytes after the last tensor's data")
    return entries, metadata, 8 + header_length, header


def _check_entry(name: str, entry: Any) -> tuple[numpy.dtype, tuple[int, ...], int, int]:
    """(dtype, shape, begin, end) of one header entry, after checking that they agree."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise _FormatError(f"corrupt header: entry {name!r} lacks dtype, shape or data_offsets")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if code not in _DTYPE_OF_CODE:
        raise _FormatError(
            f"tensor {name!r} has dtype {code!r}, which tinyconv does not support; expected "
            + ", ".join(_DTYPE_OF_CODE)
        )
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_DIMS
        or not all(_is_count(size) for size in shape)
    ):
        raise _FormatError(f"corrupt header: tensor {name!r} has shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(offset) for offset in offsets)
        or offsets[0] > offsets[1]
    ):
        raise _FormatError(f"corrupt header: tensor {name!r} has data_offsets {offsets!r}")
    dtype = _DTYPE_OF_CODE[code]
    if math.prod(max(size, 1) for size in shape) * dtype.itemsize >= 2**63:
        # NumPy refuses such a shape even when a zero in it leaves nothing to hold
        raise _FormatError(f"corrupt header: tensor {name!r} has shape {shape!r}")
    if offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize:
        raise _FormatError(
            f"corrupt header: tensor {name!r} of shape {shape} and dtype {code} needs "
            f"{math.prod(shape) * dtype.itemsize} bytes, its offsets give {offsets[1] - offsets[0]}"
        )
    return dtype, tuple(shape), offsets[0], offsets[1]


def _is_count(value: Any) -> bool:
    return is_int(value) and value >= 0


def _json_metadata(metadata: dict[str, str], key: str, default: Any) -> Any:
    if key not in metadata:
        return default
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as error:
        raise _FormatError(f"corrupt metadata {key!r}: {error}") from None


def _to_tensor(array: numpy.ndarray, device: str) -> Tensor:
    if device != "cpu" and not cuda_is_available():
        raise RuntimeError(
            f"a tensor was saved on {device!r}, but CUDA is not available here; pass "
            "map_location='cpu' to load it on the CPU"
        )
    return Tensor(to_device(array, device))


class _Decoder:
    """Rebuilds the saved structure, turning each tensor reference back into a tensor."""

    def __init__(self, arrays: dict[str, tuple[numpy.ndarray, str]]) -> None:
        self.arrays = arrays
        self.made: dict[str, Any] = {}  # one object per entry, so shared tensors stay shared

    def decode(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.decode(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((tag, value),) = node.items()
            if tag in ("__tensor__", "__ndarray__"):
                return self._entry(tag, value)
            if tag == "__tuple__" and isinstance(value, list):
                return tuple(self.decode(item) for item in value)
            if tag == "__dict__" and isinstance(value, list):
                return self._pairs(value)
        if any(key.startswith("__") for key in node):
            raise _FormatError(f"corrupt structure: unexpected {node!r}")
        return {key: self.decode(value) for key, value in node.items()}

    def _entry(self, tag: str, name: Any) -> Any:
        if name not in self.made:
            if not isinstance(name, str) or name not in self.arrays:
                raise _FormatError(f"corrupt structure: it refers to a missing tensor {name!r}")
            array, device = self.arrays[name]
            self.made[name] = array if tag == "__ndarray__" else _to_tensor(array, device)
        return self.made[name]

    def _pairs(self, pairs: list) -> dict:
        if not all(
            isinstance(pair, list) and len(pair) == 2 and not isinstance(pair[0], (list, dict))
            for pair in pairs
        ):
            raise _FormatError(f"corrupt structure: a __dict__ holds {pairs!r}")
        return {key: self.decode(value) for key, value in pairs}
