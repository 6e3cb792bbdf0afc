"""Mixture of experts from dense fine-tunes, with prompt-initialised routers (``spec/moe.md``).

``build_moe(config, out)`` turns a mergekit-moe config into a Mixtral checkpoint: the base
donates embeddings, attention, norms and head; each expert donates its MLPs; routers come
from the base model's hidden states on each expert's prompts. ``routing_report`` shows where
the result sends held-out prompts.
"""

from __future__ import annotations

from mergelab.moe.build import MoeResult, build_moe
from mergelab.moe.config import ExpertConfig, MoeConfig, load_moe_config
from mergelab.moe.family import SUPPORTED_FAMILIES
from mergelab.moe.heldout import HeldOut, held_out_prompts
from mergelab.moe.plan import MoePlan, plan_moe
from mergelab.moe.report import RoutingReport, routing_report
from mergelab.moe.router import router_weights

__all__ = [
    "SUPPORTED_FAMILIES",
    "ExpertConfig",
    "HeldOut",
    "MoeConfig",
    "MoePlan",
    "MoeResult",
    "RoutingReport",
    "build_moe",
    "held_out_prompts",
    "load_moe_config",
    "plan_moe",
    "router_weights",
    "routing_report",
]
