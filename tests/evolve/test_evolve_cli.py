"""``mergelab evolve`` end to end on a task objective: outputs, test split, warnings, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from evolve_helpers import synthetic_config

from mergelab.cli import main
from mergelab.eval import TaskEvaluator, load_model


def _config(sources: dict[str, Path], task: Path, path: Path, **extra: object) -> Path:
    config = synthetic_config(sources, trials=6, merge_method="dare_ties")
    config["genome"] = {"granularity": "layer", "parameters": {"weight": [0.0, 1.0]}}
    config["parameters"] = {"density": 0.7}
    config["objectives"] = [{"task": str(task), "metric": "accuracy", "limit": 16}]
    config.update(extra)
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_runs_resumes_and_reports(
    sources: dict[str, Path], tiny_task: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(sources, tiny_task, tmp_path / "evolve.yml")
    out = tmp_path / "run"
    main(["evolve", str(config), str(out), "--save-best", "--trials", "4"])
    printed = capsys.readouterr().out
    assert "4 trials (4 complete, 0 failed" in printed
    assert f"optuna-dashboard {out / 'study.journal'}" in printed
    main(["evolve", str(config), str(out), "--save-best"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"]["counted"] == 6
    assert summary["trials"]["this_run"] == 2
    # test split: the chosen model re-scored independently from its saved folder
    model, tokenizer = load_model(out / "best_model")
    expected = TaskEvaluator(tiny_task, tokenizer, split="test")(model)
    assert summary["chosen"]["test"] == {"tiny/test": expected}
    assert set(summary["sources"]) == {str(sources[n]) for n in ("base", "a", "b", "c")}
    assert all(set(m) == {"tiny/test"} for m in summary["sources"].values())
    assert summary["warnings"] == []
    assert (out / "evolve_config.yml").is_file()


def test_overlapping_splits_are_warned_about(
    sources: dict[str, Path], tiny_task: Path, tmp_path: Path
) -> None:
    config = _config(sources, tiny_task, tmp_path / "evolve.yml", test_split="fitness")
    out = tmp_path / "run"
    main(["evolve", str(config), str(out), "--trials", "1"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warnings"] == [
        "objective tiny:accuracy uses split 'fitness' for fitness and test; test scores will "
        "be optimistic, use disjoint splits"
    ]


def test_cli_errors_are_one_line(
    sources: dict[str, Path],
    tiny_task: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(sources, tiny_task, tmp_path / "evolve.yml", sampler="cma")
    with pytest.raises(SystemExit) as info:
        main(["evolve", str(config), str(tmp_path / "run")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:")
    assert "sampler" in err
    assert "\n" not in err
    good = _config(sources, tiny_task, tmp_path / "good.yml")
    with pytest.raises(SystemExit):
        main(["evolve", str(good), str(tmp_path / "run"), "--backend", "spark"])
    assert "--backend 'spark' is unknown" in capsys.readouterr().err
