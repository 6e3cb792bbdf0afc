"""Model references: folders, files, the offline Hugging Face cache, and LoRA '+' splitting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mergelab.checkpoint import Checkpoint
from mergelab.errors import CheckpointError, ConfigError
from mergelab.model_ref import resolve_model_ref, split_lora_ref

MAIN = "a" * 40
TAGGED = "b" * 40


def fake_hub_cache(cache: Path) -> dict[str, Path]:
    """A huggingface_hub cache layout holding org/name at two commits (main and tag v1)."""
    repo = cache / "models--org--name"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(MAIN)
    (repo / "refs" / "v1").write_text(TAGGED)
    snapshots = {}
    for commit, value in ((MAIN, 1.0), (TAGGED, 2.0)):
        folder = repo / "snapshots" / commit
        folder.mkdir(parents=True)
        save_file({"w": torch.full((2,), value)}, folder / "model.safetensors")
        snapshots[commit] = folder
    return snapshots


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # so "org/name" is not also a relative path by accident
    return fake_hub_cache(cache)


def test_local_folder_and_file(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"w": torch.ones(1)}, folder / "weights.safetensors")
    assert resolve_model_ref(folder) == folder.resolve()
    assert resolve_model_ref(str(folder / "weights.safetensors")) == folder.resolve()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="is a file, not a model folder"):
        resolve_model_ref(folder / "notes.txt")


def test_hub_id_from_cache(hub: dict[str, Path]) -> None:
    assert resolve_model_ref("org/name") == hub[MAIN]
    assert resolve_model_ref("org/name@v1") == hub[TAGGED]
    assert resolve_model_ref(f"org/name@{TAGGED}") == hub[TAGGED]
    with Checkpoint.open("org/name@v1") as ckpt:
        assert ckpt.read("w").tolist() == [2.0, 2.0]
        assert ckpt.ref == "org/name@v1"


def test_hf_home_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshots = fake_hub_cache(tmp_path / "home" / "hub")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    assert resolve_model_ref("org/name") == snapshots[MAIN]


@pytest.mark.parametrize("ref", ["org/missing", "org/name@nope", "not a valid id!"])
def test_missing_everywhere(hub: dict[str, Path], ref: str) -> None:
    with pytest.raises(CheckpointError) as info:
        resolve_model_ref(ref)
    text = str(info.value)
    assert f"model '{ref}' is neither a folder nor in the local Hugging Face cache" in text
    assert f"`hf download {ref.partition('@')[0]}`" in text


def test_split_lora_ref(tmp_path: Path) -> None:
    assert split_lora_ref("base") == ("base", None)
    assert split_lora_ref("org/base+org/adapter") == ("org/base", "org/adapter")
    plus = tmp_path / "c++model"
    plus.mkdir()
    assert split_lora_ref(str(plus)) == (str(plus), None)
    assert split_lora_ref(f"{plus}+lora") == (str(plus), "lora")
    adapter = tmp_path / "my+lora"
    adapter.mkdir()
    assert split_lora_ref(f"base+{adapter}") == ("base", str(adapter))


@pytest.mark.parametrize("ref", ["+adapter", "model+", "+"])
def test_split_lora_ref_empty_part(ref: str) -> None:
    with pytest.raises(ConfigError, match="MODEL\\+LORA_ADAPTER"):
        split_lora_ref(ref)
