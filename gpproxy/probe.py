"""One forward+backward pass with hooks on every Conv2d/Linear layer.

This module is the single source of the statistics that formulas see. The
exporter copies the functions marked ``# exported`` verbatim into standalone
proxy modules, so they may use only ``torch`` and their arguments.

What is kept per layer (see ``ProbeConfig``) is a fixed random *sample* of each
tensor, not the tensor: EZNAS cached full tensors (tens of GB per 1,000 NB201
nets); we keep a few thousand numbers per layer and per statistic.

Statistics (names are the formula terminals):

``W``  conv/linear weight, flattened to ``(C_out, C_in/groups * kh * kw)``;
       a sample of ``weight_rows`` rows x ``weight_cols`` columns.
``dW`` the weight's gradient (same positions as ``W``).
``A``  the layer's input activation, flattened per sample to ``(B, C*H*W)``;
       a sample of ``act_features`` columns (same positions for every sample).
``Z``  the layer's output (before any BN), ``(B, C*H*W)``, sampled likewise.
``dZ`` the loss gradient w.r.t. ``Z`` (same positions as ``Z``).

With ``noise_pass`` a second pass on Gaussian-noise input (EZNAS's trick) adds
``A_n``, ``Z_n``, ``dZ_n``, ``dW_n``.

Positions depend only on (seed, statistic family, full tensor shape), so the
same layer shape is sampled at the same positions in every architecture, and a
formula sees comparable numbers across the search space. For every sample we
also record ``scale = numel(full) / numel(sample)`` so that sum-like reductions
estimate full-tensor sums (a 64-channel layer really is larger than a 16-channel
one).

Sampling adds noise to sums, so with ``ProbeConfig.moments`` every statistic
also records moments of the FULL tensor: ``[sum, sum |x|, sum x², numel]``
(float64; see ``tensor_moments``). Reductions that have a closed form in them (``sum``, ``l1``,
``frob``, ``mean`` applied directly to a statistic) use these instead of the
sample; everything else still sees the sample.

Activation statistics (A, Z, dZ and their noise-pass twins) add two more
exact numbers of the full ``(B, features)`` matrix X (see ``kernel_moments``):
``logdet(X Xᵀ / features + 1e-3 I)`` and the log-determinant of NASWOT's
Hamming kernel of the codes X > 0: the default pack's ``logdet`` and
``hamming`` reductions of the whole tensor (on 64 sampled features the
Hamming term ranked archs with Kendall τ 0.94 against full tensors).

With ``ProbeConfig.net_terms`` (off by default) ``network_terms`` adds two
exact numbers of the whole network after the statistics pass: the input-logit
Jacobian score ``jacov`` and a network-level NASWOT kernel ``naswot`` (Net
terminals of packs that declare them, e.g. primitives/network.py). They are
stored in every layer's ``meta["net"]``.

Products of two statistics that share positions (``PAIRS``: W·dW, Z·dZ and,
with the noise pass, Z_n·dZ_n, W·dW_n) get the same moments of their FULL
element-wise product x*y under the key ``"X*Y"`` (see ``pair_moments``), so a
reduction of a pack's element-wise product of X and Y (``product=True``; the
default pack's ``mul``: snip, plain) is exact too.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .record import LayerRecord

WEIGHT_STATS = ("W", "dW")
INPUT_STATS = ("A",)
OUTPUT_STATS = ("Z", "dZ")
NOISE_SUFFIX = "_n"
# (x, y) statistics whose element-wise product gets exact moments, key "x*y".
PAIRS = (("W", "dW"), ("Z", "dZ"), ("Z_n", "dZ_n"), ("W", "dW_n"))


def pair_key(x: str, y: str):
    """Moments key of the product of statistics x and y (either order), else None."""
    for a, b in PAIRS:
        if {x, y} == {a, b} and x != y:
            return f"{a}*{b}"
    return None


@dataclass(frozen=True)
class ProbeConfig:
    """How statistics are sampled. Recorded verbatim in every cache."""

    act_features: int = 64
    weight_rows: int = 16
    weight_cols: int = 64
    noise_pass: bool = False
    sample_seed: int = 0
    # Exact full-tensor moments per statistic. Caches built before this field
    # existed have none; cache.py reads a missing key as False.
    moments: bool = True
    # Whole-network terms (``network_terms``): one more forward+backward per net.
    net_terms: bool = False

    def stat_names(self) -> tuple[str, ...]:
        base = WEIGHT_STATS + INPUT_STATS + OUTPUT_STATS
        if not self.noise_pass:
            return base
        return base + tuple(s + NOISE_SUFFIX for s in ("A", "Z", "dZ", "dW"))

    def pair_names(self) -> tuple[str, ...]:
        """Keys of the product moments recorded with ``moments`` (see PAIRS)."""
        if not self.moments:
            return ()
        names = set(self.stat_names())
        return tuple(f"{a}*{b}" for a, b in PAIRS if a in names and b in names)

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["net_terms"]:  # left out: caches (and their digests) made before the field stay valid
            del d["net_terms"]
        return d


def stat_family(name: str) -> str:
    """'weight', 'input' or 'output': statistics of one family share positions."""
    base = name[: -len(NOISE_SUFFIX)] if name.endswith(NOISE_SUFFIX) else name
    if base in WEIGHT_STATS:
        return "weight"
    if base in INPUT_STATS:
        return "input"
    if base in OUTPUT_STATS:
        return "output"
    raise KeyError(f"unknown statistic {name!r}")


def stable_seed(text: str) -> int:  # exported
    """FNV-1a hash of `text`: unlike hash(), the same in every process."""
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def sample_positions(shape, keep: int, seed: int, salt: str) -> torch.Tensor:  # exported
    """Sorted indices of `keep` of `prod(shape)` positions, fixed by the shape.

    Seeded by a stable hash of (seed, salt, shape): the same layer shape must
    get the same positions in every worker, run and exported module.
    """
    total = 1
    for s in shape:
        total *= int(s)
    if keep >= total:
        return torch.arange(total)
    key = f"{seed}:{salt}:{'x'.join(str(int(s)) for s in shape)}"
    gen = torch.Generator().manual_seed(stable_seed(key))
    return torch.randperm(total, generator=gen)[:keep].sort().values


def sample_activation(t: torch.Tensor, keep: int, seed: int, salt: str):  # exported
    """(B, ...) tensor -> ((B, k) float32 sample, scale). Avoids a full copy."""
    batch = t.shape[0]
    feat_shape = tuple(t.shape[1:])
    idx = sample_positions(feat_shape, keep, seed, salt)
    flat = t.detach().reshape(batch, -1) if t.dim() == 2 else None
    if flat is None:
        # Unravel to per-dimension indices so a channels_last tensor is read
        # in place instead of being copied whole by reshape().
        coords = []
        rem = idx
        for size in reversed(feat_shape):
            coords.append(rem % size)
            rem = rem // size
        coords.reverse()
        sample = t.detach()[(slice(None),) + tuple(c.to(t.device) for c in coords)]
    else:
        sample = flat[:, idx.to(t.device)]
    total = 1
    for s in feat_shape:
        total *= int(s)
    return sample.float(), total / idx.numel()


def sample_weight(w: torch.Tensor, rows: int, cols: int, seed: int):  # exported
    """Conv/linear weight -> ((r, c) float32 sample, scale); rows = out channels."""
    mat = w.detach().reshape(w.shape[0], -1)
    r_idx = sample_positions((mat.shape[0],), rows, seed, "weight-rows")
    c_idx = sample_positions((mat.shape[1],), cols, seed, f"weight-cols:{tuple(w.shape)}")
    sample = mat[r_idx.to(w.device)][:, c_idx.to(w.device)]
    return sample.float(), mat.numel() / sample.numel()


def tensor_moments(t: torch.Tensor, chunk_numel: int = 1 << 20):  # exported
    """[sum, sum |x|, sum x², numel] of the whole tensor: float64 (4,), on its device.

    Each slice along dim 0 (about `chunk_numel` elements) is reduced by torch in
    float32 (pairwise summation: relative error ~1e-7 of sum |x|, far below
    sampling noise) and the slices are added in float64. Upcasting to float64
    first made the probe 1.5x slower (fresh float64 buffers) and would double
    peak memory; slicing bounds the |x| and x² temporaries. No host sync.
    """
    t = t.detach()
    out = torch.zeros(4, dtype=torch.float64, device=t.device)
    if t.numel() == 0:
        return out
    step = max(1, chunk_numel // max(1, t[0].numel()))
    for part in t.split(step, dim=0):
        if part.dtype not in (torch.float32, torch.float64):
            part = part.float()  # fp16 / bf16 sums would overflow or round
        out[:3] += torch.stack([part.sum(), part.abs().sum(), (part * part).sum()]).double()
    out[3] = float(t.numel())
    return out


def kernel_moments(t: torch.Tensor):  # exported
    """[logdet(X Xᵀ/F + 1e-3 I), logdet(K_H + 1e-3 I)] of a (B, ...) activation
    X = t viewed as (B, F), K_H[i, j] = features where rows i and j agree on
    x > 0 (NASWOT's kernel): float64 (2,). One B x B matmul per kernel; counts
    stay exact in float32 below 2**24 features."""
    x = t.detach().reshape(t.shape[0], -1).float()
    ridge = 1e-3 * torch.eye(x.shape[0], dtype=torch.float64, device=x.device)
    gram = (x @ x.T).double() / x.shape[1] + ridge
    c = (x > 0).float()
    r = c.sum(dim=1)
    agree = (2 * (c @ c.T) - r[:, None] - r[None, :] + x.shape[1]).double() + ridge
    return torch.stack([torch.linalg.slogdet(gram).logabsdet, torch.linalg.slogdet(agree).logabsdet])


def pair_moments(x: torch.Tensor, y: torch.Tensor, chunk_numel: int = 1 << 20):  # exported
    """tensor_moments of the element-wise product x*y (same shape): [sum xy,
    sum |xy|, sum (xy)², numel], float64 (4,). Sliced along dim 0 like
    tensor_moments, so the product is never materialised whole."""
    x, y = x.detach(), y.detach()
    out = torch.zeros(4, dtype=torch.float64, device=x.device)
    if x.numel() == 0:
        return out
    step = max(1, chunk_numel // max(1, x[0].numel()))
    for a, b in zip(x.split(step, dim=0), y.split(step, dim=0)):
        if a.dtype not in (torch.float32, torch.float64):
            a = a.float()
        if b.dtype not in (torch.float32, torch.float64):
            b = b.float()
        p = a * b
        out[:3] += torch.stack([p.sum(), p.abs().sum(), (p * p).sum()]).double()
    out[3] = float(x.numel())
    return out


def probed_layers(net: torch.nn.Module):  # exported
    """(name, module) of every Conv2d and Linear layer, in registration order."""
    return [(n, m) for n, m in net.named_modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def run_pass(net, inputs, targets, loss_fn, cfg_act: int, cfg_rows: int,
             cfg_cols: int, seed: int, suffix: str = "", moments: bool = False):  # exported
    """Forward+backward once; return ({layer name: {stat: (sample, scale)}},
    {layer name: {stat: float64 moments}}).

    With `moments`, the second dict holds per layer (else it is empty):
    (4,) tensor_moments for weights, (6,) with kernel_moments appended
    for activations, taken from the full tensor before sampling,
    and the same for the products W*dW and Z*dZ (suffixed: "W*dW_n",
    "Z_n*dZ_n"; see pair_moments). Z*dZ needs the full Z until its gradient
    arrives (a reference, no copy); if Z was modified in place meanwhile, the
    layer gets no Z*dZ and formulas fall back to the sample for that key.
    Tensor hooks on layer outputs, not module backward hooks: the latter warn
    on the first layer and break on in-place ops that follow a layer.
    """
    layers = probed_layers(net)
    records = {name: {} for name, _ in layers}
    exact = {name: {} for name, _ in layers}
    handles = []

    shapes = {}

    def keep(name, stat, t, sampled, activation=True):
        records[name][stat] = sampled
        if moments:
            exact[name][stat] = tensor_moments(t)
            if activation:
                exact[name][stat] = torch.cat([exact[name][stat], kernel_moments(t)])

    def make_hook(name):
        def hook(module, args, out):
            a = args[0]
            keep(name, "A" + suffix, a, sample_activation(a, cfg_act, seed, "input"))
            keep(name, "Z" + suffix, out, sample_activation(out, cfg_act, seed, "output"))
            shapes[name] = tuple(out.shape)
            if out.requires_grad:
                z = out.detach() if moments else None
                z_version = out._version

                def grad_hook(g):
                    keep(name, "dZ" + suffix, g, sample_activation(g, cfg_act, seed, "output"))
                    if moments and z._version == z_version and z.shape == g.shape:
                        exact[name][f"Z{suffix}*dZ{suffix}"] = pair_moments(z, g)
                out.register_hook(grad_hook)
        return hook

    for name, module in layers:
        handles.append(module.register_forward_hook(make_hook(name)))
    try:
        net.zero_grad(set_to_none=True)
        logits = net(inputs)
        if isinstance(logits, (tuple, list)):
            logits = logits[-1]
        loss = loss_fn(logits, targets)
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    for name, module in layers:
        rec = records[name]
        if "Z" + suffix not in rec:
            continue  # layer never ran in this network (unused branch)
        if "dZ" + suffix not in rec:
            z, scale = rec["Z" + suffix]
            rec["dZ" + suffix] = (torch.zeros_like(z), scale)
            if moments:  # all zeros, as many as Z has
                zeros = torch.zeros(shapes[name], device=z.device)
                exact[name]["dZ" + suffix] = torch.cat([tensor_moments(zeros), kernel_moments(zeros)])
                exact[name][f"Z{suffix}*dZ{suffix}"] = tensor_moments(zeros)
        if suffix == "":
            keep(name, "W", module.weight, sample_weight(module.weight, cfg_rows, cfg_cols, seed), False)
        grad = module.weight.grad
        if grad is None:  # no path to the loss: the gradient is truly zero
            grad = torch.zeros_like(module.weight)
        keep(name, "dW" + suffix, grad, sample_weight(grad, cfg_rows, cfg_cols, seed), False)
        if moments:
            exact[name]["W*dW" + suffix] = pair_moments(module.weight, grad)
    net.zero_grad(set_to_none=True)
    return records, exact


def layer_meta(module) -> dict:  # exported
    """Exact per-layer numbers (not sampled): formulas may use them as terminals."""
    w = module.weight
    meta = {
        "type": type(module).__name__,
        "out_channels": int(w.shape[0]),
        "fan_in": int(w[0].numel()),
        "params": int(sum(p.numel() for p in module.parameters(recurse=False))),
    }
    if isinstance(module, torch.nn.Conv2d):
        meta.update(kernel=list(module.kernel_size), stride=list(module.stride),
                    groups=int(module.groups))
    return meta


def collect_stats(net, inputs, targets, loss_fn, act_features: int, weight_rows: int,
                  weight_cols: int, seed: int, noise_pass: bool = False, noise_inputs=None,
                  moments: bool = False):  # exported
    """All probe passes of one network: [(layer name, module, {stat: (sample,
    scale)}, {stat: float64 moments})], the moments empty without `moments`.

    BN runs in batch-statistics (train) mode, as the zero-cost literature scores.
    """
    was_training = net.training
    net.train()
    try:
        records, exact = run_pass(net, inputs, targets, loss_fn, act_features, weight_rows, weight_cols,
                                  seed, moments=moments)
        if noise_pass:
            if noise_inputs is None:
                gen = torch.Generator().manual_seed(seed + 1)
                noise_inputs = torch.randn(inputs.shape, generator=gen).to(inputs)
            extra, extra_exact = run_pass(net, noise_inputs, targets, loss_fn, act_features, weight_rows,
                                          weight_cols, seed, suffix="_n", moments=moments)
            for name, rec in extra.items():
                records[name].update(rec)
                exact[name].update(extra_exact[name])  # merge, not replace, the clean pass's moments
    finally:
        net.train(was_training)
    modules = dict(probed_layers(net))
    return [(name, modules[name], stats, exact[name]) for name, stats in records.items() if "Z" in stats]


NET_TERMS = ("jacov", "naswot")  # what network_terms returns: formula terminals of type Net


def network_terms(net, inputs):  # exported
    """Whole-network numbers of one net (not per layer), from one forward+backward.

    ``jacov``  NASWOT v1's Jacobian-covariance score: with J the per-sample
               d(Σ logits)/d(input), -Σ_i log(λ_i + k) + 1/(λ_i + k) over the
               eigenvalues λ of corr(J), k = 1e-5. A sample whose row is constant
               (no input-output path) counts as perfectly correlated (corr 1),
               so the score stays finite and ranks such a net last.
    ``naswot`` NASWOT's network-level log|K|, K = Σ c cᵀ + (1-c)(1-c)ᵀ over the
               input of every Conv2d/Linear layer, c = 1[input > 0] per sample,
               + 10⁻³ I (finite for any net). NASWOT sums over nn.ReLU modules;
               layer inputs are where every space has the codes (NAS-Bench-Macro
               calls torch.relu, so it has no ReLU module) and, in ReLU-Conv-BN
               spaces such as NB201, they are those ReLUs' outputs.

    BN runs in batch-statistics (train) mode, as in the probe pass.
    """
    n = inputs.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=inputs.device)

    def hook(module, args, out):
        nonlocal kernel
        c = (args[0].detach().reshape(n, -1) > 0).to(torch.float64)
        kernel = kernel + c @ c.t() + (1 - c) @ (1 - c).t()

    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = net.training
    net.train()
    try:
        x = inputs.detach().clone().requires_grad_(True)
        out = net(x)
        logits = out[-1] if isinstance(out, (tuple, list)) else out
        # a net whose logits do not depend on its input (no path) gets a zero Jacobian
        grad = (torch.autograd.grad(logits.sum(), x, allow_unused=True)[0] if logits.requires_grad else None)
        grad = torch.zeros_like(x) if grad is None else grad
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    corr = torch.corrcoef(grad.detach().reshape(n, -1).to(torch.float64))
    corr = torch.where(torch.isfinite(corr), corr, torch.ones_like(corr))
    lam = torch.linalg.eigvalsh(corr)
    k = 1e-5
    jacov = -torch.sum(torch.log(lam.clamp_min(0) + k) + 1.0 / (lam.clamp_min(0) + k))
    eye = torch.eye(n, dtype=torch.float64, device=inputs.device)
    naswot = torch.linalg.slogdet(kernel + 1e-3 * eye).logabsdet
    return {"jacov": float(jacov), "naswot": float(naswot)}


# ---------------------------------------------------------------- conventions of a measuring pass
# Shared with gpproxy.baselines and gpproxy.baselines_recent; the exported
# functions above spell them out inline, as exports carry no gpproxy helper.


def loss_or_default(loss_fn):
    """The loss of a measuring pass: the caller's, else cross-entropy."""
    return loss_fn or F.cross_entropy


def logits_of(out):
    """Logits of a forward call (NB201's original TinyNetwork returns (features, logits))."""
    return out[-1] if isinstance(out, (tuple, list)) else out


class TrainMode:
    """Run a block with the net in training mode (BN batch statistics), then restore."""

    def __init__(self, net):
        self.net, self.was = net, net.training

    def __enter__(self):
        self.net.train()
        return self.net

    def __exit__(self, *exc):
        self.net.train(self.was)


def probe(net, inputs, targets, cfg: ProbeConfig, loss_fn=None, noise_inputs=None) -> list:
    """Run the probe pass(es); return one ``LayerRecord`` per layer that ran:
    samples as torch tensors, moments as float64 tensors (none unless
    ``cfg.moments``), ``meta["out_numel"]`` the per-sample output size (for
    FLOPs-like terms)."""
    layers = collect_stats(net, inputs, targets, loss_or_default(loss_fn), cfg.act_features,
                           cfg.weight_rows, cfg.weight_cols, cfg.sample_seed, cfg.noise_pass,
                           noise_inputs, moments=cfg.moments)
    # after the statistics pass, so that its numbers are the same with or without these
    net_terms = network_terms(net, inputs) if cfg.net_terms else None
    out = []
    for name, module, stats, moments in layers:
        meta = layer_meta(module)
        meta["out_numel"] = int(stats["Z"][0].shape[1] * stats["Z"][1])
        if net_terms is not None:
            meta["net"] = net_terms  # the same numbers on every layer of the net (statset reads the first)
        out.append(LayerRecord(name, meta, stats, moments))
    return out


def probe_arch(build, arch, inputs, targets, cfg: ProbeConfig, init_seed: int,
               device="cpu", channels_last=True):
    """Build one network with a fixed init seed, probe it, time it."""
    torch.manual_seed(init_seed)
    net = build(arch)
    net = net.to(device)
    x, y = inputs.to(device), targets.to(device)
    if channels_last:
        # channels_last halves NB201's CPU time (avg_pool in NCHW dominates).
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    layers = probe(net, x, y, cfg)
    return layers, time.perf_counter() - t0
