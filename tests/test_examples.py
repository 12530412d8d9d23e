"""The README's user-space example (NAS-Bench-Macro as examples/spaces/nb_macro.py
on the staged labels) runs as written: evolve -> inspect -> export -> score,
on a smaller copy of examples/nb_macro.toml (fewer archs and generations)."""
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
MACRO = ROOT.parent / "shared" / "data" / "nbmacro" / "nas_bench_macro_cifar10.csv.gz"


def _toml(data: dict) -> str:
    lines = []
    for key, value in data.items():
        if not isinstance(value, (dict, list)):
            lines.append(f"{key} = {json.dumps(value)}")
    for section in ("search", "fitness"):
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in data.get(section, {}).items()]
    for task in data["task"]:
        lines.append("[[task]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in task.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_readme_user_space_example_runs(tmp_path, monkeypatch, one_torch_thread, capsys):
    if not MACRO.exists():
        pytest.skip(f"shared data {MACRO} not present")
    from gpproxy.cli import main

    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Your own search space\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    config = tomllib.loads((ROOT / "examples" / "nb_macro.toml").read_text())
    config["search"].update(population=8, generations=1, jobs=1)
    config["task"][0].update(search_archs=16, heldout_archs=12, cache=str(tmp_path / "cache"))
    small = tmp_path / "nb_macro_small.toml"
    small.write_text(_toml(config))
    monkeypatch.chdir(ROOT)  # the README's relative paths (space file, ../shared) are the repo's
    swaps = {"examples/nb_macro.toml": str(small), "runs/nb-macro": str(tmp_path / "run"),
             "nb_macro_proxy.py": str(tmp_path / "proxy.py"), "nb_macro_scores.json": str(tmp_path / "s.json"),
             "--archs 100": "--archs 12"}
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 4
    for line in commands:
        for old, new in swaps.items():
            line = line.replace(old, new)
        argv = shlex.split(line)
        assert argv[0].endswith("gpproxy")
        assert main(argv[1:]) == 0, line
    out = capsys.readouterr().out
    assert "selected (*)" in out and "wrote" in out
    assert re.search(r"kendall\s+[+-]\d\.\d{4}", out), out[-600:]
