"""Ground truth: ``load_benchmark(spec, space=None)`` picks the loader of a spec.

A :class:`Benchmark` is a list of canonical arch strings of one space plus one
float64 column per target (accuracy in percent, or any other per-arch number).
The formats live with their spaces (``gpproxy.spaces.*_space``); the generic
ones, with the table type, in :mod:`gpproxy.spaces.table`:

``"analog-nasbench"``
    NB201's embedded default (the ``analog-nasbench`` wheel's data file).
a CSV / CSV.GZ path
    An ``arch`` column (or one of the space's ``arch_columns``: NB201
    ``arch_str`` / ``naslib_ops``, DARTS ``genotype`` / ``compact``) and numeric
    target columns. Without ``space`` the arch column names a built-in space.
a JSON ``{arch: {column: value}}`` path (with ``space``)
    The same table keyed by arch.
a NATS-Bench topology archive (directory or ``.pickle.pbz2``) or an NB201 ``.pth``
    Read through the optional ``nats_bench`` (or ``nas_201_api``) package.
``nds:PATH[:first=N][:space=NAME]`` (or a ``.json`` path that holds an NDS sweep)
    An NDS sweep summary; archs are the ``nds_*`` spaces' canonical JSON strings.
``tnb101:PATH[:space=micro|macro][:task=NAME]`` (or a ``.json`` in the
NAS-Bench-Suite-Zero layout)
    TransNAS-Bench-101: the official API's ``.pth`` or a ``{task: {arch: {...}}}`` JSON.
"""
from __future__ import annotations

from pathlib import Path

from .errors import DataError
from .spaces.nb201_space import ANALOG_SPEC, analog_data_path, load_analog_nasbench, load_nats, read_analog_pickle
from .spaces.nds_space import NDS_PREFIX, load_nds, load_nds_spec, looks_like_nds
from .spaces import builtin_spaces, get_space
from .spaces import table
from .spaces.table import DEFAULT_TARGET_PREFERENCE, ID_COLUMNS, Benchmark, default_target, read_json
from .spaces.tnb101_space import TNB101_PREFIX, load_tnb101, load_tnb101_spec, looks_like_tnb101_json

__all__ = ["Benchmark", "default_target", "load_benchmark", "load_csv", "load_nats", "load_nds", "load_tnb101",
           "load_analog_nasbench", "read_analog_pickle", "analog_data_path", "ANALOG_SPEC", "ID_COLUMNS",
           "DEFAULT_TARGET_PREFERENCE"]


def names_a_table(spec) -> bool:
    """Whether ``spec`` can name a table without being a path on disk (the embedded
    default, or an ``nds:`` / ``tnb101:`` spec whose own loader checks its file)."""
    spec = str(spec)
    return spec == ANALOG_SPEC or spec.startswith((NDS_PREFIX, TNB101_PREFIX))


def load_benchmark(spec, space=None) -> Benchmark:
    """Load ground truth from ``"analog-nasbench"``, a path (CSV, JSON, NATS-Bench, NB201 .pth, NDS or
    TNB101 .json), ``nds:PATH[:first=N][:space=NAME]`` or ``tnb101:PATH[:space=..][:task=..]``.

    ``space`` (a name or a Space) says whose archs a generic CSV / JSON table
    holds; the other formats know their space.
    """
    spec = str(spec)
    if spec == ANALOG_SPEC:
        return load_analog_nasbench()
    if spec.startswith(NDS_PREFIX):
        return load_nds_spec(spec)
    if spec.startswith(TNB101_PREFIX):
        return load_tnb101_spec(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"benchmark {spec!r} not found; give {ANALOG_SPEC!r}, a CSV/CSV.GZ or JSON path, "
            "a NATS-Bench topology directory/.pickle.pbz2, an NB201 .pth, nds:PATH or tnb101:PATH"
        )
    name = path.name.lower()
    if path.is_dir() or name.endswith((".pbz2", ".pickle", ".pth")):
        return load_nats(path)
    if name.endswith((".json", ".json.gz")):
        return _load_json_benchmark(path, space)
    if name.endswith((".csv", ".csv.gz", ".gz", ".tsv")):
        return load_csv(path, space)
    raise DataError(
        f"{path}: unknown benchmark format; expected .csv, .csv.gz, .json, a NATS-Bench directory/.pickle.pbz2, "
        "an NB201 .pth, an NDS sweep .json (nds:PATH) or a TransNAS-Bench-101 file (tnb101:PATH)"
    )


def _load_json_benchmark(path: Path, space) -> Benchmark:
    """A ``.json`` path: an NDS sweep, a NAS-Bench-Suite-Zero style TNB101 file, or an
    ``{arch: {column: value}}`` table of ``space``, told apart by content."""
    data = read_json(path)
    if looks_like_nds(data):
        return load_nds(path, data=data)
    if looks_like_tnb101_json(data):
        return load_tnb101(path, data=data)
    if space is not None:
        return table.load_json_table(path, data, _space(space))
    raise DataError(
        f"{path}: unknown benchmark format; a .json must be an NDS sweep (a list of job summaries with "
        "'net', or a dict with 'top'/'mid'), a TransNAS-Bench-101 {task: {arch: {...}}} file, or an "
        "{arch: {column: value}} table with its space named (--space / space = ...)"
    )


def load_csv(path, space=None) -> Benchmark:
    """A CSV / CSV.GZ table of ``space``'s archs (a name or a Space); without one,
    the built-in space whose arch column the header has (NB201, DARTS)."""
    return table.load_csv(path, _space(space), candidates=builtin_spaces())


def _space(space):
    return get_space(space) if isinstance(space, str) else space
