"""Algebraic properties of the methods, checked with hypothesis on random tensors."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mergelab.methods import get_method

SETTINGS = settings(max_examples=40, deadline=None)
shapes = st.sampled_from([(1,), (5,), (3, 4), (2, 3, 2)])
seeds = st.integers(0, 2**31 - 1)
weights = st.floats(-3.0, 3.0, allow_nan=False).filter(lambda w: abs(w) > 1e-3)


def tensors(seed: int, shape: tuple[int, ...], n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(n)]


@SETTINGS
@given(seed=seeds, shape=shapes)
def test_slerp_endpoints(seed: int, shape: tuple[int, ...]) -> None:
    b, x = tensors(seed, shape, 2)
    slerp = get_method("slerp").func
    torch.testing.assert_close(slerp(b, [x], t=0.0), b, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(slerp(b, [x], t=1.0), x, rtol=1e-9, atol=1e-12)


@SETTINGS
@given(seed=seeds, shape=shapes, lam=st.sampled_from([1.0]))
def test_ties_with_one_model_density_one_weight_one_is_that_model(
    seed: int, shape: tuple[int, ...], lam: float
) -> None:
    b, x = tensors(seed, shape, 2)
    ties = get_method("ties").func
    out = ties(b, [x], weight=[1.0], density=[1.0], lambda_=lam)
    torch.testing.assert_close(out, x, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(seed=seeds, shape=shapes, n=st.integers(1, 4), data=st.data())
def test_linear_with_one_hot_weights_is_that_model(
    seed: int, shape: tuple[int, ...], n: int, data: st.DataObject
) -> None:
    xs = tensors(seed, shape, n)
    hot = data.draw(st.integers(0, n - 1))
    normalize = data.draw(st.booleans())
    w = [1.0 if i == hot else 0.0 for i in range(n)]
    out = get_method("linear").func(None, xs, weight=w, normalize=normalize)
    assert torch.equal(out, xs[hot])


@SETTINGS
@given(seed=seeds, shape=shapes, w=weights, lam=st.floats(0.1, 2.0))
def test_task_arithmetic_negate_then_add_is_the_identity(
    seed: int, shape: tuple[int, ...], w: float, lam: float
) -> None:
    b, x = tensors(seed, shape, 2)
    ta = get_method("task_arithmetic").func
    out = ta(b, [x, x], weight=[w, -w], density=[1.0, 1.0], lambda_=lam)
    torch.testing.assert_close(out, b, rtol=0, atol=1e-12)
    # and subtracting a task vector from a model that holds it gives the base back
    added = ta(b, [x], weight=[w], density=[1.0])
    removed = ta(added, [x], weight=[-w], density=[1.0])  # task vector x - added = (1-w) d
    torch.testing.assert_close(removed, added - w * (x - added), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(
    seed=seeds,
    shape=shapes,
    ws=st.lists(weights, min_size=2, max_size=4),
    c=st.floats(0.01, 100.0) | st.floats(-100.0, -0.01),
)
def test_linear_normalized_is_invariant_to_weight_scale(
    seed: int, shape: tuple[int, ...], ws: list[float], c: float
) -> None:
    if abs(sum(ws)) < 1e-3:
        ws = [*ws[:-1], ws[-1] + 1.0]
    xs = tensors(seed, shape, len(ws))
    linear = get_method("linear").func
    a = linear(None, xs, weight=ws, normalize=True)
    b = linear(None, xs, weight=[c * w for w in ws], normalize=True)
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7 * float(a.abs().max()))


@SETTINGS
@given(seed=seeds, shape=shapes, t=st.floats(0.0, 1.0))
def test_nearswap_stays_between_base_and_other(seed: int, shape: tuple[int, ...], t: float) -> None:
    b, x = tensors(seed, shape, 2)
    out = get_method("nearswap").func(b, [x], t=t)
    lo, hi = torch.minimum(b, x), torch.maximum(b, x)
    assert bool(((out >= lo - 1e-12) & (out <= hi + 1e-12)).all())
