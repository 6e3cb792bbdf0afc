"""Contract checks run on every registered method, so a new method is checked on arrival.

Identity: every built-in method returns ``x`` when the base and all inputs are ``x``:
interpolations of equal points are that point, task vectors of equal models are zero. The
promise holds with default parameters (plus the sample values below); it would not for
``linear`` with ``normalize: false`` (gives ``sum(w) x``) or ``passthrough`` with a scale,
which is why those parameters keep their defaults here. ``multislerp`` and ``karcher``
re-normalise with an epsilon, so they meet it to float rounding; hence ``allclose``.
A method that cannot promise it must be listed in ``NO_IDENTITY`` with its reason.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
import torch

from mergelab.methods import MergeMethod, all_methods, describe_methods

METHODS = all_methods()
NO_IDENTITY: dict[str, str] = {}
# values that exercise sparsifiers (the defaults of density/select_topk keep everything)
SAMPLE = {"density": 0.5, "select_topk": 0.5, "weight": 0.6, "t": 0.4}


def n_models(method: MergeMethod) -> int:
    n = max(method.min_models, 3)
    return n if method.max_models is None else min(n, method.max_models)


def kwargs_for(method: MergeMethod, n: int, seed: int = 0) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for p in method.params:
        value = SAMPLE.get(p.name, None if p.required else p.default)
        assert value is not None, f"add a sample value for required {method.name}.{p.name}"
        if p.per_model:  # distinct weights per model; other per-model values shared
            kwargs[p.kwarg] = [value + 0.1 * i if p.name == "weight" else value for i in range(n)]
        else:
            kwargs[p.kwarg] = value
    if method.randomized:
        kwargs["generators"] = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    return kwargs


def inputs(method: MergeMethod, shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = n_models(method)
    base = torch.randn(shape, generator=g, dtype=dtype)
    xs = [base + torch.randn(shape, generator=g, dtype=dtype) for _ in range(n)]
    return (None if method.base in ("ignored", "none") else base), xs


def call(method: MergeMethod, base: Any, xs: list[torch.Tensor], seed: int = 0) -> torch.Tensor:
    return method.func(base, xs, **kwargs_for(method, len(xs), seed))


def test_the_catalogue_is_registered() -> None:
    expected = {
        "linear", "slerp", "nuslerp", "multislerp", "karcher", "nearswap", "model_stock",
        "passthrough", "task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs",
        "breadcrumbs_ties", "della", "della_linear", "sce",
    }  # fmt: skip
    assert expected <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_signature_matches_declared_params(name: str) -> None:
    method = METHODS[name]
    # a block-wise method declares its parameters on its factory (shape, dtype, *, params)
    sig = inspect.signature(method.blockwise or method.func)
    positional = [p for p in sig.parameters.values() if p.kind is not p.KEYWORD_ONLY]
    expected = ["shape", "dtype"] if method.blockwise else ["base", "tensors"]
    assert [p.name for p in positional] == expected
    keyword = {p.name: p for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}
    declared = {p.kwarg for p in method.params} | ({"generators"} if method.randomized else set())
    assert set(keyword) == declared
    for p in method.params:
        default = keyword[p.kwarg].default
        if p.required or p.per_model:
            assert default is inspect.Parameter.empty, p.name  # always passed by the engine
        else:
            assert default == p.default, p.name
            assert type(default) is type(p.default), p.name


@pytest.mark.parametrize("name", METHODS)
def test_param_metadata_is_consistent(name: str) -> None:
    method = METHODS[name]
    assert method.summary
    assert method.min_models >= 1
    assert method.max_models is None or method.max_models >= method.min_models
    for p in method.params:
        assert p.doc, p.name
        if p.required:
            continue
        if p.choices is not None:
            assert p.default in p.choices
        if p.kind in ("float", "int"):
            assert p.low is None or p.default >= p.low
            assert p.high is None or p.default <= p.high


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(7,), (5, 6), (2, 3, 4)])
@pytest.mark.parametrize("name", METHODS)
def test_shape_and_dtype_are_kept(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    method = METHODS[name]
    base, xs = inputs(method, shape, dtype)
    out = call(method, base, xs)
    assert out.shape == shape
    assert out.dtype == dtype
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", METHODS)
def test_model_count_bounds_are_served(name: str) -> None:
    method = METHODS[name]
    for n in {method.min_models, method.max_models or method.min_models + 2}:
        base, xs = inputs(method, (4, 3), torch.float32)
        xs = (xs * n)[:n]
        assert call(method, base, xs).shape == (4, 3)


@pytest.mark.parametrize("name", METHODS)
def test_inputs_are_not_modified(name: str) -> None:
    method = METHODS[name]
    base, xs = inputs(method, (6, 5), torch.float64)
    before = [t.clone() for t in ([base] if base is not None else []) + xs]
    call(method, base, xs)
    after = ([base] if base is not None else []) + xs
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("name", [n for n in METHODS if n not in NO_IDENTITY])
def test_identical_inputs_give_that_input(name: str) -> None:
    method = METHODS[name]
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    n = n_models(method)
    base = None if method.base in ("ignored", "none") else x.clone()
    out = call(method, base, [x.clone() for _ in range(n)])
    torch.testing.assert_close(out, x, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("name", METHODS)
def test_deterministic_under_seeded_generators_and_blind_to_global_rng(name: str) -> None:
    method = METHODS[name]
    base, xs = inputs(method, (8, 9), torch.float32)
    torch.manual_seed(1)
    first = call(method, base, xs, seed=42)
    torch.manual_seed(2)
    second = call(method, base, xs, seed=42)
    assert torch.equal(first, second)
    if method.randomized:  # the draws come from the injected generators
        assert not torch.equal(first, call(method, base, xs, seed=7))


@pytest.mark.parametrize("zeros_everywhere", [False, True])
@pytest.mark.parametrize("name", METHODS)
def test_zero_deltas_and_zero_norms_give_finite_results(name: str, zeros_everywhere: bool) -> None:
    method = METHODS[name]
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))
    if zeros_everywhere:
        x = torch.zeros(4, 6)
    n = n_models(method)
    base = None if method.base in ("ignored", "none") else x.clone()
    out = call(method, base, [x.clone() for _ in range(n)])
    assert torch.isfinite(out).all()
    if zeros_everywhere and name not in NO_IDENTITY:
        assert torch.equal(out, torch.zeros(4, 6))


def test_describe_methods_lists_every_method_as_plain_data() -> None:
    described = describe_methods()
    assert [d["name"] for d in described] == sorted(METHODS)
    json.dumps(described)  # serialisable for `mergelab methods --json`
    ties = next(d for d in described if d["name"] == "ties")
    assert ties["base"] == "required"
    params = {p["name"]: p for p in ties["params"]}
    assert params["weight"]["required"]
    assert params["weight"]["per_model"]
    assert params["density"]["default"] == 1.0
    assert params["rescale"]["kind"] == "bool_or_str"
    assert "inverse_density" in params["rescale"]["doc"]
    assert params["rescale"]["choices"] == [False, True, "l1", "inverse_density"]
