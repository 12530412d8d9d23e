"""A user's search space file drives every command: cache, describe, evolve (beside an
NB201 task), resume, inspect, export, score and bench; bad space files and tables get
one error line naming the problem."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from gpproxy.cli import main
from gpproxy.rundir import read_csv
from gpproxy.spaces import get_space

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "user_space"
SPACE = FIXTURES / "tiny_space.py"
TABLE = FIXTURES / "tiny_space_accuracy.csv"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cli(*args) -> int:
    return main([str(a) for a in args])


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _toml_task(**kw) -> str:
    return "[[task]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in kw.items())


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_table):
    """One evolution over the user space beside an NB201 task (population 8, 2 generations)."""
    tmp = tmp_path_factory.mktemp("user_run")
    probe = dict(batch=4, act_features=16, weight_rows=8, weight_cols=16, storage="float32")
    config = tmp / "user.toml"
    config.write_text(
        'name = "user"\nseed = 1\ndevice = "cpu"\n'
        '[search]\npopulation = 8\ngenerations = 2\ninit_max_height = 4\nmax_height = 7\n'
        'backend = "serial"\njobs = 1\nhall_of_fame = 5\n'
        + _toml_task(name="tiny", space=str(SPACE), benchmark=str(TABLE), target="acc", search_archs=12,
                     heldout_archs=8, cache=str(tmp / "cache_user"), **probe)
        + _toml_task(name="nb201", benchmark=str(tiny_table), target="acc", search_archs=12, heldout_archs=8,
                     cache=str(tmp / "cache_nb201"), **probe))
    out = tmp / "run"
    assert cli("evolve", config, "--out", out) == 0
    return tmp, out


def test_space_protocol_of_a_file():
    space = get_space(str(SPACE))
    assert space.name == str(SPACE) and space.slug == "tiny_space"
    archs = space.archs()
    assert len(archs) == 27 and space.canonical(" W8-D2-K3 ") == "w8-d2-k3" and space.key("w8-d2-k3") == "w8-d2-k3"
    assert space.key("a b/c").startswith("arch-")
    assert space.fingerprint()["sha256"] and space.suite_key("w8-d2-k3") == "w8-d2-k3"
    assert list(space.datasets()) == ["default"] and space.dataset_for(10).normalisation == "cifar10"
    assert not space.channels_last("cpu")
    net = space.build("w8-d2-k3", 5)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


def test_cache_and_describe(tmp_path, capsys):
    out = tmp_path / "c"
    assert cli("cache", "--space", SPACE, "--benchmark", TABLE, "--archs", "6", "--batch", "4", "--jobs", "1",
               "--out", out) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["archs"] == 6 and printed["target"] == "acc"
    manifest = json.loads((out / "cache.json").read_text())
    assert manifest["spec"]["space"] == str(SPACE)
    assert manifest["space_file"]["sha256"] == get_space(str(SPACE)).fingerprint()["sha256"]
    # an edited copy of the file is another space version: never mixed into this cache
    edited = tmp_path / "tiny_space.py"
    edited.write_text(SPACE.read_text() + "\n# edited\n")
    shutil.copytree(out, tmp_path / "c2")
    m2 = json.loads((tmp_path / "c2" / "cache.json").read_text())
    m2["spec"]["space"] = str(edited)
    (tmp_path / "c2" / "cache.json").write_text(json.dumps(m2))
    assert cli("cache", "--space", edited, "--benchmark", TABLE, "--archs", "6", "--batch", "4", "--jobs", "1",
               "--out", tmp_path / "c2") == 2
    assert "another version" in capsys.readouterr().err

    assert cli("describe", SPACE, "w8-d2-k3", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    net = get_space(str(SPACE)).build("w8-d2-k3", 10)
    assert info["params"] == sum(p.numel() for p in net.parameters())
    assert info["n_layers"] == 3 and info["arch"] == "w8-d2-k3" and info["flops"] > 0


def test_evolve_resume_inspect(run, capsys):
    tmp, out = run
    cfg = json.loads((out / "config.json").read_text())
    assert [t["space"] for t in cfg["tasks"]] == [str(SPACE), "nb201"]
    before = (out / "pareto.csv").read_text()
    assert cli("resume", out) == 0
    assert (out / "pareto.csv").read_text() == before
    capsys.readouterr()
    assert cli("inspect", out, "--json") == 0
    front = json.loads(capsys.readouterr().out)["front"]
    assert front and any(r["selected"] for r in front)
    assert any(task.startswith("tiny") and "kendall" in m for task, m in front[0]["heldout"].items())


def test_export_score_bench(run, tmp_path, capsys):
    from gpproxy.cache import load_input, open_cache
    from gpproxy.formula import FormulaEval, parse_formula
    from gpproxy.pack import load_pack
    from gpproxy.statset import load_statset

    tmp, out = run
    proxy = tmp_path / "user_proxy.py"
    assert cli("export", out, "-o", proxy) == 0
    formula = next(r for r in read_csv(out / "pareto.csv") if r["selected"] == "1")["formula"]
    mod = _import(proxy)
    cache = open_cache(tmp / "cache_user")
    archs = cache.archs()[:3]
    pack = load_pack("default")
    engine = FormulaEval(pack)(parse_formula(formula, pack), load_statset(cache, archs)).tolist()
    x, y, _ = load_input(cache.spec)
    space = get_space(str(SPACE))
    direct = []
    for arch, want in zip(archs, engine):
        torch.manual_seed(cache.spec.seed)
        direct.append(mod.score(space.build(arch, 10), x, y))
        assert direct[-1] == pytest.approx(want, rel=2e-3, abs=1e-4), arch

    arch_file = tmp_path / "archs.txt"
    arch_file.write_text("\n".join(archs) + "\n")
    scores = tmp_path / "scores.json"
    capsys.readouterr()
    assert cli("score", proxy, "--benchmark", TABLE, "--space", SPACE, "--archs", arch_file, "--batch", "4",
               "--scores", scores, "--cache-dir", tmp_path / "sc", "--json") == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["space"] == str(SPACE) and rep["dataset"] == "default" and rep["target"] == "acc"
    data = json.loads(scores.read_text())["default"]
    assert rep["proxy"].startswith("user_proxy@")  # keyed by the module's content
    assert [data[a][rep["proxy"]]["score"] for a in archs] == pytest.approx(direct, rel=1e-5)
    # the formula string itself, through a statistics cache of the score protocol
    assert cli("score", formula, "--benchmark", TABLE, "--space", SPACE, "--archs", arch_file, "--batch", "4",
               "--scores", tmp_path / "s2.json", "--cache-dir", tmp_path / "sc") == 0
    assert list((tmp_path / "sc").iterdir())[0].name.startswith("tiny_space-default-")

    assert cli("bench", "--baselines", "params,grad_norm", "--benchmark", TABLE, "--space", SPACE,
               "--archs", "8", "--trials", "2", "--batch", "4", "--out", tmp_path / "bench") == 0
    md = (tmp_path / "bench.md").read_text()
    assert "| params |" in md and "| grad_norm |" in md and f"space: {SPACE}" in md


# ----------------------------------------------------------------------------- bad spaces and tables

CASES = {
    "no_build": ("def archs():\n    return ['a']\n", None, ("describe", "{space}", "a"),
                 "defines no build(arch, num_classes)"),
    "import_error": ("import no_such_module_here\n", None, ("describe", "{space}", "a"),
                     "fails to import: ModuleNotFoundError"),
    "build_raises": ("from torch import nn\ndef build(arch, num_classes):\n"
                     "    if arch == 'bad':\n        raise ValueError('no such width')\n"
                     "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))\n",
                     "arch,acc\ngood,1\nbad,2\nfine,3\n",
                     ("cache", "--space", "{space}", "--benchmark", "{table}", "--archs", "all", "--batch", "2",
                      "--jobs", "1", "--out", "{tmp}/c"),
                     "build('bad', 10) raised ValueError: no such width (the arch of row 3 of"),
    "forward_raises": ("from torch import nn\nclass Net(nn.Module):\n    def __init__(self, n):\n"
                       "        super().__init__()\n        self.fc = nn.Linear(3 * 32 * 32, n)\n"
                       "    def forward(self, x):\n        raise ValueError('odd input')\n"
                       "def build(arch, num_classes):\n    return Net(num_classes)\n",
                       "arch,acc\ngood,1\nfine,3\n",
                       ("cache", "--space", "{space}", "--benchmark", "{table}", "--archs", "all", "--batch", "2",
                        "--jobs", "1", "--out", "{tmp}/c"),
                       "raised ValueError: odd input"),
    "not_a_module": ("def build(arch, num_classes):\n    return [arch]\n", None, ("describe", "{space}", "a"),
                     "returned a list, not a torch.nn.Module"),
    "no_weight_layer": ("from torch import nn\ndef build(arch, num_classes):\n    return nn.Sequential(nn.ReLU())\n",
                        None, ("describe", "{space}", "a"), "no Conv2d or Linear layer"),
    "canonical_rejects": (None, "arch,acc\nw4-d1-k1,1\nwide-and-deep,2\n",
                          ("cache", "--space", "{space}", "--benchmark", "{table}", "--out", "{tmp}/c"),
                          "row 3: bad arch 'wide-and-deep'"),
    "not_in_archs": (None, "arch,acc\nw4-d1-k1,1\nw5-d1-k1,2\n",
                     ("cache", "--space", "{space}", "--benchmark", "{table}", "--out", "{tmp}/c"),
                     "row 3: bad arch 'w5-d1-k1' (arch 'w5-d1-k1' is not one of the archs()"),
    "duplicate_archs": (None, "arch,acc\nw4-d1-k1,1\nw8-d1-k1,2\nW4-D1-K1,3\n",
                        ("cache", "--space", "{space}", "--benchmark", "{table}", "--out", "{tmp}/c"),
                        "arch w4-d1-k1 appears in rows 2 and 4"),
    "text_target": (None, None,
                    ("cache", "--space", "{space}", "--benchmark", "{table}", "--target", "notes", "--out", "{tmp}/c"),
                    "target column 'notes' is not numeric (row 2: 'run411')"),
    "missing_file": ("", None, ("describe", "{tmp}/nope.py", "a"), "space file {tmp}/nope.py not found"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_user_space(case, tmp_path, capsys):
    source, table, argv, message = CASES[case]
    space, csv = SPACE, TABLE
    if source:
        space = tmp_path / f"{case}.py"
        space.write_text(source)
    if table:
        csv = tmp_path / f"{case}.csv"
        csv.write_text(table)
    fill = {"space": space, "table": csv, "tmp": tmp_path}
    assert cli(*(a.format(**fill) for a in argv)) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("gpproxy: error:")]
    assert len(errors) == 1, errors
    assert message.format(**fill) in errors[0]
