"""build_zoo mechanics on tiny recipes: folders, manifest cache, determinism, atomicity."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from mergelab.errors import OutputError
from mergelab.zoo.build import MANIFEST, build_recipes, data_fingerprint
from mergelab.zoo.data import SOURCES
from mergelab.zoo.kernels import training_kernels
from mergelab.zoo.recipes import Recipe

TINY = (
    Recipe("base", "tiny base", None, (("e-read", 1.0), ("parallel", 1.0)), 3, 1e-3,
           parts=("",), batch=4),
    Recipe("a", "tiny J fine-tune", "base", (("j-read", 1.0),), 2, 1e-2, batch=4,
           parts=("mlp",), layer_lr=(0.0, 1.0, 1.0, 0.0, 0.0, 0.0)),
    Recipe("b", "tiny arithmetic fine-tune", "base", (("e-arith", 1.0),), 2, 1e-2, batch=4),
)  # fmt: skip


def hashes(root: Path) -> dict[str, str]:
    return {
        r.name: hashlib.sha256((root / r.name / "model.safetensors").read_bytes()).hexdigest()
        for r in TINY
    }


def mtimes(root: Path) -> dict[str, int]:
    return {r.name: (root / r.name / "model.safetensors").stat().st_mtime_ns for r in TINY}


def test_build_cache_determinism_and_locality(tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    first = build_recipes(TINY, out, seed=0, jobs=2, force=False)
    assert not first.cached
    assert [p.name for p in tmp_path.iterdir()] == ["zoo"]  # no temporary folder left
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["seed"] == 0
    first_hashes = hashes(out)
    assert {k: v["sha256"] for k, v in manifest["models"].items()} == first_hashes

    model = AutoModelForCausalLM.from_pretrained(first.path("a"))
    assert isinstance(model, LlamaForCausalLM)
    assert model.config.tie_word_embeddings is False
    assert model.config.num_hidden_layers == 6
    tok = AutoTokenizer.from_pretrained(first.path("a"))
    assert (
        tok.decode(tok("kotae wa tom 3 pens desu 。")["input_ids"]) == "kotae wa tom 3 pens desu 。"
    )

    # fine-tunes move only the parameters (and layers) their recipe names
    base = load_file(out / "base" / "model.safetensors")
    a = load_file(out / "a" / "model.safetensors")
    changed = {k for k in base if not torch.equal(base[k], a[k])}
    assert changed
    assert all(".mlp." in k and (".layers.1." in k or ".layers.2." in k) for k in changed)

    mtime = (out / "a" / "model.safetensors").stat().st_mtime_ns
    again = build_recipes(TINY, out, seed=0, jobs=2, force=False)
    assert again.cached
    assert (out / "a" / "model.safetensors").stat().st_mtime_ns == mtime

    changed = (*TINY[:2], dataclasses.replace(TINY[2], steps=3))
    partial = build_recipes(changed, out, seed=0, jobs=1, force=False)
    assert not partial.cached
    new = hashes(out)
    assert new["base"] == first.models["base"].sha256  # unchanged models are reused
    assert new["a"] == first.models["a"].sha256
    assert new["b"] != first.models["b"].sha256
    build_recipes(TINY, out, seed=0, jobs=1, force=False)  # back to the original recipes

    stale = json.loads((out / MANIFEST).read_text())
    stale["models"]["a"]["data"] = "trained on what other generator code made"
    (out / MANIFEST).write_text(json.dumps(stale))
    before = mtimes(out)
    assert not build_recipes(TINY, out, seed=0, jobs=1, force=False).cached  # stale data
    after = mtimes(out)
    assert [name for name in before if before[name] != after[name]] == ["a"]  # only a retrains
    assert hashes(out) == first_hashes
    assert json.loads((out / MANIFEST).read_text())["kernels"] == training_kernels()
    stale = json.loads((out / MANIFEST).read_text())
    stale["kernels"] = "trained with other CPU kernels"
    (out / MANIFEST).write_text(json.dumps(stale))
    assert not build_recipes(TINY, out, seed=0, jobs=1, force=False).cached
    assert hashes(out) == first_hashes  # the same weights again

    other = build_recipes(TINY, tmp_path / "other", seed=1, jobs=1, force=False)
    assert hashes(other.root) != hashes(out)  # the seed matters ...
    rebuilt = build_recipes(TINY, tmp_path / "other", seed=0, jobs=1, force=False)
    assert not rebuilt.cached  # ... and a different seed is not a cache hit
    assert hashes(rebuilt.root) == hashes(out)  # bit-identical, whatever the job count


def test_a_changed_source_changes_only_the_data_fingerprints_that_draw_from_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = [data_fingerprint(r) for r in TINY]
    assert len(set(before)) == 3
    monkeypatch.setitem(SOURCES, "j-read", lambda rng: ("", f"tom {rng.randint(0, 9)} pens ."))
    data_fingerprint.cache_clear()
    try:
        after = [data_fingerprint(r) for r in TINY]
    finally:
        data_fingerprint.cache_clear()
    assert [b == a for b, a in zip(before, after, strict=True)] == [True, False, True]


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    broken = (*TINY[:1], Recipe("x", "bad mix", "base", (("no-such-source", 1.0),), 1, 1e-3))
    with pytest.raises(KeyError):
        build_recipes(broken, tmp_path / "zoo", seed=0, jobs=1, force=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_that_is_not_a_zoo(tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a zoo"):
        build_recipes(TINY, out, seed=0, jobs=1, force=True)
    assert (out / "notes.txt").read_text() == "mine"
