"""The one tensor loop: read -> merge -> cast -> sink, for every feature.

Inputs of the next jobs are read (and upcast) on a background thread while the current job
computes, and finished tensors are handed to the sink on another, so disk reads, arithmetic
and writes overlap. At most ``prefetch`` jobs' inputs and ``write_depth`` outputs are held
at once: memory is bounded by the largest tensor, never by the model size.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch

from mergelab.checkpoint import TensorInfo
from mergelab.errors import NonFiniteError
from mergelab.methods import MergeMethod, get_method
from mergelab.plan import InputRef, TensorJob
from mergelab.progress import progress
from mergelab.units import format_size
from mergelab.vocab import merge_rows


class TensorSource(Protocol):
    """Anything the engine reads tensors from: a checkpoint, a task-vector artifact."""

    @property
    def tensors(self) -> Mapping[str, TensorInfo]: ...

    def read(self, name: str) -> torch.Tensor: ...


class Sink(Protocol):
    """Where finished tensors go: a disk writer, a state dict, a live module."""

    def write(self, name: str, tensor: torch.Tensor) -> None: ...


class StateDictSink:
    """Collects the output in memory (tests, small merges)."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}

    def write(self, name: str, tensor: torch.Tensor) -> None:
        self.tensors[name] = tensor


class ModuleSink:
    """Copies each output tensor straight into a live module's parameter or buffer."""

    def __init__(self, module: torch.nn.Module) -> None:
        self._targets = dict(module.state_dict(keep_vars=True))

    def write(self, name: str, tensor: torch.Tensor) -> None:
        target = self._targets.get(name)
        if target is None:
            raise KeyError(f"the module has no tensor named {name}")
        with torch.no_grad():
            target.data.copy_(tensor)


@dataclass(frozen=True)
class EngineOptions:
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0
    allow_nonfinite: bool = False
    prefetch: int = 2
    write_depth: int = 2
    show_progress: bool = True


def tensor_seed(seed: int, tensor_name: str, model: int) -> int:
    """The per-(seed, tensor, model) generator seed: stable across runs, orders and threads."""
    digest = hashlib.blake2b(f"{seed}\0{tensor_name}\0{model}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def run(
    jobs: Sequence[TensorJob],
    checkpoints: Sequence[TensorSource],
    sink: Sink,
    options: EngineOptions = EngineOptions(),
    *,
    model_names: Sequence[str] | None = None,
) -> None:
    """Execute ``jobs`` in order, reading from ``checkpoints`` and writing to ``sink``."""
    names = (
        list(model_names)
        if model_names is not None
        else [f"input {i}" for i in range(len(checkpoints))]
    )
    reader = _Reader(checkpoints, names, options)
    total_bytes = sum(job.nbytes for job in jobs)
    written = 0
    with (
        _intra_op_threads(options.threads),
        ThreadPoolExecutor(1, thread_name_prefix="mergelab-read") as read_pool,
        ThreadPoolExecutor(1, thread_name_prefix="mergelab-write") as write_pool,
        progress("merging", len(jobs) if options.show_progress else None) as bar,
    ):
        pending_reads: deque[Future[list[torch.Tensor]]] = deque()
        pending_writes: deque[Future[None]] = deque()
        upcoming = iter(jobs)

        def schedule_read() -> None:
            job = next(upcoming, None)
            if job is not None:
                pending_reads.append(read_pool.submit(reader.read, job))

        try:
            for _ in range(max(1, options.prefetch)):
                schedule_read()
            for job in jobs:
                tensors = pending_reads.popleft().result()
                schedule_read()
                result = _compute(job, tensors, options)
                if not options.allow_nonfinite and not bool(torch.isfinite(result).all()):
                    raise NonFiniteError(
                        f"the merged tensor {job.name} holds NaN or Inf ({job.method}); check "
                        "the parameters, or pass --allow-nonfinite to write it anyway"
                    )
                out = result.to(dtype=job.dtype, device="cpu")
                del result, tensors
                while len(pending_writes) >= options.write_depth:
                    pending_writes.popleft().result()
                pending_writes.append(write_pool.submit(sink.write, job.name, out))
                written += job.nbytes
                bar.advance(1, info=f"{format_size(written)} / {format_size(total_bytes)}")
            while pending_writes:
                pending_writes.popleft().result()
        except BaseException:
            for fut in list(pending_reads) + list(pending_writes):
                fut.cancel()
            raise


class _Reader:
    """Reads a job's tensors and upcasts them to the compute dtype on the compute device."""

    def __init__(
        self, checkpoints: Sequence[TensorSource], names: list[str], options: EngineOptions
    ) -> None:
        self.checkpoints = checkpoints
        self.names = names
        self.options = options

    def read(self, job: TensorJob) -> list[torch.Tensor]:
        out = []
        for ref in job.reads():
            raw = self.checkpoints[ref.model].read(ref.name)
            compute = torch.float64 if raw.dtype == torch.float64 else torch.float32
            tensor = raw.to(device=self.options.device, dtype=compute, copy=True)
            if not self.options.allow_nonfinite and not bool(torch.isfinite(tensor).all()):
                raise NonFiniteError(
                    f"input tensor {ref.name} of {self.names[ref.model]} holds NaN or Inf; "
                    "repair that checkpoint, or pass --allow-nonfinite to merge anyway"
                )
            out.append(tensor)
        return out


def _compute(job: TensorJob, tensors: list[torch.Tensor], options: EngineOptions) -> torch.Tensor:
    if job.combine is not None:
        return job.combine(tensors)
    method = get_method(job.method)
    base = tensors[0] if job.base is not None else None
    inputs = tensors[1:] if job.base is not None else tensors
    if job.vocab is None:
        return _call(method, job, base, inputs, list(range(len(inputs))), options)
    plan = job.vocab
    with_models = [(ref.model, t) for ref, t in zip(job.inputs, inputs, strict=False)]
    base_pair = (job.base.model, base) if job.base is not None and base is not None else None
    return merge_rows(
        plan,
        base_pair,
        with_models,
        lambda b, xs, keep: _call(method, job, b, xs, keep, options),
        base_required=method.base == "required",
        min_models=method.min_models,
    )


def _call(
    method: MergeMethod,
    job: TensorJob,
    base: torch.Tensor | None,
    inputs: list[torch.Tensor],
    keep: list[int],
    options: EngineOptions,
) -> torch.Tensor:
    """Run the method on ``inputs`` (positions ``keep`` of the job's inputs)."""
    kwargs = {}
    per_model = {p.kwarg for p in method.params if p.per_model}
    for key, value in job.params.items():
        kwargs[key] = [value[i] for i in keep] if key in per_model else value
    if method.randomized:
        kwargs["generators"] = [_generator(options, job.name, job.inputs[i]) for i in keep]
    return method.func(base, inputs, **kwargs)


def _generator(options: EngineOptions, tensor_name: str, ref: InputRef) -> torch.Generator:
    gen = torch.Generator(device=options.device)
    gen.manual_seed(tensor_seed(options.seed, tensor_name, ref.model))
    return gen


@contextmanager
def _intra_op_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
