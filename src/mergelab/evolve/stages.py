"""PS+DFS: a parameter-space search, its best model put into the pool, then a data-flow
search over (that model, B, ...) (Akiba et al., arXiv 2403.13187, Sec. 3.3).

One config (``space: ps+dfs``) runs as two stages in folders of OUT_DIR, each a complete
search with its own study, outputs and ``summary.json``:

- ``ps/``: the PS stage (the config without its ``dfs`` block);
- ``ps_best/``: the PS stage's chosen recipe merged to disk, A of the DFS stage
  (``ps_best.json`` records the trial and recipe it holds);
- ``dfs/``: the DFS stage over ``[ps_best, *dfs.models]``, with the same objectives, budget,
  sampler settings and seed.

``OUT_DIR/summary.json`` holds both stages' summaries and the final choice (the DFS
stage's). Rerunning resumes each stage in turn; ``ps_best`` is merged again only when the
PS stage's choice changed, and refused once the DFS stage has started on the old one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mergelab.errors import ConfigError, SearchError
from mergelab.evolve.config import EvolveConfig
from mergelab.evolve.storage import CONFIG_FILE
from mergelab.merge import merge

PS_DIR = "ps"
DFS_DIR = "dfs"
PS_MODEL = "ps_best"
PS_MODEL_RECORD = "ps_best.json"
SUMMARY_FILE = "summary.json"

_PS_KEYS = {"merge_method", "base_model", "models", "parameters", "genome"}


def ps_stage(config: EvolveConfig) -> EvolveConfig:
    """The parameter-space stage of a ps+dfs config."""
    data = config.model_dump(mode="json", exclude={"dfs", "study_name"})
    return EvolveConfig.model_validate({**data, "space": "ps"})


def dfs_stage(config: EvolveConfig, ps_model: Path) -> EvolveConfig:
    """The data-flow stage of a ps+dfs config: A is the PS model in ``ps_model``."""
    data = config.model_dump(mode="json", exclude={*_PS_KEYS, "study_name"})
    data["dfs"]["models"] = [str(ps_model), *config.dfs_spec.models]
    return EvolveConfig.model_validate({**data, "space": "dfs"})


def ps_model(out: Path, ps_summary: dict[str, Any]) -> Path:
    """``out/ps_best``, holding the PS stage's chosen model (merged now unless it already is)."""
    chosen = ps_summary.get("chosen")
    if not chosen:
        raise SearchError(
            "the PS stage has no completed trial, so there is no PS model for the DFS stage; "
            "rerun to continue it"
        )
    recipe = out / PS_DIR / chosen["recipe"]
    record = {"trial": chosen["trial"], "recipe_sha256": _sha256(recipe)}
    dest, marker = out / PS_MODEL, out / PS_MODEL_RECORD
    if dest.is_dir() and marker.is_file():
        held = json.loads(marker.read_text(encoding="utf-8"))
        if held == record:
            return dest
        if (out / DFS_DIR / CONFIG_FILE).is_file():
            raise ConfigError(
                f"the PS stage now chooses trial {record['trial']}, but the DFS stage in "
                f"{out / DFS_DIR} searches over trial {held.get('trial')}'s model; use a new "
                f"OUT_DIR, or delete {out / DFS_DIR} and {dest} to redo the DFS stage"
            )
    marker.unlink(missing_ok=True)
    merge(recipe, dest, overwrite=True)
    marker.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return dest


def write_stages_summary(
    out: Path, ps_summary: dict[str, Any], dfs_summary: dict[str, Any]
) -> dict[str, Any]:
    """``out/summary.json``: each stage's summary and the final choice (paths from ``out``)."""
    chosen = dfs_summary.get("chosen")
    if chosen:
        model = chosen.get("model")
        chosen = {
            **chosen,
            "recipe": f"{DFS_DIR}/{chosen['recipe']}",
            "model": f"{DFS_DIR}/{model}" if model else None,
        }
    summary = {
        "space": "ps+dfs",
        "config": CONFIG_FILE,
        "ps_model": PS_MODEL,
        "stages": {
            "ps": {"dir": PS_DIR, **ps_summary},
            "dfs": {"dir": DFS_DIR, **dfs_summary},
        },
        "chosen": chosen,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
