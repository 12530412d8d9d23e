"""Search spaces behind one protocol (:mod:`gpproxy.spaces.base`).

``get_space(name_or_path)`` returns a space: a built-in name, or the path of a
user's ``.py`` file (:mod:`gpproxy.spaces.user`). Built-in spaces (see
``docs/spaces.md``):

``nb201``
    NAS-Bench-201 cells; canonical string ``|op~0|+|op~0|op~1|+|...|``.
``darts``
    The DARTS cell network as NAS-Bench-301 / NASLib build it (C=32, 8 cells);
    canonical string: DARTS' ``Genotype(...)`` text.
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

from ..errors import ArchError
from .base import Dataset, Space
from .user import UserSpace, is_space_file

__all__ = ["Dataset", "Space", "get_space", "space_names", "builtin_spaces"]

# NDS: one space per family and dataset. A sweep's _fix-w-d / _lr-wd / _reruns /
# _rngN variants are the same space as their base; _in sweeps are ImageNet nets.
_NDS_FAMILIES = ("amoeba", "darts", "enas", "nasnet", "pnas", "resnet", "resnext-a", "resnext-b", "vanilla")


def _nb201():
    from .nb201_space import NB201Space

    return NB201Space()


def _darts():
    from .darts_space import DartsSpace

    return DartsSpace()


def _nds(family: str, imagenet: bool):
    from .nds_space import NDSSpace

    return NDSSpace(family, imagenet)


def _tnb101(which: str):
    from .tnb101_space import TNB101Space

    return TNB101Space(which)


_FACTORIES = {"nb201": _nb201, "darts": _darts}
_FACTORIES.update({f"nds_{f}": functools.partial(_nds, f, False) for f in _NDS_FAMILIES})
_FACTORIES.update({f"nds_{f}_in": functools.partial(_nds, f, True) for f in _NDS_FAMILIES})
_FACTORIES.update({f"tnb101_{w}": functools.partial(_tnb101, w) for w in ("micro", "macro")})


def get_space(name: str) -> Space:
    """A built-in space by name, or a user space from the path of its ``.py`` file."""
    name = str(name)
    factory = _FACTORIES.get(name)
    if factory is not None:
        return factory()
    if is_space_file(name):
        return UserSpace(name)
    raise ArchError(f"unknown search space {name!r}; known: {', '.join(sorted(_FACTORIES))}, "
                    "or the path of a .py file defining build(arch, num_classes)")


def space_names() -> list[str]:
    return sorted(_FACTORIES)


def builtin_spaces() -> list[Space]:
    """The spaces a table can name by its arch column alone (CSV format detection), NB201 first."""
    return [_nb201(), _darts()]
