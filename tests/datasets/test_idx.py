"""The IDX reader and writer, on small files written here."""

import gzip
import struct

import numpy
import pytest

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


@pytest.mark.parametrize("dtype", [numpy.bool_, numpy.float16, numpy.int64, numpy.complex64])
def test_write_rejects_dtypes_idx_cannot_hold(tmp_path, dtype):
    with pytest.raises(ValueError, match="cannot be stored in IDX"):
        write_idx(tmp_path / "x.idx", numpy.zeros(3, dtype))


def test_write_compress_flag_overrides_the_name(tmp_path):
    write_idx(tmp_path / "plain.gz", numpy.arange(3, dtype=numpy.uint8), compress=False)
    assert (tmp_path / "plain.gz").read_bytes()[:2] == b"\x00\x00"
    write_idx(tmp_path / "packed.idx", numpy.arange(3, dtype=numpy.uint8), compress=True)
    assert (tmp_path / "packed.idx").read_bytes()[:2] == b"\x1f\x8b"
