"""to_dot draws the graph behind a tensor; render hands it to Graphviz's dot."""

import re
import shutil
import subprocess
import sys

import pytest

import tinyconv as tc
from tinyconv import viz

# -- a small DOT reader: enough of the grammar for what to_dot writes ----------------------

_TOKEN = re.compile(r'\s*(?:(->)|([{}\[\]=;,])|"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_.]+))')


def _tokens(text):
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"cannot read DOT at {text[position : position + 20]!r}")
        arrow, punctuation, quoted, word = match.groups()
        if quoted is not None:
            yield ("string", re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], quoted))
        else:
            yield ("symbol", arrow or punctuation or word)
        position = match.end()


def parse_dot(text):
    """{node: attributes}, [(tail, head, attributes)] of a `digraph NAME { ... }`."""
    tokens = list(_tokens(text))
    words = [value for _, value in tokens]
    assert words[0] == "digraph" and words[2] == "{" and words[-1] == "}", words[:3]
    position = 3
    nodes, edges = {}, []

    def attributes():
        nonlocal position
        found = {}
        if position < len(words) and words[position] == "[":
            position += 1
            while words[position] != "]":
                key, equals, value = words[position : position + 3]
                assert equals == "=", words[position : position + 3]
                found[key] = value
                position += 3
                if words[position] == ",":
                    position += 1
            position += 1
        return found

    while position < len(words) - 1:
        first = words[position]
        position += 1
        if words[position] == "->":
            head = words[position + 1]
            position += 2
            edges.append((first, head, attributes()))
        else:
            found = attributes()
            if first not in ("graph", "node", "edge"):
                nodes[first] = found
        assert words[position] == ";", words[position - 3 : position + 1]
        position += 1
    for tail, head, _ in edges:
        assert tail in nodes and head in nodes, (tail, head)  # every edge joins declared nodes
    return nodes, edges


def labels(nodes):
    return sorted(attributes["label"].split("\n")[0] for attributes in nodes.values())


# -- to_dot -------------------------------------------------------------------------------


def test_a_product_and_a_sum_give_five_nodes_and_four_edges():
    x = tc.ones(2, 3, requires_grad=True)
    w = tc.ones(2, 3, requires_grad=True)
    y = (x * w).sum()
    nodes, edges = parse_dot(viz.to_dot(y, params={"x": x, "w": w}))
    # output, Sum, Mul, and the two leaves; x -> Mul, w -> Mul, Mul -> Sum, Sum -> output
    assert len(nodes) == 5 and len(edges) == 4
    assert labels(nodes) == ["Mul", "Sum", "output", "w", "x"]
    by_label = {attributes["label"].split("\n")[0]: name for name, attributes in nodes.items()}
    edge_pairs = {(tail, head) for tail, head, _ in edges}
    assert (by_label["x"], by_label["Mul"]) in edge_pairs
    assert (by_label["w"], by_label["Mul"]) in edge_pairs
    assert (by_label["Mul"], by_label["Sum"]) in edge_pairs
    assert (by_label["Sum"], by_label["output"]) in edge_pairs


def test_labels_show_shapes_dtypes_and_which_leaves_require_grad():
    x = tc.ones(2, 3, dtype=tc.float64, requires_grad=True)
    data = tc.ones(2, 3, dtype=tc.float64)  # needs no grad: not part of the graph
    y = (x * data).sum()
    nodes, _ = parse_dot(viz.to_dot(y, params={"x": x}))
    found = {attributes["label"] for attributes in nodes.values()}
    assert "x\n(2, 3) float64\nrequires_grad" in found
    assert "Mul\n(2, 3) float64" in found
    assert "Sum\n() float64" in found
    leaf = next(a for a in nodes.values() if a["label"].startswith("x\n"))
    assert leaf["style"] == "filled"
    assert len(nodes) == 4  # output, Sum, Mul, x: the data tensor is not drawn


def test_a_tensor_used_twice_is_one_node_with_two_edges():
    x = tc.ones(3, requires_grad=True)
    y = (x * x).sum()
    nodes, edges = parse_dot(viz.to_dot(y))
    assert len(nodes) == 4  # output, Sum, Mul, x
    leaf = next(name for name, a in nodes.items() if a["label"].startswith("leaf\n"))
    assert sum(1 for tail, _, _ in edges if tail == leaf) == 2


def test_a_shared_intermediate_result_is_drawn_once():
    x = tc.ones(3, requires_grad=True)
    hidden = x.relu()
    y = (hidden + hidden * 2.0).sum()  # ReLU feeds Add and Mul
    nodes, edges = parse_dot(viz.to_dot(y))
    assert labels(nodes) == ["Add", "Mul", "ReLU", "Sum", "leaf", "output"]
    relu = next(name for name, a in nodes.items() if a["label"].startswith("ReLU"))
    assert sorted(
        nodes[head]["label"].split("\n")[0] for tail, head, _ in edges if tail == relu
    ) == ["Add", "Mul"]
    assert len(edges) == 6  # leaf->ReLU, ReLU->Add, ReLU->Mul, Mul->Add, Add->Sum, Sum->out


def test_an_op_with_two_outputs_labels_the_output_its_edge_carries():
    x = tc.ones(2, 3, requires_grad=True)
    values, _ = x.max(1)
    nodes, edges = parse_dot(viz.to_dot(values.sum()))
    assert "MaxAlong\n(2,) float32, (2,) int64" in {a["label"] for a in nodes.values()}
    assert [a.get("label") for _, _, a in edges if a] == ["output 0"]


def test_a_leaf_alone_is_its_own_graph():
    x = tc.ones(2, requires_grad=True)
    nodes, edges = parse_dot(viz.to_dot(x, params={"x": x}))
    assert labels(nodes) == ["output", "x"] and len(edges) == 1


def test_parameters_of_a_module_are_named_without_being_told():
    nn = pytest.importorskip("tinyconv.nn")
    if not hasattr(nn, "Linear"):
        pytest.skip("tinyconv.nn.Linear is not available")
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    y = model(tc.ones(5, 3)).sum()
    found = labels(parse_dot(viz.to_dot(y))[0])
    assert {"0.weight", "0.bias", "2.weight", "2.bias"} <= set(found)
    found = labels(parse_dot(viz.to_dot(y, params=dict(model[0].named_parameters())))[0])
    assert {"weight", "bias"} <= set(found) and "leaf" in found  # model[2]'s are unnamed


def test_a_deep_graph_does_not_hit_the_recursion_limit():
    x = tc.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(sys.getrecursionlimit() + 100):
        y = y * 1.0
    nodes, edges = parse_dot(viz.to_dot(y))
    assert len(nodes) == sys.getrecursionlimit() + 100 + 2  # the Muls, the leaf, the output
    assert len(edges) == len(nodes) - 1


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_reads_the_text():
    x = tc.ones(2, 3, requires_grad=True)
    y = (x * x.relu()).sum()
    plain = subprocess.run(
        ["dot", "-Tplain"], input=viz.to_dot(y), capture_output=True, text=True, check=True
    ).stdout
    kinds = [line.split()[0] for line in plain.splitlines()]
    # out, Sum, Mul, ReLU, leaf; Sum->out, Mul->Sum, leaf->Mul, leaf->ReLU, ReLU->Mul
    assert kinds.count("node") == 5 and kinds.count("edge") == 5


# -- render -------------------------------------------------------------------------------


def test_render_without_dot_says_how_to_install_graphviz(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    y = (tc.ones(2, requires_grad=True) * 2.0).sum()
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        viz.render(y, tmp_path / "graph.svg")


@pytest.mark.skipif(sys.platform == "win32", reason="runs a script as a stand-in dot")
def test_render_passes_the_format_and_the_text_to_dot(monkeypatch, tmp_path):
    # a stand-in `dot` that writes its first argument and its input where -o points
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "with open(sys.argv[3], 'w') as out:\n"
        "    out.write(sys.argv[1] + '\\n' + sys.stdin.read())\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    y = (tc.ones(2, requires_grad=True) * 2.0).sum()
    written = viz.render(y, tmp_path / "graph.png")
    text = written.read_text()
    assert text.startswith("-Tpng\ndigraph")
    viz.render(y, tmp_path / "graph", format="svg")
    assert (tmp_path / "graph").read_text().startswith("-Tsvg\n")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_writes_an_svg(tmp_path):
    y = (tc.ones(2, requires_grad=True) * 2.0).sum()
    path = viz.render(y, tmp_path / "graph.svg")
    assert "<svg" in path.read_text()
