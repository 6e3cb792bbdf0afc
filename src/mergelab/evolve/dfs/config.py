"""The ``dfs:`` block of an evolve config: the data-flow-space search (strict pydantic).

Akiba et al., "Evolutionary Optimization of Model Merging Recipes" (arXiv 2403.13187,
Sec. 3.2): the layers of models A, B, ... laid out model by model and repeated ``repeats``
times form T = M x r slots (M = all their layers); each slot is on or off, and the hidden
state passed between consecutive path layers is scaled. Our defaults scale the paper's
setup (M = 64, r = 3, population 128) down to small models: ``repeats: 2``, a path of at
most twice A's depth, optuna's CMA-ES population. :mod:`mergelab.evolve.dfs.checks` checks
the block against the models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scaling = Literal["matrix", "slot", "none"]


class DfsSpec(BaseModel):
    """What a data-flow search explores; every field is explained in docs/evolve.md."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(min_length=1)
    repeats: int = Field(default=2, ge=1)
    scaling: Scaling = "matrix"
    scale_range: tuple[float, float] = (0.5, 1.5)
    fix_ends: bool = True
    max_length: int | None = Field(default=None, ge=1)
    layer_budget: int | None = Field(default=None, ge=1)
    init_probability: float = Field(default=0.9, ge=0.5, le=0.99)

    @model_validator(mode="after")
    def _consistent(self) -> DfsSpec:
        problems = []
        if len(set(self.models)) != len(self.models):
            problems.append("dfs.models lists a model twice; name each model once")
        low, high = self.scale_range
        if not 0 < low < high:
            problems.append(
                f"dfs.scale_range [{low:g}, {high:g}] is not a range of positive scales; give "
                "[low, high] with 0 < low < high (the export divides weights by the scales)"
            )
        ends = 2 if self.fix_ends else 1
        for key in ("max_length", "layer_budget"):
            value = getattr(self, key)
            if value is not None and value < ends:
                problems.append(
                    f"dfs.{key} {value} leaves no room for A's fixed first and last layers; "
                    "use 2 or more (or fix_ends: false)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self
