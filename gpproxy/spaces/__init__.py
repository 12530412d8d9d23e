"""Search spaces behind one small interface.

A space turns user text into a canonical arch string, names each arch with a
file-safe key, enumerates or samples archs, and builds the torch network.

Registered spaces (see ``docs/spaces.md``):

``nb201``
    NAS-Bench-201 cells; canonical string ``|op~0|+|op~0|op~1|+|...|``.
``nds_<family>`` and ``nds_<family>_in``
    The NDS design spaces, family one of amoeba, darts, enas, nasnet, pnas
    (NAS cells) or resnet, resnext-a, resnext-b, vanilla (AnyNet); ``_in`` is
    the ImageNet network. The sweeps ``_fix-w-d``, ``_lr-wd``, ``_reruns`` and
    ``_rngN`` are the same space as their base. The canonical string is the
    compact sorted-keys JSON of the architecture part of the sweep's ``net``
    config, so a cache rebuilds the network from the string alone; the key is
    ``<family>-<16 hex of its sha1>``. Not enumerable.
``tnb101_micro`` / ``tnb101_macro``
    TransNAS-Bench-101; canonical string ``64-41414-1_02_333`` /
    ``64-1234-basic`` (also the key). ``build`` returns encoder + linear head.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from ..errors import ArchError, GpproxyError


@dataclass(frozen=True)
class Space:
    name: str
    canonical: Callable[[object], str]  # any accepted encoding -> canonical string
    key: Callable[[str], str]  # canonical string -> file-safe id
    build: Callable[[str, int], object]  # (canonical, num_classes) -> nn.Module
    all_archs: Callable[[], list]  # canonical strings, or raises if not enumerable
    describe: Callable[[str, int], dict]
    # channels_last on CPU: halves NB201's probe time (avg_pool in NCHW dominates),
    # verified on all its archs. Off elsewhere: oneDNN (torch 2.13 CPU) corrupts
    # the heap in the backward of some 1x1 stride-2 convs in channels_last (e.g.
    # 12 -> 16 channels at 56x56), which the NDS/TNB101 reductions contain.
    channels_last_cpu: bool = False

    def channels_last(self, device) -> bool:
        """Whether to run this space's nets in channels_last on `device`."""
        return self.channels_last_cpu or str(device).startswith("cuda")


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

    return Space("nb201", canonical, key, build, all_archs, describe, channels_last_cpu=True)


def _nds(family: str, imagenet: bool) -> Space:
    from . import nds

    name = nds.space_name(family, imagenet)

    def canonical(text):
        return nds.canonical(text, family)

    def key(arch):
        return nds.arch_key(arch, family)

    def build(arch, num_classes):
        return nds.build_network(arch, num_classes, family=family, imagenet=imagenet)

    def all_archs():
        raise GpproxyError(
            f"{name} is not enumerable: NDS sampled its networks from an open-ended design space; "
            "take the archs from an NDS sweep file (benchmark 'nds:PATH')"
        )

    def describe(arch, num_classes):
        return nds.describe(arch, num_classes, family=family, imagenet=imagenet)

    return Space(name, canonical, key, build, all_archs, describe)


def _tnb101(which: str) -> Space:
    from . import tnb101

    def canonical(text):
        return tnb101.canonical(text, which)

    def key(arch):
        return tnb101.arch_key(arch, which)

    def build(arch, num_classes):
        return tnb101.build_network(arch, num_classes, which)

    def all_archs():
        return tnb101.all_archs(which)

    def describe(arch, num_classes):
        return tnb101.describe(arch, num_classes, which)

    return Space(f"tnb101_{which}", canonical, key, build, all_archs, describe)


# NDS: one space per family and dataset. A sweep's _fix-w-d / _lr-wd / _reruns /
# _rngN variants are the same space as their base; _in sweeps are ImageNet nets.
_NDS_FAMILIES = ("amoeba", "darts", "enas", "nasnet", "pnas", "resnet", "resnext-a", "resnext-b", "vanilla")

_FACTORIES = {"nb201": _nb201}
_FACTORIES.update({f"nds_{f}": functools.partial(_nds, f, False) for f in _NDS_FAMILIES})
_FACTORIES.update({f"nds_{f}_in": functools.partial(_nds, f, True) for f in _NDS_FAMILIES})
_FACTORIES.update({f"tnb101_{w}": functools.partial(_tnb101, w) for w in ("micro", "macro")})


def get_space(name: str) -> Space:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ArchError(f"unknown search space {name!r}; known: {', '.join(sorted(_FACTORIES))}") from None


def space_names() -> list[str]:
    return sorted(_FACTORIES)
