"""Per-arch scores on disk in NAS-Bench-Suite-Zero's layout,
``data[dataset][arch][proxy] = {"score": ..., "time": ...}``, with the space's
suite key as arch key (the NASLib 6-tuple for NB201) and ``val_accuracy``
beside the proxies. NaN/inf scores are stored as -1e8, NASLib's rule. The file
doubles as a resume point: a rerun computes only what it lacks; a malformed
file or sidecar is refused when opened, naming its first bad entry. A path
ending in ``.gz`` is gzip-compressed (a 3,000-arch store of a dozen proxies
is ~2 MB of JSON).

Proxies are keyed by content (a formula string, a baseline name, or an
exported module's ``STEM@sha256``), never by file name. ``val_accuracy`` is
written only when it is the dataset's own label in the benchmark (see
``scoring.run``), and the sidecar's ``labels`` says which benchmark and column
it came from, per dataset."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..adapters import NOT_PROXIES, json_float
from ..errors import DataError, GpproxyError
from ..fileio import atomic_write_json, read_json, write_json
from ..lock import waiting_for
from ..spaces._common import show
from .protocol import Protocol

SAVE_EVERY_S = 60.0


def suite_key(space: str, arch: str) -> str:
    """NAS-Bench-Suite-Zero's arch key (the NASLib 6-tuple text for NB201)."""
    from ..spaces import get_space

    return get_space(space).suite_key(arch)


def _isfinite(value) -> bool:
    return math.isfinite(json_float(value))


def _finite(value) -> float:
    from ..baselines import NASLIB_INVALID

    value = json_float(value)
    return value if math.isfinite(value) else NASLIB_INVALID


# Keys every protocol sidecar has held since the first; keys added to Protocol later read as their defaults.
SIDECAR_KEYS = ("space", "batch", "seed", "input", "pack", "per_arch_seed")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def checked_scores(data, where: str, fix: str) -> dict:
    """``data`` if it is in the layout ``data[dataset][arch][proxy] = {"score", "time"}``, else a DataError
    naming ``where`` and the first bad entry, then what to do (``fix``). Non-proxy keys (``val_accuracy``,
    a suite's ids) pass as they are; a non-finite score becomes -1e8 (NASLib's rule, as ``put`` stores it);
    a time must be a finite number of seconds."""
    layout = 'data[dataset][arch][proxy] = {"score": ..., "time": ...}'
    fix = f"; {fix}" if fix else ""
    if not isinstance(data, dict):
        raise DataError(f"{where} holds a {type(data).__name__}, not the layout {layout}{fix}")
    for ds, archs in data.items():
        if not isinstance(archs, dict):
            raise DataError(f"{where} [{show(ds, 80)}] is {show(archs, 40)}, not a dict of archs ({layout}){fix}")
        for arch, entry in archs.items():
            if not isinstance(entry, dict):
                raise DataError(f"{where} [{show(ds, 80)}][{show(arch, 80)}] is {show(entry, 40)}, "
                                f"not a dict of proxies ({layout}){fix}")
            for proxy, value in entry.items():
                if proxy in NOT_PROXIES:
                    continue
                at = f"{where} [{show(ds, 80)}][{show(arch, 80)}][{show(proxy, 80)}]"
                if not isinstance(value, dict) or "score" not in value or "time" not in value:
                    raise DataError(f'{at} is {show(value, 40)}, not {{"score": ..., "time": ...}}{fix}')
                score, secs = value["score"], value["time"]
                if not _is_number(score):
                    raise DataError(f"{at}: score {show(score, 40)} is not a number{fix}")
                if not _is_number(secs):
                    raise DataError(f"{at}: time {show(secs, 40)} is not a number{fix}")
                if not (_isfinite(secs) and secs >= 0):
                    raise DataError(f"{at}: time {show(secs, 40)} is not a finite number of seconds >= 0{fix}")
                if not _isfinite(score):
                    value["score"] = _finite(score)
    return data


class ScoreStore:
    """``data[dataset][arch][proxy] = {"score", "time"}`` on disk, plus a protocol sidecar.

    ``path=None`` keeps the scores in memory only (the Python API's default).
    """

    def __init__(self, path, protocol: Protocol):
        self.path = Path(path) if path is not None else None
        self.data = {}
        self._last_save = time.monotonic()
        self.protocol = protocol
        self.labels = {}  # dataset -> {"benchmark", "target"} of its val_accuracy
        if self.path is None:
            return
        side = self.protocol_path
        if self.path.exists():
            try:
                data = read_json(self.path)
            except RecursionError:  # nested past what the parser takes: no scores file is
                raise DataError(f"scores file {self.path} is unreadable (nested too deeply); "
                                f"delete it or use another --scores") from None
            except (OSError, EOFError, ValueError) as e:
                raise DataError(f"scores file {self.path} is unreadable ({e}); delete it or use another --scores")
            self.data = checked_scores(data, f"scores file {self.path}", "delete it or use another --scores")
            if side.exists():
                # keys added to Protocol later read as their defaults
                old = {**Protocol().to_dict(), **self._read_sidecar(side)}
                self.labels = old.get("labels") or {}
                diff = [k for k, v in protocol.to_dict().items() if old.get(k) != v]
                if diff:
                    k = diff[0]
                    raise GpproxyError(f"scores file {self.path} was made with {k}={old.get(k)!r}, not "
                                       f"{getattr(protocol, k)!r}; use another --scores")

    def _read_sidecar(self, side: Path) -> dict:
        """The protocol sidecar's dict, or a DataError: without it the scores' protocol is unknown."""
        fix = f"delete it and {self.path.name}, or use another --scores"
        try:
            old = json.loads(side.read_text())
        except RecursionError:
            raise DataError(f"protocol file {side} is corrupt (nested too deeply); {fix}") from None
        except (OSError, ValueError) as e:
            raise DataError(f"protocol file {side} is corrupt ({e}); {fix}") from None
        if not isinstance(old, dict):
            raise DataError(f"protocol file {side} holds a {type(old).__name__}, not a protocol; {fix}")
        lacks = [k for k in SIDECAR_KEYS if k not in old]
        if lacks:
            raise DataError(f"protocol file {side} is incomplete (no {lacks[0]!r}); {fix}")
        labels = old.get("labels", {})
        if not (isinstance(labels, dict) and all(
                isinstance(v, dict) and isinstance(v.get("benchmark"), str) and isinstance(v.get("target"), str)
                for v in labels.values())):
            raise DataError(f"protocol file {side} has corrupt 'labels' "
                            f"(want {{dataset: {{\"benchmark\", \"target\"}}}}); {fix}")
        return old

    @property
    def protocol_path(self) -> Path:
        return self.path.with_name(self.path.name + ".protocol.json")

    def get(self, ds: str, arch_key: str, proxy: str):
        return self.data.get(ds, {}).get(arch_key, {}).get(proxy)

    def put(self, ds: str, arch_key: str, proxy: str, score: float, seconds: float) -> None:
        entry = self.data.setdefault(ds, {}).setdefault(arch_key, {})
        entry[proxy] = {"score": _finite(score), "time": round(float(seconds), 5)}

    def label_source(self, ds: str, benchmark: str, target: str) -> None:
        """Record where dataset ``ds``'s val_accuracy comes from; one source per file and dataset."""
        new = {"benchmark": str(benchmark), "target": str(target)}
        old = self.labels.get(ds)
        if old is not None and old != new:
            raise GpproxyError(f"scores file {self.path} holds {ds} val_accuracy of {old['benchmark']} "
                               f"column {old['target']!r}, not of {benchmark} column {target!r}; use another --scores")
        self.labels[ds] = new

    def put_label(self, ds: str, arch_key: str, value: float) -> None:
        self.data.setdefault(ds, {}).setdefault(arch_key, {})["val_accuracy"] = float(value)

    def scores(self, ds: str, keys: list, proxy: str) -> np.ndarray:
        return np.array([self.data[ds][k][proxy]["score"] for k in keys], dtype=np.float64)

    def save(self, force: bool = True) -> None:
        if self.path is None:
            return
        if not force and time.monotonic() - self._last_save < SAVE_EVERY_S:
            return
        side = self.protocol.to_dict()
        if self.labels:
            side["labels"] = self.labels
        with waiting_for(self.path):  # another process may save the same file (transfer.py --shard)
            self._merge_disk()
            atomic_write_json(self.protocol_path, side)
            write_json(self.path, self.data, sort_keys=True)
        self._last_save = time.monotonic()

    def _merge_disk(self) -> None:
        """Take in what another process saved to the same file since we read it (ours wins
        where both hold a score), so processes scoring disjoint archs can share one store."""
        if not self.path.exists():
            return
        try:
            disk = checked_scores(read_json(self.path), str(self.path), "")
        except (OSError, EOFError, ValueError, RecursionError, DataError):
            return  # unreadable: ours replaces it (it was read, or refused, when we opened it)
        for ds, archs in disk.items():
            mine = self.data.setdefault(ds, {})
            for key, entry in archs.items():
                cur = mine.setdefault(key, {})
                for proxy, value in entry.items():
                    cur.setdefault(proxy, value)
