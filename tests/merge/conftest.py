"""Fixtures for merge tests: a tiny base with three fine-tunes, and a model factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tiny_models import finetune_of, random_state, save_model


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A base and three fine-tunes of it (float32), saved as sharded checkpoints."""
    root = tmp_path_factory.mktemp("tiny")
    base = random_state(0)
    out = {"base": save_model(root / "base", base)}
    for i, name in enumerate(("a", "b", "c"), start=1):
        out[name] = save_model(root / name, finetune_of(base, i))
    return out


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    """Save a custom tiny model under tmp_path: ``make_model(name, state, **kw)``."""

    def make(name: str, state: dict[str, torch.Tensor], **kwargs: object) -> Path:
        return save_model(tmp_path / name, state, **kwargs)  # type: ignore[arg-type]

    return make
