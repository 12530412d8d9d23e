"""Run configuration: every default in one place, read from TOML, frozen into
the run directory as ``config.json``.

A config has top-level run settings, a ``[search]`` table (GP), a
``[fitness]`` table and one or more ``[[task]]`` tables (a space + benchmark
+ target + arch split + probe settings). Unknown keys are errors: a typo must
not silently fall back to a default.
"""
from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import GpproxyError
from .fitness import COMBINES, CORRELATIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class TaskConfig:
    name: str = "nb201-cifar10"
    space: str = "nb201"
    benchmark: str = "analog-nasbench"
    target: str = ""  # "" = the benchmark's default target
    num_classes: int = 10
    search_archs: int = 300
    heldout_archs: object = 300  # int, or "rest" = every arch not searched
    split_seed: int = 0
    batch: int = 16
    seed: int = 0  # init + minibatch seed
    input: str = "noise"
    resolution: int = 32
    storage: str = "float16"
    act_features: int = 64
    weight_rows: int = 16
    weight_cols: int = 64
    noise_pass: bool = False
    moments: bool = True  # exact full-tensor sum/|x|/x^2 per statistic (reductions of a terminal use them)
    net_terms: bool = False  # whole-network terms (probe.network_terms) for packs with Net terminals
    cache: str = ""  # directory; "" = caches/<task name>-<hash of probe settings>


@dataclass
class SearchConfig:
    pack: str = "default"
    population: int = 48
    generations: int = 10
    init_min_height: int = 2
    init_max_height: int = 5
    max_height: int = 9
    cx_prob: float = 0.6
    subtree_mut_prob: float = 0.25
    point_mut_prob: float = 0.15
    seed_baselines: bool = True
    # formulas put into the first population beside the pack's seeds (a warm start, e.g. from an earlier
    # run's selections); parsed against the pack like any formula, at most population / 2 of them
    seed_formulas: list = field(default_factory=list)
    hall_of_fame: int = 20
    select_tolerance: float = 0.01  # selected = smallest front member within this of the best
    backend: str = "serial"  # serial | local | dask
    jobs: int = 2  # local processes, or dask workers of the LocalCluster started when no address is given
    dask_address: str = ""  # an existing dask scheduler, e.g. "tcp://10.0.0.5:8786"
    chunk_archs: int | str = "auto"  # archs per evaluation chunk; "auto" sizes chunks for the device
    eval_timeout: float = 0.0  # seconds one formula may take on one chunk (user packs that hang); 0 = no limit


@dataclass
class FitnessConfig:
    correlation: str = "kendall"  # kendall | spearman | weighted_kendall (top-weighted)
    subsets: int = 0  # > 0: EZNAS-style min over this many random subsets
    subset_fraction: float = 0.5
    # > 0: each task's fitness blends in (by this weight) the mean correlation
    # within `size_groups` quantile groups of #params: size alone scores 0 there
    size_weight: float = 0.0
    size_groups: int = 10
    combine: str = "mean"  # mean | min over tasks | min_relative (min of fitness / best baseline seed's, per task)


@dataclass
class Config:
    """A run's whole configuration (``gpproxy.Config``). Build one with
    :func:`as_config`; derive variants with :meth:`override`, never by
    assigning to a validated config's fields."""

    name: str = "run"
    seed: int = 0
    device: str = "auto"
    search: SearchConfig = field(default_factory=SearchConfig)
    fitness: FitnessConfig = field(default_factory=FitnessConfig)
    tasks: list = field(default_factory=lambda: [TaskConfig()])

    def to_dict(self) -> dict:
        return asdict(self)

    def override(self, **changes) -> "Config":
        """A new, re-validated config with ``changes`` applied; ``self`` is untouched.

        Keys are top-level fields (``device="cpu"``) or dotted paths into a
        section or every task (``**{"search.generations": 3, "task.cache": "c"}``).
        """
        data = self.to_dict()
        data["task"] = data.pop("tasks")
        for key, value in changes.items():
            section, _, field_name = key.rpartition(".")
            if not section:
                if key in ("search", "fitness", "tasks", "task"):
                    raise GpproxyError(f"override {key!r}: give single fields, e.g. {key}.population")
                targets = [data]
            elif section in ("search", "fitness"):
                targets = [data[section]]
            elif section in ("task", "tasks"):
                targets = data["task"]
            else:
                raise GpproxyError(f"override {key!r}: unknown section {section!r}; use search.*, fitness.* "
                                   f"or task.*")
            for t in targets:
                t[field_name] = value
        return config_from_dict(data)

    def validate(self) -> "Config":
        """Every value checked for type and range, naming the key, the value and what is allowed."""
        _check_section(self, "", TOP_RULES)
        _check_section(self.search, "search.", SEARCH_RULES)
        _check_section(self.fitness, "fitness.", FITNESS_RULES)
        s = self.search
        if s.population % 4:
            raise GpproxyError(f"search.population must be a multiple of 4 (NSGA-II tournament), "
                               f"got {s.population}")
        if not s.init_min_height <= s.init_max_height <= s.max_height:
            raise GpproxyError(f"search heights must satisfy init_min_height <= init_max_height <= max_height, "
                               f"got {s.init_min_height}, {s.init_max_height}, {s.max_height}")
        if len(s.seed_formulas) > s.population // 2:
            raise GpproxyError(f"search.seed_formulas has {len(s.seed_formulas)} formulas; at most half the "
                               f"population ({s.population // 2}) may be seeded")
        if s.subtree_mut_prob + s.point_mut_prob > 1:
            raise GpproxyError(f"search.subtree_mut_prob + search.point_mut_prob must be at most 1, got "
                               f"{s.subtree_mut_prob} + {s.point_mut_prob}")
        if not isinstance(self.tasks, list) or not self.tasks:
            raise GpproxyError("a config needs at least one [[task]] table (note the double brackets)")
        for i, t in enumerate(self.tasks):
            _check_section(t, f"task #{i + 1} ({t.name!r}): " if isinstance(t.name, str) else f"task #{i + 1}: ",
                           TASK_RULES)
            if self.fitness.subsets > 0:
                size = round(t.search_archs * self.fitness.subset_fraction)
                if size < MIN_SUBSET_ARCHS:
                    raise GpproxyError(
                        f"task {t.name}: fitness.subset_fraction = {self.fitness.subset_fraction} of "
                        f"search_archs = {t.search_archs} gives subsets of {size} archs; at least "
                        f"{MIN_SUBSET_ARCHS} are needed for a meaningful rank correlation")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise GpproxyError(f"task names must be unique, got {names}")
        return self


# ---------------------------------------------------------------- value rules
# A rule: (kind, check, allowed) where kind is int | float | bool | str, check
# a predicate on the value (after the type check) and allowed the text saying
# what is accepted. "int|str" kinds accept one of the listed words instead.

MIN_SEARCH_ARCHS = 4
MIN_SUBSET_ARCHS = 4
_NAME = re.compile(r"[^./\\\x00-\x1f][^/\\\x00-\x1f]{0,199}")  # names a file: no separators
_DEVICE = re.compile(r"(auto|cpu|cuda(:[0-9]+)?)")  # what resolve_device checks


def _any(v):
    return True


def rule(kind, check=_any, allowed="", words=()):
    return (kind, check, allowed, tuple(words))


def check_value(key: str, value, r) -> None:
    """GpproxyError naming ``key`` unless ``value`` satisfies rule ``r``."""
    kind, check, allowed, words = r
    if words and isinstance(value, str) and value in words:
        return
    if isinstance(value, str) and "\x00" in value:  # no file name or column can hold one
        raise GpproxyError(f"{key} = {json.dumps(value[:80])} is not allowed: it contains a NUL character")
    if kind is float:
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok_type = ok_type and math.isfinite(value)
    elif kind is int:
        ok_type = isinstance(value, int) and not isinstance(value, bool)
    elif kind is list:
        ok_type = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok_type = isinstance(value, kind)
    if not ok_type or not check(value):
        what = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
                list: "a list of strings"}[kind]
        alts = " or " + " or ".join(f'"{w}"' for w in words) if words else ""
        shown = repr(value) if not isinstance(value, str) else json.dumps(value[:80])
        raise GpproxyError(f"{key} = {shown} is not allowed: must be {what}{' ' + allowed if allowed else ''}"
                           f"{alts}")


def _check_section(obj, prefix: str, rules: dict) -> None:
    for name, r in rules.items():
        check_value(f"{prefix}{name}", getattr(obj, name), r)


def _positive(v):
    return v >= 1


def _non_negative(v):
    return v >= 0


def _probability(v):
    return 0 <= v <= 1


MAX_SEED = 2**32 - 1  # torch, numpy and the per-arch seeds derived from it all take a 32-bit seed


def _seed(v):
    return 0 <= v <= MAX_SEED


TOP_RULES = {
    "name": rule(str, lambda v: bool(_NAME.fullmatch(v)), "without / or \\ or a leading dot (it names a directory)"),
    "seed": rule(int, _seed, f"in 0..{MAX_SEED}"),
    "device": rule(str, lambda v: bool(_DEVICE.fullmatch(v)), "auto, cpu, cuda or cuda:N"),
}
SEARCH_RULES = {
    "pack": rule(str, lambda v: bool(v.strip()), "naming a pack or a .py file"),
    "population": rule(int, lambda v: v >= 4, ">= 4 (a multiple of 4)"),
    "generations": rule(int, _non_negative, ">= 0"),
    "init_min_height": rule(int, _non_negative, ">= 0"),
    "init_max_height": rule(int, _non_negative, ">= 0"),
    "max_height": rule(int, lambda v: 1 <= v <= 30, "in 1..30"),
    "cx_prob": rule(float, _probability, "in [0, 1]"),
    "subtree_mut_prob": rule(float, _probability, "in [0, 1]"),
    "point_mut_prob": rule(float, _probability, "in [0, 1]"),
    "seed_baselines": rule(bool),
    "seed_formulas": rule(list),
    "hall_of_fame": rule(int, _non_negative, ">= 0"),
    "select_tolerance": rule(float, _non_negative, ">= 0"),
    "backend": rule(str, lambda v: v in ("serial", "local", "dask"), "serial, local or dask"),
    "jobs": rule(int, _positive, ">= 1"),
    "dask_address": rule(str),
    "chunk_archs": rule(int, _positive, ">= 1", words=("auto",)),
    "eval_timeout": rule(float, lambda v: 0 <= v <= 1e6, "in 0..1e6 seconds (0: no limit)"),
}
FITNESS_RULES = {
    "correlation": rule(str, lambda v: v in CORRELATIONS, "one of " + ", ".join(CORRELATIONS)),
    "subsets": rule(int, _non_negative, ">= 0"),
    "subset_fraction": rule(float, lambda v: 0 < v < 1, "strictly between 0 and 1"),
    "combine": rule(str, lambda v: v in COMBINES, "one of " + ", ".join(COMBINES)),
    "size_weight": rule(float, lambda v: 0 <= v <= 1, "between 0 and 1"),
    "size_groups": rule(int, lambda v: v >= 2, ">= 2"),
}
TASK_RULES = {
    "name": rule(str, lambda v: bool(_NAME.fullmatch(v)), "without / or \\ or a leading dot (it names files)"),
    "space": rule(str, lambda v: bool(v.strip()), "naming a space or a .py file"),
    "benchmark": rule(str, lambda v: bool(v.strip()), "naming a benchmark"),
    "target": rule(str),
    "num_classes": rule(int, lambda v: v >= 2, ">= 2"),
    "search_archs": rule(int, lambda v: v >= MIN_SEARCH_ARCHS, f">= {MIN_SEARCH_ARCHS}"),
    "heldout_archs": rule(int, lambda v: v >= 2, ">= 2", words=("rest",)),
    "split_seed": rule(int, _seed, f"in 0..{MAX_SEED}"),
    "batch": rule(int, lambda v: v >= 2, ">= 2"),
    "seed": rule(int, _seed, f"in 0..{MAX_SEED}"),
    "input": rule(str),
    "resolution": rule(int, lambda v: 4 <= v <= 4096, "in 4..4096 pixels"),
    "storage": rule(str, lambda v: v in ("float16", "float32"), "float16 or float32"),
    "act_features": rule(int, _positive, ">= 1"),
    "weight_rows": rule(int, _positive, ">= 1"),
    "weight_cols": rule(int, _positive, ">= 1"),
    "noise_pass": rule(bool),
    "moments": rule(bool),
    "net_terms": rule(bool),
    "cache": rule(str),
}


def _fill(cls, data, where: str):
    if not isinstance(data, dict):
        hint = " (write [[task]], with double brackets, one table per task)" if where.startswith("[[task]]") else ""
        raise GpproxyError(f"{where} must be a table of key = value settings, not {type(data).__name__}{hint}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise GpproxyError(f"unknown key(s) {', '.join(unknown)} in {where}; known: {', '.join(sorted(known))}")
    return cls(**data)


RunConfig = Config  # the name the engine and older code use


def config_from_dict(data: dict) -> Config:
    if not isinstance(data, dict):
        raise GpproxyError(f"a config is a table of settings, not {type(data).__name__}")
    data = dict(data)
    search = _fill(SearchConfig, data.pop("search", {}), "[search]")
    fitness = _fill(FitnessConfig, data.pop("fitness", {}), "[fitness]")
    if "task" not in data and "tasks" not in data:
        raise GpproxyError("a config needs at least one [[task]] table (space, benchmark, archs); "
                           "see experiments/quickstart.toml")
    if "task" in data and "tasks" in data:
        raise GpproxyError("a config has both [[task]] and [[tasks]] tables; write every task as [[task]]")
    raw_tasks = data.pop("task") if "task" in data else data.pop("tasks")
    if isinstance(raw_tasks, dict):
        raise GpproxyError("[task] must be written [[task]] (double brackets): a config holds a list of tasks")
    if not isinstance(raw_tasks, list):
        raise GpproxyError(f"task must be a list of [[task]] tables, not {type(raw_tasks).__name__}")
    tasks = [_fill(TaskConfig, t, f"[[task]] #{i + 1}") for i, t in enumerate(raw_tasks)]
    run = _fill(Config, data, "the top level")
    run.search, run.fitness, run.tasks = search, fitness, tasks
    return run.validate()


def as_config(config) -> Config:
    """A validated :class:`Config` from a TOML/JSON path, a dict (the TOML's
    structure) or a Config (re-validated, returned as a copy)."""
    if isinstance(config, Config):
        return config.override()
    if isinstance(config, dict):
        return config_from_dict(config)
    if isinstance(config, (str, Path)):
        return load_config(config)
    raise GpproxyError(f"a config is a TOML path, a dict or a gpproxy.Config, not {type(config).__name__}")


MAX_CONFIG_BYTES = 16 * 2**20  # a config is a page of settings; more is a wrong file (or /dev/zero)


def load_config(path) -> Config:
    path = Path(path)
    if path.exists() and not path.is_dir() and (not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES):
        raise GpproxyError(f"config file {path} is not a regular file of at most {MAX_CONFIG_BYTES >> 20} MiB")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise GpproxyError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise GpproxyError(f"config file {path} is a directory, not a TOML/JSON file") from None
    except UnicodeDecodeError:
        raise GpproxyError(f"config file {path} is not UTF-8 text") from None
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as e:
        raise GpproxyError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {e}") from None
    return config_from_dict(data)
