"""``Module``, ``Parameter`` and the containers: names, order, state dicts, modes, devices.

Where PyTorch is installed, the same model is built in both and every name, order
and repr is compared with PyTorch's; other expectations are written out by hand.
"""

from __future__ import annotations

import copy

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn as nn
from tinyconv import optim


def to_numpy(tensor: tc.Tensor) -> numpy.ndarray:
    """A tensor's values as a host NumPy array, whatever its device."""
    return numpy.asarray(tc.backend.to_device(tensor.data, "cpu"))


def small_net(nn_module):
    """The same model in tinyconv or PyTorch (both have this API): nested, with buffers."""
    return nn_module.Sequential(
        nn_module.Linear(4, 8),
        nn_module.BatchNorm1d(8),
        nn_module.ReLU(),
        nn_module.Sequential(nn_module.Dropout(0.25), nn_module.Linear(8, 3, bias=False)),
        nn_module.Tanh(),
    )


class Block(nn.Module):
    """A hand-written module with a parameter, a buffer and a child."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(tc.ones(3))
        self.register_buffer("count", tc.zeros(1))
        self.inner = nn.Linear(3, 3)

    def forward(self, x):
        return self.inner(x) * self.scale


# -- Parameter ---------------------------------------------------------------------------


def test_parameter_is_a_leaf_that_requires_grad_and_shares_memory():
    source = tc.zeros(3)
    param = nn.Parameter(source)
    assert isinstance(param, tc.Tensor)
    assert param.requires_grad and param.is_leaf and param.grad_fn is None
    source.data[0] = 5.0
    assert param.data[0] == 5.0
    assert not nn.Parameter(tc.zeros(2), requires_grad=False).requires_grad


def test_parameter_repr_says_parameter_containing():
    assert repr(nn.Parameter(tc.zeros(2))).startswith("Parameter containing:\ntensor(")


def test_op_results_on_parameters_are_plain_tensors():
    param = nn.Parameter(tc.ones(2))
    assert type(param * 2) is tc.Tensor


# -- registering -----------------------------------------------------------------------


def test_attributes_are_filed_by_kind():
    block = Block()
    assert [name for name, _ in block.named_parameters()] == [
        "scale",
        "inner.weight",
        "inner.bias",
    ]
    assert [name for name, _ in block.named_buffers()] == ["count"]
    assert [name for name, _ in block.named_children()] == ["inner"]
    assert list(block.state_dict()) == ["scale", "count", "inner.weight", "inner.bias"]


def test_assigning_a_plain_tensor_to_a_parameter_name_raises():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Parameter or None expected"):
        layer.weight = tc.zeros(2, 2)


def test_setting_a_parameter_to_none_keeps_the_name_but_drops_the_tensor():
    layer = nn.Linear(2, 2)
    layer.bias = None
    assert layer.bias is None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    assert list(layer.state_dict()) == ["weight"]


def test_assigning_before_init_raises():
    class Broken(nn.Module):
        def __init__(self) -> None:
            self.weight = nn.Parameter(tc.zeros(1))

    with pytest.raises(AttributeError, match="__init__"):
        Broken()


def test_delattr_removes_a_parameter():
    layer = nn.Linear(2, 2)
    del layer.bias
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    assert not hasattr(layer, "bias")


def test_reassigning_a_buffer_keeps_it_a_buffer():
    block = Block()
    block.count = tc.ones(1)
    assert list(block.state_dict())[1] == "count"
    assert block.state_dict()["count"].data[0] == 1.0


def test_non_persistent_buffers_are_buffers_but_not_state():
    module = nn.Module()
    module.register_buffer("kept", tc.zeros(1))
    module.register_buffer("scratch", tc.zeros(1), persistent=False)
    assert [name for name, _ in module.named_buffers()] == ["kept", "scratch"]
    assert list(module.state_dict()) == ["kept"]


def test_bad_names_raise():
    module = nn.Module()
    with pytest.raises(KeyError):
        module.register_buffer("a.b", tc.zeros(1))
    with pytest.raises(TypeError):
        module.register_parameter("w", tc.zeros(1))


def test_shared_parameter_is_listed_once():
    first = nn.Linear(3, 3)
    second = nn.Linear(3, 3)
    second.weight = first.weight
    model = nn.Sequential(first, second)
    assert len(list(model.parameters())) == 3
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    # the state dict still names it under both modules, as PyTorch's does
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_missing_forward_raises():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(tc.zeros(1))


def test_forward_hooks_see_and_may_replace_the_output():
    layer = nn.ReLU()
    seen = []
    handle = layer.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    pre = layer.register_forward_pre_hook(lambda module, args: (args[0] - 1.0,))
    out = layer(tc.tensor([0.5, 3.0]))
    assert seen == [(2,)]
    numpy.testing.assert_allclose(out.data, [0.0, 2.0])
    handle.remove()
    pre.remove()
    layer(tc.tensor([1.0]))
    assert seen == [(2,)]


# -- walking the tree, against PyTorch ---------------------------------------------------


def test_names_and_order_match_pytorch(torch):
    ours, theirs = small_net(nn), small_net(torch.nn)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert [type(m).__name__ for m in ours.modules()] == [
        type(m).__name__ for m in theirs.modules()
    ]
    assert [type(m).__name__ for m in ours.children()] == [
        type(m).__name__ for m in theirs.children()
    ]


def test_repr_matches_pytorch(torch):
    ours, theirs = small_net(nn), small_net(torch.nn)
    assert repr(ours) == repr(theirs)
    extras = [nn.Flatten(), nn.Sigmoid(), nn.ReLU(inplace=True), nn.BatchNorm2d(4, affine=False)]
    torch_extras = [
        torch.nn.Flatten(),
        torch.nn.Sigmoid(),
        torch.nn.ReLU(inplace=True),
        torch.nn.BatchNorm2d(4, affine=False),
    ]
    assert [repr(m) for m in extras] == [repr(m) for m in torch_extras]
    assert repr(nn.CrossEntropyLoss()) == repr(torch.nn.CrossEntropyLoss())


def test_apply_visits_children_before_parents_like_pytorch(torch):
    visited, torch_visited = [], []
    small_net(nn).apply(lambda m: visited.append(type(m).__name__))
    small_net(torch.nn).apply(lambda m: torch_visited.append(type(m).__name__))
    assert visited == torch_visited


def test_get_submodule():
    model = small_net(nn)
    assert model.get_submodule("3.1") is model[3][1]
    with pytest.raises(AttributeError, match="7"):
        model.get_submodule("7")


# -- state dicts -------------------------------------------------------------------------


def test_state_dict_from_pytorch_loads_and_gives_the_same_output(torch):
    ours, theirs = small_net(nn).double(), small_net(torch.nn).double()
    theirs.train()
    theirs(torch.randn(16, 4, dtype=torch.float64))  # moves the running statistics
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    ours.eval()
    theirs.eval()
    x = numpy.random.default_rng(0).standard_normal((5, 4))
    expected = theirs(torch.tensor(x)).detach().numpy()
    numpy.testing.assert_allclose(to_numpy(ours(tc.tensor(x))), expected, rtol=1e-12)
    assert int(ours[1].num_batches_tracked.item()) == 1


def test_our_state_dict_loads_into_pytorch(torch):
    ours, theirs = small_net(nn), small_net(torch.nn)
    theirs.load_state_dict({k: torch.from_numpy(to_numpy(v)) for k, v in ours.state_dict().items()})
    for name, tensor in theirs.state_dict().items():
        numpy.testing.assert_array_equal(tensor.numpy(), to_numpy(ours.state_dict()[name]))


def test_pytorch_tensors_load_directly(torch):
    theirs = torch.nn.Linear(3, 2)
    ours = nn.Linear(3, 2)
    ours.load_state_dict(theirs.state_dict())
    numpy.testing.assert_array_equal(ours.weight.data, theirs.weight.detach().numpy())


def test_state_dict_shares_memory_and_is_detached():
    layer = nn.Linear(2, 2)
    state = layer.state_dict()
    assert not state["weight"].requires_grad
    layer.weight.data[0, 0] = 42.0
    assert state["weight"].data[0, 0] == 42.0


def test_load_state_dict_copies_in_place_so_optimizers_keep_working():
    layer = nn.Linear(2, 1)
    weight_before = layer.weight
    optimizer = optim.SGD(layer.parameters(), lr=1.0)
    layer.load_state_dict({"weight": numpy.array([[1.0, 2.0]]), "bias": numpy.array([0.5])})
    assert layer.weight is weight_before
    numpy.testing.assert_array_equal(layer.weight.data, [[1.0, 2.0]])
    assert layer.weight.dtype == tc.float32  # cast to the parameter's dtype
    layer(tc.tensor([[1.0, 1.0]])).sum().backward()
    optimizer.step()
    # d(w.x + b)/dw = x = (1, 1), so one step of lr 1 subtracts 1
    numpy.testing.assert_array_equal(layer.weight.data, [[0.0, 1.0]])


def test_strict_load_lists_missing_and_unexpected_keys():
    layer = nn.Linear(2, 1)
    state = {"weight": tc.zeros(1, 2), "extra": tc.zeros(1)}
    with pytest.raises(RuntimeError) as error:
        layer.load_state_dict(state)
    message = str(error.value)
    assert 'Missing key(s) in state_dict: "bias"' in message
    assert 'Unexpected key(s) in state_dict: "extra"' in message
    assert "Linear" in message


def test_non_strict_load_returns_the_keys_it_could_not_match():
    layer = nn.Linear(2, 1)
    result = layer.load_state_dict({"weight": tc.ones(1, 2), "extra": tc.zeros(1)}, strict=False)
    assert result == (["bias"], ["extra"])
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    numpy.testing.assert_array_equal(layer.weight.data, [[1.0, 1.0]])


def test_shape_mismatch_raises_even_when_not_strict():
    layer = nn.Linear(2, 1)
    with pytest.raises(RuntimeError, match=r"size mismatch for weight.*\(1, 3\).*\(1, 2\)"):
        layer.load_state_dict({"weight": tc.zeros(1, 3), "bias": tc.zeros(1)}, strict=False)


def test_batchnorm_state_without_num_batches_tracked_loads():
    layer = nn.BatchNorm2d(2)
    state = {k: v for k, v in layer.state_dict().items() if k != "num_batches_tracked"}
    assert layer.load_state_dict(state) == ([], [])


# -- modes, gradients, devices ---------------------------------------------------------


def test_train_and_eval_reach_every_module():
    model = small_net(nn)
    assert model.eval() is model
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_zero_grad_to_none_or_to_zeros():
    layer = nn.Linear(2, 1)
    layer(tc.ones(1, 2)).sum().backward()
    grad = layer.weight.grad
    layer.zero_grad(set_to_none=False)
    assert layer.weight.grad is grad
    numpy.testing.assert_array_equal(grad.data, [[0.0, 0.0]])
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_requires_grad_false_freezes():
    layer = nn.Linear(2, 1).requires_grad_(False)
    assert not any(p.requires_grad for p in layer.parameters())


def test_to_dtype_casts_in_place_and_leaves_integer_buffers():
    model = small_net(nn)
    params = list(model.parameters())
    model(tc.randn(4, 4)).sum().backward()
    assert model.double() is model
    assert [p is q for p, q in zip(params, model.parameters())] == [True] * len(params)
    assert all(p.dtype == tc.float64 for p in model.parameters())
    assert all(p.grad.dtype == tc.float64 for p in model.parameters())
    assert model[1].running_var.dtype == tc.float64
    assert model[1].num_batches_tracked.dtype == tc.int64
    model(tc.randn(4, 4, dtype=tc.float64))  # runs in float64 now


def test_optimizer_built_before_to_keeps_training():
    layer = nn.Linear(1, 1, bias=False)
    optimizer = optim.SGD(layer.parameters(), lr=0.5)
    layer.to(tc.float64)
    layer.weight.data[...] = 2.0
    layer(tc.tensor([[3.0]], dtype=tc.float64)).sum().backward()
    optimizer.step()
    assert layer.weight.data.item() == 2.0 - 0.5 * 3.0


def test_to_rejects_integer_dtypes():
    with pytest.raises(TypeError, match="floating point"):
        nn.Linear(1, 1).to(tc.int64)


def test_to_device_moves_parameters_grads_and_buffers(device):
    model = small_net(nn)
    model(tc.randn(4, 4)).sum().backward()
    params = list(model.parameters())
    model.to(device)
    assert [p is q for p, q in zip(params, model.parameters())] == [True] * len(params)
    assert all(p.device == device and p.grad.device == device for p in model.parameters())
    assert all(b.device == device for b in model.buffers())
    assert model(tc.randn(4, 4, device=device)).device == device
    model.cpu()
    assert all(p.device == "cpu" for p in model.parameters())


def test_deepcopy_gives_independent_parameters():
    model = small_net(nn)
    clone = copy.deepcopy(model)
    assert isinstance(clone[0].weight, nn.Parameter)
    assert clone[0].weight is not model[0].weight
    clone[0].weight.data[...] = 0.0
    assert model[0].weight.data.any()
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in model.named_parameters()]


# -- containers --------------------------------------------------------------------------


def test_sequential_applies_modules_in_order():
    model = nn.Sequential(nn.Flatten(), nn.ReLU())
    out = model(tc.tensor([[[-1.0, 2.0]]]))
    assert out.shape == (1, 2)
    numpy.testing.assert_array_equal(out.data, [[0.0, 2.0]])


def test_sequential_indexing_slicing_length_and_iteration():
    layers = [nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)]
    model = nn.Sequential(*layers)
    assert len(model) == 3
    assert model[0] is layers[0] and model[-1] is layers[2]
    assert list(model) == layers
    head = model[1:]
    assert isinstance(head, nn.Sequential)
    assert list(head) == layers[1:]
    assert list(head.state_dict()) == ["2.weight", "2.bias"]  # names kept, as in PyTorch
    with pytest.raises(IndexError, match="out of range"):
        model[3]
    model[1] = nn.Tanh()
    assert isinstance(model[1], nn.Tanh)
    del model[1]
    assert len(model) == 2
    model.append(nn.Sigmoid())
    assert len(model) == 3


def test_sequential_from_ordered_dict_keeps_names():
    from collections import OrderedDict

    model = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(model.state_dict()) == ["fc.weight", "fc.bias"]
    assert model.fc is model[0]


def test_module_list_registers_its_modules():
    blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
    blocks.append(nn.Linear(2, 3))
    blocks.extend([nn.ReLU()])
    blocks.insert(0, nn.Tanh())
    assert len(blocks) == 5
    assert isinstance(blocks[0], nn.Tanh) and isinstance(blocks[-1], nn.ReLU)
    assert list(blocks.state_dict())[:2] == ["1.weight", "1.bias"]
    del blocks[0]
    assert list(blocks.state_dict())[:2] == ["0.weight", "0.bias"]
    assert len(list(blocks.parameters())) == 6
    assert isinstance(blocks[1:], nn.ModuleList)


def test_a_buffer_does_not_replace_a_parameter():
    layer = nn.Linear(3, 4)
    with pytest.raises(KeyError, match="weight"):  # as in PyTorch
        layer.register_buffer("weight", tc.zeros(1))
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
