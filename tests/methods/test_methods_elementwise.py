"""Methods declared elementwise give the same result on any split of their inputs."""

from __future__ import annotations

import pytest
import torch

from mergelab.methods import all_methods

ELEMENTWISE = sorted(n for n, m in all_methods().items() if m.elementwise)
ARGS = {
    "linear": {"weight": [0.3, 0.9], "normalize": True},
    "nearswap": {"t": 0.05},
    "passthrough": {"scale": [0.5]},
}


def test_the_expected_methods_are_elementwise() -> None:
    assert sorted(ARGS) == ELEMENTWISE


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_blocks_equal_whole(name: str) -> None:
    method = all_methods()[name]
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(10, 6, generator=gen)
    count = 1 if name in ("passthrough", "nearswap") else 2
    inputs = [base + 0.1 * torch.randn(10, 6, generator=gen) for _ in range(count)]
    use_base = None if method.base in ("ignored", "none") else base
    whole = method.func(use_base, inputs, **ARGS[name])
    parts = []
    for rows in (slice(0, 3), slice(3, 4), slice(4, 10)):
        part_base = None if use_base is None else use_base[rows]
        parts.append(method.func(part_base, [x[rows] for x in inputs], **ARGS[name]))
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)
