"""Config validation: every problem is found up front, named, with a fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from evolve_helpers import ISSUE_EXAMPLE, synthetic_config

from mergelab.errors import ConfigError
from mergelab.evolve.checks import check_config
from mergelab.evolve.config import load_evolve_config


def _check(config: dict[str, Any], **kwargs: Any) -> None:
    check_config(load_evolve_config(config), **kwargs)


def test_issue_example_parses_with_its_defaults() -> None:
    config = load_evolve_config(ISSUE_EXAMPLE)
    assert config.merge_method == "dare_ties"
    assert config.genome.group_size == 1
    assert config.genome.parameters == {"weight": (0.0, 1.0), "density": (0.1, 1.0)}
    assert config.sampler_name == "cmaes"
    assert config.budget.trials == 300
    assert config.objectives[0].label == "j-arith:strict"


def test_paths_are_made_absolute_relative_to_the_current_directory(
    sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(sources["base"].parent)
    config = load_evolve_config(
        {**synthetic_config(sources), "base_model": "base", "models": ["a", "b", "c"]}
    )
    assert config.base_model == str(sources["base"].resolve())
    assert config.models == [str(sources[n].resolve()) for n in "abc"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"genom": {}}, "did you mean 'genome'?"),
        ({"genome": {"granularity": "layers", "parameters": {"weight": [0, 1]}}}, "group:K"),
        ({"genome": {"granularity": "group:0", "parameters": {"weight": [0, 1]}}}, "group:K"),
        ({"genome": {"parameters": {"weight": [1, 0]}}}, "range [1, 0] is empty"),
        ({"budget": {}}, "budget needs 'trials'"),
        ({"budget": {"trials": 0}}, "budget.trials"),
        ({"sampler": "cma"}, "sampler"),
        ({"parameters": {"weight": 0.5}}, "both fixed ('parameters') and evolved"),
    ],
)
def test_shape_errors_name_the_problem(
    sources: dict[str, Path], change: dict[str, Any], expected: str
) -> None:
    config = synthetic_config(sources)
    config.update(change)
    with pytest.raises(ConfigError) as info:
        load_evolve_config(config)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_cmaes_refuses_several_objectives(sources: dict[str, Path]) -> None:
    config = synthetic_config(sources, sampler="cmaes")
    config["objectives"] = [
        {"evaluator": "x", "name": "one"},
        {"evaluator": "x", "name": "two"},
    ]
    with pytest.raises(ConfigError, match="use nsga2"):
        load_evolve_config(config)


def test_several_objectives_default_to_nsga2(sources: dict[str, Path]) -> None:
    config = synthetic_config(sources)
    config["objectives"] = [
        {"evaluator": "x", "name": "one"},
        {"evaluator": "x", "name": "two"},
    ]
    assert load_evolve_config(config).sampler_name == "nsga2"


def test_every_semantic_problem_is_reported_at_once(sources: dict[str, Path]) -> None:
    config = synthetic_config(sources)
    config["merge_method"] = "dare_ties"
    config["genome"]["parameters"] = {
        "weight": [0.0, 1.0],
        "densty": [0.1, 1.0],
        "density": [0.0, 1.5],
        "int8_mask": [0.0, 1.0],
    }
    config["objectives"] = [
        {"task": "j-arithmetic"},
        {"evaluator": "missing", "name": "m"},
    ]
    with pytest.raises(ConfigError) as info:
        _check(config)
    text = str(info.value)
    assert "has no parameter 'densty'; did you mean 'density'?" in text
    assert "density range [0, 1.5] leaves density's bounds [0, 1]" in text
    assert "'int8_mask' is a bool parameter and cannot evolve" in text
    assert "unknown task 'j-arithmetic'" in text
    assert "evaluator 'missing' was not passed to evolve()" in text


def test_task_metric_and_splits_are_checked(sources: dict[str, Path], tiny_task: Path) -> None:
    config = synthetic_config(sources, test_split="holdout")
    config["objectives"] = [{"task": str(tiny_task), "metric": "strict", "split": "train"}]
    with pytest.raises(ConfigError) as info:
        _check(config)
    text = str(info.value)
    assert "has no metric 'strict'; choose one of accuracy, accuracy_norm" in text
    assert "has no split 'train' (split)" in text
    assert "has no split 'holdout' (test_split)" in text


def test_default_metric_is_the_task_primary(sources: dict[str, Path], tiny_task: Path) -> None:
    config = synthetic_config(sources)
    config["objectives"] = [{"task": str(tiny_task)}]
    checked = check_config(load_evolve_config(config))
    assert checked.objectives[0].metric == "accuracy"
    assert checked.objectives[0].label == "tiny:accuracy"


def test_models_are_checked_by_the_planner(sources: dict[str, Path], tmp_path: Path) -> None:
    config = synthetic_config(sources)
    config["models"] = [*config["models"][:2], str(tmp_path / "nowhere")]
    with pytest.raises(ConfigError, match=r"cannot open the inputs.*nowhere"):
        _check(config, evaluators={"distance": lambda m: 0.0})


def test_unknown_method_has_a_hint(sources: dict[str, Path]) -> None:
    config = synthetic_config(sources, merge_method="dare_tie")
    with pytest.raises(ConfigError, match="did you mean 'dare_ties'"):
        _check(config, evaluators={"distance": lambda m: 0.0})


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("merge_method: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yml is not valid YAML at line"):
        load_evolve_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_evolve_config(tmp_path / "missing.yml")


def test_yaml_round_trip_keeps_the_search_definition(sources: dict[str, Path]) -> None:
    config = load_evolve_config(synthetic_config(sources))
    again = load_evolve_config(config.to_yaml())
    assert again.fingerprint() == config.fingerprint()
    changed = load_evolve_config({**yaml.safe_load(config.to_yaml()), "seed": 5})
    assert changed.fingerprint() != config.fingerprint()
    budget = load_evolve_config({**yaml.safe_load(config.to_yaml()), "budget": {"trials": 9}})
    assert budget.fingerprint() == config.fingerprint()  # a bigger budget resumes
