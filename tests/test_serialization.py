"""tc.save / tc.load: safetensors files PyTorch can read, nested state, atomic, checked."""

import hashlib
import io
import json
import math
import os
import struct
import zipfile

import numpy
import pytest

import tinyconv as tc
from tinyconv import serialization

DTYPES = [
    numpy.float32,
    numpy.float64,
    numpy.float16,
    numpy.int64,
    numpy.int32,
    numpy.int16,
    numpy.uint8,
    numpy.int8,
    numpy.bool_,
]


def lenet_state():
    """A state dict with PyTorch's LeNet names, shapes and dtypes."""
    rng = numpy.random.default_rng(0)
    shapes = {
        "conv1.weight": (6, 1, 5, 5),
        "conv1.bias": (6,),
        "conv2.weight": (16, 6, 5, 5),
        "conv2.bias": (16,),
        "fc1.weight": (120, 400),
        "fc1.bias": (120,),
        "fc2.weight": (10, 120),
        "fc2.bias": (10,),
    }
    state = {
        name: tc.tensor(rng.standard_normal(shape, dtype=numpy.float32))
        for name, shape in shapes.items()
    }
    state["bn.num_batches_tracked"] = tc.tensor(numpy.array(7, dtype=numpy.int64))
    return state


def assert_same(actual, expected):
    """Equal values and equal types, all the way down (tensors: dtype, shape, bytes)."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, tc.Tensor):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape
        assert actual.device == expected.device
        numpy.testing.assert_array_equal(actual.cpu().data, expected.cpu().data)
    elif isinstance(expected, numpy.ndarray):
        assert actual.dtype == expected.dtype
        numpy.testing.assert_array_equal(actual, expected)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert type(next(k for k in actual if k == key)) is type(key)
            assert_same(actual[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e)
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual)
    else:
        assert actual == expected


def checkpoint():
    model = lenet_state()
    return {
        "model": model,
        "optimizer": {
            "state": {
                0: {"step": tc.tensor(3.0), "exp_avg": tc.zeros(6, 1, 5, 5)},
                1: {"step": tc.tensor(3.0), "exp_avg": tc.ones(6)},
            },
            "param_groups": [
                {
                    "lr": 0.001,
                    "betas": (0.9, 0.999),
                    "eps": 1e-08,
                    "weight_decay": 0,
                    "amsgrad": False,
                    "maximize": None,
                    "params": [0, 1],
                }
            ],
        },
        "scheduler": {"last_epoch": 3, "base_lrs": [0.1], "_step_count": 4},
        "epoch": 3,
        "best": float("nan"),
        "limits": [float("inf"), -float("inf"), 0.1, 1e-300],
        "rng": numpy.random.default_rng(5).bit_generator.state,
        "indices": numpy.arange(5, dtype=numpy.int64),
        "name": "LeNet-5 ✓",
        "odd keys": {None: 1, True: 2, 2.5: 3, "__tensor__": "not a tensor", "": []},
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_flat_state_round_trips_every_dtype(tmp_path, dtype):
    rng = numpy.random.default_rng(1)
    state = {
        "matrix": tc.tensor((rng.standard_normal((3, 4)) * 50).astype(dtype)),
        "scalar": tc.tensor(numpy.array(5, dtype=dtype)),
        "empty": tc.tensor(numpy.zeros((0, 2), dtype=dtype)),
        "odd": tc.tensor(numpy.ones(3, dtype=dtype)),
    }
    tc.save(state, tmp_path / "state.safetensors")
    assert_same(tc.load(tmp_path / "state.safetensors"), state)


def test_lenet_state_keeps_names_and_order(tmp_path):
    state = lenet_state()
    tc.save(state, tmp_path / "lenet.safetensors")
    loaded = tc.load(tmp_path / "lenet.safetensors")
    assert list(loaded) == list(state)
    assert_same(loaded, state)


def test_nested_checkpoint_round_trips_exactly(tmp_path):
    state = checkpoint()
    tc.save(state, tmp_path / "checkpoint.safetensors")
    assert_same(tc.load(tmp_path / "checkpoint.safetensors"), state)


def test_loaded_tensors_are_plain_writable_tensors(tmp_path):
    weight = tc.randn(3, 2, requires_grad=True)
    tc.save({"w": weight, "t": tc.randn(4, 3).T}, tmp_path / "w.safetensors")
    loaded = tc.load(tmp_path / "w.safetensors")
    assert not loaded["w"].requires_grad and loaded["w"].grad_fn is None
    numpy.testing.assert_array_equal(loaded["w"].data, weight.data)
    loaded["w"].data[0, 0] = 1.0
    assert loaded["t"].shape == (3, 4)


def test_a_tensor_shared_within_the_state_stays_shared(tmp_path):
    shared = tc.ones(3)
    tc.save({"a": [shared, shared], "b": {"c": shared}}, tmp_path / "s.safetensors")
    loaded = tc.load(tmp_path / "s.safetensors")
    assert loaded["a"][0] is loaded["a"][1] is loaded["b"]["c"]


def test_tied_weights_in_a_flat_state_keep_both_names(tmp_path):
    tied = tc.ones(2, 2)
    tc.save({"embed.weight": tied, "head.weight": tied}, tmp_path / "tied.safetensors")
    assert list(tc.load(tmp_path / "tied.safetensors")) == ["embed.weight", "head.weight"]


def test_safetensors_torch_reads_our_file_with_pytorch_names(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    state = lenet_state()
    tc.save(state, tmp_path / "lenet.safetensors")
    loaded = safetensors_torch.load_file(str(tmp_path / "lenet.safetensors"))
    assert set(loaded) == set(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == getattr(torch, str(tensor.data.dtype))
        assert tuple(loaded[name].shape) == tensor.shape
        numpy.testing.assert_array_equal(loaded[name].numpy(), tensor.data)


def test_a_pytorch_model_loads_our_weights(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")

    class LeNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 6, 5)
            self.conv2 = torch.nn.Conv2d(6, 16, 5)
            self.fc1 = torch.nn.Linear(400, 120)
            self.fc2 = torch.nn.Linear(120, 10)

    state = lenet_state()
    del state["bn.num_batches_tracked"]
    tc.save(state, tmp_path / "lenet.safetensors")
    model = LeNet()
    model.load_state_dict(safetensors_torch.load_file(str(tmp_path / "lenet.safetensors")))
    numpy.testing.assert_array_equal(model.fc1.weight.detach().numpy(), state["fc1.weight"].data)


def test_safetensors_reads_tensors_of_a_nested_checkpoint(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tc.save(checkpoint(), tmp_path / "checkpoint.safetensors")
    loaded = safetensors_numpy.load_file(str(tmp_path / "checkpoint.safetensors"))
    assert "model.conv1.weight" in loaded and "optimizer.state.0.exp_avg" in loaded
    numpy.testing.assert_array_equal(loaded["indices"], numpy.arange(5))


def test_we_read_files_written_by_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    tensors = {
        "w": torch.randn(3, 4),
        "n": torch.tensor(4, dtype=torch.int64),
        "m": torch.tensor([True, False]),
        "h": torch.arange(5, dtype=torch.uint8),
    }
    safetensors_torch.save_file(tensors, str(tmp_path / "torch.safetensors"))
    loaded = tc.load(tmp_path / "torch.safetensors")
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        numpy.testing.assert_array_equal(loaded[name].data, tensor.numpy())
        assert loaded[name].shape == tuple(tensor.shape)


def test_the_file_is_safetensors_with_aligned_data(tmp_path):
    tc.save(lenet_state(), tmp_path / "lenet.safetensors")
    blob = (tmp_path / "lenet.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    assert (8 + length) % 8 == 0
    assert header["conv1.weight"]["dtype"] == "F32"
    assert header["conv1.weight"]["shape"] == [6, 1, 5, 5]
    assert all(
        entry["data_offsets"][0] % 4 == 0
        for name, entry in header.items()
        if name != "__metadata__"
    )
    assert all(isinstance(value, str) for value in header["__metadata__"].values())


def test_file_objects_work_too():
    buffer = io.BytesIO()
    state = checkpoint()
    tc.save(state, buffer)
    buffer.seek(0)
    assert_same(tc.load(buffer), state)


def test_map_location_cpu(tmp_path):
    tc.save({"w": tc.ones(2)}, tmp_path / "w.safetensors")
    assert tc.load(tmp_path / "w.safetensors", map_location="cpu")["w"].device == "cpu"
    with pytest.raises(ValueError, match="device"):
        tc.load(tmp_path / "w.safetensors", map_location="tpu")


def test_a_cuda_tensor_without_cuda_points_at_map_location(tmp_path, monkeypatch):
    path = tmp_path / "gpu.safetensors"
    header = {
        "__metadata__": {"tinyconv.devices": '{"w": "cuda"}'},
        "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    }
    write_raw(path, signed(header, b"\0\0\x80\x3f"), b"\0\0\x80\x3f")
    monkeypatch.setattr(serialization, "cuda_is_available", lambda: False)
    with pytest.raises(RuntimeError, match="map_location='cpu'"):
        tc.load(path)
    assert tc.load(path, map_location="cpu")["w"].tolist() == [1.0]


def test_numpy_scalars_and_keys_are_saved_as_python_numbers(tmp_path):
    state = {"lr": numpy.float64(0.5), "steps": {numpy.int64(3): numpy.bool_(True)}}
    tc.save(state, tmp_path / "n.safetensors")
    assert_same(tc.load(tmp_path / "n.safetensors"), {"lr": 0.5, "steps": {3: True}})


@pytest.mark.skipif(not tc.cuda.is_available(), reason="needs a GPU")
def test_cuda_tensors_come_back_on_cuda_unless_mapped(tmp_path):
    state = {"w": tc.randn(3, 3, device="cuda"), "step": 4, "cpu": tc.ones(2)}
    tc.save(state, tmp_path / "gpu.safetensors")
    loaded = tc.load(tmp_path / "gpu.safetensors")
    assert loaded["w"].device == "cuda" and loaded["cpu"].device == "cpu"
    assert_same(loaded, state)
    mapped = tc.load(tmp_path / "gpu.safetensors", map_location="cpu")
    assert mapped["w"].device == "cpu"
    moved = tc.load(tmp_path / "gpu.safetensors", map_location="cuda")
    assert moved["cpu"].device == "cuda"


def test_unsupported_values_raise_naming_where(tmp_path):
    with pytest.raises(TypeError, match="optimizer.hook of type function"):
        tc.save({"optimizer": {"hook": lambda: None}}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="key"):
        tc.save({(1, 2): 3}, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def temporary_files(folder):
    return [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_an_interrupted_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.safetensors"
    old = checkpoint()
    tc.save(old, path)
    before = path.read_bytes()

    def write_half_then_crash(file, header, arrays):
        file.write(header)
        file.write(serialization._bytes_of(arrays[0])[:10])
        raise KeyboardInterrupt  # as if Ctrl-C or a crash came mid-write

    monkeypatch.setattr(serialization, "_write", write_half_then_crash)
    new = checkpoint()
    new["epoch"] = 4
    with pytest.raises(KeyboardInterrupt):
        tc.save(new, path)
    assert path.read_bytes() == before
    assert_same(tc.load(path), old)
    assert temporary_files(tmp_path) == []


def test_a_failing_fsync_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    tc.save({"w": tc.zeros(3)}, path)

    def broken_fsync(handle):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        tc.save({"w": tc.ones(3)}, path)
    monkeypatch.undo()
    assert tc.load(path)["w"].tolist() == [0.0, 0.0, 0.0]
    assert temporary_files(tmp_path) == []


def test_save_keeps_the_permissions_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "w.safetensors"
    umask = os.umask(0o022)
    try:
        tc.save({"w": tc.zeros(3)}, path)
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644  # as open() would make it, not mkstemp's 0o600
    os.chmod(path, 0o640)
    tc.save({"w": tc.ones(3)}, path)
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("keep", [0, 5, 8, 20, -1, -30])
def test_a_truncated_file_raises_naming_the_path(tmp_path, keep):
    path = tmp_path / "cut.safetensors"
    tc.save(checkpoint(), path)
    blob = path.read_bytes()
    path.write_bytes(blob[:keep])
    with pytest.raises(RuntimeError, match="truncated") as info:
        tc.load(path)
    assert str(path) in str(info.value)


def test_a_damaged_data_byte_fails_the_checksum(tmp_path):
    path = tmp_path / "flip.safetensors"
    tc.save(lenet_state(), path)
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(RuntimeError, match="checksum"):
        tc.load(path)


@pytest.mark.parametrize(
    "change",
    [
        (b'\\"epoch\\":3', b'\\"epoch\\":7'),  # a number in the structure's JSON
        (b"tinyconv.structure", b"tinyconv.structurX"),  # the structure lost
        (b"tinyconv.file_sha256", b"tinyconv.file_sha25X"),  # the checksum lost
        (b'"shape":[6,1,5,5]', b'"shape":[1,6,5,5]'),  # a shape of the same size
    ],
    ids=["number", "structure-key", "checksum-key", "shape"],
)
def test_a_changed_header_fails_the_checksum(tmp_path, change):
    path = tmp_path / "edited.safetensors"
    tc.save({"model": lenet_state(), "epoch": 3}, path)
    blob = path.read_bytes()
    assert blob.count(change[0]) == 1
    path.write_bytes(blob.replace(*change))
    with pytest.raises(RuntimeError, match="checksum"):
        tc.load(path)


def test_a_file_from_before_the_header_was_checked_still_loads(tmp_path):
    # its checksum, under the older key, covers the tensor bytes only
    data = numpy.arange(3, dtype="<f4").tobytes()
    header = {
        "__metadata__": {
            "tinyconv.sha256": hashlib.sha256(data).hexdigest(),
            "tinyconv.structure": '{"w":{"__tensor__":"w"},"epoch":2}',
        },
        "w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
    }
    path = tmp_path / "old.safetensors"
    write_raw(path, header, data)
    loaded = tc.load(path)
    assert loaded["epoch"] == 2 and loaded["w"].tolist() == [0.0, 1.0, 2.0]
    write_raw(path, header, data[:-1] + b"\x01")
    with pytest.raises(RuntimeError, match="checksum"):
        tc.load(path)


def test_a_damaged_header_is_reported(tmp_path):
    path = tmp_path / "header.safetensors"
    tc.save(lenet_state(), path)
    blob = bytearray(path.read_bytes())
    blob[9] = ord("#")  # the header's JSON no longer parses
    path.write_bytes(bytes(blob))
    with pytest.raises(RuntimeError, match="header.safetensors: not a safetensors file"):
        tc.load(path)


def write_raw(path, header, data=b""):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def signed(header, data=b""):
    """``header`` with tinyconv's checksum added as its format defines it: the SHA-256
    of the rest of the header (compact JSON, keys sorted), then of the data."""
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(text + data).hexdigest()
    metadata = {**header.get("__metadata__", {}), "tinyconv.file_sha256": digest}
    return {**header, "__metadata__": metadata}


@pytest.mark.parametrize(
    "header, data, message",
    [
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "needs 8 bytes"),
        ({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "dtype 'Q7'"),
        ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
        # shapes NumPy cannot make, even with a zero in them to hold nothing
        ({"w": {"dtype": "F32", "shape": [0, 2**63], "data_offsets": [0, 0]}}, b"", "shape"),
        ({"w": {"dtype": "F32", "shape": [0, 2**62, 4], "data_offsets": [0, 0]}}, b"", "shape"),
        ({"w": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
        ({"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, "lacks"),
        (
            {"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
            b"\0" * 8,
            "starts at byte 4",
        ),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 9, "5 bytes after"),
        ({"__metadata__": {"a": 1}}, b"", "__metadata__"),
        (signed({"__metadata__": {"tinyconv.structure": "{"}}), b"", "tinyconv.structure"),
        (
            signed({"__metadata__": {"tinyconv.structure": '{"__tensor__": "w"}'}}),
            b"",
            "missing tensor",
        ),
        ([1, 2], b"", "not a JSON object"),
    ],
)
def test_inconsistent_headers_are_reported(tmp_path, header, data, message):
    path = tmp_path / "bad.safetensors"
    write_raw(path, header, data)
    with pytest.raises(RuntimeError, match=message):
        tc.load(path)


def test_foreign_files_are_not_safetensors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not tensors, just some words in a file")
    archive = tmp_path / "model.pt"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    for path in (text, archive):
        with pytest.raises(RuntimeError, match="not a safetensors file") as info:
            tc.load(path)
        assert str(path) in str(info.value)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        tc.load(tmp_path / "nothing.safetensors")


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: tc.save({}, None), "f=None must be a path"),
        (lambda: tc.save({}, 123), "f=123 must be a path"),
        (lambda: tc.load(None), "f=None must be a path"),
        (lambda: tc.load(b"state.safetensors"), "must be a path"),
    ],
)
def test_a_file_argument_that_is_neither_path_nor_file_is_named(call, words):
    with pytest.raises(TypeError, match=words):
        call()


def test_map_location_cuda_without_cuda_names_map_location(tmp_path, monkeypatch):
    path = tmp_path / "cpu.safetensors"
    tc.save({"w": tc.ones(2)}, path)
    monkeypatch.setattr(serialization, "cuda_is_available", lambda: False)
    with pytest.raises(RuntimeError, match="map_location='cuda', but CUDA is not available"):
        tc.load(path, map_location="cuda")


def test_an_object_that_contains_itself_is_refused(tmp_path):
    state = {"w": tc.ones(2)}
    state["self"] = state
    with pytest.raises(ValueError, match="contains itself"):
        tc.save(state, tmp_path / "loop.safetensors")
    assert not (tmp_path / "loop.safetensors").exists()


def test_a_structure_nested_too_deeply_is_reported_with_the_file(tmp_path):
    path = tmp_path / "deep.safetensors"
    structure = "[" * 100_000 + "]" * 100_000
    write_raw(path, signed({"__metadata__": {"tinyconv.structure": structure}}))
    with pytest.raises(RuntimeError, match="deep.safetensors: corrupt structure"):
        tc.load(path)
