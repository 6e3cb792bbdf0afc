"""The CPU kernels the zoo trains with, pinned so that every x86-64 CPU trains the same world.

Training the zoo is chaotic: a last-bit difference in one matrix product grows into other
models. torch picks its vector kernels (AVX2 or AVX-512) and MKL its matrix-product code
path from the CPU, so unpinned, an AVX-512 machine trains another world than an AVX2 one.
Training workers therefore run with torch's kernels set to AVX2 (``ATEN_CPU_CAPABILITY``),
MKL in its conditional numerical reproducibility mode for AVX2 (``MKL_CBWR``), and oneDNN
capped at AVX2: the widest code path every x86-64 CPU of the last decade runs, and the one
such a CPU uses by default. CPUs without AVX2 (ARM, old x86) keep their own kernels and
train a world of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

PINNED_KERNELS = "avx2"
PINNED_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def training_kernels() -> str:
    """The kernels zoo training uses on this CPU: ``"avx2"`` on every x86-64 CPU with AVX2,
    else the CPU's own (``torch.backends.cpu.get_cpu_capability()``, lower-cased)."""
    native = torch.backends.cpu.get_cpu_capability().lower()
    return PINNED_KERNELS if native.startswith(("avx2", "avx512")) else native


@contextmanager
def pinned_kernels() -> Iterator[None]:
    """Set the pinning variables for the processes started inside (they read them at start).

    The variables are restored on exit; on a CPU without AVX2 nothing is set.
    """
    if training_kernels() != PINNED_KERNELS:
        yield
        return
    saved = {key: os.environ.get(key) for key in PINNED_ENVIRONMENT}
    os.environ.update(PINNED_ENVIRONMENT)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
