"""Evaluation tasks: a small YAML file plus JSONL split files next to it.

The format is mergelab's own (documented with a worked example in ``docs/tasks.md``); it
is shared with the zoo, which ships its tasks at ``mergelab/zoo/tasks/<name>.yaml``. Three
kinds exist: ``generate`` (greedy generation scored by exact match of an extracted
answer, in the spirit of GSM8k/MGSM scoring: the last number in the completion), ``choice``
(log-likelihood multiple choice, as in lm-evaluation-harness) and ``perplexity``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from mergelab.errors import TaskError, join_problems
from mergelab.eval.jsonl import read_items

TaskType = Literal["generate", "choice", "perplexity"]

DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_ANSWER_PATTERN = r"(-?\d+)"
ZOO_TASKS_DIR = Path(__file__).resolve().parent.parent / "zoo" / "tasks"

_GENERATE_ONLY = ("max_new_tokens", "stop", "answer_pattern", "format_pattern", "forbidden_pattern")


class Task(BaseModel):
    """One task file. Split paths are relative to the YAML file that names them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    type: TaskType
    splits: dict[str, str] = Field(min_length=1)
    max_new_tokens: int | None = Field(default=None, ge=1)
    stop: list[str] = Field(default_factory=list)
    answer_pattern: str | None = None
    format_pattern: str | None = None
    forbidden_pattern: str | None = None
    primary_metric: str | None = None

    _root: Path = PrivateAttr(default_factory=Path.cwd)
    _cache: dict[str, list[dict[str, Any]]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Task:
        problems: list[str] = []
        if self.type != "generate":
            given = [key for key in _GENERATE_ONLY if key in self.model_fields_set]
            if given:
                problems.append(
                    f"{', '.join(given)} only apply to type 'generate', not '{self.type}'; "
                    "remove them"
                )
        for key in ("answer_pattern", "format_pattern", "forbidden_pattern"):
            pattern = getattr(self, key)
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    problems.append(f"{key} {pattern!r} is not a valid regex ({exc})")
        if any(not s for s in self.stop):
            problems.append("stop holds an empty string; remove it")
        names = self._metrics()
        if self.primary_metric is not None and self.primary_metric not in names:
            problems.append(
                f"primary_metric {self.primary_metric!r} is not a metric of this task; "
                f"choose one of {', '.join(names)}"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def metric_names(self) -> list[str]:
        """The metrics an evaluation of this task reports, primary first."""
        names = self._metrics()
        primary = self.primary_metric or names[0]
        return [primary, *(n for n in names if n != primary)]

    def _metrics(self) -> list[str]:
        if self.type == "choice":
            names = ["accuracy", "accuracy_norm"]
        elif self.type == "perplexity":
            names = ["perplexity", "nll"]
        else:
            names = ["strict", "lenient"]
            if self.format_pattern is not None:
                names.append("format")
            if self.forbidden_pattern is not None:
                names.append("forbidden_rate")
        return names

    @property
    def primary(self) -> str:
        """The metric reported first and used by default."""
        return self.metric_names[0]

    @property
    def new_tokens(self) -> int:
        """Generation budget per item (``max_new_tokens``, default 32)."""
        return self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS

    @property
    def root(self) -> Path:
        """The folder that split paths are relative to."""
        return self._root

    def split_path(self, split: str) -> Path:
        """The JSONL file of ``split``; TaskError naming the available splits if unknown."""
        if split not in self.splits:
            raise TaskError(
                f"task '{self.name}' has no split '{split}'; "
                f"available splits: {', '.join(sorted(self.splits))}"
            )
        return self._root / self.splits[split]

    def items(self, split: str) -> list[dict[str, Any]]:
        """The items of ``split``, validated for this task's type (read once, then cached)."""
        if split not in self._cache:
            self._cache[split] = read_items(self.split_path(split), self.type)
        return [dict(item) for item in self._cache[split]]


def zoo_task_names() -> list[str]:
    """Names of the tasks shipped with the zoo (``mergelab/zoo/tasks/*.yaml``)."""
    if not ZOO_TASKS_DIR.is_dir():
        return []
    return sorted(p.stem for p in ZOO_TASKS_DIR.glob("*.yaml"))


def load_task(name_or_path: str | Path) -> Task:
    """A zoo task by name (``"j-arith"``) or any task file by path (``"path/to/x.yaml"``)."""
    text = str(name_or_path)
    looks_like_path = (
        isinstance(name_or_path, Path)
        or text.endswith((".yaml", ".yml"))
        or "/" in text
        or "\\" in text
    )
    if looks_like_path or Path(text).is_file():
        return _load_task_file(Path(text))
    path = ZOO_TASKS_DIR / f"{text}.yaml"
    if path.is_file():
        return _load_task_file(path)
    names = zoo_task_names()
    close = difflib.get_close_matches(text, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    known = f"available tasks: {', '.join(names)}" if names else "no zoo tasks are installed"
    raise TaskError(f"unknown task '{text}'; {hint}{known} (or pass the path of a task .yaml)")


def _load_task_file(path: Path) -> Task:
    if not path.is_file():
        raise TaskError(f"task file '{path}' does not exist; pass a task .yaml or a zoo task name")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise TaskError(f"task file {where} is not valid YAML ({problem}); fix it") from None
    if not isinstance(data, dict):
        raise TaskError(f"task file '{path}' must hold a YAML mapping (name, type, splits, ...)")
    try:
        task = Task.model_validate(data)
    except ValidationError as exc:
        raise TaskError(join_problems(f"task file '{path}' is invalid", _problems(exc))) from None
    task._root = path.resolve().parent
    return task


def _problems(exc: ValidationError) -> list[str]:
    """One readable line per pydantic error; unknown keys name the nearest valid key."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(where, list(Task.model_fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown key '{where}'{hint}")
        elif error["type"] == "value_error":
            problems.append(str(error["ctx"]["error"]))
        else:
            problems.append(f"{where or 'file'}: {error['msg']}")
    return problems
