"""experiments/aggregate.py's leave-one-space-out choice of a rank aggregate's members: the subset with the
largest smallest margin over the seen spaces, ties to fewer members; the left-out space is never read."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import aggregate  # noqa: E402
from transfer_report import CLASSIC_SET  # noqa: E402


def _space(rng, acc, good: dict):
    """Scores of every classic proxy and formula: noise, except ``good`` {name: weight on acc}."""
    names = CLASSIC_SET + ("without x",)
    return acc, {n: good.get(n, 0.0) * acc + rng.normal(size=acc.size) for n in names}


def test_the_choice_takes_the_subset_good_on_every_seen_space_and_never_reads_the_left_out_one():
    rng = np.random.default_rng(0)
    acc = rng.normal(size=300)
    # meco is good on "a", nwot on "b": alone each loses on the other space; together they win on both
    data = {"a": _space(rng, acc, {"meco": 1.5, "nwot": 0.3}),
            "b": _space(rng, acc, {"nwot": 1.5, "meco": 0.3}),
            "x": (np.full(300, np.nan), {})}  # the left-out space: any read would fail
    c = aggregate.choose(["a", "b"], data, "without x")
    assert sorted(c["members"]) == ["meco", "nwot"]
    assert c["best_single"]["a"][0] == "meco" and c["best_single"]["b"][0] == "nwot"
    tau = {(y, n): aggregate.kendall(data[y][1][n], acc) for y in "ab" for n in ("meco", "nwot")}
    alone = max(tau["b", "meco"] - tau["b", "nwot"], tau["a", "nwot"] - tau["a", "meco"])
    assert c["margin"] > alone + 0.1
    assert c["subsets_tried"] == 2 ** (len(CLASSIC_SET) + 1) - 1


def test_the_formula_member_stands_for_the_left_out_spaces_formula_and_ties_go_to_fewer_members():
    rng = np.random.default_rng(1)
    acc = rng.normal(size=300)
    data = {y: _space(rng, acc, {"without x": 5.0}) for y in ("a", "b")}
    c = aggregate.choose(["a", "b"], data, "without x")
    assert c["members"] == [aggregate.FORMULA]
    assert aggregate.members_of(c["members"], "without x") == ["without x"]
    assert c["margin"] > 0.3
