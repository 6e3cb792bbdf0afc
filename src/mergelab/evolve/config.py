"""The ``mergelab evolve`` config: strict pydantic models of the YAML file.

The search follows Akiba et al., "Evolutionary Optimization of Model Merging Recipes"
(arXiv 2403.13187). ``space`` picks what evolves: ``ps`` (parameter space: a merge method,
the sources and base, the evolved parameters with their ranges and granularity), ``dfs``
(data-flow space: the ``dfs:`` block, :mod:`mergelab.evolve.dfs.config`) or ``ps+dfs``
(both, one after the other). Then one or several objectives, a budget and a sampler. This
module checks the file's shape only; :mod:`mergelab.evolve.checks` checks it against the
models and tasks.

Paths (models, task files) are relative to the current directory and are made absolute on
loading, so worker processes and written recipes do not depend on where they run.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mergelab.errors import ConfigError
from mergelab.evolve.dfs.config import DfsSpec
from mergelab.recipe import load_config

SpaceName = Literal["ps", "dfs", "ps+dfs"]
SamplerName = Literal["cmaes", "nsga2", "tpe"]
Direction = Literal["maximize", "minimize"]

_GRANULARITY = re.compile(r"^(global|layer|group:(?P<k>[1-9]\d*))$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenomeSpec(_Strict):
    """What evolves: each parameter's range, per model, per layer group."""

    granularity: str = "layer"
    parameters: dict[str, tuple[float, float]] = Field(min_length=1)
    seed_sources: bool = False

    @field_validator("granularity")
    @classmethod
    def _granularity(cls, value: str) -> str:
        if not _GRANULARITY.match(value):
            raise ValueError(
                f"genome.granularity '{value}' is not valid; use global, layer or group:K "
                "(K a positive number of layers per group)"
            )
        return value

    @field_validator("parameters")
    @classmethod
    def _ranges(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (lo, hi) in value.items():
            if not lo < hi:
                raise ValueError(
                    f"genome.parameters.{name} range [{lo:g}, {hi:g}] is empty; give [low, high] "
                    "with low < high (fixed values go under 'parameters')"
                )
        return value

    @property
    def group_size(self) -> int | None:
        """Layers per group: None for global, 1 for layer, K for group:K."""
        if self.granularity == "global":
            return None
        if self.granularity == "layer":
            return 1
        return int(self.granularity.removeprefix("group:"))


class ObjectiveSpec(_Strict):
    """One objective: a task's metric on a split (or a named Python evaluator), and a direction."""

    task: str | None = None
    evaluator: str | None = None
    metric: str | None = None
    split: str = "fitness"
    direction: Direction = "maximize"
    limit: int | None = Field(default=None, ge=1)
    name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ObjectiveSpec:
        if (self.task is None) == (self.evaluator is None):
            raise ValueError(
                "each objective needs exactly one of 'task' (a zoo task or task .yaml) or "
                "'evaluator' (a name passed to evolve(evaluators=...))"
            )
        return self

    @property
    def label(self) -> str:
        """The objective's name in outputs: ``name``, else ``task:metric``."""
        if self.name:
            return self.name
        source = self.task if self.task is not None else self.evaluator
        return f"{Path(str(source)).stem}:{self.metric or 'primary'}"


class BudgetSpec(_Strict):
    """When the search stops: a trial count, a wall time for this run, or both."""

    trials: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _something(self) -> BudgetSpec:
        if self.trials is None and self.seconds is None:
            raise ValueError("budget needs 'trials' (a positive count) or 'seconds' (or both)")
        return self


class EvolveConfig(_Strict):
    """A whole ``mergelab evolve`` config file."""

    space: SpaceName = "ps"
    merge_method: str | None = None
    base_model: str | None = None
    models: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    dtype: Literal["float32", "float16", "bfloat16", "float64"] | None = None
    genome: GenomeSpec | None = None
    dfs: DfsSpec | None = None
    objectives: list[ObjectiveSpec] = Field(min_length=1)
    budget: BudgetSpec = Field(default_factory=lambda: BudgetSpec(trials=100))
    sampler: SamplerName | None = None
    population: int | None = Field(default=None, ge=2)
    seed: int = 0
    test_split: str | None = "test"
    max_consecutive_failures: int = Field(default=10, ge=1)
    study_name: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EvolveConfig:
        problems = self._space_problems()
        if len(set(self.models)) != len(self.models):
            problems.append("'models' lists a model twice; name each source once")
        if self.base_model is not None and self.base_model in self.models:
            problems.append(
                f"base_model {self.base_model} is also in 'models'; list only the other sources"
            )
        labels = [o.label for o in self.objectives]
        if len(set(labels)) != len(labels):
            problems.append("two objectives have the same name; give them distinct 'name's")
        if self.sampler == "cmaes" and len(self.objectives) > 1:
            problems.append(
                "sampler cmaes optimises one objective; use nsga2 (default for several) or tpe"
            )
        evolved = self.genome.parameters if self.genome is not None else {}
        both = sorted(set(self.parameters) & set(evolved))
        if both:
            problems.append(
                f"{', '.join(both)} is both fixed ('parameters') and evolved "
                "('genome.parameters'); keep it in one place"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _space_problems(self) -> list[str]:
        """The keys ``space`` needs that are missing, and those it does not use."""
        problems = []
        if self.space != "dfs":
            missing = [
                key
                for key, value in (
                    ("merge_method", self.merge_method),
                    ("models", self.models),
                    ("genome", self.genome),
                )
                if not value
            ]
            if missing:
                problems.append(
                    f"space {self.space} needs {', '.join(missing)} (the parameter-space search)"
                )
        else:
            given = [
                key
                for key, value in (
                    ("merge_method", self.merge_method),
                    ("base_model", self.base_model),
                    ("models", self.models),
                    ("parameters", self.parameters),
                    ("genome", self.genome),
                )
                if value
            ]
            if given:
                problems.append(
                    f"space dfs does not use {', '.join(given)} (its models are dfs.models); "
                    "remove them, or use space: ps+dfs to run a parameter-space search first"
                )
        if self.space == "ps" and self.dfs is not None:
            problems.append("'dfs' is for space dfs or ps+dfs; remove it or set the space")
        if self.space != "ps" and self.dfs is None:
            problems.append(f"space {self.space} needs a 'dfs' block (at least dfs.models)")
        return problems

    @property
    def ps_method(self) -> str:
        """The merge method of the parameter-space search (spaces ps and ps+dfs)."""
        if self.merge_method is None:
            raise ConfigError(f"space {self.space} has no merge_method; add one")
        return self.merge_method

    @property
    def ps_genome(self) -> GenomeSpec:
        """The genome of the parameter-space search (spaces ps and ps+dfs)."""
        if self.genome is None:
            raise ConfigError(f"space {self.space} has no genome; add one")
        return self.genome

    @property
    def dfs_spec(self) -> DfsSpec:
        """The data-flow-space block (spaces dfs and ps+dfs)."""
        if self.dfs is None:
            raise ConfigError(f"space {self.space} has no 'dfs' block; add one")
        return self.dfs

    def source_models(self) -> list[str]:
        """Every input model: the PS base and sources, then the DFS models, without repeats."""
        refs = [self.base_model] if self.base_model else []
        refs += self.models
        if self.dfs is not None:
            refs += self.dfs.models
        return list(dict.fromkeys(refs))

    @property
    def sampler_name(self) -> SamplerName:
        """The sampler: as configured, else cmaes for one objective and nsga2 for several."""
        if self.sampler is not None:
            return self.sampler
        return "cmaes" if len(self.objectives) == 1 else "nsga2"

    def fingerprint(self) -> str:
        """A hash of everything that defines the search (not the budget or test settings).

        Resuming a study with a different fingerprint is refused.
        """
        return hashlib.sha256(_canonical(self.search_definition()).encode()).hexdigest()[:16]

    def search_definition(self) -> dict[str, Any]:
        """The fields a resumed study must share with the one it continues."""
        data = self.model_dump(
            mode="json",
            exclude={"budget", "test_split", "max_consecutive_failures", "study_name"},
        )
        data["sampler"] = self.sampler_name
        return data

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        data["test_split"] = self.test_split  # null means "no test evaluation": keep it
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def load_evolve_config(source: EvolveConfig | dict[str, Any] | str | Path) -> EvolveConfig:
    """A config from an object, a dict, a YAML file path or YAML text; local paths made absolute."""
    config = load_config(
        source,
        EvolveConfig,
        name="evolve config",
        file_kind="evolve config",
        needs="merge_method, models and genome (or space: dfs and a dfs block)",
    )
    return _absolute_paths(config)


def _absolute_paths(config: EvolveConfig) -> EvolveConfig:
    """Local model folders and task files as absolute paths; other references unchanged."""
    objectives = [
        o.model_copy(update={"task": _absolute(o.task)}) if o.task is not None else o
        for o in config.objectives
    ]
    dfs = config.dfs
    if dfs is not None:
        dfs = dfs.model_copy(update={"models": [_absolute(m) for m in dfs.models]})
    return config.model_copy(
        update={
            "base_model": _absolute(config.base_model) if config.base_model else None,
            "models": [_absolute(m) for m in config.models],
            "dfs": dfs,
            "objectives": objectives,
        }
    )


def _absolute(ref: str) -> str:
    path = Path(ref).expanduser()
    if path.exists():
        return str(path.resolve())
    if "+" in ref:  # model+adapter: make each existing part absolute
        parts = ref.split("+")
        if all(Path(p).expanduser().exists() for p in parts):
            return "+".join(str(Path(p).expanduser().resolve()) for p in parts)
    return ref
