"""The autograd semantics of API.md, one test per rule, on every device.

Expected gradients are worked out by hand in each test (d(3x)/dx = 3, ...).
"""

from __future__ import annotations

import gc
import threading
import weakref

import numpy
import pytest
from helpers import leaf, to_numpy

import tinyconv as tc

# -- 1. seeding ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_backward_on_one_element_tensor_seeds_with_one(device, shape):
    x = leaf(numpy.full(shape, 2.0), device)
    (x * 3.0).sum().reshape(shape).backward()
    numpy.testing.assert_array_equal(to_numpy(x.grad), numpy.full(shape, 3.0))


def test_backward_on_non_scalar_without_gradient_raises(device):
    x = leaf([1.0, 2.0], device)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2.0).backward()


def test_backward_on_non_scalar_with_gradient_uses_it(device):
    x = leaf([1.0, 2.0, 3.0], device)
    (x * x).backward(gradient=tc.tensor([1.0, 10.0, 100.0], device=device))
    # d(x^2)/dx = 2x, weighted by the given gradient
    numpy.testing.assert_allclose(to_numpy(x.grad), [2.0, 40.0, 600.0])


# -- 2. accumulation ----------------------------------------------------------------------


def test_grad_accumulates_across_backward_calls(device):
    x = leaf([1.0, -2.0], device)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    # 3 from the first, 2x from the second
    numpy.testing.assert_allclose(to_numpy(x.grad), [3.0 + 2.0, 3.0 - 4.0])


def test_grad_is_reset_only_by_the_user(device):
    x = leaf([1.0, 2.0], device)
    (x * 3.0).sum().backward()
    x.grad = None
    (x * 5.0).sum().backward()
    numpy.testing.assert_allclose(to_numpy(x.grad), [5.0, 5.0])
    x.grad.zero_()
    (x * 7.0).sum().backward()
    numpy.testing.assert_allclose(to_numpy(x.grad), [7.0, 7.0])


def test_grad_is_not_an_alias_of_an_upstream_gradient(device):
    # y = x + 0 hands dL/dy to x unchanged: x.grad must still be x's own array
    x = leaf([1.0, 2.0], device)
    gradient = tc.tensor([1.0, 1.0], device=device)
    (x + 0.0).backward(gradient)
    (x + 0.0).backward(gradient)
    numpy.testing.assert_allclose(to_numpy(gradient), [1.0, 1.0])
    numpy.testing.assert_allclose(to_numpy(x.grad), [2.0, 2.0])


# -- 3. non-leaf gradients ----------------------------------------------------------------


def test_non_leaf_tensor_keeps_no_grad(device):
    x = leaf([1.0, 2.0], device)
    y = x * 2.0
    y.sum().backward()
    assert not y.is_leaf
    assert y.grad is None
    assert x.grad is not None


def test_retain_grad_keeps_the_grad_of_a_non_leaf(device):
    x = leaf([1.0, 2.0], device)
    y = x * 2.0
    y.retain_grad()
    (y * y).sum().backward()
    assert y.retains_grad
    # d(y^2)/dy = 2y = 4x
    numpy.testing.assert_allclose(to_numpy(y.grad), [4.0, 8.0])
    numpy.testing.assert_allclose(to_numpy(x.grad), [8.0, 16.0])


def test_retained_grad_accumulates_like_a_leaf(device):
    x = leaf([1.0, 2.0], device)
    y = x * 2.0
    y.retain_grad()
    loss = y.sum()
    loss.backward(retain_graph=True)
    loss.backward()
    numpy.testing.assert_allclose(to_numpy(y.grad), [2.0, 2.0])


# -- 4. retain_graph ----------------------------------------------------------------------


def test_second_backward_without_retain_graph_raises(device):
    x = leaf([1.0, 2.0], device)
    loss = x.exp().sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_second_backward_with_retain_graph_adds_again(device):
    x = leaf([0.0, 1.0], device)
    loss = x.exp().sum()
    loss.backward(retain_graph=True)
    loss.backward()
    numpy.testing.assert_allclose(to_numpy(x.grad), 2 * numpy.exp([0.0, 1.0]))


def test_saved_arrays_are_freed_after_backward(device):
    x = leaf([0.5, 1.5], device)
    hidden = (x * 2.0).exp()  # Exp saves its output array for backward
    saved = weakref.ref(hidden.data)
    loss = hidden.sum()
    del hidden
    assert saved() is not None, "the graph must hold what backward needs"
    loss.backward()
    assert saved() is None, "backward must release the arrays it saved"


# -- 5. detach ----------------------------------------------------------------------------


def test_detach_shares_memory_but_not_graph(device):
    x = leaf([1.0, 2.0], device)
    y = x * 2.0
    detached = y.detach()
    assert detached.requires_grad is False
    assert detached.grad_fn is None
    assert detached.is_leaf
    detached[0] = 10.0
    assert to_numpy(y)[0] == 10.0, "an in-place change to the detached tensor shows in y"
    with tc.no_grad():
        y.data[1] = 20.0
    assert to_numpy(detached)[1] == 20.0, "an in-place change to y shows in the detached one"


def test_detach_of_a_leaf_shares_memory(device):
    x = leaf([1.0, 2.0], device)
    with tc.no_grad():
        x.detach().mul_(3.0)
    numpy.testing.assert_allclose(to_numpy(x), [3.0, 6.0])


def test_detach_inplace_cuts_the_tensor_from_its_graph(device):
    x = leaf([1.0, 2.0], device)
    y = x * 2.0
    assert y.detach_() is y
    assert y.grad_fn is None
    assert y.requires_grad is False
    z = y * 3.0
    assert z.requires_grad is False
    with pytest.raises(RuntimeError):
        z.sum().backward()


# -- 6. grad mode -------------------------------------------------------------------------


@pytest.mark.parametrize("grad_enabled", [True, False])
@pytest.mark.parametrize("a_requires", [True, False])
@pytest.mark.parametrize("b_requires", [True, False])
def test_output_requires_grad_iff_grad_mode_on_and_an_input_requires_grad(
    device, grad_enabled, a_requires, b_requires
):
    a = leaf([1.0, 2.0], device, requires_grad=a_requires)
    b = leaf([3.0, 4.0], device, requires_grad=b_requires)
    with tc.set_grad_enabled(grad_enabled):
        out = a * b
    expected = grad_enabled and (a_requires or b_requires)
    assert out.requires_grad is expected
    assert (out.grad_fn is not None) is expected


def test_no_grad_records_nothing(device):
    x = leaf([1.0, 2.0], device)
    with tc.no_grad():
        assert not tc.is_grad_enabled()
        y = x.exp() * 2.0
    assert tc.is_grad_enabled()
    assert y.requires_grad is False
    assert y.grad_fn is None


def test_no_grad_works_as_a_decorator(device):
    @tc.no_grad()
    def double(tensor):
        assert not tc.is_grad_enabled()
        return tensor * 2.0

    y = double(leaf([1.0], device))
    assert y.grad_fn is None
    assert tc.is_grad_enabled()


def test_enable_grad_records_again_inside_no_grad(device):
    x = leaf([1.0, 2.0], device)
    with tc.no_grad():
        with tc.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and y.grad_fn is not None
    assert not z.requires_grad


def test_enable_grad_works_as_a_decorator(device):
    @tc.enable_grad()
    def double(tensor):
        return tensor * 2.0

    x = leaf([1.0], device)
    with tc.no_grad():
        y = double(x)
    assert y.grad_fn is not None


def test_grad_mode_is_restored_when_the_block_raises():
    with pytest.raises(ValueError), tc.no_grad():
        raise ValueError
    assert tc.is_grad_enabled()


def test_grad_mode_belongs_to_a_thread():
    # as in PyTorch: a new thread records, whatever the mode of the thread that made it,
    # and its no_grad leaves the other thread recording
    seen = {}
    inside = threading.Event()
    leave = threading.Event()

    def evaluate():
        seen["at start"] = tc.is_grad_enabled()
        with tc.no_grad():
            inside.set()
            leave.wait(timeout=10)
        seen["after"] = tc.is_grad_enabled()

    with tc.no_grad():
        worker = threading.Thread(target=evaluate)
        worker.start()
        inside.wait(timeout=10)
    x = leaf([1.0], "cpu")
    assert tc.is_grad_enabled() and (x * 2.0).grad_fn is not None  # the worker is in no_grad
    leave.set()
    worker.join()
    assert seen == {"at start": True, "after": True}


def test_two_threads_train_with_no_grad_updates_at_once():
    # each thread's optimizer step runs under no_grad; with one mode for the whole
    # process, one thread's exit from no_grad left the other's backward with no graph
    def train(seed, results):
        rng = numpy.random.default_rng(seed)
        weight = tc.tensor(rng.standard_normal((4, 3)), requires_grad=True)
        x, target = tc.tensor(rng.standard_normal((8, 4))), rng.standard_normal((8, 3))
        expected = weight.detach().numpy().copy()
        for _ in range(200):
            loss = ((x @ weight - tc.tensor(target)) ** 2).sum()
            loss.backward()
            with tc.no_grad():
                weight -= 0.001 * weight.grad
            weight.grad = None
            # the same step by hand: dL/dW = 2 x^T (x W - t)
            expected -= 0.001 * 2 * x.numpy().T @ (x.numpy() @ expected - target)
        results[seed] = numpy.abs(weight.detach().numpy() - expected).max()

    results = {}
    workers = [threading.Thread(target=train, args=(seed, results)) for seed in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(results) == [1, 2] and max(results.values()) < 1e-9


def test_set_grad_enabled_false_as_a_context_manager(device):
    x = leaf([1.0], device)
    with tc.set_grad_enabled(False):
        y = x * 2.0
    assert y.grad_fn is None
    assert tc.is_grad_enabled()


# -- 7. backward needs grad ---------------------------------------------------------------


def test_backward_on_tensor_without_grad_raises(device):
    x = leaf([1.0, 2.0], device, requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2.0).sum().backward()


# -- 8. version counter -------------------------------------------------------------------


def test_inplace_change_of_saved_tensor_makes_backward_raise(device):
    weight = leaf([1.0, 2.0], device)
    x = leaf([3.0, 4.0], device, requires_grad=False)
    loss = (x * weight).sum()  # Mul saves x and weight
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="Mul"):
        loss.backward()


def test_inplace_change_through_a_detached_view_makes_backward_raise(device):
    weight = leaf([1.0, 2.0], device)
    hidden = weight.exp()  # Exp saves its output, hidden's array
    loss = hidden.sum()
    hidden.detach().zero_()  # shares hidden's array and its version counter
    with pytest.raises(RuntimeError, match="Exp"):
        loss.backward()


VIEW_CHANGES = {
    # how a view (or its base) is changed in place after the graph saved the other
    "a slice of the base of a saved transpose": lambda x, hidden: x[0:1].fill_(0.0),
    "one element of the base of a saved transpose": lambda x, hidden: x[1, 0].fill_(0.0),
    "the base of a saved transpose": lambda x, hidden: x.zero_(),
    "a reshape of a saved output": lambda x, hidden: hidden.reshape(-1).mul_(2),
    "an element of a detached saved output": lambda x, hidden: hidden.detach()[0, 0].fill_(9),
}


@pytest.mark.parametrize("change", VIEW_CHANGES.values(), ids=VIEW_CHANGES.keys())
def test_inplace_change_through_a_view_makes_backward_raise(device, change):
    # views count in-place changes with the memory they view, as in PyTorch: without
    # that, each of these changes would give a silently wrong gradient
    weight = leaf([[1.0, 2.0], [3.0, 4.0]], device)
    x = leaf([[5.0, 6.0], [7.0, 8.0]], device, requires_grad=False)
    hidden = weight.exp()  # Exp saves its output
    loss = hidden.sum() + (weight * x.T).sum()  # Mul saves x.T, a view of x
    with tc.no_grad():
        change(x, hidden)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_writing_into_one_element_writes_into_the_tensor(device):
    x = leaf([1.0, 2.0, 3.0], device, requires_grad=False)
    x[1].fill_(9.0)  # x[1] is a view, as in PyTorch, not a copy
    numpy.testing.assert_array_equal(to_numpy(x), [1.0, 9.0, 3.0])


def test_inplace_change_of_saved_leaf_under_no_grad_makes_backward_raise(device):
    weight = leaf([1.0, 2.0], device)
    loss = (weight * weight).sum()
    with tc.no_grad():
        weight.mul_(2.0)
    with pytest.raises(RuntimeError, match="Mul"):
        loss.backward()


def test_inplace_change_between_retained_backward_calls_makes_backward_raise(device):
    weight = leaf([1.0, 2.0], device)
    loss = (weight * weight).sum()
    loss.backward(retain_graph=True)
    with tc.no_grad():
        weight.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_inplace_change_of_an_unsaved_tensor_is_allowed(device):
    weight = leaf([1.0, 2.0], device)
    x = leaf([3.0, 4.0], device, requires_grad=False)
    loss = (x + weight).sum()  # Add saves nothing
    x.add_(1.0)
    loss.backward()
    numpy.testing.assert_allclose(to_numpy(weight.grad), [1.0, 1.0])


def test_inplace_change_of_an_operand_no_gradient_reads_is_allowed(device):
    # d(x * w)/dw = x and d(w / x)/dw = 1/x: neither reads w, so a product or quotient
    # keeps only x, and changing w afterwards is no error (as in PyTorch)
    weight = leaf([1.0, 2.0], device)
    x = leaf([3.0, 4.0], device, requires_grad=False)
    loss = (x * weight).sum() + (weight / x).sum()
    with tc.no_grad():
        weight.mul_(5.0)
    loss.backward()
    numpy.testing.assert_allclose(to_numpy(weight.grad), [3.0 + 1 / 3.0, 4.0 + 1 / 4.0])


# -- 9. gradient dtype, shape and device --------------------------------------------------


@pytest.mark.parametrize("dtype", [tc.float32, tc.float64])
def test_gradients_have_the_dtype_shape_and_device_of_their_tensor(device, dtype):
    a = tc.ones(2, 3, dtype=dtype, device=device, requires_grad=True)
    b = tc.ones(3, dtype=dtype, device=device, requires_grad=True)
    c = tc.ones((), dtype=dtype, device=device, requires_grad=True)
    ((a * b + c) ** 2).sum().backward()
    for tensor in (a, b, c):
        assert tensor.grad.shape == tensor.shape
        assert tensor.grad.dtype is dtype
        assert tensor.grad.device == tensor.device == device
        assert tensor.grad.requires_grad is False


@pytest.mark.parametrize(
    "grad, error",
    [
        (lambda: tc.ones(3, dtype=tc.float64), RuntimeError),  # a shape that would broadcast
        (lambda: tc.ones(2, 3, dtype=tc.float32), RuntimeError),
        (lambda: tc.ones(2, 3, dtype=tc.int64), RuntimeError),
        (lambda: numpy.ones((2, 3)), TypeError),
    ],
    ids=["shape", "dtype", "integer", "array"],
)
def test_assigning_a_gradient_unlike_its_tensor_raises(grad, error):
    # as in PyTorch: an optimizer would otherwise broadcast a wrong gradient silently
    x = tc.ones(2, 3, dtype=tc.float64, requires_grad=True)
    with pytest.raises(error, match="grad"):
        x.grad = grad()
    assert x.grad is None
    x.grad = tc.zeros(2, 3, dtype=tc.float64)  # a matching one is taken
    assert x.grad.shape == (2, 3)


def test_gradient_of_a_cast_comes_back_in_the_original_dtype(device):
    x = tc.ones(3, dtype=tc.float32, device=device, requires_grad=True)
    (x.double() * 2.0).sum().backward()
    assert x.grad.dtype is tc.float32
    numpy.testing.assert_allclose(to_numpy(x.grad), [2.0, 2.0, 2.0])


# -- 10. freeing the graph ----------------------------------------------------------------


def test_graph_is_freed_when_the_output_is_dropped(device):
    x = leaf([0.5, 1.5], device)
    gc.collect()
    gc.disable()  # prove that reference counting alone frees it: no cycles
    try:
        hidden = (x * 2.0).exp()
        node = weakref.ref(hidden.grad_fn)
        saved = weakref.ref(hidden.data)
        loss = hidden.sum()
        del hidden
        loss.backward()
        del loss
        assert node() is None, "the graph's nodes outlived its output"
        assert saved() is None, "the graph's arrays outlived its output"
    finally:
        gc.enable()


def test_graph_is_freed_without_backward_when_the_output_is_dropped(device):
    x = leaf([0.5, 1.5], device)
    gc.collect()
    gc.disable()
    try:
        hidden = (x * 2.0).exp()
        saved = weakref.ref(hidden.data)
        loss = hidden.sum()
        hidden.retain_grad()
        hidden.register_hook(lambda grad: grad)
        del hidden, loss
        assert saved() is None
    finally:
        gc.enable()


# -- hooks --------------------------------------------------------------------------------


def test_hook_on_a_leaf_sees_its_gradient(device):
    x = leaf([1.0, 2.0], device)
    seen = []
    x.register_hook(lambda grad: seen.append(to_numpy(grad).copy()))
    (x * 3.0).sum().backward()
    assert len(seen) == 1
    numpy.testing.assert_allclose(seen[0], [3.0, 3.0])


def test_hook_returning_a_tensor_replaces_the_gradient(device):
    x = leaf([1.0, 2.0], device)
    y = x * 3.0
    y.register_hook(lambda grad: grad * 10.0)
    y.sum().backward()
    # dL/dy = 1 becomes 10, then flows through d(3x)/dx = 3
    numpy.testing.assert_allclose(to_numpy(x.grad), [30.0, 30.0])


def test_hook_on_a_leaf_can_replace_what_accumulates(device):
    x = leaf([1.0, 2.0], device)
    x.register_hook(lambda grad: grad * 0.5)
    (x * 4.0).sum().backward()
    numpy.testing.assert_allclose(to_numpy(x.grad), [2.0, 2.0])


def test_hook_sees_the_gradient_summed_over_all_uses_once(device):
    x = leaf([1.0, 2.0], device)
    y = x * 1.0
    seen_x, seen_y = [], []
    x.register_hook(lambda grad: seen_x.append(to_numpy(grad).copy()))
    y.register_hook(lambda grad: seen_y.append(to_numpy(grad).copy()))
    (y * 2.0 + y * 3.0 + x * 4.0).sum().backward()
    assert len(seen_y) == 1 and len(seen_x) == 1
    numpy.testing.assert_allclose(seen_y[0], [5.0, 5.0])
    numpy.testing.assert_allclose(seen_x[0], [9.0, 9.0])


def test_removed_hook_is_not_called(device):
    x = leaf([1.0, 2.0], device)
    y = x * 3.0
    calls = []
    handle = y.register_hook(lambda grad: calls.append(1))
    kept = x.register_hook(lambda grad: calls.append(2))
    handle.remove()
    kept.remove()
    handle.remove()  # a second remove is harmless
    y.sum().backward()
    assert calls == []
    numpy.testing.assert_allclose(to_numpy(x.grad), [3.0, 3.0])


def test_hook_on_tensor_without_grad_raises(device):
    x = leaf([1.0], device, requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.register_hook(lambda grad: grad)


def test_retain_grad_on_tensor_without_grad_raises(device):
    x = leaf([1.0], device, requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.retain_grad()


# -- leaves and flags ---------------------------------------------------------------------


def test_requires_grad_of_a_non_leaf_cannot_be_switched_off(device):
    y = leaf([1.0], device) * 2.0
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad = False


def test_inplace_op_on_a_leaf_requiring_grad_raises_in_grad_mode(device):
    x = leaf([1.0, 2.0], device)
    with pytest.raises(RuntimeError, match="in-place"):
        x.add_(1.0)
    with tc.no_grad():
        x.add_(1.0)
    numpy.testing.assert_allclose(to_numpy(x), [2.0, 3.0])


def test_comparison_results_carry_no_graph(device):
    x = leaf([1.0, 2.0], device)
    mask = x > 1.5
    assert mask.dtype is tc.bool
    assert mask.requires_grad is False
    assert mask.grad_fn is None
