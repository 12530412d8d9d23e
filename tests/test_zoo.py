"""The proxy zoo: named entries usable wherever a formula is (score, bench, export)."""
import json

import pytest
import torch

from gpproxy import zoo
from gpproxy.errors import GpproxyError
from gpproxy.spaces import get_space
from tests.conftest import import_file


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """A zoo directory holding one entry, so the mechanism is tested apart from the shipped entries."""
    entry = {"name": "tiny", "formula": "sum_layers(frob(dW))", "pack": "default", "use": "tests",
             "protocol": {"batch": 4, "input": "noise", "seed": 0},
             "measured": {"nb201-c10": {"kendall": 0.5, "spearman": 0.6, "n": 10}},
             "source": "tests/test_zoo.py (fake_zoo, one entry)"}
    (tmp_path / "tiny.json").write_text(json.dumps(entry))
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setattr(zoo, "HERE", tmp_path)
    return tmp_path


def test_entry_and_errors(fake_zoo):
    assert zoo.names() == ["broken", "tiny"]
    e = zoo.entry("zoo:tiny")
    assert (e.formula, e.pack, e.label) == ("sum_layers(frob(dW))", "default", "zoo:tiny")
    with pytest.raises(GpproxyError, match="no zoo entry 'zoo:nope'; the zoo has: zoo:broken, zoo:tiny"):
        zoo.entry("zoo:nope")
    with pytest.raises(GpproxyError, match="zoo entry broken: unreadable"):
        zoo.entry("zoo:broken")


def test_zoo_proxy_scores_like_its_formula(fake_zoo, tmp_path):
    from gpproxy.scoring import Protocol, score_proxy
    from gpproxy.scoring.proxies import resolve_proxy

    p = resolve_proxy("zoo:tiny")
    assert (p.kind, p.name, p.pack) == ("formula", "sum_layers(frob(dW))", "default")
    archs = [get_space("nb201").all_archs()[i] for i in (5, 5000)]
    by_name = score_proxy("zoo:tiny", archs, protocol=Protocol(batch=4), cache_root=tmp_path / "c")
    by_formula = score_proxy("sum_layers(frob(dW))", archs, protocol=Protocol(batch=4), cache_root=tmp_path / "c")
    assert by_name.values.tolist() == by_formula.values.tolist()


def test_export_zoo_entry_writes_its_measurements(fake_zoo, tmp_path, capsys):
    from gpproxy.cli import main

    out = tmp_path / "tiny_proxy.py"
    assert main(["export", "zoo:tiny", "-o", str(out)]) == 0
    text = out.read_text()
    assert "zoo:tiny" in text and "Kendall tau 0.5" in text
    assert "(config tests/test_zoo.py (fake_zoo, one entry))" in " ".join(text.split())  # the source as written
    mod = import_file(out)
    torch.manual_seed(0)
    net = get_space("nb201").build(get_space("nb201").all_archs()[5], 10)
    assert torch.isfinite(torch.tensor(mod.score(net, torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))))
    assert main(["export", "--formula", "zoo:tiny", "--pack", "default", "-o", str(out)]) == 2
    assert "zoo entry exports on its own" in capsys.readouterr().err


def test_a_zoo_entry_is_scored_under_its_own_protocol_unless_told_otherwise(fake_zoo, tmp_path):
    """Batch and input size: given ones win; else the entry's (resolution: each dataset's own where it has none);
    else batch 64. The exported module says which minibatch its numbers were measured with."""
    from gpproxy.cli import main

    wide = json.loads((fake_zoo / "tiny.json").read_text())
    wide.update(name="wide", protocol={"batch": 8, "input": "noise", "seed": 0, "resolution": 24})
    (fake_zoo / "wide.json").write_text(json.dumps(wide))
    assert zoo.scoring_protocol("zoo:wide") == (8, 24)
    assert zoo.scoring_protocol("zoo:wide", batch=4, resolution=16) == (4, 16)
    assert zoo.scoring_protocol("zoo:tiny") == (4, None)
    assert zoo.scoring_protocol("sum_layers(frob(dW))") == zoo.scoring_protocol(None) == (64, None)
    assert zoo.scoring_protocol("synflow", resolution=40) == (64, 40)
    for bad, why in (({"batch": "8"}, 'protocol batch = "8" is not allowed'), ({"resolution": 0}, "resolution = 0"),
                     ([16], "protocol must be a JSON object, not list")):
        (fake_zoo / "bad.json").write_text(json.dumps({**wide, "name": "bad", "protocol": bad}))
        with pytest.raises(GpproxyError, match=f"zoo entry bad: {why}" if why.startswith("protocol") else why):
            zoo.scoring_protocol("zoo:bad")
    for name, words in (("wide", "batch 8, noise input, init seed 0, 24x24 inputs on every dataset"),
                        ("tiny", "batch 4, noise input, init seed 0, each dataset at its own input size")):
        out = tmp_path / f"{name}_proxy.py"
        assert main(["export", f"zoo:{name}", "-o", str(out)]) == 0
        assert f"Measured with {words}." in " ".join(out.read_text().split())


def test_the_cli_and_the_api_score_a_zoo_entry_at_its_input_size(fake_zoo, tmp_path, capsys):
    from gpproxy import api
    from gpproxy.cli import main
    from gpproxy.spaces import nb201

    wide = json.loads((fake_zoo / "tiny.json").read_text())
    wide.update(name="wide", protocol={"batch": 4, "input": "noise", "seed": 0, "resolution": 24})
    (fake_zoo / "wide.json").write_text(json.dumps(wide))
    archs = [nb201.format_arch(nb201.index_to_arch(i)) for i in (7, 5000, 9000)]
    table = tmp_path / "nb201.csv"
    table.write_text("nb201_index,arch_str,cifar10valid_valid\n" + "".join(
        f"{nb201.arch_to_index(nb201.parse_arch(a))},{a},{80.0 + i}\n" for i, a in enumerate(archs)))
    assert main(["score", "zoo:wide", "--benchmark", str(table), "--json", "--cache-dir", str(tmp_path / "c")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert (rep["resolution"], rep["protocol"]["batch"]) == (24, 4) and not any("zoo:" in n for n in rep["notes"])
    # told otherwise: scored so, and said so (the numbers are not the entry's table's)
    assert main(["score", "zoo:wide", "--benchmark", str(table), "--json", "--cache-dir", str(tmp_path / "c8"),
                 "--batch", "8", "--resolution", "32"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["resolution"] == 32 and ("zoo:wide's measured table used batch 4 (here 8) and 24x24 inputs (here "
                                        "32x32 inputs): its numbers here are not that table's") in rep["notes"]
    assert main(["bench", "zoo:wide", "--benchmark", str(table), "--baselines", "params", "--archs", "3",
                 "--batch", "4", "--out", str(tmp_path / "b"), "--cache-dir", str(tmp_path / "c4")]) == 0
    assert ("zoo:wide's measured table used 24x24 inputs (here each dataset's own input size)"
            in (tmp_path / "b.md").read_text())
    truth = {a: 80.0 + i for i, a in enumerate(archs)}
    at24 = api.score("zoo:wide", archs, ground_truth=truth, space="nb201", cache_dir=tmp_path / "c")
    at32 = api.score("zoo:wide", archs, ground_truth=truth, space="nb201", resolution=32, cache_dir=tmp_path / "c")
    assert at24.values.tolist() != at32.values.tolist()  # 24x24 nets, not each dataset's own 32x32


def test_shipped_entries_parse_and_carry_their_report():
    """zoo:nb201 and zoo:general exist, parse in their packs and hold the report's columns."""
    from gpproxy.formula import parse_formula
    from gpproxy.pack import load_pack

    assert {"general", "nb201"} <= set(zoo.names())
    for name in ("general", "nb201"):
        e = zoo.entry(f"zoo:{name}")
        assert str(parse_formula(e.formula, load_pack(e.pack))) == e.formula
        assert {k: e.protocol[k] for k in ("batch", "input", "seed")} == {"batch": 16, "input": "noise", "seed": 0}
        assert set(e.protocol) <= {"batch", "input", "seed", "resolution"}
        assert isinstance(e.protocol.get("resolution", 32), int)
        assert {"nb201-c10", "nb201-c100", "nb201-in16", "macro", "darts"} <= set(e.measured)
        for column in e.measured.values():
            assert -1 <= column["kendall"] <= 1 and column["n"] >= 2


def test_shipped_entries_export_to_modules_that_score_nb201_nets_as_the_engine_does(exact_cache, tmp_path):
    """Each shipped entry whose pack reads per-layer statistics only (zoo:nb201's product of searches
    among them) exports to a torch module equal to the engine on real NB201 nets."""
    from gpproxy.cache import load_input
    from gpproxy.export import export_formula
    from gpproxy.formula import FormulaEval, parse_formula
    from gpproxy.pack import load_pack
    from gpproxy.statset import load_statset

    cache, spec, archs = exact_cache
    x, y, _ = load_input(spec)
    checked = []
    for name in zoo.names():
        e = zoo.entry(f"zoo:{name}")
        pack = load_pack(e.pack)
        if pack.net_terminals:  # whole-network terms: the exact cache does not record them
            continue
        engine = FormulaEval(pack)(parse_formula(e.formula, pack), load_statset(cache, archs)).tolist()
        module = import_file(export_formula(e.formula, tmp_path / f"{name}.py", pack_name=e.pack,
                                            probe_cfg=spec.probe))
        for arch, want in zip(archs, engine):
            torch.manual_seed(spec.seed)
            assert module.score(get_space("nb201").build(arch, 10), x, y) == pytest.approx(want, rel=1e-4), name
        checked.append(name)
    assert "nb201" in checked
