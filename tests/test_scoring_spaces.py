"""`gpproxy score` / `gpproxy bench` on NDS sweeps and TransNAS-Bench-101 files, end to end
through the CLI with the options docs/spaces.md documents ("Correlation tables on NDS and
TransNAS-Bench-101"): the space comes from the benchmark, each space has its own datasets
(head size, input size, default column), and the header says what input the nets saw.

Fixtures are tiny files in the official schemas (NDS ``data.zip`` sweep summaries, the
TNB101 API ``.pth`` and NAS-Bench-Suite-Zero's TNB101 JSON) with small nets and synthetic
accuracies, so each run takes a few seconds on one CPU thread."""
from __future__ import annotations

import csv
import io
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from gpproxy.cli import main
from gpproxy.spaces import get_space, tnb101

from .test_inputs import py2_pickle
from .test_multispace import nds_fixture
from .test_spaces_nds import random_cell_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FORMULA = "sum_layers(frob(W))"
CHEAP = "params,flops,grad_norm,synflow,nwot"
# Small official TNB101 archs (1.0-2.3 M parameters with a 100-way head).
TNB_ARCHS = {
    "micro": ["64-41414-1_02_100", "64-41414-2_10_021", "64-41414-1_12_011", "64-41414-1_11_120",
              "64-41414-2_02_201"],
    "macro": ["64-1114-basic", "64-1312-basic", "64-3132-basic", "64-11132-basic", "64-31314-basic"],
}


# --------------------------------------------------------------------- fixture files


def write_nds_cells(path: Path, family: str, n: int, width: int, depth: int = 3, seed: int = 0) -> Path:
    """An NDS sweep of ``n`` random cells in the data.zip schema (list of job summaries)."""
    rng = random.Random(seed)
    entries = []
    for j in range(n):
        net = random_cell_config(family, rng, width=width, depth=depth)
        err = 30.0 - 2.0 * sum(op.startswith(("sep", "dil")) for op, _ in net["genotype"]["normal"]) + rng.random()
        entries.append({"job_id": 100 + j, "rng_seed": 1, "params": 0, "flops": 0, "net": net,
                        "optim": {"base_lr": 0.1}, "train_ep_top1": [70.0, err - 3],
                        "test_ep_top1": [75.0, err + 2, err], "min_test_top1": err - 0.5})
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("spaces")
    out = {
        "nds_darts": write_nds_cells(root / "DARTS.json", "darts", 8, width=16),
        "nds_resnext-b": nds_fixture(root / "ResNeXt-B.json", n=8, seed=3),
        "nds_darts_in": write_nds_cells(root / "DARTS_in.json", "darts", 6, width=16, seed=1),
        "tnb101_micro_json": write_tnb101_json(root / "zc_transbench101_micro.json", "micro"),
        "tnb101_macro_json": write_tnb101_json(root / "zc_transbench101_macro.json", "macro"),
        "tnb101_pth": write_tnb101_pth(root / "transnas-bench_v10141024.pth"),
        "cifar": write_cifar10(root / "cifar"),
    }
    return out


def tnb101_accuracy(arch: str, task: str) -> float:
    """Synthetic: more parameters help, plus a fixed per-arch offset."""
    return 30.0 + tnb101.analytic_params(arch, 100) / 1e5 + (sum(map(ord, arch + task)) % 7)


def naslib_code(arch: str) -> str:
    """NAS-Bench-Suite-Zero's key: '64-41414-1_02_100' -> '(1, 0, 2, 1, 0, 0)', '64-1114-basic' -> '(1, 1, 1, 4, 0, 0)'."""
    part = arch.split("-")[1 if arch.endswith("basic") else 2].replace("_", "")
    return str(tuple(int(c) for c in part.ljust(6, "0")))


def write_tnb101_json(path: Path, space: str) -> Path:
    """NAS-Bench-Suite-Zero's zc_transbench101_<space>.json layout, both class tasks."""
    data = {t: {naslib_code(a): {"val_accuracy": tnb101_accuracy(a, t), "params": {"score": 1.0, "time": 0.1}}
                for a in TNB_ARCHS[space]} for t in ("class_scene", "class_object")}
    assert all(tnb101.canonical(k, space) in TNB_ARCHS[space] for k in data["class_scene"])
    path.write_text(json.dumps(data))
    return path


def write_tnb101_pth(path: Path) -> Path:
    """The official API file's layout (plain containers), both class tasks, 5 archs per space."""
    metrics = {t: ["train_top1", "valid_top1", "valid_loss", "test_top1", "time_elapsed"]
               for t in ("class_object", "class_scene")}
    data = {}
    for space in ("micro", "macro"):
        data[space] = {}
        for i, arch in enumerate(TNB_ARCHS[space]):
            per_task = {}
            for t in ("class_object", "class_scene"):
                best = tnb101_accuracy(arch, t)
                per_task[t] = {"total_epochs": 3, "model_info": {"model_params": 1.0 + i},
                               "metrics": {"train_top1": [10.0, 20.0, 30.0], "valid_top1": [5.0, best, best - 1],
                                           "valid_loss": [3.0, 2.0, 1.0], "test_top1": [1.0, 2.0, 3.0 + i],
                                           "time_elapsed": [1, 2, 3]}}
            data[space][arch] = per_task
    torch.save({"metrics_dict": metrics, "info_names": ["model_params"], "task_list": list(metrics),
                "data": data}, path)
    return path


def write_cifar10(root: Path) -> Path:
    """A CIFAR-10 python-version folder with one 16-image training batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (16, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [i % 10 for i in range(16)], b"data": images}
    (folder / "data_batch_1").write_bytes(py2_pickle(batch))
    return root


# --------------------------------------------------------------------- checks


def read_csv(path: Path):
    lines = path.read_text().splitlines()
    header = [ln[2:] for ln in lines if ln.startswith("# ")]
    rows = list(csv.DictReader(io.StringIO("\n".join(ln for ln in lines if not ln.startswith("#")))))
    return header, rows


def check_bench(out: Path, space: str, datasets: dict, proxies: list, archs: int, trials: int,
                header_has: list) -> dict:
    """The three files exist; one CSV row per proxy and dataset; finite correlations; a truthful header."""
    md_path, csv_path, scores_path = (Path(f"{out}.md"), Path(f"{out}.csv"),
                                      out.with_name(out.name + ".scores.json"))
    assert md_path.exists() and csv_path.exists() and scores_path.exists()
    md = md_path.read_text()
    assert md.startswith(f"# Zero-cost proxies on {space}\n")
    for text in [f"space: {space}; ground truth: "] + header_has:
        assert text in md, text
    header, rows = read_csv(csv_path)
    assert any(h.startswith(f"space: {space};") for h in header)
    assert [(r["proxy"], r["dataset"]) for r in rows] == [(p, d) for p in proxies for d in datasets]
    for r in rows:
        assert r["target"] == datasets[r["dataset"]]
        assert (int(r["archs"]), int(r["trials"]), int(r["invalid"])) == (archs, trials, 0)
        for m in ("kendall", "spearman"):
            v = float(r[f"{m}_mean"])
            assert math.isfinite(v) and -1.0 <= v <= 1.0, (r["proxy"], r["dataset"], m, v)
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + len(proxies)  # column header + one row per proxy
    data = json.loads(scores_path.read_text())
    assert set(data) == set(datasets)
    for ds in datasets:
        for key, entry in data[ds].items():
            assert math.isfinite(entry["val_accuracy"])
            for p in proxies:
                assert math.isfinite(entry[p]["score"]) and entry[p]["score"] != -1e8, (ds, key, p)
    sidecar = json.loads(scores_path.with_name(scores_path.name + ".protocol.json").read_text())
    assert sidecar["space"] == space
    return data


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


# --------------------------------------------------------------------- NDS


@pytest.mark.parametrize("space, first, inp, archs", [
    ("nds_darts", 7, "cifar10", "5"),
    ("nds_resnext-b", None, "cifar10", "5"),
    ("nds_darts_in", None, "noise", "all"),
])
def test_bench_nds(files, tmp_path, capsys, space, first, inp, archs):
    bench = f"nds:{files[space]}" + (f":first={first}" if first else "")
    input_arg = f"cifar10:{files['cifar']}" if inp == "cifar10" else "noise"
    out = tmp_path / "tab"
    trials = 2 if archs != "all" else 1
    run_cli(["bench", FORMULA, "--space", space, "--benchmark", bench, "--baselines", CHEAP,
             "--archs", archs, "--trials", str(trials), "--batch", "4", "--input", input_arg,
             "--out", str(out), "--cache-dir", str(tmp_path / "c")], capsys)
    ds = "imagenet" if space.endswith("_in") else "cifar10"
    size = "224x224" if ds == "imagenet" else "32x32"
    classes = 1000 if ds == "imagenet" else 10
    has = [f"{ds}: column `final`", "100 - test_ep_top1[-1]", f"net with {classes} classes, {size} input",
           "5 random archs x 2 trials" if archs != "all" else "all archs with a ground-truth value", "batch 4"]
    if inp == "cifar10":
        has += [f"input: cifar10:{files['cifar']}",
                f"{ds}: the benchmark trained on 32x32 CIFAR-10 images; here its nets see these images at "
                "32x32, normalised with cifar10 mean/std"]
    else:
        has += ["input: noise", f"{ds}: the benchmark trained on 224x224 ImageNet images; here its nets see "
                                "noise at 224x224"]
    if first:
        has.append(f"first={first}")
    if space == "nds_resnext-b":
        has.append("pycls' init_weights")
    n = 5 if archs != "all" else len(json.loads(files[space].read_text()))
    data = check_bench(out, space, {ds: "final"}, CHEAP.split(",") + [FORMULA], n, trials, has)
    # arch keys are the space's canonical strings, and the heads have the dataset's class count
    key = next(iter(data[ds]))
    net = get_space(space).build(key, classes).eval()
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, classes)


def test_score_nds(files, tmp_path, capsys):
    darts = files["nds_darts"]
    entries = json.loads(darts.read_text())
    archs_file = tmp_path / "archs.txt"  # any accepted encoding: the nets as stored, not canonical
    archs_file.write_text("\n".join(json.dumps(e["net"], indent=None) for e in entries[:4]) + "\n")
    out = run_cli(["score", "synflow", "--benchmark", f"nds:{darts}", "--archs", str(archs_file),
                   "--batch", "4", "--input", f"cifar10:{files['cifar']}", "--scores", str(tmp_path / "s.json"),
                   "--json"], capsys)
    rep = json.loads(out)
    assert (rep["space"], rep["dataset"], rep["target"], rep["num_classes"], rep["resolution"]) == \
        ("nds_darts", "cifar10", "final", 10, 32)
    assert rep["archs"] == 4 and all(-1 <= rep[m][0] <= 1 for m in ("kendall", "spearman"))
    out = run_cli(["score", FORMULA, "--space", "nds_darts", "--benchmark", f"nds:{darts}:first=6",
                   "--target", "best", "--batch", "4", "--scores", str(tmp_path / "f.json"),
                   "--cache-dir", str(tmp_path / "c")], capsys)
    assert f"{FORMULA} on nds_darts cifar10 (best; 10-class net, 32x32 noise input), 6 archs" in out
    assert "spearman" in out


def test_errors(files, tmp_path, capsys):
    darts = f"nds:{files['nds_darts']}"
    cases = [
        (["score", "params", "--space", "nds_resnet", "--benchmark", darts], "holds nds_darts archs, not nds_resnet"),
        (["score", "params", "--benchmark", darts, "--dataset", "cifar100"], "unknown dataset 'cifar100' for space"),
        (["bench", "--benchmark", f"tnb101:{files['tnb101_micro_json']}", "--target", "class_object.params",
          "--baselines", "params"], "give one dataset"),
        # a missing NDS file is an error, not a silent fall-back to the NB201 default benchmark
        (["bench", "--benchmark", f"nds:{tmp_path / 'DARTS.json'}", "--baselines", "params"], "not found"),
        (["score", "params", "--benchmark", darts, "--target", "nope"], "unknown target 'nope'; available: final"),
    ]
    for argv, message in cases:
        assert main(argv + ["--out" if argv[0] == "bench" else "--scores", str(tmp_path / "x")]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gpproxy: error:") and message in err[0], (message, err)


# --------------------------------------------------------------------- TransNAS-Bench-101


@pytest.mark.parametrize("space, kind", [("tnb101_micro", "json"), ("tnb101_macro", "json"),
                                         ("tnb101_micro", "pth"), ("tnb101_macro", "pth")])
def test_bench_tnb101(files, tmp_path, capsys, space, kind):
    which = space.split("_")[1]
    bench = f"tnb101:{files[f'{space}_json']}" if kind == "json" else f"tnb101:{files['tnb101_pth']}:space={which}"
    proxies = "params,flops,synflow,nwot"
    out = tmp_path / "tab"
    run_cli(["bench", FORMULA, "--space", space, "--benchmark", bench, "--datasets", "class_object,class_scene",
             "--baselines", proxies, "--archs", "all", "--batch", "4", "--resolution", "32", "--input", "noise",
             "--out", str(out), "--cache-dir", str(tmp_path / "c")], capsys)
    metric = "val_accuracy" if kind == "json" else "valid_top1"
    datasets = {t: f"{t}.{metric}" for t in ("class_object", "class_scene")}
    has = [f"class_object: column `class_object.{metric}`", f"class_scene: column `class_scene.{metric}`",
           "net with 100 classes, 32x32 input (--resolution; the benchmark's is 256x256)",
           "net with 63 classes, 32x32 input", "all archs with a ground-truth value",
           "input: noise", "the benchmark trained on 256x256 Taskonomy RGB images; here its nets see noise at 32x32",
           "the official TNB101 init"]
    data = check_bench(out, space, datasets, proxies.split(",") + [FORMULA], 5, 1, has)
    for key in data["class_object"]:  # a 100-way head has more parameters than a 63-way one
        assert data["class_object"][key]["params"]["score"] > data["class_scene"][key]["params"]["score"]
        assert key == tnb101.canonical(key, which)


def test_score_tnb101(files, tmp_path, capsys):
    out = run_cli(["score", "nwot", "--benchmark", f"tnb101:{files['tnb101_macro_json']}", "--dataset",
                   "class_scene", "--batch", "4", "--resolution", "32", "--scores", str(tmp_path / "s.json"),
                   "--json"], capsys)
    rep = json.loads(out)
    assert (rep["space"], rep["dataset"], rep["target"], rep["num_classes"], rep["resolution"]) == \
        ("tnb101_macro", "class_scene", "class_scene.val_accuracy", 63, 32)
    assert rep["archs"] == 5 and all(-1 <= rep[m][0] <= 1 for m in ("kendall", "spearman"))
    out = run_cli(["score", "params", "--benchmark", f"tnb101:{files['tnb101_pth']}", "--batch", "4",
                   "--resolution", "32", "--scores", str(tmp_path / "p.json")], capsys)  # default: class_object
    assert "params on tnb101_micro class_object (class_object.valid_top1; 100-class net" in out


def test_bench_tnb101_native_resolution(files, tmp_path, capsys):
    """Without --resolution the nets see the benchmark's 256x256 input."""
    out = tmp_path / "tab"
    run_cli(["bench", "--benchmark", f"tnb101:{files['tnb101_pth']}:space=macro", "--datasets", "class_scene",
             "--baselines", "params,flops,nwot", "--archs", "3", "--trials", "1", "--batch", "4",
             "--input", "noise", "--out", str(out)], capsys)
    has = ["class_scene: column `class_scene.valid_top1`", "net with 63 classes, 256x256 input\n",
           "here its nets see noise at 256x256"]
    data = check_bench(out, "tnb101_macro", {"class_scene": "class_scene.valid_top1"}, ["params", "flops", "nwot"],
                       3, 1, has)
    key = next(iter(data["class_scene"]))
    assert data["class_scene"][key]["flops"]["score"] > 1000  # MFLOPs of a 256x256 image, not a 32x32 one
