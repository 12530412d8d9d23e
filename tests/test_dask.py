"""The distributed backend (a real local dask cluster, 2 worker processes)
gives exactly the serial result, for evolution and for cache building."""
import numpy as np
import pytest

pytest.importorskip("distributed")

from gpproxy import rundir  # noqa: E402
from gpproxy.engine import Engine  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402


def test_dask_backend_matches_serial(tiny_table, tiny_cache, tmp_path):
    Engine(tiny_config(tiny_table, tiny_cache, backend="serial"), tmp_path / "s", log=lambda m: None).run()
    Engine(tiny_config(tiny_table, tiny_cache, backend="dask", jobs=2), tmp_path / "d", log=lambda m: None).run()
    a, b = rundir.load_checkpoint(tmp_path / "s"), rundir.load_checkpoint(tmp_path / "d")
    assert a["population"] == b["population"]
    assert a["memo"] == b["memo"]
    assert rundir.read_csv(tmp_path / "s" / "pareto.csv") == rundir.read_csv(tmp_path / "d" / "pareto.csv")


def test_dask_cache_build_matches_local(tmp_path):
    from distributed import Client, LocalCluster

    from gpproxy.cache import CacheSpec, build_cache
    from gpproxy.probe import ProbeConfig
    from gpproxy.spaces import get_space

    spec = CacheSpec(batch=4, probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16))
    archs = [get_space("nb201").all_archs()[i] for i in (1, 2, 3, 4)]
    local = build_cache(tmp_path / "l", spec, archs, jobs=1, log=lambda m: None)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        dist = build_cache(tmp_path / "d", spec, archs, backend="dask", log=lambda m: None)
    for a in archs:
        assert np.array_equal(local.record(a)[1], dist.record(a)[1])
