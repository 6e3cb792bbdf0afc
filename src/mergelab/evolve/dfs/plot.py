"""The evolved path as a picture (matplotlib, Agg backend), beside the other search plots.

Top: the slots, one row per (repeat, model) in layout order and one column per layer; an
on slot is coloured by the scale of the hidden state entering it and labelled with its
path position; off slots are blank. Bottom: the path itself, position by position, as the
global layer it runs (models stacked, A at the bottom), fixed ends drawn as squares.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from mergelab.evolve.dfs.genome import DfsGenome, DfsPath


def plot_path(genome: DfsGenome, path: DfsPath, file: Path, title: str) -> None:
    """Draw ``path`` of ``genome`` into ``file`` (see the module docstring)."""
    models, repeats = len(genome.depths), genome.spec.repeats
    grid = np.full((repeats * models, max(genome.depths)), np.nan)  # (rows, layers)
    labels = [[""] * grid.shape[1] for _ in range(grid.shape[0])]
    slots = {slot.index: slot for slot in genome.slots}
    for k, step in enumerate(path.steps):
        if step.slot is not None:
            slot = slots[step.slot]
            row = slot.repeat * models + slot.model
            grid[row, slot.layer] = step.scale
            labels[row][slot.layer] = f"#{k}\nx{step.scale:.2f}"
    low, high = genome.spec.scale_range
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(1.6 + 0.6 * grid.shape[1], 2.6 + 0.5 * grid.shape[0] + 2.4)
    )
    image = top.imshow(grid, aspect="auto", cmap="coolwarm", vmin=low, vmax=high)
    rows = [f"{genome.labels[m]} @r{r}" for r in range(repeats) for m in range(models)]
    top.set_yticks(range(len(rows)), rows)
    top.set_xticks(range(grid.shape[1]), [str(i) for i in range(grid.shape[1])])
    top.set_xlabel("layer")
    for (r, c), text in np.ndenumerate(np.asarray(labels, dtype=object)):
        if text:
            top.text(c, r, text, ha="center", va="center", fontsize=6)
    for r in range(grid.shape[0]):  # grey out layers a model does not have
        for c in range(genome.depths[r % models], grid.shape[1]):
            top.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, color="0.85"))
    fig.colorbar(image, ax=top, label="scale")
    top.set_title("on slots (path position, scale)")
    offsets = np.cumsum([0, *genome.depths])
    glob = [offsets[s.model] + s.layer for s in path.steps]
    positions = np.arange(len(path.steps))
    bottom.plot(positions, glob, "-", color="0.6", zorder=1)
    for model in range(models):
        mine = [k for k, s in enumerate(path.steps) if s.model == model]
        fixed = [s.slot is None for s in path.steps]
        bottom.scatter(
            [k for k in mine if not fixed[k]],
            [glob[k] for k in mine if not fixed[k]],
            color=f"C{model}",
            label=genome.labels[model],
            zorder=2,
        )
        bottom.scatter(
            [k for k in mine if fixed[k]],
            [glob[k] for k in mine if fixed[k]],
            color=f"C{model}",
            marker="s",
            zorder=2,
        )
    names = [
        f"{genome.labels[m]}.{i}" for m, depth in enumerate(genome.depths) for i in range(depth)
    ]
    every = max(1, len(names) // 24)  # at most about 24 tick labels
    bottom.set_yticks(range(0, len(names), every), names[::every], fontsize=7)
    bottom.set_ylim(-0.5, len(names) - 0.5)
    for boundary in offsets[1:-1]:  # between models
        bottom.axhline(boundary - 0.5, color="0.3", linewidth=0.8)
    bottom.set_xlabel("path position")
    bottom.set_ylabel("layer")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=8)
    bottom.set_title(f"path of {len(path.steps)} layers (squares: fixed ends)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)
