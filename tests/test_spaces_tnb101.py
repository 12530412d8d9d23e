"""TransNAS-Bench-101 micro/macro spaces: encodings, builders, caches, loaders.

Parameter counts are checked against NAS-Bench-Suite-Zero: NASLib's
``naslib/data/zc_transbench101_{micro,macro}.json`` (commit e5a821c2, Apache-2.0)
store, per task and arch, the parameters of the official TNB101 model (encoder +
task decoder). A 5-arch subset per space, trimmed to a few fields, is the fixture
tests/fixtures/tnb101/zc_transbench101_*_subset.json (all 711 micro and 662 macro
classification archs of the full files were also checked when this was written).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gpproxy.benchmarks import default_target, load_benchmark, load_tnb101
from gpproxy.cache import CacheSpec, build_cache
from gpproxy.errors import ArchError, DataError
from gpproxy.spaces import get_space, tnb101

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tnb101"
MICRO_JSON = FIXTURES / "zc_transbench101_micro_subset.json"
MACRO_JSON = FIXTURES / "zc_transbench101_macro_subset.json"
HEADS = {"class_scene": 63, "class_object": 100}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------- encodings


def test_encodings():
    micro, macro = get_space("tnb101_micro"), get_space("tnb101_macro")
    assert micro.canonical("64-41414-1_02_333") == "64-41414-1_02_333"
    assert micro.canonical("1_02_333") == "64-41414-1_02_333"
    assert micro.canonical("(1, 0, 2, 3, 3, 3)") == "64-41414-1_02_333"
    assert micro.canonical([1, 0, 2, 3, 3, 3]) == "64-41414-1_02_333"
    assert macro.canonical("(1, 2, 4, 2, 0, 0)") == "64-1242-basic"
    assert macro.canonical(" 64-1242-basic ") == "64-1242-basic"
    assert micro.key("1_02_333") == "64-41414-1_02_333"
    assert tnb101.is_official("64-2311-basic") and not tnb101.is_official("64-1111-basic")
    assert not tnb101.is_official("16-41414-1_02_333")
    bad = [(micro, "64-1242-basic", "macro-space arch"), (macro, "64-41414-1_02_333", "micro-space arch"),
           (micro, "64-41414-1_02_334", "cannot read TNB101 arch"), (micro, "63-41414-1_02_333", "even"),
           (macro, "(1, 0, 4, 2, 0, 0)", "trailing zeros"), (micro, "(1, 0, 2)", "6 op codes"),
           (micro, 3, "of type int")]
    for space, arch, message in bad:
        with pytest.raises(ArchError, match=message):
            space.canonical(arch)


def test_all_archs():
    micro = get_space("tnb101_micro").all_archs()
    macro = get_space("tnb101_macro").all_archs()
    assert len(micro) == len(set(micro)) == tnb101.NUM_MICRO == 4096
    assert len(macro) == len(set(macro)) == tnb101.NUM_MACRO == 3256
    assert "64-41414-1_02_333" in micro and "64-2311-basic" in macro  # README examples
    assert all(tnb101.is_official(a) for a in random.Random(0).sample(micro + macro, 200))
    assert {len(a.split("-")[1]) for a in macro} == {4, 5, 6}


# --------------------------------------------------------------------- parameter counts vs NASLib


@pytest.mark.parametrize("space, path", [("micro", MICRO_JSON), ("macro", MACRO_JSON)])
def test_params_match_naslib(space, path):
    data = json.loads(path.read_text())
    checked = 0
    for task, n_out in HEADS.items():
        for raw, rec in data[task].items():
            arch = tnb101.canonical(raw, space)
            expected = rec["params"]["score"]  # NASLib: tensorwatch parameters / 1e6
            assert round(tnb101.analytic_params(arch, n_out) / 1e6, 6) == expected, (arch, task)
            checked += 1
    assert checked == 10
    # Built networks agree with the analytic count (smallest and a mid-size arch).
    for raw in list(data["class_scene"])[:1] + list(data["class_scene"])[3:4]:
        arch = tnb101.canonical(raw, space)
        assert tnb101.count_params(tnb101.build_network(arch, 63)) == tnb101.analytic_params(arch, 63)


def test_flops_match_naslib_at_256():
    """NASLib's FLOPs (tensorwatch convention) need a 256x256 input: the benchmark's resolution."""
    cases = [("micro", MICRO_JSON, "(1, 0, 0, 2, 1, 0)"), ("micro", MICRO_JSON, "(1, 0, 1, 0, 0, 1)"),
             ("macro", MACRO_JSON, "(1, 1, 1, 4, 0, 0)")]
    for space, path, raw in cases:
        data = json.loads(path.read_text())
        for task, n_out in HEADS.items():
            net = tnb101.build_network(tnb101.canonical(raw, space), n_out)
            assert round(tnb101.naslib_flops(net, (1, 3, 256, 256)) / 1e6, 6) == data[task][raw]["flops"]["score"]


def test_jigsaw_head_relation():
    # NASLib's jigsaw model (a siamese decoder over 9 tiles) has the same encoder and a
    # Linear(9*C, 1000) head: its published count is ours with C=512 and 1000 outputs + 8*512*1000.
    assert tnb101.analytic_params("64-41414-1_00_210", 1000) + 8 * 512 * 1000 == 5_487_368
    assert tnb101.analytic_params("64-1242-basic", 1000) + 8 * 512 * 1000 == 15_795_464


# --------------------------------------------------------------------- builders


@pytest.mark.parametrize("arch", ["64-41414-0_00_000", "64-41414-3_33_333", "64-41414-1_01_001",
                                  "64-41414-2_13_120", "64-1242-basic", "64-242333-basic", "64-1114-basic",
                                  "8-2141-0_10_201", "8-21-basic"])
def test_forward_backward(arch):
    net = tnb101.build_network(arch, num_classes=9)
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 9)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert tnb101.count_params(net) == tnb101.analytic_params(arch, 9)


def test_official_quirks():
    net = tnb101.build_network("64-1242-basic", 63)
    shortcut_bns = [m.downsample[1] for m in net.modules() if isinstance(m, tnb101.BasicBlock) and m.downsample]
    assert shortcut_bns and all(bn.eps == 1.0 and bn.momentum == 1.0 for bn in shortcut_bns)
    stem = [m for m in net.stem.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in stem] == [(3, 32, (2, 2)), (32, 64, (2, 2))]
    info = get_space("tnb101_micro").describe("1_00_210", 100)
    assert info["official"] and info["input_shape"] == [1, 3, 256, 256]
    assert info["params"] == 929_668  # == NASLib's class_object count
    assert info["flops"] == 263_318_016  # == NASLib's class_object FLOPs


def test_cache_random_archs(tmp_path):
    rng = random.Random(1)
    for name, n_out in (("tnb101_micro", 100), ("tnb101_macro", 63)):
        space = get_space(name)
        archs = rng.sample(space.all_archs(), 2)
        cache = build_cache(tmp_path / name, CacheSpec(space=name, batch=2, num_classes=n_out), archs,
                            progress=False, log=lambda msg: None)
        for arch in archs:
            meta, flat = cache.record(arch, mmap=False)
            assert np.isfinite(flat).all()
            n_layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in space.build(arch, n_out).modules())
            assert len(meta["layers"]) == n_layers
            assert meta["layers"][-1]["meta"]["out_channels"] == n_out


# --------------------------------------------------------------------- loaders


def test_load_suite_zero_json():
    bench = load_benchmark(str(MICRO_JSON))  # .json sniffed as TNB101, space from the name
    assert bench.space == "tnb101_micro" and len(bench) == 5
    assert default_target(bench) == "class_object.val_accuracy"
    assert {"class_scene.val_accuracy", "class_scene.params", "class_object.flops"} <= set(bench.targets())
    data = json.loads(MICRO_JSON.read_text())
    raw, rec = next(iter(data["class_scene"].items()))
    assert bench.lookup([raw], "class_scene.val_accuracy")[0] == rec["val_accuracy"]
    assert bench.lookup([tnb101.canonical(raw, "micro")], "class_scene.params")[0] == rec["params"]["score"]
    one = load_benchmark(f"tnb101:{MACRO_JSON}:task=class_scene")
    assert one.space == "tnb101_macro" and default_target(one) == "class_scene.val_accuracy"
    assert all(t.startswith("class_scene.") for t in one.targets())


def test_space_inference_and_errors(tmp_path):
    data = json.loads(MACRO_JSON.read_text())
    plain = tmp_path / "scores.json"
    plain.write_text(json.dumps(data))
    assert load_tnb101(plain).space == "tnb101_macro"  # digit 4 only exists in macro codes
    ambiguous = {"class_scene": {"(1, 2, 1, 3, 0, 0)": {"val_accuracy": 50.0}}}
    plain.write_text(json.dumps(ambiguous))
    with pytest.raises(DataError, match="cannot tell micro from macro.*space=micro"):
        load_benchmark(f"tnb101:{plain}")
    assert load_benchmark(f"tnb101:{plain}:space=micro").archs == ["64-41414-1_21_300"]
    assert load_benchmark(f"tnb101:{plain}:space=macro").archs == ["64-1213-basic"]
    strings = tmp_path / "dump.json"  # keys may be arch strings (e.g. dumped with the official API)
    strings.write_text(json.dumps({"class_object": {"64-1242-basic": {"val_accuracy": 40.0},
                                                    "64-2311-basic": {"val_accuracy": 41.0}}}))
    assert load_tnb101(strings).space == "tnb101_macro"
    with pytest.raises(DataError, match="no task 'normal'"):
        load_benchmark(f"tnb101:{plain}:space=micro:task=normal")
    broken = json.loads(MICRO_JSON.read_text())
    first = next(iter(broken["class_object"]))
    del broken["class_object"][first]["val_accuracy"]
    bad = tmp_path / "bad_micro.json"
    bad.write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"bad_micro.json: task 'class_object' arch '\(1, 0, 0, 2, 1, 0\)': "
                                        r"missing key 'val_accuracy'"):
        load_benchmark(str(bad))
    broken["class_object"][first]["val_accuracy"] = 1.0
    broken["class_object"]["(7, 0, 0, 0, 0, 0)"] = {"val_accuracy": 1.0}
    bad.write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"arch '\(7, 0, 0, 0, 0, 0\)': not a TNB101 micro arch"):
        load_benchmark(str(bad))


def _fake_api_file(path: Path) -> Path:
    """A tiny file with the official API's .pth layout (plain containers)."""
    metrics = {"class_object": ["train_top1", "valid_top1", "valid_loss", "test_top1", "time_elapsed"],
               "room_layout": ["train_loss", "valid_neg_loss", "test_neg_loss"]}
    data = {"micro": {}, "macro": {}}
    for i, arch in enumerate(["64-41414-1_02_333", "64-41414-0_00_000"]):
        data["micro"][arch] = {
            "class_object": {"total_epochs": 3, "model_info": {"model_params": 1.5 + i, "inference_time": 0.01},
                             "metrics": {"train_top1": [10.0, 20.0, 30.0], "valid_top1": [5.0, 40.0 - i, 35.0],
                                         "valid_loss": [3.0, 2.0, 1.0], "test_top1": [1.0, 2.0, 3.0],
                                         "time_elapsed": [1, 2, 3]}},
            "room_layout": {"total_epochs": 2, "model_info": {},
                            "metrics": {"train_loss": [1.0, 0.5], "valid_neg_loss": [-0.9, -0.7],
                                        "test_neg_loss": [-1.0, -0.8]}},
        }
    data["macro"]["64-1242-basic"] = data["micro"]["64-41414-1_02_333"]
    torch.save({"metrics_dict": metrics, "info_names": ["inference_time", "model_params"],
                "task_list": list(metrics), "data": data}, path)
    return path


def test_load_official_pth(tmp_path):
    path = _fake_api_file(tmp_path / "transnas-bench_v10141024.pth")
    bench = load_benchmark(f"tnb101:{path}")
    assert bench.space == "tnb101_micro" and bench.archs == ["64-41414-1_02_333", "64-41414-0_00_000"]
    assert default_target(bench) == "class_object.valid_top1"
    assert list(bench.accuracy("class_object.valid_top1")) == [40.0, 39.0]  # best epoch (API mode='best')
    assert list(bench.accuracy("class_object.valid_top1.final")) == [35.0, 35.0]
    assert list(bench.accuracy("room_layout.valid_neg_loss")) == [-0.7, -0.7]
    assert list(bench.accuracy("class_object.model_params")) == [1.5, 2.5]
    assert not any("loss" in t and "neg_loss" not in t for t in bench.targets())
    assert "class_object.time_elapsed" not in bench.targets()
    macro = load_benchmark(f"tnb101:{path}:space=macro:task=class_object")
    assert macro.space == "tnb101_macro" and macro.archs == ["64-1242-basic"]

    broken = torch.load(path, weights_only=True)
    del broken["data"]["micro"]["64-41414-0_00_000"]["class_object"]["metrics"]
    torch.save(broken, path)
    with pytest.raises(DataError, match=r"arch '64-41414-0_00_000' task 'class_object': missing key 'metrics'"):
        load_benchmark(f"tnb101:{path}")
    torch.save({"something": 1}, path)
    with pytest.raises(DataError, match="not a TransNAS-Bench-101 API file"):
        load_benchmark(f"tnb101:{path}")
    path.write_bytes(b"not a zip or pickle")
    with pytest.raises(DataError, match="cannot read as a TransNAS-Bench-101 .pth"):
        load_benchmark(f"tnb101:{path}")
