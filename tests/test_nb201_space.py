"""Tests for the NAS-Bench-201 space (Dong & Yang, ICLR 2020): encodings, network, costs."""

from __future__ import annotations

import csv
import gzip
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from gpproxy.errors import ArchError
from gpproxy.spaces import nb201

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ACCURACIES = DATA / "nb201" / "nb201_accuracies_200ep.csv.gz"
ZC_PROXIES = DATA / "nb201" / "nb201_zc_proxies_cifar10.csv.gz"

BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------- encodings


def test_constants():
    assert nb201.OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert nb201.EDGES == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert nb201.NUM_ARCHS == 15625


def test_known_indices_without_data():
    # Anchors asserted by NB201's own generator script, plus a well-known cell.
    assert nb201.format_arch(nb201.index_to_arch(9)) == (
        "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    )
    assert nb201.arch_to_index(nb201.parse_arch(BEST_C10)) == 13714
    assert nb201.parse_arch("(4, 0, 3, 1, 4, 3)") == nb201.parse_arch(
        "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|"
    )
    # NASLib id 0 is skip, so the all-zero tuple is the all-skip cell.
    assert nb201.from_naslib((0,) * 6) == ("skip_connect",) * 6


def test_round_trips_over_all_archs():
    archs = nb201.all_archs()
    assert len(archs) == len(set(archs)) == 15625
    for index, arch in enumerate(archs):
        text = nb201.format_arch(arch)
        code = nb201.to_naslib(arch)
        assert nb201.parse_arch(text) == arch
        assert nb201.from_naslib(code) == arch
        assert nb201.parse_arch(str(code)) == arch
        assert nb201.parse_arch(list(code)) == arch
        assert nb201.arch_to_index(arch) == index
        assert nb201.index_to_arch(index) == arch
        assert nb201.parse_arch(index) == arch
        assert nb201.parse_arch(str(index)) == arch
        assert nb201.parse_arch(arch) == arch


def test_index_order_matches_benchmark_table():
    rows = _read_rows(ACCURACIES)
    assert len(rows) == 15625
    wrong = [row["nb201_index"] for row in rows
             if nb201.format_arch(nb201.index_to_arch(int(row["nb201_index"]))) != row["arch_str"]]
    assert not wrong, f"{len(wrong)} indices disagree, first: {wrong[:5]}"


def test_naslib_encoding_matches_zc_table():
    rows = _read_rows(ZC_PROXIES)
    for row in rows:
        arch = nb201.parse_arch(row["arch_str"])
        assert nb201.parse_arch(row["naslib_ops"]) == arch
        assert str(nb201.to_naslib(arch)) == row["naslib_ops"]
        assert nb201.arch_to_index(arch) == int(row["nb201_index"])


GOOD = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (GOOD.replace("nor_conv_1x1", "conv_5x5"), "unknown NB201 op 'conv_5x5'"),
        (GOOD.replace("|none~2|", "|"), "node 3 needs 3 edge(s), got 2"),
        (GOOD.replace("none~2", "none~1"), "must read 'op~2'"),
        (GOOD.replace("skip_connect~1", "skip_connect"), "must read 'op~1'"),
        (GOOD.replace("+", "", 1), "needs 3 '+'-separated nodes, got 2"),
        (GOOD.rstrip("|"), "node 3 must look like"),
        ("resnet", "cannot read NB201 arch 'resnet'"),
        ("", "cannot read NB201 arch ''"),
        ("(4, 0, 3, 1, 4)", "needs 6 op ids, got 5"),
        ("(4, 0, 3, 1, 4, 5)", "op id 5"),
        ("(4, 0, 3, 1, 4, x)", "not a list of ints"),
        ([1, 2, 3, 4, 0, 1.5], "op id 1.5"),
        (("none",) * 5, "needs 6 ops, got 5"),
        (("none",) * 5 + ("max_pool_3x3",), "unknown NB201 op 'max_pool_3x3'"),
        (15625, "index 15625 is out of range 0..15624"),
        (-1, "index -1 is out of range"),
        ("15625", "index 15625 is out of range"),
        (True, "cannot read NB201 arch of type bool"),
        (None, "cannot read NB201 arch of type NoneType"),
        (3.0, "cannot read NB201 arch of type float"),
        ("|none~0|\n+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 must look like"),
    ],
)
def test_bad_arch_raises_one_line_error(bad, expected):
    with pytest.raises(ArchError) as info:
        nb201.parse_arch(bad)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_other_functions_reject_bad_archs():
    with pytest.raises(ArchError, match="unknown NB201 op"):
        nb201.format_arch(("none",) * 5 + ("conv",))
    with pytest.raises(ArchError, match="needs 6 ops"):
        nb201.arch_to_index(("none",) * 7)
    with pytest.raises(ArchError, match="must be an int"):
        nb201.index_to_arch("12")
    with pytest.raises(ArchError, match="op id"):
        nb201.from_naslib((0, 0, 0, 0, 0, -1))
    with pytest.raises(ArchError):
        nb201.build_network("not an arch")


# ----------------------------------------------------------------------- network


def test_forward_backward_channels_last_with_output_hooks():
    torch.manual_seed(0)
    arch = random.Random(1).choice(nb201.all_archs())
    net = nb201.build_network(arch).to(memory_format=torch.channels_last)
    # Proxies hook module outputs; in-place ops after a hook would make backward fail.
    seen = []

    def watch_output(_module, _inputs, out):
        out.register_hook(lambda grad: seen.append(grad.shape))  # returns None: output unchanged

    for module in net.modules():
        if isinstance(module, (nn.ReLU, nn.BatchNorm2d, nn.Conv2d, nn.AvgPool2d, nb201.Zero)):
            module.register_forward_hook(watch_output)
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    logits = net(x)
    assert logits.shape == (2, 10)
    nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()
    assert seen
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.features(x).shape == (2, 64)


def test_structure_and_names():
    net = nb201.build_network(BEST_C10, num_classes=100)
    names = dict(net.named_modules())
    assert isinstance(names["cells.3.edges.1<-0.op.1"], nn.Conv2d)
    assert isinstance(names["cells.3.edges.3<-0"], nn.Identity)
    assert isinstance(names["cells.5.conv_a.op.1"], nn.Conv2d)
    assert names["cells.5.conv_a.op.1"].stride == (2, 2)
    assert isinstance(names["cells.11.downsample.0"], nn.AvgPool2d)
    assert len(net.cells) == 17
    assert net.classifier.out_features == 100
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bn.affine and bn.track_running_stats for bn in bns)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.bias is None for conv in convs)

    leaves = {name for name, m in net.named_modules() if next(m.children(), None) is None}
    assert {spec["name"] for spec in nb201.layer_specs(BEST_C10, num_classes=100)} == leaves

    info = nb201.describe(BEST_C10, num_classes=100)
    assert info["arch_str"] == BEST_C10 and info["index"] == 13714
    assert info["naslib"] == nb201.to_naslib(nb201.parse_arch(BEST_C10))
    weight_modules = [name for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert info["n_layers"] == len(info["layers"]) == len(weight_modules)
    assert [layer["name"] for layer in info["layers"]] == weight_modules
    assert info["layers"][-1] == {"name": "classifier", "type": "Linear", "in_channels": 64,
                                  "out_channels": 100, "kernel": 1, "stride": 1, "groups": 1, "out_hw": (1, 1)}
    assert info["params"] == nb201.count_params(net)


def test_none_op_keeps_graph_and_zeroes():
    net = nb201.build_network(("none",) * 6)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = net(x)
    out.sum().backward()  # the all-none net is dead but still differentiable
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_init_weights_resets_to_defaults():
    net = nb201.build_network(BEST_C10)
    conv = net.stem[0]
    with torch.no_grad():
        conv.weight.fill_(3.0)
        net.stem[1].running_mean.fill_(5.0)
    assert nb201.init_weights(net) is net
    assert conv.weight.abs().max() < 1.0
    assert torch.equal(net.stem[1].running_mean, torch.zeros(16))


# ------------------------------------------------------------------------- costs


@pytest.mark.parametrize("num_classes", [10, 100])
def test_analytic_counts_match_hook_counts(num_classes):
    archs = [("none",) * 6, ("skip_connect",) * 6, ("avg_pool_3x3",) * 6, nb201.parse_arch(BEST_C10)]
    archs += random.Random(num_classes).sample(nb201.all_archs(), 2)
    for arch in archs:
        net = nb201.build_network(arch, num_classes=num_classes)
        assert nb201.count_params(net) == nb201.analytic_params(arch, num_classes)
        for convention in ("naslib", "nb201"):
            assert nb201.count_flops(net, convention=convention) == nb201.analytic_flops(
                arch, num_classes, convention=convention)
        assert nb201.count_flops(net, (3, 3, 32, 32)) == 3 * nb201.count_flops(net)
    assert net.training  # count_flops restores the mode


def test_count_flops_on_meta_device():
    with torch.device("meta"):
        net = nb201.build_network(BEST_C10)
    assert nb201.count_flops(net) == nb201.describe(BEST_C10)["flops"]


def test_official_cost_range():
    # NB201 paper: FLOPs 7.78–220.11 M and params 0.07–1.53 MB (get_model_infos convention).
    conv = ("nor_conv_3x3",) * 6
    assert nb201.analytic_flops(conv, convention="nb201") == 220_119_690
    assert nb201.analytic_params(conv) == 1_531_546
    assert nb201.analytic_flops(("none",) * 6, convention="nb201") == 7_783_050


def test_params_and_flops_match_nas_bench_suite_zero_on_all_rows():
    rows = _read_rows(ZC_PROXIES)
    assert len(rows) == 9445
    mismatches = []
    for row in rows:
        info = nb201.describe(row["arch_str"])
        # The CSV holds count / 1e6 written as the shortest float repr.
        if repr(info["params"] / 1e6) != row["params"] or repr(info["flops"] / 1e6) != row["flops"]:
            mismatches.append((row["nb201_index"], info["params"], row["params"], info["flops"], row["flops"]))
    assert not mismatches, f"{len(mismatches)} rows differ, first: {mismatches[:3]}"


def test_space_describe_counts_like_the_verified_analytic_one():
    """Space.describe (one counter for all spaces, on the built net) gives nb201.describe's numbers."""
    from gpproxy.spaces import get_space

    space = get_space("nb201")
    for index in (0, 1234, 15624):
        arch = space.archs()[index]
        for classes in (10, 120):
            ours, ref = space.describe(arch, classes), nb201.describe(arch, num_classes=classes)
            assert (ours["params"], ours["flops"], ours["index"]) == (ref["params"], ref["flops"], index)
            assert sorted(L["name"] for L in ours["layers"]) == sorted(L["name"] for L in ref["layers"])
