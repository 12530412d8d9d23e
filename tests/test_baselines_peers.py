"""AZ-NAS and VKDNW (gpproxy.baselines_peers): hand-checkable components, the
population-level aggregation, and their use through score/bench with the store."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gpproxy.baselines_peers import (POPULATION, _trainability_term, aznas_components, categorical_cholesky,
                                     fisher_subset, log_rank_aggregate, quantile_entropy, spectral_entropy,
                                     stage_features)
from gpproxy.cli import main
from gpproxy.scoring import Protocol, run_bench, run_score
from gpproxy.scoring.proxies import per_arch, resolve_proxy
from gpproxy.spaces import nb201

from .conftest import synthetic_accuracy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- AZ-NAS components


def _as_map(x: torch.Tensor) -> torch.Tensor:
    """(n, c) samples as a (n, c, 1, 1) feature map: every position a sample."""
    return x.reshape(x.shape[0], x.shape[1], 1, 1)


def test_expressivity_isotropic_vs_rank_one():
    c = 6
    iso = torch.cat([torch.eye(c), -torch.eye(c)]) * 3.0  # mean 0, covariance 9/c · I
    assert spectral_entropy(_as_map(iso)) == pytest.approx(math.log(c), abs=1e-6)
    v = torch.randn(40, 1, generator=torch.Generator().manual_seed(0))
    rank1 = v * torch.arange(1.0, c + 1)  # every channel a multiple of one signal
    assert spectral_entropy(_as_map(rank1)) == pytest.approx(0.0, abs=1e-6)
    two = torch.cat([torch.eye(2), -torch.eye(2)])  # two equal directions, padded with zero channels
    assert spectral_entropy(_as_map(torch.cat([two, torch.zeros(4, c - 2)], 1))) == pytest.approx(math.log(2), abs=1e-6)


def test_trainability_term_of_a_linear_block_by_hand():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 1, bias=False)
    f_in = torch.randn(4, 3, 2, 2, requires_grad=True)
    f_out = conv(f_in)
    got = _trainability_term(f_out, f_in, torch.Generator().manual_seed(7))
    g = (torch.bernoulli(torch.full(f_out.shape, 0.5), generator=torch.Generator().manual_seed(7)) - 0.5) * 2
    w = conv.weight.detach()[:, :, 0, 0].double()  # (5, 3): g_in = Wᵀ g at every position
    g_rows = g.permute(0, 2, 3, 1).reshape(-1, 5).double()
    mat = (g_rows @ w).T @ g_rows / g_rows.shape[0]
    smax = float(torch.linalg.svdvals(mat).max())
    assert got == pytest.approx(-smax - 1 / (smax + 1e-6) + 2, rel=1e-6)  # autograd in float32


class _Staged(nn.Module):
    def __init__(self, cells):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.cells = nn.ModuleList(cells)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        for m in [self.stem, *self.cells]:
            x = m(x)
        return self.fc(x.mean(dim=(2, 3)))


def test_components_sum_and_difference_the_stage_entropies():
    torch.manual_seed(0)
    net = _Staged([nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)), nn.Identity()])
    x = torch.randn(6, 3, 5, 5)
    got = aznas_components(net, x, seed=3)
    assert got["az_trainability"] == -math.inf  # an identity block, as AZ-NAS scores it
    from gpproxy.baselines_peers import peer_copy

    model, _ = peer_copy(net, 3)
    ent = [spectral_entropy(f) for f in stage_features(model, x)]
    assert len(ent) == 3
    assert got["az_expressivity"] == pytest.approx(sum(ent))
    assert got["az_progressivity"] == pytest.approx(min(ent[1] - ent[0], ent[2] - ent[1]))


# ---------------------------------------------------------------- VKDNW


def test_categorical_cholesky_factors_the_covariance():
    logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    a = float(torch.tensor(0.05, dtype=torch.float16))
    p = torch.softmax(logits.double(), 1) * (1 - a) + a / 5
    L = categorical_cholesky(logits)
    assert torch.allclose(L @ L.transpose(1, 2), torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1), atol=1e-12)
    assert torch.equal(L, torch.tril(L))


def test_fisher_of_a_linear_model_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(5, 4)
    # element 0 of weight and of bias: ∂z/∂W00 = x_0 e_0, ∂z/∂b_0 = e_0
    j = torch.zeros(5, 3, 2, dtype=torch.float64)
    j[:, 0, 0] = x[:, 0].double()
    j[:, 0, 1] = 1.0
    a = categorical_cholesky(net(x).detach()) @ j
    want = (a.transpose(1, 2) @ a).mean(0)
    assert torch.allclose(fisher_subset(net, x), want, atol=1e-10)
    assert torch.allclose(fisher_subset(net, x, exact_func=True), want, atol=1e-10)


def test_fisher_hooks_match_torch_func_on_conv_bn():
    torch.manual_seed(0)
    net = _Staged([nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4))])
    x = torch.randn(3, 3, 6, 6)
    fast, ref = fisher_subset(net, x), fisher_subset(net, x, exact_func=True)
    assert fast.shape == (9, 9)  # 9 parameter tensors, one element each
    assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-9)


def test_quantile_entropy_by_hand():
    lam = torch.tensor([0.0, 1.0, 2.0, 5.0, 9.0, 0.5, 3.0])
    q = np.quantile(lam.numpy().astype(np.float64), np.arange(1, 10) / 10)
    t = q / (np.abs(q).sum() + 1e-10)
    assert quantile_entropy(lam) == pytest.approx(float(-(t * np.log(t + 1e-10)).sum()), rel=1e-12)
    assert quantile_entropy(torch.ones(20)) == pytest.approx(math.log(9), abs=1e-8)  # a flat spectrum


# ---------------------------------------------------------------- population level


def test_log_rank_aggregate_by_hand():
    got = log_rank_aggregate([[10.0, 20.0, 30.0], [3.0, 1.0, 1.0]])
    want = np.log([1 / 3, 2 / 3, 1.0]) + np.log([1.0, 1.5 / 3, 1.5 / 3])  # ties share the mean rank
    assert np.allclose(got, want)


def test_population_proxies_resolve_to_their_components():
    p = resolve_proxy("aznas")
    assert p.kind == "population" and p.components == POPULATION["aznas"][0]
    names = [q.name for q in per_arch([resolve_proxy("flops"), p, resolve_proxy("vkdnw_agg")])]
    assert names == ["flops", "az_expressivity", "az_progressivity", "az_trainability", "vkdnw_single", "jacov_kaiming"]


@pytest.fixture(scope="module")
def table6(tmp_path_factory):
    archs = [nb201.format_arch(nb201.index_to_arch(i)) for i in (11, 2000, 5003, 9004, 12005, 15006)]
    lines = ["nb201_index,arch_str,cifar10valid_valid"]
    lines += [f"{nb201.arch_to_index(nb201.parse_arch(a))},{a},{synthetic_accuracy(a)!r}" for a in archs]
    path = tmp_path_factory.mktemp("peers") / "nb201_six.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_score_reuses_stored_components_and_aggregates_per_population(table6, tmp_path):
    import json

    prot = Protocol(batch=4, seed=0)
    path = tmp_path / "s.json"
    logs = []
    rep = run_score("aznas", str(table6), archs="all", protocol=prot, scores_path=path, log=logs.append)
    assert rep["kind"] == "population" and any("population-level" in n for n in rep["notes"])
    assert any(m.startswith("scoring 6 archs") for m in logs)
    data = json.loads(path.read_text())["cifar10"]
    assert all("aznas" not in v and "az_trainability" in v for v in data.values())  # components only
    logs.clear()
    again = run_score("az_expressivity", str(table6), archs="all", protocol=prot, scores_path=path, log=logs.append)
    assert again["reused"] == 6 and not any(m.startswith("scoring") for m in logs)
    # the aggregate over all six equals the hand aggregation of the stored components
    from gpproxy.scoring.run import score_proxy

    s6 = score_proxy("aznas", benchmark=str(table6), protocol=prot, scores_path=path, log=logs.append)
    keys = [nb201.to_naslib(nb201.parse_arch(a)) for a in s6.archs]
    cols = [[data[str(k)][c]["score"] for k in keys] for c in POPULATION["aznas"][0]]
    assert np.allclose(s6.values, log_rank_aggregate(cols))
    s3 = score_proxy("aznas", s6.archs[:3], protocol=prot, scores_path=path, log=logs.append)
    assert not np.allclose(s3.values, s6.values[:3])  # another population, other values
    assert not any(m.startswith("scoring") for m in logs)


def test_bench_and_cli_with_peer_names(table6, tmp_path, capsys):
    prot = Protocol(batch=4, seed=0)
    res = run_bench([], str(table6), archs=3, trials=1, protocol=prot, out=tmp_path / "b",
                    baselines=["vkdnw", "vkdnw_agg"], log=lambda m: None)
    md = (tmp_path / "b.md").read_text()
    assert "vkdnw_agg is population-level" in md and "| vkdnw_agg" in md.replace("`", "")
    assert math.isfinite(res["results"]["cifar10"]["vkdnw_agg"]["kendall"][0])
    # the CLI reuses nothing here (another --out): AZ-NAS's pass only, on 2 archs
    assert main(["bench", "--benchmark", str(table6), "--baselines", "aznas", "--archs", "2", "--trials", "1",
                 "--batch", "4", "--datasets", "cifar10", "--out", str(tmp_path / "c")]) == 0
    assert "aznas is population-level" in capsys.readouterr().out + (tmp_path / "c.md").read_text()
    assert main(["bench", "--benchmark", str(table6), "--baselines", "aznas_typo", "--out", str(tmp_path / "d")]) == 2
    assert "aznas_typo" in capsys.readouterr().err
