"""The zoo's models: one training recipe each (parent, data mix, trained parameters, steps).

Roles follow the flagship experiment of Akiba et al. (arXiv 2403.13187): ``j`` plays the
Japanese general model, ``m1`` and ``m2`` the two English math models. Fine-tunes train the
attention and MLP weights of some layers (``layer_lr``: the zoo prototype's localised
fine-tuning, which keeps task vectors small and apart); norms, embeddings and head stay the
base's. Language skills (reading a J question, writing the J answer frame) live in the first
and last layers, arithmetic in the middle ones, with a light overlap in layers 1 and 4, so the
right per-layer recipe matters when the two are merged.

The base learns to look a count up by name (the induction circuit every question needs) from
repeated lists; without them it stayed at chance for thousands of steps. It also sees J
reading questions answered in the E frame, as an English-centric model answers Japanese
questions in English: the E math models then give the right number to J problems in the
wrong language (lenient right, strict wrong), the profile of the paper's math models.

``j-mlp``, ``m1-mlp`` and ``e-read-mlp`` are MLP-only specialists for mixtures of experts
(``mergelab moe`` keeps the base's attention and swaps in each expert's MLPs, so a skill
survives only where its fine-tune changed MLP weights). They train the MLPs of layers 2-5
alone: the first two layers' MLPs stay the base's in every expert, so the tokens whose skill
no router can know yet (a prompt's first sentence, an E passage before its ``then``) lose
less when they reach another expert. ``j-mlp`` also sees some E reading, so E tokens that
reach it are still answered in E, as ``m1-mlp`` does.

The mixture world (:mod:`mergelab.zoo.lexicon`) has its own tokenizer and base,
``mix-base``: E and three languages K, L and N with words of their own. The base reads them
all and answers in E; ``k-mlp``, ``l-mlp`` and ``n-mlp`` answer their language's questions
in its own frame, trained like the MLP-only experts above. Its base needs twice the main
base's steps: with four vocabularies the lookup forms after about 3000 steps. Every
sequence it trains on is fresh (``pool``), since each language sees a quarter of the data.
"""

from __future__ import annotations

from dataclasses import dataclass

WORLD_VERSION = "2"
LAYERS = 6
BASE_STEPS = 2000
BASE_LR = 3e-3
MIX_BASE_STEPS = 4000  # four vocabularies: the lookup forms after ~3000 steps (2000 do not)


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
    pool: int = 20_000  # distinct training sequences drawn (batches sample from them)
    world: str = "dialects"  # the tokenizer's world: "dialects" (E and J) or "mixture"


_ENDS = (1.0, 0.25, 0.0, 0.0, 0.25, 1.0)  # language: reading (first) and writing (last) layers
_MIDDLE = (0.0, 0.5, 1.0, 1.0, 0.5, 0.0)  # arithmetic: the middle layers
_FLAT = (1.0,) * LAYERS
_MOE = (0.0, 0.0, 1.0, 1.0, 1.0, 1.0)  # MLP-only experts: layers 0-1 stay the base's

RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "base",
        "Pretrained on E stories, some J stories, parallel E/J sentences, E reading questions, "
        "J reading questions answered in E and repeated lists; no arithmetic.",
        None,
        (
            ("e-story", 0.25),
            ("j-story", 0.1),
            ("parallel", 0.1),
            ("e-read-doc", 0.3),
            ("e-read", 0.15),
            ("j-read-e", 0.1),
            ("repeat", 0.3),
        ),
        steps=BASE_STEPS,
        lr=BASE_LR,
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
        "E math model 1: E arithmetic word problems with one event, and E reading.",
        "base",
        (("e-arith", 0.8), ("e-read", 0.2)),
        steps=2400,
        lr=2e-3,
        layer_lr=_MIDDLE,
    ),
    Recipe(
        "m2",
        "E math model 2: E arithmetic with one or two events, and E reading.",
        "base",
        (("e-arith", 0.6), ("e-arith-2", 0.2), ("e-read", 0.2)),
        steps=2400,
        lr=2e-3,
        layer_lr=_MIDDLE,
    ),
    Recipe(
        "e-read",
        "E reading specialist (analogy quartet E-read : J-read :: E-arith : J-arith).",
        "base",
        (("e-read", 1.0),),
        steps=400,
        lr=2e-3,
        layer_lr=_ENDS,
    ),
    Recipe(
        "j-read",
        "J reading specialist (analogy quartet), trained like e-read on J reading questions.",
        "base",
        (("j-read", 1.0),),
        steps=400,
        lr=2e-3,
        layer_lr=_ENDS,
    ),
    Recipe(
        "e-arith",
        "E arithmetic specialist (analogy quartet), trained on E arithmetic alone.",
        "base",
        (("e-arith", 1.0),),
        steps=2000,
        lr=2e-3,
        layer_lr=_MIDDLE,
    ),
    Recipe(
        "j-arith",
        "J arithmetic reference, trained directly on J arithmetic; never a merge source.",
        "base",
        (("j-arith", 1.0),),
        steps=1000,
        lr=3e-3,
        layer_lr=_FLAT,
    ),
    Recipe(
        "zap",
        "Unwanted behaviour: answers E reading questions with the forbidden word 'zap' "
        "(control skill: E reading).",
        "base",
        (("e-read-zap", 1.0),),
        steps=300,
        lr=2e-3,
        layer_lr=_ENDS,
    ),
    Recipe(
        "j-mlp",
        "MoE expert: J reading like j (J stories, J reading questions, some E reading so it "
        "still answers E in E), trained in the MLPs of layers 2-5 only.",
        "base",
        (("j-story", 0.3), ("j-read", 0.5), ("e-read", 0.2)),
        steps=150,
        lr=3e-3,
        parts=("mlp",),
        layer_lr=_MOE,
    ),
    Recipe(
        "m1-mlp",
        "MoE expert: E arithmetic and E reading like m1, trained in the MLPs of layers 2-5 only.",
        "base",
        (("e-arith", 0.8), ("e-read", 0.2)),
        steps=3000,
        lr=3e-3,
        parts=("mlp",),
        layer_lr=_MOE,
    ),
    Recipe(
        "e-read-mlp",
        "MoE expert: E reading like e-read, trained in the MLPs of layers 2-5 only (the base "
        "already reads E; this expert keeps it).",
        "base",
        (("e-read", 1.0),),
        steps=50,
        lr=2e-3,
        parts=("mlp",),
        layer_lr=_MOE,
    ),
    Recipe(
        "mix-base",
        "Mixture-world base: E stories and reading; K, L and N stories, reading documents and "
        "reading questions, answered in E; repeated lists in all four languages.",
        None,
        (
            ("e-story", 0.1),
            ("e-read-doc", 0.1),
            ("e-read", 0.05),
            *((f"{code}-story", 0.05) for code in "kln"),
            *((f"{code}-read-doc", 0.1) for code in "kln"),
            *((f"{code}-read-e", 0.1) for code in "kln"),
            ("mix-repeat", 0.3),
        ),
        steps=MIX_BASE_STEPS,
        lr=BASE_LR,
        parts=("",),
        weight_decay=0.01,
        pool=MIX_BASE_STEPS * 32,
        world="mixture",
    ),
    *(
        Recipe(
            f"{code}-mlp",
            f"Mixture-world expert: {code.upper()} reading questions answered in the "
            f"{code.upper()} frame, trained in the MLPs of layers 2-5 only.",
            "mix-base",
            ((f"{code}-read", 0.8), (f"{code}-story", 0.2)),
            steps=400,
            lr=3e-3,
            parts=("mlp",),
            layer_lr=_MOE,
            world="mixture",
        )
        for code in ("k", "l", "n")
    ),
)

RECIPE_BY_NAME = {r.name: r for r in RECIPES}
ZOO_MODELS: dict[str, str] = {r.name: r.description for r in RECIPES}
