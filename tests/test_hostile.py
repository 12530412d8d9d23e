"""Hostile and careless input (issue 14): every case gets one ``gpproxy: error:``
line and exit 2, or a correct, documented result; runs and caches belong to
one process; workers die with their driver; a run always finishes.

The catalogue is table-driven through ``gpproxy.cli.main``; the parsers that
read user text or files are fuzzed in ``test_hostile_fuzz.py``.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import re
import time
from pathlib import Path

import numpy as np
import pytest
from gpproxy.cli import main
from gpproxy.errors import DataError, GpproxyError
from tests.conftest import one_error_line, tiny_config

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- configs

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def to_toml(data: dict, task_header="[[task]]") -> str:
    out = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, (dict, list))]
    for section in ("search", "fitness"):
        if section in data:
            out.append(f"[{section}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in data[section].items()]
    for t in data.get("task", []):
        out.append(task_header)
        out += [f"{k} = {_toml_value(v)}" for k, v in t.items()]
    return "\n".join(out) + "\n"


@pytest.fixture()
def base_config(tiny_table, tiny_cache):
    return {"name": "tiny", "seed": 3, "device": "cpu",
            "search": {"population": 8, "generations": 1, "init_max_height": 4, "max_height": 7,
                       "backend": "serial", "hall_of_fame": 5},
            "fitness": {},
            "task": [{"name": "t", "benchmark": str(tiny_table), "target": "acc", "search_archs": 30,
                      "heldout_archs": 20, "batch": 4, "act_features": 16, "weight_rows": 8,
                      "weight_cols": 16, "cache": str(tiny_cache)}]}


# (where, key, value, words the message must contain)
BAD_CONFIG_VALUES = [
    ("search", "population", "20", ["search.population", '"20"', "integer"]),
    ("search", "population", 20.0, ["search.population", "20.0"]),
    ("search", "population", 10, ["multiple of 4"]),
    ("search", "generations", "3", ["search.generations", '"3"']),
    ("search", "generations", -1, ["search.generations", ">= 0"]),
    ("task", "search_archs", "30", ["search_archs", '"30"']),
    ("task", "search_archs", 0, ["search_archs = 0", ">= 4"]),
    ("task", "search_archs", 1, ["search_archs = 1"]),
    ("task", "search_archs", -5, ["search_archs = -5"]),
    ("task", "heldout_archs", -3, ["heldout_archs = -3", '"rest"']),
    ("task", "heldout_archs", 0, ["heldout_archs = 0"]),
    ("task", "heldout_archs", "all", ["heldout_archs", '"all"']),
    ("", "device", 5, ["device = 5", "cuda"]),
    ("", "device", "tpu", ["device", '"tpu"']),
    ("", "seed", -1, ["seed = -1"]),
    ("", "name", "../escape", ["name", "leading dot"]),
    ("fitness", "subset_fraction", 5, ["fitness.subset_fraction = 5", "between 0 and 1"]),
    ("fitness", "subset_fraction", 0.0, ["fitness.subset_fraction = 0.0"]),
    ("fitness", "correlation", "pearson", ["fitness.correlation"]),
    ("search", "init_min_height", 6, ["init_min_height <= init_max_height"]),
    ("search", "select_tolerance", -1, ["search.select_tolerance = -1", ">= 0"]),
    ("search", "cx_prob", 2, ["search.cx_prob = 2", "[0, 1]"]),
    ("search", "jobs", 0, ["search.jobs = 0"]),
    ("search", "chunk_archs", "lots", ["search.chunk_archs", '"auto"']),
    ("search", "eval_timeout", -1, ["search.eval_timeout = -1"]),
    ("search", "seed_baselines", 1, ["search.seed_baselines = 1", "true or false"]),
    ("search", "seed_formulas", "sum_layers(frob(dW))", ["search.seed_formulas", "a list of strings"]),
    ("search", "seed_formulas", [1], ["search.seed_formulas = [1]", "a list of strings"]),
    ("search", "seed_formulas", ["nope(dW)"], ["search.seed_formulas[0]", "not a formula of pack default"]),
    ("search", "seed_formulas", ["sum_layers(frob(dW))", "__import__('os')"],
     ["search.seed_formulas[1]", "not a formula"]),
    ("search", "seed_formulas", ["sum_layers(frob(dW))"] * 5,
     ["search.seed_formulas has 5", "half the population (4)"]),
    ("task", "batch", "8", ["batch", '"8"', "integer"]),
    ("task", "batch", 8.5, ["batch = 8.5"]),
    ("task", "batch", 1, ["batch = 1", ">= 2"]),
    ("task", "num_classes", 0, ["num_classes = 0", ">= 2"]),
    ("task", "resolution", 1, ["resolution = 1"]),
    ("task", "act_features", 0, ["act_features = 0", ">= 1"]),
    ("task", "weight_rows", -1, ["weight_rows = -1"]),
    ("task", "weight_cols", 0, ["weight_cols = 0"]),
    ("task", "storage", "float64", ["storage"]),
    ("task", "noise_pass", 1, ["noise_pass = 1"]),
    ("task", "name", "a/b", ["name", '"a/b"']),
    ("task", "unknown_key", 1, ["unknown key(s) unknown_key"]),
    ("search", "eval_timeout", 1e10, ["search.eval_timeout = 10000000000.0", "0..1e6"]),
    ("", "seed", 2**70, ["seed = 1180591620717411303424", "0..4294967295"]),
    ("task", "seed", 2**40, ["seed = 1099511627776"]),
    ("task", "split_seed", 2**33, ["split_seed = 8589934592"]),
    ("", "device", "mps", ["device", '"mps"']),
    ("task", "cache", "a\x00b", ["cache", "NUL character"]),
    ("task", "space", "a\x00b.py", ["space", "NUL character"]),
]


@pytest.mark.parametrize("where,key,value,words", BAD_CONFIG_VALUES,
                         ids=[f"{w or 'top'}.{k}={v!r}" for w, k, v, _ in BAD_CONFIG_VALUES])
def test_bad_config_value_is_one_line_before_any_work(where, key, value, words, base_config, tmp_path, capsys):
    cfg = json.loads(json.dumps(base_config))
    if where == "task":
        cfg["task"][0][key] = value
    elif where:
        cfg[where][key] = value
    else:
        cfg[key] = value
    if key == "subset_fraction":
        cfg["fitness"]["subsets"] = 3
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    out = tmp_path / "run"
    line = one_error_line(capsys, main(["evolve", str(path), "--out", str(out)]))
    for w in words:
        assert w in line, line
    assert not out.exists()  # refused before any work


def test_a_tasks_table_beside_task_tables_is_refused_not_dropped(base_config, tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(to_toml(base_config) + "[[tasks]]\nname = 'second'\n")
    line = one_error_line(capsys, main(["evolve", str(path), "--out", str(tmp_path / "r")]))
    assert "both [[task]] and [[tasks]]" in line


def test_a_config_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path, capsys):
    line = one_error_line(capsys, main(["evolve", "/dev/zero", "--out", str(tmp_path / "r")]))
    assert "/dev/zero is not a regular file" in line


def test_small_subsets_are_refused(base_config, tmp_path, capsys):
    cfg = json.loads(json.dumps(base_config))
    cfg["fitness"].update(subsets=3, subset_fraction=0.1)  # 3 of 30 archs
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    line = one_error_line(capsys, main(["evolve", str(path), "--out", str(tmp_path / "r")]))
    assert "subsets of 3 archs" in line


@pytest.mark.parametrize("case", ["single-bracket-task", "no-task", "directory", "missing", "not-toml",
                                  "task-not-table"])
def test_bad_config_files(case, base_config, tmp_path, capsys):
    path = tmp_path / "c.toml"
    if case == "single-bracket-task":
        path.write_text(to_toml(base_config, task_header="[task]"))
        want = "[[task]] (double brackets)"
    elif case == "no-task":
        path.write_text(to_toml({k: v for k, v in base_config.items() if k != "task"}))
        want = "at least one [[task]]"
    elif case == "directory":
        path.mkdir()
        want = "is a directory"
    elif case == "missing":
        want = "does not exist"
    elif case == "not-toml":
        path.write_text("[search\npopulation = ")
        want = "not valid TOML"
    else:
        path.write_text("task = [1, 2]\n" + to_toml({k: v for k, v in base_config.items() if k != "task"}))
        want = "[[task]] #1 must be a table"
    line = one_error_line(capsys, main(["evolve", str(path), "--out", str(tmp_path / "r")]))
    assert want in line, line
    assert not (tmp_path / "r").exists()


def test_override_is_validated_too(base_config, tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(to_toml(base_config))
    line = one_error_line(capsys, main(["evolve", str(path), "--out", str(tmp_path / "r"), "--generations", "-2"]))
    assert "--generations = -2" in line


# ---------------------------------------------------------------- CLI arguments

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"

BAD_CLI = [
    (["describe", "nb201", NB201_ARCH, "--num-classes", "-3"], "--num-classes = -3"),
    (["cache", "--act-features", "0"], "--act-features = 0"),
    (["cache", "--resolution", "1"], "--resolution = 1"),
    (["cache", "--weight-rows", "-1"], "--weight-rows = -1"),
    (["cache", "--weight-cols", "0"], "--weight-cols = 0"),
    (["cache", "--num-classes", "0"], "--num-classes = 0"),
    (["cache", "--batch", "1"], "--batch = 1"),
    (["cache", "--jobs", "0"], "--jobs = 0"),
    (["cache", "--seed", "-4"], "--seed = -4"),
    (["cache", "--device", "tpu"], "--device"),
    (["cache", "--batch", "abc"], "invalid int value"),
    (["cache", "--archs", "0", "--benchmark", "TABLE"], "--archs 0"),
    (["cache", "--archs", "-1", "--benchmark", "TABLE"], "--archs '-1'"),
    (["export", "--formula", "sum_layers(frob(W))", "--rank", "1"], "no --rank"),
    (["export", "--formula", "sum_layers(" + "9" * 400 + ")"], "too large"),
    (["export", "--formula=" + "-" * 3900 + "1"], "nests deeper"),
    (["export", "--formula", "__import__('os').system('true')"], "only calls of primitive names"),
    (["export", "--formula", "sum_layers(frob(W))", "--rank", "-1"], "--rank"),
    (["export"], "give a run directory or --formula"),
    (["inspect", "NOTARUN"], "not a gpproxy run directory"),
    (["resume", "NOTARUN"], "not a gpproxy run directory"),
    (["score", "params", "--batch", "1"], "--batch = 1"),
    (["score", "params", "--trials", "0"], "--trials = 0"),
    (["bench", "--threads", "-1"], "--threads = -1"),
    (["nosuchcommand"], "invalid choice"),
]


@pytest.mark.parametrize("argv,want", BAD_CLI, ids=[" ".join(a)[:50] for a, _ in BAD_CLI])
def test_bad_cli_argument_is_one_line(argv, want, tiny_table, tmp_path, capsys):
    argv = [str(tiny_table) if a == "TABLE" else str(tmp_path / "x") if a == "NOTARUN" else a for a in argv]
    if argv[0] == "cache":
        argv += ["--out", str(tmp_path / "c")]
    if argv[0] == "export" and len(argv) > 1:
        argv += ["-o", str(tmp_path / "p.py")]
    elif argv == ["export"]:
        argv += ["-o", str(tmp_path / "p.py")]
    line = one_error_line(capsys, main(argv))
    assert want in line, line
    assert not (tmp_path / "c" / "cache.json").exists()


def test_cache_out_that_is_a_file_or_under_a_file(tiny_table, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    for out, want in ((f, "is a file"), (f / "sub", "Not a directory")):
        line = one_error_line(capsys, main(["cache", "--benchmark", str(tiny_table), "--archs", "2",
                                            "--batch", "4", "--out", str(out)]))
        assert want in line and str(f) in line, line


def test_outputs_that_are_files_or_directories(base_config, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    cfg = tmp_path / "c.toml"
    cfg.write_text(to_toml(base_config))
    line = one_error_line(capsys, main(["evolve", str(cfg), "--out", str(f)]))
    assert f"run directory {f} is a file" in line
    line = one_error_line(capsys, main(["export", "--formula", "sum_layers(frob(W))", "-o", str(tmp_path)]))
    assert str(tmp_path) in line
    assert f.read_text() == "x"


def test_os_errors_are_one_line(monkeypatch, tmp_path, capsys):
    import errno

    import gpproxy.export

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "p.py"))

    monkeypatch.setattr(gpproxy.export, "export_formula", full)
    line = one_error_line(capsys, main(["export", "--formula", "sum_layers(frob(W))", "-o", str(tmp_path / "p.py")]))
    assert "No space left on device" in line and "p.py" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_out_directory(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        line = one_error_line(capsys, main(["export", "--formula", "sum_layers(frob(W))", "-o", str(ro / "p.py")]))
        assert "ermission denied" in line
    finally:
        ro.chmod(0o700)


# ---------------------------------------------------------------- run directories

@pytest.fixture(scope="module")
def finished_run(tiny_table, tiny_cache, tmp_path_factory):
    import gpproxy

    root = tmp_path_factory.mktemp("hostile") / "run"
    return gpproxy.evolve(tiny_config(tiny_table, tiny_cache, generations=1), out=root, log=lambda m: None)


def _copy_run(run, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(run.root, dst)
    return dst


def _edit_cell(path: Path, column: str, value: str, row: int = 0) -> None:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
        columns = list(rows[0])
    rows[row][column] = value
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


@pytest.mark.parametrize("column,value,want", [
    ("formula", "sum_layers(" + "9" * 400 + ")", "too large"),
    ("formula", "sum_layers(frob(" + "-" * 3900 + "W))", "formula"),
    ("formula", "__import__('os').system('touch /tmp/x')", "only calls of primitive names"),
    ("fitness", "0.5\"\"\"\nimport os\n\"\"\"", "not a number"),
    ("size", "x" * 1_000_000, "not a valid CSV"),
    ("fitness", "nan", "not finite"),
])
def test_hand_edited_pareto_csv(column, value, want, finished_run, tmp_path, capsys):
    root = _copy_run(finished_run, tmp_path)
    _edit_cell(root / "pareto.csv", column, value)
    line = one_error_line(capsys, main(["inspect", str(root)]))
    assert want in line and "pareto.csv" in line, line


def test_export_from_hostile_run_directory_runs_no_code(finished_run, tmp_path, capsys):
    """Issue item 2: CSV cells that carry code never run when the export is imported."""
    root = _copy_run(finished_run, tmp_path)
    mark = tmp_path / "PWNED"
    payload = f'0.55"""\nopen({str(mark)!r}, "w").write("x")\n"""'
    task_cols = [c for c in next(csv.reader(open(root / "pareto.csv"))) if ":heldout_" in c]
    for col in ["fitness"] + task_cols:
        _edit_cell(root / "pareto.csv", col, payload)
        rc = main(["export", str(root), "-o", str(tmp_path / "proxy.py")])
        capsys.readouterr()
        if rc == 0:
            import importlib.util

            spec = importlib.util.spec_from_file_location(f"hostile_{col.replace(':', '_')}", tmp_path / "proxy.py")
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        assert rc in (0, 2) and not mark.exists(), col
        shutil.copy(finished_run.root / "pareto.csv", root / "pareto.csv")


def test_rank_and_pack_arguments_are_not_ignored(finished_run, tmp_path, capsys):
    line = one_error_line(capsys, main(["export", str(finished_run.root), "--pack", "default",
                                        "-o", str(tmp_path / "p.py")]))
    assert "--pack goes with --formula" in line
    line = one_error_line(capsys, main(["export", str(finished_run.root), "--rank", "99",
                                        "-o", str(tmp_path / "p.py")]))
    assert "rank 99" in line


def test_wrong_structure_checkpoint(finished_run, tmp_path, capsys):
    root = _copy_run(finished_run, tmp_path)
    for state in ({"version": 1, "generation": "x"}, {"version": 1, "generation": 0, "population": ["f"],
                                                       "memo": {}, "logbook": [], "random_state": (3, (), None)},
                  [1, 2, 3]):
        (root / "checkpoint.pkl").write_bytes(pickle.dumps(state))
        line = one_error_line(capsys, main(["resume", str(root)]))
        assert "checkpoint.pkl" in line, line


def test_stray_temporaries_and_generation_zero_line_after_a_kill(tiny_table, tiny_cache, tmp_path):
    """A kill between generation 0's log line and its checkpoint: the rerun has one
    generation-0 line, and the temporary files a killed atomic write left are gone."""
    import gpproxy

    root = tmp_path / "run"
    root.mkdir()
    (root / "log.jsonl").write_text(json.dumps({"generation": 0, "evals": 8}) + "\n")
    (root / ".pareto.csv.abc123.tmp").write_text("half")
    run = gpproxy.evolve(tiny_config(tiny_table, tiny_cache, generations=1), out=root, log=lambda m: None)
    assert [r["generation"] for r in run.log] == [0, 1]
    assert not list(root.glob(".*.tmp")) and not (root / ".gpproxy.lock").exists()
    assert json.loads((root / "protocol.json").read_text())["workdir"] == os.getcwd()


def test_resume_from_another_directory_is_refused(tiny_table, tiny_cache, tmp_path, monkeypatch, capsys):
    started = tmp_path / "started"
    started.mkdir()
    (started / "c").symlink_to(tiny_cache)
    monkeypatch.chdir(started)
    cfg = tiny_config(tiny_table, tiny_cache, generations=1).override(**{"task.cache": "c"})
    import gpproxy

    run = gpproxy.evolve(cfg, out=(started / "run").resolve(), log=lambda m: None)
    (run.root / "summary.json").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    line = one_error_line(capsys, main(["resume", str(run.root)]))
    assert f"started in {started}" in line and "cache c" in line
    assert not (elsewhere / "c").exists()
    monkeypatch.chdir(started)
    assert main(["resume", str(run.root)]) == 0


# ---------------------------------------------------------------- ownership

def _python(code: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, **kw)


def test_lock_refuses_a_second_owner_and_takes_over_a_dead_ones(tmp_path, capsys):
    from gpproxy.lock import LOCK_NAME, owned

    d = tmp_path / "d"
    holder = _python(f"from gpproxy.lock import owned\nimport sys\nwith owned({str(d)!r}, 'run directory'):\n"
                     f"    print('held', flush=True); sys.stdin.read()", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(GpproxyError, match=f"run directory {d} is in use by pid {holder.pid}"):
            with owned(d, "run directory"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (d / LOCK_NAME).exists()  # a killed owner leaves its lock file behind ...
    said = []
    with owned(d, "run directory", log=said.append):  # ... which is taken over, and said so
        pass
    assert said and f"pid {holder.pid}" in said[0] and "gone" in said[0]
    assert not (d / LOCK_NAME).exists()


def test_two_evolves_on_one_out(base_config, tmp_path, capsys):
    """The second run is refused; the first run's files are its own."""
    first = json.loads(json.dumps(base_config))
    first["seed"] = 1
    first["search"]["generations"] = 6
    p1, p2 = tmp_path / "first.toml", tmp_path / "second.toml"
    p1.write_text(to_toml(first))
    p2.write_text(to_toml(base_config))
    out = tmp_path / "run"
    proc = _python(f"import sys; from gpproxy.cli import main; sys.exit(main(['evolve', {str(p1)!r}, "
                   f"'--out', {str(out)!r}]))", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (out / ".gpproxy.lock").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the first run ended before the second started"
        line = one_error_line(capsys, main(["evolve", str(p2), "--out", str(out)]))
        assert f"run directory {out} is in use by pid {proc.pid}" in line
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["seed"] == 1 and cfg["search"]["generations"] == 6
    assert [r["generation"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())] == list(range(7))
    assert json.loads((out / "summary.json").read_text())["selected"]


def test_two_cache_builds_into_one_directory(tiny_table, tmp_path, capsys):
    from gpproxy.lock import owned

    out = tmp_path / "c"
    with owned(out, "cache"):  # a build in progress (this process holds it; another pid would too)
        holder_pid = os.getpid()
        # flock is per open file: a second open in this process conflicts just like another process
        line = one_error_line(capsys, main(["cache", "--benchmark", str(tiny_table), "--archs", "2",
                                            "--batch", "4", "--out", str(out)]))
    assert f"cache {out} is in use by pid {holder_pid}" in line
    assert not (out / "cache.json").exists()


# ---------------------------------------------------------------- workers die with their driver

def _session_pids(sid: int) -> list:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # fields: state, ppid, pgrp, session
                out.append(int(d.name))
    return out


def _children(pid: int) -> list:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and prctl")
@pytest.mark.parametrize("kind", ["cache", "evolve-local"])
def test_kill_9_of_the_driver_leaves_no_workers(kind, tiny_table, tiny_cache, base_config, tmp_path):
    if kind == "cache":
        argv = ["cache", "--benchmark", str(tiny_table), "--archs", "24", "--batch", "4", "--jobs", "2",
                "--act-features", "16", "--weight-rows", "8", "--weight-cols", "16", "--out", str(tmp_path / "c")]
    else:
        cfg = json.loads(json.dumps(base_config))
        cfg["search"].update(backend="local", jobs=2, generations=50, population=16)
        (tmp_path / "c.toml").write_text(to_toml(cfg))
        argv = ["evolve", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run")]
    proc = _python(f"import sys; from gpproxy.cli import main; sys.exit(main({argv!r}))",
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            # loky: its workers (and resource tracker) are the driver's children
            if len(_children(proc.pid)) >= 2:
                time.sleep(1.0)  # let the workers start their first task
                break
            time.sleep(0.1)
        assert proc.poll() is None and len(_children(proc.pid)) >= 2, "no workers started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 15
        while _session_pids(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        left = _session_pids(proc.pid)
        assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in left]
    finally:
        for p in _session_pids(proc.pid):
            os.kill(p, signal.SIGKILL)


# ---------------------------------------------------------------- a run that can always finish

HOSTILE_PACK = '''
import re
import time
import torch
from gpproxy.pack import Pack, Weight

PACK = Pack("hostile", stats={"W": Weight, "dW": Weight}, layer_terminals=())

@PACK.unary("absolute")
def absolute(x):
    return x.abs()

@PACK.reduce("total")
def total(x, scale):
    return x.sum(dim=(1, 2)) * scale

@PACK.aggregate("sum_layers", additive=True)
def sum_layers(v, seg, counts):
    return torch.zeros_like(counts).index_add(0, seg, v)

@PACK.aggregate("boom")
def boom(v, seg, counts):  # fine on the pack's small validation tensors, raises on real data
    if v.numel() > 20:
        raise ZeroDivisionError("only on real-sized statistics")
    return torch.zeros_like(counts).index_add(0, seg, v)

@PACK.aggregate("wrong_shape")
def wrong_shape(v, seg, counts):  # one number for all archs on real data
    out = torch.zeros_like(counts).index_add(0, seg, v)
    return out if v.numel() <= 20 else out.sum()

@PACK.aggregate("sleepy")
def sleepy(v, seg, counts):  # hangs on real data
    if v.numel() > 20:
        time.sleep(30)
    return torch.zeros_like(counts).index_add(0, seg, v)

PACK.seed("boom_seed", "boom(total(W))")
PACK.seed("wrong_seed", "wrong_shape(total(dW))")
'''


def test_failing_user_primitives_never_stop_a_run(tiny_table, tiny_cache, tmp_path):
    import gpproxy

    pack = tmp_path / "hostile_pack.py"
    pack.write_text(HOSTILE_PACK)
    said = []
    cfg = tiny_config(tiny_table, tiny_cache, generations=1, pack=str(pack), eval_timeout=0.5)
    run = gpproxy.evolve(cfg, out=tmp_path / "run", log=said.append)
    summary = run.summary
    assert summary is not None  # the run finished
    assert summary["heldout_baselines"]["boom_seed"]["t"] is None
    assert summary["heldout_baselines"]["wrong_seed"]["t"] is None
    warnings = [m for m in said if m.startswith("warning: seed formula")]
    assert len(warnings) == 2 and "ZeroDivisionError" in warnings[0] and "shape" in warnings[1]
    from gpproxy.evaluator import EvalContext, EvalSpec, TaskEval
    from gpproxy.tasks import prepare_task

    td = prepare_task(cfg.tasks[0], log=lambda m: None)
    spec = EvalSpec(str(pack), (TaskEval("t", str(tiny_cache), tuple(td.search_archs),
                                         tuple(td.search_acc)),), eval_timeout=0.5)
    t0 = time.perf_counter()
    (res,) = EvalContext(spec).evaluate_many(["sleepy(total(W))"])
    assert time.perf_counter() - t0 < 10
    assert not res["valid"] and "eval_timeout" in res["error"]


def test_constant_target_is_one_line(tiny_table, tmp_path, capsys, base_config):
    table = tmp_path / "const.csv"
    rows = list(csv.reader(open(tiny_table)))
    table.write_text("\n".join([",".join(rows[0])] + [",".join(r[:2] + ["70.0"]) for r in rows[1:]]) + "\n")
    cfg = json.loads(json.dumps(base_config))
    cfg["task"][0].update(benchmark=str(table), cache=str(tmp_path / "c"))
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    line = one_error_line(capsys, main(["evolve", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")]))
    assert "is the same (70) for every search arch" in line
    assert not (tmp_path / "c").exists()


def test_missing_values_are_dropped_and_counted(tiny_table, tmp_path):
    from gpproxy.benchmarks import load_benchmark
    from gpproxy.config import TaskConfig
    from gpproxy.spaces import get_space
    from gpproxy.tasks import prepare_task

    rows = list(csv.reader(open(tiny_table)))
    for i, bad in ((1, "N/A"), (2, "nan"), (3, "inf"), (4, "")):
        rows[i][2] = bad
    table = tmp_path / "holes.csv"
    table.write_text("\n".join(",".join(r) for r in rows) + "\n")
    acc = load_benchmark(str(table), get_space("nb201")).accuracy("acc")  # "N/A" keeps the column
    assert np.isnan(acc[0]) and np.isnan(acc[1]) and np.isinf(acc[2]) and np.isnan(acc[3])
    said = []
    task = TaskConfig(name="h", benchmark=str(table), target="acc", search_archs=4, heldout_archs=2, batch=2,
                      act_features=8, weight_rows=4, weight_cols=8, cache=str(tmp_path / "c"))
    td = prepare_task(task, log=said.append)
    assert any("4 of 60 archs have no finite 'acc' value" in m for m in said), said
    assert len(td.search_archs) == 4 and np.all(np.isfinite(td.search_acc))


def test_image_inputs(tiny_table, tiny_cache, tmp_path, capsys):
    """A missing npz is reported as such (not as a cache mismatch); 1x1 images are
    refused; labels beyond the net's classes are folded, and the build says so."""
    base = ["cache", "--benchmark", str(tiny_table), "--archs", "1", "--batch", "2"]
    line = one_error_line(capsys, main(base + ["--input", f"npz:{tmp_path / 'none.npz'}", "--out", str(tiny_cache)]))
    assert "not found" in line
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "dot.npz", x_train=rng.integers(0, 256, (4, 1, 1, 3), dtype=np.uint8), y_train=np.arange(4))
    line = one_error_line(capsys, main(base + ["--input", f"npz:{tmp_path / 'dot.npz'}", "--out", str(tmp_path / "c1")]))
    assert "1x1 pixels" in line
    np.savez(tmp_path / "big.npz", x_train=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
             y_train=np.array([0, 50, 99, 3]))
    assert main(base + ["--input", f"npz:{tmp_path / 'big.npz'}", "--resolution", "8", "--act-features", "8",
                        "--weight-rows", "4", "--weight-cols", "8", "--out", str(tmp_path / "c2")]) == 0
    assert "folded into that range" in capsys.readouterr().err


def test_stats_file_of_another_arch_is_detected_and_rebuilt(tiny_cache, tmp_path):
    from gpproxy.cache import build_cache, open_cache

    root = tmp_path / "c"
    shutil.copytree(tiny_cache, root)
    (root / ".gpproxy.lock").unlink(missing_ok=True)
    cache = open_cache(root)
    a, b = cache.archs()[:2]
    ka, kb = cache.key_of(a), cache.key_of(b)
    for ext in ("json", "npy"):
        shutil.copy(root / "stats" / f"{ka}.{ext}", root / "stats" / f"{kb}.{ext}")
    assert cache.status(b) == "corrupt"
    with pytest.raises(DataError, match="holds the statistics of arch"):
        cache.record(b)
    said = []
    build_cache(root, cache.spec, [b], log=said.append)
    assert any("1 corrupt" in m for m in said) and open_cache(root).status(b) == "ok"


@pytest.mark.parametrize("kw, want", [({"batch": 2.5}, "batch = 2.5 is not allowed: must be an integer >= 2"),
                                      ({"batch": 0}, "batch = 0 is not allowed"),
                                      ({"resolution": 0}, "resolution = 0 is not allowed"),
                                      ({"resolution": "32"}, 'resolution = "32" is not allowed'),
                                      ({"resolution": True}, "resolution = True is not allowed"),
                                      ({"seed": -1}, "seed = -1 is not allowed")])
def test_the_python_api_checks_its_protocol_as_the_cli_does(kw, want, tmp_path):
    """gpproxy.score used to truncate a float batch and ignore resolution 0; the scoring Protocol now checks
    batch, seed and resolution by the config's rules before any network is built."""
    import gpproxy
    from gpproxy.scoring import Protocol
    from gpproxy.spaces import get_space

    archs = get_space("nb201").all_archs()[:2]
    with pytest.raises(GpproxyError, match=re.escape(want)):
        gpproxy.score("params", archs, space="nb201", cache_dir=tmp_path / "c", **kw)
    with pytest.raises(GpproxyError, match=re.escape(want)):
        Protocol(**kw)
    assert not (tmp_path / "c").exists()


def test_evolve_into_a_directory_of_other_files_is_refused_and_they_are_kept(base_config, tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(to_toml(base_config))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "pareto.csv").write_text("my own table\n")
    line = one_error_line(capsys, main(["evolve", str(path), "--out", str(out)]))
    assert "not a gpproxy run" in line and "pareto.csv" in line
    assert (out / "pareto.csv").read_text() == "my own table\n"
    assert sorted(p.name for p in out.iterdir()) == ["pareto.csv"]


def test_cache_into_a_directory_of_other_files_is_refused_and_they_are_kept(tiny_table, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "targets.csv").write_text("mine\n")
    line = one_error_line(capsys, main(["cache", "--benchmark", str(tiny_table), "--target", "acc", "--archs", "2",
                                        "--batch", "2", "--out", str(out)]))
    assert "not a statistics cache" in line and "targets.csv" in line
    assert (out / "targets.csv").read_text() == "mine\n"


@pytest.mark.parametrize("error, words", [
    (RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried to allocate 256 GB"),
     ["out of memory", "can't allocate memory", "smaller --batch"]),
    (MemoryError(), ["out of memory (MemoryError)"]),
    (SystemExit(0), ["user code called sys.exit(0)"]),
])
def test_out_of_memory_and_user_sys_exit_are_one_line_and_not_success(error, words, monkeypatch, capsys):
    import gpproxy.cli as cli

    def boom(args):
        raise error

    monkeypatch.setattr(cli, "cmd_describe", boom)
    line = one_error_line(capsys, main(["describe", "nb201", "0"]))
    for w in words:
        assert w in line, line


def test_other_runtime_errors_are_not_called_out_of_memory(monkeypatch):
    import gpproxy.cli as cli

    def boom(args):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(cli, "cmd_describe", boom)
    with pytest.raises(RuntimeError, match="a bug of ours"):
        main(["describe", "nb201", "0"])
