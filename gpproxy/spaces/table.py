"""Ground-truth tables: the :class:`Benchmark` type, the generic CSV / JSON
formats of any space, and the file helpers the space loaders share.

Generic formats (any space, built-in or a user's file):

a CSV / CSV.GZ / TSV
    One row per arch; the arch in one of the space's ``arch_columns``
    (``arch`` for a user space; ``arch_str`` / ``naslib_ops`` for NB201;
    ``genotype`` / ``compact`` for DARTS); every other all-numeric column
    is a target.
a JSON ``{arch: {column: value}}``
    The same table keyed by arch; numeric values become targets.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, GpproxyError

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


# --------------------------------------------------------------------------- #
# The table
# --------------------------------------------------------------------------- #


@dataclass
class Benchmark:
    """Per-architecture ground truth: ``columns[target][i]`` belongs to ``archs[i]``.

    ``space`` is the name ``gpproxy.spaces.get_space`` takes (a built-in name
    or a user space file's path).
    """

    name: str
    space: str
    archs: list[str]
    columns: dict[str, np.ndarray]
    source: str
    # The target to use when none is named (checked first by default_target).
    preferred_target: str | None = None
    # Columns that are not all numbers: name -> the first offending cell, for errors.
    text_columns: dict[str, str] = field(default_factory=dict)
    # Where each arch comes from in the file ("row 7"), for errors; None: by position.
    origins: list[str] | None = None
    # The space's canonical(), so lookups accept any spelling of an arch; set by the loader.
    canonical: object = field(default=None, repr=False, compare=False)
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
            if target in self.text_columns:
                raise DataError(f"{self.name}: target column {target!r} is not numeric "
                                f"({self.text_columns[target]})") from None
            raise DataError(
                f"{self.name}: unknown target {target!r}; available: {', '.join(self.targets()) or '(none)'}"
            ) from None

    def not_numeric(self) -> str:
        """'; not numeric: COLUMN (row N: 'CELL'), ...' naming columns that cannot be targets, or ''."""
        text = list(self.text_columns.items())[:3]
        return "; not numeric: " + ", ".join(f"{c} ({where})" for c, where in text) if text else ""

    def where(self, arch: str) -> str:
        """Where ``arch`` is in the file, for error messages (``"row 7 of t.csv"``)."""
        i = self._index().get(arch)
        if i is None:
            return f"not in {self.name}"
        return f"{self.origins[i] if self.origins else f'entry {i}'} of {self.name}"

    def lookup(self, arch_strs, target: str) -> np.ndarray:
        """Values of ``target`` for the given archs, in the given order.

        Canonical arch strings are looked up directly; anything else the
        space's ``canonical`` accepts (e.g. NASLib tuple text) is canonicalised first.
        """
        column = self.accuracy(target)
        rows = [self._row(a) for a in arch_strs]
        return column[np.asarray(rows, dtype=np.intp)]

    def _index(self) -> dict[str, int]:
        if self._row_of is None:
            self._row_of = {a: i for i, a in enumerate(self.archs)}
        return self._row_of

    def _row(self, arch) -> int:
        if isinstance(arch, str) and arch in self._index():
            return self._index()[arch]
        canonical = self.canonical(arch) if self.canonical else str(arch)  # ArchError if malformed
        try:
            return self._index()[canonical]
        except KeyError:
            raise DataError(
                f"{self.name}: arch {canonical} is not in the table ({len(self)} archs)"
            ) from None


def default_target(bench: Benchmark) -> str:
    """The target to score against when the user names none."""
    targets = bench.targets()
    if bench.preferred_target in targets:
        return bench.preferred_target
    for name in DEFAULT_TARGET_PREFERENCE:
        if name in targets:
            return name
    if len(targets) == 1:
        return targets[0]
    raise DataError(f"{bench.name}: no default target; choose one of: {', '.join(targets) or '(none)'}"
                    f"{bench.not_numeric()}")


# --------------------------------------------------------------------------- #
# Generic formats: CSV and JSON {arch: {column: value}} of any space
# --------------------------------------------------------------------------- #


def load_csv(path, space=None, candidates=()) -> Benchmark:
    """A CSV (optionally gzip-compressed) of the Space ``space``'s archs; without
    one, the first of ``candidates`` (built-in spaces) whose arch columns the header has.

    Rows are kept in file order. Arch strings are canonicalised through the
    space (a table with only NB201 ``naslib_ops`` works too). Non-numeric
    columns are not targets.
    """
    path = Path(path)
    header, rows = read_csv_rows(path)
    space = _csv_space(path, header, space, candidates)
    names = tuple(dict.fromkeys(space.arch_columns + ("arch",)))  # every space reads a generic `arch`
    arch_col = next((c for c in names if c in header), None)
    if arch_col is None:
        raise DataError(f"{path}: no arch column; a {space.name} table needs one of "
                        f"{', '.join(repr(c) for c in names)}, found: {', '.join(header)}")
    j_arch = header.index(arch_col)
    archs = []
    for i, row in enumerate(rows):
        try:
            archs.append(space.canonical(row[j_arch].strip()))
        except GpproxyError as e:
            raise DataError(f"{path}: row {i + 2}: bad arch {row[j_arch]!r} ({e})") from None
    if not space.average_repeats:
        check_unique(path, archs, first_row=2)
    skip = ID_COLUMNS | {arch_col}
    columns, text = {}, {}
    for j, col in enumerate(header):
        if col in skip or not col:
            continue
        cells = [row[j] for row in rows]
        values = numeric_column(cells)
        if values is not None:
            columns[col] = values
        else:
            text[col] = _first_text(cells, first_row=2)
    source = f"CSV {path} ({len(archs)} rows, archs from column {arch_col!r}"
    origins = [f"row {i + 2}" for i in range(len(archs))]
    if len(set(archs)) < len(archs):  # only with space.average_repeats
        table = Mean(tuple(columns))
        for i, arch in enumerate(archs):
            table.add(arch, {c: float(v[i]) for c, v in columns.items()})
        first_row = {}
        for i, arch in enumerate(archs):
            first_row.setdefault(arch, i)
        archs, columns = table.archs, table.table()
        origins = [origins[first_row[a]] for a in archs]
        source += f"; {table.duplicates()} repeated rows of an arch averaged"
    return Benchmark(name=str(path), space=space.name, archs=archs, columns=columns, source=source + ")",
                     preferred_target=_preferred(space, columns), text_columns=text, origins=origins,
                     canonical=space.canonical)


def _csv_space(path: Path, header: list[str], space, candidates):
    if space is not None:
        return space
    for candidate in candidates:
        if candidate.arch_columns != ("arch",) and any(c in header for c in candidate.arch_columns):
            return candidate
    known = "; ".join(f"{s.name}: " + " or ".join(repr(c) for c in s.arch_columns) for s in candidates)
    raise DataError(f"{path}: no arch column; need one of a built-in space's ({known}), or 'arch' with its "
                    f"space named (--space NAME_OR_FILE.py, or space = ... in the [[task]]); "
                    f"found: {', '.join(header)}")


def _preferred(space, columns) -> str | None:
    """The space's default dataset's column, when the table has it."""
    first = next(iter(space.datasets().values()), None)
    if first is None:
        return None
    return next((c for c in (first.target,) + first.alt_targets if c and c in columns), None)


def _first_text(cells: list[str], first_row: int) -> str:
    for i, cell in enumerate(cells):
        if cell.strip() and number_text(cell) is None:
            return f"row {i + first_row}: {cell.strip()[:40]!r}"
    return "no numbers"


def number_text(cell: str) -> float | None:
    try:
        return float(cell.strip())
    except ValueError:
        return None


def looks_like_arch_table(data) -> bool:
    """A JSON ``{arch: {column: value}}`` table."""
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict) for v in data.values())


def load_json_table(path, data, space) -> Benchmark:
    """A JSON ``{arch: {column: value, ...}}`` of the Space ``space``'s archs; numeric values become targets."""
    path = Path(path)
    if space is None:
        raise DataError(f"{path}: a JSON {{arch: {{column: value}}}} table needs its space named "
                        "(--space NAME_OR_FILE.py, or space = ... in the [[task]])")
    if not looks_like_arch_table(data):
        raise DataError(f"{path}: expected a JSON object {{arch: {{column: number}}}}")
    archs, cells, text = [], {}, {}
    for i, (raw, rec) in enumerate(data.items()):
        try:
            archs.append(space.canonical(raw))
        except GpproxyError as e:
            raise DataError(f"{path}: entry {i + 1}: bad arch {raw!r} ({e})") from None
        for col, value in rec.items():
            v = number(value)
            if v is None:
                text.setdefault(col, f"arch {raw!r}: {value!r}"[:80])
            else:
                cells.setdefault(col, {})[i] = v
    check_unique(path, archs, first_row=1, what="entries")
    columns = {}
    for col, values in cells.items():
        if col in text:
            continue
        c = np.full(len(archs), math.nan)
        for i, v in values.items():
            c[i] = v
        columns[col] = c
    source = f"JSON {path} ({len(archs)} archs)"
    return Benchmark(name=str(path), space=space.name, archs=archs, columns=columns, source=source,
                     preferred_target=_preferred(space, columns), text_columns=text,
                     origins=[f"entry {i + 1}" for i in range(len(archs))], canonical=space.canonical)


# --------------------------------------------------------------------------- #
# File helpers shared by the space loaders
# --------------------------------------------------------------------------- #

def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
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


def check_unique(path: Path, archs: list[str], first_row: int = 2, what: str = "rows") -> None:
    """A repeated arch would make lookups ambiguous (e.g. a multi-dataset table)."""
    seen: dict[str, int] = {}
    for i, arch in enumerate(archs):
        if arch in seen:
            raise DataError(
                f"{path}: arch {arch} appears in {what} {seen[arch] + first_row} and {i + first_row}; "
                "keep one row per arch (e.g. filter a multi-dataset table to one dataset)"
            )
        seen[arch] = i


MISSING_CELLS = frozenset({"", "na", "n/a", "#n/a", "null", "none", "-", "?"})  # spreadsheet "no value"


def numeric_column(cells: list[str]) -> np.ndarray | None:
    """Float64 values, empty or missing-value cells ("N/A", "NA", "null", "-", ...)
    as NaN (their rows are left out of a split, and said so); None if any other
    cell is not a number."""
    values = np.empty(len(cells), dtype=np.float64)
    any_number = False
    for i, cell in enumerate(cells):
        cell = cell.strip()
        if cell.lower() in MISSING_CELLS:
            values[i] = math.nan
            continue
        try:
            values[i] = float(cell)
        except ValueError:
            return None
        any_number = True
    return values if any_number else None



def split_spec_options(spec: str, prefix: str, allowed: tuple[str, ...]) -> tuple[str, dict]:
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


def first_option(spec: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise DataError(f"benchmark {spec!r}: first= needs a positive integer, got {text!r}")
    return int(text)


def read_json(path: Path):
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


class Mean:
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


def number(value) -> float | None:
    """A finite-or-not float from a JSON number; None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


