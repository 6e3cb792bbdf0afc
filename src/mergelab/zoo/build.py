"""Build the zoo: train every recipe, in dependency order, as parallel processes; cache it.

``build_zoo`` trains the base, then its fine-tunes, ``jobs`` processes at a time, each with
one intra-op thread, into a temporary folder next to ``out`` that is renamed into place only
when every model is written. A manifest (``zoo.json``: seed, world version, kernels and,
per model, its recipe, a fingerprint of its training data, weight hash and timings) makes a
second build with the same seed and recipes a cache hit that reads nothing but the manifest
and the weight hashes; after a change, only the models whose recipe or data changed (and
their children) are trained again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mergelab.errors import OutputError
from mergelab.progress import Bar, progress
from mergelab.zoo.kernels import PINNED_KERNELS, pinned_kernels, training_kernels
from mergelab.zoo.recipes import RECIPES, WORLD_VERSION, Recipe

log = logging.getLogger(__name__)

MANIFEST = "zoo.json"
WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class ZooModel:
    """One built model: its folder, recipe description, weight hash, training time and loss."""

    name: str
    path: Path
    description: str
    sha256: str
    seconds: float
    loss: float


@dataclass(frozen=True)
class ZooManifest:
    """The built zoo: ``models[name].path`` is a Hugging Face model folder."""

    root: Path
    seed: int
    world_version: str
    models: dict[str, ZooModel]
    seconds: float
    cached: bool

    def path(self, name: str) -> Path:
        """The folder of model ``name`` (e.g. ``"j"``)."""
        return self.models[name].path


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out``'s build (so concurrent builds run one at a time)."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): builds are not serialised
        yield
        return
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"mergelab-zoo-{key}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def _held_out_prompts() -> list[str]:
    from mergelab.zoo.tasks import task_prompts

    return sorted(task_prompts())


@functools.cache
def data_fingerprint(recipe: Recipe) -> str:
    """Digest of what ``recipe`` trains on as the generator code makes it: its world's
    vocabulary, samples of each source in its mix, and the task prompts kept out of training.
    A model built by other generator code is stale even when its recipe and seed match; a
    change to one source retrains only the models that draw from it (and their children)."""
    import random

    from mergelab.zoo.data import SOURCES
    from mergelab.zoo.tokenizer import build_tokenizer

    samples = {}
    for name, _ in sorted(recipe.mix):
        rng = random.Random(f"fingerprint:{name}")
        samples[name] = [SOURCES[name](rng) for _ in range(20)]
    text = json.dumps(
        [
            sorted(build_tokenizer(recipe.world).get_vocab().items()),
            samples,
            _held_out_prompts(),
        ],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _recipe_record(recipe: Recipe) -> dict[str, object]:
    return json.loads(json.dumps(asdict(recipe)))  # tuples -> lists, as stored in JSON


def _same_recipe(entry: dict[str, object], recipe: Recipe) -> bool:
    """Whether a manifest entry was trained from ``recipe`` on today's data."""
    if entry.get("recipe") != _recipe_record(recipe):
        return False
    return entry.get("data") == data_fingerprint(recipe)


def _compatible_manifest(out: Path, seed: int) -> dict[str, Any] | None:
    """The manifest at ``out`` when it was written for this world version, seed and these
    training kernels, else None (also for a missing or unreadable one)."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("world_version") != WORLD_VERSION or data.get("seed") != seed:
        return None
    if data.get("kernels") != training_kernels():
        return None
    return data


def _read_cached(out: Path, seed: int, recipes: tuple[Recipe, ...]) -> ZooManifest | None:
    """The manifest of a finished zoo at ``out`` built from the current recipes, else None."""
    data = _compatible_manifest(out, seed)
    if data is None:
        return None
    stored = data.get("models", {})
    if sorted(stored) != sorted(r.name for r in recipes):
        return None
    models = {}
    for recipe in recipes:
        entry = stored[recipe.name]
        weights = out / recipe.name / WEIGHTS
        if not _same_recipe(entry, recipe) or not weights.is_file():
            return None
        if _sha256(weights) != entry.get("sha256"):
            return None
        models[recipe.name] = ZooModel(
            recipe.name,
            out / recipe.name,
            recipe.description,
            entry["sha256"],
            entry["seconds"],
            entry["loss"],
        )
    return ZooManifest(out, seed, WORLD_VERSION, models, float(data["seconds"]), cached=True)


def _reusable(out: Path, seed: int, recipes: tuple[Recipe, ...]) -> dict[str, dict[str, object]]:
    """Manifest entries of models in an earlier build at ``out`` that need no retraining:
    same world version, seed and recipe, intact weights, and a parent that is reused too."""
    data = _compatible_manifest(out, seed)
    if data is None:
        return {}
    keep: dict[str, dict[str, object]] = {}
    for recipe in recipes:
        entry = data.get("models", {}).get(recipe.name)
        weights = out / recipe.name / WEIGHTS
        if not entry or not _same_recipe(entry, recipe) or not weights.is_file():
            continue
        if recipe.parent is not None and (
            recipe.parent not in keep or entry.get("parent_sha256") != keep[recipe.parent]["sha256"]
        ):
            continue
        if _sha256(weights) == entry.get("sha256"):
            keep[recipe.name] = entry
    return keep


def _train_in_worker(recipe: Recipe, seed: int, work: str) -> tuple[float, float]:
    """Worker entry point: train ``recipe`` into ``work/<name>``; (seconds, loss)."""
    from mergelab.zoo.trainer import train_recipe  # imported in the worker process

    if training_kernels() == PINNED_KERNELS and torch.backends.cpu.get_cpu_capability() != "AVX2":
        raise RuntimeError("zoo training worker did not start with the pinned AVX2 kernels")
    return train_recipe(recipe, seed, Path(work))


def _train_all(
    work: Path,
    seed: int,
    jobs: int,
    recipes: tuple[Recipe, ...],
    done: dict[str, tuple[float, float]],
) -> dict[str, tuple[float, float]]:
    """Train every recipe not in ``done`` into ``work``, each once its parent is done;
    ``jobs`` at a time in worker processes started with the pinned kernels, the ready recipe
    with the most steps first so that a long one does not start last."""
    todo = [r for r in recipes if r.name not in done]
    with progress("building zoo", total=len(todo)) as bar:
        pending = todo
        running: dict[Future[tuple[float, float]], str] = {}
        context = multiprocessing.get_context("spawn")
        with pinned_kernels(), ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            while pending or running:
                ready = [r for r in pending if r.parent is None or r.parent in done]
                for recipe in sorted(ready, key=lambda r: -r.steps * r.batch):  # longest first
                    if len(running) >= jobs:
                        break
                    pending.remove(recipe)
                    future = pool.submit(_train_in_worker, recipe, seed, str(work))
                    running[future] = recipe.name
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    done[name] = future.result()
                    _report(name, done[name], bar)
    return done


def _report(name: str, result: tuple[float, float], bar: Bar) -> None:
    log.info("trained %s in %.1f s (final loss %.3f)", name, *result)
    bar.advance(info=name)


def build_zoo(
    out: Path | str = "zoo", *, seed: int = 0, jobs: int = 2, force: bool = False
) -> ZooManifest:
    """Build (or reuse) the zoo in ``out``: one Hugging Face model folder per recipe.

    A finished zoo with the same seed and recipes is reused unless ``force``. Training runs
    in ``jobs`` processes; the result depends only on ``seed`` (bit-identical weights on
    every x86-64 CPU with AVX2, see :mod:`mergelab.zoo.kernels`).
    """
    return build_recipes(RECIPES, out, seed=seed, jobs=jobs, force=force)


def build_recipes(
    recipes: tuple[Recipe, ...], out: Path | str, *, seed: int, jobs: int, force: bool
) -> ZooManifest:
    """:func:`build_zoo` for any recipe set whose parents come before their children."""
    out = Path(out)
    if jobs < 1:
        raise OutputError(f"--jobs must be at least 1, got {jobs}: pass --jobs 1 or more")
    with _locked(out):
        return _build_unlocked(recipes, out, seed, jobs, force)


def _build_unlocked(
    recipes: tuple[Recipe, ...], out: Path, seed: int, jobs: int, force: bool
) -> ZooManifest:
    if not force:
        cached = _read_cached(out, seed, recipes)
        if cached is not None:
            log.info("zoo at %s is up to date (seed %d); --force rebuilds it", out, seed)
            return cached
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise OutputError(
            f"{out} exists and is not a zoo (no {MANIFEST}): choose another --out or remove it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    start = time.perf_counter()
    reuse = {} if force else _reusable(out, seed, recipes)
    try:
        for name in reuse:
            shutil.copytree(out / name, work / name)
        if reuse:
            log.info("reusing unchanged models: %s", ", ".join(reuse))
        done = {n: (float(e["seconds"]), float(e["loss"])) for n, e in reuse.items()}  # type: ignore[arg-type]
        results = _train_all(work, seed, jobs, recipes, done)
        seconds = time.perf_counter() - start
        records = {
            r.name: {
                "path": r.name,
                "description": r.description,
                "recipe": _recipe_record(r),
                "data": data_fingerprint(r),
                "sha256": _sha256(work / r.name / WEIGHTS),
                "parent_sha256": _sha256(work / r.parent / WEIGHTS) if r.parent else None,
                "seconds": round(results[r.name][0], 2),
                "loss": round(results[r.name][1], 5),
            }
            for r in recipes
        }
        manifest = {
            "world_version": WORLD_VERSION,
            "kernels": training_kernels(),
            "seed": seed,
            "jobs": jobs,
            "seconds": round(seconds, 2),
            "models": records,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            out.rename(old)
        work.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("built the zoo in %s in %.1f s", out, seconds)
    built = _read_cached(out, seed, recipes)
    if built is None:
        raise OutputError(f"the zoo written to {out} does not verify: rebuild with --force")
    return ZooManifest(out, seed, WORLD_VERSION, built.models, seconds, cached=False)
