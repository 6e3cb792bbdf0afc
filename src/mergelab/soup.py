"""Model soups: the uniform soup and the greedy soup (Wortsman et al. 2022, Recipe 1).

Paper: https://arxiv.org/abs/2203.05482. A soup is the plain average of fine-tunes of one
base, ``theta = (1/k) sum_i theta_i``. Greedy soup: score every model once on a held-out
split, sort them best first, start the soup with the best, then try each next model in
order and keep it only if the soup's held-out score with it is better. Deviation: the paper
keeps a model when the score does not drop (``>=``); here it must strictly improve, so a soup
never grows without a measured gain. Either way the soup scores at least as well as its
best ingredient on that split (its first step is that ingredient alone).

Soups are made in memory with a running sum ``S = sum_{i in soup} theta_i`` (float32): a
candidate ``(S + theta_j) / (k + 1)`` streams through :func:`mergelab.engine.run` straight
into one live model, which the evaluator scores; nothing is reloaded from disk between steps
except the candidate's own tensors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from mergelab import engine
from mergelab.checkpoint import Checkpoint, TensorInfo
from mergelab.errors import ConfigError, PlanError, join_problems
from mergelab.output_dir import atomic_output_dir, check_output_location
from mergelab.plan import InputRef, TensorJob
from mergelab.vectors.model_files import copy_support_files, write_card
from mergelab.writer import ShardedSafetensorsWriter

log = logging.getLogger(__name__)

LOWER_IS_BETTER = frozenset({"perplexity", "nll", "forbidden_rate"})
RECORD_FILE = "mergelab_soup.json"

Score = Callable[[nn.Module], float]


@dataclass(frozen=True)
class SoupStep:
    """One step: a model tried, the soup's score with it, whether it was kept."""

    step: int
    model: str
    model_score: float  # the model alone
    soup_score: float  # the soup including this model
    accepted: bool
    size: int  # ingredients after this step


@dataclass
class SoupResult:
    kind: Literal["greedy", "uniform"]
    metric: str
    scores: dict[str, float]  # each model alone
    steps: list[SoupStep]
    ingredients: list[str]
    score: float  # the final soup's
    tensors: dict[str, torch.Tensor] = field(repr=False)  # the final soup, source dtypes

    def record(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "metric": self.metric,
            "score": self.score,
            "ingredients": self.ingredients,
            "scores": self.scores,
            "steps": [vars(s) for s in self.steps],
        }


class _Kitchen:
    """The models' checkpoints, the live model the soups are poured into, and the scorer."""

    def __init__(self, models: Sequence[str], module: nn.Module, score: Score) -> None:
        self.names = list(models)
        self.ckpts: list[Checkpoint] = []
        try:
            for ref in self.names:
                self.ckpts.append(Checkpoint.open(ref))
        except BaseException:
            self.close()
            raise
        self._check_homologous()
        self.infos = self.ckpts[0].tensors
        self.module = module
        self.score = score

    def _check_homologous(self) -> None:
        first, problems = self.ckpts[0], []
        for name, ckpt in zip(self.names[1:], self.ckpts[1:], strict=True):
            shapes = {n: i.shape for n, i in ckpt.tensors.items()}
            if shapes != {n: i.shape for n, i in first.tensors.items()}:
                problems.append(f"{name} has other tensors or shapes than {self.names[0]}")
        if problems:
            raise PlanError(
                join_problems("the soup's models do not share an architecture", problems)
            )

    def _run(
        self,
        sources: list[engine.TensorSource],
        combine: Callable[..., torch.Tensor],
        sink: engine.Sink,
        dtype: torch.dtype | None = None,
    ) -> None:
        jobs = [
            TensorJob(
                name,
                info.shape,
                dtype or info.dtype,
                "soup",
                None,
                tuple(InputRef(i, name) for i in range(len(sources))),
                {},
                combine=combine,
            )
            for name, info in self.infos.items()
        ]
        engine.run(jobs, sources, sink, engine.EngineOptions(show_progress=False))

    def pour(self, total: dict[str, torch.Tensor] | None, count: int, extra: int | None) -> None:
        """Load ``(S + theta_extra) / (count + 1)`` (or ``S / count``, or one model)."""
        sources: list[engine.TensorSource] = []
        if total is not None:
            sources.append(engine.StateDictSource(total))
        if extra is not None:
            sources.append(self.ckpts[extra])
        n = count + (extra is not None)
        self._run(sources, lambda ts: sum(ts[1:], ts[0]) / n, engine.ModuleSink(self.module))

    def taste(self, total: dict[str, torch.Tensor] | None, count: int, extra: int | None) -> float:
        self.pour(total, count, extra)
        return self.score(self.module)

    def add(self, total: dict[str, torch.Tensor] | None, index: int) -> dict[str, torch.Tensor]:
        """``S + theta_index`` in float32."""
        sink = engine.StateDictSink()
        sources: list[engine.TensorSource] = [self.ckpts[index]]
        if total is not None:
            sources.insert(0, engine.StateDictSource(total))
        self._run(sources, lambda ts: sum(ts[1:], ts[0]), sink, torch.float32)
        return sink.tensors

    def mean(self, total: dict[str, torch.Tensor], count: int) -> dict[str, torch.Tensor]:
        return {n: (total[n] / count).to(info.dtype) for n, info in self.infos.items()}

    def close(self) -> None:
        for ckpt in self.ckpts:
            ckpt.close()


def greedy_soup(
    models: Sequence[str],
    module: nn.Module,
    score: Score,
    *,
    metric: str = "score",
    on_step: Callable[[SoupStep], None] | None = None,
) -> SoupResult:
    """Greedy soup of ``models`` (homologous checkpoints), scored by ``score`` on ``module``.

    ``score`` must grow with quality (negate a loss). ``module`` is any model of the same
    architecture; its weights are overwritten.
    """
    kitchen = _Kitchen(_unique(models), module, score)
    try:
        alone = {kitchen.names[i]: kitchen.taste(None, 0, i) for i in range(len(kitchen.names))}
        order = sorted(range(len(kitchen.names)), key=lambda i: -alone[kitchen.names[i]])
        first = kitchen.names[order[0]]
        total, kept, best = kitchen.add(None, order[0]), [first], alone[first]
        steps = [SoupStep(1, first, best, best, True, 1)]
        _report(steps[-1], on_step)
        for step, i in enumerate(order[1:], start=2):
            name = kitchen.names[i]
            tasted = kitchen.taste(total, len(kept), i)
            accepted = tasted > best  # strictly better on the held-out split
            if accepted:
                total, best = kitchen.add(total, i), tasted
                kept.append(name)
            steps.append(SoupStep(step, name, alone[name], tasted, accepted, len(kept)))
            _report(steps[-1], on_step)
        kitchen.pour(total, len(kept), None)
        return SoupResult(
            "greedy", metric, alone, steps, kept, best, kitchen.mean(total, len(kept))
        )
    finally:
        kitchen.close()


def uniform_soup(
    models: Sequence[str],
    module: nn.Module,
    score: Score,
    *,
    metric: str = "score",
    on_step: Callable[[SoupStep], None] | None = None,
) -> SoupResult:
    """The average of all ``models``, scored (each model is scored alone too, for reference)."""
    kitchen = _Kitchen(_unique(models), module, score)
    try:
        alone = {kitchen.names[i]: kitchen.taste(None, 0, i) for i in range(len(kitchen.names))}
        total = kitchen.add(None, 0)
        for i in range(1, len(kitchen.names)):
            total = kitchen.add(total, i)
        n = len(kitchen.names)
        soup_score = kitchen.taste(total, n, None)
        steps = [
            SoupStep(i + 1, name, alone[name], soup_score, True, n)
            for i, name in enumerate(kitchen.names)
        ]
        for s in steps:
            _report(s, on_step)
        return SoupResult(
            "uniform", metric, alone, steps, kitchen.names, soup_score, kitchen.mean(total, n)
        )
    finally:
        kitchen.close()


def _report(step: SoupStep, on_step: Callable[[SoupStep], None] | None) -> None:
    verdict = "kept" if step.accepted else "dropped"
    log.info("soup step %d: %s -> %.4f (%s)", step.step, step.model, step.soup_score, verdict)
    if on_step is not None:
        on_step(step)


def _unique(models: Sequence[str]) -> list[str]:
    if not models:
        raise ConfigError("a soup needs at least one model; list the fine-tunes to average")
    seen = [str(m) for m in models]
    dupes = sorted({m for m in seen if seen.count(m) > 1})
    if dupes:
        raise ConfigError(f"model {dupes[0]} is listed twice; list each ingredient once")
    return seen


def task_soup(
    models: Sequence[str],
    task: str,
    *,
    greedy: bool = True,
    split: str = "fitness",
    limit: int | None = None,
    metric: str | None = None,
    device: str = "cpu",
    on_step: Callable[[SoupStep], None] | None = None,
) -> SoupResult:
    """A soup scored on ``split`` of an evaluation ``task`` (a zoo task name or task YAML)."""
    from mergelab.eval import TaskEvaluator, load_model, load_task

    loaded = load_task(task)
    name = metric or loaded.primary
    if name not in loaded.metric_names:
        raise ConfigError(
            f"task {loaded.name} has no metric {name!r}; "
            f"choose one of {', '.join(loaded.metric_names)}"
        )
    loaded.split_path(split)
    models = _unique(models)
    module, tokenizer = load_model(models[0], device=device)
    evaluator = TaskEvaluator(loaded, tokenizer, split=split, limit=limit, device=device)
    sign = -1.0 if name in LOWER_IS_BETTER else 1.0

    def score(model: nn.Module) -> float:
        return sign * evaluator(model)[name]

    make = greedy_soup if greedy else uniform_soup
    signed_step = None if on_step is None else (lambda s: on_step(_unsigned(s, sign)))
    result = make(models, module, score, metric=name, on_step=signed_step)
    result.scores = {m: sign * v for m, v in result.scores.items()}
    result.steps = [_unsigned(s, sign) for s in result.steps]
    result.score *= sign
    return result


def _unsigned(step: SoupStep, sign: float) -> SoupStep:
    return SoupStep(
        step.step,
        step.model,
        sign * step.model_score,
        sign * step.soup_score,
        step.accepted,
        step.size,
    )


def save_soup(result: SoupResult, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the soup as a model folder (config and tokenizer of its first ingredient)."""
    dest = Path(out)
    source = Checkpoint.open(result.ingredients[0])
    try:
        check_output_location(dest, [Path(source.path)], overwrite=overwrite)
        with atomic_output_dir(dest, overwrite=overwrite) as tmp:
            entries = [TensorInfo(n, tuple(t.shape), t.dtype) for n, t in result.tensors.items()]
            writer = ShardedSafetensorsWriter(
                tmp, entries, max_shard_bytes=None, metadata={"format": "pt"}
            )
            try:
                for name, tensor in result.tensors.items():
                    writer.write(name, tensor)
                writer.finish()
            except BaseException:
                writer.abort()
                raise
            copy_support_files(source.path, tmp)
            lines = [
                f"A {result.kind} model soup (Wortsman et al. 2022, "
                "https://arxiv.org/abs/2203.05482) made with mergelab.",
                "",
                f"{result.metric}: {result.score:.4f}",
                "",
                "| ingredient | alone |",
                "|---|---|",
                *(f"| `{m}` | {result.scores[m]:.4f} |" for m in result.ingredients),
            ]
            write_card(tmp, f"{result.kind.capitalize()} soup", lines, result.record(), RECORD_FILE)
        return dest
    finally:
        source.close()
