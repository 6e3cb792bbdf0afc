"""Low-rank task vectors as a PEFT LoRA adapter folder (``adapter_config.json`` +
``adapter_model.safetensors``) that ``peft.PeftModel.from_pretrained(base, folder)`` loads.

LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685) adds ``s * B @ A`` to a weight;
with ``lora_alpha = r`` the scale ``s = alpha / r`` is 1, so the adapter reproduces exactly
the artifact's ``delta_r = B @ A``. Keys follow PEFT's saved layout (``M`` a module name):

- linear ``M.weight`` (out, in): ``base_model.model.M.lora_A.weight`` = A (r, in) and
  ``base_model.model.M.lora_B.weight`` = B (out, r);
- embedding ``M.weight`` (vocab, dim): ``base_model.model.M.lora_embedding_A`` = B^T
  (r, vocab) and ``...lora_embedding_B`` = A^T (dim, r), since PEFT adds ``(B' @ A')^T``;
- 1-D tensors (norms) of modules without a matrix: ``modules_to_save`` full copies
  ``base_model.model.M.weight`` (the fine-tune's values: a LoRA cannot carry them as deltas).

``target_modules`` lists the full module names. Deviation: 1-D tensors of modules that are
LoRA targets (biases of linear layers) and tensors of other ranks cannot be expressed in a
LoRA adapter; they are left out with a warning (the ``.tv`` artifact keeps them).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mergelab import arch
from mergelab.checkpoint import TensorInfo

log = logging.getLogger(__name__)

PREFIX = "base_model.model."
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"


@dataclass
class AdapterLayout:
    """Which model tensors the adapter holds, and how."""

    lora: dict[str, tuple[str, bool]] = field(default_factory=dict)  # tensor -> (module, embed)
    saved: dict[str, str] = field(default_factory=dict)  # 1-D tensor -> module (full copy)
    skipped: list[str] = field(default_factory=list)

    @property
    def target_modules(self) -> list[str]:
        return sorted(module for module, _ in self.lora.values())

    @property
    def modules_to_save(self) -> list[str]:
        return sorted(set(self.saved.values()))


def plan_adapter(infos: dict[str, TensorInfo]) -> AdapterLayout:
    """Sort model tensors into LoRA pairs, full copies and the ones an adapter cannot hold."""
    layout = AdapterLayout()
    for name, info in infos.items():
        module, _, leaf = name.rpartition(".")
        if len(info.shape) == 2 and leaf == "weight":
            layout.lora[name] = (module, arch.position(name) == "pre")
    targets = {module for module, _ in layout.lora.values()}
    for name, info in infos.items():
        module = name.rpartition(".")[0]
        if name in layout.lora:
            continue
        if len(info.shape) == 1 and module and module not in targets:
            layout.saved[name] = module
        else:
            layout.skipped.append(name)
    if layout.skipped:
        log.warning(
            "the PEFT adapter cannot hold %d tensors (e.g. %s); the .tv artifact keeps them",
            len(layout.skipped),
            layout.skipped[0],
        )
    return layout


def lora_infos(
    module: str, embedding: bool, shape: tuple[int, ...], rank: int, dtype: torch.dtype
) -> tuple[TensorInfo, TensorInfo]:
    """The (A-role, B-role) adapter entries of ``module``'s matrix of ``shape`` (out, in)."""
    out, inp = shape
    if embedding:
        return (
            TensorInfo(f"{PREFIX}{module}.lora_embedding_A", (rank, out), dtype),
            TensorInfo(f"{PREFIX}{module}.lora_embedding_B", (inp, rank), dtype),
        )
    return (
        TensorInfo(f"{PREFIX}{module}.lora_A.weight", (rank, inp), dtype),
        TensorInfo(f"{PREFIX}{module}.lora_B.weight", (out, rank), dtype),
    )


def write_config(folder: Path, layout: AdapterLayout, rank: int, base_ref: str) -> None:
    """``adapter_config.json``: rank r, alpha r (scale 1), full module names."""
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_ref,
        "r": rank,
        "lora_alpha": rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "target_modules": layout.target_modules,
        "modules_to_save": layout.modules_to_save or None,
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    text = json.dumps(config, indent=2) + "\n"
    (folder / CONFIG_FILE).write_text(text, encoding="utf-8")
