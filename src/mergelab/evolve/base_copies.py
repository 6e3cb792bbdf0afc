"""Which sources leave which layer groups exactly as the base has them.

A fine-tune often trains some layers only (frozen embeddings, adapters on a few blocks,
localised fine-tuning): there its tensors are the base's, bit for bit, and its task vector
is zero. The genome (:mod:`mergelab.evolve.genome`) stops evolving the genes such a source
cannot use. Found when the search space is built (in each process that builds it), by
reading each source tensor next to the base's (memory-mapped, one tensor at a time); nothing
is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mergelab.evolve.groups import Group, group_of
from mergelab.plan import Plan


def base_copies(plan: Plan, groups: Sequence[Group], models: Sequence[str]) -> set[tuple[int, int]]:
    """The (source, group) pairs where every tensor of source ``models[i]`` in the group
    equals the base's. Jobs without a base, and jobs that remap a vocabulary, count as
    changed: their inputs are not the tensors the merge compares."""
    changed: set[tuple[int, int]] = set()
    for job in plan.jobs:
        group = group_of(job.name, groups)
        if group is None:
            continue
        for ref in job.inputs:
            slot = (models.index(plan.refs[ref.model]), group)
            if slot in changed:
                continue
            base = job.base
            if base is None or job.vocab is not None or job.combine is not None:
                changed.add(slot)
                continue
            theirs = plan.checkpoints[ref.model].read(ref.name)
            mine = plan.checkpoints[base.model].read(base.name)
            if theirs.dtype != mine.dtype or not torch.equal(theirs, mine):
                changed.add(slot)
    return {(m, g) for m in range(len(models)) for g in range(len(groups))} - changed
