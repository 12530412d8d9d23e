"""Discovery for transfer, and the one report (issue: discovery quality, round 2).

Stages (each resumable: runs resume, caches complete, scores are stored):

``search1``  for each search variant (vocabulary x size-robust fitness, VARIANTS)
             one search per leave-one-space-out set (NB201, NAS-Bench-Macro,
             DARTS minus one) and one joint search (all three).
``select``   leave-one-space-out choice of the variant: the formula each run
             selects (its own rule, on its search archs) is scored on the
             VALIDATION archs of the space the run left out; the variant with
             the best mean is chosen. Nothing here reads a report arch.
``search2``  with the chosen variant: one search per single space (the transfer
             matrix's rows); NB201 alone also with seeds 1 and 2 (zoo:nb201 is
             the seed with the best NB201 validation tau).
``report``   every formula and every baseline on the REPORT archs of every space
             (NB201 CIFAR-10 valid / CIFAR-100 / ImageNet16-120, NAS-Bench-Macro,
             DARTS, and NB101, which no search saw): Kendall tau, Spearman rho,
             nDCG (VKDNW's definition), top-10% precision, tau within #params
             deciles. Writes experiments/results/transfer.{json,md} and the zoo
             entries gpproxy/zoo/*.json.

    .venv/bin/python experiments/transfer.py --stage search1 [--shard 0/2]
    .venv/bin/python experiments/transfer.py --stage select
    .venv/bin/python experiments/transfer.py --stage search2 [--shard 0/2]
    .venv/bin/python experiments/transfer.py --stage report
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))
from transfer_spaces import SEARCHED, SPACES, splits  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
RUNS = ROOT / "runs" / "transfer"
SELECTION = RESULTS / "transfer_selection.json"

VARIANTS = {  # compared by leave-one-space-out on validation archs
    "base": {"pack": "default", "size_weight": 0.0},
    "size": {"pack": "default", "size_weight": 0.5},
    "vocab+size": {"pack": "transfer", "size_weight": 0.5},
}
SEARCH = {"population": 100, "generations": 20, "init_min_height": 2, "init_max_height": 5, "max_height": 9,
          "seed_baselines": True, "backend": "serial", "jobs": 1}
FITNESS = {"correlation": "kendall", "subsets": 5, "subset_fraction": 0.5, "combine": "min"}


def log(msg):
    print(msg, flush=True)


def config(name: str, spaces, variant: str, seed: int = 0, **search) -> dict:
    v = VARIANTS[variant]
    return {"name": name, "seed": seed, "device": "auto",
            "search": {**SEARCH, "pack": v["pack"], **search},
            "fitness": {**FITNESS, "size_weight": v["size_weight"]},
            "task": [SPACES[s].task() for s in spaces]}


def plan_search1() -> dict:
    plan = {}
    for v in VARIANTS:
        for left_out in SEARCHED:
            plan[f"{v}-without-{left_out}"] = config(f"{v}-without-{left_out}",
                                                     [s for s in SEARCHED if s != left_out], v)
        plan[f"{v}-joint"] = config(f"{v}-joint", SEARCHED, v)
    return plan


def plan_search2(chosen: str) -> dict:
    """The transfer matrix's single-space rows; NB201 alone also with seeds 1 and 2 (zoo:nb201)."""
    plan = {f"{chosen}-only-{s}": config(f"{chosen}-only-{s}", [s], chosen) for s in SEARCHED}
    for seed in (1, 2):
        name = f"{chosen}-only-nb201-s{seed}"
        plan[name] = config(name, ["nb201"], chosen, seed)
    return plan


def run_plan(plan: dict, shard: str, only: str = "*") -> None:
    from fnmatch import fnmatch

    from gpproxy import evolve
    from gpproxy.errors import GpproxyError

    k, n = (int(x) for x in shard.split("/"))
    names = [name for name in plan if fnmatch(name, only)]
    for i, name in enumerate(names):
        cfg = plan[name]
        if i % n != k:
            continue
        t0 = time.perf_counter()
        try:
            run = evolve(cfg, RUNS / name, plots=False, log=lambda m: None)
        except GpproxyError as e:  # e.g. another process owns the run directory: the next pass resumes it
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


def formula_scores(key: str, part: str, formulas: dict, cache: str | None = None, archs=None) -> dict:
    """{label: scores} of formulas {label: (formula, pack)} on a part of a space's archs."""
    from gpproxy.cache import open_cache
    from gpproxy.evaluator import score_on_cache
    from gpproxy.pack import load_pack

    _, parts, _ = space_splits(key)
    archs = parts[part] if archs is None else archs
    c = open_cache(cache or SPACES[key].cache)
    out = {}
    by_pack: dict = {}
    for label, (formula, pack) in formulas.items():
        by_pack.setdefault(pack, {})[label] = formula
    for pack, group in by_pack.items():
        sc = score_on_cache(c, archs, list(dict.fromkeys(group.values())), load_pack(pack))
        out.update({label: np.asarray(sc[f], dtype=np.float64) for label, f in group.items()})
    return out


def validation_tau(key: str, formulas: dict) -> dict:
    from gpproxy.fitness import kendall

    _, parts, acc = space_splits(key)
    archs = parts["validation"][:SPACES[key].selection_archs]
    y = np.array([acc[a] for a in archs])
    return {label: kendall(s, y) if np.isfinite(s).all() else float("nan")
            for label, s in formula_scores(key, "validation", formulas, archs=archs).items()}


def selected(name: str) -> tuple:
    from gpproxy import Run

    run = Run.open(RUNS / name)
    return run.selected.formula, run.config.search.pack


def stage_select() -> dict:
    rows = {}
    for v in VARIANTS:
        taus = {}
        for left_out in SEARCHED:
            name = f"{v}-without-{left_out}"
            taus[left_out] = validation_tau(left_out, {name: selected(name)})[name]
        rows[v] = {"left_out_validation_tau": taus, "mean": float(np.mean(list(taus.values()))),
                   "min": float(np.min(list(taus.values())))}
        log(f"{v}: " + ", ".join(f"{s} {t:.3f}" for s, t in taus.items()) + f"; mean {rows[v]['mean']:.3f}")
    chosen = max(rows, key=lambda v: rows[v]["mean"])
    out = {"rule": "variant with the highest mean Kendall tau, over the three searched spaces, of the formula "
                   "selected by the search that left that space out, on that space's validation archs",
           "variants": rows, "chosen": chosen}
    SELECTION.parent.mkdir(parents=True, exist_ok=True)
    SELECTION.write_text(json.dumps(out, indent=1) + "\n")
    log(f"chosen variant: {chosen}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=("search1", "select", "search2", "baselines", "report"), required=True)
    ap.add_argument("--baselines", nargs="*", default=None,
                    help="--stage baselines: which ones to compute into the score stores (default: all)")
    ap.add_argument("--columns", nargs="*", default=None, help="--stage baselines: which report columns")
    ap.add_argument("--shard", default="0/1", help="K/N: this process runs every N-th search from the K-th")
    ap.add_argument("--only", default="*", help="run only the searches whose name matches this glob")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--nb201-report-archs", type=int, default=1000,
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
    elif args.stage == "search2":
        run_plan(plan_search2(json.loads(SELECTION.read_text())["chosen"]), args.shard, args.only)
    elif args.stage == "baselines":  # fills the score stores ahead of the report (resumable)
        from transfer_report import precompute_baselines

        precompute_baselines(args)
    else:
        from transfer_report import report

        report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
