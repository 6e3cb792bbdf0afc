"""The routing report: where the built MoE sends each expert's held-out prompts.

The report runs the *built* Mixtral model, not the base: a router in layer l sees
``post_attention_layernorm`` of the MoE's own residual stream, which differs from the base
hidden states its row was made from (earlier layers already mix experts, and the norm and
attention come in between). Only the built model shows the decisions it really makes.

For a prompt p of expert e and a layer l, the pick is the top-1 expert of the router
probabilities softmax(R_l x_t) averaged over p's tokens t (the bos token, the same in every
prompt, left out); the token share is the fraction of those tokens whose own top-1 is e.
Routing accuracy is the fraction of (prompt, layer) pairs whose pick is the prompt's expert:
per expert, per layer and overall. With each layer's condition number (see
:mod:`mergelab.moe.conditioning`) this is what a user needs to judge the routers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mergelab.errors import EvaluationError
from mergelab.moe.conditioning import COND_LIMIT, condition_number, conditioning_warnings
from mergelab.moe.heldout import HeldOut
from mergelab.moe.prompts import bos_id, encode, pad_id, padded_batches

LOW_ACCURACY = 0.5  # warn when an expert gets fewer of its own prompts than this
_ROUTER = re.compile(r"^model\.layers\.(\d+)\.(?:mlp|block_sparse_moe)\.gate\.weight$")


@dataclass(frozen=True)
class PromptRouting:
    """Per layer: the expert picked for ``prompt``, and its tokens' share sent to ``expert``."""

    expert: int
    prompt: str
    picks: list[int]
    token_share: list[float]


@dataclass
class RoutingReport:
    """Routing of held-out prompts through a built MoE, with per-layer conditioning."""

    experts: list[str]
    held_out: list[bool]
    condition_numbers: list[float]
    prompts: list[PromptRouting]
    warnings: list[str] = field(default_factory=list)
    conditioning: bool = True  # False for fitted routers, whose condition number says nothing

    @property
    def layers(self) -> int:
        return len(self.condition_numbers)

    def _hits(self, expert: int | None = None, layer: int | None = None) -> list[bool]:
        return [
            pick == p.expert
            for p in self.prompts
            if expert is None or p.expert == expert
            for at, pick in enumerate(p.picks)
            if layer is None or at == layer
        ]

    def accuracy(self, expert: int | None = None, layer: int | None = None) -> float | None:
        """Share of (prompt, layer) picks that are the prompt's expert (None without prompts)."""
        hits = self._hits(expert, layer)
        return sum(hits) / len(hits) if hits else None

    def token_accuracy(self, expert: int | None = None) -> float | None:
        """Mean share of tokens whose top-1 is their prompt's expert, over prompts and layers."""
        shares = [s for p in self.prompts if expert in (None, p.expert) for s in p.token_share]
        return sum(shares) / len(shares) if shares else None

    def confusion(self) -> list[list[int]]:
        """counts[e][k]: (prompt, layer) pairs of expert e's prompts routed to expert k."""
        n = len(self.experts)
        counts = [[0] * n for _ in range(n)]
        for p in self.prompts:
            for pick in p.picks:
                counts[p.expert][pick] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (an infinite condition number becomes null)."""
        return {
            "accuracy": self.accuracy(),
            "token_accuracy": self.token_accuracy(),
            "layers": self.layers,
            "condition_numbers": [c if math.isfinite(c) else None for c in self.condition_numbers],
            "per_layer_accuracy": [self.accuracy(layer=i) for i in range(self.layers)],
            "experts": [
                {
                    "index": e,
                    "source_model": name,
                    "held_out": self.held_out[e],
                    "prompts": sum(1 for p in self.prompts if p.expert == e),
                    "accuracy": self.accuracy(e),
                    "token_accuracy": self.token_accuracy(e),
                    "per_layer_accuracy": [self.accuracy(e, i) for i in range(self.layers)],
                }
                for e, name in enumerate(self.experts)
            ],
            "confusion": self.confusion(),
            "prompts": [
                {
                    "expert": p.expert,
                    "prompt": p.prompt,
                    "picks": p.picks,
                    "token_share": p.token_share,
                }
                for p in self.prompts
            ],
            "warnings": self.warnings,
        }

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def summary(self) -> list[str]:
        """A few lines for the terminal and the model card."""
        lines = [
            f"routing accuracy {_pct(self.accuracy())} over {len(self.prompts)} prompts "
            f"({_pct(self.token_accuracy())} of their tokens)"
        ]
        for e, name in enumerate(self.experts):
            tag = "" if self.held_out[e] else " (router prompts, not held out)"
            lines.append(f"expert {e} ({name}): {_pct(self.accuracy(e))}{tag}")
        if self.conditioning:
            conds = ", ".join(f"{c:.3g}" for c in self.condition_numbers)
            lines.append(
                f"router condition number per layer: {conds} (warned above {COND_LIMIT:g})"
            )
        return lines + [f"warning: {w}" for w in self.warnings]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def routing_report(
    model_dir: str | Path,
    prompts: Sequence[HeldOut],
    *,
    names: Sequence[str] | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    router_warnings: list[str] | None = None,
    conditioning: bool = True,
) -> RoutingReport:
    """Route ``prompts[e]`` (expert e's) through the MoE in ``model_dir`` and score it.

    ``router_warnings`` (the build's, which knows how the routers were made) replace the
    conditioning warnings computed from the routers themselves; ``conditioning=False``
    (fitted routers) leaves the condition numbers out of the summary and the warnings."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype="auto")
    except (OSError, ValueError) as exc:
        raise EvaluationError(
            f"cannot load the MoE in {folder} ({_first_line(exc)}); pass a folder written by "
            "`mergelab moe`"
        ) from None
    model = model.to(device).eval()  # type: ignore[arg-type]
    routers = _routers(model)
    count = routers[0].shape[0] if routers else 0
    if count != len(prompts):
        raise EvaluationError(
            f"{folder} holds {count} experts but {len(prompts)} prompt lists were given; give "
            "one list per expert (or pass a folder written by `mergelab moe`)"
        )
    labels = list(names) if names is not None else [f"expert {e}" for e in range(len(prompts))]
    bos = bos_id(tokenizer, getattr(model.config, "bos_token_id", None))
    routed: list[PromptRouting] = []
    warnings = []
    for e, group in enumerate(prompts):
        if not group.prompts:
            warnings.append(f"expert {e} ({labels[e]}) has no prompts to route; it is not scored")
            continue
        routed += _route(model, tokenizer, e, group.prompts, bos, batch_size, device)
        if not group.held_out:
            warnings.append(
                f"expert {e} ({labels[e]}) is scored on its own router prompts, which flatters "
                "it; add eval_prompts or eval_task for held-out prompts"
            )
    report = RoutingReport(
        experts=labels,
        held_out=[g.held_out for g in prompts],
        condition_numbers=[condition_number(r) for r in routers],
        prompts=routed,
        conditioning=conditioning,
    )
    for e, name in enumerate(labels):
        acc = report.accuracy(e)
        if acc is not None and acc < LOW_ACCURACY:
            warnings.append(
                f"expert {e} ({name}) receives only {_pct(acc)} of its prompts; give it more "
                "distinctive positive_prompts, or negative_prompts for what it should not get"
            )
    if router_warnings is None:
        router_warnings = conditioning_warnings(routers, labels) if conditioning else []
    report.warnings = router_warnings + warnings
    return report


def _routers(model: Any) -> list[torch.Tensor]:
    """The router weights [E, H] of every layer, in layer order."""
    found = {}
    for name, param in model.named_parameters():
        match = _ROUTER.match(name)
        if match:
            found[int(match[1])] = param.detach().float().cpu()
    return [found[layer] for layer in sorted(found)]


@torch.no_grad()
def _route(
    model: Any,
    tokenizer: Any,
    expert: int,
    prompts: list[str],
    bos: int | None,
    batch_size: int,
    device: str,
) -> list[PromptRouting]:
    encoded = encode(tokenizer, prompts, bos)
    skip = 1 if bos is not None else 0  # the bos position routes the same in every prompt
    out: list[PromptRouting] = []
    for ids, mask in padded_batches(encoded, batch_size, pad_id(tokenizer)):
        result = model(
            input_ids=ids.to(device), attention_mask=mask.to(device), output_router_logits=True
        )
        b, t = ids.shape
        probs = torch.stack(
            [torch.softmax(r.float(), dim=-1).view(b, t, -1) for r in result.router_logits]
        )
        probs = probs.cpu()  # [L, B, T, E]
        for row in range(b):
            n = int(mask[row].sum())
            tokens = probs[:, row, min(skip, n - 1) : n]  # [L, T_p, E]
            picks = tokens.mean(dim=1).argmax(dim=-1)  # [L]
            share = (tokens.argmax(dim=-1) == expert).float().mean(dim=1)  # [L]
            out.append(
                PromptRouting(
                    expert, prompts[len(out)], picks.tolist(), [round(float(s), 4) for s in share]
                )
            )
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
