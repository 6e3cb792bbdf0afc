"""The recipes in docs/merging.md are valid recipes of registered methods."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mergelab import load_recipe
from mergelab.methods import all_methods

DOC = Path(__file__).resolve().parents[2] / "docs" / "merging.md"
BLOCK = re.compile(r"```yaml\n# recipe: (?P<name>\S+)\n(?P<body>.*?)```", re.S)


def doc_recipes() -> dict[str, dict[str, object]]:
    return {m["name"]: yaml.safe_load(m["body"]) for m in BLOCK.finditer(DOC.read_text())}


def test_doc_has_recipes_for_the_main_features() -> None:
    assert set(doc_recipes()) >= {"ties.yml", "dare.yml", "gradient.yml", "frankenmerge.yml"}


@pytest.mark.parametrize("name", sorted(doc_recipes()))
def test_doc_recipe_validates(name: str) -> None:
    recipe = load_recipe(doc_recipes()[name])
    assert recipe.merge_method in all_methods()
