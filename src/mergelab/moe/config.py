"""MoE configs: mergekit-moe's YAML as strict pydantic models (``spec/moe.md``).

Every key of mergekit-moe's config (``base_model``, ``experts`` with ``source_model`` /
``positive_prompts`` / ``negative_prompts`` / ``noise_scale`` / ``residual_scale``,
``gate_mode``, ``experts_per_token``, ``dtype``, ``shared_experts``, ``architecture``) is
accepted, so a mergekit-moe config runs unchanged. Unknown keys are errors naming the nearest
valid key, and every problem is reported at once.

Where mergelab differs from mergekit-moe 0.1.5:

- ``noise_scale`` adds Gaussian noise to the expert's *router row* (the spec); mergekit adds
  it to the expert's MLP weights instead.
- ``shared_experts`` and any ``architecture`` other than ``mixtral`` are refused: the output
  is always a Mixtral checkpoint.
- Extensions: per expert, ``eval_prompts`` (held-out prompts) and ``eval_task`` (a task whose
  test prompts are held out) feed the routing report; ``seed`` fixes the random gate modes
  and router noise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mergelab.recipe import DType, load_config

GateMode = Literal["hidden", "hidden_avg", "hidden_fit", "cheap_embed", "random", "uniform_random"]
PROMPT_MODES: tuple[str, ...] = ("hidden", "hidden_avg", "hidden_fit", "cheap_embed")
RUNS_THE_BASE: tuple[str, ...] = ("hidden", "hidden_avg", "hidden_fit")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpertConfig(_Strict):
    """One expert: the model donating its MLPs and the prompts that steer the router to it."""

    source_model: str
    positive_prompts: list[str] | None = None
    negative_prompts: list[str] | None = None
    noise_scale: float | None = None
    residual_scale: float | None = None
    eval_prompts: list[str] | None = None
    eval_task: str | None = None


class MoeConfig(_Strict):
    """A mixture-of-experts build (``mergelab moe``), compatible with mergekit-moe's config."""

    base_model: str
    experts: list[ExpertConfig] = Field(min_length=1)
    gate_mode: GateMode = "hidden"
    dtype: DType | None = None
    experts_per_token: int = 2
    shared_experts: list[ExpertConfig] | None = None
    architecture: str | None = None
    seed: int | None = None

    @field_validator("dtype", mode="before")
    @classmethod
    def _strip_torch_prefix(cls, raw: Any) -> Any:
        return raw.removeprefix("torch.") if isinstance(raw, str) else raw

    @model_validator(mode="after")
    def _check(self) -> MoeConfig:
        problems: list[str] = []
        n = len(self.experts)
        if not 1 <= self.experts_per_token <= n:
            problems.append(
                f"experts_per_token is {self.experts_per_token} but there are {n} experts; "
                f"choose a value from 1 to {n}"
            )
        if self.shared_experts:
            problems.append(
                "shared_experts are not supported (the output is a Mixtral model); remove them"
            )
        if self.architecture not in (None, "mixtral"):
            problems.append(
                f"architecture '{self.architecture}' is not supported; use 'mixtral' or leave "
                "it out"
            )
        for i, expert in enumerate(self.experts):
            problems += _expert_problems(i, expert, self.gate_mode)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def uses_prompts(self) -> bool:
        """Whether the routers come from prompts (hidden, hidden_avg, hidden_fit, cheap_embed)."""
        return self.gate_mode in PROMPT_MODES

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _expert_problems(i: int, expert: ExpertConfig, gate_mode: str) -> list[str]:
    where = f"experts[{i}] ({expert.source_model})"
    problems = []
    if gate_mode in PROMPT_MODES and not expert.positive_prompts:
        problems.append(
            f"{where} has no positive_prompts, which gate_mode '{gate_mode}' needs; add "
            "prompts that should be routed to it, or use gate_mode 'random'"
        )
    for key in ("positive_prompts", "negative_prompts", "eval_prompts"):
        prompts = getattr(expert, key) or []
        if any(not p.strip() for p in prompts):
            problems.append(f"{where}.{key} holds an empty prompt; remove it")
    if expert.noise_scale is not None and not (
        math.isfinite(expert.noise_scale) and expert.noise_scale >= 0
    ):
        problems.append(f"{where}.noise_scale is {expert.noise_scale}; use a number >= 0")
    if expert.residual_scale is not None and not math.isfinite(expert.residual_scale):
        problems.append(f"{where}.residual_scale is {expert.residual_scale}; use a finite number")
    return problems


def load_moe_config(source: MoeConfig | dict[str, Any] | str | Path) -> MoeConfig:
    """A validated config from a pydantic object, a dict, a YAML file path or YAML text."""
    return load_config(
        source,
        MoeConfig,
        name="moe config",
        file_kind="MoE config file",
        needs="'base_model' and 'experts'",
    )
