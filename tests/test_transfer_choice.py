"""experiments/transfer_report.py's zoo:nb201 candidates: the product of the k best NB201-only searches is
one formula of their pack that ranks archs as the product of the members' scores, made only of members
with non-negative scores and the best one's pack."""
import json
import sys
from pathlib import Path

import numpy as np
import scipy.stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import transfer_report  # noqa: E402


def test_a_product_formula_ranks_archs_as_the_product_of_its_members(tiny_cache):
    from gpproxy.cache import open_cache
    from gpproxy.evaluator import score_on_cache
    from gpproxy.pack import load_pack

    cache, pack = open_cache(tiny_cache), load_pack("default")
    archs = cache.archs()[:20]
    members = ["sum_layers(l1(mul(W, dW)))", "sum_layers(frob(dW))", "max_layers(l1(A))"]
    product = transfer_report.product_formula(members)
    got = score_on_cache(cache, archs, members + [product], pack)
    assert all((got[f] >= 0).all() for f in members)
    expected = np.prod([got[f] for f in members], axis=0)
    assert sps.kendalltau(got[product], expected).statistic > 0.999
    assert np.argmax(got[product]) == np.argmax(expected)


def test_products_take_the_best_members_with_non_negative_scores_in_the_best_ones_pack():
    scores = {"a": np.array([1.0, 2.0]), "b": np.array([0.0, 3.0]), "neg": np.array([-1.0, 1.0]),
              "other": np.array([1.0, 1.0]), "c": np.array([2.0, 2.0]), "d": np.array([1.0, 5.0])}
    runs = {n: (f"f_{n}", "other-pack" if n == "other" else "transfer") for n in scores}
    ranked = ["a", "neg", "b", "other", "c", "d"]
    combos = transfer_report.products(ranked, scores, runs)
    assert list(combos) == [f"product of the best {k}" for k in (2, 3, 4)]
    assert [c[2] for c in combos.values()] == [["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"]]
    assert combos["product of the best 2"][:2] == ("add(log(f_a), log(f_b))", "transfer")
    assert list(transfer_report.products(["a", "neg", "b"], scores, runs)) == ["product of the best 2"]


def test_recorded_choices_are_the_zoo_entries_and_say_plainly_when_there_is_no_report(tmp_path, monkeypatch):
    """--stage report --recorded re-scores the recorded report's choices: they are what the zoo ships."""
    import pytest

    from gpproxy.zoo import entry

    monkeypatch.setattr(transfer_report, "finished", lambda name: False)  # no search run here since the report
    sel, nb, formulas, seconds = transfer_report.recorded_formulas()
    assert sel["chosen"] and nb["formula"] == formulas["zoo:nb201"][0]
    for label in ("zoo:nb201", "zoo:general"):
        e = entry(label)
        assert formulas[label] == (e.formula, e.pack)
    assert all(isinstance(v, (int, float)) for v in seconds.values())
    monkeypatch.setattr(transfer_report, "RECORD", tmp_path / "transfer.json")
    with pytest.raises(SystemExit, match="--recorded needs"):
        transfer_report.recorded_formulas()


def test_a_search_run_since_the_recorded_report_enters_zoo_nb201s_choice_beside_the_recorded_ones(monkeypatch):
    """--recorded keeps the recorded zoo:nb201 unless an NB201-only search it did not record has a run
    directory here; then the choice is made again over both, the recorded runs by their recorded formulas."""
    import transfer

    monkeypatch.setattr(transfer_report, "finished", lambda name: False)
    recorded = transfer_report.recorded_formulas()[1]
    assert recorded == json.loads(transfer_report.RECORD.read_text())["nb201_choice"]
    setting, new = next((v, n) for v in transfer.nb201_settings() for n in transfer.nb201_runs(v)
                        if n not in recorded["runs"])  # an NB201-only search the record lacks
    pack = transfer.VARIANTS[transfer.variant_of(new)]["pack"]
    new_formula = "sum_layers(eff_rank(A))"
    seen = {}

    def scores(key, formulas, columns):  # synthetic validation scores: the new run ranks the archs best
        seen.update(formulas)
        rng = np.random.default_rng(0)
        y = np.arange(50.0)
        out = {label: (y if f == new_formula else y + rng.normal(0, 30, 50)) + 100 for label, (f, _) in
               formulas.items()}
        return out, {d: y for d in columns}

    monkeypatch.setattr(transfer_report, "finished", lambda name: name == new)
    monkeypatch.setattr(transfer_report, "selected", lambda name: (new_formula, pack))
    monkeypatch.setattr(transfer_report, "validation_scores", scores)
    sizes = []  # zoo:nb201's input size is chosen again for the new formula (its own test below)
    monkeypatch.setattr(transfer_report, "nb201_resolution", lambda f, p: sizes.append((f, p)) or {"chosen": 24})
    sel, nb, formulas, _ = transfer_report.recorded_formulas()
    assert sizes == [(new_formula, pack)] and nb["resolution"] == {"chosen": 24}
    assert set(recorded["runs"]) < set(nb["runs"]) and nb["runs"][new] == new_formula
    assert all(seen[run] == (f, transfer.VARIANTS[transfer.variant_of(run)]["pack"])
               for run, f in recorded["runs"].items())
    assert nb["run"] == new and formulas["zoo:nb201"] == (new_formula, pack)
    assert nb["variant"] == setting and formulas[f"nb201 seed {nb['seeds'].index(new)}"][0] == new_formula
    assert nb["seeds"] == [n for n in transfer.nb201_runs(setting) if n in nb["runs"]]
    assert sum(k.startswith("nb201 seed") for k in formulas) == len(nb["seeds"])
    # the rule again on each seed's searches alone: its members are that seed's, its formula scored by name
    assert sorted(nb["seed_rules"]) == ["0", "1", "2"]
    for seed, rule in nb["seed_rules"].items():
        assert {transfer.seed_of(m) for m in rule["members"]} == {int(seed)}
        assert formulas[f"nb201 rule on seed {seed}"] == (rule["formula"], rule["pack"])
    assert nb["seed_rules"][str(transfer.seed_of(new))]["run"] == new  # the best of its seed's searches


def test_the_rule_takes_a_product_only_when_its_mean_validation_tau_is_the_best(monkeypatch):
    y = np.arange(40.0)
    rng = np.random.default_rng(1)
    errors = {n: rng.normal(0, 12, 40) for n in "abc"}  # independent errors: a product of them ranks better
    scores = {n: y + e + 100 for n, e in errors.items()}
    runs = {n: (f"sum_layers(l1(A{n}))", "transfer") for n in scores}
    formula_of = {f: n for n, (f, _) in runs.items()}

    def validation(key, formulas, columns):  # a product's scores: the product of its members'
        out = {}
        for label, (f, _) in formulas.items():
            members = [n for g, n in formula_of.items() if g in f]
            out[label] = np.prod([scores[n] for n in members], axis=0)
        return out, {d: y for d in columns}

    monkeypatch.setattr(transfer_report, "validation_scores", validation)
    taus = transfer_report.taus_of(scores, {d: y for d in ("c10", "c100", "in16")})
    ranked = sorted(taus, key=lambda n: -taus[n]["c10"])
    rule = transfer_report.nb201_rule(ranked, runs, scores, taus)
    assert rule["run"].startswith("product of the best") and rule["members"] == ranked[:len(rule["members"])]
    assert rule["validation_mean_tau"] > max(taus[n]["c10"] for n in ranked)
    alone = transfer_report.nb201_rule(ranked[:1], runs, scores, taus)  # one search: no product to weigh
    assert (alone["run"], alone["members"], alone["formula"]) == (ranked[0], ranked[:1], runs[ranked[0]][0])


def test_each_run_of_the_study_names_the_variant_it_was_searched_with():
    import transfer

    assert transfer.variant_of("vocab+net+size-only-nb201") == "vocab+net+size"
    assert transfer.variant_of("vocab+net+size+rel-all-spaces") == "vocab+net+size+rel"
    assert transfer.variant_of("vocab+size-xl-c100-only-nb201-s2") == "vocab+size"
    assert [transfer.seed_of(n) for n in transfer.nb201_runs("vocab+size-xl-c100")] == [0, 1, 2]
    assert transfer.seed_of("vocab+net+size+rel-all-spaces") == 0


def test_nb201_columns_and_the_rows_of_an_input_size():
    """ImageNet16-120 is reported at its own 16x16 and at 32x32; an input size picks one column per dataset."""
    cols = {name: (spec.num_classes, spec.resolution) for name, _, _, spec in transfer_report.nb201_columns()}
    assert cols == {"nb201-c10": (10, 32), "nb201-c100": (100, 32), "nb201-in16": (120, 16),
                    "nb201-in16-32px": (120, 32)}
    for res, in16 in ((None, 16), (32, 32), (24, 24)):
        got = [(ds, spec.num_classes, spec.resolution) for _, ds, _, spec in transfer_report.nb201_columns(res)]
        own = 32 if res is None else res
        assert got == [("cifar10", 10, own), ("cifar100", 100, own), ("imagenet16_120", 120, in16)]
    assert transfer_report.protocol_columns(None) == {"nb201-c10", "nb201-c100", "nb201-in16"}
    assert transfer_report.protocol_columns(32) == {"nb201-c10", "nb201-c100", "nb201-in16-32px"}
    assert "nb201-in16-32px" in transfer_report.COLUMNS
    store = transfer_report.column_store("nb201-in16-32px", "nb201", "imagenet16_120")
    assert store[0].resolution == 32 and transfer_report.column_store("nb201-in16", "nb201", "imagenet16_120")[0] \
        .resolution is None


def test_zoo_nb201s_input_size_is_the_one_its_validation_archs_rank_best(monkeypatch):
    """nb201_resolution scores the formula on validation nets of each dataset's classes at each candidate size
    (the search cache for CIFAR-10 at 32x32, one cache per distinct net) and takes the best mean tau; on a tie,
    each dataset's own size."""
    from gpproxy.spaces import get_space

    archs = get_space("nb201").all_archs()[:40]
    y = np.arange(40.0)
    monkeypatch.setattr(transfer_report, "validation_labels", lambda key, columns: (archs, {d: y for d in columns}))
    built = []
    monkeypatch.setattr(transfer_report, "build_nb201_cache",
                        lambda cache, spec, a, packs, what: built.append((cache, spec.num_classes, spec.resolution)))

    def scores(noisy_at):
        def fn(key, part, formulas, cache=None, archs=None):
            noise = np.random.default_rng(len(cache)).normal(0, 30 if noisy_at in cache else 5, 40)
            return {label: y + noise for label in formulas}
        return fn

    monkeypatch.setattr(transfer_report, "formula_scores", scores("-16px"))
    got = transfer_report.nb201_resolution("sum_layers(frob(dW))", "transfer")
    assert got["chosen"] == 32 and set(got["validation_tau"]) == {"own", "32px"}
    assert got["validation_tau"]["own"]["c10"] == got["validation_tau"]["32px"]["c10"]  # the same nets
    assert got["validation_tau"]["own"]["in16"] < got["validation_tau"]["32px"]["in16"]
    assert sorted(built) == [("caches/nb201-c10-noise-b16", 10, 32),  # CIFAR-10 at 32x32: the search cache
                             ("caches/transfer-nb201-validation-100c-32px", 100, 32),
                             ("caches/transfer-nb201-validation-120c-16px", 120, 16),
                             ("caches/transfer-nb201-validation-120c-32px", 120, 32)]
    monkeypatch.setattr(transfer_report, "formula_scores", scores("no cache is noisier"))
    assert transfer_report.nb201_resolution("sum_layers(frob(dW))", "transfer")["chosen"] is None  # a tie


def test_the_input_size_table_marks_each_formulas_best_mean():
    import input_size

    out = {"machine": "m", "seconds": 1.0, "archs": 3, "validation_tau": {
        "a": {"16": {"c10": 0.5, "c100": 0.5, "in16": 0.5}, "32": {"c10": 0.9, "c100": 0.1, "in16": 0.6}},
        "b": {"16": {"c10": 0.7, "c100": 0.6, "in16": 0.5}, "32": {"c10": 0.6, "c100": 0.6, "in16": 0.5}}}}
    rows = [r for r in input_size.markdown(out).splitlines() if r.startswith("| a |") or r.startswith("| b |")]
    assert rows == ["| a | 16x16 | 0.500 | 0.500 | 0.500 | 0.500 |",
                    "| a | 32x32 (best) | 0.900 | 0.100 | 0.600 | 0.533 |",
                    "| b | 16x16 (best) | 0.700 | 0.600 | 0.500 | 0.600 |",
                    "| b | 32x32 | 0.600 | 0.600 | 0.500 | 0.567 |"]
