"""Quality bar of the greedy soup on the toy zoo: never worse than its best ingredient."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergelab.soup import task_soup

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("task", ["j-arith", "e-read"])
def test_greedy_soup_is_never_worse_than_its_best_ingredient(zoo_dir: Path, task: str) -> None:
    models = [str(zoo_dir / n) for n in ("j", "m1", "m2", "e-read", "j-read")]
    greedy = task_soup(models, task, greedy=True, split="fitness")
    uniform = task_soup(models, task, greedy=False, split="fitness")
    best = max(greedy.scores.values())
    print(
        f"\n{task} ({greedy.metric}, fitness split): best ingredient {best:.3f}, greedy soup "
        f"{greedy.score:.3f} with {[Path(m).name for m in greedy.ingredients]}, uniform soup "
        f"{uniform.score:.3f}"
    )
    assert greedy.score >= best
    assert greedy.ingredients[0] == max(greedy.scores, key=lambda m: greedy.scores[m])
