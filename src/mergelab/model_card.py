"""The README.md model card written next to every merged model."""

from __future__ import annotations

from mergelab.methods import get_method
from mergelab.recipe import Recipe


def model_card(recipe: Recipe, resolved_yaml: str) -> str:
    """Markdown naming the method, its paper, the source models and the full recipe."""
    method = get_method(recipe.merge_method)
    sources = [r for r in recipe.referenced_models() if r != recipe.base_model]
    lines = [
        "---",
        "library_name: transformers",
        "tags: [mergelab, merge]",
        "---",
        f"# {recipe.name or 'Merged model'}",
        "",
        "This model was made by merging pre-trained language models with "
        "[mergelab](https://pypi.org/project/mergelab/).",
        "",
        "## Method",
        "",
        f"`{method.name}`: {method.summary}" + (f" ({method.paper})" if method.paper else ""),
        "",
    ]
    if recipe.base_model:
        lines += [f"Base model: `{recipe.base_model}`", ""]
    lines += ["## Source models", ""] + [f"- `{s}`" for s in sources] + [""]
    lines += ["## Recipe", "", "```yaml", resolved_yaml.rstrip(), "```", ""]
    return "\n".join(lines)
