"""Hostile input to the Python API, pack and space files and the CLI found by a fuzz
sweep: each gets one GpproxyError line (exit 2 on the command line), never a
traceback, a silent exit or a silently empty result."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import gpproxy
from gpproxy.cli import main
from gpproxy.errors import GpproxyError
from tests.conftest import one_error_line, tiny_config


@pytest.fixture(scope="module")
def archs():
    from gpproxy.spaces import get_space

    return get_space("nb201").all_archs()[:3]


# ---------------------------------------------------------------- gpproxy.score


def _bad_score_calls(archs, tmp_path):
    truth = {a: float(i) for i, a in enumerate(archs)}
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    return [
        (dict(archs=-1, ground_truth=truth), "archs=-1: needs at least 2 archs to rank"),
        (dict(archs=0, ground_truth=truth), "archs=0: needs at least 2 archs to rank"),
        (dict(archs=1, ground_truth=truth), "archs=1: needs at least 2 archs to rank"),
        (dict(archs=[], ground_truth=truth), "archs is an empty list"),
        (dict(archs=archs[:1], ground_truth=truth), "needs at least 2 archs to rank"),
        (dict(ground_truth={archs[0]: 1.0}), "needs at least 2 archs to rank"),
        (dict(archs=2.5, ground_truth=truth), "archs = 2.5 is not allowed"),
        (dict(archs=True, ground_truth=truth), "archs = True is not allowed"),
        (dict(archs=archs[0]), "archs = '|"),
        (dict(archs=archs, pack=None), "pack = None is not allowed"),
        (dict(archs=archs, ground_truth=[1, 2]), "ground truth must map archs to accuracies"),
        (dict(archs=archs, cache_dir=a_file), f"cache_dir = {str(a_file)!r} is not allowed"),
        (dict(ground_truth={**truth, archs[0]: float("nan")}), "has accuracy nan"),
        (dict(ground_truth={**truth, archs[0]: float("inf")}), "has accuracy inf"),
        (dict(ground_truth={**truth, "x": 1.0}), "ground truth names an invalid arch: cannot read NB201 arch 'x'"),
    ]


@pytest.mark.parametrize("case", range(15))
def test_score_refuses_bad_arguments_in_one_line(case, archs, tmp_path):
    kw, want = _bad_score_calls(archs, tmp_path)[case]
    kw.setdefault("cache_dir", tmp_path / "c")
    with pytest.raises(GpproxyError, match=re.escape(want)) as err:
        gpproxy.score("sum_layers(params)", batch=4, **kw)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "c").exists()  # refused before any network was built


@pytest.mark.parametrize("proxy", [123, 1.5, None, ["params"]])
def test_score_refuses_a_proxy_that_is_not_a_string(proxy, archs, tmp_path):
    """score(123) used to score the constant formula "123": the same value for every arch."""
    with pytest.raises(GpproxyError, match="proxy = .* is not allowed: give a string"):
        gpproxy.score(proxy, archs, batch=4, cache_dir=tmp_path / "c")


def test_nan_ground_truth_is_refused_as_evolve_refuses_it(archs, tmp_path):
    from gpproxy.api import _write_ground_truth

    truth = {a: float(i) for i, a in enumerate(archs)}
    truth[archs[1]] = float("nan")
    with pytest.raises(GpproxyError, match="has accuracy nan"):
        _write_ground_truth(tmp_path / "gt.csv", truth, "t")
    with pytest.raises(GpproxyError, match="has accuracy nan"):
        gpproxy.score("params", ground_truth=truth, batch=4)


def test_one_arch_without_ground_truth_still_scores(archs, one_torch_thread):
    """No correlation is asked for: a single arch's score is a valid result (unchanged)."""
    res = gpproxy.score("params", archs[:1], batch=4)
    assert res.report is None and len(res.values) == 1
    two = gpproxy.score("params", np.int64(2), ground_truth={a: float(i) for i, a in enumerate(archs)}, batch=4)
    assert two.report["n"] == 2


# ---------------------------------------------------------------- Run


def _fake_run(tmp_path) -> Path:
    """A run directory with a config and a two-row front (nothing evolved)."""
    root = tmp_path / "run"
    root.mkdir()
    cfg = tiny_config(tmp_path / "t.csv", tmp_path / "c")
    (root / "config.json").write_text(json.dumps(cfg.to_dict()))
    (root / "pareto.csv").write_text("rank,formula,size,fitness,selected\n"
                                     "0,sum_layers(params),2,0.1,0\n"
                                     "1,sum_layers(frob(W)),3,0.2,1\n")
    return root


@pytest.mark.parametrize("path", [None, 5, 1.5, ["x"]])
def test_run_open_refuses_a_non_path(path):
    with pytest.raises(GpproxyError, match="give the path of a run directory"):
        gpproxy.Run.open(path)


@pytest.mark.parametrize("rank", ["a", 1.0, True, False, "0"])
def test_run_rank_must_be_an_integer(rank, tmp_path):
    run = gpproxy.Run.open(_fake_run(tmp_path))
    with pytest.raises(GpproxyError, match=re.escape(f"rank = {rank!r} is not allowed: must be an integer")):
        run.export(tmp_path / "p.py", rank=rank)
    with pytest.raises(GpproxyError, match="must be an integer"):
        run.candidate(rank)
    assert not (tmp_path / "p.py").exists()


def test_run_rank_integers_still_work(tmp_path):
    run = gpproxy.Run.open(_fake_run(tmp_path))
    assert run.candidate(1).formula == "sum_layers(frob(W))"
    assert run.candidate(np.int64(0)).formula == "sum_layers(params)"
    assert run.candidate().selected


# ---------------------------------------------------------------- pack and space files


PACK_HEAD = "import torch\nfrom gpproxy.pack import Pack, Weight, Layer, Net\n"
BAD_PACK_BODIES = {
    "runtime": ("raise RuntimeError('pack says no')\n", "RuntimeError: pack says no"),
    "import": ("import gpproxy_no_such_module_xyz\n", "ModuleNotFoundError"),
    "syntax": ("def broken(:\n", "SyntaxError"),
    "zero-division": ("PACK = 1 / 0\n", "ZeroDivisionError"),
    "exit-0": ("import sys\nsys.exit(0)\n", "SystemExit: 0"),
    "exit-3": ("raise SystemExit(3)\n", "SystemExit: 3"),
}


@pytest.mark.parametrize("kind", list(BAD_PACK_BODIES))
def test_pack_file_failing_at_import_is_one_line(kind, tmp_path, capsys):
    from gpproxy.pack import load_pack

    body, want = BAD_PACK_BODIES[kind]
    path = tmp_path / f"bad_{kind.replace('-', '_')}.py"
    path.write_text(PACK_HEAD + body)
    with pytest.raises(GpproxyError, match=re.escape(want)) as err:
        load_pack(str(path))
    assert f"primitive pack file {path} fails to import" in str(err.value)
    line = one_error_line(capsys, main(["export", "--formula", "sum_layers(params)", "--pack", str(path),
                                        "-o", str(tmp_path / "p.py")]))
    assert str(path) in line and want in line


BARREN_PACK = PACK_HEAD + '''
PACK = Pack("barren", stats={"W": Weight})


@PACK.unary("absolute", on=(Layer, Net))
def absolute(x):
    return x.abs()


@PACK.reduce("total")
def total(x, scale):
    return x.sum(dim=(1, 2)) * scale


@PACK.aggregate("sum_layers", additive=True)
def sum_layers(v, seg, counts):
    return torch.zeros(counts.shape[0], dtype=v.dtype).index_add(0, seg, v)
'''


def test_pack_whose_weight_type_no_primitive_returns_is_refused(tmp_path, tiny_table, capsys):
    """DEAP's generate needs a primitive of every type it places above a leaf: a Weight reached only
    through a reduction used to pass validation and crash the search with IndexError."""
    from gpproxy.pack import load_pack

    path = tmp_path / "barren_pack.py"
    path.write_text(BARREN_PACK)
    pack = load_pack(str(path))
    with pytest.raises(GpproxyError, match=r"pack barren: no primitive returns Weight.*on=\(Weight,\)"):
        pack.pset()
    with pytest.raises(GpproxyError, match="no primitive returns Weight"):
        pack.random_formulas(3)
    cfg = tiny_config(tiny_table, tmp_path / "cache", pack=str(path)).to_dict()
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    line = one_error_line(capsys, main(["evolve", str(tmp_path / "c.json"), "--out", str(tmp_path / "r"),
                                        "--no-plots"]))
    assert "no primitive returns Weight" in line
    assert not (tmp_path / "cache").exists()


def test_builtin_packs_still_grow_formulas():
    from gpproxy.pack import load_pack

    for name in ("default", "network", "population", "transfer"):
        assert len(load_pack(name).random_formulas(3, max_height=6)) == 3


def test_space_file_calling_sys_exit_is_one_line(tmp_path, capsys):
    from gpproxy.spaces import get_space

    path = tmp_path / "exiting_space.py"
    path.write_text("import sys\nsys.exit(0)\n")
    with pytest.raises(GpproxyError, match="fails to import: SystemExit: 0"):
        get_space(str(path))
    line = one_error_line(capsys, main(["describe", str(path), "x"]))
    assert str(path) in line and "SystemExit" in line


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("command", ["cache", "score", "bench"])
def test_binary_archs_file_is_one_line(command, tiny_table, tmp_path, capsys):
    path = tmp_path / "archs.bin"
    path.write_bytes(bytes(range(256)) * 4)
    argv = {"cache": ["cache", "--out", str(tmp_path / "c")], "score": ["score", "params"],
            "bench": ["bench", "--baselines", "params", "--out", str(tmp_path / "b")]}[command]
    line = one_error_line(capsys, main(argv + ["--benchmark", str(tiny_table), "--archs", str(path)]))
    assert f"--archs file {path} is not UTF-8 text" in line
    assert not (tmp_path / "c").exists()


def test_archs_file_with_only_comments_is_refused(tiny_table, tmp_path, capsys):
    path = tmp_path / "archs.txt"
    path.write_text("# nothing here\n\n#|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    line = one_error_line(capsys, main(["cache", "--benchmark", str(tiny_table), "--archs", str(path),
                                        "--out", str(tmp_path / "c")]))
    assert f"no archs in --archs file {path}" in line
    assert not (tmp_path / "c").exists()


def test_score_archs_file_with_one_arch_is_refused(tiny_table, tmp_path, capsys, archs):
    path = tmp_path / "archs.txt"
    path.write_text(archs[0] + "\n")
    line = one_error_line(capsys, main(["score", "params", "--benchmark", str(tiny_table), "--archs", str(path)]))
    assert "needs at least 2 archs to rank" in line


def test_bench_empty_out_is_refused(tiny_table, tmp_path, capsys):
    line = one_error_line(capsys, main(["bench", "--baselines", "params", "--archs", "3", "--out", "",
                                        "--benchmark", str(tiny_table), "--cache-dir", str(tmp_path / "c")]))
    assert "--out is empty" in line


def test_bench_out_directory_gets_bench_files_inside(tiny_table, tmp_path, capsys, monkeypatch, one_torch_thread):
    out = tmp_path / "results"
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    rc = main(["bench", "--baselines", "params", "--archs", "3", "--trials", "1", "--batch", "4",
               "--benchmark", str(tiny_table), "--datasets", "cifar10", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert {p.name for p in out.iterdir()} >= {"bench.md", "bench.csv", "bench.scores.json"}
    assert not (tmp_path / "results.md").exists() and not (tmp_path / "results.csv").exists()


def test_threads_has_a_sane_upper_bound(tiny_table, capsys):
    from gpproxy.cli import MAX_THREADS

    line = one_error_line(capsys, main(["score", "params", "--threads", "99999", "--benchmark", str(tiny_table)]))
    assert "--threads = 99999 is not allowed" in line and f"in 0..{MAX_THREADS}" in line


def test_cache_jobs_are_capped_by_archs_and_cpus(tiny_table, tmp_path, capsys, monkeypatch):
    """--jobs 1000 for 2 archs started ~220 loky workers and hung."""
    import os

    import joblib

    seen = {}

    class Recording:
        def __init__(self, n_jobs=None, **kw):
            seen["n_jobs"] = n_jobs
            raise GpproxyError("recorded")

    monkeypatch.setattr(joblib, "Parallel", Recording)
    rc = main(["cache", "--benchmark", str(tiny_table), "--archs", "2", "--jobs", "1000",
               "--batch", "4", "--act-features", "16", "--out", str(tmp_path / "c")])
    assert rc == 2 and "gpproxy: error: recorded" in capsys.readouterr().err
    assert seen.get("n_jobs", 1) <= min(2, os.cpu_count() or 1)
