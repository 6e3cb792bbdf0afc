"""Fixtures for task-vector tests: a tiny base, fine-tunes of it, and unrelated models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import finetune_of, random_state, save_model

from mergelab.cli import main


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """base, fine-tunes a/b/c (float32); base16/ft16 (bfloat16); other (another base of the
    same architecture); deep/deep_ft (3 layers)."""
    root = tmp_path_factory.mktemp("vectors")
    base = random_state(0)
    out = {"base": save_model(root / "base", base)}
    for i, name in enumerate(("a", "b", "c"), start=1):
        out[name] = save_model(root / name, finetune_of(base, i))
    out["base16"] = save_model(root / "base16", base, dtype=torch.bfloat16)
    out["ft16"] = save_model(root / "ft16", finetune_of(base, 7), dtype=torch.bfloat16)
    out["other"] = save_model(root / "other", random_state(5))
    deep = random_state(0, layers=3)
    out["deep"] = save_model(root / "deep", deep, layers=3)
    out["deep_ft"] = save_model(root / "deep_ft", finetune_of(deep, 1), layers=3)
    return out


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model folder, read with the reference safetensors loader."""
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        state.update(load_file(shard))
    return state


@pytest.fixture
def state() -> Callable[[Path], dict[str, torch.Tensor]]:
    return load_state


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """Run ``mergelab ARGS...`` in-process: (exit code, stdout, stderr), 250 columns wide."""
    monkeypatch.setenv("COLUMNS", "250")

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(["-q", *map(str, args)])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err.strip()

    return run
