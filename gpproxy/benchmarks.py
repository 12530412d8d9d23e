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
"""
from __future__ import annotations

import csv
import gzip
import importlib.metadata
import importlib.util
import io
import math
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ArchError, DataError
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
        canonical = nb201.format_arch(nb201.parse_arch(arch))  # ArchError if malformed
        try:
            return self._row_of[canonical]
        except KeyError:
            raise DataError(
                f"{self.name}: arch {canonical} is not in the table ({len(self)} archs)"
            ) from None


def default_target(bench: Benchmark) -> str:
    """The target to score against when the user names none."""
    targets = bench.targets()
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
    """Load ground truth from ``"analog-nasbench"`` or a path (CSV, NATS-Bench, NB201 .pth)."""
    spec = str(spec)
    if spec == ANALOG_SPEC:
        return load_analog_nasbench()
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"benchmark {spec!r} not found; give {ANALOG_SPEC!r}, an NB201 CSV/CSV.GZ path, "
            "a NATS-Bench topology directory/.pickle.pbz2, or an NB201 .pth"
        )
    name = path.name.lower()
    if path.is_dir() or name.endswith((".pbz2", ".pickle", ".pth")):
        return load_nats(path)
    if name.endswith((".csv", ".csv.gz", ".gz", ".tsv")):
        return load_csv(path)
    raise DataError(
        f"{path}: unknown benchmark format; expected .csv, .csv.gz, a NATS-Bench directory/.pickle.pbz2 or an NB201 .pth"
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
