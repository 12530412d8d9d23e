"""Ablations of what makes discovery good (issue: discovery quality).

Each variant changes one thing of a base run; every variant runs over the same
seeds; reported is the selected formula's held-out Kendall τ / Spearman ρ
(mean ± std over seeds) and #params' τ on the same held-out archs. Nothing is
tuned on held-out archs: each run selects its formula by its own rule.

Part "search" (vocabulary, seeding, fitness, budget): the discovery setting of
experiments/discover_nb201.toml (NB201 CIFAR-10 cifar10valid_valid, 1,000
search archs, noise batch 16, population 100 x 25 generations), held out on a
fixed 2,000 of the other archs. Its cache holds every NB201 arch, so these
variants cost search time only.

Part "cache" (input, batch, noise pass, compression): every variant needs its
own cache, so it runs at quickstart scale (analog-nasbench CIFAR-10, 300
search / 300 held-out archs, population 100 x 20 generations, plain Kendall).

Writes experiments/results/ablation_<part>.json and ablation.md (both parts)
after every run: a stopped session keeps its rows, and the parts may run in
two processes at once.

    .venv/bin/python experiments/ablation.py [--part search cache] [--seeds 0 1 2]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
NPZ = SHARED / "images" / "cifar10_jpeg_subset_2000.npz"
PACKS = ROOT / "experiments" / "ablation_packs"
HELDOUT = 2000


def _override(section: str, **kw):
    """A variant: a new, re-validated config with ``section.key = value`` (never a mutated one)."""
    return lambda c: c.override(**{f"{section}.{k}": v for k, v in kw.items()})


def _search(**kw):
    return _override("search", **kw)


def _fitness(**kw):
    return _override("fitness", **kw)


def _task(**kw):
    return _override("task", **kw)


def _pack(name):
    return _search(pack=str(PACKS / f"{name}.py"))


def search_variants() -> dict:
    return {
        "base (default pack, Kendall, baseline seeds, pop 100 x 25 gen)": lambda c: c,
        "no baseline seeds": _search(seed_baselines=False),
        "Spearman fitness": _fitness(correlation="spearman"),
        "top-weighted Kendall fitness (weightedtau)": _fitness(correlation="weighted_kendall"),
        "EZNAS min over 5 subsets of 50%": _fitness(subsets=5, subset_fraction=0.5),
        "EZNAS subsets + population 200 x 50 gen":
            lambda c: _search(population=200, generations=50)(_fitness(subsets=5, subset_fraction=0.5)(c)),
        "population 48 x 10 gen": _search(population=48, generations=10),
        "population 200 x 25 gen": _search(population=200),
        "vocabulary: W, dW only": _pack("weights_grads"),
        "vocabulary: no gradients (W, A, Z)": _pack("no_gradients"),
        "vocabulary: activations only (A, Z, dZ)": _pack("activations_only"),
        "ops: no kernel reductions (logdet, hamming)": _pack("no_kernels"),
    }


def cache_variants() -> dict:
    out = {
        "base (noise batch 16, act 64 / weights 16x64 samples, fp16)": lambda c: c,
        "noise batch 64": _task(batch=64),
        "cache: act 16 / weights 8x16 samples": _task(act_features=16, weight_rows=8, weight_cols=16),
    }
    if NPZ.exists():
        out["real CIFAR-10 batch 16 (npz)"] = _task(input=f"npz:{NPZ}")
        npz_noise = _task(input=f"npz:{NPZ}", noise_pass=True)
        out["real CIFAR-10 batch + noise-input pass (EZNAS), pack with _n stats"] = \
            lambda c: _pack("noise_pass")(npz_noise(c))
    return out


def base_config(part: str):
    from gpproxy.config import load_config

    if part == "search":
        # The base is plain Kendall (what this ablation compared before the
        # discovery config adopted the subset fitness it found best).
        cfg = load_config(ROOT / "experiments" / "discover_nb201.toml").override(
            **{"task.heldout_archs": HELDOUT, "fitness.subsets": 0, "fitness.subset_fraction": 0.5})
    else:
        # One cache per probe setting ("": derived from it), and the settings these
        # rows were measured with (the quickstart has since adopted the search part's winner).
        cfg = load_config(ROOT / "experiments" / "quickstart.toml").override(
            **{"task.cache": "", "search.population": 100, "search.generations": 20, "fitness.subsets": 0})
    return cfg


def main() -> int:
    from gpproxy.engine import Engine
    from gpproxy.tasks import cache_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--part", nargs="+", default=["search", "cache"], choices=["search", "cache"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    os.chdir(ROOT)
    for part in args.part:
        out = ROOT / "experiments" / "results" / f"ablation_{part}.json"
        rows = json.loads(out.read_text()) if out.exists() else []
        done = {(r["part"], r["variant"], r["seed"]) for r in rows}
        for name, change in (search_variants() if part == "search" else cache_variants()).items():
            for seed in args.seeds:
                if (part, name, seed) in done:
                    continue
                cfg = change(base_config(part).override(seed=seed))
                if not cfg.tasks[0].cache:
                    cfg = cfg.override(**{"task.cache": str(cache_dir(cfg.tasks[0]))})
                slug = "".join(ch if ch.isalnum() else "-" for ch in name)[:40]
                t0 = time.perf_counter()
                s = Engine(cfg, ROOT / "runs" / "ablation" / f"{part}-{slug}-s{seed}", log=lambda m: None).run()
                task = cfg.tasks[0].name
                base = s["heldout_baselines"]
                params = base.get("params_conv_linear") or base.get("params") or {}
                sel = s["heldout"]["selected"][task]
                rows.append({"part": part, "variant": name, "seed": seed, "formula": s["selected"]["formula"],
                             "heldout_tau": sel["kendall"], "heldout_rho": sel["spearman"],
                             "heldout_archs": sel["n"],
                             "params_tau": params.get(task, {}).get("kendall", float("nan")),
                             "seconds": round(time.perf_counter() - t0, 1)})
                print(rows[-1], flush=True)
                write(part, rows)
        write(part, rows)
    return 0


def write(part, part_rows):
    out = ROOT / "experiments" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ablation_{part}.json").write_text(json.dumps(part_rows, indent=1) + "\n")
    rows = []
    for p in ("search", "cache"):
        path = out / f"ablation_{p}.json"
        rows += json.loads(path.read_text()) if path.exists() else []
    md = ["# Ablation: what makes discovery good", "",
          f"`python experiments/ablation.py` on {platform.machine()}, {os.cpu_count()} cores, CPU only "
          "(other jobs shared the cores at times: seconds are indicative, they include cache loading and, "
          "for a variant's first seed, building its cache). Held-out Kendall τ / Spearman ρ of each run's "
          "selected formula, mean ± std over seeds; #params τ on the same held-out archs for reference.", ""]
    titles = {"search": f"## Search settings (NB201 CIFAR-10 valid, 1,000 search archs, {HELDOUT:,} held-out archs, "
                        "noise batch 16)",
              "cache": "## Cache settings (quickstart scale: analog-nasbench CIFAR-10, 300 search / 300 held-out archs)"}
    for part in ("search", "cache"):
        prows = [r for r in rows if r["part"] == part]
        if not prows:
            continue
        md += [titles[part], "", "| variant | held-out τ | held-out ρ | #params τ | seeds | mean s/run | "
               "selected formulas |", "|---|---|---|---|---|---|---|"]
        for name in dict.fromkeys(r["variant"] for r in prows):
            rs = [r for r in prows if r["variant"] == name]
            t = np.array([r["heldout_tau"] for r in rs])
            p = np.array([r["heldout_rho"] for r in rs])
            md.append(f"| {name} | {t.mean():.3f} ± {t.std():.3f} | {p.mean():.3f} ± {p.std():.3f} | "
                      f"{rs[0]['params_tau']:.3f} | {len(rs)} | {np.mean([r['seconds'] for r in rs]):.0f} | "
                      + "; ".join(f"`{r['formula']}`" for r in rs) + " |")
        md.append("")
    (out / "ablation.md").write_text("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
