"""docs/evolve.md: the DFS and PS+DFS examples parse, validate, and say what they claim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mergelab.evolve.checks import check_config
from mergelab.evolve.config import load_evolve_config
from mergelab.evolve.dfs.space import DfsSpace
from mergelab.recipe import load_recipe

DOC = Path(__file__).resolve().parents[2] / "docs" / "evolve.md"


def _block(first_line: str) -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return next(b for b in blocks if first_line in b.splitlines()[:2])


def test_the_dfs_example_parses_with_the_documented_meaning() -> None:
    config = load_evolve_config(_block("space: dfs"))
    spec = config.dfs_spec
    assert [Path(m).name for m in spec.models] == ["j", "m1"]
    assert (spec.repeats, spec.scaling, spec.scale_range, spec.fix_ends, spec.max_length) == (
        2, "matrix", (0.5, 1.5), True, 12
    )  # fmt: skip
    assert config.sampler_name == "cmaes"


def test_the_ps_dfs_example_parses_as_the_first_example_plus_dfs() -> None:
    config = load_evolve_config(_block("space: ps+dfs"))
    first = yaml.safe_load(_block("merge_method: dare_ties"))
    assert config.ps_method == first["merge_method"]
    assert [Path(m).name for m in config.models] == ["j", "m1", "m2"]
    assert [Path(m).name for m in config.dfs_spec.models] == ["j"]


def test_the_export_recipe_example_is_a_valid_recipe() -> None:
    text = _block("merge_method: passthrough").replace("- ...\n", "")
    recipe = load_recipe(text)
    assert [s.sources[0].model for s in recipe.slices or []] == ["/abs/zoo/j", "/abs/zoo/m1"]


@pytest.mark.slow
def test_the_examples_validate_against_a_built_zoo(
    zoo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(zoo_dir.parent)  # the examples' paths are zoo/m1, zoo/j, ...
    dfs = check_config(load_evolve_config(_block("space: dfs")))
    assert len(DfsSpace(dfs).distributions()) == 24 + 144  # T = 12 x 2 slots, W 12 x 12
    check_config(load_evolve_config(_block("space: ps+dfs")))
