"""Up-front validation of an evolve config against its models, method and tasks.

Everything a search could trip over later is checked before the first trial, and every
problem is reported in one ConfigError: the merge method and the evolved parameters (known,
evolvable, ranges inside the parameter's bounds), the objectives (tasks exist, metrics exist
for the task type, splits exist, named evaluators given), the parameter-space models,
through the engine's own planner on a probe recipe (models exist, fit together, parameters
complete), and the data-flow models (:mod:`mergelab.evolve.dfs.checks`). For ps+dfs, A of
the DFS stage is the PS model, not built yet: the model whose config the PS output takes
(the base, else the first source) stands in for it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from mergelab.errors import ConfigError, MergelabError, join_problems
from mergelab.eval import Evaluator, load_task
from mergelab.evolve.config import EvolveConfig, ObjectiveSpec
from mergelab.evolve.dfs.checks import check_dfs_models
from mergelab.evolve.parameter_space import probe_recipe
from mergelab.merge import plan_merge
from mergelab.methods import MergeMethod, all_methods, get_method


def check_config(
    config: EvolveConfig, evaluators: Mapping[str, Evaluator] | None = None
) -> EvolveConfig:
    """``config`` with default metrics filled in, or ConfigError listing every problem."""
    problems: list[str] = []
    uses_ps = config.space != "dfs"
    method = _method(config.ps_method, problems) if uses_ps else None
    if method is not None:
        _check_genome(config, method, problems)
    objectives = [
        _check_objective(o, config, evaluators or {}, problems) for o in config.objectives
    ]
    if not problems and uses_ps:
        try:
            plan_merge(probe_recipe(config)).close()
        except MergelabError as exc:
            problems.append(str(exc))
    if not problems and config.space != "ps":
        problems += _check_dfs(config)
    if problems:
        raise ConfigError(join_problems("the evolve config has problems", problems))
    return config.model_copy(update={"objectives": objectives})


def _check_dfs(config: EvolveConfig) -> list[str]:
    spec = config.dfs_spec
    if config.space == "dfs":
        return check_dfs_models(spec.models, spec)
    stand_in = config.base_model or config.models[0]
    return check_dfs_models(
        [stand_in, *spec.models], spec, first=f"the PS model (its config is {stand_in}'s)"
    )


def _method(name: str, problems: list[str]) -> MergeMethod | None:
    try:
        return get_method(name)
    except KeyError:
        hint = difflib.get_close_matches(name, list(all_methods()), n=1, cutoff=0.5)
        fix = f"did you mean '{hint[0]}'?" if hint else "run `mergelab methods` to list them"
        problems.append(f"unknown merge_method '{name}'; {fix}")
        return None


def _check_genome(config: EvolveConfig, method: MergeMethod, problems: list[str]) -> None:
    for name, (lo, hi) in config.ps_genome.parameters.items():
        spec = method.param(name)
        if spec is None:
            hint = difflib.get_close_matches(name, method.param_names, n=1, cutoff=0.5)
            fix = (
                f"did you mean '{hint[0]}'?"
                if hint
                else f"it takes: {', '.join(method.param_names)}"
            )
            problems.append(
                f"genome.parameters.{name}: {method.name} has no parameter '{name}'; {fix}"
            )
            continue
        if spec.kind != "float":
            problems.append(
                f"genome.parameters.{name}: '{name}' is a {spec.kind} parameter and cannot evolve; "
                "set it under 'parameters' instead"
            )
            continue
        below = spec.low is not None and lo < spec.low
        above = spec.high is not None and hi > spec.high
        if below or above:
            bounds = f"[{'-inf' if spec.low is None else f'{spec.low:g}'}, " + (
                f"{'inf' if spec.high is None else f'{spec.high:g}'}]"
            )
            problems.append(
                f"genome.parameters.{name} range [{lo:g}, {hi:g}] leaves {name}'s bounds "
                f"{bounds}; narrow the range"
            )


def _check_objective(
    objective: ObjectiveSpec,
    config: EvolveConfig,
    evaluators: Mapping[str, Evaluator],
    problems: list[str],
) -> ObjectiveSpec:
    if objective.task is None:
        if objective.evaluator not in evaluators:
            given = ", ".join(sorted(evaluators)) or "none"
            problems.append(
                f"objective evaluator '{objective.evaluator}' was not passed to evolve() "
                f"(evaluators given: {given}); pass evaluators={{'{objective.evaluator}': ...}}"
            )
        return objective if objective.metric else objective.model_copy(update={"metric": "score"})
    try:
        task = load_task(objective.task)
    except MergelabError as exc:
        problems.append(str(exc))
        return objective
    metric = objective.metric or task.primary
    if metric not in task.metric_names:
        problems.append(
            f"objective {objective.label}: task '{task.name}' ({task.type}) has no metric "
            f"'{metric}'; choose one of {', '.join(task.metric_names)}"
        )
    for split in (objective.split, config.test_split):
        if split is not None and split not in task.splits:
            key = "split" if split == objective.split else "test_split"
            problems.append(
                f"task '{task.name}' has no split '{split}' ({key}); available: "
                f"{', '.join(sorted(task.splits))}"
            )
    return objective.model_copy(update={"metric": metric})
