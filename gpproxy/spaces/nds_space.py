"""The NDS design spaces behind the protocol: networks and encodings in
:mod:`gpproxy.spaces.nds`; here the spaces, their datasets and the loader
of NDS sweep summaries (``nds:PATH[:first=N][:space=NAME]`` or an NDS ``.json``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArchError, DataError, GpproxyError
from . import nds
from ._common import legacy_normalisation
from .base import Dataset, Space
from .table import Benchmark, Mean, number, read_json

NDS_PREFIX = "nds:"

# One dataset per space; `final` = 100 - test_ep_top1[-1] (EZNAS, NASWOT), `best` also loaded.
# The ImageNet nets see CIFAR-10-normalised images: what caches were built with
# before datasets carried their normalisation (kept so cached numbers do not move).
NDS_DATASETS = {
    "cifar10": Dataset("cifar10", "cifar10", "final", 10, 32,
                       "CIFAR-10 test top-1 % after the last epoch, 100 - test_ep_top1[-1]",
                       images="32x32 CIFAR-10 images", normalisation="cifar10"),
    "imagenet": Dataset("imagenet", "imagenet", "final", 1000, 224,
                        "ImageNet test top-1 % after the last epoch, 100 - test_ep_top1[-1]",
                        images="224x224 ImageNet images", normalisation="cifar10"),
}


class NDSSpace(Space):
    """``nds_<family>`` (CIFAR-10 nets) or ``nds_<family>_in`` (ImageNet nets)."""

    def __init__(self, family: str, imagenet: bool):
        self.family, self.imagenet = family, imagenet
        self.name = nds.space_name(family, imagenet)
        if family in nds.ANYNET_FAMILIES:
            self.init_text = "pycls' init_weights, as NDS trained its AnyNets"

    def canonical(self, arch) -> str:
        return nds.canonical(arch, self.family)

    def key(self, canonical: str) -> str:
        return nds.arch_key(canonical, self.family)

    def build(self, canonical: str, num_classes: int):
        return nds.build_network(canonical, num_classes, family=self.family, imagenet=self.imagenet)

    def archs(self) -> list[str]:
        raise GpproxyError(
            f"{self.name} is not enumerable: NDS sampled its networks from an open-ended design space; "
            "take the archs from an NDS sweep file (benchmark 'nds:PATH')"
        )

    def normalisation_for(self, num_classes: int) -> str:
        return legacy_normalisation(num_classes)

    def datasets(self) -> dict:
        key = "imagenet" if self.imagenet else "cifar10"
        return {key: NDS_DATASETS[key]}

    def describe(self, arch, num_classes: int) -> dict:
        return nds.describe(arch, num_classes, family=self.family, imagenet=self.imagenet)


def load_nds_spec(spec: str) -> Benchmark:
    """``nds:PATH[:first=N][:space=NAME]``."""
    from .table import first_option, split_spec_options

    path, opts = split_spec_options(spec, NDS_PREFIX, ("first", "space"))
    return load_nds(path, first=first_option(spec, opts.get("first")), space=opts.get("space"))


# --------------------------------------------------------------------------- #
# NDS sweep summaries
# --------------------------------------------------------------------------- #

#: NDS targets: test top-1 accuracy in %, from the stored error.
NDS_TARGETS = ("final", "best")
NDS_EXTRA_COLUMNS = ("params", "flops")


def looks_like_nds(data) -> bool:
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

    path = Path(path).expanduser()
    if data is None:
        if not path.exists():
            raise DataError(f"{path}: NDS sweep file not found")
        data = read_json(path)
    entries = _nds_entries(path, data)
    n_all = len(entries)
    if first is not None:
        entries = entries[:first]
    if not entries:
        raise DataError(f"{path}: the NDS sweep holds no job summaries")
    space_name = _nds_space(path, entries, space)
    canon = NDSSpace(*nds.parse_space_name(space_name)).canonical
    table = Mean(NDS_TARGETS + NDS_EXTRA_COLUMNS)
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
        if not isinstance(curve, list) or not curve or number(curve[-1]) is None:
            raise DataError(f"{where}: 'test_ep_top1' must be a non-empty list of numbers (test error in %)")
        values = {"final": 100.0 - number(curve[-1])}
        if "min_test_top1" in entry:
            best = number(entry["min_test_top1"])
            if best is None:
                raise DataError(f"{where}: 'min_test_top1' is not a number ({entry['min_test_top1']!r})")
            values["best"] = 100.0 - best
        for key in NDS_EXTRA_COLUMNS:
            value = number(entry.get(key))
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
                     canonical=canon,
                     preferred_target="final")


