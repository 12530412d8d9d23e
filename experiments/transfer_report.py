"""The report stage of experiments/transfer.py: every formula and every baseline,
computed by us, on the same report archs of every space; the zoo entries.

Report archs were never used for any choice (transfer_spaces.py splits them
off before any search). NB201's three datasets use one fixed random draw of
``--nb201-report-archs`` of its report archs (seed 0), the same archs for
every proxy and dataset.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from transfer import (ALL_DATASETS, BUDGETS, DATASET_NAMES, LEFT_OUT_RUN, LEFT_OUT_RUN_THREE, NB201_DATASETS,
                      NET_PACKS, ONE_DATASET, RECORD, RESULTS, RUNS, SEARCH, SEEDS, SELECTION, SPACES, THREE,
                      VARIANTS, WARM_ROUNDS, best_nb201_variant, cache_of, ensure_cache, finished, formula_scores,
                      log, nb201_runs, nb201_settings, one_dataset_setting, one_dataset_suffix, parse_shard, seed_of,
                      selected, setting_runs, space_splits, task_of, taus_of, validation_labels, validation_scores,
                      variant_of, warm_round_of)

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "gpproxy" / "zoo"
# Baselines computed by us on the report archs (population-level ones rank the
# report archs of one space and dataset together).
CLASSIC_SET = ("params", "flops", "synflow", "jacov", "nwot", "zico", "meco")
# What the CPU budget allowed per column: AZ-NAS (~1.3 s/arch) on NB201, VKDNW (~2 s/arch at
# batch 16 with 10 classes) on NB201 CIFAR-10 (CIFAR-100 and ImageNet16-120: SUBSET_BASELINES).
COLUMN_BASELINES = {
    "nb201-c10": CLASSIC_SET + ("aznas", "vkdnw_agg", "vkdnw_single"),  # vkdnw_single: a component of vkdnw_agg
    "nb201-c100": CLASSIC_SET + ("aznas",),
    "nb201-in16": CLASSIC_SET + ("aznas",),
    "nb201-in16-32px": CLASSIC_SET + ("aznas",),
    "macro": CLASSIC_SET,
    "darts": CLASSIC_SET,
    "nb101": CLASSIC_SET,
}
CLASSIC = ("synflow", "jacov", "grad_norm", "nwot", "zico", "meco")
# grad_norm is the vocabulary formula sum_layers(frob(dW)) on the same statistics
# (gpproxy.baselines.grad_norm is defined by it), so it is scored from the caches.
VOCABULARY_BASELINES = {"grad_norm": "sum_layers(frob(dW))", "snip": "sum_layers(l1(mul(W, dW)))"}
# The proxy experiments/discover_nb201.py chose before this study, for comparison on the same archs.
PREVIOUS_NB201 = "previous NB201 proxy (discover_nb201 seed 2)"
PREVIOUS_NB201_FORMULA = "sum_layers(square(square(square(neg(relu(hamming(neg(sign(dW)))))))))"
# zoo:general before three-space settings were weighed (vocab+net+size's NB201 + NAS-Bench-Macro search)
PREVIOUS_GENERAL = "previous zoo:general (vocab+net+size, NB201 + NAS-Bench-Macro)"
PREVIOUS_GENERAL_FORMULA = ("sum_layers(square(eff_rank(dW)))", "network")
# Baselines need a network pass per arch (1-10 s each on this CPU): they are
# computed on this many report archs per column (the first of the fixed draw).
BASELINE_ARCHS = {"nb201-c10": 1000, "nb201-c100": 3000, "nb201-in16": 3000, "nb201-in16-32px": 1000, "macro": 150,
                  "darts": 80, "nb101": 60}
# VKDNW needs one backward pass per class (18 s per arch on CIFAR-100, 8 s on ImageNet16-120 here):
# on these columns `--stage baselines` computes it arch by arch up to n, and the report takes the prefix
# that is complete, in a block of its own beside AZ-NAS and the formulas on the same archs
# (population-level scores ranked among them).
SUBSET_BASELINES = {"nb201-c100": (("vkdnw_agg", "vkdnw_single"), 3000),
                    "nb201-in16": (("vkdnw_agg", "vkdnw_single"), 3000),
                    "nb201-in16-32px": (("vkdnw_agg", "vkdnw_single"), 1000)}  # 5-8 s per arch at 32x32
NB101_REPORT_ARCHS = 150  # its cache costs ~4 s per arch here: the first 150 of its report archs
# The same minibatch as the formulas' statistics (batch 16, Gaussian noise, seed 0):
# side by side on one input. experiments/verify_peers.py measures AZ-NAS and VKDNW
# under their own protocol (batch 64, CIFAR-10 images) against their published numbers.
BASELINE_BATCH = 16
BASELINE_INPUT = "noise"
PUBLISHED = {  # not our measurements: the authors' numbers on all 15,625 NB201 archs
    "VKDNW_agg (CVPR 2025, ondratybl/VKDNW table1)": {"c10": (0.750, 0.919), "c100": (0.753, 0.919),
                                                      "in16": (0.743, 0.906)},
    "AZ-NAS (CVPR 2024, its NB201 notebook)": {"c10": (0.741, 0.913)},
    "AZ-NAS (re-run in VKDNW's table1)": {"c10": (0.712, None), "c100": (0.696, None), "in16": (0.673, None)},
}


# NB201's report columns: (name, dataset, accuracy column, its nets' input resolution; None: the dataset's own).
# ImageNet16-120 twice: at its own 16x16 and at 32x32, the other columns' (and the search caches') input size,
# which the noise minibatch of a fully convolutional net allows; zoo:nb201's protocol is the one of the two its
# validation archs rank best (nb201_resolution).
NB201_COLUMNS = (("nb201-c10", "cifar10", "cifar10valid_valid", None),
                 ("nb201-c100", "cifar100", "cifar100_test", None),
                 ("nb201-in16", "imagenet16_120", "imagenet16_120_test", None),
                 ("nb201-in16-32px", "imagenet16_120", "imagenet16_120_test", 32))
NB201_RESOLUTIONS = (None, 32)  # zoo:nb201's input resolution: each dataset's own, or 32x32 for all


def nb201_columns(resolution="column") -> list:
    """[(name, dataset, accuracy column, cache spec)] of NB201's report columns: nets of the dataset's classes at
    each column's input resolution (``resolution``: at that one instead, None for each dataset's own; one entry
    per dataset)."""
    from gpproxy.config import TaskConfig
    from gpproxy.spaces import get_space
    from gpproxy.tasks import cache_spec

    spec10 = cache_spec(TaskConfig(**task_of("nb201")))  # the search cache's spec, built or not
    datasets = get_space("nb201").datasets()
    out, seen = [], set()
    for name, ds, column, res in NB201_COLUMNS:
        if resolution != "column":
            if ds in seen:
                continue
            res = resolution
        seen.add(ds)
        d = datasets[ds]
        out.append((name, ds, column, replace(spec10, num_classes=d.num_classes, resolution=res or d.resolution)))
    return out


def build_nb201_cache(cache: str, spec, archs: list, packs, what: str) -> None:
    """Build ``cache`` (and its "-net" twin where a pack of ``packs`` has whole-network terms) for ``archs``."""
    from gpproxy.cache import build_cache

    for net in dict.fromkeys(p in NET_PACKS for p in packs):
        root = cache_of("nb201", "network" if net else "default", cache)
        log(f"cache {root}: {len(archs)} {what} archs")
        build_cache(root, replace(spec, probe=replace(spec.probe, net_terms=net)), archs, jobs=2)


def targets(n_nb201: int, build: bool = True, packs=("default",), columns=None) -> dict:
    """name -> (space key, dataset, archs, accuracies, formula cache) of every report column (or of
    ``columns``); ``build`` builds the caches formulas of ``packs`` read (a "-net" twin for
    whole-network terms)."""
    from gpproxy.spaces import get_space

    out = {}
    bench, parts, acc = space_splits("nb201")
    rest = parts["report"]
    # a prefix of one fixed draw of 3,000, so a larger --nb201-report-archs extends a smaller one
    pick = np.sort(np.random.default_rng(0).choice(len(rest), 3000, replace=False))
    archs = [rest[i] for i in pick][:n_nb201]
    canon = get_space("nb201").canonical
    index = {canon(a): i for i, a in enumerate(bench.archs)}
    rows = [index[a] for a in archs]
    for name, ds, column, spec in nb201_columns():
        if columns is not None and name not in columns:
            continue
        cache = f"caches/transfer-{name}-report"  # apart from the search cache, which searches hold
        if build:
            build_nb201_cache(cache, spec, archs, packs, "report")
        out[name] = ("nb201", ds, archs, bench.accuracy(column)[rows], cache)
    for key in ("macro", "darts", "nb101"):
        if columns is not None and key not in columns:
            continue
        _, parts, acc = space_splits(key)
        ds = next(iter(get_space(SPACES[key].space).datasets()))  # each space's one dataset
        report = parts["report"][:NB101_REPORT_ARCHS] if key == "nb101" else parts["report"]
        for pack in dict.fromkeys(packs) if build else ():
            ensure_cache(key, report, pack)
        out[key] = (key, ds, report, np.array([acc[a] for a in report]),
                    SPACES[key].cache)
    return out


def column_baselines(col: str) -> tuple:
    return COLUMN_BASELINES[col]


def precompute_baselines(args) -> None:
    """Fill the columns' score stores; ``--shard K/N`` takes every N-th arch from the K-th, so
    N processes share a column (the store merges their saves)."""
    k, n_shards = parse_shard(args.shard)
    cols = targets(args.nb201_report_archs, build=False, columns=args.columns or None)
    for col, (key, ds, archs, _, _) in cols.items():
        names = [n for n in (args.baselines or column_baselines(col)) if n in column_baselines(col)]
        if names:
            log(f"{col}: baselines {', '.join(names)} on {BASELINE_ARCHS[col]} report archs")
            fill_store(col, key, ds, archs[:BASELINE_ARCHS[col]][k::n_shards], names)
        subset, n = SUBSET_BASELINES.get(col, ((), 0))
        names = [b for b in (args.baselines or subset) if b in subset]
        if names:
            log(f"{col}: baselines {', '.join(names)} on the first {n} report archs")
            fill_store(col, key, ds, archs[:n][k::n_shards], names)


# The classic baselines on the validation archs that choices are made on (NB201, NAS-Bench-Macro, DARTS): what a
# choice among rank aggregations of baselines and formulas (leave-one-space-out, as the settings' choice) reads.
VALIDATION_SPACES = ("nb201", "darts", "macro")  # cheapest first (about 3, 18 and 9 s per arch here)


def validation_column(key: str) -> str:
    return f"validation-{key}"


def precompute_validation_baselines(args) -> None:
    """Fill the validation score stores (``--shard K/N``: every N-th arch from the K-th; resumable)."""
    from gpproxy.spaces import get_space

    k, n_shards = parse_shard(args.shard)
    for key in args.columns or VALIDATION_SPACES:
        archs, _ = validation_labels(key)
        ds = next(iter(get_space(SPACES[key].space).datasets()))  # NB201: CIFAR-10, as searched
        names = [n for n in (args.baselines or CLASSIC_SET) if n in CLASSIC_SET]
        log(f"{key}: baselines {', '.join(names)} on its {len(archs)} validation archs")
        fill_store(validation_column(key), key, ds, archs[k::n_shards], names)


def column_store(col: str, key: str, ds_name: str):
    """(protocol, dataset, score store) of a column's baselines: one store per column, parallel-safe."""
    from gpproxy.scoring import Protocol
    from gpproxy.scoring.store import ScoreStore
    from gpproxy.spaces import get_space

    space = SPACES[key].space
    resolution = next((r for name, _, _, r in NB201_COLUMNS if name == col), None)
    protocol = Protocol(space=space, batch=BASELINE_BATCH, seed=0, input=BASELINE_INPUT, resolution=resolution)
    store = ScoreStore(RESULTS / f"transfer_{col}.scores.json.gz", protocol)  # gzip: a column is ~2 MB of JSON
    return protocol, get_space(space).datasets()[ds_name], store


def stored_prefix(col: str, key: str, ds_name: str, archs: list, names) -> int:
    """How many archs, from the first, have every baseline in the column's score store."""
    from gpproxy.scoring.proxies import per_arch, resolve_proxies
    from gpproxy.scoring.store import suite_key

    protocol, ds, store = column_store(col, key, ds_name)
    needed = [p.name for p in per_arch(resolve_proxies(list(names)))]
    for i, a in enumerate(archs):
        if any(store.get(ds.suite_name, suite_key(protocol.space, a), n) is None for n in needed):
            return i
    return len(archs)


def fill_store(col: str, key: str, ds_name: str, archs: list, names):
    """Compute what a column's store lacks of baselines ``names`` on ``archs``; column_store's triple."""
    from gpproxy.scoring.compute import compute_scores
    from gpproxy.scoring.proxies import resolve_proxies

    protocol, ds, store = column_store(col, key, ds_name)
    compute_scores(archs, ds, protocol, resolve_proxies(list(names)), store, log=log)
    return protocol, ds, store


def baseline_scores(col: str, key: str, ds_name: str, archs: list, names, compute: bool = True) -> dict:
    """{baseline: scores} of a column's archs from its store (``compute``: fill what it lacks first)."""
    from gpproxy.scoring.proxies import proxy_values, resolve_proxies
    from gpproxy.scoring.store import suite_key

    protocol, ds, store = fill_store(col, key, ds_name, archs, names) if compute else column_store(col, key, ds_name)
    space = protocol.space
    proxies = resolve_proxies(list(names))
    keys = [suite_key(space, a) for a in archs]
    return {p.name: proxy_values(store, ds.suite_name, keys, p) for p in proxies}


NBSZ_FILES = {  # NAS-Bench-Suite-Zero's published proxy scores (batch 64 CIFAR-10, NASLib's protocol)
    "nb201-c10": ROOT.parent / "shared" / "data" / "nb201" / "nb201_zc_proxies_cifar10.csv.gz",
    "darts": SPACES["darts"].benchmark,
    "nb101": SPACES["nb101"].benchmark,
}
NBSZ_PROXIES = ("synflow", "jacov", "grad_norm", "nwot", "snip", "fisher", "grasp", "epe_nas", "zen", "flops",
                "params")


def nbsz_block(col: str, key: str, archs: list, acc, ours: dict) -> dict | None:
    """Published NAS-Bench-Suite-Zero scores on the report archs that have them, beside our formulas there."""
    from gpproxy.benchmarks import load_benchmark
    from gpproxy.spaces import get_space

    path = NBSZ_FILES.get(col)
    if path is None or not path.exists():
        return None
    bench = load_benchmark(str(path), space=get_space(SPACES[key].space))
    row = {a: i for i, a in enumerate(bench.archs)}
    keep = [i for i, a in enumerate(archs) if a in row]
    if len(keep) < 20:
        return None
    rows = [row[archs[i]] for i in keep]
    y = np.asarray(acc)[keep]
    params = bench.accuracy("params")[rows]
    out = {f"{p} (NAS-Bench-Suite-Zero)": metrics(bench.accuracy(p)[rows], y, params)
           for p in NBSZ_PROXIES if p in bench.columns}
    out.update({label: metrics(np.asarray(s)[keep], y, params) for label, s in ours.items()})
    return out


def metrics(scores, acc, params) -> dict:
    """fitness.score_report, nDCG and τ within #params deciles; a non-finite score ranks last (NASLib's rule)."""
    from gpproxy.fitness import ndcg, score_report, size_groups, within_groups

    scores = np.asarray(scores, dtype=np.float64)
    bad = int((~np.isfinite(scores)).sum())
    scores = np.where(np.isfinite(scores), scores, -1e30)
    out = score_report(scores, acc)
    out.update(ndcg=ndcg(scores, acc), non_finite=bad,
               # deciles need >= 5 archs each: n/a (nan) below 50 archs
               within_params_deciles=(within_groups(scores, acc, size_groups(params, 10), "kendall")
                                      if len(acc) >= 50 else float("nan")))
    return out


PRODUCT_SIZES = (2, 3, 4)  # zoo:nb201 may be the product of the k best NB201-only searches
# larger products, on validation archs only (the report's ablation; not candidates for zoo:nb201)
LARGER_PRODUCTS = tuple(range(5, 13))


def product_formula(members: list) -> str:
    """log F1 + log F2 + ...: ranks archs as the product of the members' non-negative scores does, without
    the product's overflow (single scores reach 1e12); the vocabulary's log is log(|x| + 1e-8), so an arch
    a member scores 0 ranks last, as in the product."""
    out = f"log({members[0]})"
    for f in members[1:]:
        out = f"add({out}, log({f}))"
    return out


def products(ranked: list, scores: dict, runs: dict, sizes=PRODUCT_SIZES) -> dict:
    """{label: (formula, pack, member runs)}: for each k of ``sizes``, the product of the first k runs of
    ``ranked`` (best mean validation tau first) whose validation scores are all >= 0 (a product of scores of
    either sign ranks by neither) and whose pack is the best one's (one formula, one pack)."""
    pack = runs[ranked[0]][1]
    usable = [n for n in ranked if runs[n][1] == pack and (scores[n] >= 0).all()]
    return {f"product of the best {k}": (product_formula([runs[n][0] for n in usable[:k]]), pack, usable[:k])
            for k in sizes if len(usable) >= k}


def nb201_rule(ranked: list, runs: dict, scores: dict, taus: dict) -> dict:
    """zoo:nb201's rule on the NB201-only searches ``ranked`` (best mean validation tau first; ``scores`` and
    ``taus`` their validation scores and {dataset: tau}): of each search and each product of the k best, the
    formula with the best mean validation tau over the three datasets. Returns the choice ("run": a search or a
    product's label, "formula", "pack", "members", its "validation_tau" and "validation_mean_tau") and the
    products' ("products": members, "product_tau")."""
    combos = products(ranked, scores, runs)
    product_tau = taus_of(*validation_scores("nb201", {k: (f, p) for k, (f, p, _) in combos.items()},
                                             NB201_DATASETS))
    every = {**{n: taus[n] for n in ranked}, **product_tau}
    mean = {k: float(np.mean(list(t.values()))) for k, t in every.items()}
    best = max(mean, key=mean.get)
    formula, pack, members = combos[best] if best in combos else (*runs[best], [best])
    return {"run": best, "formula": formula, "pack": pack, "members": members, "validation_tau": every[best],
            "validation_mean_tau": mean[best], "products": {k: m for k, (_, _, m) in combos.items()},
            "product_tau": product_tau}


def choose_nb201(recorded: dict | None = None) -> dict:
    """zoo:nb201, the best proxy on NB201: of every NB201-only search (each variant; seeds 1 and 2
    where search2 ran them; search3's longer ones; search4's on all three datasets; search8's on
    ImageNet16-120, search9's on CIFAR-100; search10's and search11's warm-started) and of the products of
    the k best of them (PRODUCT_SIZES), the formula with the best mean Kendall tau over NB201's three
    datasets on NB201 validation archs (the targets are on each dataset). Its seeds, two ways: the seeds
    (0-2) of the setting of its (best) search, and the rule itself applied to each seed's searches alone
    ("seed_rules": zoo:nb201 is made of searches of several seeds, so this is the 3-seed spread of what
    made it). ``recorded``: {run: formula} for runs whose directory is not here (as a report recorded
    them)."""
    recorded = recorded or {}
    names = [n for v in nb201_settings() for n in nb201_runs(v)]
    runs = {name: selected(name) if finished(name) else (recorded[name], VARIANTS[variant_of(name)]["pack"])
            for name in names if finished(name) or name in recorded}
    scores, labels = validation_scores("nb201", runs, NB201_DATASETS)
    taus = taus_of(scores, labels)
    mean = {n: float(np.mean(list(t.values()))) for n, t in taus.items()}
    ranked = sorted((n for n in mean if np.isfinite(mean[n])), key=lambda n: -mean[n])
    choice = nb201_rule(ranked, runs, scores, taus)
    seed_rules = {}
    for seed in SEEDS:
        rule = nb201_rule([n for n in ranked if seed_of(n) == seed], runs, scores, taus)
        seed_rules[str(seed)] = {k: rule[k] for k in ("run", "members", "formula", "pack", "validation_tau",
                                                      "validation_mean_tau")}
    taus.update(choice["product_tau"])
    mean.update({k: float(np.mean(list(t.values()))) for k, t in choice["product_tau"].items()})
    variant = next(v for v in nb201_settings() if choice["members"][0] in nb201_runs(v))
    seeds = [n for n in nb201_runs(variant) if n in runs]
    longer, means = best_nb201_variant({n: t["c10"] for n, t in taus.items()})
    larger = products(ranked, scores, runs, LARGER_PRODUCTS)
    larger_tau = taus_of(*validation_scores("nb201", {k: (f, p) for k, (f, p, _) in larger.items()},
                                            NB201_DATASETS))
    return {"runs": {n: f for n, (f, _) in runs.items()}, "validation_tau": taus, "validation_mean_tau": mean,
            "products": choice["products"], "run": choice["run"],
            "search3": {"variant": longer, "seed_mean_validation_tau": means},
            "variant": variant, "seeds": seeds, "seed_rules": seed_rules,
            "larger_products": {k: {"members": m, "validation_tau": larger_tau[k]} for k, (_, _, m) in larger.items()},
            "formula": choice["formula"], "pack": choice["pack"],
            "resolution": nb201_resolution(choice["formula"], choice["pack"]),
            "rule": "of every NB201-only search (every variant, seeds 0-2 where run, search3's longer searches, "
                    "search4's on all three datasets, search8's on ImageNet16-120, search9's on CIFAR-100, search10's "
                    "and search11's warm-started from the earlier ones) and the "
                    "products of the best 2, 3 and 4 of them, the formula with the best mean Kendall tau over "
                    "NB201 CIFAR-10 valid, CIFAR-100 and ImageNet16-120 on NB201 validation archs; 3-seed means: "
                    "over the seeds of the setting of its (best) search, and over the rule applied to each seed's "
                    "searches alone"}


def resolution_label(resolution) -> str:
    return "own" if resolution is None else f"{resolution}px"


def validation_cache(spec) -> str:
    """The cache of NB201's validation archs as nets of ``spec``: the search cache for its own spec (CIFAR-10's
    nets at 32x32), else one per number of classes and input size."""
    if spec == nb201_columns(None)[0][3]:
        return SPACES["nb201"].cache
    return f"caches/transfer-nb201-validation-{spec.num_classes}c-{spec.resolution}px"


def nb201_resolution(formula: str, pack: str) -> dict:
    """zoo:nb201's input resolution, of NB201_RESOLUTIONS: the one at which ``formula`` ranks NB201's validation archs
    best, by the mean Kendall tau over the three datasets, each scored on nets of its dataset's classes at that
    input size (validation caches of those nets; CIFAR-10's at 32x32 is the search cache). Returns {"chosen":
    the resolution (None: each dataset's own), "validation_tau": {resolution_label: {dataset: tau}}, "rule"}."""
    archs, labels = validation_labels("nb201", NB201_DATASETS)
    dataset_of = {column: d for d, column in NB201_DATASETS.items()}
    taus, memo = {}, {}
    for res in NB201_RESOLUTIONS:
        t = {}
        for _, _, column, spec in nb201_columns(res):
            if spec not in memo:
                cache = validation_cache(spec)
                build_nb201_cache(cache, spec, archs, (pack,), "validation")
                memo[spec] = formula_scores("nb201", "validation", {"f": (formula, pack)}, cache=cache,
                                            archs=archs)["f"]
            d = dataset_of[column]
            t[d] = taus_of({"f": memo[spec]}, {d: labels[d]})["f"][d]
        taus[resolution_label(res)] = t
    mean = {r: float(np.mean(list(taus[resolution_label(r)].values()))) for r in NB201_RESOLUTIONS}
    return {"chosen": max(NB201_RESOLUTIONS, key=lambda r: mean[r]), "validation_tau": taus,
            "rule": "of each dataset's own input size and 32x32 for all, the one with the best mean Kendall tau over "
                    "NB201 CIFAR-10 valid, CIFAR-100 and ImageNet16-120 on NB201 validation archs, each scored on "
                    "nets of its dataset's classes at that size (the dataset's own on a tie)"}


def chosen_formulas() -> tuple:
    """(selection, nb201 choice, {label: (formula, pack)}, search seconds) from the searches' run directories."""
    sel = json.loads(SELECTION.read_text())
    chosen = sel["chosen"]
    nb = choose_nb201()
    prefix, _, joint = setting_runs(chosen)
    # zoo:general: the chosen setting's joint search on all its spaces
    formulas = {"zoo:general": selected(joint), "zoo:nb201": (nb["formula"], nb["pack"])}
    formulas.update({f"{n} (vocabulary formula)": (f, "default") for n, f in VOCABULARY_BASELINES.items()})
    formulas[PREVIOUS_NB201] = (PREVIOUS_NB201_FORMULA, "default")
    if formulas["zoo:general"] != PREVIOUS_GENERAL_FORMULA:
        formulas[PREVIOUS_GENERAL] = PREVIOUS_GENERAL_FORMULA
    # the transfer matrix: the setting's searches on each space alone (DARTS: search6) and without each
    for run in ("only-nb201", "only-macro", "only-darts", "without-nb201", "without-macro", "without-darts"):
        if finished(f"{prefix}-{run}") and f"{prefix}-{run}" != joint:  # the joint one is zoo:general
            formulas[run.replace("-", " ")] = selected(f"{prefix}-{run}")
    formulas.update(nb201_seed_formulas(nb))
    return sel, nb, formulas, search_seconds()


SEED_LABEL = "nb201 seed "  # + K: seed K of zoo:nb201's setting
RULE_SEED_LABEL = "nb201 rule on seed "  # + K: zoo:nb201's rule on seed K's searches alone


def nb201_seed_formulas(nb: dict) -> dict:
    """{label: (formula, pack)} of zoo:nb201's 3-seed means: the seeds of its setting, and its rule on each
    seed's searches alone."""
    out = {f"{SEED_LABEL}{seed}": (nb["runs"][name], VARIANTS[variant_of(name)]["pack"])
           for seed, name in enumerate(nb["seeds"])}
    out.update({f"{RULE_SEED_LABEL}{seed}": (r["formula"], r["pack"]) for seed, r in nb["seed_rules"].items()})
    return out


def is_seed_label(label: str) -> bool:
    return label.startswith((SEED_LABEL, RULE_SEED_LABEL))


def recorded_formulas() -> tuple:
    """The same four, as the last report recorded them (transfer.json): ``--recorded`` re-scores its
    choices on the report archs without the searches' run directories (a fresh checkout has none). An
    NB201-only search it did not record whose run directory is here (run since, e.g. search8) enters
    zoo:nb201's choice, made again by its rule beside the recorded ones."""
    path = RECORD
    if not path.exists():
        raise SystemExit(f"--recorded needs {path}, written by a report from the searches' run directories")
    prev = json.loads(path.read_text())
    formulas = {label: (f["formula"], f["pack"]) for label, f in prev["formulas"].items()}
    nb = prev["nb201_choice"]
    new_runs = any(finished(n) and n not in nb["runs"] for v in nb201_settings() for n in nb201_runs(v))
    if new_runs or "larger_products" not in nb:  # a new search, or a record from before the rule's ablations
        nb = choose_nb201(recorded=nb["runs"])
        formulas["zoo:nb201"] = (nb["formula"], nb["pack"])
        formulas = {k: v for k, v in formulas.items() if not is_seed_label(k)}
        formulas.update(nb201_seed_formulas(nb))
    if "resolution" not in nb:  # a record from before the input size was chosen: choose it (validation archs)
        nb = {**nb, "resolution": nb201_resolution(nb["formula"], nb["pack"])}
    return prev["selection"], nb, formulas, {**prev["search_seconds"], **search_seconds()}


def report(args) -> None:
    t0 = time.perf_counter()
    sel, nb, formulas, searched = recorded_formulas() if args.recorded else chosen_formulas()
    chosen = sel["chosen"]
    three = chosen.endswith(f"-{THREE}")  # searched on NB201, NAS-Bench-Macro and DARTS (search7)
    cols = targets(args.nb201_report_archs, packs=[p for _, p in formulas.values()])
    results, formulas_all, nbsz, subset = {}, {}, {}, {}
    for col, (key, ds, archs, acc, cache) in cols.items():
        log(f"{col}: {len(archs)} report archs")
        scores = formula_scores(key, "report", formulas, cache=cache, archs=archs)
        block = nbsz_block(col, key, archs, acc, {k: scores[k] for k in ("zoo:general", "zoo:nb201")})
        if block:
            nbsz[col] = block
        # the formulas on every report arch of the column; the baselines on the first BASELINE_ARCHS
        if key == "nb201":
            from gpproxy.spaces import nb201

            params_all = np.array([nb201.analytic_params(nb201.parse_arch(a)) for a in archs], dtype=float)
        else:
            from gpproxy.tasks import arch_params

            params_all = arch_params(cache, archs)  # conv + linear weights, from the cache's records
        formulas_all[col] = {label: metrics(s, acc, params_all) for label, s in scores.items()}
        # the baselines on the archs `--stage baselines` finished (a prefix of the column's archs)
        k = stored_prefix(col, key, ds, archs[:BASELINE_ARCHS[col]], column_baselines(col))
        log(f"{col}: baselines on the first {k} report archs")
        archs, acc, scores = archs[:k], acc[:k], {label: s[:k] for label, s in scores.items()}
        scores.update(baseline_scores(col, key, ds, archs, column_baselines(col), compute=False))
        params = scores["params"]
        results[col] = {label: metrics(s, acc, params) for label, s in scores.items()}
        if col in SUBSET_BASELINES:
            subset[col] = subset_block(col, key, ds, archs, acc, scores)
    out = {"protocol": protocol_text(args, chosen), "selection": sel, "nb201_choice": nb,
           "formulas": {k: {"formula": f, "pack": p} for k, (f, p) in formulas.items()},
           "search_seconds": searched, "report_seconds": round(time.perf_counter() - t0, 1),
           "results": results, "formulas_on_all_drawn": formulas_all, "nbsz": nbsz, "published": PUBLISHED,
           "subset_baselines": subset, "three_spaces": three, "left_out": left_out_labels(chosen)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(out, indent=1, default=float) + "\n")
    (RESULTS / "transfer.md").write_text(markdown(out))
    write_zoo(out)
    log((RESULTS / "transfer.md").read_text())


def subset_block(col, key, ds, archs, acc, scores) -> dict | None:
    """The costly baselines (SUBSET_BASELINES) on the first n archs they were computed on, beside the
    column's formulas and AZ-NAS on those same n archs (population-level scores ranked among the n)."""
    names, n = SUBSET_BASELINES[col]
    k = stored_prefix(col, key, ds, archs[:n], names)
    if k < 50:
        log(f"{col}: {', '.join(names)} on {k} archs only; run --stage baselines --columns {col}")
        return None
    part = {label: s[:k] for label, s in scores.items() if label in ("zoo:nb201", "zoo:general")}
    part.update(baseline_scores(col, key, ds, archs[:k], ("aznas", "params") + names, compute=False))
    return {label: metrics(s, acc[:k], part["params"]) for label, s in part.items() if label != "params"}


def search_seconds() -> dict:
    out = {}
    for d in sorted(RUNS.glob("*/wall_seconds.json")):
        out[d.parent.name] = json.loads(d.read_text())["seconds"]
    return out


def protocol_text(args, chosen) -> dict:
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch CPU",
            "formulas": "statistics caches at batch 16, Gaussian-noise input, init seed 0 (as searched)",
            "baselines": f"batch {BASELINE_BATCH}, input {BASELINE_INPUT}, seed 0 (the formulas' minibatch), "
                         "PyTorch default init; population-level baselines (aznas, vkdnw_agg) rank the report "
                         "archs of one column together",
            "nb201_report_archs": args.nb201_report_archs, "chosen_variant": chosen, "recorded": args.recorded,
            "variants": VARIANTS, "labels": {k: s.label for k, s in SPACES.items()}}


SPACE_NAMES = {"nb201": "NB201", "macro": "NAS-Bench-Macro", "darts": "DARTS"}
COLUMNS = tuple(c for c, *_ in NB201_COLUMNS) + ("macro", "darts", "nb101")


def tau_cells(t: dict) -> str:
    """The CIFAR-10 valid | CIFAR-100 | ImageNet16-120 cells of a row of validation taus {"c10", "c100", "in16"}."""
    return f"{t['c10']:.3f} | {t['c100']:.3f} | {t['in16']:.3f}"


def markdown(out) -> str:
    R = out["results"]
    lines = ["# Discovery for transfer: the report", "",
             ("Command: `python experiments/transfer.py --stage report --recorded` (the choices as transfer.json "
              "recorded them after search1 to search11 and select; zoo:nb201 chosen again, by the same rule, when an "
              "NB201-only search's run directory was new to the record or the record lacked the rule's per-seed "
              "choices and larger products; its input size chosen, on validation archs, when the record lacked "
              "it) "
              if out["protocol"].get("recorded") else
              "Command: `python experiments/transfer.py --stage report` (after search1 to search11 and select) ")
             + f"on {out['protocol']['machine']}. Report archs were split off before any search and never "
             "used for a choice. Columns: "
             + "; ".join(f"{c}: {R[c][next(iter(R[c]))]['n']} archs" for c in COLUMNS if c in R)
             + ".", "",
             f"- formulas: {out['protocol']['formulas']}", f"- baselines: {out['protocol']['baselines']}",
             "- DARTS labels are NB301 *surrogate* predictions, not trainings; NB101 was searched by nothing.",
             "- nan: a constant score (no ranking), or τ within #params deciles on fewer than 50 archs.", ""]
    lines += ["## Leave-one-space-out choice of the search settings (validation archs only)", "",
              "Each space is scored with the formula of the setting's search that did not see it: "
              + ", ".join(f"{s} by its {r.replace('-', ' ')} search" for s, r in LEFT_OUT_RUN.items())
              + f"; settings searched on three spaces (-{THREE}, search7): "
              + ", ".join(f"{s} by its {r.replace('-', ' ')} search" for s, r in LEFT_OUT_RUN_THREE.items())
              + ". zoo:general is the chosen setting's joint search.", "",
              "| setting | " + " | ".join(f"τ on {s}" for s in LEFT_OUT_RUN) + " | mean |",
              "|---" * (len(LEFT_OUT_RUN) + 2) + "|"]
    for v, row in out["selection"]["variants"].items():
        mark = " (chosen)" if v == out["selection"]["chosen"] else ""
        lines.append(f"| {v}{mark} | " + " | ".join(f"{row['left_out_validation_tau'][s]:.3f}" for s in LEFT_OUT_RUN)
                     + f" | {row['mean']:.3f} |")
    nb = out["nb201_choice"]
    lines += ["", "## zoo:nb201: every NB201-only search, and the products of the best 2, 3 and 4, on NB201 "
              "validation archs (the best mean τ over the three datasets is zoo:nb201; the setting of its (best) "
              f"search, {nb['variant']}, gives the seeds of one 3-seed mean)", "",
              "A product of the k best searches' formulas is one formula, Σ log|F| (ranked as the product of the "
              "members' non-negative scores); its members are the k best by mean validation τ whose validation "
              "scores are all ≥ 0 and whose pack is the best one's.", "",
              "search3's longer searches ("
              + ", ".join(f"-{b}: population {x['population']} x {x['generations']} generations"
                          for b, x in BUDGETS.items())
              + f"; the others {SEARCH['population']} x {SEARCH['generations']}) are of the variant whose three "
              "NB201-only seeds have the best mean CIFAR-10 validation τ: "
              + ", ".join(f"{v} {t:.3f}" for v, t in nb["search3"]["seed_mean_validation_tau"].items())
              + f". search4's (-{ALL_DATASETS}) are that variant with the -xl budget and a fitness that is the "
              "minimum over the three datasets; "
              + ", ".join(f"{stage}'s (-{one_dataset_suffix(d)}) the same with a fitness on {DATASET_NAMES[d]} "
                          "accuracies alone"
                          for stage, d in ONE_DATASET.items())
              + f"; search10's (-{WARM_ROUNDS['search10']}) the same, warm-started from every earlier NB201-only "
              "search's formula of its pack, with a fitness that is the mean over the three datasets; "
              f"search11's (-{WARM_ROUNDS['search11']}) a second such round, seeded with search10's formulas too"
              + " (the others search CIFAR-10 valid labels only). Validation τ is "
              "measured on the search cache (CIFAR-10-shaped nets) against each dataset's accuracies.", "",
              "| search | validation τ C10 | C100 | IN16 | mean | formula |", "|---|---|---|---|---|---|"]
    for name, mean in sorted(nb["validation_mean_tau"].items(), key=lambda kv: -kv[1]):
        mark = " (zoo:nb201)" if name == nb["run"] else ""
        t = nb["validation_tau"][name]
        members = nb.get("products", {}).get(name)
        what = ("Σ log of " + ", ".join(members)) if members else f"`{nb['runs'][name]}`"
        lines.append(f"| {name}{mark} | {tau_cells(t)} | {mean:.3f} | {what} |")
    if nb.get("larger_products"):
        lines += ["", "Larger products of the same ranking, on validation archs (an ablation, not candidates for "
                  "zoo:nb201: its rule weighs k = 2 to 4):", "", "| k | validation τ C10 | C100 | IN16 | mean |",
                  "|---|---|---|---|---|"]
        for label, p in nb["larger_products"].items():
            t = p["validation_tau"]
            lines.append(f"| {len(p['members'])} | {tau_cells(t)} | {np.mean(list(t.values())):.3f} |")
    if "seed_rules" in nb:
        lines += ["", "zoo:nb201's rule on each seed's searches alone (zoo:nb201 is made of searches of several "
                  "seeds: these three are the seeds of the Targets table's second 3-seed mean):", "",
                  "| seed | its choice | validation τ C10 | C100 | IN16 | mean | members |",
                  "|---|---|---|---|---|---|---|"]
        for seed, r in nb["seed_rules"].items():
            t = r["validation_tau"]
            lines.append(f"| {seed} | {r['run']} | {tau_cells(t)} | {r['validation_mean_tau']:.3f} | "
                         f"{', '.join(r['members'])} |")
    if "resolution" in nb:
        r = nb["resolution"]
        lines += ["", "zoo:nb201's input resolution (its protocol; chosen after the formula, on validation archs): "
                  + r["rule"] + ". The search caches hold CIFAR-10's nets at 32x32; the minibatch is Gaussian noise, "
                  "and NB201's nets are fully convolutional up to a global pooling, so any input size runs.", "",
                  "| input size | validation τ C10 | C100 | IN16 | mean |", "|---|---|---|---|---|"]
        for res in NB201_RESOLUTIONS:
            t = r["validation_tau"][resolution_label(res)]
            mark = " (chosen)" if res == r["chosen"] else ""
            size = "each dataset's own (IN16: 16x16)" if res is None else f"{res}x{res} for all"
            lines.append(f"| {size}{mark} | {tau_cells(t)} | {np.mean(list(t.values())):.3f} |")
    saw = {"zoo:general": "zoo:general: " + (" + ".join(SPACE_NAMES.values()) if out.get("three_spaces")
                                             else "NB201 + NAS-Bench-Macro"),
           "only nb201": "NB201", "only macro": "NAS-Bench-Macro", "only darts": "DARTS",
           "without nb201": "NAS-Bench-Macro + DARTS", "without macro": "NB201 + DARTS",
           "without darts": "NB201 + NAS-Bench-Macro"}
    lines += ["", "## Transfer matrix (Kendall τ on report archs; rows: what the search saw, the chosen setting; "
              "no search saw NB101)", "",
              "| searched on | formula | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for label in (k for k in saw if k in out["formulas"]):
        f = out["formulas"][label]["formula"]
        lines.append(f"| {saw[label]} | `{f}` | " + " | ".join(_cell(R, c, label) for c in COLUMNS) + " |")
    lines += ["", "## Targets", ""] + targets_lines(out)
    lines += ["", "## Every proxy on every space (τ / ρ / nDCG / top-10% / τ within #params deciles)", ""]
    for c in COLUMNS:
        if c not in R:
            continue
        lines += [f"### {c}", "", "| proxy | τ | ρ | nDCG | top-10% | τ in #params deciles |",
                  "|---|---|---|---|---|---|"]
        for label, m in sorted(R[c].items(), key=lambda kv: -kv[1]["kendall"]):
            bad = f" ({m['non_finite']} failed)" if m["non_finite"] else ""
            lines.append(f"| {label}{bad} | {m['kendall']:.3f} | {m['spearman']:.3f} | {m['ndcg']:.4f} | "
                         f"{m['top10pct']:.2f} | {m['within_params_deciles']:.3f} |")
        lines.append("")
    for c, block in out.get("subset_baselines", {}).items():
        if not block:
            continue
        n = next(iter(block.values()))["n"]
        lines += [f"### {c}: VKDNW_agg on the first {n} of these archs (its cost: one backward pass per class)",
                  "", "Population-level scores rank these n archs among themselves.", "",
                  "| proxy | τ | ρ | nDCG | top-10% | τ in #params deciles |", "|---|---|---|---|---|---|"]
        for label, m in sorted(block.items(), key=lambda kv: -kv[1]["kendall"]):
            lines.append(f"| {label} | {m['kendall']:.3f} | {m['spearman']:.3f} | {m['ndcg']:.4f} | "
                         f"{m['top10pct']:.2f} | {m['within_params_deciles']:.3f} |")
        lines.append("")
    F = out["formulas_on_all_drawn"]
    if F:
        lines += ["## The formulas on every report arch of each column (τ / ρ / top-10%; n: "
                  + ", ".join(f"{c} {F[c]['zoo:nb201']['n']}" for c in F) + ")", "",
                  "| formula | " + " | ".join(F) + " |", "|---" * (len(F) + 1) + "|"]
        for label in F["nb201-c10"]:
            lines.append(f"| {label} | " + " | ".join(
                f"{F[c][label]['kendall']:.3f} / {F[c][label]['spearman']:.3f} / {F[c][label]['top10pct']:.2f}"
                for c in F) + " |")
        lines.append("")
    for c, block in out.get("nbsz", {}).items():
        n = next(iter(block.values()))["n"]
        lines += [f"## {c}: NAS-Bench-Suite-Zero's published scores on the {n} report archs it covers "
                  "(not computed by us; batch 64 CIFAR-10, NASLib's protocol)", "",
                  "| proxy | τ | ρ | nDCG | top-10% | τ in #params deciles |", "|---|---|---|---|---|---|"]
        for label, m in sorted(block.items(), key=lambda kv: -kv[1]["kendall"]):
            lines.append(f"| {label} | {m['kendall']:.3f} | {m['spearman']:.3f} | {m['ndcg']:.4f} | "
                         f"{m['top10pct']:.2f} | {m['within_params_deciles']:.3f} |")
        lines.append("")
    lines += ["## Published numbers (not our measurements; all 15,625 NB201 archs, their protocols)", "",
              "| proxy | C10 τ / ρ | C100 τ / ρ | IN16 τ / ρ |", "|---|---|---|---|"]
    for name, row in out["published"].items():
        lines.append(f"| {name} | " + " | ".join(
            (f"{row[d][0]:.3f}" + (f" / {row[d][1]:.3f}" if row[d][1] else "")) if d in row else ""
            for d in ("c10", "c100", "in16")) + " |")
    lines += ["", "Formulas:", ""] + [f"- {k} ({v['pack']}): `{v['formula']}`" for k, v in out["formulas"].items()]
    lines += ["", "Search wall seconds (cache building included where the run built it; each stage's searches ran "
              "side by side on the 2 cores, so a search alone takes less: search4's three ran beside search5's two, "
              "five processes; search8's two then one, search9's, search10's and search11's three at once): "
              f"{out['search_seconds']}",
              f"Report wall seconds: {out['report_seconds']}", ""]
    return "\n".join(lines)


def left_out_labels(chosen: str) -> dict:
    """{report column: the label of the chosen setting's search that did not see the column's space}
    (zoo:general where that search is the joint one, and on NB101, which no search saw)."""
    prefix, runs, joint = setting_runs(chosen)
    label = {s: "zoo:general" if run == joint else run.removeprefix(f"{prefix}-").replace("-", " ")
             for s, run in runs.items()}
    return {c: label.get(c.split("-")[0], "zoo:general") for c in COLUMNS}


def targets_lines(out) -> list:
    """The issue's targets, each with its margin (positive: met)."""
    R, lines = out["results"], []
    three = out.get("three_spaces")
    which = ("the joint search on the other two of NB201, NAS-Bench-Macro and DARTS (search7); NB101: zoo:general "
             "itself (no search saw it)" if three else
             "NB201 columns: the search on NAS-Bench-Macro alone; NAS-Bench-Macro: the search on NB201 alone; "
             "DARTS and NB101: zoo:general itself (no search saw them)")
    lines += ["Transfer: on each space's report archs, the formula of a search (chosen settings) that did not see "
              f"that space vs. the best of FLOPs, #params and the classic proxies computed there: {which}.", "",
              "| column | formula (search that did not see it) | τ | best baseline | its τ | margin |",
              "|---|---|---|---|---|---|"]
    for c in COLUMNS:
        if c not in R:
            continue
        label = out["left_out"][c]
        rivals = {b: R[c][b]["kendall"] for b in ("flops", "params") + CLASSIC if b in R[c]}
        rivals.update({b: R[c][b]["kendall"] for b in R[c] if b.startswith("grad_norm")})
        best = max(rivals, key=rivals.get)
        tau = R[c][label]["kendall"]
        lines.append(f"| {c} | {label} | {tau:.3f} | {best} | {rivals[best]:.3f} "
                     f"| {tau - rivals[best]:+.3f} |")
    lines += ["", "NB201 (zoo:nb201; target τ ≥ 0.77 and ρ ≥ 0.93 on each dataset, 3-seed mean τ ≥ 0.75, above "
              "AZ-NAS and VKDNW_agg measured by us on the same archs). zoo:nb201 and its seeds on every report arch "
              "of the column; the peers on the archs they were computed on, with zoo:nb201 re-measured there. Each "
              "column's formulas and baselines see the same nets and minibatch; the rows marked zoo:nb201's protocol "
              "are at the input size chosen for it on validation archs:", "",
              "| column (n) | zoo:nb201 τ (margin to 0.77) | ρ (margin to 0.93) | 3-seed mean τ ± std (its setting's "
              "searches) | 3-seed mean τ ± std (its rule on each seed's searches; margin to 0.75) | aznas τ | "
              "vkdnw_agg τ |",
              "|---|---|---|---|---|---|---|"]
    chosen = out["nb201_choice"].get("resolution", {}).get("chosen")
    for c, *_ in NB201_COLUMNS:
        if c not in R:
            continue
        mark = " (zoo:nb201's protocol)" if c in protocol_columns(chosen) else ""
        every = out["formulas_on_all_drawn"][c]
        m = every["zoo:nb201"]
        seeds = [m2["kendall"] for label, m2 in every.items() if label.startswith(SEED_LABEL)]
        rule_seeds = [m2["kendall"] for label, m2 in every.items() if label.startswith(RULE_SEED_LABEL)]
        peer = {b: (f"{R[c][b]['kendall']:.3f} on {R[c][b]['n']} (zoo:nb201 {R[c]['zoo:nb201']['kendall']:.3f})"
                    if b in R[c] else "not computed") for b in ("aznas", "vkdnw_agg")}
        sub = out.get("subset_baselines", {}).get(c)
        if "vkdnw_agg" not in R[c] and sub:  # the costly one on a prefix: zoo:nb201 and AZ-NAS there too
            peer["vkdnw_agg"] = (f"{sub['vkdnw_agg']['kendall']:.3f} on the first {sub['vkdnw_agg']['n']} "
                                 f"(zoo:nb201 {sub['zoo:nb201']['kendall']:.3f}, aznas {sub['aznas']['kendall']:.3f})")
        # four decimals for margins: a target met or missed by less than 0.0005 must not read as +0.000
        lines.append(f"| {c}{mark} ({m['n']}) | {m['kendall']:.4f} ({m['kendall'] - 0.77:+.4f}) | {m['spearman']:.4f} "
                     f"({m['spearman'] - 0.93:+.4f}) | {np.mean(seeds):.3f} ± {np.std(seeds):.3f} | "
                     f"{np.mean(rule_seeds):.3f} ± {np.std(rule_seeds):.3f} ({np.mean(rule_seeds) - 0.75:+.4f}) | "
                     f"{peer['aznas']} | {peer['vkdnw_agg']} |")
    return lines


def protocol_columns(resolution) -> set:
    """NB201's report columns measured at the input size ``resolution`` (None: each dataset's own): one per
    dataset, the column at that size, else the dataset's own-size column."""
    out = set()
    for ds in dict.fromkeys(d for _, d, _, _ in NB201_COLUMNS):
        cols = {r: c for c, d, _, r in NB201_COLUMNS if d == ds}
        out.add(cols.get(resolution, cols[None]))
    return out


def _cell(R, c, label):
    m = R.get(c, {}).get(label)
    return f"{m['kendall']:.3f}" if m else ""


def nb201_origin(nb: dict) -> str:
    """What zoo:nb201's formula was searched on: one NB201-only search, or the product of several."""
    def labels(run):
        if f"-{ALL_DATASETS}-" in f"{run}-":
            return "CIFAR-10 valid, CIFAR-100 and ImageNet16-120 accuracies"
        if warm_round_of(run) is not None:
            return ("CIFAR-10 valid, CIFAR-100 and ImageNet16-120 accuracies (their mean), warm-started from the "
                    "earlier searches' formulas")
        one = [d for d in ONE_DATASET.values() if run.startswith(f"{one_dataset_setting(variant_of(run), d)}-")]
        return f"{DATASET_NAMES[one[0] if one else 'c10']} accuracies"

    members = nb.get("products", {}).get(nb["run"])
    if not members:
        return f"searched on NB201 {labels(nb['run'])}"
    runs_of: dict = {}
    for run in members:
        runs_of.setdefault(labels(run), []).append(run)
    return (f"the product of the {len(members)} NB201-only searches with the best validation τ: "
            + "; ".join(f"{', '.join(runs)} searched on {label}" for label, runs in runs_of.items()))


def write_zoo(out) -> None:
    R = out["results"]
    ZOO.mkdir(exist_ok=True)
    entries = {
        "general": ("zoo:general", "the proxy to use on a space gpproxy has never seen: searched jointly on " + (
            "NB201, NAS-Bench-Macro and DARTS" if out.get("three_spaces") else "NB201 and NAS-Bench-Macro")
            + " with the settings chosen by leave-one-space-out; "
            + ("NB101 was" if out.get("three_spaces") else "DARTS and NB101 were") + " not in its search"),
        "nb201": ("zoo:nb201", "the best proxy on NB201 (" + nb201_origin(out["nb201_choice"])
                  + "); an NB201 specialist: use zoo:general elsewhere"),
    }
    if PREVIOUS_GENERAL in out["formulas"]:  # kept by name for whoever measured or exported it
        entries["general-2spaces"] = (PREVIOUS_GENERAL, "zoo:general until three-space settings were weighed: "
                                      "searched jointly on NB201 and NAS-Bench-Macro with the settings chosen by "
                                      "two-space leave-one-space-out; DARTS and NB101 were not in its search")
    for name, (label, use) in entries.items():
        f = out["formulas"][label]
        protocol = {"batch": 16, "input": "noise", "seed": 0}
        res = out["nb201_choice"].get("resolution", {}).get("chosen") if name == "nb201" else None
        if res is not None:  # zoo:nb201's chosen input size (nb201_resolution); the others: each dataset's own
            protocol["resolution"] = res
        entry = {"name": name, "formula": f["formula"], "pack": f["pack"], "use": use, "protocol": protocol,
                 # NB201: on all drawn report archs (the baselines' side-by-side subset is smaller)
                 "measured": {c: {k: out["formulas_on_all_drawn"].get(c, R[c])[label][k]
                                  for k in ("kendall", "spearman", "ndcg", "top10pct", "within_params_deciles", "n")}
                              for c in COLUMNS if c in R},
                 "source": "experiments/transfer.py (experiments/results/transfer.md)"}
        (ZOO / f"{name}.json").write_text(json.dumps(entry, indent=1) + "\n")
