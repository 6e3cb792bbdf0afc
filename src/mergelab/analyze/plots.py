"""Heatmaps of the per-layer diagnostics: one PNG per metric, layers down, models across.

Per-vector metrics (norm, relative change, sparsity) have one column per fine-tune, pairwise
metrics (cosine, sign conflict, top-k overlap) one column per pair. matplotlib is imported
lazily and used without pyplot (a bare ``Figure`` saved by the Agg renderer), so no global
backend or figure state is touched.
"""

from __future__ import annotations

import math
from pathlib import Path

from mergelab.analyze.collect import Analysis

VECTOR_METRICS = ("norm", "relative_change", "sparsity")
PAIR_METRICS = ("cosine", "sign_conflict", "topk_jaccard")
_TITLES = {
    "norm": "||tau|| per layer",
    "relative_change": "||tau|| / ||theta_base|| per layer",
    "sparsity": "fraction of unchanged entries",
    "cosine": "cosine between task vectors",
    "sign_conflict": "sign-conflict rate (co-changed entries)",
    "topk_jaccard": "top-k overlap (Jaccard)",
}


def heatmaps(analysis: Analysis, folder: Path) -> list[Path]:
    """Write ``<metric>.png`` for every metric that has columns; return the paths."""
    from matplotlib import patheffects
    from matplotlib.figure import Figure

    halo = [patheffects.withStroke(linewidth=2, foreground="white")]  # black text, white edge

    written: list[Path] = []
    labels = [str(row["layer"]) for row in analysis.layers]
    pair_names = [f"{a} vs {b}" for a, b in analysis.pairs]
    for metric in (*VECTOR_METRICS, *PAIR_METRICS):
        key, columns = (
            ("models", analysis.models) if metric in VECTOR_METRICS else ("pairs", pair_names)
        )
        if not columns:
            continue
        grid = [
            [_value(row[key][col][metric]) for col in columns] for row in analysis.layers
        ]  # (layers, columns)
        fig = Figure(figsize=(1.6 + 1.3 * len(columns), 1.2 + 0.35 * len(labels)))
        ax = fig.subplots()
        bounded = metric != "norm"
        image = ax.imshow(
            grid,
            aspect="auto",
            cmap="coolwarm" if metric == "cosine" else "viridis",
            vmin=-1.0 if metric == "cosine" else (0.0 if bounded else None),
            vmax=1.0 if metric in ("cosine", "sparsity", "sign_conflict", "topk_jaccard") else None,
        )
        for i, line in enumerate(grid):
            for j, value in enumerate(line):
                text = "" if math.isnan(value) else f"{value:.2g}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, path_effects=halo)
        ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylabel("layer")
        ax.set_title(_TITLES[metric], fontsize=9)
        fig.colorbar(image, ax=ax)
        fig.tight_layout()
        path = folder / f"{metric}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    return written


def _value(value: float | None) -> float:
    return math.nan if value is None else float(value)
