"""Cache fidelity: does a formula rank archs the same on sampled statistics as on full tensors?

For N random NB201 archs (default 100; batch 16, noise input, seed 0) every
arch is probed once with *full* tensors (no sampling, fp32, in memory only) and
scored by every baseline formula of the default pack and by R random valid
formulas. The same archs are then cached under several compressions (sample
sizes x storage dtype) and scored again. Reported: Kendall tau between the
full-tensor scores and the compressed scores, per formula; the distribution
for random formulas; bytes per arch. Writes experiments/results/fidelity.{json,md}.

    .venv/bin/python experiments/fidelity.py [--archs 100] [--random 40]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "experiments" / "results"

FULL = 10**9  # a sample size no tensor reaches: sample_positions keeps everything

COMPRESSIONS = [  # (label, act_features, weight_rows, weight_cols, storage)
    ("act16-w8x16-fp16", 16, 8, 16, "float16"),
    ("act32-w16x32-fp16", 32, 16, 32, "float16"),
    ("act64-w16x64-fp16 (default)", 64, 16, 64, "float16"),
    ("act64-w16x64-fp32", 64, 16, 64, "float32"),
    ("act128-w32x128-fp16", 128, 32, 128, "float16"),
]


def main() -> int:
    from gpproxy.cache import CacheSpec, build_cache, load_input
    from gpproxy.evaluator import score_on_cache
    from gpproxy.fitness import kendall
    from gpproxy.formula import FormulaEval, parse_formula
    from gpproxy.pack import load_pack
    from gpproxy.probe import ProbeConfig, probe
    from gpproxy.spaces import get_space
    from gpproxy.statset import stack_layers

    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=100)
    ap.add_argument("--random", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    all_archs = space.all_archs()
    archs = [all_archs[i] for i in rng.choice(len(all_archs), args.archs, replace=False)]
    pack = load_pack("default")
    baselines = dict(pack.seeds)
    randoms = pack.random_formulas(args.random * 3)
    formulas = list(baselines.values()) + randoms
    run = FormulaEval(pack)
    trees = {f: parse_formula(f, pack) for f in formulas}

    # full tensors, one arch at a time
    base_spec = CacheSpec(batch=args.batch)
    x, y, _ = load_input(base_spec)
    full_cfg = ProbeConfig(act_features=FULL, weight_rows=FULL, weight_cols=FULL, sample_seed=base_spec.seed)
    full_scores = {f: [] for f in formulas}
    full_bytes = []
    t0 = time.perf_counter()
    for i, arch in enumerate(archs):
        torch.manual_seed(base_spec.seed)
        net = space.build(arch, 10).to(memory_format=torch.channels_last)
        recs = probe(net, x.contiguous(memory_format=torch.channels_last), y, full_cfg)
        full_bytes.append(sum(t.numel() * 4 for r in recs for t, _ in r.stats.values()))
        S = stack_layers([arch], [recs])
        with torch.no_grad():
            for f in formulas:
                full_scores[f].append(float(run(trees[f], S)[0]))
        if (i + 1) % 20 == 0:
            print(f"full tensors: {i + 1}/{len(archs)} archs, {time.perf_counter() - t0:.0f}s", flush=True)
    full_scores = {f: np.array(v) for f, v in full_scores.items()}
    usable = [f for f in randoms if np.all(np.isfinite(full_scores[f])) and np.ptp(full_scores[f]) > 0]
    randoms = usable[:args.random]

    results = {"archs": len(archs), "batch": args.batch, "random_formulas": len(randoms),
               "full_mb_per_arch": float(np.mean(full_bytes) / 1e6), "compressions": {},
               "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    for label, act, rows, cols, storage in COMPRESSIONS:
        spec = CacheSpec(batch=args.batch, storage=storage,
                         probe=ProbeConfig(act_features=act, weight_rows=rows, weight_cols=cols))
        cache = build_cache(ROOT / "caches" / f"fidelity-{act}-{rows}x{cols}-{storage}", spec, archs,
                            jobs=args.jobs, log=lambda m: None)
        sc = score_on_cache(cache, archs, list(baselines.values()) + randoms, pack)
        taus = {}
        for name, f in list(baselines.items()) + [(f, f) for f in randoms]:
            a, b = full_scores[f], sc[f]
            ok = np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.ptp(a) > 0 and np.ptp(b) > 0
            taus[name] = kendall(a, b) if ok else None
        sizes = [(cache.stats_dir / f"{cache.key_of(a)}.npy").stat().st_size for a in archs]
        rnd = np.array([taus[f] for f in randoms if taus[f] is not None])
        results["compressions"][label] = {
            "mb_per_arch": float(np.mean(sizes) / 1e6),
            "baselines": {n: taus[n] for n in baselines},
            "min_baseline_tau": min(v for n, v in taus.items() if n in baselines and v is not None),
            "random_tau_quantiles": {q: float(np.quantile(rnd, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
            "random_share_ge_095": float(np.mean(rnd >= 0.95)), "random_invalid": int(len(randoms) - len(rnd)),
        }
        print(label, json.dumps(results["compressions"][label]["baselines"]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fidelity.json").write_text(json.dumps(results, indent=1) + "\n")
    md = ["# Cache fidelity: sampled statistics vs. full tensors", "",
          f"`python experiments/fidelity.py --archs {args.archs} --random {args.random}` on {results['machine']}: "
          f"{len(archs)} random NB201 archs, batch {args.batch}, Gaussian-noise input, seed 0. Full tensors take "
          f"{results['full_mb_per_arch']:.1f} MB per arch (fp32). Cell = Kendall τ between a formula's scores on "
          "the compressed cache and on full tensors.", "",
          "| compression | MB/arch | " + " | ".join(baselines) + " | min baseline | random: median τ | "
          "random: 10% quantile | random: share ≥ 0.95 |", "|---|---|" + "---|" * (len(baselines) + 4)]
    for label, r in results["compressions"].items():
        md.append(f"| {label} | {r['mb_per_arch']:.2f} | " +
                  " | ".join(f"{v:.3f}" if v is not None else "–" for v in r["baselines"].values()) +
                  f" | {r['min_baseline_tau']:.3f} | {r['random_tau_quantiles'][0.5]:.3f} | "
                  f"{r['random_tau_quantiles'][0.1]:.3f} | {r['random_share_ge_095']:.2f} |")
    md.append("")
    md.append(f"Random formulas: {len(randoms)} valid ramped half-and-half trees of the default pack "
              "(heights 2-5, seed 0) whose full-tensor scores are finite and not constant.")
    (RESULTS / "fidelity.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
