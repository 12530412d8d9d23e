"""The spaces of the transfer study (issue: discovery quality, round 2) and their splits.

Each space's archs are split once, by a fixed seed, into three disjoint parts:
``search`` (what a search sees), ``validation`` (what every choice is made on:
settings, seeds, the final formula, by leave-one-space-out) and ``report``
(never used for any choice). NB201 keeps the 2,000 validation archs of
experiments/ablation.py out of its report but makes choices on the first 500
of them (the CPU budget: each needs a cached probe). NB101 is searched by nothing: all its cells are
report archs of a space no search has seen.

Labels: NB201 200-epoch CIFAR-10 valid accuracy (search/validation), NAS-Bench-Macro
mean CIFAR-10 test accuracy of 3 trainings, NB301 *surrogate* predictions for the
DARTS cells (XGB surrogate of NAS-Bench-301, not trainings), NB101 validation
accuracy (NAS-Bench-Suite-Zero's table, 500 rows of 301 distinct cells, averaged).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class StudySpace:
    key: str
    space: str
    benchmark: Path
    target: str
    n_search: int
    n_validation: int
    n_report: int | str  # int, or "rest"
    cache: str
    moments: bool = True
    label: str = ""
    n_selection: int = 0  # validation archs that choices are made on (0: all); the rest stay out of the report

    @property
    def selection_archs(self) -> int:
        return self.n_selection or self.n_validation

    def task(self, **extra) -> dict:
        """The ``[[task]]`` of a search on this space (held-out = its validation archs)."""
        t = {"name": self.key, "space": self.space, "benchmark": str(self.benchmark), "target": self.target,
             "num_classes": 10, "search_archs": self.n_search, "heldout_archs": self.selection_archs,
             "split_seed": 0, "batch": 16, "input": "noise", "cache": self.cache, "moments": self.moments}
        t.update(extra)
        return t


SPACES = {
    "nb201": StudySpace("nb201", "nb201", SHARED / "nb201" / "nb201_accuracies_200ep.csv.gz",
                        "cifar10valid_valid", 1000, 2000, "rest", "caches/nb201-c10-noise-b16", moments=False,
                        label="NB201 (CIFAR-10 valid, 200 epochs)", n_selection=500),
    "macro": StudySpace("macro", str(ROOT / "examples" / "spaces" / "nb_macro.py"),
                        SHARED / "nbmacro" / "nas_bench_macro_cifar10.csv.gz", "mean_acc", 500, 500, 1000,
                        "caches/transfer-macro", label="NAS-Bench-Macro (CIFAR-10, mean of 3 trainings)"),
    "darts": StudySpace("darts", "darts", SHARED / "nb301" / "nb301_naslib_prerelease_subsets_surrogate.csv.gz",
                        "val_accuracy_surrogate", 200, 150, 250, "caches/transfer-darts",
                        label="DARTS / NB301 (surrogate predictions, not trainings)"),
    "nb101": StudySpace("nb101", str(ROOT / "examples" / "spaces" / "nb101.py"),
                        SHARED / "nb101" / "nb101_naslib_prerelease_subset.csv.gz", "val_accuracy", 0, 0, "rest",
                        "caches/transfer-nb101", label="NB101 (never searched)"),
}
SEARCHED = ("nb201", "macro")  # DARTS and NB101: left out of every search


def splits(s: StudySpace):
    """(benchmark, {"search", "validation", "report"} -> archs, arch -> accuracy)."""
    import numpy as np

    from gpproxy.benchmarks import load_benchmark
    from gpproxy.spaces import get_space

    space = get_space(s.space)
    bench = load_benchmark(str(s.benchmark), space=space)
    acc = bench.accuracy(s.target)
    finite = [(space.canonical(a), v) for a, v in zip(bench.archs, acc) if np.isfinite(v)]
    archs = [a for a, _ in finite]
    # the permutation of gpproxy.tasks.split_archs: search first, then validation, then report
    perm = np.random.default_rng(0).permutation(len(archs))
    cut1, cut2 = s.n_search, s.n_search + s.n_validation
    cut3 = len(archs) if s.n_report == "rest" else cut2 + s.n_report
    parts = {"search": [archs[i] for i in perm[:cut1]], "validation": [archs[i] for i in perm[cut1:cut2]],
             "report": [archs[i] for i in perm[cut2:cut3]]}
    return bench, parts, dict(finite)
