"""A user's search space: a Python file named by its path.

The file defines at least::

    def build(arch: str, num_classes: int) -> torch.nn.Module

and optionally::

    def archs() -> list[str]          # every arch (makes the space enumerable)
    def canonical(arch: str) -> str   # one string per arch (default: the text stripped)
    NUM_CLASSES = 10                  # the net head of `gpproxy score` / `bench` / `describe`
    RESOLUTION = 32                   # their input side in pixels
    NORMALISATION = "cifar10"         # mean/std for real images: cifar10 | cifar100 | imagenet16 | none
    ARCH_COLUMNS = ("arch",)          # CSV columns that may hold the archs, preferred first
    AVERAGE_REPEATS = False           # True: rows naming one arch are averaged (else an error)

The file is imported once per process under a module name derived from its
resolved path; its sha256 is the space's fingerprint, recorded in every cache
built from it, so a changed file never mixes with statistics of the old one.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path

from ..errors import ArchError, GpproxyError
from ._common import short_hash, show
from .base import Dataset, Space

_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]{0,63}")
_MODULES: dict = {}  # (resolved path, sha256) -> module


class SpaceBuildError(ArchError):
    """``build`` of a user space failed for one arch (``arch`` names it, for callers that know its row)."""

    def __init__(self, message: str, arch: str | None = None):
        super().__init__(message)
        self.arch = arch


def _known_normalisation(name: str) -> str | None:
    from ..inputs import _normalisation

    try:
        return _normalisation(name)
    except GpproxyError:
        return None


def is_space_file(name: str) -> bool:
    return str(name).endswith(".py")


def _load_module(path: Path, sha: str, shown: str):
    module = _MODULES.get((path, sha))
    if module is not None:
        return module
    name = f"gpproxy_user_space_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # the user's file: report in one line; its sys.exit() must not end gpproxy
        sys.modules.pop(name, None)
        raise GpproxyError(f"space file {shown} fails to import: {type(e).__name__}: {e}") from None
    _MODULES[(path, sha)] = module
    return module


class UserSpace(Space):
    init_text = "the space file's build() (after torch.manual_seed)"

    def __init__(self, path: str):
        self.name = str(path)
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise GpproxyError(f"space file {path} not found")
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.module = m = _load_module(self.path, self.sha256, self.name)
        if not callable(getattr(m, "build", None)):
            raise GpproxyError(f"space file {path} defines no build(arch, num_classes) function")
        columns = getattr(m, "ARCH_COLUMNS", ("arch",))
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns) or not columns:
            raise GpproxyError(f"space file {path}: ARCH_COLUMNS must be a tuple of column names, got {show(columns)}")
        self.arch_columns = tuple(columns)
        repeats = getattr(m, "AVERAGE_REPEATS", False)
        if not isinstance(repeats, bool):
            raise GpproxyError(f"space file {path}: AVERAGE_REPEATS must be True or False, got {show(repeats)}")
        self.average_repeats = repeats
        n, res = getattr(m, "NUM_CLASSES", 10), getattr(m, "RESOLUTION", 32)
        for what, value in (("NUM_CLASSES", n), ("RESOLUTION", res)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GpproxyError(f"space file {path}: {what} must be a positive integer, got {show(value)}")
        norm = getattr(m, "NORMALISATION", "cifar10")
        if not isinstance(norm, str) or _known_normalisation(norm) is None:
            raise GpproxyError(f"space file {path}: NORMALISATION must be one of cifar10, cifar100, imagenet16, "
                               f"none; got {show(norm)}")
        self._datasets = {"default": Dataset("default", "default", "", n, res,
                                             "the benchmark's default target column", normalisation=norm)}
        self._known: set | None = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.path.stem)

    def fingerprint(self) -> dict:
        return {"file": str(self.path), "sha256": self.sha256}

    def _canonical_text(self, arch) -> str:
        fn = getattr(self.module, "canonical", None)
        if fn is None:
            if not isinstance(arch, str) or not arch.strip():
                raise ArchError(f"arch {show(arch)} is not a non-empty string")
            return arch.strip()
        try:
            out = fn(arch)
        except Exception as e:
            raise ArchError(f"space file {self.name}: canonical({arch!r}) raised {type(e).__name__}: {e}") from None
        if not isinstance(out, str) or not out.strip():
            raise ArchError(f"space file {self.name}: canonical({arch!r}) returned {show(out)}, not a non-empty string")
        return out

    def canonical(self, arch) -> str:
        text = self._canonical_text(arch)
        if callable(getattr(self.module, "archs", None)):
            if self._known is None:
                self._known = set(self.archs())
            if text not in self._known:
                raise ArchError(f"arch {text!r} is not one of the archs() of space file {self.name}")
        return text

    def key(self, canonical: str) -> str:
        """The arch itself when it is a short file-safe name, else a hash of it."""
        return canonical if _SAFE_KEY.fullmatch(canonical) else short_hash(canonical, prefix="arch")

    def build(self, canonical: str, num_classes: int):
        from torch import nn

        try:
            net = self.module.build(canonical, num_classes)
        except Exception as e:
            raise SpaceBuildError(f"space file {self.name}: build({canonical!r}, {num_classes}) raised "
                                  f"{type(e).__name__}: {e}", canonical) from None
        if not isinstance(net, nn.Module):
            raise SpaceBuildError(f"space file {self.name}: build({canonical!r}, {num_classes}) returned a "
                                  f"{type(net).__name__}, not a torch.nn.Module", canonical)
        if not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules()):
            raise SpaceBuildError(f"space file {self.name}: build({canonical!r}, {num_classes}) returned a network "
                                  "with no Conv2d or Linear layer (the probe reads those)", canonical)
        return net

    def archs(self) -> list[str]:
        fn = getattr(self.module, "archs", None)
        if not callable(fn):
            raise GpproxyError(f"space file {self.name} defines no archs(), so it is not enumerable; "
                               "take the archs from a benchmark file")
        try:
            listed = list(fn())
        except Exception as e:
            raise GpproxyError(f"space file {self.name}: archs() raised {type(e).__name__}: {e}") from None
        out = [self._canonical_text(a) for a in listed]
        if len(set(out)) != len(out):
            dup = next(a for i, a in enumerate(out) if a in out[:i])
            raise GpproxyError(f"space file {self.name}: archs() lists {dup!r} twice")
        return out

    def datasets(self) -> dict:
        return self._datasets
