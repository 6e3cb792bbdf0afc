"""Plots of a search (matplotlib, Agg backend, PNG files).

- ``history.png``: each objective's score per trial with the best-so-far line;
- ``genome.png``: the chosen candidate's evolved values, a heatmap of (parameter, model)
  rows by layer-group columns;
- ``pareto.png`` (several objectives): every trial on the first two objectives, the front
  joined by a line, the knee marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from mergelab.evolve.space import GeneTable


def plot_history(
    numbers: Sequence[int],
    values: Sequence[Sequence[float]],
    labels: Sequence[str],
    maximize: Sequence[bool],
    path: Path,
) -> None:
    """Scores per trial (dots) and best so far (line), one panel per objective."""
    k = len(labels)
    fig, axes = plt.subplots(k, 1, figsize=(7, 2.6 * k), squeeze=False, sharex=True)
    v = np.asarray(values, dtype=float).reshape(len(numbers), k)  # (n, k)
    for j, ax in enumerate(axes[:, 0]):
        ax.scatter(numbers, v[:, j], s=8, alpha=0.5, label="trial")
        if len(numbers):
            best = np.maximum.accumulate(v[:, j]) if maximize[j] else np.minimum.accumulate(v[:, j])
            ax.step(numbers, best, where="post", color="C3", label="best so far")
        ax.set_ylabel(labels[j])
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if maximize[j] else "upper right", fontsize=8)
    axes[-1, 0].set_xlabel("trial")
    fig.suptitle("fitness per trial")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_genome(table: GeneTable, path: Path, title: str) -> None:
    """Heatmap of evolved values: rows (parameter, model), columns layer groups."""
    data = np.asarray(table.values, dtype=float)  # (rows, groups)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(table.columns), 1.0 + 0.45 * len(table.rows)))
    top = max(1.0, float(data.max()))  # weights and densities share one 0..1 (or more) scale
    image = ax.imshow(
        data, aspect="auto", cmap="viridis", vmin=min(0.0, float(data.min())), vmax=top
    )
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(table.rows)), table.rows)
    for (r, c), value in np.ndenumerate(data):
        ink = "black" if value > 0.6 * top else "white"  # readable on viridis' bright end
        ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7, color=ink)
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pareto(
    values: Sequence[Sequence[float]],
    front: Sequence[Sequence[float]],
    knee: int,
    labels: Sequence[str],
    path: Path,
) -> None:
    """All trials on the first two objectives, the front as a line, the knee as a star."""
    v = np.asarray(values, dtype=float)  # (n, k)
    f = np.asarray(front, dtype=float)  # (m, k)
    fig, ax = plt.subplots(figsize=(6, 5))
    if len(v):
        ax.scatter(v[:, 0], v[:, 1], s=8, color="0.6", alpha=0.6, label="trials")
    order = np.argsort(f[:, 0])
    ax.plot(f[order, 0], f[order, 1], "o-", color="C0", label="Pareto front")
    ax.scatter([f[knee, 0]], [f[knee, 1]], marker="*", s=250, color="C3", zorder=3, label="knee")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Pareto front")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
