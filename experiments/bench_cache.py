"""Cache building benchmark (issue: NB201 foundation).

Builds a cache of N NB201 archs (default 200) at batch 16 from the shared
CIFAR-10 .npz through the CLI, SIGKILLs it halfway, reruns the same command
(which must compute only the missing archs), and reports archs/s and bytes per
arch. Writes experiments/results/bench_cache.{json,md}.

    .venv/bin/python experiments/bench_cache.py [--archs 200] [--jobs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "experiments" / "results"


def count_done(cache: Path) -> int:
    return len(list((cache / "stats").glob("*.json"))) if (cache / "stats").exists() else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "caches" / "bench_cache"))
    args = ap.parse_args()
    npz = SHARED / "images" / "cifar10_jpeg_subset_2000.npz"
    table = SHARED / "nb201" / "nb201_accuracies_200ep.csv.gz"
    if not npz.exists() or not table.exists():
        print(f"needs ../shared data ({npz}, {table}); skipping")
        return 0
    cache = Path(args.out)
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "-m", "gpproxy.cli", "cache", "--space", "nb201", "--benchmark", str(table),
           "--target", "cifar10valid_valid", "--archs", str(args.archs), "--seed", "0",
           "--batch", str(args.batch), "--input", f"npz:{npz}", "--out", str(cache), "--jobs", str(args.jobs)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    # 1) start, kill -9 halfway
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    while count_done(cache) < args.archs // 2 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = time.perf_counter() - t0
    done_at_kill = count_done(cache)

    # 2) rerun: must build only the rest
    t1 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    rerun_s = time.perf_counter() - t1
    if out.returncode != 0:
        print(out.stdout, out.stderr)
        return 1
    m = re.search(r"building (\d+) archs \((\d+) already done\)", out.stderr)
    built_again, already = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    sizes = [p.stat().st_size for p in (cache / "stats").glob("*.npy")]
    manifest = json.loads((cache / "cache.json").read_text())
    result = {
        "archs": args.archs, "batch": args.batch, "jobs": args.jobs, "input": f"npz:{npz.name}",
        "killed_after_s": round(killed_after, 1), "done_at_kill": done_at_kill,
        "rerun_built": built_again, "rerun_skipped": already,
        "rerun_seconds": round(rerun_s, 1), "rerun_archs_per_s": manifest["last_build"]["archs_per_s"],
        "bytes_per_arch_mean": int(sum(sizes) / len(sizes)), "bytes_total": sum(sizes),
        "storage": manifest["spec"]["storage"], "probe": manifest["spec"]["probe"],
        "complete": summary["archs"] == args.archs,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_cache.json").write_text(json.dumps(result, indent=1) + "\n")
    md = ["# Cache build benchmark", "",
          f"Command: `python experiments/bench_cache.py --archs {args.archs} --jobs {args.jobs}` "
          f"on {result['machine']}.", "",
          "| archs | batch | jobs | input | killed at | rerun built / skipped | archs/s | bytes/arch | storage |",
          "|---|---|---|---|---|---|---|---|---|",
          f"| {args.archs} | {args.batch} | {args.jobs} | CIFAR-10 npz | {done_at_kill} done after "
          f"{result['killed_after_s']} s | {built_again} / {already} | {result['rerun_archs_per_s']} | "
          f"{result['bytes_per_arch_mean'] / 1e6:.2f} MB | {result['storage']} |", ""]
    (RESULTS / "bench_cache.md").write_text("\n".join(md))
    print(json.dumps(result, indent=1))
    return 0 if result["complete"] and built_again == args.archs - done_at_kill else 1


if __name__ == "__main__":
    sys.exit(main())
