"""Task-arithmetic family (and sce) against plain references written from spec/methods.md.

The references below use numpy and explicit loops; random masks are re-derived from the
model's generator by ``keep_masks.reference_keep_mask``, an independent reading of the draws
``mergelab.methods._draws`` documents.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from keep_masks import reference_keep_mask

from mergelab.errors import ConfigError
from mergelab.methods import get_method


def rand(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def run(name: str, base: torch.Tensor, xs: list[torch.Tensor], **params: object) -> np.ndarray:
    method = get_method(name)
    full = {p.kwarg: p.default for p in method.params if not p.required and not p.per_model}
    for p in method.params:
        if p.per_model and not p.required:
            full[p.kwarg] = [p.default] * len(xs)
    full.update(params)
    return method.func(base, xs, **full).numpy()


# --- reference pieces ---------------------------------------------------------------------


def ref_rescale(d: np.ndarray, kept: np.ndarray, mode: object, prob: object) -> np.ndarray:
    if mode is False:
        return kept
    if mode is True or mode == "l1":
        before, after = np.abs(d).sum(), np.abs(kept).sum()
        return kept if before < 1e-7 or after < 1e-7 else kept * (before / after)
    return kept / prob


def ref_topk_order(d: np.ndarray) -> np.ndarray:
    """Flat indices by magnitude descending, ties by index ascending."""
    return np.argsort(-np.abs(d).ravel(), kind="stable")


def ref_magnitude(d: np.ndarray, density: float, mode: object = False) -> np.ndarray:
    if density >= 1:
        return d
    k = max(1, int(density * d.size))
    keep = np.zeros(d.size, bool)
    keep[ref_topk_order(d)[:k]] = True
    return ref_rescale(d, np.where(keep.reshape(d.shape), d, 0.0), mode, density)


def ref_outliers(d: np.ndarray, density: float, gamma: float, mode: object = False) -> np.ndarray:
    if density >= 1:
        return d
    n = d.size
    n_keep, n_drop = int(density * n), int(gamma * n)
    n_drop = min(n_drop, n - n_keep)
    keep = np.zeros(n, bool)
    keep[ref_topk_order(d)[n_drop : n_drop + n_keep]] = True
    return ref_rescale(d, np.where(keep.reshape(d.shape), d, 0.0), mode, density)


def ref_random(d: np.ndarray, density: float, mode: object, seed: int) -> np.ndarray:
    if density >= 1:
        return d
    mask = reference_keep_mask(torch.Generator().manual_seed(seed), d.shape, density)
    kept = np.where(mask, d, 0.0)
    return ref_rescale(d, kept, mode, density)


def ref_della_probs(rows: np.ndarray, density: float, eps: float) -> np.ndarray:
    p = np.empty_like(rows)
    length = rows.shape[1]
    for r in range(rows.shape[0]):
        order = np.argsort(np.abs(rows[r]), kind="stable")  # ascending magnitude
        for rank, j in enumerate(order):
            p[r, j] = (density - eps) + 2 * eps * rank / (length - 1)
    return p


def ref_della(d: np.ndarray, density: float, eps: float, mode: object, seed: int) -> np.ndarray:
    rows = d.reshape(-1, d.shape[-1]) if d.ndim >= 2 else d.reshape(1, -1)
    p = ref_della_probs(rows, density, eps)
    mask = reference_keep_mask(torch.Generator().manual_seed(seed), rows.shape, p)
    kept = np.where(mask, rows, 0.0)
    return ref_rescale(rows, kept, mode, p).reshape(d.shape)


def ref_combine(
    b: np.ndarray,
    sparse: list[np.ndarray],
    w: list[float],
    *,
    sign: bool,
    normalize: bool,
    lam: float = 1.0,
) -> np.ndarray:
    """Steps 4-7 of the spec, entry by entry."""
    out = np.empty(b.size)
    flat = [s.ravel() for s in sparse]
    for j in range(b.size):
        vals = [f[j] * wi for f, wi in zip(flat, w, strict=True)]
        if sign:
            s = 1.0 if sum(vals) >= 0 else -1.0
            agree = [v != 0 and math.copysign(1.0, v) == s for v in vals]
            mixed = sum(v for v, a in zip(vals, agree, strict=True) if a)
            div = sum(wi for wi, a in zip(w, agree, strict=True) if a)
            div = 1.0 if div == 0 else div
        else:
            mixed = sum(vals)
            div = sum(w) if abs(sum(w)) >= 1e-8 else 1.0
        out[j] = b.ravel()[j] + lam * (mixed / div if normalize else mixed)
    return out.reshape(b.shape)


@pytest.fixture
def models() -> tuple[torch.Tensor, list[torch.Tensor]]:
    base = rand(0, 6, 5)
    return base, [base + rand(i, 6, 5) for i in (1, 2, 3)]


WEIGHTS = [0.7, -0.4, 1.2]
DENSITIES = [0.5, 0.3, 0.8]


def deltas(base: torch.Tensor, xs: list[torch.Tensor]) -> list[np.ndarray]:
    return [(x - base).numpy() for x in xs]


# --- whole methods against the reference --------------------------------------------------


@pytest.mark.parametrize("normalize", [False, True])
def test_task_arithmetic(models: tuple[torch.Tensor, list[torch.Tensor]], normalize: bool) -> None:
    base, xs = models
    got = run("task_arithmetic", base, xs, weight=WEIGHTS, normalize=normalize, lambda_=0.8)
    ref = ref_combine(
        base.numpy(), deltas(base, xs), WEIGHTS, sign=False, normalize=normalize, lam=0.8
    )
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rescale", [False, True, "inverse_density"])
def test_ties(models: tuple[torch.Tensor, list[torch.Tensor]], rescale: object) -> None:
    base, xs = models
    got = run("ties", base, xs, weight=WEIGHTS, density=DENSITIES, rescale=rescale)
    sparse = [
        ref_magnitude(d, k, rescale) for d, k in zip(deltas(base, xs), DENSITIES, strict=True)
    ]
    ref = ref_combine(base.numpy(), sparse, WEIGHTS, sign=True, normalize=True)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["dare_linear", "dare_ties"])
@pytest.mark.parametrize("rescale", [False, True, "l1", "inverse_density"])
def test_dare(models: tuple[torch.Tensor, list[torch.Tensor]], name: str, rescale: object) -> None:
    base, xs = models
    got = run(
        name, base, xs, weight=WEIGHTS, density=DENSITIES, rescale=rescale, generators=gens(5, 6, 7)
    )
    sparse = [
        ref_random(d, k, rescale, s)
        for d, k, s in zip(deltas(base, xs), DENSITIES, (5, 6, 7), strict=True)
    ]
    ref = ref_combine(base.numpy(), sparse, WEIGHTS, sign=name == "dare_ties", normalize=False)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_dare_rescale_modes_differ_as_specified() -> None:
    base = torch.zeros(2000, dtype=torch.float64)
    x = rand(1, 2000)
    l1 = run("dare_linear", base, [x], weight=[1.0], density=[0.3], generators=gens(9))
    inv = run(
        "dare_linear",
        base,
        [x],
        weight=[1.0],
        density=[0.3],
        rescale="inverse_density",
        generators=gens(9),
    )
    kept = l1 != 0
    np.testing.assert_array_equal(kept, inv != 0)  # same mask from the same draws
    np.testing.assert_allclose(np.abs(l1).sum(), np.abs(x.numpy()).sum())  # L1 norm restored
    np.testing.assert_allclose(inv[kept], x.numpy()[kept] / 0.3)  # 1 / density
    assert abs(kept.mean() - 0.3) < 0.04  # Bernoulli(0.3): 2000 draws, sd ~0.01


@pytest.mark.parametrize("name", ["breadcrumbs", "breadcrumbs_ties"])
def test_breadcrumbs(models: tuple[torch.Tensor, list[torch.Tensor]], name: str) -> None:
    base, xs = models
    gammas = [0.1, 0.05, 0.2]
    got = run(name, base, xs, weight=WEIGHTS, density=DENSITIES, gamma=gammas)
    sparse = [
        ref_outliers(d, k, g) for d, k, g in zip(deltas(base, xs), DENSITIES, gammas, strict=True)
    ]
    ref = ref_combine(base.numpy(), sparse, WEIGHTS, sign=name.endswith("ties"), normalize=False)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["della", "della_linear"])
@pytest.mark.parametrize("rescale", [False, True, "inverse_density"])
def test_della(models: tuple[torch.Tensor, list[torch.Tensor]], name: str, rescale: object) -> None:
    base, xs = models
    dens, eps = [0.5, 0.4, 0.6], [0.2, 0.1, 0.3]
    got = run(
        name,
        base,
        xs,
        weight=WEIGHTS,
        density=dens,
        epsilon=eps,
        rescale=rescale,
        generators=gens(11, 12, 13),
    )
    sparse = [
        ref_della(d, k, e, rescale, s)
        for d, k, e, s in zip(deltas(base, xs), dens, eps, (11, 12, 13), strict=True)
    ]
    ref = ref_combine(
        base.numpy(), sparse, WEIGHTS, sign=name == "della", normalize=name == "della"
    )
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_della_one_dimensional_tensor_is_one_row() -> None:
    base, x = torch.zeros(9, dtype=torch.float64), rand(3, 9)
    got = run(
        "della_linear",
        base,
        [x],
        weight=[1.0],
        density=[0.5],
        epsilon=[0.2],
        rescale="inverse_density",
        generators=gens(4),
    )
    np.testing.assert_allclose(got, ref_della(x.numpy(), 0.5, 0.2, "inverse_density", 4))


# --- consensus rules ----------------------------------------------------------------------


def one_entry(*values: float) -> list[torch.Tensor]:
    return [torch.tensor([v], dtype=torch.float64) for v in values]


ZERO = torch.zeros(1, dtype=torch.float64)


def test_sign_election_uses_weighted_mass_not_a_count() -> None:
    # two small positive votes, one large negative: a count elects +, the mass elects -
    got = run("ties", ZERO, one_entry(1.0, 1.0, -5.0), weight=[1.0, 1.0, 1.0], density=[1.0] * 3)
    np.testing.assert_allclose(got, [-5.0])
    # weights enter the mass: scaling the negative model down flips the election
    got = run("ties", ZERO, one_entry(1.0, 1.0, -5.0), weight=[1.0, 1.0, 0.1], density=[1.0] * 3)
    np.testing.assert_allclose(got, [1.0])  # (1 + 1) / (1 + 1)


def test_zero_mass_elects_the_positive_sign() -> None:
    got = run("ties", ZERO, one_entry(1.0, -1.0), weight=[1.0, 1.0], density=[1.0, 1.0])
    np.testing.assert_allclose(got, [1.0])


def test_zero_entries_never_agree() -> None:
    got = run("ties", ZERO, one_entry(2.0, 0.0), weight=[1.0, 3.0], density=[1.0, 1.0])
    np.testing.assert_allclose(got, [2.0])  # divisor 1, not 1 + 3


def test_sign_divisor_zero_becomes_one() -> None:
    # w d = (1)(1) and (-1)(-1) agree; their weights sum to 0 -> divisor 1
    got = run("ties", ZERO, one_entry(1.0, -1.0), weight=[1.0, -1.0], density=[1.0, 1.0])
    np.testing.assert_allclose(got, [2.0])


def test_sum_divisor_near_zero_becomes_one() -> None:
    got = run("task_arithmetic", ZERO, one_entry(3.0, 1.0), weight=[1.0, -1.0], normalize=True)
    np.testing.assert_allclose(got, [2.0])


def test_negative_weight_subtracts_a_task() -> None:
    base, x = rand(0, 7), rand(1, 7)
    got = run("task_arithmetic", base, [x], weight=[-0.5])
    np.testing.assert_allclose(got, (base - 0.5 * (x - base)).numpy(), rtol=1e-12)


# --- sparsifier details -------------------------------------------------------------------


def test_magnitude_ties_keep_the_lowest_indices() -> None:
    d = torch.tensor([1.0, -1.0, 1.0, 1.0, 0.5, 2.0], dtype=torch.float64)
    got = run("ties", torch.zeros(6, dtype=torch.float64), [d], weight=[1.0], density=[0.5])
    np.testing.assert_array_equal(got, [1.0, -1.0, 0.0, 0.0, 0.0, 2.0])


def test_magnitude_keeps_at_least_one_entry() -> None:
    d = torch.tensor([0.1, -3.0, 0.2], dtype=torch.float64)
    got = run("ties", torch.zeros(3, dtype=torch.float64), [d], weight=[1.0], density=[0.0])
    np.testing.assert_array_equal(got, [0.0, -3.0, 0.0])


def test_l1_rescale_is_skipped_below_the_norm_threshold() -> None:
    d = torch.full((10,), 1e-9, dtype=torch.float64)  # |d|_1 = 1e-8 < 1e-7
    got = run(
        "ties", torch.zeros(10, dtype=torch.float64), [d], weight=[1.0], density=[0.5], rescale=True
    )
    np.testing.assert_array_equal(got, [1e-9] * 5 + [0.0] * 5)


def test_breadcrumbs_drops_the_top_gamma_and_keeps_the_next_density() -> None:
    values = np.arange(1.0, 101.0)
    perm = np.random.default_rng(0).permutation(100)
    d = torch.tensor(values[perm])
    got = run(
        "breadcrumbs",
        torch.zeros(100, dtype=torch.float64),
        [d],
        weight=[1.0],
        density=[0.5],
        gamma=[0.05],
    )
    kept = np.sort(got[got != 0])
    np.testing.assert_array_equal(kept, np.arange(46.0, 96.0))  # 96..100 dropped, 1..45 zeroed


def test_breadcrumbs_density_plus_gamma_above_one_drops_fewer_outliers() -> None:
    d = torch.arange(1.0, 101.0, dtype=torch.float64)
    got = run(
        "breadcrumbs",
        torch.zeros(100, dtype=torch.float64),
        [d],
        weight=[1.0],
        density=[0.98],
        gamma=[0.05],
    )
    np.testing.assert_array_equal(got, np.r_[np.arange(1.0, 99.0), 0.0, 0.0])


def test_breadcrumbs_gamma_below_one_entry_drops_no_outlier() -> None:
    d = torch.arange(1.0, 51.0, dtype=torch.float64)  # int(0.01 * 50) == 0
    got = run("breadcrumbs", torch.zeros(50, dtype=torch.float64), [d], weight=[1.0], density=[0.5])
    np.testing.assert_array_equal(got, np.r_[np.zeros(25), np.arange(26.0, 51.0)])


def test_della_keep_rate_per_rank_matches_its_probability() -> None:
    rows, length, density, eps = 4000, 9, 0.5, 0.2
    rng = np.random.default_rng(1)
    ranks = np.stack([rng.permutation(length) for _ in range(rows)])  # rank of each entry
    signs = rng.choice([-1.0, 1.0], size=(rows, length))
    d = torch.tensor((ranks + 1.0) * signs)
    got = run(
        "della_linear",
        torch.zeros(rows, length, dtype=torch.float64),
        [d],
        weight=[1.0],
        density=[density],
        epsilon=[eps],
        rescale=False,
        generators=gens(21),
    )
    kept = got != 0
    for r in range(length):
        rate = kept[ranks == r].mean()
        expected = (density - eps) + 2 * eps * r / (length - 1)
        assert abs(rate - expected) < 0.04, (r, rate, expected)  # sd ~0.008 per rank


def test_della_rejects_a_probability_range_outside_zero_one() -> None:
    base, x = rand(0, 4, 4), rand(1, 4, 4)
    with pytest.raises(ConfigError, match="epsilon"):
        run("della", base, [x], weight=[1.0], density=[0.1], epsilon=[0.15], generators=gens(1))
    with pytest.raises(ConfigError, match="epsilon"):
        run("della", base, [x], weight=[1.0], density=[0.9], epsilon=[0.15], generators=gens(1))


def test_della_density_one_keeps_everything_whatever_epsilon() -> None:
    base, x = rand(0, 4, 4), rand(1, 4, 4)
    got = run("della", base, [x], weight=[1.0], density=[1.0], epsilon=[0.3], generators=gens(1))
    np.testing.assert_allclose(got, x.numpy(), rtol=1e-12)


def test_unknown_rescale_mode_is_a_config_error() -> None:
    base, x = rand(0, 3), rand(1, 3)
    with pytest.raises(ConfigError, match="rescale='l2'"):
        run("ties", base, [x], weight=[1.0], density=[0.5], rescale="l2")


def test_int8_mask_changes_nothing(models: tuple[torch.Tensor, list[torch.Tensor]]) -> None:
    base, xs = models
    a = run("ties", base, xs, weight=WEIGHTS, density=DENSITIES, int8_mask=False)
    b = run("ties", base, xs, weight=WEIGHTS, density=DENSITIES, int8_mask=True)
    np.testing.assert_array_equal(a, b)


# --- sce ----------------------------------------------------------------------------------


def ref_sce(b: np.ndarray, xs: list[np.ndarray], topk: float) -> np.ndarray:
    ds = np.stack([x - b for x in xs])
    if topk < 1:
        var = ds.var(axis=0)
        k = int(topk * np.count_nonzero(var))
        keep = np.zeros(var.size, bool)
        keep[np.argsort(-var.ravel(), kind="stable")[:k]] = True
        ds = ds * keep.reshape(var.shape)
    energy = np.array([np.mean(d**2) for d in ds])
    w = energy / energy.sum() if energy.sum() >= 1e-6 else np.full(len(ds), 1 / len(ds))
    s = np.where(ds.sum(axis=0) >= 0, 1.0, -1.0)
    m = (np.sign(ds) == s).astype(float)
    num = (w[:, None, None] * m * ds).sum(axis=0)
    den = (w[:, None, None] * m).sum(axis=0)
    return b + num / np.maximum(den, 1e-6)


@pytest.mark.parametrize("topk", [1.0, 0.4])
def test_sce(models: tuple[torch.Tensor, list[torch.Tensor]], topk: float) -> None:
    base, xs = models
    got = run("sce", base, xs, select_topk=topk)
    ref = ref_sce(base.numpy(), [x.numpy() for x in xs], topk)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_sce_divisor_is_clamped_at_one_millionth() -> None:
    # model 2 agrees alone at entry 0 with a weight ~ 1e-8: its update is damped, not averaged
    base = torch.zeros(2, dtype=torch.float64)
    x1 = torch.tensor([0.0, 1.0], dtype=torch.float64)
    x2 = torch.tensor([1e-4, 0.0], dtype=torch.float64)
    w2 = 1e-8 / (1.0 + 1e-8)  # mean(d_i^2): 0.5 and 0.5e-8, normalised
    got = run("sce", base, [x1, x2])
    np.testing.assert_allclose(got, [w2 * 1e-4 / 1e-6, 1.0], rtol=1e-9)
