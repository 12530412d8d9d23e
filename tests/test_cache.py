"""Statistics cache: resume after a kill, checksums, compatibility, CLI errors."""
import io
import os
import json
from pathlib import Path

import numpy as np
import pytest

import gpproxy.cache as cache_mod
from gpproxy.cache import CacheSpec, build_cache, open_cache
from gpproxy.cli import main
from gpproxy.errors import DataError, GpproxyError
from gpproxy.probe import ProbeConfig
from gpproxy.spaces import get_space
from gpproxy.statset import load_statset

SPEC = CacheSpec(batch=4, probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16))
ARCHS = [get_space("nb201").all_archs()[i] for i in (0, 7, 99, 1234, 5000, 15624)]


def quiet(msg):
    pass


def test_build_records_everything(tmp_path):
    c = build_cache(tmp_path / "c", SPEC, ARCHS, log=quiet)
    assert c.archs() == ARCHS and all(c.status(a) == "ok" for a in ARCHS)
    man = json.loads((tmp_path / "c" / "cache.json").read_text())
    assert man["spec"]["probe"]["act_features"] == 16 and man["input_info"]["kind"] == "noise"
    table, flat = c.record(ARCHS[1])
    assert flat.dtype == np.float16
    layer = table["layers"][0]
    assert set(layer["stats"]) == {"W", "dW", "A", "Z", "dZ"}
    assert layer["meta"]["params"] == 3 * 16 * 9  # the stem conv


def test_cache_files_get_the_users_file_mode_and_a_rewrite_keeps_a_files_mode(tmp_path):
    """Atomic writes go through mkstemp, whose file is 0600: without care every cache and run file would be
    unreadable to the other users of a shared cache directory."""
    import os
    import stat

    from gpproxy.fileio import atomic_write_text

    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o666 & ~mask
    build_cache(tmp_path / "c", SPEC, ARCHS[:2], log=quiet)
    files = [f for f in (tmp_path / "c").rglob("*") if f.is_file()]
    assert len(files) >= 5 and {stat.S_IMODE(f.stat().st_mode) for f in files} == {expected}
    kept = tmp_path / "group.json"
    kept.write_text("{}")
    kept.chmod(0o640)
    atomic_write_text(kept, "{}\n")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "{}\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_same_layer_shape_same_positions(tmp_path):
    """Two archs see their stem conv's output sampled at identical positions."""
    from gpproxy.probe import sample_positions

    a = sample_positions((16, 32, 32), 16, 0, "output")
    b = sample_positions((16, 32, 32), 16, 0, "output")
    assert a.equal(b) and len(set(a.tolist())) == 16


def test_killed_build_resumes_only_missing(tmp_path, monkeypatch):
    calls = []
    real = cache_mod.build_one

    def dying(spec, arch, *a, **k):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(arch)
        return real(spec, arch, *a, **k)

    monkeypatch.setattr(cache_mod, "build_one", dying)
    with pytest.raises(KeyboardInterrupt):
        build_cache(tmp_path / "c", SPEC, ARCHS, log=quiet)
    done = [a for a in ARCHS if open_cache(tmp_path / "c").status(a) == "ok"]
    assert len(done) == 3
    calls.clear()
    monkeypatch.setattr(cache_mod, "build_one", lambda spec, arch, *a, **k: (calls.append(arch), real(spec, arch, *a, **k))[1])
    c = build_cache(tmp_path / "c", SPEC, ARCHS, log=quiet)
    assert sorted(calls) == sorted(set(ARCHS) - set(done))
    assert all(c.status(a) == "ok" for a in ARCHS)


def test_corrupt_file_is_detected_and_rebuilt(tmp_path):
    c = build_cache(tmp_path / "c", SPEC, ARCHS[:2], log=quiet)
    npy = c.stats_dir / f"{c.key_of(ARCHS[0])}.npy"
    good = npy.read_bytes()
    npy.write_bytes(good[:-8] + b"\x00" * 8)
    assert c.status(ARCHS[0]) == "corrupt"
    with pytest.raises(DataError, match="corrupt"):
        load_statset(c)
    msgs = []
    build_cache(tmp_path / "c", SPEC, ARCHS[:2], log=msgs.append)
    assert any("corrupt" in m for m in msgs)
    assert npy.read_bytes() == good  # deterministic rebuild


def test_incompatible_spec_refused(tmp_path):
    build_cache(tmp_path / "c", SPEC, ARCHS[:1], log=quiet)
    with pytest.raises(GpproxyError, match="batch=4"):
        build_cache(tmp_path / "c", CacheSpec(batch=8, probe=SPEC.probe), ARCHS[:1], log=quiet)


def test_corrupt_manifest(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cache.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt"):
        open_cache(tmp_path / "c")


@pytest.mark.parametrize("manifest", ["[]", '{"version": 1}', "[" * 100000])
def test_a_manifest_of_the_wrong_shape_is_corrupt(tmp_path, manifest):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cache.json").write_text(manifest)
    with pytest.raises(DataError, match="corrupt"):
        open_cache(tmp_path / "c")


@pytest.mark.parametrize("field, value", [("archs", None), ("keys", None), ("spec", [])])
def test_a_manifest_field_of_the_wrong_type_is_corrupt(tmp_path, field, value):
    build_cache(tmp_path / "c", SPEC, ARCHS[:1], log=quiet)
    path = tmp_path / "c" / "cache.json"
    man = json.loads(path.read_text())
    path.write_text(json.dumps({**man, field: value}))
    with pytest.raises(DataError, match="cache.json is corrupt"):
        open_cache(tmp_path / "c")


@pytest.mark.parametrize("key", ["../../evil", "/tmp/victim", "..", "a/b", ""])
def test_a_manifest_key_that_is_not_a_plain_file_name_is_refused_and_nothing_is_written(tmp_path, key):
    """Keys become file names that a build writes: a crafted cache.json must not aim them elsewhere."""
    build_cache(tmp_path / "d" / "c", SPEC, ARCHS[:1], log=quiet)
    path = tmp_path / "d" / "c" / "cache.json"
    man = json.loads(path.read_text())
    man["keys"][ARCHS[0]] = key
    path.write_text(json.dumps(man))
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(DataError, match="not a plain file name"):
        build_cache(tmp_path / "d" / "c", SPEC, ARCHS[:1], log=quiet)
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_a_corrupt_layer_table_is_rebuilt_not_a_traceback(tmp_path):
    """The checksum covers the array, not the JSON layer table beside it."""
    c = build_cache(tmp_path / "c", SPEC, ARCHS[:1], log=quiet)
    meta_path = c.stats_dir / f"{c.key_of(ARCHS[0])}.json"
    good = meta_path.read_text()
    meta_path.write_text(json.dumps({**json.loads(good), "layers": None}))
    assert c.status(ARCHS[0]) == "corrupt"
    build_cache(tmp_path / "c", SPEC, ARCHS[:1], log=quiet)
    assert json.loads(meta_path.read_text())["layers"] == json.loads(good)["layers"]
    meta_path.write_text(json.dumps({**json.loads(good), "layers": [{"name": "x"}]}))
    with pytest.raises(DataError, match="layer table .* is corrupt"):
        open_cache(tmp_path / "c").layers(ARCHS[0])


def test_parallel_build_equals_serial(tmp_path):
    a = build_cache(tmp_path / "a", SPEC, ARCHS[:4], jobs=1, log=quiet)
    b = build_cache(tmp_path / "b", SPEC, ARCHS[:4], jobs=2, log=quiet)
    for arch in ARCHS[:4]:
        assert np.array_equal(a.record(arch)[1], b.record(arch)[1])


# ------------------------------------------------------------------ CLI

def run_cli(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_cache_and_describe(tmp_path, capsys, tiny_table):
    rc, out, err = run_cli(capsys, "cache", "--benchmark", str(tiny_table), "--target", "acc", "--archs", "3",
                           "--batch", "4", "--act-features", "16", "--out", str(tmp_path / "c"))
    assert rc == 0 and json.loads(out)["archs"] == 3
    assert "archs/s" in err
    rc, out, _ = run_cli(capsys, "describe", "nb201", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert rc == 0 and "params" in out and "1531546" in out


@pytest.mark.parametrize("argv, fragment", [
    (["describe", "nb201", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "conv"),
    (["cache", "--benchmark", "/nonexistent/table.csv", "--out", "X"], "table.csv"),
    (["cache", "--benchmark", "TABLE", "--target", "nope", "--out", "X"], "nope"),
    (["cache", "--benchmark", "TABLE", "--archs", "missing_file.txt", "--out", "X"], "missing_file.txt"),
])
def test_cli_bad_input_one_line(tmp_path, capsys, tiny_table, argv, fragment):
    argv = [str(tiny_table) if a == "TABLE" else str(tmp_path / "x") if a == "X" else a for a in argv]
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpproxy: error:") and fragment in lines[0]


def test_cli_corrupt_table(tmp_path, capsys):
    bad = tmp_path / "t.csv.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    rc, _, err = run_cli(capsys, "cache", "--benchmark", str(bad), "--out", str(tmp_path / "c"))
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_layer_records_round_trip_through_the_cache(tmp_path):
    """probe -> encode -> decode gives back the same LayerRecords (float32 storage)."""
    import torch

    from gpproxy.cache import decode_record, encode_record, load_input
    from gpproxy.probe import probe
    from gpproxy.record import LayerRecord

    spec = CacheSpec(batch=4, probe=ProbeConfig(act_features=16, weight_rows=8, weight_cols=16))
    torch.manual_seed(0)
    net = get_space("nb201").build(ARCHS[2], 10)
    x, y, _ = load_input(spec)
    records = probe(net, x, y, spec.probe)
    assert all(isinstance(r, LayerRecord) for r in records) and records[0].moments
    payload, table = encode_record("a", "k", records, "float32", 0.0)
    flat = np.load(io.BytesIO(payload), allow_pickle=False)
    back = decode_record(table, flat)
    assert [r.name for r in back] == [r.name for r in records]
    for r, b in zip(records, back):
        assert b.meta == r.meta and list(b.stats) == list(r.stats) and list(b.moments) == list(r.moments)
        for stat, (t, scale) in r.stats.items():
            assert np.array_equal(b.stats[stat][0], t.numpy()) and b.stats[stat][1] == scale
        for stat, m in r.moments.items():
            assert b.moments[stat] == m.tolist()
    # the table keeps the on-disk layout: name, meta, stats, then moments
    assert list(table["layers"][0]) == ["name", "meta", "stats", "moments"]
    # a StatSet stacks in-memory records and decoded ones alike
    mem, disk = load_statset({"a": records}), load_statset({"a": back})
    assert all(torch.equal(u, v) for s in mem.stats for u, v in zip(mem.stats[s], disk.stats[s]))
    assert mem.moments.keys() == disk.moments.keys()
    assert all(torch.equal(mem.moments[k], disk.moments[k]) for k in mem.moments)


def test_worker_processes_resolve_relative_paths_in_the_drivers_current_directory(tiny_table, tmp_path,
                                                                                   monkeypatch):
    """loky reuses its worker processes across calls: a worker started before the driver changed directory
    must still build a relative cache path where the driver means it (not into the old directory's cache)."""
    from gpproxy.tasks import prepare_task
    from tests.conftest import tiny_config

    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        monkeypatch.chdir(tmp_path / d)
        cfg = tiny_config(tiny_table, Path("caches") / "c")
        prepare_task(cfg.tasks[0], jobs=2, log=lambda m: None)
        assert len(list((tmp_path / d / "caches" / "c" / "stats").glob("*.npy"))) == 50
    assert len(list((tmp_path / "a" / "caches" / "c" / "stats").glob("*.npy"))) == 50


def test_a_build_starts_no_more_workers_than_archs_or_cpus(tmp_path, monkeypatch):
    """--jobs 1000 for 2 archs started ~220 idle loky workers and hung."""
    import joblib

    from gpproxy.device import worker_count

    assert worker_count(1000, 2) == 2 and worker_count(1000, 10**6) == (os.cpu_count() or 1)
    assert worker_count(0, 5) == 1
    seen = []
    real = joblib.Parallel

    def spy(*args, **kw):
        seen.append(kw.get("n_jobs"))
        return real(*args, **kw)

    monkeypatch.setattr(joblib, "Parallel", spy)
    build_cache(tmp_path / "c", SPEC, ARCHS[:2], jobs=1000, log=quiet)
    assert seen == [min(2, os.cpu_count() or 1)]
