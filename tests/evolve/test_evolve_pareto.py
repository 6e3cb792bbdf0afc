"""Pareto front normalisation and the knee point, on fronts worked out by hand."""

from __future__ import annotations

import math

import numpy as np

from mergelab.evolve.pareto import knee_index, normalise


def test_normalise_maps_each_objective_to_unit_range_best_high() -> None:
    values = [[0.2, 10.0], [0.6, 30.0], [1.0, 20.0]]
    p = normalise(values, [True, False])
    # maximise: (v - 0.2) / 0.8; minimise: (30 - v) / 20
    np.testing.assert_allclose(p, [[0.0, 1.0], [0.5, 0.0], [1.0, 0.5]])


def test_constant_objective_maps_to_one() -> None:
    assert normalise([[1.0, 5.0], [2.0, 5.0]], [True, True])[:, 1].tolist() == [1.0, 1.0]


def test_two_objective_knee_is_farthest_from_the_extremes_line() -> None:
    # normalised: extremes (1, 0) and (0, 1); the line x + y = 1
    front = [[1.0, 0.0], [0.9, 0.5], [0.6, 0.7], [0.3, 0.9], [0.0, 1.0]]
    distances = [(x + y - 1) / math.sqrt(2) for x, y in front]
    assert knee_index(front, [True, True]) == int(np.argmax(distances)) == 1


def test_knee_is_direction_aware() -> None:
    # minimising the second objective: 0.0 is its best end, so the front mirrors
    front = [[1.0, 1.0], [0.9, 0.5], [0.6, 0.3], [0.3, 0.1], [0.0, 0.0]]
    mirrored = [[x, 1.0 - y] for x, y in front]
    distances = [(x + y - 1) / math.sqrt(2) for x, y in mirrored]
    assert knee_index(front, [True, False]) == int(np.argmax(distances)) == 1


def test_three_objective_knee_uses_the_plane_through_the_extremes() -> None:
    # extremes are the unit vectors: the plane x + y + z = 1
    front = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.4], [0.6, 0.6, 0.0]]
    distances = [(sum(p) - 1) / math.sqrt(3) for p in front]
    assert knee_index(front, [True] * 3) == int(np.argmax(distances)) == 3


def test_degenerate_fronts_fall_back_to_the_point_nearest_utopia() -> None:
    assert knee_index([[0.4, 0.7]], [True, True]) == 0
    # two extremes only: both on the line (distance 0); nearest utopia wins the tie
    assert knee_index([[1.0, 0.0], [0.0, 1.0]], [True, True]) == 0
