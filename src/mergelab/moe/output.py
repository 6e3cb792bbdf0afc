"""Everything in an MoE output folder besides the weights: config, tokenizer, recipe, card.

``config.json`` is the installed transformers' ``MixtralConfig`` (see
:mod:`mergelab.moe.family`); the tokenizer and ``generation_config.json`` are the base
model's; ``mergelab_moe.yml`` is the config with the seed and dtype made explicit, so it
rebuilds the same model; ``README.md`` is a model card with the recipe.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from mergelab.moe.plan import MoePlan
from mergelab.output_files import TOKENIZER_FILES

RECIPE_FILE = "mergelab_moe.yml"


def resolved_config_yaml(plan: MoePlan) -> str:
    """The build's config with ``seed`` and ``dtype`` explicit (rebuilds the same output)."""
    data = plan.config.model_dump(mode="json", exclude_none=True)
    data["dtype"] = str(plan.dtype).removeprefix("torch.")
    data["seed"] = plan.seed
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write_support_files(plan: MoePlan, folder: Path) -> None:
    """config.json, tokenizer files, generation config, the resolved recipe and README.md."""
    plan.mixtral.save_pretrained(str(folder))
    source = plan.base.path
    for name in (*TOKENIZER_FILES, "generation_config.json"):
        if (source / name).exists():
            shutil.copyfile(source / name, folder / name)
    (folder / RECIPE_FILE).write_text(resolved_config_yaml(plan), encoding="utf-8")
    write_model_card(plan, folder)


def write_model_card(plan: MoePlan, folder: Path, routing: list[str] | None = None) -> None:
    """README.md; ``routing`` holds the routing report's summary lines, when one was made."""
    card = model_card(plan, resolved_config_yaml(plan), routing)
    (folder / "README.md").write_text(card, encoding="utf-8")


def model_card(plan: MoePlan, recipe: str, routing: list[str] | None) -> str:
    """Markdown: what the model is made of, how its routers were set, and the recipe."""
    cfg = plan.config
    lines = [
        "---",
        "library_name: transformers",
        "tags: [mergelab, moe, mixtral]",
        "---",
        "# Mixture of experts",
        "",
        f"A Mixtral model with {len(cfg.experts)} experts ({cfg.experts_per_token} per token) "
        "assembled from dense fine-tunes by [mergelab](https://pypi.org/project/mergelab/), "
        "without training.",
        "",
        f"Base model (embeddings, attention, norms, output head): `{cfg.base_model}`",
        "",
        "## Experts",
        "",
        "| # | source model | positive prompts | negative prompts | residual scale |",
        "|---|---|---|---|---|",
    ]
    for i, e in enumerate(cfg.experts):
        scale = e.residual_scale if e.residual_scale is not None else 1.0
        lines.append(
            f"| {i} | `{e.source_model}` | {len(e.positive_prompts or [])} | "
            f"{len(e.negative_prompts or [])} | {scale:g} |"
        )
    lines += ["", "## Routers", "", f"Gate mode `{cfg.gate_mode}`: {_GATE_TEXT[cfg.gate_mode]}", ""]
    if routing:
        lines += ["## Routing report", "", *(f"- {line}" for line in routing), ""]
    lines += ["## Recipe", "", "```yaml", recipe.rstrip(), "```", ""]
    return "\n".join(lines)


_GATE_TEXT = {
    "hidden": "each router row is the base model's residual stream entering that layer at the "
    "last token of the expert's prompts, averaged over prompts, minus the same for its negative "
    "prompts, L2-normalised.",
    "hidden_avg": "as `hidden`, with the residual stream averaged over each prompt's tokens.",
    "hidden_fit": "each layer's router is fitted (logistic regression, mergelab) to send every "
    "token of an expert's prompts to that expert, from the base model's router inputs.",
    "cheap_embed": "each router row is the normalised sum of the expert's prompt token "
    "embeddings, the same in every layer.",
    "random": "router rows are drawn from N(0, 1); the model needs training.",
    "uniform_random": "router rows are drawn from U(-1/sqrt(H), 1/sqrt(H)); the model needs "
    "training.",
}
