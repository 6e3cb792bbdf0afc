"""MoE configs: mergekit-moe YAML accepted unchanged, defaults, and round trips."""

from __future__ import annotations

from pathlib import Path

import yaml

from mergelab.moe import MoeConfig, load_moe_config

# A mergekit-moe config in the style of the published 4x7B merges, every mergekit key used.
MERGEKIT_YAML = """\
base_model: mistralai/Mistral-7B-Instruct-v0.2
gate_mode: hidden_avg
dtype: torch.bfloat16
experts_per_token: 2
architecture: mixtral
experts:
  - source_model: org/chat-7b
    positive_prompts:
      - "chat"
      - "assistant"
      - "tell me"
    negative_prompts:
      - "code"
    noise_scale: 0.01
  - source_model: org/code-7b
    positive_prompts: ["code", "python", "javascript", "programming", "algorithm"]
    residual_scale: 0.9
  - source_model: org/story-7b
    positive_prompts: ["storywriting", "write", "scene", "story", "character"]
  - source_model: org/math-7b
    positive_prompts: ["reason", "math", "mathematics", "solve", "count"]
"""


def test_mergekit_config_is_accepted_unchanged() -> None:
    config = load_moe_config(MERGEKIT_YAML)
    assert config.base_model == "mistralai/Mistral-7B-Instruct-v0.2"
    assert config.gate_mode == "hidden_avg"
    assert config.dtype == "bfloat16"  # mergekit's "torch." prefix is accepted
    assert config.experts_per_token == 2
    assert [e.source_model for e in config.experts] == [
        "org/chat-7b",
        "org/code-7b",
        "org/story-7b",
        "org/math-7b",
    ]
    assert config.experts[0].negative_prompts == ["code"]
    assert config.experts[0].noise_scale == 0.01
    assert config.experts[1].residual_scale == 0.9
    assert config.experts[2].residual_scale is None


def test_defaults_follow_mergekit() -> None:
    config = MoeConfig.model_validate(
        {
            "base_model": "b",
            "experts": [
                {"source_model": "x", "positive_prompts": ["p"]},
                {"source_model": "y", "positive_prompts": ["q"]},
            ],
        }
    )
    assert config.gate_mode == "hidden"
    assert config.experts_per_token == 2
    assert config.dtype is None
    assert config.uses_prompts


def test_round_trip_through_yaml() -> None:
    config = load_moe_config(MERGEKIT_YAML)
    again = load_moe_config(config.to_yaml())
    assert again == config
    expected = yaml.safe_load(MERGEKIT_YAML)
    expected["dtype"] = "bfloat16"
    assert yaml.safe_load(config.to_yaml()) == expected


def test_config_file_path(tmp_path: Path) -> None:
    path = tmp_path / "moe.yml"
    path.write_text(MERGEKIT_YAML)
    assert load_moe_config(path) == load_moe_config(str(path)) == load_moe_config(MERGEKIT_YAML)
