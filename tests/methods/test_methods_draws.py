"""Random keep masks (``methods._draws``): the documented draws, exact probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from keep_masks import reference_keep_mask

from mergelab.methods._draws import keep_mask


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 0.5, 0.9999, 1.0, 1.5, -0.2])
def test_mask_is_the_documented_draw(p: float) -> None:
    # 2^20 entries: a few dozen hit the threshold's high half and draw their low half
    got = keep_mask((1024, 1024), p, gen(3)).numpy()
    np.testing.assert_array_equal(got, reference_keep_mask(gen(3), (1024, 1024), p))


def test_ties_draw_their_low_half() -> None:
    # p = 0.3: T = floor(0.3 * 2^32) has a nonzero low half, so entries whose high half
    # equals T's are decided by a second draw; with the low half ignored they would all be
    # dropped, and the masks would differ there
    n = 2**22
    got = keep_mask((n,), 0.3, gen(5))
    threshold = int(0.3 * 2**32)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None, generator=gen(5))
    hi = words.view(torch.int16)[:n].to(torch.int64) + 2**15
    tied = hi == threshold >> 16
    assert int(tied.sum()) > 20
    assert 0 < int(got[tied].sum()) < int(tied.sum())  # some tied entries kept, some not
    assert torch.equal(got[~tied], (hi < threshold >> 16)[~tied])


def test_tensor_probabilities_follow_each_entry() -> None:
    p = torch.linspace(0, 1, 4096, dtype=torch.float64).repeat(64, 1)
    got = keep_mask(p.shape, p, gen(7)).numpy()
    np.testing.assert_array_equal(got, reference_keep_mask(gen(7), tuple(p.shape), p.numpy()))
    assert not got[:, 0].any()  # p = 0: never kept
    assert got[:, -1].all()  # p = 1: always


def test_keep_rate_matches_the_probability() -> None:
    n = 2**21
    for p in (0.05, 0.5, 0.77):
        rate = float(keep_mask((n,), p, gen(11)).double().mean())
        assert abs(rate - p) < 4 * (p * (1 - p) / n) ** 0.5  # within 4 standard errors


def test_the_same_generator_state_gives_the_same_mask() -> None:
    first = keep_mask((300, 7), 0.4, gen(1))
    assert torch.equal(first, keep_mask((300, 7), 0.4, gen(1)))
    assert not torch.equal(first, keep_mask((300, 7), 0.4, gen(2)))
