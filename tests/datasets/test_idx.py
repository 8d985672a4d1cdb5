"""The IDX reader and writer, on small files written here."""

import contextlib
import errno
import gzip
import struct
import tracemalloc

import numpy
import pytest

from tinyconv.datasets import idx
from tinyconv.datasets.idx import read_idx, write_idx

DTYPES = [numpy.uint8, numpy.int8, numpy.int16, numpy.int32, numpy.float32, numpy.float64]


def idx_bytes(code: int, shape: tuple, payload: bytes) -> bytes:
    """An IDX file built by hand: magic, big-endian sizes, payload."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["values.idx", "values.idx.gz"])
def test_write_then_read_round_trips(tmp_path, dtype, name):
    array = (numpy.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == numpy.dtype(dtype)
    assert back.shape == (2, 3, 4)
    numpy.testing.assert_array_equal(back, array)


def test_reads_a_hand_written_big_endian_file(tmp_path):
    path = tmp_path / "ints.idx"
    path.write_bytes(idx_bytes(0x0C, (3,), struct.pack(">3i", 1, -2, 70000)))
    back = read_idx(path)
    assert back.dtype == numpy.int32
    numpy.testing.assert_array_equal(back, [1, -2, 70000])


def test_reads_mnist_shaped_uint8_images_gzip_and_raw(tmp_path):
    images = numpy.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=numpy.uint8)
    raw = idx_bytes(0x08, images.shape, images.tobytes())
    (tmp_path / "raw").write_bytes(raw)
    (tmp_path / "packed").write_bytes(gzip.compress(raw))
    for name in ("raw", "packed"):
        numpy.testing.assert_array_equal(read_idx(tmp_path / name), images)


def test_gzip_is_detected_from_content_not_name(tmp_path):
    raw = idx_bytes(0x08, (2,), b"\x07\x09")
    (tmp_path / "raw-but-named.gz").write_bytes(raw)
    (tmp_path / "gzip-but-named.idx").write_bytes(gzip.compress(raw))
    numpy.testing.assert_array_equal(read_idx(tmp_path / "raw-but-named.gz"), [7, 9])
    numpy.testing.assert_array_equal(read_idx(tmp_path / "gzip-but-named.idx"), [7, 9])


def test_result_is_writable_native_endian(tmp_path):
    write_idx(tmp_path / "f.idx", numpy.ones((2, 2), numpy.float32))
    back = read_idx(tmp_path / "f.idx")
    assert back.dtype.isnative and back.flags.writeable
    back[0, 0] = 5.0


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "truncated IDX file"),
        (b"\x00\x00", "truncated IDX file"),
        (b"\x1f\x00\x08\x01" + b"\x00" * 8, "not an IDX file"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x00", "unknown IDX type code 0x0A"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (idx_bytes(0x08, (2, 3), b"\x00" * 5), "needs 6 bytes of data, found 5"),
        (idx_bytes(0x0C, (2,), b"\x00" * 7), "needs 8 bytes of data, found 7"),
        (idx_bytes(0x08, (2,), b"\x00" * 3), "extra bytes"),
    ],
)
def test_structural_problems_raise_value_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad-file.idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert "bad-file.idx" in str(info.value)


def test_structural_problems_inside_gzip_are_found_too(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (4, 4), b"\x00" * 10)))
    with pytest.raises(ValueError, match="short.gz: truncated IDX file"):
        read_idx(path)


def test_truncated_gzip_raises_value_error(tmp_path):
    path = tmp_path / "cut.gz"
    data = numpy.random.default_rng(1).integers(0, 256, 5000, dtype=numpy.uint8)
    packed = gzip.compress(idx_bytes(0x08, (5000,), data.tobytes()))
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="cut.gz"):
        read_idx(path)


def test_gzip_with_a_damaged_byte_raises_value_error(tmp_path):
    path = tmp_path / "damaged.gz"
    data = numpy.random.default_rng(2).integers(0, 256, 5000, dtype=numpy.uint8)
    packed = bytearray(gzip.compress(idx_bytes(0x08, (5000,), data.tobytes())))
    packed[len(packed) // 2] ^= 0xFF
    path.write_bytes(bytes(packed))
    with pytest.raises(ValueError, match="damaged.gz"):
        read_idx(path)


def test_gzip_with_a_wrong_crc_raises_value_error(tmp_path):
    path = tmp_path / "crc.gz"
    packed = bytearray(gzip.compress(idx_bytes(0x08, (3,), b"\x01\x02\x03")))
    packed[-8] ^= 0xFF  # the CRC32 field of the gzip trailer
    path.write_bytes(bytes(packed))
    with pytest.raises(ValueError, match="crc.gz: corrupt gzip data"):
        read_idx(path)


@pytest.mark.parametrize("packed", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    "shape", [(2**31, 28, 28), (2**32 - 1,) * 3, (2**32 - 1,) * 255], ids=["1.5TiB", "8e28", "max"]
)
def test_a_header_claiming_more_than_the_file_holds_is_refused_without_allocating_it(
    tmp_path, packed, shape
):
    content = idx_bytes(0x08, shape, bytes(range(104)))
    path = tmp_path / "huge-claim.idx"
    path.write_bytes(gzip.compress(content) if packed else content)
    tracemalloc.start()  # NumPy reports its allocations to tracemalloc
    try:
        with pytest.raises(ValueError) as info:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 26  # what the file holds (and read buffers), not what it claims
    message = str(info.value)
    assert "huge-claim.idx" in message and "truncated IDX file" in message
    assert f"shape {shape}" in message and "found 104" in message


def test_a_claim_a_little_over_a_large_gzip_file_is_refused(tmp_path):
    data = numpy.random.default_rng(3).integers(0, 256, 3 * (1 << 20), dtype=numpy.uint8)
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (len(data) + 1,), data.tobytes())))
    with pytest.raises(ValueError, match=f"needs {len(data) + 1} bytes of data, found {len(data)}"):
        read_idx(path)


@pytest.mark.parametrize("name", ["pieces.idx", "pieces.idx.gz"])
def test_a_file_read_in_many_pieces_comes_back_whole(tmp_path, monkeypatch, name):
    monkeypatch.setattr(idx, "_CHUNK", 7)  # many small pieces, joined in order
    data = numpy.random.default_rng(4).standard_normal((5, 13)).astype(numpy.float32)
    write_idx(tmp_path / name, data)
    numpy.testing.assert_array_equal(read_idx(tmp_path / name), data)


def test_an_empty_dimension_gives_an_empty_array(tmp_path):
    write_idx(tmp_path / "empty.idx", numpy.zeros((0, 28, 28), numpy.float32))
    back = read_idx(tmp_path / "empty.idx")
    assert back.shape == (0, 28, 28) and back.dtype == numpy.float32


@contextlib.contextmanager
def file_size_limit(limit):
    """Writes past ``limit`` bytes of any file fail (EFBIG), as writes to a full disk do."""
    resource = pytest.importorskip("resource")
    signal = pytest.importorskip("signal")
    if not hasattr(signal, "SIGXFSZ"):
        pytest.skip("needs SIGXFSZ")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.parametrize("name", ["data.idx", "data.idx.gz"])
def test_a_write_that_fails_part_way_keeps_the_old_file_whole(tmp_path, name):
    path = tmp_path / name
    old = numpy.arange(10, dtype=numpy.int32)
    write_idx(path, old)
    new = numpy.random.default_rng(5).integers(0, 2**31, 100_000, dtype=numpy.int32)
    with file_size_limit(1000), pytest.raises(OSError) as info:
        write_idx(path, new)
    assert info.value.errno == errno.EFBIG
    numpy.testing.assert_array_equal(read_idx(path), old)
    assert [entry.name for entry in tmp_path.iterdir()] == [name]  # no temporary left


def test_the_gzip_header_names_the_file_not_a_temporary(tmp_path):
    write_idx(tmp_path / "labels.idx.gz", numpy.arange(3, dtype=numpy.uint8))
    header = (tmp_path / "labels.idx.gz").read_bytes()[:64]
    assert b"labels.idx\x00" in header and b".tmp" not in header


@pytest.mark.parametrize("function", ["read", "write"])
def test_a_path_that_is_not_a_path_raises_type_error(function):
    with pytest.raises(TypeError, match="path=123 must be a str or os.PathLike"):
        if function == "read":
            read_idx(123)
        else:
            write_idx(123, numpy.zeros(3, numpy.uint8))


def test_write_checks_compress_and_sizes(tmp_path):
    with pytest.raises(TypeError, match="compress='yes'"):
        write_idx(tmp_path / "x.idx", numpy.zeros(3, numpy.uint8), compress="yes")
    too_long = numpy.broadcast_to(numpy.zeros(1, numpy.uint8), (2**32,))  # no memory used
    with pytest.raises(ValueError, match="at most 4294967295"):
        write_idx(tmp_path / "x.idx", too_long)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [numpy.bool_, numpy.float16, numpy.int64, numpy.complex64])
def test_write_rejects_dtypes_idx_cannot_hold(tmp_path, dtype):
    with pytest.raises(ValueError, match="cannot be stored in IDX"):
        write_idx(tmp_path / "x.idx", numpy.zeros(3, dtype))


def test_write_compress_flag_overrides_the_name(tmp_path):
    write_idx(tmp_path / "plain.gz", numpy.arange(3, dtype=numpy.uint8), compress=False)
    assert (tmp_path / "plain.gz").read_bytes()[:2] == b"\x00\x00"
    write_idx(tmp_path / "packed.idx", numpy.arange(3, dtype=numpy.uint8), compress=True)
    assert (tmp_path / "packed.idx").read_bytes()[:2] == b"\x1f\x8b"
