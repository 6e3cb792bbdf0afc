"""Bad input: one clear line, a non-zero exit, untouched inputs, no finished-looking output."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from tiny_models import WORDS, random_state

from mergelab.cli import main


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()  # drop what earlier steps printed
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err.strip()


def write_recipe(path: Path, recipe: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def linear(*models: Path, **extra: object) -> dict[str, object]:
    recipe: dict[str, object] = {
        "merge_method": "linear",
        "models": [{"model": str(m), "parameters": {"weight": 1.0}} for m in models],
    }
    recipe.update(extra)
    return recipe


@pytest.fixture
def copy_of(tiny_zoo: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    def copy(name: str) -> Path:
        dest = tmp_path / f"copy-{name}"
        shutil.copytree(tiny_zoo[name], dest)
        return dest

    return copy


def assert_failed_cleanly(
    code: int, err: str, out: Path, inputs: list[Path], before: list[dict[str, str]], *words: str
) -> None:
    assert code != 0
    assert err.startswith("error:"), err
    assert "\n" not in err, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists() or not any(out.iterdir())
    leftovers = [p for p in out.parent.iterdir() if "mergelab-tmp" in p.name]
    assert leftovers == []
    assert [digest(p) for p in inputs] == before


def shard_of(model: Path) -> Path:
    return sorted(model.glob("*.safetensors"))[0]


def corrupt_truncate(model: Path) -> None:
    shard = shard_of(model)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])


def corrupt_header_json(model: Path) -> None:
    shard = shard_of(model)
    data = bytearray(shard.read_bytes())
    data[8:12] = b"{{{{"
    shard.write_bytes(bytes(data))


def corrupt_offsets(model: Path) -> None:
    shard = shard_of(model)
    data = shard.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    begin, _ = header[name]["data_offsets"]
    header[name]["data_offsets"] = [begin, begin + 10**9]
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    shard.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n :])


@pytest.mark.parametrize(
    ("damage", "word"),
    [
        (corrupt_truncate, "safetensors"),
        (corrupt_header_json, "header"),
        (corrupt_offsets, "offset"),
    ],
)
def test_corrupt_checkpoints(
    damage: Callable[[Path], None],
    word: str,
    copy_of: Callable[[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad, good = copy_of("a"), copy_of("b")
    damage(bad)
    before = [digest(bad), digest(good)]
    out = tmp_path / "out"
    code, err = run_cli(
        ["merge", str(write_recipe(tmp_path / "r.yml", linear(bad, good))), str(out)], capsys
    )
    assert_failed_cleanly(code, err, out, [bad, good], before, shard_of(bad).name)
    assert word in err.lower()


def test_missing_tensor(
    make_model: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_model("a", random_state(0))
    state = random_state(1)
    b = make_model("b", state)
    index = json.loads((b / "model.safetensors.index.json").read_text())
    # drop one tensor from b by rewriting its shard without it
    from safetensors.torch import load_file, save_file

    victim = "model.layers.1.mlp.up_proj.weight"
    shard = b / index["weight_map"].pop(victim)
    tensors = load_file(str(shard))
    del tensors[victim]
    save_file(tensors, str(shard), metadata={"format": "pt"})
    (b / "model.safetensors.index.json").write_text(json.dumps(index))
    before = [digest(a), digest(b)]
    out = tmp_path / "out"
    code, err = run_cli(
        ["merge", str(write_recipe(tmp_path / "r.yml", linear(a, b))), str(out)], capsys
    )
    assert_failed_cleanly(code, err, out, [a, b], before, victim, "missing")


def test_shape_mismatch_and_layer_counts(
    make_model: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_model("a", random_state(0))
    deep = make_model("deep", random_state(1, layers=3), layers=3)
    before = [digest(a), digest(deep)]
    out = tmp_path / "out"
    code, err = run_cli(
        ["merge", str(write_recipe(tmp_path / "r.yml", linear(a, deep))), str(out)], capsys
    )
    assert_failed_cleanly(code, err, out, [a, deep], before, "layer counts", "slices")


def test_vocab_sizes_differ(
    make_model: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_model("a", random_state(0))
    b = make_model("b", random_state(1, vocab=len(WORDS) + 1), words=[*WORDS, "extra"])
    before = [digest(a), digest(b)]
    out = tmp_path / "out"
    code, err = run_cli(
        ["merge", str(write_recipe(tmp_path / "r.yml", linear(a, b))), str(out)], capsys
    )
    assert_failed_cleanly(code, err, out, [a, b], before, "vocabularies differ", "tokenizer_source")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"merge_method": "tiess"}, ["unknown merge_method 'tiess'", "ties"]),
        ({"parameters": {"densty": 0.5}}, ["unknown parameter 'densty'", "density"]),
        ({"parameters": {"density": 1.5}}, ["density", "outside [0, 1]"]),
        ({"parameters": {"weight": 0.0}}, []),
    ],
)
def test_recipe_errors(
    change: dict[str, object],
    words: list[str],
    tiny_zoo: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe: dict[str, object] = {
        "merge_method": "ties",
        "base_model": str(tiny_zoo["base"]),
        "models": [{"model": str(tiny_zoo["a"])}, {"model": str(tiny_zoo["b"])}],
        "parameters": {"weight": 1.0, "density": 0.5},
    }
    params = dict(recipe["parameters"])  # type: ignore[call-overload]
    params.update(change.pop("parameters", {}))  # type: ignore[call-overload]
    recipe.update(change)
    recipe["parameters"] = params
    out = tmp_path / "out"
    inputs = [tiny_zoo[k] for k in ("base", "a", "b")]
    before = [digest(p) for p in inputs]
    code, err = run_cli(["merge", str(write_recipe(tmp_path / "r.yml", recipe)), str(out)], capsys)
    if not words:  # weights summing to zero with normalize (ties normalizes by default)
        words = ["sum to zero", "normalize"]
    assert_failed_cleanly(code, err, out, inputs, before, *words)


def test_layer_range_out_of_bounds(
    tiny_zoo: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = {
        "merge_method": "passthrough",
        "slices": [{"sources": [{"model": str(tiny_zoo["a"]), "layer_range": [0, 5]}]}],
    }
    out = tmp_path / "out"
    code, err = run_cli(["merge", str(write_recipe(tmp_path / "r.yml", recipe)), str(out)], capsys)
    assert_failed_cleanly(code, err, out, [], [], "layer_range [0, 5]", "2 layers")


@pytest.mark.parametrize("streamed", [False, True])
def test_nan_in_input_names_the_tensor(
    streamed: bool,
    make_model: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = random_state(1)
    state["model.layers.0.self_attn.k_proj.weight"][3, 4] = float("nan")
    a, b = make_model("a", random_state(0)), make_model("b", state)
    if streamed:  # TIES streamed over memory-mapped blocks checks its input blocks too
        from mergelab import engine

        monkeypatch.setattr(engine, "STREAM_ELEMENTS", 16)
        ties = {"merge_method": "ties", "base_model": str(a), "dtype": "float32"}
        ties["models"] = [{"model": str(b), "parameters": {"weight": 1.0, "density": 0.01}}]
        recipe = write_recipe(tmp_path / "r.yml", ties)
    else:
        recipe = write_recipe(tmp_path / "r.yml", linear(a, b))
    before = [digest(a), digest(b)]
    out = tmp_path / "out"
    code, err = run_cli(["merge", str(recipe), str(out)], capsys)
    assert_failed_cleanly(
        code,
        err,
        out,
        [a, b],
        before,
        "model.layers.0.self_attn.k_proj.weight",
        "--allow-nonfinite",
    )
    assert "repair that checkpoint" in err  # the input is named, not just the output
    code, _ = run_cli(["merge", str(recipe), str(out), "--allow-nonfinite"], capsys)
    assert code == 0
    assert (out / "config.json").exists()


def test_output_inside_input(
    tiny_zoo: dict[str, Path],
    copy_of: Callable[[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = copy_of("a"), copy_of("b")
    before = [digest(a), digest(b)]
    recipe = write_recipe(tmp_path / "r.yml", linear(a, b))
    for out in (a, a / "merged"):
        code, err = run_cli(["merge", str(recipe), str(out), "--overwrite"], capsys)
        assert code != 0
        assert err.startswith("error:")
        assert "input" in err
        assert [digest(a), digest(b)] == before


def test_existing_output_needs_overwrite(
    tiny_zoo: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    recipe = write_recipe(tmp_path / "r.yml", linear(tiny_zoo["a"], tiny_zoo["b"]))
    code, err = run_cli(["merge", str(recipe), str(out)], capsys)
    assert code != 0
    assert "--overwrite" in err
    assert (out / "keep.txt").read_text() == "mine"
    code, _ = run_cli(["merge", str(recipe), str(out), "--overwrite"], capsys)
    assert code == 0
    assert not (out / "keep.txt").exists()
    assert (out / "config.json").exists()


def test_disk_full_leaves_nothing(
    tiny_zoo: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import errno
    import os

    calls = {"n": 0}
    real = os.pwrite

    def full(fd: int, data: bytes, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yml", linear(tiny_zoo["a"], tiny_zoo["b"]))
    code, err = run_cli(["merge", str(recipe), str(out)], capsys)
    assert_failed_cleanly(code, err, out, [], [], "space")


def test_interrupt_mid_merge_leaves_nothing(
    tiny_zoo: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mergelab import engine

    real = engine._compute
    calls = {"n": 0}

    def interrupted(*args: object, **kwargs: object) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_compute", interrupted)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yml", linear(tiny_zoo["a"], tiny_zoo["b"]))
    code, err = run_cli(["merge", str(recipe), str(out)], capsys)
    assert code == 130
    assert "interrupted" in err
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if "mergelab-tmp" in p.name] == []


def test_pickle_checkpoint(
    tmp_path: Path, tiny_zoo: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # a plain weights-only .bin loads; a pickle that needs code is refused with the fix
    state = {k: v.clone() for k, v in random_state(3).items()}
    binary = tmp_path / "bin-model"
    shutil.copytree(tiny_zoo["a"], binary, ignore=shutil.ignore_patterns("*.safetensors*"))
    torch.save(state, binary / "pytorch_model.bin")
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yml", linear(binary, tiny_zoo["b"]))
    code, err = run_cli(["merge", str(recipe), str(out)], capsys)
    assert code == 0, err
    evil = tmp_path / "evil"
    shutil.copytree(binary, evil)
    torch.save({"x": _Payload()}, evil / "pytorch_model.bin")
    out2 = tmp_path / "out2"
    recipe = write_recipe(tmp_path / "r2.yml", linear(evil, tiny_zoo["b"]))
    code, err = run_cli(["merge", str(recipe), str(out2)], capsys)
    assert code != 0
    assert "pytorch_model.bin" in err
    assert "safetensors" in err
    assert not out2.exists()


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle code ran",))


def test_dry_run_reads_no_tensor_data(
    tiny_zoo: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mergelab.checkpoint import Checkpoint

    def forbidden(self: Checkpoint, name: str) -> torch.Tensor:
        raise AssertionError(f"dry run read {name}")

    monkeypatch.setattr(Checkpoint, "read", forbidden)
    recipe = write_recipe(tmp_path / "r.yml", linear(tiny_zoo["a"], tiny_zoo["b"]))
    out = tmp_path / "out"
    capsys.readouterr()
    main(["merge", str(recipe), str(out), "--dry-run"])
    text = capsys.readouterr().out
    assert "estimated peak memory" in text
    assert "linear x" in text
    assert not out.exists()


def test_della_parameter_conflict_is_reported_before_reading(
    tiny_zoo: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = {
        "merge_method": "della",
        "base_model": str(tiny_zoo["base"]),
        "models": [
            {"model": str(tiny_zoo["a"]), "parameters": {"weight": 1.0, "density": 0.9}},
        ],
        "parameters": {"epsilon": 0.2},
    }
    out = tmp_path / "out"
    code, err = run_cli(["merge", str(write_recipe(tmp_path / "r.yml", recipe)), str(out)], capsys)
    assert_failed_cleanly(code, err, out, [], [], "density=0.9", "epsilon=0.2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metods"], "No such command 'metods'. Did you mean 'methods'?"),
        (["merge", "--bogus", "r.yml", "out"], "No such option: --bogus"),
        (["merge"], "Missing argument 'recipe'."),
    ],
)
def test_usage_errors_are_one_line_without_traceback(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(args, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
