"""The zoo's word-level tokenizer, a real Hugging Face fast tokenizer.

A ``tokenizers`` WordLevel model over the whole vocabulary of a world (the main world's two
dialects, or the mixture world's four languages, :mod:`mergelab.zoo.lexicon`) with a
whitespace pre-tokenizer, wrapped in ``PreTrainedTokenizerFast`` and saved with
``save_pretrained`` so ``AutoTokenizer.from_pretrained(folder)`` loads it. Special tokens:
``<pad>`` (0), ``<unk>`` (1), ``<bos>`` (2), ``<eos>`` (3). Decoding joins tokens with spaces,
which reproduces every generated sentence exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from mergelab.zoo.language import vocabulary
from mergelab.zoo.lexicon import mixture_vocabulary

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
WORLDS: dict[str, Callable[[], list[str]]] = {"dialects": vocabulary, "mixture": mixture_vocabulary}


def build_tokenizer(world: str = "dialects") -> PreTrainedTokenizerFast:
    """The tokenizer of ``world``: special tokens first, then the world's words in order."""
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *WORLDS[world]()])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        model_max_length=128,
        clean_up_tokenization_spaces=False,
    )
