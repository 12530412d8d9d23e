"""The Python API: exactly the documented surface, the README example runs as
written, and gpproxy.score on in-memory ground truth."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import gpproxy
from gpproxy.errors import GpproxyError

ROOT = Path(__file__).resolve().parents[1]


def readme_block(heading: str, lang: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_package_exports_exactly_the_api():
    assert sorted(gpproxy.__all__) == ["Config", "Run", "__version__", "evolve", "score"]
    # in a fresh interpreter: tests run before this one import other submodules (attributes too)
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import gpproxy, json; print(json.dumps(sorted(vars(gpproxy))))"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    public = {n for n in json.loads(out) if not n.startswith("_")}
    # submodules imported by the package's own imports are attributes too; nothing else is
    assert public - set(gpproxy.__all__) <= {"api", "config", "run", "version", "errors", "rundir", "fileio",
                                              "fitness", "selection"}


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch, one_torch_thread, capsys):
    code = readme_block("Python API", "python")
    assert len(code.strip().splitlines()) <= 12
    (tmp_path / "experiments").mkdir()
    shutil.copy(ROOT / "experiments" / "quickstart.toml", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # our own README, not user input
    run, res = namespace["run"], namespace["res"]
    assert run.selected is not None and (tmp_path / "proxy_api.py").exists()
    assert -1 <= res.kendall <= 1 and len(res.values) == 50
    assert res.report["n"] == 50


def test_score_with_in_memory_ground_truth(tmp_path, one_torch_thread):
    from gpproxy.spaces import nb201

    archs = [nb201.format_arch(nb201.index_to_arch(i)) for i in range(0, 15625, 1500)]
    truth = {a: float(i) for i, a in enumerate(archs)}
    res = gpproxy.score("params", ground_truth=truth, batch=4)
    assert res.archs == archs and res.report["n"] == len(archs)
    naslib = [str(nb201.to_naslib(nb201.parse_arch(a))) for a in archs[:3]]
    again = gpproxy.score("params", naslib, batch=4)  # any encoding; no truth: scores only
    assert again.report is None and np.array_equal(again.values, res.values[:3])
    formula = gpproxy.score("sum_layers(params)", archs[:4], batch=4, cache_dir=tmp_path / "c")
    assert np.all(np.isfinite(formula.values)) and np.ptp(formula.values) > 0
    with pytest.raises(GpproxyError, match="has no ground truth"):
        gpproxy.score("params", archs[:2] + [nb201.format_arch(nb201.index_to_arch(1))],
                      ground_truth=truth, batch=4)
    with pytest.raises(GpproxyError, match="give the archs"):
        gpproxy.score("params")
