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
import pickle
from pathlib import Path

from .config import config_from_dict
from .errors import DataError
from .fileio import atomic_write_bytes, atomic_write_json, atomic_write_text

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


def read_csv(path: Path) -> list:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist (is this a gpproxy run directory?)")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


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
    return state
