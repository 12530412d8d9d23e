"""The 2024/2025 peers: AZ-NAS (CVPR 2024) and VKDNW (CVPR 2025), per-arch
components and their population-level rank aggregations.

Per-arch components follow ``gpproxy.baselines``' contract, ``fn(net, inputs,
targets, loss_fn=None, seed=0) -> float``, higher = predicted better, ``net``
left unchanged. Written from the papers and the authors' public code
(cvlab-yonsei/AZ-NAS ``NB201/ZeroShotProxy/compute_az_nas_score.py``,
ondratybl/VKDNW ``NB201/ZeroShotProxy/compute_vkdnw_score.py``). Both
re-initialise the net before scoring, as their code does: Kaiming-normal
fan-in for Conv2d/Linear weights, zero biases, BatchNorm weight 1 and bias 0
(``peer_init``); here on a copy, drawn from ``seed``.

The aggregates (``aznas``, ``vkdnw_agg``) are *population-level*: an arch's
score is Σ over components of log(rank / N) among the N archs scored together,
so it changes with the other archs. ``POPULATION`` names their components;
``gpproxy.scoring.proxies`` computes them from the stored per-arch scores.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from .probe import TrainMode, logits_of

# ---------------------------------------------------------------- shared


def peer_init(model: nn.Module, gen: torch.Generator) -> nn.Module:
    """AZ-NAS/VKDNW's ``init_model(..., 'kaiming_norm_fanin')``, in place, drawn from ``gen``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=gen)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return model


def peer_copy(net: nn.Module, seed: int) -> tuple:
    """(a copy of ``net`` re-initialised by ``peer_init`` from ``seed``, fresh BN statistics, NCHW; its generator)."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    # NCHW: the per-sample Fisher hooks and feature reshapes run 1.6x slower channels_last (measured, NB201 CPU)
    model = copy.deepcopy(net).to(memory_format=torch.contiguous_format)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            m.reset_running_stats()  # a fresh net's statistics, as the authors score it
    return peer_init(model, gen), gen


def _stage_modules(net: nn.Module) -> list:
    """The modules whose outputs are AZ-NAS's "cell features": the stem and each cell
    (their ``extract_cell_features``); nets without ``cells`` use their top-level children."""
    cells = getattr(net, "cells", None)
    if isinstance(cells, nn.ModuleList):
        stem = getattr(net, "stem", None)
        return ([stem] if isinstance(stem, nn.Module) else []) + list(cells)
    return list(net.children())


def stage_features(net: nn.Module, inputs: torch.Tensor) -> list:
    """4-D outputs of ``_stage_modules`` in call order, kept in the autograd graph."""
    feats = []

    def hook(module, args, out):
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            feats.append(out)

    handles = [m.register_forward_hook(hook) for m in _stage_modules(net)]
    try:
        net(inputs)
    finally:
        for h in handles:
            h.remove()
    return feats


# ---------------------------------------------------------------- AZ-NAS


def spectral_entropy(feat: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of a (B, C, H, W) map's channel covariance.

    AZ-NAS's per-feature expressivity: the B·H·W positions are the samples,
    the covariance is centred and divided by B·H·W, and the entropy is
    Σ -p log(p + 1e-8) with p = λ / Σλ (NaN for an all-zero map, as theirs).
    In float64 (theirs: float32 on a GPU).
    """
    b, c, h, w = feat.shape
    x = feat.detach().double().permute(0, 2, 3, 1).reshape(b * h * w, c)
    x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.eigvalsh(x.T @ x / x.shape[0])
    p = s / s.sum()
    return float((-p * torch.log(p + 1e-8)).sum())


def _trainability_term(f_out, f_in, gen) -> float:
    """-σ_max - 1/σ_max + 2 of the sign-probe Jacobian between consecutive features."""
    g_out = (torch.bernoulli(torch.full(f_out.shape, 0.5), generator=gen) - 0.5).mul(2).to(f_out)
    (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
    if g_in is None:  # the output does not depend on the input: a zero Jacobian
        g_in = torch.zeros_like(f_in)
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf  # an identity block, as AZ-NAS scores it
    if g_in.shape[2:] != g_out.shape[2:]:
        g_in = nn.functional.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
    bo, co, ho, wo = g_out.shape
    a = g_in.detach().double().permute(0, 2, 3, 1).reshape(-1, g_in.shape[1])
    b = g_out.detach().double().permute(0, 2, 3, 1).reshape(-1, co)
    smax = float(torch.linalg.svdvals(a.T @ b / (bo * ho * wo)).max())
    return -smax - 1.0 / (smax + 1e-6) + 2.0


def aznas_components(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> dict:
    """AZ-NAS's three per-arch scores from one pass on a Kaiming-initialised copy.

    Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture
    Search", CVPR 2024. Features f_0..f_L are the stem's and every cell's
    outputs (BN in training mode). Expressivity: Σ_l spectral_entropy(f_l).
    Progressivity: min_l (E_l - E_{l-1}) of those entropies. Trainability:
    mean over l of -σ - 1/σ + 2, σ the top singular value of the
    channel-by-channel matrix mean(∂f_{l-1}ᵀ g) for a Rademacher probe g on
    f_l (space-to-depth where the resolution halves); an identity block gives
    -inf. NaN becomes -inf, as in their code. Their NB201 notebook scores
    these with Gaussian-noise inputs (``az_nas`` is not in its
    ``real_input_metrics``).
    """
    model, gen = peer_copy(net, seed)
    inputs = inputs.contiguous()
    with TrainMode(model):
        feats = stage_features(model, inputs)
        ent = np.array([spectral_entropy(f) for f in feats])
        terms = [_trainability_term(feats[i], feats[i - 1], gen) for i in reversed(range(1, len(feats)))]
    model.zero_grad(set_to_none=True)
    out = {"az_expressivity": float(ent.sum()),
           "az_progressivity": float(np.min(ent[1:] - ent[:-1])) if len(ent) > 1 else math.nan,
           "az_trainability": float(np.mean(terms)) if terms else math.nan}
    return {k: (-math.inf if math.isnan(v) else v) for k, v in out.items()}


def az_expressivity(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> float:
    """AZ-NAS expressivity (Lee & Ham, CVPR 2024): Σ over stem/cell features of their covariance-spectrum entropy
    (see ``aznas_components``)."""
    return aznas_components(net, inputs, targets, loss_fn, seed)["az_expressivity"]


def az_progressivity(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> float:
    """AZ-NAS progressivity (Lee & Ham, CVPR 2024): the smallest rise of that entropy from one stage to the
    next (see ``aznas_components``)."""
    return aznas_components(net, inputs, targets, loss_fn, seed)["az_progressivity"]


def az_trainability(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> float:
    """AZ-NAS trainability (Lee & Ham, CVPR 2024): mean -σ - 1/σ + 2 of the stage-to-stage Jacobians
    (see ``aznas_components``)."""
    return aznas_components(net, inputs, targets, loss_fn, seed)["az_trainability"]


# ---------------------------------------------------------------- VKDNW


def categorical_cholesky(logits: torch.Tensor, alpha: float = 0.05) -> torch.Tensor:
    """(N, C, C) lower-triangular L with L Lᵀ = diag(p) - p pᵀ, p the smoothed softmax.

    VKDNW's ``cholesky_covariance``: p = softmax·(1-α) + α/C (α = 0.05 held
    in float16 there: 0.0499878), the closed form of Tanabe & Sagae (1992):
    q_k = 1 - Σ_{j≤k} p_j, d_k = sqrt(p_k q_k / q_{k-1}), L_kk = d_k,
    L_ik = -p_i d_k / q_k for i > k.
    """
    a = float(torch.tensor(alpha, dtype=torch.float16))
    p = torch.softmax(logits.double(), dim=1) * (1 - a) + a / logits.shape[1]
    q = (1.0 - torch.cumsum(p, dim=1)).clamp_min(0.0)
    q[:, -1] = 0.0
    q_prev = torch.cat([torch.ones_like(q[:, :1]), q[:, :-1]], dim=1)
    d = torch.sqrt(p * q / q_prev)
    inv_q = torch.where(q > 0, 1.0 / q.clamp_min(1e-300), torch.zeros_like(q))
    m = -p.unsqueeze(2) * inv_q.unsqueeze(1)  # m[n, i, k] = -p_i / q_k
    c = logits.shape[1]
    m = torch.tril(m, diagonal=-1) + torch.eye(c, dtype=m.dtype)
    return m * d.unsqueeze(1)


def _element0_contribution(module: nn.Module, pname: str, x: torch.Tensor):
    """d(module output)/d(element 0 of ``pname``) per sample, shaped like output channel 0; None if unknown."""
    if pname == "bias" and isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
        return 1.0
    if pname != "weight":
        return None
    if isinstance(module, nn.Linear):
        return x[..., 0]
    if isinstance(module, nn.Conv2d) and isinstance(module.padding, tuple) and module.padding_mode == "zeros":
        one = torch.zeros((1, 1) + tuple(module.kernel_size), dtype=x.dtype, device=x.device)
        one.view(-1)[0] = 1.0
        return nn.functional.conv2d(x[:, :1], one, None, module.stride, module.padding, module.dilation)[:, 0]
    if isinstance(module, nn.BatchNorm2d) and not module.training and module.running_mean is not None:
        return (x[:, 0] - module.running_mean[0]) / torch.sqrt(module.running_var[0] + module.eps)
    return None


def _jacobian_by_hooks(net, inputs, chosen, skip_last: bool = False):
    """(N, C, P) per-sample logit Jacobian w.r.t. element 0 of each chosen parameter, or None.

    ``skip_last`` leaves the last logit's row at zero without computing it
    (the Fisher matrix's L has a zero last column, so that row never counts).

    In eval mode samples do not interact, so adding e_n·(∂out/∂θ₀) to sample
    n's output channel 0 (e = 0) makes ∂(Σ_n logit_nc)/∂e_n the per-sample
    derivative: C backward passes of the whole batch, no per-sample loop.
    """
    owner = {f"{m}.{p}" if m else p: (mod, p) for m, mod in net.named_modules()
             for p, _ in mod.named_parameters(recurse=False)}
    slots = {}
    for k in chosen:
        mod, pname = owner[k]
        slots.setdefault(mod, []).append((k, pname))
    n = inputs.shape[0]
    es = {k: torch.zeros(n, dtype=inputs.dtype, device=inputs.device, requires_grad=True) for k in chosen}
    failed = []

    def hook(module, args, out):
        for k, pname in slots[module]:
            contrib = _element0_contribution(module, pname, args[0])
            if contrib is None:
                failed.append(k)
                return out
            e = es[k].view((n,) + (1,) * (out.dim() - 2))
            out = torch.cat([out[:, :1] + (e * contrib).unsqueeze(1), out[:, 1:]], dim=1)
        return out

    handles = [m.register_forward_hook(hook) for m in slots]
    try:
        logits = logits_of(net(inputs))
    finally:
        for h in handles:
            h.remove()
    if failed:
        return None, None
    rows = []
    for c in range(logits.shape[1]):
        if skip_last and c == logits.shape[1] - 1:
            rows.append(torch.zeros(n, len(chosen), dtype=inputs.dtype, device=inputs.device))
            continue
        grads = torch.autograd.grad(logits[:, c].sum(), [es[k] for k in chosen], retain_graph=True,
                                    allow_unused=True)
        rows.append(torch.stack([g if g is not None else torch.zeros(n) for g in grads], dim=1))
    return torch.stack(rows, dim=1).detach(), logits.detach()


def _jacobian_by_func(net, inputs, chosen):
    """The same Jacobian with ``torch.func`` (vmap of jacrev over samples): any module, slower."""
    from torch.func import functional_call, jacrev, vmap

    base = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach() for k, v in net.named_buffers()}
    heads = {k: base[k].reshape(-1)[:1].clone() for k in chosen}

    def predict(h, sample):
        params = dict(base)
        for k, v in h.items():
            params[k] = torch.cat([v, base[k].reshape(-1)[1:]]).reshape(base[k].shape)
        return logits_of(functional_call(net, (params, buffers), (sample.unsqueeze(0),))).squeeze(0)

    jac = vmap(jacrev(predict), in_dims=(None, 0))(heads, inputs)
    with torch.no_grad():
        logits = logits_of(net(inputs))
    return torch.cat([jac[k].reshape(inputs.shape[0], logits.shape[1], -1) for k in chosen], dim=2), logits


def fisher_subset(net: nn.Module, inputs: torch.Tensor, n_tensors: int = 128, exact_func: bool = False):
    """VKDNW's empirical Fisher matrix on its parameter subset, (P, P) in float64.

    The subset: element 0 of each of the first ``n_tensors`` parameter
    tensors in ``named_parameters`` order (their NB201 code's
    ``params_grad_len=128`` with one evenly spaced index per tensor). In eval
    mode (BatchNorm on its running statistics) each sample's logit Jacobian
    J_n (C×P); F = mean_n (L_n J_n)ᵀ (L_n J_n) with L_n of
    ``categorical_cholesky`` (as their code multiplies, L before J). J comes
    from output hooks (Conv2d, Linear, BatchNorm2d parameters) or, for other
    modules or with ``exact_func``, from ``torch.func`` as in their code.
    """
    chosen = [k for k, _ in net.named_parameters()][:n_tensors]
    was = net.training
    net.eval()
    try:
        j, logits = (None, None) if exact_func else _jacobian_by_hooks(net, inputs, chosen, skip_last=True)
        if j is None:
            j, logits = _jacobian_by_func(net, inputs, chosen)
    finally:
        net.train(was)
    a = categorical_cholesky(logits) @ j.double()
    return (a.transpose(1, 2) @ a).mean(dim=0)


def quantile_entropy(eigenvalues: torch.Tensor) -> float:
    """VKDNW's score of a spectrum: entropy of its 10 %..90 % deciles, normalised to sum 1."""
    lam = eigenvalues.double()
    qs = torch.quantile(lam, torch.arange(1, 10, dtype=torch.float64) / 10)
    t = qs / (qs.abs().sum() + 1e-10)
    return float(-(t * torch.log(t + 1e-10)).sum())


def vkdnw_scores(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> dict:
    """``vkdnw`` and ``vkdnw_single`` from one Fisher matrix (see the two functions)."""
    model, _ = peer_copy(net, seed)
    lam = torch.linalg.eigvalsh(fisher_subset(model, inputs.contiguous()))
    ent = quantile_entropy(lam)
    # ent lies in [0, log 9] and log 9 < 3: 3ℵ + ent ranks by ℵ, then by ent (their dense (ℵ, ent) rank)
    return {"vkdnw": ent, "vkdnw_single": 3.0 * len(list(net.parameters())) + ent}


def vkdnw(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> float:
    """VKDNW: entropy of the deciles of the empirical Fisher spectrum.

    Týbl & Neumann, "Training-free Neural Architecture Search through
    Variance of Knowledge of Deep Network Weights", CVPR 2025 (their code's
    ``vkdnw_entropy``): ``quantile_entropy`` of the eigenvalues of
    ``fisher_subset`` on a Kaiming-initialised copy. Scores lie in [0, log 9].
    """
    return vkdnw_scores(net, inputs, targets, loss_fn, seed)["vkdnw"]


def vkdnw_single(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> float:
    """VKDNW_single (Týbl & Neumann, CVPR 2025): rank by the number of parameter
    tensors (the paper's ℵ, their ``vkdnw_dim``), ties broken by ``vkdnw``.

    The value is 3ℵ + ``vkdnw``: ``vkdnw`` lies in [0, log 9] and log 9 < 3,
    so it orders archs exactly as their dense rank of the (ℵ, entropy) tuple.
    """
    return vkdnw_scores(net, inputs, targets, loss_fn, seed)["vkdnw_single"]


def peer_scores(net, inputs, targets, seed: int, names) -> dict:
    """The asked-for per-arch peer scores, sharing AZ-NAS's pass and VKDNW's Fisher matrix."""
    out = {}
    if set(names) & set(AZ_COMPONENTS):
        out.update(aznas_components(net, inputs, targets, seed=seed))
    if set(names) & {"vkdnw", "vkdnw_single"}:
        out.update(vkdnw_scores(net, inputs, targets, seed=seed))
    return {n: out[n] for n in names}


AZ_COMPONENTS = ("az_expressivity", "az_progressivity", "az_trainability")
PER_ARCH = {"az_expressivity": az_expressivity, "az_progressivity": az_progressivity,
            "az_trainability": az_trainability, "vkdnw": vkdnw, "vkdnw_single": vkdnw_single}

# ---------------------------------------------------------------- population level


def _worst_filled(c: np.ndarray) -> np.ndarray:
    """NaN replaced by the column's lowest score (-inf, AZ-NAS's failed term, still ranks below it)."""
    ok = ~np.isnan(c)
    return np.where(ok, c, c[ok].min() if ok.any() else 0.0)


def log_rank_aggregate(columns) -> np.ndarray:
    """Σ_c log(rank_c / N): AZ-NAS's non-linear rank aggregation (ranks 1..N, ties averaged, higher = better).

    An arch must be good on every component to score high: one bad rank
    pulls the sum down by log(rank / N), which is unbounded below.
    """
    from scipy.stats import rankdata

    cols = [np.asarray(c, dtype=np.float64) for c in columns]
    n = len(cols[0])
    # A failed score (NaN: jacov of a net whose output does not depend on its input) ranks
    # with the worst, as VKDNW's code fills it; rankdata would make the whole column NaN.
    cols = [_worst_filled(c) for c in cols]
    return np.sum([np.log(rankdata(c) / n) for c in cols], axis=0)


#: Population-level baselines: name -> (per-arch components, aggregation).
#: AZ-NAS (their NB201 notebook): FLOPs with expressivity, progressivity, trainability.
#: VKDNW_agg (their NB201 analysis code, ``NB201/tss_utils.py`` ``get_scores`` in the
#: repository's history): VKDNW_single (ℵ, then the entropy) with jacov, expressivity,
#: trainability and FLOPs, every term under the authors' Kaiming init
#: (``jacov_kaiming`` lives in ``gpproxy.baselines``).
POPULATION = {
    "aznas": (("flops",) + AZ_COMPONENTS, log_rank_aggregate),
    "vkdnw_agg": (("vkdnw_single", "jacov_kaiming", "az_expressivity", "az_trainability", "flops"),
                  log_rank_aggregate),
}
