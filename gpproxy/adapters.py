"""Adapters to other zero-cost tooling.

``merge_zc_api``: put gpproxy scores into a NAS-Bench-Suite-Zero / NASLib
``zc_api`` JSON (``zc_<benchmark>.json``: ``data[dataset][arch][proxy] =
{"score", "time"}`` beside ``val_accuracy``, ``id``/``idx`` and ``arch``), so
NASLib's zero-cost runner, which reads ``zc_api[arch][method]``, finds the new
proxy without recomputing it. Only proxy entries are written: the suite's own
labels (``val_accuracy``) and ids are never touched, and an arch the suite
file lacks is not added (its runner would meet an entry without a label).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import DataError, GpproxyError
from .fileio import atomic_write_text, read_json
from .spaces._common import show

# Keys of a suite entry that are not proxies (labels and identifiers).
NOT_PROXIES = frozenset({"val_accuracy", "id", "idx", "arch", "test_accuracy", "train_time"})


def _read(path: Path, what: str, entries: bool = False) -> dict:
    """``path``'s JSON in the zc_api layout; with ``entries`` each arch's entry must be a dict too
    (our scores file: every entry is read; a suite's odd entry is only an arch we do not merge into)."""
    if not path.is_file():
        raise GpproxyError(f"{what} {path} does not exist")
    try:
        data = read_json(path)
    except RecursionError:  # nested past what the parser takes: no zc_api file is
        raise DataError(f"{what} {path} is not valid JSON (nested too deeply)") from None
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"{what} {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DataError(f"{what} {path} is not in the zc_api layout data[dataset][arch][proxy]")
    for ds, archs in data.items() if entries else ():
        bad = next((a for a, e in archs.items() if not isinstance(e, dict)), None)
        if bad is not None:
            raise DataError(f"{what} {path} [{show(ds, 80)}][{show(bad, 80)}] is {show(archs[bad], 40)}, not a "
                            f"dict of proxies: not in the zc_api layout data[dataset][arch][proxy]")
    return data


def json_float(value) -> float:
    """float() of a JSON number or numeric string; an int past float's range (JSON allows one) as inf."""
    try:
        return float(value)
    except OverflowError:  # an int past float's range (JSON allows one): as inf
        return math.inf


def _nonfinite_at(obj):
    """The place (``[key][key]...``) of a NaN/inf in ``obj`` (parsed JSON), or None; a loop, not
    recursion, as a file nested as deep as the parser allows would exhaust Python's stack."""
    todo = [(obj, "")]
    while todo:
        obj, where = todo.pop()
        if isinstance(obj, float) and not math.isfinite(obj):
            return where
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
        todo += reversed([(v, f"{where}[{show(k, 80)}]") for k, v in items])
    return None


def _entry(value, where: str) -> dict:
    if not (isinstance(value, dict) and set(value) >= {"score"}):
        raise DataError(f"{where}: a proxy entry must be {{\"score\": ..., \"time\": ...}}")
    try:
        score, secs = json_float(value["score"]), json_float(value.get("time", 0.0))
    except (TypeError, ValueError):
        raise DataError(f"{where}: score/time are not numbers") from None
    if not math.isfinite(score):
        score = -1e8  # NASLib's value for a failed score
    if not (math.isfinite(secs) and secs >= 0):  # written as Infinity/NaN, it would not be JSON
        raise DataError(f"{where}: time {show(value.get('time'), 40)} is not a finite number of seconds >= 0")
    return {"score": score, "time": secs}


def _space_of(scores: Path, space):
    """The space whose encodings match archs: given, else the scores file's protocol sidecar's."""
    if space is None:
        side = scores.with_name(scores.name + ".protocol.json")
        try:
            space = json.loads(side.read_text()).get("space") if side.is_file() else None
        except (OSError, ValueError, AttributeError, RecursionError):
            space = None
        if not isinstance(space, str):  # a corrupt sidecar: as none
            space = None
    if not space:
        return None
    from .spaces import get_space

    return get_space(space)


def _matcher(space, archs: dict):
    """arch key of ours -> the suite file's key for the same arch (its encoding may differ: TNB101
    files use NASLib tuples), or None."""
    index = None

    def find(key):
        nonlocal index
        if key in archs or space is None:
            return key if key in archs else None
        if index is None:
            index = {}
            for a in archs:
                try:
                    index[space.canonical(a)] = a
                except GpproxyError:
                    continue
        try:
            return index.get(space.canonical(key))
        except GpproxyError:
            return None
    return find


def merge_zc_api(scores, into, out=None, proxies=None, overwrite: bool = False, space=None) -> dict:
    """Merge gpproxy's scores file ``scores`` into the suite file ``into``; write ``out`` (default: ``into``).

    ``proxies``: ``{gpproxy name: name in the suite}`` to merge (default: every
    proxy of ``scores`` under its own name). A proxy the suite already has for
    an arch is kept unless ``overwrite``. Returns counts per dataset:
    ``{"merged", "kept", "missing_archs"}``. Archs are matched by key, else through
    ``space`` (default: the space recorded beside ``scores``) in any encoding.
    """
    scores, into = Path(scores), Path(into)
    ours, suite = _read(scores, "scores file", entries=True), _read(into, "zc_api file")
    rename = dict(proxies) if proxies else None
    if rename:
        bad = [n for n in rename.values() if not isinstance(n, str) or not n or n in NOT_PROXIES]
        if bad:
            raise GpproxyError(f"proxy name {bad[0]!r} is not allowed in a zc_api file")
    summary, sp = {}, _space_of(scores, space)
    for ds, archs in ours.items():
        if ds not in suite:
            raise GpproxyError(f"{into} has no dataset {ds!r} (it has {', '.join(suite) or 'none'})")
        counts = {"merged": 0, "kept": 0, "missing_archs": 0}
        find = _matcher(sp, suite[ds])
        for arch, entry in archs.items():
            key = find(arch)
            target = suite[ds].get(key) if key is not None else None
            if not isinstance(target, dict):
                counts["missing_archs"] += 1
                continue
            for name, value in entry.items():
                if name in NOT_PROXIES or (rename is not None and name not in rename):
                    continue
                new = rename[name] if rename is not None else name
                if new in target and not overwrite:
                    counts["kept"] += 1
                    continue
                target[new] = _entry(value, f"{scores} [{ds}][{arch}][{name}]")
                counts["merged"] += 1
        summary[ds] = counts
    if rename:
        found = {n for archs in ours.values() for e in archs.values() for n in e}
        missing = [n for n in rename if n not in found]
        if missing:
            raise GpproxyError(f"{scores} has no proxy {missing[0]!r}")
    out = Path(out) if out is not None else into
    try:
        text = json.dumps(suite, allow_nan=False)  # strict JSON: NaN/Infinity are Python's, not JSON's
    except RecursionError:
        raise DataError(f"zc_api file {into} is nested too deeply to write back") from None
    except ValueError:
        at = _nonfinite_at(suite) or "somewhere"
        raise DataError(f"zc_api file {into} {at} is NaN or infinite, which strict JSON cannot hold; "
                        f"replace it with -1e8 (NASLib's value for a failed score) or drop it") from None
    atomic_write_text(out, text + "\n")
    return summary
