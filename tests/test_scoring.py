"""`gpproxy score` / `gpproxy bench`: proxy kinds, engine-equal formula scores, JSON layout, tables."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gpproxy import scoring
from gpproxy.cli import main
from gpproxy.errors import DataError, GpproxyError
from gpproxy.scoring import Protocol, resolve_proxy, run_bench, run_score, suite_key, trial_indices
from gpproxy.spaces import nb201

from .conftest import shared_file, synthetic_accuracy

FORMULA = "sum_layers(frob(mul(W, dW)))"
PROT = Protocol(batch=4, seed=0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def table3(tmp_path_factory) -> Path:
    """A 30-arch NB201 table with the three columns the bench reads."""
    archs = [nb201.format_arch(nb201.index_to_arch(i)) for i in range(7, 15625, 15625 // 30)][:30]
    lines = ["nb201_index,arch_str,cifar10valid_valid,cifar100_test,imagenet16_120_test"]
    for a in archs:
        s = synthetic_accuracy(a)
        lines.append(f"{nb201.arch_to_index(nb201.parse_arch(a))},{a},{s!r},{s / 1.5!r},{s / 2.5!r}")
    path = tmp_path_factory.mktemp("t3") / "nb201_three.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _module(tmp_path, body: str, name="proxy_mod.py") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def test_resolve_proxy_kinds(tmp_path):
    assert resolve_proxy("synflow").kind == "baseline"
    f = resolve_proxy("sum_layers( frob(W) )")
    assert (f.kind, f.name) == ("formula", "sum_layers(frob(W))")
    m = resolve_proxy(str(_module(tmp_path, "def score(net, inputs, targets):\n    return 1.0\n")))
    assert m.kind == "module" and m.name.startswith("proxy_mod@")  # keyed by content, not file name
    other = resolve_proxy(str(_module(tmp_path / "b", "def score(net, inputs, targets):\n    return 2.0\n")))
    assert other.name != m.name
    for text, msg in [("frob((", "not a baseline"), (str(tmp_path / "none.py"), "does not exist"),
                      (str(_module(tmp_path, "x = 1\n", "noscore.py")), "defines no score"),
                      (str(_module(tmp_path, "raise ValueError('boom')\n", "bad.py")), "fails to import")]:
        with pytest.raises(GpproxyError, match=msg):
            resolve_proxy(text)


def test_formula_scores_equal_the_engine(table3, tmp_path):
    from gpproxy.evaluator import EvalContext, EvalSpec, TaskEval
    from gpproxy.formula import parse_formula
    from gpproxy.pack import load_pack

    rep = run_score(FORMULA, str(table3), archs=6, protocol=PROT, scores_path=tmp_path / "s.json",
                    cache_root=tmp_path / "caches", log=lambda m: None)
    data = json.loads((tmp_path / "s.json").read_text())["cifar10"]
    (root,) = list((tmp_path / "caches").iterdir())
    archs = json.loads((root / "cache.json").read_text())["archs"]
    ctx = EvalContext(EvalSpec("default", (TaskEval("t", str(root), tuple(archs), tuple([0.0] * len(archs))),)))
    engine = ctx.scores(parse_formula(FORMULA, load_pack("default")), "t")
    ours = [data[suite_key("nb201", a)][FORMULA]["score"] for a in archs]
    assert np.allclose(ours, engine, rtol=1e-6) and rep["archs"] == 6


def test_json_layout_resume_and_protocol_check(table3, tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    first = run_score("params", str(table3), archs=5, protocol=PROT, scores_path=path, log=lambda m: None)
    data = json.loads(path.read_text())
    (arch_key, entry), *_ = data["cifar10"].items()
    assert arch_key.startswith("(") and set(entry["params"]) == {"score", "time"} and "val_accuracy" in entry
    monkeypatch.setattr(scoring, "score_arch", lambda *a, **k: pytest.fail("recomputed a stored score"))
    again = run_score("params", str(table3), archs=5, protocol=PROT, scores_path=path, log=lambda m: None)
    assert again["spearman"] == first["spearman"]
    with pytest.raises(GpproxyError, match="batch=4"):
        run_score("params", str(table3), archs=5, protocol=Protocol(batch=8), scores_path=path)


def test_trials_and_invalid_scores(table3, tmp_path):
    t = trial_indices(30, 8, 3, seed=5)
    assert len(t) == 3 and all(len(i) == 8 for i in t) and np.array_equal(t[0], trial_indices(30, 8, 1, 5)[0])
    mod = _module(tmp_path, "calls = [0]\ndef score(net, inputs, targets):\n    calls[0] += 1\n"
                            "    return float('nan') if calls[0] % 2 else float(sum(p.numel() for p in net.parameters()))\n")
    rep = run_score(str(mod), str(table3), archs=8, trials=3, protocol=PROT, scores_path=tmp_path / "s.json",
                    log=lambda m: None)
    assert rep["trials"] == 3 and rep["invalid"] >= 1
    scores = json.loads((tmp_path / "s.json").read_text())["cifar10"]
    assert all(math.isfinite(v[rep["proxy"]]["score"]) for v in scores.values())  # NaN stored as -1e8


def test_bench_three_datasets(table3, tmp_path):
    npz = shared_file("images", "cifar_foolbox_samples.npz")
    prot = Protocol(batch=4, seed=0, input=f"npz:{npz}:cifar10_x")
    res = run_bench([FORMULA], str(table3), archs=5, trials=2, protocol=prot, out=tmp_path / "b",
                    baselines=["params", "flops"], cache_root=tmp_path / "caches", log=lambda m: None)
    md = Path(res["markdown"]).read_text()
    for text in ("`cifar10valid_valid`", "`cifar100_test`", "`imagenet16_120_test`", "5 random archs x 2 trials",
                 "batch 4", "downsampled to 16x16", f"`{FORMULA}`", "± "):
        assert text in md, text
    rows = [ln for ln in Path(res["csv"]).read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(rows) == 1 + 3 * 3
    data = json.loads(Path(res["scores"]).read_text())
    key = next(iter(data["ImageNet16-120"]))
    c10, in16 = data["cifar10"][key], data["ImageNet16-120"][key]
    assert in16["params"]["score"] > c10["params"]["score"]  # 120-way classifier
    assert in16["flops"]["score"] < c10["flops"]["score"]  # 16x16 input


def test_bench_falls_back_to_analog_nasbench(tmp_path):
    from gpproxy.benchmarks import analog_data_path
    from gpproxy.errors import DataError

    try:
        analog_data_path()
    except DataError:
        pytest.skip("analog-nasbench not installed")
    res = run_bench([], str(tmp_path / "missing.csv.gz"), archs=3, trials=1, protocol=PROT,
                    out=tmp_path / "b", baselines=["params"], log=lambda m: None)
    assert any("fell back to analog-nasbench" in n for n in res["notes"])
    assert list(res["results"]) == ["cifar10"]
    assert "fell back to analog-nasbench" in Path(res["markdown"]).read_text()


def test_cli(table3, tmp_path, capsys):
    assert main(["score", "params", "--benchmark", str(table3), "--archs", "4", "--batch", "4",
                 "--scores", str(tmp_path / "s.json")]) == 0
    assert "spearman" in capsys.readouterr().out
    assert main(["bench", "--benchmark", str(table3), "--baselines", "params,flops", "--archs", "4",
                 "--trials", "2", "--batch", "4", "--datasets", "cifar10", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b.md").exists() and (tmp_path / "b.csv").exists()
    capsys.readouterr()
    assert main(["score", "frob((", "--benchmark", str(table3)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpproxy: error:")
    assert main(["bench", "--baselines", "nope", "--benchmark", str(table3)]) == 2


def test_per_arch_seed_protocol(table3, tmp_path):
    """NASLib's protocol: each arch its own init and minibatch, from a stable hash of the arch."""
    p = Protocol(batch=4, seed=3, per_arch_seed=True)
    a, b = nb201.format_arch(nb201.index_to_arch(0)), nb201.format_arch(nb201.index_to_arch(1))
    assert p.seed_for(a) == Protocol(batch=4, seed=3, per_arch_seed=True).seed_for(a) != p.seed_for(b)
    assert Protocol(seed=3).seed_for(a) == 3
    rep = run_score("synflow", str(table3), archs=4, protocol=p, scores_path=tmp_path / "s.json",
                    log=lambda m: None)
    assert rep["protocol"]["per_arch_seed"] is True
    with pytest.raises(GpproxyError, match="one seed"):
        run_score(FORMULA, str(table3), archs=4, protocol=p, scores_path=tmp_path / "f.json",
                  cache_root=tmp_path / "c", log=lambda m: None)


def test_score_store_says_where_and_what_it_reused(table3, tmp_path, capsys):
    args = ["score", "params", "--benchmark", str(table3), "--archs", "4", "--batch", "4",
            "--cache-dir", str(tmp_path / "c")]
    assert main(args) == 0
    out = capsys.readouterr().out
    store, = (tmp_path / "c").glob("scores-nb201-????????.json")
    assert f"per-arch scores: {store} (0 of them reused" in out
    assert "P@50" not in out and "top50" not in out and "top10pct" not in out  # 4 archs: no top-k
    assert main(args) == 0
    assert "(4 of them reused" in capsys.readouterr().out
    side = json.loads(store.with_name(store.name + ".protocol.json").read_text())
    (ds, src), = side["labels"].items()
    assert str(table3) in src["benchmark"] and src["target"]
    assert main(args[:-4] + ["--batch", "8", "--cache-dir", str(tmp_path / "c")]) == 0  # another protocol:
    assert "(0 of them reused" in capsys.readouterr().out  # its own store, not a refusal of the first one
    assert len(list((tmp_path / "c").glob("scores-nb201-????????.json"))) == 2


def test_val_accuracy_only_from_the_suites_own_label(table3, tmp_path):
    path = tmp_path / "s.json"
    run_score("params", str(table3), archs=3, protocol=PROT, scores_path=path, target="cifar100_test",
              log=lambda m: None)
    data = json.loads(path.read_text())
    assert all("val_accuracy" not in e for e in data["cifar10"].values())  # --target: not the suite's label


def test_a_gz_score_store_is_gzip_on_disk_and_reads_back(tmp_path):
    import gzip
    import json

    from gpproxy.errors import DataError
    from gpproxy.scoring import Protocol
    from gpproxy.scoring.store import ScoreStore

    protocol = Protocol(space="nb201", batch=16, seed=0, input="noise")
    store = ScoreStore(tmp_path / "s.scores.json.gz", protocol)
    store.put("cifar10", "(1, 2)", "synflow", 3.5, 0.25)
    store.put("cifar10", "(1, 2)", "nwot", float("nan"), 0.1)
    store.save()
    on_disk = json.loads(gzip.decompress((tmp_path / "s.scores.json.gz").read_bytes()))
    assert on_disk == store.data
    again = ScoreStore(tmp_path / "s.scores.json.gz", protocol)
    assert again.get("cifar10", "(1, 2)", "synflow") == {"score": 3.5, "time": 0.25}
    assert again.get("cifar10", "(1, 2)", "nwot")["score"] == -1e8  # NASLib's rule for NaN
    (tmp_path / "s.scores.json.gz").write_bytes(gzip.compress(b'{"cifar10": {')[:-6])  # truncated
    with pytest.raises(DataError, match="unreadable"):
        ScoreStore(tmp_path / "s.scores.json.gz", protocol)


def test_two_stores_on_one_file_merge_their_saves(tmp_path):
    """Processes scoring disjoint archs into one store (transfer.py --shard) lose nothing:
    each save takes in what the other saved since it opened the file."""
    from gpproxy.scoring.store import ScoreStore

    protocol = Protocol(space="nb201", batch=16, seed=0, input="noise")
    path = tmp_path / "shared.scores.json.gz"
    a, b = ScoreStore(path, protocol), ScoreStore(path, protocol)
    a.put("cifar10", "arch-a", "synflow", 1.0, 0.1)
    b.put("cifar10", "arch-b", "synflow", 2.0, 0.1)
    b.put("cifar10", "arch-a", "jacov", 3.0, 0.1)
    a.save()
    b.save()
    a.put("cifar10", "arch-a", "synflow", 5.0, 0.1)  # a's own score wins over what it merges
    a.save()
    back = ScoreStore(path, protocol)
    assert back.get("cifar10", "arch-a", "synflow")["score"] == 5.0
    assert back.get("cifar10", "arch-a", "jacov")["score"] == 3.0
    assert back.get("cifar10", "arch-b", "synflow")["score"] == 2.0


def _nb201_csv(tmp_path, rows: str):
    path = tmp_path / "gt.csv"
    path.write_text("arch,acc\n" + rows)
    return path


def test_truth_says_how_many_archs_lack_a_finite_accuracy(tmp_path):
    from gpproxy.scoring.truth import load_truth

    truth = load_truth(str(_nb201_csv(tmp_path, "0,1.0\n1,inf\n2,nan\n3,2.0\n4,\n")), target="acc", space="nb201", datasets=["cifar10"])
    assert any("3 of 5 archs have no finite 'acc' value" in n for n in truth.notes), truth.notes


@pytest.mark.parametrize("target, words", [(None, ["no default target", "not numeric: acc (row 3: 'x')"]),
                                           ("acc", ["target column 'acc' is not numeric (row 3: 'x')"])])
def test_a_column_with_a_word_in_it_is_named_with_its_cell(tmp_path, target, words):
    from gpproxy.scoring.truth import load_truth

    with pytest.raises(DataError) as e:
        load_truth(str(_nb201_csv(tmp_path, "0,1.0\n1,x\n3,2.0\n")), target=target, space="nb201", datasets=["cifar10"])
    for w in words:
        assert w in str(e.value), str(e.value)


def test_a_constant_score_is_reported_as_no_ranking_without_warnings():
    import warnings

    from gpproxy.scoring.metrics import report, summarize

    acc = np.arange(30.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reps = [report(np.ones(30), acc), report(acc.copy(), acc)]
        out = summarize(reps)
        lone = summarize(reps[:1])
    assert reps[0]["constant"] == 1 and np.isnan(reps[0]["kendall"])
    assert out["constant"] == 1 and out["kendall"][0] == pytest.approx(1.0)
    assert lone["constant"] == 1 and np.isnan(lone["kendall"][0])
