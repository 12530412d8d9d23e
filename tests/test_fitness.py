import numpy as np
import pytest

from gpproxy.fitness import INVALID, check_scores, combine, draw_subsets, score_report, task_fitness, top_precision


def test_perfect_and_reversed_rankings():
    acc = np.arange(20.0)
    assert task_fitness(acc * 3 + 1, acc, "kendall") == pytest.approx(1.0)
    assert task_fitness(-acc, acc, "spearman") == pytest.approx(-1.0)


def test_top_precision_by_hand():
    acc = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10.0])
    scores = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2, 1.0])  # reversed
    assert top_precision(scores, acc, 2) == 0.0
    scores = np.array([0, 0, 0, 0, 0, 0, 0, 0, 9, 1.0])  # top-2 by score = {8, 9} = true top-2
    assert top_precision(scores, acc, 2) == 1.0
    rep = score_report(acc, acc)
    assert rep["top10pct"] == 1.0 and rep["n"] == 10


def test_invalid_scores_detected():
    assert check_scores(np.array([1.0, np.nan])) == "non-finite scores"
    assert check_scores(np.ones(5)) == "constant scores"
    assert check_scores(np.array([1.0, 2.0])) is None


def test_subsets_are_fixed_by_seed_and_min_is_taken():
    a = draw_subsets(100, 5, 0.5, 7)
    b = draw_subsets(100, 5, 0.5, 7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a[0]) == 50
    acc = np.arange(100.0)
    scores = acc.copy()
    scores[a[0][:10]] = -scores[a[0][:10]]  # spoil one subset more than the others
    full = task_fitness(scores, acc, "kendall")
    worst = task_fitness(scores, acc, "kendall", a)
    assert worst <= full and worst > INVALID


def test_combine():
    assert combine([0.2, 0.6], "mean") == pytest.approx(0.4)
    assert combine([0.2, 0.6], "min") == 0.2
