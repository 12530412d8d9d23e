"""Do whole-network scores or population-level (log-rank) combination help the NB201 proxy?

Issue 12 asks for whole-network terms (an input-logit Jacobian, a network-level
NASWOT kernel) and population-level combination (AZ-NAS's and VKDNW_agg's
Σ log-rank) in the vocabulary, kept only where an ablation shows they help.
This measures it on the NB201 SELECTION archs (the 500 validation archs that
every choice of experiments/transfer.py is made on; no report arch is read):

* each whole-network baseline alone (jacov: the input-logit Jacobian's
  correlation spectrum; nwot: NASWOT's network-level kernel; FLOPs, #params,
  the AZ-NAS terms, synflow, grad_norm), computed by gpproxy at the caches'
  protocol (batch 16, noise input, seed 0);
* the selected NB201 formula (``zoo:nb201``) alone, and Σ log-rank of it with
  each of them (AZ-NAS's aggregation), and with the other NB201 searches'
  selected formulas.

Writes experiments/results/combine_ablation.{md,json}. Resumable: baseline
scores live in caches/combine_ablation/ (about 1 s per arch on one core).

    .venv/bin/python experiments/combine_ablation.py
"""
from __future__ import annotations

import json
import platform
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from transfer import RUNS, ensure_cache, formula_scores, space_splits  # noqa: E402
from transfer_spaces import SPACES  # noqa: E402

WHOLE_NETWORK = ("jacov", "nwot", "flops", "params", "synflow", "grad_norm",
                 "az_expressivity", "az_progressivity", "az_trainability")
NB201_RUNS = ("vocab+size-only-nb201", "vocab+size-only-nb201-s1", "vocab+size-only-nb201-s2")
STORE = ROOT / "caches" / "combine_ablation" / "val500.scores.json"
OUT = ROOT / "experiments" / "results" / "combine_ablation"


def baseline_scores(archs: list) -> dict:
    from gpproxy.scoring import Protocol
    from gpproxy.scoring.compute import compute_scores
    from gpproxy.scoring.proxies import resolve_proxies
    from gpproxy.scoring.store import ScoreStore, suite_key
    from gpproxy.spaces import get_space

    protocol = Protocol(batch=16, seed=0, input="noise")
    ds = get_space("nb201").datasets()["cifar10"]
    STORE.parent.mkdir(parents=True, exist_ok=True)
    store = ScoreStore(STORE, protocol)
    compute_scores(archs, ds, protocol, resolve_proxies(WHOLE_NETWORK), store)
    keys = [suite_key("nb201", a) for a in archs]
    return {n: store.scores(ds.suite_name, keys, n) for n in WHOLE_NETWORK}


def main() -> int:
    from gpproxy import Run, zoo
    from gpproxy.baselines_peers import log_rank_aggregate
    from gpproxy.fitness import kendall

    s = SPACES["nb201"]
    if not s.benchmark.exists():
        print(f"needs {s.benchmark}; skipping")
        return 0
    _, parts, acc = space_splits("nb201")
    archs = parts["validation"][:s.selection_archs]
    ensure_cache("nb201", archs)
    y = np.array([acc[a] for a in archs])
    zoo_nb201 = zoo.entry("zoo:nb201")
    formulas = {"zoo:nb201": (zoo_nb201.formula, zoo_nb201.pack)}
    for name in NB201_RUNS:
        run = Run.open(RUNS / name)
        if run.selected.formula != zoo_nb201.formula:
            formulas[name] = (run.selected.formula, run.config.search.pack)
    scores = formula_scores("nb201", "validation", formulas, archs=archs)
    scores.update(baseline_scores(archs))

    def tau(v):
        return float(kendall(v, y)) if np.isfinite(v).all() else float("nan")

    alone = {k: tau(v) for k, v in scores.items()}
    with_zoo = {k: tau(log_rank_aggregate([scores["zoo:nb201"], v])) for k, v in scores.items() if k != "zoo:nb201"}
    pairs = {f"{a} + {b}": tau(log_rank_aggregate([scores["zoo:nb201"], scores[a], scores[b]]))
             for a, b in combinations(WHOLE_NETWORK[:4], 2)}
    result = {"archs": len(archs), "what": "NB201 selection archs (validation), CIFAR-10 valid, Kendall tau",
              "hardware": f"{platform.processor() or platform.machine()}, CPU only", "alone": alone,
              "log_rank_with_zoo_nb201": with_zoo, "log_rank_with_zoo_nb201_and_two": pairs,
              "formulas": {k: f for k, (f, _) in formulas.items()}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    base = alone["zoo:nb201"]
    lines = ["# Whole-network scores and log-rank combination with the NB201 proxy", "",
             f"Written by `experiments/combine_ablation.py`: Kendall τ on the {len(archs)} NB201 selection archs "
             "(validation; CIFAR-10 valid, 200 epochs), baselines computed by gpproxy at batch 16, noise input. "
             f"`zoo:nb201` alone: τ {base:.3f}. A log-rank sum is AZ-NAS's / VKDNW_agg's aggregation.", "",
             "| term | τ alone | Σ log-rank with zoo:nb201 | change |", "|---|---|---|---|"]
    for k, v in with_zoo.items():
        lines.append(f"| {k} | {alone[k]:.3f} | {v:.3f} | {v - base:+.3f} |")
    lines += ["", "| zoo:nb201 + two whole-network terms | τ | change |", "|---|---|---|"]
    lines += [f"| {k} | {v:.3f} | {v - base:+.3f} |" for k, v in pairs.items()]
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
