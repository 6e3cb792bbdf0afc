"""Model references: a local folder, a ``.safetensors`` file, or a Hugging Face hub id.

Hub ids (``org/name`` or ``org/name@revision``, revision a branch, tag or commit) resolve only
through the local huggingface_hub cache (``huggingface_hub.snapshot_download`` with
``local_files_only=True``): mergelab never downloads. The cache folder follows the
huggingface_hub environment variables (``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``,
``HF_HOME``), read at call time rather than at import time.

``model+adapter`` (mergekit's LoRA syntax) names a base model and a PEFT LoRA adapter to apply
to it; :func:`split_lora_ref` separates the two.
"""

from __future__ import annotations

import os
from pathlib import Path

from mergelab.errors import CheckpointError, ConfigError


def _hub_cache_dir() -> Path | None:
    """The hub cache the environment names, or None for huggingface_hub's default."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return None


def _from_hub_cache(ref: str) -> Path | None:
    """The cached snapshot folder of hub id ``ref`` (``org/name[@revision]``), or None."""
    from huggingface_hub import snapshot_download  # slow to import; only hub ids need it

    repo_id, _, revision = ref.partition("@")
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision or None,
            local_files_only=True,
            cache_dir=_hub_cache_dir(),
        )
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError) or not a valid id
        return None
    return Path(folder)


def resolve_model_ref(ref: str | Path) -> Path:
    """The local folder holding model ``ref``: a folder, a safetensors file's folder, or a hub
    id found in the local Hugging Face cache. CheckpointError when it is none of these."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.is_file():
        if path.suffix == ".safetensors":
            return path.parent.resolve()
        raise CheckpointError(
            f"model {str(ref)!r} is a file, not a model folder; give the folder that holds it"
        )
    if isinstance(ref, str):
        folder = _from_hub_cache(ref)
        if folder is not None:
            return folder
    name = str(ref).partition("@")[0]
    raise CheckpointError(
        f"model {str(ref)!r} is neither a folder nor in the local Hugging Face cache; "
        f"download it with `hf download {name}` or give a path"
    )


def split_lora_ref(ref: str) -> tuple[str, str | None]:
    """``"model+adapter"`` -> ``("model", "adapter")``; ``(ref, None)`` without an adapter.

    A ``+`` that is part of an existing path is not a split. With several ``+``, the split
    whose model part exists on disk wins, then the one whose adapter part does, else the first.
    """
    if "+" not in ref or Path(ref).expanduser().exists():
        return ref, None
    splits = [(ref[:i], ref[i + 1 :]) for i, char in enumerate(ref) if char == "+"]
    splits.sort(
        key=lambda s: (not Path(s[0]).expanduser().exists(), not Path(s[1]).expanduser().exists())
    )
    model, adapter = splits[0]
    if not model or not adapter:
        raise ConfigError(
            f"model reference {ref!r} has an empty part around '+'; write MODEL+LORA_ADAPTER"
        )
    return model, adapter
