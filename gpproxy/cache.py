"""The statistics cache: pay for each network once, score formulas many times.

Layout of a cache directory::

    cache.json          what was computed and how (everything that changes a
                        number: space, classes, batch, seeds, input, sampling,
                        storage dtype) plus the benchmark/target it was made for
    targets.csv         arch, key, accuracy for the recorded target
    stats/<key>.npy     one flat array per arch (memory-mappable)
    stats/<key>.json    its layer table (offsets, shapes, scales, exact layer
                        metadata, exact full-tensor moments per statistic when
                        ``probe.moments``) and the array's checksum

An arch is complete when its ``.json`` exists and the ``.npy`` matches the
checksum in it; both are written atomically, the ``.json`` last, so a killed
build leaves only complete archs or nothing, and a rerun computes the rest.
A file that fails its checksum is reported and rebuilt, never used.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .device import worker_count
from .errors import DataError, GpproxyError
from .fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, digest, foreign_entries
from .probe import ProbeConfig
from .record import LayerRecord, as_array, as_floats

CACHE_VERSION = 2
STORAGE_DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class CacheSpec:
    """Everything that determines the cached numbers (compared on reuse)."""

    space: str = "nb201"
    num_classes: int = 10
    batch: int = 16
    seed: int = 0  # network init seed and minibatch draw seed
    input: str = "noise"
    resolution: int = 32
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    storage: str = "float16"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["probe"] = self.probe.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CacheSpec":
        d = _with_old_defaults(d)
        d["probe"] = ProbeConfig(**d["probe"])
        return cls(**d)


def _with_old_defaults(spec: dict) -> dict:
    """A stored spec dict with keys added since filled in as old caches were made.

    Caches from before ``ProbeConfig.moments`` have no moments: reading the
    missing key as False (not the new default True) keeps them openable and
    stops new archs with moments being added to them.
    """
    d = dict(spec)
    d["probe"] = {"moments": False, "net_terms": False, **d.get("probe", {})}
    return d


def _normalisation(spec: CacheSpec) -> str:
    """Mean/std for real images: the space's, for nets with ``spec.num_classes``
    outputs; CIFAR-100 images take CIFAR-100's in place of CIFAR-10's."""
    from .spaces import get_space

    norm = get_space(spec.space).normalisation_for(spec.num_classes)
    return "cifar100" if norm == "cifar10" and spec.input.startswith("cifar100") else norm


def load_input(spec: CacheSpec):
    """The one minibatch every arch of this cache sees, and its description."""
    from .inputs import load_batch, parse_input_spec

    x, y, info = load_batch(parse_input_spec(spec.input), spec.batch, spec.seed,
                            num_classes=spec.num_classes, resolution=spec.resolution,
                            normalisation=_normalisation(spec))
    return x, y, info


# ---------------------------------------------------------------- one arch


def encode_record(arch: str, key: str, layers: list, storage: str, seconds: float):
    """One arch's LayerRecords -> (flat array bytes, json-able layer table)."""
    dtype = np.dtype(storage)
    chunks, table, offset = [], [], 0
    for layer in layers:
        entry = {"name": layer.name, "meta": layer.meta, "stats": {}}
        if layer.moments:
            entry["moments"] = {stat: as_floats(m) for stat, m in layer.moments.items()}
        for stat, (sample, scale) in layer.stats.items():
            arr = as_array(sample)
            if dtype == np.float16:
                # fp16 overflows to inf above 65504; clip so a huge but finite
                # activation stays finite (and ranks the same).
                arr = np.clip(arr, -65000, 65000)
            arr = arr.astype(dtype, copy=False)
            entry["stats"][stat] = {"offset": offset, "shape": list(arr.shape),
                                    "scale": float(scale)}
            chunks.append(arr.ravel())
            offset += arr.size
        table.append(entry)
    flat = np.concatenate(chunks) if chunks else np.zeros(0, dtype)
    payload = _npy_bytes(flat)
    meta = {"arch": arch, "key": key, "dtype": storage, "numel": int(flat.size),
            "checksum": digest(payload), "seconds": round(seconds, 4), "layers": table}
    return payload, meta


def decode_record(table: dict, flat: np.ndarray) -> list:
    """(layer table, flat array) of one arch -> its LayerRecords; samples are
    views of `flat`, moments lists of floats ({} in caches without them)."""
    out = []
    for layer in table["layers"]:
        stats = {}
        for stat, info in layer["stats"].items():
            n = int(np.prod(info["shape"]))
            stats[stat] = (flat[info["offset"]: info["offset"] + n].reshape(info["shape"]), info["scale"])
        out.append(LayerRecord(layer["name"], layer["meta"], stats, layer.get("moments", {})))
    return out


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def build_one(spec_dict: dict, arch: str, key: str, out_dir: str, x, y, device: str = "cpu",
              threads: int | None = 1, parent: tuple | None = None) -> tuple[str, float, int]:
    """Build, probe and store one arch. Runs inside a worker process (``parent``: the driver's pid and
    current directory, so that the worker dies with it and reads relative paths as it does)."""
    import torch

    if parent is not None:
        from .lock import serve_driver

        serve_driver(*parent)

    from .probe import probe_arch
    from .spaces import get_space

    # One thread always: 2 threads in each of 2 workers ran 6x slower, and a
    # fixed thread count keeps the cached numbers bit-identical whatever --jobs.
    before = torch.get_num_threads()
    torch.set_num_threads(threads or 1)
    try:
        spec = CacheSpec.from_dict(spec_dict)
        space = get_space(spec.space)
        try:
            layers, seconds = probe_arch(lambda a: space.build(a, spec.num_classes), arch, x, y,
                                         spec.probe, init_seed=spec.seed, device=device,
                                         channels_last=space.channels_last(device))
        except GpproxyError:
            raise
        except RuntimeError as e:  # e.g. an input too small for the net's poolings, or out of memory
            first = (str(e).splitlines() or [""])[0][:160]
            raise GpproxyError(f"arch {arch}: the network fails on a {spec.batch}x3x{spec.resolution}x"
                               f"{spec.resolution} input with {spec.num_classes} classes ({first}); check "
                               "--resolution/--batch/--num-classes") from None
        except (Exception, SystemExit) as e:  # a user space's build or forward raising anything else
            first = (str(e).splitlines() or [""])[0][:160]
            raise GpproxyError(f"arch {arch}: building or running the network of space {spec.space} raised "
                               f"{type(e).__name__}: {first}") from None
    finally:
        torch.set_num_threads(before)
    payload, meta = encode_record(arch, key, layers, spec.storage, seconds)
    stats_dir = Path(out_dir) / "stats"
    atomic_write_bytes(stats_dir / f"{key}.npy", payload)
    atomic_write_json(stats_dir / f"{key}.json", meta)
    return key, seconds, len(payload)


# ---------------------------------------------------------------- the cache


class Cache:
    """An on-disk statistics cache (see module docstring)."""

    def __init__(self, root, manifest: dict):
        self.root = Path(root)
        self.manifest = manifest
        self.spec = CacheSpec.from_dict(manifest["spec"])

    @property
    def stats_dir(self) -> Path:
        return self.root / "stats"

    def archs(self) -> list[str]:
        return list(self.manifest.get("archs", []))

    def key_of(self, arch: str) -> str:
        return self.manifest["keys"][arch]

    def status(self, arch: str) -> str:
        """'ok', 'missing' or 'corrupt'."""
        key = self.manifest["keys"].get(arch)
        if key is None:
            return "missing"
        meta_path = self.stats_dir / f"{key}.json"
        npy_path = self.stats_dir / f"{key}.npy"
        if not meta_path.exists():
            return "missing"
        try:
            meta = json.loads(meta_path.read_text())
            # A file copied over from another arch passes its checksum: its header names the other arch.
            ok = (meta.get("arch") == arch and isinstance(meta.get("layers"), list) and npy_path.exists()
                  and digest(npy_path.read_bytes()) == meta["checksum"])
        except (ValueError, KeyError, OSError, AttributeError, TypeError):
            ok = False
        return "ok" if ok else "corrupt"

    def record(self, arch: str, mmap: bool = True):
        """(layer table, flat array) of one arch, checksum-verified."""
        key = self.key_of(arch)
        meta_path = self.stats_dir / f"{key}.json"
        npy_path = self.stats_dir / f"{key}.npy"
        try:
            meta = json.loads(meta_path.read_text())
            raw = npy_path.read_bytes()
        except (OSError, ValueError) as e:
            raise DataError(f"cache {self.root}: arch {arch} ({key}) is missing or unreadable "
                            f"({e.__class__.__name__}); rerun `gpproxy cache` to build it") from None
        if not isinstance(meta, dict) or digest(raw) != meta.get("checksum"):
            raise DataError(f"cache {self.root}: {npy_path.name} is corrupt (checksum mismatch); "
                            f"rerun `gpproxy cache` with the same --out to rebuild it")
        if meta.get("arch") != arch:
            raise DataError(f"cache {self.root}: {meta_path.name} holds the statistics of arch "
                            f"{str(meta.get('arch'))[:80]}, not of {arch}; rerun `gpproxy cache` with the "
                            f"same --out to rebuild it")
        arr = np.load(npy_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        return meta, arr

    def layers(self, arch: str) -> list:
        """The LayerRecords of one arch (checksum-verified; samples are views of the file)."""
        meta, arr = self.record(arch)
        try:  # the checksum covers the array, not its JSON layer table
            return decode_record(meta, arr)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise DataError(f"cache {self.root}: the layer table of arch {arch} ({self.key_of(arch)}.json) is "
                            f"corrupt ({type(e).__name__}); delete that file and rerun `gpproxy cache` with the "
                            "same --out to rebuild it") from None

    def targets(self) -> dict[str, float]:
        path = self.root / "targets.csv"
        if not path.exists():
            return {}
        out = {}
        for line in path.read_text().splitlines()[1:]:
            arch, _key, value = line.rsplit(",", 2)
            out[arch] = float(value)
        return out

    def describe(self) -> str:
        s = self.spec
        return (f"space={s.space} classes={s.num_classes} batch={s.batch} seed={s.seed} "
                f"input={s.input} res={s.resolution} storage={s.storage} probe={s.probe.to_dict()}")


# What a space's key() makes (an index, a hash, a short name): a plain file name in stats/, never a path.
_FILE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]{0,127}")


def _manifest_problem(manifest) -> str | None:
    """What makes a parsed cache.json unusable, or None. Its keys become file names that builds write:
    a key that is not a plain name (``../x``, ``/etc/x``) would write outside the cache."""
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    archs, keys = manifest.get("archs"), manifest.get("keys")
    if not isinstance(manifest.get("spec"), dict):
        return "no spec object"
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        return "'archs' is not a list of arch strings"
    if not isinstance(keys, dict):
        return "'keys' is not an object"
    for a in archs:
        key = keys.get(a)
        if not isinstance(key, str) or not _FILE_KEY.fullmatch(key):
            return f"arch {a[:80]!r} has the key {str(key)[:80]!r}, not a plain file name"
    return None


def open_cache(root) -> Cache:
    root = Path(root)
    path = root / "cache.json"
    if not path.exists():
        raise DataError(f"no statistics cache at {root} (missing cache.json); build one with `gpproxy cache`")
    try:
        manifest = json.loads(path.read_text())
        problem = _manifest_problem(manifest)
        if problem:
            raise DataError(f"cache {root}: cache.json is corrupt ({problem}); delete the directory and rebuild")
        if manifest.get("version") != CACHE_VERSION:
            raise DataError(f"cache {root} has format version {manifest.get('version')}, "
                            f"this gpproxy reads {CACHE_VERSION}; rebuild it into a new --out")
        return Cache(root, manifest)
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise DataError(f"cache {root}: cache.json is corrupt ({e}); delete the directory and rebuild") from None


def _flat_spec(d: dict) -> dict:
    """Spec dict with probe fields as 'probe.x' keys: a mismatch names the field."""
    out = {k: v for k, v in d.items() if k != "probe"}
    out.update({f"probe.{k}": v for k, v in d.get("probe", {}).items()})
    return out


def _check_compatible(root: Path, manifest: dict, spec: CacheSpec) -> None:
    old = _flat_spec(_with_old_defaults(manifest["spec"]))
    new = _flat_spec(_with_old_defaults(spec.to_dict()))  # every field, to_dict's omitted defaults too
    diff = [k for k in new if old.get(k) != new[k]]
    if diff:
        k = diff[0]
        raise GpproxyError(f"cache {root} was built with {k}={old.get(k)!r}, not {new[k]!r}; "
                           f"use another --out (numbers made differently must not be mixed)")


def build_cache(root, spec: CacheSpec, archs: list, jobs: int = 1, device: str = "cpu",
                benchmark: str | None = None, target: str | None = None,
                targets: dict | None = None, progress=True, log=None, backend: str = "loky") -> Cache:
    """Create or complete a cache for `archs`; only missing/corrupt archs are computed.

    Returns the opened cache. `archs` may be in any accepted encoding; they are
    stored canonically. One process builds into a directory at a time
    (:func:`gpproxy.lock.owned`); a second one is refused.
    """
    from .lock import owned

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise GpproxyError(f"cache {root} is a file, not a directory; choose another --out / cache path")
    with owned(root, "cache", log=log):
        return _build_cache(root, spec, archs, jobs, device, benchmark, target, targets, progress, log, backend)


def _build_cache(root, spec, archs, jobs, device, benchmark, target, targets, progress, log, backend) -> Cache:
    from .spaces import get_space

    space = get_space(spec.space)
    canon = [space.canonical(a) for a in archs]
    manifest_path = root / "cache.json"
    # The input first: a missing image file must be reported as such, not hide behind a spec mismatch.
    x, y, input_info = load_input(spec)
    if manifest_path.exists():
        manifest = open_cache(root).manifest
        _check_compatible(root, manifest, spec)
    else:
        foreign = foreign_entries(root, ("cache.json",), own=("stats",))  # stats/: a first build killed early
        if foreign:  # the cache would write targets.csv and stats/ among a user's files
            raise GpproxyError(f"{root} is a directory of other files (e.g. {foreign[0]}), not a statistics "
                               "cache; choose a new or empty --out")
        manifest = {"version": CACHE_VERSION, "spec": spec.to_dict(), "archs": [], "keys": {}}
    space_file = space.fingerprint()  # a user space file: its statistics stay with its sha256
    if space_file and manifest.setdefault("space_file", space_file)["sha256"] != space_file["sha256"]:
        raise GpproxyError(f"cache {root} was built from another version of {spec.space} (sha256 "
                           f"{manifest['space_file']['sha256'][:12]}, now {space_file['sha256'][:12]}); "
                           "use another --out (numbers made differently must not be mixed)")
    manifest["input_info"] = input_info
    if input_info.get("labels_wrapped"):
        log(f"cache {root}: labels of {spec.input} outside 0..{spec.num_classes - 1} are folded into that "
            f"range (label mod {spec.num_classes})")
    if benchmark:
        manifest["benchmark"] = benchmark
    if target:
        manifest["target"] = target
    known = set(manifest["archs"])
    for a in canon:
        if a not in known:
            key = space.key(a)
            if not isinstance(key, str) or not _FILE_KEY.fullmatch(key):
                raise GpproxyError(f"space {spec.space}: arch {a[:80]!r} has the key {str(key)[:80]!r}, not a "
                                   "plain file name (letters, digits, . _ = + -, at most 128)")
            manifest["archs"].append(a)
            manifest["keys"][a] = key
            known.add(a)
    (root / "stats").mkdir(parents=True, exist_ok=True)
    for stale in [*root.glob(".*.tmp"), *(root / "stats").glob(".*.tmp")]:  # left by a killed writer
        stale.unlink(missing_ok=True)
    atomic_write_json(manifest_path, manifest)
    cache = Cache(root, manifest)
    if targets:
        rows = ["arch,key,target"] + [f"{a},{manifest['keys'][a]},{float(targets[a])!r}"
                                      for a in manifest["archs"] if a in targets]
        atomic_write_text(root / "targets.csv", "\n".join(rows) + "\n")

    todo, corrupt = [], 0
    for a in dict.fromkeys(canon):
        st = cache.status(a)
        if st != "ok":
            todo.append(a)
            corrupt += st == "corrupt"
    if corrupt:
        log(f"cache {root}: {corrupt} corrupt arch file(s) failed their checksum; rebuilding them")
    done = len(set(canon)) - len(todo)
    if not todo:
        log(f"cache {root}: all {done} archs already built")
        return cache
    log(f"cache {root}: building {len(todo)} archs ({done} already done), "
        f"{jobs if backend == 'dask' else worker_count(jobs, len(todo))} job(s), batch {spec.batch}, "
        f"input {spec.input}")
    t0 = time.perf_counter()
    total_bytes, n = 0, 0
    for key, seconds, nbytes in _run_jobs(spec, todo, manifest["keys"], root, x, y, jobs, device, backend):
        n += 1
        total_bytes += nbytes
        if progress and (n == len(todo) or n % max(1, len(todo) // 20) == 0 or n <= 2):
            el = time.perf_counter() - t0
            rate = n / el if el > 0 else float("inf")
            eta = (len(todo) - n) / rate if rate > 0 else 0
            log(f"  [{n:>5}/{len(todo)}] {rate:5.2f} archs/s, {total_bytes / n / 1e6:5.2f} MB/arch, "
                f"eta {eta:5.0f}s")
    el = time.perf_counter() - t0
    summary = {"built": n, "seconds": round(el, 2), "archs_per_s": round(n / el, 3) if el else None,
               "bytes_per_arch": int(total_bytes / max(n, 1))}
    manifest["last_build"] = summary
    atomic_write_json(manifest_path, manifest)
    log(f"cache {root}: built {n} archs in {el:.1f}s ({summary['archs_per_s']} archs/s, "
        f"{summary['bytes_per_arch'] / 1e6:.2f} MB/arch)")
    return cache


def _run_jobs(spec, todo, keys, root, x, y, jobs, device, backend="loky"):
    """Yield (key, seconds, bytes) per built arch. backend 'dask' runs the same
    jobs on the current dask.distributed Client (workers need the cache path)."""
    spec_dict = spec.to_dict()
    if backend == "dask":
        from joblib import Parallel, delayed, parallel_backend

        from .lock import for_dask_workers

        out_dir = for_dask_workers(root)
        spec_dict["space"] = for_dask_workers(spec.space, is_file_name=True)
        with parallel_backend("dask"):
            par = Parallel(return_as="generator_unordered")
            yield from par(delayed(build_one)(spec_dict, a, keys[a], out_dir, x, y, device, 1) for a in todo)
        return
    if jobs <= 1 or len(todo) == 1:
        for a in todo:
            yield build_one(spec_dict, a, keys[a], str(root), x, y, device, threads=1)
        return
    from joblib import Parallel, delayed

    # loky processes, one torch thread each; unordered so progress is live.
    par = Parallel(n_jobs=worker_count(jobs, len(todo)), backend="loky", return_as="generator_unordered")
    driver = (os.getpid(), os.getcwd())
    yield from par(delayed(build_one)(spec_dict, a, keys[a], str(root), x, y, device, 1, driver) for a in todo)
