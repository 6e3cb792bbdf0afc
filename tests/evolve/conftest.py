"""Fixtures for the evolve tests: tiny sources, their synthetic target, a tiny task."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from evolve_helpers import TARGET, build_sources, target_state
from tiny_models import WORDS


@pytest.fixture(scope="session")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """base, a, b, c: a tiny 3-layer base and three fine-tunes of it."""
    return build_sources(tmp_path_factory.mktemp("evolve-sources"))


@pytest.fixture(scope="session")
def target(sources: dict[str, Path]) -> dict[str, torch.Tensor]:
    """The synthetic optimum: task arithmetic at weights (0.3, 0.8, 0.5), by hand."""
    return target_state(sources, TARGET)


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'choice' task over the tiny models' words: fitness and a disjoint test split."""
    folder = tmp_path_factory.mktemp("evolve-task")
    rng = random.Random(0)
    words = WORDS[4:]

    def item() -> dict[str, object]:
        prompt = " ".join(rng.sample(words, 3))
        return {"prompt": prompt, "choices": rng.sample(words, 2), "label": rng.randrange(2)}

    items = [item() for _ in range(40)]
    splits = {"fitness": items[:24], "test": items[24:]}
    for split, rows in splits.items():
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (folder / f"tiny.{split}.jsonl").write_text(text, encoding="utf-8")
    config = {
        "name": "tiny",
        "type": "choice",
        "splits": {s: f"tiny.{s}.jsonl" for s in splits},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
