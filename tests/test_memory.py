"""Memory: a graph's arrays are released once backward is done, the graph itself once
its output is dropped, and a training loop's memory stays flat. Reference counting
alone must do it: the garbage collector is switched off while these tests run, so a
reference cycle anywhere shows up as growth."""

from __future__ import annotations

import contextlib
import gc
import tracemalloc
import weakref

import numpy
import pytest
from helpers import leaf

import tinyconv as tc
import tinyconv.nn.functional as F


@contextlib.contextmanager
def garbage_collector_off():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def small_mlp(device, seed=0):
    rng = numpy.random.default_rng(seed)
    shapes = [(16, 8), (16,), (4, 16), (4,)]
    return [leaf(rng.standard_normal(shape) * 0.3, device) for shape in shapes]


def training_step(params, x, target, learning_rate=0.05):
    w1, b1, w2, b2 = params
    hidden = F.relu(F.linear(x, w1, b1))
    loss = F.cross_entropy(F.linear(hidden, w2, b2), target)
    loss.backward()
    with tc.no_grad():
        for param in params:
            param -= param.grad * learning_rate
            param.grad = None
    return loss.item()


def graph_nodes(tensor):
    """Every node of the graph behind ``tensor`` (a walk of ``next_edges``)."""
    found, stack = [], [tensor.grad_fn]
    seen = set()
    while stack:
        node = stack.pop()
        if node is None or not isinstance(node, tc.autograd.Function) or id(node) in seen:
            continue
        seen.add(id(node))
        found.append(node)
        stack.extend(edge[0] for edge in node.next_edges if edge is not None)
    return found


def live_objects_by_type():
    counts = {}
    for obj in gc.get_objects():
        kind = type(obj)  # not isinstance: that would ask every object for __class__
        if issubclass(kind, (tc.Tensor, tc.autograd.Function)):
            counts[kind.__name__] = counts.get(kind.__name__, 0) + 1
    return counts


def test_saved_arrays_are_released_once_backward_finishes(device):
    w1, b1, w2, b2 = small_mlp(device)
    x = leaf(numpy.ones((3, 8)), device, requires_grad=False)
    with garbage_collector_off():
        hidden = F.relu(F.linear(x, w1, b1))  # saved by ReLU and by the second linear
        saved = weakref.ref(hidden.data)
        loss = F.cross_entropy(F.linear(hidden, w2, b2), tc.tensor([0, 1, 2], device=device))
        del hidden
        assert saved() is not None
        loss.backward()
        assert saved() is None, "backward kept an array it had saved"
        assert loss.grad_fn is not None  # the output itself is still here


def test_retain_graph_keeps_saved_arrays_until_the_output_is_dropped(device):
    x = leaf([0.5, 1.5], device)
    with garbage_collector_off():
        hidden = x.exp()
        saved = weakref.ref(hidden.data)
        loss = (hidden * hidden).sum()
        del hidden
        loss.backward(retain_graph=True)
        assert saved() is not None
        del loss
        assert saved() is None


def test_every_node_is_freed_when_the_output_is_dropped(device):
    params = small_mlp(device)
    x = leaf(numpy.ones((3, 8)), device, requires_grad=False)
    target = tc.tensor([0, 1, 2], device=device)
    with garbage_collector_off():
        w1, b1, w2, b2 = params
        loss = F.cross_entropy(F.linear(F.relu(F.linear(x, w1, b1)), w2, b2), target)
        nodes = [weakref.ref(node) for node in graph_nodes(loss)]
        assert len(nodes) >= 4
        loss.backward()
        del loss
        assert all(node() is None for node in nodes), "a node outlived its graph"


def test_leaves_hold_no_reference_to_the_graph(device):
    x = leaf([1.0, 2.0], device)
    with garbage_collector_off():
        loss = (x * x).sum()
        node = weakref.ref(loss.grad_fn)
        loss.backward()
        del loss
        assert node() is None
        assert x.grad.grad_fn is None


def live_array_memory(device):
    """(bytes, blocks) of array memory allocated since tracing began, still alive.

    On the host, NumPy reports every array buffer to tracemalloc in a domain of its own,
    so Python's freelists and caches do not blur the count; on a GPU, CuPy's pool."""
    if device == "cpu":
        domain = tracemalloc.DomainFilter(True, numpy.lib.tracemalloc_domain)
        traces = tracemalloc.take_snapshot().filter_traces([domain]).traces
        return sum(trace.size for trace in traces), len(traces)
    pool = tc.backend.cupy_module().get_default_memory_pool()
    return pool.used_bytes(), None


def test_two_thousand_training_steps_keep_memory_flat(device):
    params = small_mlp(device)
    rng = numpy.random.default_rng(1)
    x = leaf(rng.standard_normal((8, 8)), device, requires_grad=False)
    target = tc.tensor(rng.integers(0, 4, 8), device=device)
    with garbage_collector_off():
        tracemalloc.start()
        try:
            first_loss = training_step(params, x, target)
            for _ in range(199):  # warm up: the first gradients and caches settle
                training_step(params, x, target)
            objects_before = live_objects_by_type()
            arrays_before = live_array_memory(device)
            for _ in range(1_799):
                training_step(params, x, target)
            last_loss = training_step(params, x, target)
            objects_after = live_objects_by_type()
            arrays_after = live_array_memory(device)
        finally:
            tracemalloc.stop()
    assert last_loss < first_loss, "the loop must really train"
    assert objects_after == objects_before, "tensors or graph nodes piled up"
    # between steps nothing but the parameters and inputs is alive, so the array memory
    # is the same at both points; one leaked (8, 16) float64 array per step would
    # add 1,800 blocks and 1,800 KiB
    assert arrays_after == arrays_before, (
        f"array memory went from {arrays_before} to {arrays_after}"
    )


@pytest.mark.parametrize("steps", [200])
def test_graph_nodes_do_not_pile_up_without_backward(device, steps):
    # forward passes whose output is dropped (e.g. evaluation with grad on)
    params = small_mlp(device)
    x = leaf(numpy.ones((2, 8)), device, requires_grad=False)
    w1, b1, w2, b2 = params
    with garbage_collector_off():
        F.linear(F.relu(F.linear(x, w1, b1)), w2, b2).sum()
        before = live_objects_by_type()
        for _ in range(steps):
            F.linear(F.relu(F.linear(x, w1, b1)), w2, b2).sum()
        after = live_objects_by_type()
    assert after == before
