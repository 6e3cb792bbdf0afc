"""Genome <-> recipe: layer groups, gene decoding and the recipes they produce."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from evolve_helpers import NAMES, load_state, synthetic_config

from mergelab.errors import ConfigError
from mergelab.evolve.config import load_evolve_config
from mergelab.evolve.genome import Genome, model_labels
from mergelab.evolve.groups import Group, check_groups, group_of, layer_groups, layer_prefix
from mergelab.evolve.parameter_space import ParameterSpace
from mergelab.params import resolve

PER_LAYER = ("self_attn.q_proj.weight", "mlp.up_proj.weight", "input_layernorm.weight")


def llama_names(layers: int) -> list[str]:
    names = ["model.embed_tokens.weight"]
    names += [f"model.layers.{i}.{t}" for i in range(layers) for t in PER_LAYER]
    return [*names, "model.norm.weight", "lm_head.weight"]


def test_layer_granularity_gives_embed_each_layer_and_head() -> None:
    groups = layer_groups(llama_names(3), 1)
    assert [g.label for g in groups] == ["embed", "layers.0", "layers.1", "layers.2", "head"]
    assert groups[0].filters == ("model.embed_tokens.weight",)
    assert groups[2].filters == ("model.layers.1.",)
    assert set(groups[-1].filters) == {"model.norm.weight", "lm_head.weight"}


def test_groups_of_k_layers_keep_a_short_last_group() -> None:
    groups = layer_groups(llama_names(5), 2)
    assert [g.label for g in groups] == ["embed", "layers.0-1", "layers.2-3", "layers.4", "head"]
    assert groups[1].filters == ("model.layers.0.", "model.layers.1.")


def test_global_is_one_unfiltered_group() -> None:
    assert layer_groups(llama_names(2), None) == [Group("all", ())]


def test_layer_1_filter_does_not_catch_layer_10() -> None:
    names = llama_names(12)
    groups = layer_groups(names, 1)
    for name in names:
        index = group_of(name, groups)
        assert index is not None
        label = groups[index].label
        if ".layers." in name:
            assert label == f"layers.{name.split('.')[2]}"
    assert layer_prefix("model.layers.10.mlp.up_proj.weight") == "model.layers.10."


def test_groups_that_cannot_address_a_tensor_are_refused() -> None:
    names = llama_names(2)
    groups = [Group("embed", ("model.embed",)), Group("rest", ("model.layers.0.",))]
    with pytest.raises(ConfigError, match=r"use genome\.granularity: global"):
        check_groups(names, groups)


def test_model_labels_are_folder_names_when_unique() -> None:
    assert model_labels(["/x/j", "/y/m1"]) == ["j", "m1"]
    assert model_labels(["/x/j", "/y/j"]) == ["/x/j", "/y/j"]


@pytest.fixture
def genome(sources: dict[str, Path]) -> Genome:
    config = load_evolve_config(
        synthetic_config(
            sources,
            merge_method="dare_ties",
            genome={
                "granularity": "layer",
                "parameters": {"weight": [0.0, 2.0], "density": [0.1, 1.0], "lambda": [0.5, 1.5]},
            },
            parameters={"normalize": True},
        )
    )
    return Genome(config, layer_groups(llama_names(2), 1))


def test_genes_per_group_param_and_model(genome: Genome) -> None:
    # 4 groups x (2 per-model params x 3 models + 1 global param)
    assert len(genome.genes) == 4 * (2 * 3 + 1)
    assert genome.gene("weight", 1, 2).name == "weight[b]@layers.1"
    assert genome.gene("lambda", None, 0).name == "lambda@embed"
    assert set(genome.midpoint().values()) == {0.5}


def test_decode_maps_genes_to_ranges_and_the_recipe_resolves_them(genome: Genome) -> None:
    params = {g.name: (k % 7) / 6 for k, g in enumerate(genome.genes)}
    candidate = genome.decode(params)
    recipe = candidate.recipe
    assert recipe.merge_method == "dare_ties"
    assert recipe.parameters["normalize"] is True
    for gene in genome.genes:
        x = params[gene.name]
        expected = round(gene.low + x * (gene.high - gene.low), 6)
        # every tensor of the gene's group resolves to the gene's value (planner semantics)
        for name in llama_names(2):
            if group_of(name, genome.groups) != gene.group:
                continue
            if gene.model is None:
                scopes = [recipe.parameters]
            else:
                models = recipe.models or []
                scopes = [models[gene.model].parameters, recipe.parameters]
            assert resolve(gene.param, name, 0.0, scopes) == pytest.approx(expected, abs=1e-12)


def test_genes_outside_the_unit_box_are_clipped(genome: Genome) -> None:
    gene = genome.gene("density", 0, 1)
    assert gene.value(-0.3) == pytest.approx(0.1)
    assert gene.value(1.7) == pytest.approx(1.0)


def test_table_lays_values_out_by_row_and_group(genome: Genome) -> None:
    params = {g.name: 1.0 if g.param == "weight" else 0.0 for g in genome.genes}
    table = genome.decode(params).table
    assert table is not None
    assert table.columns == ["embed", "layers.0", "layers.1", "head"]
    assert table.rows == ["weight a", "weight b", "weight c", "density a", "density b",
                          "density c", "lambda"]  # fmt: skip
    assert table.values[0] == [2.0] * 4
    assert table.values[3] == [0.1] * 4
    assert table.values[6] == [0.5] * 4


def test_source_points_rebuild_each_source(sources: dict[str, Path]) -> None:
    config = synthetic_config(
        sources,
        merge_method="dare_ties",
        genome={
            "granularity": "layer",
            "parameters": {"weight": [0.0, 1.0], "density": [0.1, 1.0]},
            "seed_sources": True,
        },
    )
    space = ParameterSpace(load_evolve_config(config))
    points = space.initial_points()
    assert len(points) == 4
    assert points[0] == dict.fromkeys(points[0], 0.5)
    live = space.open_live(None)
    for name, point in zip(NAMES, points[1:], strict=True):
        # weight genes: 1 for this source, 0 for the others; density genes: 1
        model = live.build(space.decode(point)).state_dict()
        for key, tensor in load_state(sources[name]).items():
            torch.testing.assert_close(model[key], tensor, rtol=0, atol=1e-6)


def test_no_source_points_when_a_range_excludes_them(sources: dict[str, Path]) -> None:
    config = load_evolve_config(
        synthetic_config(
            sources, genome={"parameters": {"weight": [0.2, 1.0]}, "seed_sources": True}
        )
    )
    genome = Genome(config, layer_groups(llama_names(2), 1))
    assert genome.source_point(0) is None
