"""A run directory as an object: ``gpproxy.Run.open(path)``.

The engine writes the directory (see :mod:`gpproxy.rundir` for its files);
everything that reads a finished or running run (``inspect``, ``export``, the
plots, the Python API) goes through :class:`Run`, so a row of ``pareto.csv``
is parsed in one place and the selection rule is stated in one place.
"""
from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass, field
from functools import cached_property
from math import isfinite
from pathlib import Path

from . import rundir
from .config import Config
from .errors import DataError, GpproxyError
from .selection import selection_rule

HELDOUT_METRICS = ("kendall", "spearman", "top10pct")


# ---------------------------------------------------------------- one formula of a run


@dataclass(frozen=True)
class Candidate:
    """One formula of a run's Pareto front or hall of fame.

    ``heldout[task]`` holds Kendall τ, Spearman ρ and top-10 % precision on the
    task's held-out archs (never used for selection), or is absent where the
    run has not scored it (held-out scores are written at generation 0 and at
    the end) or the formula could not rank them.
    """

    rank: int
    formula: str
    size: int
    fitness: float
    selected: bool
    heldout: dict = field(default_factory=dict)
    math: str = ""
    latex: str = ""

    def to_dict(self) -> dict:
        return {"rank": self.rank, "selected": self.selected, "size": self.size, "fitness": self.fitness,
                "formula": self.formula, "math": self.math, "latex": self.latex, "heldout": self.heldout}


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what} {str(text)[:40]!r} is not a number") from None
    if not isfinite(value):
        raise DataError(f"{where}: {what} {text!r} is not finite")
    return value


class Run:
    """A run directory: its config, front, selected formula, log and summary."""

    def __init__(self, root):
        self.root = Path(root)

    @classmethod
    def open(cls, path) -> "Run":
        if not isinstance(path, (str, os.PathLike)):
            from .spaces._common import show

            raise GpproxyError(f"Run.open({show(path)}): give the path of a run directory")
        root = Path(path)
        if not (root / "config.json").is_file():
            raise GpproxyError(f"{root} has no config.json: not a gpproxy run directory")
        run = cls(root)
        run.config  # fail here, in one line, on a broken config.json
        return run

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r})"

    # ------------------------------------------------------------ files
    @cached_property
    def config(self) -> Config:
        config = rundir.read_config(self.root)
        if config is None:
            raise GpproxyError(f"{self.root} has no config.json: not a gpproxy run directory")
        return config

    @property
    def log(self) -> list:
        """One dict per finished generation (``log.jsonl``)."""
        return rundir.read_log(self.root)

    @property
    def generations_done(self) -> int:
        return max(0, len(self.log) - 1)

    @property
    def summary(self) -> dict | None:
        """``summary.json``, written when the run has finished; None before."""
        return self._json("summary.json")

    @property
    def protocol(self) -> dict | None:
        """``protocol.json``: targets, split sizes, cache specs, input of every task."""
        return self._json("protocol.json")

    @property
    def finished(self) -> bool:
        return self.summary is not None

    def _json(self, name: str):
        path = self.root / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError as e:
            raise DataError(f"{path} is not valid JSON ({e})") from None

    # ------------------------------------------------------------ formulas
    @cached_property
    def pack(self):
        from .pack import load_pack

        return load_pack(self.config.search.pack)

    @property
    def selection_rule(self) -> str:
        return selection_rule(self.config.search.select_tolerance)

    @property
    def front(self) -> list:
        """The Pareto front (search fitness up, size down), smallest formula first."""
        return self._candidates("pareto.csv")

    @property
    def hall_of_fame(self) -> list:
        return self._candidates("hall_of_fame.csv")

    @property
    def selected(self) -> Candidate | None:
        """The front formula chosen by :attr:`selection_rule`, or None if the run found none."""
        return next((c for c in self.front if c.selected), None)

    def candidate(self, rank: int | None = None) -> Candidate:
        """The front row ``rank``, or the selected formula when ``rank`` is None."""
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, numbers.Integral)):
            from .spaces._common import show  # True would silently be row 1

            raise GpproxyError(f"rank = {show(rank)} is not allowed: must be an integer row of "
                               f"{self.root}/pareto.csv, or None for the selected formula")
        front = self.front
        if not front:
            raise GpproxyError(f"{self.root}/pareto.csv is empty: the run found no valid formula")
        if rank is None:
            return self.selected or front[-1]
        if not 0 <= rank < len(front):
            raise GpproxyError(f"rank {rank}: {self.root}/pareto.csv has ranks 0..{len(front) - 1}")
        return front[int(rank)]

    def _candidates(self, name: str) -> list:
        from .formula import parse_formula, to_math

        path = self.root / name
        out = []
        for i, row in enumerate(rundir.read_csv(path)):
            where = f"{path} row {i + 2}"
            try:
                tree = parse_formula(row["formula"], self.pack)
            except KeyError:
                raise DataError(f"{where}: no formula column") from None
            except GpproxyError as e:
                raise DataError(f"{where}: {e}") from None
            heldout = {}
            for key, text in row.items():
                task, sep, metric = (key or "").rpartition(":heldout_")
                if sep and metric in HELDOUT_METRICS and text not in ("", None):
                    heldout.setdefault(task, {})[metric] = _number(text, key, where)
            out.append(Candidate(
                rank=int(_number(row.get("rank", i), "rank", where)), formula=str(tree),
                size=int(_number(row.get("size"), "size", where)),
                fitness=_number(row.get("fitness"), "fitness", where), selected=row.get("selected") == "1",
                heldout=heldout, math=to_math(tree, self.pack), latex=to_math(tree, self.pack, latex=True)))
        return out

    # ------------------------------------------------------------ using a formula
    def cache_spec(self):
        """The statistics cache spec the run searched on (first task): minibatch, input size, probe."""
        from .cache import CacheSpec

        proto = self.protocol
        if proto and proto.get("tasks"):
            return CacheSpec.from_dict(proto["tasks"][0]["cache_spec"])
        from .tasks import cache_spec  # killed before protocol.json: the config says the same

        return cache_spec(self.config.tasks[0])

    def probe_config(self):
        """The probe settings of the statistics the run searched on (first task)."""
        return self.cache_spec().probe

    def export(self, path, rank: int | None = None, name: str | None = None) -> Path:
        """Write the selected formula (or front row ``rank``) as a standalone torch module."""
        from .export import export_formula

        c = self.candidate(rank)
        return export_formula(c.formula, path, self.config.search.pack, self.probe_config(),
                              provenance=self.provenance(c), name=name)

    def provenance(self, c: Candidate):
        """Typed provenance of candidate ``c`` for an export: names from the config and
        protocol, numbers as parsed floats (never a raw CSV cell)."""
        from .export import HeldOut, Provenance, minibatch_words

        proto = {t.get("task"): t for t in (self.protocol or {}).get("tasks", []) if isinstance(t, dict)}
        held = []
        for task in self.config.tasks:
            m = c.heldout.get(task.name, {})
            if "kendall" not in m or "spearman" not in m:
                continue
            recorded = proto.get(task.name, {})  # protocol.json: the target actually used
            n = recorded.get("heldout_archs", task.heldout_archs)
            target = recorded.get("target") or task.target or "the benchmark's default"
            held.append(HeldOut(task=task.name, benchmark=_bench_name(task.benchmark), target=str(target),
                                kendall=float(m["kendall"]), spearman=float(m["spearman"]),
                                n=int(n) if isinstance(n, (int, float)) and isfinite(n) else None))
        spec = self.cache_spec()
        return Provenance(run=self.root.name, config=self.config.name, correlation=self.config.fitness.correlation,
                          fitness=float(c.fitness), heldout=tuple(held),
                          protocol=minibatch_words(spec.batch, spec.input, spec.seed, spec.resolution))

    def heldout_scores(self, formula: str | None = None, task: int = 0):
        """(scores, accuracies) of ``formula`` (default: the selected one) on task ``task``'s held-out archs."""
        from .device import resolve_device
        from .engine import HeldoutScorer
        from .tasks import prepare_task

        formula = formula or self.candidate().formula
        cfg = self.config
        td = prepare_task(cfg.tasks[task], jobs=1, log=lambda m: None)
        scorer = HeldoutScorer(self.pack, [td], resolve_device(cfg.device), cfg.search.chunk_archs)
        return scorer.scores([formula], td)[formula], td.heldout_acc


def _bench_name(benchmark) -> str:
    """A benchmark as a docstring names it: a file by its name, not its absolute path."""
    return ":".join(Path(part).name if "/" in part else part for part in str(benchmark).split(":"))
