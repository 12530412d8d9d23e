"""What a score depends on besides the arch and the proxy: the scoring protocol.

Each arch's network is built with ``torch.manual_seed(seed)`` (the space's
init, e.g. PyTorch default init for NB201 as NAS-Bench-Suite-Zero) and sees the
one minibatch ``load_batch(input, batch, seed)``; BatchNorm in training mode;
cross-entropy loss. Recorded beside every score file and in every table header.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

from ..spaces.base import Dataset


MINIBATCH_KEYS = ("batch", "seed", "resolution")  # checked by the config's task rules


def check_minibatch(values: dict, optional=MINIBATCH_KEYS) -> None:
    """GpproxyError naming the first of ``values``' batch, seed and resolution that the config's task rules
    refuse; a key of ``optional`` may be None (or absent)."""
    from ..config import TASK_RULES, check_value

    for key in MINIBATCH_KEYS:
        if values.get(key) is not None or key not in optional:
            check_value(key, values.get(key), TASK_RULES[key])


@dataclass(frozen=True)
class Protocol:
    """Everything that changes a score besides the arch and the proxy.

    ``space=None`` means the benchmark's space (run_score/run_bench fill it in);
    ``resolution=None`` means each dataset's native input size.
    """

    space: str | None = "nb201"
    batch: int = 64
    seed: int = 0  # network init seed and minibatch draw seed
    input: str = "noise"
    pack: str = "default"
    # NASLib's protocol: every arch gets its own init and minibatch (seed_for);
    # ours by default: one seed for all, so archs differ only by architecture.
    per_arch_seed: bool = False
    resolution: int | None = None

    def __post_init__(self):
        # the task rules the CLI and config files check, so gpproxy.score(batch=2.5, resolution=0) gets the same
        # one-line error instead of a truncated batch or a silently ignored size
        check_minibatch({name: getattr(self, name) for name in MINIBATCH_KEYS}, optional=("resolution",))

    def resolution_for(self, ds: Dataset) -> int:
        return int(self.resolution or ds.resolution)

    def seed_for(self, arch: str) -> int:
        """The init/minibatch seed of ``arch`` (a stable hash of it with per_arch_seed)."""
        if not self.per_arch_seed:
            return self.seed
        return (self.seed * 1_000_003 + zlib.crc32(arch.encode())) % (2 ** 31)

    def cache_spec(self, ds: Dataset, noise_pass: bool = False, net_terms: bool = False):
        from ..cache import CacheSpec
        from ..probe import ProbeConfig

        return CacheSpec(space=self.space, num_classes=ds.num_classes, batch=self.batch, seed=self.seed,
                         input=self.input, resolution=self.resolution_for(ds),
                         probe=ProbeConfig(noise_pass=noise_pass, sample_seed=self.seed, net_terms=net_terms))

    def minibatch(self, ds: Dataset):
        """The batch every arch sees: the cache's own loader, so formulas see it too."""
        from ..cache import load_input

        return load_input(self.cache_spec(ds))

    def to_dict(self) -> dict:
        return asdict(self)
