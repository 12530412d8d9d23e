"""Property-based fuzzing of everything that reads user text or files (issue 14):
the formula parser, the config loader, the benchmark CSV reader and the npz
reader give a clear one-line GpproxyError or a correct result, never a
traceback and never silent acceptance of an out-of-range value."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from gpproxy.errors import DataError, FormulaError, GpproxyError

hypothesis = pytest.importorskip("hypothesis")  # the `test` extra installs it
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------- fuzzing: formulas

@pytest.fixture(scope="module")
def pack():
    from gpproxy.pack import load_pack

    return load_pack("default")


FORMULA_ATOMS = ["sum_layers(", "frob(", "l1(", "mul(", "abs(", "W", "dW", "A", "Z", "params", ")", ",", " ",
                 "-", "+", "1", "0.5", "9" * 30, "1e308", "1e400", "(", "__import__", "'", ".", "lambda", "[", "*"]


@FUZZ
@given(st.lists(st.sampled_from(FORMULA_ATOMS), max_size=40) | st.text(max_size=200).map(lambda t: [t]))
def test_fuzz_formula_parser(pack, parts):
    from gpproxy.formula import parse_formula

    text = "".join(parts)
    try:
        tree = parse_formula(text, pack)
    except FormulaError as e:
        assert str(e).strip()
        return
    again = parse_formula(str(tree), pack)  # a parsed formula round-trips through its canonical text
    assert str(again) == str(tree)


# ---------------------------------------------------------------- fuzzing: configs

ORACLE = {  # an independent statement of what is allowed, per key
    ("search", "population"): lambda v: type(v) is int and v >= 4 and v % 4 == 0,
    ("search", "generations"): lambda v: type(v) is int and v >= 0,
    ("search", "select_tolerance"): lambda v: type(v) in (int, float) and np.isfinite(v) and v >= 0,
    ("search", "cx_prob"): lambda v: type(v) in (int, float) and 0 <= v <= 1,
    ("search", "jobs"): lambda v: type(v) is int and v >= 1,
    ("fitness", "subset_fraction"): lambda v: type(v) in (int, float) and 0 < v < 1,
    ("task", "search_archs"): lambda v: type(v) is int and v >= 4,
    ("task", "heldout_archs"): lambda v: v == "rest" or (type(v) is int and v >= 2),
    ("task", "batch"): lambda v: type(v) is int and v >= 2,
    ("task", "num_classes"): lambda v: type(v) is int and v >= 2,
    ("task", "act_features"): lambda v: type(v) is int and v >= 1,
    ("task", "resolution"): lambda v: type(v) is int and 4 <= v <= 4096,
    ("task", "noise_pass"): lambda v: type(v) is bool,
    ("", "device"): lambda v: isinstance(v, str) and (v in ("auto", "cpu", "cuda", "mps")
                                                      or (v.startswith("cuda:") and v[5:].isdigit()
                                                          and v[5:].isascii())),
}

VALUES = (st.integers(-10, 5000) | st.floats(allow_nan=True, allow_infinity=True) | st.booleans()
          | st.text(max_size=8) | st.sampled_from(["rest", "auto", "cuda:0", "cuda:x", "8", "cpu"])
          | st.none() | st.lists(st.integers(), max_size=2))


@FUZZ
@given(st.sampled_from(sorted(ORACLE)), VALUES)
def test_fuzz_config_values(key, value):
    from gpproxy.config import config_from_dict

    section, name = key
    data = {"task": [{"search_archs": 40, "heldout_archs": 20}]}
    if section == "task":
        data["task"][0][name] = value
    elif section:
        data[section] = {name: value}
    else:
        data[name] = value
    try:
        cfg = config_from_dict(data)
    except GpproxyError as e:
        assert not ORACLE[key](value), f"{key}={value!r} refused: {e}"
        assert name in str(e) or "subsets" in str(e), str(e)
        return
    assert ORACLE[key](value), f"{key}={value!r} silently accepted"
    holder = cfg.tasks[0] if section == "task" else getattr(cfg, section) if section else cfg
    assert getattr(holder, name) == value


@FUZZ
@given(st.dictionaries(st.text(max_size=6), VALUES | st.dictionaries(st.text(max_size=4), VALUES, max_size=3),
                       max_size=4))
def test_fuzz_config_structure(data):
    from gpproxy.config import config_from_dict

    try:
        config_from_dict(data)
    except GpproxyError:
        return
    raise AssertionError(f"accepted {data!r}")  # no tasks given: never a default task


# ---------------------------------------------------------------- fuzzing: benchmark CSV

CELLS = st.sampled_from(["", "N/A", "nan", "inf", "-inf", "1e999", "0.5", "71.2", "x", '"', "1,2", "null",
                         "\x00", "é"]) | st.floats(allow_nan=False).map(repr) | st.text(max_size=5)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 15624) | st.text(max_size=6), CELLS, CELLS), min_size=0, max_size=12),
       st.booleans())
def test_fuzz_benchmark_csv(tmp_path, rows, header_ok):
    from gpproxy.benchmarks import load_benchmark
    from gpproxy.spaces import get_space

    path = tmp_path / "t.csv"
    lines = ["arch,acc,other" if header_ok else "acc,other"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(lines[0].split(","))
        for arch, a, b in rows:
            w.writerow(([str(arch)] if header_ok else []) + [a, b])
    try:
        bench = load_benchmark(str(path), get_space("nb201"))
    except GpproxyError as e:
        assert str(e).strip()
        return
    assert header_ok and len(bench.archs) == len(set(bench.archs)) == len(rows)
    for target in bench.targets():
        col = bench.accuracy(target)
        assert col.dtype == np.float64 and len(col) == len(rows)


# ---------------------------------------------------------------- fuzzing: npz

@FUZZ
@given(n=st.integers(0, 6), h=st.integers(0, 9), c=st.sampled_from([1, 3, 4]),
       dtype=st.sampled_from(["uint8", "float32", "int64"]), labels=st.lists(st.integers(-3, 300), max_size=7),
       batch=st.integers(1, 6), classes=st.integers(1, 12), resolution=st.sampled_from([4, 8, 16]))
def test_fuzz_npz_reader(tmp_path, n, h, c, dtype, labels, batch, classes, resolution):
    from gpproxy.inputs import load_batch

    path = tmp_path / "b.npz"
    images = np.random.default_rng(0).integers(0, 256, (n, h, h, c)).astype(dtype)
    np.savez(path, x_train=images, y_train=np.array(labels, dtype=np.int64))
    try:
        x, y, info = load_batch(f"npz:{path}", batch, seed=0, num_classes=classes, resolution=resolution)
    except GpproxyError as e:
        assert str(e).strip()
        return
    assert dtype == "uint8" and c == 3 and h >= 4 and len(labels) == n >= batch and min(labels) >= 0
    assert tuple(x.shape) == (batch, 3, resolution, resolution) and bool(np.isfinite(x.numpy()).all())
    assert int(y.min()) >= 0 and int(y.max()) < classes
    assert info["labels_wrapped"] == any(labels[i] >= classes for i in info["indices"])


def test_fuzz_npz_garbage_file(tmp_path):
    from gpproxy.inputs import load_batch

    for content in (b"", b"PK\x03\x04garbage", np.zeros(3).tobytes()):
        path = tmp_path / "g.npz"
        path.write_bytes(content)
        with pytest.raises(DataError):
            load_batch(f"npz:{path}", 2, seed=0)
