"""``gpproxy inspect RUN``: the Pareto front as a table or JSON, optional plots."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import GpproxyError
from .rundir import read_csv, read_log

SELECTION_RULE = "the smallest front formula whose search fitness is within select_tolerance of the best"


def front_records(run: Path) -> list:
    rows = read_csv(run / "pareto.csv")
    out = []
    for r in rows:
        rec = {"rank": int(r["rank"]), "selected": r["selected"] == "1", "size": int(r["size"]),
               "fitness": float(r["fitness"]), "formula": r["formula"], "math": r.get("math", "")}
        for k, v in r.items():
            if "heldout" in k:
                rec[k] = float(v) if v not in ("", None) else None
        out.append(rec)
    return out


def inspect_run(args) -> int:
    from .engine import load_run_config

    run = Path(args.run)
    cfg = load_run_config(run)
    recs = front_records(run)
    log = read_log(run)
    if args.json:
        print(json.dumps({"run": str(run), "correlation": cfg.fitness.correlation,
                          "selection_rule": SELECTION_RULE, "select_tolerance": cfg.search.select_tolerance,
                          "generations_done": len(log) - 1 if log else 0, "front": recs}, indent=1))
    else:
        print(f"run {run}: {len(log) - 1 if log else 0}/{cfg.search.generations} generations, "
              f"fitness = {cfg.fitness.correlation} on search archs")
        print(f"selected (*): {SELECTION_RULE} ({cfg.search.select_tolerance})")
        held_keys = [k for k in (recs[0] if recs else {}) if k.endswith("heldout_kendall")]
        head = f"{'':1} {'rank':>4} {'size':>4} {'fitness':>8} " + " ".join(
            f"{k.split(':')[0] + ' τ_ho':>14}" for k in held_keys) + "  formula"
        print(head)
        for r in recs:
            held = " ".join(f"{r[k]:>14.4f}" if r[k] is not None else f"{'-':>14}" for k in held_keys)
            print(f"{'*' if r['selected'] else ' '} {r['rank']:>4} {r['size']:>4} {r['fitness']:>+8.4f} "
                  f"{held}  {r['math'] or r['formula']}")
    if args.plot:
        _plot_progress(log, args.plot)
    if args.scatter:
        chosen = next((r for r in recs if r["selected"]), None)
        if chosen is None:
            raise GpproxyError("no selected formula to plot")
        _plot_scatter(run, cfg, chosen["formula"], args.scatter)
    return 0


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GpproxyError("plots need matplotlib: pip install 'gpproxy[plot]'") from None
    return plt


def _plot_progress(log: list, path) -> None:
    plt = _pyplot()
    g = [r["generation"] for r in log]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(g, [r["best"] for r in log], label="best")
    ax.plot(g, [r["median"] if r["median"] is not None else float("nan") for r in log], label="median")
    ax.set_xlabel("generation")
    ax.set_ylabel("search fitness")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def _plot_scatter(run: Path, cfg, formula: str, path) -> None:
    from .engine import HeldoutScorer, resolve_device
    from .pack import load_pack
    from .tasks import prepare_task

    plt = _pyplot()
    pack = load_pack(cfg.search.pack)
    td = prepare_task(cfg.tasks[0], jobs=1, log=lambda m: None)
    scorer = HeldoutScorer(pack, [td], resolve_device(cfg.device), cfg.search.chunk_archs)
    scores = scorer.scores([formula], td)[formula]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(scores, td.heldout_acc, s=6, alpha=0.6)
    ax.set_xlabel("proxy score")
    ax.set_ylabel(f"{td.target} (held-out archs)")
    ax.set_title(formula if len(formula) < 60 else formula[:57] + "...", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")
