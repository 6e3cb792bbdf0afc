"""Block-wise methods: the same result whatever the blocks, and exact top-k selection."""

from __future__ import annotations

import pytest
import torch

from mergelab.methods import _blocks, all_methods
from mergelab.methods._select import TopK, top_k_mask

BLOCKWISE = sorted(n for n, m in all_methods().items() if m.blockwise is not None)
TASK = {"lambda_": 0.9, "int8_mask": False}
ARGS = {
    "slerp": {"t": 0.3},
    "task_arithmetic": {**TASK, "weight": [0.7, -0.4], "density": [1.0, 1.0],
                        "normalize": False, "rescale": False},
    "ties": {**TASK, "weight": [0.7, 0.5], "density": [0.3, 0.6], "normalize": True,
             "rescale": False},
    "breadcrumbs": {**TASK, "weight": [0.7, 0.5], "density": [0.5, 0.4], "gamma": [0.1, 0.05],
                    "normalize": False, "rescale": "inverse_density"},
    "breadcrumbs_ties": {**TASK, "weight": [0.7, 0.5], "density": [0.5, 0.4],
                         "gamma": [0.1, 0.05], "normalize": False, "rescale": False},
    "dare_linear": {**TASK, "weight": [0.7, 0.5], "density": [0.5, 0.3], "normalize": False,
                    "rescale": True},
    "dare_ties": {**TASK, "weight": [0.7, 0.5], "density": [0.5, 0.3], "normalize": False,
                  "rescale": "inverse_density"},
    "della": {**TASK, "weight": [0.7, 0.5], "density": [0.5, 0.4], "epsilon": [0.1, 0.2],
              "normalize": True, "rescale": True},
    "della_linear": {**TASK, "weight": [0.7, 0.5], "density": [0.5, 0.4],
                     "epsilon": [0.1, 0.2], "normalize": False, "rescale": "inverse_density"},
}  # fmt: skip
# sums over blocks (L1 rescale, SLERP's norms) may round differently from one sum
SUMMED = {"slerp", "dare_linear", "della"}


def test_the_expected_methods_are_blockwise() -> None:
    assert sorted(ARGS) == BLOCKWISE


def run(name: str, base: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    method = all_methods()[name]
    kwargs = dict(ARGS[name])
    if method.randomized:
        kwargs["generators"] = [torch.Generator().manual_seed(7 + i) for i in range(len(inputs))]
    return method.func(base, inputs, **kwargs)


@pytest.mark.parametrize("name", BLOCKWISE)
def test_blocks_equal_one_block(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(23, 16, generator=gen)
    count = 1 if name == "slerp" else 2
    # rounded task vectors: many equal magnitudes, so ties at the top-k threshold matter
    inputs = [base + torch.randint(-4, 5, (23, 16), generator=gen) / 8 for _ in range(count)]
    whole = run(name, base, inputs)
    monkeypatch.setattr(_blocks, "BLOCK_ELEMENTS", 40)  # blocks of 2 rows: 12 blocks
    assert len(_blocks.row_blocks((23, 16))) == 12
    blocked = run(name, base, inputs)
    tolerance = 1e-6 if name in SUMMED else 0.0
    torch.testing.assert_close(blocked, whole, rtol=tolerance, atol=tolerance)


def reference_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The first k of (score descending, flat index ascending), by a stable full sort."""
    flat = scores.reshape(-1).double()
    order = torch.sort(-flat, stable=True).indices[: max(0, k)]
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    mask[order] = True
    return mask.reshape(scores.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_top_k_mask_matches_a_stable_sort(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    for trial in range(40):
        n = int(torch.randint(1, 200, (1,), generator=gen))
        if trial % 2:  # few distinct values: many ties
            scores = (torch.randint(0, 5, (n,), generator=gen) / 4).to(dtype)
        else:
            scores = torch.rand(n, generator=gen, dtype=torch.float64).to(dtype)
        for k in (0, 1, n // 3, n - 1, n, n + 2):
            assert torch.equal(top_k_mask(scores, k), reference_top_k(scores, k)), (n, k)


@pytest.mark.parametrize("tied", ["some", "all"])
def test_top_k_over_blocks_keeps_tied_entries_in_flat_order(tied: str) -> None:
    gen = torch.Generator().manual_seed(2)
    scores = torch.randint(0, 7, (5000,), generator=gen).float() / 2  # 7 values, many ties
    # some: the entries tied at the threshold are kept in part, in flat order; all: k is the
    # count of positive scores, so every entry equal to the threshold (the least) is kept
    k = 1777 if tied == "some" else int((scores > 0).sum())
    select = TopK(5000, k, torch.float32)
    blocks = scores.split(333)
    for step in range(select.passes):
        for block in reversed(blocks):  # observing needs no order
            select.observe(step, block)
        select.end_pass(step)
    for _ in range(2):  # restart: taking the factors again gives the same mask
        mask = torch.cat([select.factors(block) for block in blocks]) > 0
        select.restart()
        assert int(mask.sum()) == k
        assert torch.equal(mask, reference_top_k(scores, k))
