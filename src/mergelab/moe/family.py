"""Which dense models can become a Mixtral, and the Mixtral config that an MoE build writes.

A Mixtral decoder layer is a Llama/Mistral layer (RMSNorm, rotary attention without biases,
SwiGLU MLP) whose MLP is replaced by a routed set of SwiGLU experts (Jiang et al. 2024,
"Mixtral of Experts", arXiv 2401.04088). So the base must be a Llama- or Mistral-family model
without attention or MLP biases; every config field the two share is carried over from the
base (through the installed transformers' own config classes, so legacy keys such as
``rope_theta`` are read the way transformers reads them).
"""

from __future__ import annotations

from typing import Any

import torch

from mergelab.errors import PlanError

SUPPORTED_FAMILIES: tuple[str, ...] = ("llama", "mistral")

# MLP tensor names of one dense layer (Llama/Mistral): gate [I, H], up [I, H], down [H, I].
MLP_PARTS: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")


def mlp_name(layer: int, part: str) -> str:
    """``model.layers.<layer>.mlp.<part>.weight`` of a dense Llama/Mistral model."""
    return f"model.layers.{layer}.mlp.{part}.weight"


def family_problems(what: str, config: dict[str, Any] | None) -> list[str]:
    """Why the model with raw config.json ``config`` cannot donate to a Mixtral (may be [])."""
    supported = ", ".join(SUPPORTED_FAMILIES)
    if config is None:
        return [f"{what} has no config.json; mergelab needs it to check the architecture"]
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_FAMILIES:
        return [
            f"{what} is a '{model_type}' model; MoE builds support these families: {supported} "
            "(convert the model, or choose a base of one of them)"
        ]
    problems = []
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            problems.append(
                f"{what} has {key}: true, which Mixtral layers cannot hold; choose a model "
                "without biases"
            )
    return problems


def mixtral_config(base_path: str, experts: int, experts_per_token: int, dtype: torch.dtype) -> Any:
    """The output ``MixtralConfig``: the base's shared fields, plus the experts and dtype."""
    from transformers import AutoConfig, MixtralConfig

    try:
        base = AutoConfig.from_pretrained(base_path).to_dict()
    except (OSError, ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PlanError(
            f"cannot read the config of base model {base_path} ({reason}); fix its config.json"
        ) from None
    known = set(MixtralConfig().to_dict())
    skip = {"model_type", "architectures", "transformers_version", "_name_or_path", "dtype"}
    fields = {k: v for k, v in base.items() if k in known and k not in skip}
    fields.update(
        num_local_experts=experts,
        num_experts_per_tok=experts_per_token,
        architectures=["MixtralForCausalLM"],
    )
    config = MixtralConfig(**fields)
    config.dtype = dtype
    return config
