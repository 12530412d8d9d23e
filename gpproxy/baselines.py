"""Baseline zero-cost proxies, computed by our own code under one protocol.

``BASELINES`` maps a name to ``fn(net, inputs, targets, loss_fn=None) -> float``
(higher = predicted better, as published). ``net`` is any ``nn.Module`` whose
forward returns logits; ``inputs``/``targets`` are one minibatch. No function
changes ``net``'s weights: those that must (synflow, zen, EZNAS) work on a copy;
the others leave it with no gradients.

Conventions follow NAS-Bench-Suite-Zero (NASLib ``zerocost`` branch,
``naslib/predictors/pruners/measures``), whose published NB201 scores
``experiments/agreement_nbsz.py`` checks us against:

* BatchNorm in training mode (batch statistics), cross-entropy loss, the whole
  batch in one pass (NASLib's ``split_data`` > 1 only after a CUDA OOM);
* per-layer scores are summed over every Conv2d and Linear layer;
* synflow is reported as ``log(score)``, like NASLib's ``ZeroCost.query``;
* ``params``/``flops`` are in millions (tensorwatch conventions, see
  ``gpproxy.spaces.nb201``).

Proxies the default primitive pack can express (snip, grad_norm, l2_norm,
plain) are *defined* by their seed formula in ``primitives/default.py``: the
function here evaluates that formula on one network with every weight kept
(no sampling), so the formula the engine evolves from and the baseline are one
thing. The others are plain functions. The heavier recent proxies (ZiCo, MeCo,
EZNAS's program) live in ``gpproxy.baselines_recent``.

A proxy that cannot be computed (e.g. a degenerate correlation matrix) returns
NaN; ``gpproxy.scoring`` applies NASLib's rule (non-finite -> -1e8) when it
ranks scores.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from .probe import TrainMode, logits_of, loss_or_default, probed_layers

NASLIB_INVALID = -1e8  # NASLib's ZeroCost.query: NaN/inf scores become this

# ---------------------------------------------------------------- helpers


def _without_batchnorm(net: nn.Module) -> nn.Module:
    """Replace every BatchNorm by identity in place (NASLib's ``bn=False`` copy)."""
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                module._modules[name] = nn.Identity()
    return net


def _input_jacobian(net, inputs):
    """(d(sum of logits)/d(inputs) with one row per sample, number of outputs).

    The Jacobian jacov and EPE-NAS use; BN in training mode couples the rows.
    """
    x = inputs.detach().clone().requires_grad_(True)
    with TrainMode(net):
        y = logits_of(net(x))
        (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return grad.detach().reshape(grad.shape[0], -1), y.shape[-1]


# ---------------------------------------------------------------- formula-defined baselines


def seed_formula_scores(net, inputs, targets, names, loss_fn=None, pack="default") -> dict:
    """Scores of several seed formulas of ``pack`` on one net, from one probe pass.

    Every weight row and column is kept, so sum-like reductions are exact
    (scale 1), not the sampled estimates a statistics cache holds.
    """
    from .evaluator import score_on_cache
    from .formula import parse_formula, stats_used
    from .pack import load_pack
    from .probe import ProbeConfig, probe

    p = load_pack(pack)
    trees = {n: parse_formula(p.seeds[n], p) for n in names}
    full = 1 << 40
    cfg = ProbeConfig(act_features=1, weight_rows=full, weight_cols=full)
    records = {"net": probe(net, inputs, targets, cfg, loss_fn=loss_or_default(loss_fn))}
    wanted = set().union(*(stats_used(t) for t in trees.values()))
    scores = score_on_cache(records, ["net"], trees, p, chunk_archs=1, stats=sorted(wanted))
    return {n: float(s[0]) for n, s in scores.items()}


def _seed(name, net, inputs, targets, loss_fn):
    return seed_formula_scores(net, inputs, targets, [name], loss_fn)[name]


def snip(net, inputs, targets, loss_fn=None) -> float:
    """SNIP saliency Σ|W ⊙ ∂L/∂W| over all weights.

    Lee, Ajanthan & Torr, "SNIP: Single-shot Network Pruning based on Connection
    Sensitivity", ICLR 2019; as a NAS proxy: Abdelfattah et al., "Zero-Cost
    Proxies for Lightweight NAS", ICLR 2021. NASLib computes |∂L/∂mask| with a
    mask of ones, which is the same number. Seed formula ``snip``.
    """
    return _seed("snip", net, inputs, targets, loss_fn)


def grad_norm(net, inputs, targets, loss_fn=None) -> float:
    """Σ over layers of ‖∂L/∂W‖_F.

    Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
    Seed formula ``grad_norm``.
    """
    return _seed("grad_norm", net, inputs, targets, loss_fn)


def l2_norm(net, inputs, targets, loss_fn=None) -> float:
    """Σ over layers of ‖W‖_F (needs no data; NAS-Bench-Suite-Zero's ``l2_norm``).

    Krishnakumar et al., "NAS-Bench-Suite-Zero: Accelerating Research on Zero
    Cost Proxies", NeurIPS 2022 Datasets and Benchmarks. Seed formula ``l2_norm``.
    """
    return _seed("l2_norm", net, inputs, targets, loss_fn)


def plain(net, inputs, targets, loss_fn=None) -> float:
    """Σ W ⊙ ∂L/∂W (signed first-order Taylor term).

    Mozer & Smolensky, "Skeletonization", NeurIPS 1989; as a NAS proxy:
    Abdelfattah et al., ICLR 2021 ("plain"). Seed formula ``plain``.
    """
    return _seed("plain", net, inputs, targets, loss_fn)


# ---------------------------------------------------------------- plain functions


def params(net, inputs=None, targets=None, loss_fn=None) -> float:
    """Number of parameters in millions (all of them, BN included, as NASLib counts).

    NAS-Bench-Suite-Zero's ``params`` baseline (Krishnakumar et al., NeurIPS 2022).
    """
    return sum(p.numel() for p in net.parameters()) / 1e6


def flops(net, inputs, targets=None, loss_fn=None) -> float:
    """Forward FLOPs of one image in millions, tensorwatch/NASLib conventions.

    NAS-Bench-Suite-Zero's ``flops`` baseline (Krishnakumar et al., NeurIPS 2022);
    counted by the one hook-based counter of every space
    (``gpproxy.spaces._common.naslib_flops``), which works on any net built from
    Conv2d/Linear/BN/ReLU/pooling leaves.
    """
    from .spaces._common import naslib_flops

    return naslib_flops(net, (1,) + tuple(inputs.shape[1:])) / 1e6


def synflow(net, inputs, targets=None, loss_fn=None) -> float:
    """log Σ|W ⊙ ∂R/∂W| with R = Σ f(1; |θ|): synaptic flow of the linearised net.

    Tanaka et al., "Pruning neural networks without any data by iteratively
    conserving synaptic flow", NeurIPS 2020; as a NAS proxy: Abdelfattah et
    al., ICLR 2021. NASLib conventions: a copy of the net in float64, BatchNorm
    removed, every parameter replaced by its absolute value, one all-ones input
    image, R = sum of the logits; the sum is reported as its log (0 stays 0).
    """
    lin = _without_batchnorm(copy.deepcopy(net)).double()
    with torch.no_grad():
        for p in lin.parameters():
            p.abs_()
    lin.zero_grad(set_to_none=True)
    ones = torch.ones((1,) + tuple(inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    logits_of(lin(ones)).sum().backward()
    total = 0.0
    for _, layer in probed_layers(lin):
        if layer.weight.grad is not None:
            total += float((layer.weight.detach() * layer.weight.grad).abs().sum())
    if total == 0.0:
        return 0.0
    return math.log(total)


def fisher(net, inputs, targets, loss_fn=None) -> float:
    """Σ_l fan_in(l) · Σ_k ½·mean_n (Σ_hw a ⊙ ∂L/∂a)², a = layer output (pre-BN).

    Theis et al., "Faster gaze prediction with dense networks and Fisher
    pruning", 2018; Turner et al., "BlockSwap", ICLR 2020; as a NAS proxy:
    Abdelfattah et al., ICLR 2021. The ``fan_in`` factor is NASLib's: it
    broadcasts each channel's value to all weights of that channel before
    summing.
    """
    loss_fn = loss_or_default(loss_fn)
    layers = probed_layers(net)
    per_channel = {name: None for name, _ in layers}
    handles = []

    def make_hook(name):
        def forward_hook(module, args, out):
            act = out.detach()

            def grad_hook(grad):
                prod = act * grad.detach()
                g_nk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
                del_k = g_nk.pow(2).mean(0).mul(0.5)
                old = per_channel[name]
                per_channel[name] = del_k if old is None else old + del_k

            if out.requires_grad:
                out.register_hook(grad_hook)
        return forward_hook

    for name, module in layers:
        handles.append(module.register_forward_hook(make_hook(name)))
    try:
        with TrainMode(net):
            net.zero_grad(set_to_none=True)
            loss_fn(logits_of(net(inputs)), targets).backward()
    finally:
        for h in handles:
            h.remove()
        net.zero_grad(set_to_none=True)
    total = 0.0
    for name, module in layers:
        ch = per_channel[name]
        if ch is not None:
            total += float(ch.abs().sum()) * module.weight[0].numel()
    return total


def grasp(net, inputs, targets, loss_fn=None) -> float:
    """Σ -W ⊙ (H g): GraSP's gradient-flow saliency with a Hessian-vector product.

    Wang, Zhang & Grosse, "Picking Winning Tickets Before Training by
    Preserving Gradient Flow", ICLR 2020; as a NAS proxy: Abdelfattah et al.,
    ICLR 2021. g = ∂L/∂W of the Conv/Linear weights, Hg = ∂(gᵀ·stopgrad(g))/∂W
    (NASLib's two passes over the same batch give the same g; one pass here).
    """
    loss_fn = loss_or_default(loss_fn)
    weights = [m.weight for _, m in probed_layers(net)]
    with TrainMode(net):
        net.zero_grad(set_to_none=True)
        loss = loss_fn(logits_of(net(inputs)), targets)
        grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        used = [(w, g) for w, g in zip(weights, grads) if g is not None]
        if not used:
            return 0.0
        z = sum((g.detach() * g).sum() for _, g in used)
        hg = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    return float(sum((-w.detach() * h).sum() for (w, _), h in zip(used, hg) if h is not None))


def jacov(net, inputs, targets=None, loss_fn=None) -> float:
    """-Σ_i log(λ_i + k) + 1/(λ_i + k), λ = eigenvalues of the input-Jacobian correlation.

    Mellor et al., "Neural Architecture Search without Training", arXiv
    2006.04647v1 (2020), the Jacobian-covariance score of its first version;
    NASLib's variant (k = 1e-5). The Jacobian is d(Σ logits)/dx per sample.
    """
    jac, _ = _input_jacobian(net, inputs)
    return jacov_from_jacobian(jac)


def jacov_from_jacobian(jac: torch.Tensor) -> float:
    corrs = np.corrcoef(jac.double().cpu().numpy())
    if not np.all(np.isfinite(corrs)):
        return float("nan")
    v = np.linalg.eigvalsh(corrs)
    k = 1e-5
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def epe_nas(net, inputs, targets, loss_fn=None) -> float:
    """Σ_c |Σ log(|corr(J_c)| + k)|: input-Jacobian correlations within each class.

    Lopes, Alirezazadeh & Alexandre, "EPE-NAS: Efficient Performance Estimation
    Without Training for Neural Architecture Search", ICANN 2021, as NASLib
    ports it: J_c stacks the Jacobian rows of the samples labelled c; k = 1e-5.
    With more than 100 outputs the per-class sums are divided by the class
    size and the score is the mean pairwise |s_c - s_c'| instead.
    """
    jac, n_classes = _input_jacobian(net, inputs)
    return epe_from_jacobian(jac, targets, n_classes)


def epe_from_jacobian(jac: torch.Tensor, targets: torch.Tensor, n_classes: int) -> float:
    k = 1e-5
    jac = jac.double().cpu().numpy()
    labels = targets.detach().cpu().numpy()
    if labels.ndim == 2:  # one-hot / soft targets (NASLib's TNB101 hack)
        labels = labels.argmax(1)
    per_class = {}
    for c in dict.fromkeys(labels.tolist()):
        rows = jac[labels == c]
        if len(rows) == 1:
            # NASLib: corrcoef of one row is the scalar 1; len() of it fails,
            # which drops the class in the >100-class branch only.
            if n_classes > 100:
                continue
            per_class[c] = float(np.log(1.0 + k))
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            s = float(np.sum(np.log(np.abs(np.corrcoef(rows)) + k)))
        per_class[c] = s / len(rows) if n_classes > 100 else s
    values = list(per_class.values())
    if n_classes <= 100:
        return float(sum(abs(s) for s in values))
    if not values:
        return 0.0
    return float(sum(abs(a - b) for a in values for b in values) / len(values))


def jacobian_scores(net, inputs, targets, names=("jacov", "epe_nas")) -> dict:
    """jacov and/or epe_nas from one input-Jacobian pass (they use the same Jacobian)."""
    jac, n_classes = _input_jacobian(net, inputs)
    out = {}
    if "jacov" in names:
        out["jacov"] = jacov_from_jacobian(jac)
    if "epe_nas" in names:
        out["epe_nas"] = epe_from_jacobian(jac, targets, n_classes)
    return out


def nwot(net, inputs, targets=None, loss_fn=None) -> float:
    """log|det K_H|, K_H = Σ over ReLUs of binary-code agreement kernels (NASWOT).

    Mellor et al., "Neural Architecture Search without Training", ICML 2021
    (second version). For every ``nn.ReLU`` module, with c = 1[input > 0]
    flattened per sample: K_H += c cᵀ + (1-c)(1-c)ᵀ (NASLib hooks ReLU modules
    too). A net without any (NAS-Bench-Macro calls ``torch.relu``) would get
    K_H = 0, no ranking at all: there the codes are read at the input of every
    Conv2d/Linear layer instead, which follows a ReLU in such spaces.
    """
    n = inputs.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=inputs.device)

    def hook(module, args, out):
        nonlocal kernel
        c = (args[0].detach().reshape(n, -1) > 0).float()
        kernel = kernel + (c @ c.t()).double() + ((1 - c) @ (1 - c).t()).double()

    hooked = [m for m in net.modules() if isinstance(m, nn.ReLU)] or [
        m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in hooked]
    try:
        with TrainMode(net), torch.no_grad():
            net(inputs)
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


def zen(net, inputs, targets=None, loss_fn=None, seed: int = 0, mixup_gamma: float = 1e-2) -> float:
    """log E‖f(x) - f(x + γε)‖₁ + Σ_BN log √mean(running_var), Gaussian-initialised copy.

    Lin et al., "Zen-NAS: A Zero-Shot NAS for High-Performance Image
    Recognition", ICCV 2021, as NASLib ports it: conv/linear weights N(0, 1),
    BN affine 1/0 with fresh running statistics, x and ε Gaussian of the
    minibatch's shape, γ = 0.01, f = the input of the global average pool (the
    pre-GAP feature map), BN in training mode so each of the two forward passes
    updates running_var (momentum 0.1). Randomness comes from ``seed``.
    """
    from .errors import GpproxyError

    gen = torch.Generator(device=inputs.device).manual_seed(int(seed))
    model = copy.deepcopy(net)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, generator=gen)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.reset_running_stats()
    pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise GpproxyError("zen needs a network with a global average pool (nn.AdaptiveAvgPool2d)")
    feats = []
    handle = pools[-1].register_forward_pre_hook(lambda m, args: feats.append(args[0]))
    x = torch.randn(inputs.shape, generator=gen, device=inputs.device, dtype=inputs.dtype)
    eps = torch.randn(inputs.shape, generator=gen, device=inputs.device, dtype=inputs.dtype)
    try:
        with TrainMode(model), torch.no_grad():
            model(x)
            model(x + mixup_gamma * eps)
    finally:
        handle.remove()
    diff = (feats[0] - feats[1]).abs().sum(dim=tuple(range(1, feats[0].dim()))).mean()
    log_bn = sum(float(torch.log(torch.sqrt(torch.mean(m.running_var))))
                 for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.running_var is not None)
    return float(torch.log(diff)) + log_bn


def jacov_kaiming(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> float:
    """jacov on a copy with AZ-NAS/VKDNW's Kaiming-normal fan-in init (``baselines_peers.peer_copy``).

    VKDNW's NB201 ``compute_jacov_score`` (Týbl & Neumann, CVPR 2025)
    re-initialises with ``kaiming_norm_fanin`` before NASWOT's Jacobian
    covariance score; this is the jacov term of ``vkdnw_agg``.
    """
    from .baselines_peers import peer_copy

    return jacov(peer_copy(net, seed)[0], inputs, targets)


def _registry() -> dict:
    from . import baselines_recent as recent
    from .baselines_peers import PER_ARCH

    return {
        "synflow": synflow, "snip": snip, "grad_norm": grad_norm, "fisher": fisher,
        "grasp": grasp, "jacov": jacov, "nwot": nwot, "zen": zen, "params": params,
        "flops": flops, "l2_norm": l2_norm, "plain": plain, "epe_nas": epe_nas,
        "zico": recent.zico, "meco": recent.meco,
        "eznas_preact_grad": recent.eznas_preact_grad,
        "eznas_wgrad_noise": recent.eznas_wgrad_noise,
        **PER_ARCH, "jacov_kaiming": jacov_kaiming,
    }


BASELINES = _registry()

#: The 13 proxies NAS-Bench-Suite-Zero published for NB201.
NBSZ_PROXIES = ("epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm",
                "nwot", "params", "plain", "snip", "synflow", "zen")

#: Baselines defined by a seed formula of the default pack (one probe serves all).
FORMULA_DEFINED = ("snip", "grad_norm", "l2_norm", "plain")
