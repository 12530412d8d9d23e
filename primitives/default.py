"""The default primitive pack: statistics of one data pass, guarded ops.

Every function uses only torch and its arguments (exports copy the source).
Reductions receive ``scale`` = numel(full tensor) / numel(sample), so ``sum``,
``l1`` and ``frob`` estimate the full layer's value, not the sample's. When one
of ``sum``, ``l1``, ``frob``, ``mean`` is applied to a statistic itself (e.g.
``frob(W)``), its ``exact_*`` twin computes the full layer's value exactly from
cached moments instead; so do ``logdet`` and ``hamming`` of an activation
statistic (``hamming(A)``), from kernels of the full activation.
"""
import torch

from gpproxy.pack import MATRIX, Input, Output, Pack, Weight

PACK = Pack(
    name="default",
    stats={"W": Weight, "dW": Weight, "A": Input, "Z": Output, "dZ": Output},
    layer_terminals=("params", "fan_in", "out_channels", "out_numel"),
    constants=(0.5, 1.0, 2.0),
    doc="weights, weight gradients, input/output activations and output gradients of one pass",
    stat_latex={"W": "W", "dW": r"\nabla W", "A": "A", "Z": "Z", "dZ": r"\nabla Z"},
)

# ------------------------------------------------------------------ unary


@PACK.unary("abs", math="|{0}|", latex=r"\left|{0}\right|")
def abs_(x):
    """absolute value, element-wise."""
    return x.abs()


@PACK.unary("square", math="({0})²", latex=r"\left({0}\right)^2")
def square(x):
    """square, element-wise (capped at 1e30)."""
    return x.square().clamp_(max=1e30)


@PACK.unary("sqrt", math="√|{0}|", latex=r"\sqrt{{\left|{0}\right|}}")
def sqrt(x):
    """square root of the absolute value, element-wise."""
    return x.abs().sqrt_()


@PACK.unary("log", math="log|{0}|", latex=r"\log\left|{0}\right|")
def log(x):
    """log(|x| + 1e-8), element-wise."""
    # log(|x| + eps): dead layers have exact zeros (log 0 = -inf).
    return x.abs().add_(1e-8).log_()


@PACK.unary("exp", math="exp({0})", latex=r"e^{{{0}}}")
def exp(x):
    """exp of x clipped to [-30, 30], element-wise."""
    return x.clamp(-30.0, 30.0).exp_()


@PACK.unary("relu", math="relu({0})", latex=r"\max(0, {0})")
def relu(x):
    """max(0, x), element-wise."""
    return x.clamp(min=0.0)


@PACK.unary("sigmoid", math="σ({0})", latex=r"\sigma({0})")
def sigmoid(x):
    """logistic sigmoid 1 / (1 + exp(-x)), element-wise."""
    return torch.sigmoid(x)


@PACK.unary("sign", math="sign({0})", latex=r"\operatorname{{sign}}({0})")
def sign(x):
    """sign (-1, 0 or 1), element-wise."""
    return torch.sign(x)


@PACK.unary("neg", math="-({0})", latex=r"-\left({0}\right)")
def neg(x):
    """-x, element-wise."""
    return -x


@PACK.unary("inv", math="1/({0})", latex=r"\frac{{1}}{{{0}}}")
def inv(x):
    """1/x with |x| raised to at least 1e-6 (sign kept), element-wise."""
    # Guarded reciprocal: |x| < 1e-6 is treated as ±1e-6 (sign kept, +0 -> +).
    # In-place on fresh temporaries: each extra pass over a large bucket costs
    # as much as the op itself.
    return x.abs().clamp_(min=1e-6).copysign_(x).reciprocal_()


@PACK.unary("normalize", on=MATRIX, math="norm({0})", latex=r"\operatorname{{norm}}({0})")
def normalize(x):
    """each layer's sample shifted to zero mean and scaled to unit variance."""
    # Standardise each layer's sample (zero mean, unit variance).
    # (torch.std_mean over dims (1, 2) is several times slower on CPU.)
    d = x - x.mean(dim=(1, 2), keepdim=True)
    sd = d.square().mean(dim=(1, 2), keepdim=True).sqrt_()
    return d.div_(sd.add_(1e-8))


# ------------------------------------------------------------------ binary


@PACK.binary("add", math="({0} + {1})", latex=r"\left({0} + {1}\right)")
def add(x, y):
    """x + y, element-wise."""
    return x + y


@PACK.binary("sub", math="({0} − {1})", latex=r"\left({0} - {1}\right)")
def sub(x, y):
    """x - y, element-wise."""
    return x - y


@PACK.binary("mul", math="({0} ⊙ {1})", latex=r"\left({0} \odot {1}\right)", product=True)
def mul(x, y):
    """x * y, element-wise (the Hadamard product)."""
    return (x * y).clamp_(-1e30, 1e30)


@PACK.binary("div", math="({0} ⊘ {1})", latex=r"\frac{{{0}}}{{{1}}}")
def div(x, y):
    """x / y with |y| raised to at least 1e-6 (sign kept), element-wise."""
    # |y| < 1e-6 is treated as ±1e-6 (sign kept, +0 -> +), as in inv.
    safe = y.abs().clamp_(min=1e-6).copysign_(y)
    return (x / safe).clamp_(-1e30, 1e30)


# ------------------------------------------------------------------ reductions
# exact_*(m): the reduction of the FULL tensor from its moments m, (L, k) float64
# rows [sum, sum |x|, sum x², numel] (+ [logdet, hamming] kernels of activations:
# gpproxy.probe.kernel_moments computes exactly logdet/hamming below on the whole tensor). The sampled estimates are unbiased but
# noisy (sampled l2_norm ranks archs with Kendall tau 0.90 against full tensors).
# Clamped to float32's range: results are stored as float32.


def exact_mean(m):
    return (m[:, 0] / m[:, 3].clamp(min=1.0)).clamp(-1e30, 1e30)


def exact_sum(m):
    return m[:, 0].clamp(-1e30, 1e30)


def exact_l1(m):
    return m[:, 1].clamp(0.0, 1e30)


def exact_frob(m):
    return m[:, 2].clamp(0.0, 1e30).sqrt()


@PACK.reduce("mean", math="mean[{0}]", latex=r"\overline{{{0}}}", exact=exact_mean)
def mean(x, scale):
    """mean of the layer's entries."""
    return x.mean(dim=(1, 2))


@PACK.reduce("sum", math="Σ[{0}]", latex=r"\sum {0}", exact=exact_sum)
def sum_(x, scale):
    """sum of the layer's entries (of the full tensor)."""
    return x.sum(dim=(1, 2)) * scale


@PACK.reduce("l1", math="‖{0}‖₁", latex=r"\left\|{0}\right\|_1", exact=exact_l1)
def l1(x, scale):
    """sum of absolute values of the layer's entries (L1 norm of the full tensor)."""
    return x.abs().sum(dim=(1, 2)) * scale


@PACK.reduce("frob", math="‖{0}‖", latex=r"\left\|{0}\right\|_F", exact=exact_frob)
def frob(x, scale):
    """square root of the sum of squares of the layer's entries (Frobenius norm)."""
    return (torch.linalg.vector_norm(x, dim=(1, 2)).square() * scale).clamp(max=1e30).sqrt()


@PACK.reduce("std", math="std[{0}]", latex=r"\operatorname{{std}}({0})")
def std(x, scale):
    """standard deviation of the layer's sampled entries."""
    return (x - x.mean(dim=(1, 2), keepdim=True)).square_().mean(dim=(1, 2)).sqrt_()


@PACK.reduce("snr", math="snr[{0}]", latex=r"\operatorname{{snr}}({0})")
def snr(x, scale):
    """mean over columns of |mean| / std across rows (ZiCo's signal-to-noise ratio)."""
    # Mean over columns of |mean| / std across rows (rows = batch samples for
    # activations): ZiCo's signal-to-noise idea on sampled features.
    mu = x.mean(dim=1, keepdim=True)
    sd = (x - mu).square_().mean(dim=1).sqrt_()
    return (mu.squeeze(1).abs_() / sd.add_(1e-8)).clamp_(max=1e8).mean(dim=1)


def exact_logdet(m):
    return m[:, 4].clamp(-1e6, 1e6)


def exact_hamming(m):
    return m[:, 5].clamp(-1e6, 1e6)


@PACK.reduce("logdet", math="logdet[{0}{0}ᵀ]", latex=r"\log\det\left({0}{0}^\top\right)",
             exact=exact_logdet, exact_cols=6)
def logdet(x, scale):
    """log-determinant of the row kernel X X^T / columns + 1e-3 I (rows: batch samples for activations)."""
    # log-determinant of the row kernel (rows = samples for activations),
    # normalised by the number of columns and ridge-regularised.
    k = x @ x.transpose(1, 2) / x.shape[2]
    k = k + 1e-3 * torch.eye(k.shape[1], dtype=k.dtype, device=k.device)
    return torch.linalg.slogdet(k.double()).logabsdet.float().clamp(-1e6, 1e6)


@PACK.reduce("hamming", math="logdet K_H[{0}]", latex=r"\log\det K_H\left({0}\right)",
             exact=exact_hamming, exact_cols=6)
def hamming(x, scale):
    """log-determinant of NASWOT's Hamming kernel K_H + 1e-3 I, K_H[i, j] = number of columns where rows i and j agree on x > 0."""
    # NASWOT's kernel on binary codes (x > 0): agreements between two rows.
    # Agreements c·cᵀ + (1-c)·(1-c)ᵀ = cols + 2 c·cᵀ - r_i - r_j (r: row sums):
    # one batched matmul instead of two; exact for 0/1 entries.
    c = (x > 0).to(x.dtype)
    r = c.sum(dim=2)
    k = 2 * (c @ c.transpose(1, 2)) - r.unsqueeze(2) - r.unsqueeze(1) + c.shape[2]
    k = k + 1e-3 * torch.eye(k.shape[1], dtype=k.dtype, device=k.device)
    return torch.linalg.slogdet(k.double()).logabsdet.float().clamp(-1e6, 1e6)


# ------------------------------------------------------------------ aggregation


@PACK.aggregate("sum_layers", math="Σ_l {0}", latex=r"\sum_{{l}} {0}", additive=True)
def sum_layers(v, seg, counts):
    """sum over the network's layers."""
    return torch.zeros_like(counts).index_add(0, seg, v)


@PACK.aggregate("mean_layers", math="mean_l {0}", latex=r"\frac{{1}}{{L}}\sum_{{l}} {0}")
def mean_layers(v, seg, counts):
    """mean over the network's layers."""
    return torch.zeros_like(counts).index_add(0, seg, v) / counts.clamp(min=1)


@PACK.aggregate("max_layers", math="max_l {0}", latex=r"\max_{{l}} {0}")
def max_layers(v, seg, counts):
    """maximum over the network's layers."""
    init = torch.full_like(counts, -1e30)
    return init.scatter_reduce(0, seg, v, reduce="amax", include_self=True)


# Known proxies in this vocabulary (population seeds; see gpproxy.baselines).
PACK.seed("snip", "sum_layers(l1(mul(W, dW)))")  # defines baselines.snip (exact with all weights kept)
PACK.seed("grad_norm", "sum_layers(frob(dW))")  # defines baselines.grad_norm
PACK.seed("l2_norm", "sum_layers(frob(W))")  # defines baselines.l2_norm
PACK.seed("plain", "sum_layers(sum(mul(W, dW)))")  # defines baselines.plain
PACK.seed("params_conv_linear", "sum_layers(params)")  # Conv/Linear only; baselines.params counts BN too
PACK.seed("nwot_layerwise", "sum_layers(hamming(A))")  # per-layer logdet; NASWOT sums kernels first
PACK.seed("fisher_like", "sum_layers(sum(square(mul(Z, dZ))))")  # not Fisher: no per-channel sum
