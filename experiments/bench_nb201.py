"""The baseline table on NB201: every baseline x (CIFAR-10 valid, CIFAR-100, ImageNet16-120 test).

    python experiments/bench_nb201.py --estimate 10     # time 10 archs, print the cost of the full run
    python experiments/bench_nb201.py --archs 1000 --trials 10   # NAS-Bench-Suite-Zero's protocol
    python experiments/bench_nb201.py --archs 200 --trials 1     # what one CPU core does in ~1 h

Runs ``gpproxy bench`` (``gpproxy.scoring.run_bench``) with the staged NB201
table and real CIFAR-10 images (batch 64, as NAS-Bench-Suite-Zero), writing
experiments/results/bench_nb201.{md,csv} and the per-arch scores
(``.scores.json``, without labels; a rerun resumes from it). ``--eznas`` adds
EZNAS's program at EZNAS's own batch 16 on CIFAR-10 and CIFAR-100, which is
cheap enough for many more archs, into bench_nb201_eznas_b16.{md,csv}.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpproxy.scoring import Protocol, run_bench  # noqa: E402

TABLE = "nb201/nb201_accuracies_200ep.csv.gz"
IMAGES = "images/cifar10_jpeg_subset_2000.npz"
POOL = 15625
EZNAS = ["eznas_preact_grad", "eznas_wgrad_noise"]


def expected_unique(n: int, trials: int, pool: int = POOL) -> float:
    """Expected number of distinct archs in `trials` independent draws of n from pool."""
    return pool * (1 - (1 - n / pool) ** trials)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--archs", default="1000", help="N random archs per trial, or 'all'")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--proxies", nargs="*", default=[], help="extra formula strings or exported .py files")
    ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "bench_nb201"))
    ap.add_argument("--estimate", type=int, default=0, help="only time this many archs and extrapolate")
    ap.add_argument("--eznas", type=int, default=0, help="also EZNAS's program at batch 16 on this many archs")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    shared = Path(args.shared)
    prot = Protocol(batch=args.batch, seed=args.seed, input=f"npz:{(shared / IMAGES).resolve()}")
    bench = str(shared / TABLE)
    archs = args.archs if args.archs == "all" else int(args.archs)
    cmd = "python experiments/bench_nb201.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if args.estimate:
        out = REPO / "experiments" / "results" / "tmp" / "bench_estimate"
        t0 = time.perf_counter()
        res = run_bench(args.proxies, bench, archs=args.estimate, trials=1, protocol=prot, out=out,
                        labels=False, command=cmd)
        per_arch = sum(sum(r["_meta"]["seconds_per_arch"].values()) for r in res["results"].values())
        n = POOL if archs == "all" else expected_unique(archs, args.trials)
        print(f"{args.estimate} archs took {time.perf_counter() - t0:.0f} s wall; proxies: {per_arch:.1f} s "
              f"per arch over {len(res['results'])} datasets")
        print(f"--archs {args.archs} --trials {args.trials}: ~{n:.0f} distinct archs -> "
              f"~{n * per_arch / 3600:.1f} h on this machine (1 thread)")
        return 0
    res = run_bench(args.proxies, bench, archs=archs, trials=args.trials, protocol=prot, out=args.out,
                    labels=False, command=cmd)
    print(f"wrote {res['markdown']} and {res['csv']}")
    if args.eznas:
        p16 = Protocol(batch=16, seed=args.seed, input=prot.input)
        res = run_bench([], bench, datasets=("cifar10", "cifar100"), archs=args.eznas, trials=1,
                        protocol=p16, out=args.out + "_eznas_b16", baselines=EZNAS, labels=False, command=cmd)
        print(f"wrote {res['markdown']} and {res['csv']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
