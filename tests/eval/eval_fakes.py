"""Test doubles for the evaluator tests: a word-level tokenizer, fake LMs whose next-token
logits the test controls (with the HF forward signature and a KV cache), a tiny random
Llama."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
PAD, UNK, BOS, EOS = range(4)
WORDS = [
    *SPECIALS,
    *(str(n) for n in range(21)),
    *["ga", "desu", ".", "?", "q", "zap", "how", "many", "apples", "pens"],
    *["tom", "ann", "has", "then", "buys", "eats", "now"],
    *(f"a{i}" for i in range(10)),
    *["yes", "no", "maybe", "red", "green", "blue"],
]
VOCAB = {w: i for i, w in enumerate(WORDS)}


def make_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over ``WORDS``; like a Llama tokenizer it adds ``<s>`` itself."""
    core = Tokenizer(models.WordLevel(vocab=VOCAB, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", BOS)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )


def ids(text: str) -> list[int]:
    """Token ids of a space-separated text, by direct vocabulary lookup."""
    return [VOCAB[w] for w in text.split()]


class FakeLM(nn.Module):
    """A causal LM with the HF forward signature whose logits come from a Python function.

    ``next_logits(history)`` gets the real (unpadded) token ids up to and including the
    current position and returns the (V,) logits predicting the next token. The cache is
    the full id history, so cached decoding sees exactly what full recomputation sees.
    Position ids, when given, must count real tokens only (else the fake raises).
    """

    def __init__(self, next_logits: Callable[[tuple[int, ...]], torch.Tensor]) -> None:
        super().__init__()
        self.next_logits = next_logits
        self.weight = nn.Parameter(torch.zeros(1))  # so the module has a parameter
        self.calls = 0

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: torch.Tensor | None = None,
        use_cache: bool | None = None,
    ) -> SimpleNamespace:
        self.calls += 1
        past = past_key_values if past_key_values is not None else input_ids[:, :0]
        history = torch.cat([past, input_ids], dim=1)  # (B, P + T)
        mask = attention_mask if attention_mask is not None else torch.ones_like(history)
        if mask.shape != history.shape:
            raise AssertionError(f"mask {tuple(mask.shape)} != ids {tuple(history.shape)}")
        expected_positions = (mask.cumsum(dim=1) - 1)[:, past.shape[1] :]
        rows, width = input_ids.shape
        logits = []
        for b in range(rows):
            row = []
            for t in range(width):
                pos = past.shape[1] + t
                real = mask[b, pos] == 1
                wrong = position_ids is not None and position_ids[b, t] != expected_positions[b, t]
                if real and wrong:
                    raise AssertionError("position ids do not count real tokens")
                seen = history[b, : pos + 1][mask[b, : pos + 1] == 1]
                row.append(self.next_logits(tuple(seen.tolist())) if real else _zeros())
            logits.append(torch.stack(row))
        return SimpleNamespace(
            logits=torch.stack(logits), past_key_values=history if use_cache else None
        )


def _zeros() -> torch.Tensor:
    return torch.zeros(len(WORDS))


def one_hot(token: int) -> torch.Tensor:
    logits = torch.full((len(WORDS),), -10.0)
    logits[token] = 10.0
    return logits


def scripted_lm(script: dict[str, str]) -> FakeLM:
    """A FakeLM that answers prompt p with ``script[p]`` token by token, then eos."""
    table = {(BOS, *ids(prompt)): ids(continuation) for prompt, continuation in script.items()}

    def next_logits(history: tuple[int, ...]) -> torch.Tensor:
        for prefix, continuation in table.items():
            if len(history) < len(prefix) and prefix[: len(history)] == history:
                return _zeros()  # inside the prompt: these logits are never used
            if history[: len(prefix)] == prefix:
                done = len(history) - len(prefix)
                return one_hot(continuation[done] if done < len(continuation) else EOS)
        raise AssertionError(f"unscripted prompt {history}")

    return FakeLM(next_logits)


def bigram_lm(table: torch.Tensor) -> FakeLM:
    """A FakeLM whose next-token logits are ``table[last token]`` (table: (V, V))."""
    return FakeLM(lambda history: table[history[-1]])


def tiny_llama(seed: int = 0, layers: int = 2, hidden: int = 32) -> LlamaForCausalLM:
    """A random Llama over ``WORDS`` with a large init, so greedy continuations vary."""
    config = LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        initializer_range=0.3,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).eval()
