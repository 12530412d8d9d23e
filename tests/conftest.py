"""Shared fixtures: a tiny NB201 benchmark table and cache, built once per session."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_file(*parts) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} not present")
    return path


def synthetic_accuracy(arch: str) -> float:
    """A deterministic stand-in accuracy: convs help, 'none' hurts, plus noise."""
    score = 60 + 5 * arch.count("nor_conv_3x3") + 3 * arch.count("nor_conv_1x1") - 4 * arch.count("none")
    rng = np.random.default_rng(abs(hash(arch)) % (2**32) if False else sum(map(ord, arch)))
    return float(score + rng.normal(0, 2))


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory) -> Path:
    """A CSV benchmark of 60 NB201 archs in the official NB201 CSV format."""
    from gpproxy.spaces import nb201

    archs = [nb201.format_arch(nb201.index_to_arch(i)) for i in range(0, 15625, 15625 // 60)][:60]
    path = tmp_path_factory.mktemp("table") / "tiny_nb201.csv"
    lines = ["nb201_index,arch_str,acc"]
    for a in archs:
        lines.append(f"{nb201.arch_to_index(nb201.parse_arch(a))},{a},{synthetic_accuracy(a)!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


def import_file(path: Path):
    """Import an exported proxy module from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def exact_cache(tmp_path_factory):
    """(cache, spec, archs): 4 NB201 archs at batch 4 in float32, for exports vs. the engine."""
    from gpproxy.cache import CacheSpec, build_cache
    from gpproxy.probe import ProbeConfig
    from gpproxy.spaces import get_space

    spec = CacheSpec(batch=4, storage="float32", probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16))
    archs = [get_space("nb201").all_archs()[i] for i in (3, 777, 4242, 9001)]
    root = tmp_path_factory.mktemp("exact")
    return build_cache(root / "c", spec, archs, log=lambda m: None), spec, archs


def tiny_config(table: Path, cache: Path, **search):
    from gpproxy.config import config_from_dict

    s = {"population": 8, "generations": 3, "init_max_height": 4, "max_height": 7,
         "backend": "serial", "jobs": 2, "hall_of_fame": 5}
    s.update(search)
    return config_from_dict({
        "name": "tiny", "seed": 3, "device": "cpu", "search": s,
        "task": [{"name": "t", "benchmark": str(table), "target": "acc", "search_archs": 30,
                  "heldout_archs": 20, "batch": 4, "act_features": 16, "weight_rows": 8,
                  "weight_cols": 16, "cache": str(cache)}],
    })


@pytest.fixture(scope="session")
def tiny_cache(tiny_table, tmp_path_factory) -> Path:
    """A built cache for the tiny table (shared by engine tests)."""
    from gpproxy.tasks import prepare_task

    cache = tmp_path_factory.mktemp("cache") / "c"
    cfg = tiny_config(tiny_table, cache)
    prepare_task(cfg.tasks[0], jobs=1, log=lambda m: None)
    return cache


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny nets on a busy 2-core machine: with 2 OpenMP threads a forward pass
    took 4.6 s instead of 0.05 s (threads waiting on each other)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def one_error_line(capsys, rc) -> str:
    """Exit 2 and exactly one stderr line, starting ``gpproxy: error:``; returns it."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("gpproxy: error: "), err
    assert "Traceback" not in err
    return lines[0]
