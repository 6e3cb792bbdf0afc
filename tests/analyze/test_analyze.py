"""Diagnostics on planted task vectors with known overlap, conflicts and sparsity."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import random_state, save_model

from mergelab.analyze import analyze, collect, reading, recommend
from mergelab.analyze.reading import chance_overlap
from mergelab.cli import main
from mergelab.errors import ConfigError, PlanError

Plant = Callable[[str, dict[str, np.ndarray]], Path]


@pytest.fixture(scope="module")
def base_state() -> dict[str, torch.Tensor]:
    return random_state(0)


@pytest.fixture(scope="module")
def planted(
    base_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """base; ``a`` and ``b`` change layer 0's q_proj (32 x 32 = 1024 entries) only:

    - a: +0.5 on entries 0..199, raised to 2.0 on 0..101 (its top-102, k = int(0.1 * 1024));
    - b: +0.3 on 100..299 but -0.25 on 100..149, raised to 1.0 on 198..299 (its top-102);

    so a and b co-change entries 100..199 (100 entries), 50 of them with opposite signs.
    """
    root = tmp_path_factory.mktemp("planted")
    name = "model.layers.0.self_attn.q_proj.weight"
    n = 1024
    tau_a = np.zeros(n, dtype=np.float32)
    tau_a[:200] = 0.5
    tau_a[:102] = 2.0  # a's top-102 (int(0.1 * 1024)): entries 0..101
    tau_b = np.zeros(n, dtype=np.float32)
    tau_b[100:300] = 0.3
    tau_b[100:150] = -0.25
    tau_b[198:300] = 1.0  # b's top-102: entries 198..299
    out = {"base": save_model(root / "base", base_state)}
    for key, tau in (("a", tau_a), ("b", tau_b)):
        state = {k: v.clone() for k, v in base_state.items()}
        state[name] = state[name] + torch.from_numpy(tau.reshape(32, 32))
        out[key] = save_model(root / key, state)
    out["taus"] = root  # for reference values
    np.save(root / "tau_a.npy", tau_a)
    np.save(root / "tau_b.npy", tau_b)
    return out


def test_planted_pair_metrics(
    planted: dict[str, Path], base_state: dict[str, torch.Tensor]
) -> None:
    result = collect(planted["base"], [planted["a"], planted["b"]])
    tau_a = np.load(planted["taus"] / "tau_a.npy").astype(np.float64)
    tau_b = np.load(planted["taus"] / "tau_b.npy").astype(np.float64)
    name = "model.layers.0.self_attn.q_proj.weight"
    row = next(r for r in result.tensors if r["tensor"] == name)
    pair = row["pairs"]["a vs b"]
    cos = tau_a @ tau_b / np.sqrt((tau_a @ tau_a) * (tau_b @ tau_b))
    assert cos == pytest.approx(1.2 / np.sqrt((tau_a @ tau_a) * (tau_b @ tau_b)))  # a.b = 1.2
    assert pair["cosine"] == pytest.approx(cos, rel=1e-5)
    assert pair["sign_conflict"] == pytest.approx(50 / 100)  # 100..149 of the 100 co-changed
    # top sets 0..101 and 198..299 (102 each) do not meet: Jaccard 0
    assert pair["topk_jaccard"] == 0.0
    base_w = base_state[name].double().numpy().reshape(-1)
    a = row["models"]["a"]
    assert a["norm"] == pytest.approx(np.linalg.norm(tau_a), rel=1e-5)
    assert a["relative_change"] == pytest.approx(
        np.linalg.norm(tau_a) / np.linalg.norm(base_w), rel=1e-5
    )
    assert a["sparsity"] == pytest.approx(1 - 200 / 1024)
    # other tensors are untouched: fully sparse, no co-changed entries, no top-k set
    other = next(r for r in result.tensors if r["tensor"] == "model.norm.weight")
    assert other["models"]["a"]["sparsity"] == 1.0
    assert other["pairs"]["a vs b"] == {"cosine": None, "sign_conflict": None, "topk_jaccard": None}


def test_layer_and_model_rows_aggregate_the_tensors(planted: dict[str, Path]) -> None:
    result = collect(planted["base"], [planted["a"], planted["b"]])
    total_entries = sum(r["numel"] for r in result.tensors)
    layer0 = next(r for r in result.layers if r["layer"] == "0")
    assert layer0["numel"] == sum(r["numel"] for r in result.tensors if r["layer"] == "0")
    assert result.total["numel"] == total_entries
    assert [r["layer"] for r in result.layers] == ["pre", "0", "1", "post"]
    tau_a = np.load(planted["taus"] / "tau_a.npy").astype(np.float64)
    assert result.total["models"]["a"]["sparsity"] == pytest.approx(1 - 200 / total_entries)
    assert result.total["models"]["a"]["norm"] == pytest.approx(np.linalg.norm(tau_a), rel=1e-5)
    assert result.total["pairs"]["a vs b"]["sign_conflict"] == pytest.approx(0.5)
    assert next(r for r in result.layers if r["layer"] == "1")["models"]["a"]["norm"] == 0.0


def test_overlapping_top_k_sets(
    planted: dict[str, Path], tmp_path: Path, base_state: dict[str, torch.Tensor]
) -> None:
    # c's top-102 is 50..151: it meets a's 0..101 in 52 entries -> Jaccard 52 / 152
    name = "model.layers.0.self_attn.q_proj.weight"
    tau_c = np.zeros(1024, dtype=np.float32)
    tau_c[50:152] = -3.0
    state = {k: v.clone() for k, v in base_state.items()}
    state[name] = state[name] + torch.from_numpy(tau_c.reshape(32, 32))
    c = save_model(tmp_path / "c", state)
    result = collect(planted["base"], [planted["a"], c])
    pair = result.total["pairs"]["a vs c"]
    assert pair["topk_jaccard"] == pytest.approx(52 / 152)
    assert pair["sign_conflict"] == pytest.approx(1.0)  # every co-changed entry disagrees
    assert result.pairs == [("a", "c")]


def test_random_independent_vectors_sit_at_chance(
    base_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    from tiny_models import finetune_of

    base = save_model(tmp_path / "base", base_state)
    fts = [save_model(tmp_path / f"f{i}", finetune_of(base_state, i)) for i in (1, 2)]
    pair = collect(base, fts).total["pairs"]["f1 vs f2"]
    assert abs(pair["cosine"]) < 0.05
    assert pair["sign_conflict"] == pytest.approx(0.5, abs=0.03)
    assert pair["topk_jaccard"] == pytest.approx(chance_overlap(0.1), abs=0.02)


@pytest.mark.parametrize(
    ("pair", "method"),
    [
        ({"cosine": -0.5, "sign_conflict": 0.9, "topk_jaccard": 0.8}, "ties"),
        ({"cosine": 0.0, "sign_conflict": 0.5, "topk_jaccard": 0.05}, "task_arithmetic"),
        ({"cosine": 0.8, "sign_conflict": 0.1, "topk_jaccard": 0.7}, "linear"),
        ({"cosine": 0.05, "sign_conflict": 0.45, "topk_jaccard": 0.3}, "ties"),
        ({"cosine": 0.05, "sign_conflict": 0.2, "topk_jaccard": 0.4}, "ties"),
        ({"cosine": 0.1, "sign_conflict": 0.3, "topk_jaccard": 0.12}, "task_arithmetic"),
    ],
)
def test_recommendation_rules(pair: dict[str, float], method: str) -> None:
    assert recommend(pair, 0.1)[0] == method


def test_reading_of_the_planted_pair(planted: dict[str, Path]) -> None:
    result = collect(planted["base"], [planted["a"], planted["b"]])
    text = reading(result)
    assert "\n" not in text
    assert "changes mostly layers 0" in text
    assert "50% sign conflicts" in text
    assert "task_arithmetic" in text  # disjoint top-k sets (rule 4b)


def test_report_files(planted: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = analyze(planted["base"], [planted["a"], planted["b"]], out)
    data = json.loads((out / "analysis.json").read_text())
    assert data["models"] == ["a", "b"]
    assert data["total"] == json.loads(json.dumps(result.total))
    assert data["reading"] == (out / "reading.md").read_text().strip() == reading(result)
    for metric in (
        "norm",
        "relative_change",
        "sparsity",
        "cosine",
        "sign_conflict",
        "topk_jaccard",
    ):
        png = (out / f"{metric}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_single_finetune_has_no_pairwise_plots(planted: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "one"
    result = analyze(planted["base"], [planted["a"]], out)
    assert result.pairs == []
    assert not (out / "cosine.png").exists()
    assert (out / "norm.png").exists()
    assert "two or more fine-tunes" in reading(result)


def test_bad_input(planted: dict[str, Path], tmp_path: Path) -> None:
    deep = save_model(tmp_path / "deep", random_state(0, layers=3), layers=3)
    with pytest.raises(PlanError, match="deep has other tensors"):
        collect(planted["base"], [planted["a"], deep])
    with pytest.raises(ConfigError, match=r"top-k fraction 1\.5"):
        collect(planted["base"], [planted["a"]], top_k_fraction=1.5)
    with pytest.raises(ConfigError, match="at least one fine-tune"):
        collect(planted["base"], [])


def test_cli(
    planted: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    out = tmp_path / "cli-report"
    main(
        [
            "-q",
            "analyze",
            str(planted["base"]),
            str(planted["a"]),
            str(planted["b"]),
            "-o",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "a vs b" in printed
    assert "conflict 0.500" in printed
    assert (out / "analysis.json").is_file()
    with pytest.raises(SystemExit) as exc:
        main(["-q", "analyze", str(planted["base"]), str(planted["a"]), "-o", str(out)])
    assert exc.value.code != 0
    assert "not empty" in capsys.readouterr().err
