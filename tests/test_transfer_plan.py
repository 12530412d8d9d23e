"""experiments/transfer.py's search4 plan: valid run configs whose three NB201 tasks differ only in
their target (so the engine scores each formula once for all three) and whose names the zoo:nb201
choice reads as one setting's seeds."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import transfer  # noqa: E402

from gpproxy.config import as_config  # noqa: E402


def test_search4_runs_the_xl_budget_on_all_three_nb201_datasets():
    plan = transfer.plan_search4("vocab+size")
    names = transfer.nb201_runs(f"vocab+size-{transfer.ALL_DATASETS}")
    assert list(plan) == names and f"vocab+size-{transfer.ALL_DATASETS}" in transfer.nb201_settings()
    for seed, name in enumerate(names):
        cfg = as_config(plan[name])
        assert cfg.seed == seed and cfg.search.pack == "transfer"
        assert (cfg.search.population, cfg.search.generations) == tuple(transfer.BUDGETS["xl"].values())
        assert [t.target for t in cfg.tasks] == list(transfer.NB201_DATASETS.values())
        assert len({t.name for t in cfg.tasks}) == 3
        same = {(t.cache, t.benchmark, t.search_archs, t.heldout_archs, t.split_seed, t.batch, t.input)
                for t in cfg.tasks}
        assert len(same) == 1 and cfg.fitness.combine == "min"


def test_search5_completes_the_xl_setting_that_select_and_search2_read():
    variant = "vocab+size"
    setting = f"{variant}-xl"
    names = set(transfer.plan_search5(variant)) | {transfer.nb201_runs(setting)[0]}
    assert names == {f"{setting}-{run}" for run in transfer.LEFT_OUT_RUN.values()}
    assert transfer.nb201_runs(setting)[0] in transfer.plan_search3(variant)
    for name, cfg in transfer.plan_search5(variant).items():
        c = as_config(cfg)
        assert (c.search.population, c.search.generations) == tuple(transfer.BUDGETS["xl"].values())
        assert [t.name for t in c.tasks] == (["macro"] if name.endswith("only-macro") else list(transfer.SEARCHED))
    # search2 of a chosen "VARIANT-xl" names and configures exactly search3's seeds 1 and 2: it resumes them
    search3 = transfer.plan_search3(variant)
    for name, cfg in transfer.plan_search2(setting).items():
        assert cfg == search3[name]


def test_search6_searches_darts_alone_with_the_chosen_variant_and_search1s_budget():
    search1 = {k: transfer.SEARCH[k] for k in ("population", "generations")}
    for chosen, variant, budget in (("vocab+net+size", "vocab+net+size", search1),
                                    ("vocab+size-xl", "vocab+size", transfer.BUDGETS["xl"]),
                                    (f"vocab+net+size+rel-{transfer.THREE}", "vocab+net+size+rel", search1)):
        (name, cfg), = transfer.plan_search6(chosen).items()
        c = as_config(cfg)
        assert name == f"{transfer.setting_runs(chosen)[0]}-only-darts" and [t.name for t in c.tasks] == ["darts"]
        assert c.search.pack == transfer.VARIANTS[variant]["pack"]
        assert c.fitness.combine == transfer.VARIANTS[variant].get("combine", "min")
        assert (c.search.population, c.search.generations) == (budget["population"], budget["generations"])
        assert c.tasks[0].cache == transfer.cache_of("darts", c.search.pack)


def test_search7_leaves_each_of_three_spaces_out_once_and_searches_all_three():
    plan = {name: as_config(cfg) for name, cfg in transfer.plan_search7("vocab+net+size").items()}
    spaces = {name: [t.name for t in c.tasks] for name, c in plan.items()}
    assert spaces == {"vocab+net+size-without-nb201": ["macro", "darts"],
                      "vocab+net+size-without-macro": ["nb201", "darts"],
                      f"vocab+net+size-{transfer.ALL_SPACES}": ["nb201", "macro", "darts"]}
    # the search leaving DARTS out is search1's: same spaces, pack and budget as the plan's others
    search1 = as_config(transfer.plan_search1()["vocab+net+size-without-darts"])
    assert [t.name for t in search1.tasks] == ["nb201", "macro"]
    for c in plan.values():
        assert (c.search, c.fitness, c.seed) == (search1.search, search1.fitness, search1.seed)
        assert all(t == next(s for s in search1.tasks + plan["vocab+net+size-without-macro"].tasks
                             if s.name == t.name) for t in c.tasks)


def test_a_setting_names_the_runs_that_left_each_space_out_and_its_joint_run():
    assert transfer.setting_runs("vocab+size-xl") == (
        "vocab+size-xl", {"nb201": "vocab+size-xl-only-macro", "macro": "vocab+size-xl-only-nb201",
                          "darts": "vocab+size-xl-without-darts"}, "vocab+size-xl-without-darts")
    prefix, left_out, joint = transfer.setting_runs(f"vocab+net+size+mean-{transfer.THREE}")
    assert prefix == "vocab+net+size+mean" and joint == f"vocab+net+size+mean-{transfer.ALL_SPACES}"
    assert left_out == {s: f"vocab+net+size+mean-without-{s}" for s in ("nb201", "macro", "darts")}
    # every run a three-space setting reads is planned by search7 or search1, with the variant's fitness
    planned = {**transfer.plan_search1(), **transfer.plan_search7("vocab+net+size+mean")}
    for name in (*left_out.values(), joint):
        assert as_config(planned[name]).fitness.combine == "mean"
    # combine matters only for joint searches: such a variant adds no NB201-only candidate for zoo:nb201
    assert not any(s.startswith("vocab+net+size+mean") for s in transfer.nb201_settings())


def test_warm_rounds_start_from_the_recorded_searches_of_their_pack_before_them(tmp_path, monkeypatch):
    import json

    from gpproxy.engine import Engine

    first, second = (transfer.WARM_ROUNDS[s] for s in ("search10", "search11"))
    runs = {"vocab+size-xl-only-nb201": "sum_layers(eff_rank(dW))",
            "vocab+size-xl-in16-only-nb201-s1": "sum_layers(eig_entropy(dZ))",
            "vocab+net+size-only-nb201": "add(sum_layers(eff_rank(dW)), jacov)",  # another pack
            f"vocab+size-{first}-only-nb201": "sum_layers(frob(dW))",  # search10's: seeds search11 only
            f"vocab+size-{second}-only-nb201-s2": "sum_layers(l1(A))"}  # search11's: seeds neither
    record = tmp_path / "transfer.json"
    record.write_text(json.dumps({"nb201_choice": {"runs": runs}}))
    monkeypatch.setattr(transfer, "RECORD", record)
    earlier = ["sum_layers(eig_entropy(dZ))", "sum_layers(eff_rank(dW))"]
    for stage, seeds in (("search10", earlier), ("search11", earlier + ["sum_layers(frob(dW))"])):
        plan = transfer.plan_warm("vocab+size", stage)
        names = transfer.nb201_runs(f"vocab+size-{transfer.WARM_ROUNDS[stage]}")
        assert list(plan) == names and f"vocab+size-{transfer.WARM_ROUNDS[stage]}" in transfer.nb201_settings()
        for seed, name in enumerate(names):
            cfg = as_config(plan[name])
            assert cfg.seed == seed and cfg.search.pack == "transfer" and cfg.fitness.combine == "mean"
            assert cfg.search.seed_formulas == seeds
            assert (cfg.search.population, cfg.search.generations) == tuple(transfer.BUDGETS["xl"].values())
            assert [t.target for t in cfg.tasks] == list(transfer.NB201_DATASETS.values())
            assert cfg.tasks == as_config(transfer.plan_search4("vocab+size")[transfer.nb201_runs(
                f"vocab+size-{transfer.ALL_DATASETS}")[seed]]).tasks  # search4's tasks: the same cache
            assert len(Engine(cfg, tmp_path / name, log=lambda m: None).seed_formulas) == len(seeds)
    assert [transfer.warm_round_of(n) for n in runs] == [None, None, None, 0, 1]
