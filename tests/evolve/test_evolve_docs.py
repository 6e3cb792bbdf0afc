"""docs/evolve.md: its example config is the issue's, parses, and runs on the zoo as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from evolve_helpers import ISSUE_EXAMPLE

from mergelab.cli import main
from mergelab.evolve.config import load_evolve_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "evolve.md"


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_first_example_is_the_issue_example_and_parses() -> None:
    first = _yaml_blocks()[0]
    body = "\n".join(line for line in first.splitlines() if not line.startswith("# "))
    assert yaml.safe_load(body) == yaml.safe_load(ISSUE_EXAMPLE)
    config = load_evolve_config(first)
    assert config.genome.granularity == "layer"


def test_the_objectives_example_parses() -> None:
    block = next(b for b in _yaml_blocks()[1:] if "objectives:" in b)
    data = yaml.safe_load(_yaml_blocks()[0])
    config = load_evolve_config({**data, **yaml.safe_load(block), "sampler": None})
    assert config.sampler_name == "nsga2"
    assert config.genome.granularity == "global"


@pytest.mark.slow
def test_the_example_runs_as_written_on_the_zoo(
    zoo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(zoo_dir.parent)  # the example's paths are zoo/base, zoo/j, ...
    config = tmp_path / "evolve.yml"
    config.write_text(_yaml_blocks()[0], encoding="utf-8")
    out = tmp_path / "run"
    main(["evolve", str(config), str(out), "--trials", "3"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"]["complete"] == 3
    assert set(summary["chosen"]["test"]) == {"j-arith/test"}
    assert {Path(ref).name for ref in summary["sources"]} == {"base", "j", "m1", "m2"}
