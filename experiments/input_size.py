"""At which input size do gpproxy's NB201 formulas rank best? (validation archs only)

zoo:nb201's protocol scores every NB201 net at a 32x32 input, ImageNet16-120's
too: experiments/transfer.py's report chose it between each dataset's own size
and 32x32 (transfer_report.nb201_resolution). This ablation widens the view:
zoo:nb201 and the three seeds of its setting (single searches), scored on NB201's
validation archs as nets of each dataset's classes at SIZES, Kendall tau against
each dataset's accuracies. It reads no report arch and chooses nothing; the
searches saw CIFAR-10's nets at 32x32.

    .venv/bin/python experiments/input_size.py     # writes experiments/results/input_size.{json,md}

Needs ../shared/data (NB201's accuracy table) and experiments/results/transfer.json (the formulas);
builds one cache of the 500 validation archs per number of classes and size it lacks.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transfer import NB201_DATASETS, RECORD, RESULTS, formula_scores, taus_of, validation_labels  # noqa: E402
from transfer_report import SEED_LABEL, build_nb201_cache, nb201_columns, tau_cells, validation_cache  # noqa: E402

SIZES = (16, 24, 32, 48, 64)


def main() -> int:
    if not RECORD.exists():
        raise SystemExit(f"needs {RECORD}: run experiments/transfer.py --stage report first")
    t0 = time.perf_counter()
    record = json.loads(RECORD.read_text())
    formulas = {label: (f["formula"], f["pack"]) for label, f in record["formulas"].items()
                if label == "zoo:nb201" or label.startswith(SEED_LABEL)}
    archs, labels = validation_labels("nb201", NB201_DATASETS)
    dataset_of = {column: d for d, column in NB201_DATASETS.items()}
    packs = tuple(dict.fromkeys(p for _, p in formulas.values()))
    taus: dict = {label: {} for label in formulas}
    for size in SIZES:
        for _, _, column, spec in nb201_columns(size):
            cache = validation_cache(spec)
            build_nb201_cache(cache, spec, archs, packs, "validation")
            d = dataset_of[column]
            t = taus_of(formula_scores("nb201", "validation", formulas, cache=cache, archs=archs), {d: labels[d]})
            for label in formulas:
                taus[label].setdefault(str(size), {})[d] = t[label][d]
    out = {"sizes": list(SIZES), "archs": len(archs), "formulas": {k: f for k, (f, _) in formulas.items()},
           "validation_tau": taus, "seconds": round(time.perf_counter() - t0, 1),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch CPU"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "input_size.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "input_size.md").write_text(markdown(out))
    print((RESULTS / "input_size.md").read_text())
    return 0


def markdown(out: dict) -> str:
    lines = ["# Input size of NB201 nets: validation τ of zoo:nb201 and its setting's seeds", "",
             f"Command: `python experiments/input_size.py` on {out['machine']} ({out['seconds']} s). "
             f"NB201 validation archs ({out['archs']}, never report archs), each scored as nets of its dataset's "
             "classes at the input size (batch 16, Gaussian-noise input, init seed 0); the searches saw CIFAR-10's "
             "nets at 32x32. Kendall τ against CIFAR-10 valid / CIFAR-100 / ImageNet16-120 accuracies.", "",
             "| formula | input size | C10 | C100 | IN16 | mean |", "|---|---|---|---|---|---|"]
    for label, by_size in out["validation_tau"].items():
        best = max(by_size, key=lambda s: np.mean(list(by_size[s].values())))
        for size, t in by_size.items():
            mean = np.mean(list(t.values()))
            mark = " (best)" if size == best else ""
            lines.append(f"| {label} | {size}x{size}{mark} | {tau_cells(t)} | {mean:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
