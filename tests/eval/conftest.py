"""Fixtures for the evaluator tests: the word-level tokenizer, task files on disk and a
saved tiny model folder (the test doubles themselves live in ``eval_fakes``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from eval_fakes import make_tokenizer, tiny_llama
from transformers import PreTrainedTokenizerFast


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


@pytest.fixture
def write_task(tmp_path: Path) -> Callable[..., Path]:
    """Writes ``<name>.yaml`` and one JSONL file per split; returns the YAML path."""

    def write(config: dict[str, Any], splits: dict[str, list[dict[str, Any]]]) -> Path:
        config = {**config, "splits": {s: f"{config['name']}.{s}.jsonl" for s in splits}}
        path = tmp_path / f"{config['name']}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        for split, items in splits.items():
            lines = [json.dumps(item) for item in items]
            (tmp_path / config["splits"][split]).write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def model_dir(tmp_path: Path, tokenizer: PreTrainedTokenizerFast) -> Path:
    """A saved tiny Llama with its tokenizer (a real model folder)."""
    folder = tmp_path / "tiny-model"
    tiny_llama().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
