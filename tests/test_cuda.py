"""The same code on CUDA: cache build and evaluation agree with the CPU."""
import pytest
import torch

from gpproxy.cache import CacheSpec, build_cache
from gpproxy.formula import FormulaEval, parse_formula
from gpproxy.pack import load_pack
from gpproxy.probe import ProbeConfig
from gpproxy.spaces import get_space
from gpproxy.statset import load_statset


@pytest.mark.cuda
def test_cuda_cache_and_evaluation_match_cpu(tmp_path):
    spec = CacheSpec(batch=4, storage="float32", probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16))
    archs = [get_space("nb201").all_archs()[i] for i in (5, 500, 5000)]
    cpu = build_cache(tmp_path / "cpu", spec, archs, jobs=1, device="cpu", log=lambda m: None)
    gpu = build_cache(tmp_path / "gpu", spec, archs, jobs=1, device="cuda", log=lambda m: None)
    pack = load_pack("default")
    run = FormulaEval(pack)
    for f in ["sum_layers(l1(mul(W, dW)))", "mean_layers(hamming(A))", "sum_layers(frob(normalize(dZ)))"]:
        tree = parse_formula(f, pack)
        a = run(tree, load_statset(cpu, device="cpu"))
        b = run(tree, load_statset(gpu, device="cuda")).cpu()
        c = run(tree, load_statset(cpu, device="cuda")).cpu()
        assert torch.allclose(a, c, rtol=1e-4, atol=1e-5), f  # evaluation on GPU
        assert torch.allclose(a, b, rtol=2e-2, atol=1e-3), f  # probe on GPU (cuDNN differs slightly)
