"""Ground truth for scoring: the targets of each dataset of a benchmark's space."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, GpproxyError
from ..spaces import get_space

ANALOG = "analog-nasbench"


@dataclass
class Truth:
    """Archs and targets per dataset, plus what was used and why."""

    source: str
    columns: dict  # dataset name -> (Dataset, target column, {arch: value})
    notes: list = field(default_factory=list)
    space: str = "nb201"  # the benchmark's space


def load_truth(benchmark, datasets=None, target: str | None = None, fallback: bool = True,
               space: str | None = None, first_only: bool = False) -> Truth:
    """Targets of each dataset of the benchmark's space (``datasets=None``: all of them, or
    the first with ``first_only``).

    A missing NB201 table falls back to analog-nasbench (CIFAR-10); ``space``,
    when given, must be the benchmark's.
    """
    from ..benchmarks import default_target, load_benchmark, names_a_table

    notes = []
    if benchmark is None or not (names_a_table(benchmark) or Path(benchmark).exists()):
        default = get_space(space or "nb201").default_benchmark
        if not fallback or default is None:
            raise DataError(f"benchmark {benchmark} not found" if benchmark else
                            f"space {space} needs --benchmark (a CSV/JSON of its archs, nds:PATH or tnb101:PATH)")
        notes.append(f"NB201 table {benchmark or '(none given)'} not found: fell back to {default} "
                     f"(one CIFAR-10 retraining of the NB201 space), CIFAR-10 only")
        benchmark = default
    bench = load_benchmark(benchmark, space=space)
    if space is not None and space != bench.space:
        raise GpproxyError(f"benchmark {benchmark} holds {bench.space} archs, not {space} ones; drop --space "
                           f"(the benchmark's space is used) or name the space in the benchmark "
                           f"(nds:PATH:space=NAME, tnb101:PATH:space=micro|macro)")
    table = get_space(bench.space).datasets()
    datasets = (list(table)[:1] if first_only else list(table)) if not datasets else list(datasets)
    if target is not None and len(datasets) > 1:
        raise GpproxyError(f"a target column ({target!r}) is one dataset's: give one dataset, not "
                           f"{', '.join(datasets)}")
    columns = {}
    for name in datasets:
        if name not in table:
            raise GpproxyError(f"unknown dataset {name!r} for space {bench.space}; choose from {', '.join(table)}")
        ds = table[name]
        col = target or next((c for c in (ds.target,) + ds.alt_targets if c in bench.targets()), ds.target)
        if not col:  # a dataset without its own column (a user space's) scores the table's default target
            col = default_target(bench)
        if col not in bench.targets():
            if target is not None:
                bench.accuracy(target)  # the user's own column: its one-line reason (unknown, not numeric)
            notes.append(f"{bench.name} has no column {col!r}: {ds.name} skipped")
            continue
        columns[name] = (ds, col, _finite_column(bench, col, notes))
    if not columns and not target:
        ds = next(iter(table.values()))
        col = default_target(bench)
        notes = [n for n in notes if not n.endswith(f": {ds.name} skipped")]  # scored after all, below
        notes.append(f"{bench.name} has none of the {bench.space} datasets' columns: {ds.name} scored against {col!r}")
        columns[ds.name] = (ds, col, _finite_column(bench, col, notes))
    if not columns:
        raise DataError(f"{bench.name} has no column for {', '.join(datasets)}; its targets: "
                        f"{', '.join(bench.targets()) or '(none)'}{bench.not_numeric()}")
    return Truth(bench.source, columns, notes, bench.space)


def _finite_column(bench, col, notes: list) -> dict:
    acc = bench.accuracy(col)
    out = {a: float(v) for a, v in zip(bench.archs, acc) if np.isfinite(v)}
    if len(out) < len(acc):  # as evolve says it: the user should know rows were left out
        notes.append(f"{bench.name}: {len(acc) - len(out)} of {len(acc)} archs have no finite {col!r} value "
                     "(NaN, inf or empty) and are left out")
    return out


def archs_in_truth(universe: list, archs_arg):
    """``all``, an int N (trials drawn later) or an explicit list of archs."""
    if isinstance(archs_arg, (list, tuple)):
        known = set(universe)
        missing = [a for a in archs_arg if a not in known]
        if missing:
            raise GpproxyError(f"arch {missing[0]} has no ground truth in the benchmark")
        return list(archs_arg)
    return list(universe)
