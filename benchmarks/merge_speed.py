"""Merge speed and memory on TinyLlama-shaped checkpoints, against the I/O floor and mergekit.

Generates deterministic random bf16 checkpoints (hidden 2048, intermediate 5632, 22 layers,
32 heads, 4 kv heads, vocab 32000: about 2.2 GB each; a base and two variants), then for
linear x3, task_arithmetic x2, slerp x2, ties x2 and dare_ties x2 reports wall time, peak
RSS and peak anonymous RSS of the merging process, and the I/O floor of the same run (read
every input once, write one output of the same size, fsync). With ``--double`` it repeats
mergelab's runs on a model twice as deep, to show that memory does not grow with model size.
If a mergekit virtualenv is given (``--mergekit-venv``, with ``mergekit==0.1.5``), the same
recipes run with ``mergekit-yaml`` and the ratios are printed.

    python benchmarks/merge_speed.py --work /tmp/bench [--double] [--mergekit-venv DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

HIDDEN, INTER, HEADS, KV_HEADS, VOCAB = 2048, 5632, 32, 4, 32000
HEAD_DIM = HIDDEN // HEADS


def llama_shapes(layers: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes[p + "self_attn.q_proj.weight"] = (HIDDEN, HIDDEN)
        shapes[p + "self_attn.k_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.v_proj.weight"] = (KV_HEADS * HEAD_DIM, HIDDEN)
        shapes[p + "self_attn.o_proj.weight"] = (HIDDEN, HIDDEN)
        shapes[p + "mlp.gate_proj.weight"] = (INTER, HIDDEN)
        shapes[p + "mlp.up_proj.weight"] = (INTER, HIDDEN)
        shapes[p + "mlp.down_proj.weight"] = (HIDDEN, INTER)
        shapes[p + "input_layernorm.weight"] = (HIDDEN,)
        shapes[p + "post_attention_layernorm.weight"] = (HIDDEN,)
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return shapes


def write_checkpoint(folder: Path, layers: int, variant: int) -> None:
    """Deterministic random weights: the base (variant 0) plus a per-variant delta."""
    if (folder / "config.json").exists():
        return
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shard: dict[str, torch.Tensor] = {}
    shard_bytes, files, weight_map = 0, [], {}
    names = list(llama_shapes(layers).items())

    def flush() -> None:
        nonlocal shard, shard_bytes
        name = f"model-{len(files) + 1:05d}.safetensors"
        save_file(shard, str(tmp / name), metadata={"format": "pt"})
        files.append(name)
        weight_map.update(dict.fromkeys(shard, name))
        shard, shard_bytes = {}, 0

    for i, (name, shape) in enumerate(names):
        gen = torch.Generator().manual_seed(i)
        base = torch.randn(shape, generator=gen) * 0.02
        if variant:
            gen.manual_seed(10_000 * variant + i)
            base += torch.randn(shape, generator=gen) * 0.002
        shard[name] = base.to(torch.bfloat16)
        shard_bytes += shard[name].numel() * 2
        if shard_bytes > 1_000_000_000:
            flush()
    if shard:
        flush()
    total = len(files)
    renamed = {}
    for k, old in enumerate(files, start=1):
        new = f"model-{k:05d}-of-{total:05d}.safetensors"
        (tmp / old).rename(tmp / new)
        renamed[old] = new
    index = {
        "metadata": {"total_size": sum(int(torch.tensor(s).prod()) * 2 for _, s in names)},
        "weight_map": {k: renamed[v] for k, v in weight_map.items()},
    }
    (tmp / "model.safetensors.index.json").write_text(json.dumps(index))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_hidden_layers": layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    tmp.rename(folder)


def recipes(models: dict[str, Path]) -> dict[str, dict[str, object]]:
    base, a, b = (str(models[k]) for k in ("base", "a", "b"))
    return {
        "linear x3": {
            "merge_method": "linear",
            "models": [{"model": m, "parameters": {"weight": 1.0}} for m in (base, a, b)],
            "dtype": "bfloat16",
        },
        "task_arithmetic x2": {
            "merge_method": "task_arithmetic",
            "base_model": base,
            "models": [{"model": m, "parameters": {"weight": 0.5}} for m in (a, b)],
            "dtype": "bfloat16",
        },
        "slerp x2": {
            "merge_method": "slerp",
            "base_model": a,
            "models": [{"model": a}, {"model": b}],
            "parameters": {"t": 0.5},
            "dtype": "bfloat16",
        },
        "ties x2": {
            "merge_method": "ties",
            "base_model": base,
            "models": [{"model": m, "parameters": {"weight": 0.5, "density": 0.5}} for m in (a, b)],
            "dtype": "bfloat16",
        },
        "dare_ties x2": {
            "merge_method": "dare_ties",
            "base_model": base,
            "models": [{"model": m, "parameters": {"weight": 0.5, "density": 0.5}} for m in (a, b)],
            "dtype": "bfloat16",
        },
    }


@dataclass
class Measurement:
    seconds: float
    peak_rss: int
    peak_anon: int


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> Measurement:
    """Run ``cmd``; sample its RSS and anonymous RSS every 20 ms (children included)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = {"rss": 0, "anon": 0}

    def sample() -> None:
        while proc.poll() is None:
            rss = anon = 0
            for pid in _process_tree(proc.pid):
                fields = _status(pid)
                rss += fields.get("VmRSS", 0)
                anon += fields.get("RssAnon", 0)
            peak["rss"] = max(peak["rss"], rss)
            peak["anon"] = max(peak["anon"], anon)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.decode()[-2000:]}")
    return Measurement(seconds, peak["rss"] * 1024, peak["anon"] * 1024)


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return out


def _process_tree(root: int) -> list[int]:
    pids, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            continue
        kids = [int(c) for c in children]
        pids += kids
        frontier += kids
    return pids


def warm_page_cache(inputs: list[Path]) -> None:
    """Read every input file once and flush every earlier run's writes to disk, so runs
    compare with the same (warm) page cache and an idle disk."""
    buf = bytearray(64 << 20)
    for folder in inputs:
        for f in sorted(folder.glob("*.safetensors")):
            with open(f, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass
    os.sync()


def io_floor(inputs: list[Path], out_bytes: int, scratch: Path) -> float:
    """Seconds to read every input file once and write + fsync ``out_bytes`` (preallocated,
    as the merge writer does)."""
    start = time.perf_counter()
    buf = bytearray(64 << 20)
    view = memoryview(buf)
    for folder in inputs:
        for f in sorted(folder.glob("*.safetensors")):
            with open(f, "rb", buffering=0) as fh:
                while fh.readinto(view):
                    pass
    with open(scratch, "wb", buffering=0) as fh:
        os.posix_fallocate(fh.fileno(), 0, out_bytes)
        left = out_bytes
        while left > 0:
            left -= fh.write(view[: min(len(buf), left)])
        os.fsync(fh.fileno())
    seconds = time.perf_counter() - start
    scratch.unlink()
    return seconds


def model_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(".bench"))
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--double", action="store_true", help="also run at twice the depth")
    parser.add_argument("--mergekit-venv", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="recipe names to run")
    args = parser.parse_args()
    sizes = [args.layers] + ([2 * args.layers] if args.double else [])
    rows = []
    for layers in sizes:
        models = {}
        for variant, key in enumerate(("base", "a", "b")):
            models[key] = args.work / f"llama-{layers}L-{key}"
            print(f"preparing {models[key]} ...", flush=True)
            write_checkpoint(models[key], layers, variant)
        for name, recipe in recipes(models).items():
            if args.only and name not in args.only:
                continue
            rows.append(
                bench_one(args, layers, name, recipe, models, compare=layers == args.layers)
            )
    print_table(rows)


def bench_one(
    args: argparse.Namespace,
    layers: int,
    name: str,
    recipe: dict[str, object],
    models: dict[str, Path],
    *,
    compare: bool,
) -> dict[str, object]:
    slug = name.replace(" ", "-")
    recipe_path = args.work / f"{slug}-{layers}.yml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    out = args.work / f"out-{slug}-{layers}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "mergelab.cli", "-q", "merge", str(recipe_path), str(out)]
    inputs = sorted({Path(str(m["model"])) for m in recipe["models"]})  # type: ignore[index, union-attr]
    if "base_model" in recipe:
        inputs = sorted(set(inputs) | {Path(str(recipe["base_model"]))})
    warm_page_cache(inputs)  # every measurement starts with the inputs cached
    ours = run_measured(cmd)
    warm_page_cache(inputs)
    floor = io_floor(inputs, model_bytes(out), args.work / "floor.tmp")
    shutil.rmtree(out, ignore_errors=True)
    row: dict[str, object] = {
        "recipe": name,
        "layers": layers,
        "size": model_bytes(models["base"]),
        "ours": ours,
        "floor": floor,
    }
    print(
        f"{name} ({layers} layers): {ours.seconds:.1f} s, floor {floor:.1f} s, "
        f"peak anon {ours.peak_anon / 1e9:.2f} GB",
        flush=True,
    )
    venv = args.mergekit_venv
    if compare and venv is not None and (venv / "bin" / "mergekit-yaml").exists():
        mk_out = args.work / f"mk-{slug}"
        shutil.rmtree(mk_out, ignore_errors=True)
        warm_page_cache(inputs)
        row["mergekit"] = run_measured(
            [str(venv / "bin" / "mergekit-yaml"), str(recipe_path), str(mk_out)]
        )
        shutil.rmtree(mk_out, ignore_errors=True)
        print(f"  mergekit: {row['mergekit'].seconds:.1f} s", flush=True)  # type: ignore[union-attr]
    return row


def print_table(rows: list[dict[str, object]]) -> None:
    head = (
        "| recipe | layers | model size | mergelab s | I/O floor s | x floor | peak RSS GB "
        "| peak anon GB | mergekit s | mergekit anon GB | speed-up |"
    )
    print()
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        ours: Measurement = r["ours"]  # type: ignore[assignment]
        mk: Measurement | None = r.get("mergekit")  # type: ignore[assignment]
        floor = float(r["floor"])  # type: ignore[arg-type]
        mk_cols = (
            f"{mk.seconds:.1f} | {mk.peak_anon / 1e9:.2f} | {mk.seconds / ours.seconds:.1f}x"
            if mk
            else "- | - | -"
        )
        print(
            f"| {r['recipe']} | {r['layers']} | {int(r['size']) / 1e9:.2f} GB | "  # type: ignore[call-overload]
            f"{ours.seconds:.1f} | {floor:.1f} | {ours.seconds / floor:.2f} | "
            f"{ours.peak_rss / 1e9:.2f} | {ours.peak_anon / 1e9:.2f} | {mk_cols} |"
        )


if __name__ == "__main__":
    main()
