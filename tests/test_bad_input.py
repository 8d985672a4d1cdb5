"""Wrong input fails at once, with an error whose message names the problem."""

from __future__ import annotations

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn.functional as F

# -- autograd misuse ----------------------------------------------------------------------


def test_backward_on_a_non_scalar_without_gradient_says_to_pass_one():
    y = tc.ones(2, 3, requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"scalar.*\(2, 3\).*gradient="):
        y.backward()


def test_backward_twice_says_to_retain_the_graph():
    loss = (tc.ones(2, requires_grad=True).exp()).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_backward_on_a_tensor_without_grad_says_so():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tc.ones(2).sum().backward()


def test_backward_with_a_gradient_of_another_shape_names_both_shapes():
    y = tc.ones(2, requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2,\)"):
        y.backward(tc.ones(3))


@pytest.mark.parametrize(
    "make",
    [
        lambda: tc.tensor([1, 2], requires_grad=True),
        lambda: tc.arange(3).requires_grad_(),
        lambda: tc.zeros(2, dtype=tc.int64, requires_grad=True),
        lambda: tc.tensor([True], requires_grad=True),
    ],
    ids=["tensor", "requires_grad_", "zeros", "bool"],
)
def test_requires_grad_on_a_non_float_tensor_raises(make):
    with pytest.raises(RuntimeError, match="floating point"):
        make()


def test_numpy_of_a_tensor_requiring_grad_points_at_detach():
    with pytest.raises(RuntimeError, match=r"detach\(\)\.numpy\(\)"):
        tc.ones(2, requires_grad=True).numpy()


# -- shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a_shape, b_shape, message",
    [
        ((2, 3), (4, 5), r"\(2, 3\) and \(4, 5\)"),
        ((3,), (4,), r"\(3,\) and \(4,\)"),
        ((2, 3), (2,), r"\(2, 3\) and \(2,\)"),
        ((2, 2, 3), (3, 3, 2), r"batch shapes"),
        ((), (3,), r"at least 1 dimension"),
    ],
)
def test_matmul_of_incompatible_shapes_names_them(a_shape, b_shape, message):
    with pytest.raises(RuntimeError, match=message):
        tc.ones(a_shape) @ tc.ones(b_shape)


def test_linear_with_the_wrong_in_features_names_them():
    with pytest.raises(ValueError, match="in_features=4"):
        F.linear(tc.ones(2, 3), tc.ones(5, 4))
    with pytest.raises(ValueError, match=r"bias has shape \(4,\)"):
        F.linear(tc.ones(2, 3), tc.ones(5, 3), tc.ones(4))


def test_binary_op_of_shapes_that_do_not_broadcast_names_them():
    with pytest.raises(ValueError, match=r"broadcast.*\(2,3\).*\(4,\)"):
        tc.ones(2, 3) + tc.ones(4)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((4, 4), r"shape \(4, 4\) is invalid for a tensor of shape \(2, 3\)"),
        ((-1, 4), r"shape \(-1, 4\) is invalid"),
        ((-1, -1), r"only one dimension can be -1"),
        ((2, -3), r"invalid size -3"),
    ],
)
def test_reshape_to_an_impossible_shape_names_it(shape, message):
    with pytest.raises(ValueError, match=message):
        tc.ones(2, 3).reshape(shape)
    with pytest.raises(ValueError, match=message):
        tc.ones(2, 3).view(*shape)


def test_expand_to_an_incompatible_size_names_the_dimension():
    with pytest.raises(ValueError, match="size 3 of dimension 0 must match 4"):
        tc.ones(3, 1).expand(4, 2)


def test_cat_of_mismatched_shapes_names_the_tensor():
    with pytest.raises(ValueError, match=r"tensors\[1\] has shape \(2, 2\)"):
        tc.cat([tc.ones(2, 3), tc.ones(2, 2)], dim=0)
    with pytest.raises(ValueError, match=r"tensors\[1\] has shape \(3,\)"):
        tc.stack([tc.ones(2), tc.ones(3)])
    with pytest.raises(ValueError, match="non-empty"):
        tc.cat([])


# -- dims ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda x: x.sum(dim=2),
        lambda x: x.mean(dim=-3),
        lambda x: x.max(dim=5),
        lambda x: x.softmax(2),
        lambda x: x.log_softmax(-3),
        lambda x: x.transpose(0, 2),
        lambda x: x.unsqueeze(3),
        lambda x: x.squeeze(2),
        lambda x: x.flatten(0, 2),
        lambda x: x.argmax(dim=2),
        lambda x: x.size(2),
        lambda x: tc.cat([x, x], dim=2),
        lambda x: tc.stack([x, x], dim=4),
    ],
    ids=[
        "sum",
        "mean",
        "max",
        "softmax",
        "log_softmax",
        "transpose",
        "unsqueeze",
        "squeeze",
        "flatten",
        "argmax",
        "size",
        "cat",
        "stack",
    ],
)
def test_dim_out_of_range_names_the_dim_and_the_range(call):
    with pytest.raises(ValueError, match=r"dim=-?\d+ is out of range .* \(expected -\d+ to \d+\)"):
        call(tc.ones(2, 3))


def test_dim_that_is_not_an_int_raises_type_error():
    with pytest.raises(TypeError, match="must be an int"):
        tc.ones(2, 3).sum(dim=1.0)


def test_permute_with_the_wrong_dims_names_them():
    with pytest.raises(ValueError, match="has 2 entries for a tensor of 3 dimensions"):
        tc.ones(2, 3, 4).permute(0, 1)
    with pytest.raises(ValueError, match="repeats a dimension"):
        tc.ones(2, 3, 4).permute(0, 1, 1)


def test_flatten_with_start_after_end_names_both():
    with pytest.raises(ValueError, match="start_dim=2 comes after end_dim=1"):
        tc.ones(2, 3, 4).flatten(2, 1)


# -- indexing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "index, message",
    [
        (5, "index 5 is out of bounds for dimension 0 with size 4"),
        (-5, "index -5 is out of bounds for dimension 0 with size 4"),
        ((0, 3), "index 3 is out of bounds for dimension 1 with size 3"),
        ([0, 7], "index 7 is out of bounds for dimension 0 with size 4"),
        ((slice(None), [0, 3]), "index 3 is out of bounds for dimension 1 with size 3"),
        ((0, 0, 0), r"too many indices for a tensor of shape \(4, 3\)"),
    ],
)
def test_index_out_of_range_raises_index_error(index, message):
    with pytest.raises(IndexError, match=message):
        tc.ones(4, 3)[index]


# -- dtypes -------------------------------------------------------------------------------


def test_matmul_of_mixed_float_dtypes_is_refused_as_in_pytorch():
    a = tc.ones(2, 3, dtype=tc.float32)
    b = tc.ones(3, 2, dtype=tc.float64)
    with pytest.raises(RuntimeError, match="float32 and float64"):
        a @ b


def test_linear_of_mixed_dtypes_is_refused_as_in_pytorch():
    x = tc.ones(2, 3, dtype=tc.float32)
    with pytest.raises(RuntimeError, match="input is float32 but weight is float64"):
        F.linear(x, tc.ones(4, 3, dtype=tc.float64))
    with pytest.raises(RuntimeError, match="input is float32 but bias is float64"):
        F.linear(x, tc.ones(4, 3), tc.ones(4, dtype=tc.float64))


def test_mse_loss_of_mixed_dtypes_is_refused():
    with pytest.raises(RuntimeError, match="float32 but target is float64"):
        F.mse_loss(tc.ones(2), tc.ones(2, dtype=tc.float64))


def test_pytorch_refuses_the_same_mixed_dtypes(torch):
    with pytest.raises(RuntimeError):
        torch.ones(2, 3) @ torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3, dtype=torch.float64))


def test_unsupported_dtype_is_named():
    with pytest.raises(TypeError, match="complex64"):
        tc.zeros(2, dtype="complex64")
    with pytest.raises(TypeError, match="not a dtype"):
        tc.zeros(2, dtype="no_such_type")
    with pytest.raises(TypeError, match="dtype <U1"):
        tc.tensor(["a", "b"])


def test_inplace_op_that_would_change_the_dtype_is_refused():
    x = tc.tensor([1, 2])
    with pytest.raises(
        RuntimeError, match="float32 can't be cast to the desired output type int64"
    ):
        x += 1.5


def test_mean_of_an_integer_tensor_says_to_convert():
    with pytest.raises(TypeError, match=r"call \.float\(\) first"):
        tc.tensor([1, 2]).mean()


def test_operand_of_an_unsupported_type_raises_type_error():
    with pytest.raises(TypeError):
        tc.ones(2) + "a"


# -- values -------------------------------------------------------------------------------


def test_item_of_several_elements_says_how_many():
    with pytest.raises(RuntimeError, match="3 elements"):
        tc.ones(3).item()


def test_truth_value_of_several_elements_is_ambiguous():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tc.ones(3))


def test_factory_with_a_negative_size_names_it():
    with pytest.raises(ValueError, match="non-negative"):
        tc.zeros(2, -1)


def test_clamp_without_bounds_raises():
    with pytest.raises(ValueError, match="at least one of min and max"):
        tc.ones(2).clamp()


def test_max_of_an_empty_tensor_raises():
    with pytest.raises(RuntimeError, match="non-empty"):
        tc.ones(0).max()


def test_pad_with_an_odd_number_of_amounts_names_it():
    with pytest.raises(ValueError, match=r"pad=\(1, 2, 3\) must be a tuple of an even number"):
        F.pad(tc.ones(2, 3), (1, 2, 3))
    with pytest.raises(ValueError, match="pads 3 dimensions of a 2-D input"):
        F.pad(tc.ones(2, 3), (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="crops dimension 1 below zero"):
        F.pad(tc.ones(2, 3), (-2, -2))


# -- losses -------------------------------------------------------------------------------


def test_cross_entropy_target_out_of_range_names_it():
    with pytest.raises(ValueError, match="target 3 is out of bounds for 3 classes"):
        F.cross_entropy(tc.ones(2, 3), tc.tensor([0, 3]))
    with pytest.raises(ValueError, match="target -1 is out of bounds"):
        F.nll_loss(tc.ones(2, 3), tc.tensor([-1, 0]))


def test_cross_entropy_with_float_targets_asks_for_class_indices():
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(tc.ones(2, 3), tc.tensor([0.0, 1.0]))


def test_cross_entropy_with_a_target_of_the_wrong_shape_names_both():
    with pytest.raises(ValueError, match=r"target has shape \(3,\), expected \(2,\)"):
        F.cross_entropy(tc.ones(2, 3), tc.tensor([0, 1, 2]))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss, F.mse_loss])
def test_unknown_reduction_is_named(loss):
    target = tc.tensor([0, 1]) if loss is not F.mse_loss else tc.ones(2, 3)
    with pytest.raises(ValueError, match="reduction='average' is not valid"):
        loss(tc.ones(2, 3), target, reduction="average")


def test_label_smoothing_outside_the_unit_interval_is_named():
    with pytest.raises(ValueError, match="label_smoothing=1.5"):
        F.cross_entropy(tc.ones(2, 3), tc.tensor([0, 1]), label_smoothing=1.5)


# -- devices ------------------------------------------------------------------------------


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="device='tpu' is not a device"):
        tc.zeros(2, device="tpu")


@pytest.fixture
def without_cupy(monkeypatch):
    """The backend as on a machine where ``import cupy`` fails."""
    from tinyconv import backend

    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(
        backend, "_cupy_import_error", ModuleNotFoundError("No module named 'cupy'")
    )
    monkeypatch.setattr(backend, "_generators", {})


@pytest.mark.parametrize(
    "request_cuda",
    [
        lambda: tc.zeros(2, device="cuda"),
        lambda: tc.randn(2, device="cuda"),
        lambda: tc.tensor([1.0], device="cuda"),
        lambda: tc.tensor([1.0]).to("cuda"),
        lambda: tc.tensor([1.0]).cuda(),
        lambda: tc.set_default_device("cuda"),
    ],
    ids=["zeros", "randn", "tensor", "to", "cuda", "set_default_device"],
)
def test_cuda_without_cupy_says_what_to_install(without_cupy, request_cuda):
    with pytest.raises(RuntimeError, match=r"needs CuPy.*pip install"):
        request_cuda()
    assert tc.get_default_device() == "cpu"


def test_cuda_is_unavailable_without_cupy(without_cupy):
    assert tc.cuda.is_available() is False
    assert tc.cuda.device_count() == 0


def test_numpy_of_a_cuda_tensor_points_at_cpu():
    if not tc.cuda.is_available():
        pytest.skip("needs CuPy and a GPU")
    with pytest.raises(TypeError, match=r"\.cpu\(\)"):
        tc.ones(2, device="cuda").numpy()


def test_op_on_tensors_of_two_devices_names_both():
    if not tc.cuda.is_available():
        pytest.skip("needs CuPy and a GPU")
    with pytest.raises(RuntimeError, match="'cpu' and 'cuda'"):
        tc.ones(2) + tc.ones(2, device="cuda")


def test_float_index_list_raises_instead_of_truncating():
    x = tc.arange(6.0)
    with pytest.raises(IndexError, match="must be integer or bool"):
        x[[0.5, 1.0]]


def test_empty_index_list_selects_nothing():
    assert tc.arange(6.0).reshape(2, 3)[[]].shape == (0, 3)


# -- calls PyTorch refuses, which NumPy would answer with a wrong value -------------------

SILENTLY_WRONG = [
    # (call, error, words the message must contain)
    (lambda: tc.arange(10, 0), ValueError, "sign of step"),
    (lambda: tc.arange(None), TypeError, "end=None"),
    (lambda: tc.randn(3, dtype=tc.int64), TypeError, "floating"),
    (lambda: tc.rand(3, dtype=tc.int64), TypeError, "floating"),
    (lambda: tc.randn_like(tc.arange(3)), TypeError, "floating"),
    (lambda: tc.zeros_like(3), TypeError, "Tensor"),
    (lambda: tc.cat(tc.ones(3, 4)), TypeError, "single Tensor"),
    (lambda: tc.stack(tc.ones(3)), TypeError, "single Tensor"),
    (lambda: tc.cat([tc.tensor(1.0), tc.tensor(2.0)]), ValueError, "zero-dimensional"),
    (lambda: tc.ones(3).fill_(None), TypeError, "None"),
    (lambda: tc.ones(3).__setitem__(0, None), TypeError, "None"),
    (lambda: tc.ones(2, 3).sum(dim=(0, 0)), ValueError, "more than once"),
    (lambda: tc.ones(2, 3).mean(dim=(1, -1)), ValueError, "more than once"),
    (lambda: tc.ones(2, 3).T.view(-1), RuntimeError, "reshape"),
    (lambda: tc.ones(2, 3).T.view_as(tc.ones(6)), RuntimeError, "reshape"),
    # tensors whose version counters are not made yet (they are made on first use)
    (lambda: tc.from_numpy(numpy.arange(6.0).reshape(2, 3).T).view(6), RuntimeError, "reshape"),
    (lambda: (tc.ones(2, 3, 4).permute(2, 0, 1) * 1).view(24), RuntimeError, "reshape"),
]


@pytest.mark.parametrize(
    "call, error, words",
    SILENTLY_WRONG,
    ids=[f"silently-wrong-{index}" for index in range(len(SILENTLY_WRONG))],
)
def test_calls_pytorch_refuses_raise_instead_of_a_wrong_value(call, error, words):
    with pytest.raises(error, match=words):
        call()


@pytest.mark.parametrize(
    "make",
    [
        lambda: tc.zeros(2, 3),
        # NumPy makes such an array the base of its views, not the buffer under it
        lambda: tc.from_numpy(numpy.frombuffer(bytearray(24), dtype=numpy.float32).reshape(2, 3)),
        lambda: tc.from_numpy(numpy.frombuffer(bytearray(24), dtype=numpy.float32)).view(2, 3),
    ],
    ids=["own-memory", "frombuffer-reshaped", "frombuffer"],
)
def test_a_view_shares_memory_with_its_tensor(make):
    x = make()
    x.view(3, 2)[0, 1] = 7.0  # written through the view, seen in x, as in PyTorch
    assert x[0, 1].item() == 7.0
    x.view_as(tc.zeros(6))[5] = 8.0
    assert x[1, 2].item() == 8.0


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: tc.nn.Dropout("a"), ValueError, "p='a'"),
        (lambda: F.dropout(tc.ones(3), p="a"), ValueError, "p='a'"),
        (lambda: F.dropout(tc.arange(3)), TypeError, "floating"),
        (
            lambda: F.cross_entropy(tc.ones(2, 3), tc.tensor([0, 1]), label_smoothing="a"),
            ValueError,
            "label_smoothing='a'",
        ),
        (lambda: tc.nn.Sequential(tc.nn.ReLU())[1.5], TypeError, "integers or slices"),
        (lambda: tc.data.TensorDataset(tc.tensor(1.0)), ValueError, "zero-dimensional"),
        (lambda: tc.ones(3).clamp(min=tc.zeros(3)), TypeError, "min="),
        (lambda: F.pad(tc.ones(2, 2), (1, 1), value="a"), TypeError, "value='a'"),
        (lambda: tc.full_like(tc.ones(2), "a"), TypeError, "fill_value='a'"),
    ],
    ids=[
        "Dropout",
        "dropout",
        "dropout-int",
        "label_smoothing",
        "Sequential",
        "TensorDataset",
        "clamp",
        "pad",
        "full_like",
    ],
)
def test_arguments_of_the_wrong_kind_are_named(call, error, words):
    with pytest.raises(error, match=words):
        call()
