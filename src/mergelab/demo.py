"""The demo: build the toy world, score its models, merge them by hand, compare.

It mirrors the flagship table of Akiba et al. (arXiv 2403.13187): a J general model and two
E math models, each scored on J arithmetic (strict: right number in the J answer frame;
lenient: right number), J reading and E arithmetic, then hand merges of the three.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mergelab.merge import merge_state_dict
from mergelab.progress import progress

log = logging.getLogger(__name__)

# (column label, task, metric)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("J-arith strict", "j-arith", "strict"),
    ("J-arith lenient", "j-arith", "lenient"),
    ("J-read", "j-read", "strict"),
    ("E-arith", "e-arith", "strict"),
)
SOURCES: tuple[tuple[str, str], ...] = (
    ("base", "base"),
    ("J (J general)", "j"),
    ("M1 (E math)", "m1"),
    ("M2 (E math)", "m2"),
)


def hand_merges(zoo: Path) -> dict[str, dict[str, Any]]:
    """The demo's hand-written recipes over J, M1 and M2 (sensible, untuned parameters)."""
    j, m1, m2, base = (str(zoo / n) for n in ("j", "m1", "m2", "base"))

    def models(weights: tuple[float, float, float], density: float | None) -> list[Any]:
        out = []
        for model, w in zip((j, m1, m2), weights, strict=True):
            params: dict[str, float] = {"weight": w}
            if density is not None:
                params["density"] = density
            out.append({"model": model, "parameters": params})
        return out

    return {
        "linear soup (J, M1, M2)": {
            "merge_method": "linear",
            "models": models((1.0, 1.0, 1.0), None),
        },
        "task arithmetic (J + M1 + M2)": {
            "merge_method": "task_arithmetic",
            "base_model": base,
            "models": models((1.0, 0.5, 0.5), None),
        },
        "TIES (J, M1, M2)": {
            "merge_method": "ties",
            "base_model": base,
            "models": models((1.0, 0.5, 0.5), 0.5),
            "parameters": {"normalize": False},
        },
        "DARE-TIES (J, M1, M2)": {
            "merge_method": "dare_ties",
            "base_model": base,
            "models": models((1.0, 0.5, 0.5), 0.5),
            "seed": 0,
        },
    }


@dataclass
class DemoRow:
    """One model's scores; ``kind`` is "source" or "merge"."""

    name: str
    kind: str
    scores: dict[str, float]


@dataclass
class DemoResult:
    rows: list[DemoRow]
    zoo: Path
    chart: Path | None
    report: Path

    def best_merge_gain(self) -> float:
        """J-arith strict of the best hand merge minus that of the best source."""
        col = COLUMNS[0][0]
        best_source = max(r.scores[col] for r in self.rows if r.kind == "source")
        best_merge = max(r.scores[col] for r in self.rows if r.kind == "merge")
        return best_merge - best_source


def run_demo(
    zoo: str | Path = "zoo",
    out: str | Path = "demo-out",
    *,
    split: str = "test",
    limit: int | None = None,
    jobs: int = 2,
) -> DemoResult:
    """Build (or reuse) the zoo, score sources and hand merges, write a chart and a report."""
    from mergelab.eval import TaskEvaluator, load_model
    from mergelab.zoo import build_zoo

    root = build_zoo(zoo, jobs=jobs).root
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_model(root / "base")
    tasks = sorted({task for _, task, _ in COLUMNS})
    evaluators = {t: TaskEvaluator(t, tokenizer, split=split, limit=limit) for t in tasks}

    def score(name: str, kind: str) -> DemoRow:
        results = {t: ev(model) for t, ev in evaluators.items()}
        return DemoRow(name, kind, {label: results[t][m] for label, t, m in COLUMNS})

    rows: list[DemoRow] = []
    merges = hand_merges(root)
    with progress("demo", len(SOURCES) + len(merges)) as bar:
        for label, folder in SOURCES:
            source, _ = load_model(root / folder)
            model.load_state_dict(source.state_dict())
            rows.append(score(label, "source"))
            bar.advance(1, info=label)
        for label, recipe in merges.items():
            model.load_state_dict(merge_state_dict(recipe))
            rows.append(score(label, "merge"))
            bar.advance(1, info=label)
    report = out_dir / "demo.json"
    report.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
    chart = _chart(rows, out_dir / "demo.png")
    return DemoResult(rows, root, chart, report)


def _chart(rows: list[DemoRow], path: Path) -> Path | None:
    """A grouped bar chart (models x columns); None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed; skipping the demo chart")
        return None
    labels = [label for label, _, _ in COLUMNS]
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for i, row in enumerate(rows):
        xs = [k + (i - (len(rows) - 1) / 2) * width for k in range(len(labels))]
        hatch = "//" if row.kind == "merge" else None
        ax.bar(xs, [row.scores[c] for c in labels], width, label=row.name, hatch=hatch)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (test split)")
    ax.set_title("toy world: sources and hand merges (hatched)")
    ax.legend(fontsize=8, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
