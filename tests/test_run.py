"""gpproxy.Run over a run directory, the selection rule in one place, and the
Python API (evolve with overrides and in-memory ground truth)."""
import json

import pytest

import gpproxy
from gpproxy.config import as_config
from gpproxy.errors import GpproxyError
from gpproxy.selection import select, selection_rule
from tests.conftest import synthetic_accuracy, tiny_config


@pytest.fixture(scope="module")
def tiny_run(tiny_table, tiny_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs") / "r"
    return gpproxy.evolve(tiny_config(tiny_table, tiny_cache, generations=2), out=root, log=lambda m: None)


def test_run_object_reads_the_directory(tiny_run):
    run = gpproxy.Run.open(tiny_run.root)
    assert run.config.to_dict() == tiny_run.config.to_dict()
    assert [r["generation"] for r in run.log] == [0, 1, 2] and run.generations_done == 2
    front = run.front
    assert front and [c.rank for c in front] == list(range(len(front)))
    assert [c.size for c in front] == sorted(c.size for c in front)
    chosen = run.selected
    assert chosen is not None and sum(c.selected for c in front) == 1
    assert run.summary["selected"]["formula"] == chosen.formula
    assert chosen.heldout["t"]["kendall"] == pytest.approx(run.summary["heldout"]["selected"]["t"]["kendall"],
                                                           abs=1e-4)
    assert chosen.math and chosen.latex and chosen.latex != chosen.math
    assert run.selection_rule == selection_rule(run.config.search.select_tolerance) == run.summary["rule"]
    assert run.candidate() == chosen and run.candidate(0) == front[0]
    with pytest.raises(GpproxyError, match="ranks 0.."):
        run.candidate(len(front))


def test_run_export_scores_like_the_engine(tiny_run, tmp_path):
    import importlib.util

    path = tiny_run.export(tmp_path / "sel.py")
    spec = importlib.util.spec_from_file_location("sel_export", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.FORMULA == tiny_run.selected.formula
    doc = " ".join(mod.__doc__.split())  # the docstring's paragraphs are wrapped
    assert "found by gpproxy run r " in doc and "Held-out archs of t (" in doc
    assert "Kendall tau" in doc and "n = " in doc


def test_run_open_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(GpproxyError, match="not a gpproxy run directory"):
        gpproxy.Run.open(tmp_path)


def test_selection_rule_picks_smallest_within_tolerance():
    front = [{"formula": "a", "size": 2, "fitness": 0.50}, {"formula": "b", "size": 4, "fitness": 0.695},
             {"formula": "c", "size": 9, "fitness": 0.70}]
    assert select(front, 0.01)["formula"] == "b"
    assert select(front, 0.0)["formula"] == "c"
    assert select([], 0.01) is None


def test_config_override_revalidates_and_never_mutates(tiny_table, tiny_cache):
    cfg = tiny_config(tiny_table, tiny_cache)
    before = json.dumps(cfg.to_dict(), sort_keys=True)
    new = cfg.override(device="cpu", **{"search.generations": 7, "task.batch": 8})
    assert new.search.generations == 7 and new.tasks[0].batch == 8
    assert json.dumps(cfg.to_dict(), sort_keys=True) == before
    with pytest.raises(GpproxyError, match="population"):
        cfg.override(**{"search.population": 6})
    with pytest.raises(GpproxyError, match="unknown key"):
        cfg.override(**{"search.populaton": 8})
    assert as_config(cfg) is not cfg and as_config(cfg).to_dict() == cfg.to_dict()
    assert as_config({"name": "x", "task": [cfg.to_dict()["tasks"][0]]}).name == "x"


def test_evolve_with_in_memory_ground_truth(tiny_table, tiny_cache, tmp_path):
    from gpproxy.spaces import nb201

    archs = [nb201.format_arch(nb201.index_to_arch(i)) for i in range(0, 15625, 15625 // 60)][:60]
    truth = {a: synthetic_accuracy(a) for a in archs}
    cfg = tiny_config(tiny_table, tiny_cache).to_dict()
    cfg["task"] = cfg.pop("tasks")
    cfg["task"][0].update(benchmark="unused.csv", target="")
    run = gpproxy.evolve(cfg, out=tmp_path / "r", ground_truth=truth, log=lambda m: None,
                         **{"search.generations": 1})
    assert run.config.tasks[0].target == "accuracy"
    assert (run.root / "ground_truth" / "t.csv").read_text().startswith("arch,accuracy\n")
    same = gpproxy.evolve(tiny_config(tiny_table, tiny_cache), out=tmp_path / "same", log=lambda m: None,
                          **{"search.generations": 1})
    assert [(c.formula, c.fitness) for c in run.front] == [(c.formula, c.fitness) for c in same.front]
    with pytest.raises(GpproxyError, match="other ground truth"):
        gpproxy.evolve(cfg, out=tmp_path / "r", ground_truth={archs[0]: 1.0, archs[1]: 2.0},
                       **{"search.generations": 1})
