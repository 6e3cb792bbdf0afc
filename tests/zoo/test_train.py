"""Training pieces: data encoding and mixes, parameter selection, deterministic steps."""

from __future__ import annotations

import torch

from mergelab.zoo.data import SOURCES, batches, encode, sample_mix
from mergelab.zoo.tokenizer import BOS_ID, EOS_ID, PAD_ID, build_tokenizer
from mergelab.zoo.train import Shape, new_model, param_groups, train

VOCAB = build_tokenizer().get_vocab()


def test_encode_masks_only_the_target() -> None:
    pair = ("tom 3 pens . how many pens does tom have ?", "so tom 3 pens .")
    ids, loss = encode(pair, VOCAB)
    assert ids[0] == BOS_ID
    assert ids[-1] == EOS_ID
    targets = [i for i, m in zip(ids, loss, strict=True) if m]
    assert targets == [VOCAB[w] for w in pair[1].split()] + [EOS_ID]
    assert ids == [BOS_ID] + [VOCAB[w] for w in " ".join(pair).split()] + [EOS_ID]
    text_ids, text_loss = encode(("", "tom 3 pens ."), VOCAB)
    assert text_loss == [False] + [True] * (len(text_ids) - 1)


def test_mix_respects_weights_and_exclusions() -> None:
    pairs = sample_mix({"e-read": 3.0, "j-story": 1.0}, 400, seed=0, exclude=set())
    stories = sum(1 for ctx, _ in pairs if ctx == "")
    assert 60 <= stories <= 140  # expected 100 of 400
    banned = {pairs[0][0] or pairs[0][1]}
    again = sample_mix({"e-read": 3.0, "j-story": 1.0}, 400, seed=0, exclude=banned)
    assert not any((ctx or text) in banned for ctx, text in again)
    assert sample_mix({"e-arith": 1.0}, 5, seed=1, exclude=set()) == sample_mix(
        {"e-arith": 1.0}, 5, seed=1, exclude=set()
    )
    assert all(name in SOURCES for name in ("e-read-doc", "e-arith-2", "e-read-zap"))


def test_batches_are_right_padded() -> None:
    pairs = sample_mix({"e-read": 1.0, "e-story": 1.0}, 20, seed=2, exclude=set())
    (ids, mask), *_ = batches(pairs, VOCAB, batch_size=8, steps=2, seed=3)
    assert ids.shape == mask.shape
    lengths = (ids != PAD_ID).sum(1)
    for row, n in zip(ids, lengths.tolist(), strict=True):
        assert (row[:n] != PAD_ID).all()
        assert (row[n:] == PAD_ID).all()
    assert not mask[ids == PAD_ID].any()


def test_only_selected_parameters_move_and_runs_repeat_exactly() -> None:
    torch.set_num_threads(1)
    shape = Shape(vocab_size=len(VOCAB), hidden=16, layers=3, heads=2, mlp=24)
    pairs = sample_mix({"e-read": 1.0}, 16, seed=4, exclude=set())
    data = batches(pairs, VOCAB, batch_size=4, steps=3, seed=5)
    runs = []
    for _ in range(2):
        model = new_model(shape, seed=6)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        groups = param_groups(model, ("mlp",), (0.0, 1.0, 0.5), lr=1e-2)
        assert sorted(g["lr"] for g in groups) == [5e-3, 1e-2]
        train(model, data, groups, weight_decay=0.0)
        after = model.state_dict()
        moved = {k for k in before if not torch.equal(before[k], after[k])}
        assert moved == {k for k in before if ".mlp." in k and ".layers.0." not in k}
        runs.append(after)
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
