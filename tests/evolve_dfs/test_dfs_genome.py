"""The DFS genome: slot layout, the A-favouring prior, scales, repairs and rejections."""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import pytest

from mergelab.errors import SearchError
from mergelab.evolve.dfs.config import DfsSpec
from mergelab.evolve.dfs.genome import SIGMA0, DfsGenome

DEPTHS = [3, 4]  # A has 3 layers, B 4: M = 7


def _genome(**spec: Any) -> DfsGenome:
    return DfsGenome(DfsSpec(models=["a", "b"], **spec), ["a", "b"], DEPTHS)


def _path(genome: DfsGenome, params: dict[str, float]) -> list[tuple[int, int]]:
    return [(s.model, s.layer) for s in genome.decode(params).steps]


def _with(genome: DfsGenome, on: set[int], **scales: float) -> dict[str, float]:
    """Slots ``on`` switched on (every other off), scale genes at 0.5 unless given."""
    params = dict.fromkeys(genome.scale_genes(), 0.5) | scales
    for slot in genome.slots:
        params[genome.on_gene(slot)] = 1.0 if slot.index in on else 0.0
    return params


@pytest.mark.parametrize(("scaling", "scale_genes"), [("matrix", 49), ("slot", 21), ("none", 0)])
def test_slots_are_laid_out_model_by_model_and_repeated(scaling: str, scale_genes: int) -> None:
    genome = _genome(repeats=3, scaling=scaling)
    assert len(genome.slots) == 7 * 3  # T = M x r
    assert [(s.model, s.layer) for s in genome.slots[:7]] == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)
    ]  # fmt: skip
    assert [s.repeat for s in genome.slots[::7]] == [0, 1, 2]
    assert len(genome.distributions()) == 21 + scale_genes


def test_the_midpoint_is_a_own_path_with_unit_scales() -> None:
    for fix_ends in (True, False):
        genome = _genome(fix_ends=fix_ends)
        path = genome.decode(genome.midpoint())
        assert [(s.model, s.layer, s.scale) for s in path.steps] == [(0, i, 1.0) for i in range(3)]


@pytest.mark.parametrize("p", [0.5, 0.8, 0.9, 0.99])
def test_first_generation_switches_a_on_with_the_configured_probability(p: float) -> None:
    genome = _genome(init_probability=p)
    first = NormalDist(0.5, SIGMA0)  # CMA-ES's first generation: mean 0.5, sigma0 1/6
    a_middle = genome.slots[1]  # A.1 of the first repeat (A.0 and A.2 are the fixed ends)
    others = [s for s in genome.slots if s.model != 0 or s.repeat != 0]
    assert 1 - first.cdf(genome.thresholds[a_middle.index]) == pytest.approx(p)
    for slot in [*others, genome.slots[0], genome.slots[2]]:
        assert 1 - first.cdf(genome.thresholds[slot.index]) == pytest.approx(1 - p)


def test_fixed_ends_frame_the_on_slots_in_slot_order() -> None:
    genome = _genome(scaling="none")
    b2_first, a1_second = 3 + 2, 7 + 1
    assert _path(genome, _with(genome, {a1_second, b2_first})) == [
        (0, 0), (1, 2), (0, 1), (0, 2)
    ]  # fmt: skip


def test_matrix_scales_the_step_from_layer_i_to_layer_j() -> None:
    genome = _genome(scale_range=(0.5, 1.5))
    w = "W[a.0>b.1]"  # A.0 (global 0) -> B.1 (global 4)
    params = _with(genome, {3 + 1}, **{w: 0.9, "W[b.1>a.2]": 0.1})
    scales = [s.scale for s in genome.decode(params).steps]
    assert scales == [1.0, pytest.approx(1.4), pytest.approx(0.6)]  # step 0: the embeddings


def test_slot_scales_belong_to_their_slot_and_fixed_ends_take_one() -> None:
    genome = _genome(scaling="slot", scale_range=(0.5, 2.5))
    params = _with(genome, {4, 7 + 4}, **{"scale[b.1]@r0": 1.0, "scale[b.1]@r1": 0.25})
    path = genome.decode(params)
    assert [(s.model, s.layer, s.slot, s.scale) for s in path.steps] == [
        (0, 0, None, 1.0), (1, 1, 4, 2.5), (1, 1, 11, 1.0), (0, 2, None, 1.0)
    ]  # fmt: skip


def test_a_path_over_max_length_is_repaired_keeping_its_first_layers() -> None:
    genome = _genome(scaling="none", max_length=5)
    everything = _with(genome, {s.index for s in genome.slots})
    path = genome.decode(everything)
    # A.0, then the first 3 on slots (A.0, A.1, A.2 of repeat 1), then A.2
    assert [(s.model, s.layer) for s in path.steps] == [(0, 0), (0, 0), (0, 1), (0, 2), (0, 2)]
    assert path.repaired == 14 - 3  # T = 7 x 2 slots, all on


def test_the_default_max_length_is_twice_a_depth() -> None:
    genome = _genome(scaling="none")
    assert len(genome.decode(_with(genome, {s.index for s in genome.slots})).steps) == 6


def test_a_path_over_the_layer_budget_keeps_only_layers_already_used() -> None:
    genome = _genome(scaling="none", layer_budget=3, max_length=10)
    on = {3 + 0, 3 + 1, 7 + 0, 7 + 3 + 0}  # B.0, B.1, then A.0 and B.0 again
    path = genome.decode(_with(genome, on))
    # ends use A.0 and A.2; B.0 is the third distinct layer; B.1 would be a fourth
    assert [(s.model, s.layer) for s in path.steps] == [(0, 0), (1, 0), (0, 0), (1, 0), (0, 2)]
    assert path.repaired == 1


def test_an_empty_path_is_rejected() -> None:
    genome = _genome(fix_ends=False, scaling="none")
    with pytest.raises(SearchError, match="path is empty"):
        genome.decode(_with(genome, set()))
    # without fixed ends, A's first and last layers are ordinary slots
    assert _path(genome, _with(genome, {3 + 3})) == [(1, 3)]
