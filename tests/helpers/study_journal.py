"""Reading what an evolve run left in its OUT_DIR, for the resume-after-kill tests."""

from __future__ import annotations

from pathlib import Path

import optuna

from mergelab.evolve.journal import JournalFile
from mergelab.evolve.storage import DEFAULT_STUDY, JOURNAL_FILE


def study_trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    """Every trial of the study in ``out``'s journal, as stored."""
    storage = optuna.storages.JournalStorage(JournalFile(out / JOURNAL_FILE))
    return optuna.load_study(study_name=DEFAULT_STUDY, storage=storage).get_trials()


def finished_calls(out: Path) -> int:
    """Evaluations a search subprocess has finished (its evaluator logs one line each to
    ``<out>.calls``)."""
    log = Path(f"{out}.calls")
    return len(log.read_text().splitlines()) if log.is_file() else 0
