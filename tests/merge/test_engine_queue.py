"""The engine's compute queue: a long job does not hold back the jobs after it."""

from __future__ import annotations

import threading

import torch

from mergelab import engine
from mergelab.plan import InputRef, TensorJob


class _OrderedSink:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.tensors: dict[str, torch.Tensor] = {}

    def write(self, name: str, tensor: torch.Tensor) -> None:
        self.names.append(name)
        self.tensors[name] = tensor


def test_later_jobs_run_while_a_long_first_job_computes_and_outputs_stay_in_order() -> None:
    # job 0 finishes only once the last job has run: with one job per compute thread in
    # flight the last job would not start before job 0 ended, and job 0 would time out
    last_ran = threading.Event()
    waited: list[bool] = []

    def long_first(tensors: list[torch.Tensor]) -> torch.Tensor:
        waited.append(last_ran.wait(timeout=20))
        return tensors[0] * 2

    def marks_last(tensors: list[torch.Tensor]) -> torch.Tensor:
        last_ran.set()
        return tensors[0] * 3

    def plain(tensors: list[torch.Tensor]) -> torch.Tensor:
        return tensors[0] + 1

    source = engine.StateDictSource({"x": torch.arange(4, dtype=torch.float32)})
    combines = [long_first, plain, plain, plain, marks_last]

    def job(i: int) -> TensorJob:
        return TensorJob(
            f"t{i}",
            (4,),
            torch.float32,
            "combine",
            None,
            (InputRef(0, "x"),),
            {},
            combine=combines[i],
        )

    jobs = [job(i) for i in range(len(combines))]
    sink = _OrderedSink()
    options = engine.EngineOptions(threads=2, compute_queue=4, show_progress=False)
    engine.run(jobs, [source], sink, options)
    assert waited == [True]
    assert sink.names == [j.name for j in jobs]
    x = torch.arange(4, dtype=torch.float32)
    assert torch.equal(sink.tensors["t0"], x * 2)
    assert torch.equal(sink.tensors["t2"], x + 1)
    assert torch.equal(sink.tensors["t4"], x * 3)
