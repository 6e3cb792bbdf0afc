"""On the real zoo models: our evaluator agrees with ``transformers``' own ``generate``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mergelab.eval import TaskEvaluator, load_model, load_task


def reference_strict(model: torch.nn.Module, tokenizer, task_name: str, n: int) -> float:
    """strict computed with HF generate and plain Python, item by item (no batching)."""
    task = load_task(task_name)
    hits = 0
    for item in task.items("test")[:n]:
        ids = [
            tokenizer.bos_token_id,
            *tokenizer(item["prompt"], add_special_tokens=False)["input_ids"],
        ]
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=task.new_tokens,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )[0, len(ids) :].tolist()
        text = tokenizer.decode(out, skip_special_tokens=True)
        cuts = [text.index(s) + len(s) for s in task.stop if s in text]
        completion = (text[: min(cuts)] if cuts else text).strip()
        numbers = re.findall(r"-?\d+", completion)
        right = bool(numbers) and numbers[-1] == item["answer"]
        framed = re.fullmatch(task.format_pattern or ".*", completion) is not None
        hits += right and framed
    return hits / n


@pytest.mark.slow
@pytest.mark.parametrize(("model_name", "task_name"), [("j", "j-read"), ("base", "e-read")])
def test_zoo_scores_match_hf_generate(zoo_dir: Path, model_name: str, task_name: str) -> None:
    model, tokenizer = load_model(zoo_dir / model_name)
    n = 60
    ours = TaskEvaluator(load_task(task_name), tokenizer, split="test", limit=n)(model)
    assert ours["strict"] == pytest.approx(reference_strict(model, tokenizer, task_name, n))
    assert ours["strict"] > 0.2  # trained on this kind of question (an untrained model: 0)
