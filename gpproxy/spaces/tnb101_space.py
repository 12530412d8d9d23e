"""TransNAS-Bench-101 behind the protocol: networks and encodings in
:mod:`gpproxy.spaces.tnb101`; here the two spaces, their datasets and the
loaders of ``tnb101:PATH[:space=micro|macro][:task=NAME]`` (the official
``.pth`` or a NAS-Bench-Suite-Zero style ``.json``).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..errors import ArchError, DataError
from . import tnb101
from ._common import legacy_normalisation
from .base import Dataset, Space
from .table import Benchmark, check_unique, number, read_json

TNB101_PREFIX = "tnb101:"

# The classification tasks, built exactly as the official model (encoder + linear head).
# Normalisations are what caches were built with when the class count chose them
# (100 classes -> CIFAR-100's, otherwise CIFAR-10's), kept so cached numbers do not move.
TNB101_DATASETS = {
    task: Dataset(task, task, f"{task}.val_accuracy", n, 256,
                  f"Taskonomy {task} ({n}-way) best-epoch valid top-1 %",
                  alt_targets=(f"{task}.valid_top1",), images="256x256 Taskonomy RGB images",
                  normalisation="cifar100" if n == 100 else "cifar10")
    for task, n in (("class_object", 100), ("class_scene", 63))
}


class TNB101Space(Space):
    """``tnb101_micro`` / ``tnb101_macro``."""

    init_text = "the official TNB101 init: Kaiming-normal convs, BN 1/0, PyTorch default head"

    def __init__(self, which: str):
        self.which = which
        self.name = f"tnb101_{which}"

    def canonical(self, arch) -> str:
        return tnb101.canonical(arch, self.which)

    def key(self, canonical: str) -> str:
        return tnb101.arch_key(canonical, self.which)

    def build(self, canonical: str, num_classes: int):
        return tnb101.build_network(canonical, num_classes, self.which)

    def archs(self) -> list[str]:
        return tnb101.all_archs(self.which)

    def normalisation_for(self, num_classes: int) -> str:
        return legacy_normalisation(num_classes)

    def datasets(self) -> dict:
        return TNB101_DATASETS

    def describe(self, arch, num_classes: int) -> dict:
        return tnb101.describe(arch, num_classes, self.which)


def load_tnb101_spec(spec: str) -> Benchmark:
    """``tnb101:PATH[:space=micro|macro][:task=NAME]``."""
    from .table import split_spec_options

    path, opts = split_spec_options(spec, TNB101_PREFIX, ("space", "task"))
    return load_tnb101(path, space=opts.get("space"), task=opts.get("task"))



TNB101_TASKS = ("class_scene", "class_object", "room_layout", "jigsaw", "segmentsemantic", "normal", "autoencoder")
# The metric NAS-Bench-Suite-Zero (NASLib) reads as each task's "accuracy" (best epoch).
TNB101_MAIN_METRIC = {
    "class_scene": "valid_top1", "class_object": "valid_top1", "jigsaw": "valid_top1",
    "room_layout": "valid_neg_loss", "segmentsemantic": "valid_acc",
    "normal": "valid_ssim", "autoencoder": "valid_ssim",
}


def looks_like_tnb101_json(data) -> bool:
    return (isinstance(data, dict) and bool(data) and set(data) <= set(TNB101_TASKS)
            and all(isinstance(v, dict) for v in data.values()))


def _tnb101_space_from_name(path: Path, space: str | None) -> str | None:
    if space:
        text = space.strip().lower()
        text = text[len("tnb101_"):] if text.startswith("tnb101_") else text
        if text not in ("micro", "macro"):
            raise DataError(f"{path}: unknown TransNAS-Bench-101 space {space!r}; use micro or macro")
        return text
    name = path.name.lower()
    hits = [s for s in ("micro", "macro") if s in name]
    return hits[0] if len(hits) == 1 else None


def _tnb101_tasks(path: Path, available, task: str | None) -> list[str]:
    available = list(available)
    if task is None:
        return available
    if task not in available:
        raise DataError(f"{path}: no task {task!r}; available: {', '.join(available)}")
    return [task]


def _tnb101_preferred(tasks: list[str], suffix: str, columns: dict) -> str | None:
    order = sorted(tasks, key=lambda t: (t != "class_object", tasks.index(t)))
    for t in order:
        name = f"{t}.{suffix if suffix else TNB101_MAIN_METRIC.get(t, '')}"
        if name in columns:
            return name
    return None


def load_tnb101(path, space: str | None = None, task: str | None = None, data=None) -> Benchmark:
    """TransNAS-Bench-101 ground truth for one space (``micro`` or ``macro``).

    Two file kinds:

    * the official API file (``transnas-bench_v10141024.pth``), read with
      ``torch.load(weights_only=True)`` (plain containers only, nothing is
      executed). Per task and metric (losses other than ``neg_loss`` and
      ``time_elapsed`` are skipped): ``<task>.<metric>`` = the best epoch (max,
      the API's ``mode='best'``) and ``<task>.<metric>.final`` = the last epoch;
      plus the ``model_info`` numbers (``<task>.model_params``, ...).
      ``space`` defaults to ``micro``.
    * a NAS-Bench-Suite-Zero style JSON ``{task: {arch: {"val_accuracy": v,
      proxy: {"score": s, "time": t}, ...}}}`` with NASLib op tuples as arch
      keys: ``<task>.val_accuracy`` and ``<task>.<proxy>`` (the score). The space
      comes from ``space`` or the file name (``..._micro.json``/``..._macro.json``).

    ``task`` keeps one task. The default target is ``class_object``'s main
    metric when present (``valid_top1`` / ``val_accuracy``).
    """
    path = Path(path).expanduser()
    if data is None and not path.exists():
        raise DataError(f"{path}: TransNAS-Bench-101 file not found")
    if data is None and path.name.lower().endswith((".pth", ".pt", ".pth.tar")):
        return _load_tnb101_pth(path, space, task)
    if data is None:
        data = read_json(path)
    return _load_tnb101_json(path, data, space, task)


def _load_tnb101_pth(path: Path, space: str | None, task: str | None) -> Benchmark:
    import torch

    try:
        db = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors of all kinds: a damaged or foreign file
        raise DataError(f"{path}: cannot read as a TransNAS-Bench-101 .pth ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    if not isinstance(db, dict) or not all(k in db for k in ("data", "task_list", "metrics_dict")):
        raise DataError(f"{path}: not a TransNAS-Bench-101 API file (needs 'data', 'task_list', 'metrics_dict')")
    spaces = db["data"]
    which = _tnb101_space_from_name(path, space) if space else "micro"
    if not isinstance(spaces, dict) or which not in spaces:
        raise DataError(f"{path}: no {which!r} space; available: {', '.join(map(str, spaces))}")
    tasks = _tnb101_tasks(path, db["task_list"], task)
    info_names = list(db.get("info_names") or [])
    archs_raw = list(spaces[which])
    n = len(archs_raw)

    archs, columns = [], {}

    def column(name):
        if name not in columns:
            columns[name] = np.full(n, math.nan)
        return columns[name]

    for i, raw in enumerate(archs_raw):
        try:
            archs.append(tnb101.canonical(raw, which))
        except ArchError as e:
            raise DataError(f"{path}: {which} arch {raw!r} is not a TNB101 arch ({e})") from None
        record = spaces[which][raw]
        if not isinstance(record, dict):
            raise DataError(f"{path}: arch {raw!r}: expected a dict of tasks, got {type(record).__name__}")
        for t in tasks:
            rec = record.get(t)
            if rec is None:
                continue
            if not isinstance(rec, dict) or "metrics" not in rec:
                raise DataError(f"{path}: arch {raw!r} task {t!r}: missing key 'metrics'")
            for metric in db["metrics_dict"].get(t, []):
                if metric == "time_elapsed" or ("loss" in metric and "neg_loss" not in metric):
                    continue
                curve = rec["metrics"].get(metric)
                if not isinstance(curve, (list, tuple)) or not curve:
                    continue
                vals = [float(v) for v in curve if number(v) is not None]
                if vals:
                    column(f"{t}.{metric}")[i] = max(vals)
                    column(f"{t}.{metric}.final")[i] = vals[-1]
            info = rec.get("model_info") or {}
            for name in info_names:
                value = number(info.get(name)) if isinstance(info, dict) else None
                if value is not None:
                    column(f"{t}.{name}")[i] = value
    check_unique(path, archs)
    if not columns:
        raise DataError(f"{path}: no metrics for tasks {', '.join(tasks)} in the {which} space")
    source = (f"TransNAS-Bench-101 API file {path} ({which} space, {n} archs; <task>.<metric> = best epoch, "
              "<task>.<metric>.final = last epoch)")
    return Benchmark(name=str(path), space=f"tnb101_{which}", archs=archs, columns=columns, source=source,
                     canonical=TNB101Space(which).canonical,
                     preferred_target=_tnb101_preferred(tasks, "", columns))


def _infer_tnb101_space(path: Path, keys) -> str:
    """Micro tuples use codes 0..3 anywhere; macro tuples are digits 1..4 padded with trailing zeros."""
    import ast

    micro_only = macro_only = False
    for key in keys:
        text = str(key).strip()
        if text.endswith("-basic"):  # an arch string such as 64-1234-basic
            macro_only = True
            continue
        if re.search(r"-\d_\d\d_\d\d\d$", text):  # 64-41414-1_02_333
            micro_only = True
            continue
        try:
            code = ast.literal_eval(str(key))
        except (ValueError, SyntaxError):
            continue
        if not isinstance(code, (list, tuple)):
            continue
        if any(v == 4 for v in code):
            macro_only = True
        trailing = list(code)
        while trailing and trailing[-1] == 0:
            trailing.pop()
        if 0 in trailing:
            micro_only = True
    if micro_only != macro_only:
        return "micro" if micro_only else "macro"
    raise DataError(f"{path}: cannot tell micro from macro archs; name the file *_micro.json / *_macro.json "
                    f"or add :space=micro|macro (tnb101:{path}:space=micro)")


def _load_tnb101_json(path: Path, data, space: str | None, task: str | None) -> Benchmark:

    if not looks_like_tnb101_json(data):
        raise DataError(f"{path}: not a TransNAS-Bench-101 JSON: expected {{task: {{arch: {{...}}}}}} with tasks "
                        f"from {', '.join(TNB101_TASKS)}")
    tasks = _tnb101_tasks(path, data, task)
    which = _tnb101_space_from_name(path, space) or _infer_tnb101_space(
        path, [a for t in tasks for a in data[t]])
    rows: dict[str, int] = {}
    archs: list[str] = []
    cells: dict[str, dict[int, float]] = {}
    for t in tasks:
        for raw, rec in data[t].items():
            where = f"{path}: task {t!r} arch {raw!r}"
            try:
                arch = tnb101.canonical(raw, which)
            except ArchError as e:
                raise DataError(f"{where}: not a TNB101 {which} arch ({e})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
            if "val_accuracy" not in rec:
                raise DataError(f"{where}: missing key 'val_accuracy'")
            if arch not in rows:
                rows[arch] = len(archs)
                archs.append(arch)
            row = rows[arch]
            for key, value in rec.items():
                if key in ("idx", "arch"):
                    continue
                if isinstance(value, dict):
                    if "score" not in value:
                        raise DataError(f"{where}: proxy {key!r} has no 'score'")
                    value = value["score"]
                num = number(value)
                if num is None:
                    if key == "val_accuracy":
                        raise DataError(f"{where}: 'val_accuracy' is not a number ({value!r})")
                    continue
                cells.setdefault(f"{t}.{key}", {})[row] = num
    if not archs:
        raise DataError(f"{path}: no archs for tasks {', '.join(tasks)}")
    columns = {}
    for name, values in cells.items():
        col = np.full(len(archs), math.nan)
        for row, v in values.items():
            col[row] = v
        columns[name] = col
    source = (f"TransNAS-Bench-101 NAS-Bench-Suite-Zero style JSON {path} ({which} space, {len(archs)} archs, "
              f"tasks {', '.join(tasks)}; <task>.val_accuracy as stored, <task>.<proxy> = its score)")
    return Benchmark(name=str(path), space=f"tnb101_{which}", archs=archs, columns=columns, source=source,
                     canonical=TNB101Space(which).canonical,
                     preferred_target=_tnb101_preferred(tasks, "val_accuracy", columns))
