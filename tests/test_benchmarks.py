"""Ground-truth tables: CSV, NATS API (faked), analog-nasbench and the shared NB201 table."""
from __future__ import annotations

import gzip
import importlib.metadata
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from gpproxy import benchmarks
from gpproxy.benchmarks import Benchmark, default_target, load_benchmark, load_csv, load_nats
from gpproxy.errors import DataError
from gpproxy.spaces import nb201

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MAIN_TABLE = SHARED / "nb201" / "nb201_accuracies_200ep.csv.gz"
ANALOG_CSV = SHARED / "nb201" / "analog_nasbench_cifar10.csv.gz"

# NB201 index 0; its NASLib tuple is (4, 3, 3, 0, 0, 0) (see shared/data/SOURCES.md rows).
ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def _analog_installed() -> bool:
    try:
        importlib.metadata.distribution("analog-nasbench")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def write_csv(path: Path, text: str, compress: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


TINY_CSV = (
    "nb201_index,arch_str,acc,other,note\n"
    f"0,{ARCH0},85.5,1,hello\n"
    f"1,{NONE},10.0,,world\n"
    f"2,{CONV},93.25,3.5,x\n"
)


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("compress", [False, True])
def test_csv_loading(tmp_path, compress):
    path = write_csv(tmp_path / ("t.csv.gz" if compress else "t.csv"), TINY_CSV, compress)
    bench = load_benchmark(str(path))
    assert len(bench) == 3 and bench.space == "nb201"
    assert bench.archs == [ARCH0, NONE, CONV]
    assert bench.targets() == ["acc", "other"]  # nb201_index is an id, "note" is text
    assert bench.accuracy("acc").dtype == np.float64
    np.testing.assert_array_equal(bench.accuracy("acc"), [85.5, 10.0, 93.25])
    assert np.isnan(bench.accuracy("other")[1])  # an empty cell is NaN
    np.testing.assert_array_equal(bench.lookup([CONV, ARCH0], "acc"), [93.25, 85.5])
    assert str(path) in bench.source and bench.name == str(path)


def test_csv_naslib_column_and_default_target(tmp_path):
    text = 'naslib_ops,cifar10valid_valid,val_accuracy\n"(4, 3, 3, 0, 0, 0)",81.9,80.0\n"(0, 0, 0, 0, 0, 0)",60.0,55.0\n'
    bench = load_csv(write_csv(tmp_path / "n.csv", text))
    assert bench.archs == [ARCH0, SKIP]  # NASLib op 0 is skip_connect, not none
    assert default_target(bench) == "cifar10valid_valid"
    # lookup canonicalises other encodings too
    np.testing.assert_array_equal(bench.lookup(["(0, 0, 0, 0, 0, 0)"], "val_accuracy"), [55.0])


def test_default_target_rules():
    arrays = {"a": np.zeros(1), "b": np.ones(1)}
    assert default_target(Benchmark("x", "nb201", [ARCH0], {"only": np.zeros(1)}, "")) == "only"
    both = {"baseline_accuracy": np.zeros(1), "cifar10valid_valid": np.zeros(1)}
    assert default_target(Benchmark("t", "nb201", [ARCH0], dict(both), "")) == "cifar10valid_valid"
    # a loader names its table's own default (analog-nasbench: baseline_accuracy)
    assert default_target(Benchmark("analog-nasbench", "nb201", [ARCH0], dict(both), "",
                                    preferred_target="baseline_accuracy")) == "baseline_accuracy"
    with pytest.raises(DataError, match="choose one of: a, b"):
        default_target(Benchmark("x", "nb201", [ARCH0], arrays, ""))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found.*analog-nasbench"):
        load_benchmark(str(tmp_path / "nope.csv.gz"))


def test_corrupt_gzip(tmp_path):
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    with pytest.raises(DataError, match="bad.csv.gz: corrupt gzip"):
        load_benchmark(str(bad))
    truncated = tmp_path / "trunc.csv.gz"
    truncated.write_bytes(gzip.compress(TINY_CSV.encode() * 50)[:-30])
    with pytest.raises(DataError, match="corrupt gzip"):
        load_benchmark(str(truncated))
    plain = tmp_path / "plain.csv.gz"
    plain.write_bytes(TINY_CSV.encode())
    with pytest.raises(DataError, match="corrupt gzip"):
        load_benchmark(str(plain))


def test_csv_without_arch_column(tmp_path):
    path = write_csv(tmp_path / "noarch.csv", "idx,acc\n0,1.0\n")
    with pytest.raises(DataError, match=r"noarch.csv: no arch column.*arch_str.*naslib_ops.*found: idx, acc"):
        load_benchmark(str(path))


def test_csv_malformed_rows_and_archs(tmp_path):
    short = write_csv(tmp_path / "short.csv", f"arch_str,acc\n{ARCH0},1.0\n{NONE}\n")
    with pytest.raises(DataError, match="row 3 has 1 fields"):
        load_csv(short)
    bad_arch = write_csv(tmp_path / "badarch.csv", "arch_str,acc\n|conv~0|,1.0\n")
    with pytest.raises(DataError, match="row 2: bad arch"):
        load_csv(bad_arch)
    dup = write_csv(tmp_path / "dup.csv", f"arch_str,acc\n{ARCH0},1.0\n{ARCH0},2.0\n")
    with pytest.raises(DataError, match="appears in rows 2 and 3"):
        load_csv(dup)
    with pytest.raises(DataError, match="unknown benchmark format"):
        load_benchmark(str(write_csv(tmp_path / "table.json", "{}")))


def test_unknown_target_and_arch(tmp_path):
    bench = load_csv(write_csv(tmp_path / "t.csv", TINY_CSV))
    with pytest.raises(DataError, match="unknown target 'nope'; available: acc, other"):
        bench.accuracy("nope")
    with pytest.raises(DataError, match="unknown target"):
        bench.lookup([ARCH0], "nope")
    with pytest.raises(DataError, match=r"arch \|skip_connect~0\|.* is not in the table \(3 archs\)"):
        bench.lookup([ARCH0, SKIP], "acc")


def test_benchmark_column_length_checked():
    with pytest.raises(DataError, match="column 'a' has shape"):
        Benchmark("x", "nb201", [ARCH0, NONE], {"a": np.zeros(3)}, "")


# --------------------------------------------------------------------------- NATS


class FakeNatsAPI:
    """Implements exactly what load_nats uses of nats_bench's NATStopology."""

    DATA = {  # arch -> dataset -> get_more_info dict (only the keys we read, plus noise)
        ARCH0: {"cifar10-valid": (81.98, 81.52), "cifar10": (None, 85.86), "cifar100": (52.0, 52.9)},
        NONE: {"cifar10-valid": (10.0, 10.0), "cifar10": (None, 10.0), "cifar100": (1.0, 1.0)},
        CONV: {"cifar10-valid": (91.0, 90.5), "cifar10": (None, 94.0), "cifar100": (73.0, 73.5)},
    }

    def __init__(self):
        self.archs = list(self.DATA)
        self.calls = []

    def __len__(self):
        return len(self.archs)

    def arch(self, i):
        return self.archs[i]

    def get_more_info(self, index, dataset, iepoch=None, hp="12", is_random=True):
        self.calls.append((index, dataset, hp, is_random))
        assert hp == "200" and is_random is False
        record = self.DATA[self.archs[index]]
        if dataset not in record:  # this fake has no ImageNet16-120 record
            raise KeyError(dataset)
        valid, test = record[dataset]
        info = {"train-accuracy": 99.0, "test-accuracy": test}
        if valid is not None:
            info["valid-accuracy"] = valid
        return info


def test_nats_fake_api(tmp_path):
    api = FakeNatsAPI()
    bench = load_nats(tmp_path / "NATS-tss-v1_0-3ffb9-simple", api=api)
    assert bench.archs == [ARCH0, NONE, CONV]
    assert bench.targets() == ["cifar10valid_valid", "cifar10valid_test", "cifar10_test",
                               "cifar100_valid", "cifar100_test"]  # no ImageNet record, no cifar10 valid
    np.testing.assert_array_equal(bench.accuracy("cifar10valid_valid"), [81.98, 10.0, 91.0])
    np.testing.assert_array_equal(bench.accuracy("cifar10valid_test"), [81.52, 10.0, 90.5])
    np.testing.assert_array_equal(bench.accuracy("cifar10_test"), [85.86, 10.0, 94.0])
    np.testing.assert_array_equal(bench.accuracy("cifar100_test"), [52.9, 1.0, 73.5])
    assert default_target(bench) == "cifar10valid_valid"
    assert {c[1] for c in api.calls} == {"cifar10-valid", "cifar10", "cifar100", "ImageNet16-120"}


def test_nats_missing_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nats_bench", None)  # import now raises ImportError
    archive = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    archive.mkdir()
    with pytest.raises(DataError, match="needs the nats_bench package"):
        load_benchmark(str(archive))
    monkeypatch.setitem(sys.modules, "nas_201_api", None)
    pth = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    pth.write_bytes(b"")
    with pytest.raises(DataError, match="needs the nas_201_api package"):
        load_benchmark(str(pth))


# --------------------------------------------------------------------------- analog-nasbench


def test_analog_not_installed(monkeypatch):
    def no_files(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", no_files)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install analog-nasbench==0\.1\.3"):
        load_benchmark("analog-nasbench")


class _Evil:
    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_analog_pickle_refuses_other_classes(tmp_path):
    evil = _Evil()
    evil.target = str(tmp_path / "pwned")
    path = tmp_path / "data.anb"
    path.write_bytes(pickle.dumps({(0, 0, 0, 0, 0, 0): evil}))
    with pytest.raises(DataError, match="refusing to unpickle posix.mkdir|refusing to unpickle os.mkdir|refusing"):
        benchmarks.read_analog_pickle(path)
    assert not (tmp_path / "pwned").exists()
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="corrupt analog-nasbench data file"):
        benchmarks.read_analog_pickle(path)


@pytest.mark.skipif(not _analog_installed(), reason="analog-nasbench not installed")
def test_analog_matches_shared_csv():
    bench = load_benchmark("analog-nasbench")
    assert len(bench) == 15625 and bench.name == "analog-nasbench"
    assert default_target(bench) == "baseline_accuracy"
    assert "0.1.3" in bench.source
    # rows are in NB201 index order
    assert [nb201.arch_to_index(nb201.parse_arch(a)) for a in bench.archs[:50]] == list(range(50))
    assert bench.archs[0] == ARCH0
    # the all-skip cell (NASLib (0,)*6) scores 60.8 %, per SOURCES.md
    assert bench.lookup([SKIP], "baseline_accuracy")[0] == pytest.approx(60.7836)
    if not ANALOG_CSV.exists():
        pytest.skip("shared analog_nasbench_cifar10.csv.gz absent")
    ref = load_csv(ANALOG_CSV)
    assert ref.archs == bench.archs
    for target in bench.targets():
        np.testing.assert_array_equal(bench.accuracy(target), ref.accuracy(target), err_msg=target)
    assert set(bench.targets()) == {t for t in ref.targets() if not t.endswith("_unc")}


# --------------------------------------------------------------------------- shared main table


@pytest.mark.skipif(not MAIN_TABLE.exists(), reason="shared NB201 table absent")
def test_shared_main_table():
    bench = load_benchmark(str(MAIN_TABLE))
    assert len(bench) == 15625
    assert len(set(bench.archs)) == 15625
    assert bench.targets() == ["cifar10_test", "cifar10valid_valid", "cifar10valid_test",
                               "cifar100_test", "imagenet16_120_test"]
    assert default_target(bench) == "cifar10valid_valid"
    assert bench.accuracy("cifar10valid_valid").max() == pytest.approx(91.60667, abs=1e-5)
    assert bench.accuracy("cifar10_test").max() == pytest.approx(94.37333, abs=1e-5)
    assert bench.archs[0] == ARCH0
    assert nb201.arch_to_index(nb201.parse_arch(bench.archs[-1])) == 15624
