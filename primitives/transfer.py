"""The transfer pack: the default pack plus the vocabulary of the 2025 state of
the art (issue 12, part 4).

Everything of primitives/default.py (its primitives, statistics, layer
terminals, constants and seeds, shared, not re-registered), plus:

* spectral reductions of a layer's row Gram matrix X Xᵀ / columns (rows are
  batch samples for activations): ``eig_entropy`` (AZ-NAS's expressivity:
  isotropy of the feature spectrum), ``eff_rank`` and ``top_eig``;
* layer-order-aware aggregations: ``last_minus_first`` (AZ-NAS's
  progressivity), ``depth_slope``, and ``min_layers`` / ``std_layers``.

"Layer order" is the probe's order of a network's layers: module registration
order (gpproxy.probe.probed_layers), the order of a cache's records, of a
StatSet's layers of one arch (contiguous) and of an exported module's layers.
In the spaces checked (NB201, DARTS, TNB101, examples/spaces nb_macro and nb101)
its first and last layers are the first and last to run (stem and classifier); inside a network it may differ from the order in which
layers run (NB201's residual blocks register conv_a, conv_b, downsample but run
the downsample first), so ``depth_slope`` reads positions in registration order.

As in the default pack, every function uses only torch and its arguments:
exports copy the source verbatim. The spectral reductions have no exact
(full-tensor) form: they always read the sample, in the engine and in exports.
"""
from dataclasses import replace

import torch

from primitives.default import PACK as DEFAULT

PACK = replace(DEFAULT, name="transfer", stats=dict(DEFAULT.stats), prims=dict(DEFAULT.prims),
               seeds=dict(DEFAULT.seeds), stat_math=dict(DEFAULT.stat_math),
               stat_latex=dict(DEFAULT.stat_latex),
               doc=DEFAULT.doc + "; plus Gram spectra (eig_entropy, eff_rank, top_eig) and "
                   "layer-order-aware aggregations (last_minus_first, depth_slope, min_layers, std_layers)")

# ------------------------------------------------------------------ spectral reductions
# Each scales a layer's sample by its largest |entry| (the measures are scale-free;
# the Gram's entries are then at most 1, so float32 neither overflows nor underflows
# on values up to the pack's 1e30), forms the row Gram matrix X Xᵀ / columns in
# float32 and takes its eigenvalues in float64 (eigvalsh: it is symmetric), round-off
# negatives clamped to 0 (a float64 Gram, from a float64 copy of every sample, gave
# the same entropies within 1e-6 on 200 NB201 archs and cost 10 % more). A layer
# whose sample is all zeros has no spectrum: it scores 0.


@PACK.reduce("eig_entropy", math="H[eig({0}{0}ᵀ)]",
             latex=r"H\left(\operatorname{{eig}}\left({0}{0}^\top\right)\right)")
def eig_entropy(x, scale):
    """Shannon entropy (nats) of the normalised eigenvalues of the row Gram matrix X X^T / columns (0 when all zero)."""
    # AZ-NAS's expressivity idea: a feature spectrum spread over many directions
    # (isotropic) has high entropy: log(rows) at most, 0 for rank one.
    # (max, -min: two vectorised reductions, 4x cheaper than abs().amax on CPU)
    x = x / torch.maximum(x.amax(dim=(1, 2), keepdim=True), -x.amin(dim=(1, 2), keepdim=True)).clamp(min=1e-30)
    lam = torch.linalg.eigvalsh((x @ x.transpose(1, 2)).double() / x.shape[2]).clamp(min=0.0)
    p = lam / lam.sum(dim=1, keepdim=True).clamp(min=1e-300)
    return (0.0 - torch.xlogy(p, p).sum(dim=1)).clamp(min=0.0).float()


@PACK.reduce("eff_rank", math="erank[{0}{0}ᵀ]/rows",
             latex=r"\frac{{\operatorname{{erank}}\left({0}{0}^\top\right)}}{{n}}")
def eff_rank(x, scale):
    """participation ratio (sum of eigenvalues)^2 / sum of squared eigenvalues of X X^T / columns, over the rows: in (0, 1] (0 when all zero)."""
    # Σλ = trace and Σλ² = squared Frobenius norm of the Gram matrix: no
    # eigendecomposition (eigvalsh is most of eig_entropy's cost).
    x = x / torch.maximum(x.amax(dim=(1, 2), keepdim=True), -x.amin(dim=(1, 2), keepdim=True)).clamp(min=1e-30)
    gram = (x @ x.transpose(1, 2)).double() / x.shape[2]
    trace = gram.diagonal(dim1=1, dim2=2).sum(dim=1)
    ratio = trace.square() / gram.square().sum(dim=(1, 2)).clamp(min=1e-300)
    return (ratio / x.shape[1]).clamp(0.0, 1.0).float()


@PACK.reduce("top_eig", math="λmax/Σλ[{0}{0}ᵀ]",
             latex=r"\frac{{\lambda_{{\max}}}}{{\sum\lambda}}\left({0}{0}^\top\right)")
def top_eig(x, scale):
    """share of the largest eigenvalue in the sum of eigenvalues of X X^T / columns: in [1/rows, 1] (0 when all zero)."""
    x = x / torch.maximum(x.amax(dim=(1, 2), keepdim=True), -x.amin(dim=(1, 2), keepdim=True)).clamp(min=1e-30)
    lam = torch.linalg.eigvalsh((x @ x.transpose(1, 2)).double() / x.shape[2]).clamp(min=0.0)
    return (lam.amax(dim=1) / lam.sum(dim=1).clamp(min=1e-300)).clamp(0.0, 1.0).float()


# ------------------------------------------------------------------ layer-order-aware aggregations
# v (L,): one value per layer; seg (L,): the arch of each layer, whose layers are
# contiguous and in layer order (gpproxy.statset; an exported module has one arch,
# seg all zeros); counts (N,): layers per arch. Positions come from the layer
# index itself (first / last index of each arch), so the result of an arch does
# not depend on which other archs share its chunk.


@PACK.aggregate("last_minus_first", math="({0})_L − ({0})_1", latex=r"\left({0}\right)_{{L}} - \left({0}\right)_{{1}}")
def last_minus_first(v, seg, counts):
    """value at the network's last layer minus at its first (0 for a one-layer network)."""
    # AZ-NAS's progressivity idea: how much a layer statistic grows with depth.
    idx = torch.arange(v.shape[0], device=v.device)
    n = counts.shape[0]
    first = torch.full((n,), v.shape[0], dtype=idx.dtype, device=v.device).scatter_reduce(
        0, seg, idx, reduce="amin", include_self=True)
    last = torch.full((n,), -1, dtype=idx.dtype, device=v.device).scatter_reduce(
        0, seg, idx, reduce="amax", include_self=True)
    has = last >= 0  # an arch without layers scores 0
    lo, hi = first.clamp(max=max(v.shape[0] - 1, 0)), last.clamp(min=0)
    diff = v.double()[hi] - v.double()[lo] if v.shape[0] else torch.zeros(n, dtype=torch.float64, device=v.device)
    return torch.where(has, diff, torch.zeros_like(diff)).clamp(-1e30, 1e30).to(counts.dtype)


@PACK.aggregate("depth_slope", math="slope_l {0}", latex=r"\operatorname{{slope}}_{{l}} {0}")
def depth_slope(v, seg, counts):
    """least-squares slope of the layer values against relative depth (l-1)/(L-1) in [0, 1] (0 for a one-layer network)."""
    n = counts.shape[0]
    idx = torch.arange(v.shape[0], device=v.device)
    first = torch.full((n,), v.shape[0], dtype=idx.dtype, device=v.device).scatter_reduce(
        0, seg, idx, reduce="amin", include_self=True)
    size = torch.zeros(n, dtype=torch.float64, device=v.device).index_add(
        0, seg, torch.ones(v.shape[0], dtype=torch.float64, device=v.device))
    # relative depth of each layer in its network; float64: values reach 1e30
    depth = (idx - first[seg]).double() / (size[seg] - 1).clamp(min=1.0)
    y = v.double()
    d_mean = torch.zeros_like(size).index_add(0, seg, depth) / size.clamp(min=1.0)
    y_mean = torch.zeros_like(size).index_add(0, seg, y) / size.clamp(min=1.0)
    dd = depth - d_mean[seg]
    cov = torch.zeros_like(size).index_add(0, seg, dd * (y - y_mean[seg]))
    var = torch.zeros_like(size).index_add(0, seg, dd * dd)
    slope = torch.where(var > 0, cov / var.clamp(min=1e-300), torch.zeros_like(var))
    return slope.clamp(-1e30, 1e30).to(counts.dtype)


@PACK.aggregate("min_layers", math="min_l {0}", latex=r"\min_{{l}} {0}")
def min_layers(v, seg, counts):
    """minimum over the network's layers."""
    init = torch.full_like(counts, 1e30)
    return init.scatter_reduce(0, seg, v.to(counts.dtype), reduce="amin", include_self=True)


@PACK.aggregate("std_layers", math="std_l {0}", latex=r"\operatorname{{std}}_{{l}} {0}")
def std_layers(v, seg, counts):
    """population standard deviation over the network's layers (0 for one layer)."""
    # float64: squares of values up to 1e30 overflow float32
    y = v.double()
    size = torch.zeros(counts.shape[0], dtype=torch.float64, device=v.device).index_add(
        0, seg, torch.ones_like(y))
    mean = torch.zeros_like(size).index_add(0, seg, y) / size.clamp(min=1.0)
    var = torch.zeros_like(size).index_add(0, seg, (y - mean[seg]).square()) / size.clamp(min=1.0)
    return var.sqrt().clamp(max=1e30).to(counts.dtype)


# ------------------------------------------------------------------ seeds
# Known proxies this vocabulary can now express, approximately: AZ-NAS takes the
# spectrum of the channel covariance over batch and positions of each block's
# output; here it is the row Gram matrix of sampled features of each conv/linear
# layer's input, hence "-like".
# They come first: an engine seeds at most a quarter of its population, in order.
PACK.seeds = {"az_expressivity_like": "sum_layers(eig_entropy(A))",
              "az_progressivity_like": "last_minus_first(eig_entropy(A))",
              **PACK.seeds}
