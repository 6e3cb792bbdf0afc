"""Merging candidate recipes straight into one live model: the in-memory trial.

The sources are opened once and cached in memory (:class:`CachedSource`); the model is built
once, from the config a merge of these sources would write. The jobs are planned once, by
the engine's planner, for a probe recipe of the genome (all the engine's checks run there).
A trial only swaps the evolved values into those jobs' parameters (every gene lands in the
jobs of its group; the other parameters stay as the planner resolved them) and runs the one
engine loop with a :class:`~mergelab.engine.ModuleSink`, which copies every merged tensor
into the live model: no disk I/O, no re-planning. The engine casts to the output dtype
before the sink, so the live model holds exactly what ``mergelab merge`` writes for the
candidate's recipe. At start-up the swapped jobs of the probe are checked against the
planner's jobs for the same recipe, value for value.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from mergelab import engine
from mergelab.errors import PlanError, SearchError
from mergelab.evolve.cached_source import CachedSource
from mergelab.evolve.genome import Genome
from mergelab.evolve.groups import group_of
from mergelab.evolve.space import Candidate
from mergelab.merge import plan_merge
from mergelab.methods import get_method
from mergelab.output_files import output_config
from mergelab.plan import Plan, TensorJob
from mergelab.units import format_size

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Slot:
    """Where a job's evolved values come from: its group and its inputs' source indices."""

    group: int
    models: tuple[int, ...]


class LiveMerge:
    """One live model that every candidate of ``genome`` is merged into (a LiveModel)."""

    def __init__(self, genome: Genome, *, threads: int | None = None) -> None:
        self.genome = genome
        self.threads = threads
        probe = genome.decode(genome.spread())
        plan = plan_merge(probe.recipe)
        try:
            self.refs = list(plan.refs)
            self.sources = [CachedSource(ckpt) for ckpt in plan.checkpoints]
            for source in self.sources:
                source.preload()
            self._model = build_model(plan)
            self._tokenizer = _tokenizer(plan)
            _check_covered(self._model, plan)
            self._template = list(plan.jobs)
            self._seed = plan.seed
        finally:
            plan.close()
        models = genome.config.models
        self._slots = []
        for job in self._template:
            group = group_of(job.name, genome.groups)
            if group is None:
                raise SearchError(f"tensor {job.name} is in no layer group of the genome")
            inputs = tuple(models.index(self.refs[ref.model]) for ref in job.inputs)
            self._slots.append(_Slot(group, inputs))
        method = get_method(genome.config.ps_method)
        self._kwargs = {p.name: p.kwarg for p in method.params}
        self._per_model = {p.name for p in method.params if p.per_model}
        if self.jobs(probe) != self._template:
            raise SearchError(
                "the in-memory jobs differ from the planner's for the same recipe; this is a "
                "mergelab bug, please report it with your config"
            )
        log.debug(
            "loaded %d sources into memory (%s)",
            len(self.sources),
            format_size(sum(s.nbytes for s in self.sources)),
        )

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self._tokenizer

    def jobs(self, candidate: Candidate) -> list[TensorJob]:
        """The planned jobs with ``candidate``'s values in their evolved parameters."""
        values = self.genome.values(candidate.params)
        evolved = {g.param for g in self.genome.genes}
        out = []
        for job, slot in zip(self._template, self._slots, strict=True):
            params: dict[str, Any] = dict(job.params)
            for name in evolved:
                if name in self._per_model:
                    params[self._kwargs[name]] = [
                        values[self.genome.gene(name, m, slot.group).name] for m in slot.models
                    ]
                else:
                    params[self._kwargs[name]] = values[
                        self.genome.gene(name, None, slot.group).name
                    ]
            out.append(dataclasses.replace(job, params=params))
        return out

    def build(self, candidate: Candidate) -> nn.Module:
        """Merge ``candidate`` into the live model and return it."""
        options = engine.EngineOptions(
            threads=self.threads, seed=self._seed, show_progress=False, inline=True
        )
        sink = engine.ModuleSink(self._model)
        engine.run(self.jobs(candidate), self.sources, sink, options, model_names=self.refs)
        return self._model

    def close(self) -> None:
        self.sources = []


def build_model(plan: Plan) -> nn.Module:
    """A randomly initialised causal LM with the merged output's config and dtype."""
    config = output_config(plan)
    model_type = config.pop("model_type", None)
    if not isinstance(model_type, str):
        raise PlanError(
            f"{plan.refs[plan.config_source]} has no model_type in config.json; evolution "
            "builds the model from it, so use a transformers model folder"
        )
    hf_config = AutoConfig.for_model(model_type, **config)
    dtype = plan.jobs[0].dtype if plan.jobs else torch.float32
    model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
    return model.eval()


def _tokenizer(plan: Plan) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(str(plan.checkpoints[plan.tokenizer_source].path))
    if plan.vocab is not None and plan.vocab.added_tokens:
        tokenizer.add_tokens(list(plan.vocab.added_tokens))
    return tokenizer


def _check_covered(model: nn.Module, plan: Plan) -> None:
    """PlanError unless the jobs write every tensor of the model and nothing else."""
    state = model.state_dict()
    written = {job.name for job in plan.jobs}
    unknown = sorted(written - set(state))
    covered = {state[name].data_ptr() for name in written if name in state}
    missing = sorted(n for n in state if n not in written and state[n].data_ptr() not in covered)
    if unknown or missing:
        what = f"no tensor {unknown[0]}" if unknown else f"tensor {missing[0]} is never merged"
        raise PlanError(
            f"the merged model does not match the architecture in its config.json ({what}); "
            "evolution needs checkpoints that transformers loads without missing weights"
        )
