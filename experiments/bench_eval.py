"""Fitness-evaluation benchmarks (issue: fast fitness). All ratios are measured
side by side in one run on one machine; results go to
experiments/results/bench_eval.{json,md}.

(a) formula evaluations/s over 1,000 NB201 archs, default pack: batched
    (bucketed, chunked cache) vs. a naive loop over archs on full tensors
    (EZNAS's way; measured on --naive-archs archs and scaled per arch)
(b) seconds per generation, population 100, 1,000 search archs
(c) cache bytes/arch and build archs/s, compressed (default) vs. full tensors
(d) peak RAM (whole process tree) of the quickstart run
(e) achieved memory bandwidth of evaluation vs. this machine's copy bandwidth

    .venv/bin/python experiments/bench_eval.py [--archs 1000] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "experiments" / "results"
FULL = 10**9


def copy_bandwidth(device: str, mb: int = 512) -> float:
    """GB/s of a large tensor copy (bytes read + written), best of 5."""
    n = mb * 2**20 // 4
    a = torch.randn(n, device=device)
    b = torch.empty_like(a)
    best = 0.0
    for _ in range(5):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        b.copy_(a)
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * a.numel() * 4 / (time.perf_counter() - t) / 1e9)
    return best


def traffic_bytes(tree, S) -> int:
    """Lower bound on bytes a formula moves: each matrix op reads its inputs and
    writes its output once (primitives' internal temporaries not counted)."""
    from deap import gp

    from gpproxy.pack import FAMILY_OF_TYPE, MATRIX

    fam_bytes = {}
    for stat, ts in S.stats.items():
        from gpproxy.probe import stat_family

        fam_bytes[stat_family(stat)] = sum(t.numel() * t.element_size() for t in ts)
    total = 0
    for node in tree:
        if isinstance(node, gp.Primitive):
            if node.ret in MATRIX:
                total += fam_bytes[FAMILY_OF_TYPE[node.ret]] * (node.arity + 1)
            elif node.args[0] in MATRIX:
                total += fam_bytes[FAMILY_OF_TYPE[node.args[0]]]
    return total


def peak_rss_of(cmd, cwd) -> tuple[float, float]:
    """(peak summed RSS of the process tree in MB, seconds) by polling /proc."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0, peak = time.perf_counter(), 0
    page = os.sysconf("SC_PAGE_SIZE")
    while proc.poll() is None:
        tree = {proc.pid}
        rss = 0
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                stat = (pid_dir / "stat").read_text().rsplit(")", 1)[1].split()
                ppid = int(stat[1])
                if ppid in tree or int(pid_dir.name) in tree:
                    tree.add(int(pid_dir.name))
                    rss += int(stat[21]) * page
            except (OSError, IndexError, ValueError):
                continue
        peak = max(peak, rss)
        time.sleep(0.2)
    return peak / 1e6, time.perf_counter() - t0


def main() -> int:
    from gpproxy.cache import CacheSpec, build_cache, load_input
    from gpproxy.config import config_from_dict
    from gpproxy.device import resolve_device
    from gpproxy.engine import Engine
    from gpproxy.formula import FormulaEval, parse_formula
    from gpproxy.pack import load_pack
    from gpproxy.probe import ProbeConfig, probe
    from gpproxy.rundir import read_log
    from gpproxy.spaces import get_space
    from gpproxy.statset import load_chunks, stack_layers

    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=1000)
    ap.add_argument("--naive-archs", type=int, default=10)
    ap.add_argument("--formulas", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-quickstart", action="store_true")
    args = ap.parse_args()
    device = resolve_device(args.device)
    os.chdir(ROOT)
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    all_archs = space.all_archs()
    archs = [all_archs[i] for i in rng.choice(len(all_archs), args.archs, replace=False)]
    pack = load_pack("default")
    formulas = pack.random_formulas(args.formulas)
    trees = [parse_formula(f, pack) for f in formulas]
    run = FormulaEval(pack)
    res = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {device}",
           "archs": args.archs, "batch": args.batch, "formulas": len(formulas)}

    # (c) cache: compressed vs full
    spec = CacheSpec(batch=args.batch)
    t = time.perf_counter()
    cache = build_cache(ROOT / "caches" / f"bench-b{args.batch}", spec, archs, jobs=args.jobs, log=lambda m: None)
    sizes = [(cache.stats_dir / f"{cache.key_of(a)}.npy").stat().st_size for a in archs]
    # Build rate side by side with the full-tensor probe: a fresh cache, one thread.
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="bench-build-"))
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    build_cache(tmp / "c", spec, archs[:args.naive_archs], jobs=1, log=lambda m: None)
    build_rate = args.naive_archs / (time.perf_counter() - t0)
    shutil.rmtree(tmp, ignore_errors=True)
    x, y, _ = load_input(spec)
    full_cfg = ProbeConfig(act_features=FULL, weight_rows=FULL, weight_cols=FULL)
    torch.set_num_threads(1)
    full_sets, t_full, full_bytes = [], 0.0, []
    for a in archs[:args.naive_archs]:
        torch.manual_seed(spec.seed)
        net = space.build(a, 10).to(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        recs = probe(net, x.contiguous(memory_format=torch.channels_last), y, full_cfg)
        t_full += time.perf_counter() - t0
        full_bytes.append(sum(tt.numel() * 4 for r in recs for tt, _ in r.stats.values()))
        full_sets.append(stack_layers([a], [recs], device=device))
    c64 = build_cache(ROOT / "caches" / "bench-b64", CacheSpec(batch=64), archs[:20], jobs=args.jobs,
                      log=lambda m: None)
    mb64 = float(np.mean([(c64.stats_dir / f"{c64.key_of(a)}.npy").stat().st_size for a in archs[:20]]) / 1e6)
    res["c_cache"] = {"compressed_mb_per_arch": float(np.mean(sizes) / 1e6),
                      "compressed_build_archs_per_s_1thread": build_rate,
                      "full_mb_per_arch_fp32": float(np.mean(full_bytes) / 1e6),
                      "full_probe_archs_per_s_1thread": args.naive_archs / t_full,
                      "compression_ratio": float(np.mean(full_bytes) / np.mean(sizes)),
                      "batch64_mb_per_arch_measured_on_20": mb64,
                      "gb_per_1000_archs_batch64": mb64 * 1000 / 1000}
    torch.set_num_threads(os.cpu_count() or 1)

    # (a) batched vs naive, and (e) bandwidth
    from gpproxy.statset import resolve_chunk_archs

    chunk = resolve_chunk_archs("auto", cache, archs, list(pack.stats), device)
    res["chunk_archs_auto"] = chunk
    chunks = load_chunks(cache, archs, stats=list(pack.stats), device=device, chunk_archs=chunk)
    for tree in trees[:3]:  # warm-up
        [run(tree, S) for S in chunks]
    moved = sum(traffic_bytes(tree, S) for tree in trees for S in chunks)

    def timed(sets, repeats=3) -> float:
        """Median seconds of evaluating every formula on every StatSet of `sets`
        (a short measurement on a shared VM: one repeat can be 3x off)."""
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                for tree in trees:
                    for S in sets:
                        run(tree, S)
                if device == "cuda":
                    torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    t_batched = timed(chunks)
    t_naive_per_arch = timed(full_sets, repeats=1) / len(full_sets)
    per_arch = load_chunks(cache, archs[:args.naive_archs], stats=list(pack.stats), device=device, chunk_archs=1)
    t_loop_compressed = timed(per_arch) / len(per_arch)
    batched_eps = len(trees) / t_batched
    naive_eps = len(trees) / (t_naive_per_arch * args.archs)
    res["a_evals_per_s"] = {"batched": batched_eps, "naive_full_tensors_per_arch_loop": naive_eps,
                            "speedup": batched_eps / naive_eps,
                            "per_arch_loop_compressed": len(trees) / (t_loop_compressed * args.archs),
                            "naive_measured_on_archs": len(full_sets)}
    bw = copy_bandwidth(device)
    res["e_bandwidth"] = {"evaluation_gb_s_lower_bound": moved / t_batched / 1e9, "copy_gb_s": bw,
                          "fraction_of_copy": moved / t_batched / 1e9 / bw}

    # (b) one generation, population 100, 1000 search archs
    cfg = config_from_dict({
        "name": "bench-gen", "seed": 0, "device": device,
        "search": {"population": 100, "generations": 3, "backend": "serial"},
        "task": [{"name": "t", "benchmark": "analog-nasbench", "search_archs": args.archs,
                  "heldout_archs": 50, "batch": args.batch, "cache": str(ROOT / "caches" / "bench-gen")}]})
    root = ROOT / "runs" / "bench-gen"

    shutil.rmtree(root, ignore_errors=True)
    Engine(cfg, root, log=lambda m: None).run()
    log = read_log(root)
    res["b_generation"] = {"seconds_per_generation": [r["seconds"] for r in log],
                           "evals_per_generation": [r["evals"] for r in log],
                           "mean_seconds_gen1plus": float(np.mean([r["seconds"] for r in log[1:]]))}

    # (d) peak RAM of the quickstart
    if not args.skip_quickstart:
        shutil.rmtree(ROOT / "runs" / "bench-quickstart", ignore_errors=True)
        peak, secs = peak_rss_of([sys.executable, "-m", "gpproxy.cli", "evolve", "experiments/quickstart.toml",
                                  "--out", "runs/bench-quickstart"], ROOT)
        res["d_quickstart"] = {"peak_rss_mb_process_tree": peak, "seconds": secs}

    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "" if device == "cpu" else f"_{device}"
    (RESULTS / f"bench_eval{tag}.json").write_text(json.dumps(res, indent=1) + "\n")
    a, b, c, e = res["a_evals_per_s"], res["b_generation"], res["c_cache"], res["e_bandwidth"]
    md = [f"# Evaluation benchmarks ({device})", "",
          f"`python experiments/bench_eval.py --archs {args.archs} --device {args.device}` on {res['machine']}; "
          f"NB201, batch {args.batch}, noise input, {len(formulas)} random default-pack formulas.", "",
          "| what | measured | target |", "|---|---|---|",
          f"| (a) formula evals/s over {args.archs} archs: batched | {a['batched']:.2f} | |",
          f"| (a) naive per-arch loop on full tensors (measured on {a['naive_measured_on_archs']} archs, scaled) | "
          f"{a['naive_full_tensors_per_arch_loop']:.3f} | |",
          f"| (a) speed-up | {a['speedup']:.1f}x | ≥ 5x |",
          f"| (a) for reference: per-arch loop on the same compressed cache (batching alone) | "
          f"{a['per_arch_loop_compressed']:.2f} ({a['batched'] / a['per_arch_loop_compressed']:.1f}x slower than batched) | |",
          f"| (b) seconds per generation, population 100, {args.archs} archs (gen 1+ mean; evals/gen "
          f"{b['evals_per_generation'][1:]}) | {b['mean_seconds_gen1plus']:.1f} s | ≤ 10 s |",
          f"| (c) cache MB/arch: compressed / full fp32 | {c['compressed_mb_per_arch']:.2f} / "
          f"{c['full_mb_per_arch_fp32']:.1f} ({c['compression_ratio']:.0f}x) | |",
          f"| (c) 1,000 archs at batch 64, compressed ({c['batch64_mb_per_arch_measured_on_20']:.2f} MB/arch "
          f"measured on 20 archs) | {c['gb_per_1000_archs_batch64']:.2f} GB | ≤ 2 GB |",
          f"| (c) build archs/s, 1 thread, {args.naive_archs} archs: compressed cache (probe + write) / "
          f"full-tensor probe (no write) | {c['compressed_build_archs_per_s_1thread']:.2f} / "
          f"{c['full_probe_archs_per_s_1thread']:.2f} | |"]
    if "d_quickstart" in res:
        md.append(f"| (d) quickstart peak RAM (process tree) | {res['d_quickstart']['peak_rss_mb_process_tree']:.0f} MB "
                  f"({res['d_quickstart']['seconds']:.0f} s) | ≤ 4 GB |")
    md.append(f"| (e) evaluation bandwidth (lower bound) / copy bandwidth | {e['evaluation_gb_s_lower_bound']:.2f} / "
              f"{e['copy_gb_s']:.2f} GB/s ({e['fraction_of_copy']:.0%}) | |")
    (RESULTS / f"bench_eval{tag}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
