"""Builders of tiny homologous checkpoints (2 layers, hidden 32, two shards) for tests."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = ["<pad>", "<unk>", "<bos>", "<eos>"] + [f"w{i}" for i in range(60)]


def tiny_config(layers: int = 2, vocab: int = 64) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )


def save_tokenizer(folder: Path, words: list[str]) -> None:
    vocab = {w: i for i, w in enumerate(words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
    )
    fast.save_pretrained(str(folder))


def save_model(
    folder: Path,
    state: dict[str, torch.Tensor],
    *,
    layers: int = 2,
    words: list[str] = WORDS,
    dtype: torch.dtype = torch.float32,
    shard: str = "70KB",
) -> Path:
    """A real transformers checkpoint in two or more shards, with a tokenizer."""
    model = LlamaForCausalLM(tiny_config(layers, len(words)))
    model.load_state_dict(state)
    model.to(dtype)
    model.save_pretrained(str(folder), max_shard_size=shard)
    save_tokenizer(folder, words)
    return folder


def random_state(seed: int, *, layers: int = 2, vocab: int = len(WORDS)) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(layers, vocab))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def finetune_of(
    base: dict[str, torch.Tensor], seed: int, scale: float = 0.05
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=gen) for k, v in base.items()}
