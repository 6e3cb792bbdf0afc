"""The quality bar of mixtures of experts on the toy zoo, run on docs/moe.md's example.

Bar (issue "mixture of experts"): an MoE of the world's specialists with prompts written from
each skill's inputs routes >= 90% of held-out prompts to their own expert, and on each
specialist's own task (test split) keeps >= 90% of that specialist's accuracy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from mergelab.eval import TaskEvaluator
from mergelab.moe import build_moe
from mergelab.zoo.tasks import TASKS_DIR

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "moe.md"
ITEMS = 200


def doc_example() -> dict[str, Any]:
    """The YAML block after the ``<!-- zoo-example -->`` marker of docs/moe.md."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- zoo-example -->\n```yaml\n(.*?)```", text, re.S)
    assert found, "docs/moe.md has no zoo example"
    return yaml.safe_load(found.group(1))


def _strict(folder: Path, task: str) -> float:
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    evaluate = TaskEvaluator(task, AutoTokenizer.from_pretrained(folder), split="test", limit=ITEMS)
    return evaluate(model)["strict"]


@pytest.fixture(scope="module")
def built(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    config = doc_example()
    root = zoo_dir.parent
    config["base_model"] = str(root / config["base_model"])
    for expert in config["experts"]:
        expert["source_model"] = str(root / expert["source_model"])
    out = tmp_path_factory.mktemp("zoo-moe") / "moe"
    return build_moe(config, out, report=True), out


def test_the_example_prompts_are_each_skills_fitness_inputs() -> None:
    for expert in doc_example()["experts"]:
        lines = (TASKS_DIR / f"{expert['eval_task']}.fitness.jsonl").read_text(encoding="utf-8")
        inputs = [json.loads(line)["prompt"] for line in lines.splitlines()]
        assert expert["positive_prompts"] == inputs[: len(expert["positive_prompts"])]


def test_routing_accuracy_on_held_out_prompts(built: tuple[Any, Path]) -> None:
    result, _ = built
    accuracy = result.report.accuracy()
    print(f"routing accuracy {accuracy:.3f}", [result.report.accuracy(e) for e in range(3)])
    assert accuracy >= 0.90
    assert not result.warnings, result.warnings


@pytest.mark.parametrize("index", range(3))
def test_the_mixture_keeps_each_specialists_skill(
    zoo_dir: Path, built: tuple[Any, Path], index: int
) -> None:
    _, out = built
    expert = doc_example()["experts"][index]
    task = expert["eval_task"]
    alone = _strict(zoo_dir.parent / expert["source_model"], task)
    mixed = _strict(out, task)
    print(f"{task}: specialist {alone:.3f}, mixture {mixed:.3f}")
    assert alone >= 0.9
    assert mixed >= 0.9 * alone
