"""The in-memory trial of a data-flow search: a path model that shares the loaded layers.

The models are loaded once: A whole (its embeddings, final norm, head and tokenizer), the
others for their decoder layers only. A candidate becomes a path model without copying a
weight: A's own ``*ForCausalLM`` whose ``model.layers`` is swapped for an ``nn.ModuleList``
of :class:`PathStep` wrappers around the shared layer modules, with ``num_hidden_layers``
set to the path length. The transformers forward (masks, rotary embeddings, KV cache,
``logits_to_keep``) stays untouched, so every mergelab evaluator (batched greedy generation
through ``past_key_values``) runs on it as on any model.

A layer used twice must not share a KV-cache entry: each wrapper sets its layer's
``self_attn.layer_idx`` to its own path position just before running it (trials run one at
a time per process, so the shared module is never used by two paths at once). The cache,
created by the model from its config, has one entry per path position.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from mergelab.evolve.dfs.checks import DfsModel
from mergelab.evolve.dfs.genome import DfsGenome, DfsPath
from mergelab.evolve.space import Candidate
from mergelab.plan import DTYPES

log = logging.getLogger(__name__)


class PathStep(nn.Module):
    """One path position: a shared decoder layer, its KV-cache index and its input scale."""

    def __init__(self, layer: nn.Module, index: int, scale: float) -> None:
        super().__init__()
        self.layer = layer
        self.index = index
        self.scale = scale

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        self.layer.self_attn.layer_idx = self.index  # type: ignore[union-attr]
        if self.scale != 1.0:
            hidden_states = hidden_states * self.scale
        return self.layer(hidden_states, *args, **kwargs)


class PathModel:
    """The loaded DFS models and the path model built from them (a LiveModel)."""

    def __init__(self, genome: DfsGenome, models: Sequence[DfsModel], dtype: str | None) -> None:
        self.genome = genome
        load: dict[str, Any] = {"dtype": DTYPES[dtype] if dtype else "auto"}
        self._model: Any = AutoModelForCausalLM.from_pretrained(str(models[0].path), **load)
        self._model.eval()
        self._tokenizer = AutoTokenizer.from_pretrained(str(models[0].path))
        self.layers: list[list[nn.Module]] = [list(self._model.model.layers)]
        for other in models[1:]:  # keep the decoder layers, drop the rest
            loaded: Any = AutoModelForCausalLM.from_pretrained(str(other.path), **load)
            self.layers.append(list(loaded.eval().model.layers))
        types = getattr(self._model.config, "layer_types", None)
        self._layer_type = types[0] if types else None
        log.debug("loaded %d DFS models", len(models))

    @property
    def model(self) -> nn.Module:
        model: nn.Module = self._model
        return model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self._tokenizer

    def build(self, candidate: Candidate) -> nn.Module:
        """The path model of ``candidate`` (decoded again: cheap), sharing the loaded layers."""
        return self.build_path(self.genome.decode(candidate.params))

    def build_path(self, path: DfsPath) -> nn.Module:
        """The path model running ``path``'s steps: A's model with its layers swapped."""
        steps = [
            PathStep(self.layers[s.model][s.layer], k, s.scale) for k, s in enumerate(path.steps)
        ]
        self._model.model.layers = nn.ModuleList(steps)
        config = self._model.config
        config.num_hidden_layers = len(steps)
        if self._layer_type is not None:
            config.layer_types = [self._layer_type] * len(steps)
        model: nn.Module = self._model
        return model

    def close(self) -> None:
        self.layers = []
