"""The user space files in examples/spaces/ against their benchmarks' own numbers.

NAS-Bench-Macro (``examples/spaces/nb_macro.py``), all 6,561 archs of
``shared/data/nbmacro/nas_bench_macro_cifar10.csv.gz``:
* ``params`` = ``sum(p.numel() for p in net.parameters())`` exactly;
* ``flops`` = the multiply-accumulates of every Conv2d and Linear for one 32x32
  image (kh*kw*C_in/groups*C_out*H_out*W_out, Linear in*out; biases, BN, ReLU,
  pooling and residual adds not counted) exactly.

NAS-Bench-101 (``examples/spaces/nb101.py``), all 500 rows (301 distinct pruned
cells) of ``shared/data/nb101/nb101_naslib_prerelease_subset.csv.gz``
(NAS-Bench-Suite-Zero):
* ``params`` is in millions with 6 decimals, i.e. the exact count / 1e6, counting
  conv weights, BN scale and shift and the classifier's weight and bias (NB101's
  trainable parameters); it matches exactly;
* ``flops`` is in millions, NASLib's tensorwatch convention: conv and linear MACs,
  plus 2 per element entering a BN (affine) and 1 per element entering a ReLU,
  plus k*k per max-pool output element; the global average pool counts nothing
  (NASLib's NB101 model averages with a tensor op, not a module). It matches exactly;
* the unpruned ``matrix_7x7``/``ops_7`` spelling canonicalises to the pruned one.

All 6,561 macro nets are built for real, with random weight init switched off
(``_skip_weight_init``: 20 s instead of 60 s on one core; shapes do not depend on
it, and the meta device is slower still); their FLOPs are counted from the module
structure without a forward pass (``_sequential_macs``, checked against forward
hooks on a few archs).
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import importlib.util
import itertools
from pathlib import Path
from unittest import mock

import pytest
import torch
from torch import nn

from .conftest import shared_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "spaces"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_space_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def nb_macro():
    return _load("nb_macro")


@pytest.fixture(scope="module")
def nb101():
    return _load("nb101")


def _rows(*parts) -> list[dict]:
    with gzip.open(shared_file(*parts), "rt", newline="") as f:
        return list(csv.DictReader(f))


def _n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@contextlib.contextmanager
def _skip_weight_init():
    """Leave new Conv2d/Linear/BatchNorm2d parameters uninitialised: counting needs only
    shapes, and the random init is two thirds of the time it takes to build a macro net."""
    with contextlib.ExitStack() as stack:
        for cls in (nn.Conv2d, nn.Linear, nn.BatchNorm2d):
            stack.enter_context(mock.patch.object(cls, "reset_parameters", lambda self: None))
        yield


def _sequential_macs(net: nn.Module, hw: int = 32) -> int:
    """Conv2d/Linear MACs of one hw x hw image without a forward pass: modules are
    visited in registration order, which is execution order in the macro nets, and
    only convs change the resolution there."""
    total = 0
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hw = (hw + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
            total += m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups * m.out_channels * hw * hw
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features
    return total


def _hooked_flops(net: nn.Module, naslib: bool) -> int:
    """Per-image count from one forward pass with hooks: Conv2d/Linear MACs, and with
    ``naslib`` also NASLib's BN (2/element), ReLU (1/element) and max-pool (k*k/output)."""
    total = [0]

    def hook(m, inputs, output):
        if isinstance(m, nn.Conv2d):
            total[0] += (m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
                         * output[0].numel())
        elif isinstance(m, nn.Linear):
            total[0] += m.in_features * m.out_features
        elif naslib and isinstance(m, nn.BatchNorm2d):
            total[0] += 2 * inputs[0].numel()
        elif naslib and isinstance(m, nn.ReLU):
            total[0] += inputs[0].numel()
        elif naslib and isinstance(m, nn.MaxPool2d):
            total[0] += m.kernel_size ** 2 * output.numel()

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, 3, 32, 32))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def _forward_backward(net: nn.Module) -> None:
    """One training-mode step on 2 random images: finite loss, a finite gradient on every conv."""
    net.train()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    loss = nn.functional.cross_entropy(net(x), torch.tensor([1, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs
    for conv in convs:
        assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


# ------------------------------------------------------------------ NAS-Bench-Macro


def test_macro_archs_and_canonical(nb_macro):
    archs = nb_macro.archs()
    assert len(archs) == len(set(archs)) == 3 ** 8
    assert archs[:4] == ["00000000", "00000001", "00000002", "00000010"]
    assert archs == ["".join(d) for d in itertools.product("012", repeat=8)]
    assert all(nb_macro.canonical(a) == a for a in archs[::97])
    for bad in ["0000000", "000000000", "00000003", "0000000a", " 0000000", "", 12, None]:
        with pytest.raises(ValueError, match="NAS-Bench-Macro arch"):
            nb_macro.canonical(bad)
    with pytest.raises(ValueError, match="'0201210'"):
        nb_macro.build("0201210", 10)


def test_macro_known_counts(nb_macro):
    assert _n_params(nb_macro.build("00000000", 10)) == 387_882
    assert _n_params(nb_macro.build("02012100", 10)) == 890_666


@pytest.mark.slow
def test_macro_params_and_flops_all_archs(nb_macro):
    rows = _rows("nbmacro", "nas_bench_macro_cifar10.csv.gz")
    assert [r["arch"] for r in rows] == nb_macro.archs()
    wrong = []
    with _skip_weight_init():
        for r in rows:
            net = nb_macro.build(r["arch"], 10)
            got = (_n_params(net), _sequential_macs(net))
            if got != (int(r["params"]), int(r["flops"])):
                wrong.append((r["arch"], got, r["params"], r["flops"]))
    assert not wrong, f"{len(wrong)} archs differ, e.g. {wrong[:3]}"


@pytest.mark.parametrize("arch", ["00000000", "22222222", "02012100", "12012010"])
def test_macro_forward_backward(nb_macro, arch):
    net = nb_macro.build(arch, 10)
    assert _hooked_flops(net, naslib=False) == _sequential_macs(net)
    _forward_backward(net)


# ----------------------------------------------------------------------- NB101

INCEPTION_LIKE = ("matrix=0111010/0000001/0000001/0000100/0000001/0000001/0000000;"
                  "ops=input|conv1x1-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|conv3x3-bn-relu|maxpool3x3|output")


def test_nb101_canonical(nb101):
    # The unpruned cell: vertex 2 (maxpool) has no path to the output, vertex 4 none from the input.
    raw = "matrix=0100100/0010001/0000000/0000001/0000001/0000000/0000000;ops=" \
          "input|conv3x3-bn-relu|maxpool3x3|conv1x1-bn-relu|conv1x1-bn-relu|conv3x3-bn-relu|output"
    pruned = "matrix=0110/0001/0001/0000;ops=input|conv3x3-bn-relu|conv1x1-bn-relu|output"
    assert nb101.canonical(raw) == pruned
    assert nb101.canonical(pruned) == pruned
    assert nb101.canonical(" ops=" + pruned.split(";ops=")[1] + " ; " + pruned.split(";")[0]) == pruned
    assert nb101.canonical("matrix=01/00;ops=input|output") == "matrix=01/00;ops=input|output"
    assert nb101.canonical(INCEPTION_LIKE) == INCEPTION_LIKE
    for bad, why in [
        ("matrix=011/001/000", "needs both"),
        ("matrix=011/001/000;ops=input|conv5x5|output", "ops must be"),
        ("matrix=011/001/000;ops=input|maxpool3x3", "2 ops for a 3x3"),
        ("matrix=011/101/000;ops=input|maxpool3x3|output", "upper-triangular"),
        ("matrix=011/00/000;ops=input|maxpool3x3|output", "square"),
        ("matrix=010/000/000;ops=input|maxpool3x3|output", "no path"),
        ("matrix=01111111/00000001/00000001/00000001/00000001/00000001/00000001/00000000;ops=input|"
         + "maxpool3x3|" * 6 + "output", "8 vertices after pruning"),
        ("matrix=0111111/0011111/0000001/0000001/0000001/0000001/0000000;ops=input|"
         + "maxpool3x3|" * 5 + "output", "edges after pruning"),
        ("mtx=01/00;ops=input|output", "is not 'matrix="),
        (42, "not a string"),
    ]:
        with pytest.raises(ValueError, match=why):
            nb101.canonical(bad)


def test_nb101_published_params(nb101):
    """The Inception-like cell of NB101's README: the NB101 API reports
    trainable_parameters 2,694,282 for it (as quoted from ``api.query``)."""
    assert _n_params(nb101.build(INCEPTION_LIKE, 10)) == 2_694_282


@pytest.mark.slow
def test_nb101_params_and_flops_all_rows(nb101):
    rows = _rows("nb101", "nb101_naslib_prerelease_subset.csv.gz")
    counted, wrong = {}, []
    for r in rows:
        pruned = f"matrix={r['pruned_matrix']};ops={r['pruned_ops']}"
        assert nb101.canonical(f"matrix={r['matrix_7x7']};ops={r['ops_7']}") == pruned
        assert nb101.canonical(pruned) == pruned
        if pruned not in counted:
            net = nb101.build(pruned, 10)
            counted[pruned] = (_n_params(net), _hooked_flops(net, naslib=True))
        # the table stores both in millions, params with 6 and flops with 6 decimals
        if counted[pruned] != (round(float(r["params"]) * 1e6), round(float(r["flops"]) * 1e6)):
            wrong.append((pruned, counted[pruned], r["params"], r["flops"]))
    assert len(counted) == 301
    assert not wrong, f"{len(wrong)} rows differ, e.g. {wrong[:3]}"


@pytest.mark.parametrize("arch", [INCEPTION_LIKE, "matrix=01/00;ops=input|output",
                                  "matrix=0101/0010/0001/0000;ops=input|maxpool3x3|conv3x3-bn-relu|output"])
def test_nb101_forward_backward(nb101, arch):
    _forward_backward(nb101.build(arch, 10))
