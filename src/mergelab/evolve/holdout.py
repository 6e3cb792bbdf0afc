"""Held-out evaluation: the chosen models and the source models on the test split.

The paper reports fitness on a training split and the final score on a disjoint test split
(Akiba et al., arXiv 2403.13187, Sec. 4.1). Every task objective's task is scored on
``test_split`` in full (no ``limit``), with all its metrics, for each chosen candidate (built
in memory) and for each source model (loaded from its folder), so the summary compares
them. :func:`split_overlap` finds test prompts that also appear in the fitness split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from mergelab.eval import load_model, load_task
from mergelab.evolve.config import EvolveConfig, ObjectiveSpec
from mergelab.evolve.objectives import Objectives
from mergelab.evolve.space import Candidate, LiveModel
from mergelab.model_ref import resolve_model_ref, split_lora_ref

log = logging.getLogger(__name__)

Metrics = dict[str, dict[str, float]]  # evaluation key -> metric -> value


def test_objectives(config: EvolveConfig) -> list[ObjectiveSpec]:
    """The task objectives, one per task (the test split is scored once per task)."""
    seen: set[str] = set()
    out = []
    for spec in config.objectives:
        if spec.task is not None and spec.task not in seen:
            seen.add(spec.task)
            out.append(spec)
    return out


def evaluate_candidates(
    config: EvolveConfig, live: LiveModel, candidates: Sequence[Candidate]
) -> list[Metrics]:
    """Test-split metrics of each candidate, built into ``live`` one after another."""
    specs = test_objectives(config)
    if config.test_split is None or not specs:
        return [{} for _ in candidates]
    objectives = Objectives(specs, live.tokenizer, split=config.test_split)
    out = []
    for candidate in candidates:
        model = live.build(candidate)
        out.append({k: dict(e(model)) for k, e in objectives.evaluators.items()})
    return out


def evaluate_sources(config: EvolveConfig) -> dict[str, Metrics]:
    """Test-split metrics of every input model (the base and sources, or the DFS models), by
    model reference.

    A ``model+adapter`` source is left out (its adapter is applied only inside merges).
    """
    specs = test_objectives(config)
    if config.test_split is None or not specs:
        return {}
    refs = config.source_models()
    out: dict[str, Metrics] = {}
    for ref in refs:
        path, adapter = split_lora_ref(ref)
        if adapter is not None:
            log.info("not scoring source %s on the test split: it has a LoRA adapter", ref)
            continue
        model, tokenizer = load_model(resolve_model_ref(path))
        objectives = Objectives(specs, tokenizer, split=config.test_split)
        out[ref] = {k: dict(e(model)) for k, e in objectives.evaluators.items()}
    return out


def split_overlap(config: EvolveConfig) -> list[str]:
    """One warning per task objective whose test prompts also occur in its fitness split."""
    if config.test_split is None:
        return []
    warnings = []
    for spec in config.objectives:
        if spec.task is None:
            continue
        if spec.split == config.test_split:
            warnings.append(
                f"objective {spec.label} uses split '{spec.split}' for fitness and test; "
                "test scores will be optimistic, use disjoint splits"
            )
            continue
        task = load_task(spec.task)
        fitness = {_text(i) for i in task.items(spec.split)[: spec.limit]}
        test = [_text(i) for i in task.items(config.test_split)]
        shared = sum(1 for t in test if t in fitness)
        if shared:
            warnings.append(
                f"task {task.name}: {shared} of {len(test)} '{config.test_split}' items also "
                f"appear in the fitness split '{spec.split}'; test scores will be optimistic"
            )
    return warnings


def _text(item: dict[str, Any]) -> str:
    return str(item.get("prompt", item.get("text", "")))
