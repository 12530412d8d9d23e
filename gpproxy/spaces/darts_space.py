"""``darts``: the DARTS cell network as NAS-Bench-301 / NASLib build it.

C=32 channels, 8 cells (reductions at cells 2 and 5), no auxiliary head,
cell-op BatchNorms without affine parameters (NASLib's NB301 graph; verified
against NAS-Bench-Suite-Zero's params and FLOPs in tests/test_spaces_nds.py).
The cells come from :mod:`gpproxy.spaces.nds` (the ``darts`` vocabulary).

Accepted encodings: NB301's ``genotype`` text
``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)``,
NASLib's ``compact`` text ``[[(input, op_id) x 8], [(input, op_id) x 8]]``, or a
genotype dict. The canonical string is the genotype text in that exact form;
the key is ``darts-<16 hex of its sha1>``. Not enumerable (10^18 archs).
"""
from __future__ import annotations

from ..errors import ArchError, GpproxyError
from . import nds
from ._common import short_hash, show
from .base import Dataset, Space

WIDTH, DEPTH = 32, 8
NODES = 4

DATASETS = {
    "cifar10": Dataset("cifar10", "cifar10", "val_accuracy_surrogate", 10, 32,
                       "CIFAR-10 valid accuracy % predicted by the NB301 surrogate (NASLib's)",
                       images="32x32 CIFAR-10 images", normalisation="cifar10"),
}


def parse_genotype(arch) -> dict:
    """Any accepted encoding -> a checked genotype dict of the darts vocabulary."""
    if isinstance(arch, dict):
        genotype = nds._parse_genotype(arch.get("genotype", arch), "darts")
    elif isinstance(arch, str) and arch.strip().startswith("Genotype"):
        genotype = nds.darts_genotype_from_text(arch)
    elif isinstance(arch, (str, list, tuple)):
        genotype = nds.darts_genotype_from_naslib_compact(arch)
    else:
        raise ArchError(f"not a DARTS arch (Genotype text, NASLib compact text or genotype dict): {show(arch)}")
    for kind in ("normal", "reduce"):
        if len(genotype[kind]) != 2 * NODES:
            raise ArchError(f"a DARTS (NB301) cell has {2 * NODES} [op, input] pairs, {kind} has "
                            f"{len(genotype[kind])}: {show(arch)}")
    return genotype


def format_genotype(genotype: dict) -> str:
    """DARTS' own ``Genotype(...)`` text, as NB301's CSV writes it."""
    cells = {k: [(str(op), int(src)) for op, src in genotype[k]] for k in ("normal", "reduce")}
    concat = {k: [int(c) for c in genotype[f"{k}_concat"]] for k in ("normal", "reduce")}
    return (f"Genotype(normal={cells['normal']!r}, normal_concat={concat['normal']!r}, "
            f"reduce={cells['reduce']!r}, reduce_concat={concat['reduce']!r})")


class DartsSpace(Space):
    name = "darts"
    arch_columns = ("genotype", "compact")
    # NASLib's NB301 files repeat a few archs with different surrogate draws.
    average_repeats = True

    def canonical(self, arch) -> str:
        return format_genotype(parse_genotype(arch))

    def key(self, canonical: str) -> str:
        return short_hash(self.canonical(canonical), prefix="darts")

    def build(self, canonical: str, num_classes: int):
        config = {"genotype": parse_genotype(canonical), "width": WIDTH, "depth": DEPTH}
        return nds.build_cell_network(config, num_classes, family="darts", cell_bn_affine=False)

    def archs(self) -> list[str]:
        raise GpproxyError("darts is not enumerable (about 10^18 cells); take its archs from a benchmark "
                           "file such as NB301's CSV")

    def datasets(self) -> dict:
        return DATASETS

    def describe(self, arch, num_classes: int) -> dict:
        from ._common import describe_network

        text = self.canonical(arch)
        # NASLib puts a non-affine BN after every pooling op of its NB301 graph and counts it.
        return describe_network(self.build(text, num_classes), (1, 3, 32, 32), bn_after_pools=True,
                                **self.describe_header(text))
