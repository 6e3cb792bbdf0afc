"""Loading a model folder (config.json + weights + tokenizer files) for evaluation.

The folder is checked first, so a wrong path fails with one line naming what is missing
instead of a transformers traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from mergelab.errors import EvaluationError

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_model(
    path: str | Path, device: str = "cpu", dtype: torch.dtype | str | None = None
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """(model in eval mode on ``device``, tokenizer) from a saved causal-LM folder."""
    folder = Path(path)
    check_model_folder(folder)
    kwargs = {} if dtype is None else {"dtype": _dtype(dtype)}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, TypeError) as exc:
        raise EvaluationError(
            f"cannot load the tokenizer of '{folder}' ({_first_line(exc)}); "
            "save the tokenizer files (tokenizer.json, tokenizer_config.json) next to the model"
        ) from None
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise EvaluationError(
            f"cannot load the model in '{folder}' ({_first_line(exc)}); "
            "check that it is a complete causal-LM checkpoint"
        ) from None
    logger.debug("loaded %s (%s) on %s", folder, type(model).__name__, device)
    model = model.to(device)  # type: ignore[arg-type]
    return model.eval(), tokenizer


def check_model_folder(folder: Path) -> None:
    """EvaluationError naming the folder and what it lacks (folder, config.json, weights)."""
    if not folder.is_dir():
        raise EvaluationError(f"model folder '{folder}' does not exist; pass a saved model folder")
    if not (folder / "config.json").is_file():
        raise EvaluationError(
            f"'{folder}' is not a model folder: no config.json; pass a saved model folder"
        )
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_FILES):
        raise EvaluationError(
            f"'{folder}' is not a model folder: no weights (*.safetensors or "
            "pytorch_model*.bin); pass a saved model folder"
        )


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise EvaluationError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
