"""The local store and the ``mergelab vector`` commands, end to end on tiny models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mergelab.errors import ConfigError, OutputError, VectorError
from mergelab.vectors import TaskVector, Term, VectorStore, apply_state_dict, extract_vector
from mergelab.vectors.terms import parse_term

Cli = Callable[..., tuple[int, str, str]]
State = Callable[[Path], dict[str, torch.Tensor]]


def test_store_add_list_get_remove(tiny: dict[str, Path], tmp_path: Path) -> None:
    tv = tmp_path / "math.tv"
    extract_vector(tiny["a"], tiny["base"], tv)
    store = VectorStore(tmp_path / "store")
    assert store.entries() == []
    dest = store.add(tv)
    assert dest == tmp_path / "store" / "math.tv"
    store.add(tv, name="math-copy")
    entries = store.entries()
    assert [e.name for e in entries] == ["math", "math-copy"]
    assert all(e.meta is not None and e.meta.source.ref == str(tiny["a"]) for e in entries)
    sizes = sum(p.stat().st_size for p in tv.rglob("*") if p.is_file())
    assert entries[0].size == sizes
    with pytest.raises(OutputError, match="already holds 'math'"):
        store.add(tv)
    with pytest.raises(ConfigError, match="not usable"):
        store.add(tv, name="../escape")
    assert store.remove("math") == dest
    assert not dest.exists()
    with pytest.raises(VectorError, match="it holds: math-copy"):
        store.get("math")


def test_a_corrupt_stored_vector_is_listed_with_its_problem(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    store = VectorStore(tmp_path / "store")
    extract_vector(tiny["a"], tiny["base"], tmp_path / "v.tv")
    dest = store.add(tmp_path / "v.tv")
    (dest / "vector.json").write_text("{")
    [entry] = store.entries()
    assert entry.meta is None
    assert entry.problem is not None
    assert "corrupt" in entry.problem


def test_default_store_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MERGELAB_VECTOR_STORE", str(tmp_path / "elsewhere"))
    assert VectorStore.default().root == tmp_path / "elsewhere"
    monkeypatch.delenv("MERGELAB_VECTOR_STORE")
    assert VectorStore.default().root == Path.home() / ".mergelab" / "vectors"


@pytest.mark.parametrize(
    ("text", "source", "scale"),
    [
        ("a.tv", "a.tv", 1.0),
        ("a.tv:-0.7", "a.tv", -0.7),
        ("a.tv:2", "a.tv", 2.0),
        ("store-name:1e-1", "store-name", 0.1),
        ("dir:with:colons:0.5", "dir:with:colons", 0.5),
    ],
)
def test_parse_term(text: str, source: str, scale: float) -> None:
    assert parse_term(text) == Term(source, scale)


def test_cli_round_trip(cli: Cli, tiny: dict[str, Path], tmp_path: Path, state: State) -> None:
    store = tmp_path / "store"
    tv = tmp_path / "a.tv"
    code, out, err = cli(
        "vector",
        "extract",
        tiny["a"],
        "--base",
        tiny["base"],
        "-o",
        tv,
        "--density",
        "0.1",
        "--sparsify",
        "dare",
    )
    assert code == 0, err
    assert "dare density=0.1" in out
    assert "13.1% of the dense" in out
    assert cli("vector", "add", tv, "--store", store)[0] == 0
    code, out, _ = cli("vector", "list", "--store", store)
    assert code == 0
    assert "a" in out
    assert "dare density=0.1" in out
    code, out, _ = cli("vector", "show", "a", "--store", store)
    assert code == 0
    assert "bitmask" in out
    assert str(tiny["a"]) in out
    # apply by store name, scaled, next to a plain artifact path
    dense = tmp_path / "b.tv"
    assert cli("vector", "extract", tiny["b"], "--base", tiny["base"], "-o", dense)[0] == 0
    model = tmp_path / "equipped"
    code, out, err = cli(
        "vector", "apply", tiny["base"], "a:0.5", f"{dense}:-1", "-o", model, "--store", store
    )
    assert code == 0, err
    assert "0.5*a" in out
    assert f"- 1*{dense}" in out
    want = apply_state_dict(tiny["base"], [Term(str(store / "a.tv"), 0.5), Term(str(dense), -1.0)])
    got = state(model)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert cli("vector", "remove", "a", "--store", store)[0] == 0
    code, out, _ = cli("vector", "list", "--store", store)
    assert "holds no vectors" in out


def test_cli_analogy_and_extract_lora(
    cli: Cli, tiny: dict[str, Path], tmp_path: Path, state: State
) -> None:
    out_dir = tmp_path / "d"
    code, _, err = cli(
        "vector", "analogy", "--base", tiny["base"], "--a", tiny["a"], "--b", tiny["b"],
        "--c", tiny["c"], "--scale", "0.5", "-o", out_dir,
    )  # fmt: skip
    assert code == 0, err
    got, base = state(out_dir), state(tiny["base"])
    a, b, c = (state(tiny[n]) for n in "abc")
    for name, x in base.items():
        want = x.double() + 0.5 * (
            c[name].double() + b[name].double() - a[name].double() - x.double()
        )
        torch.testing.assert_close(got[name].double(), want, rtol=0, atol=2e-6)
    record = json.loads((out_dir / "mergelab_vectors.json").read_text())
    assert [t["scale"] for t in record["terms"]] == [0.5, 0.5, -0.5]
    assert "Analogy" in (out_dir / "README.md").read_text()
    lora = tmp_path / "lora"
    code, _out, err = cli(
        "extract-lora", tiny["a"], "--base", tiny["base"], "--rank", "2", "-o", lora
    )
    assert code == 0, err
    assert json.loads((lora / "adapter_config.json").read_text())["r"] == 2


def test_low_rank_extract_reports_its_adapter(
    cli: Cli, tiny: dict[str, Path], tmp_path: Path
) -> None:
    tv = tmp_path / "r.tv"
    code, out, err = cli(
        "vector", "extract", tiny["a"], "--base", tiny["base"], "-o", tv, "--rank", "2"
    )
    assert code == 0, err
    with TaskVector.open(tv) as vector:
        assert vector.meta.peft == "peft"
        assert vector.meta.recipe.compression == "lowrank r=2"
    code, out, _ = cli("vector", "show", tv)
    assert "lowrank" in out
    assert str(tv / "peft") in out.replace("\n", "")
