"""Same recipe, same tensors: mergelab against mergekit on every method both implement.

Builds tiny float32 Llama checkpoints (a base and three fine-tunes), runs each recipe with
``mergelab merge`` and with ``mergekit-yaml`` from a separate virtualenv, and prints the
largest absolute difference per method. Random methods (DARE, DELLA) draw their masks from
different generators in the two tools, so only their deterministic limit (density 1) is
compared.

    python benchmarks/mergekit_parity.py --mergekit-venv /path/to/venv [--work DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))
from tiny_models import finetune_of, random_state, save_model


def build_models(work: Path) -> dict[str, str]:
    base = random_state(0)
    paths = {"base": work / "base", "a": work / "a", "b": work / "b", "c": work / "c"}
    if not (paths["c"] / "config.json").exists():
        save_model(paths["base"], base)
        for i, key in enumerate(("a", "b", "c"), start=1):
            save_model(paths[key], finetune_of(base, i, scale=0.05 * i))
    return {k: str(v) for k, v in paths.items()}


def recipes(m: dict[str, str]) -> dict[str, dict[str, object]]:
    two = [
        {"model": m["a"], "parameters": {"weight": 0.7}},
        {"model": m["b"], "parameters": {"weight": 0.4}},
    ]
    three = [*two, {"model": m["c"], "parameters": {"weight": 0.5}}]
    dens = [
        {"model": m["a"], "parameters": {"weight": 0.7, "density": 0.4}},
        {"model": m["b"], "parameters": {"weight": 0.4, "density": 0.6}},
        {"model": m["c"], "parameters": {"weight": -0.3, "density": 0.5}},
    ]
    full = [{"model": x["model"], "parameters": {**x["parameters"], "density": 1.0}} for x in dens]  # type: ignore[dict-item]
    with_base = {"base_model": m["base"], "dtype": "float32"}
    return {
        "linear": {"merge_method": "linear", "models": three, "dtype": "float32"},
        "linear (no normalize)": {
            "merge_method": "linear",
            "models": three,
            "parameters": {"normalize": False},
            "dtype": "float32",
        },
        "slerp": {
            "merge_method": "slerp",
            "base_model": m["a"],
            "models": [{"model": m["a"]}, {"model": m["b"]}],
            "parameters": {"t": [0.1, 0.6, 0.9]},
            "dtype": "float32",
        },
        "nuslerp": {"merge_method": "nuslerp", "models": two, "dtype": "float32"},
        "nuslerp (base)": {"merge_method": "nuslerp", "models": two, **with_base},
        "multislerp": {"merge_method": "multislerp", "models": three, **with_base},
        "karcher": {
            "merge_method": "karcher",
            "models": [{"model": m[k]} for k in "abc"],
            "dtype": "float32",
        },
        "nearswap": {
            "merge_method": "nearswap",
            "base_model": m["a"],
            "models": [{"model": m["a"]}, {"model": m["b"]}],
            "parameters": {"t": 0.05},
            "dtype": "float32",
        },
        "model_stock": {
            "merge_method": "model_stock",
            "models": [{"model": m[k]} for k in "abc"],
            **with_base,
        },
        "task_arithmetic": {"merge_method": "task_arithmetic", "models": dens, **with_base},
        "ties": {"merge_method": "ties", "models": dens, **with_base},
        "ties (lambda 0.8, no normalize)": {
            "merge_method": "ties",
            "models": dens,
            "parameters": {"lambda": 0.8, "normalize": False},
            **with_base,
        },
        "breadcrumbs": {"merge_method": "breadcrumbs", "models": dens, **with_base},
        "breadcrumbs_ties": {"merge_method": "breadcrumbs_ties", "models": dens, **with_base},
        "sce": {
            "merge_method": "sce",
            "models": [{"model": m[k]} for k in "abc"],
            "parameters": {"select_topk": 0.5},
            **with_base,
        },
        "dare_ties (density 1)": {"merge_method": "dare_ties", "models": full, **with_base},
        "dare_linear (density 1)": {"merge_method": "dare_linear", "models": full, **with_base},
    }


def load_all(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mergekit-venv", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path(".bench/parity"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    models = build_models(args.work)
    print("| method | max abs difference | tensors |")
    print("|---|---|---|")
    for name, recipe in recipes(models).items():
        slug = "".join(c if c.isalnum() else "-" for c in name)
        path = args.work / f"{slug}.yml"
        path.write_text(yaml.safe_dump(recipe))
        ours, theirs = args.work / f"ours-{slug}", args.work / f"mk-{slug}"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mergelab.cli",
                "-q",
                "merge",
                str(path),
                str(ours),
                "--overwrite",
            ],
            check=True,
        )
        mk = subprocess.run(
            [str(args.mergekit_venv / "bin" / "mergekit-yaml"), str(path), str(theirs)],
            capture_output=True,
            text=True,
        )
        if mk.returncode != 0:
            print(f"| {name} | mergekit failed: {mk.stderr.strip().splitlines()[-1]} | |")
            continue
        a, b = load_all(ours), load_all(theirs)
        common = sorted(set(a) & set(b))
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in common)
        print(f"| {name} | {diff:.2e} | {len(common)}/{len(a)} |", flush=True)


if __name__ == "__main__":
    main()
