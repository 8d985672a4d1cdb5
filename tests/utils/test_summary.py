"""summary(): shapes, parameters, multiply-adds, memory and receptive fields per layer,
checked against numbers worked out by hand in this file."""

from fractions import Fraction

import pytest

import tinyconv as tc
import tinyconv.nn as nn
import tinyconv.nn.functional as F
from tinyconv.utils import summary

if not hasattr(nn, "Conv2d"):
    pytest.skip("the convolution layers are not available", allow_module_level=True)


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


# -- LeNet-5 on 1x28x28 --------------------------------------------------------------------


def test_lenet5_output_shapes_and_parameters():
    result = summary(lenet5(), (1, 28, 28), verbose=False)
    assert [row["output_shape"] for row in result.rows] == [
        (1, 6, 28, 28), (1, 6, 28, 28), (1, 6, 14, 14),
        (1, 16, 10, 10), (1, 16, 10, 10), (1, 16, 5, 5),
        (1, 400), (1, 120), (1, 120), (1, 84), (1, 84), (1, 10),
    ]  # fmt: skip
    # 6*25+6, 16*6*25+16, 400*120+120, 120*84+84, 84*10+10
    assert [row["params"] for row in result.rows if row["params"]] == [156, 2416, 48120, 10164, 850]
    assert result.totals["params"] == 61706


def test_lenet5_forward_multiply_adds():
    result = summary(lenet5(), (1, 28, 28), verbose=False)
    forward = {row["name"]: row["forward_macs"] for row in result.rows if row["forward_macs"]}
    # 6*28*28 outputs x 1*5*5; 16*10*10 x 6*5*5; 400*120; 120*84; 84*10
    assert forward == {"0": 117_600, "3": 240_000, "7": 48_000, "9": 10_080, "11": 840}
    assert result.totals["forward_macs"] == 416_520


def test_lenet5_backward_multiply_adds():
    result = summary(lenet5(), (1, 28, 28), verbose=False)
    conv1, conv2, fc1 = result["0"], result["3"], result["7"]
    assert conv1["grad_input_macs"] == 0  # the image needs no gradient: the engine skips it
    assert conv1["grad_weight_macs"] == 117_600
    assert conv2["grad_input_macs"] == conv2["grad_weight_macs"] == 240_000
    assert fc1["grad_input_macs"] == fc1["grad_weight_macs"] == 48_000
    assert result.totals["grad_weight_macs"] == 416_520
    assert result.totals["grad_input_macs"] == 416_520 - 117_600
    assert result.totals["backward_macs"] == 2 * 416_520 - 117_600


def test_lenet5_receptive_field_is_16_with_a_jump_of_4_after_the_second_pooling():
    result = summary(lenet5(), (1, 28, 28), verbose=False)
    fields = [(row["receptive_field"], row["jump"]) for row in result.rows[:6]]
    # conv 5: 5; relu; pool 2: 5 + 1*1 = 6, jump 2; conv 5: 6 + 4*2 = 14; relu; pool: 16, 4
    assert fields == [
        ((5, 5), (1, 1)), ((5, 5), (1, 1)), ((6, 6), (2, 2)),
        ((14, 14), (2, 2)), ((14, 14), (2, 2)), ((16, 16), (4, 4)),
    ]  # fmt: skip
    assert result["7"]["receptive_field"] == (28, 28)  # a linear layer sees the whole image
    assert result["7"]["jump"] is None


def test_lenet5_activation_memory():
    result = summary(lenet5(), (1, 28, 28), batch_size=2, verbose=False)
    assert result["0"]["activation_bytes"] == 2 * 6 * 28 * 28 * 4  # float32
    assert result["6"]["activation_bytes"] == 0  # Flatten's output is a view
    assert result.totals["input_bytes"] == 2 * 28 * 28 * 4
    assert result["3"]["forward_macs"] == 2 * 240_000  # scales with the batch


def test_lenet5_written_as_a_module_class_names_its_layers():
    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc = nn.Linear(400, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))  # the same pool module, called twice
            x = self.pool(F.relu(self.conv2(x)))
            return self.fc(x.flatten(1))

    result = summary(LeNet(), (1, 28, 28), verbose=False)
    assert [row["name"] for row in result.rows] == ["conv1", "pool", "conv2", "pool", "fc"]
    assert result["conv2"]["forward_macs"] == 240_000
    assert result.rows[3]["receptive_field"] == (16, 16)
    assert result.rows[3]["jump"] == (4, 4)


# -- a strided, dilated, grouped stack -----------------------------------------------------


def mixed_stack():
    return nn.Sequential(
        nn.Conv2d(4, 8, kernel_size=3, stride=2, padding=1, groups=2),
        nn.Conv2d(8, 8, kernel_size=3, dilation=2, padding=2, groups=8),
        nn.Conv2d(8, 16, kernel_size=(3, 1), stride=(1, 2), bias=False),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.ConvTranspose2d(16, 4, kernel_size=4, stride=2, padding=1, groups=2),
        nn.AvgPool2d(2),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(112, 10),
    )


def test_strided_dilated_grouped_stack_shapes_and_parameters():
    result = summary(mixed_stack(), (4, 32, 32), batch_size=2, verbose=False)
    assert [row["output_shape"] for row in result.rows] == [
        (2, 8, 16, 16),  # floor((32 + 2 - 3) / 2) + 1 = 16
        (2, 8, 16, 16),  # dilated kernel covers 5: 16 + 4 - 5 + 1
        (2, 16, 14, 8),  # 16 - 3 + 1 = 14; floor((16 - 1) / 2) + 1 = 8
        (2, 16, 7, 4),  # floor((14 + 2 - 3) / 2) + 1 = 7; floor((8 + 2 - 3) / 2) + 1 = 4
        (2, 4, 14, 8),  # (7 - 1) * 2 - 2 + 4 = 14; (4 - 1) * 2 - 2 + 4 = 8
        (2, 4, 7, 4),
        (2, 4, 7, 4),
        (2, 112),
        (2, 10),
    ]
    # 8*(4/2)*9 + 8; 8*1*9 + 8; 16*8*3; 0; 16*(4/2)*16 + 4; 0; 4 + 4; 0; 112*10 + 10
    assert [row["params"] for row in result.rows] == [152, 80, 384, 0, 516, 0, 8, 0, 1130]


def test_strided_dilated_grouped_stack_multiply_adds():
    result = summary(mixed_stack(), (4, 32, 32), batch_size=2, verbose=False)
    forward = [row["forward_macs"] for row in result.rows]
    assert forward == [
        2 * 8 * 16 * 16 * 2 * 9,  # outputs x (C_in / groups) x kernel area = 73,728
        2 * 8 * 16 * 16 * 1 * 9,  # depthwise: one input channel per output, 36,864
        2 * 16 * 14 * 8 * 8 * 3,  # 86,016
        0,  # max pooling compares
        2 * 16 * 7 * 4 * 2 * 16,  # transposed: inputs x (C_out / groups) x kernel area, 28,672
        2 * 4 * 7 * 4 * 4,  # an average of 4 per output, 896
        2 * 4 * 7 * 4,  # batch norm: a * x + b per element, 224
        0,
        2 * 112 * 10,  # 2,240
    ]
    grad_input = [row["grad_input_macs"] for row in result.rows]
    assert grad_input == [0, *forward[1:3], 0, *forward[4:]]  # the input needs none
    grad_weight = [row["grad_weight_macs"] for row in result.rows]
    assert grad_weight == [*forward[:3], 0, forward[4], 0, forward[6], 0, forward[8]]


def test_strided_dilated_grouped_stack_receptive_fields():
    result = summary(mixed_stack(), (4, 32, 32), batch_size=2, verbose=False)
    fields = [(row["receptive_field"], row["jump"]) for row in result.rows]
    assert fields == [
        ((3, 3), (2, 2)),  # 1 + 2*1; jump 1*2
        ((11, 11), (2, 2)),  # + (5 - 1)*2: the dilated kernel spans 5
        ((15, 11), (2, 4)),  # + (3 - 1)*2 and + 0; jumps x1, x2
        ((19, 19), (4, 8)),  # + 2*2, + 2*4; jumps x2
        ((25, 31), (2, 4)),  # transposed: jump / 2 = (2, 4), then + 3*2, + 3*4
        ((27, 35), (4, 8)),  # + 1*2, + 1*4; jumps x2
        ((27, 35), (4, 8)),  # batch norm: position by position
        ((27, 35), (4, 8)),  # flatten moves nothing
        ((32, 32), None),  # linear: the whole input
    ]


def test_a_transposed_convolution_has_a_fractional_jump():
    result = summary(nn.ConvTranspose2d(1, 1, kernel_size=3, stride=2), (1, 5, 5), verbose=False)
    (row,) = result.rows
    assert row["jump"] == (Fraction(1, 2), Fraction(1, 2))
    assert row["receptive_field"] == (2, 2)  # 1 + (3 - 1) * 1/2
    assert row["output_shape"] == (1, 1, 11, 11)


def test_adaptive_average_pooling_counts_each_window():
    result = summary(nn.AdaptiveAvgPool2d(2), (3, 5, 5), verbose=False)
    (row,) = result.rows
    # windows [0, 3) and [2, 5) on each axis: 3 * 3 inputs per output, 4 outputs, 3 channels
    assert row["forward_macs"] == 3 * 4 * 9
    assert row["receptive_field"] == (3, 3)
    assert row["jump"] == (Fraction(5, 2), Fraction(5, 2))


# -- running the model ----------------------------------------------------------------------


def test_summary_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))
    model[2].eval()
    mean_before = model[1].running_mean.numpy().copy()
    summary(model, (1, 6, 6), verbose=False)
    assert [m.training for m in model.modules()] == [True, True, True, False]
    assert (model[1].running_mean.numpy() == mean_before).all()  # ran in eval mode
    assert all(p.grad is None for p in model.parameters())
    assert not model[0]._forward_hooks  # hooks removed


def test_backward_costs_follow_what_requires_grad():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3))  # 6x6 -> 4x4 -> 2x2
    model[1].weight.requires_grad_(False)
    result = summary(model, (1, 6, 6), verbose=False)
    # conv0: 2*4*4 outputs x 1*9 = 288; conv1: 2*2*2 outputs x 2*9 = 144
    assert [row["forward_macs"] for row in result.rows] == [288, 144]
    assert [row["grad_weight_macs"] for row in result.rows] == [288, 0]  # frozen weight
    assert [row["grad_input_macs"] for row in result.rows] == [0, 144]
    for param in model[0].parameters():
        param.requires_grad_(False)  # now nothing before conv1 needs a gradient
    result = summary(model, (1, 6, 6), verbose=False)
    assert [row["grad_input_macs"] for row in result.rows] == [0, 0]
    assert result.totals["trainable_params"] == 2  # conv1's bias


def test_summary_inside_no_grad_still_counts_backward():
    with tc.no_grad():
        result = summary(lenet5(), (1, 28, 28), verbose=False)
    assert result["3"]["grad_input_macs"] == 240_000


def test_summary_runs_on_every_device(device):
    result = summary(lenet5().to(device), (1, 28, 28), device=device, verbose=False)
    assert result["3"]["forward_macs"] == 240_000
    assert result["0"]["activation_bytes"] == 6 * 28 * 28 * 4
    assert result["6"]["activation_bytes"] == 0


def test_summary_prints_a_table_and_returns_rows(capsys):
    result = summary(lenet5(), (1, 28, 28))
    printed = capsys.readouterr().out
    assert printed.strip() == result.table()
    lines = printed.splitlines()
    assert lines[0].split()[:3] == ["layer", "output", "shape"]
    assert "0 (Conv2d)" in printed and "117,600" in printed and "240,000" in printed
    assert any(line.startswith("total") and "61,706" in line for line in lines)
    assert len(result) == 12 and isinstance(result.rows[0], dict)


def test_an_input_without_spatial_dimensions_has_no_receptive_field():
    result = summary(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), (8,), batch_size=3, verbose=False)
    assert result["0"]["forward_macs"] == 3 * 8 * 4
    assert result["0"]["receptive_field"] is None and result["1"]["jump"] is None


def test_global_average_pooling_sees_the_whole_input():
    # a 1×1 adaptive pool averages every position: its output's field is the input,
    # however large the field before it was
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)
    )
    rows = tc.utils.summary(model, (1, 8, 8), verbose=False).rows
    assert [(row["receptive_field"], row["jump"]) for row in rows] == [
        ((3, 3), (1, 1)),
        ((8, 8), None),
        ((8, 8), None),
        ((8, 8), None),
    ]


@pytest.mark.parametrize("input_size", [(1.5, 28, 28), (True, 28, 28), 28, "1,28,28", ()])
def test_a_bad_input_size_is_named(input_size):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="input_size="):
        tc.utils.summary(model, input_size, verbose=False)
