"""examples/chapter6.py runs, and its results are the book's (values written out here)."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

import tinyconv as tc
import tinyconv.nn as nn

if not hasattr(nn, "Conv2d"):
    pytest.skip("the convolution layers are not available", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "chapter6.py"


@pytest.fixture(scope="module")
def chapter6():
    sys.path.insert(0, str(SCRIPT.parent))  # as when the script runs: lenet_mnist beside it
    spec = importlib.util.spec_from_file_location("chapter6", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["chapter6"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["chapter6"]


def ours(checks):
    return [check.ours for check in checks]


# -- each section against the book's printed values ----------------------------------------


def test_cross_correlation_and_edges(chapter6):
    assert ours(chapter6.convolutions()) == [
        [[19, 25], [37, 43]],
        [[19, 25], [37, 43]],
        [0, 1, 0, 0, 0, -1, 0],
    ]


def test_a_learned_kernel_ends_near_one_minus_one(chapter6):
    assert ours(chapter6.learn_edge_kernel(epochs=10)) == [True]


def test_output_shapes_under_padding_and_stride(chapter6):
    # measured and by the formula, for each of the five 8x8 examples
    assert ours(chapter6.padding_and_stride()) == [
        (8, 8), (8, 8), (8, 8), (8, 8), (4, 4), (4, 4), (2, 2), (2, 2), (3, 6), (3, 6),
    ]  # fmt: skip


def test_output_size_formula(chapter6):
    # floor((n - k + p + s) / s) with p both sides together
    assert chapter6.output_size_formula(8, 3, 2, 1) == 8
    assert chapter6.output_size_formula(8, 3, 2, 2) == 4
    assert chapter6.output_size_formula(8, 5, 2, 4) == 2
    assert chapter6.output_size_formula(8, 3, 4, 4) == 3


def test_multiple_input_and_output_channels(chapter6):
    results = ours(chapter6.channels())
    three = [[[56, 72], [104, 120]], [[76, 100], [148, 172]], [[96, 128], [192, 224]]]
    assert results == [[[56, 72], [104, 120]], (3, 2, 2, 2), three, three, True, True]


def test_pooling(chapter6):
    assert ours(chapter6.pooling()) == [
        [[4, 5], [7, 8]],
        [[2, 3], [5, 6]],
        [[[[10]]]],
        [[[[5, 7], [13, 15]]]],
        [[[[5, 7], [13, 15]]]],
        [[[[5, 7], [13, 15]], [[6, 8], [14, 16]]]],
    ]


def test_transposed_convolution(chapter6):
    assert ours(chapter6.transposed()) == [
        [[0, 0, 1], [0, 4, 6], [4, 12, 9]],
        [[0, 0, 1], [0, 4, 6], [4, 12, 9]],
        [[[[4]]]],
        [[[[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3], [4, 6, 6, 9]]]],
        True,
    ]


def test_transposed_convolution_is_multiplication_by_the_transposed_matrix(chapter6):
    results = ours(chapter6.convolution_matrix())
    assert results[:4] == [[[27, 37], [57, 67]], [1, 2, 0, 3, 4, 0, 0, 0, 0], True, True]
    # W^T vec(Y) with Y = [[27, 37], [57, 67]] and K = [[1, 2], [3, 4]], worked out by hand
    assert results[4] == [[27, 91, 74], [138, 400, 282], [171, 429, 268]]


def test_receptive_field(chapter6):
    assert ours(chapter6.receptive_field()) == [(3, 3), (16, 16), (4, 4)]


def test_layer_costs(chapter6):
    printed = []
    results = ours(chapter6.layer_costs(printed.append))
    assert results == [117_600, 240_000, 240_000, 240_000, 0, [48_000, 10_080, 840]]
    assert "240,000" in printed[0]  # the summary table was shown


def test_detach_and_gradient_accumulation(chapter6):
    assert ours(chapter6.detach_and_accumulation()) == [
        [0, 4, 8, 12],
        [1, 5, 9, 13],
        [1, 1, 1, 1],
        True,
        True,
    ]


# -- the script as a reader runs it ---------------------------------------------------------


def test_main_prints_each_result_beside_the_book(chapter6, capsys):
    assert chapter6.main([]) == 0
    out = capsys.readouterr().out
    assert "DIFFERS" not in out
    assert out.rstrip().endswith("all results agree with the book")
    for printed in [
        r"tinyconv\s+\[\[19, 25\], \[37, 43\]\]",
        r"stride \(4, 1\)\s+tinyconv \(3, 6\)\s+book \(3, 6\)",
        r"tinyconv\s+\[\[56, 72\], \[104, 120\]\]",
        r"tinyconv\s+\[\[\[\[5, 7\], \[13, 15\]\], \[\[6, 8\], \[14, 16\]\]\]\]",
        r"tinyconv\s+\[\[\[\[0, 0, 0, 1\], \[0, 0, 2, 3\], \[0, 2, 0, 3\], \[4, 6, 6, 9\]\]\]\]",
        r"tinyconv\s+\[1, 5, 9, 13\]",
        r"conv2 forward\s+tinyconv 240000",
    ]:
        assert re.search(printed, out), printed


def test_a_result_that_differs_is_flagged(chapter6):
    printed = []
    differ = chapter6.report("t", [chapter6.Check("a", [1.0, 2.0], [1, 3])], printed.append)
    assert differ == 1 and "DIFFERS" in printed[-1]


@pytest.mark.parametrize("nested", [True, False])
def test_a_checkpoint_gives_kernel_and_feature_map_pictures(chapter6, tmp_path, nested):
    pytest.importorskip("matplotlib")
    tc.manual_seed(0)
    state = chapter6.build_lenet5().state_dict()
    path = tmp_path / "lenet.safetensors"
    tc.save({"model": state, "epoch": 1} if nested else state, path)
    printed = []
    argv = ["--checkpoint", str(path), "--out", str(tmp_path / "out"), "--no-download"]
    argv += ["--data-dir", str(tmp_path / "no-data")]
    assert chapter6.main(argv, show=printed.append) == 0
    for name in ("lenet_kernels.png", "lenet_feature_maps.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("lenet_feature_maps.png" in line for line in printed)


def test_feature_maps_of_one_digit(chapter6):
    model = chapter6.build_lenet5().eval()
    maps = chapter6.feature_maps(model, chapter6.drawn_digit())
    assert [stack.shape for stack in maps.values()] == [(6, 28, 28), (16, 10, 10)]
