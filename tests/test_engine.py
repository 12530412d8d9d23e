"""Engine properties: resume-after-kill and backend determinism."""
import json
from pathlib import Path

import pytest

from gpproxy import rundir
from gpproxy.engine import Engine
from tests.conftest import tiny_config


class Killed(Exception):
    pass


def _front(root):
    return [(r["formula"], r["fitness"]) for r in rundir.read_csv(root / "pareto.csv")]


def _final_population(root):
    return rundir.load_checkpoint(root)["population"]


def _kill_after(cfg, root, generation, monkeypatch):
    """Run until `generation` is checkpointed, then die as a kill would."""
    original = Engine._after_generation

    def dying(self, g, *a, **k):
        original(self, g, *a, **k)
        if g == generation:
            raise Killed()

    monkeypatch.setattr(Engine, "_after_generation", dying)
    with pytest.raises(Killed):
        Engine(cfg, root, log=lambda m: None).run()
    monkeypatch.setattr(Engine, "_after_generation", original)


def test_run_writes_run_directory(tiny_table, tiny_cache, tmp_path):
    root = tmp_path / "run"
    summary = Engine(tiny_config(tiny_table, tiny_cache), root, log=lambda m: None).run()
    for name in ("config.json", "protocol.json", "log.jsonl", "pareto.csv", "hall_of_fame.csv",
                 "checkpoint.pkl", "summary.json"):
        assert (root / name).exists(), name
    log = rundir.read_log(root)
    assert [r["generation"] for r in log] == [0, 1, 2, 3]
    assert {"best", "median", "front_size", "evals_per_s", "invalid_rate"} <= set(log[0])
    proto = json.loads((root / "protocol.json").read_text())
    assert proto["tasks"][0]["disjoint"] and proto["tasks"][0]["target"] == "acc"
    rows = rundir.read_csv(root / "pareto.csv")
    assert sum(int(r["selected"]) for r in rows) == 1
    assert all(r["t:heldout_kendall"] != "" for r in rows)  # held-out reported at the end
    assert summary["selected"]["formula"] in {r["formula"] for r in rows}


def test_resume_after_kill_matches_uninterrupted(tiny_table, tiny_cache, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_table, tiny_cache, generations=4)
    full = tmp_path / "full"
    Engine(cfg, full, log=lambda m: None).run()

    killed = tmp_path / "killed"
    _kill_after(cfg, killed, 2, monkeypatch)
    assert rundir.load_checkpoint(killed)["generation"] == 2
    Engine(cfg, killed, log=lambda m: None).run()

    assert _front(killed) == _front(full)
    assert _final_population(killed) == _final_population(full)
    assert [r["best"] for r in rundir.read_log(killed)] == [r["best"] for r in rundir.read_log(full)]


def test_serial_and_local_backends_agree(tiny_table, tiny_cache, tmp_path):
    a = Engine(tiny_config(tiny_table, tiny_cache, backend="serial"), tmp_path / "a", log=lambda m: None)
    b = Engine(tiny_config(tiny_table, tiny_cache, backend="local", jobs=2), tmp_path / "b",
               log=lambda m: None)
    a.run()
    b.run()
    assert _front(tmp_path / "a") == _front(tmp_path / "b")
    assert _final_population(tmp_path / "a") == _final_population(tmp_path / "b")
    memo_a = rundir.load_checkpoint(tmp_path / "a")["memo"]
    memo_b = rundir.load_checkpoint(tmp_path / "b")["memo"]
    assert memo_a == memo_b


def test_different_config_in_same_dir_is_refused(tiny_table, tiny_cache, tmp_path):
    from gpproxy.errors import GpproxyError

    root = tmp_path / "r"
    Engine(tiny_config(tiny_table, tiny_cache, generations=1), root, log=lambda m: None).run()
    with pytest.raises(GpproxyError, match="different config"):
        Engine(tiny_config(tiny_table, tiny_cache, generations=1, cx_prob=0.1), root, log=lambda m: None).run()


def test_corrupt_checkpoint_is_reported(tiny_table, tiny_cache, tmp_path):
    from gpproxy.errors import DataError

    root = tmp_path / "r"
    root.mkdir()
    (root / "checkpoint.pkl").write_bytes(b"\x80\x05garbage")
    with pytest.raises(DataError, match="corrupt"):
        Engine(tiny_config(tiny_table, tiny_cache), root, log=lambda m: None).run()


def test_inspect_table_and_json(tiny_table, tiny_cache, tmp_path, capsys):
    from gpproxy.cli import main

    root = tmp_path / "r"
    Engine(tiny_config(tiny_table, tiny_cache, generations=1), root, log=lambda m: None).run()
    capsys.readouterr()
    assert main(["inspect", str(root)]) == 0
    out = capsys.readouterr().out
    assert "selected (*)" in out and "*" in out
    assert main(["inspect", str(root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(r["selected"] for r in data["front"]) == 1
    assert all(-1 <= r["heldout"]["t"]["kendall"] <= 1 for r in data["front"])
    assert data["finished"] and data["generations_done"] == 1
    assert main(["inspect", str(tmp_path / "nope")]) == 2


def test_inspect_plots(tiny_table, tiny_cache, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from gpproxy.cli import main

    root = tmp_path / "r"
    Engine(tiny_config(tiny_table, tiny_cache, generations=1), root, log=lambda m: None).run()
    assert main(["inspect", str(root), "--plot", str(tmp_path / "f.png"),
                 "--scatter", str(tmp_path / "s.png"), "--front-plot", str(tmp_path / "p.png")]) == 0
    for name in ("f.png", "s.png", "p.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_same_seed_same_run_in_another_process(tiny_table, tiny_cache, tmp_path):
    """A run is a function of its config: two fresh processes (different memory
    layouts and hash seeds) give the same log and front. DEAP's cxOnePoint drew
    the crossover type from a set of classes, ordered by memory address."""
    import os
    import subprocess
    import sys

    code = """
import sys
sys.path.insert(0, {root!r})
junk = [bytearray(600 + 16 * (i % 7)) for i in range(int(sys.argv[1]))]  # moves where classes land
from tests.conftest import tiny_config
from gpproxy.engine import Engine
Engine(tiny_config({table!r}, {cache!r}, population=40, generations=10), sys.argv[2], log=lambda m: None).run()
""".format(root=str(Path(__file__).parent.parent), table=str(tiny_table), cache=str(tiny_cache))
    outs = []
    for junk, hash_seed in ((0, "1"), (333, "2")):
        out = tmp_path / f"run{junk}"
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run([sys.executable, "-c", code, str(junk), str(out)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-800:]
        log = [{k: v for k, v in r.items() if k not in ("seconds", "evals_per_s")} for r in rundir.read_log(out)]
        outs.append((log, (out / "pareto.csv").read_text(), (out / "hall_of_fame.csv").read_text()))
    assert outs[0] == outs[1]


def test_score_on_cache_is_chunking_independent_and_reports_failures(tiny_table, tiny_cache):
    """The one chunked evaluation: any chunking gives FormulaEval's numbers on
    the whole StatSet; kept chunks, memos, per-formula seconds and errors."""
    import numpy as np
    import torch

    from gpproxy.cache import open_cache
    from gpproxy.evaluator import score_on_cache
    from gpproxy.formula import FormulaEval, parse_formula
    from gpproxy.pack import load_pack
    from gpproxy.statset import load_statset

    cache, pack = open_cache(tiny_cache), load_pack("default")
    archs = cache.archs()[:13]
    formulas = ["sum_layers(l1(mul(W, dW)))", "mean_layers(hamming(A))", "sum_layers(std(normalize(Z)))"]
    with torch.no_grad():
        whole = {f: FormulaEval(pack)(parse_formula(f, pack), load_statset(cache, archs)).double().numpy()
                 for f in formulas}
    kept, memos, seconds = [], {}, {}
    for chunk in (1, 4, 13):
        got = score_on_cache(cache, archs, formulas, pack, chunk_archs=chunk)
        assert all(np.array_equal(got[f], whole[f]) for f in formulas), chunk
    got = score_on_cache(cache, archs, formulas, pack, chunk_archs=4, chunks=kept, memos=memos, seconds=seconds)
    assert len(kept) == 4 and sorted(memos) == [0, 1, 2, 3] and set(seconds) == set(formulas)
    again = score_on_cache(None, archs, {"snip": parse_formula(formulas[0], pack)}, pack, chunks=kept)
    assert np.array_equal(again["snip"], whole[formulas[0]])
    # a formula that fails on the statistics is reported, the others are scored
    S = kept[0]
    S.stats = {k: v for k, v in S.stats.items() if k != "Z"}
    errors = {}
    got = score_on_cache(None, archs, formulas, pack, chunks=kept, errors=errors)
    assert set(errors) == {formulas[2]} and "not in this cache" in errors[formulas[2]]
    assert set(got) == set(formulas[:2])
    with pytest.raises(ValueError, match="not in this cache"):
        score_on_cache(None, archs, formulas[2:], pack, chunks=kept)


@pytest.mark.parametrize("kill_at", [1, 3, 5])
def test_resume_matches_uninterrupted_at_population_scale(tiny_table, tiny_cache, tmp_path, monkeypatch, kill_at):
    """With a population large enough for NSGA-II's crowding distances to decide
    tournaments, a resumed run must still follow the uninterrupted one exactly
    (the checkpoint keeps each survivor's crowding distance within its pool)."""
    cfg = tiny_config(tiny_table, tiny_cache, population=64, generations=7, max_height=9, init_max_height=5)
    full = tmp_path / "full"
    Engine(cfg, full, log=lambda m: None).run()
    killed = tmp_path / "killed"
    _kill_after(cfg, killed, kill_at, monkeypatch)
    Engine(cfg, killed, log=lambda m: None).run()
    strip = [{k: v for k, v in r.items() if k not in ("seconds", "evals_per_s")} for r in rundir.read_log(full)]
    assert [{k: v for k, v in r.items() if k not in ("seconds", "evals_per_s")}
            for r in rundir.read_log(killed)] == strip
    assert _final_population(killed) == _final_population(full)


def test_resume_restores_crowding_distances_from_the_pool(tiny_table, tiny_cache, tmp_path):
    """Crowding distances come from the checkpoint, not from re-ranking the survivors:
    NSGA-II computed them within the pool (survivors + offspring), and the next
    tournament depends on them."""
    engine = Engine(tiny_config(tiny_table, tiny_cache), tmp_path / "r", log=lambda m: None)
    formulas = ["sum_layers(params)", "sum_layers(frob(W))", "sum_layers(l1(dW))", "max_layers(frob(W))"]
    memo = {f: {"fitness": fit} for f, fit in zip(formulas, (0.5, 0.4, 0.3, 0.45))}
    crowding = [float("inf"), 0.37, 1.25, 0.5]
    pop = engine._restore_population({"population": formulas, "memo": memo, "crowding": crowding})
    assert [str(i) for i in pop] == formulas
    assert [i.fitness.crowding_dist for i in pop] == crowding
    assert [i.fitness.values[0] for i in pop] == [0.5, 0.4, 0.3, 0.45]


def test_size_weight_fitness_is_the_blend_of_overall_and_within_size_correlation(tiny_table, tiny_cache, tmp_path):
    """fitness.size_weight: each recorded fitness equals (1-w)·τ + w·(mean τ within #params groups)."""
    import numpy as np

    from gpproxy.engine import Engine
    from gpproxy.evaluator import EvalContext
    from gpproxy.fitness import kendall, size_groups, within_groups
    from gpproxy.formula import parse_formula
    from gpproxy.tasks import arch_params

    cfg = tiny_config(tiny_table, tiny_cache, generations=1).override(
        **{"fitness.size_weight": 0.5, "fitness.size_groups": 3})
    engine = Engine(cfg, tmp_path / "run", log=lambda m: None)
    engine.run()
    (t,) = engine.eval_spec.tasks
    assert t.size_groups == size_groups(arch_params(tiny_cache, t.archs), 3)
    ctx = EvalContext(engine.eval_spec)
    acc = np.asarray(t.acc)
    (res,) = ctx.evaluate_many(["sum_layers(frob(dW))"])
    s = ctx.scores(parse_formula("sum_layers(frob(dW))", ctx.pack), "t")
    expected = 0.5 * kendall(s, acc) + 0.5 * within_groups(s, acc, t.size_groups, "kendall")
    assert res["fitness"] == pytest.approx(expected, abs=1e-8)


def test_tasks_differing_only_in_target_are_scored_once(tiny_table, tiny_cache, monkeypatch):
    """Two targets of one table on one cache (NB201's three datasets): each formula's scores are
    computed once per batch, and each task's fitness equals what a one-task context gives it."""
    from dataclasses import replace

    import numpy as np

    from gpproxy import evaluator
    from gpproxy.evaluator import EvalContext, EvalSpec, TaskEval
    from gpproxy.tasks import prepare_task

    td = prepare_task(tiny_config(tiny_table, tiny_cache).tasks[0], log=lambda m: None)
    first = TaskEval("a", str(td.cache_root), tuple(td.search_archs), tuple(float(a) for a in td.search_acc))
    reversed_acc = tuple(float(a) for a in -np.asarray(td.search_acc) + np.arange(len(td.search_acc)) * 0.05)
    second = replace(first, name="b", acc=reversed_acc)
    formulas = ["sum_layers(frob(dW))", "mean_layers(l1(A))", "not_a_formula(", "sum_layers(params)"]
    calls = []
    real = evaluator.score_on_cache

    def counting(source, archs, trees, *a, **k):
        calls.append(len(trees))
        return real(source, archs, trees, *a, **k)

    monkeypatch.setattr(evaluator, "score_on_cache", counting)
    both = EvalContext(EvalSpec("default", (first, second), combine="min")).evaluate_many(formulas)
    assert len(calls) == 1
    alone = {t.name: EvalContext(EvalSpec("default", (t,))).evaluate_many(formulas) for t in (first, second)}
    assert len(calls) == 3
    for i, r in enumerate(both):
        assert r["valid"] == alone["a"][i]["valid"] == alone["b"][i]["valid"]
        if r["valid"]:
            assert r["tasks"] == {"a": alone["a"][i]["fitness"], "b": alone["b"][i]["fitness"]}
            assert r["fitness"] == min(r["tasks"].values())
    assert sum(r["valid"] for r in both) == 3 and both[0]["tasks"]["a"] != both[0]["tasks"]["b"]


def test_min_relative_divides_each_task_by_its_best_baseline_seed(tiny_table, tiny_cache, monkeypatch):
    """combine = "min_relative": per task, the reference is the best fitness of the pack's seeds there; a
    formula's fitness is the minimum over tasks of its task fitness / reference (floored)."""
    from dataclasses import replace

    import numpy as np
    import pytest

    from gpproxy import evaluator
    from gpproxy.errors import GpproxyError
    from gpproxy.evaluator import EvalContext, EvalSpec, TaskEval
    from gpproxy.fitness import REFERENCE_FLOOR, combine
    from gpproxy.pack import load_pack
    from gpproxy.tasks import prepare_task

    td = prepare_task(tiny_config(tiny_table, tiny_cache).tasks[0], log=lambda m: None)
    first = TaskEval("a", str(td.cache_root), tuple(td.search_archs), tuple(float(a) for a in td.search_acc))
    reversed_acc = tuple(float(a) for a in -np.asarray(td.search_acc) + np.arange(len(td.search_acc)) * 0.05)
    second = replace(first, name="b", acc=reversed_acc)
    ctx = EvalContext(EvalSpec("default", (first, second), combine="min_relative"))
    seeds = list(load_pack("default").seeds.values())
    alone = {t.name: EvalContext(EvalSpec("default", (t,))).evaluate_many(seeds) for t in (first, second)}
    want = [max(r["fitness"] for r in alone[t]) for t in ("a", "b")]
    assert ctx.references == want
    formulas = ["sum_layers(frob(dW))", "mean_layers(l1(A))", "not_a_formula(", *seeds[:2]]
    for r in ctx.evaluate_many(formulas):
        if r["valid"]:
            ratios = [r["tasks"][t] / max(ref, REFERENCE_FLOOR) for t, ref in zip(("a", "b"), want)]
            assert r["fitness"] == pytest.approx(min(ratios), abs=1e-8)
    assert combine([0.3, 0.2], "min_relative", [0.6, 0.01]) == pytest.approx(0.5)  # 0.2 / floor 0.05 = 4
    bare = replace(load_pack("default"), seeds={})
    monkeypatch.setattr(evaluator, "load_pack", lambda name: bare)
    with pytest.raises(GpproxyError, match="min_relative"):
        EvalContext(EvalSpec("default", (first,), combine="min_relative"))


def test_a_min_relative_run_logs_its_references_and_divides_by_them(tiny_table, tiny_cache, tmp_path):
    from gpproxy.evaluator import context_for

    cfg = tiny_config(tiny_table, tiny_cache).override(**{"fitness.combine": "min_relative"})
    lines = []
    engine = Engine(cfg, tmp_path / "rel", log=lines.append)
    engine.run()
    (line,) = [m for m in lines if m.startswith("min_relative references")]
    (ref,) = context_for(engine.eval_spec).references
    assert line.endswith(f"t {ref:.3f}") and ref > 0.05
    for r in rundir.read_csv(tmp_path / "rel" / "pareto.csv"):
        res = context_for(engine.eval_spec).evaluate_many([r["formula"]])[0]
        assert float(r["fitness"]) == pytest.approx(res["tasks"]["t"] / ref, abs=1e-8)


def test_seed_formulas_start_in_the_first_population_once_each(tiny_table, tiny_cache, tmp_path):
    """search.seed_formulas warm-starts a search: each (parsed, duplicates dropped) is in generation 0."""
    from gpproxy.formula import parse_formula
    from gpproxy.pack import load_pack

    pack = load_pack("default")
    given = ["sum_layers(l1(mul(W, dW)))", "sum_layers( l1( mul(W,dW) ) )", "max_layers(frob(A))"]
    cfg = tiny_config(tiny_table, tiny_cache, generations=0, seed_baselines=False, seed_formulas=given)
    root = tmp_path / "run"
    engine = Engine(cfg, root, log=lambda m: None)
    assert [name for name, _ in engine.seed_formulas] == ["search.seed_formulas[0]", "search.seed_formulas[2]"]
    engine.run()
    evaluated = set(rundir.load_checkpoint(root)["memo"])
    assert {str(parse_formula(f, pack)) for f in given} <= evaluated
    assert len(evaluated) == cfg.search.population  # the two seeds and six fresh programs
