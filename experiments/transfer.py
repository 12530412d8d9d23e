"""Discovery for transfer, and the one report (issue: discovery quality, round 2).

Stages (each resumable: runs resume, caches complete, scores are stored):

``search1``  for each search variant (vocabulary, size-robust fitness, how a joint search
             combines its spaces: VARIANTS):
             a joint search on NB201 + NAS-Bench-Macro, and one search on each
             alone. DARTS is searched by search6 (alone; no choice reads it) and
             search7 (jointly); NB101 by nothing.
``select``   leave-one-space-out choice of the setting: the formula a run
             selects (its own rule, on its search archs) is scored on the
             VALIDATION archs of a space the run did not see (setting_runs); the
             setting (a variant, "VARIANT-xl" once search5 has run, "VARIANT-3spaces"
             once search7 has) with the best mean is chosen, and zoo:general is its
             joint search. No report arch is read.
``search2``  NB201 alone with the chosen variant, seeds 1 and 2.
``search3``  NB201 alone, seeds 0-2, with larger budgets (BUDGETS: about 4x and
             12x the evaluations of search1/2), for the variant whose NB201-only
             seeds have the best mean validation tau.
``search4``  NB201 alone, seeds 0-2, with search3's variant and largest budget and a
             fitness that is the minimum over NB201's three datasets (CIFAR-10 valid,
             CIFAR-100, ImageNet16-120; the other searches rank by CIFAR-10 valid only).
             zoo:nb201 is, of the NB201-only searches' formulas and the products of
             the best 2, 3 and 4 of them, the one with the best mean validation tau
             over the three datasets.
``search8``  NB201 alone, seeds 0-2, search3's variant and largest budget, the fitness
             ImageNet16-120 accuracies alone (search9: CIFAR-100 alone): more candidates
             for zoo:nb201 (same rule).
``search10`` NB201 alone, seeds 0-2, search3's variant and largest budget, warm-started
             from every earlier NB201-only search's formula of its pack
             (search.seed_formulas), the fitness the mean over the three datasets:
             more candidates for zoo:nb201 (same rule). ``search11``: a second
             round, seeded with search10's formulas too.
``search5``  leave-one-space-out at search3's variant and xl budget (the joint
             search and NAS-Bench-Macro alone; NB201 alone is search3's seed 0);
             run ``select`` again afterwards.
``search6``  DARTS alone with the chosen variant (search1's budget): the transfer
             matrix's DARTS row; no choice reads it.
``search7``  leave-one-space-out over NB201, NAS-Bench-Macro and DARTS (the settings
             "VARIANT-3spaces" of SEARCH7_VARIANTS): joint searches without NB201 and
             without NAS-Bench-Macro (the one without DARTS is search1's) and the joint
             search on all three, the setting's zoo:general; run ``select`` again
             afterwards (search1 first for a variant it has not run).
``baselines`` the baselines that need a network pass per arch, into one score
             store per report column (experiments/results/transfer_COLUMN.scores.json.gz;
             run processes in parallel, one per ``--columns`` or ``--shard K/N`` of one
             column's archs: a store merges their saves); the report uses the
             prefix of each column's archs that is complete.
``validation-baselines`` the classic set on the validation archs of NB201, NAS-Bench-Macro and
             DARTS (experiments/results/transfer_validation-SPACE.scores.json.gz): what
             experiments/aggregate.py's leave-one-space-out choice of rank aggregates reads.
``report``   every formula and every baseline on the REPORT archs of every space
             (NB201 CIFAR-10 valid / CIFAR-100 / ImageNet16-120, the last at its own
             16x16 input and at 32x32, NAS-Bench-Macro, DARTS, and NB101, which no
             search saw; zoo:nb201's input size is chosen on validation archs,
             transfer_report.nb201_resolution): Kendall tau, Spearman rho,
             nDCG (VKDNW's definition), top-10% precision, tau within #params
             deciles. Writes experiments/results/transfer.{json,md} and the zoo
             entries gpproxy/zoo/*.json.
             ``--recorded`` takes every choice (the formulas, zoo:nb201's validation
             table, the setting) from the last report's transfer.json instead of the
             searches' run directories, which a fresh checkout lacks: the same report
             from the report archs' caches alone (built if missing), e.g. after
             ``baselines`` extended a column.

    .venv/bin/python experiments/transfer.py --stage search1 [--shard 0/2]
    .venv/bin/python experiments/transfer.py --stage select
    .venv/bin/python experiments/transfer.py --stage search2 [--shard 0/2]
    .venv/bin/python experiments/transfer.py --stage search3 [--shard 0/2]
    .venv/bin/python experiments/transfer.py --stage search4 [--shard 0/3]
    .venv/bin/python experiments/transfer.py --stage search5 [--shard 0/2]
    .venv/bin/python experiments/transfer.py --stage search8 [--shard 0/3]
    .venv/bin/python experiments/transfer.py --stage search9 [--shard 0/3]
    .venv/bin/python experiments/transfer.py --stage search10 [--shard 0/3]
    .venv/bin/python experiments/transfer.py --stage search11 [--shard 0/3]
    .venv/bin/python experiments/transfer.py --stage search6
    .venv/bin/python experiments/transfer.py --stage search7 [--shard 0/2]
    .venv/bin/python experiments/transfer.py --stage select
    .venv/bin/python experiments/transfer.py --stage baselines [--columns nb201-c10 ...] [--shard 0/2]
    .venv/bin/python experiments/transfer.py --stage validation-baselines [--shard 0/2]
    .venv/bin/python experiments/transfer.py --stage report
    .venv/bin/python experiments/transfer.py --stage report --recorded   # no run directories needed

The caches of the search and report archs are built by the searches and the
report themselves (NAS-Bench-Macro, DARTS and NB101: ``--stage report`` or a
search builds what it lacks; run with OMP_NUM_THREADS=1 when processes share cores).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))
from transfer_spaces import SEARCHED, SPACES, splits  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
RUNS = ROOT / "runs" / "transfer"
SELECTION = RESULTS / "transfer_selection.json"
RECORD = RESULTS / "transfer.json"  # the last report: its choices, read by --recorded and by a fresh checkout

VARIANTS = {  # compared by leave-one-space-out on validation archs
    "base": {"pack": "default", "size_weight": 0.0},
    "size": {"pack": "default", "size_weight": 0.5},
    "vocab+size": {"pack": "transfer", "size_weight": 0.5},
    "vocab+pop+size": {"pack": "population", "size_weight": 0.5},  # + log-rank combination (population-level)
    "vocab+net+size": {"pack": "network", "size_weight": 0.5},  # + whole-network terms (jacov, naswot)
    # the same, a joint search's fitness the mean over its spaces (not the minimum): with DARTS, whose tau is the
    # lowest, the minimum weighs DARTS alone
    "vocab+net+size+mean": {"pack": "network", "size_weight": 0.5, "combine": "mean"},
    # ... the minimum over spaces of the fitness relative to the best baseline seed's on that space
    "vocab+net+size+rel": {"pack": "network", "size_weight": 0.5, "combine": "min_relative"},
}
NET_PACKS = {"network"}  # packs with whole-network terms: their caches record them (a "-net" twin cache)
SEARCH = {"population": 100, "generations": 20, "init_min_height": 2, "init_max_height": 5, "max_height": 9,
          "seed_baselines": True, "backend": "serial", "jobs": 1}
FITNESS = {"correlation": "kendall", "subsets": 5, "subset_fraction": 0.5, "combine": "min"}
BUDGETS = {"long": {"population": 200, "generations": 40},  # search3: about 4x the evaluations of search1/2's
           "xl": {"population": 300, "generations": 80}}  # and about 3x more again


def log(msg):
    print(msg, flush=True)


def config(name: str, spaces, variant: str, seed: int = 0, tasks: list | None = None, **search) -> dict:
    """A run config of ``variant``: one task per space of ``spaces`` unless ``tasks`` are given."""
    v = VARIANTS[variant]
    return {"name": name, "seed": seed, "device": "auto",
            "search": {**SEARCH, "pack": v["pack"], **search},
            "fitness": {**FITNESS, "size_weight": v["size_weight"], "combine": v.get("combine", FITNESS["combine"])},
            "task": tasks if tasks is not None else [task_of(s, v["pack"]) for s in spaces]}


def setting_config(name: str, spaces, setting: str, seed: int = 0) -> dict:
    """A run config of a setting: a variant, or "VARIANT-BUDGET" (BUDGETS)."""
    variant, _, budget = setting.partition("-")
    return config(name, spaces, variant, seed, **BUDGETS.get(budget, {}))


def cache_of(key: str, pack: str = "default", cache: str | None = None) -> str:
    """The statistics cache of a space (or ``cache``) for formulas of ``pack``: a pack with
    whole-network terms reads a twin cache that records them, named with "-net"."""
    return (cache or SPACES[key].cache) + ("-net" if pack in NET_PACKS else "")


def task_of(key: str, pack: str = "default") -> dict:
    extra = {"net_terms": True, "cache": cache_of(key, pack)} if pack in NET_PACKS else {}
    return SPACES[key].task(**extra)


def plan_search1() -> dict:
    """Per variant: the joint search (every searched space; named by what it leaves out: DARTS,
    which no search sees) and one search per searched space alone."""
    plan = {}
    for v in VARIANTS:
        plan[f"{v}-without-darts"] = config(f"{v}-without-darts", SEARCHED, v)
        for s in SEARCHED:
            plan[f"{v}-only-{s}"] = config(f"{v}-only-{s}", [s], v)
    return plan


def plan_search2(chosen: str) -> dict:
    """NB201 alone with the chosen settings, seeds 1 and 2 (zoo:nb201: the best NB201-only search).
    ``chosen``: a variant, or "VARIANT-BUDGET" (whose NB201-only seeds search3 has run)."""
    return {name: setting_config(name, ["nb201"], chosen, seed)
            for seed, name in zip(SEEDS, nb201_runs(chosen)) if seed}


SEEDS = (0, 1, 2)  # the search seeds of a setting's NB201-only searches


def seed_suffix(seed: int) -> str:
    return f"-s{seed}" if seed else ""


def nb201_runs(setting: str) -> list:
    """The NB201-only searches of a setting (a variant, or "VARIANT-BUDGET" for search3): seeds 0, 1, 2."""
    return [f"{setting}-only-nb201{seed_suffix(seed)}" for seed in SEEDS]


def seed_of(run: str) -> int:
    """The search seed of a run of this study, from its name (seed 0 has no suffix)."""
    return next((seed for seed in SEEDS if seed and run.endswith(seed_suffix(seed))), 0)


def nb201_settings() -> list:
    # a variant that changes only how a joint search combines its spaces repeats another's NB201-only search
    variants = [v for v in VARIANTS if "combine" not in VARIANTS[v]]
    return [*variants, *(f"{v}-{b}" for v in variants for b in BUDGETS),
            *(f"{v}-{ALL_DATASETS}" for v in variants), *(f"{v}-{w}" for w in WARM_ROUNDS.values() for v in variants),
            *(one_dataset_setting(v, d) for d in ONE_DATASET.values() for v in variants)]


def variant_of(run: str) -> str:
    """The variant whose settings (pack, fitness) a run of this study was searched with, from its name."""
    return max((v for v in VARIANTS if run.startswith(f"{v}-")), key=len)


def finished(name: str) -> bool:
    return (RUNS / name / "summary.json").exists()


def best_nb201_variant(tau: dict | None = None) -> tuple:
    """(variant, {variant: mean tau}): of the variants whose three NB201-only seeds have run, the one
    with the best mean NB201 validation tau over its seeds; search3 runs it with larger BUDGETS.
    ``tau``: {run: validation tau} already measured for (at least) those runs."""
    full = {v: nb201_runs(v) for v in VARIANTS if all(map(finished, nb201_runs(v)))}
    if not full:  # a fresh checkout: the run directories stay on the machine that ran the searches
        recorded = json.loads(RECORD.read_text())["nb201_choice"]["search3"]
        return recorded["variant"], recorded["seed_mean_validation_tau"]
    if tau is None:
        tau = validation_tau("nb201", {n: selected(n) for names in full.values() for n in names})
    means = {v: float(np.mean([tau[n] for n in names])) for v, names in full.items()}
    return max(means, key=means.get), means


def plan_search3(variant: str) -> dict:
    """NB201 alone with a variant's settings and each larger budget, seeds 0-2: the seeds of search1/2
    ended far apart on validation (0.687-0.750 for vocab+size) with fitness still rising at the last
    generation, so a longer search is a candidate for zoo:nb201 like any other NB201-only search."""
    return {name: setting_config(name, ["nb201"], f"{variant}-{b}", seed)
            for b in BUDGETS for seed, name in enumerate(nb201_runs(f"{variant}-{b}"))}


# search4's fitness ranks NB201's search archs by each dataset of the report's NB201 columns
NB201_DATASETS = {"c10": "cifar10valid_valid", "c100": "cifar100_test", "in16": "imagenet16_120_test"}
ALL_DATASETS = "xl-3datasets"  # the setting name of search4's runs
ALL_SPACES = "all-spaces"  # the run suffix of search7's joint search on NB201, NAS-Bench-Macro and DARTS


def nb201_tasks(pack: str, datasets=tuple(NB201_DATASETS)) -> list:
    """One NB201 task per dataset of ``datasets`` ("c10", "c100", "in16"): the same archs and cache, each
    ranked by that dataset's accuracies."""
    nb201 = task_of("nb201", pack)
    return [{**nb201, "name": f"nb201-{d}", "target": NB201_DATASETS[d]} for d in datasets]


def plan_search4(variant: str) -> dict:
    """NB201 alone with search3's variant and its largest budget, seeds 0-2, the fitness the minimum over
    NB201's three datasets (one task per dataset: the same archs and cache, so each formula is scored
    once): the zoo:nb201 targets hold on every dataset, and a search on CIFAR-10 labels alone found
    formulas that rank ImageNet16-120 less well."""
    tasks = nb201_tasks(VARIANTS[variant]["pack"])
    return {name: config(name, ["nb201"], variant, seed, tasks=tasks, **BUDGETS["xl"])
            for seed, name in enumerate(nb201_runs(f"{variant}-{ALL_DATASETS}"))}


# search8 and search9: the fitness on one NB201 dataset other than CIFAR-10 valid; the setting of their runs
ONE_DATASET = {"search8": "in16", "search9": "c100"}
DATASET_NAMES = {"c10": "CIFAR-10 valid", "c100": "CIFAR-100", "in16": "ImageNet16-120"}


def one_dataset_suffix(dataset: str) -> str:
    return f"xl-{dataset}"


def one_dataset_setting(variant: str, dataset: str) -> str:
    return f"{variant}-{one_dataset_suffix(dataset)}"


def plan_one_dataset(variant: str, dataset: str) -> dict:
    """NB201 alone with search3's variant and largest budget, seeds 0-2, the fitness the accuracies of one
    dataset alone (same search archs and cache): zoo:nb201 met its CIFAR targets but not ImageNet16-120's,
    and search4's minimum over the three datasets gave no member better on it; members searched on other
    labels err on other archs, which a product of members averages out. More candidates for zoo:nb201's
    choice, made by the same rule on validation archs."""
    tasks = nb201_tasks(VARIANTS[variant]["pack"], [dataset])
    return {name: config(name, ["nb201"], variant, seed, tasks=tasks, **BUDGETS["xl"])
            for seed, name in enumerate(nb201_runs(one_dataset_setting(variant, dataset)))}


# warm-started rounds, in order: each round's first population holds the formulas of every NB201-only search
# of its pack recorded before it (its own round and later ones excluded, so a round's plan stays fixed)
WARM_ROUNDS = {"search10": "xl-warm", "search11": "xl-warm2"}


def warm_round_of(run: str) -> int | None:
    """The index in WARM_ROUNDS of the warm round a run belongs to (None: not a warm round's run)."""
    rounds = [i for i, suffix in enumerate(WARM_ROUNDS.values()) if f"-{suffix}-only-nb201" in run]
    return rounds[0] if rounds else None


def warm_start_formulas(pack: str, stage: str = "search10") -> list:
    """A warm round's seed formulas: the formulas of every NB201-only search of ``pack`` that the last report
    recorded, except the runs of this round and of later ones."""
    here = list(WARM_ROUNDS).index(stage)
    runs = json.loads(RECORD.read_text())["nb201_choice"]["runs"]
    earlier = [name for name in sorted(runs) if warm_round_of(name) is None or warm_round_of(name) < here]
    return [runs[name] for name in earlier if VARIANTS[variant_of(name)]["pack"] == pack]


def plan_warm(variant: str, stage: str = "search10") -> dict:
    """NB201 alone with search3's variant and largest budget, seeds 0-2, warm-started: the first population
    holds the formulas of every earlier NB201-only search of its pack (search.seed_formulas), and the fitness
    is the mean over NB201's three datasets (the quantity zoo:nb201's rule compares). Products of the best
    searches stopped gaining at four members, so more of the same members cannot close the
    ImageNet16-120 gap; a search that recombines the members' subtrees may find better single formulas.
    search11 is a second round, seeded with search10's formulas too."""
    pack = VARIANTS[variant]["pack"]
    tasks = nb201_tasks(pack)
    seeds = warm_start_formulas(pack, stage)
    plan = {}
    for seed, name in enumerate(nb201_runs(f"{variant}-{WARM_ROUNDS[stage]}")):
        plan[name] = config(name, ["nb201"], variant, seed, tasks=tasks, seed_formulas=seeds, **BUDGETS["xl"])
        plan[name]["fitness"]["combine"] = "mean"
    return plan


def plan_search5(variant: str) -> dict:
    """Leave-one-space-out at search3's variant and largest budget: the joint search and the one on
    NAS-Bench-Macro alone (its NB201-only search is search3's seed 0), so ``select`` can weigh the setting
    "VARIANT-xl" like any variant: does a longer search transfer better, or fit its spaces more closely?"""
    setting = f"{variant}-xl"
    return {f"{setting}-without-darts": setting_config(f"{setting}-without-darts", SEARCHED, setting),
            f"{setting}-only-macro": setting_config(f"{setting}-only-macro", ["macro"], setting)}


def plan_search6(chosen: str) -> dict:
    """DARTS alone with the chosen setting (its budget: search1's, or "VARIANT-BUDGET"'s): the transfer
    matrix's "searched on DARTS alone" row. Report only: no choice reads it."""
    prefix = setting_runs(chosen)[0]  # a three-space setting's runs are named by its variant
    return {f"{prefix}-only-darts": setting_config(f"{prefix}-only-darts", ["darts"], prefix)}


def plan_search7(variant: str) -> dict:
    """Leave-one-space-out over all three searched spaces for a variant (the setting "VARIANT-3spaces"): the
    joint searches that leave NB201 out (NAS-Bench-Macro + DARTS) and NAS-Bench-Macro out (NB201 + DARTS),
    the one leaving DARTS out being search1's, and the joint search on all three, the setting's zoo:general.
    A formula that must rank two spaces at once is tested on the third."""
    return {name: config(name, spaces, variant)
            for name, spaces in ((f"{variant}-without-nb201", ["macro", "darts"]),
                                 (f"{variant}-without-macro", ["nb201", "darts"]),
                                 (f"{variant}-{ALL_SPACES}", ["nb201", "macro", "darts"]))}


# search1's chosen variant, and with the mean or the relative minimum over spaces
SEARCH7_VARIANTS = ("vocab+net+size", "vocab+net+size+mean", "vocab+net+size+rel")

# Leave-one-space-out: the run that did not see a space, scored on that space's validation archs.
LEFT_OUT_RUN = {"nb201": "only-macro", "macro": "only-nb201", "darts": "without-darts"}
# ... when DARTS is searched too (search7): the joint search on the other two
LEFT_OUT_RUN_THREE = {"nb201": "without-nb201", "macro": "without-macro", "darts": "without-darts"}
THREE = "3spaces"  # the suffix of a setting searched on three spaces (search7)


def setting_runs(setting: str) -> tuple:
    """(its runs' name prefix, {space: the run that did not see it}, its joint run: zoo:general's) of a
    setting: a variant, "VARIANT-xl" (search5) or "VARIANT-3spaces" (search7)."""
    three = setting.endswith(f"-{THREE}")
    prefix = setting[:-len(THREE) - 1] if three else setting
    runs = LEFT_OUT_RUN_THREE if three else LEFT_OUT_RUN
    return (prefix, {space: f"{prefix}-{run}" for space, run in runs.items()},
            f"{prefix}-{ALL_SPACES if three else 'without-darts'}")


def waiting_for_caches(call, attempts: int = 60, pause_s: float = 10.0):
    """``call()``, retried while a cache it opens is locked: a shared cache is locked only while
    another process of the study completes it, so waiting is enough."""
    from gpproxy.errors import InUseError

    for attempt in range(attempts):
        try:
            return call()
        except InUseError as e:
            if e.what != "cache" or attempt == attempts - 1:
                raise
            time.sleep(pause_s)


def parse_shard(shard: str) -> tuple:
    """"K/N" -> (K, N): a process takes every N-th item (search, or arch of a column) from the K-th."""
    k, n = (int(x) for x in shard.split("/"))
    return k, n


def run_plan(plan: dict, shard: str, only: str = "*") -> None:
    from fnmatch import fnmatch

    from gpproxy import evolve
    from gpproxy.errors import GpproxyError

    k, n = parse_shard(shard)
    names = [name for name in plan if fnmatch(name, only)]
    for i, name in enumerate(names):
        cfg = plan[name]
        if i % n != k:
            continue
        t0 = time.perf_counter()
        try:  # a run directory owned by another process is that process's to finish
            run = waiting_for_caches(lambda: evolve(cfg, RUNS / name, plots=False, log=lambda m: None))
        except GpproxyError as e:
            log(f"{name}: not run now ({e})")
            continue
        seconds = time.perf_counter() - t0
        done = RUNS / name / "wall_seconds.json"
        if not done.exists():  # the first completion's wall time (cache building included)
            done.write_text(json.dumps({"seconds": round(seconds, 1)}) + "\n")
        log(f"{name}: {run.selected.formula}  ({seconds:.0f} s)")


# ------------------------------------------------------------------ scoring


_SPLITS: dict = {}


def space_splits(key: str):
    if key not in _SPLITS:
        _SPLITS[key] = splits(SPACES[key])
    return _SPLITS[key]


def ensure_cache(key: str, archs: list, pack: str = "default") -> None:
    """Build whatever part of ``archs`` the space's cache (for ``pack``) lacks (spaces no search builds:
    DARTS, NB101)."""
    from gpproxy.config import TaskConfig
    from gpproxy.tasks import build_task_cache, cache_spec

    s = SPACES[key]
    bench, _, acc = space_splits(key)
    waiting_for_caches(lambda: build_task_cache(
        cache_of(key, pack), cache_spec(TaskConfig(**task_of(key, pack))), archs, bench, jobs=2,
        benchmark=str(s.benchmark), target=s.target, targets=acc, log=log))


def formula_scores(key: str, part: str, formulas: dict, cache: str | None = None, archs=None) -> dict:
    """{label: scores} of formulas {label: (formula, pack)} on a part of a space's archs."""
    from gpproxy.cache import open_cache
    from gpproxy.evaluator import score_on_cache
    from gpproxy.pack import load_pack

    _, parts, _ = space_splits(key)
    archs = parts[part] if archs is None else archs
    out = {}
    by_pack: dict = {}
    for label, (formula, pack) in formulas.items():
        by_pack.setdefault(pack, {})[label] = formula
    for pack, group in by_pack.items():
        c = open_cache(cache_of(key, pack, cache))
        sc = score_on_cache(c, archs, list(dict.fromkeys(group.values())), load_pack(pack))
        out.update({label: np.asarray(sc[f], dtype=np.float64) for label, f in group.items()})
    return out


def validation_labels(key: str, columns: dict | None = None) -> tuple:
    """(the validation archs choices are made on, {name: accuracies}) of a space: the accuracies of each column
    {name: column} of its table (default: the space's own target)."""
    from gpproxy.spaces import get_space

    bench, parts, acc = space_splits(key)
    archs = parts["validation"][:SPACES[key].selection_archs]
    if columns is None:
        return archs, {SPACES[key].target: np.array([acc[a] for a in archs])}
    canon = get_space(SPACES[key].space).canonical
    row = {canon(a): i for i, a in enumerate(bench.archs)}
    return archs, {name: bench.accuracy(c)[[row[a] for a in archs]] for name, c in columns.items()}


def validation_scores(key: str, formulas: dict, columns: dict | None = None) -> tuple:
    """({label: scores}, {name: accuracies}) of formulas {label: (formula, pack)} on a space's validation archs,
    the accuracies of each column {name: column} of its table (default: the space's own target)."""
    archs, labels = validation_labels(key, columns)
    for pack in dict.fromkeys(p for _, p in formulas.values()):
        ensure_cache(key, archs, pack)
    return formula_scores(key, "validation", formulas, archs=archs), labels


def taus_of(scores: dict, labels: dict) -> dict:
    """{label: {name: Kendall tau}}; nan for a formula with a non-finite score."""
    from gpproxy.fitness import kendall

    return {label: {name: kendall(s, y) if np.isfinite(s).all() else float("nan") for name, y in labels.items()}
            for label, s in scores.items()}


def validation_taus(key: str, formulas: dict, columns: dict | None = None) -> dict:
    """{label: {name: Kendall tau}} of formulas {label: (formula, pack)} on a space's validation archs, scored
    once and ranked by each accuracy column {name: column} of its table (default: the space's own target)."""
    return taus_of(*validation_scores(key, formulas, columns))


def validation_tau(key: str, formulas: dict) -> dict:
    return {label: t[SPACES[key].target] for label, t in validation_taus(key, formulas).items()}


def selected(name: str) -> tuple:
    from gpproxy import Run

    run = Run.open(RUNS / name)
    return run.selected.formula, run.config.search.pack


def loso_settings() -> list:
    """The settings select compares: every variant whose searches have run, and each "VARIANT-xl" (search5;
    its NB201-only one is search3's seed 0) and "VARIANT-3spaces" (search7) whose searches have all run."""
    candidates = [*VARIANTS, *(f"{v}-xl" for v in VARIANTS), *(f"{v}-{THREE}" for v in VARIANTS)]
    return [s for s in candidates
            if all(finished(name) for name in (*setting_runs(s)[1].values(), setting_runs(s)[2]))]


def stage_select() -> dict:
    rows = {}
    for v in loso_settings():
        taus = {}
        for left_out, name in setting_runs(v)[1].items():
            taus[left_out] = validation_tau(left_out, {name: selected(name)})[name]
        rows[v] = {"left_out_validation_tau": taus, "mean": float(np.mean(list(taus.values()))),
                   "min": float(np.min(list(taus.values())))}
        log(f"{v}: " + ", ".join(f"{s} {t:.3f}" for s, t in taus.items()) + f"; mean {rows[v]['mean']:.3f}")
    chosen = max(rows, key=lambda v: rows[v]["mean"])
    out = {"rule": "setting (variant, variant with search5's xl budget, or variant searched on three spaces by "
                   "search7) with the highest mean Kendall tau of the formula selected by a search that did not see "
                   "a space, on that space's validation archs: two searched spaces: NB201 (search on "
                   "NAS-Bench-Macro alone), NAS-Bench-Macro (search on NB201 alone), DARTS (the joint search); "
                   "three (-3spaces): the joint search on the other two. zoo:general is the chosen setting's joint "
                   "search on all its spaces",
           "variants": rows, "chosen": chosen}
    SELECTION.parent.mkdir(parents=True, exist_ok=True)
    SELECTION.write_text(json.dumps(out, indent=1) + "\n")
    log(f"chosen variant: {chosen}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", required=True,
                    choices=("search1", "select", "search2", "search3", "search4", "search5", "search6",
                             "search7", "search8", "search9", *WARM_ROUNDS, "baselines", "validation-baselines", "report"))
    ap.add_argument("--baselines", nargs="*", default=None,
                    help="--stage baselines: which ones to compute into the score stores (default: all)")
    ap.add_argument("--columns", nargs="*", default=None,
                    help="--stage baselines: which report columns (validation-baselines: which spaces)")
    ap.add_argument("--shard", default="0/1",
                    help="K/N: this process runs every N-th search (--stage baselines: arch) from the K-th")
    ap.add_argument("--recorded", action="store_true",
                    help="--stage report: take every choice from experiments/results/transfer.json, not from runs/")
    ap.add_argument("--only", default="*", help="run only the searches whose name matches this glob")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--nb201-report-archs", type=int, default=3000,
                    help="NB201 report archs scored on all three datasets (a fixed random draw, seed 0)")
    args = ap.parse_args()
    missing = [s.benchmark for s in SPACES.values() if not s.benchmark.exists()]
    if missing:
        log(f"needs {', '.join(map(str, missing))}; skipping")
        return 0
    os.chdir(ROOT)
    if args.stage == "search1":
        run_plan(plan_search1(), args.shard, args.only)
    elif args.stage == "select":
        stage_select()
    elif args.stage in ("search2", "search6"):
        plan = {"search2": plan_search2, "search6": plan_search6}[args.stage]
        run_plan(plan(json.loads(SELECTION.read_text())["chosen"]), args.shard, args.only)
    elif args.stage == "search7":
        run_plan({name: cfg for v in SEARCH7_VARIANTS for name, cfg in plan_search7(v).items()}, args.shard,
                 args.only)
    elif args.stage in ("search3", "search4", "search5", *WARM_ROUNDS, *ONE_DATASET):
        plans = {"search3": plan_search3, "search4": plan_search4, "search5": plan_search5,
                 **{stage: partial(plan_warm, stage=stage) for stage in WARM_ROUNDS},
                 **{stage: partial(plan_one_dataset, dataset=d) for stage, d in ONE_DATASET.items()}}
        variant, means = best_nb201_variant()
        log("NB201-only seeds, mean validation tau: " + ", ".join(f"{v} {t:.3f}" for v, t in means.items())
            + f"; {args.stage} runs {variant}")
        run_plan(plans[args.stage](variant), args.shard, args.only)
    elif args.stage == "baselines":  # fills the score stores ahead of the report (resumable)
        from transfer_report import precompute_baselines

        precompute_baselines(args)
    elif args.stage == "validation-baselines":  # the classic baselines on the validation archs (resumable)
        from transfer_report import precompute_validation_baselines

        precompute_validation_baselines(args)
    else:
        from transfer_report import report

        report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
