"""Cached statistics of many archs, stacked for batched formula evaluation.

Layers of all archs are numbered 0..L-1 (arch by arch). For each statistic
family (weight / input / output), layers whose sample has the same shape are
stacked into one bucket tensor ``(n, r, c)``; NB201 has a dozen shapes, so a
formula costs a few dozen large tensor ops instead of tens of thousands of
small ones. Statistics of one family share the bucket layout, so element-wise
ops between e.g. ``W`` and ``dW`` pair bucket by bucket.

``moments`` holds, per statistic, the exact full-tensor moments of every layer
(``[sum, sum |x|, sum x², numel]``, and for activations ``[logdet, hamming]``
kernels, float64, layer order) where the cache has them; formulas use them
for reductions applied directly to a statistic. Keys
``"X*Y"`` hold the moments of the element-wise product of X and Y (see
``probe.PAIRS``), for reductions of the pack's product of X and Y.

``net`` holds the whole-network terms (``probe.network_terms``) of caches built
with them: one number per arch, the formulas' Net terminals.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from .probe import stat_family
from .record import as_array, as_floats

# Exact per-layer numbers exposed to formulas as per-layer terminals.
LAYER_META = ("params", "fan_in", "out_channels", "out_numel")


@dataclass
class Bucket:
    layer_ids: torch.Tensor  # (n,) global layer index
    scale: torch.Tensor  # (n,) numel(full) / numel(sample), per stat family
    shape: tuple


@dataclass
class StatSet:
    archs: list
    arch_of_layer: torch.Tensor  # (L,) long
    layer_counts: torch.Tensor  # (N,) float
    meta: dict  # name -> (L,) float tensor
    buckets: dict  # family -> list[Bucket]
    stats: dict  # stat name -> list[Tensor (n, r, c)], aligned with its family's buckets
    device: str = "cpu"
    # stat name -> (L, 4) float64 exact moments; no entry when not cached for every layer
    moments: dict = field(default_factory=dict)
    # term name -> (N,) whole-network terms (probe.network_terms); none unless cached for every arch
    net: dict = field(default_factory=dict)

    @property
    def n_archs(self) -> int:
        return len(self.archs)

    @property
    def n_layers(self) -> int:
        return int(self.arch_of_layer.numel())

    def family_buckets(self, stat: str) -> list:
        return self.buckets[stat_family(stat)]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for ts in self.stats.values() for t in ts)


def layer_records(source, arch) -> list:
    """The LayerRecords of `arch` in `source`: a Cache, or a mapping
    {arch: [LayerRecord]} of networks probed in memory."""
    return source[arch] if isinstance(source, Mapping) else source.layers(arch)


def source_archs(source) -> list:
    """All archs of `source` (see layer_records)."""
    return list(source) if isinstance(source, Mapping) else source.archs()


def load_statset(source, archs=None, stats=None, device="cpu", dtype=torch.float32) -> StatSet:
    """Stack the statistics of `archs` (default: all) of `source` (see
    layer_records) into a StatSet.

    `stats` limits which statistics are loaded (a pack that uses only W and dW
    need not read activations). Storage fp16 is upcast once here: per-op
    upcasting on CPU made evaluation 2-3x slower.
    """
    archs = list(source_archs(source) if archs is None else archs)
    return stack_layers(archs, (layer_records(source, a) for a in archs), stats, device, dtype)


def stack_layers(archs, per_arch_layers, stats=None, device="cpu", dtype=torch.float32) -> StatSet:
    """Bucket the LayerRecord lists of `archs` (one list per arch) into a StatSet."""
    wanted = None if stats is None else set(stats)
    per_family: dict = {}  # family -> {shape: {"ids": [], "scale": [], stat: [arrays]}}
    arch_of_layer, meta_cols = [], {m: [] for m in LAYER_META}
    moment_rows: dict = {}  # stat -> [4 floats per layer]
    counts, net_rows = [], []
    lid = 0
    for ai, layers in enumerate(per_arch_layers):
        counts.append(len(layers))
        net_rows.append(layers[0].meta.get("net", {}) if layers else {})
        for layer in layers:
            arch_of_layer.append(ai)
            for m in LAYER_META:
                meta_cols[m].append(float(layer.meta.get(m, 0)))
            for stat, row in layer.moments.items():
                # "X*Y" (product moments) is wanted when both X and Y are
                if wanted is None or all(part in wanted for part in stat.split("*")):
                    moment_rows.setdefault(stat, []).append(as_floats(row))
            seen_family = set()
            for stat, (sample, scale) in layer.stats.items():
                if wanted is not None and stat not in wanted:
                    continue
                arr = as_array(sample)
                fam = stat_family(stat)
                shape = tuple(arr.shape)
                slot = per_family.setdefault(fam, {}).setdefault(shape, {"ids": [], "scale": []})
                if fam not in seen_family:
                    slot["ids"].append(lid)
                    slot["scale"].append(scale)
                    seen_family.add(fam)
                slot.setdefault(stat, []).append(arr)
            lid += 1
    buckets, stat_tensors = {}, {}
    for fam, shapes in per_family.items():
        buckets[fam] = []
        for shape in sorted(shapes):
            slot = shapes[shape]
            buckets[fam].append(Bucket(torch.tensor(slot["ids"], dtype=torch.long, device=device),
                                       torch.tensor(slot["scale"], dtype=dtype, device=device),
                                       shape))
            for stat, arrays in slot.items():
                if stat in ("ids", "scale"):
                    continue
                if len(arrays) != len(slot["ids"]):
                    raise ValueError(f"statistic {stat} is missing for some layers of shape {shape}")
                t = torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False))
                stat_tensors.setdefault(stat, []).append(t.to(device=device, dtype=dtype))
    # A family present in some archs only would misalign buckets: every stat
    # must cover all buckets of its family.
    for stat, ts in stat_tensors.items():
        if len(ts) != len(buckets[stat_family(stat)]):
            raise ValueError(f"statistic {stat} is not cached for every layer")
    return StatSet(
        archs=archs,
        arch_of_layer=torch.tensor(arch_of_layer, dtype=torch.long, device=device),
        layer_counts=torch.tensor(counts, dtype=dtype, device=device),
        meta={m: torch.tensor(v, dtype=dtype, device=device) for m, v in meta_cols.items()},
        buckets=buckets,
        stats=stat_tensors,
        device=str(device),
        # A stat with moments for only some layers (mixed sources) gets none:
        # formulas then fall back to its sample for every layer alike.
        moments={stat: _moment_matrix(rows, device)
                 for stat, rows in moment_rows.items() if len(rows) == lid},
        net={name: torch.tensor([float(r[name]) for r in net_rows], dtype=dtype, device=device)
             for name in (set.intersection(*(set(r) for r in net_rows)) if net_rows else ())},
    )


# Bytes of one statistic per chunk when chunk_archs is "auto". On CPU a
# formula's temporaries must stay in the L2/L3 caches: measured on a 2-core
# EPYC (experiments/bench_eval.py), 1,000 NB201 archs evaluate 3x faster in
# chunks of ~50 archs (~8 MB per statistic) than in chunks of 200, where every
# op streams from DRAM and pays page faults for fresh buffers. A GPU wants
# few, large kernels instead.
CHUNK_BYTES = {"cpu": 8 * 2**20, "cuda": 2**30}


def stat_bytes_per_arch(source, arch, stats=None) -> int:
    """float32 bytes of the largest statistic of one arch (all its layers)."""
    per_stat: dict = {}
    for layer in layer_records(source, arch):
        for stat, (sample, _) in layer.stats.items():
            if stats is None or stat in stats:
                per_stat[stat] = per_stat.get(stat, 0) + int(np.prod(sample.shape)) * 4
    return max(per_stat.values(), default=1)


def resolve_chunk_archs(chunk_archs, source, archs, stats=None, device="cpu") -> int:
    """``chunk_archs`` as a number: itself, or for "auto" the arch count whose
    largest statistic fills CHUNK_BYTES of the device."""
    if chunk_archs != "auto":
        n = int(chunk_archs)
        if n < 1:
            raise ValueError(f"chunk_archs must be a positive number or 'auto', not {chunk_archs!r}")
        return n
    if not archs:
        return 1
    budget = CHUNK_BYTES["cuda" if str(device).startswith("cuda") else "cpu"]
    return max(8, min(len(archs), budget // stat_bytes_per_arch(source, archs[0], stats)))


def chunk_bounds(n_archs: int, chunk: int) -> list:
    """(start, stop) of chunks of at most `chunk` archs, sizes as even as possible."""
    pieces = max(1, -(-n_archs // chunk))
    edges = [round(i * n_archs / pieces) for i in range(pieces + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _moment_matrix(rows, device) -> torch.Tensor:
    """(L, k) float64; rows of different lengths (a cache completed by newer
    code adds kernel columns) keep only the columns all layers have."""
    k = min(len(r) for r in rows)
    return torch.tensor([r[:k] for r in rows], dtype=torch.float64, device=device)


def iter_chunks(source, archs=None, stats=None, device="cpu", chunk_archs="auto"):
    """StatSets of at most `chunk_archs` archs each (see CHUNK_BYTES for
    "auto"), loaded one at a time as the caller asks for them."""
    archs = list(source_archs(source) if archs is None else archs)
    chunk = resolve_chunk_archs(chunk_archs, source, archs, stats, device)
    for a, b in chunk_bounds(len(archs), chunk):
        yield load_statset(source, archs[a:b], stats, device)


def load_chunks(source, archs=None, stats=None, device="cpu", chunk_archs="auto") -> list:
    """All of iter_chunks at once (kept in memory for repeated evaluation)."""
    return list(iter_chunks(source, archs, stats, device, chunk_archs))
