"""Recent baselines: ZiCo (ICLR 2023), MeCo (NeurIPS 2023) and EZNAS's program (NeurIPS 2022).

Same contract as ``gpproxy.baselines``: ``fn(net, inputs, targets, loss_fn=None)
-> float``, higher = predicted better, ``net`` left unchanged.
"""
from __future__ import annotations

import copy
import math
import warnings

import torch
from torch import nn

from .probe import TrainMode, logits_of, loss_or_default, probed_layers


# ---------------------------------------------------------------- ZiCo


def zico(net, inputs, targets, loss_fn=None, splits: int = 2) -> float:
    """Σ_l log Σ_θ mean|g_θ| / std(g_θ) over ``splits`` equal parts of the minibatch.

    Li, Yang, Bhardwaj & Marculescu, "ZiCo: Zero-shot NAS via Inverse
    Coefficient of Variation on Gradients", ICLR 2023. As in the authors' code
    (and AZ-NAS's NB201 port, which zeroes gradients between batches), each
    part gets its own forward/backward with cross-entropy; mean and population
    std are taken over the parts per weight; weights whose std is 0 are left
    out, and a layer whose sum is 0 (or that never receives a gradient) adds
    nothing. The official code iterates over 2 loader batches; we split one.
    """
    loss_fn = loss_or_default(loss_fn)
    layers = probed_layers(net)
    grads = {name: [] for name, _ in layers}
    n = inputs.shape[0]
    with TrainMode(net):
        for s in range(splits):
            lo, hi = s * n // splits, (s + 1) * n // splits
            net.zero_grad(set_to_none=True)
            loss_fn(logits_of(net(inputs[lo:hi])), targets[lo:hi]).backward()
            for name, module in layers:
                if module.weight.grad is not None:
                    grads[name].append(module.weight.grad.detach().reshape(-1).double().clone())
    net.zero_grad(set_to_none=True)
    score = 0.0
    for gs in grads.values():
        if len(gs) < splits:
            continue
        g = torch.stack(gs)
        std = g.std(dim=0, unbiased=False)
        keep = std != 0
        total = float((g.abs().mean(dim=0)[keep] / std[keep]).sum())
        if total != 0.0:
            score += math.log(total)
    return score


# ---------------------------------------------------------------- MeCo


def meco(net, inputs, targets=None, loss_fn=None) -> float:
    """Σ over modules of λ_min(corr of the first sample's feature-map channels).

    Jiang, Wang & Bie, "Zero-Shot Neural Architecture Search with One Data and
    Single Forward Pass via Minimum Eigenvalue of Correlation" (MeCo), NeurIPS
    2023. As in the authors' code: a forward hook on *every* module (containers
    included), the output of sample 0 reshaped to (channels, -1), Pearson
    correlation between channels with NaN/inf set to 0, its smallest
    eigenvalue; NaN results are dropped. BN is in training mode over the whole
    minibatch (only sample 0's features are scored).
    """
    values = []

    def hook(module, args, out):
        if not isinstance(out, torch.Tensor) or out.dim() < 2:
            return
        fea = out[0].detach().double()
        fea = fea.reshape(fea.shape[0], -1)
        corr = torch.corrcoef(fea)
        corr = torch.where(torch.isfinite(corr), corr, torch.zeros_like(corr))
        values.append(torch.linalg.eigvalsh(corr).min())

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        # corrcoef of a (C, 1) map (logits, pooled features) warns and gives
        # NaN, which becomes 0 as in the authors' code.
        with TrainMode(net), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            net(inputs)
    finally:
        for h in handles:
            h.remove()
    v = torch.stack(values) if values else torch.zeros(1, dtype=torch.float64)
    return float(v[~torch.isnan(v)].sum())


# ---------------------------------------------------------------- EZNAS


def _eznas_init(model: nn.Module, gen: torch.Generator) -> None:
    """EZNAS's ``initialize_module``: Kaiming-normal (fan_out) convs, N(0, 0.01) linears."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01, generator=gen)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def relu_conv_bn_groups(net: nn.Module) -> list:
    """(ReLU, Conv2d, BatchNorm2d) triples, consecutive in module order.

    EZNAS's ``create_layer_sequence`` keeps the same groups on NB201: the cell
    and reduction-block ReLU-Conv-BN ops, not the stem, the residual 1x1 conv
    or the classifier.
    """
    mods = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.Conv2d, nn.BatchNorm2d))]
    return [tuple(mods[i:i + 3]) for i in range(len(mods) - 2)
            if isinstance(mods[i], nn.ReLU) and isinstance(mods[i + 1], nn.Conv2d)
            and type(mods[i + 2]) is nn.BatchNorm2d]


def eznas_program(t: torch.Tensor) -> torch.Tensor:
    """EZNAS's NB201 program on one tensor: frob(sigmoid(logdet(sign(t)))).

    ``logdet`` works on the trailing square matrices (H×W of a feature-map
    gradient, kh×kw of a conv-weight gradient); as in EZNAS's OP20, NaN (a
    negative determinant) becomes 0 while -inf (a singular matrix) is kept, so
    sigmoid maps det>0 to ~1, det<0 to 0.5 and det=0 to 0.
    """
    ld = torch.logdet(torch.sign(t).double())
    ld = torch.where(torch.isnan(ld), torch.zeros_like(ld), ld)
    return torch.linalg.norm(torch.sigmoid(ld).flatten())


def _eznas_pass(model, x, groups):
    """Backward of Σ pre-classifier features; per group (∂/∂ReLU input, ∂/∂conv weight)."""
    relu_out, relu_grad = {}, {}

    def make_hook(i):
        def hook(module, args, out):
            if i in relu_out or not out.requires_grad:
                return
            relu_out[i] = out.detach()
            out.register_hook(lambda g: relu_grad.__setitem__(i, g.detach()))
        return hook

    handles = [g[0].register_forward_hook(make_hook(i)) for i, g in enumerate(groups)]
    try:
        model.zero_grad(set_to_none=True)
        x = x.detach().clone().requires_grad_(True)
        # EZNAS backpropagates from TinyNetwork's first output, the pooled
        # features before the classifier; nets without ``features`` use logits.
        out = model.features(x) if callable(getattr(model, "features", None)) else logits_of(model(x))
        out.backward(torch.ones_like(out))
    finally:
        for h in handles:
            h.remove()
    results = []
    for i, (_, conv, _) in enumerate(groups):
        # ReLU backward is grad_out * 1[out > 0]: the gradient w.r.t. this
        # ReLU's own input even when that input also feeds other ops.
        g_in = relu_grad[i] * (relu_out[i] > 0) if i in relu_grad else None
        g_w = conv.weight.grad.detach().clone() if conv.weight.grad is not None else None
        results.append((g_in, g_w))
    model.zero_grad(set_to_none=True)
    return results


def _eznas_score(tensors) -> float:
    """Mean over groups of the program; a group without a gradient scores 0 (as in EZNAS)."""
    values = []
    for t in tensors:
        if t is None:
            values.append(0.0)
            continue
        if t.dim() < 2 or t.shape[-1] != t.shape[-2]:
            continue  # EZNAS skips layers where the program raises (non-square)
        values.append(float(eznas_program(t)))
    return sum(values) / len(values) if values else 0.0


def eznas_scores(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> dict:
    """Both readings of EZNAS's program from one copy of the net (see the two functions)."""
    gen = torch.Generator(device=inputs.device).manual_seed(int(seed))
    model = copy.deepcopy(net)
    _eznas_init(model, gen)
    groups = relu_conv_bn_groups(model)
    noise = torch.randn(inputs.shape, generator=gen, device=inputs.device, dtype=inputs.dtype)
    with TrainMode(model):
        data = _eznas_pass(model, inputs, groups)
        noisy = _eznas_pass(model, noise, groups)
    return {"eznas_preact_grad": _eznas_score([g for g, _ in data]),
            "eznas_wgrad_noise": _eznas_score([w for _, w in noisy])}


def eznas_preact_grad(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> float:
    """EZNAS's NB201 program on the gradient w.r.t. each ReLU-Conv-BN group's pre-ReLU input.

    Akhauri, Munoz, Jain & Iyer, "EZNAS: Evolving Zero-Cost Proxies For Neural
    Architecture Scoring", NeurIPS 2022. The program EZNAS's ``verify_scores.py``
    evaluates (``get_individual('darts')``) is
    OP18(OP29(OP20(OP14(ARG8)))) = frob(sigmoid(logdet(sign(ARG8)))), averaged
    over ReLU-Conv-BN groups. This reading of ARG8 is what the code computes:
    ``populate`` fills argument i with statistic ``fixed_ordering[i - 1]`` of
    the per-layer dict, i.e. ``inpactgraddata``, the gradient (from a backward
    of Σ pooled features, data minibatch) w.r.t. the input of the group's
    ReLU. EZNAS conventions: Kaiming-normal fan_out init on a copy, BN in
    training mode.
    """
    return eznas_scores(net, inputs, targets, loss_fn, seed)["eznas_preact_grad"]


def eznas_wgrad_noise(net, inputs, targets=None, loss_fn=None, seed: int = 0) -> float:
    """EZNAS's NB201 program on each group's conv-weight gradient under Gaussian-noise input.

    Same paper and program as ``eznas_preact_grad``; this reading takes ARG8
    as entry 8 of EZNAS's ``dataset_order`` list, ``wtgradnoise``: ∂(Σ pooled
    features)/∂W of the group's conv for an N(0, 1) input batch (drawn from
    ``seed``). Then logdet acts on each kh×kw kernel slice, so 1×1 convs only
    count non-zero signs.
    """
    return eznas_scores(net, inputs, targets, loss_fn, seed)["eznas_wgrad_noise"]
