"""Everything in an output folder besides the weights: config, tokenizer, recipe, card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from mergelab import arch
from mergelab.chat_templates import resolve_chat_template
from mergelab.methods import get_method
from mergelab.plan import Plan

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)


def output_config(plan: Plan) -> dict[str, Any]:
    """The source config with the output's dtype, layer count and vocabulary size."""
    config = dict(plan.checkpoints[plan.config_source].config or {})
    if plan.jobs:
        dtype = str(plan.jobs[0].dtype).removeprefix("torch.")
        config["dtype" if "dtype" in config or "torch_dtype" not in config else "torch_dtype"] = (
            dtype
        )
    if any(arch.layer_index(job.name) is not None for job in plan.jobs):
        arch.set_layer_count(config, plan.layer_count)
    if plan.vocab is not None:
        config["vocab_size"] = plan.vocab.rows
    return config


def resolved_recipe(plan: Plan) -> dict[str, Any]:
    """The recipe with every parameter explicit: method defaults filled in, seed recorded."""
    data = plan.recipe.model_dump(mode="json", exclude_none=True)
    data = {k: v for k, v in data.items() if v not in ({}, [])}
    method = get_method(plan.recipe.merge_method)
    params = dict(data.get("parameters", {}))
    for p in method.params:
        if not p.required and p.name not in params and not _set_per_model(plan, p.name):
            params[p.name] = p.default
    if params:
        data["parameters"] = params
    data["seed"] = plan.seed
    if plan.jobs:
        data.setdefault("out_dtype", str(plan.jobs[0].dtype).removeprefix("torch."))
    return data


def _set_per_model(plan: Plan, name: str) -> bool:
    recipe = plan.recipe
    scopes = [m.parameters for m in recipe.models or []]
    for s in recipe.slices or []:
        scopes.append(s.parameters)
        scopes += [src.parameters for src in s.sources]
    return any(name in scope for scope in scopes)


def write_support_files(plan: Plan, folder: Path) -> None:
    """Write config.json, tokenizer files, mergelab_recipe.yml and README.md into ``folder``."""
    from mergelab.model_card import model_card

    config = output_config(plan)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    config_src = plan.checkpoints[plan.config_source].path
    if (config_src / "generation_config.json").exists():
        shutil.copyfile(config_src / "generation_config.json", folder / "generation_config.json")
    _write_tokenizer(plan, folder)
    recipe_yaml = yaml.safe_dump(resolved_recipe(plan), sort_keys=False)
    (folder / "mergelab_recipe.yml").write_text(recipe_yaml, encoding="utf-8")
    (folder / "README.md").write_text(model_card(plan.recipe, recipe_yaml), encoding="utf-8")


def _write_tokenizer(plan: Plan, folder: Path) -> None:
    source = plan.checkpoints[plan.tokenizer_source].path
    template = resolve_chat_template(plan.recipe.chat_template)
    added = plan.vocab.added_tokens if plan.vocab is not None else []
    if not added and template is None:
        for name in TOKENIZER_FILES:
            if (source / name).exists():
                shutil.copyfile(source / name, folder / name)
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if added:
        tokenizer.add_tokens(added)
    if template is not None:
        tokenizer.chat_template = template
    tokenizer.save_pretrained(str(folder))
