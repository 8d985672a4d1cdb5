"""trace() records the backward pass step by step; graph_size() sees graphs come and go."""

import gc
import threading

import numpy
import pytest

import tinyconv as tc
import tinyconv.nn.functional as F
from tinyconv.autograd import Function, engine, graph_size, trace
from tinyconv.autograd.grad_mode import keep_inputs

BATCH, IN, HIDDEN, OUT = 4, 5, 8, 3


def two_layer_net():
    """Inputs and parameters of linear -> relu -> linear -> mse, as float64 arrays."""
    rng = numpy.random.default_rng(0)
    arrays = {
        "x": rng.standard_normal((BATCH, IN)),
        "w1": rng.standard_normal((HIDDEN, IN)),
        "b1": rng.standard_normal(HIDDEN),
        "w2": rng.standard_normal((OUT, HIDDEN)),
        "b2": rng.standard_normal(OUT),
        "target": rng.standard_normal((BATCH, OUT)),
    }
    tensors = {
        name: tc.tensor(array, requires_grad=name not in ("x", "target"))
        for name, array in arrays.items()
    }
    return arrays, tensors


def forward(t):
    hidden = F.linear(t["x"], t["w1"], t["b1"]).relu()
    return F.mse_loss(F.linear(hidden, t["w2"], t["b2"]), t["target"])


def numpy_gradients(a):
    """The same net's backward pass written out in NumPy."""
    pre = a["x"] @ a["w1"].T + a["b1"]
    hidden = numpy.maximum(pre, 0)
    out = hidden @ a["w2"].T + a["b2"]
    grad_out = 2 * (out - a["target"]) / out.size  # d mean((out - t)^2) / d out
    grad_hidden = grad_out @ a["w2"]
    grad_pre = grad_hidden * (pre > 0)
    return {
        "out": grad_out,
        "w2": grad_out.T @ hidden,
        "b2": grad_out.sum(0),
        "hidden": grad_hidden,
        "pre": grad_pre,
        "w1": grad_pre.T @ a["x"],
        "b1": grad_pre.sum(0),
    }


def test_trace_records_ops_in_the_order_the_engine_ran_them():
    _, t = two_layer_net()
    loss = forward(t)
    with trace() as recorded:
        loss.backward()
    assert recorded.ops == ["MSELoss", "Linear", "ReLU", "Linear"]
    assert [step.index for step in recorded.steps] == [0, 1, 2, 3]


def test_trace_records_shapes_of_received_and_produced_gradients():
    _, t = two_layer_net()
    loss = forward(t)
    with trace() as recorded:
        loss.backward()
    mse, linear2, relu, linear1 = recorded.steps
    assert mse.grad_output_shapes == ((),)
    assert mse.grad_input_shapes == ((BATCH, OUT), None)  # the target needs no gradient
    assert linear2.grad_output_shapes == ((BATCH, OUT),)
    assert linear2.grad_input_shapes == ((BATCH, HIDDEN), (OUT, HIDDEN), (OUT,))
    assert linear2.targets == ("ReLU", "leaf", "leaf")
    assert relu.grad_output_shapes == ((BATCH, HIDDEN),)
    assert relu.grad_input_shapes == ((BATCH, HIDDEN),)
    assert relu.targets == ("Linear",)
    assert linear1.grad_input_shapes == (None, (HIDDEN, IN), (HIDDEN,))  # x is data
    assert linear1.targets == (None, "leaf", "leaf")


def test_trace_norms_equal_the_norms_of_gradients_computed_by_hand():
    arrays, t = two_layer_net()
    loss = forward(t)
    with trace() as recorded:
        loss.backward()
    expected = numpy_gradients(arrays)
    norm = numpy.linalg.norm
    mse, linear2, relu, linear1 = recorded.steps
    assert mse.grad_output_norms == (1.0,)
    assert mse.grad_input_norms[0] == pytest.approx(norm(expected["out"]), rel=1e-12)
    assert linear2.grad_output_norms[0] == pytest.approx(norm(expected["out"]), rel=1e-12)
    assert linear2.grad_input_norms == pytest.approx(
        (norm(expected["hidden"]), norm(expected["w2"]), norm(expected["b2"])), rel=1e-12
    )
    assert relu.grad_input_norms[0] == pytest.approx(norm(expected["pre"]), rel=1e-12)
    assert linear1.grad_input_norms[1:] == pytest.approx(
        (norm(expected["w1"]), norm(expected["b1"])), rel=1e-12
    )


def test_trace_works_on_every_device(device):
    x = tc.tensor([[3.0, 4.0]], device=device, requires_grad=True)
    with trace() as recorded:
        (x * 2.0).sum().backward()
    assert recorded.ops == ["Sum", "Mul"]
    assert recorded[1].grad_input_norms[0] == pytest.approx(2 * 2**0.5)  # |(2, 2)|
    assert isinstance(recorded[1].grad_input_norms[0], float)


def test_trace_table_has_a_row_per_step_and_a_line_per_extra_gradient():
    _, t = two_layer_net()
    loss = forward(t)
    with trace() as recorded:
        loss.backward()
    lines = str(recorded).splitlines()
    assert lines[0].split()[:2] == ["step", "op"]
    # header, MSELoss 1 line, Linear 3 (three gradients), ReLU 1, Linear 2
    assert len(lines) == 1 + 1 + 3 + 1 + 2
    assert lines[1].split()[:2] == ["0", "MSELoss"]
    assert lines[2].split()[:2] == ["1", "Linear"]
    assert "(4, 8)" in lines[2] and "(3, 8)" in lines[3] and "(3,)" in lines[4]
    assert lines[5].split()[:2] == ["2", "ReLU"]


def test_trace_unregisters_on_exit_even_after_an_error():
    before = list(engine.observers())
    with pytest.raises(KeyError):
        with trace():
            raise KeyError("inside the block")
    assert engine.observers() == before
    _, t = two_layer_net()
    loss = forward(t)
    with trace() as recorded:
        pass
    loss.backward()  # outside the block: not recorded
    assert len(recorded) == 0


def test_trace_sees_each_backward_through_a_retained_graph():
    x = tc.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    with trace() as recorded:
        y.backward(retain_graph=True)
        y.backward()
    assert recorded.ops == ["Sum", "Mul", "Sum", "Mul"]
    # d(sum x^2)/dx = 2x = (2, 4) reaches x twice, once per input of Mul: each is x
    assert recorded[1].grad_input_norms == pytest.approx((numpy.hypot(1, 2),) * 2)


class Cube(Function):
    """x^3, whose gradient 3x^2 can itself be differentiated."""

    differentiable_backward = True

    def forward(self, x):
        self.save_for_backward(x)
        return x**3

    def backward(self, grad_out):
        (x,) = self.saved_arrays
        return grad_out * 3.0 * x * x


def test_trace_reads_gradients_recorded_with_create_graph():
    x = tc.tensor([1.0, 2.0], requires_grad=True)
    with keep_inputs():
        y = Cube.apply(x)
    with trace() as recorded:
        tc.grad(y, x, grad_outputs=tc.tensor([1.0, 1.0]), create_graph=True)
    assert recorded.ops == ["Cube"]
    assert recorded[0].grad_output_norms == pytest.approx((numpy.sqrt(2),))
    assert recorded[0].grad_input_norms == pytest.approx((numpy.hypot(3, 12),))  # 3x^2


def test_graph_size_counts_the_nodes_reachable_from_a_tensor():
    _, t = two_layer_net()
    loss = forward(t)
    assert graph_size(loss) == 4
    assert graph_size(t["w1"]) == 0  # a leaf has no graph


def test_graph_size_drops_to_the_baseline_when_the_output_is_dropped():
    gc.collect()  # count from a clean heap: earlier tests may have left garbage
    baseline = graph_size()
    _, t = two_layer_net()
    loss = forward(t)
    assert graph_size() == baseline + 4
    loss.backward()
    assert graph_size() == baseline + 4  # the output still holds its (released) graph
    del loss
    assert graph_size() == baseline  # freed by reference counting alone: no cycle


def test_graph_size_sees_a_graph_kept_alive_by_an_intermediate_tensor():
    gc.collect()
    baseline = graph_size()
    _, t = two_layer_net()
    hidden = F.linear(t["x"], t["w1"], t["b1"]).relu()
    loss = F.mse_loss(F.linear(hidden, t["w2"], t["b2"]), t["target"])
    loss.backward()
    del loss
    assert graph_size() == baseline + 2  # ReLU and the first Linear, held by `hidden`
    del hidden
    assert graph_size() == baseline


def test_graph_size_walks_a_graph_deeper_than_the_recursion_limit():
    x = tc.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    assert graph_size(y) == 3000


def test_a_trace_records_only_its_own_threads_backward():
    _, t = two_layer_net()
    other_loss = forward(t)
    started, finish = threading.Event(), threading.Event()

    def backward_elsewhere():
        started.wait(timeout=10)
        other_loss.backward()  # while the main thread's trace is open
        finish.set()

    worker = threading.Thread(target=backward_elsewhere)
    worker.start()
    loss = forward(t)
    with trace() as recorded:
        started.set()
        finish.wait(timeout=10)
        assert len(recorded) == 0
        loss.backward()
    worker.join()
    assert recorded.ops == ["MSELoss", "Linear", "ReLU", "Linear"]


def test_a_trace_entered_twice_raises_instead_of_recording_twice():
    x = tc.ones(2, requires_grad=True)
    recording = tc.autograd.trace()
    with recording:
        with pytest.raises(RuntimeError, match="already recording"):
            with recording:
                pass
        (x * 2.0).sum().backward()
    assert [step.op for step in recording.steps] == ["Sum", "Mul"]
