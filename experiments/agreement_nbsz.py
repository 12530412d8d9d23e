"""Do our baselines reproduce NAS-Bench-Suite-Zero's published NB201 scores?

NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022; NASLib ``zerocost``
branch) published 13 proxies for 9,445 NB201 archs on CIFAR-10
(``shared/data/nb201/nb201_zc_proxies_cifar10.csv.gz``). We score a random
subset with our own code under the suite's settings (CIFAR-10 net, batch 64 of
real training images, PyTorch default init, BN in training mode,
cross-entropy) and report, per proxy, the Spearman correlation between our
score and the published one.

The suite drew a fresh minibatch and fresh init for every arch, so a proxy
that is noisy across seeds cannot agree with it perfectly. To tell that
ceiling from an implementation gap we score part of the subset twice more:
with another fixed seed (seed-to-seed), and with a fresh seed per arch as
NASLib's runner did (fixed-vs-fresh: the agreement an exact reimplementation
can reach with a noisy table of this kind).

    python experiments/agreement_nbsz.py            # 500 archs, ~35 + 2 x 15 min on 1 CPU core

writes experiments/results/agreement_nbsz.{md,csv} and the per-arch scores
(``*.scores.json``, NAS-Bench-Suite-Zero layout; a rerun resumes from them).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpproxy.baselines import NBSZ_PROXIES  # noqa: E402
from gpproxy.scoring import Protocol, ScoreStore, compute_scores, resolve_proxies, suite_key  # noqa: E402
from gpproxy.spaces import get_space  # noqa: E402

SEED_FREE = ("params", "flops")  # exact counts: a second seed cannot change them
TABLE = "nb201/nb201_zc_proxies_cifar10.csv.gz"
IMAGES = "images/cifar10_jpeg_subset_2000.npz"


def read_suite(path: Path):
    """arch_str -> ({proxy: published score}, val_accuracy) of the suite's table."""
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["arch_str"]: ({p: float(r[p]) for p in NBSZ_PROXIES}, float(r["val_accuracy"])) for r in rows}


def spearman(a, b) -> float:
    return float(stats.spearmanr(a, b).statistic)


def kendall(a, b) -> float:
    return float(stats.kendalltau(a, b).statistic)


def verdict(r: dict) -> str:
    """'matches' at ρ >= 0.9; below, whether our own seed noise accounts for the gap."""
    if r["spearman_vs_published"] >= 0.9:
        return "matches"
    seed, fresh, got = r["spearman_seed_to_seed"], r["spearman_fixed_vs_fresh"], r["spearman_vs_published_check"]
    # Our own code, rerun with other seeds, agrees no better than this with itself.
    if seed is not None and got >= min(seed, fresh) - 0.03:
        return (f"seed-noise limited: ρ {got:.3f} on the check archs; our own seed-to-seed {seed:.3f}, "
                f"fixed-vs-fresh {fresh:.3f}")
    return "below 0.9: see docs/baselines.md"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"), help="the staged data folder")
    ap.add_argument("--archs", type=int, default=500, help="archs drawn from the suite's 9,445")
    ap.add_argument("--seed", type=int, default=0, help="draw of the archs, init and minibatch seed")
    ap.add_argument("--check-seed", type=int, default=1, help="second seed for the seed-to-seed check")
    ap.add_argument("--check-archs", type=int, default=200, help="archs scored with the second seed (0: skip)")
    ap.add_argument("--batch", type=int, default=64, help="NAS-Bench-Suite-Zero used 64 on CIFAR-10")
    ap.add_argument("--out", default=str(REPO / "experiments" / "results" / "agreement_nbsz"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    shared = Path(args.shared)
    suite = read_suite(shared / TABLE)
    names = sorted(suite)
    pick = np.random.default_rng(args.seed).choice(len(names), args.archs, replace=False)
    archs = [names[i] for i in pick]
    ds = get_space("nb201").datasets()["cifar10"]
    proxies = resolve_proxies(NBSZ_PROXIES)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    inp = f"npz:{(shared / IMAGES).resolve()}"
    t0 = time.perf_counter()

    main_prot = Protocol(batch=args.batch, seed=args.seed, input=inp)
    store = ScoreStore(out.with_name(out.name + ".scores.json"), main_prot)
    # No labels in the score files: they sit in the repo, the suite's table does not.
    compute_scores(archs, ds, main_prot, proxies, store)
    check = archs[:args.check_archs]
    store2 = store3 = None
    if check:
        noisy = [p for p in proxies if p.name not in SEED_FREE]
        prot2 = Protocol(batch=args.batch, seed=args.check_seed, input=inp)
        store2 = ScoreStore(out.with_name(out.name + f".seed{args.check_seed}.scores.json"), prot2)
        compute_scores(check, ds, prot2, noisy, store2)
        prot3 = Protocol(batch=args.batch, seed=args.check_seed, input=inp, per_arch_seed=True)
        store3 = ScoreStore(out.with_name(out.name + ".fresh.scores.json"), prot3)
        compute_scores(check, ds, prot3, noisy, store3)

    keys = [suite_key("nb201", a) for a in archs]
    acc = np.array([suite[a][1] for a in archs])
    rows = []
    for p in NBSZ_PROXIES:
        ours = store.scores(ds.suite_name, keys, p)
        pub = np.array([suite[a][0][p] for a in archs])
        rho_seed = rho_fresh = rho_fresh_pub = None
        k2 = keys[:len(check)]
        rho_pub_check = spearman(ours[:len(check)], pub[:len(check)]) if check else None
        if store2 is not None and p not in SEED_FREE:
            fixed, fresh = store.scores(ds.suite_name, k2, p), store3.scores(ds.suite_name, k2, p)
            rho_seed = spearman(fixed, store2.scores(ds.suite_name, k2, p))
            rho_fresh = spearman(fixed, fresh)
            rho_fresh_pub = spearman(fresh, pub[:len(check)])
        secs = np.mean([store.data[ds.suite_name][k][p]["time"] for k in keys])
        rows.append({"proxy": p, "n": len(archs), "spearman_vs_published": spearman(ours, pub),
                     "kendall_vs_published": kendall(ours, pub), "n_check": len(check),
                     "spearman_vs_published_check": rho_pub_check,
                     "spearman_seed_to_seed": rho_seed, "spearman_fixed_vs_fresh": rho_fresh,
                     "spearman_fresh_vs_published_check": rho_fresh_pub,
                     "spearman_ours_vs_acc": spearman(ours, acc), "spearman_published_vs_acc": spearman(pub, acc),
                     "invalid_ours": int(np.sum(ours == -1e8)), "seconds_per_arch": float(secs)})
    compute = sum(e["time"] for st in (store, store2, store3) if st is not None
                  for arch in st.data.get(ds.suite_name, {}).values()
                  for e in arch.values() if isinstance(e, dict))
    write_tables(rows, out, args, inp, compute, time.perf_counter() - t0)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.csv')}")
    return 0


def write_tables(rows, out: Path, args, inp: str, compute: float, seconds: float) -> None:
    cmd = "python experiments/agreement_nbsz.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in (("archs", args.archs), ("seed", args.seed),
                                                       ("check_seed", args.check_seed),
                                                       ("check_archs", args.check_archs), ("batch", args.batch))
        if v != {"archs": 500, "seed": 0, "check_seed": 1, "check_archs": 200, "batch": 64}[k])
    if out.resolve() != (REPO / "experiments" / "results" / "agreement_nbsz").resolve():
        cmd += f" --out {args.out}"
    header = [
        f"command: `{cmd}`",
        f"published: NAS-Bench-Suite-Zero NB201 CIFAR-10 scores (shared/data/{TABLE}, 9,445 archs); "
        f"{args.archs} archs drawn with numpy default_rng({args.seed})",
        f"ours: CIFAR-10 net (10 classes), batch {args.batch} of `{Path(inp[4:]).name}` x_train "
        f"(NB201 CIFAR-10 normalisation, no augmentation), torch.manual_seed({args.seed}) before each build "
        f"(PyTorch default init), BN in training mode, cross-entropy; NASLib conventions per proxy "
        f"(gpproxy/baselines.py)",
        f"check archs: the first {args.check_archs} of those archs, rescored (a) with seed {args.check_seed} "
        f"for all (seed-to-seed) and (b) with a fresh init and minibatch per arch as NASLib's runner did "
        f"(fixed-vs-fresh); 'ρ vs published (check)' is ρ ours vs published on the same archs, "
        f"'ρ fresh vs published' the same for (b), i.e. our code under NASLib's own protocol; "
        f"params/flops are seed-free",
        "ρ vs acc: Spearman with the suite's val_accuracy label on the same archs",
        f"proxy compute time in the score files: {compute / 60:.0f} min on 1 CPU thread "
        f"(this invocation: {seconds:.0f} s wall; stored scores are not recomputed)",
    ]
    md = ["# Agreement with NAS-Bench-Suite-Zero (NB201, CIFAR-10)", ""] + [f"- {h}" for h in header] + [""]
    md.append(f"| proxy | ρ ours vs published ({args.archs}) | τ ours vs published | ρ vs published (check) | "
              "ρ seed-to-seed | ρ fixed-vs-fresh | ρ fresh vs published (check) | ρ vs acc (ours) | "
              "ρ vs acc (published) | s/arch | verdict |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|")

    def f(v):
        return "—" if v is None else f"{v:.3f}"

    for r in rows:
        md.append(f"| {r['proxy']} | {f(r['spearman_vs_published'])} | {f(r['kendall_vs_published'])} | "
                  f"{f(r['spearman_vs_published_check'])} | {f(r['spearman_seed_to_seed'])} | "
                  f"{f(r['spearman_fixed_vs_fresh'])} | {f(r['spearman_fresh_vs_published_check'])} | "
                  f"{f(r['spearman_ours_vs_acc'])} | "
                  f"{f(r['spearman_published_vs_acc'])} | {r['seconds_per_arch']:.2f} | {verdict(r)} |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    cols = list(rows[0])
    lines = [f"# {h}" for h in header] + [",".join(cols)]
    for r in rows:
        lines.append(",".join("" if r[c] is None else (f"{r[c]:.6f}" if isinstance(r[c], float) else str(r[c]))
                              for c in cols))
    out.with_suffix(".csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
