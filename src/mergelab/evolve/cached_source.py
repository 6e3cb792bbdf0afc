"""An in-memory :class:`~mergelab.engine.TensorSource`: each tensor read and upcast once.

Evolution merges the same sources hundreds of times. Wrapping each checkpoint in a
:class:`CachedSource` makes every trial after the first read from memory: the first read of a
tensor upcasts it to the compute dtype (float32; float64 stays float64) and keeps it; later
reads return the kept tensor. The engine copies what it reads before computing, so merge
methods never modify the cache. Reads happen on the engine's single read thread.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mergelab.checkpoint import TensorInfo
from mergelab.engine import TensorSource


class CachedSource:
    """``source``'s tensors, kept in memory in the compute dtype after their first read."""

    def __init__(self, source: TensorSource) -> None:
        self._source = source
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def tensors(self) -> Mapping[str, TensorInfo]:
        return self._source.tensors

    def read(self, name: str) -> torch.Tensor:
        cached = self._cache.get(name)
        if cached is None:
            raw = self._source.read(name)
            compute = torch.float64 if raw.dtype == torch.float64 else torch.float32
            cached = raw.to(dtype=compute, copy=True)
            self._cache[name] = cached
        return cached

    def preload(self) -> None:
        """Read every tensor now (so no trial touches the disk)."""
        for name in self.tensors:
            self.read(name)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache."""
        return sum(t.numel() * t.element_size() for t in self._cache.values())
