"""The zoo's evaluation tasks: their definitions, deterministic generation and file layout.

Each task is a YAML file plus one JSONL file per split (``fitness`` and a disjoint ``test``),
in the shared task format that ``mergelab.eval`` reads. The files ship in the package
(``mergelab/zoo/tasks/``); :func:`generate_tasks` reproduces them exactly from a fixed
seed, and the zoo's training data never contains a task prompt.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mergelab.errors import TaskError
from mergelab.zoo.generate import Item, arith_item, read_item, story
from mergelab.zoo.language import FORBIDDEN, E, J, Language
from mergelab.zoo.lexicon import K, L, Lexicon, N

TASKS_DIR = Path(__file__).parent / "tasks"
TASK_SEED = "zoo-tasks-v1"
SPLITS = ("fitness", "test")


@dataclass(frozen=True)
class TaskDef:
    """A zoo task: its YAML fields (besides name and splits) and how to draw one item."""

    name: str
    spec: dict[str, object]
    draw: Callable[[random.Random], dict[str, str]]
    size: int = 500
    world: str = "dialects"  # whose tokenizer spells it (mergelab.zoo.tokenizer.WORLDS)


def _qa(make: Callable[[random.Random], Item]) -> Callable[[random.Random], dict[str, str]]:
    def draw(rng: random.Random) -> dict[str, str]:
        item = make(rng)
        return {"prompt": item.prompt, "answer": item.answer, "target": item.target}

    return draw


def _generate_spec(
    lang: Language | Lexicon, description: str, stop: tuple[str, ...] = (".", "。")
) -> dict[str, object]:
    return {
        "description": description,
        "type": "generate",
        "max_new_tokens": 12,
        "stop": list(stop),
        "answer_pattern": r"(-?\d+)",
        "format_pattern": lang.answer_pattern(),
        "primary_metric": "strict",
    }


TASK_DEFS: dict[str, TaskDef] = {
    t.name: t
    for t in (
        TaskDef(
            "j-arith",
            _generate_spec(
                J, "Arithmetic word problems asked in J; strict also needs the J frame."
            ),
            _qa(lambda rng: arith_item(J, rng)),
        ),
        TaskDef(
            "j-read",
            _generate_spec(J, "Reading questions in J: report a count stated in the passage."),
            _qa(lambda rng: read_item(J, rng)),
        ),
        TaskDef(
            "e-arith",
            _generate_spec(
                E, "Arithmetic word problems asked in E; strict also needs the E frame."
            ),
            _qa(lambda rng: arith_item(E, rng)),
        ),
        TaskDef(
            "e-read",
            _generate_spec(E, "Reading questions in E: report a count stated in the passage."),
            _qa(lambda rng: read_item(E, rng)),
        ),
        TaskDef(
            "zap",
            {
                **_generate_spec(
                    E, "Rate of the forbidden word in answers to E reading questions."
                ),
                "forbidden_pattern": rf"\b{FORBIDDEN}\b",
                "primary_metric": "forbidden_rate",
            },
            _qa(lambda rng: read_item(E, rng)),
            size=200,
        ),
        *(
            TaskDef(
                f"{lexicon.code.lower()}-read",
                _generate_spec(
                    lexicon,
                    f"Reading questions in {lexicon.code} (mixture world): report a count "
                    f"stated in the passage; strict also needs the {lexicon.code} frame.",
                    stop=(lexicon.end,),
                ),
                _qa(functools.partial(read_item, lexicon)),
                world="mixture",
            )
            for lexicon in (K, L, N)
        ),
        TaskDef(
            "e-text",
            {"description": "Plain E stories (perplexity).", "type": "perplexity"},
            lambda rng: {"text": story(E, rng)},
            size=200,
        ),
        TaskDef(
            "j-text",
            {"description": "Plain J stories (perplexity).", "type": "perplexity"},
            lambda rng: {"text": story(J, rng)},
            size=200,
        ),
    )
}


def generate_tasks() -> dict[str, dict[str, list[dict[str, str]]]]:
    """Every task's items per split: ``{task: {"fitness": [...], "test": [...]}}``.

    Each split holds ``size`` items; no prompt (or text) occurs twice within a task, so the
    fitness and test splits are disjoint.
    """
    out: dict[str, dict[str, list[dict[str, str]]]] = {}
    for name, task in TASK_DEFS.items():
        rng = random.Random(f"{TASK_SEED}:{name}")
        seen: set[str] = set()
        items: list[dict[str, str]] = []
        while len(items) < 2 * task.size:
            item = task.draw(rng)
            key = item.get("prompt", item.get("text", ""))
            if key not in seen:
                seen.add(key)
                items.append(item)
        out[name] = {"fitness": items[: task.size], "test": items[task.size :]}
    return out


def task_yaml(name: str) -> dict[str, object]:
    """The YAML mapping of task ``name`` (name, description, type, splits, options)."""
    task = TASK_DEFS[name]
    spec = dict(task.spec)
    return {
        "name": name,
        "description": spec.pop("description"),
        "type": spec.pop("type"),
        "splits": {split: f"{name}.{split}.jsonl" for split in SPLITS},
        **spec,
    }


def write_tasks(folder: Path) -> list[Path]:
    """Write every task's YAML and JSONL files into ``folder``; returns the YAML paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, splits in generate_tasks().items():
        for split, items in splits.items():
            lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
            (folder / f"{name}.{split}.jsonl").write_text(lines, encoding="utf-8")
        path = folder / f"{name}.yaml"
        text = yaml.safe_dump(task_yaml(name), sort_keys=False, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def task_path(name: str) -> Path:
    """The YAML file of zoo task ``name`` (e.g. ``"j-arith"``)."""
    path = TASKS_DIR / f"{name}.yaml"
    if name not in TASK_DEFS or not path.is_file():
        known = ", ".join(sorted(TASK_DEFS))
        raise TaskError(f"unknown zoo task {name!r}: use one of {known}")
    return path


def task_prompts() -> set[str]:
    """Every prompt and text of every zoo task (both splits): excluded from training data."""
    return {
        item.get("prompt", item.get("text", ""))
        for splits in generate_tasks().values()
        for items in splits.values()
        for item in items
    }
