"""Ground-truth accuracy tables for the NB201 search space.

A :class:`Benchmark` is a list of official NB201 arch strings plus one float64
column per target (accuracy in percent, or any other per-arch number).  It can
come from three kinds of source, chosen by :func:`load_benchmark`:

``"analog-nasbench"``
    The embedded default: the data file shipped in the PyPI wheel
    ``analog-nasbench==0.1.3`` (15,625 CIFAR-10 retrainings of the NB201 space).
    We read the file with a restricted unpickler and never import the package,
    whose ``__init__`` pulls in pandas and the deprecated ``pkg_resources``.
a CSV / CSV.GZ path
    An NB201-format table with an ``arch_str`` or ``naslib_ops`` column; every
    other all-numeric column becomes a target.
a NATS-Bench topology archive (directory or ``.pickle.pbz2``) or an NB201 ``.pth``
    Read through the optional ``nats_bench`` (or ``nas_201_api``) package.
``nds:PATH[:first=N][:space=NAME]`` (or a ``.json`` path that holds an NDS sweep)
    An NDS sweep summary ``<Space>.json`` (see :func:`load_nds`); archs are the
    ``nds_*`` spaces' canonical JSON strings.
``tnb101:PATH[:space=micro|macro][:task=NAME]`` (or a ``.json`` path in the
NAS-Bench-Suite-Zero layout)
    TransNAS-Bench-101: the official API's ``.pth`` or a NAS-Bench-Suite-Zero
    style ``{task: {arch: {...}}}`` JSON (see :func:`load_tnb101`).
"""
from __future__ import annotations

import csv
import gzip
import importlib.metadata
import importlib.util
import io
import json
import math
import pickle
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ArchError, DataError, GpproxyError
from .spaces import nb201

ANALOG_SPEC = "analog-nasbench"
ANALOG_DIST = "analog-nasbench"
ANALOG_VERSION = "0.1.3"
ANALOG_INSTALL_HINT = f"pip install {ANALOG_DIST}=={ANALOG_VERSION} --no-deps (or `make run`, which installs it)"

# Per-benchmark default target, keyed by Benchmark.name.  Benchmarks not named
# here (CSV paths, NATS archives) fall back to DEFAULT_TARGET_PREFERENCE.
DEFAULT_TARGETS = {
    ANALOG_SPEC: "baseline_accuracy",
    "nb201": "cifar10valid_valid",
}

# First present wins.  cifar10valid_valid is what EZNAS scores NB201 against
# (see shared/data/SOURCES.md, "Which target matches EZNAS").
DEFAULT_TARGET_PREFERENCE = (
    "cifar10valid_valid",
    "baseline_accuracy",
    "val_accuracy",
    "valid_accuracy",
    "cifar10_test",
    "test_accuracy",
)

# Columns that identify a row rather than measure it, so they are never targets
# even though they are numeric (`sol` is NAS-Landscapes' genotype number).
ID_COLUMNS = frozenset({"nb201_index", "arch_str", "naslib_ops", "unique_str", "sol", "index"})

ANALOG_ACCURACY_ATTRS = ("baseline_accuracy", "ptq_accuracy", "qat_accuracy", "noisy_accuracy", "analog_accuracy")
ANALOG_DRIFT_ATTRS = tuple(
    f"{kind}_drift_{seconds}" for kind in ("baseline", "analog") for seconds in (60, 3600, 86400, 2592000)
)

# (target name, NATS dataset, get_more_info key).  Key meanings per NATS-Bench's
# api_topology.get_more_info: for 'cifar10-valid' valid = x-valid and
# test = ori-test; for 'cifar10' test = ori-test (no valid split); for
# 'cifar100' / 'ImageNet16-120' valid = x-valid and test = x-test.
NATS_TARGETS = (
    ("cifar10valid_valid", "cifar10-valid", "valid-accuracy"),
    ("cifar10valid_test", "cifar10-valid", "test-accuracy"),
    ("cifar10_test", "cifar10", "test-accuracy"),
    ("cifar100_valid", "cifar100", "valid-accuracy"),
    ("cifar100_test", "cifar100", "test-accuracy"),
    ("imagenet16_120_valid", "ImageNet16-120", "valid-accuracy"),
    ("imagenet16_120_test", "ImageNet16-120", "test-accuracy"),
)


# --------------------------------------------------------------------------- #
# The table
# --------------------------------------------------------------------------- #


@dataclass
class Benchmark:
    """Per-architecture ground truth: ``columns[target][i]`` belongs to ``archs[i]``."""

    name: str
    space: str
    archs: list[str]
    columns: dict[str, np.ndarray]
    source: str
    # The target to use when none is named (checked first by default_target).
    preferred_target: str | None = None
    _row_of: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.archs)
        for target, values in list(self.columns.items()):
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (n,):
                raise DataError(
                    f"{self.name}: column {target!r} has shape {values.shape}, expected ({n},) to match the archs"
                )
            self.columns[target] = values

    def __len__(self) -> int:
        return len(self.archs)

    def targets(self) -> list[str]:
        """Names of the numeric target columns, in table order."""
        return list(self.columns)

    def accuracy(self, target: str) -> np.ndarray:
        """The whole column ``target`` (float64, aligned with ``archs``)."""
        try:
            return self.columns[target]
        except KeyError:
            raise DataError(
                f"{self.name}: unknown target {target!r}; available: {', '.join(self.targets()) or '(none)'}"
            ) from None

    def lookup(self, arch_strs, target: str) -> np.ndarray:
        """Values of ``target`` for the given archs, in the given order.

        Official arch strings are looked up directly; anything else that
        ``nb201.parse_arch`` accepts (NASLib tuple text, index) is canonicalised
        first.
        """
        column = self.accuracy(target)
        rows = [self._row(a) for a in arch_strs]
        return column[np.asarray(rows, dtype=np.intp)]

    def _row(self, arch) -> int:
        if self._row_of is None:
            self._row_of = {a: i for i, a in enumerate(self.archs)}
        if isinstance(arch, str) and arch in self._row_of:
            return self._row_of[arch]
        if self.space == "nb201":
            canonical = nb201.format_arch(nb201.parse_arch(arch))  # ArchError if malformed
        else:
            from .spaces import get_space

            canonical = get_space(self.space).canonical(arch)
        try:
            return self._row_of[canonical]
        except KeyError:
            raise DataError(
                f"{self.name}: arch {canonical} is not in the table ({len(self)} archs)"
            ) from None


def default_target(bench: Benchmark) -> str:
    """The target to score against when the user names none."""
    targets = bench.targets()
    if bench.preferred_target in targets:
        return bench.preferred_target
    preferred = DEFAULT_TARGETS.get(bench.name)
    if preferred in targets:
        return preferred
    for name in DEFAULT_TARGET_PREFERENCE:
        if name in targets:
            return name
    if len(targets) == 1:
        return targets[0]
    raise DataError(
        f"{bench.name}: no default target; choose one of: {', '.join(targets) or '(none)'}"
    )


def load_benchmark(spec: str) -> Benchmark:
    """Load ground truth from ``"analog-nasbench"``, a path (CSV, NATS-Bench, NB201 .pth, NDS or
    TNB101 .json), ``nds:PATH[:first=N][:space=NAME]`` or ``tnb101:PATH[:space=..][:task=..]``."""
    spec = str(spec)
    if spec == ANALOG_SPEC:
        return load_analog_nasbench()
    if spec.startswith(NDS_PREFIX):
        path, opts = _split_spec_options(spec, NDS_PREFIX, ("first", "space"))
        return load_nds(path, first=_first_option(spec, opts.get("first")), space=opts.get("space"))
    if spec.startswith(TNB101_PREFIX):
        path, opts = _split_spec_options(spec, TNB101_PREFIX, ("space", "task"))
        return load_tnb101(path, space=opts.get("space"), task=opts.get("task"))
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"benchmark {spec!r} not found; give {ANALOG_SPEC!r}, an NB201 CSV/CSV.GZ path, "
            "a NATS-Bench topology directory/.pickle.pbz2, an NB201 .pth, nds:PATH or tnb101:PATH"
        )
    name = path.name.lower()
    if path.is_dir() or name.endswith((".pbz2", ".pickle", ".pth")):
        return load_nats(path)
    if name.endswith((".json", ".json.gz")):
        return _load_json_benchmark(path)
    if name.endswith((".csv", ".csv.gz", ".gz", ".tsv")):
        return load_csv(path)
    raise DataError(
        f"{path}: unknown benchmark format; expected .csv, .csv.gz, a NATS-Bench directory/.pickle.pbz2, "
        "an NB201 .pth, an NDS sweep .json (nds:PATH) or a TransNAS-Bench-101 file (tnb101:PATH)"
    )


# --------------------------------------------------------------------------- #
# CSV tables
# --------------------------------------------------------------------------- #


def load_csv(path) -> Benchmark:
    """Read an NB201-format CSV (optionally gzip-compressed).

    Rows are kept in file order.  Arch strings are canonicalised, so a table
    with only ``naslib_ops`` works too.  Non-numeric columns are ignored.
    """
    path = Path(path)
    header, rows = _read_csv_rows(path)
    arch_col = _arch_column(path, header)
    archs = _csv_archs(path, header.index(arch_col), rows)
    _check_unique(path, archs)
    columns = {}
    for j, col in enumerate(header):
        if col in ID_COLUMNS or not col:
            continue
        values = _numeric_column([row[j] for row in rows])
        if values is not None:
            columns[col] = values
    source = f"CSV {path} ({len(archs)} rows, archs from column {arch_col!r})"
    return Benchmark(name=str(path), space="nb201", archs=archs, columns=columns, source=source)


def _read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read benchmark table ({e.strerror or e})") from None
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the suffix says
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip file ({e})") from None
    elif path.name.lower().endswith(".gz"):
        raise DataError(f"{path}: corrupt gzip file (no gzip header)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text CSV (corrupt or binary file?)") from None
    dialect = "excel-tab" if path.name.lower().endswith((".tsv", ".tsv.gz")) else "excel"
    try:
        table = list(csv.reader(io.StringIO(text), dialect=dialect))
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV ({e})") from None
    table = [row for row in table if row]  # tolerate blank lines (e.g. trailing)
    if not table:
        raise DataError(f"{path}: empty CSV file")
    header = [h.strip() for h in table[0]]
    rows = table[1:]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise DataError(
                f"{path}: row {i + 2} has {len(row)} fields, header has {len(header)} (truncated or corrupt file?)"
            )
    if not rows:
        raise DataError(f"{path}: CSV has a header but no rows")
    return header, rows


def _arch_column(path: Path, header: list[str]) -> str:
    for col in ("arch_str", "naslib_ops"):
        if col in header:
            return col
    raise DataError(
        f"{path}: no arch column; need 'arch_str' or 'naslib_ops', found: {', '.join(header)}"
    )


def _csv_archs(path: Path, col: int, rows: list[list[str]]) -> list[str]:
    archs = []
    for i, row in enumerate(rows):
        try:
            archs.append(nb201.format_arch(nb201.parse_arch(row[col].strip())))
        except ArchError as e:
            raise DataError(f"{path}: row {i + 2}: bad arch {row[col]!r} ({e})") from None
    return archs


def _check_unique(path: Path, archs: list[str]) -> None:
    """A repeated arch would make lookups ambiguous (e.g. a multi-dataset table)."""
    seen: dict[str, int] = {}
    for i, arch in enumerate(archs):
        if arch in seen:
            raise DataError(
                f"{path}: arch {arch} appears in rows {seen[arch] + 2} and {i + 2}; "
                "keep one row per arch (e.g. filter a multi-dataset table to one dataset)"
            )
        seen[arch] = i


def _numeric_column(cells: list[str]) -> np.ndarray | None:
    """Float64 values, empty cells as NaN; None if any cell is not a number."""
    values = np.empty(len(cells), dtype=np.float64)
    any_number = False
    for i, cell in enumerate(cells):
        cell = cell.strip()
        if cell == "":
            values[i] = math.nan
            continue
        try:
            values[i] = float(cell)
        except ValueError:
            return None
        any_number = True
    return values if any_number else None


# --------------------------------------------------------------------------- #
# analog-nasbench (embedded default)
# --------------------------------------------------------------------------- #


class _AnbRecord:
    """Stand-in for analognasbench's plain classes: holds pickled attribute state only."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise DataError(f"analog-nasbench data file: unexpected object state of type {type(state).__name__}")
        self.__dict__.update(state)


class _AnbArchitecture(_AnbRecord):
    """Stand-in for ``analognasbench.data.Architecture``."""


class _AnbDriftMeasurement(_AnbRecord):
    """Stand-in for ``analognasbench.data.DriftMeasurement`` (value ± uncertainty)."""


class _AnalogUnpickler(pickle.Unpickler):
    """Resolves only the two data classes of analog-nasbench; refuses everything else.

    ``find_class`` is the unpickler's only way to reach code (GLOBAL,
    STACK_GLOBAL, INST, OBJ and EXT* all go through it), so a hostile file
    cannot run anything.  The real file needs no builtins: its dict, tuples,
    ints and floats are pickle opcodes of their own.
    """

    ALLOWED = {
        ("analognasbench.data", "Architecture"): _AnbArchitecture,
        ("analognasbench.data", "DriftMeasurement"): _AnbDriftMeasurement,
    }

    def __init__(self, file, path):
        super().__init__(file)
        self._path = path

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._path}: refusing to unpickle {module}.{name}; only "
                "analognasbench.data.Architecture and DriftMeasurement are allowed"
            ) from None

    def persistent_load(self, pid):
        raise DataError(f"{self._path}: refusing a persistent reference in the pickle")


def analog_data_path() -> Path:
    """Path of ``analognasbench/data.anb`` in the installed wheel, without importing it."""
    try:
        files = importlib.metadata.files(ANALOG_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        # The wheel also installs a copy outside site-packages ("../../../analog-nasbench/");
        # the one inside the package directory is the one its own code reads.
        if tuple(f.parts[-2:]) == ("analognasbench", "data.anb"):
            path = Path(f.locate())
            if path.is_file():
                return path
    spec = importlib.util.find_spec("analognasbench")  # finds, does not import, a top-level package
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            path = Path(location) / "data.anb"
            if path.is_file():
                return path
    raise DataError(f"analog-nasbench is not installed (needed for the default ground truth); run: {ANALOG_INSTALL_HINT}")


def _analog_version() -> str:
    try:
        return importlib.metadata.version(ANALOG_DIST)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def read_analog_pickle(path) -> dict:
    """The data file as ``{naslib 6-tuple: _AnbArchitecture}``, loaded safely."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = _AnalogUnpickler(f, path).load()
    except DataError:
        raise
    except OSError as e:
        raise DataError(f"{path}: cannot read analog-nasbench data ({e.strerror or e})") from None
    except Exception as e:  # UnpicklingError, EOFError, ValueError... : a damaged file
        raise DataError(f"{path}: corrupt analog-nasbench data file ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of architectures, got {type(data).__name__}")
    return data


def load_analog_nasbench(path=None) -> Benchmark:
    """The embedded default benchmark, rows ordered by NB201 index."""
    path = Path(path) if path is not None else analog_data_path()
    data = read_analog_pickle(path)
    targets = ANALOG_ACCURACY_ATTRS + ANALOG_DRIFT_ATTRS
    rows = []
    for key, record in data.items():
        ops = _analog_ops(path, key)
        values = [_analog_value(path, key, record, attr) for attr in targets]
        rows.append((nb201.arch_to_index(ops), nb201.format_arch(ops), values))
    rows.sort(key=lambda r: r[0])
    indices = [r[0] for r in rows]
    if len(set(indices)) != len(indices):
        raise DataError(f"{path}: two entries map to the same NB201 architecture")
    table = np.array([r[2] for r in rows], dtype=np.float64).reshape(len(rows), len(targets))
    columns = {t: table[:, j].copy() for j, t in enumerate(targets)}
    source = (
        f"{ANALOG_DIST} {_analog_version()} ({path}; {len(rows)} archs; independent CIFAR-10 "
        "retraining of the NB201 space, NASLib tuple encoding)"
    )
    return Benchmark(name=ANALOG_SPEC, space="nb201", archs=[r[1] for r in rows], columns=columns, source=source)


def _analog_ops(path: Path, key) -> tuple[str, ...]:
    if not (isinstance(key, tuple) and len(key) == 6 and all(type(v) is int for v in key)):
        raise DataError(f"{path}: unexpected key {key!r}; expected a NASLib 6-tuple of ints")
    try:
        return nb201.from_naslib(key)
    except ArchError as e:
        raise DataError(f"{path}: key {key!r} is not an NB201 cell ({e})") from None


def _analog_value(path: Path, key, record, attr: str) -> float:
    if not isinstance(record, _AnbArchitecture):
        raise DataError(f"{path}: entry {key!r} is a {type(record).__name__}, expected Architecture")
    try:
        value = getattr(record, attr)
    except AttributeError:
        raise DataError(f"{path}: entry {key!r} has no {attr!r}") from None
    if isinstance(value, _AnbDriftMeasurement):  # keep the value, drop the ± uncertainty
        value = getattr(value, "value", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{path}: entry {key!r} field {attr!r} is not a number ({value!r})")
    return float(value)


# --------------------------------------------------------------------------- #
# NATS-Bench / NB201 official APIs
# --------------------------------------------------------------------------- #


def _create_nats_api(path: Path):
    """Open the official API for ``path`` (NATS-Bench dir/.pbz2, or NB201 .pth)."""
    if path.name.lower().endswith(".pth"):
        try:
            from nas_201_api import NASBench201API  # optional
        except ImportError:
            raise DataError(
                f"{path}: reading an NB201 .pth needs the nas_201_api package (pip install nas-bench-201)"
            ) from None
        return NASBench201API(str(path), verbose=False)
    try:
        from nats_bench import create  # optional
    except ImportError:
        raise DataError(f"{path}: reading NATS-Bench files needs the nats_bench package (pip install nats_bench)") from None
    # fast_mode reads the per-arch files of an unpacked "-simple" directory lazily;
    # a single .pickle.pbz2 archive must be opened with fast_mode=False.
    return create(str(path), "tss", fast_mode=path.is_dir(), verbose=False)


def load_nats(path, api=None) -> Benchmark:
    """Seed-averaged 200-epoch accuracies for every arch of the topology space.

    ``api`` needs only ``__len__``, ``arch(i)`` and
    ``get_more_info(i, dataset, hp='200', is_random=False)``; it is created from
    ``path`` when not given (tests pass a small fake).  A (dataset, key) pair
    missing for an arch gives NaN; a target missing for every arch is dropped.
    """
    path = Path(path)
    if api is None:
        if not path.exists():
            raise DataError(f"{path}: NATS-Bench/NB201 benchmark path not found")
        try:
            api = _create_nats_api(path)
        except DataError:
            raise
        except Exception as e:  # the official loaders raise ValueError/AssertionError/OSError
            raise DataError(f"{path}: cannot open with the official API ({type(e).__name__}: {e})") from None
    n = len(api)
    archs = []
    columns = {t: np.full(n, math.nan) for t, _, _ in NATS_TARGETS}
    datasets = sorted({d for _, d, _ in NATS_TARGETS})
    for i in range(n):
        archs.append(_nats_arch(path, api, i))
        infos = {d: _nats_info(path, api, i, d) for d in datasets}
        for target, dataset, key in NATS_TARGETS:
            value = infos[dataset].get(key)
            if value is not None:
                columns[target][i] = float(value)
    columns = {t: v for t, v in columns.items() if not np.isnan(v).all()}
    if not columns:
        raise DataError(f"{path}: the API returned no 200-epoch accuracies for any dataset")
    _check_unique(path, archs)
    source = f"NATS-Bench/NB201 API on {path} ({n} archs; hp=200, mean over seeds)"
    return Benchmark(name=str(path), space="nb201", archs=archs, columns=columns, source=source)


def _nats_arch(path: Path, api, i: int) -> str:
    text = api.arch(i)
    text = text if isinstance(text, str) else getattr(text, "tostr", lambda: str(text))()
    try:
        return nb201.format_arch(nb201.parse_arch(text))
    except ArchError as e:
        raise DataError(f"{path}: arch {i} {text!r} is not an NB201 cell ({e})") from None


def _nats_info(path: Path, api, i: int, dataset: str) -> dict:
    try:
        info = api.get_more_info(i, dataset, hp="200", is_random=False)
    except (KeyError, ValueError):  # no record of this dataset for this arch
        return {}
    return info if isinstance(info, dict) else {}


# --------------------------------------------------------------------------- #
# Spec options and JSON files shared by the NDS / TransNAS-Bench-101 loaders
# --------------------------------------------------------------------------- #

NDS_PREFIX = "nds:"
TNB101_PREFIX = "tnb101:"


def _split_spec_options(spec: str, prefix: str, allowed: tuple[str, ...]) -> tuple[str, dict]:
    """``"nds:PATH:first=4000:space=nds_darts"`` -> ``("PATH", {"first": "4000", "space": "nds_darts"})``.

    Options are ``key=value`` segments at the end; the path is everything before
    them, so a path may itself contain ':' as long as no segment looks like an option.
    """
    parts = spec[len(prefix):].split(":")
    opts: dict[str, str] = {}
    while len(parts) > 1 and "=" in parts[-1]:
        key, _, value = parts[-1].partition("=")
        key = key.strip()
        if key not in allowed:
            raise DataError(f"benchmark {spec!r}: unknown option {key!r}; {prefix.rstrip(':')} takes "
                            + ", ".join(f"{k}=..." for k in allowed))
        if key in opts:
            raise DataError(f"benchmark {spec!r}: option {key!r} given twice")
        opts[key] = value.strip()
        parts.pop()
    path = ":".join(parts).strip()
    if not path:
        raise DataError(f"benchmark {spec!r}: no path after {prefix!r}")
    return path, opts


def _first_option(spec: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise DataError(f"benchmark {spec!r}: first= needs a positive integer, got {text!r}")
    return int(text)


def _read_json(path: Path):
    """Parse a JSON (or gzip-compressed JSON) benchmark file, with one-line errors."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read benchmark file ({e.strerror or e})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip file ({e})") from None
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not valid JSON ({type(e).__name__}: {str(e)[:120]})") from None


def _load_json_benchmark(path: Path) -> Benchmark:
    """A ``.json`` path: an NDS sweep or a NAS-Bench-Suite-Zero style TNB101 file, told apart by content."""
    data = _read_json(path)
    if _looks_like_nds(data):
        return load_nds(path, data=data)
    if _looks_like_tnb101_json(data):
        return load_tnb101(path, data=data)
    raise DataError(
        f"{path}: unknown benchmark format; a .json must be an NDS sweep (a list of job summaries with "
        "'net', or a dict with 'top'/'mid') or a TransNAS-Bench-101 {task: {arch: {...}}} file"
    )


class _Mean:
    """Per-arch running means of several columns (NaN-aware), in first-seen arch order."""

    def __init__(self, columns: tuple[str, ...]):
        self.columns = columns
        self.archs: list[str] = []
        self.count: dict[str, int] = {}
        self.sums: dict[str, dict[str, list[float]]] = {c: {} for c in columns}

    def add(self, arch: str, values: dict[str, float]) -> None:
        if arch not in self.count:
            self.archs.append(arch)
            self.count[arch] = 0
            for c in self.columns:
                self.sums[c][arch] = [0.0, 0]
        self.count[arch] += 1
        for c in self.columns:
            v = values.get(c, math.nan)
            if v is not None and math.isfinite(v):
                acc = self.sums[c][arch]
                acc[0] += v
                acc[1] += 1

    def table(self) -> dict[str, np.ndarray]:
        out = {}
        for c in self.columns:
            col = np.array([s / n if n else math.nan for s, n in (self.sums[c][a] for a in self.archs)])
            out[c] = col
        return out

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.count.values())


def _number(value) -> float | None:
    """A finite-or-not float from a JSON number; None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


# --------------------------------------------------------------------------- #
# NDS sweep summaries
# --------------------------------------------------------------------------- #

#: NDS targets: test top-1 accuracy in %, from the stored error.
NDS_TARGETS = ("final", "best")
NDS_EXTRA_COLUMNS = ("params", "flops")


def _looks_like_nds(data) -> bool:
    if isinstance(data, dict):
        return any(isinstance(data.get(k), list) for k in ("top", "mid"))
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "net" in data[0]


def _nds_entries(path: Path, data) -> list:
    """The list of job summaries; ``{"top": [...], "mid": [...]}`` is read as top + mid (NASWOT, EZNAS)."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and any(k in data for k in ("top", "mid")):
        entries = []
        for k in ("top", "mid"):
            part = data.get(k, [])
            if not isinstance(part, list):
                raise DataError(f"{path}: NDS key {k!r} must hold a list of job summaries, got {type(part).__name__}")
            entries.extend(part)
        return entries
    raise DataError(f"{path}: not an NDS sweep file: expected a list of job summaries or a dict with 'top'/'mid'")


def _nds_space(path: Path, entries: list, space: str | None) -> str:
    """The ``nds_*`` space of a sweep: from ``space``, else the file name, else the genotype ops."""
    from .spaces import nds

    names = ", ".join(sorted(nds.space_name(f, i) for f in nds.FAMILIES for i in (False, True)))
    if space:
        text = space.strip()
        try:
            if text.startswith("nds_"):
                nds.parse_space_name(text)
                return text
            guess = nds.family_of_file(text)
            if guess is None and text.lower() in nds.FAMILIES:
                guess = (text.lower(), False)
        except GpproxyError:
            guess = None
        if guess is None:
            raise DataError(f"{path}: unknown NDS space {space!r}; use one of: {names}")
        return nds.space_name(*guess)
    guess = nds.family_of_file(path.name)
    if guess is not None:
        return nds.space_name(*guess)
    nets = [e.get("net") for e in entries[:500] if isinstance(e, dict) and isinstance(e.get("net"), dict)]
    if nets and all(nds.is_cell_net(n) for n in nets):
        used = set()
        for net in nets:
            genotype = net.get("genotype")
            if isinstance(genotype, dict):
                for kind in ("normal", "reduce"):
                    for pair in genotype.get(kind) or []:
                        if isinstance(pair, (list, tuple)) and pair:
                            used.add(pair[0])
        fits = [f for f in nds.CELL_FAMILIES if used <= set(nds.FAMILY_OPS[f])]
        if len(fits) == 1:
            return nds.space_name(fits[0])
    raise DataError(f"{path}: cannot tell the NDS space from the file name; add :space=NAME "
                    f"(e.g. nds:{path}:space=nds_darts); one of: {names}")


def load_nds(path, first: int | None = None, space: str | None = None, data=None) -> Benchmark:
    """An NDS sweep summary as a Benchmark.

    * ``path``: ``<Space>.json`` from the NDS ``data.zip`` (plain or gzip).
      The top level is a list of job summaries, or ``{"top": [...], "mid": [...]}``
      (read as top + mid, the order NASWOT and EZNAS use).
    * ``first``: keep only the first N entries (EZNAS scored the first 4,000).
    * ``space``: the ``nds_*`` space name (or a sweep file name such as
      ``DARTS_lr-wd_in``); by default taken from the file name.

    Targets (test top-1 accuracy in %, from the stored errors):
    ``final`` = 100 - ``test_ep_top1[-1]`` (the last epoch; EZNAS, NASWOT and FLAN),
    ``best`` = 100 - ``min_test_top1`` (the NDS paper notebooks, aw_nas).
    The entries' own ``params`` and ``flops`` are kept as columns too.
    Entries whose nets share one canonical arch (e.g. the same net at several
    learning rates in the ``_lr-wd`` sweeps) are merged into one row holding the
    mean of each column, so every arch appears once.
    """
    from .spaces import get_space

    path = Path(path).expanduser()
    if data is None:
        if not path.exists():
            raise DataError(f"{path}: NDS sweep file not found")
        data = _read_json(path)
    entries = _nds_entries(path, data)
    n_all = len(entries)
    if first is not None:
        entries = entries[:first]
    if not entries:
        raise DataError(f"{path}: the NDS sweep holds no job summaries")
    space_name = _nds_space(path, entries, space)
    canon = get_space(space_name).canonical
    table = _Mean(NDS_TARGETS + NDS_EXTRA_COLUMNS)
    for i, entry in enumerate(entries):
        where = f"{path}: entry {i}"
        if isinstance(entry, dict) and "job_id" in entry:
            where += f" (job_id {entry['job_id']})"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected a job summary object, got {type(entry).__name__}")
        for key in ("net", "test_ep_top1"):
            if key not in entry:
                raise DataError(f"{where}: missing key {key!r}")
        curve = entry["test_ep_top1"]
        if not isinstance(curve, list) or not curve or _number(curve[-1]) is None:
            raise DataError(f"{where}: 'test_ep_top1' must be a non-empty list of numbers (test error in %)")
        values = {"final": 100.0 - _number(curve[-1])}
        if "min_test_top1" in entry:
            best = _number(entry["min_test_top1"])
            if best is None:
                raise DataError(f"{where}: 'min_test_top1' is not a number ({entry['min_test_top1']!r})")
            values["best"] = 100.0 - best
        for key in NDS_EXTRA_COLUMNS:
            value = _number(entry.get(key))
            if value is not None:
                values[key] = value
        try:
            arch = canon(entry["net"])
        except ArchError as e:
            raise DataError(f"{where}: bad 'net' config for {space_name} ({e})") from None
        table.add(arch, values)
    columns = {k: v for k, v in table.table().items() if k == "final" or not np.isnan(v).all()}
    dups = table.duplicates()
    source = (
        f"NDS sweep {path} ({len(entries)} of {n_all} entries"
        + (f", first={first}" if first is not None else "")
        + f"; {len(table.archs)} distinct nets"
        + (f", {dups} repeated entries averaged" if dups else "")
        + f"; space {space_name}; final = 100 - test_ep_top1[-1], best = 100 - min_test_top1, test top-1 %)"
    )
    return Benchmark(name=str(path), space=space_name, archs=table.archs, columns=columns, source=source,
                     preferred_target="final")


# --------------------------------------------------------------------------- #
# TransNAS-Bench-101
# --------------------------------------------------------------------------- #

TNB101_TASKS = ("class_scene", "class_object", "room_layout", "jigsaw", "segmentsemantic", "normal", "autoencoder")
# The metric NAS-Bench-Suite-Zero (NASLib) reads as each task's "accuracy" (best epoch).
TNB101_MAIN_METRIC = {
    "class_scene": "valid_top1", "class_object": "valid_top1", "jigsaw": "valid_top1",
    "room_layout": "valid_neg_loss", "segmentsemantic": "valid_acc",
    "normal": "valid_ssim", "autoencoder": "valid_ssim",
}


def _looks_like_tnb101_json(data) -> bool:
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
        data = _read_json(path)
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
    from .spaces import tnb101

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
                vals = [float(v) for v in curve if _number(v) is not None]
                if vals:
                    column(f"{t}.{metric}")[i] = max(vals)
                    column(f"{t}.{metric}.final")[i] = vals[-1]
            info = rec.get("model_info") or {}
            for name in info_names:
                value = _number(info.get(name)) if isinstance(info, dict) else None
                if value is not None:
                    column(f"{t}.{name}")[i] = value
    _check_unique(path, archs)
    if not columns:
        raise DataError(f"{path}: no metrics for tasks {', '.join(tasks)} in the {which} space")
    source = (f"TransNAS-Bench-101 API file {path} ({which} space, {n} archs; <task>.<metric> = best epoch, "
              "<task>.<metric>.final = last epoch)")
    return Benchmark(name=str(path), space=f"tnb101_{which}", archs=archs, columns=columns, source=source,
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
    from .spaces import tnb101

    if not _looks_like_tnb101_json(data):
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
                number = _number(value)
                if number is None:
                    if key == "val_accuracy":
                        raise DataError(f"{where}: 'val_accuracy' is not a number ({value!r})")
                    continue
                cells.setdefault(f"{t}.{key}", {})[row] = number
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
                     preferred_target=_tnb101_preferred(tasks, "val_accuracy", columns))
