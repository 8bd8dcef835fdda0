"""Pareto functions on hand-made arrays: directions, ties, duplicates, NaN, hypervolume."""

import numpy as np
import pandas as pd
import pytest

from fastvitsearch.pareto import hypervolume, pareto_front, pareto_mask

MIN_MAX = ["minimize", "maximize"]


def test_front_of_latency_vs_accuracy():
    values = np.array([[100, 60], [150, 65], [120, 59], [200, 64], [90, 50]])
    assert pareto_mask(values, MIN_MAX).tolist() == [True, True, False, False, True]


def test_duplicates_of_a_front_point_are_all_kept_and_ties_that_lose_are_not():
    values = np.array([[1.0, 5.0], [1.0, 5.0], [1.0, 4.0], [2.0, 5.0]])
    assert pareto_mask(values, MIN_MAX).tolist() == [True, True, False, False]


def test_nan_rows_are_never_on_the_front():
    values = np.array([[1.0, np.nan], [2.0, 3.0]])
    assert pareto_mask(values, MIN_MAX).tolist() == [False, True]


def test_three_objectives():
    values = np.array([[1, 1, 1], [0, 2, 2], [2, 0, 2], [2, 2, 2]])
    assert pareto_mask(values, ["minimize"] * 3).tolist() == [True, True, True, False]


def test_bad_direction_and_shape_are_refused():
    with pytest.raises(ValueError, match="direction"):
        pareto_mask(np.zeros((2, 2)), ["minimise", "maximize"])
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        pareto_mask(np.zeros((2, 3)), MIN_MAX)


def test_pareto_front_of_a_table_is_sorted_by_the_first_objective():
    table = pd.DataFrame({"point": list("abcd"), "ttft": [3.0, 1.0, 2.0, 4.0], "acc": [70.0, 50.0, 60.0, 65.0]})
    front = pareto_front(table, {"ttft": "minimize", "acc": "maximize"})
    assert front["point"].tolist() == ["b", "c", "a"]


def test_hypervolume_2d_by_hand():
    # minimize both, reference (4, 4): points (1,3), (2,2), (3,1) -> staircase area 3 + 2 + 1 = 6
    values = np.array([[1, 3], [2, 2], [3, 1], [3, 3]])
    assert hypervolume(values, ["minimize", "minimize"], [4, 4]) == pytest.approx(6.0)
    # maximize the second objective: same geometry mirrored
    mirrored = np.array([[1, -3], [2, -2], [3, -1]])
    assert hypervolume(mirrored, MIN_MAX, [4, -4]) == pytest.approx(6.0)


def test_hypervolume_3d_and_points_outside_the_reference():
    assert hypervolume(np.array([[0, 0, 0]]), ["minimize"] * 3, [2, 3, 4]) == pytest.approx(24.0)
    two = np.array([[0, 1, 0], [1, 0, 0]])  # union of two 2x1-by-... boxes with ref (2,2,1)
    assert hypervolume(two, ["minimize"] * 3, [2, 2, 1]) == pytest.approx(3.0)
    assert hypervolume(np.array([[5, 5]]), ["minimize"] * 2, [4, 4]) == 0.0
