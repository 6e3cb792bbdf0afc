"""Layer groups of a parameter-space genome: which tensors share one evolved value.

Akiba et al. (arXiv 2403.13187, Sec. 3.1) evolve a density and a weight per source model "at
each layer, including input/output embeddings". Granularity here:

- ``global``: one group holding every tensor;
- ``layer``: the embeddings (tensors before the layer stack), one group per layer, and the
  head (tensors after the stack: final norm, lm_head);
- ``group:K``: like ``layer`` with K consecutive layers per group (the last may be shorter).

A group is selected in a recipe by ``{filter, value}`` items, a filter being a substring of
the tensor name: the exact tensor names for embeddings and head, and the layer prefix
(``model.layers.3.``, dot included so ``layers.1.`` never matches ``layers.10.``) for layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mergelab import arch
from mergelab.errors import ConfigError

_FAR = 10**9  # a layer index no model has, to locate the index inside a name


@dataclass(frozen=True)
class Group:
    """Tensors sharing one value: ``filters`` select them (empty: every tensor)."""

    label: str
    filters: tuple[str, ...]


def layer_groups(names: Sequence[str], group_size: int | None) -> list[Group]:
    """The groups of a model whose output tensors are ``names`` (see the module docstring)."""
    if group_size is None:
        return [Group("all", ())]
    pre = [n for n in names if arch.position(n) == "pre"]
    post = [n for n in names if arch.position(n) == "post"]
    prefixes: dict[int, list[str]] = {}
    for name in names:
        index = arch.layer_index(name)
        if index is not None:
            found = prefixes.setdefault(index, [])
            prefix = layer_prefix(name)
            if prefix not in found:
                found.append(prefix)
    groups = [Group("embed", tuple(pre))] if pre else []
    layers = sorted(prefixes)
    for start in range(0, len(layers), group_size):
        chunk = layers[start : start + group_size]
        label = f"layers.{chunk[0]}" if len(chunk) == 1 else f"layers.{chunk[0]}-{chunk[-1]}"
        groups.append(Group(label, tuple(p for i in chunk for p in prefixes[i])))
    if post:
        groups.append(Group("head", tuple(post)))
    check_groups(names, groups)
    return groups


def layer_prefix(name: str) -> str:
    """``model.layers.3.mlp.up_proj.weight`` -> ``model.layers.3.`` (a layer tensor's prefix)."""
    index = arch.layer_index(name)
    if index is None:
        raise ValueError(f"{name!r} is not a layer tensor")
    moved = arch.with_layer_index(name, _FAR)
    return name[: moved.index(str(_FAR))] + f"{index}."


def group_of(name: str, groups: Sequence[Group]) -> int | None:
    """The group a recipe's ``{filter, value}`` list gives ``name`` to (first match wins)."""
    for i, group in enumerate(groups):
        if not group.filters or any(f in name for f in group.filters):
            return i
    return None


def check_groups(names: Sequence[str], groups: Sequence[Group]) -> None:
    """ConfigError unless every tensor lands, first match, in the group meant for it."""
    problems = []
    for name in names:
        index = arch.layer_index(name)
        wanted = next(
            (
                i
                for i, g in enumerate(groups)
                if (name in g.filters)
                or (index is not None and any(name.startswith(f) for f in g.filters))
            ),
            None,
        )
        got = group_of(name, groups)
        if wanted is None or got != wanted:
            problems.append(name)
    if problems:
        raise ConfigError(
            f"layer groups cannot address tensor {problems[0]} ({len(problems)} tensors in all) "
            "by name filters; use genome.granularity: global for this architecture"
        )
