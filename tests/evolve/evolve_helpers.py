"""Helpers for the evolve tests: tiny sources and synthetic evaluators with known optima.

The synthetic objective scores a live model by its squared distance to a target state dict
computed here by hand (``base + sum_i w_i (x_i - base)``, straight from the safetensors
files, not through mergelab), so a task-arithmetic genome has its optimum at the target
weights, where the score is 0. Evaluators are module-level classes so that worker
processes and Ray actors can unpickle them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tiny_models import finetune_of, random_state, save_model
from torch import nn

LAYERS = 3
NAMES = ("a", "b", "c")
TARGET = (0.3, 0.8, 0.5)

# the example config of the issue, verbatim (docs/evolve.md must show it)
ISSUE_EXAMPLE = """\
merge_method: dare_ties
base_model: zoo/base
models: [zoo/j, zoo/m1, zoo/m2]
genome:
  granularity: layer          # global | layer | group:K
  parameters: {weight: [0.0, 1.0], density: [0.1, 1.0]}
objectives:
  - {task: j-arith, metric: strict, split: fitness, direction: maximize}
budget: {trials: 300}
sampler: cmaes                # cmaes | nsga2 | tpe
seed: 0
"""


def build_sources(root: Path) -> dict[str, Path]:
    """A tiny base (3 layers) and three fine-tunes of it, saved as sharded checkpoints."""
    base = random_state(0, layers=LAYERS)
    out = {"base": save_model(root / "base", base, layers=LAYERS)}
    for i, name in enumerate(NAMES, start=1):
        out[name] = save_model(root / name, finetune_of(base, i, scale=0.1), layers=LAYERS)
    return out


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a saved model, read with safetensors directly."""
    state: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(file))
    return state


def target_state(sources: dict[str, Path], weights: tuple[float, ...]) -> dict[str, torch.Tensor]:
    """``base + sum_i w_i (x_i - base)`` by hand: the optimum of the synthetic objective."""
    base = load_state(sources["base"])
    models = [load_state(sources[n]) for n in NAMES]
    return {
        k: b + sum(w * (m[k] - b) for w, m in zip(weights, models, strict=True))
        for k, b in base.items()
    }


class Distance:
    """``{"score": -sum of squared distances to target, "pid": this process}``.

    ``sleep`` slows every call down; ``fail_every`` raises on every n-th call, ``nan_every``
    returns NaN on every n-th call, ``interrupt_at`` raises KeyboardInterrupt (Ctrl-C) on
    that call (calls counted per process); ``progress`` gets one line per finished call.
    """

    def __init__(
        self,
        target: dict[str, torch.Tensor],
        *,
        sleep: float = 0.0,
        fail_every: int = 0,
        nan_every: int = 0,
        interrupt_at: int = 0,
        progress: Path | None = None,
    ) -> None:
        self.target = target
        self.sleep = sleep
        self.fail_every = fail_every
        self.nan_every = nan_every
        self.interrupt_at = interrupt_at
        self.progress = progress
        self.calls = 0

    def __call__(self, model: nn.Module) -> dict[str, float]:
        self.calls += 1
        if self.sleep:
            time.sleep(self.sleep)
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError(f"flaky evaluator failed on call {self.calls}")
        if self.nan_every and self.calls % self.nan_every == 0:
            return {"score": float("nan"), "pid": float(os.getpid())}
        state = model.state_dict()
        distance = sum(float(((state[k] - v) ** 2).sum()) for k, v in self.target.items())
        if self.progress is not None:
            with self.progress.open("a") as handle:
                handle.write(f"{self.calls}\n")
        return {"score": -distance, "pid": float(os.getpid())}


def synthetic_config(
    sources: dict[str, Path], *, trials: int = 40, granularity: str = "global", **extra: Any
) -> dict[str, Any]:
    """Task arithmetic over a, b, c with evolved weights in [0, 1], maximising -distance."""
    config: dict[str, Any] = {
        "merge_method": "task_arithmetic",
        "base_model": str(sources["base"]),
        "models": [str(sources[n]) for n in NAMES],
        "genome": {"granularity": granularity, "parameters": {"weight": [0.0, 1.0]}},
        "objectives": [{"evaluator": "distance", "metric": "score"}],
        "budget": {"trials": trials},
        "seed": 0,
    }
    config.update(extra)
    return config


def main() -> None:
    """Run a slow synthetic search: ``python -c '...main()' SOURCES_JSON OUT_DIR TRIALS``.

    Each evaluation appends a line to ``OUT_DIR.calls``.
    """
    from mergelab.evolve import evolve

    sources = {k: Path(v) for k, v in json.loads(sys.argv[1]).items()}
    out, trials = Path(sys.argv[2]), int(sys.argv[3])
    target = target_state(sources, TARGET)
    evolve(
        synthetic_config(sources, trials=trials),
        out,
        evaluators={"distance": Distance(target, sleep=0.2, progress=Path(f"{out}.calls"))},
    )
