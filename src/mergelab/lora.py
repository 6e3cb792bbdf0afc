"""PEFT LoRA adapters as weight deltas: ``W' = W + s · B A`` (Hu et al. 2021, eq. 3).

Paper: https://arxiv.org/abs/2106.09685. Scale ``s = alpha / r``, or ``alpha / sqrt(r)`` with
rank-stabilised LoRA (Kalajdzievski 2023, https://arxiv.org/abs/2312.03732). The adapter folder
is the PEFT layout: ``adapter_config.json`` (``r``, ``lora_alpha``, ``use_rslora``,
``fan_in_fan_out``, ``alpha_pattern``, ``target_modules``) and ``adapter_model.safetensors``
(or ``adapter_model.bin``, read with ``weights_only=True``).

Keys (PEFT's saved names, ``base_model.model.`` prefix removed, ``M`` the module name):

- ``M.lora_A.weight`` (r, in) and ``M.lora_B.weight`` (out, r): delta for ``M.weight``,
  ``s · B @ A`` of shape (out, in), transposed when ``fan_in_fan_out`` (GPT-2 Conv1D layout);
- ``M.lora_embedding_A`` (r, vocab) and ``M.lora_embedding_B`` (dim, r): delta for the
  embedding ``M.weight``, ``s · (B @ A)ᵀ`` of shape (vocab, dim);
- ``M.base_layer.weight`` and any key without ``lora_`` (``modules_to_save`` copies, trained
  biases): full tensors that replace the base model's tensor of that name.

The rank of each module is read from its ``lora_A`` shape (so ``rank_pattern`` needs no
parsing); ``alpha_pattern`` keys match a module name the way PEFT matches them (a key matches
when the name ends with it after a dot). Deviation: DoRA and other PEFT methods are refused
with a message instead of being approximated.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mergelab.errors import CheckpointError
from mergelab.model_ref import resolve_model_ref
from mergelab.safetensors_format import SafetensorsFile

_PREFIX = "base_model.model."
_FACTORS = {
    ".lora_A.weight": ("A", False),
    ".lora_B.weight": ("B", False),
    ".lora_embedding_A": ("A", True),
    ".lora_embedding_B": ("B", True),
}


@dataclass(frozen=True)
class _Pair:
    """The low-rank factors of one module: ``a`` (r, in), ``b`` (out, r)."""

    key: str  # the adapter key of ``a``, for messages
    a: torch.Tensor
    b: torch.Tensor
    scale: float
    transpose: bool  # fan_in_fan_out Linear or embedding: the delta is (B @ A)ᵀ

    @property
    def shape(self) -> tuple[int, ...]:
        out, inp = self.b.shape[0], self.a.shape[1]
        return (inp, out) if self.transpose else (out, inp)


class LoraAdapter:
    """A loaded LoRA adapter: per base tensor name, a delta and/or a replacement tensor."""

    def __init__(
        self,
        path: Path,
        config: dict[str, Any],
        pairs: dict[str, _Pair],
        replacements: dict[str, tuple[str, torch.Tensor]],
    ) -> None:
        self.path = path
        self.config = config
        self._pairs = pairs
        self._replacements = replacements

    def delta(self, base_tensor_name: str) -> torch.Tensor | None:
        """``s · B @ A`` in float32 for that base tensor, None when the adapter leaves it."""
        pair = self._pairs.get(base_tensor_name)
        if pair is None:
            return None
        product = pair.b.float() @ pair.a.float()  # (out, r) @ (r, in) -> (out, in)
        if pair.transpose:
            product = product.T.contiguous()
        return product * pair.scale

    def replacement(self, base_tensor_name: str) -> torch.Tensor | None:
        """The full tensor the adapter stores for that base tensor (``modules_to_save``...)."""
        found = self._replacements.get(base_tensor_name)
        return None if found is None else found[1]

    def problems(self, base_shapes: dict[str, tuple[int, ...]]) -> list[str]:
        """Every way the adapter does not fit a base model with these tensor shapes."""
        found: list[str] = []
        for name, pair in self._pairs.items():
            if name not in base_shapes:
                found.append(f"adapter key {pair.key!r} targets {name!r}, which the base lacks")
            elif pair.shape != base_shapes[name]:
                found.append(
                    f"adapter key {pair.key!r} gives a delta of shape {list(pair.shape)} but "
                    f"base tensor {name!r} has shape {list(base_shapes[name])}"
                )
        for name, (key, tensor) in self._replacements.items():
            if name not in base_shapes:
                found.append(f"adapter key {key!r} replaces {name!r}, which the base lacks")
            elif tuple(tensor.shape) != base_shapes[name]:
                found.append(
                    f"adapter key {key!r} has shape {list(tensor.shape)} but base tensor "
                    f"{name!r} has shape {list(base_shapes[name])}"
                )
        return found


def _alpha(config: dict[str, Any], module: str) -> float:
    """``lora_alpha``, overridden by the first ``alpha_pattern`` key ``module`` ends with."""
    for pattern, alpha in config["alpha_pattern"].items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return float(alpha)
    return float(config["lora_alpha"])


def _valid_regex(pattern: object) -> bool:
    if not isinstance(pattern, str):
        return False
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "adapter_config.json"
    if not path.is_file():
        raise CheckpointError(
            f"{folder} is not a PEFT LoRA adapter (no adapter_config.json); give an adapter "
            "folder saved with peft's save_pretrained()"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); re-save the adapter") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} is not a JSON object; re-save the adapter")
    kind = config.get("peft_type", "LORA")
    if kind != "LORA":
        raise CheckpointError(f"{folder} is a {kind} adapter; only LoRA adapters can be applied")
    if config.get("use_dora"):
        raise CheckpointError(
            f"{folder} is a DoRA adapter, which mergelab does not apply; merge it into its base "
            "with peft's merge_and_unload() and use the result"
        )
    patterns = config.get("alpha_pattern") or {}
    if not isinstance(patterns, dict) or not all(
        _valid_regex(p) and isinstance(a, (int, float)) for p, a in patterns.items()
    ):
        raise CheckpointError(
            f"{path}: alpha_pattern {patterns!r} must map regular expressions to numbers"
        )
    config["alpha_pattern"] = patterns  # normalised: _alpha reads it without checks
    for key in ("r", "lora_alpha"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise CheckpointError(f"{path}: {key} is {value!r}, expected a positive number")
    return config


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    file = folder / "adapter_model.safetensors"
    if file.is_file():
        reader = SafetensorsFile(file)
        try:
            return {name: reader.read(name).clone() for name in reader.entries}
        finally:
            reader.close()
    if (folder / "adapter_model.bin").is_file():
        # Imported here: mergelab.checkpoint imports this module.
        from mergelab.checkpoint import load_torch_bin

        return load_torch_bin(folder / "adapter_model.bin")
    raise CheckpointError(
        f"{folder} has no adapter_model.safetensors or adapter_model.bin; re-save the adapter"
    )


def load_lora(adapter: str | Path) -> LoraAdapter:
    """Load the PEFT LoRA adapter ``adapter`` (a folder or a cached hub id)."""
    folder = resolve_model_ref(adapter)
    config = _read_config(folder)
    factors: dict[str, dict[str, tuple[str, torch.Tensor, bool]]] = {}
    replacements: dict[str, tuple[str, torch.Tensor]] = {}
    for key, tensor in _read_weights(folder).items():
        name = key.removeprefix(_PREFIX)
        suffix = next((s for s in _FACTORS if name.endswith(s)), None)
        if suffix is not None:
            role, embedding = _FACTORS[suffix]
            factors.setdefault(name.removesuffix(suffix), {})[role] = (key, tensor, embedding)
        elif "lora_" in name:
            raise CheckpointError(
                f"{folder}: adapter key {key!r} is not a plain LoRA factor (DoRA, LoRA bias?); "
                "merge the adapter with peft's merge_and_unload() and use the result"
            )
        else:
            replacements[name.replace(".base_layer.", ".")] = (key, tensor)
    pairs: dict[str, _Pair] = {}
    for module, parts in factors.items():
        if set(parts) != {"A", "B"}:
            missing = "lora_B" if "A" in parts else "lora_A"
            raise CheckpointError(
                f"{folder}: module {module!r} has no {missing}; re-save the adapter"
            )
        (key, a, embedding), (_, b, _) = parts["A"], parts["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise CheckpointError(
                f"{folder}: {key!r} has shape {list(a.shape)} and its lora_B {list(b.shape)}; "
                "expected (r, in) and (out, r)"
            )
        r = a.shape[0]
        alpha = _alpha(config, module)
        scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        transpose = embedding or bool(config.get("fan_in_fan_out"))
        pairs[module + ".weight"] = _Pair(key, a, b, scale, transpose)
    return LoraAdapter(folder, config, pairs, replacements)
