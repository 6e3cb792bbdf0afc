"""Reading and validating a task's JSONL split file (one JSON object per line).

Item shapes (extra keys are kept and ignored by the evaluators):

- generate: ``{"prompt": str, "answer": str | int, "target"?: str}``
- choice: ``{"prompt": str, "choices": [str, ...], "label": int}``
- perplexity: ``{"text": str}``

Integer answers are turned into strings, since answers are compared as strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mergelab.errors import TaskError, join_problems

_MAX_REPORTED = 5


def read_items(path: Path, kind: str) -> list[dict[str, Any]]:
    """Every item of ``path``; TaskError naming file and line of each bad line (first few)."""
    if not path.is_file():
        raise TaskError(f"split file '{path}' does not exist; fix the path under 'splits'")
    items: list[dict[str, Any]] = []
    problems: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{path}:{number}: not valid JSON ({exc.msg})")
                continue
            problem = _check_item(item, kind)
            if problem is not None:
                problems.append(f"{path}:{number}: {problem}")
                continue
            if kind == "generate" and isinstance(item["answer"], int):
                item["answer"] = str(item["answer"])
            items.append(item)
    if problems:
        shown = problems[:_MAX_REPORTED]
        if len(problems) > _MAX_REPORTED:
            shown.append(f"... and {len(problems) - _MAX_REPORTED} more")
        raise TaskError(join_problems(f"malformed {kind} items (fix these lines)", shown))
    if not items:
        raise TaskError(f"split file '{path}' holds no items; add one JSON object per line")
    return items


def _check_item(item: object, kind: str) -> str | None:
    """Why ``item`` is not a valid ``kind`` item, or None when it is."""
    if not isinstance(item, dict):
        return f"expected a JSON object, got {type(item).__name__}"
    if kind == "generate":
        return _need(item, "prompt", str) or _need_answer(item) or _optional_str(item, "target")
    if kind == "choice":
        return _need(item, "prompt", str) or _need_choices(item)
    return _need(item, "text", str) or (None if item["text"].strip() else "'text' is empty")


def _need(item: dict[str, Any], key: str, kind: type) -> str | None:
    if key not in item:
        return f"missing key '{key}'"
    if not isinstance(item[key], kind) or isinstance(item[key], bool):
        return f"'{key}' must be a {kind.__name__}, got {item[key]!r}"
    return None


def _need_answer(item: dict[str, Any]) -> str | None:
    if "answer" not in item:
        return "missing key 'answer'"
    answer = item["answer"]
    if isinstance(answer, bool) or not isinstance(answer, (str, int)):
        return f"'answer' must be a string, got {answer!r}"
    return None


def _optional_str(item: dict[str, Any], key: str) -> str | None:
    return _need(item, key, str) if key in item else None


def _need_choices(item: dict[str, Any]) -> str | None:
    choices = item.get("choices")
    if not isinstance(choices, list) or not choices:
        return f"'choices' must be a non-empty list of strings, got {choices!r}"
    if not all(isinstance(c, str) and c for c in choices):
        return f"every choice must be a non-empty string, got {choices!r}"
    problem = _need(item, "label", int)
    if problem is not None:
        return problem
    if not 0 <= item["label"] < len(choices):
        return f"'label' {item['label']} is out of range for {len(choices)} choices"
    return None
