"""The installed transformers' Mixtral tensor layout, read off a model built on the meta device.

Two layouts exist, and the output follows whichever ``MixtralForCausalLM`` declares:

- fused (transformers 5): per layer ``mlp.gate.weight`` [E, H] (router),
  ``mlp.experts.gate_up_proj`` [E, 2I, H] (expert e's gate rows, then its up rows: the forward
  splits ``x @ gate_up_proj[e].T`` in two halves, gate first) and ``mlp.experts.down_proj``
  [E, H, I];
- per expert (transformers 4): ``block_sparse_moe.gate.weight`` [E, H] and, per expert e,
  ``block_sparse_moe.experts.<e>.w1.weight`` (gate) [I, H], ``w3`` (up) [I, H], ``w2`` (down)
  [H, I].

Building the model on the meta device allocates nothing, so this is cheap at any size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import torch

from mergelab.errors import PlanError

# One expert-weight tensor of the output: which dense MLP parts it is made of, and of whom.
ExpertPart = Literal["gate_up", "down", "gate", "up"]

_FUSED = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)$")
_PER_EXPERT = re.compile(
    r"^model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.(w[123])\.weight$"
)
_ROUTER = re.compile(r"^model\.layers\.(\d+)\.(?:mlp|block_sparse_moe)\.gate\.weight$")
_PER_EXPERT_PART: dict[str, ExpertPart] = {"w1": "gate", "w3": "up", "w2": "down"}


@dataclass(frozen=True)
class OutputTensor:
    """One tensor of the Mixtral output and what fills it.

    ``kind`` is ``router`` (layer ``layer``), ``experts`` (``part`` of every expert in layer
    ``layer`` when ``expert`` is None, else of expert ``expert`` only) or ``copy`` (the
    base model's tensor of the same name).
    """

    name: str
    shape: tuple[int, ...]
    kind: Literal["router", "experts", "copy"]
    layer: int | None = None
    part: ExpertPart | None = None
    expert: int | None = None


def expected_tensors(config: Any) -> tuple[list[OutputTensor], set[str]]:
    """Every tensor ``MixtralForCausalLM(config)`` holds, classified, and its tied names."""
    from transformers import MixtralForCausalLM

    with torch.device("meta"):
        model = MixtralForCausalLM(config)
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    if not config.tie_word_embeddings:
        tied = set()
    out = [_classify(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    return out, tied


def _classify(name: str, shape: tuple[int, ...]) -> OutputTensor:
    if match := _ROUTER.match(name):
        return OutputTensor(name, shape, "router", layer=int(match[1]))
    if match := _FUSED.match(name):
        part: ExpertPart = "gate_up" if match[2] == "gate_up_proj" else "down"
        return OutputTensor(name, shape, "experts", layer=int(match[1]), part=part)
    if match := _PER_EXPERT.match(name):
        return OutputTensor(
            name,
            shape,
            "experts",
            layer=int(match[1]),
            part=_PER_EXPERT_PART[match[3]],
            expert=int(match[2]),
        )
    if ".experts." in name or "block_sparse_moe" in name or ".mlp." in name:
        import transformers

        raise PlanError(
            f"transformers {transformers.__version__} stores Mixtral expert weights as {name}, "
            "a layout mergelab does not know; install transformers 4.45 or later 4.x/5.x"
        )
    return OutputTensor(name, shape, "copy")


def router_name(tensors: list[OutputTensor], layer: int) -> str:
    """The router weight's name of ``layer`` in this layout."""
    for t in tensors:
        if t.kind == "router" and t.layer == layer:
            return t.name
    raise KeyError(f"no router for layer {layer}")
