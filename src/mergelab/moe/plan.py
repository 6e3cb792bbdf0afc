"""Planning an MoE build: config + checkpoint headers -> validated jobs for the merge engine.

The base donates every tensor except the MLPs (embeddings, attention, norms, lm_head); expert
e donates ``gate_proj`` / ``up_proj`` / ``down_proj`` of every layer; the routers are
precomputed (:mod:`mergelab.moe.router`) and enter the engine as jobs with no inputs. All
problems (families, layer counts, shapes, duplicate experts or prompts) are collected and
reported together before any data is read, with one exception: experts loaded from different
folders are compared tensor by tensor until they differ, to refuse identical copies (distinct
fine-tunes differ within the first few tensors, so this reads little).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mergelab import arch
from mergelab.checkpoint import Checkpoint
from mergelab.errors import PlanError, join_problems
from mergelab.moe.config import RUNS_THE_BASE, MoeConfig, load_moe_config
from mergelab.moe.family import MLP_PARTS, family_problems, mixtral_config, mlp_name
from mergelab.moe.layout import OutputTensor, expected_tensors
from mergelab.moe.stacking import constant, scaled, stack_down, stack_gate_up
from mergelab.plan import DTYPES, Combine, InputRef, TensorJob, open_checkpoints

MoeSource = MoeConfig | dict[str, Any] | str | Path
_ACK = "pass --i-understand-this-is-not-useful-without-training if you will train the result"


@dataclass
class MoePlan:
    """A validated MoE build: inputs (base first), output config and tensors, expert sources."""

    config: MoeConfig
    refs: list[str]
    checkpoints: list[Checkpoint]
    experts: list[int]  # checkpoint index of each expert
    mixtral: Any  # transformers.MixtralConfig of the output
    tensors: list[OutputTensor]
    dtype: torch.dtype
    seed: int

    @property
    def base(self) -> Checkpoint:
        return self.checkpoints[0]

    @property
    def layers(self) -> int:
        return int(self.mixtral.num_hidden_layers)

    @property
    def hidden(self) -> int:
        return int(self.mixtral.hidden_size)

    @property
    def output_bytes(self) -> int:
        return sum(_numel(t.shape) * self.dtype.itemsize for t in self.tensors)

    def jobs(self, routers: torch.Tensor) -> list[TensorJob]:
        """The engine jobs, given the router matrices ``routers`` [L, E, H]."""
        expected = (self.layers, len(self.experts), self.hidden)
        if tuple(routers.shape) != expected:
            raise ValueError(f"routers are {list(routers.shape)}, expected {list(expected)}")
        return [self._job(t, routers) for t in self.tensors]

    def _job(self, t: OutputTensor, routers: torch.Tensor) -> TensorJob:
        def job(label: str, inputs: tuple[InputRef, ...], combine: Combine) -> TensorJob:
            return TensorJob(t.name, t.shape, self.dtype, label, None, inputs, {}, combine=combine)

        if t.kind == "copy":
            return job("copy", (InputRef(0, t.name),), scaled(1.0))
        assert t.layer is not None
        layer = t.layer
        if t.kind == "router":
            return job("router", (), constant(routers[layer]))
        scales = [
            e.residual_scale if e.residual_scale is not None else 1.0 for e in self.config.experts
        ]
        if t.expert is not None:  # per-expert layout: one dense tensor of one expert
            part = {"gate": "gate_proj", "up": "up_proj", "down": "down_proj"}[str(t.part)]
            scale = scales[t.expert] if t.part == "down" else 1.0
            return job(
                "moe-expert",
                (InputRef(self.experts[t.expert], mlp_name(layer, part)),),
                scaled(scale),
            )
        if t.part == "gate_up":  # fused layout: [gate_0, up_0, gate_1, up_1, ...]
            refs = [
                InputRef(m, mlp_name(layer, p))
                for m in self.experts
                for p in ("gate_proj", "up_proj")
            ]
            return job("moe-stack", tuple(refs), stack_gate_up())
        refs = [InputRef(m, mlp_name(layer, "down_proj")) for m in self.experts]
        return job("moe-stack", tuple(refs), stack_down(scales))

    def close(self) -> None:
        for ckpt in self.checkpoints:
            ckpt.close()


def plan_moe(
    source: MoeSource, *, needs_training: bool = False, seed: int | None = None
) -> MoePlan:
    """Validate an MoE config against its models' headers; the caller closes the plan.

    ``needs_training`` accepts identical experts or identical prompts (the result is then only
    a starting point for training).
    """
    config = load_moe_config(source)
    refs = list(dict.fromkeys([config.base_model, *(e.source_model for e in config.experts)]))
    checkpoints = open_checkpoints(refs)
    try:
        return _Planner(config, refs, checkpoints, needs_training, seed).plan()
    except BaseException:
        for ckpt in checkpoints:
            ckpt.close()
        raise


class _Planner:
    def __init__(
        self,
        config: MoeConfig,
        refs: list[str],
        checkpoints: list[Checkpoint],
        needs_training: bool,
        seed: int | None,
    ) -> None:
        self.config = config
        self.refs = refs
        self.ckpts = checkpoints
        self.needs_training = needs_training
        self.seed = seed if seed is not None else (config.seed or 0)
        self.experts = [refs.index(e.source_model) for e in config.experts]
        self.problems: list[str] = []

    def plan(self) -> MoePlan:
        base = self.ckpts[0]
        self.problems += family_problems(f"base model {self.refs[0]}", base.config)
        self._raise_if_problems()
        dtype = self._dtype()
        mixtral = mixtral_config(
            str(base.path), len(self.experts), self.config.experts_per_token, dtype
        )
        tensors, tied = expected_tensors(mixtral)
        self._check_base(tensors, tied)
        self._check_experts(mixtral)
        self._check_distinct_config()
        self._raise_if_problems()
        self._check_distinct_weights(int(mixtral.num_hidden_layers))
        self._raise_if_problems()
        present = [t for t in tensors if t.kind != "copy" or t.name in base.tensors]
        return MoePlan(
            config=self.config,
            refs=self.refs,
            checkpoints=self.ckpts,
            experts=self.experts,
            mixtral=mixtral,
            tensors=present,
            dtype=dtype,
            seed=self.seed,
        )

    def _raise_if_problems(self) -> None:
        if self.problems:
            problems, self.problems = self.problems, []
            raise PlanError(join_problems("the MoE config does not fit its models", problems))

    def _dtype(self) -> torch.dtype:
        name: str | None = self.config.dtype
        base = self.ckpts[0]
        if name is None:
            raw = (base.config or {}).get("dtype") or (base.config or {}).get("torch_dtype")
            name = raw.removeprefix("torch.") if isinstance(raw, str) else None
        if name in DTYPES:
            return DTYPES[name]
        embed = base.tensors.get("model.embed_tokens.weight")
        return embed.dtype if embed is not None else torch.float32

    def _check_base(self, tensors: list[OutputTensor], tied: set[str]) -> None:
        base = self.ckpts[0]
        where = f"base model {self.refs[0]}"
        for t in tensors:
            if t.kind != "copy":
                continue
            info = base.tensors.get(t.name)
            if info is None and t.name not in tied:
                self.problems.append(f"{where} lacks tensor {t.name}; it must be a complete model")
            elif info is not None and info.shape != t.shape:
                self.problems.append(
                    f"{where}: {t.name} is {list(info.shape)} but its config implies "
                    f"{list(t.shape)}; fix the config or the checkpoint"
                )
        if self.config.gate_mode in RUNS_THE_BASE and base.lora is not None:
            self.problems.append(
                f"{where} carries a LoRA adapter, which gate_mode '{self.config.gate_mode}' "
                "cannot run; merge the adapter into the model first"
            )

    def _check_experts(self, mixtral: Any) -> None:
        base_layers = int(mixtral.num_hidden_layers)
        hidden, inter = int(mixtral.hidden_size), int(mixtral.intermediate_size)
        shapes = {
            "gate_proj": (inter, hidden),
            "up_proj": (inter, hidden),
            "down_proj": (hidden, inter),
        }
        base_act = (self.ckpts[0].config or {}).get("hidden_act", "silu")
        for model in dict.fromkeys(self.experts):
            ckpt = self.ckpts[model]
            where = f"expert {self.refs[model]}"
            if model != 0 and ckpt.config is not None:
                found = family_problems(where, ckpt.config)
                self.problems += found
                act = ckpt.config.get("hidden_act", "silu")
                if not found and act != base_act:
                    self.problems.append(
                        f"{where} uses activation {act} but the base uses {base_act}; experts "
                        "must share the base's architecture"
                    )
            layers = arch.count_layers(ckpt.config, ckpt.tensors)
            if layers != base_layers:
                self.problems.append(
                    f"{where} has {layers} layers but the base has {base_layers}; experts must "
                    "be fine-tunes of the base"
                )
                continue
            bad = self._mlp_problems(ckpt, base_layers, shapes)
            if bad:
                self.problems.append(f"{where}: {bad}; experts must share the base's shapes")

    @staticmethod
    def _mlp_problems(ckpt: Checkpoint, layers: int, shapes: dict[str, tuple[int, int]]) -> str:
        missing, wrong = [], []
        for layer, part in itertools.product(range(layers), MLP_PARTS):
            name = mlp_name(layer, part)
            info = ckpt.tensors.get(name)
            if info is None:
                missing.append(name)
            elif info.shape != shapes[part]:
                wrong.append(f"{name} is {list(info.shape)}, not {list(shapes[part])}")
        texts = []
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            texts.append(f"no {missing[0]}{more}")
        if wrong:
            more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
            texts.append(wrong[0] + more)
        return ", ".join(texts)

    def _check_distinct_config(self) -> None:
        if self.needs_training:
            return
        names = [e.source_model for e in self.config.experts]
        for i, j in itertools.combinations(range(len(self.experts)), 2):
            if self.experts[i] == self.experts[j]:
                self.problems.append(
                    f"experts[{i}] and experts[{j}] are the same model ({names[i]}), so the "
                    f"MoE would only cost more; {_ACK}"
                )
        if not self.config.uses_prompts:
            return
        keys = [
            (frozenset(e.positive_prompts or []), frozenset(e.negative_prompts or []))
            for e in self.config.experts
        ]
        for i, j in itertools.combinations(range(len(keys)), 2):
            if keys[i] == keys[j]:
                self.problems.append(
                    f"experts[{i}] ({names[i]}) and experts[{j}] ({names[j]}) have identical "
                    f"prompts, so their routers would be identical; give each expert prompts "
                    f"of its own skill, or {_ACK}"
                )

    def _check_distinct_weights(self, layers: int) -> None:
        if self.needs_training:
            return
        models = list(dict.fromkeys(self.experts))
        for a, b in itertools.combinations(models, 2):
            if _same_mlps(self.ckpts[a], self.ckpts[b], layers):
                self.problems.append(
                    f"experts {self.refs[a]} and {self.refs[b]} hold identical MLP weights, so "
                    f"the MoE would only cost more; {_ACK}"
                )


def _same_mlps(a: Checkpoint, b: Checkpoint, layers: int) -> bool:
    """Whether every MLP tensor of ``a`` equals ``b``'s (stops at the first difference)."""
    for layer, part in itertools.product(range(layers), MLP_PARTS):
        name = mlp_name(layer, part)
        x, y = a.read(name), b.read(name)
        if x.dtype != y.dtype:
            x, y = x.float(), y.float()
        if not torch.equal(x, y):
            return False
    return True


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
