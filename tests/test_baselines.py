"""Baselines: finite and deterministic on small real nets, exact on hand-checkable ones."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gpproxy.baselines import BASELINES, FORMULA_DEFINED, NBSZ_PROXIES, epe_from_jacobian, jacobian_scores
from gpproxy.baselines_peers import PER_ARCH
from gpproxy.baselines_recent import eznas_program, eznas_scores, relu_conv_bn_groups
from gpproxy.pack import load_pack
from gpproxy.spaces import get_space, nb201

SEEDED = ("zen", "eznas_wgrad_noise")  # use random draws of their own, fixed by `seed`
ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _nb201(classes=10):
    """A real NB201 network, narrowed (C=8) and shortened (1 cell per stage) for speed."""
    torch.manual_seed(0)
    return nb201.init_weights(nb201.build_network(ARCH, classes, C=8, N=1))


def _batch(n=8, classes=10, res=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, res, res, generator=g), torch.randint(0, classes, (n,), generator=g)


class TinyCNN(nn.Module):
    """Not NB201: stem, one ReLU-Conv-BN op, global pool, classifier."""

    def __init__(self, classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.op(self.stem(x))), 1))


def test_registry_covers_the_issue():
    want = (set(NBSZ_PROXIES) | {"zico", "meco", "eznas_preact_grad", "eznas_wgrad_noise", "jacov_kaiming"}
            | set(PER_ARCH))
    assert set(BASELINES) == want
    for name, fn in BASELINES.items():
        assert fn.__doc__ and any(ch.isdigit() for ch in fn.__doc__), f"{name}: cite the paper (year)"


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_finite_deterministic_and_leaves_net_alone(name):
    fn = BASELINES[name]
    x, y = _batch()
    net = _nb201()
    before = {k: v.clone() for k, v in net.state_dict().items() if not k.endswith(("running_mean", "running_var",
                                                                                 "num_batches_tracked"))}
    a = fn(net, x, y)
    assert isinstance(a, float) and math.isfinite(a), f"{name} gave {a}"
    b = fn(_nb201(), x, y)
    assert a == pytest.approx(b, rel=1e-6, abs=1e-9), f"{name} is not deterministic"
    after = net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items()), f"{name} changed the weights"
    assert all(p.grad is None for p in net.parameters()), f"{name} left gradients behind"
    assert net.training  # mode restored (nets are built in training mode)


@pytest.mark.parametrize("name", SEEDED)
def test_seeded_baselines_follow_their_seed(name):
    x, y = _batch()
    fn = BASELINES[name]
    assert fn(_nb201(), x, y, seed=1) == fn(_nb201(), x, y, seed=1)
    assert fn(_nb201(), x, y, seed=1) != fn(_nb201(), x, y, seed=2)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_runs_on_a_non_nb201_net(name):
    torch.manual_seed(0)
    x, y = _batch(n=6, classes=5, res=8)
    value = BASELINES[name](TinyCNN(), x, y)
    assert math.isfinite(value)


# ---------------------------------------------------------------- hand computations


def _linear_net():
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))


def test_params_flops_synflow_l2_on_a_linear_net():
    net = _linear_net()
    w, v = net[1].weight.detach(), net[2].weight.detach()
    x = torch.randn(5, 1, 2, 2)
    y = torch.tensor([0, 1, 0, 1, 1])
    assert BASELINES["params"](net, x, y) == (12 + 6) / 1e6
    assert BASELINES["flops"](net, x, y) == (4 * 3 + 3 * 2) / 1e6  # in*out per Linear, per image
    # All-ones input through |W|, |V|: R = 1ᵀ|V||W|1, and each layer's Σ|θ ⊙ ∂R/∂θ| equals R.
    r = float(torch.ones(2, dtype=torch.float64) @ v.abs().double() @ w.abs().double() @ torch.ones(4).double())
    assert BASELINES["synflow"](net, x, y) == pytest.approx(math.log(2 * r), rel=1e-12)
    assert BASELINES["l2_norm"](net, x, y) == pytest.approx(float(w.norm() + v.norm()), rel=1e-6)


def test_params_and_flops_of_an_nb201_net_match_the_suite():
    """NB201 index 2631 = NASLib (4, 0, 3, 1, 4, 3): the suite lists 0.129306 / 19.248832."""
    net = get_space("nb201").build("(4, 0, 3, 1, 4, 3)", 10)
    x, y = _batch(n=2, res=32)
    assert BASELINES["params"](net, x, y) == pytest.approx(0.129306, abs=5e-7)
    assert BASELINES["flops"](net, x, y) == pytest.approx(19.248832, abs=5e-7)


def test_formula_defined_baselines_are_exact():
    """The seed formulas, evaluated with every weight kept, equal direct autograd sums."""
    pack = load_pack("default")
    assert set(FORMULA_DEFINED) <= set(pack.seeds)
    net = TinyCNN()
    x, y = _batch(n=6, classes=5, res=8)
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    ws = [(m.weight.detach(), m.weight.grad) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    direct = {"snip": sum(float((w * g).abs().sum()) for w, g in ws),
              "grad_norm": sum(float(g.norm()) for _, g in ws),
              "l2_norm": sum(float(w.norm()) for w, _ in ws),
              "plain": sum(float((w * g).sum()) for w, g in ws)}
    net.zero_grad(set_to_none=True)
    for name in FORMULA_DEFINED:
        assert BASELINES[name](net, x, y) == pytest.approx(direct[name], rel=1e-4, abs=1e-7), name


def test_grasp_equals_an_explicit_hessian_vector_product():
    net = _linear_net()
    x, y = torch.randn(5, 1, 2, 2), torch.tensor([0, 1, 0, 1, 1])
    ws = [net[1].weight, net[2].weight]
    flat = torch.cat([w.detach().reshape(-1) for w in ws])

    def loss_of(theta):
        a, b = theta[:12].reshape(3, 4), theta[12:].reshape(2, 3)
        return nn.functional.cross_entropy(x.reshape(5, 4) @ a.t() @ b.t(), y)

    g = torch.autograd.functional.jacobian(loss_of, flat)
    h = torch.autograd.functional.hessian(loss_of, flat)
    assert BASELINES["grasp"](net, x, y) == pytest.approx(float(-(flat * (h @ g)).sum()), rel=1e-4)


def test_fisher_by_hand_on_a_linear_layer():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.randn(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    a = net(x)  # the Linear output is the logits
    grad = torch.autograd.grad(nn.functional.cross_entropy(a, y), a)[0]
    per_channel = 0.5 * (a.detach() * grad).pow(2).mean(0)
    assert BASELINES["fisher"](net, x, y) == pytest.approx(float(per_channel.sum()) * 4, rel=1e-5)


def test_nwot_counts_binary_code_agreements():
    """One ReLU on 3 features: K[i,j] = number of features where both signs agree."""
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    x = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -2.0]]).reshape(2, 1, 1, 3)
    k = torch.tensor([[3.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    assert BASELINES["nwot"](net, x, None) == pytest.approx(float(torch.logdet(k)))


def test_nwot_without_relu_modules_reads_layer_inputs():
    """Functional ReLUs (NAS-Bench-Macro): the codes of each Linear layer's input, not an empty kernel."""
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(torch.relu(x.flatten(1)))

    net = Functional()
    x = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -2.0]]).reshape(2, 1, 1, 3)
    # the Linear's input is relu(x): codes [1,0,1] and [1,1,0] agree on 1 of 3 features
    k = torch.tensor([[3.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    assert BASELINES["nwot"](net, x, None) == pytest.approx(float(torch.logdet(k)))


def test_jacobian_proxies_share_one_pass():
    net, (x, y) = _nb201(), _batch()
    both = jacobian_scores(net, x, y)
    assert both["jacov"] == pytest.approx(BASELINES["jacov"](net, x, y))
    assert both["epe_nas"] == pytest.approx(BASELINES["epe_nas"](net, x, y))


def test_epe_nas_classes():
    """Singleton classes add log(1+k) up to 100 outputs and are dropped above (NASLib)."""
    jac = torch.randn(4, 7, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 2])
    pair = abs(float(torch.log(torch.corrcoef(jac[:2]).abs() + 1e-5).sum()))
    assert epe_from_jacobian(jac, y, 10) == pytest.approx(pair + 2 * math.log(1 + 1e-5))
    assert epe_from_jacobian(jac, y, 120) == 0.0  # one class left: no pairs


def test_eznas_program_and_groups():
    # sign matrices: det 4 -> sigmoid(log 4) = 0.8; det -4 -> NaN -> 0 -> 0.5; det 0 -> -inf -> 0.
    pos = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
    mats = torch.stack([pos, pos[[1, 0, 2]], torch.ones(3, 3)]) * torch.rand(3, 3, 3).add(0.5)
    assert float(eznas_program(mats)) == pytest.approx(math.sqrt(0.8 ** 2 + 0.5 ** 2))
    groups = relu_conv_bn_groups(_nb201())
    # ARCH has 3 conv edges per cell x 3 cells + 2 per reduction block x 2.
    assert len(groups) == 3 * 3 + 4
    both = eznas_scores(_nb201(), *_batch())
    assert both["eznas_preact_grad"] == BASELINES["eznas_preact_grad"](_nb201(), *_batch())
