"""Zoo training runs on pinned CPU kernels, whatever the CPU and the caller's environment."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import torch

from mergelab.zoo.kernels import (
    PINNED_ENVIRONMENT,
    PINNED_KERNELS,
    pinned_kernels,
    training_kernels,
)


def _report() -> tuple[dict[str, str | None], str]:
    return {
        k: os.environ.get(k) for k in PINNED_ENVIRONMENT
    }, torch.backends.cpu.get_cpu_capability()


def test_processes_started_inside_run_the_pinned_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")  # the caller's own setting ...
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    context = multiprocessing.get_context("spawn")
    with pinned_kernels(), context.Pool(1) as pool:
        environment, capability = pool.apply(_report)
    if training_kernels() == PINNED_KERNELS:  # every x86-64 CPU with AVX2 or AVX-512
        assert environment == PINNED_ENVIRONMENT
        assert capability == "AVX2"
    else:
        assert environment["MKL_CBWR"] == "COMPATIBLE"
    assert os.environ["MKL_CBWR"] == "COMPATIBLE"  # ... is back afterwards
    assert "ATEN_CPU_CAPABILITY" not in os.environ


def test_training_kernels_name_avx2_for_avx512_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    for native, expected in (("AVX512", "avx2"), ("AVX2", "avx2"), ("DEFAULT", "default")):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda n=native: n)
        assert training_kernels() == expected
