"""Task-vector diagnostics: where fine-tunes change their base, and how they would interfere.

Per tensor, per layer and per model: norm and relative change, sparsity, pairwise cosine,
sign-conflict rate and top-k overlap, a reading of what they predict for a merge, heatmaps.
"""

from __future__ import annotations

from mergelab.analyze.collect import Analysis, collect
from mergelab.analyze.reading import reading, recommend
from mergelab.analyze.report import analyze, write_report

__all__ = ["Analysis", "analyze", "collect", "reading", "recommend", "write_report"]
