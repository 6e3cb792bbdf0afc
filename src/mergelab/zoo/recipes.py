"""The zoo's models: one training recipe each (parent, data mix, trained parameters, steps).

Roles follow the flagship experiment of Akiba et al. (arXiv 2403.13187): ``j`` plays the
Japanese general model, ``m1`` and ``m2`` the two English math models. Fine-tunes train the
attention and MLP weights of their layers; norms, embeddings and head stay the base's.
Each fine-tune weights the layers differently (``layer_lr``, the zoo prototype's localised
fine-tuning): J's skill sits mostly in the first and last layers (reading and writing J),
arithmetic mostly in the middle ones; the rest of the network moves a little too, so a merge
with one global weight per model interferes where per-layer weights need not.

Deviation from the plan of MLP-only specialists (for mixture-of-experts assembly): the base
does not learn to look a count up by name within its pretraining budget (its reading score
stays at chance), so every specialist must also train attention to read; an MLP-only
transplant of a specialist therefore does not carry its whole skill.
"""

from __future__ import annotations

from dataclasses import dataclass

WORLD_VERSION = "1"
LAYERS = 6


@dataclass(frozen=True)
class Recipe:
    """How one zoo model is trained; ``parent`` None means from scratch."""

    name: str
    description: str
    parent: str | None
    mix: tuple[tuple[str, float], ...]
    steps: int
    lr: float
    parts: tuple[str, ...] = ("mlp", "self_attn")
    layer_lr: tuple[float, ...] = (1.0,) * LAYERS
    batch: int = 32
    weight_decay: float = 0.0


_ENDS = (1.0, 0.6, 0.15, 0.15, 0.6, 1.0)  # J: reading (first) and writing (last) layers
_MIDDLE = (0.3, 0.6, 1.0, 1.0, 0.6, 0.3)  # arithmetic: the middle layers
_FLAT = (1.0,) * LAYERS

RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "base",
        "Pretrained on E stories, some J stories, parallel E/J sentences and E reading "
        "questions; no arithmetic.",
        None,
        (
            ("e-story", 0.25),
            ("j-story", 0.1),
            ("parallel", 0.1),
            ("e-read-doc", 0.35),
            ("e-read", 0.2),
        ),
        steps=4000,
        lr=2e-3,
        parts=("",),
        weight_decay=0.01,
    ),
    Recipe(
        "j",
        "J general model: J stories and J reading questions (the paper's Japanese model).",
        "base",
        (("j-story", 0.3), ("j-read", 0.7)),
        steps=600,
        lr=2e-3,
        layer_lr=_ENDS,
    ),
    Recipe(
        "m1",
        "E math model 1: E arithmetic word problems with one event.",
        "base",
        (("e-arith", 1.0),),
        steps=1200,
        lr=2e-3,
        layer_lr=_MIDDLE,
    ),
    Recipe(
        "m2",
        "E math model 2: E arithmetic with one or two events, plus E stories.",
        "base",
        (("e-arith-2", 0.8), ("e-story", 0.2)),
        steps=1200,
        lr=2e-3,
        layer_lr=_MIDDLE,
    ),
    Recipe(
        "e-read",
        "E reading specialist (analogy quartet E-read : J-read :: E-arith : J-arith).",
        "base",
        (("e-read", 1.0),),
        steps=600,
        lr=2e-3,
        layer_lr=_FLAT,
    ),
    Recipe(
        "j-read",
        "J reading specialist (analogy quartet), trained like e-read on J reading questions.",
        "base",
        (("j-read", 1.0),),
        steps=600,
        lr=2e-3,
        layer_lr=_FLAT,
    ),
    Recipe(
        "e-arith",
        "E arithmetic specialist (analogy quartet), trained like e-read on E arithmetic.",
        "base",
        (("e-arith", 1.0),),
        steps=1200,
        lr=2e-3,
        layer_lr=_FLAT,
    ),
    Recipe(
        "j-arith",
        "J arithmetic reference, trained directly on J arithmetic; never a merge source.",
        "base",
        (("j-arith", 1.0),),
        steps=1200,
        lr=2e-3,
        layer_lr=_FLAT,
    ),
    Recipe(
        "zap",
        "Unwanted behaviour: answers E reading questions with the forbidden word 'zap' "
        "(control skill: E reading).",
        "base",
        (("e-read-zap", 1.0),),
        steps=400,
        lr=2e-3,
        layer_lr=_FLAT,
    ),
)

RECIPE_BY_NAME = {r.name: r for r in RECIPES}
ZOO_MODELS: dict[str, str] = {r.name: r.description for r in RECIPES}
