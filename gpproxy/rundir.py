"""The run directory: the unit of persistence.

    config.json        the resolved config (every default filled in)
    protocol.json      targets, split sizes, cache specs and input descriptions
    log.jsonl          one JSON line per generation
    hall_of_fame.csv   best formulas seen (formula, size, search fitness, held-out)
    pareto.csv         the correlation-vs-size front, selected formula marked
    checkpoint.pkl     population, archive, memo, logbook, RNG states

Every file is written atomically; a killed run resumes from its checkpoint.
"""
from __future__ import annotations

import csv
import io
import json
import os
import pickle
from pathlib import Path

from .config import config_from_dict
from .errors import DataError, GpproxyError
from .fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, foreign_entries

CHECKPOINT = "checkpoint.pkl"
CHECKPOINT_VERSION = 1


def read_config(root: Path):
    """The run's frozen ``config.json`` as a validated Config, or None if there is none."""
    path = Path(root) / "config.json"
    if not path.exists():
        return None
    try:
        return config_from_dict(json.loads(path.read_text()))
    except ValueError as e:
        raise DataError(f"{path} is not valid JSON ({e})") from None


def write_config(root: Path, config_dict: dict) -> None:
    atomic_write_json(root / "config.json", config_dict)


def append_log(root: Path, record: dict) -> None:
    # Append-only; a torn last line (kill mid-write) is skipped by read_log and
    # the log is rewritten from the checkpoint's logbook on resume.
    with open(root / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def rewrite_log(root: Path, records: list) -> None:
    atomic_write_text(root / "log.jsonl", "".join(json.dumps(r) + "\n" for r in records))


def read_log(root: Path) -> list:
    path = Path(root) / "log.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def write_csv(path: Path, rows: list, columns: list) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(path, buf.getvalue())


MAX_CELL_CHARS = 131072  # csv's default field limit: a longer cell is not one this package wrote


def read_csv(path: Path) -> list:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist (is this a gpproxy run directory?)")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except csv.Error as e:
        raise DataError(f"{path} is not a valid CSV file ({e}; cells longer than {MAX_CELL_CHARS} "
                        f"characters are refused)") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None


def remove_stale_temporaries(root: Path) -> int:
    """Delete ``.NAME.*.tmp`` files an atomic write left behind when its process
    was killed (call only while owning the directory). Returns how many."""
    n = 0
    for tmp in Path(root).glob(".*.tmp"):
        try:
            tmp.unlink()
            n += 1
        except OSError:
            pass
    return n


def _uses_relative_paths(config) -> list:
    """The config's values that are paths relative to the working directory."""
    out = []
    for t in config.tasks:
        cache = t.cache or "caches/..."  # the default cache directory is relative too
        if not os.path.isabs(cache):
            out.append(f"cache {cache}")
        for key in ("benchmark", "space"):
            value = getattr(t, key)
            tail = value.split(":", 1)[1] if ":" in value else value
            if ("/" in tail or tail.endswith((".py", ".csv", ".json", ".gz"))) and not os.path.isabs(tail):
                out.append(f"{key} {value}")
        if t.input.startswith(("npz:", "cifar10:", "cifar100:")):
            path = t.input.split(":", 1)[1]
            if not os.path.isabs(path):
                out.append(f"input {t.input}")
    pack = config.search.pack
    if pack.endswith(".py") and not os.path.isabs(pack):
        out.append(f"pack {pack}")
    return out


RUN_MARKERS = ("config.json", "protocol.json", "log.jsonl", CHECKPOINT)  # what a run writes before the rest


def foreign_files(root: Path) -> list:
    """A user's files in ``root``, which holds none of RUN_MARKERS (ground_truth/ is gpproxy.evolve's, written
    first): a run would overwrite (pareto.csv, summary.json, ...) or mix with them."""
    return foreign_entries(root, RUN_MARKERS, own=("ground_truth",))


def check_workdir(root: Path, config) -> None:
    """A run's relative paths (cache, benchmark, input, space, pack) mean what they
    meant where the run was started (``protocol.json``'s ``workdir``); continuing it
    from another directory would silently build a new cache there, so it is refused."""
    path = Path(root) / "protocol.json"
    try:
        started = json.loads(path.read_text()).get("workdir")
    except (OSError, ValueError, AttributeError):
        return
    if not started or os.path.realpath(started) == os.path.realpath(os.getcwd()):
        return
    relative = _uses_relative_paths(config)
    if relative:
        raise GpproxyError(f"run {root} was started in {started} and its config has relative paths "
                           f"({relative[0]}); continue it from there (cd {started})")


def save_checkpoint(root: Path, state: dict) -> None:
    state = dict(state, version=CHECKPOINT_VERSION)
    atomic_write_bytes(root / CHECKPOINT, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


class _CheckpointUnpickler(pickle.Unpickler):
    """Checkpoints hold only builtins (strings, numbers, lists, dicts, tuples)."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"checkpoint refers to {module}.{name}; only plain data is allowed")


def load_checkpoint(root: Path) -> dict | None:
    path = Path(root) / CHECKPOINT
    if not path.exists():
        return None
    try:
        with open(path, "rb") as f:
            state = _CheckpointUnpickler(f).load()
    except Exception as e:
        raise DataError(f"{path} is corrupt ({e.__class__.__name__}); delete it to restart the run "
                        f"from scratch") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise DataError(f"{path} is not a gpproxy checkpoint of version {CHECKPOINT_VERSION}")
    why = _checkpoint_problem(state)
    if why:
        raise DataError(f"{path} has the wrong structure ({why}); delete it to restart the run from scratch")
    return state


def _checkpoint_problem(state: dict) -> str | None:
    """Why ``state`` is not what the engine saves, or None."""
    gen = state.get("generation")
    if not isinstance(gen, int) or isinstance(gen, bool) or gen < 0:
        return "generation is not a non-negative integer"
    pop, memo, logbook = state.get("population"), state.get("memo"), state.get("logbook")
    if not isinstance(pop, list) or not all(isinstance(f, str) for f in pop):
        return "population is not a list of formulas"
    if not isinstance(memo, dict):
        return "memo is not a dict"
    for f, res in memo.items():
        if not (isinstance(f, str) and isinstance(res, dict) and isinstance(res.get("valid"), bool)
                and isinstance(res.get("fitness"), (int, float)) and isinstance(res.get("size"), int)):
            return f"memo entry {str(f)[:60]!r} is not a result"
    missing = [f for f in pop if f not in memo]
    if missing:
        return f"population formula {missing[0][:60]!r} has no result in the memo"
    if not isinstance(logbook, list) or not all(isinstance(r, dict) for r in logbook):
        return "logbook is not a list of records"
    rs = state.get("random_state")
    if not (isinstance(rs, tuple) and len(rs) == 3 and isinstance(rs[1], tuple)):
        return "random_state is not a random.getstate() tuple"
    return None
