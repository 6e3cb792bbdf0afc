"""Bad input: one clear line naming the bad value, a non-zero exit, no output left behind."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mergelab.vectors import extract_vector
from mergelab.vectors.format import META_FILE

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def vec_a(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad") / "a.tv"
    extract_vector(tiny["a"], tiny["base"], path)
    return path


def _failed(code: int, err: str, *words: str) -> None:
    assert code != 0
    assert err.startswith("error:"), err
    assert "\n" not in err, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def _no_output(out: Path) -> None:
    assert not out.exists()
    assert [p for p in out.parent.iterdir() if "mergelab-tmp" in p.name] == []


def test_fingerprint_mismatch_names_both_models_and_fingerprints(
    cli: Cli, tiny: dict[str, Path], vec_a: Path, tmp_path: Path
) -> None:
    from mergelab.checkpoint import Checkpoint
    from mergelab.vectors import fingerprint
    from mergelab.vectors.fingerprint import short

    out = tmp_path / "out"
    code, _, err = cli("vector", "apply", tiny["other"], f"{vec_a}:1", "-o", out)
    with Checkpoint.open(tiny["other"]) as other, Checkpoint.open(tiny["base"]) as base:
        prints = short(fingerprint(other)), short(fingerprint(base))
    _failed(code, err, str(tiny["other"]), str(tiny["base"]), *prints, "--ignore-fingerprint")
    _no_output(out)


def test_ignore_fingerprint_applies_anyway(
    cli: Cli, tiny: dict[str, Path], vec_a: Path, tmp_path: Path
) -> None:
    code, _, err = cli(
        "vector", "apply", tiny["other"], vec_a, "-o", tmp_path / "o", "--ignore-fingerprint"
    )
    assert code == 0, err
    assert (tmp_path / "o" / "model.safetensors.index.json").is_file() or any(
        (tmp_path / "o").glob("*.safetensors")
    )


def test_vector_of_another_architecture(
    cli: Cli, tiny: dict[str, Path], vec_a: Path, tmp_path: Path
) -> None:
    deep = tmp_path / "deep.tv"
    assert cli("vector", "extract", tiny["deep_ft"], "--base", tiny["deep"], "-o", deep)[0] == 0
    out = tmp_path / "out"
    code, _, err = cli("vector", "apply", tiny["base"], vec_a, f"{deep}:0.5", "-o", out)
    _failed(code, err, str(deep), "does not fit", "LlamaForCausalLM", "model.layers.2")
    _no_output(out)


def test_extracting_across_architectures(cli: Cli, tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.tv"
    code, _, err = cli("vector", "extract", tiny["deep_ft"], "--base", tiny["base"], "-o", out)
    _failed(code, err, "different architecture", "model.layers.2")
    _no_output(out)


def test_analogy_with_a_model_of_another_architecture(
    cli: Cli, tiny: dict[str, Path], vec_a: Path, tmp_path: Path
) -> None:
    out = tmp_path / "d"
    args = ["--a", vec_a, "--b", tiny["deep_ft"], "--c", tiny["c"]]
    code, _, err = cli("vector", "analogy", "--base", tiny["base"], *args, "-o", out)
    _failed(code, err, str(tiny["deep_ft"]), "not a fine-tune of")
    _no_output(out)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("truncate", ["corrupt", "truncated"]),
        ("json", ["corrupt", META_FILE, "not valid JSON"]),
        ("field", ["corrupt", "bad field"]),
        ("missing", ["corrupt", "missing"]),
        ("indices", ["corrupt", "outside"]),
    ],
)
def test_corrupt_artifact(
    cli: Cli, tiny: dict[str, Path], tmp_path: Path, damage: str, words: list[str]
) -> None:
    tv = tmp_path / "v.tv"
    density = "0.01" if damage == "indices" else "0.1"
    assert (
        cli("vector", "extract", tiny["a"], "--base", tiny["base"], "-o", tv, "--density", density)[
            0
        ]
        == 0
    )
    meta_path = tv / META_FILE
    shard = sorted(tv.glob("*.safetensors"))[0]
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-100])
    elif damage == "json":
        meta_path.write_text(meta_path.read_text()[:-20])
    elif damage == "field":
        meta = json.loads(meta_path.read_text())
        meta["recipe"]["density"] = "lots"
        meta_path.write_text(json.dumps(meta))
    elif damage == "missing":
        meta = json.loads(meta_path.read_text())
        name = next(iter(meta["tensors"]))
        meta["tensors"][name]["count"] += 1  # the stored values no longer match
        meta_path.write_text(json.dumps(meta))
    else:  # an index past the end of its tensor, same file size
        from safetensors.torch import load_file, save_file

        tensors = load_file(shard)
        key = next(k for k in tensors if k.endswith("::indices"))
        tensors[key][-1] = 10**6
        save_file(tensors, shard, metadata={"format": "pt"})
    out = tmp_path / "out"
    code, _, err = cli("vector", "apply", tiny["base"], tv, "-o", out)
    _failed(code, err, str(tv), *words)
    _no_output(out)


def test_rank_larger_than_a_matrix(cli: Cli, tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.tv"
    code, _, err = cli(
        "vector", "extract", tiny["a"], "--base", tiny["base"], "-o", out, "--rank", "17"
    )
    _failed(code, err, "rank 17", "k_proj", "[16, 32]", "--rank <= 16")
    _no_output(out)
    code, _, err = cli("extract-lora", tiny["a"], "--base", tiny["base"], "--rank", "99", "-o", out)
    _failed(code, err, "rank 99", "--rank <= 16")
    _no_output(out)


@pytest.mark.parametrize("term", ["abc", "1e", "nan", "inf", ""])
def test_scale_that_is_not_a_number(
    cli: Cli, tiny: dict[str, Path], vec_a: Path, tmp_path: Path, term: str
) -> None:
    out = tmp_path / "out"
    code, _, err = cli("vector", "apply", tiny["base"], f"{vec_a}:{term}", "-o", out)
    _failed(code, err, repr(term), "scale" if term else "")
    _no_output(out)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--density", "0.1", "--rank", "2"], ["not both"]),
        (["--density", "1.5"], ["density 1.5", "(0, 1]"]),
        (["--density", "0.1", "--sparsify", "random"], ["'random'", "magnitude or dare"]),
        (["--sparsify", "dare"], ["needs --density"]),
        (["--dtype", "int8"], ["'int8'", "float32"]),
    ],
)
def test_bad_extract_options(
    cli: Cli, tiny: dict[str, Path], tmp_path: Path, args: list[str], words: list[str]
) -> None:
    out = tmp_path / "o.tv"
    code, _, err = cli("vector", "extract", tiny["a"], "--base", tiny["base"], "-o", out, *args)
    _failed(code, err, *words)
    _no_output(out)


def test_missing_vector_and_unknown_store_name(
    cli: Cli, tiny: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, _, err = cli("vector", "apply", tiny["base"], tmp_path / "nope.tv", "-o", out)
    _failed(code, err, "nope.tv", "not a folder")
    code, _, err = cli("vector", "show", "nothing-here", "--store", tmp_path / "store")
    _failed(code, err, "nothing-here")
    _no_output(out)


def test_a_model_folder_is_not_an_artifact(cli: Cli, tiny: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = cli("vector", "add", tiny["a"], "--store", tmp_path / "store")
    _failed(code, err, str(tiny["a"]), "not a task-vector artifact")


def test_output_inside_an_input_is_refused(
    cli: Cli, tiny: dict[str, Path], vec_a: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "base"
    shutil.copytree(tiny["base"], copy)
    code, _, err = cli("vector", "apply", copy, vec_a, "-o", copy / "inside")
    _failed(code, err, "overlaps input")
