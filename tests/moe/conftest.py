"""Fixtures for MoE tests: a tiny Llama base and three MLP fine-tunes of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from moe_helpers import mlp_finetune
from tiny_models import random_state, save_model


@pytest.fixture(scope="session")
def moe_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A base and three MLP fine-tunes (float32, sharded), with a word-level tokenizer."""
    root = tmp_path_factory.mktemp("moe-models")
    base = random_state(0)
    out = {"base": save_model(root / "base", base)}
    for i, name in enumerate(("a", "b", "c"), start=1):
        out[name] = save_model(root / name, mlp_finetune(base, i))
    return out


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(data: dict[str, Any], name: str = "moe.yml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write
