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


def test_dask_workers_read_the_drivers_paths_not_their_own_directory(tiny_table, tiny_cache, tmp_path, monkeypatch):
    """A LocalCluster's workers keep the directory the driver had when the cluster started (a remote worker's is
    anything): relative cache, space and pack paths went to them as written. A cache built after the driver
    changed directory landed in the old one, and an evolution read the old directory's cache of that name."""
    import shutil

    from distributed import Client, LocalCluster

    from gpproxy.cache import CacheSpec, build_cache
    from gpproxy.probe import ProbeConfig
    from gpproxy.spaces import get_space

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    monkeypatch.chdir(old)
    spec = CacheSpec(batch=4, probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16))
    archs = [get_space("nb201").all_archs()[i] for i in (1, 2)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        monkeypatch.chdir(new)
        build_cache("c", spec, archs, backend="dask", log=lambda m: None)
        assert len(list((new / "c" / "stats").glob("*.npy"))) == 2 and not (old / "c").exists()
        # an evolution on a scheduler's workers: its cache "tiny" is the new directory's, not the old one's
        shutil.copytree(tiny_cache, new / "tiny")
        shutil.copytree(tiny_cache, old / "tiny")
        for f in (old / "tiny" / "stats").glob("*.npy"):
            f.write_bytes(b"not statistics")
        cfg = tiny_config(tiny_table, "tiny", backend="dask", dask_address=cluster.scheduler_address)
        Engine(cfg, new / "d", log=lambda m: None).run()
    monkeypatch.chdir(tmp_path)
    Engine(tiny_config(tiny_table, new / "tiny", backend="serial"), tmp_path / "s", log=lambda m: None).run()
    a, b = rundir.load_checkpoint(tmp_path / "s"), rundir.load_checkpoint(new / "d")
    assert a["population"] == b["population"] and a["memo"] == b["memo"]
