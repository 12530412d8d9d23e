"""Rank aggregation for transfer (issue: discovery quality, round 2): does a log-rank sum of
classic proxies and a discovered formula (AZ-NAS's and VKDNW_agg's way of combining terms),
its members chosen by leave-one-space-out on validation archs, beat the best single proxy
on a space that no choice saw?

For each left-out space X of NB201, NAS-Bench-Macro and DARTS, the members are a subset of
the classic set (experiments/transfer_report.CLASSIC_SET: #params, FLOPs, synflow, jacov,
NASWOT, ZiCo, MeCo) and the formula of the chosen setting's search that did not see X
(transfer.json's "without X"). The rule, fixed before any number was seen: of all 255
subsets, the one whose smallest margin over the seen spaces, Kendall τ of the aggregate
minus the best single classic proxy's τ on that space's validation archs, is largest
(ties: fewer members, then name order). "joint" chooses on all three spaces with
zoo:general as the formula: the candidate for a space nobody has seen.

An aggregate is population-level: an arch's score is Σ log(rank / N) over the members,
ranked among the N archs scored together.

    python experiments/transfer.py --stage validation-baselines [--shard K/N]   # the stores it reads
    python experiments/aggregate.py --stage choose    # validation archs only: results/aggregate_choice.json
    python experiments/aggregate.py --stage report    # the choices on report archs: results/aggregate.{json,md}
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import (RECORD, RESULTS, SPACES, formula_scores, log, validation_labels,  # noqa: E402
                      validation_scores)
from transfer_report import (BASELINE_ARCHS, CLASSIC_SET, VALIDATION_SPACES, baseline_scores,  # noqa: E402
                             column_baselines, stored_prefix, targets, validation_column)

from gpproxy.baselines_peers import log_rank_aggregate  # noqa: E402
from gpproxy.fitness import kendall  # noqa: E402

CHOICE = RESULTS / "aggregate_choice.json"
OUT = RESULTS / "aggregate"
LEFT_OUT = {"nb201": "without nb201", "macro": "without macro", "darts": "without darts",
            "joint": "zoo:general"}
FORMULA = "formula"  # the member that stands for the left-out space's formula


def recorded_formula(label: str) -> tuple:
    f = json.loads(RECORD.read_text())["formulas"][label]
    return f["formula"], f["pack"]


def validation_data(key: str) -> tuple:
    """(accuracies, {member: scores}) of a space's validation archs: the classic set from its
    validation store, and every LEFT_OUT formula."""
    from gpproxy.spaces import get_space

    archs, labels = validation_labels(key)
    ds = next(iter(get_space(SPACES[key].space).datasets()))
    if stored_prefix(validation_column(key), key, ds, archs, CLASSIC_SET) < len(archs):
        raise SystemExit(f"{key}: validation baselines incomplete; run experiments/transfer.py "
                         "--stage validation-baselines")
    scores = baseline_scores(validation_column(key), key, ds, archs, CLASSIC_SET, compute=False)
    scores.update(validation_scores(key, {label: recorded_formula(label) for label in LEFT_OUT.values()})[0])
    return next(iter(labels.values())), scores


def members_of(subset, formula_label: str) -> list:
    return [formula_label if m == FORMULA else m for m in subset]


def aggregate(scores: dict, members: list) -> np.ndarray:
    return log_rank_aggregate([scores[m] for m in members])


def best_single(scores: dict, acc) -> tuple:
    taus = {n: kendall(scores[n], acc) for n in CLASSIC_SET}
    name = max(taus, key=lambda n: (np.nan_to_num(taus[n], nan=-2), n))
    return name, taus[name]


def choose(seen: list, data: dict, formula_label: str) -> dict:
    """The rule of the module docstring on the seen spaces' validation archs."""
    pool = CLASSIC_SET + (FORMULA,)
    best = {y: best_single(data[y][1], data[y][0]) for y in seen}
    rows = []
    for k in range(1, len(pool) + 1):
        for subset in itertools.combinations(pool, k):
            members = members_of(subset, formula_label)
            taus = {y: kendall(aggregate(data[y][1], members), data[y][0]) for y in seen}
            margin = min(taus[y] - best[y][1] for y in seen)
            rows.append((float(np.nan_to_num(margin, nan=-np.inf)), subset, taus))
    margin, subset, taus = min(rows, key=lambda r: (-r[0], len(r[1]), r[1]))
    return {"members": list(subset), "formula": formula_label, "seen": seen, "margin": margin,
            "taus": taus, "best_single": {y: list(best[y]) for y in seen}, "subsets_tried": len(rows)}


def stage_choose() -> dict:
    data = {key: validation_data(key) for key in VALIDATION_SPACES}
    out = {}
    for left, label in LEFT_OUT.items():
        seen = [y for y in VALIDATION_SPACES if y != left]
        c = choose(seen, data, label)
        if left != "joint":  # the leave-one-space-out estimate: X's validation archs, which no choice of X read
            acc, scores = data[left]
            members = members_of(c["members"], label)
            c["left_out"] = {"tau": kendall(aggregate(scores, members), acc),
                             "formula_alone": kendall(scores[label], acc),
                             "best_single": list(best_single(scores, acc))}
        out[left] = c
        log(f"{left}: {c['members']} margin {c['margin']:+.3f} on {seen}; left out: {c.get('left_out')}")
    CHOICE.write_text(json.dumps(out, indent=1, default=float) + "\n")
    return out


def stage_report() -> dict:
    choice = json.loads(CHOICE.read_text())
    columns = {"nb201": ("nb201-c10", "nb201-c100", "nb201-in16", "nb201-in16-32px"), "macro": ("macro",),
               "darts": ("darts",), "joint": ("nb101",)}
    cols = targets(3000, packs=["network"], columns=[c for cs in columns.values() for c in cs])
    rows = []
    for left, names in columns.items():
        c = choice[left]
        for col in names:
            key, ds, archs, acc, cache = cols[col]
            pool = column_baselines(col)
            k = stored_prefix(col, key, ds, archs[:BASELINE_ARCHS[col]], pool)
            archs, acc = archs[:k], acc[:k]
            scores = baseline_scores(col, key, ds, archs, pool, compute=False)
            scores.update(formula_scores(key, "report", {c["formula"]: recorded_formula(c["formula"])},
                                         cache=cache, archs=archs))
            members = members_of(c["members"], c["formula"])
            if not all(m in scores for m in members):  # NB101's store lacks part of the classic set
                rows.append({"column": col, "n": k, "members": members, "missing":
                             [m for m in members if m not in scores]})
                continue
            classic = {n: kendall(scores[n], acc) for n in pool if n in CLASSIC_SET}
            best = max(classic, key=lambda n: classic[n])
            tau = kendall(aggregate(scores, members), acc)
            rows.append({"column": col, "n": k, "members": members, "tau": tau,
                         "formula_alone": kendall(scores[c["formula"]], acc), "best_single": best,
                         "best_single_tau": classic[best], "margin": tau - classic[best]})
            log(f"{col}: aggregate {tau:.3f}, formula alone {rows[-1]['formula_alone']:.3f}, "
                f"{best} {classic[best]:.3f}")
    out = {"hardware": f"{platform.machine()}, {os.cpu_count()} cores, torch CPU", "choice": choice,
           "report": rows}
    OUT.with_suffix(".json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    OUT.with_suffix(".md").write_text(markdown(out))
    return out


def markdown(out) -> str:
    lines = ["# Rank aggregation for transfer: leave-one-space-out", "",
             "Written by `python experiments/aggregate.py --stage report` on " + out["hardware"] + ". "
             "Members chosen on validation archs only (module docstring); report archs never used for a choice. "
             "An aggregate is population-level (Σ log(rank / N) among the archs of one column).", "",
             "## The choices (validation archs)", "",
             "| left out | members | seen spaces: τ (best single) | left-out space's validation τ: aggregate "
             "/ formula alone / best single |", "|---|---|---|---|"]
    for left, c in out["choice"].items():
        seen = ", ".join(f"{y} {c['taus'][y]:.3f} ({c['best_single'][y][0]} {c['best_single'][y][1]:.3f})"
                         for y in c["seen"])
        lo = c.get("left_out")
        loc = (f"{lo['tau']:.3f} / {lo['formula_alone']:.3f} / {lo['best_single'][0]} {lo['best_single'][1]:.3f}"
               if lo else "(none: every space seen)")
        lines.append(f"| {left} | {' + '.join(members_of(c['members'], c['formula']))} | {seen} | {loc} |")
    lines += ["", "## On report archs (the space was left out of the members' choice; NB101: joint)", "",
              "| column | n | aggregate τ | formula alone | best classic | its τ | margin |",
              "|---|---|---|---|---|---|---|"]
    for r in out["report"]:
        if "missing" in r:
            lines.append(f"| {r['column']} | {r['n']} | (members {', '.join(r['missing'])} not computed there) "
                         "| | | | |")
            continue
        lines.append(f"| {r['column']} | {r['n']} | {r['tau']:.3f} | {r['formula_alone']:.3f} | "
                     f"{r['best_single']} | {r['best_single_tau']:.3f} | {r['margin']:+.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", required=True, choices=("choose", "report"))
    args = ap.parse_args()
    missing = [s.benchmark for s in SPACES.values() if not s.benchmark.exists()]
    if missing:
        log(f"needs {', '.join(map(str, missing))}; skipping")
        return 0
    os.chdir(Path(__file__).resolve().parents[1])
    stage_choose() if args.stage == "choose" else stage_report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
