"""Speed of an exported proxy (issue 13): the exported module's ``score`` time
divided by a plain forward+backward pass of the same net on the same batch,
measured side by side (interleaved per net, the order alternating) on N NB201
nets, 1 torch thread, batch 16 of noise input (the quickstart's protocol). The
engine's full probe (every statistic, moment and kernel: what exports used to
compute) is timed beside them for reference, and every exported score is
checked against the engine's value on that probe. Writes
experiments/results/bench_export.{json,md}.

    .venv/bin/python experiments/bench_export.py [--archs 100] [--formula F]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
QUICKSTART = "sum_layers(l1(normalize(square(dW))))"  # the quickstart run's selected formula


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--formula", default=QUICKSTART)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from gpproxy.cache import CacheSpec, load_input
    from gpproxy.export import export_formula
    from gpproxy.formula import FormulaEval, parse_formula
    from gpproxy.pack import load_pack
    from gpproxy.probe import ProbeConfig, probe
    from gpproxy.spaces import get_space
    from gpproxy.statset import stack_layers

    space = get_space("nb201")
    rng = np.random.default_rng(0)
    archs = [space.all_archs()[i] for i in sorted(rng.choice(len(space.all_archs()), args.archs, replace=False))]
    x, y, _ = load_input(CacheSpec(batch=args.batch))
    cfg = ProbeConfig()
    pack = load_pack("default")
    tree = parse_formula(args.formula, pack)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_formula(args.formula, Path(tmp) / "proxy.py", probe_cfg=cfg)
        lines = len(path.read_text().splitlines())
        mod = _import(path)

    def plain(net):
        net.train()
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        net.zero_grad(set_to_none=True)

    timings = {"plain": [], "score": [], "full_probe": []}
    worst = 0.0
    for i, arch in enumerate([archs[0]] + archs):  # the first net once untimed: warm-up
        torch.manual_seed(0)
        net = space.build(arch, 10)
        order = ["plain", "score", "full_probe"] if i % 2 else ["full_probe", "score", "plain"]
        got = {}
        for kind in order:
            t0 = time.perf_counter()
            if kind == "plain":
                plain(net)
            elif kind == "score":
                got["score"] = mod.score(net, x, y)
            else:
                got["records"] = probe(net, x, y, cfg)
            dt = time.perf_counter() - t0
            if i:
                timings[kind].append(dt)
        want = float(FormulaEval(pack)(tree, stack_layers([arch], [got["records"]]))[0])
        worst = max(worst, abs(got["score"] - want) / max(abs(want), 1e-12))
        if i and (i % 10 == 0 or i == len(archs)):
            print(f"[{i:>3}/{len(archs)}] plain {statistics.mean(timings['plain']):.3f} s, "
                  f"score {statistics.mean(timings['score']):.3f} s, full probe "
                  f"{statistics.mean(timings['full_probe']):.3f} s", flush=True)
    total = {k: sum(v) for k, v in timings.items()}
    ratios = [s / p for s, p in zip(timings["score"], timings["plain"])]
    res = {
        "formula": args.formula, "archs": len(archs), "batch": args.batch, "threads": 1, "input": "noise",
        "export_lines": lines,
        "seconds_per_net": {k: total[k] / len(archs) for k in total},
        "ratio_score_to_plain": total["score"] / total["plain"],
        "ratio_score_to_plain_median_per_net": statistics.median(ratios),
        "ratio_full_probe_to_plain": total["full_probe"] / total["plain"],
        "max_rel_diff_vs_engine": worst,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_export.json").write_text(json.dumps(res, indent=1) + "\n")
    s = res["seconds_per_net"]
    md = [f"# Exported proxy speed (`python experiments/bench_export.py --archs {len(archs)}`)", "",
          f"`{args.formula}` exported ({lines} lines); {len(archs)} random NB201 nets (CIFAR-10 head), batch "
          f"{args.batch} of noise, 1 torch thread, each net timed for all three side by side (order alternating).", "",
          "| per net | seconds | ÷ plain |", "|---|---|---|",
          f"| plain forward+backward | {s['plain']:.3f} | 1.00 |",
          f"| exported `score` | {s['score']:.3f} | {res['ratio_score_to_plain']:.2f} |",
          f"| engine's full probe (all statistics, moments, kernels) | {s['full_probe']:.3f} | "
          f"{res['ratio_full_probe_to_plain']:.2f} |", "",
          f"Median per-net ratio score ÷ plain: {res['ratio_score_to_plain_median_per_net']:.2f}. Largest relative "
          f"difference of the exported score from the engine's value on the full probe: {worst:.1e}.",
          f"Machine: {res['machine']}."]
    (RESULTS / "bench_export.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
