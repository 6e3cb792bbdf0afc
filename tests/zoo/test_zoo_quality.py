"""The built zoo meets the toy world's quality bars on the held-out test split.

Bars (issue "the toy world"): J-arith strict of J <= 0.15; M1/M2 strict ~0 with lenient
>= 0.3; J-read(J) >= 0.95; E-arith(M1, M2) >= 0.95; the best hand merge beats every source
on J-arith strict by >= 0.10. The MLP-only MoE experts (j-mlp, m1-mlp, e-read-mlp; the
mixture world's k-mlp, l-mlp, n-mlp) score >= 0.95 on their own tasks; the mixture world's
base reads all four of its languages and answers in E. Hand merges are weighted task-vector
sums computed here with plain tensor arithmetic, theta = theta_base + sum_i w_i (theta_i -
theta_base), the merge chosen on the fitness split and judged on the test split.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

pytestmark = pytest.mark.slow

SOURCES = ("j", "m1", "m2")
HAND_WEIGHTS = ((1.0, 0.5, 0.5), (1.0, 1.0, 0.0), (1.0, 0.0, 1.0), (1.0, 1.0, 1.0), (0.8, 0.6, 0.6))


def _score(model: torch.nn.Module, folder: Path, task: str, split: str, limit: int | None = None):
    from mergelab.eval import TaskEvaluator

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return TaskEvaluator(task, tokenizer, split=split, limit=limit)(model)


def _load(folder: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(folder).eval()


def _merge(zoo: Path, weights: tuple[float, ...]) -> torch.nn.Module:
    base = load_file(zoo / "base" / "model.safetensors")
    sources = [load_file(zoo / name / "model.safetensors") for name in SOURCES]
    merged = {
        k: v + sum(w * (s[k] - v) for w, s in zip(weights, sources, strict=True))
        for k, v in base.items()
    }
    model = _load(zoo / "base")
    model.load_state_dict(merged)
    return model


@pytest.fixture(scope="module")
def test_scores(zoo_dir: Path) -> dict[tuple[str, str], dict[str, float]]:
    out = {}
    for name, tasks in {
        "base": ("j-arith", "j-read"),
        "j": ("j-arith", "j-read"),
        "m1": ("j-arith", "e-arith"),
        "m2": ("j-arith", "e-arith"),
    }.items():
        model = _load(zoo_dir / name)
        for task in tasks:
            out[(name, task)] = _score(model, zoo_dir / name, task, "test")
    return out


def test_specialists_have_their_skills(test_scores: dict[tuple[str, str], dict[str, float]]):
    assert test_scores[("j", "j-read")]["strict"] >= 0.95
    assert test_scores[("j", "j-arith")]["strict"] <= 0.15
    for m in ("m1", "m2"):
        assert test_scores[(m, "e-arith")]["strict"] >= 0.95
        assert test_scores[(m, "j-arith")]["strict"] <= 0.02  # right number, wrong language
        assert test_scores[(m, "j-arith")]["lenient"] >= 0.3
    assert test_scores[("base", "j-read")]["strict"] <= 0.05  # the base cannot answer in J


MLP_EXPERTS = (
    ("j-mlp", "base", "j-read"),
    ("m1-mlp", "base", "e-arith"),
    ("e-read-mlp", "base", "e-read"),
    *((f"{code}-mlp", "mix-base", f"{code}-read") for code in "kln"),
)


@pytest.mark.parametrize(("name", "parent", "task"), MLP_EXPERTS)
def test_mlp_only_specialists_have_their_skills(
    zoo_dir: Path, name: str, parent: str, task: str
) -> None:
    """The MoE experts changed only MLP weights of layers 2-5, and have their skill."""
    base = load_file(zoo_dir / parent / "model.safetensors")
    tuned = load_file(zoo_dir / name / "model.safetensors")
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed
    assert all(".mlp." in k and int(k.split(".")[2]) >= 2 for k in changed), sorted(changed)
    assert _score(_load(zoo_dir / name), zoo_dir / name, task, "test", 200)["strict"] >= 0.95


@pytest.mark.parametrize("task", ["e-read", "k-read", "l-read", "n-read"])
def test_the_mixture_base_reads_every_language_and_answers_in_e(zoo_dir: Path, task: str) -> None:
    scores = _score(_load(zoo_dir / "mix-base"), zoo_dir / "mix-base", task, "test", 200)
    assert scores["lenient"] >= 0.9
    if task != "e-read":
        assert scores["strict"] <= 0.05  # the right count, in the E frame


def test_best_hand_merge_beats_every_source(
    zoo_dir: Path, test_scores: dict[tuple[str, str], dict[str, float]]
):
    fitness = {
        w: _score(_merge(zoo_dir, w), zoo_dir / "base", "j-arith", "fitness", 200)["strict"]
        for w in HAND_WEIGHTS
    }
    best = max(fitness, key=lambda w: fitness[w])
    merged = _score(_merge(zoo_dir, best), zoo_dir / "base", "j-arith", "test")["strict"]
    sources = max(test_scores[(name, "j-arith")]["strict"] for name in SOURCES)
    assert merged >= sources + 0.10, (best, merged, sources)
