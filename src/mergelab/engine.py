"""The one tensor loop: read -> merge -> cast -> sink, for every feature.

Inputs of the next jobs are read (and upcast) on a background thread while the current jobs
compute, and finished tensors are handed to the sink on another, so disk reads, arithmetic
and writes overlap. On the CPU, ``threads`` jobs compute at once, each on one thread: a
merge is many independent tensors, and running them side by side keeps every core busy
without the per-operation synchronisation of splitting each small operation across threads.
At most ``prefetch`` jobs' inputs, ``threads`` jobs in computation and ``write_depth``
outputs are held at once: memory is bounded by the largest tensors, never by the model size.
Outputs reach the sink in job order.
"""

from __future__ import annotations

import functools
import hashlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from mergelab.checkpoint import TensorInfo
from mergelab.errors import NonFiniteError
from mergelab.heap import keep_freed_memory
from mergelab.methods import MergeMethod, get_method
from mergelab.methods._blocks import Block, Blocks, row_blocks, run_blocks
from mergelab.plan import InputRef, TensorJob
from mergelab.progress import progress
from mergelab.units import format_size
from mergelab.vocab import merge_rows

# tensors with more entries than this are read as memory maps and computed block by block
STREAM_ELEMENTS = 2**18


class TensorSource(Protocol):
    """Anything the engine reads tensors from: a checkpoint, a task-vector artifact."""

    @property
    def tensors(self) -> Mapping[str, TensorInfo]: ...

    def read(self, name: str) -> torch.Tensor: ...


class Sink(Protocol):
    """Where finished tensors go: a disk writer, a state dict, a live module."""

    def write(self, name: str, tensor: torch.Tensor) -> None: ...


@runtime_checkable
class RowSink(Protocol):
    """A sink that also takes a tensor as blocks of rows, in any order and from any thread
    (the disk writer): large outputs then go out block by block, never held whole."""

    def write(self, name: str, tensor: torch.Tensor) -> None: ...

    def write_rows(self, name: str, first_row: int, rows: torch.Tensor) -> None: ...


class StateDictSource:
    """A state dict as a :class:`TensorSource` (tensors already in memory)."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self._data = tensors
        self.tensors = {n: TensorInfo(n, tuple(t.shape), t.dtype) for n, t in tensors.items()}

    def read(self, name: str) -> torch.Tensor:
        return self._data[name]


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
    prefetch_bytes: int = 512 * 2**20
    write_depth: int = 2
    # jobs handed to the compute threads at once, per thread (running or queued): outputs
    # are handed on in order, so with one job per thread a long job (an embedding, an MLP
    # matrix) would leave the other threads idle until it finished
    compute_queue: int = 8
    show_progress: bool = True
    # read, compute and write every job in the calling thread: for sources already in memory
    # and small tensors, where handing jobs between threads costs more than it overlaps
    inline: bool = False


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
    rows_sink = sink if isinstance(sink, RowSink) else None
    keep_freed_memory()
    if options.inline:
        with _intra_op_threads(options.threads):
            for job in jobs:
                out = _produce(job, reader.read(job), options, reader, rows_sink)
                if out is not None:
                    sink.write(job.name, out)
        return
    workers = _compute_workers(options)
    total_bytes = sum(job.nbytes for job in jobs)
    written = 0
    with (
        _intra_op_threads(1 if workers > 1 else options.threads),
        ThreadPoolExecutor(1, thread_name_prefix="mergelab-read") as read_pool,
        ThreadPoolExecutor(workers, thread_name_prefix="mergelab-compute") as compute_pool,
        ThreadPoolExecutor(1, thread_name_prefix="mergelab-write") as write_pool,
        progress("merging", len(jobs) if options.show_progress else None) as bar,
    ):
        # (job's tensors, bytes they hold in memory) for the jobs read ahead
        pending_reads: deque[tuple[Future[list[torch.Tensor]], int]] = deque()
        computing: deque[tuple[TensorJob, Future[torch.Tensor | None]]] = deque()
        pending_writes: deque[Future[None]] = deque()
        upcoming = iter(jobs)
        peeked: list[TensorJob] = []

        def schedule_reads() -> None:
            """Read ahead while the jobs in flight hold less than the prefetch budget."""
            while len(pending_reads) < options.prefetch:
                job = peeked.pop() if peeked else next(upcoming, None)
                if job is None:
                    return
                held = sum(cost for _, cost in pending_reads)
                cost = reader.resident_bytes(job)
                if pending_reads and held + cost > options.prefetch_bytes:
                    peeked.append(job)
                    return
                pending_reads.append((read_pool.submit(reader.read, job), cost))

        def hand_to_sink() -> None:
            """Wait for the oldest computing job and pass its output to the writer."""
            nonlocal written
            job, future = computing.popleft()
            out = future.result()
            if out is not None:  # else it went to the row sink block by block
                while len(pending_writes) >= options.write_depth:
                    pending_writes.popleft().result()
                pending_writes.append(write_pool.submit(sink.write, job.name, out))
            written += job.nbytes
            bar.advance(1, info=f"{format_size(written)} / {format_size(total_bytes)}")

        try:
            schedule_reads()
            for job in jobs:
                tensors = pending_reads.popleft()[0].result()
                schedule_reads()
                while len(computing) >= workers * options.compute_queue:
                    hand_to_sink()
                computing.append(
                    (job, compute_pool.submit(_produce, job, tensors, options, reader, rows_sink))
                )
                del tensors
            while computing:
                hand_to_sink()
            while pending_writes:
                pending_writes.popleft().result()
        except BaseException:
            for fut, _ in pending_reads:
                fut.cancel()
            for _, cfut in computing:
                cfut.cancel()
            for wfut in pending_writes:
                wfut.cancel()
            raise


def _compute_workers(options: EngineOptions) -> int:
    """Jobs computed at once: ``threads`` (default: torch's thread count) on the CPU, 1 on a
    GPU, whose kernels already run in parallel."""
    if options.device != "cpu":
        return 1
    return max(1, options.threads if options.threads is not None else torch.get_num_threads())


def _produce(
    job: TensorJob,
    tensors: list[torch.Tensor],
    options: EngineOptions,
    reader: _Reader,
    rows_sink: RowSink | None,
) -> torch.Tensor | None:
    """The job's output tensor on the CPU in its output dtype, checked for NaN/Inf; None when
    it was streamed to ``rows_sink`` block by block instead."""
    if not reader.chunked(job):
        result = _compute(job, tensors, options)
        _check_output(job, result, options)
        return result.to(dtype=job.dtype, device="cpu")
    # large tensors run block by block over the first dimension: memory holds a block of each
    # input in the compute dtype, never whole upcast tensors, and a row sink gets each output
    # block as it is made, so no whole output tensor exists either
    out = None if rows_sink is not None else torch.empty(job.shape, dtype=job.dtype)

    def emit(block: Block, result: torch.Tensor) -> None:
        cast = result.to(dtype=job.dtype, device="cpu")
        if out is not None:
            out[block] = cast
        else:
            assert rows_sink is not None
            rows_sink.write_rows(job.name, block.start if isinstance(block, slice) else 0, cast)

    if get_method(job.method).blockwise is not None:
        _stream_blocks(job, tensors, options, reader, emit)
    else:
        _stream_elementwise(job, tensors, options, reader, emit)
    return out


def _stream_elementwise(
    job: TensorJob,
    raws: list[torch.Tensor],
    options: EngineOptions,
    reader: _Reader,
    emit: Callable[[Block, torch.Tensor], None],
) -> None:
    """An elementwise method over memory-mapped inputs, one upcast block at a time."""
    for block in row_blocks(job.shape):
        inputs = [reader.upcast(raw[block]) for raw in raws]
        result = _compute(job, inputs, options)
        if not options.allow_nonfinite and not all_finite(result):
            # a NaN or Inf entry of an input reaches the output of an elementwise method:
            # name the input, or the method when every input is finite
            for position, tensor in enumerate(inputs):
                reader.check_input(job, position, tensor)
            _check_output(job, result, options)
        emit(block, result)


def _stream_blocks(
    job: TensorJob,
    raws: list[torch.Tensor],
    options: EngineOptions,
    reader: _Reader,
    emit: Callable[[Block, torch.Tensor], None],
) -> None:
    """A block-wise method over memory-mapped inputs: every pass upcasts one block at a time."""
    method = get_method(job.method)
    assert method.blockwise is not None
    dtype = functools.reduce(torch.promote_types, (compute_dtype(raw.dtype) for raw in raws))
    has_base = job.base is not None
    keep = list(range(len(raws) - has_base))
    merge = method.blockwise(job.shape, dtype, **_method_kwargs(method, job, keep, options))
    checked: set[int] = set()  # first rows of the blocks whose inputs were checked (once)

    def read(block: Block, models: bool) -> Blocks:
        tensors = [reader.upcast(raw[block]) for raw in (raws if models else raws[:has_base])]
        first_row = block.start if isinstance(block, slice) else 0
        if not options.allow_nonfinite and first_row not in checked:
            checked.add(first_row)
            for position, tensor in enumerate(tensors):
                reader.check_input(job, position, tensor)
        return (tensors[0] if has_base else None), tensors[has_base:]

    def write(block: Block, result: torch.Tensor) -> None:
        _check_output(job, result, options)
        emit(block, result)

    run_blocks(merge, job.shape, read, write)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """What a stored dtype is computed in: float64 stays, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_output(job: TensorJob, result: torch.Tensor, options: EngineOptions) -> None:
    if not options.allow_nonfinite and not all_finite(result):
        raise NonFiniteError(
            f"the merged tensor {job.name} holds NaN or Inf ({job.method}); check "
            "the parameters, or pass --allow-nonfinite to write it anyway"
        )


def all_finite(tensor: torch.Tensor) -> bool:
    """True when no entry is NaN or Inf: one cheap sum, a full check only if the sum is not
    finite (a NaN or Inf entry makes the sum NaN or Inf; so can overflow, hence the check)."""
    if tensor.numel() == 0 or not tensor.is_floating_point():
        return True
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


class _Reader:
    """Reads a job's tensors; upcasts them to the compute dtype on the compute device.

    Large jobs of elementwise and block-wise methods (see :meth:`chunked`) get the raw,
    memory-mapped tensors instead, upcast block by block while they compute.
    """

    def __init__(
        self, checkpoints: Sequence[TensorSource], names: list[str], options: EngineOptions
    ) -> None:
        self.checkpoints = checkpoints
        self.names = names
        self.options = options

    def chunked(self, job: TensorJob) -> bool:
        if job.combine is not None or job.vocab is not None or len(job.shape) == 0:
            return False
        method = get_method(job.method)
        blocks = method.elementwise or method.blockwise is not None
        return blocks and _numel(job.shape) > STREAM_ELEMENTS

    def resident_bytes(self, job: TensorJob) -> int:
        """Memory a read-ahead job holds: upcast copies, or nothing for mapped raw tensors."""
        if self.chunked(job):
            return 0
        return sum(_numel(self.checkpoints[r.model].tensors[r.name].shape) * 4 for r in job.reads())

    def read(self, job: TensorJob) -> list[torch.Tensor]:
        raws = [self.checkpoints[ref.model].read(ref.name) for ref in job.reads()]
        if self.chunked(job):
            return raws
        tensors = [self.upcast(raw) for raw in raws]
        if not self.options.allow_nonfinite:
            for position, tensor in enumerate(tensors):
                self.check_input(job, position, tensor)
        return tensors

    def upcast(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.to(device=self.options.device, dtype=compute_dtype(raw.dtype), copy=True)

    def check_input(self, job: TensorJob, position: int, tensor: torch.Tensor) -> None:
        if not all_finite(tensor):
            ref = job.reads()[position]
            raise NonFiniteError(
                f"input tensor {ref.name} of {self.names[ref.model]} holds NaN or Inf; "
                "repair that checkpoint, or pass --allow-nonfinite to merge anyway"
            )


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
    return method.func(base, inputs, **_method_kwargs(method, job, keep, options))


def _method_kwargs(
    method: MergeMethod, job: TensorJob, keep: list[int], options: EngineOptions
) -> dict[str, object]:
    """The keyword arguments of the method for inputs ``keep`` of the job."""
    kwargs: dict[str, object] = {}
    per_model = {p.kwarg for p in method.params if p.per_model}
    for key, value in job.params.items():
        kwargs[key] = [value[i] for i in keep] if key in per_model else value
    if method.randomized:
        kwargs["generators"] = [_generator(options, job.name, job.inputs[i]) for i in keep]
    return kwargs


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


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
