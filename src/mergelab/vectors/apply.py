"""Applying task vectors: ``theta = theta_base + sum_i s_i tau_i`` (equip, negate, analogy).

Task arithmetic after Ilharco et al. 2023 (https://arxiv.org/abs/2212.04089): adding a
vector gains a skill, a negative scale removes one (unlearning), and an analogy
``A : B :: C : D`` builds ``tau_D = tau_C + tau_B - tau_A`` (gaining a skill with no data for
it). A term is a ``.tv`` artifact (its stored delta) or a fine-tune of the base (its delta
``theta_model - theta_base`` is taken on the fly, tensor by tensor).

Per output tensor (one engine job reading the base and every term holding that tensor)::

    acc = sum_i s_i d_i          # d_i: the artifact's delta, or model_i - base (float32)
    out = base + acc             # then cast to the base's dtype

The deltas are summed first, so ``A:1 A:-1`` gives the base back bit for bit. Checks before
any tensor data is read: every term fits the base's tensors and shapes, and every artifact
was extracted from a base with the same fingerprint (:mod:`mergelab.vectors.fingerprint`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mergelab import engine
from mergelab.checkpoint import Checkpoint, TensorInfo
from mergelab.errors import MergelabError, VectorError, join_problems
from mergelab.merge import check_device
from mergelab.output_dir import atomic_output_dir, check_output_location
from mergelab.plan import InputRef, TensorJob
from mergelab.units import parse_size
from mergelab.vectors.artifact import TaskVector
from mergelab.vectors.extract import architecture_name, architecture_problems
from mergelab.vectors.fingerprint import fingerprint, short
from mergelab.vectors.model_files import copy_support_files, write_card
from mergelab.vectors.store import VectorStore
from mergelab.vectors.terms import Term, resolve_source
from mergelab.writer import ShardedSafetensorsWriter

log = logging.getLogger(__name__)

RECORD_FILE = "mergelab_vectors.json"


@dataclass(frozen=True)
class ApplyResult:
    out: Path
    tensors: int
    bytes: int
    seconds: float


@dataclass
class ApplyPlan:
    """The opened base and terms, and one job per base tensor (source 0 is the base)."""

    base: Checkpoint
    terms: list[Term]
    sources: list[TaskVector | Checkpoint]
    jobs: list[TensorJob]
    base_fingerprint: str | None
    names: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.base.close()
        for source in self.sources:
            source.close()


def analogy_terms(a: str, b: str, c: str, scale: float = 1.0) -> list[Term]:
    """``A : B :: C : D`` as terms: ``tau_D = s (tau_C + tau_B - tau_A)``."""
    return [Term(c, scale), Term(b, scale), Term(a, -scale)]


def plan_apply(
    base: str | Path,
    terms: Sequence[Term],
    *,
    store: VectorStore | None = None,
    ignore_fingerprint: bool = False,
) -> ApplyPlan:
    """Open and check everything (headers, fingerprints); the caller closes the plan."""
    if not terms:
        raise VectorError("no vectors to apply; give at least one SOURCE[:SCALE]")
    base_ckpt = Checkpoint.open(str(base))
    sources: list[TaskVector | Checkpoint] = []
    try:
        problems: list[str] = []
        base_fp: str | None = None
        for term in terms:
            ref, is_artifact = resolve_source(term.source, store)
            try:
                source: TaskVector | Checkpoint = (
                    TaskVector.open(ref) if is_artifact else Checkpoint.open(ref)
                )
            except MergelabError as exc:
                problems.append(str(exc))
                continue
            sources.append(source)
            if isinstance(source, TaskVector):
                found = _vector_problems(source, term, base_ckpt, str(base))
                if not found and not ignore_fingerprint:
                    base_fp = base_fp or fingerprint(base_ckpt)
                    found = _fingerprint_problems(source, term, base_fp, str(base))
            else:
                found = architecture_problems(
                    source.tensors, base_ckpt.tensors, term.source, str(base)
                )
                if found:
                    found = [
                        f"model {term.source} is not a fine-tune of {base} (different "
                        "architecture): " + "; ".join(found)
                    ]
            problems += found
        if problems:
            raise VectorError(join_problems("cannot apply the vectors", problems))
        jobs = _jobs(base_ckpt, list(terms), sources)
        names = [str(base), *(t.source for t in terms)]
        return ApplyPlan(base_ckpt, list(terms), sources, jobs, base_fp, names)
    except BaseException:
        base_ckpt.close()
        for source in sources:
            source.close()
        raise


def _vector_problems(vector: TaskVector, term: Term, base: Checkpoint, base_name: str) -> list[str]:
    found = architecture_problems(vector.tensors, base.tensors, term.source, base_name)
    if not found:
        return []
    arch = vector.meta.architecture
    return [
        f"task vector {term.source} ({arch}, {len(vector.tensors)} tensors) does not fit "
        f"{base_name} ({architecture_name(base)}, {len(base.tensors)} tensors; a different "
        "architecture): " + "; ".join(found)
    ]


def _fingerprint_problems(
    vector: TaskVector, term: Term, base_fp: str, base_name: str
) -> list[str]:
    made_from = vector.meta.base
    if made_from.fingerprint == base_fp:
        return []
    return [
        f"task vector {term.source} was extracted from base {made_from.ref} (fingerprint "
        f"{short(made_from.fingerprint)}) but {base_name} has fingerprint {short(base_fp)}; "
        "apply it to its own base, or pass --ignore-fingerprint if the weights are related"
    ]


def _jobs(
    base: Checkpoint, terms: list[Term], sources: list[TaskVector | Checkpoint]
) -> list[TensorJob]:
    jobs: list[TensorJob] = []
    for name, info in base.tensors.items():
        reads = []
        coefs: list[tuple[float, bool]] = []  # (scale s_i, the term is a model)
        for i, (term, source) in enumerate(zip(terms, sources, strict=True)):
            if name in source.tensors:
                reads.append(InputRef(i + 1, name))
                coefs.append((term.scale, isinstance(source, Checkpoint)))
        jobs.append(
            TensorJob(
                name,
                info.shape,
                info.dtype,
                "task_vector_apply",
                InputRef(0, name),
                tuple(reads),
                {},
                combine=_combine(coefs),
            )
        )
    return jobs


def _combine(coefs: list[tuple[float, bool]]) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    def combine(tensors: list[torch.Tensor]) -> torch.Tensor:
        base = tensors[0]
        acc: torch.Tensor | None = None
        for (scale, is_model), t in zip(coefs, tensors[1:], strict=True):
            term = ((t - base) if is_model else t) * scale  # s_i d_i
            acc = term if acc is None else acc + term
        return base if acc is None else base + acc

    return combine


def apply_vectors(
    base: str | Path,
    terms: Sequence[Term],
    out: str | Path,
    *,
    store: VectorStore | None = None,
    ignore_fingerprint: bool = False,
    overwrite: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    out_shard_size: str | int | None = "5GB",
    title: str = "Model made with task vectors",
) -> ApplyResult:
    """Write ``base + sum_i s_i tau_i`` as a model folder ``out`` (atomically)."""
    started = time.perf_counter()
    check_device(device)
    shard_bytes = parse_size(out_shard_size) if out_shard_size is not None else None
    plan = plan_apply(base, terms, store=store, ignore_fingerprint=ignore_fingerprint)
    dest = Path(out)
    try:
        inputs = [plan.base.path, *(Path(s.path) for s in plan.sources)]
        check_output_location(dest, inputs, overwrite=overwrite)
        with atomic_output_dir(dest, overwrite=overwrite) as tmp:
            entries = [TensorInfo(j.name, j.shape, j.dtype) for j in plan.jobs]
            writer = ShardedSafetensorsWriter(
                tmp, entries, max_shard_bytes=shard_bytes, metadata={"format": "pt"}
            )
            try:
                options = engine.EngineOptions(device=device, threads=threads)
                engine.run(
                    plan.jobs, [plan.base, *plan.sources], writer, options, model_names=plan.names
                )
                writer.finish()
            except BaseException:
                writer.abort()
                raise
            copy_support_files(plan.base.path, tmp)
            _write_record(tmp, plan, str(base), title)
        seconds = time.perf_counter() - started
        log.info("applied %d vectors to %s -> %s in %.1f s", len(terms), base, dest, seconds)
        return ApplyResult(dest, len(plan.jobs), writer.total_bytes, seconds)
    finally:
        plan.close()


def apply_state_dict(
    base: str | Path,
    terms: Sequence[Term],
    *,
    store: VectorStore | None = None,
    ignore_fingerprint: bool = False,
    device: str = "cpu",
) -> dict[str, torch.Tensor]:
    """``base + sum_i s_i tau_i`` in memory, by tensor name."""
    check_device(device)
    plan = plan_apply(base, terms, store=store, ignore_fingerprint=ignore_fingerprint)
    try:
        sink = engine.StateDictSink()
        options = engine.EngineOptions(device=device, show_progress=False)
        engine.run(plan.jobs, [plan.base, *plan.sources], sink, options, model_names=plan.names)
        return sink.tensors
    finally:
        plan.close()


def analogy(
    base: str | Path,
    a: str,
    b: str,
    c: str,
    out: str | Path,
    *,
    scale: float = 1.0,
    store: VectorStore | None = None,
    ignore_fingerprint: bool = False,
    overwrite: bool = False,
    device: str = "cpu",
    threads: int | None = None,
) -> ApplyResult:
    """``A : B :: C : D``: write ``base + s (tau_C + tau_B - tau_A)`` to ``out``."""
    return apply_vectors(
        base,
        analogy_terms(a, b, c, scale),
        out,
        store=store,
        ignore_fingerprint=ignore_fingerprint,
        overwrite=overwrite,
        device=device,
        threads=threads,
        title=f"Analogy {a} : {b} :: {c} : ?",
    )


def _write_record(folder: Path, plan: ApplyPlan, base: str, title: str) -> None:
    rows = []
    for term, source in zip(plan.terms, plan.sources, strict=True):
        kind = "task vector" if isinstance(source, TaskVector) else "fine-tune (model - base)"
        rows.append({"source": term.source, "scale": term.scale, "kind": kind})
    lines = [
        "Made with [mergelab](https://pypi.org/project/mergelab/) task arithmetic: "
        "`theta = theta_base + sum_i s_i tau_i`.",
        "",
        f"Base model: `{base}`",
        "",
        "| source | kind | scale |",
        "|---|---|---|",
        *(f"| `{r['source']}` | {r['kind']} | {r['scale']:g} |" for r in rows),
    ]
    record = {"base": base, "base_fingerprint": plan.base_fingerprint, "terms": rows}
    write_card(folder, title, lines, record, RECORD_FILE)
