"""A one-paragraph reading of the diagnostics: what they predict for a merge, by fixed rules.

Merges work best when fine-tunes change few and different parameters (Yadav et al. 2023,
TIES-Merging, https://arxiv.org/abs/2306.01708; Yu et al. 2024, DARE,
https://arxiv.org/abs/2311.03099). With ``c`` the whole-model cosine, ``s`` the sign-conflict
rate, ``j`` the top-k Jaccard overlap of a pair, ``chance = k / (2 - k)`` the overlap of two
random top-k sets (k the top-k fraction), ``r`` a vector's relative change and ``p`` its
sparsity, the rules are (thresholds are mergelab's, chosen on the zoo, not from the papers):

1. ``r >= 0.05``: a large move; merge it at a weight below 1, and trim it by magnitude
   (TIES) rather than DARE's random drop, whose ``1 / density`` rescale amplifies large
   deltas (the DARE paper reports it failing when delta parameters are large).
2. ``p >= 0.5``: a sparse vector; it compresses well (``vector extract --density``).
3. Where a vector's change lives: the fewest layers holding 80% of ``||tau||^2``. Two vectors
   whose layer sets are disjoint live in different layers: per-layer weights can tune them
   separately.
4. Per pair, in order (first match decides the recommendation):
   a. ``c <= -0.1``: the vectors oppose each other; adding cancels skills -> ``ties``
      (sign election keeps the dominant direction per entry).
   b. ``j <= 1.5 * chance``: their largest changes fall on different parameters ->
      ``task_arithmetic``
      (adding the vectors at weight 1 keeps both skills, little interference).
   c. ``c >= 0.3`` and ``s < 0.4``: similar directions -> ``linear`` (a model soup averages
      them safely, but the skills overlap, so the gain of combining is limited).
   d. ``s >= 0.4`` or ``j >= 3 * chance``: many co-changed entries, often with opposite
      signs -> interference expected; ``ties`` or ``dare_ties``.
   e. otherwise: mild overlap -> ``task_arithmetic`` with weights around 0.5-0.7.
"""

from __future__ import annotations

from typing import Any

from mergelab.analyze.collect import Analysis

LARGE_CHANGE = 0.05
SPARSE = 0.5
LAYER_SHARE = 0.8


def chance_overlap(fraction: float) -> float:
    """Expected Jaccard index of two independent random top-``fraction`` sets."""
    return fraction / (2.0 - fraction)


def recommend(pair: dict[str, float | None], fraction: float) -> tuple[str, str]:
    """(method, reason) for one pair's whole-model row, by rule 4."""
    c = pair["cosine"] or 0.0
    s = pair["sign_conflict"]
    j = pair["topk_jaccard"]
    chance = chance_overlap(fraction)
    if c <= -0.1:
        return "ties", f"their directions oppose (cosine {c:.2f}), so adding cancels skills"
    if j is not None and j <= 1.5 * chance:
        return (
            "task_arithmetic",
            f"their largest changes fall on different parameters (top-k overlap {j:.2f}, "
            f"chance level {chance:.2f})",
        )
    conflicted = s is not None and s >= 0.4
    if c >= 0.3 and not conflicted:
        return "linear", f"they point the same way (cosine {c:.2f}); a plain average is safe"
    if conflicted or (j is not None and j >= 3 * chance):
        return (
            "ties",
            f"they change the same parameters (top-k overlap {_num(j)}) with "
            f"{_pct(s)} sign conflicts, so plain averaging interferes; TIES or DARE-TIES fit",
        )
    return "task_arithmetic", f"they overlap mildly (top-k overlap {_num(j)}); use weights ~0.5-0.7"


def main_layers(analysis: Analysis, model: str) -> list[str]:
    """The fewest layers holding ``LAYER_SHARE`` of the model's squared task-vector norm."""
    shares = [(row["layer"], (row["models"][model]["norm"] or 0.0) ** 2) for row in analysis.layers]
    total = sum(v for _, v in shares)
    if total <= 0:
        return []
    picked: list[str] = []
    acc = 0.0
    for label, value in sorted(shares, key=lambda lv: -lv[1]):
        picked.append(label)
        acc += value
        if acc >= LAYER_SHARE * total:
            break
    return picked


def reading(analysis: Analysis) -> str:
    """The paragraph, built from the rules in the module docstring."""
    parts: list[str] = []
    where: dict[str, list[str]] = {}
    for model in analysis.models:
        row: dict[str, Any] = analysis.total["models"][model]
        r, p = row["relative_change"] or 0.0, row["sparsity"] or 0.0
        where[model] = main_layers(analysis, model)
        text = f"{model} moves the weights by {100 * r:.1f}% of their norm"
        text += f", leaves {100 * p:.0f}% of them unchanged"
        if where[model]:
            text += f" and changes mostly layers {', '.join(where[model])}"
        if r >= LARGE_CHANGE:
            text += (
                " (a large move: merge it at a weight below 1 and trim it by magnitude rather "
                "than DARE's random drop)"
            )
        if p >= SPARSE:
            text += " (sparse: it compresses well)"
        parts.append(text + ".")
    for a, b in analysis.pairs:
        pair = analysis.total["pairs"][f"{a} vs {b}"]
        method, reason = recommend(pair, analysis.top_k)
        disjoint = where[a] and where[b] and not set(where[a]) & set(where[b])
        layers = (
            " They live in different layers, so per-layer weights can tune each."
            if disjoint
            else ""
        )
        parts.append(
            f"{a} and {b}: cosine {_num(pair['cosine'])}, {_pct(pair['sign_conflict'])} sign "
            f"conflicts, top-k overlap {_num(pair['topk_jaccard'])}; {reason}, so expect "
            f"{method} to merge them best.{layers}"
        )
    if len(analysis.models) < 2:
        parts.append("Give two or more fine-tunes to compare them with each other.")
    return " ".join(parts)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"
