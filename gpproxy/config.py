"""Run configuration: every default in one place, read from TOML, frozen into
the run directory as ``config.json``.

A config has top-level run settings, a ``[search]`` table (GP), a
``[fitness]`` table and one or more ``[[task]]`` tables (a space + benchmark
+ target + arch split + probe settings). Unknown keys are errors: a typo must
not silently fall back to a default.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import GpproxyError
from .fitness import CORRELATIONS

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
    hall_of_fame: int = 20
    select_tolerance: float = 0.01  # selected = smallest front member within this of the best
    backend: str = "serial"  # serial | local | dask
    jobs: int = 2  # local processes, or dask workers of the LocalCluster started when no address is given
    dask_address: str = ""  # an existing dask scheduler, e.g. "tcp://10.0.0.5:8786"
    chunk_archs: int | str = "auto"  # archs per evaluation chunk; "auto" sizes chunks for the device


@dataclass
class FitnessConfig:
    correlation: str = "kendall"  # kendall | spearman | weighted_kendall (top-weighted)
    subsets: int = 0  # > 0: EZNAS-style min over this many random subsets
    subset_fraction: float = 0.5
    combine: str = "mean"  # mean | min over tasks


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
        if self.fitness.correlation not in CORRELATIONS:
            raise GpproxyError(f"fitness.correlation must be one of {', '.join(CORRELATIONS)}, "
                               f"not {self.fitness.correlation!r}")
        if self.fitness.combine not in ("mean", "min"):
            raise GpproxyError(f"fitness.combine must be mean or min, not {self.fitness.combine!r}")
        if self.search.backend not in ("serial", "local", "dask"):
            raise GpproxyError(f"search.backend must be serial, local or dask, not {self.search.backend!r}")
        ca = self.search.chunk_archs
        if ca != "auto" and not (isinstance(ca, int) and not isinstance(ca, bool) and ca > 0):
            raise GpproxyError(f"search.chunk_archs must be a positive number or \"auto\", not {ca!r}")
        if self.search.population < 4 or self.search.population % 4:
            raise GpproxyError(f"search.population must be a multiple of 4 (NSGA-II tournament), "
                               f"got {self.search.population}")
        if not self.tasks:
            raise GpproxyError("a config needs at least one [[task]]")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise GpproxyError(f"task names must be unique, got {names}")
        for t in self.tasks:
            if t.heldout_archs != "rest" and not isinstance(t.heldout_archs, int):
                raise GpproxyError(f"task {t.name}: heldout_archs must be a number or \"rest\"")
            if t.storage not in ("float16", "float32"):
                raise GpproxyError(f"task {t.name}: storage must be float16 or float32")
        return self


def _fill(cls, data: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise GpproxyError(f"unknown key(s) {', '.join(unknown)} in {where}; known: {', '.join(sorted(known))}")
    return cls(**data)


RunConfig = Config  # the name the engine and older code use


def config_from_dict(data: dict) -> Config:
    data = dict(data)
    search = _fill(SearchConfig, data.pop("search", {}), "[search]")
    fitness = _fill(FitnessConfig, data.pop("fitness", {}), "[fitness]")
    raw_tasks = data.pop("task", None)
    if raw_tasks is None:
        raw_tasks = data.pop("tasks", [{}])
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


def load_config(path) -> Config:
    path = Path(path)
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise GpproxyError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise GpproxyError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {e}") from None
    return config_from_dict(data)
