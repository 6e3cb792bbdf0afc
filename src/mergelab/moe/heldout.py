"""Which prompts the routing report routes for each expert.

An expert's ``eval_prompts`` (a mergelab extension of the mergekit-moe config), else the
first prompts of its ``eval_task``'s test split, else its own ``positive_prompts``, marked as
not held out: scoring the router on the prompts it was made from flatters it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mergelab.moe.config import MoeConfig

EVAL_LIMIT = 50  # held-out prompts taken from an expert's eval_task


@dataclass(frozen=True)
class HeldOut:
    """An expert's report prompts; ``held_out`` is False when they are its router prompts."""

    prompts: list[str]
    held_out: bool


def held_out_prompts(config: MoeConfig, limit: int = EVAL_LIMIT) -> list[HeldOut]:
    """Each expert's report prompts: ``eval_prompts``, else the first ``limit`` prompts of
    ``eval_task``'s test split, else (marked not held out) its positive prompts."""
    out = []
    for expert in config.experts:
        if expert.eval_prompts:
            out.append(HeldOut(list(expert.eval_prompts), True))
        elif expert.eval_task:
            out.append(HeldOut(_task_prompts(expert.eval_task, limit), True))
        else:
            out.append(HeldOut(list(expert.positive_prompts or []), False))
    return out


def _task_prompts(task_name: str, limit: int) -> list[str]:
    from mergelab.eval.task import load_task

    task = load_task(task_name)
    items = task.items("test")[:limit]
    return [str(item.get("prompt", item.get("text", ""))) for item in items]
