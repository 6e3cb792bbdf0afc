"""Uniform and greedy soups against an independent numpy reference of the algorithm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_models import WORDS, random_state, save_model, tiny_config
from transformers import LlamaForCausalLM

from mergelab.cli import main
from mergelab.errors import ConfigError, PlanError
from mergelab.soup import greedy_soup, save_soup, uniform_soup

PROBE = "model.norm.weight"  # the tensor the synthetic scores look at
N_MODELS = 5


def _state(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        out.update(load_file(shard))
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Five fine-tunes of one base, each moving every tensor by its own noise."""
    root = tmp_path_factory.mktemp("soup")
    base = random_state(0)
    out = []
    for i in range(N_MODELS):
        gen = torch.Generator().manual_seed(100 + i)
        state = {k: v + 0.3 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
        out.append(save_model(root / f"m{i}", state))
    return out


def _score_toward(target: np.ndarray):  # type: ignore[no-untyped-def]
    """score(module) = -||w - target||^2 for w = the module's PROBE weight."""

    def score(module: torch.nn.Module) -> float:
        w = module.state_dict()[PROBE].double().numpy()
        return -float(((w - target) ** 2).sum())

    return score


def _reference_greedy(probes: list[np.ndarray], target: np.ndarray) -> tuple[list[int], float]:
    """Greedy soup (Wortsman et al. Recipe 1, strict improvement) in plain numpy."""

    def score(w: np.ndarray) -> float:
        return -float(((w.astype(np.float32).astype(np.float64) - target) ** 2).sum())

    alone = [score(p) for p in probes]
    order = sorted(range(len(probes)), key=lambda i: -alone[i])
    kept, best = [order[0]], alone[order[0]]
    for i in order[1:]:
        candidate = score(np.mean([probes[j] for j in [*kept, i]], axis=0))
        if candidate > best:
            kept, best = [*kept, i], candidate
    return kept, best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_greedy_soup_matches_the_reference(models: list[Path], seed: int) -> None:
    probes = [_state(m)[PROBE].double().numpy() for m in models]
    rng = np.random.default_rng(seed)
    # targets near the mean of a random subset, so that some models help and others hurt
    subset = rng.choice(N_MODELS, size=rng.integers(2, 4), replace=False)
    target = np.mean([probes[i] for i in subset], axis=0) + rng.normal(0, 0.02, probes[0].shape)
    module = LlamaForCausalLM(tiny_config())
    result = greedy_soup([str(m) for m in models], module, _score_toward(target))
    kept, best = _reference_greedy(probes, target)
    assert result.ingredients == [str(models[i]) for i in kept]
    assert result.score == pytest.approx(best, rel=1e-6)
    assert result.score >= max(result.scores.values())  # never worse than its best ingredient
    assert [s.accepted for s in result.steps].count(True) == len(kept)
    # the final soup is the mean of the kept models, in every tensor, and is in the module
    states = [_state(models[i]) for i in kept]
    for name, tensor in result.tensors.items():
        want = np.mean([s[name].double().numpy() for s in states], axis=0)
        np.testing.assert_allclose(tensor.double().numpy(), want, rtol=0, atol=1e-6)
        torch.testing.assert_close(module.state_dict()[name], tensor)


def test_a_model_that_does_not_strictly_improve_is_dropped(
    models: list[Path], tmp_path: Path
) -> None:
    twin = tmp_path / "twin"
    save_model(twin, _state(models[0]))  # identical weights: the soup's score cannot change
    target = _state(models[0])[PROBE].double().numpy()
    module = LlamaForCausalLM(tiny_config())
    result = greedy_soup([str(twin), str(models[0])], module, _score_toward(target))
    assert len(result.ingredients) == 1
    assert [s.accepted for s in result.steps] == [True, False]
    assert result.steps[1].soup_score == result.steps[0].soup_score


def test_uniform_soup_is_the_mean(models: list[Path]) -> None:
    target = np.zeros(32)
    module = LlamaForCausalLM(tiny_config())
    seen = []
    result = uniform_soup(
        [str(m) for m in models], module, _score_toward(target), on_step=seen.append
    )
    states = [_state(m) for m in models]
    mean_probe = np.mean([s[PROBE].double().numpy() for s in states], axis=0)
    assert result.score == pytest.approx(
        -float((mean_probe.astype(np.float32).astype(np.float64) ** 2).sum()), rel=1e-6
    )
    assert len(seen) == N_MODELS
    assert result.ingredients == [str(m) for m in models]
    for name, tensor in result.tensors.items():
        want = np.mean([s[name].double().numpy() for s in states], axis=0)
        np.testing.assert_allclose(tensor.double().numpy(), want, rtol=0, atol=1e-6)


def test_saved_soup_holds_the_soup(models: list[Path], tmp_path: Path) -> None:
    module = LlamaForCausalLM(tiny_config())
    result = uniform_soup([str(m) for m in models[:2]], module, lambda m: 0.0)
    out = save_soup(result, tmp_path / "soup")
    saved = _state(out)
    assert saved.keys() == result.tensors.keys()
    assert all(torch.equal(saved[k], result.tensors[k]) for k in saved)
    record = json.loads((out / "mergelab_soup.json").read_text())
    assert record["kind"] == "uniform"
    assert record["ingredients"] == [str(m) for m in models[:2]]
    assert (out / "config.json").read_text() == (models[0] / "config.json").read_text()
    assert (out / "tokenizer.json").is_file()


def test_bad_input(models: list[Path], tmp_path: Path) -> None:
    deep = save_model(tmp_path / "deep", random_state(0, layers=3), layers=3)
    module = LlamaForCausalLM(tiny_config())
    with pytest.raises(PlanError, match="deep has other tensors"):
        greedy_soup([str(models[0]), str(deep)], module, lambda m: 0.0)
    with pytest.raises(ConfigError, match="listed twice"):
        greedy_soup([str(models[0]), str(models[0])], module, lambda m: 0.0)
    with pytest.raises(ConfigError, match="at least one model"):
        uniform_soup([], module, lambda m: 0.0)


@pytest.fixture(scope="module")
def perplexity_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task")
    rng = np.random.default_rng(0)
    words = WORDS[4:]
    for split in ("fitness", "test"):
        lines = [json.dumps({"text": " ".join(rng.choice(words, size=8))}) for _ in range(12)]
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (root / "ppl.yaml").write_text(
        "name: ppl\ntype: perplexity\nsplits: {fitness: fitness.jsonl, test: test.jsonl}\n"
    )
    return root / "ppl.yaml"


def test_cli_greedy_soup_on_a_perplexity_task(
    models: list[Path],
    perplexity_task: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mergelab.eval import evaluate_model

    monkeypatch.setenv("COLUMNS", "250")
    out = tmp_path / "greedy"
    args = [str(m) for m in models[:3]]
    main(
        [
            "-q",
            "soup",
            *args,
            "--eval",
            str(perplexity_task),
            "--greedy",
            "--metric",
            "nll",
            "-o",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "step 1:" in printed
    assert "step 3:" in printed
    assert "greedy soup, nll" in printed
    record = json.loads((out / "mergelab_soup.json").read_text())
    alone = {m: evaluate_model(m, perplexity_task, split="fitness").metrics["nll"] for m in args}
    assert record["scores"] == pytest.approx(alone, rel=1e-4)
    assert record["steps"][0]["model"] == min(alone, key=lambda m: alone[m])  # lower nll first
    assert record["score"] <= min(alone.values())  # never worse than the best ingredient
    soup_nll = evaluate_model(out, perplexity_task, split="fitness").metrics["nll"]
    assert soup_nll == pytest.approx(record["score"], rel=1e-4)


def test_cli_unknown_metric(
    models: list[Path], perplexity_task: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["-q", "soup", str(models[0]), "--eval", str(perplexity_task), "--metric", "strict"])
    assert exc.value.code != 0
    assert "no metric 'strict'" in capsys.readouterr().err
