"""Fixtures for the DFS tests: tiny models A and B (3 layers, hidden 32, one tokenizer) and
misfits (another width, another tokenizer, GPT-2), saved once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from dfs_helpers import save_family_model, save_gpt2
from tiny_models import WORDS


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dfs-models")
    return {
        "a": save_family_model(root / "a", 1),
        "b": save_family_model(root / "b", 2),
        "wide": save_family_model(root / "wide", 3, hidden=48),
        "other_words": save_family_model(root / "other_words", 4, words=[*WORDS[:-1], "zz"]),
        "gpt2": save_gpt2(root / "gpt2"),
    }
