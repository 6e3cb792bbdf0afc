"""Whole-tensor methods computed block by block, in passes.

A method whose result needs statistics of the whole tensor (a norm, a top-k threshold) can
still be computed without holding it: a :class:`BlockMerge` first reduces over every block of
rows in one or more passes, then produces the output block by block. The engine streams such
a method over memory-mapped inputs, upcasting one block at a time; the method's ordinary
function runs the same object over the blocks of in-memory tensors, where small blocks also
keep the arithmetic in cache. Both visit the same blocks in the same order, so a tensor's result
does not depend on which of the two computed it.

Blocks are slices of the first dimension holding about :data:`BLOCK_ELEMENTS` entries, so
every block holds whole rows of the last dimension; a tensor of fewer than two dimensions is
one block. Within a pass blocks come in flat order, which ordered state (random draws, the
tie budget of a top-k selection) relies on.

A merge whose last pass already computed what its output needs (the L1 rescale's pass keeps
the sparsified task vectors of tensors that fit its budget) says so with
``output_needs_models`` False: the output pass then reads only the base's blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from types import EllipsisType
from typing import Protocol

import torch

BLOCK_ELEMENTS = 2**18

# a block's inputs: (base block or None, the other models' blocks), in the compute dtype
Blocks = tuple[torch.Tensor | None, list[torch.Tensor]]
# a block: rows of the first dimension, or ``...`` for the whole tensor
Block = slice | EllipsisType
# reads a block's inputs; False as the second argument reads the base's block alone
BlockReader = Callable[[Block, bool], Blocks]


class BlockMerge(Protocol):
    """One tensor's merge: ``passes`` reductions over all blocks, then the output per block."""

    @property
    def passes(self) -> int: ...

    def observe(self, step: int, base: torch.Tensor | None, tensors: list[torch.Tensor]) -> None:
        """Reduce one block in pass ``step`` (0 <= step < passes)."""

    def end_pass(self, step: int) -> None:
        """Finish pass ``step``: every block has been observed."""

    @property
    def output_needs_models(self) -> bool:
        """False when the passes kept what :meth:`output` needs from the models: it then gets
        an empty list of model blocks."""

    def output(self, base: torch.Tensor | None, tensors: list[torch.Tensor]) -> torch.Tensor:
        """The merged block, shaped like the input blocks (blocks come in flat order)."""


def row_blocks(shape: tuple[int, ...]) -> list[Block]:
    """Slices of the first dimension, each about :data:`BLOCK_ELEMENTS` entries of whole rows."""
    if len(shape) < 2 or shape[0] == 0:
        return [...]
    row = 1
    for s in shape[1:]:
        row *= s
    rows = max(1, BLOCK_ELEMENTS // max(1, row))
    return [slice(start, start + rows) for start in range(0, shape[0], rows)]


def run_blocks(
    merge: BlockMerge,
    shape: tuple[int, ...],
    read: BlockReader,
    write: Callable[[Block, torch.Tensor], None],
) -> None:
    """Drive ``merge`` over the blocks of ``shape``: ``read`` gives a block's inputs, ``write``
    takes its output."""
    blocks = row_blocks(shape)
    for step in range(merge.passes):
        for block in blocks:
            merge.observe(step, *read(block, True))
        merge.end_pass(step)
    models = merge.output_needs_models
    for block in blocks:
        write(block, merge.output(*read(block, models)))


def merge_in_blocks(
    merge: BlockMerge, base: torch.Tensor | None, tensors: list[torch.Tensor]
) -> torch.Tensor:
    """Run ``merge`` over in-memory tensors (views of their blocks, no copies)."""
    out = torch.empty_like(tensors[0])

    def read(block: Block, models: bool) -> Blocks:
        return (base[block] if base is not None else None), [t[block] for t in tensors if models]

    def write(block: Block, result: torch.Tensor) -> None:
        out[block] = result

    run_blocks(merge, tuple(out.shape), read, write)
    return out
