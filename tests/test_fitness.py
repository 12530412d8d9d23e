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


def test_size_groups_keep_ties_together_and_drop_tiny_groups():
    from gpproxy.fitness import size_groups

    sizes = [1] * 10 + [2] * 10 + [3] * 3 + [4] * 20
    groups = size_groups(sizes, 4)
    seen = [sorted({sizes[i] for i in g}) for g in groups]
    assert all(len(s) == 1 for s in seen)  # no group splits a size
    assert [3] not in seen  # 3 archs of size 3: fewer than 5, dropped
    assert sorted(i for g in groups for i in g) == list(range(20)) + list(range(23, 43))


def test_size_weight_blends_in_the_within_group_correlation():
    from gpproxy.fitness import task_fitness, within_groups

    acc = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], dtype=float)
    size = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=float)
    groups = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
    size_only = size.copy()  # ranks the groups right, ties inside them
    assert within_groups(size_only, acc, groups, "kendall") == 0.0
    reversed_inside = np.array([5, 4, 3, 2, 1, 10, 9, 8, 7, 6], dtype=float)
    assert within_groups(reversed_inside, acc, groups, "kendall") == pytest.approx(-1.0)
    plain = task_fitness(reversed_inside, acc, "kendall")
    blended = task_fitness(reversed_inside, acc, "kendall", groups=groups, size_weight=0.25)
    assert blended == pytest.approx(0.75 * plain - 0.25)
    assert task_fitness(reversed_inside, acc, "kendall", groups=groups, size_weight=0.0) == plain


def test_ndcg_by_hand_with_ties():
    from gpproxy.fitness import ndcg

    acc = np.array([3.0, 2.0, 1.0])
    d = 1 / np.log2(np.arange(3) + 2)
    ideal = 3 * d[0] + 2 * d[1] + 1 * d[2]
    assert ndcg([3, 2, 1], acc) == pytest.approx(1.0)
    assert ndcg([1, 2, 3], acc) == pytest.approx((1 * d[0] + 2 * d[1] + 3 * d[2]) / ideal)
    # the two best tied: they share the first two positions' discounts
    assert ndcg([5, 5, 1], acc) == pytest.approx(((3 + 2) / 2 * (d[0] + d[1]) + 1 * d[2]) / ideal)
    assert ndcg([1, 2, 3], acc, k=1) == pytest.approx(1 / 3)
