"""Evolution speed on the toy zoo: one in-memory trial, a 300-trial CMA-ES run, workers 1 vs 2,
and one data-flow (DFS) trial.

The search is the issue's example: DARE-TIES over J, M1, M2 with the base, a per-layer genome
(weight and density per source per group: embeddings, each layer, head), fitness J-arith
strict on 200 fitness items. Reports

- one trial: the in-memory merge and the scoring of 200 items, median over ``--repeat``,
  wall and CPU seconds with ``--threads`` torch threads (default 1: tiny models score
  fastest on one thread). CPU time is what a trial costs on an idle core; the load average
  is recorded because a busy machine inflates wall times;
- a full CMA-ES run of ``--trials`` trials (wall time, including start-up and outputs);
- the same search with ``--workers 1`` and ``--workers 2`` over ``--worker-trials`` trials;
- one DFS trial over ``--dfs A B`` (zoo model names, default m1 j): building the path model
  of a random genome (path of at most 2x A's depth, matrix scaling) and scoring the same 200
  items, median over ``--repeat`` (``--dfs-only`` measures only this), and a ``--trials``
  DFS run over those models.

    python benchmarks/evolve_speed.py [--zoo zoo] [--work /tmp/evolve-bench] [--trials 300]

``--zoo`` is a built zoo (built there first when it holds no models).

Results are printed and written to ``WORK/evolve_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from mergelab.evolve import evolve, load_evolve_config
from mergelab.evolve.checks import check_config
from mergelab.evolve.dfs.space import DfsSpace
from mergelab.evolve.objectives import Objectives
from mergelab.evolve.parameter_space import ParameterSpace
from mergelab.zoo import build_zoo


def issue_config(zoo: Path, trials: int) -> dict[str, Any]:
    return {
        "merge_method": "dare_ties",
        "base_model": str(zoo / "base"),
        "models": [str(zoo / "j"), str(zoo / "m1"), str(zoo / "m2")],
        "genome": {
            "granularity": "layer",
            "parameters": {"weight": [0.0, 1.0], "density": [0.1, 1.0]},
        },
        "objectives": [{"task": "j-arith", "metric": "strict", "split": "fitness", "limit": 200}],
        "budget": {"trials": trials},
        "sampler": "cmaes",
        "seed": 0,
    }


def one_trial(zoo: Path, repeat: int) -> dict[str, float]:
    """Median seconds of the merge, the scoring and both, over ``repeat`` random genomes."""
    config = check_config(load_evolve_config(issue_config(zoo, 1)))
    space = ParameterSpace(config)
    live = space.open_live(None)
    objectives = Objectives(config.objectives, live.tokenizer)
    rng = random.Random(0)
    merges, evals, cpu = [], [], []
    for _ in range(repeat):
        candidate = space.decode({k: rng.random() for k in space.distributions()})
        start, start_cpu = time.perf_counter(), time.process_time()
        model = live.build(candidate)
        merged = time.perf_counter()
        objectives(model)
        merges.append(merged - start)
        evals.append(time.perf_counter() - merged)
        cpu.append(time.process_time() - start_cpu)
    return {
        "genes": len(space.distributions()),
        "items": objectives.items(),
        "merge_s": statistics.median(merges),
        "eval_s": statistics.median(evals),
        "trial_s": statistics.median(m + e for m, e in zip(merges, evals, strict=True)),
        # CPU seconds of this process per trial: the wall time on an otherwise idle core
        "trial_cpu_s": statistics.median(cpu),
        "load_average": os.getloadavg()[0],
    }


def dfs_config(zoo: Path, models: list[str]) -> dict[str, Any]:
    config = issue_config(zoo, 1)
    return {
        "space": "dfs",
        "dfs": {"models": [str(zoo / m) for m in models]},
        "objectives": config["objectives"],
        "seed": 0,
    }


def one_dfs_trial(zoo: Path, models: list[str], repeat: int) -> dict[str, Any]:
    """Median seconds of building a random path and scoring it, over ``repeat`` genomes."""
    config = check_config(load_evolve_config(dfs_config(zoo, models)))
    space = DfsSpace(config)
    live = space.open_live(None)
    objectives = Objectives(config.objectives, live.tokenizer)
    rng = random.Random(0)
    builds, evals, cpu, lengths = [], [], [], []
    for _ in range(repeat):
        candidate = space.decode({k: rng.random() for k in space.distributions()})
        start, start_cpu = time.perf_counter(), time.process_time()
        model = live.build(candidate)
        built = time.perf_counter()
        objectives(model)
        builds.append(built - start)
        evals.append(time.perf_counter() - built)
        cpu.append(time.process_time() - start_cpu)
        lengths.append(len(space.genome.decode(candidate.params).steps))
    return {
        "models": models,
        "genes": len(space.distributions()),
        "items": objectives.items(),
        "path_layers_median": statistics.median(lengths),
        "build_s": statistics.median(builds),
        "eval_s": statistics.median(evals),
        "trial_s": statistics.median(b + e for b, e in zip(builds, evals, strict=True)),
        "trial_cpu_s": statistics.median(cpu),
        "load_average": os.getloadavg()[0],
    }


def full_run(
    config: dict[str, Any], out: Path, trials: int, workers: int, threads: int
) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = evolve(config, out, trials=trials, workers=workers, threads=threads)
    wall = time.perf_counter() - start
    summary = result.summary
    return {
        "trials": trials,
        "workers": workers,
        "wall_s": wall,
        "search_s": summary["timings"]["search_seconds"],
        "best_fitness": summary["chosen"]["fitness"],
        "test": summary["chosen"]["test"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, default=Path("zoo"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/evolve-bench"))
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--worker-trials", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--dfs", nargs="+", default=["m1", "j"], help="DFS models, A first")
    parser.add_argument("--dfs-only", action="store_true", help="measure one DFS trial only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    zoo = args.zoo if (args.zoo / "base" / "config.json").is_file() else build_zoo(args.zoo).root
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"torch_threads": args.threads}
    results["one_dfs_trial"] = one_dfs_trial(zoo, args.dfs, args.repeat)
    print("one DFS trial:", json.dumps(results["one_dfs_trial"]))
    if args.dfs_only:
        (args.work / "evolve_speed.json").write_text(json.dumps(results, indent=2) + "\n")
        return
    results["one_trial"] = one_trial(zoo, args.repeat)
    print("one trial:", json.dumps(results["one_trial"]))
    config = issue_config(zoo, args.trials)
    results["cmaes_run"] = full_run(config, args.work / "cmaes", args.trials, 1, args.threads)
    print("CMA-ES run:", json.dumps(results["cmaes_run"]))
    dfs = dfs_config(zoo, args.dfs)
    results["dfs_run"] = full_run(dfs, args.work / "dfs", args.trials, 1, args.threads)
    print("DFS run:", json.dumps(results["dfs_run"]))
    results["workers"] = [
        full_run(config, args.work / f"workers-{n}", args.worker_trials, n, args.threads)
        for n in (1, 2)
    ]
    for row in results["workers"]:
        wall, search = row["wall_s"], row["search_s"]
        print(f"workers {row['workers']}: {wall:.1f} s wall, {search:.1f} s search")
    (args.work / "evolve_speed.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
