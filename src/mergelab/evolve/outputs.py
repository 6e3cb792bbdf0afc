"""What a search leaves in OUT_DIR once its loop has stopped.

- one objective: ``best_recipe.yml``, the best trial as a standard ``mergelab merge`` recipe;
- several: ``pareto/<k>.yml`` per front point, ``pareto.json`` (fitness, test scores, knee)
  and ``chosen_recipe.yml`` (the knee);
- ``best_model/`` with ``save_best``: the chosen recipe merged to disk;
- ``plots/``: ``history.png``, ``pareto.png`` (several objectives) and the space's picture
  of the chosen candidate (``genome.png`` for the parameter space, ``path.png`` for DFS);
- ``summary.json``: the space, trial counts, best fitness, chosen recipe(s) with what the
  space says about the chosen one, test-split scores of the chosen model(s) and of the
  sources, timings and warnings.

Everything is computed from the study, so it covers every run (and machine) of the search.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from mergelab.evolve.config import EvolveConfig
from mergelab.evolve.holdout import evaluate_candidates, evaluate_sources
from mergelab.evolve.pareto import knee_index, pareto_front
from mergelab.evolve.plots import plot_history, plot_pareto
from mergelab.evolve.search import SearchStats
from mergelab.evolve.space import Candidate, SearchSpace
from mergelab.evolve.storage import ERROR_ATTR, INTERRUPTED_ATTR, counts_toward_budget

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class RunInfo:
    """Facts about this run that the study does not hold."""

    stats: SearchStats
    storage: str
    study_name: str
    warnings: list[str] = field(default_factory=list)


def write_outputs(
    study: optuna.Study,
    space: SearchSpace,
    config: EvolveConfig,
    out_dir: Path,
    run: RunInfo,
    *,
    save_best: bool,
) -> dict[str, Any]:
    """Write the files of the module docstring; return the summary (also in summary.json)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    labels = [o.label for o in config.objectives]
    maximize = [o.direction == "maximize" for o in config.objectives]
    summary: dict[str, Any] = {
        "space": config.space,
        "config": "evolve_config.yml",
        "study": {"name": run.study_name, "storage": run.storage},
        "objectives": [
            o.model_dump(exclude_none=True) | {"name": o.label} for o in config.objectives
        ],
        "trials": _counts(trials, run.stats),
        "timings": _timings(run.stats),
        "warnings": list(run.warnings),
    }
    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)
    if complete:
        plot_history(
            [t.number for t in complete],
            [list(t.values) for t in complete],
            labels,
            maximize,
            plots / "history.png",
        )
    if not complete:
        log.warning("no trial completed; nothing to choose")
        summary["chosen"] = None
        _write_summary(out_dir, summary)
        return summary
    if len(labels) == 1:
        points = [study.best_trial]
        knee = 0
    else:
        points = pareto_front(study)
        knee = knee_index([list(t.values) for t in points], maximize)
    candidates = [space.decode(t.params) for t in points]
    live = space.open_live(None)
    try:
        test = evaluate_candidates(config, live, candidates)
        details = space.describe(candidates[knee], live)
    finally:
        live.close()
    chosen_name = "best_recipe.yml" if len(labels) == 1 else "chosen_recipe.yml"
    space.write_recipe(candidates[knee], out_dir / chosen_name)
    if len(labels) > 1:
        summary["pareto"] = _write_front(out_dir, space, points, candidates, test, labels, knee)
        plot_pareto(
            [list(t.values) for t in complete],
            [list(t.values) for t in points],
            knee,
            labels,
            plots / "pareto.png",
        )
    chosen = candidates[knee]
    space.plot(chosen, plots, f"trial {points[knee].number}")
    model_dir = None
    if save_best:
        space.materialize(chosen, out_dir / "best_model")
        model_dir = "best_model"
    summary["chosen"] = {
        "trial": points[knee].number,
        "fitness": dict(zip(labels, points[knee].values, strict=True)),
        "recipe": chosen_name,
        "test": test[knee],
        "model": model_dir,
        **details,
    }
    summary["sources"] = evaluate_sources(config)
    summary["plots"] = sorted(str(p.relative_to(out_dir)) for p in plots.glob("*.png"))
    _write_summary(out_dir, summary)
    return summary


def _write_front(
    out_dir: Path,
    space: SearchSpace,
    points: list[FrozenTrial],
    candidates: list[Candidate],
    test: list[dict[str, dict[str, float]]],
    labels: list[str],
    knee: int,
) -> dict[str, Any]:
    folder = out_dir / "pareto"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.yml"):
        old.unlink()
    entries = []
    for k, (trial, candidate) in enumerate(zip(points, candidates, strict=True)):
        space.write_recipe(candidate, folder / f"{k}.yml")
        entries.append(
            {
                "index": k,
                "trial": trial.number,
                "fitness": dict(zip(labels, trial.values, strict=True)),
                "recipe": f"pareto/{k}.yml",
                "test": test[k],
            }
        )
    front = {"knee": knee, "points": entries}
    (out_dir / "pareto.json").write_text(json.dumps(front, indent=2) + "\n", encoding="utf-8")
    return front


def _counts(trials: list[FrozenTrial], stats: SearchStats) -> dict[str, Any]:
    failed = [t for t in trials if t.state == TrialState.FAIL]
    return {
        "counted": sum(counts_toward_budget(t) for t in trials),
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "failed": sum(ERROR_ATTR in t.user_attrs for t in failed),
        "interrupted": sum(INTERRUPTED_ATTR in t.user_attrs for t in failed),
        "this_run": stats.finished,
        "failed_this_run": stats.failed,
        "stopped_by": stats.stopped_by,
    }


def _timings(stats: SearchStats) -> dict[str, float]:
    n = max(stats.finished, 1)
    return {
        "search_seconds": round(stats.seconds, 3),
        "seconds_per_trial": round(stats.seconds / n, 4),
        "mean_merge_seconds": round(stats.merge_seconds / n, 4),
        "mean_eval_seconds": round(stats.eval_seconds / n, 4),
    }


def _write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    text = json.dumps(summary, indent=2) + "\n"
    (out_dir / SUMMARY_FILE).write_text(text, encoding="utf-8")
