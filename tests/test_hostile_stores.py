"""Hostile score stores and zc_api files (a fuzz sweep's finds): `gpproxy score/bench --scores FILE` and
`gpproxy zc-merge` answer a malformed file with one DataError line naming it and its first bad entry,
never a traceback, and zc-merge writes strict JSON (no NaN/Infinity)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from gpproxy.adapters import merge_zc_api
from gpproxy.cli import main
from gpproxy.errors import DataError
from gpproxy.scoring import Protocol
from gpproxy.scoring.proxies import proxy_seconds
from gpproxy.scoring.store import ScoreStore
from tests.conftest import one_error_line

FIX = Path(__file__).resolve().parent / "fixtures"
SUITE = FIX / "nb201" / "zc_nasbench201_subset.json"
PROT = Protocol(batch=4)
DEEP = "[" * 100000  # past the JSON parser's nesting depth: RecursionError, not ValueError
HUGE = "9" * 400  # an int past float's range: json reads it, float() overflows


def _strict(text: str):
    """``text`` parsed as standard JSON: NaN/Infinity refused."""
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------- score stores

def _entry(score="1.5", time="0.1"):
    return '{"cifar10": {"a": {"p": {"score": %s, "time": %s}}}}' % (score, time)


# (file text, words the message must hold)
BAD_STORES = [
    ("[]", ["holds a list"]),
    ('{"cifar10": 5}', ["['cifar10'] is 5", "not a dict of archs"]),
    ('{"cifar10": {"a": 5}}', ["['cifar10']['a'] is 5", "not a dict of proxies"]),
    ('{"cifar10": {"a": {"p": 5}}}', ["['cifar10']['a']['p'] is 5"]),
    ('{"cifar10": {"a": {"p": {"score": 1.5}}}}', ["['cifar10']['a']['p'] is {'score': 1.5}", '"time"']),
    (_entry(score='"x"'), ["['cifar10']['a']['p']", "score 'x' is not a number"]),
    (_entry(score="true"), ["score True is not a number"]),
    (_entry(score="[1]"), ["score [1] is not a number"]),
    (_entry(time='"x"'), ["time 'x' is not a number"]),
    (_entry(time="null"), ["time None is not a number"]),
    (_entry(time="1e999"), ["time inf is not a finite"]),
    (_entry(time=HUGE), ["time 999", "not a finite"]),
    (_entry(time="-1"), ["time -1 is not a finite number of seconds >= 0"]),
    (DEEP, ["unreadable", "nested too deeply"]),
]


@pytest.mark.parametrize("text, words", BAD_STORES, ids=[str(i) for i in range(len(BAD_STORES))])
def test_a_malformed_score_store_is_one_data_error(text, words, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(DataError) as got:  # at open, or at the latest when the bad entry is read
        store = ScoreStore(path, PROT)
        store.get("cifar10", "a", "p")
        store.scores("cifar10", ["a"], "p")
        proxy_seconds(store, "cifar10", "a", SimpleNamespace(kind="baseline", name="p"))
    msg = str(got.value)
    assert "\n" not in msg and f"scores file {path}" in msg and "use another --scores" in msg
    for w in words:
        assert w in msg, msg


def test_a_long_bad_entry_is_cut_to_one_line(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"cifar10": {"a\nb": {"p": "x" * 10000}}}))
    with pytest.raises(DataError) as got:
        ScoreStore(path, PROT)
    assert "\n" not in str(got.value) and len(str(got.value)) < 400


@pytest.mark.parametrize("text", ["[]", '{"cifar10": 5}', DEEP, "{not json"])
def test_cli_score_with_a_malformed_store(text, tiny_table, tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(text)
    rc = main(["score", "params", "--benchmark", str(tiny_table), "--archs", "4", "--batch", "4",
               "--scores", str(path)])
    assert str(path) in one_error_line(capsys, rc)
    assert path.read_text() == text  # refused, not replaced


def test_what_a_valid_store_may_hold_reads_back_as_it_was(tmp_path):
    """A suite file's labels and ids, int scores, and NASLib's rule for a non-finite score."""
    path = tmp_path / "s.json"
    data = {"cifar10": {"a": {"id": "0", "arch": "x", "val_accuracy": 88.5, "p": {"score": 7, "time": 0},
                              "q": {"score": 1.5, "time": 0.25, "extra": "kept"}}},
            "cifar100": {}}
    path.write_text(json.dumps(data))
    store = ScoreStore(path, PROT)
    assert store.data == data and isinstance(store.get("cifar10", "a", "p")["score"], int)
    assert store.scores("cifar10", ["a"], "q").tolist() == [1.5]
    for bad in ("NaN", "Infinity", "-1e999", HUGE):
        path.write_text(_entry(score=bad))
        assert ScoreStore(path, PROT).get("cifar10", "a", "p") == {"score": -1e8, "time": 0.1}


def _store_with_sidecar(tmp_path, side_text: str) -> Path:
    path = tmp_path / "s.json"
    store = ScoreStore(path, PROT)
    store.put("cifar10", "a", "p", 1.0, 0.1)
    store.save()
    store.protocol_path.write_text(side_text)
    return path


@pytest.mark.parametrize("side, words", [
    ("{garbage", ["is corrupt"]),
    (DEEP, ["is corrupt", "nested too deeply"]),
    ("[]", ["holds a list, not a protocol"]),
    ("{}", ["is incomplete", "no 'space'"]),
    ('{"space": "nb201", "batch": 4, "seed": 0, "input": "noise", "pack": "default"}',
     ["is incomplete", "no 'per_arch_seed'"]),
    ('{"space": "nb201", "batch": 4, "seed": 0, "input": "noise", "pack": "default", "per_arch_seed": false, '
     '"labels": {"cifar10": 5}}', ["corrupt 'labels'"]),
    ('{"space": "nb201", "batch": 4, "seed": 0, "input": "noise", "pack": "default", "per_arch_seed": false, '
     '"labels": []}', ["corrupt 'labels'"]),
])
def test_a_bad_protocol_sidecar_is_one_data_error(side, words, tmp_path):
    path = _store_with_sidecar(tmp_path, side)
    with pytest.raises(DataError) as got:
        ScoreStore(path, PROT)
    msg = str(got.value)
    assert "\n" not in msg and f"protocol file {path}.protocol.json" in msg and "made with" not in msg
    assert "use another --scores" in msg
    for w in words:
        assert w in msg, msg


def test_a_sidecar_without_later_keys_still_reads(tmp_path):
    """Sidecars written before Protocol had ``resolution`` read it as its default."""
    side = {k: v for k, v in PROT.to_dict().items() if k != "resolution"}
    path = _store_with_sidecar(tmp_path, json.dumps(side))
    assert ScoreStore(path, PROT).get("cifar10", "a", "p") == {"score": 1.0, "time": 0.1}


def test_cli_score_with_an_empty_sidecar(tiny_table, tmp_path, capsys):
    path = _store_with_sidecar(tmp_path, "{}")
    rc = main(["score", "params", "--benchmark", str(tiny_table), "--archs", "4", "--batch", "4",
               "--scores", str(path)])
    line = one_error_line(capsys, rc)
    assert "incomplete" in line and "batch=64" not in line


def test_a_save_over_a_malformed_file_replaces_it(tmp_path):
    """Another process's garbage on disk is not merged in (and does not crash the save)."""
    path = tmp_path / "s.json"
    store = ScoreStore(path, PROT)
    store.put("cifar10", "a", "p", 1.0, 0.1)
    for text in ('{"cifar10": {"b": 5}}', DEEP):
        path.write_text(text)
        store.save()
        assert json.loads(path.read_text()) == {"cifar10": {"a": {"p": {"score": 1.0, "time": 0.1}}}}


# ---------------------------------------------------------------- zc-merge

@pytest.fixture()
def suite(tmp_path):
    into = tmp_path / SUITE.name
    shutil.copy(SUITE, into)
    return into


def _arch():
    return next(iter(json.loads(SUITE.read_text())["cifar10"]))


def _ours(tmp_path, entry, name="s.json") -> Path:
    path = tmp_path / name
    path.write_text('{"cifar10": {%s: %s}}' % (json.dumps(_arch()), entry))
    return path


@pytest.mark.parametrize("text, words", [
    ('{"cifar10": {"a1": 5}}', ["['cifar10']['a1'] is 5", "not a dict of proxies"]),
    ('{"cifar10": {"a1": []}}', ["['cifar10']['a1'] is []"]),
    (DEEP, ["not valid JSON", "nested too deeply"]),
])
def test_zc_merge_refuses_a_malformed_scores_file(text, words, suite, tmp_path):
    scores = tmp_path / "s.json"
    scores.write_text(text)
    before = suite.read_text()
    with pytest.raises(DataError) as got:
        merge_zc_api(scores, suite)
    msg = str(got.value)
    assert "\n" not in msg and f"scores file {scores}" in msg
    for w in words:
        assert w in msg, msg
    assert suite.read_text() == before


def test_zc_merge_refuses_a_too_deep_suite_file(tmp_path):
    into = tmp_path / "zc.json"
    into.write_text(DEEP)
    with pytest.raises(DataError, match="zc_api file .*nested too deeply"):
        merge_zc_api(_ours(tmp_path, '{"p": {"score": 1.0, "time": 0.1}}'), into)


@pytest.mark.parametrize("entry", ['{"p": {"score": 1.0, "time": 1e999}}', '{"p": {"score": 1.0, "time": NaN}}',
                                   '{"p": {"score": 1.0, "time": %s}}' % HUGE, '{"p": {"score": 1.0, "time": -1}}'])
def test_zc_merge_refuses_a_non_finite_time(entry, suite, tmp_path):
    before = suite.read_text()
    with pytest.raises(DataError, match=r"\['p'\]|\[p\]") as got:
        merge_zc_api(_ours(tmp_path, entry), suite)
    assert "not a finite number of seconds" in str(got.value)
    assert suite.read_text() == before


@pytest.mark.parametrize("score", [HUGE, "-" + HUGE, "1e999", "NaN", "Infinity"])
def test_zc_merge_writes_a_non_finite_score_as_nasLibs_failed_value(score, suite, tmp_path):
    scores = _ours(tmp_path, '{"p": {"score": %s, "time": 0.5}}' % score)
    assert merge_zc_api(scores, suite)["cifar10"]["merged"] == 1
    assert _strict(suite.read_text())["cifar10"][_arch()]["p"] == {"score": -1e8, "time": 0.5}


def test_zc_merge_keeps_a_300_digit_score_finite(suite, tmp_path):
    scores = _ours(tmp_path, '{"p": {"score": %s, "time": 0.5}}' % ("1" + "0" * 299))
    merge_zc_api(scores, suite)
    assert _strict(suite.read_text())["cifar10"][_arch()]["p"] == {"score": 1e299, "time": 0.5}


def test_zc_merge_never_writes_nan_from_the_suite_file(suite, tmp_path):
    """A NaN already in the suite (not a proxy we merge) is refused, naming it, not written as NaN."""
    data = json.loads(suite.read_text())
    other = list(data["cifar10"])[1]
    data["cifar10"][other]["nwot"]["score"] = float("nan")
    suite.write_text(json.dumps(data))
    before = suite.read_text()
    with pytest.raises(DataError) as got:
        merge_zc_api(_ours(tmp_path, '{"p": {"score": 1.0, "time": 0.1}}'), suite)
    msg = str(got.value)
    assert f"zc_api file {suite} ['cifar10'][{other!r}]['nwot']['score'] is NaN or infinite" in msg, msg
    assert suite.read_text() == before


@pytest.mark.parametrize("side", [DEEP, "[]", '{"space": 5}', '{"space": ["nb201"]}', "{garbage"])
def test_zc_merge_ignores_a_corrupt_sidecar(side, suite, tmp_path):
    scores = _ours(tmp_path, '{"p": {"score": 1.0, "time": 0.1}}')
    Path(f"{scores}.protocol.json").write_text(side)
    assert merge_zc_api(scores, suite)["cifar10"] == {"merged": 1, "kept": 0, "missing_archs": 0}


def test_cli_zc_merge_one_error_line(suite, tmp_path, capsys):
    scores = tmp_path / "s.json"
    scores.write_text('{"cifar10": {"a1": 5}}')
    line = one_error_line(capsys, main(["zc-merge", str(scores), "--into", str(suite)]))
    assert str(scores) in line and "not a dict of proxies" in line
    scores = _ours(tmp_path, '{"p": {"score": 1.0, "time": 1e999}}')
    line = one_error_line(capsys, main(["zc-merge", str(scores), "--into", str(suite)]))
    assert "not a finite number of seconds" in line
