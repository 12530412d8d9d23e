"""The space protocol: everything gpproxy needs to know about a search space.

A space is an object with these members (built-in spaces subclass
:class:`Space`; a user's ``.py`` file is wrapped by :class:`gpproxy.spaces.user.UserSpace`):

``name``
    What ``get_space`` was given: a built-in name (``nb201``) or the user
    file's path. Stored in caches, configs and benchmarks.
``slug``
    A short file-safe name (directory names of score caches).
``canonical(arch) -> str``
    Any accepted encoding of an arch -> its one canonical string
    (``ArchError`` naming the arch when it is not in the space).
``key(canonical) -> str``
    A file-safe id of a canonical arch (cache file names).
``build(canonical, num_classes) -> torch.nn.Module``
    The network, freshly initialised (callers seed torch before).
``archs() -> list[str]``
    Every canonical arch, or ``GpproxyError`` saying why the space is not
    enumerable.
``datasets() -> {name: Dataset}``
    The datasets its benchmarks measure, the default first: net head, input
    size, normalisation, default ground-truth column.
``dataset_for(num_classes) -> Dataset``
    The dataset a net with that many classes belongs to (the default when none has it).
``normalisation_for(num_classes) -> str``
    The mean/std name real input images get for such a net (the cache's input).
``describe(arch, num_classes) -> dict``
    Header fields, ``params``, ``flops`` (NAS-Bench-Suite-Zero's convention),
    ``macs`` and the Conv2d/Linear layers; one counter for every space
    (:func:`gpproxy.spaces._common.describe_network`).
``channels_last(device) -> bool``
    Whether its nets run in channels_last on ``device``.
``init_text``
    How ``build`` initialises a net (report headers).
``suite_key(arch) -> str``
    NAS-Bench-Suite-Zero's key of an arch in score files.
``arch_columns``
    Names of CSV columns that hold this space's archs, the preferred first.
``fingerprint() -> dict | None``
    What identifies the space's code beyond its name (a user file's sha256);
    ``None`` for built-ins, whose code is versioned with gpproxy.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import GpproxyError


@dataclass(frozen=True)
class Dataset:
    """One dataset of a space: which net head, which input, which ground truth."""

    name: str
    suite_name: str  # NAS-Bench-Suite-Zero's dataset key
    target: str  # default column of the benchmark table ("" = the table's default target)
    num_classes: int
    resolution: int  # the benchmark's native input size (a protocol may override it)
    label: str  # what the default column is
    alt_targets: tuple = ()  # other default columns (another file kind), first present wins
    images: str = ""  # what the benchmark's nets were trained on
    normalisation: str = "cifar10"  # mean/std applied to real input images (gpproxy.inputs.NORMALISATIONS)


class Space:
    """Base of the built-in spaces; see the module docstring for the protocol."""

    name: str = ""
    arch_columns: tuple = ("arch",)
    init_text: str = "PyTorch default init"
    # channels_last on CPU: halves NB201's probe time (avg_pool in NCHW dominates),
    # verified on all its archs. Off elsewhere: oneDNN (torch 2.13 CPU) corrupts
    # the heap in the backward of some 1x1 stride-2 convs in channels_last (e.g.
    # 12 -> 16 channels at 56x56), which the NDS/TNB101 reductions contain.
    channels_last_cpu: bool = False
    # Rows of one arch in a CSV: averaged (repeated measurements, e.g. NB301's
    # surrogate files) instead of an error.
    average_repeats: bool = False
    # The benchmark used when a command names none (only NB201 ships one).
    default_benchmark: str | None = None

    @property
    def slug(self) -> str:
        return self.name

    def canonical(self, arch) -> str:
        raise NotImplementedError

    def key(self, canonical: str) -> str:
        raise NotImplementedError

    def build(self, canonical: str, num_classes: int):
        raise NotImplementedError

    def archs(self) -> list[str]:
        raise GpproxyError(f"space {self.name} is not enumerable; take its archs from a benchmark file")

    def all_archs(self) -> list[str]:
        """Older name of :meth:`archs`, kept for callers written against it."""
        return self.archs()

    def datasets(self) -> dict:
        raise NotImplementedError

    def dataset_for(self, num_classes: int) -> Dataset:
        table = self.datasets()
        return next((d for d in table.values() if d.num_classes == num_classes), next(iter(table.values())))

    def normalisation_for(self, num_classes: int) -> str:
        """Input normalisation of nets with ``num_classes`` outputs (``dataset_for``'s)."""
        return self.dataset_for(num_classes).normalisation

    def describe_header(self, canonical: str) -> dict:
        return {"arch": canonical, "key": self.key(canonical), "space": self.name}

    def describe(self, arch, num_classes: int) -> dict:
        from ._common import describe_network

        text = self.canonical(arch)
        res = self.dataset_for(num_classes).resolution
        return describe_network(self.build(text, num_classes), (1, 3, res, res), **self.describe_header(text))

    def channels_last(self, device) -> bool:
        """Whether to run this space's nets in channels_last on `device`."""
        return self.channels_last_cpu or str(device).startswith("cuda")

    def suite_key(self, arch: str) -> str:
        return self.canonical(arch)

    def fingerprint(self) -> dict | None:
        return None
