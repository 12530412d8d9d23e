"""The GP loop: DEAP operators, our own generations, NSGA-II on (fitness, size).

No ``deap.creator``: the fitness and tree classes are defined here, so they
pickle and survive checkpoint loads. All randomness is Python's ``random``
module seeded from the config and saved in every checkpoint; fitness itself
is deterministic (subsets are drawn once, by the driver), so a resumed run
ends exactly where an uninterrupted one does, on any backend.
"""
from __future__ import annotations

import os
import random
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from deap import base, gp, tools

from . import rundir
from .config import RunConfig
from .device import resolve_device
from .errors import FormulaError, GpproxyError
from .evaluator import EvalSpec, TaskEval, make_evaluator
from .fitness import INVALID, draw_subsets, score_report, seed_references, size_groups
from .formula import parse_formula, to_math
from .pack import load_pack
from .selection import select, selection_rule
from .tasks import arch_params, prepare_task


class Fitness(base.Fitness):
    """(rank correlation: maximise, tree size: minimise)."""

    weights = (1.0, -1.0)


class Individual(gp.PrimitiveTree):
    def __init__(self, content):
        super().__init__(content)
        self.fitness = Fitness()


def cx_one_point(ind1, ind2):
    """DEAP's typed one-point crossover with a reproducible choice of type.

    gp.cxOnePoint draws the type from ``list(set of type classes)``, whose order
    follows the classes' memory addresses: the same seed gave different runs in
    different processes. Here the common types are sorted by name first.
    """
    if len(ind1) < 2 or len(ind2) < 2:
        return ind1, ind2
    types1, types2 = {}, {}
    for idx, node in enumerate(ind1[1:], 1):
        types1.setdefault(node.ret, []).append(idx)
    for idx, node in enumerate(ind2[1:], 1):
        types2.setdefault(node.ret, []).append(idx)
    common = sorted(set(types1) & set(types2), key=lambda t: t.__name__)
    if common:
        type_ = random.choice(common)
        slice1 = ind1.searchSubtree(random.choice(types1[type_]))
        slice2 = ind2.searchSubtree(random.choice(types2[type_]))
        ind1[slice1], ind2[slice2] = ind2[slice2], ind1[slice1]
    return ind1, ind2


def pareto_front(memo: dict) -> list:
    """Non-dominated (fitness up, size down) formulas among all valid ones seen.

    Derived from the memo, not stored: it is the same after a resume.
    """
    best_per_size = {}
    for formula, res in memo.items():
        if not res["valid"]:
            continue
        size = res["size"]
        cur = best_per_size.get(size)
        if cur is None or (res["fitness"], formula) > (cur[1], cur[0]):
            best_per_size[size] = (formula, res["fitness"])
    front, best = [], -np.inf
    for size in sorted(best_per_size):
        formula, fit = best_per_size[size]
        if fit > best:
            front.append({"formula": formula, "size": size, "fitness": fit})
            best = fit
    return front


def hall_of_fame(memo: dict, k: int) -> list:
    valid = [(res["fitness"], -res["size"], f) for f, res in memo.items() if res["valid"]]
    valid.sort(key=lambda t: (-t[0], -t[1], t[2]))
    return [{"formula": f, "size": -s, "fitness": fit} for fit, s, f in valid[:k]]


class HeldoutScorer:
    """Scores formulas on the held-out archs, never used for selection.

    Chunks are kept in memory for small held-out sets and streamed from the
    cache for large ones (all 15k NB201 archs would not fit comfortably).
    """

    KEEP_ARCHS = 3000

    def __init__(self, pack, tasks: list, device: str, chunk_archs: int, timeout: float = 0.0):
        self.pack, self.tasks, self.device, self.chunk = pack, tasks, device, chunk_archs
        self.timeout = timeout
        self._kept = {}

    def scores(self, formulas: list, td, errors=None) -> dict:
        """{formula: scores on td's held-out archs (in td.heldout_archs order)}; with
        ``errors`` (a dict), a formula that fails is left out and its error kept there."""
        from .cache import open_cache
        from .evaluator import score_on_cache

        keep = self._kept.setdefault(self._statistics(td), []) if len(td.heldout_archs) <= self.KEEP_ARCHS else None
        return score_on_cache(open_cache(td.cache_root), td.heldout_archs, formulas, self.pack,
                              self.device, self.chunk, chunks=keep, errors=errors, timeout=self.timeout)

    @staticmethod
    def _statistics(td) -> tuple:
        """What a task's held-out scores depend on (not its target): tasks that rank the same archs of
        one cache by different accuracies share kept chunks and scores."""
        return str(td.cache_root), tuple(td.heldout_archs)

    def report(self, formulas: list) -> dict:
        """{formula: {task: score_report or None if the scores cannot be ranked}}.

        A formula that raises on the held-out statistics (a user primitive that
        fails only on some archs) is None there: the run still finishes."""
        out = {f: {} for f in formulas}
        scored: dict = {}
        for td in self.tasks:
            key = self._statistics(td)
            if key not in scored:
                scored[key] = self.scores(formulas, td, errors={})
            scores = scored[key]
            for f in formulas:
                s = scores.get(f)
                ok = s is not None and np.all(np.isfinite(s)) and np.ptp(s) > 0
                out[f][td.config.name] = score_report(s, td.heldout_acc) if ok else None
        return out


class Engine:
    def __init__(self, config: RunConfig, root, log=None):
        self.config = config
        self.root = Path(root)
        self.log = log or (lambda msg: print(msg, flush=True))
        self.pack = load_pack(config.search.pack)
        lacking = [t.name for t in config.tasks if self.pack.net_terminals and not t.net_terms]
        if lacking:
            raise GpproxyError(f"pack {self.pack.name} uses whole-network terms "
                               f"({', '.join(self.pack.net_terminals)}): set net_terms = true in task(s) "
                               f"{', '.join(lacking)} (or task.net_terms = true for all)")
        self.pset = self.pack.pset()
        self.seed_formulas = self._parse_seed_formulas(config.search.seed_formulas)
        self.device = resolve_device(config.device)
        self._toolbox()

    def _parse_seed_formulas(self, formulas) -> list:
        """[(name, formula)] of the config's seed formulas, each parsed against the pack now (before any cache
        is built), duplicates dropped; a formula the pack cannot express is a one-line error naming it."""
        out = {}
        for i, text in enumerate(formulas):
            try:
                out.setdefault(str(parse_formula(text, self.pack, self.pset)), f"search.seed_formulas[{i}]")
            except FormulaError as e:
                raise GpproxyError(f"search.seed_formulas[{i}] is not a formula of pack {self.pack.name}: "
                                   f"{e}") from None
        return [(name, formula) for formula, name in out.items()]

    # ----------------------------------------------------------- set-up
    def _toolbox(self):
        s = self.config.search
        tb = base.Toolbox()
        tb.register("expr", gp.genHalfAndHalf, pset=self.pset, min_=s.init_min_height,
                    max_=s.init_max_height, type_=self.pack.root)
        tb.register("individual", lambda: Individual(tb.expr()))
        limit = gp.staticLimit(key=lambda ind: ind.height, max_value=s.max_height)
        tb.register("mate", cx_one_point)
        tb.decorate("mate", limit)
        tb.register("mut_subtree", gp.mutUniform, expr=partial(gp.genGrow, min_=0, max_=2), pset=self.pset)
        tb.decorate("mut_subtree", limit)
        tb.register("mut_point", gp.mutNodeReplacement, pset=self.pset)
        self.tb = tb

    def prepare(self):
        """Build/complete caches, split archs, set up the evaluator (driver-side seeds)."""
        c = self.config
        self.tasks = []
        for t in c.tasks:
            self.log(f"task {t.name}: {t.space} on {t.benchmark}, {t.search_archs} search / "
                     f"{t.heldout_archs} held-out archs, batch {t.batch}, input {t.input}")
            self.tasks.append(prepare_task(t, jobs=max(1, c.search.jobs), device=self.device,
                                           log=lambda m: print(m, file=sys.stderr, flush=True)))
        task_evals = []
        for i, td in enumerate(self.tasks):
            subsets = ()
            if c.fitness.subsets > 0:
                subsets = tuple(tuple(int(j) for j in s) for s in draw_subsets(
                    len(td.search_archs), c.fitness.subsets, c.fitness.subset_fraction, c.seed + 1000 + i))
            groups = ()
            if c.fitness.size_weight > 0:
                groups = size_groups(arch_params(td.cache_root, td.search_archs), c.fitness.size_groups)
            task_evals.append(TaskEval(td.config.name, str(td.cache_root), tuple(td.search_archs),
                                       tuple(float(a) for a in td.search_acc), subsets, groups))
        self.eval_spec = EvalSpec(c.search.pack, tuple(task_evals), c.fitness.correlation,
                                  c.fitness.combine, c.fitness.size_weight, self.device, c.search.chunk_archs,
                                  c.search.eval_timeout)
        # One GPU is best fed by one process; a dask cluster may hold one GPU per worker.
        backend = "serial" if self.device != "cpu" and c.search.backend == "local" else c.search.backend
        self.evaluator = make_evaluator(self.eval_spec, backend, c.search.jobs, c.search.dask_address or None)
        self.heldout = HeldoutScorer(self.pack, self.tasks, self.device, c.search.chunk_archs,
                                     c.search.eval_timeout)

    def protocol(self) -> dict:
        from .cache import open_cache

        out = {"correlation": self.config.fitness.correlation, "workdir": os.getcwd(), "tasks": []}
        for td in self.tasks:
            cache = open_cache(td.cache_root)
            out["tasks"].append({
                "task": td.config.name, "benchmark": td.config.benchmark, "benchmark_source": td.benchmark_source,
                "target": td.target, "search_archs": len(td.search_archs), "heldout_archs": len(td.heldout_archs),
                "disjoint": not (set(td.search_archs) & set(td.heldout_archs)),
                "cache": str(td.cache_root), "cache_spec": cache.manifest["spec"],
                "input": cache.manifest.get("input_info"),
            })
        return out

    # ----------------------------------------------------------- evaluation
    def evaluate(self, inds: list, memo: dict) -> int:
        todo = list(dict.fromkeys(str(i) for i in inds if str(i) not in memo))
        # DEAP draws from the global `random`; a backend's client code (dask's
        # does) may draw from it too. Isolate it so results never depend on the backend.
        state = random.getstate()
        results = self.evaluator.map(todo)
        random.setstate(state)
        for f, r in zip(todo, results):
            r = dict(r)
            r["size"] = len(parse_formula(f, self.pack, self.pset))
            memo[f] = r
        for ind in inds:
            ind.fitness.values = (memo[str(ind)]["fitness"], len(ind))
        return len(todo)

    def _fresh(self, n: int, taken: set) -> list:
        out, tries = [], 0
        while len(out) < n and tries < 50 * n:
            tries += 1
            ind = self.tb.individual()
            if str(ind) not in taken:
                taken.add(str(ind))
                out.append(ind)
        return out

    def _from_strings(self, formulas) -> list:
        return [Individual(parse_formula(f, self.pack, self.pset)) for f in formulas]

    # ----------------------------------------------------------- the loop
    def run(self) -> dict:
        from .lock import owned

        if self.root.exists() and not self.root.is_dir():
            raise GpproxyError(f"run directory {self.root} is a file; choose another --out")
        foreign = rundir.foreign_files(self.root)
        if foreign:
            raise GpproxyError(f"{self.root} is a directory of other files (e.g. {foreign[0]}), not a gpproxy run; "
                               "choose a new or empty --out (a run writes pareto.csv, config.json, ... there)")
        with owned(self.root, "run directory", log=self.log):
            return self._run_owned()

    def _run_owned(self) -> dict:
        c = self.config
        rundir.remove_stale_temporaries(self.root)
        rundir.check_workdir(self.root, c)
        if not (self.root / "protocol.json").exists():  # say where relative paths point before building caches
            rundir.atomic_write_json(self.root / "protocol.json", {"workdir": os.getcwd()})
        state = rundir.load_checkpoint(self.root)
        if state is not None:
            old = rundir.read_config(self.root)
            if old is not None and old.to_dict() != c.to_dict():
                raise GpproxyError(f"{self.root} holds a run with a different config; resume it with "
                                   f"`gpproxy resume {self.root}` or choose another --out")
        rundir.write_config(self.root, c.to_dict())
        self.prepare()
        try:
            return self._loop(state)
        finally:
            self.evaluator.close()

    def _loop(self, state) -> dict:
        c = self.config
        rundir.atomic_write_json(self.root / "protocol.json", self.protocol())
        mu = c.search.population
        if state is None:
            random.seed(c.seed)
            memo, logbook, gen = {}, [], 0
            rundir.rewrite_log(self.root, [])  # a kill before the first checkpoint left a generation-0 line
            seeds = (list(self.pack.seeds.items())[:mu // 4] if c.search.seed_baselines else [])
            given = {str(parse_formula(f, self.pack, self.pset)) for _, f in seeds}
            seeds += [(name, f) for name, f in self.seed_formulas if f not in given]
            pop = self._from_strings(f for _, f in seeds)
            pop += self._fresh(mu - len(pop), {str(p) for p in pop})
            t0 = time.perf_counter()
            n_new = self.evaluate(pop, memo)
            self._warn_invalid_seeds(seeds, memo)
            if c.fitness.combine == "min_relative":
                self._log_references()
            pop = tools.selNSGA2(pop, mu)
            self._after_generation(0, pop, memo, logbook, n_new, time.perf_counter() - t0)
            gen = 1
        else:
            random.setstate(state["random_state"])
            memo, logbook, gen = state["memo"], state["logbook"], state["generation"] + 1
            pop = self._restore_population(state)
            rundir.rewrite_log(self.root, logbook)
            self.log(f"resuming {self.root} after generation {state['generation']}")
        for g in range(gen, c.search.generations + 1):
            t0 = time.perf_counter()
            offspring = self._vary(pop)
            n_new = self.evaluate(offspring, memo)
            pool, seen = [], set()
            for ind in pop + offspring:
                if str(ind) not in seen:
                    seen.add(str(ind))
                    pool.append(ind)
            if len(pool) < mu:  # duplicates collapsed: refill with fresh programs
                extra = self._fresh(mu - len(pool), seen)
                n_new += self.evaluate(extra, memo)
                pool += extra
            pop = tools.selNSGA2(pool, mu)
            self._after_generation(g, pop, memo, logbook, n_new, time.perf_counter() - t0)
        return self.finish(memo)

    def _restore_population(self, state) -> list:
        """The checkpoint's survivors with their fitness and NSGA-II crowding distances.

        The next generation's tournament reads the crowding distance each survivor
        got within the whole pool it was selected from; recomputing it within the
        survivors alone changes which parents win, so a resumed run would leave the
        uninterrupted one (seen at population 200 after generation 17).
        """
        pop = self._from_strings(state["population"])
        for ind in pop:
            ind.fitness.values = (state["memo"][str(ind)]["fitness"], len(ind))
        crowding = state.get("crowding")
        if crowding is not None and len(crowding) == len(pop):
            for ind, dist in zip(pop, crowding):
                ind.fitness.crowding_dist = float(dist)
            return pop
        return tools.selNSGA2(pop, len(pop))  # a checkpoint from before crowding distances were saved

    def _warn_invalid_seeds(self, seeds, memo) -> None:
        """Seed formulas are checked on the real statistics in generation 0: one that
        fails is reported here and takes no further part (it is an invalid individual)."""
        for name, formula in seeds:
            res = memo.get(str(parse_formula(formula, self.pack, self.pset)))
            if res is not None and not res["valid"]:
                self.log(f"warning: seed formula {name} ({formula[:80]}) is invalid on this run's "
                         f"statistics ({str(res.get('error'))[:120]}); it is dropped from the search")

    def _log_references(self) -> None:
        """Say what "min_relative" divides each task's fitness by: its best baseline seed's fitness there
        (each evaluating process computes the same numbers from the pack's seeds)."""
        results = self.evaluator.map(list(dict.fromkeys(self.pack.seeds.values())))
        names = [t.name for t in self.eval_spec.tasks]
        refs = seed_references([r["tasks"] for r in results], names)
        self.log("min_relative references (best baseline seed fitness per task): "
                 + ", ".join(f"{t} {v:.3f}" for t, v in zip(names, refs)))

    def _vary(self, pop):
        s = self.config.search
        offspring = [self.tb.clone(i) for i in tools.selTournamentDCD(pop, len(pop))]
        for i in range(1, len(offspring), 2):
            if random.random() < s.cx_prob:
                offspring[i - 1], offspring[i] = self.tb.mate(offspring[i - 1], offspring[i])
        for i in range(len(offspring)):
            r = random.random()
            if r < s.subtree_mut_prob:
                offspring[i], = self.tb.mut_subtree(offspring[i])
            elif r < s.subtree_mut_prob + s.point_mut_prob:
                offspring[i], = self.tb.mut_point(offspring[i])
        return offspring

    def _after_generation(self, g, pop, memo, logbook, n_new, seconds):
        fits = [memo[str(i)]["fitness"] for i in pop]
        valid = [f for f in fits if f > INVALID]
        front = pareto_front(memo)
        rec = {"generation": g, "evals": n_new, "total_evals": len(memo),
               "best": max(fits), "median": statistics.median(valid) if valid else None,
               "front_size": len(front), "invalid_rate": round(1 - len(valid) / len(fits), 4),
               "evals_per_s": round(n_new / max(self.evaluator.last_seconds, 1e-9), 2),
               "seconds": round(seconds, 3)}
        logbook.append(rec)
        rundir.append_log(self.root, rec)
        best = max(front, key=lambda r: r["fitness"]) if front else None
        self.log(f"gen {g:>3}  best {rec['best']:+.4f}  median {rec['median'] or 0:+.4f}  "
                 f"front {rec['front_size']:>2}  evals {n_new:>3} ({rec['evals_per_s']}/s)  "
                 f"invalid {rec['invalid_rate']:.0%}  {seconds:5.1f}s  "
                 f"{best['formula'] if best else ''}")
        self._write_tables(memo, heldout=g == 0 or g == self.config.search.generations)
        rundir.save_checkpoint(self.root, {
            "generation": g, "population": [str(i) for i in pop],
            "crowding": [float(i.fitness.crowding_dist) for i in pop], "memo": memo,
            "logbook": logbook, "random_state": random.getstate(),
        })

    def _write_tables(self, memo, heldout: bool):
        front = pareto_front(memo)
        hof = hall_of_fame(memo, self.config.search.hall_of_fame)
        chosen = select(front, self.config.search.select_tolerance)
        rows_needed = {r["formula"] for r in front + hof}
        reports = self.heldout.report(sorted(rows_needed)) if heldout else {}
        cols = ["rank", "selected", "formula", "size", "fitness"]
        for td in self.tasks:
            n = td.config.name
            cols += [f"{n}:heldout_kendall", f"{n}:heldout_spearman", f"{n}:heldout_top10pct"]
        cols += ["math"]

        def row(i, r):
            out = dict(r, rank=i, selected=int(chosen is not None and r["formula"] == chosen["formula"]),
                       math=to_math(parse_formula(r["formula"], self.pack, self.pset), self.pack))
            for tname, rep in reports.get(r["formula"], {}).items():
                if rep:
                    out[f"{tname}:heldout_kendall"] = round(rep["kendall"], 4)
                    out[f"{tname}:heldout_spearman"] = round(rep["spearman"], 4)
                    out[f"{tname}:heldout_top10pct"] = round(rep["top10pct"], 4)
            return out

        rundir.write_csv(self.root / "pareto.csv", [row(i, r) for i, r in enumerate(front)], cols)
        rundir.write_csv(self.root / "hall_of_fame.csv", [row(i, r) for i, r in enumerate(hof)], cols)

    def finish(self, memo) -> dict:
        front = pareto_front(memo)
        chosen = select(front, self.config.search.select_tolerance)
        summary = {"run": str(self.root), "selected": chosen, "front": front,
                   "rule": selection_rule(self.config.search.select_tolerance)}
        if chosen:
            names = dict(self.pack.seeds)
            formulas = [chosen["formula"]] + list(names.values())
            rep = self.heldout.report(formulas)
            summary["heldout"] = {"selected": rep[chosen["formula"]]}
            summary["heldout_baselines"] = {n: rep[f] for n, f in names.items()}
        rundir.atomic_write_json(self.root / "summary.json", summary)
        return summary
