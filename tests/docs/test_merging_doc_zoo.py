"""The recipes in docs/merging.md run as written on the toy world."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_merging_doc import doc_recipes

from mergelab import merge_state_dict


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(doc_recipes()))
def test_doc_recipe_runs_on_the_zoo(
    name: str, zoo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(zoo_dir.parent)
    tensors = merge_state_dict(doc_recipes()[name])
    assert tensors
    assert all(t.isfinite().all() for t in tensors.values())
