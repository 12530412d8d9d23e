"""Merging gpproxy scores into NAS-Bench-Suite-Zero / NASLib zc_api files.

Fixtures in the suite's real layout (data[dataset][arch][proxy] = {"score", "time"} beside
"val_accuracy" and an id): tests/fixtures/tnb101 holds rows of NASLib's zc_transbench101_*.json;
tests/fixtures/nb201/zc_nasbench201_subset.json has zc_nasbench201.json's layout and keys (NASLib
6-tuples) with synthetic values.
"""
import json
import shutil
from pathlib import Path

import pytest

from gpproxy.adapters import merge_zc_api
from gpproxy.cli import main
from gpproxy.errors import GpproxyError
from gpproxy.scoring import Protocol, score_proxy

FIX = Path(__file__).resolve().parent / "fixtures"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _labels(data):
    return {(ds, a): {k: v for k, v in e.items() if not isinstance(v, dict)} for ds, archs in data.items()
            for a, e in archs.items()}


@pytest.mark.parametrize("space, suite, dataset", [
    ("nb201", FIX / "nb201" / "zc_nasbench201_subset.json", "cifar10"),
    ("tnb101_micro", FIX / "tnb101" / "zc_transbench101_micro_subset.json", "class_scene"),
])
def test_merge_scores_into_a_zc_api_file(space, suite, dataset, tmp_path, capsys):
    into = tmp_path / suite.name
    shutil.copy(suite, into)
    before = json.loads(into.read_text())
    archs = list(before[dataset])[:3]
    scores = tmp_path / "scores.json"
    # a gpproxy scores file with its own val_accuracy (another benchmark's): never copied over
    got = score_proxy("sum_layers(params)", archs, protocol=Protocol(space=space, batch=2), dataset=dataset,
                      ground_truth={a: 1.0 for a in archs}, scores_path=scores, cache_root=tmp_path / "c")
    ours = json.loads(scores.read_text())
    (key,) = {k for e in ours[dataset].values() for k in e if k != "val_accuracy"}
    assert main(["zc-merge", str(scores), "--into", str(into), "--proxy", f"{key}=gp_params"]) == 0
    assert "3 proxy entries merged" in capsys.readouterr().out
    after = json.loads(into.read_text())
    assert _labels(after) == _labels(before)  # val_accuracy, ids, arch untouched
    for arch, value in zip(archs, got.values.tolist()):
        entry = after[dataset][arch]
        assert entry["gp_params"]["score"] == pytest.approx(value)
        assert {k: v for k, v in entry.items() if k != "gp_params"} == before[dataset][arch]
    untouched = [a for a in before[dataset] if a not in archs]
    assert all("gp_params" not in after[dataset][a] for a in untouched)
    # the suite's own proxies are kept unless asked
    clash = tmp_path / "clash.json"
    proxy = next(k for k, v in before[dataset][archs[0]].items() if isinstance(v, dict))
    clash.write_text(json.dumps({dataset: {archs[0]: {proxy: {"score": 1.0, "time": 0.1}}}}))
    assert merge_zc_api(clash, into)[dataset] == {"merged": 0, "kept": 1, "missing_archs": 0}
    assert json.loads(into.read_text())[dataset][archs[0]][proxy] == before[dataset][archs[0]][proxy]
    merge_zc_api(clash, into, overwrite=True)
    assert json.loads(into.read_text())[dataset][archs[0]][proxy]["score"] == 1.0


def test_merge_errors(tmp_path):
    into = tmp_path / "zc.json"
    shutil.copy(FIX / "nb201" / "zc_nasbench201_subset.json", into)
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"imagenet16_120": {}}))
    with pytest.raises(GpproxyError, match="no dataset 'imagenet16_120'"):
        merge_zc_api(bad, into)
    bad.write_text(json.dumps({"cifar10": {"(0, 0, 0, 0, 0, 0)": {"x": {"score": 1.0}}}}))
    assert merge_zc_api(bad, into)["cifar10"]["missing_archs"] == 1
    with pytest.raises(GpproxyError, match="not allowed"):
        merge_zc_api(bad, into, proxies={"x": "val_accuracy"})
    bad.write_text("{not json")
    with pytest.raises(GpproxyError, match="not valid JSON"):
        merge_zc_api(bad, into)
