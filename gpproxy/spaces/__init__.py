"""Search spaces behind one small interface.

A space turns user text into a canonical arch string, names each arch with a
file-safe key, enumerates or samples archs, and builds the torch network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ArchError


@dataclass(frozen=True)
class Space:
    name: str
    canonical: Callable[[object], str]  # any accepted encoding -> canonical string
    key: Callable[[str], str]  # canonical string -> file-safe id
    build: Callable[[str, int], object]  # (canonical, num_classes) -> nn.Module
    all_archs: Callable[[], list]  # canonical strings, or raises if not enumerable
    describe: Callable[[str, int], dict]


def _nb201() -> Space:
    from . import nb201

    def canonical(text):
        return nb201.format_arch(nb201.parse_arch(text))

    def key(arch):
        return str(nb201.arch_to_index(nb201.parse_arch(arch)))

    def build(arch, num_classes):
        net = nb201.build_network(nb201.parse_arch(arch), num_classes=num_classes)
        if hasattr(nb201, "init_weights"):
            nb201.init_weights(net)
        return net

    def all_archs():
        return [nb201.format_arch(a) for a in nb201.all_archs()]

    def describe(arch, num_classes):
        return nb201.describe(nb201.parse_arch(arch), num_classes=num_classes)

    return Space("nb201", canonical, key, build, all_archs, describe)


_FACTORIES = {"nb201": _nb201}


def get_space(name: str) -> Space:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ArchError(f"unknown search space {name!r}; known: {', '.join(sorted(_FACTORIES))}") from None


def space_names() -> list[str]:
    return sorted(_FACTORIES)
