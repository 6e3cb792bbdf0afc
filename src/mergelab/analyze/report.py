"""``analyze``: measure the task vectors of fine-tunes of one base and write the report.

The report folder holds ``analysis.json`` (every number, per tensor, per layer and for the
whole model, plus the reading), ``reading.md`` (the paragraph of
:mod:`mergelab.analyze.reading`) and one heatmap PNG per metric (:mod:`mergelab.analyze.plots`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from mergelab.analyze.collect import Analysis, collect
from mergelab.analyze.plots import heatmaps
from mergelab.analyze.reading import reading
from mergelab.output_dir import atomic_output_dir, check_output_location

log = logging.getLogger(__name__)

JSON_FILE = "analysis.json"
READING_FILE = "reading.md"


def analyze(
    base: str | Path,
    finetunes: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    eps: float = 1e-6,
    top_k: float = 0.1,
    overwrite: bool = False,
    plots: bool = True,
) -> Analysis:
    """Diagnose the task vectors ``finetune - base``; write the report to ``out`` if given."""
    if out is not None:
        check_output_location(Path(out), [Path(base), *map(Path, finetunes)], overwrite=overwrite)
    analysis = collect(base, finetunes, eps=eps, top_k_fraction=top_k)
    if out is not None:
        with atomic_output_dir(Path(out), overwrite=overwrite) as tmp:
            write_report(analysis, tmp, plots=plots)
        log.info("wrote the task-vector analysis to %s", out)
    return analysis


def write_report(analysis: Analysis, folder: Path, *, plots: bool = True) -> None:
    text = reading(analysis)
    data = {**analysis.to_json(), "reading": text}
    (folder / JSON_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (folder / READING_FILE).write_text(text + "\n", encoding="utf-8")
    if plots:
        heatmaps(analysis, folder)
