"""``evolve()``: the whole evolutionary merge search, start or resume, then its outputs.

Order of work: load and check the config (all problems at once), open the search space
(headers only), open or resume the study (refusing a different config), mark trials of a
dead run as interrupted, choose the sampler, start the backend (this process, N worker
processes, or Ray actors), run the ask/tell loop, and write the outputs
(:mod:`mergelab.evolve.outputs`). Running it again on the same OUT_DIR resumes. A ``ps+dfs``
config does this twice, once per stage, in sub-folders (:mod:`mergelab.evolve.stages`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from mergelab.errors import ConfigError, OutputError
from mergelab.eval import Evaluator
from mergelab.evolve.backends import Backend, InlineBackend, ProcessBackend
from mergelab.evolve.checks import check_config
from mergelab.evolve.config import EvolveConfig, load_evolve_config
from mergelab.evolve.holdout import split_overlap
from mergelab.evolve.outputs import RunInfo, write_outputs
from mergelab.evolve.samplers import make_sampler
from mergelab.evolve.search import run_search
from mergelab.evolve.spaces import open_space
from mergelab.evolve.stages import (
    DFS_DIR,
    PS_DIR,
    dfs_stage,
    ps_model,
    ps_stage,
    write_stages_summary,
)
from mergelab.evolve.storage import (
    DEFAULT_STUDY,
    JOURNAL_FILE,
    WORKER_ATTR,
    Heartbeat,
    check_out_dir_config,
    open_storage,
    open_study,
    reap_stale_trials,
    worker_id,
)
from mergelab.evolve.trial import TrialRunner, WorkerSpec

log = logging.getLogger(__name__)

BackendName = Literal["local", "ray"]


@dataclass(frozen=True)
class EvolveResult:
    """A finished (or resumed and finished) search: where it is and what it found."""

    out_dir: Path
    summary: dict[str, Any]

    @property
    def chosen_recipe(self) -> Path | None:
        chosen = self.summary.get("chosen")
        return self.out_dir / chosen["recipe"] if chosen else None


def evolve(
    config: EvolveConfig | dict[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    trials: int | None = None,
    seconds: float | None = None,
    workers: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    backend: BackendName = "local",
    address: str | None = None,
    save_best: bool = False,
    seed: int | None = None,
    threads: int = 1,
    evaluators: Mapping[str, Evaluator] | None = None,
) -> EvolveResult:
    """Search merge recipes for ``config``'s objectives; write the results into ``out_dir``.

    ``trials``, ``seconds`` and ``seed`` override the config; ``workers`` runs trials in
    parallel (processes, or Ray actors with ``backend="ray"``); ``storage`` is an optuna RDB
    URL (default: a journal file in ``out_dir``); ``threads`` is the torch threads of each
    worker (one: small models score fastest on one thread per process, so add workers to use
    more cores); ``evaluators`` are the Python evaluators that objectives name with
    ``evaluator:``. A ``ps+dfs`` config runs its two stages (:mod:`mergelab.evolve.stages`),
    each with this budget.
    """
    cfg = _with_overrides(load_evolve_config(config), trials, seconds, seed)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers} is not a positive count; use 1 or more")
    if threads < 1:
        raise ConfigError(f"--threads {threads} is not a positive count; use 1 or more")
    cfg = check_config(cfg, evaluators)
    out = _out_dir(Path(out_dir), cfg.source_models())
    check_out_dir_config(out, cfg)
    name = study_name or cfg.study_name or DEFAULT_STUDY
    run = _Run(workers, storage, backend, address, save_best, threads, dict(evaluators or {}))
    if cfg.space != "ps+dfs":
        return EvolveResult(out, _search(cfg, out, name, run))
    ps_cfg = ps_stage(cfg)
    ps = _search(ps_cfg, _stage_dir(out / PS_DIR, ps_cfg), f"{name}-ps", run)
    dfs_cfg = check_config(dfs_stage(cfg, ps_model(out, ps)), evaluators)
    dfs = _search(dfs_cfg, _stage_dir(out / DFS_DIR, dfs_cfg), f"{name}-dfs", run)
    return EvolveResult(out, write_stages_summary(out, ps, dfs))


@dataclass(frozen=True)
class _Run:
    """How this run executes trials (the command line's options, not the config's)."""

    workers: int | None
    storage: str | None
    backend: BackendName
    address: str | None
    save_best: bool
    threads: int
    evaluators: dict[str, Evaluator]


def _stage_dir(path: Path, config: EvolveConfig) -> Path:
    path.mkdir(exist_ok=True)
    check_out_dir_config(path, config)
    return path


def _search(cfg: EvolveConfig, out: Path, name: str, run: _Run) -> dict[str, Any]:
    """One search (space ps or dfs) in ``out``, started or resumed; its summary."""
    space = open_space(cfg)
    warnings = split_overlap(cfg)
    for warning in warnings:
        log.warning(warning)
    store = open_storage(run.storage, out)
    study, created = open_study(store, name, cfg)
    reap_stale_trials(study, store)
    study.sampler = make_sampler(cfg, seed=cfg.seed + len(study.trials))
    if created:
        for point in space.initial_points():
            study.enqueue_trial(point, user_attrs={WORKER_ATTR: worker_id()})
    spec = WorkerSpec(cfg, run.evaluators, run.threads)
    before = torch.get_num_threads()
    torch.set_num_threads(run.threads)  # this process: inline trials and the final evaluations
    try:
        runner = _backend(spec, run.backend, run.workers, run.address)
        heartbeat = Heartbeat(store, study)
        try:
            stats = run_search(
                study,
                space,
                runner,
                budget=cfg.budget,
                max_consecutive_failures=cfg.max_consecutive_failures,
                heartbeat=heartbeat,
            )
        finally:
            heartbeat.close()
            runner.close()
        where = run.storage or str(out / JOURNAL_FILE)
        info = RunInfo(stats, where, name, warnings)
        return write_outputs(study, space, cfg, out, info, save_best=run.save_best)
    finally:
        torch.set_num_threads(before)


def _with_overrides(
    config: EvolveConfig, trials: int | None, seconds: float | None, seed: int | None
) -> EvolveConfig:
    budget = config.budget
    if trials is not None or seconds is not None:
        if (trials is not None and trials < 1) or (seconds is not None and seconds <= 0):
            raise ConfigError("--trials and --seconds must be positive; give a budget above 0")
        budget = budget.model_copy(
            update={k: v for k, v in (("trials", trials), ("seconds", seconds)) if v is not None}
        )
    update: dict[str, Any] = {"budget": budget}
    if seed is not None:
        update["seed"] = seed
    return config.model_copy(update=update)


def _out_dir(path: Path, models: list[str]) -> Path:
    if path.exists() and not path.is_dir():
        raise OutputError(f"OUT_DIR {path} is a file; give a folder for the search's outputs")
    target = path.expanduser().resolve()
    for ref in models:
        folder = Path(ref).expanduser()
        if ref and folder.is_dir() and (target == folder or folder in target.parents):
            raise OutputError(
                f"OUT_DIR {path} is inside the input model {ref}; choose a folder outside it"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create OUT_DIR {path}: {exc.strerror or exc}; choose another folder"
        ) from None
    return path


def _backend(
    spec: WorkerSpec, backend: BackendName, workers: int | None, address: str | None
) -> Backend:
    if backend == "ray":
        from mergelab.evolve.ray_backend import RayBackend

        return RayBackend(spec, workers, address)
    if address is not None:
        raise ConfigError("--address is for --backend ray; drop it or add --backend ray")
    if (workers or 1) == 1:
        return InlineBackend(TrialRunner.open(spec))
    return ProcessBackend(spec, workers or 1)
