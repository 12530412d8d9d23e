"""Ablations of what makes discovery good, at quickstart scale (cheap enough to
repeat over seeds on a laptop CPU).

Base: experiments/quickstart.toml (analog-nasbench CIFAR-10, 300 search /
300 held-out archs, batch 16, population 100, 20 generations). Each variant
changes one thing; every variant runs over the same seeds; reported is the
selected formula's held-out Kendall tau (mean ± std) and #params' tau on the
same held-out archs. Writes experiments/results/ablation.{json,md}.

    .venv/bin/python experiments/ablation.py [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
NPZ = SHARED / "images" / "cifar10_jpeg_subset_2000.npz"


def variants():
    """name -> function(config) -> config (one change each)."""
    def search(**kw):
        return lambda c: (c.search.__dict__.update(kw), c)[1]

    def fitness(**kw):
        return lambda c: (c.fitness.__dict__.update(kw), c)[1]

    def task(**kw):
        return lambda c: (setattr(c, "tasks", [replace(c.tasks[0], **kw)]), c)[1]

    out = {
        "base (noise input, Kendall, baseline seeds, pop 100 x 20 gen)": lambda c: c,
        "no baseline seeds": search(seed_baselines=False),
        "Spearman fitness": fitness(correlation="spearman"),
        "EZNAS min over 5 subsets of 50%": fitness(subsets=5, subset_fraction=0.5),
        "population 48 x 10 gen": search(population=48, generations=10),
        "population 200 x 20 gen": search(population=200, generations=20),
        "cache: act 16 / weights 8x16": task(act_features=16, weight_rows=8, weight_cols=16),
    }
    if NPZ.exists():
        out["real CIFAR-10 batch (npz)"] = task(input=f"npz:{NPZ}")
    return out


def main() -> int:
    from gpproxy.config import load_config
    from gpproxy.engine import Engine
    from gpproxy.tasks import cache_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    os.chdir(ROOT)
    rows = []
    for name, change in variants().items():
        for seed in args.seeds:
            cfg = load_config(ROOT / "experiments" / "quickstart.toml")
            cfg.seed = seed
            cfg = change(cfg)
            cfg.tasks = [replace(cfg.tasks[0], cache="")]  # one cache per probe setting
            cfg.tasks = [replace(cfg.tasks[0], cache=str(cache_dir(cfg.tasks[0])))]
            slug = "".join(ch if ch.isalnum() else "-" for ch in name)[:40]
            t0 = time.perf_counter()
            s = Engine(cfg, ROOT / "runs" / "ablation" / f"{slug}-s{seed}", log=lambda m: None).run()
            task = cfg.tasks[0].name
            rows.append({"variant": name, "seed": seed, "formula": s["selected"]["formula"],
                         "heldout_tau": s["heldout"]["selected"][task]["kendall"],
                         "params_tau": s["heldout_baselines"]["params_conv_linear" if "params_conv_linear" in
                                                             s["heldout_baselines"] else "params"][task]["kendall"],
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(rows[-1], flush=True)
            write(rows, args)  # after every run: a partial table survives a stopped session
    write(rows, args)
    return 0


def write(rows, args):
    out = ROOT / "experiments" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    md = ["# Ablation at quickstart scale", "",
          f"`python experiments/ablation.py --seeds {' '.join(map(str, args.seeds))}` on {platform.machine()}, "
          f"{os.cpu_count()} cores (shared with other jobs while it ran: seconds are indicative). "
          "analog-nasbench CIFAR-10, 300 search / 300 held-out archs. Held-out Kendall τ of the selected formula, "
          "mean ± std over seeds; #params on the same held-out archs for reference.", "",
          "| variant | held-out τ | #params τ | mean seconds | selected formulas |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == name]
        t = np.array([r["heldout_tau"] for r in rs])
        md.append(f"| {name} | {t.mean():.3f} ± {t.std():.3f} | {rs[0]['params_tau']:.3f} | "
                  f"{np.mean([r['seconds'] for r in rs]):.0f} | " + "; ".join(f"`{r['formula']}`" for r in rs) + " |")
    (out / "ablation.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    sys.exit(main())
