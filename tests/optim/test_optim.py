"""Optimizers and schedulers against PyTorch over several steps, and their state dicts.

Each step's gradient is a function of the parameter's current value (p^3 - t, plus a
step-dependent shift), so an error in one step changes every later one.
"""

from __future__ import annotations

import math

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn as nn
from tinyconv import optim
from tinyconv.optim import lr_scheduler


def to_numpy(tensor: tc.Tensor) -> numpy.ndarray:
    """A tensor's values as a host NumPy array, whatever its device."""
    return numpy.asarray(tc.backend.to_device(tensor.data, "cpu"))


SHAPES = [(3, 4), (4,), (2, 3, 2), ()]  # () a learnable scalar
STEPS = 6

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.02}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.95), "eps": 1e-3, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05}),
    ("Adam", {"lr": 0.01, "maximize": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.3, "amsgrad": True}),
]


def initial_values(seed: int = 0) -> list[numpy.ndarray]:
    generator = numpy.random.default_rng(seed)
    return [generator.standard_normal(shape) for shape in SHAPES]


TARGETS = initial_values(seed=1)


def gradient(value: numpy.ndarray, position: int, step: int) -> numpy.ndarray:
    return value**3 - TARGETS[position] + 0.1 * step


def run_ours(name, options, steps=STEPS, device="cpu", dtype=tc.float64):
    params = [
        tc.tensor(v, dtype=dtype, device=device, requires_grad=True) for v in initial_values()
    ]
    optimizer = getattr(optim, name)(params, **options)
    for step in range(steps):
        set_grads(params, step)
        optimizer.step()
    return params, optimizer


def set_grads(params, step):
    for position, param in enumerate(params):
        value = to_numpy(param.detach()).astype(numpy.float64)
        grad = gradient(value, position, step).astype(param.data.dtype)
        param.grad = tc.tensor(grad, device=param.device)


def run_torch(torch, name, options, steps=STEPS):
    params = [torch.tensor(v, requires_grad=True) for v in initial_values()]
    optimizer = getattr(torch.optim, name)(params, **options)
    for step in range(steps):
        for position, param in enumerate(params):
            param.grad = torch.tensor(gradient(param.detach().numpy(), position, step))
        optimizer.step()
    return params, optimizer


def assert_params_close(ours, theirs, rtol=1e-12):
    for param, expected in zip(ours, theirs):
        numpy.testing.assert_allclose(to_numpy(param.detach()), expected, rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("name, options", CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_optimizer_matches_pytorch_over_several_steps(torch, name, options):
    ours, _ = run_ours(name, options)
    theirs, _ = run_torch(torch, name, options)
    assert_params_close(ours, [p.detach().numpy() for p in theirs])


@pytest.mark.parametrize("name, options", CASES[2:3] + CASES[7:8] + CASES[11:12])
def test_optimizer_runs_on_every_device(torch, device, name, options):
    ours, _ = run_ours(name, options, device=device)
    assert all(p.device == device for p in ours)
    theirs, _ = run_torch(torch, name, options)
    assert_params_close(ours, [p.detach().numpy() for p in theirs])


def test_float32_parameters_stay_float32(torch):
    ours, optimizer = run_ours("Adam", {"lr": 0.01}, dtype=tc.float32)
    assert all(p.dtype == tc.float32 for p in ours)
    assert all(s["exp_avg"].dtype == tc.float32 for s in optimizer.state.values())
    theirs, _ = run_torch(torch, "Adam", {"lr": 0.01})
    assert_params_close(ours, [p.detach().numpy() for p in theirs], rtol=1e-4)


def test_sgd_first_momentum_step_by_hand():
    # the buffer starts as the gradient itself: p = 1 - 0.1 * 2; then b = 0.9 * 2 + 2
    param = tc.tensor([1.0], requires_grad=True)
    optimizer = optim.SGD([param], lr=0.1, momentum=0.9)
    for expected in (0.8, 0.8 - 0.1 * 3.8):
        param.grad = tc.tensor([2.0])
        optimizer.step()
        assert param.item() == pytest.approx(expected, rel=1e-6)


def test_adam_first_step_moves_each_weight_by_lr():
    # after bias correction, m / sqrt(v) = g / |g| on the first step
    param = tc.tensor([1.0, -2.0], dtype=tc.float64, requires_grad=True)
    param.grad = tc.tensor([0.3, -40.0], dtype=tc.float64)
    optim.Adam([param], lr=0.1, eps=0.0).step()
    numpy.testing.assert_allclose(param.data, [0.9, -1.9], rtol=1e-12)


def test_parameters_without_gradients_are_skipped():
    used, unused = tc.ones(2, requires_grad=True), tc.ones(2, requires_grad=True)
    optimizer = optim.Adam([used, unused], lr=0.1)
    used.grad = tc.ones(2)
    optimizer.step()
    assert unused.data.tolist() == [1.0, 1.0]
    assert unused not in optimizer.state and used in optimizer.state


def test_step_changes_parameters_in_place_and_bumps_their_version():
    param = tc.ones(3, requires_grad=True)
    array, version = param.data, param._version.value
    optimizer = optim.SGD([param], lr=0.1)
    param.grad = tc.ones(3)
    optimizer.step()
    assert param.data is array
    assert param._version.value == version + 1


def test_a_graph_that_saved_a_parameter_refuses_backward_after_a_step():
    layer = nn.Linear(2, 1)
    optimizer = optim.SGD(layer.parameters(), lr=0.1)
    x = tc.ones(1, 2, requires_grad=True)
    loss = layer(x).sum()
    layer.weight.grad = tc.ones(1, 2)
    optimizer.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_parameter_groups_have_their_own_options(torch):
    values = initial_values()
    ours = [tc.tensor(v, requires_grad=True) for v in values[:2]]
    theirs = [torch.tensor(v, requires_grad=True) for v in values[:2]]
    optimizer = optim.SGD(
        [{"params": [ours[0]]}, {"params": [ours[1]], "lr": 0.5}], lr=0.1, momentum=0.9
    )
    torch_optimizer = torch.optim.SGD(
        [{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": 0.5}], lr=0.1, momentum=0.9
    )
    for step in range(3):
        for position, (param, torch_param) in enumerate(zip(ours, theirs)):
            param.grad = tc.tensor(gradient(param.data, position, step))
            torch_param.grad = torch.tensor(gradient(torch_param.detach().numpy(), position, step))
        optimizer.step()
        torch_optimizer.step()
    assert_params_close(ours, [p.detach().numpy() for p in theirs])


def test_zero_grad():
    param = tc.ones(2, requires_grad=True)
    optimizer = optim.SGD([param], lr=0.1)
    param.grad = tc.ones(2)
    optimizer.zero_grad(set_to_none=False)
    assert param.grad.data.tolist() == [0.0, 0.0]
    optimizer.zero_grad()
    assert param.grad is None


def test_closure_is_called_and_its_loss_returned():
    param = tc.tensor([3.0], requires_grad=True)
    optimizer = optim.SGD([param], lr=0.25)

    def closure():
        optimizer.zero_grad()
        loss = (param * param).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == 9.0
    assert param.item() == 3.0 - 0.25 * 6.0


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda p: optim.SGD(p, lr=-1.0), "learning rate"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "beta"),
        (lambda p: optim.Adam(p, lr=math.nan), "learning rate"),
        (lambda p: optim.Adam(p, betas=(0.9,)), "betas"),
        (lambda p: optim.AdamW(p, eps=math.nan), "epsilon"),
        (lambda p: optim.Adam(p, weight_decay=math.nan), "weight_decay"),
        (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
        (lambda p: optim.SGD([{"params": p}, {"params": p}], lr=0.1), "more than one"),
        (lambda p: optim.SGD(p[0] * 2, lr=0.1), "iterable"),
    ],
)
def test_bad_arguments_raise(build, message):
    params = [tc.ones(2, requires_grad=True)]
    with pytest.raises((ValueError, TypeError), match=message):
        build(params)


def test_non_leaf_tensors_cannot_be_optimized():
    x = tc.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([x * 2], lr=0.1)


# -- state dicts -------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [CASES[4], CASES[8], CASES[11]])
def test_state_dict_layout_matches_pytorch(torch, name, options):
    _, ours = run_ours(name, options, steps=2)
    _, theirs = run_torch(torch, name, options, steps=2)
    state, torch_state = ours.state_dict(), theirs.state_dict()
    assert set(state) == {"state", "param_groups"}
    positions = list(range(len(SHAPES)))
    assert list(state["state"]) == list(torch_state["state"]) == positions
    for index in state["state"]:
        assert set(state["state"][index]) == set(torch_state["state"][index])
        for key, value in state["state"][index].items():
            expected = torch_state["state"][index][key].numpy()
            assert isinstance(value, tc.Tensor)
            numpy.testing.assert_allclose(to_numpy(value), expected, rtol=1e-12)
            assert value.dtype == expected.dtype  # 'step' is a float32 scalar in both
    group, torch_group = state["param_groups"][0], torch_state["param_groups"][0]
    assert group["params"] == torch_group["params"] == positions
    for key, value in group.items():
        assert torch_group[key] == value


@pytest.mark.parametrize("name, options", [CASES[4], CASES[8], CASES[11]])
def test_state_dict_round_trip_continues_like_an_uninterrupted_run(torch, name, options):
    params, optimizer = run_ours(name, options, steps=3)
    state = optimizer.state_dict()
    fresh = getattr(optim, name)(params, lr=123.0)  # options come back from the state
    fresh.load_state_dict(state)
    for step in range(3, STEPS):
        set_grads(params, step)
        fresh.step()
    uninterrupted, _ = run_torch(torch, name, options, steps=STEPS)
    assert_params_close(params, [p.detach().numpy() for p in uninterrupted])


def test_state_dict_survives_save_and_load(tmp_path):
    params, optimizer = run_ours("Adam", {"lr": 0.01, "amsgrad": True}, steps=2)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=2)
    scheduler.step()
    path = tmp_path / "checkpoint.safetensors"
    tc.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, path)
    loaded = tc.load(path)
    fresh = optim.Adam(params)
    fresh.load_state_dict(loaded["optimizer"])
    for param in params:
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            numpy.testing.assert_array_equal(
                fresh.state[param][key].data, optimizer.state[param][key].data
            )
        assert fresh.state[param]["step"] == optimizer.state[param]["step"] == 2
    assert fresh.param_groups[0]["betas"] == (0.9, 0.999)
    fresh_scheduler = lr_scheduler.StepLR(fresh, step_size=5)
    fresh_scheduler.load_state_dict(loaded["scheduler"])
    assert fresh_scheduler.step_size == 2 and fresh_scheduler.last_epoch == 1


def test_state_from_pytorch_loads_and_continues_like_pytorch(torch):
    name, options = CASES[8]
    theirs, torch_optimizer = run_torch(torch, name, options, steps=3)
    torch_state = torch_optimizer.state_dict()
    converted = {
        "state": {
            index: {key: value.numpy() for key, value in entry.items()}
            for index, entry in torch_state["state"].items()
        },
        "param_groups": torch_state["param_groups"],
    }
    params = [tc.tensor(p.detach().numpy(), requires_grad=True) for p in theirs]
    optimizer = optim.Adam(params)
    optimizer.load_state_dict(converted)
    for step in range(3, STEPS):
        set_grads(params, step)
        optimizer.step()
        for position, param in enumerate(theirs):
            param.grad = torch.tensor(gradient(param.detach().numpy(), position, step))
        torch_optimizer.step()
    assert_params_close(params, [p.detach().numpy() for p in theirs])


def test_load_state_dict_rejects_a_different_layout():
    _, optimizer = run_ours("SGD", {"lr": 0.1, "momentum": 0.9}, steps=1)
    other = optim.SGD([tc.ones(2, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match=f"parameter group 0 has {len(SHAPES)} parameters"):
        other.load_state_dict(optimizer.state_dict())


def test_loaded_state_is_a_copy():
    params, optimizer = run_ours("SGD", {"lr": 0.1, "momentum": 0.9}, steps=1)
    state = optimizer.state_dict()
    fresh = optim.SGD(params, lr=0.1, momentum=0.9)
    fresh.load_state_dict(state)
    buffer = fresh.state[params[0]]["momentum_buffer"]
    assert buffer.data is not optimizer.state[params[0]]["momentum_buffer"].data


# -- schedulers --------------------------------------------------------------------------

SCHEDULERS = [
    ("StepLR", {"step_size": 3}),
    ("StepLR", {"step_size": 2, "gamma": 0.5}),
    ("CosineAnnealingLR", {"T_max": 5}),
    ("CosineAnnealingLR", {"T_max": 4, "eta_min": 0.01}),
]


def learning_rates(module, optimizer_module, name, options, epochs=14):
    """The rates each epoch, for two parameter groups with different base rates."""
    params = [module.tensor([1.0], requires_grad=True), module.tensor([2.0], requires_grad=True)]
    optimizer = optimizer_module.SGD(
        [{"params": params[:1]}, {"params": params[1:], "lr": 0.3}], lr=0.1
    )
    scheduler = getattr(optimizer_module.lr_scheduler, name)(optimizer, **options)
    rates = [scheduler.get_last_lr()]
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr())
        assert rates[-1] == [group["lr"] for group in optimizer.param_groups]
    return rates, scheduler


@pytest.mark.parametrize("name, options", SCHEDULERS)
def test_scheduler_matches_pytorch(torch, name, options):
    ours, _ = learning_rates(tc, optim, name, options)
    theirs, _ = learning_rates(torch, torch.optim, name, options)
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_step_lr_by_hand():
    rates, _ = learning_rates(tc, optim, "StepLR", {"step_size": 2, "gamma": 0.5}, epochs=5)
    numpy.testing.assert_allclose(
        [r[0] for r in rates], [0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rtol=1e-12
    )


def test_cosine_reaches_eta_min_at_t_max():
    rates, _ = learning_rates(tc, optim, "CosineAnnealingLR", {"T_max": 4, "eta_min": 0.01}, 4)
    # eta_min + (base - eta_min) * (1 + cos(pi * t / 4)) / 2
    expected = [0.01 + 0.09 * (1 + numpy.cos(numpy.pi * t / 4)) / 2 for t in range(5)]
    numpy.testing.assert_allclose([r[0] for r in rates], expected, rtol=1e-12)


def closed_form(name, options, base_lr, epoch):
    """The rate at ``epoch`` by the schedule's formula."""
    if name == "StepLR":
        return base_lr * options.get("gamma", 0.1) ** (epoch // options["step_size"])
    low = options.get("eta_min", 0.0)
    return low + (base_lr - low) * (1 + math.cos(math.pi * epoch / options["T_max"])) / 2


@pytest.mark.parametrize("name, options", SCHEDULERS)
def test_scheduler_state_dict_round_trip(name, options):
    _, scheduler = learning_rates(tc, optim, name, options, epochs=4)
    state = scheduler.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 4
    optimizer = scheduler.optimizer
    fresh = getattr(lr_scheduler, name)(optimizer, **options)
    fresh.load_state_dict(state)
    for group, rate in zip(optimizer.param_groups, state["_last_lr"]):
        group["lr"] = rate  # a checkpoint restores the optimizer's rates as well
    for epoch in range(5, 11):
        optimizer.step()
        fresh.step()
        expected = [closed_form(name, options, base, epoch) for base in (0.1, 0.3)]
        numpy.testing.assert_allclose(fresh.get_last_lr(), expected, rtol=1e-10)


def test_scheduler_resuming_needs_initial_lr():
    optimizer = optim.SGD([tc.ones(1, requires_grad=True)], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(optimizer, step_size=2, last_epoch=3)


def test_load_state_dict_rejects_state_of_another_shape():
    _, optimizer = run_ours("Adam", {"lr": 0.01}, steps=1)
    state = optimizer.state_dict()
    state["state"][1]["exp_avg"] = tc.zeros(7, dtype=tc.float64)  # parameter 1 is (4,)
    _, fresh = run_ours("Adam", {"lr": 0.01}, steps=0)
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 1 has shape \(7,\)"):
        fresh.load_state_dict(state)
