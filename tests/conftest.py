"""Shared fixtures. ``zoo_dir`` builds the toy zoo once into ``<repo>/zoo`` (cached there, so
``make demo`` and every slow test reuse it; concurrent builds wait for each other)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def zoo_dir() -> Path:
    """The folder of the built zoo (``zoo_dir / "j"`` is the J model, and so on)."""
    from mergelab.zoo import build_zoo

    return build_zoo(REPO / "zoo").root
