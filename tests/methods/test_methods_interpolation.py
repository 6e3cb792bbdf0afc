"""Interpolation-family methods against plain numpy re-computations of spec/methods.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mergelab.methods import get_method


def rand(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def run(name: str, base: torch.Tensor | None, tensors: list[torch.Tensor], **params: object):
    return get_method(name).func(base, tensors, **params)


# --- linear -------------------------------------------------------------------------------


def test_linear_normalized_and_plain_weighted_sums() -> None:
    xs = [rand(i, 4, 3) for i in range(3)]
    w = [0.5, -0.2, 1.3]
    plain = sum(wi * x.numpy() for wi, x in zip(w, xs, strict=True))
    np.testing.assert_allclose(run("linear", None, xs, weight=w, normalize=False), plain)
    got = run("linear", None, xs, weight=w, normalize=True)
    np.testing.assert_allclose(got, plain / 1.6, rtol=1e-12)


def test_linear_weight_sum_near_zero_counts_as_one() -> None:
    xs = [rand(1, 5), rand(2, 5)]
    got = run("linear", None, xs, weight=[1.0, -1.0], normalize=True)
    np.testing.assert_allclose(got, xs[0].numpy() - xs[1].numpy())


# --- slerp --------------------------------------------------------------------------------


def slerp_ref(t: float, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    nb, nx = np.linalg.norm(b), np.linalg.norm(x)
    bu = b / nb if nb > 1e-8 else b
    xu = x / nx if nx > 1e-8 else x
    dot = float(np.clip(np.sum(bu * xu), -1, 1))
    if abs(dot) > 0.9995:
        return (1 - t) * b + t * x
    th = math.acos(dot)
    return (math.sin((1 - t) * th) * b + math.sin(t * th) * x) / math.sin(th)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0, 1.4])
def test_slerp_matches_formula_on_random_tensors(t: float) -> None:
    b, x = rand(1, 6, 5), rand(2, 6, 5)
    got = run("slerp", b, [x], t=t)
    np.testing.assert_allclose(got, slerp_ref(t, b.numpy(), x.numpy()), rtol=1e-10, atol=1e-12)


def test_slerp_nearly_colinear_is_lerp() -> None:
    b = rand(3, 40)
    x = 2.0 * b + 1e-3 * rand(4, 40)  # cosine > 0.9995
    got = run("slerp", b, [x], t=0.25)
    np.testing.assert_allclose(got, 0.75 * b.numpy() + 0.25 * x.numpy(), rtol=1e-12)


def test_slerp_preserves_norm_between_equal_norm_orthogonal_vectors() -> None:
    b = torch.tensor([3.0, 0.0], dtype=torch.float64)
    x = torch.tensor([0.0, 3.0], dtype=torch.float64)
    got = run("slerp", b, [x], t=1 / 3)  # 30 degrees along the arc
    np.testing.assert_allclose(got, [3 * math.cos(math.pi / 6), 3 * math.sin(math.pi / 6)])


def test_slerp_zero_base_does_not_produce_nan() -> None:
    x = rand(5, 8)
    got = run("slerp", torch.zeros(8, dtype=torch.float64), [x], t=0.5)
    np.testing.assert_allclose(got, math.sin(math.pi / 4) * x.numpy())


# --- nuslerp ------------------------------------------------------------------------------


def nuslerp_rows_ref(t: float, v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Row-by-row SLERP of 2-D arrays, written as a loop."""
    out = np.empty_like(v0)
    for r in range(v0.shape[0]):
        a, b = v0[r], v1[r]
        au = a / max(np.linalg.norm(a), 1e-7)
        bu = b / max(np.linalg.norm(b), 1e-7)
        c = float(np.clip(au @ bu, -1, 1))
        th = math.acos(c)
        if 1 - c * c <= 1e-16:
            out[r] = (1 - t) * a + t * b
        else:
            out[r] = (math.sin((1 - t) * th) * a + math.sin(t * th) * b) / math.sin(th)
    return out


def test_nuslerp_flattened_is_one_slerp_over_the_tensor() -> None:
    x1, x2 = rand(1, 4, 6), rand(2, 4, 6)
    got = run("nuslerp", None, [x1, x2], weight=[1.0, 3.0])
    ref = nuslerp_rows_ref(0.75, x1.numpy().reshape(1, -1), x2.numpy().reshape(1, -1))
    np.testing.assert_allclose(got, ref.reshape(4, 6), rtol=1e-10)


def test_nuslerp_per_row_with_a_colinear_row() -> None:
    x1 = rand(1, 4, 6)
    x2 = rand(2, 4, 6)
    x2[2] = 3.0 * x1[2]  # this row is (numerically nearly) colinear
    x1[3], x2[3] = 0.0, 0.0
    x1[3, 1], x2[3, 1] = 2.0, 5.0  # exactly colinear: sin(theta) == 0, lerp
    got = run("nuslerp", None, [x1, x2], weight=[2.0, 1.0], nuslerp_flatten=False)
    ref = nuslerp_rows_ref(1 / 3, x1.numpy(), x2.numpy())
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    np.testing.assert_allclose(got[2], (2 / 3 + 1.0) * x1[2].numpy(), rtol=1e-10)
    np.testing.assert_allclose(got[3], [0.0, 3.0, 0.0, 0.0, 0.0, 0.0], rtol=1e-12)


def test_nuslerp_row_wise_interpolates_columns() -> None:
    x1, x2 = rand(1, 4, 6), rand(2, 4, 6)
    got = run(
        "nuslerp", None, [x1, x2], weight=[1.0, 1.0], nuslerp_flatten=False, nuslerp_row_wise=True
    )
    ref = nuslerp_rows_ref(0.5, x1.numpy().T, x2.numpy().T).T
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_nuslerp_with_base_interpolates_task_vectors() -> None:
    b, x1, x2 = rand(0, 3, 5), rand(1, 3, 5), rand(2, 3, 5)
    got = run("nuslerp", b, [x1, x2], weight=[0.4, 0.6], nuslerp_flatten=False)
    d1, d2 = (x1 - b).numpy(), (x2 - b).numpy()
    np.testing.assert_allclose(got, b.numpy() + nuslerp_rows_ref(0.6, d1, d2), rtol=1e-10)


def test_nuslerp_weights_summing_to_zero_use_half() -> None:
    x1, x2 = rand(1, 10), rand(2, 10)
    got = run("nuslerp", None, [x1, x2], weight=[1.0, -1.0])
    ref = nuslerp_rows_ref(0.5, x1.numpy()[None], x2.numpy()[None])[0]
    np.testing.assert_allclose(got, ref, rtol=1e-10)


# --- multislerp ---------------------------------------------------------------------------


def multislerp_ref(xs: list[np.ndarray], w: list[float], b: np.ndarray | None) -> np.ndarray:
    eps = 1e-8
    w_arr = np.array(w) / sum(w)
    ds = [(x - b if b is not None else x).ravel() for x in xs]
    norms = [np.linalg.norm(d) for d in ds]
    us = [d / (n + eps) for d, n in zip(ds, norms, strict=True)]
    mean = sum(wi * u for wi, u in zip(w_arr, us, strict=True))
    m = mean / np.linalg.norm(mean)
    tau = sum(wi * (u - (u @ m) * m) for wi, u in zip(w_arr, us, strict=True))
    s = np.linalg.norm(tau) + eps
    r = m * math.cos(s) + tau * math.sin(s) / s
    out = (r * float(np.dot(w_arr, norms))).reshape(xs[0].shape)
    return out if b is None else b + out


@pytest.mark.parametrize("with_base", [False, True])
def test_multislerp_matches_formula(with_base: bool) -> None:
    xs = [rand(i, 3, 4) for i in range(1, 4)]
    b = rand(0, 3, 4) if with_base else None
    w = [0.2, 0.5, 0.8]
    got = run("multislerp", b, xs, weight=w)
    ref = multislerp_ref([x.numpy() for x in xs], w, None if b is None else b.numpy())
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_multislerp_cancelling_directions_fall_back_to_linear() -> None:
    x = rand(1, 6)
    b = torch.zeros(6, dtype=torch.float64)
    got = run("multislerp", b, [x, -x], weight=[1.0, 1.0])
    np.testing.assert_allclose(got, np.zeros(6), atol=1e-15)


def test_multislerp_single_model_is_returned() -> None:
    x = rand(1, 5)
    assert torch.equal(run("multislerp", rand(2, 5), [x], weight=[0.3]), x)


# --- karcher ------------------------------------------------------------------------------


def test_karcher_on_a_circle_is_the_mean_angle_times_mean_norm() -> None:
    angles, norms = [0.0, 0.3, 1.2], [1.0, 2.0, 3.0]
    xs = [
        torch.tensor([n * math.cos(a), n * math.sin(a)], dtype=torch.float64)
        for a, n in zip(angles, norms, strict=True)
    ]
    got = run("karcher", None, xs)
    np.testing.assert_allclose(got, [2.0 * math.cos(0.5), 2.0 * math.sin(0.5)], rtol=1e-9)


def test_karcher_of_orthonormal_axes_is_the_diagonal() -> None:
    xs = [torch.eye(3, dtype=torch.float64)[i] * (i + 1) for i in range(3)]
    got = run("karcher", None, xs)
    np.testing.assert_allclose(got, np.full(3, 2.0 / math.sqrt(3)), rtol=1e-9)


def test_karcher_result_is_a_critical_point_of_the_squared_geodesic_distance() -> None:
    us = [np.array(v, dtype=float) for v in ([1, 0.1, 0], [0.2, 1, 0.3], [0.1, 0.2, 1], [1, 1, 0])]
    xs = [torch.tensor(u) for u in us]
    got = run("karcher", None, xs, max_iter=50, tol=1e-12).numpy()
    m = got / np.linalg.norm(got)
    grad = np.zeros(3)  # sum_i log_m(u_i): zero exactly at the Karcher mean
    for u in us:
        u = u / np.linalg.norm(u)
        th = math.acos(np.clip(u @ m, -1, 1))
        grad += th / math.sin(th) * (u - math.cos(th) * m)
    np.testing.assert_allclose(grad, 0.0, atol=1e-9)
    euclid = sum(u / np.linalg.norm(u) for u in us)
    assert np.abs(m - euclid / np.linalg.norm(euclid)).max() > 1e-4  # not just the chordal mean
    np.testing.assert_allclose(np.linalg.norm(got), np.mean([np.linalg.norm(u) for u in us]))


def test_karcher_all_zero_inputs_give_zero() -> None:
    z = torch.zeros(4, dtype=torch.float64)
    assert torch.equal(run("karcher", None, [z, z.clone()]), z)


# --- nearswap -----------------------------------------------------------------------------


def test_nearswap_matches_elementwise_formula() -> None:
    b, x = rand(1, 5, 4), rand(2, 5, 4)
    x[0, 0] = b[0, 0]  # zero difference
    t = 0.7
    bn, xn = b.numpy(), x.numpy()
    w = np.clip(t / np.maximum(np.abs(bn - xn), 1e-6), 0, 1)
    np.testing.assert_allclose(run("nearswap", b, [x], t=t), w * xn + (1 - w) * bn, rtol=1e-12)


def test_nearswap_swaps_close_values_and_moves_far_ones_by_t() -> None:
    b = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    x = torch.tensor([0.05, -0.1, 2.0], dtype=torch.float64)
    got = run("nearswap", b, [x], t=0.1)
    np.testing.assert_allclose(got, [0.05, -0.1, 0.1])


def test_nearswap_small_threshold_on_small_differences() -> None:
    b = torch.tensor([0.0, 0.0], dtype=torch.float64)
    x = torch.tensor([1e-4, 1e-7], dtype=torch.float64)
    got = run("nearswap", b, [x], t=1e-5)  # w = 0.1, then 1e-5 / max(1e-7, 1e-6) = 10 -> 1
    np.testing.assert_allclose(got, [1e-5, 1e-7], rtol=1e-12)


# --- model_stock --------------------------------------------------------------------------


def model_stock_ref(b: np.ndarray, xs: list[np.ndarray], rows: bool) -> np.ndarray:
    bb = b.reshape(-1, b.shape[-1]) if rows else b.reshape(1, -1)
    xx = [x.reshape(bb.shape) for x in xs]
    n = len(xs)
    out = np.empty_like(bb)
    for r in range(bb.shape[0]):
        ds = [x[r] - bb[r] for x in xx]
        cosines = [
            np.clip(ds[i] @ ds[j] / max(np.linalg.norm(ds[i]) * np.linalg.norm(ds[j]), 1e-6), -1, 1)
            for i in range(n)
            for j in range(i + 1, n)
        ]
        c = float(np.mean(cosines))
        den = 1 + (n - 1) * c
        t = 0.0 if den < 1e-6 else n * c / den
        out[r] = t * np.mean([x[r] for x in xx], axis=0) + (1 - t) * bb[r]
    return out.reshape(b.shape)


@pytest.mark.parametrize("filter_wise", [False, True])
@pytest.mark.parametrize("n", [2, 3])
def test_model_stock_matches_formula(filter_wise: bool, n: int) -> None:
    b = rand(0, 4, 5)
    xs = [b + 0.1 * rand(9, 4, 5) + 0.1 * rand(i, 4, 5) for i in range(1, n + 1)]  # correlated
    got = run("model_stock", b, xs, filter_wise=filter_wise)
    ref = model_stock_ref(b.numpy(), [x.numpy() for x in xs], filter_wise)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_model_stock_ratio_for_sixty_degrees_is_two_thirds() -> None:
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    d1 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    d2 = torch.tensor([0.5, math.sqrt(3) / 2], dtype=torch.float64)  # 60 degrees from d1
    got = run("model_stock", b, [b + d1, b + d2])
    t = 2 * 0.5 / (1 + 0.5)
    np.testing.assert_allclose(got, (b + t * (d1 + d2) / 2).numpy(), rtol=1e-12)


def test_model_stock_clamps_small_norm_products_like_mergekit() -> None:
    b = torch.zeros(2, dtype=torch.float64)
    d1 = torch.tensor([1e-4, 0.0], dtype=torch.float64)
    d2 = torch.tensor([0.5e-4, math.sqrt(3) / 2 * 1e-4], dtype=torch.float64)
    got = run("model_stock", b, [d1, d2])
    cos = 0.5 * 1e-8 / 1e-6  # |d1| |d2| = 1e-8 is clamped to 1e-6
    t = 2 * cos / (1 + cos)
    np.testing.assert_allclose(got, (t * (d1 + d2) / 2).numpy(), rtol=1e-9)


def test_model_stock_opposite_task_vectors_give_the_base() -> None:
    b, d = rand(0, 6), rand(1, 6)
    got = run("model_stock", b, [b + d, b - d])  # cos = -1: 1 + (N-1) cos = 0 -> t = 0
    np.testing.assert_allclose(got, b.numpy(), rtol=1e-12)


# --- passthrough --------------------------------------------------------------------------


def test_passthrough_copies_and_scales() -> None:
    x = rand(1, 3, 2)
    assert torch.equal(run("passthrough", None, [x], scale=[1.0]), x)
    np.testing.assert_allclose(run("passthrough", None, [x], scale=[-0.5]), -0.5 * x.numpy())
