"""Which input should the quickstart use: Gaussian noise or a real CIFAR-10 batch?

Runs the quickstart config twice, identical except for `input`, and compares the
selected formula's held-out Kendall tau (and #params on the same archs), plus
wall time. Writes experiments/results/quickstart_input.{json,md}. Needs the
shared CIFAR-10 npz (../shared/data/images); the quickstart itself must run
without it, which is one more reason to prefer noise if it is not worse.

    .venv/bin/python experiments/quickstart_input.py [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def main() -> int:
    from gpproxy.config import load_config
    from gpproxy.engine import Engine

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    npz = SHARED / "images" / "cifar10_jpeg_subset_2000.npz"
    if not npz.exists():
        print(f"needs {npz}; skipping")
        return 0
    base = load_config(ROOT / "experiments" / "quickstart.toml")
    rows = []
    for input_spec in ("noise", f"npz:{npz}"):
        for seed in args.seeds:
            label = "noise" if input_spec == "noise" else "cifar10-npz"
            cfg = base.override(seed=seed, **{"task.input": input_spec,
                                              "task.cache": str(ROOT / "caches" / f"qs-input-{label}")})
            t0 = time.perf_counter()
            summary = Engine(cfg, ROOT / "runs" / f"qs-input-{label}-s{seed}", log=lambda m: None).run()
            sel = summary["heldout"]["selected"][cfg.tasks[0].name]
            base_scores = summary["heldout_baselines"]
            par = (base_scores.get("params_conv_linear") or base_scores["params"])[cfg.tasks[0].name]
            rows.append({"input": label, "seed": seed, "formula": summary["selected"]["formula"],
                         "search_tau": summary["selected"]["fitness"], "heldout_tau": round(sel["kendall"], 4),
                         "params_heldout_tau": round(par["kendall"], 4), "seconds": round(time.perf_counter() - t0, 1)})
            print(rows[-1], flush=True)
    out = ROOT / "experiments" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "quickstart_input.json").write_text(json.dumps(rows, indent=1) + "\n")
    md = ["# Quickstart input: noise vs. a real CIFAR-10 batch", "",
          f"`python experiments/quickstart_input.py` on {platform.machine()}, {os.cpu_count()} cores; "
          "quickstart config, analog-nasbench CIFAR-10, 300 search / 300 held-out archs, batch 16. "
          "Seconds include the cache build on the first seed of each input.", "",
          "| input | seed | held-out τ (selected) | held-out τ (#params) | search τ | seconds | formula |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['input']} | {r['seed']} | {r['heldout_tau']:.4f} | {r['params_heldout_tau']:.4f} | "
           f"{r['search_tau']:.4f} | {r['seconds']} | `{r['formula']}` |" for r in rows]
    for label in ("noise", "cifar10-npz"):
        v = [r["heldout_tau"] for r in rows if r["input"] == label]
        md.append(f"\nmean held-out τ with {label}: {sum(v) / len(v):.4f} over {len(v)} seeds")
    (out / "quickstart_input.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
