"""Numbers do not change under restructuring: a small quickstart-like evolution
(tests/golden/quickstart_small.toml: the quickstart's task, fitness and search
settings on 40 search / 30 held-out analog-nasbench archs) must reproduce the
fitness of every formula it evaluates, its Pareto front, hall of fame and
held-out report exactly as recorded before the issue-11 restructuring."""
import csv
import json
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GOLDEN = Path(__file__).resolve().parent / "golden"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_quickstart_small_reproduces_recorded_numbers(tmp_path, one_torch_thread):
    import gpproxy

    config = tomllib.loads((GOLDEN / "quickstart_small.toml").read_text())
    config["task"][0]["cache"] = str(tmp_path / "cache")
    run = gpproxy.evolve(config, out=tmp_path / "run", log=lambda m: None)

    want = GOLDEN / "quickstart_small"
    from gpproxy.rundir import load_checkpoint

    memo = {f: r["fitness"] for f, r in load_checkpoint(run.root)["memo"].items()}
    assert memo == json.loads((want / "fitness.json").read_text())
    for name in ("pareto.csv", "hall_of_fame.csv"):
        assert _rows(run.root / name) == _rows(want / name), name
    summary = dict(run.summary)
    summary.pop("run")
    assert json.loads(json.dumps(summary, sort_keys=True)) == json.loads((want / "summary.json").read_text())
