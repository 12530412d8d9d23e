"""The ``gpproxy`` command line.

Every user-facing error is a GpproxyError: printed as one line prefixed
``gpproxy: error:`` with exit code 2. Ctrl-C exits 130 and loses nothing
(caches and runs are written atomically and resume).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import DataError, GpproxyError


def _archs_arg(text: str):
    """``all`` | N | FILE (one arch per line, any accepted encoding) -> 'all' | int | list."""
    text = str(text).strip()
    if text == "all":
        return "all"
    if text.isdigit():
        return int(text)
    path = Path(text)
    if not path.is_file():
        raise GpproxyError(f"--archs {text!r} is neither a number, 'all', nor an existing file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"--archs file {path} is not UTF-8 text (byte {e.start}): give one arch per line") from None
    archs = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    if not archs:  # else an empty cache or score, exit 0
        raise DataError(f"no archs in --archs file {path}: give one arch per line (# starts a comment)")
    return archs


def _ranked_archs(text: str):
    """``--archs`` of ``score`` / ``bench``: as :func:`_archs_arg`, at least 2 (a correlation ranks them)."""
    archs = _archs_arg(text)
    n = archs if isinstance(archs, int) else None if archs == "all" else len(archs)
    if n is not None and n < 2:
        raise GpproxyError(f"--archs {text!r}: needs at least 2 archs to rank")
    return archs


MAX_THREADS = 4 * (os.cpu_count() or 1)


def _check_args(args, names: tuple) -> None:
    """Each named argument against the config's rule of the same setting, before any work."""
    from .config import TASK_RULES, TOP_RULES, rule, check_value

    extra = {"jobs": rule(int, lambda v: v >= 1, ">= 1"), "trials": rule(int, lambda v: v >= 1, ">= 1"),
             # torch takes any count; 99999 then fails later as a misleading MemoryError
             "threads": rule(int, lambda v: 0 <= v <= MAX_THREADS,
                             f"in 0..{MAX_THREADS} (0: torch's default; 4 per CPU of this machine)"),
             "generations": rule(int, lambda v: v >= 0, ">= 0"),
             "rank": rule(int, lambda v: v >= 0, ">= 0")}
    for name in names:
        value = getattr(args, name)
        if value is None:
            continue
        r = extra.get(name) or TASK_RULES.get(name) or TOP_RULES[name]
        check_value("--" + name.replace("_", "-"), value, r)


def cmd_cache(args) -> int:
    from .cache import CacheSpec
    from .probe import ProbeConfig
    from .tasks import cache_benchmark

    _check_args(args, ("num_classes", "batch", "seed", "resolution", "act_features", "weight_rows",
                       "weight_cols", "jobs", "device"))

    spec = CacheSpec(space=args.space, num_classes=args.num_classes, batch=args.batch, seed=args.seed,
                     input=args.input, resolution=args.resolution, storage=args.storage,
                     probe=ProbeConfig(act_features=args.act_features, weight_rows=args.weight_rows,
                                       weight_cols=args.weight_cols, noise_pass=args.noise_pass,
                                       sample_seed=args.seed, net_terms=args.net_terms))
    cache, target = cache_benchmark(args.out, spec, args.benchmark, target=args.target,
                                    archs=_archs_arg(args.archs), jobs=args.jobs, device=args.device,
                                    dask_address=args.dask)
    print(json.dumps({"cache": str(cache.root), "archs": len(cache.archs()), "target": target,
                      "last_build": cache.manifest.get("last_build")}))
    return 0


def cmd_describe(args) -> int:
    from .config import check_value, rule
    from .spaces import get_space

    check_value("--num-classes", args.num_classes, rule(int, lambda v: v >= 1, ">= 1"))
    info = get_space(args.space).describe(args.arch, args.num_classes)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    layers = info.pop("layers", [])
    for k, v in info.items():
        print(f"{k:>10}: {v}")
    print(f"{'layers':>10}:")
    for L in layers:
        print("   " + "  ".join(f"{k}={v}" for k, v in L.items()))
    return 0


def cmd_evolve(args) -> int:
    from .api import evolve

    _check_args(args, ("generations",))
    overrides = {}
    if args.device:
        overrides["device"] = args.device
    if args.generations is not None:
        overrides["search.generations"] = args.generations
    run = evolve(args.config, out=args.out, plots=not args.no_plots, **overrides)
    print_summary(run.summary)
    if not args.no_plots:
        from .plots import FILES

        print("\npictures: " + ", ".join(str(run.root / f) for f in FILES.values() if (run.root / f).exists()))
    return 0


def cmd_resume(args) -> int:
    from .api import evolve
    from .run import Run

    run = Run.open(args.run)
    print_summary(evolve(run.config, out=run.root).summary)
    return 0


def print_summary(summary: dict) -> None:
    print(f"\nrun: {summary['run']}")
    print(f"Pareto front (search fitness vs. size); selection rule: {summary['rule']}")
    chosen = summary.get("selected") or {}
    for r in summary["front"]:
        mark = "*" if r["formula"] == chosen.get("formula") else " "
        print(f" {mark} size {r['size']:>3}  fitness {r['fitness']:+.4f}  {r['formula']}")
    if not chosen:
        print("no valid formula found")
        return
    sel = summary.get("heldout", {}).get("selected", {})
    base = summary.get("heldout_baselines", {})
    print("\nheld-out archs (never used for selection): Kendall tau / Spearman rho")
    for task, rep in sel.items():
        print(f"  task {task}")
        rows = [("selected formula", rep)] + [(n, b.get(task)) for n, b in base.items()]
        for name, r in rows:
            if r:
                print(f"    {name:<18} tau {r['kendall']:+.4f}  rho {r['spearman']:+.4f}  "
                      f"top10% {r['top10pct']:.3f}  (n={r['n']})")
            else:
                print(f"    {name:<18} invalid on held-out archs")


def cmd_inspect(args) -> int:
    from . import plots
    from .run import Run

    run = Run.open(args.run)
    cfg, front = run.config, run.front
    if args.json:
        print(json.dumps({"run": str(run.root), "correlation": cfg.fitness.correlation,
                          "selection_rule": run.selection_rule, "select_tolerance": cfg.search.select_tolerance,
                          "generations_done": run.generations_done, "finished": run.finished,
                          "front": [c.to_dict() for c in front]}, indent=1))
    else:
        print(f"run {run.root}: {run.generations_done}/{cfg.search.generations} generations, "
              f"fitness = {cfg.fitness.correlation} on search archs")
        print(f"selected (*): {run.selection_rule}")
        tasks = [t.name for t in cfg.tasks]
        print(f"{'':1} {'rank':>4} {'size':>4} {'fitness':>8} "
              + " ".join(f"{t + ' τ_ho':>14}" for t in tasks) + "  formula")
        for c in front:
            held = " ".join(f"{c.heldout[t]['kendall']:>14.4f}" if "kendall" in c.heldout.get(t, {})
                            else f"{'-':>14}" for t in tasks)
            print(f"{'*' if c.selected else ' '} {c.rank:>4} {c.size:>4} {c.fitness:>+8.4f} {held}  "
                  f"{c.math or c.formula}")
    for kind, path in (("progress", args.plot), ("scatter", args.scatter), ("front", args.front_plot)):
        if path:
            print(f"wrote {getattr(plots, kind)(run, path)}")
    return 0


def cmd_export(args) -> int:
    from . import zoo
    from .export import export_formula, export_zoo
    from .run import Run

    _check_args(args, ("rank",))
    if zoo.is_zoo(args.formula) or zoo.is_zoo(args.run):
        if args.pack is not None or args.rank is not None or (args.run and args.formula):
            raise GpproxyError("a zoo entry exports on its own, with its own pack: give no --pack, --rank or run")
        out = export_zoo(args.formula or args.run, args.output, export_name=args.name)
    elif args.formula is not None:
        if args.run or args.rank is not None:
            raise GpproxyError("--formula exports a formula on its own: give no run directory and no --rank")
        out = export_formula(args.formula, args.output, args.pack or "default", name=args.name)
    elif args.run:
        if args.pack is not None:
            raise GpproxyError("--pack goes with --formula; a run directory exports with the run's own pack")
        out = Run.open(args.run).export(args.output, rank=args.rank, name=args.name)
    else:
        raise GpproxyError("give a run directory or --formula")
    print(f"wrote {out}")
    return 0


def cmd_zc_merge(args) -> int:
    from .adapters import merge_zc_api

    rename = None
    if args.proxy:
        rename = {}
        for item in args.proxy:
            old, sep, new = item.partition("=")
            rename[old] = new if sep else old
    summary = merge_zc_api(args.scores, args.into, out=args.out, proxies=rename, overwrite=args.overwrite,
                           space=args.space)
    for ds, c in summary.items():
        print(f"{ds}: {c['merged']} proxy entries merged, {c['kept']} kept (already there), "
              f"{c['missing_archs']} archs not in {args.into}")
    print(f"wrote {args.out or args.into}")
    return 0


def _common_arguments(p, archs: str, trials: int) -> None:
    p.add_argument("--benchmark", default=None,
                   help="NB201 accuracy CSV (e.g. nb201_accuracies_200ep.csv.gz) | analog-nasbench | NATS path | "
                        "nds:PATH[:first=N][:space=NAME] | tnb101:PATH[:space=micro|macro][:task=NAME]")
    p.add_argument("--archs", default=archs, help="all | N random archs per trial | FILE")
    p.add_argument("--trials", type=int, default=trials, help="with --archs N: independent draws of N archs")
    p.add_argument("--batch", type=int, default=None,
                   help="minibatch size (default: a zoo entry's own, else 64)")
    p.add_argument("--seed", type=int, default=0, help="init seed of every net and minibatch seed")
    p.add_argument("--input", default="noise", help="noise | cifar10:DIR | cifar100:DIR | npz:FILE[:KEY]")
    p.add_argument("--resolution", type=int, default=None,
                   help="input side in pixels (default: a zoo entry's own, else each dataset's: 32 CIFAR/NDS, "
                        "16 ImageNet16-120, 224 NDS _in, 256 TNB101)")
    p.add_argument("--space", default=None, help="search space (default: the benchmark's; if given, must match it)")
    p.add_argument("--pack", default="default", help="primitive pack of formula proxies")
    p.add_argument("--cache-dir", default="caches/score", help="statistics caches of formula proxies")
    p.add_argument("--per-arch-seed", action="store_true",
                   help="a fresh init and minibatch per arch (NASLib's protocol) instead of one seed for all")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def _score_arguments(p) -> None:
    """Arguments of ``gpproxy score``."""
    p.add_argument("proxy", help="baseline name | zoo:NAME | formula string | exported proxy .py file")
    p.add_argument("--dataset", default=None,
                   help="NB201: cifar10 | cifar100 | imagenet16_120; NDS: cifar10 (imagenet for _in spaces); "
                        "TNB101: class_object | class_scene (default: the first)")
    p.add_argument("--target", default=None, help="ground-truth column (default: the dataset's)")
    p.add_argument("--scores", default=None,
                   help="per-arch scores, NAS-Bench-Suite-Zero layout; a name ending in .gz is gzip-compressed "
                        "(default: CACHE_DIR/scores.json)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    _common_arguments(p, archs="all", trials=1)
    p.set_defaults(fn=cmd_score)


def _bench_arguments(p) -> None:
    """Arguments of ``gpproxy bench``."""
    p.add_argument("proxies", nargs="*", help="extra zoo:NAME entries, formula strings or exported .py files")
    p.add_argument("--datasets", default=None,
                   help="comma-separated (default: all of the space's: NB201 cifar10,cifar100,imagenet16_120; "
                        "NDS cifar10 or imagenet; TNB101 class_object,class_scene)")
    p.add_argument("--target", default=None, help="ground-truth column, with one dataset (default: the dataset's)")
    p.add_argument("--baselines", default="all", help="all | none | comma-separated baseline names; aznas and vkdnw_agg "
                   "are population-level (rank-combined across each trial's archs)")
    p.add_argument("--out", default="bench", help="output prefix: PREFIX.md, PREFIX.csv, PREFIX.scores.json; an "
                   "existing directory gets DIR/bench.md, DIR/bench.csv, DIR/bench.scores.json")
    _common_arguments(p, archs="1000", trials=10)
    p.set_defaults(fn=cmd_bench)


def _setup(args):
    from .scoring import Protocol

    _check_args(args, ("threads", "batch", "trials", "seed", "resolution"))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .zoo import scoring_protocol

    # a zoo entry is scored under the protocol it was measured with, unless told otherwise
    batch, resolution = scoring_protocol(getattr(args, "proxy", None), args.batch, args.resolution)
    return Protocol(space=args.space, batch=batch, seed=args.seed, input=args.input, pack=args.pack,
                    per_arch_seed=args.per_arch_seed, resolution=resolution)


def cmd_score(args) -> int:
    from .scoring import ANALOG, METRICS, run_score
    from .scoring.metrics import meaningful

    protocol = _setup(args)
    archs = _ranked_archs(args.archs)
    rep = run_score(args.proxy, args.benchmark or ANALOG, args.dataset, args.target, archs, args.trials,
                    protocol, args.scores, args.cache_dir)
    if args.json:
        print(json.dumps(rep, indent=1))
        return 0
    for note in rep["notes"]:
        print(f"note: {note}")
    print(f"{rep['proxy']} on {rep['space']} {rep['dataset']} ({rep['target']}; {rep['num_classes']}-class net, "
          f"{rep['resolution']}x{rep['resolution']} {rep['input']} input), {rep['archs']} archs x {rep['trials']} "
          f"trial(s):")
    for m in METRICS:
        if not meaningful(m, rep["n"]):
            continue  # the top-k of too few archs says nothing
        mean, std = rep[m]
        print(f"  {m:<9} {mean:+.4f}" + (f" ± {std:.4f}" if rep["trials"] > 1 else ""))
    if rep["invalid"]:
        print(f"  {rep['invalid']} arch(s) with a non-finite score (ranked as -1e8)")
    if rep.get("constant"):
        print(f"  the proxy gave every arch the same score in {rep['constant']} of {rep['trials']} trial(s): no "
              "ranking there (nan)")
    print(f"per-arch scores: {rep['scores']} ({rep['reused']} of them reused from earlier runs)")
    return 0


def cmd_bench(args) -> int:
    from .scoring import run_bench
    from .scoring.proxies import baseline_names

    protocol = _setup(args)
    known = baseline_names()
    if args.baselines == "all":
        names = known
    elif args.baselines == "none":
        names = []
    else:
        names = [n.strip() for n in args.baselines.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise GpproxyError(f"unknown baseline {unknown[0]!r}; known: {', '.join(known)}")
    if not names and not args.proxies:
        raise GpproxyError("nothing to bench: give proxies or leave --baselines at 'all'")
    archs = _ranked_archs(args.archs)
    datasets = [d.strip() for d in (args.datasets or "").split(",") if d.strip()] or None
    command = "gpproxy " + " ".join(sys.argv[1:]) if sys.argv and "gpproxy" in sys.argv[0] else ""
    res = run_bench(args.proxies, args.benchmark, datasets, archs, args.trials, protocol, _bench_prefix(args.out),
                    baselines=names, cache_root=args.cache_dir, command=command, target=args.target)
    for note in res["notes"]:
        print(f"note: {note}")
    print(f"wrote {res['markdown']}, {res['csv']} and {res['scores']}")
    return 0


def _bench_prefix(out: str) -> Path:
    """``--out`` of ``bench``: a prefix, or an existing directory to write bench.* into."""
    if not str(out).strip():
        raise GpproxyError("--out is empty: give an output prefix (PREFIX.md, PREFIX.csv, PREFIX.scores.json) "
                           "or a directory")
    path = Path(out)
    # a directory as prefix would put DIR.md beside it (/tmp -> /tmp.md at the filesystem root)
    return path / "bench" if path.is_dir() else path


class _Parser(argparse.ArgumentParser):
    """argparse with the package's one-line errors (argparse prints usage + error)."""

    def error(self, message):
        print(f"gpproxy: error: {self.prog}: {_one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gpproxy", description="Discover zero-cost NAS proxies with typed GP.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("cache", help="build (or complete) a statistics cache")
    c.add_argument("--space", default="nb201", help="a built-in space name or a user space .py file")
    c.add_argument("--benchmark", default="analog-nasbench",
                   help="analog-nasbench | CSV/JSON path (archs of --space) | NATS path | nds:PATH | tnb101:PATH")
    c.add_argument("--target", default="", help="target column (default: the benchmark's default)")
    c.add_argument("--archs", default="100", help="N (random) | all | FILE")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--batch", type=int, default=16)
    c.add_argument("--input", default="noise", help="noise | cifar10:DIR | cifar100:DIR | npz:FILE[:KEY]")
    c.add_argument("--num-classes", type=int, default=10)
    c.add_argument("--resolution", type=int, default=32)
    c.add_argument("--storage", default="float16", choices=["float16", "float32"])
    c.add_argument("--act-features", type=int, default=64)
    c.add_argument("--weight-rows", type=int, default=16)
    c.add_argument("--weight-cols", type=int, default=64)
    c.add_argument("--noise-pass", action="store_true")
    c.add_argument("--net-terms", action="store_true",
                   help="also record the whole-network terms (jacov, naswot) that Net terminals of a pack read")
    c.add_argument("--out", required=True)
    c.add_argument("--jobs", type=int, default=2, help="worker processes (1 torch thread each)")
    c.add_argument("--device", default="auto", help="auto | cpu | cuda")
    c.add_argument("--dask", default="", metavar="ADDRESS",
                   help="build on an existing dask scheduler (workers must see --out at the same path)")
    c.set_defaults(fn=cmd_cache)

    d = sub.add_parser("describe", help="layers, params and FLOPs of one arch")
    d.add_argument("space", help="a built-in space name or a user space .py file")
    d.add_argument("arch")
    d.add_argument("--num-classes", type=int, default=10)
    d.add_argument("--json", action="store_true")
    d.set_defaults(fn=cmd_describe)

    e = sub.add_parser("evolve", help="run an evolution from a TOML config")
    e.add_argument("config")
    e.add_argument("--out", default=None, help="run directory (default runs/<name>)")
    e.add_argument("--device", default=None)
    e.add_argument("--generations", type=int, default=None)
    e.add_argument("--no-plots", action="store_true", help="skip the three PNGs written into the run directory")
    e.set_defaults(fn=cmd_evolve)

    r = sub.add_parser("resume", help="continue a killed run")
    r.add_argument("run")
    r.set_defaults(fn=cmd_resume)

    i = sub.add_parser("inspect", help="print a run's Pareto front")
    i.add_argument("run")
    i.add_argument("--json", action="store_true")
    i.add_argument("--plot", default=None, help="write fitness-over-generations PNG here")
    i.add_argument("--scatter", default=None, help="write the held-out predicted-rank vs true-rank PNG of the selected formula")
    i.add_argument("--front-plot", default=None, help="write the Pareto front (fitness vs. size) PNG here")
    i.set_defaults(fn=cmd_inspect)

    x = sub.add_parser("export", help="write a standalone torch module for a formula")
    x.add_argument("run", nargs="?", default=None, help="a run directory, or a zoo entry (zoo:NAME)")
    x.add_argument("--rank", type=int, default=None, help="row of pareto.csv (default: the selected one)")
    x.add_argument("--formula", default=None, help="a formula string, or a zoo entry (zoo:NAME)")
    x.add_argument("--pack", default=None, help="primitive pack of --formula (default: default; a run uses its own)")
    x.add_argument("--name", default=None, help="measure name for register() (default: derived from the formula)")
    x.add_argument("-o", "--output", required=True)
    x.set_defaults(fn=cmd_export)

    _score_arguments(sub.add_parser("score", help="correlations of one proxy with a benchmark"))
    _bench_arguments(sub.add_parser("bench", help="table of every baseline on each dataset of a benchmark"))

    z = sub.add_parser("zc-merge", help="merge gpproxy scores into a NAS-Bench-Suite-Zero / NASLib zc_api JSON")
    z.add_argument("scores", help="a gpproxy scores file (gpproxy score --scores / bench PREFIX.scores.json)")
    z.add_argument("--into", required=True, help="the zc_api file, e.g. zc_nasbench201.json")
    z.add_argument("--out", default=None, help="write here instead of rewriting --into")
    z.add_argument("--proxy", action="append", default=None, metavar="NAME[=NEW]",
                   help="merge only this proxy (repeatable), optionally under a new name")
    z.add_argument("--overwrite", action="store_true", help="replace proxy entries the file already has")
    z.add_argument("--space", default=None, help="space of the archs (default: the one recorded beside SCORES)")
    z.set_defaults(fn=cmd_zc_merge)
    return p


def _one_line(text: str) -> str:
    """An error message as one line: a newline in a value (a file name, a cell) must
    not turn one error into several lines."""
    return " ".join(str(text).split()) or "(no message)"


def _os_error(e: OSError) -> str:
    """One line naming the path and what the system said (permission, not a directory, disk full)."""
    what = e.strerror or type(e).__name__
    paths = " -> ".join(repr(str(p)) for p in (e.filename, e.filename2) if p is not None)
    return f"{what}: {paths}" if paths else f"{what} ({e})"


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed)
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.fn(args)
    except GpproxyError as e:
        print(f"gpproxy: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"gpproxy: error: {_one_line(_os_error(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpproxy: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not _out_of_memory(e):
            raise
        print(f"gpproxy: error: out of memory ({_one_line(str(e) or type(e).__name__)[:160]}); use a smaller "
              "--batch, --resolution or --num-classes (or fewer --jobs)", file=sys.stderr)
        return 2
    except SystemExit as e:  # parsing is over: this is user code (a pack, a space file) calling sys.exit()
        print(f"gpproxy: error: user code called sys.exit({e.code!r}) during the command; nothing after it ran",
              file=sys.stderr)
        return 2


def _out_of_memory(e: RuntimeError) -> bool:
    """torch's allocator failures: CPU ("can't allocate memory") and CUDA ("out of memory")."""
    text = str(e)
    return "can't allocate memory" in text or "out of memory" in text.lower()


if __name__ == "__main__":
    sys.exit(main())
