"""The Pareto front of a multi-objective search and its knee point.

The front is optuna's (``study.best_trials``: complete trials no other trial dominates),
with duplicate score vectors kept once. The knee is the front point farthest from the
hyperplane through the front's extreme points (the best point of each objective), on
objectives normalised to [0, 1] over the front with 1 the better end: the "maximum distance"
criterion of Das (1999, "On characterizing the knee of the Pareto curve based on Normal-
Boundary Intersection"). For two objectives the hyperplane is the line between the two
extremes. Where the extremes do not span a hyperplane (fewer distinct points than
objectives) the point nearest the utopia point (1, ..., 1) is the knee; ties in distance go
to the point nearer utopia as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The non-dominated complete trials, one per distinct score vector, by first objective."""
    seen: set[tuple[float, ...]] = set()
    front = []
    for trial in sorted(study.best_trials, key=lambda t: t.number):
        key = tuple(trial.values)
        if key not in seen:
            seen.add(key)
            front.append(trial)
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    return sorted(front, key=lambda t: -sign * t.values[0])


def normalise(values: Sequence[Sequence[float]], maximize: Sequence[bool]) -> np.ndarray:
    """(n, k) scores mapped to [0, 1] per objective over the rows, 1 the better end.

    A constant objective maps to 1 everywhere.
    """
    v = np.asarray(values, dtype=float)  # (n, k)
    v = np.where(np.asarray(maximize)[None, :], v, -v)
    lo, hi = v.min(axis=0), v.max(axis=0)  # (k,)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(hi > lo, (v - lo) / span, 1.0)


def knee_index(values: Sequence[Sequence[float]], maximize: Sequence[bool]) -> int:
    """Index of the knee point among ``values`` (the front's score vectors)."""
    p = normalise(values, maximize)  # (n, k)
    n, k = p.shape
    utopia_gap = np.linalg.norm(1.0 - p, axis=1)  # (n,)
    extremes = p[p.argmax(axis=0)]  # (k, k): row j is the best point of objective j
    edges = extremes[1:] - extremes[0]  # (k - 1, k)
    if n < 2 or np.linalg.matrix_rank(edges) < k - 1:
        return int(utopia_gap.argmin())
    # normal of the hyperplane: orthogonal to every edge (last right-singular vector)
    normal = np.linalg.svd(edges)[2][-1]  # (k,)
    if normal @ (np.ones(k) - extremes[0]) < 0:
        normal = -normal  # utopia on the positive side
    distance = (p - extremes[0]) @ normal  # (n,), |normal| = 1
    order = np.lexsort((utopia_gap, -np.round(distance, 12)))
    return int(order[0])
