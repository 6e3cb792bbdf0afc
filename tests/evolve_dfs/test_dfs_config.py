"""DFS config and bad input: every problem found up front, in one line, with the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dfs_helpers import dfs_config, save_family_model

from mergelab.errors import ConfigError
from mergelab.evolve.checks import check_config
from mergelab.evolve.config import load_evolve_config

EVALUATORS = {"match": lambda model: 0.0}


def _error(config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        check_config(load_evolve_config(config), EVALUATORS)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_defaults_scale_down_to_small_models(models: dict[str, Path]) -> None:
    config = load_evolve_config(dfs_config([models["a"], models["b"]]))
    spec = config.dfs_spec
    assert (spec.repeats, spec.scaling, spec.scale_range, spec.fix_ends) == (
        2, "matrix", (0.5, 1.5), True
    )  # fmt: skip
    assert spec.max_length is None
    assert spec.layer_budget is None
    assert config.sampler_name == "cmaes"
    assert check_config(config, EVALUATORS).space == "dfs"


def test_space_ps_is_the_default_and_the_old_name_is_gone(models: dict[str, Path]) -> None:
    ps = {
        "merge_method": "linear",
        "models": [str(models["a"]), str(models["b"])],
        "genome": {"parameters": {"weight": [0.0, 1.0]}},
        "objectives": [{"evaluator": "match"}],
    }
    assert load_evolve_config(ps).space == "ps"
    with pytest.raises(ConfigError, match="space"):
        load_evolve_config({**ps, "space": "parameters"})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"dfs": {"models": ["x"], "repeat": 3}},
         "unknown key 'dfs.repeat'; did you mean 'repeats'?"),
        ({"dfs": {"models": ["x"], "scaling": "matrx"}}, "dfs.scaling"),
        ({"dfs": {"models": ["x"], "scale_range": [0.0, 1.0]}}, "0 < low < high"),
        ({"dfs": {"models": ["x"], "max_length": 1}}, "no room for A's fixed first and last"),
        ({"dfs": {"models": ["x"], "layer_budget": 1}}, "dfs.layer_budget 1 leaves no room"),
        ({"dfs": {"models": ["x", "x"]}}, "dfs.models lists a model twice"),
        ({"dfs": {"models": ["x"], "init_probability": 1.0}}, "dfs.init_probability"),
        ({"dfs": {"models": []}}, "dfs.models"),
        ({"dfs": None}, "space dfs needs a 'dfs' block"),
        ({"merge_method": "ties", "genome": {"parameters": {"weight": [0, 1]}}},
         "space dfs does not use merge_method, genome"),
        ({"space": "ps"}, "space ps needs merge_method, models, genome"),
        ({"space": "ps+dfs"}, "space ps+dfs needs merge_method, models, genome"),
    ],
)  # fmt: skip
def test_shape_errors_name_the_key(change: dict[str, Any], expected: str) -> None:
    config = {**dfs_config([Path("x")]), **change}
    with pytest.raises(ConfigError) as info:
        load_evolve_config(config)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_different_hidden_sizes_are_refused(models: dict[str, Path]) -> None:
    text = _error(dfs_config([models["a"], models["wide"]]))
    assert "DFS needs a shared residual width" in text
    assert f"{models['a']} has hidden_size 32, {models['wide']} has hidden_size 48" in text


def test_a_different_tokenizer_is_refused(models: dict[str, Path]) -> None:
    text = _error(dfs_config([models["a"], models["other_words"]]))
    assert "DFS needs A's tokenizer in every model" in text


def test_a_model_outside_the_llama_family_is_refused(models: dict[str, Path]) -> None:
    text = _error(dfs_config([models["a"], models["gpt2"]]))
    assert "is a gpt2 model; DFS supports the Llama family (llama, mistral, qwen2, qwen3)" in text


def test_families_must_not_mix(models: dict[str, Path], tmp_path: Path) -> None:
    mistral = save_family_model(tmp_path / "mistral", 7, family="mistral")
    text = _error(dfs_config([models["a"], mistral]))
    assert "must be one family" in text


def test_layers_of_another_shape_are_refused(models: dict[str, Path], tmp_path: Path) -> None:
    other = save_family_model(tmp_path / "eps", 8, rms_norm_eps=1e-3)
    text = _error(dfs_config([models["a"], other]))
    assert "differ from A's (rms_norm_eps 0.001 vs 1e-06)" in text


def test_fixed_ends_need_two_layers_in_a(tmp_path: Path, models: dict[str, Path]) -> None:
    shallow = save_family_model(tmp_path / "shallow", 9, layers=1)
    assert "fix_ends needs A" in _error(dfs_config([shallow, models["a"]]))
    check_config(load_evolve_config(dfs_config([shallow], fix_ends=False)), EVALUATORS)


def test_every_model_problem_is_reported_at_once(models: dict[str, Path], tmp_path: Path) -> None:
    text = _error(dfs_config([models["a"], models["wide"], models["other_words"]]))
    assert "shared residual width" in text
    assert "A's tokenizer" in text
    missing = _error(dfs_config([models["a"], tmp_path / "nowhere"]))
    assert "nowhere" in missing


def test_ps_dfs_checks_the_dfs_models_against_the_ps_models(models: dict[str, Path]) -> None:
    config = {
        "space": "ps+dfs",
        "merge_method": "linear",
        "models": [str(models["a"]), str(models["b"])],
        "genome": {"parameters": {"weight": [0.0, 1.0]}},
        "dfs": {"models": [str(models["wide"])]},
        "objectives": [{"evaluator": "match"}],
    }
    text = _error(config)
    assert "the PS model (its config is" in text
    assert "shared residual width" in text
